//! `magprior nv` on files as other tools write them and maps as instruments measure them: OVF
//! value units and layers in `nv forward`, the classical `nv invert`, and `nv reconstruct` with
//! the nuisances, the automatic support and the report (metrics.json, pictures).

use magprior::io::npy::{read_npy, write_npy};
use magprior::io::ovf::{write_ovf, Ovf, OvfEncoding, ValueUnits};
use magprior::nv::{mask, NvForward, NvGeometry};
use magprior::{Rng, Tensor};
use std::path::{Path, PathBuf};

mod common;
use common::cli::{assert_user_error, p, run, stderr};

fn tmp(name: &str) -> PathBuf {
    common::cli::tmpdir("cli-nv-real", name)
}

fn shared(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data")
        .join(rel)
}

fn max_abs(v: &[f32]) -> f32 {
    v.iter().fold(0f32, |a, x| a.max(x.abs()))
}

fn forward(input: &Path, out: &Path, extra: &[&str]) -> Vec<f32> {
    let mut args = vec![
        "nv",
        "forward",
        "--magnetization",
        p(input),
        "--out",
        p(out),
    ];
    args.extend_from_slice(extra);
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    read_npy(out).unwrap().to_vec().unwrap()
}

#[test]
fn ovf_value_units_are_honoured_by_nv_forward() {
    let d = tmp("ovf-units");
    // mumax3 m_full: A/m, 4 layers. --ms must not multiply it again
    let f = shared("ovf/mumax3_m_full_Apm.ovf");
    if !f.exists() {
        println!("skipped: {} is not here", f.display());
        return;
    }
    let a = forward(&f, &d.join("a.npy"), &["--ms", "1"]);
    let b = forward(&f, &d.join("b.npy"), &["--ms", "8e5"]);
    assert_eq!(a, b, "--ms changed the field of an A/m file");
    // a Permalloy-like element 50 nm below the sensor: tens of mT, not thousands of tesla
    let peak = max_abs(&a);
    println!("mumax3 m_full: max |B_NV| {peak:.4e} T");
    assert!(peak > 1e-3 && peak < 1.0, "max |B_NV| {peak} T");
    let meta = std::fs::read_to_string(d.join("a.json")).unwrap();
    assert!(
        meta.contains("A/m") && meta.contains("\"layers\": 4"),
        "{meta}"
    );
    // an older mumax3 text file labels its unit vectors "A/m": taken as unit vectors, warned
    let f = shared("ovf/mumax-txt-linux.ovf");
    let o = run(&[
        "nv",
        "forward",
        "--magnetization",
        p(&f),
        "--ms",
        "8e5",
        "--out",
        p(&d.join("t.npy")),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("taken as unit vectors"),
        "{}",
        stderr(&o)
    );
    let peak = max_abs(&read_npy(d.join("t.npy")).unwrap().to_vec().unwrap());
    assert!(peak > 1e-3 && peak < 1.0, "max |B_NV| {peak} T");
    // OOMMF OVF 1.0 with valuemultiplier 8e5 and valueunit A/m: the multiplier is applied once
    let f = shared("ovf/oommf_ovf1_bin4_valuemultiplier.ovf");
    let c = forward(&f, &d.join("c.npy"), &["--ms", "1"]);
    let peak = max_abs(&c);
    println!("OOMMF valuemultiplier: max |B_NV| {peak:.4e} T");
    assert!(peak > 1e-3 && peak < 1.0, "max |B_NV| {peak} T");
}

/// Uniform-in-depth magnetisation in n layers of dz, summed at their depths, equals one film of
/// thickness n dz: `(1 - e^{-k dz}) sum_j e^{-k j dz} = 1 - e^{-k n dz}` (exact), whereas an
/// average of the layers in one film of dz would be n times too weak.
#[test]
fn layers_of_an_ovf_are_summed_at_their_depths() {
    let d = tmp("ovf-layers");
    let (nx, ny, nz, dz) = (24usize, 20usize, 4usize, 5e-9);
    let sup = mask::ellipse_support(ny, nx, 9.5, 11.5, 7.0, 9.0, 0.0);
    let mut data = Vec::new();
    for _ in 0..nz {
        for r in 0..ny {
            for c in 0..nx {
                let s = sup[r * nx + c];
                data.push([0.6 * s, 0.3 * s, 0.74 * s]);
            }
        }
    }
    let ovf = Ovf {
        nx,
        ny,
        nz,
        step: [5e-9, 5e-9, dz],
        data: data.clone(),
        title: "layers".into(),
        value_multiplier: 1.0,
        value_units: ValueUnits::Unitless,
        base: [2.5e-9, 2.5e-9, 2.5e-9],
    };
    let path = d.join("m.ovf");
    write_ovf(&path, &ovf, 2, OvfEncoding::Binary4).unwrap();
    let got = forward(
        &path,
        &d.join("b.npy"),
        &["--ms", "8e5", "--standoff", "30nm"],
    );
    let hw = nx * ny;
    let mut m = vec![0f32; 3 * hw];
    for (i, v) in data[..hw].iter().enumerate() {
        for k in 0..3 {
            m[k * hw + i] = v[k] * 8e5;
        }
    }
    let g = NvGeometry {
        pixel: 5e-9,
        thickness: nz as f64 * dz,
        standoff: 30e-9,
        ..Default::default()
    };
    let want = NvForward::new(ny, nx, &g)
        .unwrap()
        .bnv(&Tensor::from_shape_vec(&[1, 3, ny, nx], m).unwrap())
        .unwrap()
        .to_vec()
        .unwrap();
    let err = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    println!(
        "4 layers vs one 20 nm film: max diff {err:.3e} of {:.3e}",
        max_abs(&want)
    );
    assert!(err < 1e-4 * max_abs(&want), "max diff {err}");
}

/// An out-of-plane disk (Mz) seen at 60 nm: the exact Fourier inversion recovers its level.
#[test]
fn nv_invert_recovers_an_out_of_plane_disk() {
    let d = tmp("invert");
    let n = 64;
    let g = NvGeometry {
        pixel: 20e-9,
        standoff: 60e-9,
        thickness: 10e-9,
        ..Default::default()
    };
    let c = (n as f64 - 1.0) / 2.0;
    let sup = mask::ellipse_support(n, n, c, c, 12.0, 12.0, 0.0);
    let mut m = vec![0f32; 3 * n * n];
    m[2 * n * n..].copy_from_slice(&sup.iter().map(|s| s * 4e5).collect::<Vec<_>>());
    let bnv = NvForward::new(n, n, &g)
        .unwrap()
        .bnv(&Tensor::from_shape_vec(&[1, 3, n, n], m).unwrap())
        .unwrap()
        .to_vec()
        .unwrap();
    let input = d.join("bnv.npy");
    write_npy(&input, &Tensor::from_shape_vec(&[n, n], bnv).unwrap()).unwrap();
    let out = d.join("m.npy");
    let o = run(&[
        "nv",
        "invert",
        "--bnv",
        p(&input),
        "--pixel",
        "20nm",
        "--standoff",
        "60nm",
        "--thickness",
        "10nm",
        "--theta",
        "54.75",
        "--direction",
        "0,0",
        "--out",
        p(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let inv = read_npy(&out).unwrap().to_vec().unwrap();
    let centre = inv[(n / 2) * n + n / 2];
    println!(
        "invert: centre {centre:.4e} A/m of 4e5; {}",
        stderr(&o).trim()
    );
    assert!((centre / 4e5 - 1.0).abs() < 0.05, "centre {centre}");
    let meta = std::fs::read_to_string(out.with_extension("json")).unwrap();
    assert!(meta.contains("mt_p99_mub_per_nm2"), "{meta}");
    // bad filter and a direction that is not two angles are user errors
    for bad in [["--filter", "gauss:3"], ["--direction", "fit"]] {
        let mut args = vec![
            "nv",
            "invert",
            "--bnv",
            p(&input),
            "--pixel",
            "20nm",
            "--out",
            p(&out),
        ];
        if bad[0] != "--direction" {
            args.extend_from_slice(&["--direction", "0,0"]);
        }
        args.extend_from_slice(&bad);
        let o = run(&args);
        assert_user_error(&o, &[bad[1].split(':').next().unwrap()]);
    }
}

/// A measured-like map: an out-of-plane flake with an offset, a tilt, dropouts and noise, its
/// support and direction unknown. The run fits the nuisances, finds the support, and reports.
#[test]
fn reconstruct_a_measured_like_map_with_auto_support_and_nuisances() {
    let d = tmp("measured");
    let n = 48;
    let g = NvGeometry {
        pixel: 40e-9,
        standoff: 80e-9,
        thickness: 10e-9,
        theta_deg: 54.7,
        phi_deg: 45.0,
        ..Default::default()
    };
    let c = (n as f64 - 1.0) / 2.0;
    let sup = mask::ellipse_support(n, n, c, c, 13.0, 9.0, 30.0);
    let mut m = vec![0f32; 3 * n * n];
    m[2 * n * n..].copy_from_slice(&sup.iter().map(|s| s * 3e5).collect::<Vec<_>>());
    let clean = NvForward::new(n, n, &g)
        .unwrap()
        .bnv(&Tensor::from_shape_vec(&[1, 3, n, n], m).unwrap())
        .unwrap()
        .to_vec()
        .unwrap();
    let peak = max_abs(&clean) as f64;
    let mut rng = Rng::new(5);
    let mut bnv: Vec<f64> = clean
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            v as f64 + 0.2 * peak + 0.002 * peak * (i % n) as f64 + 0.01 * peak * rng.normal()
        })
        .collect();
    bnv[100] = f64::NAN;
    let input = d.join("bnv.npy");
    // float64, as instruments' software saves it
    write_npy(
        &input,
        &Tensor::from_shape_vec(&[n, n], bnv.iter().map(|&v| v as f32).collect()).unwrap(),
    )
    .unwrap();
    let out = d.join("run");
    let args = |extra: &[&'static str]| {
        let mut v: Vec<String> = [
            "nv",
            "reconstruct",
            "--bnv",
            p(&input),
            "--pixel",
            "40nm",
            "--standoff",
            "80nm",
            "--thickness",
            "10nm",
            "--theta",
            "54.7",
            "--phi",
            "45",
            "--model",
            "direction",
            "--direction",
            "fit",
            "--ms",
            "auto",
            "--support",
            "auto",
            "--iters",
            "400",
            "--lr",
            "3e-3",
            "--quiet",
            "--out",
            p(&out),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    // NaN without --ignore-nan: a clear error, nothing written
    let o = common::cli::bin().args(args(&[])).output().unwrap();
    assert_user_error(&o, &["--ignore-nan"]);
    assert!(!out.exists());
    let o = common::cli::bin()
        .args(args(&["--ignore-nan"]))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    println!("{}", serde_json::to_string_pretty(&metrics).unwrap());
    for key in [
        "chi2_per_pixel",
        "noise_floor_T",
        "background",
        "direction",
        "circulation",
        "warnings",
        "mt_max_mub_per_nm2",
    ] {
        assert!(metrics.get(key).is_some(), "metrics.json lacks {key}");
    }
    let dir = metrics["direction"].as_array().unwrap();
    let theta = dir[0].as_f64().unwrap();
    assert!(
        !(10.0..170.0).contains(&theta),
        "theta {theta}: out of plane expected"
    );
    let off = metrics["background"]["offset_T"].as_f64().unwrap();
    println!(
        "offset {off:.3e} (added {:.3e} + tilt at the centre)",
        0.2 * peak
    );
    assert!(off > 0.1 * peak && off < 0.4 * peak, "offset {off}");
    let chi2 = metrics["chi2_per_pixel"].as_f64().unwrap();
    assert!(chi2 < 3.0, "chi2 {chi2}");
    for f in [
        "support.png",
        "support.npy",
        "areal_magnetization.npy",
        "areal_magnetization_mub_nm2.npy",
        "bnv.png",
        "magnetization.png",
    ] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    // the automatic support covers the flake
    let s = read_npy(out.join("support.npy")).unwrap().to_vec().unwrap();
    let (mut inter, mut union) = (0, 0);
    for (a, b) in s.iter().zip(&sup) {
        inter += (*a > 0.5 && *b > 0.5) as usize;
        union += (*a > 0.5 || *b > 0.5) as usize;
    }
    let iou = inter as f64 / union as f64;
    println!("auto support IoU {iou:.3}");
    assert!(iou > 0.6, "IoU {iou}");
    // the same with a per-pixel noise map: written, said, and the fit still at its noise
    std::fs::remove_dir_all(&out).unwrap();
    let o = common::cli::bin()
        .args(args(&["--ignore-nan", "--noise", "map"]))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    let src = metrics["noise_floor_source"].as_str().unwrap();
    assert!(src.contains("noise map"), "{src}");
    let chi2_map = metrics["chi2_per_pixel"].as_f64().unwrap();
    println!("with the noise map: chi2 {chi2_map:.3}");
    assert!(chi2_map < 3.0, "chi2 {chi2_map}");
    let nm = read_npy(out.join("noise_map.npy")).unwrap();
    assert_eq!(nm.shape(), &[s.len() / nm.shape()[1], nm.shape()[1]]);
    std::fs::remove_dir_all(&out).unwrap();
    let o = common::cli::bin()
        .args(args(&["--ignore-nan", "--noise", "lots"]))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(!out.exists());
}
