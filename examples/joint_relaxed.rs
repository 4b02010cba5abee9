//! The joint NV + Lorentz-TEM validation on states relaxed by an independent micromagnetic solver
//! (magnum.np, `fixtures/relaxed/`), through the library alone:
//!
//! `cargo run --release --example joint_relaxed -- STATE [ITERS] [IMAGE_NOISE] [RUNS]`
//!
//! STATE: landau_ellipse, vortex_disk, s_state, c_state, needle, diamond_rect (or `all`).
//! Both measurements are simulated from the relaxed state: B_NV on its own 5 nm grid (50 nm
//! standoff, 20 nm film, NV axis 54.75 deg) with 1 % of the peak field as noise; the magnetic
//! phase exactly in real space (no FFT) on a 4 nm LTEM grid shifted by (6, -4) nm and rotated by
//! 1.5 deg, imaged at -0.5 mm (the SIPRAD demo's microscope) with IMAGE_NOISE (default 0.2) of
//! the mean as noise. RUNS (default `nv,ltem,both`): the NV map alone and the image alone get the
//! true registration; the joint run fits it from zero. Printed per run: the in-plane cosine to
//! the truth, chi^2 per pixel of each data set, the null-space test per data set, the fitted
//! registration, seconds per iteration.

use magprior::io::load::load_array;
use magprior::joint::{self, Datasets, JointConfig, JointModel, LtemMeasurement, Registration};
use magprior::ltem::Microscope;
use magprior::nv::{direction_cosine, NvGeometry};
use std::path::PathBuf;

const STATES: [&str; 6] = [
    "landau_ellipse",
    "vortex_disk",
    "s_state",
    "c_state",
    "needle",
    "diamond_rect",
];

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let state = args.get(1).map_or("vortex_disk", |s| s.as_str());
    let iters: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1500);
    let noise: f64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(0.2);
    let runs = args.get(4).map_or("nv,ltem,both", |s| s.as_str());
    let model = match args.get(5).map_or("unit", |s| s.as_str()) {
        "tanh" => JointModel::Tanh,
        _ => JointModel::Unit,
    };
    let warmup: f64 = args.get(6).and_then(|s| s.parse().ok()).unwrap_or(0.1);
    let ramp: f64 = args.get(7).and_then(|s| s.parse().ok()).unwrap_or(0.5);
    let with_mz = std::env::var("JINPLANE").is_err();
    let states: Vec<&str> = if state == "all" {
        STATES.to_vec()
    } else {
        vec![state]
    };
    println!("state | run | in-plane cosine | rms |m - m_true| | circulation (truth) | chi2/px NV | chi2/px LTEM | flip dchi2 NV | flip dchi2 LTEM | offset (nm) | rotation (deg) | s/iter");
    for st in states {
        panel(st, iters, noise, runs, model, (warmup, ramp), with_mz)?;
    }
    Ok(())
}

fn panel(
    state: &str,
    iters: usize,
    noise: f64,
    runs: &str,
    model: JointModel,
    (warmup, nv_ramp): (f64, f64),
    with_mz: bool,
) -> Res<()> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/relaxed");
    let m = load_array(&dir.join(format!("{state}_m.npy")))?.tensor;
    let support = load_array(&dir.join(format!("{state}_support.npy")))?
        .tensor
        .to_vec()?;
    let (h, w) = (m.shape()[1], m.shape()[2]);
    let ms = 8.6e5f32;
    let truth: Vec<f32> = m.to_vec()?.iter().map(|v| v * ms).collect();
    let geom = NvGeometry::default();
    let mic = Microscope {
        defocus: -0.5e6,
        ..Microscope::siprad_demo()
    };
    // the LTEM field of view: 90 % of the NV map's, in 4 nm pixels (even sides)
    let side = |n: usize| ((n as f64 * 5.0 / 4.0 * 0.9 / 2.0).round() as usize) * 2;
    let (hl, wl) = (side(h), side(w));
    let reg = Registration {
        offset_nm: [6.0, -4.0],
        rotation_deg: 1.5,
    };
    let sim = joint::simulate(&truth, h, w, &geom, &mic, hl, wl, &reg, 0.01, noise, 11)?;
    // MAGPRIOR_WRITE=DIR: the simulated files, for `magprior joint` (DIR/STATE/...)
    if let Ok(out) = std::env::var("MAGPRIOR_WRITE") {
        use magprior::io::npy::write_npy;
        let d = PathBuf::from(out).join(state);
        std::fs::create_dir_all(&d)?;
        let save = |name: &str, shape: &[usize], v: &[f32]| -> magprior::Result<()> {
            write_npy(
                d.join(name),
                &magprior::Tensor::from_shape_vec(shape, v.to_vec())?,
            )
        };
        save("bnv.npy", &[h, w], &sim.bnv)?;
        save("image.npy", &[hl, wl], &sim.image)?;
        save("phase.npy", &[hl, wl], &sim.phase)?;
        save("support.npy", &[h, w], &support)?;
        save("truth.npy", &[3, h, w], &truth)?;
        println!("wrote {}", d.display());
        return Ok(());
    }
    for run in runs.split(',') {
        let (datasets, fit) = match run {
            "nv" => (Datasets::Nv, false),
            "ltem" => (Datasets::Ltem, false),
            "both" => (Datasets::Both, true),
            "both-given" => (Datasets::Both, false),
            other => {
                eprintln!("unknown run {other}: nv, ltem, both or both-given");
                std::process::exit(2);
            }
        };
        let cfg = JointConfig {
            geom: geom.clone(),
            microscope: mic.clone(),
            datasets,
            registration: if fit { Registration::default() } else { reg },
            fit_registration: fit,
            iters,
            model,
            warmup,
            nv_ramp,
            with_mz,
            energy: match std::env::var("JLAMBDA")
                .ok()
                .and_then(|v| v.parse::<f64>().ok())
            {
                Some(l) if l > 0.0 => Some((magprior::nv::Material::default(), l)),
                Some(_) => None,
                None => JointConfig::default().energy,
            },
            ..Default::default()
        };
        let res = joint::reconstruct_joint(
            &sim.bnv,
            h,
            w,
            &LtemMeasurement::Image(sim.image.clone()),
            hl,
            wl,
            &support,
            &cfg,
            &mut |_| true,
        )?;
        let cos = direction_cosine(&truth, &res.magnetization, &support);
        let secs = res.history.last().map_or(0.0, |s| s.seconds) / res.history.len().max(1) as f64;
        println!(
            "{state} | {run} | {cos:.4} | {:.3} | {:+.2} ({:+.2}) | {:.2} | {:.2} | {:.1} | {:.1} | ({:.2}, {:.2}) | {:.3} | {secs:.3}",
            rms_error(&truth, &res.magnetization, &support, ms as f64),
            joint::circulation(&res.magnetization, h, w, &support),
            joint::circulation(&truth, h, w, &support),
            res.nv.chi2_per_pixel,
            res.ltem.chi2_per_pixel,
            res.nv.flip_delta_chi2,
            res.ltem.flip_delta_chi2,
            res.registration.offset_nm[0],
            res.registration.offset_nm[1],
            res.registration.rotation_deg,
        );
        for wmsg in &res.warnings {
            println!("  warning: {wmsg}");
        }
    }
    Ok(())
}

/// The RMS over the support of |m - m_true| (all three components, in units of Ms).
fn rms_error(truth: &[f32], m: &[f32], support: &[f32], ms: f64) -> f64 {
    let hw = support.len();
    let inside: Vec<usize> = (0..hw).filter(|&i| support[i] > 0.5).collect();
    let sum: f64 = inside
        .iter()
        .map(|&i| {
            (0..3)
                .map(|c| ((m[c * hw + i] - truth[c * hw + i]) as f64 / ms).powi(2))
                .sum::<f64>()
        })
        .sum();
    (sum / inside.len().max(1) as f64).sqrt()
}
