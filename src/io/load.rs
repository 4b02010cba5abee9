//! Loading arrays from any supported file by extension: `.npy`, `.tif`/`.tiff`, `.png`, `.ovf`.

use super::{image, npy, ovf};
use crate::error::{Error, Result};
use crate::Tensor;
use std::path::Path;

/// An array read from a file, plus the cell size when the file records one (OVF).
pub struct Loaded {
    /// The data (real).
    pub tensor: Tensor,
    /// Cell size (m) from the file, if any: (x, y).
    pub cell: Option<(f64, f64)>,
}

fn ext(path: &Path) -> String {
    path.extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// Reads a real array: `.npy` as stored; `.tif`/`.tiff` as (H, W) or (frames, H, W); `.png` as
/// (H, W) luminance in [0, 1]; `.ovf` as (3, ny, nx) vectors (z-averaged), cell size recorded.
/// Non-finite values are an error naming the file.
pub fn load_array(path: &Path) -> Result<Loaded> {
    let loaded = match ext(path).as_str() {
        "npy" => Loaded {
            tensor: npy::read_npy(path)?,
            cell: None,
        },
        "tif" | "tiff" => {
            let img = image::read_tiff(path)?;
            let shape = if img.frames == 1 {
                vec![img.height, img.width]
            } else {
                vec![img.frames, img.height, img.width]
            };
            Loaded {
                tensor: Tensor::from_shape_vec(&shape, img.data)?,
                cell: None,
            }
        }
        "png" => {
            let img = image::read_png_grey(path)?;
            Loaded {
                tensor: Tensor::from_shape_vec(&[img.height, img.width], img.data)?,
                cell: None,
            }
        }
        "ovf" | "omf" => {
            let o = ovf::read_ovf(path)?;
            let data = o.to_chw();
            Loaded {
                tensor: Tensor::from_shape_vec(&[3, o.ny, o.nx], data)?,
                cell: Some((o.step[0], o.step[1])),
            }
        }
        other => {
            return Err(Error::Format {
                path: path.to_path_buf(),
                msg: format!("unsupported file type '.{other}' (use .npy, .tif, .png or .ovf)"),
            })
        }
    };
    if let Some(i) = loaded.tensor.to_vec()?.iter().position(|v| !v.is_finite()) {
        return Err(Error::Format {
            path: path.to_path_buf(),
            msg: format!("non-finite value (NaN or inf) at element {i}"),
        });
    }
    Ok(loaded)
}
