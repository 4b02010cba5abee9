//! Pictures as RGB PNG files (written atomically): diverging / sequential colour maps with
//! labelled colour bars, side-by-side panels, colour-wheel vector maps and line plots, using a
//! built-in 5x7 bitmap font.
//!
//! A [`Decor`] adds what a reader of a map needs besides its colours: a scale bar in physical
//! units, the outline of the support (the region the magnetisation may occupy) and a warning
//! line under the title. [`compare_panels`] gives measured and model panels the measured
//! data's colour range. Maps larger than the picture's cap (1024 pixels a side, 768 per panel
//! when there are several) are block-averaged for display, so the files stay small.
//!
//! ```no_run
//! use magprior::io::render::{compare_panels, write_panels_with, Decor, MapKind, Panel};
//! # fn main() -> magprior::error::Result<()> {
//! let (h, w) = (64, 64);
//! let (measured, model) = (vec![0f32; h * w], vec![0f32; h * w]);
//! let residual: Vec<f32> = measured.iter().zip(&model).map(|(a, b)| a - b).collect();
//! let support = vec![1f32; h * w];
//! let panel = |data, title| Panel {
//!     data,
//!     h,
//!     w,
//!     title,
//!     unit: "mT",
//!     scale: 1e3,
//!     kind: MapKind::Diverging,
//!     limit: None,
//! };
//! let panels = compare_panels(
//!     panel(&measured, "measured B_NV"),
//!     panel(&model, "model B_NV"),
//!     Some(panel(&residual, "residual")),
//! );
//! let decor = Decor::new()
//!     .pixel_size(5e-9)
//!     .support(&support)
//!     .flag("circulation sense not determined by the data");
//! write_panels_with("bnv.png".as_ref(), &panels, &decor)?;
//! # Ok(())
//! # }
//! ```

mod canvas;
mod colour;
mod decor;
mod font;
mod lineplot;
mod plot;

pub use lineplot::write_line_plot;
pub use plot::{
    write_colour_wheel, write_colour_wheel_with, write_panels, write_panels_with, write_scalar_map,
    write_sequential_map,
};

/// How a panel maps values to colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapKind {
    /// Blue-white-red, symmetric about 0 (white), range `±limit` (default: max |v|).
    Diverging,
    /// Viridis-like; range `[min, max]` of the data, or `[0, limit]` when a limit is given.
    Sequential,
}

/// One image of a [`write_panels`] picture.
#[derive(Debug, Clone, Copy)]
pub struct Panel<'a> {
    /// Values, row-major, `h * w` of them.
    pub data: &'a [f32],
    /// Rows.
    pub h: usize,
    /// Columns.
    pub w: usize,
    /// Title drawn above the panel.
    pub title: &'a str,
    /// Unit appended to the colour-bar labels (after multiplying by `scale`).
    pub unit: &'a str,
    /// Factor applied to values for the labels only (e.g. 1e3 for T -> mT).
    pub scale: f64,
    /// Colour map.
    pub kind: MapKind,
    /// Fixed colour range (see [`MapKind`]); give two panels the same value to compare them.
    pub limit: Option<f32>,
}

/// The largest finite |v| over several arrays (1 if there is none or it is 0): a common
/// `limit` for panels that should share one colour scale.
pub fn shared_limit(arrays: &[&[f32]]) -> f32 {
    let m = arrays
        .iter()
        .flat_map(|a| a.iter())
        .filter(|v| v.is_finite())
        .fold(0f32, |m, v| m.max(v.abs()));
    if m > 0.0 {
        m
    } else {
        1.0
    }
}

/// The quantile of |measured| that [`compare_panels`] uses as the colour limit: one pixel in
/// 200 may saturate, so that a few hot pixels cannot wash out the picture.
pub const ROBUST_QUANTILE: f64 = 0.995;

/// The `q`-quantile (`0..=1`, nearest rank) of the finite |v|: a colour limit that a few
/// outliers cannot inflate. Falls back to the largest |v| when the quantile is 0, and to 1 when
/// there is no finite non-zero value.
pub fn robust_limit(data: &[f32], q: f64) -> f32 {
    let mut a: Vec<f32> = data
        .iter()
        .filter(|v| v.is_finite())
        .map(|v| v.abs())
        .collect();
    if a.is_empty() {
        return 1.0;
    }
    let q = if q.is_finite() {
        q.clamp(0.0, 1.0)
    } else {
        1.0
    };
    let rank = ((q * a.len() as f64).ceil() as usize).clamp(1, a.len());
    let (_, &mut v, _) = a.select_nth_unstable_by(rank - 1, f32::total_cmp);
    if v > 0.0 {
        v
    } else {
        shared_limit(&[data])
    }
}

/// Measured | model (| residual) panels for comparison: measured and model get the colour
/// limit [`robust_limit`]`(measured, ROBUST_QUANTILE)` — the MEASURED data's range, so that the
/// model cannot change how the measurement looks (a model edge artefact only saturates) —
/// and the residual its own symmetric robust limit. Other fields are kept; `limit` is replaced.
/// Meant for diverging maps; a sequential panel gets the range `[0, limit]`.
pub fn compare_panels<'a>(
    measured: Panel<'a>,
    model: Panel<'a>,
    residual: Option<Panel<'a>>,
) -> Vec<Panel<'a>> {
    let lim = Some(robust_limit(measured.data, ROBUST_QUANTILE));
    let mut out = vec![
        Panel {
            limit: lim,
            ..measured
        },
        Panel {
            limit: lim,
            ..model
        },
    ];
    if let Some(r) = residual {
        let limit = Some(robust_limit(r.data, ROBUST_QUANTILE));
        out.push(Panel { limit, ..r });
    }
    out
}

/// What is drawn on a map besides its colours (all optional; `Decor::default()` draws none):
/// build one with [`Decor::new`] and the setters, and pass it to [`write_panels_with`] or
/// [`write_colour_wheel_with`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Decor<'a> {
    /// Edge of one (square) data pixel in metres: draws a scale bar under the bottom-left of
    /// each image, of a round length (1, 2 or 5 x 10^k m) near a fifth of the image width,
    /// labelled in nm, µm or mm.
    pub pixel_size: Option<f64>,
    /// Support mask, `h * w` values row-major, inside where >= 0.5 (e.g. 0/1): its boundary
    /// (inside pixels with a 4-neighbour outside) is outlined in black or white, whichever
    /// contrasts with the pixel beneath.
    pub support: Option<&'a [f32]>,
    /// A short warning (e.g. "circulation sense not determined by the data") drawn under the
    /// title in orange, wrapped onto at most two lines and shortened with `...` beyond.
    pub flag: Option<&'a str>,
}

impl<'a> Decor<'a> {
    /// No decoration.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the pixel size in metres (draws a scale bar).
    pub fn pixel_size(self, metres: f64) -> Self {
        Decor {
            pixel_size: Some(metres),
            ..self
        }
    }
    /// Sets the support mask (draws its outline).
    pub fn support(self, mask: &'a [f32]) -> Self {
        Decor {
            support: Some(mask),
            ..self
        }
    }
    /// Sets the warning line under the title.
    pub fn flag(self, text: &'a str) -> Self {
        Decor {
            flag: Some(text),
            ..self
        }
    }
}

/// Helpers of the tests in this module's files: temporary paths and PNG decoding.
#[cfg(test)]
mod testutil {
    use super::canvas::MARGIN;
    use super::colour::Rgb;
    use super::font::CH;
    use std::fs::File;
    use std::path::{Path, PathBuf};

    pub(super) fn tmp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("magprior-render-{}-{name}", std::process::id()))
    }

    /// Decodes an RGB PNG: (width, height, pixels).
    pub(super) fn decode(p: &Path) -> (usize, usize, Vec<u8>) {
        let mut r = png::Decoder::new(std::io::BufReader::new(File::open(p).unwrap()))
            .read_info()
            .unwrap();
        let mut buf = vec![0; r.output_buffer_size().unwrap()];
        let info = r.next_frame(&mut buf).unwrap();
        assert_eq!(info.color_type, png::ColorType::Rgb);
        (info.width as usize, info.height as usize, buf)
    }

    pub(super) fn px(img: &(usize, usize, Vec<u8>), x: usize, y: usize) -> Rgb {
        let i = (y * img.0 + x) * 3;
        [img.2[i], img.2[i + 1], img.2[i + 2]]
    }

    /// Centre of data pixel (row, col) in a single-panel picture upscaled by `k`.
    pub(super) fn at(k: usize, row: usize, col: usize) -> (usize, usize) {
        (MARGIN + col * k + k / 2, MARGIN + CH + 10 + row * k + k / 2)
    }

    /// Keeps the pictures (for looking at them) when MAGPRIOR_KEEP_PICTURES is set.
    pub(super) fn done(p: &Path) {
        if std::env::var_os("MAGPRIOR_KEEP_PICTURES").is_none() {
            std::fs::remove_file(p).ok();
        }
    }

    pub(super) fn field(h: usize, w: usize) -> Vec<f32> {
        (0..h * w)
            .map(|i| {
                let (y, x) = (
                    (i / w) as f32 - h as f32 / 2.0,
                    (i % w) as f32 - w as f32 / 2.0,
                );
                2e-3 * (-(x * x + y * y) / 80.0).exp() - 0.8e-3 * (-(x * x + y * y) / 400.0).exp()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
