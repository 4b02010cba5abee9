//! Loading arrays as tensors from any supported file by extension, on top of [`super::read`]:
//! `.npy`, text matrices, `.tif`/`.tiff`, `.png`, `.dm3`/`.dm4`, `.ovf`/`.omf`.

use super::array::{read, FileKind};
use super::calibration::Calibration;
use super::ovf;
use crate::engine::tensor::Tensor;
use crate::error::{Error, Result};
use std::path::Path;

/// An array read from a file, plus what the file says about its calibration.
pub struct Loaded {
    /// The data (real).
    pub tensor: Tensor,
    /// OVF files only: the cell size (m), (x, y). `Some` exactly when the file is an OVF
    /// (callers use it to tell an OVF magnetisation from other inputs); the pixel size of
    /// other formats is in `calibration`.
    pub cell: Option<(f64, f64)>,
    /// Pixel size per axis (TIFF, DigitalMicrograph, OVF), its source, and for OVF the value
    /// units and multiplier: an OVF in A/m is a magnetisation as it is, a unitless one holds
    /// unit vectors to be scaled by Ms.
    pub calibration: Calibration,
}

/// Reads a real array: `.npy` as stored; text matrices as (rows, cols); `.tif`/`.tiff` and
/// `.dm3`/`.dm4` as (H, W) or (frames, H, W); `.png` as (H, W) luminance in [0, 1]; `.ovf` as
/// (3, ny, nx) vectors (z-averaged, as stored: not multiplied by the `valuemultiplier`), cell
/// size recorded. Non-finite values are an error naming the file.
pub fn load_array(path: &Path) -> Result<Loaded> {
    let loaded = load_array_with_nan(path)?;
    if let Some(i) = loaded.tensor.to_vec()?.iter().position(|v| !v.is_finite()) {
        return Err(Error::Format {
            path: path.to_path_buf(),
            msg: format!(
                "non-finite value (NaN or inf) at element {i} (a B_NV map's scan dropouts can be left out of the fit with --ignore-nan)"
            ),
        });
    }
    Ok(loaded)
}

/// [`load_array`] that keeps NaN / inf values (scan dropouts, to be masked by the caller).
pub fn load_array_with_nan(path: &Path) -> Result<Loaded> {
    let loaded = if FileKind::from_path(path) == Some(FileKind::Ovf) {
        let o = ovf::read_ovf(path)?;
        let data = o.to_chw();
        Loaded {
            tensor: Tensor::from_shape_vec(&[3, o.ny, o.nx], data)?,
            cell: Some((o.step[0], o.step[1])),
            calibration: o.calibration(),
        }
    } else {
        let a = read(path)?;
        Loaded {
            tensor: Tensor::from_shape_vec(&a.shape, a.data)?,
            cell: None,
            calibration: a.calibration,
        }
    };
    Ok(loaded)
}
