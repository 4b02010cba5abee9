//! `.npy` reading: Fortran order, every real dtype, both byte orders, versions 1-3, complex,
//! errors; and the measured NV maps in `../shared/data/nv/`.

mod io_common;

use io_common::{data_file, npy_bytes, scratch};
use magprior::io::npy::{read_npy, read_npy_any, read_npy_array};
use magprior::io::{read, read_complex, FileKind};
use magprior::DType;
use std::path::{Path, PathBuf};

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn f8(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn fortran_order_2d_and_3d_are_transposed_to_c_order() {
    let d = scratch("npy-fortran");
    // a[i][j] = 10 i + j, shape (2, 3), stored column by column.
    let payload = f8(&[0., 10., 1., 11., 2., 12.]);
    let p = write(&d, "f2.npy", &npy_bytes(1, "<f8", true, &[2, 3], &payload));
    let a = read_npy_array(&p).unwrap();
    assert!(a.fortran_order);
    assert_eq!(a.shape, vec![2, 3]);
    assert_eq!(a.data, vec![0., 1., 2., 10., 11., 12.]);
    // The tensor readers agree.
    let t = read_npy(&p).unwrap();
    assert_eq!(t.to_vec().unwrap(), vec![0., 1., 2., 10., 11., 12.]);

    // b[i][j][k] = 100 i + 10 j + k, shape (2, 3, 4): Fortran order has i fastest.
    let (n0, n1, n2) = (2, 3, 4);
    let mut fort = Vec::new();
    for k in 0..n2 {
        for j in 0..n1 {
            for i in 0..n0 {
                fort.push((100 * i + 10 * j + k) as f32);
            }
        }
    }
    let payload: Vec<u8> = fort.iter().flat_map(|x| x.to_le_bytes()).collect();
    let p = write(
        &d,
        "f3.npy",
        &npy_bytes(1, "<f4", true, &[2, 3, 4], &payload),
    );
    let a = read(&p).unwrap();
    assert_eq!(a.shape, vec![2, 3, 4]);
    assert_eq!(a.kind, FileKind::Npy);
    for i in 0..n0 {
        for j in 0..n1 {
            for k in 0..n2 {
                assert_eq!(
                    a.data[(i * n1 + j) * n2 + k],
                    (100 * i + 10 * j + k) as f32,
                    "({i},{j},{k})"
                );
            }
        }
    }
    // A 1-D Fortran array is the same as C order.
    let p = write(
        &d,
        "f1.npy",
        &npy_bytes(1, "<f8", true, &[3], &f8(&[1., 2., 3.])),
    );
    assert_eq!(read(&p).unwrap().data, vec![1., 2., 3.]);
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn every_integer_dtype_bool_and_float16() {
    let d = scratch("npy-int");
    let cases: Vec<(&str, Vec<u8>, Vec<f32>)> = vec![
        ("|i1", vec![0x80, 0x7f, 0xff], vec![-128., 127., -1.]),
        ("|u1", vec![0, 200, 255], vec![0., 200., 255.]),
        (
            "<i2",
            [-30000i16, 5, -1]
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
            vec![-30000., 5., -1.],
        ),
        (
            "<u2",
            [65535u16, 1, 0]
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
            vec![65535., 1., 0.],
        ),
        (
            "<i4",
            [-2_000_000i32, 7, 0]
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
            vec![-2e6, 7., 0.],
        ),
        (
            "<u4",
            [4_000_000u32, 3, 9]
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
            vec![4e6, 3., 9.],
        ),
        (
            "<i8",
            [-5i64, 1 << 40, 2]
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
            vec![-5., (1u64 << 40) as f32, 2.],
        ),
        (
            "<u8",
            [u64::MAX, 0, 12]
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
            vec![u64::MAX as f32, 0., 12.],
        ),
        ("|b1", vec![1, 0, 1], vec![1., 0., 1.]),
        (
            "<f2",
            [0x3c00u16, 0xc000, 0x3800]
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
            vec![1., -2., 0.5],
        ),
    ];
    for (descr, payload, want) in cases {
        let p = write(&d, "x.npy", &npy_bytes(1, descr, false, &[3], &payload));
        let a = read(&p).unwrap_or_else(|e| panic!("{descr}: {e}"));
        assert_eq!(a.shape, vec![3], "{descr}");
        assert_eq!(a.data, want, "{descr}");
    }
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn big_endian_dtypes() {
    let d = scratch("npy-be");
    let cases: Vec<(&str, Vec<u8>, Vec<f32>)> = vec![
        (
            ">f4",
            [1.5f32, -3.25]
                .iter()
                .flat_map(|x| x.to_be_bytes())
                .collect(),
            vec![1.5, -3.25],
        ),
        (
            ">f8",
            [1e-7f64, 2.0]
                .iter()
                .flat_map(|x| x.to_be_bytes())
                .collect(),
            vec![1e-7, 2.0],
        ),
        (
            ">i2",
            [-2i16, 300].iter().flat_map(|x| x.to_be_bytes()).collect(),
            vec![-2., 300.],
        ),
        (
            ">u4",
            [70000u32, 1].iter().flat_map(|x| x.to_be_bytes()).collect(),
            vec![70000., 1.],
        ),
        (
            ">i8",
            [-9i64, 9].iter().flat_map(|x| x.to_be_bytes()).collect(),
            vec![-9., 9.],
        ),
        (
            ">f2",
            [0x3c00u16, 0xc000]
                .iter()
                .flat_map(|x| x.to_be_bytes())
                .collect(),
            vec![1., -2.],
        ),
    ];
    for (descr, payload, want) in cases {
        let p = write(&d, "be.npy", &npy_bytes(1, descr, false, &[2], &payload));
        assert_eq!(read(&p).unwrap().data, want, "{descr}");
    }
    // Big-endian and Fortran order together: (2, 2) [[1, 2], [3, 4]].
    let payload: Vec<u8> = [1.0f64, 3.0, 2.0, 4.0]
        .iter()
        .flat_map(|x| x.to_be_bytes())
        .collect();
    let p = write(&d, "bef.npy", &npy_bytes(1, ">f8", true, &[2, 2], &payload));
    assert_eq!(read(&p).unwrap().data, vec![1., 2., 3., 4.]);
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn versions_2_and_3() {
    let d = scratch("npy-ver");
    for v in [1, 2, 3] {
        let p = write(
            &d,
            "v.npy",
            &npy_bytes(v, "<f8", false, &[2, 1], &f8(&[4., 5.])),
        );
        let a = read(&p).unwrap();
        assert_eq!(
            (a.shape.clone(), a.data.clone()),
            (vec![2, 1], vec![4., 5.]),
            "v{v}"
        );
    }
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn complex_files_need_the_complex_entry() {
    let d = scratch("npy-complex");
    // (2, 2) complex128 in Fortran order: z[i][j] = (i + 2 j) + i (10 i + j).
    let mut payload = Vec::new();
    for j in 0..2 {
        for i in 0..2 {
            payload.extend_from_slice(&((i + 2 * j) as f64).to_le_bytes());
            payload.extend_from_slice(&((10 * i + j) as f64).to_le_bytes());
        }
    }
    let p = write(&d, "c.npy", &npy_bytes(1, "<c16", true, &[2, 2], &payload));
    let e = read(&p).unwrap_err().to_string();
    assert!(
        e.contains("c.npy") && e.contains("complex") && e.contains("read_complex"),
        "{e}"
    );
    let c = read_complex(&p).unwrap();
    assert_eq!(c.shape, vec![2, 2]);
    assert_eq!(c.re, vec![0., 2., 1., 3.]);
    assert_eq!(c.im, vec![0., 1., 10., 11.]);
    let t = read_npy_any(&p).unwrap();
    assert_eq!(t.dtype(), DType::C32);
    assert!(read_npy(&p).is_err());
    // Big-endian complex64.
    let payload: Vec<u8> = [1.0f32, -1.0]
        .iter()
        .flat_map(|x| x.to_be_bytes())
        .collect();
    let p = write(&d, "c8.npy", &npy_bytes(1, ">c8", false, &[1], &payload));
    let c = read_complex(&p).unwrap();
    assert_eq!((c.re[0], c.im[0]), (1.0, -1.0));
    // A real file through the complex entry has zero imaginary parts.
    let p = write(
        &d,
        "r.npy",
        &npy_bytes(1, "<f8", false, &[2], &f8(&[1., 2.])),
    );
    let c = read_complex(&p).unwrap();
    assert_eq!((c.re, c.im), (vec![1., 2.], vec![0., 0.]));
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn nan_is_returned_as_stored() {
    let d = scratch("npy-nan");
    let p = write(
        &d,
        "n.npy",
        &npy_bytes(1, "<f8", false, &[3], &f8(&[1., f64::NAN, 3.])),
    );
    let a = read(&p).unwrap();
    assert!(a.data[1].is_nan() && a.data[2] == 3.0);
    let e = magprior::io::load::load_array(&p)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("n.npy") && e.contains("element 1"), "{e}");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn malformed_files_are_clear_errors() {
    let d = scratch("npy-bad");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "trunc.npy",
            npy_bytes(1, "<f8", false, &[4], &f8(&[1.])),
            "truncated",
        ),
        (
            "str.npy",
            npy_bytes(1, "<U4", false, &[1], &[0; 16]),
            "unsupported npy dtype '<U4'",
        ),
        (
            "dt.npy",
            npy_bytes(1, "<M8[ns]", false, &[1], &[0; 8]),
            "unsupported npy dtype",
        ),
        ("magic.npy", b"NUMPY not really".to_vec(), "magic"),
        (
            "ver.npy",
            {
                let mut b = npy_bytes(1, "<f8", false, &[1], &f8(&[1.]));
                b[6] = 9;
                b
            },
            "version 9",
        ),
        (
            "hdr.npy",
            {
                let mut b = npy_bytes(1, "<f8", false, &[1], &f8(&[1.]));
                b[8] = 0xff;
                b[9] = 0x7f;
                b
            },
            "truncated npy header",
        ),
    ];
    for (name, bytes, needle) in cases {
        let p = write(&d, name, &bytes);
        let e = read(&p).unwrap_err().to_string();
        assert!(e.contains(name) && e.contains(needle), "{name}: {e}");
    }
    // Every truncation of a valid file is an error, never a panic.
    let good = npy_bytes(2, "<f4", true, &[3, 5], &[0u8; 60]);
    for len in 0..good.len() {
        let p = write(&d, "cut.npy", &good[..len]);
        assert!(read(&p).is_err(), "length {len}");
    }
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn measured_nv_maps() {
    for (name, shape, first, at_100_80) in [
        (
            "nv/VI3_BNV_T.npy",
            [240, 171],
            2.65149989e-05_f64,
            1.73294123e-05_f64,
        ),
        (
            "nv/CuCrP2S6_72_BNV_T.npy",
            [217, 197],
            1.209679623e-05_f64,
            9.424245568e-06_f64,
        ),
    ] {
        let Some(p) = data_file("measured_nv_maps", name) else {
            return;
        };
        let a = read(&p).unwrap();
        assert_eq!(a.shape, shape.to_vec(), "{name}");
        assert_eq!(
            a.calibration,
            Default::default(),
            "{name}: .npy has no pixel size"
        );
        assert!(a.data.iter().all(|v| v.is_finite()), "{name}");
        // Tesla: a measured stray field of a few hundred microtesla at most.
        let max = a.data.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(max > 5e-5 && max < 1e-3, "{name}: max |B_NV| = {max}");
        assert!(
            (a.data[0] as f64 - first).abs() < 1e-11,
            "{name}: {}",
            a.data[0]
        );
        assert!(
            (a.data[100 * shape[1] + 80] as f64 - at_100_80).abs() < 1e-11,
            "{name}"
        );
        // The CLI's loader reads it the same way.
        let t = magprior::io::load::load_array(&p).unwrap().tensor;
        assert_eq!(t.shape(), &shape[..]);
    }
}
