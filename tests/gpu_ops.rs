//! Every engine op on the GPU against the CPU backend (forward and VJP, the random-input
//! table of `common/ops.rs`), the NumPy golden fixtures on the GPU (`common/golden.rs`), the
//! GPU side of the checks of the newer ops, AdamW, a full training iteration, the NV operator,
//! a short NV reconstruction and the CLI with `--device gpu`.
//!
//! Runs on any adapter, lavapipe included. Without one each test prints
//! `SKIP: no GPU adapter (...)` and returns — unless `MAGPRIOR_REQUIRE_GPU_TESTS` is set (CI
//! with lavapipe), where a missing adapter fails the test. Each test that ran prints
//! `GPU test <name> ran (<k> so far)`.

mod common;
use common::ops::gpu_vs_cpu;
use common::*;
use magprior::nn::{Cae, CaeConfig};
use magprior::nv::{self, mask, NvForward, NvGeometry, NvReconConfig, Preset};
use magprior::optim::AdamW;
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

fn rnd_c(shape: &[usize], seed: u64) -> Tensor {
    common::rand_c(shape, &mut Rng::new(seed))
}

/// One GPU `#[test]` per family of the op table (GPU against CPU) and of the golden table
/// (GPU against NumPy); each file-level list must name every family of its table.
macro_rules! family_tests {
    (ops: $($t:ident => $f:literal),* ; golden: $($gt:ident => $gf:literal),* $(,)?) => {
        const OP_FAMILIES: &[&str] = &[$($f),*];
        const GOLDEN_FAMILIES: &[&str] = &[$($gf),*];
        $(
            #[test]
            fn $t() {
                ops::assert_all_families_tested(OP_FAMILIES);
                gpu_or_skip!(stringify!($t));
                let n = ops::check_family_gpu($f);
                println!("{}: {n} cases on the GPU against the CPU", $f);
            }
        )*
        $(
            #[test]
            fn $gt() {
                golden::assert_all_families_tested(GOLDEN_FAMILIES);
                gpu_or_skip!(stringify!($gt));
                let n = golden::check_family($gf, G);
                println!("{}: {n} golden cases on the GPU", $gf);
            }
        )*
    };
}

family_tests! {
    ops:
    unary_ops => "unary",
    binary_ops_every_broadcast => "binary",
    reductions_and_broadcasts => "reduce",
    conv2d_and_fused_leaky => "conv",
    instance_norm_pool_upsample => "norm_pool_upsample",
    complex_ops => "complex",
    fft2_and_ifft2 => "fft",
    pad_crop_cat_narrow_reshape_to_device => "shape",
    mse_loss => "loss",
    spectral_conv_matches_the_cpu => "spectral",
    max_all_matches_the_cpu => "max_all",
    expi_matches_the_cpu => "expi",
    affine_sample_matches_the_cpu => "sample";
    golden:
    golden_unary => "unary",
    golden_binary => "binary",
    golden_scalar => "scalar",
    golden_reduce => "reduce",
    golden_conv2d => "conv2d",
    golden_instance_norm => "instance_norm",
    golden_pool_upsample => "pool_upsample",
    golden_complex => "complex",
    golden_fft => "fft",
    golden_pad => "pad",
    golden_mse => "mse",
}

// ------------------------------------------------------------------ devices and transfers

#[test]
fn transfers_devices_and_mixed_device_errors() {
    gpu_or_skip!("transfers_devices_and_mixed_device_errors");
    let x = rnd(&[2, 3], -1.0, 1.0, 1);
    let g = x.to_device(G).unwrap();
    assert_eq!((x.device(), g.device()), (Device::Cpu, G));
    assert_eq!(g.to_vec().unwrap(), x.to_vec().unwrap());
    let z = rnd_c(&[4], 2);
    assert_eq!(
        z.to_device(G).unwrap().to_vec_c().unwrap(),
        z.to_vec_c().unwrap()
    );
    let s = Tensor::scalar(2.5).to_device(G).unwrap();
    assert_eq!(s.to_scalar().unwrap(), 2.5);
    let e = x.add(&g).unwrap_err().to_string();
    assert!(e.contains("different devices"), "{e}");
    // reshape shares the buffer and stays on the device
    assert_eq!(g.reshape(&[3, 2]).unwrap().device(), G);
    // move_to keeps identity; assign keeps the destination's device
    let p = x.clone().requires_grad();
    let id = p.id();
    p.move_to(G).unwrap();
    assert_eq!((p.id(), p.device()), (id, G));
    p.assign(&Tensor::zeros(&[2, 3])).unwrap();
    assert_eq!((p.device(), p.to_vec().unwrap()), (G, vec![0.0; 6]));
}

// ------------------------------------------------------------------ the newer ops, on the GPU

#[test]
fn max_all_ties_on_the_gpu() {
    gpu_or_skip!("max_all_ties_on_the_gpu");
    ops::check_max_all_ties(G);
}

/// A NaN anywhere makes the GPU's `max_all` NaN and its VJP splits the gradient over the NaNs,
/// as on the CPU (WGSL lets compilers fold `v != v` to false, as lavapipe does: the kernels
/// test NaN by its bits).
#[test]
fn max_all_propagates_nan_on_the_gpu() {
    gpu_or_skip!("max_all_propagates_nan_on_the_gpu");
    ops::check_max_all_nan(G);
}

#[test]
fn randn_keyed_on_the_gpu_matches_the_cpu() {
    gpu_or_skip!("randn_keyed_on_the_gpu_matches_the_cpu");
    ops::check_randn_keyed(G);
    for (key, n, scale) in [(7u64, 1000, 1.0f32), (u64::MAX, 70_001, 0.5)] {
        let on = |d| {
            Tensor::randn_keyed(&[n], key, scale, d)
                .unwrap()
                .to_vec()
                .unwrap()
        };
        let what = format!("randn_keyed key {key} n {n}: GPU vs CPU");
        assert_close_slice(&what, &on(G), &on(Device::Cpu), GPU_BOX_MULLER);
    }
}

#[test]
fn spectral_conv_matches_the_composed_operator_on_the_gpu() {
    gpu_or_skip!("spectral_conv_matches_the_composed_operator_on_the_gpu");
    ops::check_spectral_vs_composed(G, SUM_ORDER);
}

#[test]
fn fused_conv_leaky_matches_unfused_on_the_gpu() {
    gpu_or_skip!("fused_conv_leaky_matches_unfused_on_the_gpu");
    ops::check_fused_conv_leaky(G);
}

#[test]
fn affine_sample_exact_answers_on_the_gpu() {
    gpu_or_skip!("affine_sample_exact_answers_on_the_gpu");
    ops::check_affine_sample_exact(G);
}

/// `<S x, y> = <x, S^T y>` with the GPU's gather for S^T (magnified, minified, rotated and a
/// singular map).
#[test]
fn affine_sample_adjoint_identity_on_the_gpu() {
    gpu_or_skip!("affine_sample_adjoint_identity_on_the_gpu");
    ops::check_affine_sample_adjoint(G);
}

#[test]
fn affine_sample_gradients_match_f64_on_the_gpu() {
    gpu_or_skip!("affine_sample_gradients_match_f64_on_the_gpu");
    ops::check_affine_sample_f64(G);
}

#[test]
fn affine_sample_bad_shapes_are_errors_on_the_gpu() {
    gpu_or_skip!("affine_sample_bad_shapes_are_errors_on_the_gpu");
    ops::check_affine_sample_errors(G);
}

/// A trained map: an angle and an offset on the device, the affine map built from them by
/// tensor ops, one gradient step's gradients equal to the CPU's (the map never leaves the
/// device inside the op).
#[test]
fn affine_sample_trained_rotation_matches_the_cpu() {
    gpu_or_skip!("affine_sample_trained_rotation_matches_the_cpu");
    let x = rnd(&[1, 2, 12, 10], -1.0, 1.0, 5);
    let theta = Tensor::from_shape_vec(&[1], vec![0.2]).unwrap();
    let offset = Tensor::from_shape_vec(&[2], vec![0.7, -0.4]).unwrap();
    gpu_vs_cpu(
        "affine_sample of a rotation built by tensor ops",
        &[x, theta, offset],
        |v| {
            let e = v[1].expi().unwrap();
            let (c, s) = (e.re().unwrap(), e.im().unwrap());
            let (bc, br) = (v[2].narrow(0, 0, 1).unwrap(), v[2].narrow(0, 1, 1).unwrap());
            let a = Tensor::cat(&[c.clone(), s.neg().unwrap(), bc, s, c, br], 0).unwrap();
            v[0].affine_sample(&a, 11, 9).unwrap()
        },
        SUM_ORDER,
    );
}

// ------------------------------------------------------------------ optimiser and training

#[test]
fn adamw_on_the_gpu_matches_the_cpu() {
    gpu_or_skip!("adamw_on_the_gpu_matches_the_cpu");
    let target = rnd(&[3, 7], -1.0, 1.0, 1);
    let p0 = rnd(&[3, 7], -1.0, 1.0, 2);
    let run = |dev: Device| {
        let p = p0.clone().requires_grad();
        p.move_to(dev).unwrap();
        let snapshot = p.detach(); // shares the buffer: must not change (copy-on-write)
        let tg = target.to_device(dev).unwrap();
        let mut opt = AdamW::new(vec![p.clone()], 0.05);
        for _ in 0..5 {
            let loss = p.sub(&tg).unwrap().square().unwrap().sum_all().unwrap();
            opt.step(&loss.backward().unwrap()).unwrap();
        }
        assert_eq!(p.device(), dev);
        assert_eq!(
            snapshot.to_vec().unwrap(),
            p0.to_vec().unwrap(),
            "detached copy changed"
        );
        p.to_vec().unwrap()
    };
    assert_close_slice("adamw 5 steps", &run(G), &run(Device::Cpu), SUM_ORDER);
}

#[test]
fn training_iteration_matches_the_cpu() {
    gpu_or_skip!("training_iteration_matches_the_cpu");
    let cfg = CaeConfig {
        in_ch: 1,
        out_ch: 2,
        channels: vec![4, 8],
        kernel: 5,
    };
    let z = rnd(&[1, 1, 16, 16], -1.0, 1.0, 3);
    let target = rnd(&[1, 2, 16, 16], -1.0, 1.0, 4);
    let run = |dev: Device| {
        let net = Cae::new(&cfg, &mut Rng::new(0)).unwrap();
        net.to_device(dev).unwrap();
        let (z, t) = (z.to_device(dev).unwrap(), target.to_device(dev).unwrap());
        let mut opt = AdamW::new(net.parameters(), 1e-2);
        let mut losses = Vec::new();
        for _ in 0..3 {
            let loss = net
                .forward(&z)
                .unwrap()
                .tanh()
                .unwrap()
                .mse_loss(&t)
                .unwrap();
            losses.push(loss.to_scalar().unwrap());
            opt.step(&loss.backward().unwrap()).unwrap();
        }
        let params: Vec<f32> = net
            .parameters()
            .iter()
            .flat_map(|p| p.to_vec().unwrap())
            .collect();
        (losses, params)
    };
    let (lg, pg) = run(G);
    let (lc, pc) = run(Device::Cpu);
    assert_close_slice("training losses", &lg, &lc, TRAINING_GPU_VS_CPU);
    assert_close_slice("parameters after 3 steps", &pg, &pc, TRAINING_GPU_VS_CPU);
}

// ------------------------------------------------------------------ the fitting loop

/// Fits `p` (1, 1, 12, 10) to a target by the training pixels of a hold-out split.
struct Masked {
    p: Tensor,
    target: Tensor,
    holdout: magprior::fit::Holdout,
}

impl magprior::fit::Objective for Masked {
    fn evaluate(&mut self, _: usize) -> magprior::Result<magprior::fit::Evaluation> {
        let (train, val) = self.holdout.losses(&self.p.tanh()?, &self.target)?;
        Ok(magprior::fit::Evaluation {
            loss: train,
            validation: Some(val),
            report: vec![self.p.mean_all()?.detach()],
            state: vec![self.p.detach()],
        })
    }
}

#[test]
fn fit_loop_and_holdout_on_the_gpu_match_the_cpu() {
    gpu_or_skip!("fit_loop_and_holdout_on_the_gpu_match_the_cpu");
    use magprior::fit::{Fit, Holdout, Selection, StopReason};
    let run = |dev: Device| {
        let p = rnd(&[1, 1, 12, 10], -1.0, 1.0, 1).requires_grad();
        p.move_to(dev).unwrap();
        let target = rnd(&[1, 1, 12, 10], -0.9, 0.9, 2).to_device(dev).unwrap();
        let holdout = Holdout::new(12, 10, 0.2, 3, dev).unwrap();
        let mut obj = Masked {
            p: p.clone(),
            target,
            holdout,
        };
        let mut opt = AdamW::new(vec![p], 0.05);
        let mut fit = Fit::new(Selection::Validation { after: 2 });
        let stop = fit
            .run(25, &mut obj, &mut [&mut opt], None, &mut |_| true)
            .unwrap();
        assert_eq!(stop, StopReason::Completed);
        let (history, selected) = fit.finish();
        let selected = selected.unwrap();
        assert_eq!(
            selected.state[0].device(),
            dev,
            "the kept state stays on the device"
        );
        (history, selected.iter, selected.state[0].to_vec().unwrap())
    };
    let ((hg, ig, sg), (hc, ic, sc)) = (run(G), run(Device::Cpu));
    let col = |h: &[magprior::fit::Iteration], f: fn(&magprior::fit::Iteration) -> f64| {
        h.iter().map(f).map(|v| v as f32).collect::<Vec<_>>()
    };
    assert_close_slice(
        "losses",
        &col(&hg, |i| i.loss),
        &col(&hc, |i| i.loss),
        SUM_ORDER,
    );
    let (vg, vc) = (col(&hg, |i| i.validation), col(&hc, |i| i.validation));
    assert_close_slice("held-out losses", &vg, &vc, SUM_ORDER);
    let (rg, rc) = (col(&hg, |i| i.report[0]), col(&hc, |i| i.report[0]));
    assert_close_slice("reported means", &rg, &rc, SUM_ORDER);
    assert_eq!(ig, ic, "selected iteration");
    assert_close_slice("selected state", &sg, &sc, SUM_ORDER);
}

// ------------------------------------------------------------------ NV physics

#[test]
fn nv_operators_match_the_cpu() {
    gpu_or_skip!("nv_operators_match_the_cpu");
    let (h, w) = (12, 10);
    let fwd = NvForward::new(h, w, &NvGeometry::default()).unwrap();
    // M in units of 1e5 A/m, B_NV in units of 10 mT, the standoff in nm: O(1) values and
    // gradients, so one tolerance fits outputs and gradients
    let m = rnd(&[1, 2, h, w], -1.0, 1.0, 1);
    let m3 = rnd(&[1, 3, h, w], -1.0, 1.0, 2);
    let si = |t: &Tensor| t.scale(1e5).unwrap();
    let out = |t: Tensor| t.scale(1e2).unwrap();
    gpu_vs_cpu(
        "nv bnv",
        std::slice::from_ref(&m),
        |v| out(fwd.bnv(&si(&v[0])).unwrap()),
        GPU_FFT,
    );
    gpu_vs_cpu(
        "nv bnv with mz",
        std::slice::from_ref(&m3),
        |v| out(fwd.bnv(&si(&v[0])).unwrap()),
        GPU_FFT,
    );
    gpu_vs_cpu(
        "nv field",
        &[m3],
        |v| out(fwd.field(&si(&v[0])).unwrap()),
        GPU_FFT,
    );
    let d = Tensor::scalar(50.0);
    gpu_vs_cpu(
        "nv bnv_with_standoff",
        &[m, d],
        |v| {
            out(fwd
                .bnv_with_standoff(&si(&v[0]), &v[1].scale(1e-9).unwrap())
                .unwrap())
        },
        GPU_NV_STANDOFF,
    );
}

#[test]
fn short_nv_reconstruction_matches_the_cpu() {
    gpu_or_skip!("short_nv_reconstruction_matches_the_cpu");
    let n = 32;
    let g = NvGeometry::default();
    let data = nv::synthetic::landau_ellipse(n, &g, 8.6e5, 0.01, 7).unwrap();
    let m = mask::preset_mask(
        &data.support,
        n,
        n,
        Preset::Landau { ccw: true },
        0.0,
        false,
    )
    .unwrap();
    let run = |device: Device| {
        let cfg = NvReconConfig {
            geom: g.clone(),
            iters: 40,
            lr: 3e-3,
            device,
            ..Default::default()
        };
        nv::reconstruct(&data.bnv, n, n, &m, &cfg, &mut |_| true).unwrap()
    };
    let (rg, rc) = (run(G), run(Device::Cpu));
    let (lg, lc) = (
        rg.history.last().unwrap().loss,
        rc.history.last().unwrap().loss,
    );
    let first = rc.history[0].loss;
    println!("NV-DIP 32x32, 40 iterations: loss {first:.4e} -> CPU {lc:.4e}, GPU {lg:.4e} (rel diff {:.2e})", (lg - lc).abs() / lc);
    assert!(lc < first, "the CPU run did not descend");
    assert_close_scalar("NV-DIP final loss, GPU vs CPU", lg, lc, NV_RECON_LOSS);
    assert_eq!(rg.magnetization.len(), rc.magnetization.len());
}

#[test]
fn cli_reconstruct_with_device_gpu() {
    gpu_or_skip!("cli_reconstruct_with_device_gpu");
    use magprior::io::npy::write_npy;
    let dir = std::env::temp_dir().join(format!("magprior-gpu-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let g = NvGeometry::default();
    let s = nv::synthetic::landau_ellipse(32, &g, 8.6e5, 0.01, 1).unwrap();
    let (bnv, sup) = (dir.join("bnv.npy"), dir.join("support.npy"));
    write_npy(&bnv, &Tensor::from_shape_vec(&[32, 32], s.bnv).unwrap()).unwrap();
    write_npy(&sup, &Tensor::from_shape_vec(&[32, 32], s.support).unwrap()).unwrap();
    let out = dir.join("run");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_magprior"))
        .args(["nv", "reconstruct", "--bnv"])
        .arg(&bnv)
        .args(["--pixel", "5nm", "--support"])
        .arg(&sup)
        .args(["--iters", "5", "--quiet", "--device", "gpu", "--out"])
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
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn complex_inputs_of_the_wrong_dtype_are_errors() {
    gpu_or_skip!("complex_inputs_of_the_wrong_dtype_are_errors");
    let x = rnd(&[4, 4], -1.0, 1.0, 1).to_device(G).unwrap();
    assert!(x.fft2().is_err());
    assert!(x.re().is_err());
    let z = rnd_c(&[4, 4], 2).to_device(G).unwrap();
    assert!(z.exp().is_err());
    assert!(z.mse_loss(&z).is_err());
    assert!(z.expi().is_err());
    assert!(z.max_all().is_err());
    let x4 = x.reshape(&[1, 1, 4, 4]).unwrap();
    assert!(x4.spectral_conv(&x4).is_err());
    assert!(z
        .reshape(&[1, 1, 4, 4])
        .unwrap()
        .spectral_conv(&x4)
        .is_err());
}
