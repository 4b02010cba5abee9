//! The `magprior` binary as a user runs it: every error case of the NV subcommands (one line,
//! exit code 2, nothing half-written), the forward/deproject/reconstruct/sweep happy paths, and
//! a clean stop on Ctrl-C.

use magprior::io::npy::{read_npy, write_npy};
use magprior::nv::{mask, synthetic, NvGeometry, Preset};
use magprior::{Tensor, C32};
use std::path::{Path, PathBuf};

mod common;

fn tmpdir_here(name: &str) -> PathBuf {
    common::cli::tmpdir("cli", name)
}
use common::cli::{assert_nothing_written, assert_user_error, bin, p, run, stderr};

/// A 32x32 synthetic B_NV map and its support in `dir`.
fn small_problem(dir: &Path) -> (PathBuf, PathBuf) {
    let g = NvGeometry::default();
    let s = synthetic::landau_ellipse(32, &g, 8.6e5, 0.01, 1).unwrap();
    let bnv = dir.join("bnv.npy");
    let sup = dir.join("support.npy");
    write_npy(&bnv, &Tensor::from_shape_vec(&[32, 32], s.bnv).unwrap()).unwrap();
    write_npy(&sup, &Tensor::from_shape_vec(&[32, 32], s.support).unwrap()).unwrap();
    (bnv, sup)
}

#[test]
fn error_cases_are_one_line_exit_2_and_leave_nothing() {
    let d = tmpdir_here("errors");
    let (bnv, sup) = small_problem(&d);
    let out = d.join("out");
    let base = |extra: &[&str]| {
        let mut v = vec![
            "nv",
            "reconstruct",
            "--pixel",
            "5nm",
            "--iters",
            "2",
            "--quiet",
            "--out",
            p(&out),
        ];
        v.extend_from_slice(extra);
        v.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let go = |extra: &[&str]| bin().args(base(extra)).output().unwrap();
    // missing file
    let o = go(&["--bnv", "/nonexistent/bnv.npy", "--support", p(&sup)]);
    assert_user_error(&o, &["/nonexistent/bnv.npy"]);
    // not an npy / wrong dtype (complex)
    let junk = d.join("junk.npy");
    std::fs::write(&junk, b"not numpy").unwrap();
    assert_user_error(
        &go(&["--bnv", p(&junk), "--support", p(&sup)]),
        &["junk.npy", "magic"],
    );
    let cplx = d.join("complex.npy");
    write_npy(
        &cplx,
        &Tensor::from_shape_vec_c(&[32, 32], vec![C32::new(1.0, 0.0); 1024]).unwrap(),
    )
    .unwrap();
    assert_user_error(
        &go(&["--bnv", p(&cplx), "--support", p(&sup)]),
        &["complex.npy", "complex"],
    );
    // mask vs data mismatch
    let small = d.join("small_support.npy");
    write_npy(&small, &Tensor::ones(&[16, 16])).unwrap();
    assert_user_error(
        &go(&["--bnv", p(&bnv), "--support", p(&small)]),
        &["small_support.npy", "32x32"],
    );
    // wrong rank
    let cube = d.join("cube.npy");
    write_npy(&cube, &Tensor::ones(&[2, 2, 2, 2])).unwrap();
    assert_user_error(
        &go(&["--bnv", p(&cube), "--support", p(&sup)]),
        &["cube.npy", "shape"],
    );
    // NaN in the data
    let nan = d.join("nan.npy");
    let mut v = vec![0f32; 1024];
    v[77] = f32::NAN;
    write_npy(&nan, &Tensor::from_shape_vec(&[32, 32], v).unwrap()).unwrap();
    assert_user_error(
        &go(&["--bnv", p(&nan), "--support", p(&sup)]),
        &["nan.npy", "non-finite"],
    );
    // non-positive lengths
    let o = run(&[
        "nv",
        "reconstruct",
        "--bnv",
        p(&bnv),
        "--support",
        p(&sup),
        "--pixel",
        "-5nm",
        "--out",
        p(&out),
    ]);
    assert_user_error(&o, &["--pixel", "positive"]);
    let o = run(&[
        "nv",
        "reconstruct",
        "--bnv",
        p(&bnv),
        "--support",
        p(&sup),
        "--pixel",
        "5nm",
        "--thickness",
        "0nm",
        "--out",
        p(&out),
    ]);
    assert_user_error(&o, &["--thickness"]);
    let o = run(&[
        "nv",
        "reconstruct",
        "--bnv",
        p(&bnv),
        "--support",
        p(&sup),
        "--pixel",
        "5 parsecs",
        "--out",
        p(&out),
    ]);
    assert_user_error(&o, &["5 parsecs"]);
    // unknown preset
    assert_user_error(
        &go(&[
            "--bnv",
            p(&bnv),
            "--support",
            p(&sup),
            "--mask-preset",
            "skyrmion",
        ]),
        &["skyrmion"],
    );
    // no mask at all, bad support spec, unknown device
    assert_user_error(&go(&["--bnv", p(&bnv)]), &["--support"]);
    assert_user_error(
        &go(&["--bnv", p(&bnv), "--support", "triangle:3nm"]),
        &["triangle"],
    );
    // a directory that is not ours is never replaced
    let foreign = d.join("foreign");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("thesis.tex"), "precious").unwrap();
    let o = run(&[
        "nv",
        "reconstruct",
        "--bnv",
        p(&bnv),
        "--support",
        p(&sup),
        "--pixel",
        "5nm",
        "--iters",
        "1",
        "--quiet",
        "--out",
        p(&foreign),
    ]);
    assert_user_error(&o, &["foreign", "not a magprior output"]);
    assert!(foreign.join("thesis.tex").exists());
    // forward: wrong shape, missing pixel for npy
    let o = run(&[
        "nv",
        "forward",
        "--magnetization",
        p(&bnv),
        "--pixel",
        "5nm",
        "--out",
        p(&d.join("b.npy")),
    ]);
    assert_user_error(&o, &["bnv.npy", "(2|3, H, W)"]);
    let m = d.join("m.npy");
    write_npy(&m, &Tensor::ones(&[2, 8, 8])).unwrap();
    let o = run(&[
        "nv",
        "forward",
        "--magnetization",
        p(&m),
        "--out",
        p(&d.join("b.npy")),
    ]);
    assert_user_error(&o, &["--pixel"]);
    assert_nothing_written(&d, "out");
    assert!(!d.join("b.npy").exists());
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn forward_deproject_reconstruct_and_odd_sizes() {
    let d = tmpdir_here("happy");
    // forward from an npy magnetisation (30x30: not divisible by 4)
    let n = 30;
    let sup = mask::ellipse_support(n, n, 14.5, 14.5, 11.0, 7.0, 0.0);
    let m = mask::preset_mask(&sup, n, n, Preset::Dipole, 30.0, false).unwrap();
    let mfile = d.join("m.npy");
    let data: Vec<f32> = m.data.iter().map(|v| v * 8.6e5).collect();
    write_npy(&mfile, &Tensor::from_shape_vec(&[2, n, n], data).unwrap()).unwrap();
    let bnv = d.join("bnv.npy");
    let comps = d.join("b.npy");
    let o = run(&[
        "nv",
        "forward",
        "--magnetization",
        p(&mfile),
        "--pixel",
        "5nm",
        "--thickness",
        "20nm",
        "--standoff",
        "50nm",
        "--out",
        p(&bnv),
        "--components",
        p(&comps),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(read_npy(&bnv).unwrap().shape(), &[n, n]);
    assert_eq!(read_npy(&comps).unwrap().shape(), &[3, n, n]);
    let dep = d.join("dep.npy");
    let o = run(&[
        "nv",
        "deproject",
        "--bnv",
        p(&bnv),
        "--pixel",
        "5nm",
        "--out",
        p(&dep),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(read_npy(&dep).unwrap().shape(), &[3, n, n]);
    let supf = d.join("sup.npy");
    write_npy(&supf, &Tensor::from_shape_vec(&[n, n], sup).unwrap()).unwrap();
    let out = d.join("rec");
    let o = run(&[
        "nv",
        "reconstruct",
        "--bnv",
        p(&bnv),
        "--pixel",
        "5nm",
        "--support",
        p(&supf),
        "--mask-preset",
        "dipole",
        "--mask-angle",
        "30",
        "--iters",
        "5",
        "--out",
        p(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("not divisible by 4"), "{}", stderr(&o));
    for f in [
        "magnetization.npy",
        "bnv_model.npy",
        "loss.csv",
        "metrics.json",
        "metadata.json",
        "bnv.png",
        "magnetization.png",
        "loss.png",
    ] {
        assert!(out.join(f).exists(), "missing {f}");
    }
    assert_eq!(
        read_npy(out.join("magnetization.npy")).unwrap().shape(),
        &[3, n, n]
    );
    let metrics = std::fs::read_to_string(out.join("metrics.json")).unwrap();
    for key in [
        "\"mse\"",
        "\"rmse_mT\"",
        "\"snr_db\"",
        "\"iterations\": 5",
        "\"seconds\"",
        "\"seconds_per_iteration\"",
    ] {
        assert!(metrics.contains(key), "{key} in {metrics}");
    }
    let csv = std::fs::read_to_string(out.join("loss.csv")).unwrap();
    assert!(csv.starts_with("iteration,loss,lr,snr,seconds\n") && csv.lines().count() == 6);
    // re-running into our own output directory replaces it
    let o = run(&[
        "nv",
        "reconstruct",
        "--bnv",
        p(&bnv),
        "--pixel",
        "5nm",
        "--support",
        "ellipse:55nm,35nm",
        "--iters",
        "2",
        "--quiet",
        "--fit-standoff",
        "--out",
        p(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(std::fs::read_to_string(out.join("metrics.json"))
        .unwrap()
        .contains("\"standoff\""));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn sweep_ranks_and_writes_one_directory_per_run() {
    let d = tmpdir_here("sweep");
    let (bnv, sup) = small_problem(&d);
    let out = d.join("sweep");
    let o = run(&[
        "nv",
        "sweep",
        "--bnv",
        p(&bnv),
        "--pixel",
        "5nm",
        "--support",
        p(&sup),
        "--angles",
        "0,90",
        "--standoffs",
        "40nm,50nm",
        "--iters",
        "3",
        "--quiet",
        "--out",
        p(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(
        table.contains("rank") && table.contains("one seed per setting"),
        "{table}"
    );
    let csv = std::fs::read_to_string(out.join("sweep.csv")).unwrap();
    assert!(csv.starts_with("angle,standoff,final_loss"));
    assert_eq!(csv.lines().count(), 5);
    let losses: Vec<f64> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(2).unwrap().parse().unwrap())
        .collect();
    assert!(
        losses.windows(2).all(|w| w[0] <= w[1]),
        "ranked ascending: {losses:?}"
    );
    let runs = std::fs::read_dir(&out)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().is_dir())
        .count();
    assert_eq!(runs, 4);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn ensemble_writes_the_mean_the_spread_and_every_member() {
    let d = tmpdir_here("ensemble");
    let (bnv, sup) = small_problem(&d);
    let out = d.join("ens");
    let args = [
        "nv",
        "reconstruct",
        "--bnv",
        p(&bnv),
        "--pixel",
        "5nm",
        "--support",
        p(&sup),
        "--iters",
        "4",
        "--seed",
        "2",
        "--ensemble",
        "3",
        "--quiet",
        "--out",
        p(&out),
    ];
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("3 members"));
    let load = |f: &str| read_npy(out.join(f)).unwrap().to_vec().unwrap();
    let members: Vec<Vec<f32>> = (2..5)
        .map(|s| load(&format!("members/seed_{s}/magnetization.npy")))
        .collect();
    let (mean, std) = (load("magnetization.npy"), load("magnetization_std.npy"));
    let (q05, q95) = (load("magnetization_q05.npy"), load("magnetization_q95.npy"));
    for i in (0..mean.len()).step_by(31) {
        let v: Vec<f64> = members.iter().map(|m| m[i] as f64).collect();
        let mu = v.iter().sum::<f64>() / 3.0;
        assert!((mean[i] as f64 - mu).abs() <= 1e-3 + 1e-6 * mu.abs(), "{i}");
        assert!(std[i] >= 0.0 && q05[i] <= q95[i]);
    }
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(m["members"], 3);
    assert_eq!(m["member_runs"].as_array().unwrap().len(), 3);
    assert!(m["relative_inplane_spread"].as_f64().unwrap() > 0.0);
    assert!(m["final_loss_std"].as_f64().unwrap() >= 0.0);
    assert!(out.join("magnetization_uncertainty.png").exists());
    assert!(out.join("members/seed_4/metrics.json").exists());
    // the directory is magprior's: a second run replaces it
    assert!(run(&args).status.success());
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn sharded_ensemble_merges_to_the_one_process_result_bit_for_bit() {
    let d = tmpdir_here("shards");
    let (bnv, sup) = small_problem(&d);
    let (one, split) = (d.join("one"), d.join("split"));
    let args = |out: &Path| {
        [
            "nv",
            "reconstruct",
            "--bnv",
            p(&bnv),
            "--pixel",
            "5nm",
            "--support",
            p(&sup),
            "--iters",
            "3",
            "--ensemble",
            "3",
            "--quiet",
            "--out",
            p(out),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
    };
    assert!(
        run(&args(&one).iter().map(|s| s.as_str()).collect::<Vec<_>>())
            .status
            .success()
    );
    // two shares as separate processes: one by flag, one as a Slurm array task
    let o = bin()
        .args(args(&split))
        .args(["--shard", "0/2"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    // merging before every share is there is an error naming what is missing
    let o = bin().args(["merge", p(&split)]).output().unwrap();
    assert_user_error(&o, &["shares [1] of 2 are missing"]);
    let o = bin()
        .args(args(&split))
        .env("SLURM_ARRAY_TASK_ID", "1")
        .env("SLURM_ARRAY_TASK_COUNT", "2")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(split.join("shard-1-of-2/members/seed_2").is_dir());
    let o = bin().args(["merge", p(&split)]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    for f in [
        "magnetization.npy",
        "magnetization_std.npy",
        "magnetization_q05.npy",
        "magnetization_q95.npy",
        "bnv_model.npy",
        "bnv_model_std.npy",
        "members/seed_0/magnetization.npy",
        "members/seed_2/bnv_model.npy",
    ] {
        let (a, b) = (
            std::fs::read(one.join(f)).unwrap(),
            std::fs::read(split.join(f)).unwrap(),
        );
        assert!(a == b, "{f} differs");
    }
    let metrics = |dir: &Path| {
        let mut m: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("metrics.json")).unwrap())
                .unwrap();
        // wall-clock times are the only thing allowed to differ
        for k in ["seconds", "seconds_per_member"] {
            m.as_object_mut().unwrap().remove(k);
        }
        for r in m["member_runs"].as_array_mut().unwrap() {
            r.as_object_mut().unwrap().remove("seconds");
        }
        m
    };
    assert_eq!(metrics(&one), metrics(&split));
    assert!(!split.join("shard-0-of-2").exists() && !split.join(".merge-staging").exists());
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn sharded_sweep_merges_to_the_one_process_table() {
    let d = tmpdir_here("sweep_shards");
    let (bnv, sup) = small_problem(&d);
    let (one, split) = (d.join("one"), d.join("split"));
    let args = |out: &Path| -> Vec<String> {
        [
            "nv",
            "sweep",
            "--bnv",
            p(&bnv),
            "--pixel",
            "5nm",
            "--support",
            p(&sup),
            "--mask-preset",
            "dipole",
            "--angles",
            "0,90",
            "--seeds",
            "0,1",
            "--iters",
            "3",
            "--quiet",
            "--out",
            p(out),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    assert!(bin().args(args(&one)).output().unwrap().status.success());
    // three shares of four runs: one of them splits a setting's seeds
    for s in ["0/3", "1/3", "2/3"] {
        let o = bin()
            .args(args(&split))
            .args(["--shard", s])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let o = bin().args(["merge", p(&split)]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("rank"));
    // the table without its wall-clock column
    let table = |dir: &Path| -> Vec<String> {
        std::fs::read_to_string(dir.join("sweep.csv"))
            .unwrap()
            .lines()
            .map(|l| {
                let mut c: Vec<&str> = l.split(',').collect();
                c.remove(5);
                c.join(",")
            })
            .collect()
    };
    assert_eq!(table(&one), table(&split));
    assert_eq!(table(&one).len(), 3);
    let f = "angle_+090.00_standoff_50.0nm_seed_1/magnetization.npy";
    assert!(std::fs::read(one.join(f)).unwrap() == std::fs::read(split.join(f)).unwrap());
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn merging_a_damaged_share_is_an_error_naming_the_file() {
    let d = tmpdir_here("shards_bad");
    let (bnv, sup) = small_problem(&d);
    let split = d.join("split");
    for s in ["0/2", "1/2"] {
        let o = bin()
            .args(["nv", "reconstruct", "--bnv", p(&bnv), "--pixel", "5nm"])
            .args([
                "--support",
                p(&sup),
                "--iters",
                "2",
                "--ensemble",
                "2",
                "--quiet",
            ])
            .args(["--shard", s, "--out", p(&split)])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
    }
    // a member's magnetisation replaced by a 2-D array
    let f = split.join("shard-1-of-2/members/seed_1/magnetization.npy");
    write_npy(&f, &Tensor::from_shape_vec(&[2, 2], vec![0.0; 4]).unwrap()).unwrap();
    let o = bin().args(["merge", p(&split)]).output().unwrap();
    assert_user_error(&o, &["magnetization.npy", "expected a 3-D array"]);
    // the shares are left as they were
    assert!(split.join("shard-0-of-2").is_dir() && !split.join(".merge-staging").exists());
    std::fs::remove_dir_all(&d).unwrap();
}

#[cfg(unix)]
#[test]
fn ctrl_c_stops_cleanly_and_keeps_results() {
    let d = tmpdir_here("sigint");
    let (bnv, sup) = small_problem(&d);
    let out = d.join("rec");
    common::cli::interrupt_and_check(
        &[
            "nv",
            "reconstruct",
            "--bnv",
            p(&bnv),
            "--pixel",
            "5nm",
            "--support",
            p(&sup),
            "--iters",
            "1000000",
            "--out",
            p(&out),
        ],
        &out,
        "magnetization.npy",
    );
    std::fs::remove_dir_all(&d).unwrap();
}
