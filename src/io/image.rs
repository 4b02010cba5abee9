//! Greyscale images as f32 arrays: read TIFF (8/16-bit unsigned, 32-bit float, multi-page
//! stacks) and PNG (any colour type, as luminance in [0, 1]); write f32 TIFF.

use crate::error::{Error, Result};
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;
use tiff::decoder::{Decoder, DecodingResult};
use tiff::encoder::{colortype::Gray32Float, TiffEncoder};
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

fn fmt_err(path: &Path, msg: impl Into<String>) -> Error {
    Error::Format {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
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
        TiffError::IoError(_) => fmt_err(path, "TIFF file is truncated"),
        e => fmt_err(path, format!("TIFF: {e}")),
    }
}

/// Reads a greyscale TIFF: 8/16/32-bit unsigned or signed integers (raw values, not rescaled)
/// or 16/32/64-bit floats, one frame per page (ImageJ stacks give one frame per slice). All
/// pages must have the same size; colour TIFFs are rejected.
pub fn read_tiff(path: &Path) -> Result<Image> {
    let file = File::open(path).map_err(|e| io_err(path, e))?;
    let mut dec = Decoder::new(BufReader::new(file)).map_err(|e| tiff_err(path, e))?;
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
                return Err(fmt_err(
                    path,
                    format!("page {page}: unsupported {b}-bit greyscale TIFF (8/16/32/64 bit)"),
                ))
            }
            c => {
                return Err(fmt_err(
                    path,
                    format!("page {page}: unsupported {c:?} TIFF, only greyscale images"),
                ))
            }
        }
        if frames == 0 {
            (width, height) = (w, h);
        } else if (w, h) != (width, height) {
            return Err(fmt_err(
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
            return Err(fmt_err(
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
    Ok(Image {
        frames,
        height,
        width,
        data,
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
        png::DecodingError::IoError(_) => fmt_err(path, "PNG file is truncated"),
        e => fmt_err(path, format!("PNG: {e}")),
    };
    let mut dec = png::Decoder::new(BufReader::new(file));
    dec.set_transformations(png::Transformations::EXPAND);
    let mut reader = dec.read_info().map_err(png_err)?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| fmt_err(path, "PNG image too large"))?;
    let mut buf = vec![0u8; size];
    let info = reader.next_frame(&mut buf).map_err(png_err)?;
    let (w, h) = (info.width as usize, info.height as usize);
    let channels = info.color_type.samples();
    let (max, sixteen) = match info.bit_depth {
        png::BitDepth::Eight => (255.0f32, false),
        png::BitDepth::Sixteen => (65535.0, true),
        d => {
            return Err(fmt_err(
                path,
                format!("PNG bit depth {d:?} after expansion"),
            ))
        }
    };
    let bytes_per = if sixteen { 2 } else { 1 };
    let row_len = info.line_size;
    if row_len < w * channels * bytes_per || buf.len() < row_len * h {
        return Err(fmt_err(path, "PNG frame smaller than its header says"));
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
