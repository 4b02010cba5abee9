//! Greyscale images as f32 arrays: read TIFF (8/16/32-bit integer, 16/32/64-bit float,
//! multi-page stacks; pixel size from ImageJ or OME-XML metadata) and PNG (any colour type,
//! as luminance in [0, 1]); write f32 TIFF.

use super::calibration::{length_unit_in_metres, Calibration};
use crate::error::{Error, Result};
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;
use tiff::decoder::{ifd::Value, Decoder, DecodingResult};
use tiff::encoder::{colortype::Gray32Float, TiffEncoder};
use tiff::tags::Tag;
use tiff::{ColorType, TiffError};

/// A stack of greyscale frames, `frames x height x width`, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    /// Number of frames (pages); 1 for a single image.
    pub frames: usize,
    /// Rows per frame.
    pub height: usize,
    /// Columns per frame.
    pub width: usize,
    /// Pixel values, frame by frame, each frame row by row.
    pub data: Vec<f32>,
}

fn io_err(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn tiff_err(path: &Path, e: TiffError) -> Error {
    match e {
        TiffError::IoError(source) if source.kind() != std::io::ErrorKind::UnexpectedEof => {
            io_err(path, source)
        }
        TiffError::IoError(_) => Error::format(path, "TIFF file is truncated"),
        e => Error::format(path, format!("TIFF: {e}")),
    }
}

/// Reads a greyscale TIFF: 8/16/32-bit unsigned or signed integers (raw values, not rescaled)
/// or 16/32/64-bit floats, one frame per page (ImageJ stacks give one frame per slice). All
/// pages must have the same size; colour TIFFs are rejected.
pub fn read_tiff(path: &Path) -> Result<Image> {
    read_tiff_calibrated(path).map(|(img, _)| img)
}

/// [`read_tiff`] plus the pixel size the file records (first page's tags), x and y separately:
///
/// - OME-TIFF: `PhysicalSizeX`/`PhysicalSizeY` of the OME-XML `Pixels` element, in
///   `PhysicalSizeXUnit`/`PhysicalSizeYUnit` (default µm); `PhysicalSizeZ` for the frames.
/// - ImageJ: `XResolution`/`YResolution` (pixels per unit) with the description's `unit=`
///   (and `yunit=` where it differs); `spacing=` for the frames. `unit=pixel`, a unit that is
///   not a length, or no unit at all leave the image uncalibrated.
///
/// The TIFF `ResolutionUnit` (inch/cm print resolution) alone is not taken as a pixel size.
pub fn read_tiff_calibrated(path: &Path) -> Result<(Image, Calibration)> {
    let file = File::open(path).map_err(|e| io_err(path, e))?;
    let mut dec = Decoder::new(BufReader::new(file)).map_err(|e| tiff_err(path, e))?;
    let cal = tiff_calibration(&mut dec);
    let (mut width, mut height) = (0, 0);
    let mut data = Vec::new();
    let mut frames = 0;
    loop {
        let (w, h) = dec.dimensions().map_err(|e| tiff_err(path, e))?;
        let (w, h) = (w as usize, h as usize);
        let page = frames + 1;
        match dec.colortype().map_err(|e| tiff_err(path, e))? {
            ColorType::Gray(8 | 16 | 32 | 64) => {}
            ColorType::Gray(b) => {
                return Err(Error::format(
                    path,
                    format!("page {page}: unsupported {b}-bit greyscale TIFF (8/16/32/64 bit)"),
                ))
            }
            c => {
                return Err(Error::format(
                    path,
                    format!("page {page}: unsupported {c:?} TIFF, only greyscale images"),
                ))
            }
        }
        if frames == 0 {
            (width, height) = (w, h);
        } else if (w, h) != (width, height) {
            return Err(Error::format(
                path,
                format!("page {page} is {w}x{h}, page 1 is {width}x{height}"),
            ));
        }
        let page_data = dec.read_image().map_err(|e| tiff_err(path, e))?;
        let before = data.len();
        match page_data {
            DecodingResult::U8(v) => data.extend(v.into_iter().map(f32::from)),
            DecodingResult::U16(v) => data.extend(v.into_iter().map(f32::from)),
            DecodingResult::U32(v) => data.extend(v.into_iter().map(|x| x as f32)),
            DecodingResult::U64(v) => data.extend(v.into_iter().map(|x| x as f32)),
            DecodingResult::I8(v) => data.extend(v.into_iter().map(f32::from)),
            DecodingResult::I16(v) => data.extend(v.into_iter().map(f32::from)),
            DecodingResult::I32(v) => data.extend(v.into_iter().map(|x| x as f32)),
            DecodingResult::I64(v) => data.extend(v.into_iter().map(|x| x as f32)),
            DecodingResult::F16(v) => data.extend(v.into_iter().map(f32::from)),
            DecodingResult::F32(v) => data.extend(v),
            DecodingResult::F64(v) => data.extend(v.into_iter().map(|x| x as f32)),
        }
        if data.len() - before != w * h {
            return Err(Error::format(
                path,
                format!(
                    "page {page}: {} samples for a {w}x{h} image",
                    data.len() - before
                ),
            ));
        }
        frames += 1;
        if !dec.more_images() {
            break;
        }
        dec.next_image().map_err(|e| tiff_err(path, e))?;
    }
    Ok((
        Image {
            frames,
            height,
            width,
            data,
        },
        cal,
    ))
}

/// A rational or floating tag value as f64.
fn tag_f64(v: Value) -> Option<f64> {
    let x = match v {
        Value::Rational(n, d) => n as f64 / d as f64,
        Value::SRational(n, d) => n as f64 / d as f64,
        Value::Float(x) => x as f64,
        Value::Double(x) => x,
        Value::Short(x) => x as f64,
        Value::Unsigned(x) => x as f64,
        Value::List(v) => return v.into_iter().next().and_then(tag_f64),
        _ => return None,
    };
    x.is_finite().then_some(x)
}

/// The calibration from the current (first) page's tags; missing or unreadable metadata
/// means "uncalibrated", never an error.
fn tiff_calibration<R: std::io::Read + std::io::Seek>(dec: &mut Decoder<R>) -> Calibration {
    let desc = description(dec);
    if let Some(cal) = ome_calibration(&desc) {
        return cal;
    }
    let xres = dec
        .find_tag(Tag::XResolution)
        .ok()
        .flatten()
        .and_then(tag_f64);
    let yres = dec
        .find_tag(Tag::YResolution)
        .ok()
        .flatten()
        .and_then(tag_f64);
    imagej_calibration(&desc, xres, yres)
}

/// The `key=value` lines of an ImageJ description (`None` when it is not one).
fn imagej_fields(desc: &str) -> Option<Vec<(&str, &str)>> {
    if !desc.trim_start().starts_with("ImageJ=") {
        return None;
    }
    Some(
        desc.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim(), v.trim()))
            .collect(),
    )
}

/// The first page's `ImageDescription`: UTF-8 when it is, else Latin-1 (some writers store
/// `µ` as the single byte 0xB5); empty when absent or unreadable.
fn description<R: std::io::Read + std::io::Seek>(dec: &mut Decoder<R>) -> String {
    if let Ok(Some(Value::Ascii(s))) = dec.find_tag(Tag::ImageDescription) {
        return s;
    }
    let mut ifd = dec.image_ifd();
    let Some(entry) = ifd.find_entry(Tag::ImageDescription) else {
        return String::new();
    };
    let n = match usize::try_from(entry.count()) {
        Ok(n) if n <= 16 << 20 => n,
        _ => return String::new(),
    };
    let mut buf = vec![0u8; n];
    match ifd.find_tag_bytes(Tag::ImageDescription, &mut buf, 0) {
        Ok(Some(len)) => buf.truncate(len.min(n)),
        _ => return String::new(),
    }
    if let Some(nul) = buf.iter().position(|&b| b == 0) {
        buf.truncate(nul);
    }
    match String::from_utf8(buf) {
        Ok(s) => s,
        Err(e) => e.into_bytes().iter().map(|&b| b as char).collect(),
    }
}

/// Pixel size from ImageJ's pixels-per-unit resolution and `unit=` (see
/// [`read_tiff_calibrated`]).
pub(crate) fn imagej_calibration(desc: &str, xres: Option<f64>, yres: Option<f64>) -> Calibration {
    let Some(fields) = imagej_fields(desc) else {
        return Calibration::default();
    };
    let get = |k: &str| fields.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
    let Some(unit) = get("unit") else {
        return Calibration::default();
    };
    let yunit = get("yunit").unwrap_or(unit);
    let size = |res: Option<f64>, unit: &str| -> Option<f64> {
        let per_metre = length_unit_in_metres(unit)?;
        let res = res.filter(|r| *r > 0.0)?;
        Some(per_metre / res)
    };
    let pixel_x = size(xres, unit);
    let pixel_y = size(yres, yunit);
    let pixel_z = get("spacing")
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .and_then(|s| Some(s * length_unit_in_metres(get("zunit").unwrap_or(unit))?));
    if pixel_x.is_none() && pixel_y.is_none() {
        return Calibration::default();
    }
    Calibration {
        pixel_x,
        pixel_y,
        pixel_z,
        source: Some(format!(
            "TIFF XResolution/YResolution (pixels per unit) with ImageJ unit={unit}"
        )),
        ..Calibration::default()
    }
}

/// Decodes the XML character references and entities that appear in attribute values.
fn xml_unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let Some(end) = tail.find(';') else {
            out.push_str(tail);
            return out;
        };
        let ent = &tail[1..end];
        let c = match ent {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => ent
                .strip_prefix("#x")
                .or_else(|| ent.strip_prefix("#X"))
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| ent.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match c {
            Some(c) => out.push(c),
            None => out.push_str(&tail[..=end]),
        }
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The value of attribute `name` in an XML start tag's text.
fn xml_attr(tag: &str, name: &str) -> Option<String> {
    let mut from = 0;
    while let Some(i) = tag[from..].find(name) {
        let at = from + i;
        from = at + name.len();
        let before_ok = tag[..at]
            .chars()
            .next_back()
            .is_some_and(char::is_whitespace);
        let rest = tag[from..].trim_start();
        let Some(rest) = rest.strip_prefix('=').map(str::trim_start) else {
            continue;
        };
        if !before_ok {
            continue;
        }
        let q = rest.chars().next()?;
        if q != '"' && q != '\'' {
            return None;
        }
        let body = &rest[1..];
        return body.find(q).map(|end| xml_unescape(&body[..end]));
    }
    None
}

/// Pixel size from OME-XML (`None` when `desc` is not OME-XML or has no `Pixels` element).
pub(crate) fn ome_calibration(desc: &str) -> Option<Calibration> {
    if !desc.contains("<OME") && !desc.contains(":OME") {
        return None;
    }
    // The first Pixels start tag, with or without a namespace prefix.
    let tag = desc.split('<').skip(1).find_map(|piece| {
        let end = piece.find('>').unwrap_or(piece.len());
        let tag = &piece[..end];
        let name = tag.split(|c: char| c.is_whitespace() || c == '/').next()?;
        let local = name.rsplit(':').next()?;
        (local == "Pixels").then_some(tag)
    })?;
    let size = |axis: &str| -> Option<(f64, String)> {
        let v: f64 = xml_attr(tag, &format!("PhysicalSize{axis}"))?
            .trim()
            .parse()
            .ok()?;
        if !(v.is_finite() && v > 0.0) {
            return None;
        }
        let unit = xml_attr(tag, &format!("PhysicalSize{axis}Unit")).unwrap_or("µm".into());
        Some((v * length_unit_in_metres(&unit)?, unit))
    };
    let x = size("X");
    let y = size("Y");
    if x.is_none() && y.is_none() {
        return Some(Calibration::default());
    }
    let unit = x
        .as_ref()
        .or(y.as_ref())
        .map(|(_, u)| u.clone())
        .unwrap_or_default();
    Some(Calibration {
        pixel_x: x.map(|(v, _)| v),
        pixel_y: y.map(|(v, _)| v),
        pixel_z: size("Z").map(|(v, _)| v),
        source: Some(format!(
            "OME-XML Pixels PhysicalSizeX/PhysicalSizeY ({unit})"
        )),
        ..Calibration::default()
    })
}

/// Reads a PNG (grey, grey+alpha, RGB, RGBA or palette; 1 to 16 bit) as one frame of
/// luminance in [0, 1]: grey as is, colour as `0.2126 R + 0.7152 G + 0.0722 B` of the stored
/// (gamma-encoded) values. Alpha is ignored.
pub fn read_png_grey(path: &Path) -> Result<Image> {
    let file = File::open(path).map_err(|e| io_err(path, e))?;
    let png_err = |e: png::DecodingError| match e {
        png::DecodingError::IoError(s) if s.kind() != std::io::ErrorKind::UnexpectedEof => {
            io_err(path, s)
        }
        png::DecodingError::IoError(_) => Error::format(path, "PNG file is truncated"),
        e => Error::format(path, format!("PNG: {e}")),
    };
    let mut dec = png::Decoder::new(BufReader::new(file));
    dec.set_transformations(png::Transformations::EXPAND);
    let mut reader = dec.read_info().map_err(png_err)?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| Error::format(path, "PNG image too large"))?;
    let mut buf = vec![0u8; size];
    let info = reader.next_frame(&mut buf).map_err(png_err)?;
    let (w, h) = (info.width as usize, info.height as usize);
    let channels = info.color_type.samples();
    let (max, sixteen) = match info.bit_depth {
        png::BitDepth::Eight => (255.0f32, false),
        png::BitDepth::Sixteen => (65535.0, true),
        d => {
            return Err(Error::format(
                path,
                format!("PNG bit depth {d:?} after expansion"),
            ))
        }
    };
    let bytes_per = if sixteen { 2 } else { 1 };
    let row_len = info.line_size;
    if row_len < w * channels * bytes_per || buf.len() < row_len * h {
        return Err(Error::format(
            path,
            "PNG frame smaller than its header says",
        ));
    }
    let sample = |row: &[u8], i: usize| -> f32 {
        if sixteen {
            u16::from_be_bytes([row[2 * i], row[2 * i + 1]]) as f32
        } else {
            row[i] as f32
        }
    };
    let mut data = Vec::with_capacity(w * h);
    for r in 0..h {
        let row = &buf[r * row_len..(r + 1) * row_len];
        for c in 0..w {
            let i = c * channels;
            let lum = if channels >= 3 {
                0.2126 * sample(row, i) + 0.7152 * sample(row, i + 1) + 0.0722 * sample(row, i + 2)
            } else {
                sample(row, i)
            };
            data.push((lum / max).clamp(0.0, 1.0));
        }
    }
    Ok(Image {
        frames: 1,
        height: h,
        width: w,
        data,
    })
}

/// Writes `img` as an uncompressed 32-bit float greyscale TIFF, one page per frame.
pub fn write_tiff_f32(path: &Path, img: &Image) -> Result<()> {
    let op = "write_tiff_f32";
    let plane = img.height * img.width;
    if img.frames == 0 || plane == 0 || img.data.len() != img.frames * plane {
        return Err(Error::arg(
            op,
            format!(
                "{} values for {} frames of {}x{}",
                img.data.len(),
                img.frames,
                img.height,
                img.width
            ),
        ));
    }
    let (Ok(w), Ok(h)) = (u32::try_from(img.width), u32::try_from(img.height)) else {
        return Err(Error::arg(op, "image too large for TIFF"));
    };
    let file = File::create(path).map_err(|e| io_err(path, e))?;
    let mut out = BufWriter::new(file);
    let mut enc = TiffEncoder::new(&mut out).map_err(|e| tiff_err(path, e))?;
    for frame in img.data.chunks_exact(plane) {
        enc.write_image::<Gray32Float>(w, h, frame)
            .map_err(|e| tiff_err(path, e))?;
    }
    out.flush().map_err(|e| io_err(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use tiff::encoder::colortype::{Gray16, RGB8};

    fn tmp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("magprior-img-{}-{name}", std::process::id()))
    }

    fn ramp(frames: usize, h: usize, w: usize) -> Image {
        let data = (0..frames * h * w)
            .map(|i| (i as f32 * 0.731).sin() * 1e-3 - 2.5)
            .collect();
        Image {
            frames,
            height: h,
            width: w,
            data,
        }
    }

    #[test]
    fn f32_round_trip_single_and_stack() {
        for frames in [1, 3] {
            let img = ramp(frames, 7, 11);
            let p = tmp(&format!("f32-{frames}.tif"));
            write_tiff_f32(&p, &img).unwrap();
            let r = read_tiff(&p).unwrap();
            std::fs::remove_file(&p).ok();
            assert_eq!(r, img);
        }
    }

    #[test]
    fn u16_raw_values() {
        let (w, h) = (9u32, 5u32);
        let v: Vec<u16> = (0..w * h).map(|i| (i * 1400) as u16).collect();
        let p = tmp("u16.tif");
        let mut enc = TiffEncoder::new(File::create(&p).unwrap()).unwrap();
        enc.write_image::<Gray16>(w, h, &v).unwrap();
        let r = read_tiff(&p).unwrap();
        std::fs::remove_file(&p).ok();
        assert_eq!((r.frames, r.height, r.width), (1, 5, 9));
        let want: Vec<f32> = v.iter().map(|&x| x as f32).collect();
        assert_eq!(r.data, want);
    }

    #[test]
    fn rgb_tiff_and_corrupt_files_are_errors() {
        let p = tmp("rgb.tif");
        let mut enc = TiffEncoder::new(File::create(&p).unwrap()).unwrap();
        enc.write_image::<RGB8>(2, 2, &[0u8; 12]).unwrap();
        let e = read_tiff(&p).unwrap_err().to_string();
        assert!(e.contains("rgb.tif") && e.contains("greyscale"), "{e}");

        write_tiff_f32(&p, &ramp(1, 20, 20)).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
        let e = read_tiff(&p).unwrap_err().to_string();
        assert!(e.contains("rgb.tif"), "{e}");

        std::fs::write(&p, b"this is not an image at all").unwrap();
        let e = read_tiff(&p).unwrap_err().to_string();
        assert!(e.contains("rgb.tif"), "{e}");
        let e = read_png_grey(&p).unwrap_err().to_string();
        assert!(e.contains("rgb.tif") && e.contains("PNG"), "{e}");
        std::fs::remove_file(&p).ok();

        let e = read_tiff(&tmp("missing.tif")).unwrap_err();
        assert!(matches!(e, Error::Io { .. }) && e.to_string().contains("missing.tif"));
    }

    fn write_png(p: &Path, w: u32, h: u32, ct: png::ColorType, depth: png::BitDepth, d: &[u8]) {
        let mut enc = png::Encoder::new(BufWriter::new(File::create(p).unwrap()), w, h);
        enc.set_color(ct);
        enc.set_depth(depth);
        let mut wr = enc.write_header().unwrap();
        wr.write_image_data(d).unwrap();
        wr.finish().unwrap();
    }

    #[test]
    fn png_mask_round_trip() {
        let (w, h) = (6usize, 4usize);
        let mask: Vec<u8> = (0..w * h)
            .map(|i| if (i % w) > 2 { 255 } else { 0 })
            .collect();
        let p = tmp("mask.png");
        write_png(
            &p,
            w as u32,
            h as u32,
            png::ColorType::Grayscale,
            png::BitDepth::Eight,
            &mask,
        );
        let r = read_png_grey(&p).unwrap();
        assert_eq!((r.frames, r.height, r.width), (1, h, w));
        let want: Vec<f32> = mask.iter().map(|&m| m as f32 / 255.0).collect();
        assert_eq!(r.data, want);

        // RGBA 8-bit: white opaque, red, and half-transparent black.
        let rgba = [255, 255, 255, 255, 255, 0, 0, 255, 0, 0, 0, 128];
        write_png(&p, 3, 1, png::ColorType::Rgba, png::BitDepth::Eight, &rgba);
        let r = read_png_grey(&p).unwrap();
        assert!((r.data[0] - 1.0).abs() < 1e-5 && r.data[2] == 0.0);
        assert!((r.data[1] - 0.2126).abs() < 1e-5);

        // 16-bit grey+alpha.
        let ga16 = [0xff, 0xff, 0, 0, 0x80, 0x00, 0xff, 0xff];
        write_png(
            &p,
            2,
            1,
            png::ColorType::GrayscaleAlpha,
            png::BitDepth::Sixteen,
            &ga16,
        );
        let r = read_png_grey(&p).unwrap();
        std::fs::remove_file(&p).ok();
        assert_eq!(r.data[0], 1.0);
        assert!((r.data[1] - 32768.0 / 65535.0).abs() < 1e-6);
    }
}
