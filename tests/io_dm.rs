//! DigitalMicrograph `.dm3` / `.dm4`: the openNCEM test files in `../shared/data/dm/`, their
//! per-axis calibration, and clear errors (never panics) for damaged files.

mod io_common;

use io_common::data_file;
use magprior::io::dm::{parse_dm, read_dm, DmData};
use magprior::io::{read, FileKind};
use magprior::Error;
use std::path::Path;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * b.abs()
}

fn real(d: &DmData) -> &[f32] {
    match d {
        DmData::Real(v) => v,
        DmData::Complex { .. } => panic!("expected a real image"),
    }
}

/// The float32 64 x 128 test image: rows (y) 64, columns (x) 128, each value its column index;
/// Dimension[0] (x, columns) is 1 nm, Dimension[1] (y, rows) is 2 Å = 0.2 nm.
fn check_nonsquare(p: &Path, version: u32) {
    let d = read_dm(p).unwrap();
    assert_eq!(d.version, version);
    assert_eq!(d.shape, vec![64, 128], "(rows, columns)");
    assert_eq!(d.data_type, 2, "float32");
    assert_eq!(d.index, 1, "ImageList[0] is the RGB thumbnail");
    assert_eq!(
        d.name.as_deref(),
        Some("dmTest_float32_nonSquare_diffPixelSize")
    );
    let v = real(&d.data);
    for (r, c) in [(0, 0), (0, 127), (63, 5), (31, 64)] {
        assert_eq!(v[r * 128 + c], c as f32, "({r}, {c})");
    }
    assert_eq!(d.axes.len(), 2);
    assert_eq!((d.axes[0].scale, d.axes[0].units.as_str()), (1.0, "nm"));
    assert_eq!((d.axes[1].scale, d.axes[1].units.as_str()), (2.0, "A"));
    assert_eq!((d.axes[0].origin, d.axes[1].origin), (0.0, 0.0));
    let cal = d.calibration();
    assert!(
        close(cal.pixel_x.unwrap(), 1e-9),
        "x (columns): 1 nm, {cal:?}"
    );
    assert!(
        close(cal.pixel_y.unwrap(), 0.2e-9),
        "y (rows): 2 Å, {cal:?}"
    );
    assert_eq!(cal.pixel_z, None);
    assert!(cal
        .source
        .as_deref()
        .unwrap()
        .contains("Calibrations.Dimension"));
    // The single entry point gives the same.
    let a = read(p).unwrap();
    assert_eq!(
        a.kind,
        if version == 3 {
            FileKind::Dm3
        } else {
            FileKind::Dm4
        }
    );
    assert_eq!(a.shape, d.shape);
    assert_eq!(a.calibration, cal);
    assert_eq!(a.data, v);
    let l = magprior::io::load::load_array(p).unwrap();
    assert_eq!(l.tensor.shape(), &[64, 128]);
    assert!(l.cell.is_none(), "cell is for OVF only");
    assert_eq!(l.calibration, cal);
}

#[test]
fn dm3_float32_nonsquare_calibrated_per_axis() {
    let Some(p) = data_file(
        "dm3_float32_nonsquare",
        "dm/dmTest_float32_nonSquare_diffPixelSize.dm3",
    ) else {
        return;
    };
    check_nonsquare(&p, 3);
}

#[test]
fn dm4_float32_nonsquare_calibrated_per_axis() {
    let Some(p) = data_file(
        "dm4_float32_nonsquare",
        "dm/dmTest_float32_nonSquare_diffPixelSize.dm4",
    ) else {
        return;
    };
    check_nonsquare(&p, 4);
}

#[test]
fn dm3_int16_stack() {
    let Some(p) = data_file("dm3_int16_stack", "dm/dmTest_3D_int16_64_65_66.dm3") else {
        return;
    };
    let d = read_dm(&p).unwrap();
    // Dimensions (x, y, z) = (64, 65, 66): 66 frames of 65 rows of 64 columns.
    assert_eq!(d.shape, vec![66, 65, 64]);
    assert_eq!(d.data_type, 1, "int16");
    assert_eq!(d.index, 1);
    let v = real(&d.data);
    assert_eq!(v.len(), 66 * 65 * 64);
    // Each value is its column (x) index.
    for (f, r, c) in [(0, 0, 0), (0, 0, 63), (65, 64, 63), (30, 7, 21)] {
        assert_eq!(v[(f * 65 + r) * 64 + c], c as f32, "({f}, {r}, {c})");
    }
    let units: Vec<(f64, &str)> = d.axes.iter().map(|a| (a.scale, a.units.as_str())).collect();
    assert_eq!(units, vec![(2.0, "pm"), (3.0, "nm"), (4.0, "um")]);
    let cal = d.calibration();
    assert!(close(cal.pixel_x.unwrap(), 2e-12), "{cal:?}");
    assert!(close(cal.pixel_y.unwrap(), 3e-9), "{cal:?}");
    assert!(close(cal.pixel_z.unwrap(), 4e-6), "{cal:?}");
    let a = read(&p).unwrap();
    assert_eq!(a.shape, vec![66, 65, 64]);
}

fn all_dm_files(test: &str) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    [
        "dm/dmTest_float32_nonSquare_diffPixelSize.dm3",
        "dm/dmTest_float32_nonSquare_diffPixelSize.dm4",
        "dm/dmTest_3D_int16_64_65_66.dm3",
    ]
    .iter()
    .filter_map(|f| data_file(test, f))
    .map(|p| {
        let b = std::fs::read(&p).unwrap();
        (p, b)
    })
    .collect()
}

fn header_len(b: &[u8]) -> usize {
    if b[3] == 3 {
        12
    } else {
        16
    }
}

/// Sets the header (of length `h`) tag-tree length so that it claims exactly `len` bytes.
fn claim_length(b: &mut [u8], h: usize, len: usize) {
    if b.len() < h {
        return;
    }
    let tree = len.saturating_sub(h) as u64;
    if h == 12 {
        b[4..8].copy_from_slice(&(tree as u32).to_be_bytes());
    } else {
        b[4..12].copy_from_slice(&tree.to_be_bytes());
    }
}

#[test]
fn truncated_files_are_errors_never_panics() {
    for (p, b) in all_dm_files("truncated_dm_files") {
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        let h = header_len(&b);
        let tree_end = h + claim(&b);
        // Every length in the header and the first tags, then a stride through the file.
        let stride = (tree_end / 3000).max(97);
        let lengths = (0..400)
            .chain((400..tree_end).step_by(stride))
            .chain(tree_end - 64..tree_end);
        for len in lengths {
            let cut = &b[..len];
            let e = parse_dm(&p, cut).unwrap_err();
            let msg = e.to_string();
            assert!(matches!(e, Error::Format { .. }), "{name} at {len}: {msg}");
            assert!(msg.contains(&name), "{msg}");
            if len >= h {
                assert!(msg.contains("truncated"), "{name} at {len}: {msg}");
            }
            // Lie about the length so that the tag parser itself meets the end.
            let mut lied = cut.to_vec();
            claim_length(&mut lied, h, len);
            let e = parse_dm(&p, &lied).unwrap_err().to_string();
            assert!(e.contains(&name), "{name} at {len}: {e}");
            if len >= h {
                assert!(e.contains("truncated DM"), "{name} at {len}: {e}");
            }
        }
    }
}

fn claim(b: &[u8]) -> usize {
    if header_len(b) == 12 {
        u32::from_be_bytes([b[4], b[5], b[6], b[7]]) as usize
    } else {
        u64::from_be_bytes([b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11]]) as usize
    }
}

#[test]
fn corrupted_bytes_never_panic() {
    for (p, mut b) in all_dm_files("corrupted_dm_files") {
        let h = header_len(&b);
        let end = h + claim(&b);
        // Deterministic pseudo-random positions in the tag structure: the pixel arrays fill
        // the middle of these files, the tags lie in their first and last few kilobytes.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut errors = 0;
        for i in 0..200 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let span = 3500.min(end - h);
            let off = (state as usize) % span;
            let at = if i % 2 == 0 { h + off } else { end - 1 - off };
            let orig = b[at];
            b[at] ^= 1 << ((state >> 40) % 8);
            if parse_dm(&p, &b).is_err() {
                errors += 1;
            }
            // Large counts in the places where lengths live.
            b[at] = 0xff;
            let _ = parse_dm(&p, &b);
            b[at] = orig;
        }
        assert!(errors > 0, "{}: no corruption was noticed", p.display());
    }
}

#[test]
fn bad_magic_version_and_byte_order() {
    let Some(p) = data_file(
        "bad_dm_headers",
        "dm/dmTest_float32_nonSquare_diffPixelSize.dm3",
    ) else {
        return;
    };
    let b = std::fs::read(&p).unwrap();
    let mut v5 = b.clone();
    v5[3] = 5;
    let e = parse_dm(&p, &v5).unwrap_err().to_string();
    assert!(e.contains("header version 5"), "{e}");
    let mut order = b.clone();
    order[11] = 7;
    let e = parse_dm(&p, &order).unwrap_err().to_string();
    assert!(e.contains("byte-order flag 7"), "{e}");
    let e = parse_dm(&p, b"\x89PNG\r\n\x1a\n....")
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a DigitalMicrograph"), "{e}");
    // A missing file is an I/O error naming it.
    let e = read_dm(Path::new("/nonexistent/x.dm3")).unwrap_err();
    assert!(matches!(e, Error::Io { .. }) && e.to_string().contains("x.dm3"));
}

/// Offset of the `DataType` value of ImageList entry `which` (0 thumbnail, 1 image).
fn data_type_offset(b: &[u8], which: usize) -> usize {
    let label = b"\x00\x08DataType";
    let at = b
        .windows(label.len())
        .enumerate()
        .filter(|(_, w)| *w == label)
        .nth(which)
        .unwrap()
        .0
        + label.len();
    // DM3: "%%%%", ninfo, info[0], value; DM4: size (8) first, then 8-byte counts.
    if b[3] == 3 {
        at + 12
    } else {
        at + 8 + 4 + 16
    }
}

#[test]
fn unknown_data_type_is_named() {
    let files = all_dm_files("unknown_dm_data_type");
    for (p, b) in files
        .iter()
        .filter(|(p, _)| p.to_string_lossy().contains("nonSquare"))
    {
        let at = data_type_offset(b, 1);
        assert_eq!(&b[at..at + 4], &[2, 0, 0, 0], "{}", p.display());
        let mut c = b.clone();
        c[at] = 99;
        let e = parse_dm(p, &c).unwrap_err().to_string();
        assert!(
            e.contains("unknown data type 99") && e.contains("DataType 99"),
            "{e}"
        );
        assert!(
            e.contains(&*p.file_name().unwrap().to_string_lossy()),
            "{e}"
        );
        // Declaring float64 where float32 data is stored is a size mismatch, not garbage.
        c[at] = 12;
        let e = parse_dm(p, &c).unwrap_err().to_string();
        assert!(e.contains("needs 65536"), "{e}");
        // Only the RGB thumbnail left: an error saying so.
        c[at] = 23;
        let e = parse_dm(p, &c).unwrap_err().to_string();
        assert!(e.contains("only RGB"), "{e}");
    }
}
