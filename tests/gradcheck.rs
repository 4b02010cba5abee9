//! Central finite-difference checks of every op's VJP on random inputs (real and complex), and
//! adjoint identities of the linear ops.

mod common;
use common::reference::{f64s, instance_norm_ref};
use common::*;
use magprior::backend::NormShape;
use magprior::{Rng, Tensor};

const STEP: f32 = 1e-2;
const PROBES: usize = 40;

#[test]
fn unary_ops_fd() {
    let mut r = Rng::new(1);
    let x = rand(&[2, 3, 4, 5], -2.0, 2.0, &mut r);
    let pos = rand(&[2, 3, 4, 5], 0.5, 2.0, &mut r);
    check_grad(
        "exp",
        std::slice::from_ref(&x),
        |v| v[0].exp().unwrap(),
        STEP,
        PROBES,
    );
    check_grad(
        "log",
        std::slice::from_ref(&pos),
        |v| v[0].log().unwrap(),
        1e-3,
        PROBES,
    );
    check_grad("sqrt", &[pos], |v| v[0].sqrt().unwrap(), 1e-3, PROBES);
    check_grad(
        "square",
        std::slice::from_ref(&x),
        |v| v[0].square().unwrap(),
        STEP,
        PROBES,
    );
    check_grad(
        "tanh",
        std::slice::from_ref(&x),
        |v| v[0].tanh().unwrap(),
        STEP,
        PROBES,
    );
    check_grad(
        "sigmoid",
        std::slice::from_ref(&x),
        |v| v[0].sigmoid().unwrap(),
        STEP,
        PROBES,
    );
    // keep |x| away from the kinks at 0
    let away = x
        .abs()
        .unwrap()
        .add_scalar(0.05)
        .unwrap()
        .mul(&x.div(&x.abs().unwrap()).unwrap())
        .unwrap();
    check_grad(
        "leaky_relu",
        std::slice::from_ref(&away),
        |v| v[0].leaky_relu(0.2).unwrap(),
        1e-2,
        PROBES,
    );
    check_grad("abs", &[away], |v| v[0].abs().unwrap(), 1e-2, PROBES);
    check_grad(
        "neg",
        std::slice::from_ref(&x),
        |v| v[0].neg().unwrap(),
        STEP,
        PROBES,
    );
    check_grad(
        "scale",
        std::slice::from_ref(&x),
        |v| v[0].scale(3.0).unwrap(),
        STEP,
        PROBES,
    );
    check_grad(
        "add_scalar",
        &[x],
        |v| v[0].add_scalar(3.0).unwrap(),
        STEP,
        PROBES,
    );
}

#[test]
fn binary_ops_fd_real_and_complex() {
    let mut r = Rng::new(2);
    let a = rand(&[2, 3, 4, 5], -1.0, 1.0, &mut r);
    let bc = rand(&[3, 1, 1], 0.5, 1.5, &mut r);
    let za = rand_c(&[2, 3, 4], &mut r);
    let zb = rand_c(&[3, 4], &mut r).add_scalar(2.0).unwrap(); // away from 0 for div
    for (name, f) in [
        (
            "add",
            Tensor::add as fn(&Tensor, &Tensor) -> magprior::Result<Tensor>,
        ),
        ("sub", Tensor::sub),
        ("mul", Tensor::mul),
        ("div", Tensor::div),
    ] {
        check_grad(
            name,
            &[a.clone(), bc.clone()],
            |v| f(&v[0], &v[1]).unwrap(),
            1e-3,
            PROBES,
        );
        check_grad(
            &format!("complex {name}"),
            &[za.clone(), zb.clone()],
            |v| f(&v[0], &v[1]).unwrap(),
            1e-3,
            PROBES,
        );
    }
}

#[test]
fn reductions_and_broadcast_fd() {
    let mut r = Rng::new(3);
    let x = rand(&[2, 3, 4, 5], -1.0, 1.0, &mut r);
    check_grad(
        "sum_axes",
        std::slice::from_ref(&x),
        |v| v[0].sum_axes(&[0, -1], true).unwrap(),
        STEP,
        PROBES,
    );
    check_grad(
        "mean_axes",
        std::slice::from_ref(&x),
        |v| v[0].mean_axes(&[1, 2], false).unwrap(),
        STEP,
        PROBES,
    );
    check_grad(
        "mean_all",
        std::slice::from_ref(&x),
        |v| v[0].mean_all().unwrap(),
        STEP,
        PROBES,
    );
    let c = rand(&[3, 1, 5], -1.0, 1.0, &mut r);
    check_grad(
        "broadcast_to",
        &[c],
        |v| v[0].broadcast_to(&[2, 3, 4, 5]).unwrap(),
        STEP,
        PROBES,
    );
    check_grad(
        "reshape",
        &[x],
        |v| v[0].reshape(&[6, 20]).unwrap().square().unwrap(),
        STEP,
        PROBES,
    );
}

#[test]
fn conv_norm_pool_upsample_fd() {
    let mut r = Rng::new(4);
    for k in [1, 3, 5] {
        let x = rand(&[2, 3, 6, 7], -1.0, 1.0, &mut r);
        let w = rand(&[4, 3, k, k], -0.5, 0.5, &mut r);
        let b = rand(&[4], -0.5, 0.5, &mut r);
        check_grad(
            &format!("conv2d k{k}"),
            &[x, w, b],
            |v| v[0].conv2d(&v[1], Some(&v[2])).unwrap(),
            1e-2,
            PROBES,
        );
    }
    let x = rand(&[2, 3, 5, 6], -1.0, 1.0, &mut r);
    let w = rand(&[3], 0.5, 1.5, &mut r);
    let b = rand(&[3], -0.5, 0.5, &mut r);
    check_grad(
        "instance_norm",
        &[x.clone(), w, b],
        |v| v[0].instance_norm(Some(&v[1]), Some(&v[2]), 1e-5).unwrap(),
        1e-2,
        PROBES,
    );
    check_grad(
        "instance_norm (no affine)",
        std::slice::from_ref(&x),
        |v| v[0].instance_norm(None, None, 1e-5).unwrap(),
        1e-2,
        PROBES,
    );
    // distinct values spaced > 2 steps apart keep each window's argmax fixed under the probe
    let perm: Vec<f32> = (0..2 * 3 * 6 * 8)
        .map(|i| ((i * 37) % 288) as f32 * 0.05)
        .collect();
    let xp = Tensor::from_shape_vec(&[2, 3, 6, 8], perm).unwrap();
    check_grad(
        "max_pool2d",
        &[xp],
        |v| v[0].max_pool2d().unwrap(),
        1e-2,
        PROBES,
    );
    check_grad(
        "upsample",
        &[x],
        |v| v[0].upsample_bilinear2d().unwrap(),
        1e-2,
        PROBES,
    );
}

#[test]
fn complex_fft_pad_fd() {
    let mut r = Rng::new(5);
    let z = rand_c(&[2, 6, 10], &mut r);
    let re = rand(&[6, 10], -1.0, 1.0, &mut r);
    let im = rand(&[6, 10], -1.0, 1.0, &mut r);
    check_grad(
        "complex",
        &[re, im],
        |v| Tensor::complex(&v[0], &v[1]).unwrap(),
        STEP,
        PROBES,
    );
    check_grad(
        "re",
        std::slice::from_ref(&z),
        |v| v[0].re().unwrap(),
        STEP,
        PROBES,
    );
    check_grad(
        "im",
        std::slice::from_ref(&z),
        |v| v[0].im().unwrap(),
        STEP,
        PROBES,
    );
    check_grad(
        "conj",
        std::slice::from_ref(&z),
        |v| v[0].conj().unwrap(),
        STEP,
        PROBES,
    );
    check_grad(
        "abs2",
        std::slice::from_ref(&z),
        |v| v[0].abs2().unwrap(),
        1e-3,
        PROBES,
    );
    check_grad(
        "fft2",
        std::slice::from_ref(&z),
        |v| v[0].fft2().unwrap(),
        STEP,
        PROBES,
    );
    check_grad(
        "ifft2",
        std::slice::from_ref(&z),
        |v| v[0].ifft2().unwrap(),
        STEP,
        PROBES,
    );
    // a non-linear chain through the FFT: |ifft2(fft2(z) * w)|^2
    let w = rand_c(&[6, 10], &mut r);
    check_grad(
        "|ifft2(fft2(z) w)|^2",
        &[z.clone(), w],
        |v| {
            v[0].fft2()
                .unwrap()
                .mul(&v[1])
                .unwrap()
                .ifft2()
                .unwrap()
                .abs2()
                .unwrap()
        },
        1e-3,
        PROBES,
    );
    check_grad(
        "pad2d",
        std::slice::from_ref(&z),
        |v| v[0].pad2d(2, 1, 0, 3).unwrap(),
        STEP,
        PROBES,
    );
    check_grad(
        "crop2d",
        &[z],
        |v| v[0].crop2d(1, 3, 2, 5).unwrap(),
        STEP,
        PROBES,
    );
    let a = rand(&[3, 4], -1.0, 1.0, &mut r);
    let b = rand(&[3, 4], -1.0, 1.0, &mut r);
    check_grad(
        "mse_loss",
        &[a, b],
        |v| v[0].mse_loss(&v[1]).unwrap(),
        1e-2,
        PROBES,
    );
}

/// <A x, y> == <x, A^H y> for the linear ops, with A^H computed by the backward pass.
#[test]
fn adjoint_identities() {
    let mut r = Rng::new(6);
    type Op = fn(&Tensor) -> Tensor;
    let ops: [(&str, &[usize], Op); 4] = [
        ("fft2 pow2", &[2, 16, 16], |x| x.fft2().unwrap()),
        ("fft2 odd", &[1, 12, 9], |x| x.fft2().unwrap()),
        ("ifft2", &[3, 8, 10], |x| x.ifft2().unwrap()),
        ("pad", &[2, 5, 5], |x| x.pad2d(1, 2, 3, 4).unwrap()),
    ];
    for (name, shape, f) in ops {
        let x = rand_c(shape, &mut r).requires_grad();
        let ax = f(&x);
        let y = rand_c(ax.shape(), &mut r);
        // <u, v> = sum conj(u) v ; real part suffices, check both parts
        let dot = |u: &Tensor, v: &Tensor| {
            let (u, v) = (u.to_vec_c().unwrap(), v.to_vec_c().unwrap());
            u.iter().zip(&v).fold((0f64, 0f64), |(re, im), (a, b)| {
                let p = a.conj() * b;
                (re + p.re as f64, im + p.im as f64)
            })
        };
        let lhs = dot(&ax, &y);
        let ahy = ax.backward_with(&y).unwrap().remove(&x).unwrap();
        let rhs = dot(&x, &ahy);
        let scale = lhs.0.abs() + lhs.1.abs() + 1.0;
        assert!(
            (lhs.0 - rhs.0).abs() < 1e-4 * scale && (lhs.1 - rhs.1).abs() < 1e-4 * scale,
            "{name}: <Ax,y> = {lhs:?} but <x,A^H y> = {rhs:?}"
        );
    }
    // conv2d: <conv(x), g> == <x, conv^T g>
    let x = rand(&[1, 3, 9, 11], -1.0, 1.0, &mut r).requires_grad();
    let w = rand(&[4, 3, 5, 5], -1.0, 1.0, &mut r);
    let y = x.conv2d(&w, None).unwrap();
    let g = rand(y.shape(), -1.0, 1.0, &mut r);
    let lhs: f64 = flat(&y)
        .iter()
        .zip(flat(&g))
        .map(|(a, b)| (*a as f64) * b as f64)
        .sum();
    let gx = y.backward_with(&g).unwrap().remove(&x).unwrap();
    let rhs: f64 = flat(&x)
        .iter()
        .zip(flat(&gx))
        .map(|(a, b)| (*a as f64) * b as f64)
        .sum();
    assert!(
        (lhs - rhs).abs() < 1e-4 * (lhs.abs() + 1.0),
        "conv2d adjoint {lhs} vs {rhs}"
    );
}

/// The fused op's forward and VJP equal conv2d followed by leaky_relu (each checked by finite
/// differences above; FD across the kink itself would be meaningless).
#[test]
fn fused_conv_leaky_matches_unfused() {
    let mut r = Rng::new(8);
    let x = rand(&[2, 3, 6, 7], -1.0, 1.0, &mut r).requires_grad();
    let w = rand(&[4, 3, 5, 5], -0.5, 0.5, &mut r).requires_grad();
    let b = rand(&[4], -0.5, 0.5, &mut r).requires_grad();
    let fused = x.conv2d_leaky(&w, Some(&b), 0.2).unwrap();
    let plain = x.conv2d(&w, Some(&b)).unwrap().leaky_relu(0.2).unwrap();
    assert_close("fused forward", &fused, &plain, ELEMENTWISE);
    let gy = rand(fused.shape(), -1.0, 1.0, &mut r);
    let (gf, gp) = (
        fused.backward_with(&gy).unwrap(),
        plain.backward_with(&gy).unwrap(),
    );
    for (name, t) in [("x", &x), ("w", &w), ("b", &b)] {
        assert_close(name, gf.get(t).unwrap(), gp.get(t).unwrap(), ELEMENTWISE);
    }
}

#[test]
fn instance_norm_reference_vjp_matches_finite_differences() {
    // Checks the maths of the f64 reference the GPU kernels are compared with (central
    // differences of L = <gy, y>), and the CPU op against it.
    let s = NormShape { n: 2, c: 2, m: 7 };
    let mut r = Rng::new(60);
    let v =
        |n: usize, lo: f32, hi: f32, r: &mut Rng| f64s(&rand(&[n], lo, hi, r).to_vec().unwrap());
    let (x, w, b, gy) = (
        v(28, -1.0, 1.0, &mut r),
        v(2, 0.5, 1.5, &mut r),
        v(2, -0.5, 0.5, &mut r),
        v(28, -1.0, 1.0, &mut r),
    );
    let loss = |x: &[f64], w: &[f64], b: &[f64]| -> f64 {
        let [y, ..] = instance_norm_ref(&s, x, w, b, &gy, 1e-5);
        y.iter().zip(&gy).map(|(a, g)| a * g).sum()
    };
    let [y, dx, dw, db] = instance_norm_ref(&s, &x, &w, &b, &gy, 1e-5);
    let h = 1e-6;
    let fd = |v: &[f64], f: &dyn Fn(&[f64]) -> f64| -> Vec<f64> {
        (0..v.len())
            .map(|i| {
                let (mut p, mut m) = (v.to_vec(), v.to_vec());
                p[i] += h;
                m[i] -= h;
                (f(&p) - f(&m)) / (2.0 * h)
            })
            .collect()
    };
    let t = FINITE_DIFF_F64;
    compare("reference dx", &dx, &fd(&x, &|v| loss(v, &w, &b)), t);
    compare("reference dw", &dw, &fd(&w, &|v| loss(&x, v, &b)), t);
    compare("reference db", &db, &fd(&b, &|v| loss(&x, &w, v)), t);
    // the CPU op against the reference
    let t32 = |d: &[f64], shape: &[usize]| {
        Tensor::from_shape_vec(shape, d.iter().map(|&v| v as f32).collect())
            .unwrap()
            .requires_grad()
    };
    let (xt, wt, bt) = (t32(&x, &[2, 2, 7, 1]), t32(&w, &[2]), t32(&b, &[2]));
    let yt = xt.instance_norm(Some(&wt), Some(&bt), 1e-5).unwrap();
    assert_close_f64(
        "instance_norm vs reference",
        &yt.to_vec().unwrap(),
        &y,
        ACCUMULATED,
    );
    let g = yt.backward_with(&t32(&gy, &[2, 2, 7, 1]).detach()).unwrap();
    for (name, p, want) in [("dx", &xt, &dx), ("dw", &wt, &dw), ("db", &bt, &db)] {
        let got = g.get(p).unwrap().to_vec().unwrap();
        assert_close_f64(
            &format!("instance_norm {name} vs reference"),
            &got,
            want,
            ACCUMULATED,
        );
    }
}
