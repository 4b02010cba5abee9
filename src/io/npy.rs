//! NumPy `.npy` files (format 1.0-3.0): read f32/f64/f16 (as f32) and c64/c128 (as complex
//! f32), little- or big-endian, C order; write f32 and complex64.

use crate::error::{Error, Result};
use crate::{Tensor, C32};
use std::io::Write;
use std::path::Path;

fn fmt_err(path: &Path, msg: impl Into<String>) -> Error {
    Error::Format {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

/// Parses the header dict: `(descr, fortran_order, shape)`.
fn parse_header(path: &Path, h: &str) -> Result<(String, bool, Vec<usize>)> {
    let field = |key: &str| -> Result<&str> {
        let k = format!("'{key}'");
        let at = h
            .find(&k)
            .ok_or_else(|| fmt_err(path, format!("npy header lacks {k}")))?;
        let rest = h[at + k.len()..].trim_start();
        rest.strip_prefix(':')
            .map(str::trim_start)
            .ok_or_else(|| fmt_err(path, "malformed npy header"))
    };
    let d = field("descr")?;
    let q = d.chars().next().unwrap_or(' ');
    let descr = d[1..]
        .split(q)
        .next()
        .ok_or_else(|| fmt_err(path, "malformed descr"))?
        .to_string();
    let fortran = field("fortran_order")?.starts_with("True");
    let sh = field("shape")?;
    let inner = sh
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| fmt_err(path, "malformed shape"))?;
    let mut shape = Vec::new();
    for part in inner.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        shape.push(
            part.parse::<usize>()
                .map_err(|_| fmt_err(path, format!("bad dimension '{part}'")))?,
        );
    }
    Ok((descr, fortran, shape))
}

/// A real array read from `.npy` as f32 values and its shape (complex files are refused).
pub fn read_npy(path: impl AsRef<Path>) -> Result<Tensor> {
    let path = path.as_ref();
    let (re, im, shape) = read_raw(path)?;
    if im.is_some() {
        return Err(fmt_err(path, "complex array where a real one is expected"));
    }
    Tensor::from_shape_vec(&shape, re)
}

/// Any `.npy` array: real files as real tensors, complex files as complex tensors.
pub fn read_npy_any(path: impl AsRef<Path>) -> Result<Tensor> {
    let path = path.as_ref();
    let (re, im, shape) = read_raw(path)?;
    match im {
        None => Tensor::from_shape_vec(&shape, re),
        Some(im) => Tensor::from_shape_vec_c(
            &shape,
            re.into_iter()
                .zip(im)
                .map(|(a, b)| C32::new(a, b))
                .collect(),
        ),
    }
}

type Raw = (Vec<f32>, Option<Vec<f32>>, Vec<usize>);

fn read_raw(path: &Path) -> Result<Raw> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(fmt_err(path, "not a .npy file (bad magic)"));
    }
    let (hlen, hstart) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(fmt_err(path, format!("unsupported npy version {v}"))),
    };
    let header = bytes
        .get(hstart..hstart + hlen)
        .ok_or_else(|| fmt_err(path, "truncated header"))?;
    let header = std::str::from_utf8(header).map_err(|_| fmt_err(path, "header not text"))?;
    let (descr, fortran, shape) = parse_header(path, header)?;
    if fortran && shape.len() > 1 {
        return Err(fmt_err(
            path,
            "Fortran-order arrays cannot be read; save with C order",
        ));
    }
    let data = &bytes[hstart + hlen..];
    let n: usize = shape.iter().product();
    let (endian, kind) = descr.split_at(1.min(descr.len()));
    let big = endian == ">";
    if !matches!(endian, "<" | ">" | "|" | "=") {
        return Err(fmt_err(path, format!("unsupported dtype '{descr}'")));
    }
    let (width, complex) = match kind {
        "f2" => (2, false),
        "f4" => (4, false),
        "f8" => (8, false),
        "c8" => (4, true),
        "c16" => (8, true),
        _ => {
            return Err(fmt_err(
                path,
                format!("unsupported dtype '{descr}' (need float16/32/64 or complex64/128)"),
            ))
        }
    };
    let count = if complex { 2 * n } else { n };
    if data.len() < count * width {
        return Err(fmt_err(
            path,
            format!(
                "truncated data: {} bytes for shape {shape:?} of {descr}",
                data.len()
            ),
        ));
    }
    let vals: Vec<f32> = data[..count * width]
        .chunks_exact(width)
        .map(|c| {
            let mut b = [0u8; 8];
            b[..width].copy_from_slice(c);
            if big {
                b[..width].reverse();
            }
            match width {
                2 => f16_to_f32(u16::from_le_bytes([b[0], b[1]])),
                4 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
                _ => f64::from_le_bytes(b) as f32,
            }
        })
        .collect();
    if complex {
        let (re, im) = vals.chunks_exact(2).map(|p| (p[0], p[1])).unzip();
        Ok((re, Some(im), shape))
    } else {
        Ok((vals, None, shape))
    }
}

fn f16_to_f32(h: u16) -> f32 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = ((h >> 10) & 0x1f) as i32;
    let frac = (h & 0x3ff) as f32;
    match exp {
        0 => sign * frac * 2f32.powi(-24),
        31 if frac == 0.0 => sign * f32::INFINITY,
        31 => f32::NAN,
        e => sign * (1.0 + frac / 1024.0) * 2f32.powi(e - 15),
    }
}

fn header_bytes(descr: &str, shape: &[usize]) -> Vec<u8> {
    let dims = match shape.len() {
        1 => format!("{},", shape[0]),
        _ => shape
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(", "),
    };
    let mut h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({dims}), }}");
    let total = 10 + h.len() + 1;
    h.push_str(&" ".repeat((64 - total % 64) % 64));
    h.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(h.len() as u16).to_le_bytes());
    out.extend_from_slice(h.as_bytes());
    out
}

/// Writes a real (`<f4`) or complex (`<c8`) tensor to `.npy`, atomically (temp file + rename).
pub fn write_npy(path: impl AsRef<Path>, t: &Tensor) -> Result<()> {
    let path = path.as_ref();
    let mut bytes;
    match t.dtype() {
        crate::DType::F32 => {
            bytes = header_bytes("<f4", t.shape());
            for v in t.to_vec()? {
                bytes.extend_from_slice(&v.to_le_bytes());
            }
        }
        crate::DType::C32 => {
            bytes = header_bytes("<c8", t.shape());
            for z in t.to_vec_c()? {
                bytes.extend_from_slice(&z.re.to_le_bytes());
                bytes.extend_from_slice(&z.im.to_le_bytes());
            }
        }
    }
    write_atomic(path, &bytes)
}

/// Writes `bytes` to a temporary sibling and renames it into place, so no half-written file
/// is ever left at `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension(format!(
        "{}.partial",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    let r = f.write_all(bytes).and_then(|_| f.sync_all());
    if let Err(e) = r.and_then(|_| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn round_trip_real_and_complex_and_scalar() {
        let dir = std::env::temp_dir().join(format!("magprior-npy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = Tensor::from_shape_vec(&[2, 3], vec![1.0, -2.5, 3.0, 0.0, 1e-7, 9.0]).unwrap();
        let c = Tensor::from_shape_vec_c(&[3], vec![C32::new(1.0, -1.0); 3]).unwrap();
        let s = Tensor::scalar(4.5);
        for (name, t) in [("a", &a), ("c", &c), ("s", &s)] {
            let p = dir.join(format!("{name}.npy"));
            write_npy(&p, t).unwrap();
            let back = read_npy_any(&p).unwrap();
            assert_eq!(back.shape(), t.shape());
            assert_eq!(back.dtype(), t.dtype());
        }
        assert_eq!(
            read_npy(dir.join("a.npy")).unwrap().to_vec().unwrap(),
            a.to_vec().unwrap()
        );
        assert!(read_npy(dir.join("c.npy")).is_err());
        std::fs::write(dir.join("bad.npy"), b"hello").unwrap();
        let e = read_npy(dir.join("bad.npy")).unwrap_err().to_string();
        assert!(e.contains("bad.npy") && e.contains("magic"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
    #[test]
    fn f16_decoding() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert!(f16_to_f32(0x7c00).is_infinite());
    }
}
