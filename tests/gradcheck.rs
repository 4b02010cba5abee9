//! Central finite-difference checks of every op's VJP on random inputs (real and complex; the
//! table is `common/ops.rs`, whose cases `gpu_ops.rs` runs on the GPU), adjoint identities of
//! the linear ops, and the CPU side of the checks of the newer ops (`max_all` ties,
//! `randn_keyed`, `spectral_conv` against the composed operator, the fused `conv2d_leaky`,
//! `affine_sample`'s exact answers, adjoint and f64 derivatives).

mod common;
use common::reference::{f64s, instance_norm_ref, spectral_ref};
use common::*;
use magprior::backend::NormShape;
use magprior::{Device, Rng, Tensor};

/// One finite-difference `#[test]` per family of the op table.
macro_rules! fd_tests {
    ($($test:ident => $family:literal),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                let n = ops::check_family_fd($family);
                println!("{}: {n} cases by finite differences", $family);
            }
        )*
        #[test]
        fn every_op_family_is_finite_differenced() {
            ops::assert_all_families_tested(&[$($family),*]);
        }
    };
}

fd_tests! {
    unary_ops_fd => "unary",
    binary_ops_fd_real_and_complex => "binary",
    reductions_and_broadcast_fd => "reduce",
    conv_fd => "conv",
    norm_pool_upsample_fd => "norm_pool_upsample",
    complex_fd => "complex",
    fft_fd => "fft",
    pad_crop_cat_narrow_reshape_to_device_fd => "shape",
    mse_loss_fd => "loss",
    spectral_conv_fd => "spectral",
    max_all_fd => "max_all",
    expi_fd => "expi",
    affine_sample_in_x_fd => "sample",
}

/// Complex inner product `sum conj(u) v` in f64.
fn dot_c(u: &Tensor, v: &Tensor) -> (f64, f64) {
    let (u, v) = (u.to_vec_c().unwrap(), v.to_vec_c().unwrap());
    u.iter().zip(&v).fold((0f64, 0f64), |(re, im), (a, b)| {
        let p = a.conj() * b;
        (re + p.re as f64, im + p.im as f64)
    })
}

/// Real inner product in f64 (complex data as interleaved re, im: `Re sum conj(u) v`).
fn dot_r(u: &Tensor, v: &Tensor) -> f64 {
    flat(u)
        .iter()
        .zip(flat(v))
        .map(|(a, b)| *a as f64 * b as f64)
        .sum()
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
        let lhs = dot_c(&ax, &y);
        let ahy = ax.backward_with(&y).unwrap().remove(&x).unwrap();
        assert_adjoint(name, lhs, dot_c(&x, &ahy), ADJOINT);
    }
    // conv2d: <conv(x), g> == <x, conv^T g>
    let x = rand(&[1, 3, 9, 11], -1.0, 1.0, &mut r).requires_grad();
    let w = rand(&[4, 3, 5, 5], -1.0, 1.0, &mut r);
    let y = x.conv2d(&w, None).unwrap();
    let g = rand(y.shape(), -1.0, 1.0, &mut r);
    let gx = y.backward_with(&g).unwrap().remove(&x).unwrap();
    assert_adjoint(
        "conv2d",
        (dot_r(&y, &g), 0.0),
        (dot_r(&x, &gx), 0.0),
        ADJOINT,
    );
    // spectral_conv, linear in x (real) and, for a fixed x, in K (complex, as a real-linear
    // map: the gradient convention dL/da + i dL/db makes <A_x K, y> = Re <K, A_x^H y>)
    for (xs, ks) in [([2, 3, 5, 6], [4, 3, 10, 12]), ([1, 2, 7, 5], [3, 2, 9, 8])] {
        let x = rand(&xs, -1.0, 1.0, &mut r).requires_grad();
        let k = rand_c(&ks, &mut r).requires_grad();
        let y = x.spectral_conv(&k).unwrap();
        let g = rand(y.shape(), -1.0, 1.0, &mut r);
        let grads = y.backward_with(&g).unwrap();
        let lhs = (dot_r(&y, &g), 0.0);
        let what = format!("spectral_conv {xs:?} * {ks:?}");
        let rhs_x = (dot_r(&x, grads.get(&x).unwrap()), 0.0);
        assert_adjoint(&format!("{what}, in x"), lhs, rhs_x, ADJOINT);
        let rhs_k = (dot_r(&k, grads.get(&k).unwrap()), 0.0);
        assert_adjoint(&format!("{what}, in K"), lhs, rhs_k, ADJOINT);
    }
}

#[test]
fn spectral_conv_matches_the_composed_operator() {
    ops::check_spectral_vs_composed(Device::Cpu, SUM_ORDER);
}

#[test]
fn spectral_conv_matches_a_naive_dft() {
    let mut r = Rng::new(12);
    let (xs, ks) = ([2, 2, 5, 4], [3, 2, 7, 8]);
    let x = rand(&xs, -1.0, 1.0, &mut r);
    let k = rand_c(&ks, &mut r);
    let y = x.spectral_conv(&k).unwrap();
    assert_eq!(y.shape(), [2, 3, 5, 4]);
    let want = spectral_ref(&x.to_vec().unwrap(), &flat(&k), (2, 2, 5, 4), (3, 7, 8));
    assert_close_f64(
        "spectral_conv vs naive DFT",
        &y.to_vec().unwrap(),
        &want,
        ACCUMULATED,
    );
    // shapes it refuses: a kernel smaller than the image, a channel mismatch, rank 3
    let small = rand_c(&[3, 2, 4, 8], &mut r);
    assert!(x.spectral_conv(&small).is_err());
    assert!(x.spectral_conv(&rand_c(&[3, 1, 7, 8], &mut r)).is_err());
    assert!(x.reshape(&[4, 5, 4]).unwrap().spectral_conv(&k).is_err());
    // a real kernel and a complex image are dtype errors
    assert!(x.spectral_conv(&rand(&ks, -1.0, 1.0, &mut r)).is_err());
    assert!(rand_c(&xs, &mut r).spectral_conv(&k).is_err());
}

#[test]
fn max_all_splits_the_gradient_over_ties() {
    ops::check_max_all_ties(Device::Cpu);
}

#[test]
fn max_all_propagates_nan() {
    ops::check_max_all_nan(Device::Cpu);
}

#[test]
fn randn_keyed_streams() {
    ops::check_randn_keyed(Device::Cpu);
}

#[test]
fn fused_conv_leaky_matches_unfused() {
    ops::check_fused_conv_leaky(Device::Cpu);
}

#[test]
fn affine_sample_exact_answers() {
    ops::check_affine_sample_exact(Device::Cpu);
}

#[test]
fn affine_sample_adjoint_identity() {
    ops::check_affine_sample_adjoint(Device::Cpu);
}

/// Both VJPs against f64: dx against the reference's transpose, the affine map's gradient
/// against kink-free central differences of the f64 reference (see the table's comment).
#[test]
fn affine_sample_gradients_match_f64() {
    ops::check_affine_sample_f64(Device::Cpu);
}

#[test]
fn affine_sample_bad_shapes_are_errors() {
    ops::check_affine_sample_errors(Device::Cpu);
}

/// The CPU handles any map: a singular one (every output samples one point) and one far
/// outside the image (all zeros), with finite gradients.
#[test]
fn affine_sample_degenerate_maps() {
    let mut r = Rng::new(34);
    let x = rand(&[1, 2, 5, 6], -1.0, 1.0, &mut r).requires_grad();
    let xv = x.to_vec().unwrap();
    let at = |v: [f32; 6]| {
        Tensor::from_shape_vec(&[6], v.to_vec())
            .unwrap()
            .requires_grad()
    };
    // s = (2.25, 3.5) everywhere: 0.75 0.5 x[2,3] + 0.75 0.5 x[2,4] + 0.25 0.5 x[3,3] + ...
    let a = at([0.0, 0.0, 3.5, 0.0, 0.0, 2.25]);
    let y = x.affine_sample(&a, 40, 70).unwrap();
    let p = |q: usize, r: usize, c: usize| xv[(q * 5 + r) * 6 + c];
    for q in 0..2 {
        let want = 0.375 * (p(q, 2, 3) + p(q, 2, 4)) + 0.125 * (p(q, 3, 3) + p(q, 3, 4));
        let got = y.narrow(1, q, 1).unwrap().to_vec().unwrap();
        assert_close_slice("singular map", &got, &vec![want; 40 * 70], ELEMENTWISE);
    }
    let g = y.sum_all().unwrap().backward().unwrap();
    let dx = g.get(&x).unwrap().to_vec().unwrap();
    let n = (40 * 70) as f32;
    assert_close_scalar(
        "singular map dx",
        dx[2 * 6 + 3] as f64,
        (0.375 * n) as f64,
        ACCUMULATED,
    );
    assert_close_scalar(
        "singular map dx",
        dx[3 * 6 + 4] as f64,
        (0.125 * n) as f64,
        ACCUMULATED,
    );
    assert!(g
        .get(&a)
        .unwrap()
        .to_vec()
        .unwrap()
        .iter()
        .all(|v| v.is_finite()));
    let far = at([1.0, 0.0, 1e6, 0.0, 1.0, -1e6]);
    let y = x.affine_sample(&far, 3, 4).unwrap();
    assert_eq!(y.to_vec().unwrap(), vec![0.0; 2 * 12]);
    let g = y.sum_all().unwrap().backward().unwrap();
    assert_eq!(g.get(&far).unwrap().to_vec().unwrap(), vec![0.0; 6]);
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
