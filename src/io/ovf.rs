//! OOMMF / mumax3 OVF vector-field files: read OVF 1.0 and 2.0 (rectangular mesh, 3 components,
//! data `Text`, `Binary 4` or `Binary 8`) and write them (used by tests to round-trip).

use crate::error::{Error, Result};
use std::io::Write;
use std::path::Path;

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

fn fmt_err(path: &Path, msg: impl Into<String>) -> Error {
    Error::Format {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
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
            .ok_or_else(|| fmt_err(path, format!("OVF header lacks required key '{key}'")))
    }
    fn usize(&self, path: &Path, key: &str) -> Result<usize> {
        let v = self.require(path, key)?;
        match v.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(fmt_err(
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
            .ok_or_else(|| fmt_err(path, format!("OVF header '{key}: {v}' is not a number")))
    }
}

/// Reads an OVF 1.0 or 2.0 file (first segment; rectangular mesh; 3-component values).
pub fn read_ovf(path: &Path) -> Result<Ovf> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_ovf(path, &bytes)
}

fn parse_ovf(path: &Path, bytes: &[u8]) -> Result<Ovf> {
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
            return Err(fmt_err(path, msg));
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
                return Err(fmt_err(
                    path,
                    "unsupported OVF irregular mesh (rectangular meshes only)",
                ));
            } else {
                return Err(fmt_err(
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
        return Err(fmt_err(path, "empty file, not an OVF file"));
    }
    let Some(kind) = data_kind else {
        return Err(fmt_err(path, "OVF file has no 'Begin: Data' section"));
    };
    match hdr.get("meshtype") {
        Some(t) if t.eq_ignore_ascii_case("rectangular") => {}
        Some(t) => return Err(fmt_err(path, format!("unsupported OVF meshtype '{t}'"))),
        None => return Err(fmt_err(path, "OVF header lacks required key 'meshtype'")),
    }
    if hdr.version == 2 {
        let dim = hdr.require(path, "valuedim")?;
        if dim != "3" {
            return Err(fmt_err(
                path,
                format!("unsupported OVF valuedim {dim} (only 3-component fields)"),
            ));
        }
    }
    let unit = match hdr.get("meshunit").map(str::to_ascii_lowercase).as_deref() {
        None | Some("m") => 1.0,
        Some("mm") => 1e-3,
        Some("um") | Some("µm") => 1e-6,
        Some("nm") => 1e-9,
        Some(u) => return Err(fmt_err(path, format!("unsupported OVF meshunit '{u}'"))),
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
    let n = nx
        .checked_mul(ny)
        .and_then(|v| v.checked_mul(nz))
        .filter(|&v| v.checked_mul(24).is_some())
        .ok_or_else(|| fmt_err(path, format!("OVF mesh {nx}x{ny}x{nz} is too large")))?;
    let rest = &bytes[pos..];
    let data = match kind.as_str() {
        "text" => read_text(path, rest, n)?,
        "binary 4" => read_binary(path, rest, n, 4, hdr.version == 1)?,
        "binary 8" => read_binary(path, rest, n, 8, hdr.version == 1)?,
        other => {
            return Err(fmt_err(
                path,
                format!("unsupported OVF data format '{other}' (Text, Binary 4, Binary 8)"),
            ))
        }
    };
    Ok(Ovf {
        nx,
        ny,
        nz,
        step,
        data,
        title: hdr.get("title").unwrap_or_default().to_string(),
        value_multiplier,
    })
}

fn read_text(path: &Path, rest: &[u8], n: usize) -> Result<Vec<[f32; 3]>> {
    let mut data = Vec::with_capacity(n.min(rest.len() / 6 + 1));
    let mut cur = [0f32; 3];
    let mut k = 0;
    let mut pos = 0;
    let mut line_no = 0;
    let mut ended = false;
    while let Some(raw) = next_line(rest, &mut pos) {
        line_no += 1;
        let line = std::str::from_utf8(raw)
            .map_err(|_| fmt_err(path, format!("data line {line_no}: not ASCII text")))?;
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
                fmt_err(
                    path,
                    format!("data line {line_no}: '{tok}' is not a number"),
                )
            })?;
            if data.len() == n {
                return Err(fmt_err(
                    path,
                    format!("more than the {n} vectors the header announces"),
                ));
            }
            cur[k] = v;
            k += 1;
            if k == 3 {
                data.push(cur);
                k = 0;
            }
        }
    }
    if data.len() != n || k != 0 {
        return Err(fmt_err(
            path,
            format!(
                "truncated text data: {} of {n} vectors (header expects {} numbers)",
                data.len(),
                3 * n
            ),
        ));
    }
    if !ended {
        return Err(fmt_err(path, "text data lacks '# End: Data Text'"));
    }
    Ok(data)
}

fn read_binary(
    path: &Path,
    rest: &[u8],
    n: usize,
    width: usize,
    big_endian: bool,
) -> Result<Vec<[f32; 3]>> {
    let need = (3 * n + 1) * width;
    if rest.len() < need {
        return Err(fmt_err(
            path,
            format!(
                "truncated binary data: {} bytes where {need} are needed for {n} vectors",
                rest.len()
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
        return Err(fmt_err(
            path,
            format!(
                "bad OVF binary {width} control value {control:e} (expected {expected}, \
                 {order}-endian)"
            ),
        ));
    }
    Ok((0..n)
        .map(|i| {
            let j = 1 + 3 * i;
            [value(j) as f32, value(j + 1) as f32, value(j + 2) as f32]
        })
        .collect())
}

impl Ovf {
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
    h += "# xmin: 0\n# ymin: 0\n# zmin: 0\n";
    h += &format!(
        "# xmax: {}\n# ymax: {}\n# zmax: {}\n",
        nx * dx,
        ny * dy,
        nz * dz
    );
    let mult = if version == 1 {
        h += &format!(
            "# valueunit: 1\n# valuemultiplier: {}\n",
            ovf.value_multiplier
        );
        1.0
    } else {
        h += "# valuedim: 3\n# valuelabels: x y z\n# valueunits: 1 1 1\n";
        ovf.value_multiplier
    };
    h += &format!(
        "# xbase: {}\n# ybase: {}\n# zbase: {}\n",
        dx / 2.,
        dy / 2.,
        dz / 2.
    );
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
