//! `magprior joint` as a user runs it: an S state relaxed by magnum.np (`fixtures/relaxed/`),
//! its B_NV map on the 5 nm NV grid and a defocused Lorentz image on a 4 nm grid shifted by
//! (6, -4) nm and rotated by 1.5 deg (the phase computed exactly in real space), written as
//! `.npy` files; the run fits the magnetisation and the registration; and the error contract on
//! bad inputs.

use magprior::io::npy::{read_npy, write_npy};
use magprior::joint::{self, Registration};
use magprior::ltem::Microscope;
use magprior::nv::NvGeometry;
use magprior::Tensor;
use std::path::Path;

mod common;
use common::cli::{assert_nothing_written, assert_user_error, p, run, stderr};

/// Writes bnv.npy, image.npy, phase.npy, support.npy and truth.npy of the S state into `dir`.
fn write_problem(dir: &Path) {
    let (truth, support, h, w) = common::relaxed_state("s_state");
    let mic = Microscope {
        defocus: -0.5e6,
        ..Microscope::siprad_demo()
    };
    let reg = Registration {
        offset_nm: [6.0, -4.0],
        rotation_deg: 1.5,
    };
    let (hl, wl) = (72, 144);
    let sim = joint::simulate(
        &truth,
        h,
        w,
        &NvGeometry::default(),
        &mic,
        hl,
        wl,
        &reg,
        0.01,
        0.2,
        11,
    )
    .unwrap();
    let save = |name: &str, shape: &[usize], v: &[f32]| {
        write_npy(
            dir.join(name),
            &Tensor::from_shape_vec(shape, v.to_vec()).unwrap(),
        )
        .unwrap()
    };
    save("bnv.npy", &[h, w], &sim.bnv);
    save("image.npy", &[hl, wl], &sim.image);
    save("support.npy", &[h, w], &support);
    save("truth.npy", &[3, h, w], &truth);
    save("small.npy", &[10, 10], &[0.0; 100]);
    let mut bad = sim.image.clone();
    bad[5] = f32::NAN;
    save("nan_image.npy", &[hl, wl], &bad);
}

/// The flags of a run on the problem, the microscope of `write_problem`.
fn args<'a>(dir: &'a Path, image: &'a str, support: &'a str, out: &'a str) -> Vec<String> {
    let f = |n: &str| p(&dir.join(n)).to_string();
    [
        "joint",
        "--bnv",
        &f("bnv.npy"),
        "--pixel",
        "5nm",
        "--background",
        "none",
        "--support",
        &f(support),
        "--image",
        &f(image),
        "--scale",
        "4nm",
        "--cs",
        "0.2mm",
        "--theta-c",
        "1e-5",
        "--spread",
        "80nm",
        "--defocus=-0.5mm",
        "--quiet",
        "--out",
        &f(out),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[test]
fn joint_fits_the_magnetisation_and_the_registration() {
    let dir = common::cli::tmpdir("cli-joint", "fit");
    write_problem(&dir);
    let mut a = args(&dir, "image.npy", "support.npy", "out");
    let truth = p(&dir.join("truth.npy")).to_string();
    a.extend(
        ["--fit-registration", "--iters", "500", "--truth", &truth]
            .iter()
            .map(|s| s.to_string()),
    );
    let a: Vec<&str> = a.iter().map(|s| s.as_str()).collect();
    let o = run(&a);
    assert!(o.status.success(), "{}", stderr(&o));
    println!("{}", String::from_utf8_lossy(&o.stdout));
    let out = dir.join("out");
    for f in [
        "magnetization.npy",
        "magnetization.png",
        "bnv_model.npy",
        "bnv_residual.npy",
        "bnv.png",
        "phase_model.npy",
        "image_model.npy",
        "image_residual.npy",
        "ltem.png",
        "loss.csv",
        "loss.png",
        "metrics.json",
        "metadata.json",
    ] {
        assert!(out.join(f).exists(), "missing {f}");
    }
    let m = read_npy(out.join("magnetization.npy")).unwrap();
    assert_eq!(m.shape(), &[3, 64, 128]);
    let text = std::fs::read_to_string(out.join("metrics.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let num = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    assert!(num("inplane_cosine_to_truth") > 0.99, "{text}");
    // the registration: within 0.2 NV pixels (1 nm) and 0.2 deg of the truth
    let off = &v["offset_nm"];
    let (ox, oy) = (off[0].as_f64().unwrap(), off[1].as_f64().unwrap());
    assert!(
        (ox - 6.0).hypot(oy + 4.0) < 1.0,
        "offset ({ox}, {oy}): {text}"
    );
    assert!((num("rotation_deg") - 1.5).abs() < 0.2, "{text}");
    // each data set explained to its noise level, each with its own estimated sigma
    for d in ["nv", "ltem"] {
        let chi2 = v[d]["chi2_per_pixel"].as_f64().unwrap();
        assert!(chi2 < 1.5, "{d}: chi2 {chi2}");
        assert_eq!(v[d]["sigma_source"], "estimated from the data");
    }
    // the image's sigma ~ the simulated 20 % of the mean
    let s = v["ltem"]["sigma"].as_f64().unwrap();
    assert!((s - 0.2).abs() < 0.03, "LTEM sigma {s}");
    assert_eq!(v["ltem"]["determines_inplane_sense"], true);
    let meta = std::fs::read_to_string(out.join("metadata.json")).unwrap();
    assert!(meta.contains("\"ltem_kind\": \"image\""), "{meta}");
}

#[test]
fn joint_errors_are_one_line_and_leave_nothing() {
    let dir = common::cli::tmpdir("cli-joint", "errors");
    write_problem(&dir);
    // a support that does not fit the NV map
    let a = args(&dir, "image.npy", "small.npy", "out1");
    let o = run(&a.iter().map(|s| s.as_str()).collect::<Vec<_>>());
    assert_user_error(&o, &["small.npy", "10x10"]);
    assert_nothing_written(&dir, "out1");
    // a NaN in the image
    let a = args(&dir, "nan_image.npy", "support.npy", "out2");
    let o = run(&a.iter().map(|s| s.as_str()).collect::<Vec<_>>());
    assert_user_error(&o, &["nan_image.npy", "non-finite"]);
    assert_nothing_written(&dir, "out2");
    // a missing LTEM file
    let a = args(&dir, "missing.npy", "support.npy", "out3");
    let o = run(&a.iter().map(|s| s.as_str()).collect::<Vec<_>>());
    assert_user_error(&o, &["missing.npy"]);
    assert_nothing_written(&dir, "out3");
}
