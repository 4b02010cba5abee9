//! The `magprior ltem ...` commands as a user runs them: error cases (one line, exit 2, nothing
//! half-written), negative lengths in both spellings, the simulate / forward / sitie / induction
//! / reconstruct / series happy paths, the mumax3 OVF example, and a clean stop on Ctrl-C.

use magprior::io::npy::{read_npy, write_npy};
use magprior::ltem::synthetic::{simulate, Texture};
use magprior::ltem::Microscope;
use magprior::Tensor;
use std::path::{Path, PathBuf};

mod common;

fn tmpdir_here(name: &str) -> PathBuf {
    common::cli::tmpdir("ltem", name)
}
use common::cli::{assert_nothing_written, assert_user_error, bin, p, run, stderr};

/// The SIPRAD demo's microscope at -200 um, as CLI flags.
const MIC: [&str; 8] = [
    "--cs",
    "0.2mm",
    "--theta-c",
    "1e-5",
    "--spread",
    "80nm",
    "--defocus",
    "-200um",
];

/// A 32x32 noisy bubble image and its true phase in `dir`.
fn small_problem(dir: &Path) -> (PathBuf, PathBuf) {
    let mic = Microscope {
        defocus: -2e5,
        ..Microscope::siprad_demo()
    };
    let s = simulate(Texture::Bubbles, 32, 2e5, 50.0, &mic, 0.2, 1).unwrap();
    let img = dir.join("img.npy");
    let truth = dir.join("truth.npy");
    write_npy(&img, &Tensor::from_shape_vec(&[32, 32], s.image).unwrap()).unwrap();
    write_npy(&truth, &Tensor::from_shape_vec(&[32, 32], s.phase).unwrap()).unwrap();
    (img, truth)
}

fn tiny(extra: &[&str]) -> Vec<String> {
    let mut v: Vec<&str> = vec![
        "--iters",
        "3",
        "--pretrain",
        "2",
        "--channels",
        "4,8",
        "--quiet",
    ];
    v.extend_from_slice(&MIC);
    v.extend_from_slice(extra);
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn error_cases_are_one_line_exit_2_and_leave_nothing() {
    let d = tmpdir_here("errors");
    let (img, _) = small_problem(&d);
    let out = d.join("out");
    let rec = |extra: &[&str]| {
        let mut a = vec![
            "ltem".to_string(),
            "reconstruct".into(),
            "--out".into(),
            p(&out).into(),
        ];
        a.extend(tiny(extra));
        bin().args(a).output().unwrap()
    };
    // missing file
    assert_user_error(
        &rec(&["--image", "/nonexistent/img.npy"]),
        &["/nonexistent/img.npy"],
    );
    // a TIFF that is not one
    let bad_tif = d.join("bad.tif");
    std::fs::write(&bad_tif, b"II*\0garbage").unwrap();
    assert_user_error(&rec(&["--image", p(&bad_tif)]), &["bad.tif"]);
    // non-finite pixels
    let nan = d.join("nan.npy");
    let mut v = vec![1f32; 64];
    v[5] = f32::NAN;
    write_npy(&nan, &Tensor::from_shape_vec(&[8, 8], v).unwrap()).unwrap();
    assert_user_error(&rec(&["--image", p(&nan)]), &["nan.npy", "non-finite"]);
    // wrong rank
    let one_d = d.join("line.npy");
    write_npy(
        &one_d,
        &Tensor::from_shape_vec(&[16], vec![1.0; 16]).unwrap(),
    )
    .unwrap();
    assert_user_error(&rec(&["--image", p(&one_d)]), &["line.npy", "(H, W)"]);
    // an unknown device (`--device gpu` runs on the GPU: tests/gpu_ltem.rs)
    assert_user_error(
        &rec(&["--image", p(&img), "--device", "tpu"]),
        &["--device"],
    );
    // truth of another size
    let small = d.join("small.npy");
    write_npy(
        &small,
        &Tensor::from_shape_vec(&[8, 8], vec![0.0; 64]).unwrap(),
    )
    .unwrap();
    assert_user_error(
        &rec(&["--image", p(&img), "--truth", p(&small)]),
        &["small.npy", "32x32"],
    );
    // bad numbers
    assert_user_error(&rec(&["--image", p(&img), "--lr", "0"]), &["--lr"]);
    assert_user_error(&rec(&["--image", p(&img), "--kernel", "4"]), &["--kernel"]);
    assert_user_error(&rec(&["--image", p(&img), "--scale", "-4nm"]), &["--scale"]);
    assert_user_error(&rec(&["--image", p(&img), "--defocus", "0"]), &["defocus"]);
    assert_nothing_written(&d, "out");
    // SITIE needs a defocus
    let ph = d.join("ph.npy");
    let o = run(&[
        "ltem",
        "sitie",
        "--image",
        p(&img),
        "--defocus",
        "0",
        "--out",
        p(&ph),
    ]);
    assert_user_error(&o, &["defocus"]);
    assert!(!ph.exists());
    // --solve-amp needs a threshold
    let o = bin()
        .args([
            "ltem",
            "reconstruct",
            "--image",
            p(&img),
            "--solve-amp",
            "--out",
            p(&out),
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    // simulate: magnetisation of the wrong shape, missing thickness value
    let o = run(&[
        "ltem",
        "simulate",
        "--magnetization",
        p(&img),
        "--thickness",
        "20nm",
        "--out",
        p(&out),
    ]);
    assert_user_error(&o, &["img.npy", "(2|3, H, W)"]);
    assert_nothing_written(&d, "out");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn negative_lengths_work_in_both_spellings() {
    let d = tmpdir_here("neg");
    let (img, _) = small_problem(&d);
    let a = d.join("a.npy");
    let b = d.join("b.npy");
    let o1 = run(&[
        "ltem",
        "sitie",
        "--image",
        p(&img),
        "--defocus",
        "-200um",
        "--theta-c",
        "1e-5",
        "--out",
        p(&a),
    ]);
    assert!(o1.status.success(), "{}", stderr(&o1));
    let o2 = run(&[
        "ltem",
        "sitie",
        "--image",
        p(&img),
        "--defocus=-200um",
        "--theta-c=1e-5",
        "--out",
        p(&b),
    ]);
    assert!(o2.status.success(), "{}", stderr(&o2));
    assert_eq!(
        read_npy(&a).unwrap().to_vec().unwrap(),
        read_npy(&b).unwrap().to_vec().unwrap()
    );
    assert!(d.join("a.png").exists());
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn simulate_forward_sitie_induction_round_trip() {
    let d = tmpdir_here("sim");
    let n = 48;
    let m = magprior::ltem::synthetic::texture(Texture::Stripes, n, 2e5, 4);
    let mf = d.join("m.npy");
    write_npy(&mf, &Tensor::from_shape_vec(&[2, n, n], m).unwrap()).unwrap();
    let sim = d.join("sim");
    let mut args = vec![
        "ltem",
        "simulate",
        "--magnetization",
        p(&mf),
        "--thickness",
        "50nm",
        "--noise",
        "0.1",
        "--seed",
        "3",
        "--out",
        p(&sim),
    ];
    args.extend_from_slice(&MIC);
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    for f in [
        "phase.npy",
        "image.npy",
        "image_clean.npy",
        "induction.npy",
        "phase.png",
        "image.png",
        "induction.png",
        "metadata.json",
    ] {
        assert!(sim.join(f).exists(), "{f}");
    }
    assert_eq!(
        read_npy(sim.join("induction.npy")).unwrap().shape(),
        &[2, n, n]
    );
    // forward of the simulated phase reproduces the noise-free image
    let fimg = d.join("fwd.npy");
    let phase_file = sim.join("phase.npy");
    let mut args = vec![
        "ltem",
        "forward",
        "--phase",
        p(&phase_file),
        "--out",
        p(&fimg),
    ];
    args.extend_from_slice(&MIC);
    assert!(run(&args).status.success());
    let a = read_npy(&fimg).unwrap().to_vec().unwrap();
    let b = read_npy(sim.join("image_clean.npy"))
        .unwrap()
        .to_vec()
        .unwrap();
    assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-5));
    // induction command equals the simulated induction
    let bf = d.join("b.npy");
    let o = run(&[
        "ltem",
        "induction",
        "--phase",
        p(&sim.join("phase.npy")),
        "--scale",
        "4nm",
        "--out",
        p(&bf),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        read_npy(&bf).unwrap().to_vec().unwrap(),
        read_npy(sim.join("induction.npy"))
            .unwrap()
            .to_vec()
            .unwrap()
    );
    assert!(d.join("b.png").exists());
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn reconstruct_writes_everything_and_reports_accuracy() {
    let d = tmpdir_here("rec");
    let (img, truth) = small_problem(&d);
    let out = d.join("rec");
    let mut a = vec![
        "ltem".to_string(),
        "reconstruct".into(),
        "--image".into(),
        p(&img).into(),
        "--truth".into(),
        p(&truth).into(),
        "--out".into(),
        p(&out).into(),
    ];
    a.extend(tiny(&[]));
    let o = bin().args(&a).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    for f in [
        "phase.npy",
        "phase_raw.npy",
        "sitie.npy",
        "induction.npy",
        "image_model.npy",
        "loss.csv",
        "metrics.json",
        "metadata.json",
        "phase.png",
        "induction.png",
        "image.png",
        "loss.png",
    ] {
        assert!(out.join(f).exists(), "{f}");
    }
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["iterations"], 3);
    assert!(metrics["accuracy"]["phase"].as_f64().unwrap().is_finite());
    assert!(metrics["seconds_per_iteration"].as_f64().unwrap() > 0.0);
    let meta = std::fs::read_to_string(out.join("metadata.json")).unwrap();
    assert!(meta.contains("T m"), "{meta}");
    assert_eq!(
        read_npy(out.join("induction.npy")).unwrap().shape(),
        &[2, 32, 32]
    );
    // the loss log has the pretraining and fit rows
    let csv = std::fs::read_to_string(out.join("loss.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 2 + 3, "{csv}");
    // amplitude branches: fixed map and learned network (the constraint runs every 2 iterations)
    for extra in [
        vec!["--amp-threshold", "0.8"],
        vec!["--amp-threshold", "0.8", "--solve-amp"],
    ] {
        let out2 = d.join("amp");
        let mut a = vec![
            "ltem".to_string(),
            "reconstruct".into(),
            "--image".into(),
            p(&img).into(),
            "--out".into(),
            p(&out2).into(),
        ];
        a.extend(tiny(&extra));
        let o = bin().args(&a).output().unwrap();
        assert!(o.status.success(), "{extra:?}: {}", stderr(&o));
        let amp = read_npy(out2.join("amplitude.npy"))
            .unwrap()
            .to_vec()
            .unwrap();
        assert!(amp.iter().all(|v| v.is_finite() && *v > 0.0));
    }
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn odd_sizes_are_padded_for_the_network() {
    let d = tmpdir_here("odd");
    let mic = Microscope {
        defocus: -2e5,
        ..Microscope::siprad_demo()
    };
    let s = simulate(Texture::Bubbles, 32, 2e5, 50.0, &mic, 0.1, 2).unwrap();
    // crop to 30x27
    let (h, w) = (30, 27);
    let v: Vec<f32> = (0..h)
        .flat_map(|r| s.image[r * 32..r * 32 + w].to_vec())
        .collect();
    let img = d.join("odd.npy");
    write_npy(&img, &Tensor::from_shape_vec(&[h, w], v).unwrap()).unwrap();
    let out = d.join("rec");
    let mut a = vec![
        "ltem".to_string(),
        "reconstruct".into(),
        "--image".into(),
        p(&img).into(),
        "--out".into(),
        p(&out).into(),
    ];
    a.extend(tiny(&[]).into_iter().filter(|x| x != "--quiet"));
    let o = bin().args(&a).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("not divisible"), "{}", stderr(&o));
    assert_eq!(read_npy(out.join("phase.npy")).unwrap().shape(), &[h, w]);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn series_warm_starts_every_frame() {
    let d = tmpdir_here("series");
    let mic = Microscope {
        defocus: -2e5,
        ..Microscope::siprad_demo()
    };
    let mut stack = Vec::new();
    for seed in 0..3 {
        stack.extend(
            simulate(Texture::Bubbles, 32, 2e5, 50.0, &mic, 0.2, seed)
                .unwrap()
                .image,
        );
    }
    let f = d.join("stack.npy");
    write_npy(&f, &Tensor::from_shape_vec(&[3, 32, 32], stack).unwrap()).unwrap();
    let out = d.join("ser");
    let mut a = vec![
        "ltem".to_string(),
        "series".into(),
        "--frames".into(),
        p(&f).into(),
        "--out".into(),
        p(&out).into(),
    ];
    a.extend(tiny(&[]));
    let o = bin().args(&a).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let csv = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    assert_eq!(csv.lines().count(), 4, "{csv}");
    for k in 0..3 {
        assert!(out.join(format!("frame_{k:04}/phase.npy")).exists());
    }
    // frames after the first are not pretrained
    let l1 = std::fs::read_to_string(out.join("frame_0001/loss.csv")).unwrap();
    assert!(!l1.contains("pretrain,"), "{l1}");
    // a directory of frames works too
    let dir = d.join("frames");
    std::fs::create_dir_all(&dir).unwrap();
    let t = read_npy(&f).unwrap().to_vec().unwrap();
    for k in 0..2 {
        write_npy(
            dir.join(format!("f{k}.npy")),
            &Tensor::from_shape_vec(&[32, 32], t[k * 1024..(k + 1) * 1024].to_vec()).unwrap(),
        )
        .unwrap();
    }
    let out2 = d.join("ser2");
    let mut a = vec![
        "ltem".to_string(),
        "series".into(),
        "--frames".into(),
        p(&dir).into(),
        "--out".into(),
        p(&out2).into(),
    ];
    a.extend(tiny(&[]));
    let o = bin().args(&a).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(std::fs::read_to_string(out2.join("summary.csv"))
        .unwrap()
        .contains("f1.npy"));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn mumax_ovf_example_through_simulate() {
    let ovf = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/example_mumax.ovf");
    if !ovf.exists() {
        eprintln!("skipping: {} is absent", ovf.display());
        return;
    }
    let d = tmpdir_here("ovf");
    let out = d.join("sim");
    let o = run(&[
        "ltem",
        "simulate",
        "--magnetization",
        p(&ovf),
        "--thickness",
        "5nm",
        "--ms",
        "8e5",
        "--theta-c",
        "1e-5",
        "--defocus=-0.5mm",
        "--out",
        p(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let phase = read_npy(out.join("phase.npy")).unwrap();
    assert_eq!(phase.shape(), &[500, 500]);
    let v = phase.to_vec().unwrap();
    assert!(v.iter().all(|x| x.is_finite()));
    assert!(
        v.iter().copied().fold(0f32, f32::max) > 0.1,
        "phase too small"
    );
    // the pixel size came from the file (5 nm cells): rows = y index, zeros outside the magnet
    let meta = std::fs::read_to_string(out.join("metadata.json")).unwrap();
    assert!(meta.contains("\"scale_nm_per_px\": 5.0"), "{meta}");
    let b = read_npy(out.join("induction.npy"))
        .unwrap()
        .to_vec()
        .unwrap();
    assert!(b.iter().any(|x| x.abs() > 0.0));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn ctrl_c_stops_cleanly_and_keeps_results() {
    let d = tmpdir_here("sigint");
    let (img, _) = small_problem(&d);
    let out = d.join("rec");
    let mut args = vec![
        "ltem",
        "reconstruct",
        "--image",
        p(&img),
        "--iters",
        "1000000",
        "--pretrain",
        "5",
        "--channels",
        "4,8",
        "--out",
        p(&out),
    ];
    args.extend_from_slice(&MIC);
    common::cli::interrupt_and_check(&args, &out, "phase.npy");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn ensemble_writes_the_mean_the_spread_and_the_coverage() {
    let d = tmpdir_here("ensemble");
    let (img, truth) = small_problem(&d);
    let out = d.join("ens");
    let mut a: Vec<String> = [
        "ltem",
        "reconstruct",
        "--image",
        p(&img),
        "--truth",
        p(&truth),
        "--ensemble",
        "3",
        "--out",
        p(&out),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.extend(tiny(&[]));
    let o = bin().args(&a).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let load = |f: &str| read_npy(out.join(f)).unwrap().to_vec().unwrap();
    let members: Vec<Vec<f32>> = (0..3)
        .map(|s| load(&format!("members/seed_{s}/phase.npy")))
        .collect();
    let (mean, q05, q95) = (
        load("phase.npy"),
        load("phase_q05.npy"),
        load("phase_q95.npy"),
    );
    for i in 0..mean.len() {
        let mu = members.iter().map(|m| m[i] as f64).sum::<f64>() / 3.0;
        assert!((mean[i] as f64 - mu).abs() <= 1e-5 + 1e-6 * mu.abs(), "{i}");
        assert!(q05[i] <= q95[i]);
    }
    for f in [
        "phase_std.npy",
        "induction.npy",
        "induction_std.npy",
        "induction_q05.npy",
        "induction_q95.npy",
        "phase_uncertainty.png",
        "induction_uncertainty.png",
        "members/seed_2/metrics.json",
    ] {
        assert!(out.join(f).exists(), "{f}");
    }
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(m["members"], 3);
    let cov = m["truth"]["coverage_phase"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&cov), "{cov}");
    assert!(m["truth"]["accuracy"]["phase"]
        .as_f64()
        .unwrap()
        .is_finite());
    assert!(m["member_runs"][1]["accuracy_phase"]
        .as_f64()
        .unwrap()
        .is_finite());
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn sharded_ensemble_merges_to_the_one_process_result() {
    let d = tmpdir_here("shards");
    let (img, truth) = small_problem(&d);
    let (one, split) = (d.join("one"), d.join("split"));
    let args = |out: &Path, extra: &[&str]| {
        let mut v: Vec<String> = [
            "ltem",
            "reconstruct",
            "--image",
            p(&img),
            "--truth",
            p(&truth),
            "--ensemble",
            "2",
            "--out",
            p(out),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(tiny(extra));
        v
    };
    assert!(bin()
        .args(args(&one, &[]))
        .output()
        .unwrap()
        .status
        .success());
    for s in ["0/2", "1/2"] {
        let o = bin().args(args(&split, &["--shard", s])).output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let o = bin().args(["merge", p(&split)]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    for f in [
        "phase.npy",
        "phase_std.npy",
        "phase_q95.npy",
        "induction.npy",
        "members/seed_1/phase.npy",
    ] {
        let (a, b) = (
            std::fs::read(one.join(f)).unwrap(),
            std::fs::read(split.join(f)).unwrap(),
        );
        assert!(a == b, "{f} differs");
    }
    let cov = |dir: &Path| {
        let m: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("metrics.json")).unwrap())
                .unwrap();
        m["truth"]["coverage_phase"].as_f64().unwrap()
    };
    assert_eq!(cov(&one), cov(&split));
    std::fs::remove_dir_all(&d).unwrap();
}

/// Contamination as a user meets it: `simulate --particles` writes the field, its truth and
/// the same field in focus; `reconstruct --infocus` (and `--amp-mask`, `--solve-amp`) writes
/// the assumed map and its metrics; bad amplitude inputs are one-line errors.
#[test]
fn contamination_from_simulate_to_reconstruct() {
    let d = tmpdir_here("contamination");
    let n = 48;
    let m = magprior::ltem::synthetic::texture(Texture::Bubbles, n, 2e5, 4);
    let mf = d.join("m.npy");
    write_npy(&mf, &Tensor::from_shape_vec(&[2, n, n], m).unwrap()).unwrap();
    let sim = d.join("sim");
    let mut args = vec![
        "ltem",
        "simulate",
        "--magnetization",
        p(&mf),
        "--thickness",
        "100nm",
        "--noise",
        "0.1",
        "--particles",
        "2",
        "--particle-radius",
        "3,6",
        "--out",
        p(&sim),
    ];
    args.extend_from_slice(&MIC);
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    for f in [
        "amplitude.npy",
        "phase_e.npy",
        "contamination_mask.npy",
        "image_infocus.npy",
    ] {
        assert!(sim.join(f).exists(), "{f}");
    }
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sim.join("metadata.json")).unwrap()).unwrap();
    assert_eq!(meta["particles"].as_array().unwrap().len(), 2);
    // kappa = V0 sigma xi at 200 kV: 20 V x 7.29e-3 rad/(V nm) x 10 nm
    assert!((meta["kappa_rad"].as_f64().unwrap() - 1.458).abs() < 0.01);
    let amp = read_npy(sim.join("amplitude.npy"))
        .unwrap()
        .to_vec()
        .unwrap();
    assert!(amp.iter().any(|&a| a < 0.85) && amp.iter().all(|&a| a > 0.0 && a <= 1.0));

    let img = sim.join("image.npy");
    let truth = sim.join("phase.npy");
    let rec = |out: &Path, extra: &[&str]| {
        let mut a = vec![
            "ltem".to_string(),
            "reconstruct".into(),
            "--image".into(),
            p(&img).into(),
            "--truth".into(),
            p(&truth).into(),
            "--out".into(),
            p(out).into(),
        ];
        a.extend(tiny(extra));
        bin().args(a).output().unwrap()
    };
    let infocus = sim.join("image_infocus.npy");
    let out = d.join("rec_infocus");
    let o = rec(
        &out,
        &["--infocus", p(&infocus), "--solve-amp", "--learn-kappa"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    for f in ["amplitude_init.npy", "amplitude_init.png", "amplitude.npy"] {
        assert!(out.join(f).exists(), "{f}");
    }
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    let frac = metrics["amplitude_area_fraction"].as_f64().unwrap();
    let truth_frac = read_npy(sim.join("contamination_mask.npy"))
        .unwrap()
        .to_vec()
        .unwrap()
        .iter()
        .filter(|&&v| v > 0.0)
        .count() as f64
        / (n * n) as f64;
    assert!(
        frac > 0.4 * truth_frac && frac < 2.5 * truth_frac,
        "{frac} vs {truth_frac}"
    );
    assert!(metrics["kappa"].as_f64().unwrap().is_finite());
    assert_eq!(metrics["kappa_learned"], true);
    assert!(metrics["amplitude_smoothing_px"].as_f64().unwrap() >= 1.5);
    assert!(metrics["image_noise_estimate"].as_f64().unwrap() > 0.0);
    assert!(metrics["phase_accuracy_outside_amplitude"]
        .as_f64()
        .is_some());
    assert!(metrics["warnings"].as_array().is_some());
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metadata.json")).unwrap()).unwrap();
    assert!(meta["amplitude"]["learned"]["source"]["infocus"]["file"]
        .as_str()
        .unwrap()
        .ends_with("image_infocus.npy"));

    // a user mask (the true one)
    let out2 = d.join("rec_mask");
    let mask = sim.join("contamination_mask.npy");
    let o = rec(&out2, &["--amp-mask", p(&mask)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out2.join("metrics.json")).unwrap()).unwrap();
    assert!((metrics["amplitude_area_fraction"].as_f64().unwrap() - truth_frac).abs() < 1e-6);

    // bad amplitude inputs
    let small = d.join("small.npy");
    write_npy(
        &small,
        &Tensor::from_shape_vec(&[8, 8], vec![1.0; 64]).unwrap(),
    )
    .unwrap();
    let bad = d.join("bad_out");
    assert_user_error(
        &rec(&bad, &["--amp-mask", p(&small)]),
        &["small.npy", "48x48"],
    );
    assert_user_error(
        &rec(&bad, &["--infocus", p(&small)]),
        &["small.npy", "48x48"],
    );
    let full = d.join("full.npy");
    write_npy(
        &full,
        &Tensor::from_shape_vec(&[n, n], vec![1.0; n * n]).unwrap(),
    )
    .unwrap();
    assert_user_error(
        &rec(&bad, &["--amp-mask", p(&full)]),
        &["full.npy", "whole image"],
    );
    assert_user_error(&rec(&bad, &["--solve-amp"]), &["--solve-amp"]);
    assert_user_error(&rec(&bad, &["--learn-kappa"]), &["--learn-kappa"]);
    assert_user_error(
        &rec(&bad, &["--amp-threshold", "1.5"]),
        &["--amp-threshold"],
    );
    assert_user_error(
        &rec(&bad, &["--amp-mask", p(&mask), "--infocus", p(&infocus)]),
        &["--infocus"],
    );
    assert_nothing_written(&d, "bad_out");
}
