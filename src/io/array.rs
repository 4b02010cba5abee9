//! One entry point for every input format: [`read`] dispatches by extension and returns the
//! data as f32 with its shape and the [`Calibration`] the file records (pixel size per axis,
//! where it came from, OVF value units and cell size).
//!
//! Axis convention: `x` is the fastest-varying axis (image columns), `y` the rows, `z` the
//! frames of a stack (or the layers of an OVF mesh).

use super::calibration::Calibration;
use super::{dm, image, npy, ovf, text};
use crate::error::{Error, Result};
use std::path::Path;

/// The file formats [`read`] understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// NumPy `.npy`.
    Npy,
    /// Plain-text matrix (`.txt`, `.csv`, `.dat`, `.asc`) as `numpy.savetxt` writes it.
    Text,
    /// TIFF (`.tif`, `.tiff`), including ImageJ and OME-TIFF.
    Tiff,
    /// PNG (`.png`), read as luminance in [0, 1].
    Png,
    /// Gatan DigitalMicrograph 3 (`.dm3`).
    Dm3,
    /// Gatan DigitalMicrograph 4 (`.dm4`).
    Dm4,
    /// OOMMF / mumax3 OVF (`.ovf`, `.omf`).
    Ovf,
}

/// The extensions [`read`] accepts, for error messages.
pub const SUPPORTED_EXTENSIONS: &str =
    ".npy, .txt, .csv, .dat, .asc, .tif, .tiff, .png, .dm3, .dm4, .ovf or .omf";

impl FileKind {
    /// The format of `path`, from its extension (case-insensitive); `None` when unknown.
    pub fn from_path(path: &Path) -> Option<FileKind> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        Some(match ext.as_str() {
            "npy" => FileKind::Npy,
            "txt" | "csv" | "dat" | "asc" => FileKind::Text,
            "tif" | "tiff" => FileKind::Tiff,
            "png" => FileKind::Png,
            "dm3" => FileKind::Dm3,
            "dm4" => FileKind::Dm4,
            "ovf" | "omf" => FileKind::Ovf,
            _ => return None,
        })
    }
}

/// A real array read from a file: f32 values in C order, their shape and the calibration.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    /// The values, row-major (last axis fastest). NaN and infinities as stored.
    pub data: Vec<f32>,
    /// The shape; see [`read`] for each format's axes.
    pub shape: Vec<usize>,
    /// Pixel size and value meaning, as far as the file records them.
    pub calibration: Calibration,
    /// The format the file was read as.
    pub kind: FileKind,
}

/// A complex array read from a file (`.npy` complex64/128, DigitalMicrograph complex images).
#[derive(Debug, Clone, PartialEq)]
pub struct ComplexArray {
    /// Real parts, row-major.
    pub re: Vec<f32>,
    /// Imaginary parts, row-major.
    pub im: Vec<f32>,
    /// The shape.
    pub shape: Vec<usize>,
    /// Pixel size, as far as the file records it.
    pub calibration: Calibration,
    /// The format the file was read as.
    pub kind: FileKind,
}

fn kind_of(path: &Path) -> Result<FileKind> {
    FileKind::from_path(path).ok_or_else(|| {
        let ext = path
            .extension()
            .map(|e| format!("'.{}'", e.to_string_lossy()))
            .unwrap_or_else(|| "without an extension".into());
        Error::format(
            path,
            format!("unsupported file type {ext} (use {SUPPORTED_EXTENSIONS})"),
        )
    })
}

/// Reads any supported file as a real f32 array, by extension:
///
/// - `.npy`: as stored (C order; Fortran-order files are transposed), any real dtype.
/// - `.txt`/`.csv`/`.dat`/`.asc`: a (rows, columns) matrix.
/// - `.tif`/`.tiff`: (H, W), or (frames, H, W) for a multi-page file; pixel size from ImageJ
///   resolution tags + `unit=` or from OME-XML `PhysicalSizeX/Y`.
/// - `.png`: (H, W) luminance in [0, 1].
/// - `.dm3`/`.dm4`: (H, W) or (frames, H, W) with the per-axis `Calibrations`.
/// - `.ovf`/`.omf`: the whole field as (nz, valuedim, ny, nx), values multiplied by the
///   `valuemultiplier`; units, multiplier and cell size in the calibration.
///
/// Complex files are refused (use [`read_complex`]). NaN and infinities are returned as stored.
pub fn read(path: impl AsRef<Path>) -> Result<Array> {
    let path = path.as_ref();
    let kind = kind_of(path)?;
    let complex_refused = || {
        Error::format(
            path,
            "complex array where a real one is expected (read it with io::read_complex)",
        )
    };
    let (data, shape, calibration) = match kind {
        FileKind::Npy => {
            let a = npy::read_npy_array(path)?;
            if a.imag.is_some() {
                return Err(complex_refused());
            }
            (a.data, a.shape, Calibration::default())
        }
        FileKind::Text => {
            let m = text::read_text_matrix(path)?;
            (m.data, vec![m.rows, m.cols], Calibration::default())
        }
        FileKind::Tiff => {
            let (img, cal) = image::read_tiff_calibrated(path)?;
            let shape = image_shape(&img);
            (img.data, shape, cal)
        }
        FileKind::Png => {
            let img = image::read_png_grey(path)?;
            (
                img.data,
                vec![img.height, img.width],
                Calibration::default(),
            )
        }
        FileKind::Dm3 | FileKind::Dm4 => {
            let d = dm::read_dm(path)?;
            let cal = d.calibration();
            match d.data {
                dm::DmData::Real(v) => (v, d.shape, cal),
                dm::DmData::Complex { .. } => return Err(complex_refused()),
            }
        }
        FileKind::Ovf => {
            let f = ovf::read_ovf_field(path)?;
            let cal = f.calibration();
            let shape = vec![f.nz, f.valuedim, f.ny, f.nx];
            (f.to_layers_chw(true), shape, cal)
        }
    };
    Ok(Array {
        data,
        shape,
        calibration,
        kind,
    })
}

/// Reads a complex array (`.npy` complex64/complex128, DigitalMicrograph complex64/128).
/// Real files of any supported format are returned with zero imaginary parts.
pub fn read_complex(path: impl AsRef<Path>) -> Result<ComplexArray> {
    let path = path.as_ref();
    let kind = kind_of(path)?;
    match kind {
        FileKind::Npy => {
            let a = npy::read_npy_array(path)?;
            let im = a.imag.unwrap_or_else(|| vec![0.0; a.data.len()]);
            return Ok(ComplexArray {
                re: a.data,
                im,
                shape: a.shape,
                calibration: Calibration::default(),
                kind,
            });
        }
        FileKind::Dm3 | FileKind::Dm4 => {
            let d = dm::read_dm(path)?;
            let calibration = d.calibration();
            let (re, im) = match d.data {
                dm::DmData::Real(v) => {
                    let n = v.len();
                    (v, vec![0.0; n])
                }
                dm::DmData::Complex { re, im } => (re, im),
            };
            return Ok(ComplexArray {
                re,
                im,
                shape: d.shape,
                calibration,
                kind,
            });
        }
        _ => {}
    }
    let a = read(path)?;
    Ok(ComplexArray {
        im: vec![0.0; a.data.len()],
        re: a.data,
        shape: a.shape,
        calibration: a.calibration,
        kind: a.kind,
    })
}

pub(crate) fn image_shape(img: &image::Image) -> Vec<usize> {
    if img.frames == 1 {
        vec![img.height, img.width]
    } else {
        vec![img.frames, img.height, img.width]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_extension_lists_the_supported_ones() {
        let e = read("/nonexistent/file.xyz").unwrap_err().to_string();
        assert!(
            e.contains("file.xyz") && e.contains(".dm4") && e.contains(".csv"),
            "{e}"
        );
        let e = read("/nonexistent/noext").unwrap_err().to_string();
        assert!(e.contains("without an extension"), "{e}");
    }
}
