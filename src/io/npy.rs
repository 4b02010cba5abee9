//! NumPy `.npy` files (format 1.0-3.0). Read: float16/32/64, every integer dtype
//! (`i1`..`i8`, `u1`..`u8`), bool (`b1`), complex64/128; either byte order; C or Fortran order
//! (Fortran-order arrays of any rank are transposed to C order). Values become f32 (64-bit
//! integers above 2^24 lose precision). Write: f32 and complex64, C order.

use crate::error::{Error, Result};
use crate::{Tensor, C32};
use std::io::Write;
use std::path::Path;

/// An array read from a `.npy` file, in C order.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    /// The shape (empty for a 0-d scalar).
    pub shape: Vec<usize>,
    /// The values (real parts for a complex file), C order.
    pub data: Vec<f32>,
    /// Imaginary parts for a complex file, C order.
    pub imag: Option<Vec<f32>>,
    /// The dtype as the header writes it, e.g. `<f8`, `>i2`, `|b1`.
    pub descr: String,
    /// Whether the file stored the array in Fortran (column-major) order.
    pub fortran_order: bool,
}

/// The value of `key` in the header dict (the text after `'key':`).
fn header_field<'a>(path: &Path, h: &'a str, key: &str) -> Result<&'a str> {
    let at = [format!("'{key}'"), format!("\"{key}\"")]
        .iter()
        .find_map(|k| h.find(k.as_str()).map(|i| i + k.len()))
        .ok_or_else(|| Error::format(path, format!("npy header lacks '{key}'")))?;
    h[at..]
        .trim_start()
        .strip_prefix(':')
        .map(str::trim_start)
        .ok_or_else(|| Error::format(path, format!("malformed npy header at '{key}'")))
}

/// Parses the header dict: `(descr, fortran_order, shape)`.
fn parse_header(path: &Path, h: &str) -> Result<(String, bool, Vec<usize>)> {
    let d = header_field(path, h, "descr")?;
    let descr = match d.chars().next() {
        Some(q @ ('\'' | '"')) => d[1..]
            .split(q)
            .next()
            .ok_or_else(|| Error::format(path, "malformed descr"))?
            .to_string(),
        _ => {
            let short: String = d.chars().take(40).collect();
            return Err(Error::format(
                path,
                format!("unsupported npy dtype {short}... (structured arrays cannot be read)"),
            ));
        }
    };
    let f = header_field(path, h, "fortran_order")?;
    let fortran = if f.starts_with("True") {
        true
    } else if f.starts_with("False") {
        false
    } else {
        return Err(Error::format(path, "malformed fortran_order in npy header"));
    };
    let sh = header_field(path, h, "shape")?;
    let inner = sh
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| Error::format(path, "malformed shape in npy header"))?;
    let mut shape = Vec::new();
    for part in inner.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let part = part.trim_end_matches('L'); // Python 2 longs
        shape
            .push(part.parse::<usize>().map_err(|_| {
                Error::format(path, format!("bad dimension '{part}' in npy shape"))
            })?);
    }
    Ok((descr, fortran, shape))
}

/// A real array read from `.npy` as f32 values and its shape (complex files are refused).
pub fn read_npy(path: impl AsRef<Path>) -> Result<Tensor> {
    let path = path.as_ref();
    let a = read_npy_array(path)?;
    if a.imag.is_some() {
        return Err(Error::format(
            path,
            "complex array where a real one is expected",
        ));
    }
    Tensor::from_shape_vec(&a.shape, a.data)
}

/// Any `.npy` array: real files as real tensors, complex files as complex tensors.
pub fn read_npy_any(path: impl AsRef<Path>) -> Result<Tensor> {
    let a = read_npy_array(path)?;
    match a.imag {
        None => Tensor::from_shape_vec(&a.shape, a.data),
        Some(im) => Tensor::from_shape_vec_c(
            &a.shape,
            a.data
                .into_iter()
                .zip(im)
                .map(|(re, im)| C32::new(re, im))
                .collect(),
        ),
    }
}

/// Reads a `.npy` file into a plain [`NpyArray`] (C order, f32 values).
pub fn read_npy_array(path: impl AsRef<Path>) -> Result<NpyArray> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_npy(path, &bytes)
}

/// The element types a `.npy` file can hold that this reader decodes.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Float,
    Int,
    UInt,
    Bool,
    Complex,
}

fn parse_dtype(path: &Path, descr: &str) -> Result<(Kind, usize, bool)> {
    let unsupported = || {
        Error::format(
            path,
            format!(
                "unsupported npy dtype '{descr}' (need float16/32/64, int8..64, uint8..64, \
                 bool or complex64/128)"
            ),
        )
    };
    let mut chars = descr.chars();
    let order = chars.next().ok_or_else(unsupported)?;
    let (big, rest) = match order {
        '<' => (false, &descr[1..]),
        '>' => (true, &descr[1..]),
        '=' => (cfg!(target_endian = "big"), &descr[1..]),
        '|' => (false, &descr[1..]),
        _ => (cfg!(target_endian = "big"), descr),
    };
    let (k, w) = rest.split_at(rest.chars().next().map_or(0, char::len_utf8));
    let width: usize = w.parse().map_err(|_| unsupported())?;
    let kind = match (k, width) {
        ("f", 2 | 4 | 8) => Kind::Float,
        ("i", 1 | 2 | 4 | 8) => Kind::Int,
        ("u", 1 | 2 | 4 | 8) => Kind::UInt,
        ("b", 1) => Kind::Bool,
        ("c", 8 | 16) => Kind::Complex,
        _ => return Err(unsupported()),
    };
    let width = if kind == Kind::Complex {
        width / 2
    } else {
        width
    };
    Ok((kind, width, big))
}

/// Decodes one element of `width` bytes.
fn decode(kind: Kind, width: usize, big: bool, c: &[u8]) -> f32 {
    let mut b = [0u8; 8];
    b[..width].copy_from_slice(c);
    if big {
        b[..width].reverse();
    }
    match (kind, width) {
        (Kind::Bool, _) => (b[0] != 0) as u8 as f32,
        (Kind::Int, 1) => b[0] as i8 as f32,
        (Kind::Int, 2) => i16::from_le_bytes([b[0], b[1]]) as f32,
        (Kind::Int, 4) => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32,
        (Kind::Int, _) => i64::from_le_bytes(b) as f32,
        (Kind::UInt, 1) => b[0] as f32,
        (Kind::UInt, 2) => u16::from_le_bytes([b[0], b[1]]) as f32,
        (Kind::UInt, 4) => u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32,
        (Kind::UInt, _) => u64::from_le_bytes(b) as f32,
        (_, 2) => f16_to_f32(u16::from_le_bytes([b[0], b[1]])),
        (_, 4) => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        (_, _) => f64::from_le_bytes(b) as f32,
    }
}

/// Reorders `v`, stored in Fortran (column-major) order for `shape`, into C order.
fn fortran_to_c(v: &[f32], shape: &[usize]) -> Vec<f32> {
    let n = v.len();
    if shape.len() < 2 || n == 0 {
        return v.to_vec();
    }
    // Fortran strides: axis 0 fastest.
    let mut fstride = vec![1usize; shape.len()];
    for j in 1..shape.len() {
        fstride[j] = fstride[j - 1] * shape[j - 1];
    }
    let mut out = Vec::with_capacity(n);
    let mut idx = vec![0usize; shape.len()];
    let mut off = 0usize;
    for _ in 0..n {
        out.push(v[off]);
        // Advance the C-order odometer (last axis fastest), keeping the Fortran offset.
        for j in (0..shape.len()).rev() {
            idx[j] += 1;
            off += fstride[j];
            if idx[j] < shape[j] {
                break;
            }
            off -= fstride[j] * shape[j];
            idx[j] = 0;
        }
    }
    out
}

/// Parses the bytes of a `.npy` file (`path` is only used in error messages).
pub(crate) fn parse_npy(path: &Path, bytes: &[u8]) -> Result<NpyArray> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(Error::format(path, "not a .npy file (bad magic)"));
    }
    let (hlen, hstart): (usize, usize) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        2 | 3 => return Err(Error::format(path, "truncated npy header")),
        v => return Err(Error::format(path, format!("unsupported npy version {v}"))),
    };
    let header = hstart
        .checked_add(hlen)
        .and_then(|end| bytes.get(hstart..end))
        .ok_or_else(|| Error::format(path, "truncated npy header"))?;
    let header =
        std::str::from_utf8(header).map_err(|_| Error::format(path, "npy header not text"))?;
    let (descr, fortran, shape) = parse_header(path, header)?;
    let (kind, width, big) = parse_dtype(path, &descr)?;
    let data = &bytes[hstart + hlen..];
    let complex = kind == Kind::Complex;
    let n = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| Error::format(path, format!("npy shape {shape:?} is too large")))?;
    let count = if complex { n.checked_mul(2) } else { Some(n) };
    let need = count
        .and_then(|c| c.checked_mul(width))
        .ok_or_else(|| Error::format(path, format!("npy shape {shape:?} is too large")))?;
    if data.len() < need {
        return Err(Error::format(
            path,
            format!(
                "truncated data: {} bytes where {need} are needed for shape {shape:?} of {descr}",
                data.len()
            ),
        ));
    }
    let vals: Vec<f32> = data[..need]
        .chunks_exact(width)
        .map(|c| decode(kind, width, big, c))
        .collect();
    let (re, im) = if complex {
        let (re, im): (Vec<f32>, Vec<f32>) = vals.chunks_exact(2).map(|p| (p[0], p[1])).unzip();
        (re, Some(im))
    } else {
        (vals, None)
    };
    let (re, im) = if fortran {
        (
            fortran_to_c(&re, &shape),
            im.map(|v| fortran_to_c(&v, &shape)),
        )
    } else {
        (re, im)
    };
    Ok(NpyArray {
        shape,
        data: re,
        imag: im,
        descr,
        fortran_order: fortran,
    })
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
        crate::engine::storage::DType::F32 => {
            bytes = header_bytes("<f4", t.shape());
            for v in t.to_vec()? {
                bytes.extend_from_slice(&v.to_le_bytes());
            }
        }
        crate::engine::storage::DType::C32 => {
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
