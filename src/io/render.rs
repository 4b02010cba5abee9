//! Pictures as RGB PNG files (written atomically): diverging / sequential colour maps with
//! labelled colour bars, side-by-side panels, colour-wheel vector maps and line plots, using a
//! built-in 5x7 bitmap font.

use crate::error::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// 5x7 glyphs, one byte per row (bit 4 = leftmost column), for ASCII 32..=126 then `µ`, `°`.
/// The glyphs of [`DESCENDERS`] are drawn two rows lower.
const FONT: [[u8; 7]; 97] = [
    [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00], // ' '
    [0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x04], // '!'
    [0x0A, 0x0A, 0x00, 0x00, 0x00, 0x00, 0x00], // '"'
    [0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A], // '#'
    [0x04, 0x0F, 0x14, 0x0E, 0x05, 0x1E, 0x04], // '$'
    [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03], // '%'
    [0x0C, 0x12, 0x14, 0x08, 0x15, 0x12, 0x0D], // '&'
    [0x04, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00], // '\''
    [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02], // '('
    [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08], // ')'
    [0x00, 0x04, 0x15, 0x0E, 0x15, 0x04, 0x00], // '*'
    [0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00], // '+'
    [0x00, 0x00, 0x00, 0x00, 0x0C, 0x04, 0x08], // ','
    [0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00], // '-'
    [0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C], // '.'
    [0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00], // '/'
    [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E], // '0'
    [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E], // '1'
    [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F], // '2'
    [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E], // '3'
    [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02], // '4'
    [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E], // '5'
    [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E], // '6'
    [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08], // '7'
    [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E], // '8'
    [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C], // '9'
    [0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00], // ':'
    [0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x04, 0x08], // ';'
    [0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02], // '<'
    [0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00], // '='
    [0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08], // '>'
    [0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04], // '?'
    [0x0E, 0x11, 0x01, 0x0D, 0x15, 0x15, 0x0E], // '@'
    [0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11], // 'A'
    [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E], // 'B'
    [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E], // 'C'
    [0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C], // 'D'
    [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F], // 'E'
    [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10], // 'F'
    [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F], // 'G'
    [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11], // 'H'
    [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E], // 'I'
    [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C], // 'J'
    [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11], // 'K'
    [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F], // 'L'
    [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11], // 'M'
    [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11], // 'N'
    [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E], // 'O'
    [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10], // 'P'
    [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D], // 'Q'
    [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11], // 'R'
    [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E], // 'S'
    [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04], // 'T'
    [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E], // 'U'
    [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04], // 'V'
    [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A], // 'W'
    [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11], // 'X'
    [0x11, 0x11, 0x0A, 0x04, 0x04, 0x04, 0x04], // 'Y'
    [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F], // 'Z'
    [0x0E, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0E], // '['
    [0x00, 0x10, 0x08, 0x04, 0x02, 0x01, 0x00], // '\\'
    [0x0E, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0E], // ']'
    [0x04, 0x0A, 0x11, 0x00, 0x00, 0x00, 0x00], // '^'
    [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F], // '_'
    [0x08, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00], // '`'
    [0x00, 0x00, 0x0E, 0x01, 0x0F, 0x11, 0x0F], // 'a'
    [0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1E], // 'b'
    [0x00, 0x00, 0x0E, 0x10, 0x10, 0x11, 0x0E], // 'c'
    [0x01, 0x01, 0x0D, 0x13, 0x11, 0x11, 0x0F], // 'd'
    [0x00, 0x00, 0x0E, 0x11, 0x1F, 0x10, 0x0E], // 'e'
    [0x06, 0x09, 0x08, 0x1C, 0x08, 0x08, 0x08], // 'f'
    [0x0F, 0x11, 0x11, 0x0F, 0x01, 0x01, 0x0E], // 'g'
    [0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11], // 'h'
    [0x04, 0x00, 0x0C, 0x04, 0x04, 0x04, 0x0E], // 'i'
    [0x02, 0x00, 0x06, 0x02, 0x02, 0x12, 0x0C], // 'j'
    [0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12], // 'k'
    [0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E], // 'l'
    [0x00, 0x00, 0x1A, 0x15, 0x15, 0x11, 0x11], // 'm'
    [0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11], // 'n'
    [0x00, 0x00, 0x0E, 0x11, 0x11, 0x11, 0x0E], // 'o'
    [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10], // 'p'
    [0x0F, 0x11, 0x11, 0x0F, 0x01, 0x01, 0x01], // 'q'
    [0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10], // 'r'
    [0x00, 0x00, 0x0E, 0x10, 0x0E, 0x01, 0x1E], // 's'
    [0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06], // 't'
    [0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0D], // 'u'
    [0x00, 0x00, 0x11, 0x11, 0x11, 0x0A, 0x04], // 'v'
    [0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0A], // 'w'
    [0x00, 0x00, 0x11, 0x0A, 0x04, 0x0A, 0x11], // 'x'
    [0x11, 0x11, 0x11, 0x11, 0x0F, 0x01, 0x0E], // 'y'
    [0x00, 0x00, 0x1F, 0x02, 0x04, 0x08, 0x1F], // 'z'
    [0x02, 0x04, 0x04, 0x08, 0x04, 0x04, 0x02], // '{'
    [0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04], // '|'
    [0x08, 0x04, 0x04, 0x02, 0x04, 0x04, 0x08], // '}'
    [0x00, 0x00, 0x08, 0x15, 0x02, 0x00, 0x00], // '~'
    [0x11, 0x11, 0x11, 0x13, 0x1D, 0x10, 0x10], // 'µ'
    [0x0C, 0x12, 0x0C, 0x00, 0x00, 0x00, 0x00], // '°'
];

/// Characters whose glyph hangs two rows below the baseline.
const DESCENDERS: &str = "gpqyµμ";

/// Font magnification: glyphs are drawn 10x14 pixels.
const FS: usize = 2;
/// Horizontal advance of one character.
const CW: usize = 6 * FS;
/// Glyph height.
const CH: usize = 7 * FS;
/// Outer margin of every panel.
const MARGIN: usize = 12;
/// Colour-bar width and the gap between image and bar.
const BAR_W: usize = 18;
const BAR_GAP: usize = 12;
/// Minimum colour-bar height, so that short images still get readable ticks.
const BAR_MIN_H: usize = 120;

type Rgb = [u8; 3];
const WHITE: Rgb = [255, 255, 255];
const BLACK: Rgb = [0, 0, 0];
const GREY: Rgb = [128, 128, 128];
const FRAME: Rgb = [60, 60, 60];

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

/// An RGB raster.
struct Canvas {
    w: usize,
    h: usize,
    px: Vec<u8>,
}

impl Canvas {
    fn new(w: usize, h: usize) -> Self {
        Canvas {
            w,
            h,
            px: vec![255; w * h * 3],
        }
    }
    fn set(&mut self, x: i64, y: i64, c: Rgb) {
        if x >= 0 && y >= 0 && (x as usize) < self.w && (y as usize) < self.h {
            let i = (y as usize * self.w + x as usize) * 3;
            self.px[i..i + 3].copy_from_slice(&c);
        }
    }
    fn rect(&mut self, x: usize, y: usize, w: usize, h: usize, c: Rgb) {
        for yy in y..y + h {
            for xx in x..x + w {
                self.set(xx as i64, yy as i64, c);
            }
        }
    }
    /// One-pixel outline just outside the box `(x, y, w, h)`.
    fn frame(&mut self, x: usize, y: usize, w: usize, h: usize, c: Rgb) {
        let (x0, y0, x1, y1) = (x as i64 - 1, y as i64 - 1, (x + w) as i64, (y + h) as i64);
        for xx in x0..=x1 {
            self.set(xx, y0, c);
            self.set(xx, y1, c);
        }
        for yy in y0..=y1 {
            self.set(x0, yy, c);
            self.set(x1, yy, c);
        }
    }
    fn line(&mut self, (x0, y0): (f64, f64), (x1, y1): (f64, f64), c: Rgb, thick: bool) {
        let n = (x1 - x0).abs().max((y1 - y0).abs()).ceil().clamp(1.0, 1e5) as usize;
        for i in 0..=n {
            let t = i as f64 / n as f64;
            let (x, y) = (
                (x0 + t * (x1 - x0)).round() as i64,
                (y0 + t * (y1 - y0)).round() as i64,
            );
            self.set(x, y, c);
            if thick {
                self.set(x + 1, y, c);
                self.set(x, y + 1, c);
            }
        }
    }
    /// Draws `s` with its top-left corner at `(x, y)`.
    fn text(&mut self, x: usize, y: usize, s: &str, c: Rgb) {
        for (k, ch) in s.chars().enumerate() {
            let g = glyph(ch);
            let drop = if DESCENDERS.contains(ch) { 2 } else { 0 };
            for (r, bits) in g.iter().enumerate() {
                let r = r + drop;
                for col in 0..5 {
                    if bits & (0x10 >> col) != 0 {
                        let (px, py) = (x + k * CW + col * FS, y + r * FS);
                        self.rect(px, py, FS, FS, c);
                    }
                }
            }
        }
    }
}

fn glyph(ch: char) -> &'static [u8; 7] {
    let i = match ch {
        ' '..='~' => ch as usize - 32,
        'µ' | 'μ' => 95,
        '°' => 96,
        _ => '?' as usize - 32,
    };
    &FONT[i]
}

fn text_w(s: &str) -> usize {
    s.chars().count() * CW
}

/// Formats a label value with about 3 significant digits.
fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return "nan".into();
    }
    let a = v.abs();
    if a == 0.0 || a < 1e-12 {
        return "0".into();
    }
    if (1e-3..1e5).contains(&a) {
        let dec = (2 - a.log10().floor() as i64).clamp(0, 6) as usize;
        let s = format!("{v:.dec$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    } else {
        let s = format!("{v:.2e}");
        match s.split_once('e') {
            Some((m, e)) if m.contains('.') => {
                format!("{}e{e}", m.trim_end_matches('0').trim_end_matches('.'))
            }
            _ => s,
        }
    }
}

fn lerp(a: Rgb, b: Rgb, t: f32) -> Rgb {
    let f = |i: usize| (a[i] as f32 + (b[i] as f32 - a[i] as f32) * t).round() as u8;
    [f(0), f(1), f(2)]
}

fn ramp(stops: &[Rgb], t: f32) -> Rgb {
    let t = t.clamp(0.0, 1.0) * (stops.len() - 1) as f32;
    let i = (t.floor() as usize).min(stops.len() - 2);
    lerp(stops[i], stops[i + 1], t - i as f32)
}

/// Blue (-1) - white (0) - red (+1).
fn diverging(t: f32) -> Rgb {
    if !t.is_finite() {
        return GREY;
    }
    const NEG: [Rgb; 3] = [WHITE, [67, 147, 195], [5, 48, 97]];
    const POS: [Rgb; 3] = [WHITE, [214, 96, 77], [103, 0, 31]];
    if t < 0.0 {
        ramp(&NEG, -t)
    } else {
        ramp(&POS, t)
    }
}

/// Viridis-like, 0 (dark purple) to 1 (yellow).
fn sequential(t: f32) -> Rgb {
    const V: [Rgb; 9] = [
        [68, 1, 84],
        [71, 44, 122],
        [59, 81, 139],
        [44, 113, 142],
        [33, 144, 141],
        [39, 173, 129],
        [92, 200, 99],
        [170, 220, 50],
        [253, 231, 37],
    ];
    if t.is_finite() {
        ramp(&V, t)
    } else {
        GREY
    }
}

/// HSV with full saturation: `hue` in radians (0 = red), `value` in [0, 1].
fn hsv(hue: f32, value: f32) -> Rgb {
    if !hue.is_finite() || !value.is_finite() {
        return GREY;
    }
    let h = hue.rem_euclid(std::f32::consts::TAU) / std::f32::consts::TAU * 6.0;
    let v = value.clamp(0.0, 1.0);
    let x = 1.0 - ((h % 2.0) - 1.0).abs();
    let (r, g, b) = match h as u32 {
        0 => (1.0, x, 0.0),
        1 => (x, 1.0, 0.0),
        2 => (0.0, 1.0, x),
        3 => (0.0, x, 1.0),
        4 => (x, 0.0, 1.0),
        _ => (1.0, 0.0, x),
    };
    let c = |u: f32| (u * v * 255.0).round() as u8;
    [c(r), c(g), c(b)]
}

fn check_len(op: &'static str, len: usize, h: usize, w: usize) -> Result<()> {
    if h == 0 || w == 0 || h.checked_mul(w) != Some(len) {
        return Err(Error::arg(op, format!("{len} values for a {h}x{w} image")));
    }
    Ok(())
}

/// Integer upscaling factor so that the image is about `target` pixels wide (never so tall
/// that it passes 1536 rows).
fn upscale(h: usize, w: usize, target: usize) -> usize {
    let mut k = target.div_ceil(w).max(1);
    while k > 1 && h * k > 1536 {
        k -= 1;
    }
    k
}

/// Writes the canvas to `<path>.partial`, then renames it to `path`.
fn save(path: &Path, c: &Canvas) -> Result<()> {
    let (Ok(w), Ok(h)) = (u32::try_from(c.w), u32::try_from(c.h)) else {
        return Err(Error::arg("render", "picture too large for PNG"));
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".partial");
    let tmp = PathBuf::from(tmp);
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let enc_err = |e: png::EncodingError| match e {
        png::EncodingError::IoError(s) => io(s),
        e => Error::Format {
            path: path.to_path_buf(),
            msg: format!("PNG encoding: {e}"),
        },
    };
    let write = || -> Result<()> {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(io)?);
        {
            let mut enc = png::Encoder::new(&mut out, w, h);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            let mut wr = enc.write_header().map_err(enc_err)?;
            wr.write_image_data(&c.px).map_err(enc_err)?;
            wr.finish().map_err(enc_err)?;
        }
        out.flush().map_err(io)
    };
    if let Err(e) = write() {
        std::fs::remove_file(&tmp).ok();
        return Err(e);
    }
    std::fs::rename(&tmp, path).map_err(io)
}

/// Colour range `(lo, hi)` of a panel.
fn panel_range(p: &Panel) -> (f32, f32) {
    let lim = p.limit.filter(|l| l.is_finite() && *l > 0.0);
    match p.kind {
        MapKind::Diverging => {
            let l = lim.unwrap_or_else(|| shared_limit(&[p.data]));
            (-l, l)
        }
        MapKind::Sequential => {
            if let Some(l) = lim {
                return (0.0, l);
            }
            let fin = p.data.iter().filter(|v| v.is_finite());
            let lo = fin.clone().fold(f32::INFINITY, |a, &b| a.min(b));
            let hi = fin.fold(f32::NEG_INFINITY, |a, &b| a.max(b));
            if !(lo.is_finite() && hi.is_finite()) {
                (0.0, 1.0)
            } else if hi > lo {
                (lo, hi)
            } else {
                let d = (lo.abs() * 0.1).max(0.5);
                (lo - d, hi + d)
            }
        }
    }
}

fn colour(kind: MapKind, lo: f32, hi: f32, v: f32) -> Rgb {
    match kind {
        MapKind::Diverging => diverging(v / hi),
        MapKind::Sequential => sequential((v - lo) / (hi - lo)),
    }
}

/// Geometry of one panel: upscale factor, image size, bar height, labels, outer size.
struct Layout {
    k: usize,
    img_w: usize,
    img_h: usize,
    bar_h: usize,
    labels: [String; 3],
    label_w: usize,
    width: usize,
    height: usize,
    lo: f32,
    hi: f32,
}

fn layout(p: &Panel, target: usize) -> Layout {
    let k = upscale(p.h, p.w, target);
    let (img_w, img_h) = (p.w * k, p.h * k);
    let bar_h = img_h.max(BAR_MIN_H);
    let (lo, hi) = panel_range(p);
    let mid = if p.kind == MapKind::Diverging {
        0.0
    } else {
        (lo + hi) / 2.0
    };
    let lab = |v: f32| {
        let s = fmt_num(v as f64 * p.scale);
        if p.unit.is_empty() {
            s
        } else {
            format!("{s} {}", p.unit)
        }
    };
    let labels = [lab(hi), lab(mid), lab(lo)];
    let label_w = labels.iter().map(|s| text_w(s)).max().unwrap_or(0);
    let width =
        (MARGIN + img_w + BAR_GAP + BAR_W + 6 + label_w + MARGIN).max(2 * MARGIN + text_w(p.title));
    let height = MARGIN + CH + 10 + bar_h + MARGIN;
    Layout {
        k,
        img_w,
        img_h,
        bar_h,
        labels,
        label_w,
        width,
        height,
        lo,
        hi,
    }
}

fn draw_panel(c: &mut Canvas, x0: usize, p: &Panel, l: &Layout) {
    c.text(x0 + MARGIN, MARGIN, p.title, BLACK);
    let (left, top) = (x0 + MARGIN, MARGIN + CH + 10);
    for r in 0..p.h {
        for col in 0..p.w {
            let rgb = colour(p.kind, l.lo, l.hi, p.data[r * p.w + col]);
            c.rect(left + col * l.k, top + r * l.k, l.k, l.k, rgb);
        }
    }
    c.frame(left, top, l.img_w, l.img_h, FRAME);
    let bx = left + l.img_w + BAR_GAP;
    for i in 0..l.bar_h {
        let t = 1.0 - i as f32 / (l.bar_h - 1).max(1) as f32;
        let rgb = colour(p.kind, l.lo, l.hi, l.lo + t * (l.hi - l.lo));
        c.rect(bx, top + i, BAR_W, 1, rgb);
    }
    c.frame(bx, top, BAR_W, l.bar_h, FRAME);
    for (j, s) in l.labels.iter().enumerate() {
        let ty = top + j * (l.bar_h - 1) / 2;
        c.rect(bx + BAR_W, ty, 4, 1, FRAME);
        c.text(bx + BAR_W + 6, ty.saturating_sub(CH / 2), s, BLACK);
    }
    debug_assert!(bx + BAR_W + 6 + l.label_w <= x0 + l.width);
}

/// Several panels side by side (e.g. measured | model | residual), each with its own title and
/// colour bar; panels that should share a colour scale get the same `limit` (see
/// [`shared_limit`]).
pub fn write_panels(path: &Path, panels: &[Panel]) -> Result<()> {
    if panels.is_empty() {
        return Err(Error::arg("write_panels", "no panels"));
    }
    for p in panels {
        check_len("write_panels", p.data.len(), p.h, p.w)?;
    }
    let target = if panels.len() == 1 { 384 } else { 256 };
    let lays: Vec<Layout> = panels.iter().map(|p| layout(p, target)).collect();
    let width = lays.iter().map(|l| l.width).sum();
    let height = lays.iter().map(|l| l.height).max().unwrap_or(1);
    let mut c = Canvas::new(width, height);
    let mut x0 = 0;
    for (p, l) in panels.iter().zip(&lays) {
        draw_panel(&mut c, x0, p, l);
        x0 += l.width;
    }
    save(path, &c)
}

/// Diverging colour map (blue-white-red, symmetric about 0 with limit max|v| unless given)
/// with a vertical colour bar and labelled ticks (min, 0, max with `unit`), and a title line.
/// `scale` multiplies values for the labels only (e.g. 1e3 for T -> mT).
#[allow(clippy::too_many_arguments)]
pub fn write_scalar_map(
    path: &Path,
    data: &[f32],
    h: usize,
    w: usize,
    title: &str,
    unit: &str,
    scale: f64,
    limit: Option<f32>,
) -> Result<()> {
    let kind = MapKind::Diverging;
    let p = Panel {
        data,
        h,
        w,
        title,
        unit,
        scale,
        kind,
        limit,
    };
    write_panels(path, &[p])
}

/// Sequential (viridis-like) colour map over `[min, max]` of the data, for images or phase,
/// with the same colour bar (min, middle, max) and title as [`write_scalar_map`].
pub fn write_sequential_map(
    path: &Path,
    data: &[f32],
    h: usize,
    w: usize,
    title: &str,
    unit: &str,
    scale: f64,
) -> Result<()> {
    let kind = MapKind::Sequential;
    let p = Panel {
        data,
        h,
        w,
        title,
        unit,
        scale,
        kind,
        limit: None,
    };
    write_panels(path, &[p])
}

/// Radius of the colour-wheel legend.
const WHEEL_R: usize = 56;

/// Vector field `(vx, vy)` as a colour wheel: hue = direction `atan2(vy, vx)` (red = +x;
/// +y points DOWN the image since the row index is y), brightness = |v| / max |v| (black = 0),
/// non-finite grey; a legend wheel is drawn beside the image, and the title above.
pub fn write_colour_wheel(
    path: &Path,
    vx: &[f32],
    vy: &[f32],
    h: usize,
    w: usize,
    title: &str,
) -> Result<()> {
    check_len("write_colour_wheel", vx.len(), h, w)?;
    check_len("write_colour_wheel", vy.len(), h, w)?;
    let mag = |i: usize| (vx[i] * vx[i] + vy[i] * vy[i]).sqrt();
    let mmax = (0..h * w)
        .map(mag)
        .filter(|m| m.is_finite())
        .fold(0f32, f32::max);
    let mmax = if mmax > 0.0 { mmax } else { 1.0 };
    let k = upscale(h, w, 384);
    let (img_w, img_h) = (w * k, h * k);
    let captions = ["hue: direction", "bright: |v|"];
    let cap_w = captions.iter().map(|s| text_w(s)).max().unwrap_or(0);
    let legend_w = (2 * WHEEL_R + 6 + text_w("+x")).max(cap_w);
    let legend_h = 2 * WHEEL_R + 8 + CH + 12 + 2 * (CH + 6);
    let width = (MARGIN + img_w + 2 * MARGIN + legend_w + MARGIN).max(2 * MARGIN + text_w(title));
    let top = MARGIN + CH + 10;
    let mut c = Canvas::new(width, top + img_h.max(legend_h) + MARGIN);
    c.text(MARGIN, MARGIN, title, BLACK);
    for r in 0..h {
        for col in 0..w {
            let i = r * w + col;
            let rgb = if vx[i].is_finite() && vy[i].is_finite() {
                hsv(vy[i].atan2(vx[i]), mag(i) / mmax)
            } else {
                GREY
            };
            c.rect(MARGIN + col * k, top + r * k, k, k, rgb);
        }
    }
    c.frame(MARGIN, top, img_w, img_h, FRAME);
    let (cx, cy) = (MARGIN + img_w + 2 * MARGIN + WHEEL_R, top + WHEEL_R);
    let rr = WHEEL_R as f32;
    for dy in -(WHEEL_R as i64)..=WHEEL_R as i64 {
        for dx in -(WHEEL_R as i64)..=WHEEL_R as i64 {
            let r = ((dx * dx + dy * dy) as f32).sqrt();
            if r <= rr {
                let rgb = hsv((dy as f32).atan2(dx as f32), r / rr);
                c.set(cx as i64 + dx, cy as i64 + dy, rgb);
            }
        }
    }
    c.text(cx + WHEEL_R + 6, cy - CH / 2, "+x", BLACK);
    c.text(cx - CW, cy + WHEEL_R + 8, "+y", BLACK);
    let mut y = cy + WHEEL_R + 8 + CH + 12;
    for s in captions {
        c.text(cx - WHEEL_R, y, s, BLACK);
        y += CH + 6;
    }
    save(path, &c)
}

/// About `n` round tick positions (1, 2, 5 x 10^k steps) covering `[lo, hi]`.
fn nice_ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let raw = (hi - lo) / n.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let step = mag
        * if f < 1.5 {
            1.0
        } else if f < 3.0 {
            2.0
        } else if f < 7.0 {
            5.0
        } else {
            10.0
        };
    let mut t = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while t <= hi + step * 1e-9 && out.len() < 50 {
        out.push(if t.abs() < step * 1e-9 { 0.0 } else { t });
        t += step;
    }
    out
}

/// `[lo, hi]` of finite values, padded by `pad` of the span (or ±0.5 if flat; [0, 1] if none).
fn span(v: impl Iterator<Item = f64>, pad: f64) -> (f64, f64) {
    let (lo, hi) = v.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
        (a.min(x), b.max(x))
    });
    if !(lo.is_finite() && hi.is_finite()) {
        (0.0, 1.0)
    } else if hi > lo {
        (lo - pad * (hi - lo), hi + pad * (hi - lo))
    } else {
        (lo - 0.5, hi + 0.5)
    }
}

/// Line plot of `y` against `x` (e.g. loss vs iteration) with axes, tick labels and a log10 y
/// axis when `log_y` (non-positive values are then skipped). Non-finite points break the line;
/// with no finite point the axes are drawn with a note.
pub fn write_line_plot(
    path: &Path,
    x: &[f64],
    y: &[f64],
    title: &str,
    xlabel: &str,
    ylabel: &str,
    log_y: bool,
) -> Result<()> {
    if x.len() != y.len() {
        let msg = format!("{} x values but {} y values", x.len(), y.len());
        return Err(Error::arg("write_line_plot", msg));
    }
    let pts: Vec<Option<(f64, f64)>> = x
        .iter()
        .zip(y)
        .map(|(&a, &b)| {
            let b = match (log_y, b > 0.0) {
                (false, _) => b,
                (true, true) => b.log10(),
                (true, false) => f64::NAN,
            };
            (a.is_finite() && b.is_finite()).then_some((a, b))
        })
        .collect();
    let valid = || pts.iter().flatten();
    let (x0, x1) = span(valid().map(|p| p.0), 0.0);
    let (y0, y1) = span(valid().map(|p| p.1), 0.05);
    let decades: Vec<f64> = (y0.ceil() as i64..=y1.floor() as i64)
        .map(|d| d as f64)
        .collect();
    let yticks = if log_y && decades.len() >= 2 {
        let every = decades.len().div_ceil(8);
        decades.into_iter().step_by(every).collect()
    } else {
        nice_ticks(y0, y1, 5)
    };
    let ylab = |t: f64| {
        if !log_y {
            fmt_num(t)
        } else if t.fract() == 0.0 {
            format!("1e{t}")
        } else {
            fmt_num(10f64.powf(t))
        }
    };
    let ylabels: Vec<String> = yticks.iter().map(|&t| ylab(t)).collect();
    let ylw = ylabels.iter().map(|s| text_w(s)).max().unwrap_or(0);
    let (w, h) = (640usize, 440usize);
    let left = MARGIN + ylw + 10;
    let right = w - MARGIN - 30;
    let top = MARGIN + CH + 10 + CH + 10;
    let bottom = h - MARGIN - CH - 10 - CH - 10;
    let mut c = Canvas::new(w, h);
    c.text(MARGIN, MARGIN, title, BLACK);
    c.text(MARGIN, MARGIN + CH + 10, ylabel, BLACK);
    let (pw, ph) = ((right - left) as f64, (bottom - top) as f64);
    let px = |v: f64| left as f64 + (v - x0) / (x1 - x0) * pw;
    let py = |v: f64| bottom as f64 - (v - y0) / (y1 - y0) * ph;
    let grid = [225, 225, 225];
    for (t, s) in yticks.iter().zip(&ylabels) {
        let yy = py(*t).round() as usize;
        c.rect(left, yy, right - left, 1, grid);
        c.rect(left - 5, yy, 5, 1, BLACK);
        c.text(left - 8 - text_w(s), yy.saturating_sub(CH / 2), s, BLACK);
    }
    for t in nice_ticks(x0, x1, 6) {
        let xx = px(t).round() as usize;
        let s = fmt_num(t);
        c.rect(xx, top, 1, bottom - top, grid);
        c.rect(xx, bottom, 1, 5, BLACK);
        c.text(xx.saturating_sub(text_w(&s) / 2), bottom + 8, &s, BLACK);
    }
    c.frame(left, top, right - left, bottom - top, BLACK);
    let xl = ((left + right) / 2).saturating_sub(text_w(xlabel) / 2);
    c.text(xl.max(MARGIN), h - MARGIN - CH, xlabel, BLACK);
    let blue = [31, 119, 180];
    let n_valid = valid().count();
    for pair in pts.windows(2) {
        if let [Some(a), Some(b)] = pair {
            c.line((px(a.0), py(a.1)), (px(b.0), py(b.1)), blue, true);
        }
    }
    if n_valid == 1 {
        if let Some(p) = valid().next() {
            let (xx, yy) = (px(p.0) as usize, py(p.1) as usize);
            c.rect(xx.saturating_sub(2), yy.saturating_sub(2), 5, 5, blue);
        }
    } else if n_valid == 0 {
        let s = "no finite data";
        c.text((left + right - text_w(s)) / 2, (top + bottom) / 2, s, GREY);
    }
    save(path, &c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;

    fn tmp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("magprior-render-{}-{name}", std::process::id()))
    }

    /// Decodes an RGB PNG: (width, height, pixels).
    fn decode(p: &Path) -> (usize, usize, Vec<u8>) {
        let mut r = png::Decoder::new(std::io::BufReader::new(File::open(p).unwrap()))
            .read_info()
            .unwrap();
        let mut buf = vec![0; r.output_buffer_size().unwrap()];
        let info = r.next_frame(&mut buf).unwrap();
        assert_eq!(info.color_type, png::ColorType::Rgb);
        (info.width as usize, info.height as usize, buf)
    }

    fn px(img: &(usize, usize, Vec<u8>), x: usize, y: usize) -> Rgb {
        let i = (y * img.0 + x) * 3;
        [img.2[i], img.2[i + 1], img.2[i + 2]]
    }

    /// Centre of data pixel (row, col) in a single-panel picture upscaled by `k`.
    fn at(k: usize, row: usize, col: usize) -> (usize, usize) {
        (MARGIN + col * k + k / 2, MARGIN + CH + 10 + row * k + k / 2)
    }

    /// Keeps the pictures (for looking at them) when MAGPRIOR_KEEP_PICTURES is set.
    fn done(p: &Path) {
        if std::env::var_os("MAGPRIOR_KEEP_PICTURES").is_none() {
            std::fs::remove_file(p).ok();
        }
    }

    fn field(h: usize, w: usize) -> Vec<f32> {
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

    #[test]
    fn scalar_map_size_white_zero_and_grey_nan() {
        let (h, w) = (64, 64);
        let mut d = vec![0f32; h * w];
        for (i, v) in d.iter_mut().enumerate() {
            if i % w >= 32 {
                *v = 1.0;
            }
        }
        d[0] = f32::NAN;
        let p = tmp("scalar.png");
        write_scalar_map(&p, &d, h, w, "B_z", "mT", 1e3, None).unwrap();
        assert!(!p.with_extension("png.partial").exists());
        let img = decode(&p);
        done(&p);
        assert!(img.0 >= 384 && img.1 >= 384, "{}x{}", img.0, img.1);
        let k = 6;
        let (x, y) = at(k, 10, 10);
        assert_eq!(px(&img, x, y), WHITE);
        let (x, y) = at(k, 10, 50);
        let red = px(&img, x, y);
        assert!(red[0] > 80 && red[1] < 40 && red[2] < 60, "{red:?}");
        let (x, y) = at(k, 0, 0);
        assert_eq!(px(&img, x, y), GREY);
        assert_eq!(diverging(0.0), WHITE);
        assert!(diverging(-1.0)[2] > diverging(-1.0)[0]);
    }

    #[test]
    fn sequential_map_and_panels_sizes() {
        let (h, w) = (40, 50);
        let d: Vec<f32> = (0..h * w).map(|i| (i as f32 * 0.01).sin().abs()).collect();
        let p = tmp("seq.png");
        write_sequential_map(&p, &d, h, w, "phase", "rad", 1.0).unwrap();
        let img = decode(&p);
        done(&p);
        assert_eq!(upscale(h, w, 384), 8);
        assert!(img.0 >= 400 && img.1 >= 320 + MARGIN + CH);
        let m = field(32, 32);
        let r: Vec<f32> = m.iter().map(|v| v * 0.05).collect();
        let lim = shared_limit(&[&m]);
        let mk = |data, title, limit| Panel {
            data,
            h: 32,
            w: 32,
            title,
            unit: "mT",
            scale: 1e3,
            kind: MapKind::Diverging,
            limit,
        };
        let panels = [
            mk(&m, "measured", Some(lim)),
            mk(&m, "model", Some(lim)),
            mk(&r, "residual", None),
        ];
        let p = tmp("panels.png");
        write_panels(&p, &panels).unwrap();
        let img = decode(&p);
        done(&p);
        let one = layout(&panels[0], 256);
        assert_eq!(one.k, 8);
        assert!(img.0 >= 3 * 256 && img.1 == one.height);
        assert!(write_panels(&p, &[]).is_err());
        let e = write_scalar_map(&p, &m, 31, 32, "x", "", 1.0, None).unwrap_err();
        assert!(matches!(e, Error::BadArgument { .. }));
    }

    #[test]
    fn colour_wheel_red_for_plus_x_black_for_zero() {
        let (h, w) = (64, 64);
        let vx: Vec<f32> = (0..h * w)
            .map(|i| if i < h * w / 2 { 1.0 } else { 0.0 })
            .collect();
        let vy = vec![0f32; h * w];
        let p = tmp("wheel.png");
        write_colour_wheel(&p, &vx, &vy, h, w, "m").unwrap();
        let img = decode(&p);
        done(&p);
        assert!(img.0 >= 384 + 2 * WHEEL_R);
        let (x, y) = at(6, 5, 5);
        assert_eq!(px(&img, x, y), [255, 0, 0]);
        let (x, y) = at(6, 60, 5);
        assert_eq!(px(&img, x, y), BLACK);
        // +y (down the image) is hue 90 degrees: yellow-green; -x is cyan.
        let down = hsv(std::f32::consts::FRAC_PI_2, 1.0);
        assert!(down[1] == 255 && down[2] == 0 && down[0] < 255);
        assert_eq!(hsv(std::f32::consts::PI, 1.0), [0, 255, 255]);
    }

    #[test]
    fn line_plot_linear_log_and_bad_input() {
        let x: Vec<f64> = (0..200).map(f64::from).collect();
        let y: Vec<f64> = x.iter().map(|i| 0.9 * (-i / 30.0).exp() + 1e-4).collect();
        for log_y in [false, true] {
            let p = tmp(&format!("plot-{log_y}.png"));
            write_line_plot(&p, &x, &y, "training loss", "iteration", "loss", log_y).unwrap();
            let img = decode(&p);
            done(&p);
            assert_eq!((img.0, img.1), (640, 440));
        }
        let p = tmp("plot-bad.png");
        assert!(write_line_plot(&p, &x, &y[1..], "", "", "", false).is_err());
        write_line_plot(&p, &[1.0], &[f64::NAN], "empty", "x", "y", true).unwrap();
        done(&p);
    }

    #[test]
    fn number_labels() {
        assert_eq!(fmt_num(0.0), "0");
        assert_eq!(fmt_num(1.25), "1.25");
        assert_eq!(fmt_num(-3.0), "-3");
        assert_eq!(fmt_num(123.4), "123");
        assert_eq!(fmt_num(0.0123), "0.0123");
        assert_eq!(fmt_num(2.5e-7), "2.5e-7");
        assert_eq!(fmt_num(1e6), "1e6");
        let ticks: Vec<String> = nice_ticks(0.0, 1.0, 5).into_iter().map(fmt_num).collect();
        assert_eq!(ticks, ["0", "0.2", "0.4", "0.6", "0.8", "1"]);
        let ticks: Vec<String> = nice_ticks(-37.0, 912.0, 6)
            .into_iter()
            .map(fmt_num)
            .collect();
        assert_eq!(ticks, ["0", "200", "400", "600", "800"]);
    }

    #[test]
    fn unwritable_path_names_the_file() {
        let p = Path::new("/nonexistent-dir/picture.png");
        let e = write_sequential_map(p, &[1.0], 1, 1, "", "", 1.0).unwrap_err();
        assert!(e.to_string().contains("picture.png"), "{e}");
    }
}
