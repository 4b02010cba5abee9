//! Every engine op on the GPU against the CPU backend (forward and VJP, random inputs), the
//! NumPy golden fixtures on the GPU, AdamW, a full training iteration, the NV operator, a short
//! NV reconstruction and the CLI with `--device gpu`.
//!
//! Runs on any adapter, lavapipe included. Without one each test prints
//! `SKIP: no GPU adapter (...)` and returns — unless `MAGPRIOR_REQUIRE_GPU_TESTS` is set (CI
//! with lavapipe), where a missing adapter fails the test. Each test that ran prints
//! `GPU test <name> ran (<k> so far)`.

mod common;
use common::*;
use magprior::nn::{Cae, CaeConfig};
use magprior::nv::{self, mask, NvForward, NvGeometry, NvReconConfig, Preset};
use magprior::optim::AdamW;
use magprior::{DType, Device, Rng, Tensor, C32};

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

/// A random upstream gradient shaped like `t`.
fn upstream(t: &Tensor, seed: u64) -> Tensor {
    match t.dtype() {
        DType::F32 => rnd(t.shape(), -1.0, 1.0, seed),
        DType::C32 => rnd_c(t.shape(), seed),
    }
}

/// Runs `f` on tracked copies of `inputs` on the CPU and on the GPU; compares the outputs and
/// the gradients of every input for one random upstream gradient.
fn cpu_vs_gpu(name: &str, inputs: &[Tensor], f: impl Fn(&[Tensor]) -> Tensor, tol: Tol) {
    let cpu: Vec<Tensor> = inputs.iter().map(|t| t.clone().requires_grad()).collect();
    let gpu: Vec<Tensor> = inputs
        .iter()
        .map(|t| t.to_device(G).unwrap().requires_grad())
        .collect();
    let (yc, yg) = (f(&cpu), f(&gpu));
    assert_eq!(yg.device(), G, "{name}: output left the GPU");
    assert_close(&format!("{name} forward"), &yg, &yc, tol);
    let gy = upstream(&yc, 99);
    let gc = yc.backward_with(&gy).unwrap();
    let gg = yg.backward_with(&gy.to_device(G).unwrap()).unwrap();
    for (k, (xc, xg)) in cpu.iter().zip(&gpu).enumerate() {
        let (a, b) = (gc.get(xc), gg.get(xg));
        match (a, b) {
            (Some(a), Some(b)) => {
                assert_eq!(b.device(), G, "{name}: gradient {k} left the GPU");
                assert_close(&format!("{name} grad {k}"), b, a, tol);
            }
            (None, None) => {}
            _ => panic!("{name}: gradient {k} present on one device only"),
        }
    }
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
    // to_device is differentiable: the gradient comes back to the CPU
    cpu_vs_gpu(
        "to_device",
        &[x],
        |v| {
            v[0].to_device(Device::Cpu)
                .unwrap()
                .square()
                .unwrap()
                .to_device(v[0].device())
                .unwrap()
        },
        ELEMENTWISE,
    );
}

// ------------------------------------------------------------------ elementwise

#[test]
fn unary_ops() {
    gpu_or_skip!("unary_ops");
    type F = fn(&Tensor) -> Tensor;
    let ops: [(&str, F, f32, f32, Tol); 11] = [
        ("exp", |x| x.exp().unwrap(), -3.0, 3.0, GPU_TRANSCENDENTAL),
        ("log", |x| x.log().unwrap(), 0.1, 4.0, GPU_TRANSCENDENTAL),
        ("sqrt", |x| x.sqrt().unwrap(), 0.1, 4.0, GPU_TRANSCENDENTAL),
        ("square", |x| x.square().unwrap(), -2.0, 2.0, ELEMENTWISE),
        ("tanh", |x| x.tanh().unwrap(), -4.0, 4.0, GPU_TRANSCENDENTAL),
        (
            "sigmoid",
            |x| x.sigmoid().unwrap(),
            -6.0,
            6.0,
            GPU_TRANSCENDENTAL,
        ),
        (
            "leaky_relu",
            |x| x.leaky_relu(0.2).unwrap(),
            -2.0,
            2.0,
            ELEMENTWISE,
        ),
        ("abs", |x| x.abs().unwrap(), -2.0, 2.0, ELEMENTWISE),
        ("neg", |x| x.neg().unwrap(), -2.0, 2.0, ELEMENTWISE),
        ("scale", |x| x.scale(-0.7).unwrap(), -2.0, 2.0, ELEMENTWISE),
        (
            "add_scalar",
            |x| x.add_scalar(1.5).unwrap(),
            -2.0,
            2.0,
            ELEMENTWISE,
        ),
    ];
    for (i, (name, f, lo, hi, tol)) in ops.into_iter().enumerate() {
        let x = rnd(&[2, 3, 7, 5], lo, hi, 10 + i as u64);
        cpu_vs_gpu(name, &[x], |v| f(&v[0]), tol);
    }
    // complex affine maps: add_scalar adds to the real part only
    let z = rnd_c(&[3, 4], 3);
    cpu_vs_gpu(
        "complex add_scalar",
        std::slice::from_ref(&z),
        |v| v[0].add_scalar(2.0).unwrap(),
        ELEMENTWISE,
    );
    cpu_vs_gpu(
        "complex scale",
        std::slice::from_ref(&z),
        |v| v[0].scale(-3.0).unwrap(),
        ELEMENTWISE,
    );
    cpu_vs_gpu("complex neg", &[z], |v| v[0].neg().unwrap(), ELEMENTWISE);
}

#[test]
fn binary_ops_every_broadcast() {
    gpu_or_skip!("binary_ops_every_broadcast");
    type F = fn(&Tensor, &Tensor) -> Tensor;
    let ops: [(&str, F); 4] = [
        ("add", |a, b| a.add(b).unwrap()),
        ("sub", |a, b| a.sub(b).unwrap()),
        ("mul", |a, b| a.mul(b).unwrap()),
        ("div", |a, b| a.div(b).unwrap()),
    ];
    let cases: [(&str, &[usize], &[usize]); 7] = [
        ("same", &[2, 3, 4, 5], &[2, 3, 4, 5]),
        ("channel", &[2, 3, 4, 5], &[1, 3, 1, 1]),
        ("mask", &[2, 3, 4, 5], &[4, 5]),
        ("scalar", &[2, 3, 4, 5], &[]),
        ("lhs broadcast", &[1, 3, 1, 5], &[2, 3, 4, 5]),
        ("both", &[2, 1, 5], &[3, 1]),
        ("middle", &[2, 3, 4, 5], &[2, 1, 4, 1]),
    ];
    for (oi, (op, f)) in ops.into_iter().enumerate() {
        for (ci, (case, sa, sb)) in cases.iter().enumerate() {
            let seed = (oi * 10 + ci) as u64;
            let a = rnd(sa, 0.5, 2.0, seed);
            let b = rnd(sb, 0.5, 2.0, seed + 100);
            cpu_vs_gpu(
                &format!("{op} {case}"),
                &[a, b],
                |v| f(&v[0], &v[1]),
                SUM_ORDER,
            );
            let (za, zb) = (
                rnd_c(sa, seed + 200),
                rnd_c(sb, seed + 300).add_scalar(2.0).unwrap(),
            );
            cpu_vs_gpu(
                &format!("complex {op} {case}"),
                &[za, zb],
                |v| f(&v[0], &v[1]),
                SUM_ORDER,
            );
        }
    }
}

// ------------------------------------------------------------------ reductions, broadcasting

#[test]
fn reductions_and_broadcasts() {
    gpu_or_skip!("reductions_and_broadcasts");
    let x = rnd(&[2, 3, 17, 9], -1.0, 1.0, 1);
    let z = rnd_c(&[2, 3, 5, 4], 2);
    for t in [&x, &z] {
        let k = if t.dtype() == DType::C32 {
            "complex "
        } else {
            ""
        };
        cpu_vs_gpu(
            &format!("{k}sum_all"),
            std::slice::from_ref(t),
            |v| v[0].sum_all().unwrap(),
            SUM_ORDER,
        );
        cpu_vs_gpu(
            &format!("{k}mean_all"),
            std::slice::from_ref(t),
            |v| v[0].mean_all().unwrap(),
            SUM_ORDER,
        );
        cpu_vs_gpu(
            &format!("{k}sum_axes 2,3"),
            std::slice::from_ref(t),
            |v| v[0].sum_axes(&[2, 3], false).unwrap(),
            SUM_ORDER,
        );
        cpu_vs_gpu(
            &format!("{k}mean_axes 1"),
            std::slice::from_ref(t),
            |v| v[0].mean_axes(&[1], true).unwrap(),
            SUM_ORDER,
        );
        cpu_vs_gpu(
            &format!("{k}sum_axes 0,2"),
            std::slice::from_ref(t),
            |v| v[0].sum_axes(&[0, 2], false).unwrap(),
            SUM_ORDER,
        );
        let s = t.shape().to_vec();
        cpu_vs_gpu(
            &format!("{k}sum_to leading"),
            std::slice::from_ref(t),
            |v| v[0].sum_to(&s[1..]).unwrap(),
            SUM_ORDER,
        );
    }
    let b = rnd(&[3, 1, 5], -1.0, 1.0, 3);
    cpu_vs_gpu(
        "broadcast_to",
        &[b],
        |v| v[0].broadcast_to(&[2, 3, 4, 5]).unwrap(),
        SUM_ORDER,
    );
    let bz = rnd_c(&[1, 4], 4);
    cpu_vs_gpu(
        "complex broadcast_to",
        &[bz],
        |v| v[0].broadcast_to(&[3, 2, 4]).unwrap(),
        SUM_ORDER,
    );
    // a long reduction through the tree kernel
    let big = rnd(&[1 << 18], -1.0, 1.0, 5);
    cpu_vs_gpu(
        "sum_all 2^18",
        &[big],
        |v| v[0].sum_all().unwrap(),
        LONG_SUM,
    );
}

// ------------------------------------------------------------------ network ops

#[test]
fn conv2d_and_fused_leaky() {
    gpu_or_skip!("conv2d_and_fused_leaky");
    for (i, &(n, cin, cout, h, w, k)) in [
        (1, 1, 4, 9, 7, 1),
        (2, 3, 5, 11, 13, 3),
        (1, 4, 6, 16, 16, 5),
        (1, 2, 3, 3, 2, 5),
    ]
    .iter()
    .enumerate()
    {
        let s = i as u64 * 10;
        let x = rnd(&[n, cin, h, w], -1.0, 1.0, s);
        let wt = rnd(&[cout, cin, k, k], -0.5, 0.5, s + 1);
        let b = rnd(&[cout], -0.5, 0.5, s + 2);
        let inputs = [x, wt, b];
        cpu_vs_gpu(
            &format!("conv2d k{k}"),
            &inputs,
            |v| v[0].conv2d(&v[1], Some(&v[2])).unwrap(),
            SUM_ORDER,
        );
        cpu_vs_gpu(
            &format!("conv2d k{k} no bias"),
            &inputs[..2],
            |v| v[0].conv2d(&v[1], None).unwrap(),
            SUM_ORDER,
        );
        cpu_vs_gpu(
            &format!("conv2d_leaky k{k}"),
            &inputs,
            |v| v[0].conv2d_leaky(&v[1], Some(&v[2]), 0.2).unwrap(),
            SUM_ORDER,
        );
    }
}

#[test]
fn instance_norm_pool_upsample() {
    gpu_or_skip!("instance_norm_pool_upsample");
    let x = rnd(&[2, 3, 9, 7], -2.0, 2.0, 1);
    let (w, b) = (rnd(&[3], 0.5, 1.5, 2), rnd(&[3], -0.5, 0.5, 3));
    cpu_vs_gpu(
        "instance_norm affine",
        &[x.clone(), w, b],
        |v| v[0].instance_norm(Some(&v[1]), Some(&v[2]), 1e-5).unwrap(),
        SUM_ORDER,
    );
    cpu_vs_gpu(
        "instance_norm plain",
        std::slice::from_ref(&x),
        |v| v[0].instance_norm(None, None, 1e-5).unwrap(),
        SUM_ORDER,
    );
    cpu_vs_gpu(
        "max_pool2d odd",
        std::slice::from_ref(&x),
        |v| v[0].max_pool2d().unwrap(),
        ELEMENTWISE,
    );
    cpu_vs_gpu(
        "max_pool2d even",
        &[rnd(&[1, 2, 8, 6], -1.0, 1.0, 4)],
        |v| v[0].max_pool2d().unwrap(),
        ELEMENTWISE,
    );
    cpu_vs_gpu(
        "upsample_bilinear2d",
        &[x],
        |v| v[0].upsample_bilinear2d().unwrap(),
        SUM_ORDER,
    );
}

// ------------------------------------------------------------------ complex, GPU_FFT, pad, shape, loss

#[test]
fn complex_ops() {
    gpu_or_skip!("complex_ops");
    let z = rnd_c(&[2, 3, 4], 1);
    let (re, im) = (rnd(&[2, 3, 4], -1.0, 1.0, 2), rnd(&[2, 3, 4], -1.0, 1.0, 3));
    cpu_vs_gpu(
        "complex",
        &[re, im],
        |v| Tensor::complex(&v[0], &v[1]).unwrap(),
        ELEMENTWISE,
    );
    cpu_vs_gpu(
        "re",
        std::slice::from_ref(&z),
        |v| v[0].re().unwrap(),
        ELEMENTWISE,
    );
    cpu_vs_gpu(
        "im",
        std::slice::from_ref(&z),
        |v| v[0].im().unwrap(),
        ELEMENTWISE,
    );
    cpu_vs_gpu(
        "conj",
        std::slice::from_ref(&z),
        |v| v[0].conj().unwrap(),
        ELEMENTWISE,
    );
    cpu_vs_gpu("abs2", &[z], |v| v[0].abs2().unwrap(), ELEMENTWISE);
}

#[test]
fn fft2_and_ifft2() {
    gpu_or_skip!("fft2_and_ifft2");
    for (i, shape) in [[2, 8, 16], [1, 12, 10], [3, 7, 5], [1, 64, 64]]
        .iter()
        .enumerate()
    {
        let z = rnd_c(shape, i as u64);
        cpu_vs_gpu(
            &format!("fft2 {shape:?}"),
            std::slice::from_ref(&z),
            |v| v[0].fft2().unwrap(),
            GPU_FFT,
        );
        cpu_vs_gpu(
            &format!("ifft2 {shape:?}"),
            &[z],
            |v| v[0].ifft2().unwrap(),
            GPU_FFT,
        );
    }
}

#[test]
fn pad_crop_cat_narrow_reshape() {
    gpu_or_skip!("pad_crop_cat_narrow_reshape");
    let x = rnd(&[2, 3, 5, 6], -1.0, 1.0, 1);
    let z = rnd_c(&[3, 5, 6], 2);
    for t in [&x, &z] {
        let k = if t.dtype() == DType::C32 {
            "complex "
        } else {
            ""
        };
        cpu_vs_gpu(
            &format!("{k}pad2d"),
            std::slice::from_ref(t),
            |v| v[0].pad2d(1, 2, 3, 0).unwrap(),
            ELEMENTWISE,
        );
        cpu_vs_gpu(
            &format!("{k}pad2d bottom-right"),
            std::slice::from_ref(t),
            |v| v[0].pad2d(0, 5, 0, 6).unwrap(),
            ELEMENTWISE,
        );
        cpu_vs_gpu(
            &format!("{k}crop2d"),
            std::slice::from_ref(t),
            |v| v[0].crop2d(1, 3, 2, 4).unwrap(),
            ELEMENTWISE,
        );
        cpu_vs_gpu(
            &format!("{k}narrow"),
            std::slice::from_ref(t),
            |v| v[0].narrow(1, 1, 2).unwrap(),
            ELEMENTWISE,
        );
        cpu_vs_gpu(
            &format!("{k}narrow last"),
            std::slice::from_ref(t),
            |v| v[0].narrow(t.rank() - 1, 2, 3).unwrap(),
            ELEMENTWISE,
        );
        cpu_vs_gpu(
            &format!("{k}reshape"),
            std::slice::from_ref(t),
            |v| v[0].reshape(&[t.numel()]).unwrap().scale(2.0).unwrap(),
            ELEMENTWISE,
        );
    }
    let parts = [
        rnd(&[2, 1, 4], -1.0, 1.0, 3),
        rnd(&[2, 3, 4], -1.0, 1.0, 4),
        rnd(&[2, 2, 4], -1.0, 1.0, 5),
    ];
    cpu_vs_gpu(
        "cat axis 1",
        &parts,
        |v| Tensor::cat(v, 1).unwrap(),
        ELEMENTWISE,
    );
    let zp = [rnd_c(&[2, 3], 6), rnd_c(&[1, 3], 7)];
    cpu_vs_gpu(
        "complex cat axis 0",
        &zp,
        |v| Tensor::cat(v, 0).unwrap(),
        ELEMENTWISE,
    );
}

#[test]
fn mse_loss() {
    gpu_or_skip!("mse_loss");
    let (a, b) = (
        rnd(&[1, 2, 33, 31], -1.0, 1.0, 1),
        rnd(&[1, 2, 33, 31], -1.0, 1.0, 2),
    );
    cpu_vs_gpu(
        "mse_loss",
        &[a, b],
        |v| v[0].mse_loss(&v[1]).unwrap(),
        SUM_ORDER,
    );
}

// ------------------------------------------------------------------ golden fixtures on the GPU

/// One GPU `#[test]` per family of the golden table (GPU against NumPy); the list must name
/// every family of the table.
macro_rules! golden_tests {
    ($($t:ident => $f:literal),* $(,)?) => {
        const GOLDEN_FAMILIES: &[&str] = &[$($f),*];
        $(
            #[test]
            fn $t() {
                golden::assert_all_families_tested(GOLDEN_FAMILIES);
                gpu_or_skip!(stringify!($t));
                let n = golden::check_family($f, G);
                println!("{}: {n} golden cases on the GPU", $f);
            }
        )*
    };
}

golden_tests! {
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
    cpu_vs_gpu(
        "nv bnv",
        std::slice::from_ref(&m),
        |v| out(fwd.bnv(&si(&v[0])).unwrap()),
        GPU_FFT,
    );
    cpu_vs_gpu(
        "nv bnv with mz",
        std::slice::from_ref(&m3),
        |v| out(fwd.bnv(&si(&v[0])).unwrap()),
        GPU_FFT,
    );
    cpu_vs_gpu(
        "nv field",
        &[m3],
        |v| out(fwd.field(&si(&v[0])).unwrap()),
        GPU_FFT,
    );
    let d = Tensor::scalar(50.0);
    cpu_vs_gpu(
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
    let _ = C32::new(0.0, 0.0);
}

#[test]
fn expi_matches_the_cpu_op() {
    gpu_or_skip!("expi_matches_the_cpu_op");
    let phi = rnd(&[3, 17], -4.0, 4.0, 1);
    cpu_vs_gpu(
        "expi",
        &[phi],
        |x| x[0].expi().unwrap().abs2().unwrap(),
        GPU_TRANSCENDENTAL,
    );
}
