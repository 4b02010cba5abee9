//! Gatan DigitalMicrograph `.dm3` / `.dm4` files: the image data, its type and its per-axis
//! calibration.
//!
//! The file is a tree of tags. Header: version (3 or 4), the length of the tag tree, and a
//! byte-order flag for the data values (1: little-endian, 0: big-endian), all big-endian
//! 4-byte integers (DM4: the length is 8 bytes). The structure of the tree (counts, label
//! lengths, type descriptions) is big-endian; DM3 uses 4-byte counts, DM4 8-byte counts and an
//! extra 8-byte size before each tag's content.
//!
//! - A tag group: `sorted: u8, open: u8, ntags: count`, then `ntags` tags.
//! - A tag: `kind: u8` (20 group, 21 data), `label_len: u16`, `label`, (DM4: `size: u64`), then
//!   a group, or for data `"%%%%"`, `ninfo: count`, `ninfo` type-description counts, and the
//!   value: a simple type (2 i16, 3 i32, 4 u16, 5 u32, 6 f32, 7 f64, 8 bool, 9 i8, 10 u8,
//!   11 i64, 12 u64), a string (18), a struct (15: name length, field count, then per field
//!   its name length and type) or an array (20: element type — simple, or a struct described
//!   as above — then the element count).
//!
//! The images live in `ImageList`: one group per image, each with `ImageData.Data` (the
//! values, x fastest), `ImageData.DataType`, `ImageData.Dimensions` (x, y[, z]) and
//! `ImageData.Calibrations.Dimension[i].{Scale, Units, Origin}` per axis. The first image is
//! usually a thumbnail (RGB), so the reader takes the largest non-RGB image, the last one when
//! several are as large.

use super::calibration::{length_unit_in_metres, AxisCalibration, Calibration};
use crate::error::{Error, Result};
use std::path::Path;

/// Pixel values of a DigitalMicrograph image, in C order.
#[derive(Debug, Clone, PartialEq)]
pub enum DmData {
    /// A real image as f32.
    Real(Vec<f32>),
    /// A complex image (data types 3 and 13) as real and imaginary parts.
    Complex {
        /// Real parts.
        re: Vec<f32>,
        /// Imaginary parts.
        im: Vec<f32>,
    },
}

/// One image read from a DigitalMicrograph file.
#[derive(Debug, Clone, PartialEq)]
pub struct DmImage {
    /// 3 or 4.
    pub version: u32,
    /// C-order shape: (H, W) for an image, (frames, H, W) for a stack (the file's
    /// `Dimensions` reversed).
    pub shape: Vec<usize>,
    /// The values.
    pub data: DmData,
    /// `ImageData.DataType` as stored (1 int16, 2 float32, 12 float64, ...).
    pub data_type: u32,
    /// Per-axis calibration as stored, fastest axis (x) first.
    pub axes: Vec<AxisCalibration>,
    /// The image's `Name` tag, when present.
    pub name: Option<String>,
    /// Index of the image taken in `ImageList` (0 is usually the thumbnail).
    pub index: usize,
}

impl DmImage {
    /// The pixel size in metres along x (axis 0) and y (axis 1), and along z (axis 2) for a
    /// stack, where the axis' unit is a length; otherwise `None` for that axis.
    pub fn calibration(&self) -> Calibration {
        let size = |i: usize| -> Option<f64> {
            let a = self.axes.get(i)?;
            let m = length_unit_in_metres(&a.units)?;
            (a.scale.is_finite() && a.scale > 0.0).then_some(a.scale * m)
        };
        let (pixel_x, pixel_y) = (size(0), size(1));
        let pixel_z = if self.shape.len() >= 3 { size(2) } else { None };
        let source = (pixel_x.is_some() || pixel_y.is_some()).then(|| {
            let units: Vec<String> = self
                .axes
                .iter()
                .take(self.shape.len().min(3))
                .map(|a| format!("{} {}", a.scale, a.units))
                .collect();
            format!(
                "DigitalMicrograph ImageData.Calibrations.Dimension Scale/Units ({})",
                units.join(", ")
            )
        });
        Calibration {
            pixel_x,
            pixel_y,
            pixel_z,
            source,
            axes: self.axes.clone(),
            ..Calibration::default()
        }
    }
}

/// Reads the main image of a `.dm3` or `.dm4` file.
pub fn read_dm(path: impl AsRef<Path>) -> Result<DmImage> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_dm(path, &bytes)
}

/// A simple (scalar) value.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Scalar {
    I(i64),
    U(u64),
    F(f64),
}

impl Scalar {
    fn as_f64(self) -> f64 {
        match self {
            Scalar::I(v) => v as f64,
            Scalar::U(v) => v as f64,
            Scalar::F(v) => v,
        }
    }
    fn as_u64(self) -> Option<u64> {
        match self {
            Scalar::I(v) => u64::try_from(v).ok(),
            Scalar::U(v) => Some(v),
            Scalar::F(v) => (v >= 0.0 && v.fract() == 0.0 && v < 1.8e19).then_some(v as u64),
        }
    }
}

/// A tag's value. Arrays are not decoded here, only located.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Scalar(Scalar),
    Str(String),
    Struct(Vec<Scalar>),
    /// An array of simple elements: type code, element count, byte offset in the file.
    Array {
        elem: u64,
        count: usize,
        offset: usize,
    },
    /// An array of structs (skipped).
    StructArray,
}

#[derive(Debug)]
enum Node {
    Group(Vec<Entry>),
    Data(Value),
}

#[derive(Debug)]
struct Entry {
    label: String,
    node: Node,
}

/// Size in bytes of a simple type, `None` for codes that are not simple types.
fn simple_size(t: u64) -> Option<usize> {
    Some(match t {
        2 | 4 => 2,
        3 | 5 | 6 => 4,
        7 | 11 | 12 => 8,
        8..=10 => 1,
        _ => return None,
    })
}

const MAX_DEPTH: usize = 64;

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
    path: &'a Path,
    /// 3 or 4.
    version: u32,
    /// Data values little-endian.
    little: bool,
}

impl<'a> Reader<'a> {
    fn err(&self, msg: impl Into<String>) -> Error {
        Error::format(self.path, msg)
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.b.len());
        match end {
            Some(end) => {
                let s = &self.b[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(self.err(format!(
                "truncated DM{} tag tree: {what} at byte {} needs {n} bytes, the file has {}",
                self.version,
                self.pos,
                self.b.len()
            ))),
        }
    }

    fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.take(1, what)?[0])
    }

    fn be(&mut self, n: usize, what: &str) -> Result<u64> {
        let s = self.take(n, what)?;
        Ok(s.iter().fold(0u64, |a, &b| (a << 8) | b as u64))
    }

    /// A count: 4 bytes in DM3, 8 in DM4.
    fn count(&mut self, what: &str) -> Result<u64> {
        let n = if self.version == 3 { 4 } else { 8 };
        self.be(n, what)
    }

    fn count_usize(&mut self, what: &str) -> Result<usize> {
        let v = self.count(what)?;
        usize::try_from(v).map_err(|_| self.err(format!("{what} {v} is too large")))
    }

    /// A simple value of type `t` in the data byte order.
    fn scalar(&mut self, t: u64, what: &str) -> Result<Scalar> {
        let size = simple_size(t)
            .ok_or_else(|| self.err(format!("unknown DM tag data type {t} in '{what}'")))?;
        let s = self.take(size, what)?;
        Ok(decode_scalar(t, s, self.little))
    }

    fn group(&mut self, prefix: &str, depth: usize) -> Result<Vec<Entry>> {
        if depth > MAX_DEPTH {
            return Err(self.err(format!(
                "DM tag groups nested deeper than {MAX_DEPTH} at '{prefix}' (corrupt file?)"
            )));
        }
        let what = if prefix.is_empty() { "root" } else { prefix };
        self.take(2, &format!("tag group header of '{what}'"))?;
        let ntags = self.count(&format!("tag count of '{what}'"))?;
        // Each tag takes at least 4 bytes: a bound against absurd counts.
        if ntags > (self.b.len() - self.pos) as u64 / 4 + 1 {
            return Err(self.err(format!(
                "truncated DM{} tag tree: group '{what}' announces {ntags} tags at byte {}, \
                 more than the file can hold",
                self.version, self.pos
            )));
        }
        let mut out = Vec::new();
        for i in 0..ntags {
            let at = self.pos;
            let kind = self.u8(&format!("tag {i} of '{what}'"))?;
            let len = self.be(2, &format!("label length of tag {i} of '{what}'"))? as usize;
            let raw = self.take(len, &format!("label of tag {i} of '{what}'"))?;
            let label: String = raw.iter().map(|&c| c as char).collect();
            let shown = if label.is_empty() {
                format!("{prefix}[{i}]")
            } else if prefix.is_empty() {
                label.clone()
            } else {
                format!("{prefix}.{label}")
            };
            if self.version == 4 {
                self.be(8, &format!("size of tag '{shown}'"))?;
            }
            let node = match kind {
                20 => Node::Group(self.group(&shown, depth + 1)?),
                21 => Node::Data(self.data(&shown)?),
                k => {
                    return Err(self.err(format!(
                        "bad DM tag kind {k} for tag '{shown}' at byte {at} (20 group, 21 data; \
                         corrupt or truncated file)"
                    )))
                }
            };
            out.push(Entry { label, node });
        }
        Ok(out)
    }

    fn data(&mut self, what: &str) -> Result<Value> {
        let start = self.pos;
        if self.take(4, &format!("'%%%%' of tag '{what}'"))? != b"%%%%" {
            return Err(self.err(format!(
                "missing '%%%%' delimiter of DM data tag '{what}' at byte {start} (corrupt file?)"
            )));
        }
        let ninfo = self.count_usize(&format!("type description length of '{what}'"))?;
        if ninfo == 0 || ninfo > 1 << 20 {
            return Err(self.err(format!(
                "bad type description length {ninfo} for DM tag '{what}'"
            )));
        }
        let width = if self.version == 3 { 4 } else { 8 };
        let need = ninfo.saturating_mul(width);
        if self.b.len() - self.pos < need {
            self.take(need, &format!("type description of '{what}'"))?;
        }
        let mut info = Vec::with_capacity(ninfo);
        for _ in 0..ninfo {
            info.push(self.count(&format!("type description of '{what}'"))?);
        }
        let bad = |r: &Self| {
            r.err(format!(
                "malformed type description {info:?} for DM tag '{what}'"
            ))
        };
        match info[0] {
            t if simple_size(t).is_some() => Ok(Value::Scalar(self.scalar(t, what)?)),
            18 => {
                let n = *info.get(1).ok_or_else(|| bad(self))?;
                let n = usize::try_from(n).map_err(|_| bad(self))?;
                let s = self.take(n, &format!("string of '{what}'"))?;
                Ok(Value::Str(s.iter().map(|&c| c as char).collect()))
            }
            15 => {
                let types = struct_fields(&info, 1).ok_or_else(|| bad(self))?;
                if info.len() != 3 + 2 * types.len() {
                    return Err(bad(self));
                }
                let mut v = Vec::with_capacity(types.len());
                for t in types {
                    v.push(self.scalar(t, what)?);
                }
                Ok(Value::Struct(v))
            }
            20 => {
                let elem = *info.get(1).ok_or_else(|| bad(self))?;
                let count = *info.last().ok_or_else(|| bad(self))?;
                let count = usize::try_from(count).map_err(|_| bad(self))?;
                let (esize, value) = if let Some(s) = simple_size(elem) {
                    if info.len() != 3 {
                        return Err(bad(self));
                    }
                    let v = Value::Array {
                        elem,
                        count,
                        offset: self.pos,
                    };
                    (s, v)
                } else if elem == 15 {
                    let types = struct_fields(&info, 2).ok_or_else(|| bad(self))?;
                    if info.len() != 5 + 2 * types.len() {
                        return Err(bad(self));
                    }
                    let mut s = 0usize;
                    for t in types {
                        s += simple_size(t).ok_or_else(|| {
                            self.err(format!("unknown DM struct field type {t} in '{what}'"))
                        })?;
                    }
                    (s, Value::StructArray)
                } else {
                    return Err(self.err(format!(
                        "unsupported DM array element type {elem} in tag '{what}'"
                    )));
                };
                let bytes = esize.saturating_mul(count);
                self.take(bytes, &format!("array data of '{what}' ({count} elements)"))?;
                Ok(value)
            }
            t => Err(self.err(format!(
                "unknown DM tag data type {t} in tag '{what}' (corrupt file?)"
            ))),
        }
    }
}

/// The field types of a struct described in `info` from index `at` (the struct's name
/// length): `[name_len, nfields, (field_name_len, field_type) * nfields]`.
fn struct_fields(info: &[u64], at: usize) -> Option<Vec<u64>> {
    let n = usize::try_from(*info.get(at + 1)?).ok()?;
    if n > info.len() {
        return None;
    }
    (0..n).map(|k| info.get(at + 3 + 2 * k).copied()).collect()
}

fn decode_scalar(t: u64, s: &[u8], little: bool) -> Scalar {
    let mut b = [0u8; 8];
    b[..s.len()].copy_from_slice(s);
    if !little {
        b[..s.len()].reverse();
    }
    match t {
        2 => Scalar::I(i16::from_le_bytes([b[0], b[1]]) as i64),
        3 => Scalar::I(i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64),
        4 => Scalar::U(u16::from_le_bytes([b[0], b[1]]) as u64),
        5 => Scalar::U(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64),
        6 => Scalar::F(f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64),
        7 => Scalar::F(f64::from_le_bytes(b)),
        8 | 10 => Scalar::U(b[0] as u64),
        9 => Scalar::I(b[0] as i8 as i64),
        11 => Scalar::I(i64::from_le_bytes(b)),
        _ => Scalar::U(u64::from_le_bytes(b)),
    }
}

impl Entry {
    fn child(&self, label: &str) -> Option<&Entry> {
        match &self.node {
            Node::Group(v) => v.iter().find(|e| e.label == label),
            Node::Data(_) => None,
        }
    }
    fn children(&self) -> &[Entry] {
        match &self.node {
            Node::Group(v) => v,
            Node::Data(_) => &[],
        }
    }
    fn value(&self) -> Option<&Value> {
        match &self.node {
            Node::Data(v) => Some(v),
            Node::Group(_) => None,
        }
    }
    fn scalar(&self) -> Option<Scalar> {
        match self.value()? {
            Value::Scalar(s) => Some(*s),
            _ => None,
        }
    }
}

/// The element type of an image (`ImageData.DataType`): byte size and decoder.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Pixel {
    I8,
    U8,
    I16,
    U16,
    I32,
    U32,
    F32,
    F64,
    C64,
    C128,
    Bool,
}

impl Pixel {
    fn from_code(code: u64) -> std::result::Result<Pixel, String> {
        Ok(match code {
            1 => Pixel::I16,
            2 => Pixel::F32,
            3 => Pixel::C64,
            6 => Pixel::U8,
            7 => Pixel::I32,
            9 => Pixel::I8,
            10 => Pixel::U16,
            11 => Pixel::U32,
            12 => Pixel::F64,
            13 => Pixel::C128,
            14 => Pixel::Bool,
            4 => return Err("data type 4 (obsolete) cannot be read".into()),
            5 => return Err("data type 5 (packed complex, FFT) cannot be read".into()),
            8 | 23 => {
                return Err(format!(
                    "data type {code} (RGB colour) cannot be read as a greyscale image"
                ))
            }
            c => return Err(format!("unknown data type {c}")),
        })
    }
    fn size(self) -> usize {
        match self {
            Pixel::I8 | Pixel::U8 | Pixel::Bool => 1,
            Pixel::I16 | Pixel::U16 => 2,
            Pixel::I32 | Pixel::U32 | Pixel::F32 => 4,
            Pixel::F64 | Pixel::C64 => 8,
            Pixel::C128 => 16,
        }
    }
}

/// What an `ImageList` entry holds, located in the file but not yet decoded.
struct Candidate {
    index: usize,
    pixel: std::result::Result<Pixel, String>,
    code: u64,
    dims: Vec<usize>,
    offset: usize,
    bytes: usize,
    axes: Vec<AxisCalibration>,
    name: Option<String>,
}

fn array_string(b: &[u8], v: &Value, little: bool) -> Option<String> {
    match v {
        Value::Str(s) => Some(s.clone()),
        Value::Array {
            elem,
            count,
            offset,
        } => {
            let size = simple_size(*elem)?;
            let raw = b.get(*offset..offset.checked_add(count.checked_mul(size)?)?)?;
            match size {
                2 => {
                    let units: Vec<u16> = raw
                        .chunks_exact(2)
                        .map(|c| {
                            if little {
                                u16::from_le_bytes([c[0], c[1]])
                            } else {
                                u16::from_be_bytes([c[0], c[1]])
                            }
                        })
                        .collect();
                    Some(String::from_utf16_lossy(&units))
                }
                1 => Some(raw.iter().map(|&c| c as char).collect()),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Parses the bytes of a DM3/DM4 file held in memory (`path` is only used in error messages).
pub fn parse_dm(path: &Path, b: &[u8]) -> Result<DmImage> {
    let err = |m: String| Error::format(path, m);
    if b.len() < 4 {
        return Err(err(format!(
            "not a DigitalMicrograph file: {} bytes, too short for a header",
            b.len()
        )));
    }
    let version = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    if version != 3 && version != 4 {
        return Err(err(format!(
            "not a DigitalMicrograph 3/4 file: header version {version} (bytes {:02x?})",
            &b[..4]
        )));
    }
    let mut r = Reader {
        b,
        pos: 4,
        path,
        version,
        little: true,
    };
    let declared = r.count("header: tag tree length")?;
    let order = r.be(4, "header: byte order")?;
    r.little = match order {
        1 => true,
        0 => false,
        o => {
            return Err(err(format!(
                "DM{version} header: byte-order flag {o} (0 or 1 expected; not a DM file?)"
            )))
        }
    };
    let header = r.pos as u64;
    if header.saturating_add(declared) > b.len() as u64 {
        return Err(err(format!(
            "truncated DM{version} file: the header announces {declared} bytes of tags after \
             the {header}-byte header, the file has {}",
            b.len()
        )));
    }
    let root = Entry {
        label: String::new(),
        node: Node::Group(r.group("", 0)?),
    };
    let list = root
        .child("ImageList")
        .ok_or_else(|| err("DM file has no ImageList tag group".into()))?;
    let mut cands = Vec::new();
    for (index, img) in list.children().iter().enumerate() {
        if let Some(c) = candidate(&r, img, index)? {
            cands.push(c);
        }
    }
    if cands.is_empty() {
        return Err(err("DM ImageList holds no image with ImageData.Data".into()));
    }
    // Skip RGB images (the thumbnail), then take the largest, the last among equals.
    let is_rgb = |c: &&Candidate| matches!(c.code, 8 | 23);
    let best = cands
        .iter()
        .filter(|c| !is_rgb(c))
        .max_by_key(|c| (c.dims.iter().product::<usize>(), c.index));
    let Some(best) = best else {
        let c = cands.iter().max_by_key(|c| c.index).unwrap_or(&cands[0]);
        return Err(err(format!(
            "DM ImageList holds only RGB colour images (ImageData.DataType {}), no greyscale \
             data",
            c.code
        )));
    };
    decode_image(path, b, version, r.little, best)
}

/// Locates the data, type, dimensions and calibration of one `ImageList` entry (`None` if it
/// has no `ImageData.Data`).
fn candidate(r: &Reader, img: &Entry, index: usize) -> Result<Option<Candidate>> {
    let err = |m: String| Error::format(r.path, format!("DM ImageList[{index}]: {m}"));
    let Some(idata) = img.child("ImageData") else {
        return Ok(None);
    };
    let Some(data) = idata.child("Data").and_then(Entry::value) else {
        return Ok(None);
    };
    let Value::Array {
        elem,
        count,
        offset,
    } = *data
    else {
        return Err(err("ImageData.Data is not an array of numbers".into()));
    };
    let bytes = simple_size(elem).unwrap_or(0).saturating_mul(count);
    let code = idata
        .child("DataType")
        .and_then(Entry::scalar)
        .and_then(Scalar::as_u64)
        .ok_or_else(|| err("ImageData.DataType is missing".into()))?;
    let dims_e = idata
        .child("Dimensions")
        .ok_or_else(|| err("ImageData.Dimensions is missing".into()))?;
    let mut dims = Vec::new();
    for (i, d) in dims_e.children().iter().enumerate() {
        let v = d
            .scalar()
            .and_then(Scalar::as_u64)
            .and_then(|v| usize::try_from(v).ok())
            .filter(|&v| v > 0)
            .ok_or_else(|| {
                err(format!(
                    "ImageData.Dimensions[{i}] is not a positive integer"
                ))
            })?;
        dims.push(v);
    }
    if dims.is_empty() {
        return Err(err("ImageData.Dimensions is empty".into()));
    }
    let mut axes = Vec::new();
    if let Some(cal) = idata
        .child("Calibrations")
        .and_then(|c| c.child("Dimension"))
    {
        for a in cal.children() {
            let num = |k: &str, default: f64| {
                a.child(k)
                    .and_then(Entry::scalar)
                    .map(Scalar::as_f64)
                    .unwrap_or(default)
            };
            let units = a
                .child("Units")
                .and_then(Entry::value)
                .and_then(|v| array_string(r.b, v, r.little))
                .unwrap_or_default();
            axes.push(AxisCalibration {
                scale: num("Scale", 1.0),
                units: units.trim_end_matches('\0').to_string(),
                origin: num("Origin", 0.0),
            });
        }
    }
    let name = img
        .child("Name")
        .and_then(Entry::value)
        .and_then(|v| array_string(r.b, v, r.little));
    Ok(Some(Candidate {
        index,
        pixel: Pixel::from_code(code),
        code,
        dims,
        offset,
        bytes,
        axes,
        name,
    }))
}

fn decode_image(
    path: &Path,
    b: &[u8],
    version: u32,
    little: bool,
    c: &Candidate,
) -> Result<DmImage> {
    let err = |m: String| Error::format(path, format!("DM ImageList[{}]: {m}", c.index));
    let pixel = c.pixel.clone().map_err(|why| {
        err(format!(
            "ImageData.DataType {}: {why} (supported: 1 int16, 2 float32, 3 complex64, \
             6 uint8, 7 int32, 9 int8, 10 uint16, 11 uint32, 12 float64, 13 complex128, \
             14 binary)",
            c.code
        ))
    })?;
    let n = c
        .dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| err(format!("dimensions {:?} are too large", c.dims)))?;
    let need = n
        .checked_mul(pixel.size())
        .ok_or_else(|| err(format!("dimensions {:?} are too large", c.dims)))?;
    if need != c.bytes {
        return Err(err(format!(
            "ImageData.Data holds {} bytes, but DataType {} ({pixel:?}) with Dimensions {:?} \
             needs {need}",
            c.bytes, c.code, c.dims
        )));
    }
    let raw = c
        .offset
        .checked_add(need)
        .and_then(|end| b.get(c.offset..end))
        .ok_or_else(|| err("ImageData.Data lies outside the file".into()))?;
    let rd = |s: &[u8]| -> [u8; 8] {
        let mut x = [0u8; 8];
        x[..s.len()].copy_from_slice(s);
        if !little {
            x[..s.len()].reverse();
        }
        x
    };
    let real = |f: fn([u8; 8]) -> f32| -> Vec<f32> {
        raw.chunks_exact(pixel.size()).map(|s| f(rd(s))).collect()
    };
    let data = match pixel {
        Pixel::I8 => DmData::Real(real(|x| x[0] as i8 as f32)),
        Pixel::U8 => DmData::Real(real(|x| x[0] as f32)),
        Pixel::Bool => DmData::Real(real(|x| (x[0] != 0) as u8 as f32)),
        Pixel::I16 => DmData::Real(real(|x| i16::from_le_bytes([x[0], x[1]]) as f32)),
        Pixel::U16 => DmData::Real(real(|x| u16::from_le_bytes([x[0], x[1]]) as f32)),
        Pixel::I32 => DmData::Real(real(|x| {
            i32::from_le_bytes([x[0], x[1], x[2], x[3]]) as f32
        })),
        Pixel::U32 => DmData::Real(real(|x| {
            u32::from_le_bytes([x[0], x[1], x[2], x[3]]) as f32
        })),
        Pixel::F32 => DmData::Real(real(|x| f32::from_le_bytes([x[0], x[1], x[2], x[3]]))),
        Pixel::F64 => DmData::Real(real(|x| f64::from_le_bytes(x) as f32)),
        Pixel::C64 | Pixel::C128 => {
            let half = pixel.size() / 2;
            let part = |s: &[u8]| -> f32 {
                let x = rd(s);
                if half == 4 {
                    f32::from_le_bytes([x[0], x[1], x[2], x[3]])
                } else {
                    f64::from_le_bytes(x) as f32
                }
            };
            let (re, im) = raw
                .chunks_exact(pixel.size())
                .map(|s| (part(&s[..half]), part(&s[half..])))
                .unzip();
            DmData::Complex { re, im }
        }
    };
    Ok(DmImage {
        version,
        shape: c.dims.iter().rev().copied().collect(),
        data,
        data_type: c.code as u32,
        axes: c.axes.clone(),
        name: c.name.clone(),
        index: c.index,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal DM3/DM4 writer for tests: tag tree with one ImageList entry.
    fn tiny(version: u32, code: u64, elem: u64, esize: usize, dims: &[u64]) -> Vec<u8> {
        let cnt = |v: u64, out: &mut Vec<u8>| {
            if version == 3 {
                out.extend_from_slice(&(v as u32).to_be_bytes())
            } else {
                out.extend_from_slice(&v.to_be_bytes())
            }
        };
        let tag = |kind: u8, label: &str, body: Vec<u8>, out: &mut Vec<u8>| {
            out.push(kind);
            out.extend_from_slice(&(label.len() as u16).to_be_bytes());
            out.extend_from_slice(label.as_bytes());
            if version == 4 {
                out.extend_from_slice(&(body.len() as u64).to_be_bytes());
            }
            out.extend_from_slice(&body);
        };
        let group = |tags: Vec<Vec<u8>>| {
            let mut g = vec![0u8, 1];
            cnt(tags.len() as u64, &mut g);
            for t in tags {
                g.extend_from_slice(&t);
            }
            g
        };
        let data = |info: &[u64], payload: &[u8]| {
            let mut d = b"%%%%".to_vec();
            cnt(info.len() as u64, &mut d);
            for &i in info {
                cnt(i, &mut d);
            }
            d.extend_from_slice(payload);
            d
        };
        let mk = |kind, label: &str, body| {
            let mut t = Vec::new();
            tag(kind, label, body, &mut t);
            t
        };
        let n: u64 = dims.iter().product();
        let payload: Vec<u8> = (0..n as usize * esize).map(|i| (i % 7) as u8).collect();
        let dim_tags = dims
            .iter()
            .map(|&d| mk(21, "", data(&[5], &(d as u32).to_le_bytes())))
            .collect();
        let idata = group(vec![
            mk(
                21,
                "Data",
                data(
                    &[
                        20,
                        elem,
                        n * esize as u64 / simple_size(elem).unwrap() as u64,
                    ],
                    &payload,
                ),
            ),
            mk(21, "DataType", data(&[5], &(code as u32).to_le_bytes())),
            mk(20, "Dimensions", group(dim_tags)),
        ]);
        let img = group(vec![mk(20, "ImageData", idata)]);
        let list = group(vec![mk(20, "", img)]);
        let root = group(vec![mk(20, "ImageList", list)]);
        let mut out = version.to_be_bytes().to_vec();
        cnt(root.len() as u64, &mut out);
        out.extend_from_slice(&1u32.to_be_bytes());
        out.extend_from_slice(&root);
        out.extend_from_slice(&[0u8; 8]);
        out
    }

    #[test]
    fn tiny_files_of_each_type() {
        for version in [3, 4] {
            for (code, elem, esize) in [
                (1, 2, 2),
                (2, 6, 4),
                (6, 10, 1),
                (7, 3, 4),
                (9, 9, 1),
                (10, 4, 2),
                (11, 5, 4),
                (12, 7, 8),
                (3, 6, 8),
                (13, 7, 16),
            ] {
                let b = tiny(version, code, elem, esize, &[3, 2]);
                let d = parse_dm(Path::new("t.dm3"), &b).unwrap();
                assert_eq!(d.shape, vec![2, 3], "type {code}");
                assert_eq!(d.data_type, code as u32);
                let len = match &d.data {
                    DmData::Real(v) => v.len(),
                    DmData::Complex { re, .. } => re.len(),
                };
                assert_eq!(len, 6);
            }
        }
        let b = tiny(3, 6, 10, 1, &[4, 1]);
        let d = parse_dm(Path::new("t.dm3"), &b).unwrap();
        assert_eq!(d.data, DmData::Real(vec![0.0, 1.0, 2.0, 3.0]));
    }

    #[test]
    fn bad_type_and_mismatch_are_errors() {
        let b = tiny(3, 99, 10, 1, &[2, 2]);
        let e = parse_dm(Path::new("t.dm3"), &b).unwrap_err().to_string();
        assert!(
            e.contains("t.dm3") && e.contains("unknown data type 99"),
            "{e}"
        );
        let b = tiny(4, 23, 3, 4, &[2, 2]);
        let e = parse_dm(Path::new("t.dm4"), &b).unwrap_err().to_string();
        assert!(e.contains("only RGB"), "{e}");
        let b = tiny(4, 5, 6, 8, &[2, 2]);
        let e = parse_dm(Path::new("t.dm4"), &b).unwrap_err().to_string();
        assert!(
            e.contains("DataType 5") && e.contains("packed complex"),
            "{e}"
        );
        // float64 declared, but only 4 bytes per pixel stored.
        let b = tiny(3, 12, 6, 4, &[2, 2]);
        let e = parse_dm(Path::new("t.dm3"), &b).unwrap_err().to_string();
        assert!(e.contains("needs 32"), "{e}");
    }

    #[test]
    fn every_truncation_is_an_error() {
        for version in [3, 4] {
            let b = tiny(version, 2, 6, 4, &[3, 2]);
            for len in 0..b.len() - 8 {
                let mut cut = b[..len].to_vec();
                // Also lie about the length, so the tree parser meets the end itself.
                if cut.len() >= 16 {
                    let tree = (len - if version == 3 { 12 } else { 16 }) as u64;
                    if version == 3 {
                        cut[4..8].copy_from_slice(&(tree as u32).to_be_bytes());
                    } else {
                        cut[4..12].copy_from_slice(&tree.to_be_bytes());
                    }
                }
                assert!(
                    parse_dm(Path::new("t"), &cut).is_err(),
                    "v{version} len {len}"
                );
            }
        }
    }
}
