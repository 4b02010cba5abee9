//! How well an ensemble's spread describes its error, on synthetic data whose truth is known,
//! through the library alone:
//!
//! `cargo run --release --example ensemble_calibration -- nv STATE [K] [ITERS] [MODEL]`
//! `cargo run --release --example ensemble_calibration -- ltem TEXTURE [K] [ITERS] [NOISE] [DEFOCUS_MM]`
//!
//! NV: a state relaxed by magnum.np (`fixtures/relaxed/`: vortex_disk, needle, landau_ellipse,
//! ...) forwarded at 50 nm (NV axis 54.75 deg, 1 % noise), reconstructed K times (MODEL `none`:
//! the tanh DIP with both in-plane components free, or `energy`). Prints the relative in-plane
//! spread, each member's cosine to the truth (its sign: the circulation it chose), the mean's,
//! and the coverage: the fraction of (pixel, component) values inside the support whose truth
//! lies within the members' 5-95 % band (0.9 when calibrated).
//!
//! LTEM: a 128^2 texture (bubbles, stripes) imaged with the SIPRAD demo microscope (default
//! -1 mm, 50 % noise), K SIPRAD members; the accuracy of the mean and of each member, and the
//! coverage of the true phase and induction.

use magprior::io::load::load_array;
use magprior::ltem::{self, synthetic, Microscope, SipradConfig};
use magprior::nv::{self, mask, EnergyConfig, NvForward, NvGeometry, NvModel, NvReconConfig};
use magprior::{Rng, Tensor};
use std::path::PathBuf;

fn arg<T: std::str::FromStr>(args: &[String], i: usize, default: T) -> T {
    args.get(i).and_then(|s| s.parse().ok()).unwrap_or(default)
}

fn main() -> magprior::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("nv") => nv_case(&args),
        Some("ltem") => ltem_case(&args),
        _ => {
            eprintln!("usage: ensemble_calibration nv STATE [K] [ITERS] [MODEL] | ltem TEXTURE [K] [ITERS] [NOISE] [DEFOCUS_MM]");
            std::process::exit(2);
        }
    }
}

fn nv_case(args: &[String]) -> magprior::Result<()> {
    let state = args.get(2).map_or("vortex_disk", |s| s.as_str());
    let k: usize = arg(args, 3, 5);
    let iters: usize = arg(args, 4, 800);
    let model = args.get(5).map_or("none", |s| s.as_str());
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/relaxed");
    let m = load_array(&dir.join(format!("{state}_m.npy")))?.tensor;
    let support = load_array(&dir.join(format!("{state}_support.npy")))?
        .tensor
        .to_vec()?;
    let (h, w) = (m.shape()[1], m.shape()[2]);
    let truth: Vec<f32> = m.to_vec()?.iter().map(|v| v * 8.6e5).collect();
    let geom = NvGeometry::default();
    let clean = NvForward::new(h, w, &geom)?
        .bnv(&Tensor::from_shape_vec(&[1, 3, h, w], truth.clone())?)?
        .to_vec()?;
    let peak = clean.iter().fold(0f32, |a, v| a.max(v.abs())) as f64;
    let mut rng = Rng::new(7);
    let bnv: Vec<f32> = clean
        .iter()
        .map(|&v| (v as f64 + 0.01 * peak * rng.normal()) as f32)
        .collect();
    let energy = model == "energy";
    let msk = mask::preset_mask(&support, h, w, nv::Preset::None, 0.0, energy)?;
    let cfg = NvReconConfig {
        geom,
        iters,
        noise: Some(0.01 * peak),
        model: if energy {
            NvModel::Energy(EnergyConfig::default())
        } else {
            NvModel::Tanh
        },
        ..Default::default()
    };
    let ens = nv::reconstruct_ensemble(&bnv, h, w, &msk, &cfg, k, &mut |_, _| true)?;
    let hw = h * w;
    let cos: Vec<f64> = ens
        .members
        .iter()
        .map(|r| nv::direction_cosine(&truth, &r.magnetization, &support))
        .collect();
    let keep: Vec<bool> = (0..3 * hw)
        .map(|i| i < 2 * hw && support[i % hw] > 0.5)
        .collect();
    let cover = ens.magnetization.coverage(&truth, Some(&keep))?;
    let spread = ens.inplane_spread(&support);
    let secs: f64 = ens
        .members
        .iter()
        .map(|r| r.history.last().map_or(0.0, |s| s.seconds))
        .sum();
    println!(
        "nv {state} {model}: K {k}, relative in-plane spread {:.3}, coverage {:.3}, cosine of the mean {:.3}, members' cosines {:?}, circulations {:?}, {:.1} s/member",
        spread.relative,
        cover,
        nv::direction_cosine(&truth, &ens.magnetization.mean, &support),
        cos.iter().map(|c| (c * 1000.0).round() / 1000.0).collect::<Vec<_>>(),
        ens.members.iter().map(|r| r.diagnostics.circulation.as_str()).collect::<Vec<_>>(),
        secs / k as f64
    );
    Ok(())
}

fn ltem_case(args: &[String]) -> magprior::Result<()> {
    let texture = match args.get(2).map_or("bubbles", |s| s.as_str()) {
        "stripes" => synthetic::Texture::Stripes,
        _ => synthetic::Texture::Bubbles,
    };
    let k: usize = arg(args, 3, 5);
    let iters: usize = arg(args, 4, 400);
    let noise: f64 = arg(args, 5, 0.5);
    let defocus_mm: f64 = arg(args, 6, -1.0);
    let n = 128;
    let mic = Microscope {
        defocus: defocus_mm * 1e6,
        ..Microscope::siprad_demo()
    };
    let data = synthetic::simulate(texture, n, 2e5, 50.0, &mic, noise, 1)?;
    let cfg = SipradConfig {
        iters,
        ..Default::default()
    };
    let ens =
        ltem::reconstruct_ensemble(&[&data.image], None, n, n, &mic, &cfg, k, &mut |_, _| true)?;
    let keep = ltem::metrics::interior(n, n);
    let keep2: Vec<bool> = keep.iter().chain(&keep).copied().collect();
    let tb = ltem::induction(&data.phase, n, n, mic.scale)?;
    let acc = |p: &[f32]| ltem::accuracy(p, &data.phase, n, n, mic.scale, true).map(|a| a.phase);
    let members = ens
        .members
        .iter()
        .map(|r| acc(&r.phase).map(|a| (a * 1000.0).round() / 1000.0))
        .collect::<magprior::Result<Vec<_>>>()?;
    let secs: f64 = ens.members.iter().map(|r| r.seconds).sum();
    println!(
        "ltem {texture:?} {n}^2 {defocus_mm} mm {:.0} % noise: K {k}, accuracy of the mean {:.3}, members {:?}, coverage phase {:.3}, induction {:.3}, mean phase std {:.3e} rad, {:.1} s/member",
        100.0 * noise,
        acc(&ens.phase.mean)?,
        members,
        ens.phase.coverage(&data.phase, Some(&keep))?,
        ens.induction.coverage(&tb, Some(&keep2))?,
        ens.phase.std.iter().map(|&v| v as f64).sum::<f64>() / (n * n) as f64,
        secs / k as f64
    );
    Ok(())
}
