//! Microscope images with the calibration their files record (DM3/DM4 `Dimension` tags,
//! ImageJ / OME TIFF resolution): one pixel size for the reconstruction, checked against
//! `--scale` and across the files of a series.

use anyhow::{bail, Result};
use magprior::io::load::load_array;
use std::path::{Path, PathBuf};

/// Relative difference beyond which a `--scale` and a file's calibration disagree.
const SCALE_TOLERANCE: f64 = 0.01;

/// An image or a stack of frames as read, with its file's (square) pixel size.
pub struct Calibrated {
    /// The file.
    pub path: PathBuf,
    /// Frames (one for a 2-D image), each (h, w) row-major.
    pub frames: Vec<Vec<f32>>,
    /// Rows.
    pub h: usize,
    /// Columns.
    pub w: usize,
    /// Pixel size (m) when the file records one.
    pub pixel_m: Option<f64>,
    /// Where the calibration came from (file fields), for logs.
    pub source: Option<String>,
}

/// Reads an (H, W) image or an (F, H, W) stack with its calibration. Non-square pixels are
/// refused (the phase solvers assume square pixels).
pub fn load(path: &Path) -> Result<Calibrated> {
    let loaded = load_array(path)?;
    let (n, h, w) = match *loaded.tensor.shape() {
        [h, w] => (1, h, w),
        [n, h, w] => (n, h, w),
        ref s => bail!(
            "{}: expected an (H, W) image or an (F, H, W) stack, got shape {s:?}",
            path.display()
        ),
    };
    if h < 2 || w < 2 || n == 0 {
        bail!("{}: images must be at least 2x2", path.display());
    }
    let cal = &loaded.calibration;
    let source = cal.source.clone();
    let pixel_m = match (cal.pixel_x, cal.pixel_y) {
        (Some(x), Some(y)) if (x - y).abs() > 1e-3 * x.max(y) => bail!(
            "{}: non-square pixels (x {:.4} nm, y {:.4} nm{}); the phase reconstruction needs square pixels: resample the image to one pixel size first",
            path.display(),
            x * 1e9,
            y * 1e9,
            source.as_deref().map(|s| format!(", from {s}")).unwrap_or_default()
        ),
        (Some(x), _) | (None, Some(x)) => Some(x),
        (None, None) => None,
    };
    let v = loaded.tensor.to_vec()?;
    Ok(Calibrated {
        path: path.to_path_buf(),
        frames: v.chunks(h * w).map(|c| c.to_vec()).collect(),
        h,
        w,
        pixel_m,
        source,
    })
}

/// The pixel size (m) for a reconstruction from `files`: `--scale` when given (an error when
/// it disagrees with a file's calibration by more than 1 % unless `force`), else the files'
/// common calibration (an error when two files differ), else `None` (the caller's default).
/// Prints where the scale came from unless `quiet`.
pub fn resolve_scale(
    flag: Option<f64>,
    force: bool,
    files: &[&Calibrated],
    quiet: bool,
) -> Result<Option<f64>> {
    let calibrated: Vec<&&Calibrated> = files.iter().filter(|f| f.pixel_m.is_some()).collect();
    let file_scale = match calibrated.first() {
        None => None,
        Some(first) => {
            let p0 = first.pixel_m.unwrap_or(f64::NAN);
            for f in &calibrated[1..] {
                let p = f.pixel_m.unwrap_or(f64::NAN);
                if (p - p0).abs() > 1e-3 * p0.abs() {
                    bail!(
                        "{}: pixel size {:.4} nm differs from {}'s {:.4} nm: the images of one series must share one scale",
                        f.path.display(),
                        p * 1e9,
                        first.path.display(),
                        p0 * 1e9
                    );
                }
            }
            Some((p0, *first))
        }
    };
    match (flag, file_scale) {
        (Some(s), Some((p, f))) if (s - p).abs() > SCALE_TOLERANCE * p && !force => bail!(
            "{}: --scale {:.4} nm disagrees with the file's calibration, {:.4} nm per pixel{}; leave --scale out to use the file's, or add --force-scale to override it",
            f.path.display(),
            s * 1e9,
            p * 1e9,
            f.source.as_deref().map(|s| format!(" (from {s})")).unwrap_or_default()
        ),
        (Some(s), Some((p, f))) => {
            if !quiet && (s - p).abs() > SCALE_TOLERANCE * p {
                eprintln!(
                    "note: --scale {:.4} nm overrides {}'s calibration ({:.4} nm, --force-scale)",
                    s * 1e9,
                    f.path.display(),
                    p * 1e9
                );
            }
            Ok(Some(s))
        }
        (Some(s), None) => Ok(Some(s)),
        (None, Some((p, f))) => {
            if !quiet {
                eprintln!(
                    "pixel size {:.4} nm from {}{}",
                    p * 1e9,
                    f.path.display(),
                    f.source.as_deref().map(|s| format!(" ({s})")).unwrap_or_default()
                );
            }
            Ok(Some(p))
        }
        (None, None) => {
            if !quiet {
                eprintln!(
                    "note: the input records no pixel size and --scale is not given: 4 nm per pixel assumed"
                );
            }
            Ok(None)
        }
    }
}
