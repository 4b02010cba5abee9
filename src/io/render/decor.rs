//! What makes a map picture readable beyond its colours: the display scale (integer upscaling
//! of small maps, block averaging of large ones), scale bars in physical units, support
//! outlines and warning flags.

use super::canvas::Canvas;
use super::canvas::{check_len, MARGIN};
use super::colour::{contrast, Rgb, BLACK, WARN};
use super::font::{fit_lines, fmt_num, CH};
use super::Decor;
use crate::error::{Error, Result};
use std::borrow::Cow;

/// How data pixels become picture pixels: the map is block-averaged over `d x d` data pixels
/// (`d = 1`: not at all), then each of the `rows x cols` cells is drawn as a `k x k` block.
/// At most one of `k`, `d` exceeds 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Scale {
    pub(super) k: usize,
    pub(super) d: usize,
    pub(super) rows: usize,
    pub(super) cols: usize,
}

/// The scale of an `h x w` map: about `target` pixels wide, upscaled by an integer, and never
/// more than `cap` pixels on either side (larger maps are block-averaged to fit).
pub(super) fn display_scale(h: usize, w: usize, target: usize, cap: usize) -> Scale {
    let big = h.max(w).max(1);
    if big > cap {
        let d = big.div_ceil(cap);
        return Scale {
            k: 1,
            d,
            rows: h.div_ceil(d),
            cols: w.div_ceil(d),
        };
    }
    let mut k = target.div_ceil(w.max(1)).max(1);
    while k > 1 && big * k > cap {
        k -= 1;
    }
    Scale {
        k,
        d: 1,
        rows: h,
        cols: w,
    }
}

/// Means of the finite values over `d x d` blocks of an `h x w` map (the last row and column
/// of blocks may be partial; a block without finite values is NaN). `d = 1` borrows `v`.
pub(super) fn block_average(v: &[f32], h: usize, w: usize, d: usize) -> Cow<'_, [f32]> {
    if d <= 1 {
        return Cow::Borrowed(v);
    }
    let (rows, cols) = (h.div_ceil(d), w.div_ceil(d));
    let mut sum = vec![0f64; rows * cols];
    let mut n = vec![0u32; rows * cols];
    for (i, &x) in v.iter().enumerate().take(h * w) {
        if x.is_finite() {
            let j = (i / w / d) * cols + (i % w) / d;
            sum[j] += x as f64;
            n[j] += 1;
        }
    }
    let mean = sum.iter().zip(&n).map(|(s, &n)| match n {
        0 => f32::NAN,
        n => (s / n as f64) as f32,
    });
    Cow::Owned(mean.collect())
}

/// Checks the decoration for an `h x w` map.
pub(super) fn check_decor(op: &'static str, d: &Decor, h: usize, w: usize) -> Result<()> {
    if let Some(p) = d.pixel_size {
        if !(p.is_finite() && p > 0.0) {
            return Err(Error::arg(op, format!("pixel size {p} m is not positive")));
        }
    }
    if let Some(m) = d.support {
        check_len(op, m.len(), h, w).map_err(|_| {
            Error::arg(
                op,
                format!("support mask of {} values for a {h}x{w} map", m.len()),
            )
        })?;
    }
    Ok(())
}

/// Sides of a cell that border the outside of the support (bit flags).
const UP: u8 = 1;
const DOWN: u8 = 2;
const LEFT: u8 = 4;
const RIGHT: u8 = 8;

/// For each display cell: the sides facing a 4-neighbour outside the support, for cells inside
/// (value >= 0.5, after block averaging for `s.d > 1`) that have such a neighbour; 0 elsewhere.
/// Neighbours beyond the map's edge do not count as outside.
pub(super) fn outline_sides(mask: &[f32], h: usize, w: usize, s: Scale) -> Vec<u8> {
    let unit: Vec<f32> = mask.iter().map(|&m| f32::from(m >= 0.5)).collect();
    let inside: Vec<bool> = block_average(&unit, h, w, s.d)
        .iter()
        .map(|&m| m >= 0.5)
        .collect();
    let (rows, cols) = (s.rows, s.cols);
    let out = |i: usize| !inside[i];
    (0..rows * cols)
        .map(|i| {
            let (r, c) = (i / cols, i % cols);
            if !inside[i] {
                return 0;
            }
            let mut sides = 0;
            if r > 0 && out(i - cols) {
                sides |= UP;
            }
            if r + 1 < rows && out(i + cols) {
                sides |= DOWN;
            }
            if c > 0 && out(i - 1) {
                sides |= LEFT;
            }
            if c + 1 < cols && out(i + 1) {
                sides |= RIGHT;
            }
            sides
        })
        .collect()
}

/// Width of the outline in picture pixels for cells of `k x k` pixels.
pub(super) fn outline_width(k: usize) -> usize {
    (k / 8).max(1)
}

/// Draws the outline over an image drawn at `(left, top)` from `cells` (its colours, which pick
/// black or white for contrast): in each boundary cell, a thin line along its outer sides.
pub(super) fn draw_outline(
    c: &mut Canvas,
    (left, top): (usize, usize),
    s: Scale,
    cells: &[Rgb],
    sides: &[u8],
) {
    let (k, t) = (s.k, outline_width(s.k));
    for (i, &sd) in sides.iter().enumerate() {
        if sd == 0 {
            continue;
        }
        let (x, y) = (left + (i % s.cols) * k, top + (i / s.cols) * k);
        let rgb = contrast(cells[i]);
        if sd & UP != 0 {
            c.rect(x, y, k, t, rgb);
        }
        if sd & DOWN != 0 {
            c.rect(x, y + k - t, k, t, rgb);
        }
        if sd & LEFT != 0 {
            c.rect(x, y, t, k, rgb);
        }
        if sd & RIGHT != 0 {
            c.rect(x + k - t, y, t, k, rgb);
        }
    }
}

/// A scale bar: its length in picture pixels and its label.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ScaleBar {
    pub(super) len_px: usize,
    pub(super) label: String,
}

/// Height of the row under an image that holds a scale bar (gap, label with descenders).
pub(super) const SCALE_ROW: usize = 8 + CH + 4;
/// Thickness of the bar, and its offset below the image's bottom edge.
pub(super) const SCALE_T: usize = 4;
pub(super) const SCALE_DY: usize = 8 + (CH - SCALE_T) / 2;

/// The 1, 2 or 5 x 10^k nearest to `x` (> 0) on a log scale.
pub(super) fn nice_length(x: f64) -> f64 {
    let m = 10f64.powf(x.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|f| f * m)
        .fold(m, |best, c| {
            if (c / x).ln().abs() < (best / x).ln().abs() {
                c
            } else {
                best
            }
        })
}

/// A length in metres as `"200 nm"`, `"1 µm"`, `"5 mm"`.
pub(super) fn length_label(m: f64) -> String {
    let tol = 1.0 - 1e-9;
    let (u, name) = if m >= tol {
        (1.0, "m")
    } else if m >= 1e-3 * tol {
        (1e-3, "mm")
    } else if m >= 1e-6 * tol {
        (1e-6, "µm")
    } else {
        (1e-9, "nm")
    };
    format!("{} {name}", fmt_num(m / u))
}

/// The scale bar of a map `w` data pixels of `pixel` metres wide shown at scale `s`: a nice
/// length near a fifth of its width, `length / pixel * k / d` picture pixels long.
pub(super) fn scale_bar(pixel: f64, w: usize, s: Scale) -> Option<ScaleBar> {
    let len = nice_length(w as f64 * pixel / 5.0);
    let len_px = (len / pixel * s.k as f64 / s.d as f64).round();
    (len.is_finite() && len_px >= 2.0).then(|| ScaleBar {
        len_px: len_px as usize,
        label: length_label(len),
    })
}

/// Draws a scale bar in the row below an image whose bottom-left corner is `(left, bottom)`.
pub(super) fn draw_scale_bar(c: &mut Canvas, (left, bottom): (usize, usize), b: &ScaleBar) {
    c.rect(left, bottom + SCALE_DY, b.len_px, SCALE_T, BLACK);
    c.text(left + b.len_px + 6, bottom + 8, &b.label, BLACK);
}

/// Height of one line of flag text.
pub(super) const FLAG_ROW: usize = CH + 6;
/// At most this many lines of flag text; longer flags are shortened.
const FLAG_LINES: usize = 2;

/// The flag text of a picture `width` pixels wide, broken into lines that fit.
pub(super) fn flag_lines(d: &Decor, width: usize) -> Vec<String> {
    d.flag
        .map(|f| fit_lines(f, width.saturating_sub(2 * MARGIN), FLAG_LINES))
        .unwrap_or_default()
}

/// Top edge of the images under a title and `n_flag` lines of flag text.
pub(super) fn image_top(n_flag: usize) -> usize {
    MARGIN + CH + 10 + n_flag * FLAG_ROW
}

/// Draws the flag lines under the title, in the warning colour.
pub(super) fn draw_flag(c: &mut Canvas, lines: &[String]) {
    for (i, l) in lines.iter().enumerate() {
        c.text(MARGIN, MARGIN + CH + 6 + i * FLAG_ROW, l, WARN);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_scale_from_16_to_2048_pixels() {
        let s = |n, t, cap| display_scale(n, n, t, cap);
        assert_eq!(
            s(16, 384, 1024),
            Scale {
                k: 24,
                d: 1,
                rows: 16,
                cols: 16
            }
        );
        assert_eq!(s(64, 384, 1024).k, 6);
        assert_eq!(
            s(400, 384, 1024),
            Scale {
                k: 1,
                d: 1,
                rows: 400,
                cols: 400
            }
        );
        assert_eq!(s(1024, 384, 1024).d, 1);
        assert_eq!(
            s(2048, 384, 1024),
            Scale {
                k: 1,
                d: 2,
                rows: 1024,
                cols: 1024
            }
        );
        assert_eq!(
            s(2048, 256, 768),
            Scale {
                k: 1,
                d: 3,
                rows: 683,
                cols: 683
            }
        );
        // tall and narrow: the rows are capped too
        let t = display_scale(900, 16, 384, 1024);
        assert_eq!((t.k, t.d), (1, 1));
        let t = display_scale(3000, 10, 384, 1024);
        assert_eq!((t.k, t.d, t.rows, t.cols), (1, 3, 1000, 4));
    }

    #[test]
    fn block_average_means_finite_values() {
        let v = [
            1.0,
            3.0,
            5.0,
            f32::NAN,
            2.0,
            4.0,
            6.0,
            8.0,
            f32::NAN,
            f32::NAN,
            7.0,
            9.0,
        ];
        // 3 rows x 4 columns, 2x2 blocks: [1 3 2 4] [5 nan 6 8] / [nan nan] [7 9]
        let a = block_average(&v, 3, 4, 2);
        assert_eq!(a[0], 2.5);
        assert!((a[1] - 19.0 / 3.0).abs() < 1e-6);
        assert!(a[2].is_nan());
        assert_eq!(a[3], 8.0);
        assert!(matches!(block_average(&v, 3, 4, 1), Cow::Borrowed(_)));
    }

    #[test]
    fn nice_lengths_and_labels() {
        assert!((nice_length(1.0e-7) - 1e-7).abs() < 1e-18);
        assert!((nice_length(1.7e-7) - 2e-7).abs() < 1e-18);
        assert!((nice_length(4.0e-6) - 5e-6).abs() < 1e-15);
        assert!((nice_length(8.0e-9) - 1e-8).abs() < 1e-20);
        assert_eq!(length_label(nice_length(1.7e-7)), "200 nm");
        assert_eq!(length_label(nice_length(9e-7)), "1 µm");
        assert_eq!(length_label(5e-6), "5 µm");
        assert_eq!(length_label(2e-3), "2 mm");
        assert_eq!(length_label(5e-10), "0.5 nm");
        // 128 px of 5 nm: a fifth of 640 nm is 128 nm -> a 100 nm bar of 20 data pixels
        let s = display_scale(128, 128, 384, 1024);
        let b = scale_bar(5e-9, 128, s);
        assert_eq!(
            b,
            Some(ScaleBar {
                len_px: 20 * 3,
                label: "100 nm".into()
            })
        );
        let s = display_scale(2048, 2048, 384, 1024);
        let b = scale_bar(1e-9, 2048, s);
        assert_eq!(b.map(|b| b.len_px), Some(250));
    }

    #[test]
    fn outline_is_the_inner_boundary() {
        // a 3x3 square inside a 5x5 map; only its centre has no outside neighbour
        let mut m = vec![0f32; 25];
        for r in 1..4 {
            for c in 1..4 {
                m[r * 5 + c] = 1.0;
            }
        }
        let s = display_scale(5, 5, 5, 100);
        let sides = outline_sides(&m, 5, 5, s);
        assert_eq!(sides[6], UP | LEFT);
        assert_eq!(sides[7], UP);
        assert_eq!(sides[12], 0);
        assert_eq!(sides[18], DOWN | RIGHT);
        assert_eq!(sides.iter().filter(|&&x| x != 0).count(), 8);
        // a full mask has no boundary inside the map
        assert!(outline_sides(&[1.0; 25], 5, 5, s).iter().all(|&x| x == 0));
    }
}
