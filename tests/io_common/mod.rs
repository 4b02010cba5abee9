//! Helpers shared by the `io_*` tests: the real-file folder (`../shared/data`, skipped with a
//! printed message where absent), scratch folders, and a `.npy` byte builder.
#![allow(dead_code)]

use std::path::PathBuf;

/// The shared folder of real files, or `None` (after printing `SKIP: ...`) where it is absent.
pub fn data_dir(test: &str) -> Option<PathBuf> {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    if d.is_dir() {
        Some(d)
    } else {
        eprintln!("SKIP: {test}: {} is absent", d.display());
        None
    }
}

/// A real file under the shared folder; `None` (skip) where the folder is absent. A file
/// missing from a present folder is a failure, not a skip.
pub fn data_file(test: &str, rel: &str) -> Option<PathBuf> {
    let p = data_dir(test)?.join(rel);
    assert!(
        p.is_file(),
        "{} is missing from the shared data folder",
        p.display()
    );
    Some(p)
}

/// A fresh scratch folder for one test.
pub fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("magprior-io-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create scratch folder");
    d
}

/// The bytes of a `.npy` file of format `version` (1, 2 or 3) with the given header fields
/// and raw payload.
pub fn npy_bytes(
    version: u8,
    descr: &str,
    fortran: bool,
    shape: &[usize],
    payload: &[u8],
) -> Vec<u8> {
    let dims = match shape.len() {
        1 => format!("{},", shape[0]),
        _ => shape
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(", "),
    };
    let f = if fortran { "True" } else { "False" };
    let mut h = format!("{{'descr': '{descr}', 'fortran_order': {f}, 'shape': ({dims}), }}");
    let pre = if version == 1 { 10 } else { 12 };
    while (pre + h.len() + 1) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    let mut out = b"\x93NUMPY".to_vec();
    out.push(version);
    out.push(0);
    if version == 1 {
        out.extend_from_slice(&(h.len() as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(h.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(payload);
    out
}
