//! The RGB raster that pictures are drawn on: pixels, rectangles, frames, lines, PNG output.

use super::colour::Rgb;
use crate::error::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// An RGB raster.
pub(super) struct Canvas {
    pub(super) w: usize,
    pub(super) h: usize,
    pub(super) px: Vec<u8>,
}

impl Canvas {
    pub(super) fn new(w: usize, h: usize) -> Self {
        Canvas {
            w,
            h,
            px: vec![255; w * h * 3],
        }
    }
    pub(super) fn set(&mut self, x: i64, y: i64, c: Rgb) {
        if x >= 0 && y >= 0 && (x as usize) < self.w && (y as usize) < self.h {
            let i = (y as usize * self.w + x as usize) * 3;
            self.px[i..i + 3].copy_from_slice(&c);
        }
    }
    pub(super) fn rect(&mut self, x: usize, y: usize, w: usize, h: usize, c: Rgb) {
        for yy in y..y + h {
            for xx in x..x + w {
                self.set(xx as i64, yy as i64, c);
            }
        }
    }
    /// Draws a `cols x rows` grid of colours (row-major) with its top-left corner at `(x, y)`,
    /// each cell as a `k x k` block.
    pub(super) fn blit(&mut self, x: usize, y: usize, cols: usize, k: usize, cells: &[Rgb]) {
        for (i, &rgb) in cells.iter().enumerate() {
            self.rect(x + (i % cols) * k, y + (i / cols) * k, k, k, rgb);
        }
    }
    /// One-pixel outline just outside the box `(x, y, w, h)`.
    pub(super) fn frame(&mut self, x: usize, y: usize, w: usize, h: usize, c: Rgb) {
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
    pub(super) fn line(&mut self, (x0, y0): (f64, f64), (x1, y1): (f64, f64), c: Rgb, thick: bool) {
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
}

/// Writes the canvas to `<path>.partial`, then renames it to `path`.
pub(super) fn save(path: &Path, c: &Canvas) -> Result<()> {
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

/// Outer margin of every panel.
pub(super) const MARGIN: usize = 12;
/// An error unless `len` values fill an `(h, w)` image.
pub(super) fn check_len(op: &'static str, len: usize, h: usize, w: usize) -> Result<()> {
    if h == 0 || w == 0 || h.checked_mul(w) != Some(len) {
        return Err(Error::arg(op, format!("{len} values for a {h}x{w} image")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::write_sequential_map;
    use super::*;

    #[test]
    fn unwritable_path_names_the_file() {
        let p = Path::new("/nonexistent-dir/picture.png");
        let e = write_sequential_map(p, &[1.0], 1, 1, "", "", 1.0).unwrap_err();
        assert!(e.to_string().contains("picture.png"), "{e}");
    }
}
