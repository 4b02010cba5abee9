//! The Lorentz-TEM path on the GPU against the CPU backend: `expi` (forward and VJP), the image
//! model with its phase / amplitude / scale gradients, short SIPRAD runs (uniform, fixed and
//! learned amplitude, a warm-started series) and `magprior ltem reconstruct --device gpu`.
//!
//! Runs on any adapter, lavapipe included. Without one each test prints
//! `SKIP: no GPU adapter (...)` and returns — unless `MAGPRIOR_REQUIRE_GPU_TESTS` is set, where a
//! missing adapter fails the test. Each test that ran prints `GPU test <name> ran (<k> so far)`.
//! Sizes are tiny: lavapipe runs WGSL tens of times slower than the CPU backend.

mod common;
use common::*;
use magprior::ltem::synthetic::{simulate, Texture};
use magprior::ltem::{
    self, AmplitudeMode, LtemForward, Microscope, Selection, SipradConfig, SipradResult,
};
use magprior::{Device, Rng, Tensor};

macro_rules! gpu_or_skip {
    ($name:expr) => {
        if !gpu($name) {
            return;
        }
    };
}

const G: Device = Device::Gpu;

fn rnd(shape: &[usize], lo: f32, hi: f32, seed: u64) -> Tensor {
    Tensor::rand(shape, lo, hi, &mut Rng::new(seed))
}

fn mic() -> Microscope {
    Microscope {
        defocus: -2e5,
        ..Microscope::siprad_demo()
    }
}

#[test]
fn expi_forward_and_vjp_match_the_cpu() {
    gpu_or_skip!("expi_forward_and_vjp_match_the_cpu");
    let phi = rnd(&[2, 3, 17], -6.0, 6.0, 1);
    let (pc, pg) = (
        phi.clone().requires_grad(),
        phi.to_device(G).unwrap().requires_grad(),
    );
    let (yc, yg) = (pc.expi().unwrap(), pg.expi().unwrap());
    assert_eq!(yg.device(), G);
    assert_close("expi", &yg, &yc, GPU_TRANSCENDENTAL);
    let gy = common::rand_c(&[2, 3, 17], &mut Rng::new(2));
    let gc = yc.backward_with(&gy).unwrap();
    let gg = yg.backward_with(&gy.to_device(G).unwrap()).unwrap();
    let d = gg.get(&pg).unwrap();
    assert_eq!(d.device(), G, "the expi gradient left the GPU");
    assert_close("expi vjp", d, gc.get(&pc).unwrap(), GPU_TRANSCENDENTAL);
    // a complex input is an error on the GPU as on the CPU
    assert!(yg.expi().is_err());
}

#[test]
fn image_model_and_its_gradients_match_the_cpu() {
    gpu_or_skip!("image_model_and_its_gradients_match_the_cpu");
    for pad in [1, 2] {
        let fc = LtemForward::new(16, 16, &mic(), pad).unwrap();
        let mut fg = LtemForward::new(16, 16, &mic(), pad).unwrap();
        fg.to_device(G).unwrap();
        assert_eq!(fg.device(), G);
        let phase = rnd(&[1, 1, 16, 16], -2.0, 2.0, 3);
        let amp = rnd(&[1, 1, 16, 16], 0.5, 1.0, 4);
        let scale = Tensor::from_shape_vec(&[1], vec![0.9]).unwrap();
        let cpu: Vec<Tensor> = [&phase, &amp, &scale]
            .iter()
            .map(|t| (*t).clone().requires_grad())
            .collect();
        let gpu: Vec<Tensor> = [&phase, &amp, &scale]
            .iter()
            .map(|t| t.to_device(G).unwrap().requires_grad())
            .collect();
        let ic = fc.image(&cpu[0], Some(&cpu[1]), Some(&cpu[2])).unwrap();
        let ig = fg.image(&gpu[0], Some(&gpu[1]), Some(&gpu[2])).unwrap();
        assert_eq!(ig.device(), G);
        assert_close(&format!("image pad {pad}"), &ig, &ic, GPU_FFT);
        let gy = rnd(&[1, 1, 16, 16], -1.0, 1.0, 5);
        let gc = ic.backward_with(&gy).unwrap();
        let gg = ig.backward_with(&gy.to_device(G).unwrap()).unwrap();
        for (k, name) in ["phase", "amplitude", "scale"].iter().enumerate() {
            let b = gg.get(&gpu[k]).unwrap();
            assert_eq!(b.device(), G, "{name} gradient left the GPU");
            assert_close(
                &format!("d image / d {name}, pad {pad}"),
                b,
                gc.get(&cpu[k]).unwrap(),
                GPU_FFT,
            );
        }
        // image_of uploads its plain inputs
        let p = phase.to_vec().unwrap();
        assert_close_slice(
            "image_of",
            &fg.image_of(&p, None).unwrap(),
            &fc.image_of(&p, None).unwrap(),
            GPU_FFT,
        );
    }
}

fn tiny_cfg(device: Device) -> SipradConfig {
    SipradConfig {
        pretrain: 5,
        iters: 10,
        channels: vec![8, 16],
        selection: Selection::Validation { after: 3 },
        holdout: 0.1,
        device,
        ..Default::default()
    }
}

fn final_loss(r: &SipradResult) -> f64 {
    r.history.last().unwrap().loss
}

/// Final losses within `SIPRAD_LOSS`, the same selected iteration, selected phases within
/// `SIPRAD_PHASE_OF_PEAK` of their range, the amplitude scale within `SIPRAD_AMP_SCALE` and
/// the image models within `SIPRAD_IMAGE_OF_PEAK` of their peak. Prints the numbers.
fn compare_runs(what: &str, rc: &SipradResult, rg: &SipradResult) {
    let (lc, lg) = (final_loss(rc), final_loss(rg));
    let rel = (lg - lc).abs() / lc.abs();
    let range = rc.phase_raw.iter().fold(0f32, |m, v| m.max(v.abs()));
    let dmax = rc
        .phase_raw
        .iter()
        .zip(&rg.phase_raw)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    println!(
        "{what}: final loss CPU {lc:.6e} GPU {lg:.6e} (rel {rel:.2e}); max |phase diff| {dmax:.2e} of {range:.2e}; selected {} / {}; scale {:.5} / {:.5}",
        rc.selected_iter, rg.selected_iter, rc.amp_scale, rg.amp_scale
    );
    assert_close_scalar(&format!("{what}: final loss"), lg, lc, SIPRAD_LOSS);
    assert_eq!(rc.history.len(), rg.history.len(), "{what}");
    assert_eq!(
        rc.selected_iter, rg.selected_iter,
        "{what}: selected iteration"
    );
    let phase_tol = Tol::of_peak(SIPRAD_PHASE_OF_PEAK, range.max(1e-3) as f64);
    assert_close_slice(
        &format!("{what}: phase"),
        &rg.phase_raw,
        &rc.phase_raw,
        phase_tol,
    );
    let (sc, sg) = (rc.amp_scale, rg.amp_scale);
    assert_close_scalar(&format!("{what}: scale"), sg, sc, SIPRAD_AMP_SCALE);
    assert_eq!(rc.phase.len(), rg.phase.len());
    let peak = rc.image_model.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert_close_slice(
        &format!("{what} image model"),
        &rg.image_model,
        &rc.image_model,
        Tol::of_peak(SIPRAD_IMAGE_OF_PEAK, peak as f64),
    );
}

#[test]
fn siprad_on_the_gpu_reaches_the_cpu_loss() {
    gpu_or_skip!("siprad_on_the_gpu_reaches_the_cpu_loss");
    let m = mic();
    let data = simulate(Texture::Bubbles, 32, 2e5, 50.0, &m, 0.1, 1).unwrap();
    let t = std::time::Instant::now();
    let rc = ltem::reconstruct(&data.image, 32, 32, &m, &tiny_cfg(Device::Cpu), &mut |_| {
        true
    })
    .unwrap();
    let tc = t.elapsed().as_secs_f64();
    let t = std::time::Instant::now();
    let rg = ltem::reconstruct(&data.image, 32, 32, &m, &tiny_cfg(G), &mut |_| true).unwrap();
    let tg = t.elapsed().as_secs_f64();
    println!(
        "siprad 32x32 (pretrain 5 + 10 iterations): CPU {:.4} s/iter fit, GPU {:.4} s/iter fit; total {tc:.2} s / {tg:.2} s",
        rc.seconds / 10.0,
        rg.seconds / 10.0
    );
    compare_runs("uniform amplitude", &rc, &rg);
    // the pretraining log agrees too
    for (a, b) in rc.pretrain_history.iter().zip(&rg.pretrain_history) {
        let what = format!("pretraining iteration {}", a.iter);
        assert_close_scalar(&what, b.loss, a.loss, SIPRAD_PRETRAIN_LOSS);
    }
}

#[test]
fn siprad_amplitude_modes_and_series_match_on_the_gpu() {
    gpu_or_skip!("siprad_amplitude_modes_and_series_match_on_the_gpu");
    let m = mic();
    let data = simulate(Texture::Bubbles, 16, 2e5, 50.0, &m, 0.1, 2).unwrap();
    let small = |device| SipradConfig {
        pretrain: 3,
        iters: 6,
        channels: vec![4, 8],
        selection: Selection::LowestLoss { after: 2 },
        holdout: 0.0,
        device,
        ..Default::default()
    };
    // a 4x4 contamination mask
    let mask: Vec<bool> = (0..256)
        .map(|i| (5..9).contains(&(i / 16)) && (6..10).contains(&(i % 16)))
        .collect();
    let src = ltem::AmplitudeSource::Mask(mask);
    for (name, amplitude) in [
        ("fixed amplitude", AmplitudeMode::Fixed(src.clone())),
        ("learned amplitude", AmplitudeMode::Learned(src.clone())),
    ] {
        let cfg = |d| SipradConfig {
            amplitude: amplitude.clone(),
            learn_kappa: true,
            constraint_every: 3,
            constraint_refit: 2,
            pad: 2,
            ..small(d)
        };
        let rc =
            ltem::reconstruct(&data.image, 16, 16, &m, &cfg(Device::Cpu), &mut |_| true).unwrap();
        let rg = ltem::reconstruct(&data.image, 16, 16, &m, &cfg(G), &mut |_| true).unwrap();
        compare_runs(name, &rc, &rg);
        assert!(rg.amplitude.is_some());
    }
    // a warm-started series: frame 1 continues from frame 0's networks on the device
    let other = simulate(Texture::Bubbles, 16, 2e5, 50.0, &m, 0.1, 3).unwrap();
    let frames = vec![data.image.clone(), other.image];
    let sc = ltem::reconstruct_series(&frames, 16, 16, &m, &small(Device::Cpu), &mut |_, _| true)
        .unwrap();
    let sg = ltem::reconstruct_series(&frames, 16, 16, &m, &small(G), &mut |_, _| true).unwrap();
    assert_eq!(sc.len(), 2);
    assert_eq!(sg.len(), 2);
    for (k, (a, b)) in sc.iter().zip(&sg).enumerate() {
        compare_runs(&format!("series frame {k}"), a, b);
    }
}

#[test]
fn cli_ltem_reconstruct_with_device_gpu() {
    gpu_or_skip!("cli_ltem_reconstruct_with_device_gpu");
    use magprior::io::npy::write_npy;
    let dir = std::env::temp_dir().join(format!("magprior-gpu-ltem-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let s = simulate(Texture::Bubbles, 16, 2e5, 50.0, &mic(), 0.1, 1).unwrap();
    let img = dir.join("img.npy");
    write_npy(&img, &Tensor::from_shape_vec(&[16, 16], s.image).unwrap()).unwrap();
    let out = dir.join("run");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_magprior"))
        .args(["ltem", "reconstruct", "--image"])
        .arg(&img)
        .args(["--scale", "2nm", "--cs", "0.2mm", "--theta-c", "1e-5"])
        .args(["--spread", "80nm", "--defocus", "-200um"])
        .args(["--iters", "3", "--pretrain", "2", "--channels", "4,8"])
        .args(["--quiet", "--device", "gpu", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let meta = std::fs::read_to_string(out.join("metadata.json")).unwrap();
    assert!(meta.contains("\"device\": \"gpu\""), "{meta}");
    assert!(meta.contains("\"adapter\""), "{meta}");
    assert!(out.join("phase.npy").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ensembles_on_the_gpu_match_the_cpu_member_by_member() {
    gpu_or_skip!("ensembles_on_the_gpu_match_the_cpu_member_by_member");
    let m = mic();
    let data = simulate(Texture::Bubbles, 16, 2e5, 50.0, &m, 0.1, 4).unwrap();
    let cfg = |device| SipradConfig {
        iters: 3,
        pretrain: 2,
        channels: vec![4, 8],
        selection: Selection::LowestLoss { after: 1 },
        holdout: 0.0,
        device,
        ..Default::default()
    };
    let run = |d| {
        ltem::reconstruct_ensemble(&[&data.image], None, 16, 16, &m, &cfg(d), 2, &mut |_, _| {
            true
        })
        .unwrap()
    };
    let (ec, eg) = (run(Device::Cpu), run(G));
    for (k, (a, b)) in ec.members.iter().zip(&eg.members).enumerate() {
        compare_runs(&format!("ensemble member {k}"), a, b);
    }
    let peak = ec.phase.mean.iter().fold(0f32, |a, v| a.max(v.abs()));
    assert_close_slice(
        "ensemble mean phase",
        &eg.phase.mean,
        &ec.phase.mean,
        Tol::of_peak(SIPRAD_PHASE_OF_PEAK, peak.max(1e-3) as f64),
    );
    // the NV pipeline's ensemble on the device
    use magprior::nv::{self, mask, synthetic, NvGeometry, NvReconConfig, Preset};
    let g = NvGeometry::default();
    let s = synthetic::landau_ellipse(16, &g, 8.6e5, 0.01, 1).unwrap();
    let msk =
        mask::preset_mask(&s.support, 16, 16, Preset::Landau { ccw: true }, 0.0, false).unwrap();
    let nv_run = |device| {
        let c = NvReconConfig {
            geom: g.clone(),
            iters: 3,
            channels: vec![4, 8],
            device,
            ..Default::default()
        };
        nv::reconstruct_ensemble(&s.bnv, 16, 16, &msk, &c, 2, &mut |_, _| true).unwrap()
    };
    let (nc, ng) = (nv_run(Device::Cpu), nv_run(G));
    let peak = nc
        .magnetization
        .mean
        .iter()
        .fold(0f32, |a, v| a.max(v.abs()));
    assert!(peak > 0.0);
    let diff = nc
        .magnetization
        .mean
        .iter()
        .zip(&ng.magnetization.mean)
        .fold(0f32, |a, (x, y)| a.max((x - y).abs()));
    assert!(diff < 1e-2 * peak, "NV ensemble mean: {diff} of {peak}");
}

/// The joint NV + LTEM reconstruction (affine resampling with a trained registration, phase
/// and image models, NV forward, energy prior) on the GPU against the CPU: a small analytic
/// vortex disk, a few iterations.
#[test]
fn joint_on_the_gpu_matches_the_cpu() {
    gpu_or_skip!("joint_on_the_gpu_matches_the_cpu");
    use magprior::joint::{self, JointConfig, LtemMeasurement, Registration};
    let (h, w) = (32, 32);
    let mut m = vec![0f32; 3 * h * w];
    let mut support = vec![0f32; h * w];
    for r in 0..h {
        for c in 0..w {
            let (x, y) = (c as f64 - 15.5, r as f64 - 15.5);
            let rho = x.hypot(y);
            if rho < 12.0 {
                let i = r * w + c;
                support[i] = 1.0;
                let mz = (-(rho / 2.0).powi(2)).exp();
                let ip = (1.0 - mz * mz).sqrt();
                m[i] = (-y / rho * ip * 8.6e5) as f32;
                m[h * w + i] = (x / rho * ip * 8.6e5) as f32;
                m[2 * h * w + i] = (mz * 8.6e5) as f32;
            }
        }
    }
    let mic = Microscope {
        defocus: -2e5,
        scale: 6.0,
        ..Microscope::siprad_demo()
    };
    let reg = Registration {
        offset_nm: [3.0, -2.0],
        rotation_deg: 2.0,
    };
    let geom = magprior::nv::NvGeometry {
        pixel: 5e-9,
        ..Default::default()
    };
    let sim = joint::simulate(&m, h, w, &geom, &mic, 24, 24, &reg, 0.01, 0.1, 3).unwrap();
    let cfg = |device| JointConfig {
        geom: geom.clone(),
        microscope: mic.clone(),
        fit_registration: true,
        iters: 12,
        channels: vec![4, 8],
        kernel: 3,
        device,
        ..Default::default()
    };
    let run = |device| {
        joint::reconstruct_joint(
            &sim.bnv,
            h,
            w,
            &LtemMeasurement::Image(sim.image.clone()),
            24,
            24,
            &support,
            &cfg(device),
            &mut |_| true,
        )
        .unwrap()
    };
    let (rc, rg) = (run(Device::Cpu), run(G));
    assert_eq!(rc.history.len(), rg.history.len());
    for (a, b) in rc.history.iter().zip(&rg.history) {
        assert_close_scalar(
            &format!("joint loss at {}", a.iter),
            b.loss,
            a.loss,
            JOINT_LOSS,
        );
    }
    let (oc, og) = (rc.registration.offset_nm, rg.registration.offset_nm);
    println!(
        "joint 32x32 + 24x24, 12 iterations: final loss CPU {:.5e} GPU {:.5e}; offset CPU {oc:?} GPU {og:?}",
        rc.history[11].loss, rg.history[11].loss
    );
    assert!((oc[0] - og[0]).abs() < 0.05 && (oc[1] - og[1]).abs() < 0.05);
    assert!((rc.registration.rotation_deg - rg.registration.rotation_deg).abs() < 0.01);
    let peak = rc.magnetization.iter().fold(0f32, |a, v| a.max(v.abs()));
    assert_close_slice(
        "joint magnetisation",
        &rg.magnetization,
        &rc.magnetization,
        Tol::of_peak(0.02, peak as f64),
    );
}
