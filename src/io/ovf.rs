//! OOMMF / mumax3 OVF files: read OVF 1.0 and 2.0 (rectangular mesh, data `Text`,
//! `Binary 4` or `Binary 8`; header keywords in any case) and write them (used by tests to
//! round-trip). [`read_ovf`] reads a 3-component field (a magnetisation); [`read_ovf_field`]
//! reads any `valuedim` (e.g. a mumax3 scalar `regions` field). What the values mean comes
//! from `valueunits` (OVF 2.0) / `valueunit` (OVF 1.0): see [`ValueUnits`].

use super::calibration::Calibration;
use crate::error::{Error, Result};
use std::io::Write;
use std::path::Path;

pub use super::calibration::ValueUnits;

/// A rectangular-mesh vector field read from an OVF file (first segment only).
#[derive(Debug, Clone, PartialEq)]
pub struct Ovf {
    /// Number of cells along x.
    pub nx: usize,
    /// Number of cells along y.
    pub ny: usize,
    /// Number of cells along z.
    pub nz: usize,
    /// Cell size (x, y, z) in metres.
    pub step: [f64; 3],
    /// Vectors as stored in the file (not multiplied by `value_multiplier`), x fastest, then y,
    /// then z: `index = (z * ny + y) * nx + x`.
    pub data: Vec<[f32; 3]>,
    /// The `Title` header value (empty when absent).
    pub title: String,
    /// The `valuemultiplier` header value (OVF 1.0; 1 when absent, as always in OVF 2.0).
    /// Physical values are `data * value_multiplier`.
    pub value_multiplier: f64,
    /// What the values are (A/m magnetisation, unit vectors, other).
    pub value_units: ValueUnits,
    /// Centre of the first cell (x, y, z) in metres (`xbase`.. or `xmin + step / 2`).
    pub base: [f64; 3],
}

/// A rectangular-mesh field of any `valuedim` read from an OVF file (first segment only).
#[derive(Debug, Clone, PartialEq)]
pub struct OvfField {
    /// 1 (OVF 1.0) or 2 (OVF 2.0).
    pub version: u8,
    /// Number of cells along x.
    pub nx: usize,
    /// Number of cells along y.
    pub ny: usize,
    /// Number of cells along z.
    pub nz: usize,
    /// Cell size (x, y, z) in metres.
    pub step: [f64; 3],
    /// Centre of the first cell (x, y, z) in metres.
    pub base: [f64; 3],
    /// Components per cell (3 for a vector field, 1 for a scalar field).
    pub valuedim: usize,
    /// Values as stored (not multiplied by `value_multiplier`), component fastest:
    /// `index = ((z * ny + y) * nx + x) * valuedim + c`.
    pub values: Vec<f32>,
    /// The `Title` header value (empty when absent).
    pub title: String,
    /// The `valuemultiplier` (1 when absent).
    pub value_multiplier: f64,
    /// What the values are.
    pub value_units: ValueUnits,
    /// `valuelabels` (OVF 2.0), one per component; empty when absent.
    pub value_labels: Vec<String>,
}

/// How the data section of a written OVF file is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OvfEncoding {
    /// Decimal text, one vector per line.
    Text,
    /// 4-byte IEEE floats.
    Binary4,
    /// 8-byte IEEE floats.
    Binary8,
}

/// Splits off one line (without its `\n` / `\r\n`) starting at `*pos`, advancing `*pos`.
fn next_line<'a>(bytes: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
    if *pos >= bytes.len() {
        return None;
    }
    let rest = &bytes[*pos..];
    let (line, adv) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], i + 1),
        None => (rest, rest.len()),
    };
    *pos += adv;
    Some(line.strip_suffix(b"\r").unwrap_or(line))
}

/// Header values collected before the data section.
#[derive(Default)]
struct Header {
    version: u8,
    keys: Vec<(String, String)>,
}

impl Header {
    fn get(&self, key: &str) -> Option<&str> {
        self.keys
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
    fn require(&self, path: &Path, key: &str) -> Result<&str> {
        self.get(key)
            .ok_or_else(|| Error::format(path, format!("OVF header lacks required key '{key}'")))
    }
    fn usize(&self, path: &Path, key: &str) -> Result<usize> {
        let v = self.require(path, key)?;
        match v.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(Error::format(
                path,
                format!("OVF header '{key}: {v}' is not a positive integer"),
            )),
        }
    }
    fn f64(&self, path: &Path, key: &str) -> Result<f64> {
        let v = self.require(path, key)?;
        v.parse::<f64>()
            .ok()
            .filter(|x| x.is_finite())
            .ok_or_else(|| Error::format(path, format!("OVF header '{key}: {v}' is not a number")))
    }
}

/// Reads an OVF 1.0 or 2.0 file (first segment; rectangular mesh; 3-component values). A
/// field with another `valuedim` (e.g. a scalar `regions` map) is refused: it is not a
/// magnetisation (read it with [`read_ovf_field`]).
pub fn read_ovf(path: &Path) -> Result<Ovf> {
    read_ovf_field(path)?.into_ovf(path)
}

/// Reads an OVF 1.0 or 2.0 file with any number of components per cell.
pub fn read_ovf_field(path: &Path) -> Result<OvfField> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_ovf(path, &bytes)
}

fn parse_ovf(path: &Path, bytes: &[u8]) -> Result<OvfField> {
    let mut pos = 0;
    let mut hdr = Header::default();
    let mut data_kind = None;
    while let Some(raw) = next_line(bytes, &mut pos) {
        let line = String::from_utf8_lossy(raw);
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let short: String = line.chars().take(60).collect();
        let Some(body) = line.strip_prefix('#') else {
            let msg = if hdr.version == 0 {
                format!("not an OVF file (first line '{short}')")
            } else {
                format!("unexpected line in the OVF header: '{short}'")
            };
            return Err(Error::format(path, msg));
        };
        if body.starts_with('#') {
            continue; // OVF comment
        }
        let body = body.trim();
        if hdr.version == 0 {
            let lower = body.to_ascii_lowercase();
            hdr.version = if lower.starts_with("oommf: rectangular mesh v1.0") {
                1
            } else if lower.starts_with("oommf ovf 2.0") {
                2
            } else if lower.starts_with("oommf: irregular mesh") {
                return Err(Error::format(
                    path,
                    "unsupported OVF irregular mesh (rectangular meshes only)",
                ));
            } else {
                return Err(Error::format(
                    path,
                    format!("not an OVF 1.0/2.0 file (first line '{short}')"),
                ));
            };
            continue;
        }
        let Some((key, value)) = body.split_once(':') else {
            continue;
        };
        let key = key.trim().to_ascii_lowercase();
        let value = value.trim().to_string();
        if key == "begin" && value.to_ascii_lowercase().starts_with("data") {
            data_kind = Some(value[4..].trim().to_ascii_lowercase());
            break;
        }
        if key == "end" && value.eq_ignore_ascii_case("segment") {
            break;
        }
        if key != "begin" && key != "end" && key != "desc" {
            hdr.keys.push((key, value));
        }
    }
    if hdr.version == 0 {
        return Err(Error::format(path, "empty file, not an OVF file"));
    }
    let Some(kind) = data_kind else {
        return Err(Error::format(path, "OVF file has no 'Begin: Data' section"));
    };
    match hdr.get("meshtype") {
        Some(t) if t.eq_ignore_ascii_case("rectangular") => {}
        Some(t) => {
            return Err(Error::format(
                path,
                format!("unsupported OVF meshtype '{t}'"),
            ))
        }
        None => {
            return Err(Error::format(
                path,
                "OVF header lacks required key 'meshtype'",
            ))
        }
    }
    let valuedim = if hdr.version == 2 {
        hdr.usize(path, "valuedim")?
    } else {
        3
    };
    let unit = match hdr.get("meshunit").map(str::to_ascii_lowercase).as_deref() {
        None | Some("m") => 1.0,
        Some("mm") => 1e-3,
        Some("um") | Some("µm") => 1e-6,
        Some("nm") => 1e-9,
        Some(u) => {
            return Err(Error::format(
                path,
                format!("unsupported OVF meshunit '{u}'"),
            ))
        }
    };
    let (nx, ny, nz) = (
        hdr.usize(path, "xnodes")?,
        hdr.usize(path, "ynodes")?,
        hdr.usize(path, "znodes")?,
    );
    let step = [
        hdr.f64(path, "xstepsize")? * unit,
        hdr.f64(path, "ystepsize")? * unit,
        hdr.f64(path, "zstepsize")? * unit,
    ];
    let value_multiplier = match hdr.get("valuemultiplier") {
        Some(_) => hdr.f64(path, "valuemultiplier")?,
        None => 1.0,
    };
    let mut base = [0.0; 3];
    for (k, axis) in ["x", "y", "z"].iter().enumerate() {
        base[k] = match (
            hdr.get(&format!("{axis}base")),
            hdr.get(&format!("{axis}min")),
        ) {
            (Some(_), _) => hdr.f64(path, &format!("{axis}base"))? * unit,
            (None, Some(_)) => hdr.f64(path, &format!("{axis}min"))? * unit + step[k] / 2.0,
            (None, None) => step[k] / 2.0,
        };
    }
    // OVF 2.0 says `valueunits`, OVF 1.0 `valueunit`; accept either in both.
    let value_units = ValueUnits::parse(hdr.get("valueunits").or(hdr.get("valueunit")));
    let value_labels = hdr
        .get("valuelabels")
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    let n = nx
        .checked_mul(ny)
        .and_then(|v| v.checked_mul(nz))
        .and_then(|v| v.checked_mul(valuedim))
        .filter(|&v| v.checked_mul(8).is_some())
        .ok_or_else(|| {
            Error::format(
                path,
                format!("OVF mesh {nx}x{ny}x{nz} x {valuedim} is too large"),
            )
        })?;
    let rest = &bytes[pos..];
    let values = match kind.as_str() {
        "text" => read_text(path, rest, n, valuedim)?,
        "binary 4" => read_binary(path, rest, n, valuedim, 4, hdr.version == 1)?,
        "binary 8" => read_binary(path, rest, n, valuedim, 8, hdr.version == 1)?,
        other => {
            return Err(Error::format(
                path,
                format!("unsupported OVF data format '{other}' (Text, Binary 4, Binary 8)"),
            ))
        }
    };
    Ok(OvfField {
        version: hdr.version,
        nx,
        ny,
        nz,
        step,
        base,
        valuedim,
        values,
        title: hdr.get("title").unwrap_or_default().to_string(),
        value_multiplier,
        value_units,
        value_labels,
    })
}

/// Reads `n` numbers (`n / dim` cells of `dim` components) of text data.
fn read_text(path: &Path, rest: &[u8], n: usize, dim: usize) -> Result<Vec<f32>> {
    let cells = n / dim.max(1);
    let mut data = Vec::with_capacity(n.min(rest.len() / 2 + 1));
    let mut pos = 0;
    let mut line_no = 0;
    let mut ended = false;
    while let Some(raw) = next_line(rest, &mut pos) {
        line_no += 1;
        let line = std::str::from_utf8(raw)
            .map_err(|_| Error::format(path, format!("data line {line_no}: not ASCII text")))?;
        let t = line.trim_start();
        if let Some(comment) = t.strip_prefix('#') {
            if comment.trim().to_ascii_lowercase().starts_with("end: data") {
                ended = true;
                break;
            }
            continue;
        }
        for tok in t.split_ascii_whitespace() {
            let v: f32 = tok.parse().map_err(|_| {
                Error::format(
                    path,
                    format!("data line {line_no}: '{tok}' is not a number"),
                )
            })?;
            if data.len() == n {
                return Err(Error::format(
                    path,
                    format!(
                        "more values than the header announces ({cells} cells, valuedim {dim})"
                    ),
                ));
            }
            data.push(v);
        }
    }
    if data.len() != n {
        return Err(Error::format(
            path,
            format!(
                "truncated text data: {} of {n} numbers ({cells} cells, valuedim {dim})",
                data.len(),
            ),
        ));
    }
    if !ended {
        return Err(Error::format(path, "text data lacks '# End: Data Text'"));
    }
    Ok(data)
}

/// Reads the control value and `n` numbers (`n / dim` cells of `dim` components).
fn read_binary(
    path: &Path,
    rest: &[u8],
    n: usize,
    dim: usize,
    width: usize,
    big_endian: bool,
) -> Result<Vec<f32>> {
    let need = (n + 1) * width;
    if rest.len() < need {
        return Err(Error::format(
            path,
            format!(
                "truncated binary data: {} bytes where {need} are needed for {} cells, \
                 valuedim {dim}",
                rest.len(),
                n / dim.max(1)
            ),
        ));
    }
    let value = |i: usize| -> f64 {
        let b = &rest[i * width..(i + 1) * width];
        match (width, big_endian) {
            (4, true) => f32::from_be_bytes([b[0], b[1], b[2], b[3]]) as f64,
            (4, false) => f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
            (_, true) => f64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
            (_, false) => f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
        }
    };
    let expected = if width == 4 {
        1234567.0
    } else {
        123456789012345.0
    };
    let control = value(0);
    if control != expected {
        let order = if big_endian { "big" } else { "little" };
        return Err(Error::format(
            path,
            format!(
                "bad OVF binary {width} control value {control:e} (expected {expected}, \
                 {order}-endian)"
            ),
        ));
    }
    Ok((1..=n).map(|i| value(i) as f32).collect())
}

impl OvfField {
    /// The 3-component field as an [`Ovf`]; any other `valuedim` is an error naming `path`.
    pub fn into_ovf(self, path: &Path) -> Result<Ovf> {
        if self.valuedim != 3 {
            let what = if self.valuedim == 1 {
                format!(
                    "a scalar field ('{}'), not a magnetisation",
                    self.value_labels
                        .first()
                        .map(String::as_str)
                        .unwrap_or(&self.title)
                )
            } else {
                format!("a {}-component field, not a magnetisation", self.valuedim)
            };
            return Err(Error::format(
                path,
                format!(
                    "unsupported OVF valuedim {} (a magnetisation needs 3 components): the file \
                     holds {what}",
                    self.valuedim
                ),
            ));
        }
        let data = self
            .values
            .chunks_exact(3)
            .map(|c| [c[0], c[1], c[2]])
            .collect();
        Ok(Ovf {
            nx: self.nx,
            ny: self.ny,
            nz: self.nz,
            step: self.step,
            data,
            title: self.title,
            value_multiplier: self.value_multiplier,
            value_units: self.value_units,
            base: self.base,
        })
    }

    /// The whole field as (nz, valuedim, ny, nx), component-first per layer, values multiplied
    /// by `value_multiplier` when `multiplied`, as stored otherwise.
    pub fn to_layers_chw(&self, multiplied: bool) -> Vec<f32> {
        let (plane, d) = (self.nx * self.ny, self.valuedim);
        let mut out = vec![0f32; self.values.len()];
        let m = self.value_multiplier;
        for (i, v) in self.values.iter().enumerate() {
            let (cell, c) = (i / d, i % d);
            let (z, p) = (cell / plane, cell % plane);
            out[(z * d + c) * plane + p] = if multiplied && m != 1.0 {
                (*v as f64 * m) as f32
            } else {
                *v
            };
        }
        out
    }

    /// Centre of layer `k` along z, in metres.
    pub fn layer_z(&self, k: usize) -> f64 {
        self.base[2] + k as f64 * self.step[2]
    }

    /// The cell size and the meaning of the values, for [`crate::io::read`].
    pub fn calibration(&self) -> Calibration {
        ovf_calibration(self.step, &self.value_units, self.value_multiplier)
    }
}

fn ovf_calibration(step: [f64; 3], units: &ValueUnits, mult: f64) -> Calibration {
    Calibration {
        pixel_x: Some(step[0]),
        pixel_y: Some(step[1]),
        pixel_z: Some(step[2]),
        source: Some("OVF xstepsize/ystepsize/zstepsize (in meshunit)".into()),
        value_units: Some(units.clone()),
        value_multiplier: Some(mult),
        cell: Some(step),
        ..Calibration::default()
    }
}

/// How the values of an OVF become a magnetisation in A/m: [`Ovf::magnetisation_scale`].
#[derive(Debug, Clone, PartialEq)]
pub struct MagnetisationScale {
    /// Multiplies the values (after the `valuemultiplier`): 1 for A/m, Ms for unit vectors.
    pub scale: f64,
    /// What the values were taken as, for logs and metadata.
    pub description: String,
    /// Set when the header and the data disagree and the data decided.
    pub warning: Option<String>,
}

/// One z layer of an [`Ovf`] field.
#[derive(Debug, Clone, PartialEq)]
pub struct OvfLayer {
    /// Layer index (0 = lowest z).
    pub index: usize,
    /// Centre of the layer along z, in metres (same frame as the file's `zbase`/`zmin`).
    pub z: f64,
    /// The layer as (3, ny, nx), component-first, values as stored (not multiplied).
    pub data: Vec<f32>,
}

impl Ovf {
    /// Centre of layer `k` along z, in metres.
    pub fn layer_z(&self, k: usize) -> f64 {
        self.base[2] + k as f64 * self.step[2]
    }

    /// Layer `k` as (3, ny, nx), component-first, values as stored; `None` past the last.
    pub fn layer(&self, k: usize) -> Option<OvfLayer> {
        if k >= self.nz {
            return None;
        }
        let plane = self.nx * self.ny;
        let cells = self.data.get(k * plane..(k + 1) * plane)?;
        let mut data = vec![0f32; 3 * plane];
        for (p, v) in cells.iter().enumerate() {
            for (c, &x) in v.iter().enumerate() {
                data[c * plane + p] = x;
            }
        }
        Some(OvfLayer {
            index: k,
            z: self.layer_z(k),
            data,
        })
    }

    /// Every layer, lowest z first (see [`Ovf::layer`]).
    pub fn layers(&self) -> Vec<OvfLayer> {
        (0..self.nz).filter_map(|k| self.layer(k)).collect()
    }

    /// A copy with the values multiplied by `value_multiplier` (which becomes 1).
    pub fn multiplied(&self) -> Ovf {
        let m = self.value_multiplier;
        let mut o = self.clone();
        if m != 1.0 {
            for v in &mut o.data {
                *v = v.map(|x| (x as f64 * m) as f32);
            }
        }
        o.value_multiplier = 1.0;
        o
    }

    /// The smallest non-zero and the largest vector length, values multiplied by
    /// `value_multiplier`; `None` when every vector is zero. Unit vectors give (1, 1) inside
    /// the magnet; an A/m file gives about (Ms, Ms).
    pub fn norm_range(&self) -> Option<(f64, f64)> {
        let m = self.value_multiplier.abs();
        let mut range: Option<(f64, f64)> = None;
        for v in &self.data {
            let n = v.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt() * m;
            if n > 0.0 {
                let (lo, hi) = range.unwrap_or((n, n));
                range = Some((lo.min(n), hi.max(n)));
            }
        }
        range
    }

    /// How the values (multiplied by `value_multiplier`) become A/m, with `ms` (A/m) for unit
    /// vectors: `A/m` as they are, unitless as unit vectors times `ms`. The data decide where the
    /// header cannot: an `A/m` label on vectors no longer than 1.5 (older mumax3 wrote m so) is
    /// unit vectors, warned; no label with vectors up to 1.5 long is unit vectors, from 100 on
    /// A/m, warned, and in between an error; other units are an error. `path` names the file in
    /// errors.
    pub fn magnetisation_scale(&self, ms: f64, path: &Path) -> Result<MagnetisationScale> {
        let max_norm = self.norm_range().map_or(0.0, |r| r.1);
        let unit = |description: String, warning: Option<String>| MagnetisationScale {
            scale: ms,
            description,
            warning,
        };
        let apm = |description: String, warning: Option<String>| MagnetisationScale {
            scale: 1.0,
            description,
            warning,
        };
        Ok(match &self.value_units {
            ValueUnits::AmperePerMetre if max_norm <= 1.5 => unit(
                format!("labelled A/m but of length <= {max_norm:.3}: unit vectors, multiplied by Ms {ms:.4e} A/m"),
                Some(format!(
                    "valueunits A/m but no vector is longer than {max_norm:.3}: taken as unit vectors (as older mumax3 wrote m), multiplied by Ms {ms:.4e} A/m"
                )),
            ),
            ValueUnits::AmperePerMetre => apm(
                "magnetisation in A/m (valueunits A/m), used as it is".into(),
                None,
            ),
            ValueUnits::Unitless => unit(
                format!("unit vectors (unitless valueunits), multiplied by Ms {ms:.4e} A/m"),
                None,
            ),
            ValueUnits::Unspecified if max_norm <= 1.5 => unit(
                format!("no valueunits, vectors of length <= {max_norm:.3}: unit vectors, multiplied by Ms {ms:.4e} A/m"),
                None,
            ),
            ValueUnits::Unspecified if max_norm >= 100.0 => apm(
                format!("no valueunits, vectors up to {max_norm:.3e}: taken as A/m"),
                Some(format!(
                    "no valueunits in the header; vectors up to {max_norm:.3e} long are taken as A/m"
                )),
            ),
            ValueUnits::Unspecified => {
                return Err(Error::format(
                    path,
                    format!("no valueunits in the header and vectors up to {max_norm:.3} long: neither unit vectors nor A/m; add a valueunits line"),
                ))
            }
            ValueUnits::Other(u) => {
                return Err(Error::format(
                    path,
                    format!("values in '{u}' are neither a magnetisation in A/m nor unit vectors"),
                ))
            }
        })
    }

    /// Whether the values are a magnetisation in A/m (else unit vectors or other units).
    pub fn is_magnetisation(&self) -> bool {
        self.value_units == ValueUnits::AmperePerMetre
    }

    /// The cell size and the meaning of the values.
    pub fn calibration(&self) -> Calibration {
        ovf_calibration(self.step, &self.value_units, self.value_multiplier)
    }

    /// Component-first image (3, ny, nx) of the z-averaged vectors, row = y index, col = x
    /// index, rows in file order (y increasing with the row index). Values are as stored (not
    /// multiplied by `value_multiplier`).
    pub fn to_chw(&self) -> Vec<f32> {
        let plane = self.nx * self.ny;
        let mut sum = vec![0f64; 3 * plane];
        for (i, v) in self.data.iter().enumerate() {
            let p = i % plane.max(1);
            for (c, &x) in v.iter().enumerate() {
                sum[c * plane + p] += x as f64;
            }
        }
        let inv = 1.0 / self.nz.max(1) as f64;
        sum.into_iter().map(|s| (s * inv) as f32).collect()
    }
}

/// Writes `ovf` as an OVF 2.0 file with `Binary 4` (little-endian f32) data. OVF 2.0 has no
/// value multiplier, so the stored values are `data * value_multiplier`.
pub fn write_ovf2_binary4(path: &Path, ovf: &Ovf) -> Result<()> {
    write_ovf(path, ovf, 2, OvfEncoding::Binary4)
}

/// Writes `ovf` as an OVF file of `version` 1 (big-endian binary, `valuemultiplier` kept) or 2
/// (little-endian binary, values multiplied by `value_multiplier`), data encoded as `encoding`.
pub fn write_ovf(path: &Path, ovf: &Ovf, version: u8, encoding: OvfEncoding) -> Result<()> {
    let op = "write_ovf";
    if version != 1 && version != 2 {
        return Err(Error::arg(op, format!("OVF version {version} (1 or 2)")));
    }
    let n = ovf.nx * ovf.ny * ovf.nz;
    if n == 0 || ovf.data.len() != n {
        return Err(Error::arg(
            op,
            format!(
                "{} vectors for a {}x{}x{} mesh",
                ovf.data.len(),
                ovf.nx,
                ovf.ny,
                ovf.nz
            ),
        ));
    }
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut out = Vec::with_capacity(n * 13 + 1024);
    let title: String = ovf.title.replace(['\n', '\r'], " ");
    let [dx, dy, dz] = ovf.step;
    let mut h = if version == 1 {
        String::from("# OOMMF: rectangular mesh v1.0\n")
    } else {
        String::from("# OOMMF OVF 2.0\n")
    };
    h += "# Segment count: 1\n# Begin: Segment\n# Begin: Header\n";
    h += &format!("# Title: {title}\n# meshtype: rectangular\n# meshunit: m\n");
    let (nx, ny, nz) = (ovf.nx as f64, ovf.ny as f64, ovf.nz as f64);
    let [bx, by, bz] = ovf.base;
    let min = [bx - dx / 2., by - dy / 2., bz - dz / 2.];
    h += &format!(
        "# xmin: {}\n# ymin: {}\n# zmin: {}\n",
        min[0], min[1], min[2]
    );
    h += &format!(
        "# xmax: {}\n# ymax: {}\n# zmax: {}\n",
        min[0] + nx * dx,
        min[1] + ny * dy,
        min[2] + nz * dz
    );
    let unit = ovf
        .value_units
        .as_header()
        .map(|u| u.replace(['\n', '\r'], " "));
    let mult = if version == 1 {
        if let Some(u) = &unit {
            h += &format!("# valueunit: {u}\n");
        }
        h += &format!("# valuemultiplier: {}\n", ovf.value_multiplier);
        1.0
    } else {
        h += "# valuedim: 3\n# valuelabels: x y z\n";
        if let Some(u) = &unit {
            let units = if u.contains(char::is_whitespace) {
                u.clone()
            } else {
                format!("{u} {u} {u}")
            };
            h += &format!("# valueunits: {units}\n");
        }
        ovf.value_multiplier
    };
    h += &format!("# xbase: {bx}\n# ybase: {by}\n# zbase: {bz}\n");
    h += &format!(
        "# xnodes: {}\n# ynodes: {}\n# znodes: {}\n",
        ovf.nx, ovf.ny, ovf.nz
    );
    h += &format!("# xstepsize: {dx}\n# ystepsize: {dy}\n# zstepsize: {dz}\n");
    let kind = match encoding {
        OvfEncoding::Text => "Text",
        OvfEncoding::Binary4 => "Binary 4",
        OvfEncoding::Binary8 => "Binary 8",
    };
    h += &format!("# End: Header\n# Begin: Data {kind}\n");
    out.extend_from_slice(h.as_bytes());
    let scaled = |x: f32| {
        if mult == 1.0 {
            x
        } else {
            (x as f64 * mult) as f32
        }
    };
    let be = version == 1;
    match encoding {
        OvfEncoding::Text => {
            for v in &ovf.data {
                let [a, b, c] = v.map(scaled);
                writeln!(out, "{a} {b} {c}").map_err(io)?;
            }
        }
        OvfEncoding::Binary4 => {
            let values =
                std::iter::once(1234567.0f32).chain(ovf.data.iter().flat_map(|v| v.map(scaled)));
            for x in values {
                out.extend_from_slice(&if be { x.to_be_bytes() } else { x.to_le_bytes() });
            }
            out.push(b'\n');
        }
        OvfEncoding::Binary8 => {
            let values = std::iter::once(123456789012345.0f64)
                .chain(ovf.data.iter().flat_map(|v| v.map(|x| scaled(x) as f64)));
            for x in values {
                out.extend_from_slice(&if be { x.to_be_bytes() } else { x.to_le_bytes() });
            }
            out.push(b'\n');
        }
    }
    out.extend_from_slice(format!("# End: Data {kind}\n# End: Segment\n").as_bytes());
    std::fs::write(path, out).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn tmp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("magprior-ovf-{}-{name}", std::process::id()))
    }

    fn sample() -> Ovf {
        let (nx, ny, nz) = (5, 4, 2);
        let data = (0..nx * ny * nz)
            .map(|i| {
                let t = i as f32 * 0.37;
                [t.cos() / 3.0, t.sin() * 1e-7, -1.5e9 + t]
            })
            .collect();
        Ovf {
            nx,
            ny,
            nz,
            step: [5e-9, 4e-9, 2.5e-9],
            data,
            title: "m".into(),
            value_multiplier: 1.0,
            value_units: ValueUnits::Unitless,
            base: [2.5e-9, 2e-9, 1.25e-9],
        }
    }

    fn round_trip(version: u8, enc: OvfEncoding) {
        let o = sample();
        let p = tmp(&format!("rt-v{version}-{enc:?}.ovf"));
        write_ovf(&p, &o, version, enc).unwrap();
        let r = read_ovf(&p).unwrap();
        std::fs::remove_file(&p).ok();
        assert_eq!((r.nx, r.ny, r.nz), (o.nx, o.ny, o.nz));
        for k in 0..3 {
            assert!((r.step[k] - o.step[k]).abs() < 1e-20);
        }
        assert_eq!(r.title, "m");
        assert_eq!(r.data, o.data, "v{version} {enc:?}");
    }

    #[test]
    fn round_trips_all_encodings_and_versions() {
        for version in [1, 2] {
            for enc in [
                OvfEncoding::Text,
                OvfEncoding::Binary4,
                OvfEncoding::Binary8,
            ] {
                round_trip(version, enc);
            }
        }
    }

    #[test]
    fn binary4_writer_and_endianness() {
        let o = sample();
        let p = tmp("b4.ovf");
        write_ovf2_binary4(&p, &o).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        let at = bytes.windows(4).position(|w| w == 1234567f32.to_le_bytes());
        assert!(at.is_some(), "OVF 2.0 binary must be little-endian");
        assert_eq!(read_ovf(&p).unwrap(), o);
        write_ovf(&p, &o, 1, OvfEncoding::Binary4).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert!(bytes.windows(4).any(|w| w == 1234567f32.to_be_bytes()));
        std::fs::remove_file(&p).ok();
    }

    #[test]
    fn value_multiplier_kept_in_v1() {
        let mut o = sample();
        o.value_multiplier = 8e5;
        let p = tmp("mult.ovf");
        write_ovf(&p, &o, 1, OvfEncoding::Binary4).unwrap();
        let r = read_ovf(&p).unwrap();
        std::fs::remove_file(&p).ok();
        assert_eq!(r.value_multiplier, 8e5);
        assert_eq!(r.data, o.data);
    }

    #[test]
    fn to_chw_averages_z() {
        let o = sample();
        let chw = o.to_chw();
        assert_eq!(chw.len(), 3 * o.ny * o.nx);
        let (x, y) = (3, 2);
        let a = o.data[y * o.nx + x];
        let b = o.data[(o.ny + y) * o.nx + x];
        for c in 0..3 {
            let want = (a[c] as f64 + b[c] as f64) / 2.0;
            let got = chw[(c * o.ny + y) * o.nx + x] as f64;
            assert!((got - want).abs() <= 1e-6 * want.abs().max(1e-12), "c{c}");
        }
    }

    fn expect_err(p: &Path, needle: &str) {
        let e = read_ovf(p).unwrap_err().to_string();
        std::fs::remove_file(p).ok();
        assert!(e.contains(&p.display().to_string()), "{e}");
        assert!(e.contains(needle), "{e}");
    }

    #[test]
    fn truncated_data_is_an_error() {
        for (enc, needle) in [
            (OvfEncoding::Binary4, "truncated binary"),
            (OvfEncoding::Binary8, "truncated binary"),
            (OvfEncoding::Text, "truncated text"),
        ] {
            let p = tmp(&format!("trunc-{enc:?}.ovf"));
            write_ovf(&p, &sample(), 2, enc).unwrap();
            let bytes = std::fs::read(&p).unwrap();
            std::fs::write(&p, &bytes[..bytes.len() - 200]).unwrap();
            expect_err(&p, needle);
        }
    }

    #[test]
    fn bad_control_value_is_an_error() {
        let p = tmp("ctrl.ovf");
        write_ovf2_binary4(&p, &sample()).unwrap();
        let mut bytes = std::fs::read(&p).unwrap();
        let at = bytes
            .windows(4)
            .position(|w| w == 1234567f32.to_le_bytes())
            .unwrap();
        bytes[at..at + 4].copy_from_slice(&1234567f32.to_be_bytes());
        std::fs::write(&p, &bytes).unwrap();
        expect_err(&p, "control value");
    }

    #[test]
    fn missing_header_keys_are_errors() {
        let p = tmp("keys.ovf");
        write_ovf(&p, &sample(), 2, OvfEncoding::Text).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        for key in ["xnodes", "zstepsize", "valuedim", "meshtype"] {
            let cut: String = text
                .lines()
                .filter(|l| !l.starts_with(&format!("# {key}:")))
                .map(|l| format!("{l}\n"))
                .collect();
            std::fs::write(&p, cut).unwrap();
            expect_err(&p, key);
        }
        std::fs::write(&p, text.replace("valuedim: 3", "valuedim: 1")).unwrap();
        expect_err(&p, "valuedim 1");
        std::fs::write(&p, "hello\n").unwrap();
        expect_err(&p, "not an OVF");
        std::fs::write(&p, text.replace("Data Text", "Data Binary 2")).unwrap();
        expect_err(&p, "binary 2");
        expect_missing_file();
    }

    fn expect_missing_file() {
        let p = tmp("does-not-exist.ovf");
        let e = read_ovf(&p).unwrap_err();
        assert!(matches!(e, Error::Io { .. }));
        assert!(e.to_string().contains("does-not-exist.ovf"));
    }

    #[test]
    fn mumax_example_file() {
        let p = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/data/example_mumax.ovf"
        ));
        if !p.exists() {
            eprintln!("skipping mumax_example_file: {} not found", p.display());
            return;
        }
        let o = read_ovf(p).unwrap();
        assert_eq!((o.nx, o.ny, o.nz), (500, 500, 1));
        assert_eq!(o.step, [5e-9, 5e-9, 5e-9]);
        assert_eq!(o.title, "m");
        assert_eq!(o.value_multiplier, 1.0);
        let mags: Vec<f32> = o
            .data
            .iter()
            .map(|v| v.iter().map(|c| c * c).sum())
            .collect();
        // Unit vectors inside the magnet, exact zeros outside it.
        assert!(mags.iter().all(|&m| m == 0.0 || (m - 1.0).abs() < 1e-4));
        let inside = mags.iter().filter(|&&m| m > 0.5).count();
        assert!(inside > 10_000 && inside < 250_000, "{inside}");
        assert!(o.data.iter().all(|v| v[2].abs() < 1e-3), "in-plane");
        // Cell (x=450, y=250) on the right-hand bar points along +x; (250, 50) along +y.
        assert!(o.data[250 * 500 + 450][0] > 0.99);
        assert!(o.data[50 * 500 + 250][1] > 0.99);
        let chw = o.to_chw();
        assert_eq!(chw[250 * 500 + 450], o.data[250 * 500 + 450][0]);
        assert_eq!(chw[500 * 500 + 50 * 500 + 250], o.data[50 * 500 + 250][1]);
    }
}
