//! TIFF reading: integer and float greyscale, multi-page stacks, the pixel size from ImageJ
//! resolution tags + `unit=` and from OME-XML; the experimental float64 LTEM image in
//! `../shared/data/ltem/`.

mod io_common;

use io_common::{data_file, scratch};
use magprior::io::image::{read_tiff, read_tiff_calibrated};
use magprior::io::{read, FileKind};
use std::fs::File;
use std::path::Path;
use tiff::encoder::colortype::{
    Gray16, Gray32, Gray32Float, Gray64Float, Gray8, GrayI16, GrayI32, GrayI8,
};
use tiff::encoder::{Rational, TiffEncoder};
use tiff::tags::{ResolutionUnit, Tag};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs()
}

/// A one-page f32 TIFF with the given description and resolution (pixels per unit). The
/// encoder only writes ASCII descriptions, so non-ASCII text (UTF-8 or Latin-1 `µ`, as real
/// writers store it) is written as a same-length ASCII placeholder and patched in the file.
fn write_described_bytes(p: &Path, desc: Option<&[u8]>, xres: Rational, yres: Rational) {
    let placeholder = desc.map(|d| "~".repeat(d.len()));
    {
        let mut enc = TiffEncoder::new(File::create(p).unwrap()).unwrap();
        let mut img = enc.new_image::<Gray32Float>(4, 3).unwrap();
        if let Some(d) = &placeholder {
            img.encoder()
                .write_tag(Tag::ImageDescription, d.as_str())
                .unwrap();
        }
        img.x_resolution(xres);
        img.y_resolution(yres);
        img.write_data(&[0.5f32; 12]).unwrap();
    }
    if let (Some(d), Some(ph)) = (desc, placeholder) {
        let mut bytes = std::fs::read(p).unwrap();
        let at = bytes
            .windows(ph.len())
            .position(|w| w == ph.as_bytes())
            .unwrap();
        bytes[at..at + d.len()].copy_from_slice(d);
        std::fs::write(p, bytes).unwrap();
    }
}

fn write_described(p: &Path, desc: Option<&str>, xres: Rational, yres: Rational) {
    write_described_bytes(p, desc.map(str::as_bytes), xres, yres)
}

fn r(n: u32, d: u32) -> Rational {
    Rational { n, d }
}

#[test]
fn integer_and_float_sample_formats() {
    let d = scratch("tiff-types");
    let p = d.join("t.tif");
    let (w, h) = (5u32, 2u32);
    let idx: Vec<u32> = (0..w * h).collect();
    macro_rules! check {
        ($ct:ty, $conv:expr) => {{
            let v: Vec<_> = idx.iter().map($conv).collect();
            TiffEncoder::new(File::create(&p).unwrap())
                .unwrap()
                .write_image::<$ct>(w, h, &v)
                .unwrap();
            let a = read(&p).unwrap();
            assert_eq!(a.kind, FileKind::Tiff);
            assert_eq!(a.shape, vec![2, 5], stringify!($ct));
            let want: Vec<f32> = v.iter().map(|&x| x as f32).collect();
            assert_eq!(a.data, want, stringify!($ct));
            assert_eq!(
                a.calibration.pixel(),
                None,
                "the encoder's 1/1 resolution is no size"
            );
        }};
    }
    check!(Gray8, |&i| (i * 25) as u8);
    check!(GrayI8, |&i| i as i8 - 5);
    check!(Gray16, |&i| (i * 6000) as u16);
    check!(GrayI16, |&i| i as i16 * -3000);
    check!(Gray32, |&i| i * 400_000_000);
    check!(GrayI32, |&i| i as i32 * -100_000);
    check!(Gray32Float, |&i| i as f32 * 0.125 - 1.0);
    check!(Gray64Float, |&i| i as f64 * 1e-3);
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn multi_page_stack_is_frames_h_w() {
    let d = scratch("tiff-stack");
    let p = d.join("stack.tif");
    let (w, h) = (3u32, 2u32);
    {
        let mut enc = TiffEncoder::new(File::create(&p).unwrap()).unwrap();
        for f in 0..4u16 {
            let v: Vec<u16> = (0..(w * h) as u16).map(|i| 100 * f + i).collect();
            enc.write_image::<Gray16>(w, h, &v).unwrap();
        }
    }
    let a = read(&p).unwrap();
    assert_eq!(a.shape, vec![4, 2, 3]);
    // Frame 2, row 1, column 0.
    assert_eq!(a.data[(2 * 2 + 1) * 3], 203.0);
    let img = read_tiff(&p).unwrap();
    assert_eq!((img.frames, img.height, img.width), (4, 2, 3));
    // Pages of different sizes are an error naming the page.
    {
        let mut enc = TiffEncoder::new(File::create(&p).unwrap()).unwrap();
        enc.write_image::<Gray8>(2, 2, &[0; 4]).unwrap();
        enc.write_image::<Gray8>(3, 2, &[0; 6]).unwrap();
    }
    let e = read(&p).unwrap_err().to_string();
    assert!(e.contains("stack.tif") && e.contains("page 2"), "{e}");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn imagej_resolution_and_unit() {
    let d = scratch("tiff-imagej");
    let p = d.join("ij.tif");
    // 5 pixels per nm along x (0.2 nm), 1/2 pixel per nm along y (2 nm).
    write_described(
        &p,
        Some("ImageJ=1.54f\nunit=nm\nmin=0.0\nmax=1.0\n"),
        r(5, 1),
        r(1, 2),
    );
    let (_, cal) = read_tiff_calibrated(&p).unwrap();
    assert!(close(cal.pixel_x.unwrap(), 0.2e-9), "{cal:?}");
    assert!(close(cal.pixel_y.unwrap(), 2e-9), "{cal:?}");
    let src = cal.source.clone().unwrap();
    assert!(
        src.contains("XResolution") && src.contains("unit=nm"),
        "{src}"
    );
    assert_eq!(read(&p).unwrap().calibration, cal);

    // ImageJ's spellings of micrometres, and a separate y unit.
    for (unit, m) in [
        ("micron", 1e-6),
        ("\\u00B5m", 1e-6),
        ("µm", 1e-6),
        ("um", 1e-6),
        ("mm", 1e-3),
        ("A", 1e-10),
        ("angstrom", 1e-10),
        ("m", 1.0),
    ] {
        let desc = format!("ImageJ=1.54f\nunit={unit}\n");
        write_described(&p, Some(&desc), r(4, 1), r(4, 1));
        let (_, cal) = read_tiff_calibrated(&p).unwrap();
        assert!(close(cal.pixel_x.unwrap(), m / 4.0), "{unit}: {cal:?}");
        assert!(close(cal.pixel_y.unwrap(), m / 4.0), "{unit}: {cal:?}");
    }
    write_described(
        &p,
        Some("ImageJ=1.54f\nunit=um\nyunit=nm\n"),
        r(2, 1),
        r(2, 1),
    );
    let (_, cal) = read_tiff_calibrated(&p).unwrap();
    assert!(close(cal.pixel_x.unwrap(), 0.5e-6) && close(cal.pixel_y.unwrap(), 0.5e-9));

    // Latin-1 µ (one byte 0xB5), as some writers store it.
    write_described_bytes(&p, Some(b"ImageJ=1.54f\nunit=\xb5m\n"), r(4, 1), r(4, 1));
    let (_, cal) = read_tiff_calibrated(&p).unwrap();
    assert!(close(cal.pixel_x.unwrap(), 0.25e-6), "{cal:?}");

    // Uncalibrated: unit=pixel, no unit, not ImageJ, a unit that is not a length.
    for desc in [
        Some("ImageJ=1.54f\nunit=pixel\n"),
        Some("ImageJ=1.54f\nimages=1\n"),
        Some("{\"unit\": \"nm\", \"shape\": [3, 4]}"),
        Some("ImageJ=1.54f\nunit=1/nm\n"),
        None,
    ] {
        write_described(&p, desc, r(10, 1), r(10, 1));
        let (_, cal) = read_tiff_calibrated(&p).unwrap();
        assert_eq!(cal.pixel(), None, "{desc:?}");
        assert_eq!(cal.source, None, "{desc:?}");
    }
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn standard_resolution_unit_alone_is_not_a_pixel_size() {
    let d = scratch("tiff-resunit");
    let p = d.join("cm.tif");
    {
        let mut enc = TiffEncoder::new(File::create(&p).unwrap()).unwrap();
        let mut img = enc.new_image::<Gray8>(2, 2).unwrap();
        img.resolution(ResolutionUnit::Centimeter, r(300, 1));
        img.write_data(&[0; 4]).unwrap();
    }
    assert_eq!(read(&p).unwrap().calibration.pixel(), None);
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn ome_xml_physical_size() {
    let d = scratch("tiff-ome");
    let p = d.join("x.ome.tif");
    let ome = |attrs: &str| {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
             <OME xmlns=\"http://www.openmicroscopy.org/Schemas/OME/2016-06\">\
             <Image ID=\"Image:0\" Name=\"x\"><Pixels DimensionOrder=\"XYZCT\" ID=\"Pixels:0\" \
             {attrs} SizeC=\"1\" SizeT=\"1\" SizeX=\"4\" SizeY=\"3\" SizeZ=\"1\" Type=\"float\">\
             <Channel ID=\"Channel:0:0\"/></Pixels></Image></OME>"
        )
    };
    let cases = [
        // Default unit is the micrometre.
        (
            "PhysicalSizeX=\"0.065\" PhysicalSizeY=\"0.13\"",
            65e-9,
            130e-9,
        ),
        (
            "PhysicalSizeX=\"2.5\" PhysicalSizeXUnit=\"nm\" PhysicalSizeY=\"0.5\" \
             PhysicalSizeYUnit=\"Å\"",
            2.5e-9,
            0.5e-10,
        ),
        (
            "PhysicalSizeXUnit=\"&#181;m\" PhysicalSizeX=\"1.5\" PhysicalSizeY='3' \
             PhysicalSizeYUnit='mm'",
            1.5e-6,
            3e-3,
        ),
    ];
    for (attrs, x, y) in cases {
        // The resolution tags disagree on purpose: OME-XML wins.
        write_described(&p, Some(&ome(attrs)), r(7, 1), r(7, 1));
        let (_, cal) = read_tiff_calibrated(&p).unwrap();
        assert!(close(cal.pixel_x.unwrap(), x), "{attrs}: {cal:?}");
        assert!(close(cal.pixel_y.unwrap(), y), "{attrs}: {cal:?}");
        assert!(cal.source.as_deref().unwrap().contains("OME"));
    }
    // A namespace prefix, and an OME file without physical sizes.
    let prefixed = "<ome:OME xmlns:ome=\"http://www.openmicroscopy.org/Schemas/OME/2016-06\">\
                    <ome:Image><ome:Pixels PhysicalSizeX=\"4\" PhysicalSizeXUnit=\"nm\" \
                    SizeX=\"4\"/></ome:Image></ome:OME>";
    write_described(&p, Some(prefixed), r(1, 1), r(1, 1));
    let (_, cal) = read_tiff_calibrated(&p).unwrap();
    assert!(
        close(cal.pixel_x.unwrap(), 4e-9) && cal.pixel_y.is_none(),
        "{cal:?}"
    );
    write_described(&p, Some(&ome("")), r(1, 1), r(1, 1));
    assert_eq!(read_tiff_calibrated(&p).unwrap().1.pixel(), None);
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn experimental_ltem_float64_tiff() {
    let Some(p) = data_file(
        "experimental_ltem_float64_tiff",
        "ltem/FGT_190K_filtered.tif",
    ) else {
        return;
    };
    let a = read(&p).unwrap();
    assert_eq!(a.shape, vec![512, 512]);
    // Float64 samples normalised to 0..1 by the authors, kept (as f32), not rescaled.
    let (min, max) = a
        .data
        .iter()
        .fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    assert_eq!((min, max), (0.0, 1.0));
    assert!((a.data[0] - 0.547_962_4).abs() < 1e-6, "{}", a.data[0]);
    assert!((a.data[256 * 512 + 256] - 0.254_754_4).abs() < 1e-6);
    let mean = a.data.iter().map(|&v| v as f64).sum::<f64>() / a.data.len() as f64;
    assert!((mean - 0.44586).abs() < 1e-4, "{mean}");
    // tifffile's default 1/1 resolution and its JSON description record no pixel size.
    assert_eq!(a.calibration.pixel(), None);
    assert_eq!(a.calibration.source, None);
    let t = magprior::io::load::load_array(&p).unwrap();
    assert_eq!(t.tensor.shape(), &[512, 512]);
    assert!(t.cell.is_none());
}
