//! Reconstructs a state relaxed by an independent micromagnetic solver (magnum.np, committed in
//! `fixtures/relaxed/`) from its simulated NV map, through the library alone, and scores the
//! in-plane directions against the truth:
//!
//! `cargo run --release --example nv_relaxed -- STATE MODEL [ITERS] [NOISE] [START_ITERS]`
//!
//! STATE: landau_ellipse, vortex_disk, s_state, c_state, needle, diamond_rect.
//! MODEL: energy, none, landau, vortex, dipole (the last four: the tanh DIP with that preset).
//! NOISE: fraction of max |B_NV| (default 0.01). Geometry: 5 nm pixels, 20 nm film, 50 nm
//! standoff, NV axis at 54.75 deg.

use magprior::io::load::load_array;
use magprior::nv::{
    self, mask, EnergyConfig, NvForward, NvGeometry, NvModel, NvReconConfig, Preset,
};
use magprior::{Rng, Tensor};
use std::path::PathBuf;

fn main() -> magprior::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let state = args.get(1).map_or("landau_ellipse", |s| s.as_str());
    let model = args.get(2).map_or("energy", |s| s.as_str());
    let iters: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1500);
    let noise: f64 = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(0.01);
    let start_iters: usize = args.get(5).and_then(|s| s.parse().ok()).unwrap_or(300);
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/relaxed");
    let m = load_array(&dir.join(format!("{state}_m.npy")))?.tensor;
    let sup = load_array(&dir.join(format!("{state}_support.npy")))?.tensor;
    let (h, w) = (m.shape()[1], m.shape()[2]);
    let ms = 8.6e5;
    let truth: Vec<f32> = m.to_vec()?.iter().map(|v| v * ms as f32).collect();
    let support = sup.to_vec()?;
    let geom = NvGeometry::default();
    let fwd = NvForward::new(h, w, &geom)?;
    let clean = fwd
        .bnv(&Tensor::from_shape_vec(&[1, 3, h, w], truth.clone())?)?
        .to_vec()?;
    let peak = clean.iter().fold(0f32, |a, v| a.max(v.abs())) as f64;
    let mut rng = Rng::new(7);
    let bnv: Vec<f32> = clean
        .iter()
        .map(|&v| (v as f64 + noise * peak * rng.normal()) as f32)
        .collect();
    let (preset, nv_model) = match model {
        "energy" => (
            Preset::None,
            NvModel::Energy(EnergyConfig {
                start_iters,
                ..Default::default()
            }),
        ),
        "none" => (Preset::None, NvModel::Tanh),
        "landau" => (Preset::Landau { ccw: true }, NvModel::Tanh),
        "vortex" => (Preset::Vortex { ccw: true }, NvModel::Tanh),
        "dipole" => (Preset::Dipole, NvModel::Tanh),
        other => {
            eprintln!("unknown model {other}: energy, none, landau, vortex or dipole");
            std::process::exit(2);
        }
    };
    let with_mz = model == "energy";
    let msk = mask::preset_mask(&support, h, w, preset, 0.0, with_mz)?;
    let cfg = NvReconConfig {
        geom,
        iters,
        model: nv_model,
        noise: Some(noise * peak),
        ..Default::default()
    };
    let res = nv::reconstruct(&bnv, h, w, &msk, &cfg, &mut |s| {
        if s.iter % 500 == 0 {
            eprintln!(
                "iter {:5} loss {:.4e} misfit {:.3e} T^2 {:.1} s",
                s.iter, s.loss, s.misfit, s.seconds
            );
        }
        true
    })?;
    let cos = nv::direction_cosine(&truth, &res.magnetization, &support);
    let secs = res.history.last().map_or(0.0, |s| s.seconds);
    let d = &res.diagnostics;
    println!(
        "{state} {model}: in-plane cosine {cos:.3}, chi2/px {:.2}, circulation {}, flip dchi2 {:.1}, {:.1} ms/iter, {} warnings",
        d.chi2_per_pixel,
        d.circulation.as_str(),
        d.flip_delta_chi2,
        1e3 * secs / res.history.len().max(1) as f64,
        d.warnings.len()
    );
    for wmsg in &d.warnings {
        println!("  warning: {wmsg}");
    }
    for n in &d.notes {
        println!("  note: {n}");
    }
    if let Some(e) = &res.energy {
        println!(
            "  energy: lambda {:.3e}, best start {}, objective spread {:.3e}",
            e.lambda, e.best_start, e.objective_spread
        );
        for s in &e.starts {
            println!("    start {s:?}");
        }
    }
    Ok(())
}
