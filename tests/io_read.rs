//! The single entry point `io::read` and the CLI's `load_array` on top of it: dispatch by
//! extension, the unsupported-type message, NaN handling, PNG masks.

mod io_common;

use io_common::{npy_bytes, scratch};
use magprior::io::load::load_array;
use magprior::io::{read, read_complex, FileKind};
use magprior::Error;
use std::io::BufWriter;

#[test]
fn unsupported_extension_lists_every_format() {
    let d = scratch("read-ext");
    let p = d.join("image.jpg");
    std::fs::write(&p, b"not used").unwrap();
    for e in [
        read(&p).unwrap_err().to_string(),
        load_array(&p).err().unwrap().to_string(),
        read_complex(&p).unwrap_err().to_string(),
    ] {
        assert!(e.contains("image.jpg") && e.contains("'.jpg'"), "{e}");
        for ext in [
            ".npy", ".txt", ".csv", ".dat", ".asc", ".tif", ".tiff", ".png", ".dm3", ".dm4",
            ".ovf", ".omf",
        ] {
            assert!(e.contains(ext), "{ext} missing from: {e}");
        }
    }
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn extension_dispatch_is_case_insensitive() {
    use std::path::Path;
    let cases = [
        ("a.NPY", FileKind::Npy),
        ("a.Csv", FileKind::Text),
        ("a.asc", FileKind::Text),
        ("a.TIF", FileKind::Tiff),
        ("a.tiff", FileKind::Tiff),
        ("a.png", FileKind::Png),
        ("a.DM3", FileKind::Dm3),
        ("a.dm4", FileKind::Dm4),
        ("a.omf", FileKind::Ovf),
    ];
    for (name, kind) in cases {
        assert_eq!(FileKind::from_path(Path::new(name)), Some(kind), "{name}");
    }
    assert_eq!(FileKind::from_path(Path::new("a.dm5")), None);
}

#[test]
fn missing_file_is_an_io_error_naming_it() {
    for name in [
        "gone.npy", "gone.csv", "gone.tif", "gone.dm4", "gone.ovf", "gone.png",
    ] {
        let p = std::env::temp_dir()
            .join("magprior-io-nonexistent")
            .join(name);
        let e = read(&p).unwrap_err();
        assert!(matches!(e, Error::Io { .. }), "{name}: {e}");
        assert!(e.to_string().contains(name));
    }
}

#[test]
fn png_mask_and_load_array_on_each_format() {
    let d = scratch("read-png");
    let p = d.join("mask.png");
    {
        let f = std::fs::File::create(&p).unwrap();
        let mut enc = png::Encoder::new(BufWriter::new(f), 3, 2);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().unwrap();
        w.write_image_data(&[0, 255, 0, 255, 255, 0]).unwrap();
    }
    let a = read(&p).unwrap();
    assert_eq!(a.kind, FileKind::Png);
    assert_eq!(a.shape, vec![2, 3]);
    assert_eq!(a.data, vec![0., 1., 0., 1., 1., 0.]);
    assert_eq!(a.calibration.pixel(), None);

    // load_array: same shapes as read for the image-like formats, no `cell` outside OVF.
    let t = d.join("m.txt");
    std::fs::write(&t, "1 2\n3 4\n5 6\n").unwrap();
    let n = d.join("m.npy");
    let payload: Vec<u8> = [1f32, 2., 3., 4.]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    std::fs::write(&n, npy_bytes(1, "<f4", false, &[2, 2], &payload)).unwrap();
    for (path, shape) in [(&p, vec![2, 3]), (&t, vec![3, 2]), (&n, vec![2, 2])] {
        let l = load_array(path).unwrap();
        assert_eq!(l.tensor.shape(), &shape[..], "{}", path.display());
        assert!(l.cell.is_none());
    }
    // Non-finite values: read returns them, load_array refuses naming the element.
    std::fs::write(&t, "1 2\n3 -inf\n").unwrap();
    assert_eq!(read(&t).unwrap().data[3], f32::NEG_INFINITY);
    let e = load_array(&t).err().unwrap().to_string();
    assert!(
        e.contains("m.txt") && e.contains("non-finite") && e.contains("element 3"),
        "{e}"
    );
    std::fs::remove_dir_all(&d).ok();
}
