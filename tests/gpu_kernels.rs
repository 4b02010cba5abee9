//! Every GPU kernel and VJP entry against a naive f64 reference (`common/reference.rs`) on
//! random inputs. Runs on any adapter, lavapipe included; without one each test prints
//! `SKIP: no GPU adapter (<reason>)` and returns (fails instead when
//! `MAGPRIOR_REQUIRE_GPU_TESTS` is set, as `.ci/run` does where lavapipe is installed). Each
//! test that ran prints `GPU test <name> ran (<k> so far)`.

mod common;
use common::reference::*;
use common::*;
use magprior::backend::gpu::{
    adamw, complex, conv, elementwise as ew, fft, norm, pad, pool, reduce, spectral, upsample,
    GpuBuffer, GpuContext, Opened,
};
use magprior::backend::{BinOp, ConvShape, NormShape, SpectralShape, UnaryOp};
use std::sync::OnceLock;

/// The kernels' own context, once `common::gpu` has counted the test (and found an adapter).
fn ctx(name: &str) -> Option<&'static GpuContext> {
    if !gpu(name) {
        return None;
    }
    static CTX: OnceLock<GpuContext> = OnceLock::new();
    Some(CTX.get_or_init(|| match GpuContext::open(true) {
        Ok(Opened::Ready(c)) => c,
        Ok(Opened::Unavailable(r)) => panic!("an adapter opened for the engine but not here: {r}"),
        Err(e) => panic!("opening a GPU context: {e}"),
    }))
}

macro_rules! gpu_or_skip {
    ($name:expr) => {
        match ctx($name) {
            Some(c) => c,
            None => return,
        }
    };
}

/// SplitMix64: the inputs these kernels have always been tested with.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [lo, hi).
    fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n)
            .map(|_| lo + (hi - lo) * ((self.next() >> 40) as f32 / (1u64 << 24) as f32))
            .collect()
    }
}

fn up(c: &GpuContext, v: &[f32]) -> GpuBuffer {
    c.upload(v).expect("upload")
}

fn down(c: &GpuContext, b: &GpuBuffer) -> Vec<f32> {
    c.download(b).expect("download")
}

/// Downloads `b` and compares it with `want`.
fn check(c: &GpuContext, what: &str, b: &GpuBuffer, want: &[f64], tol: Tol) -> f64 {
    assert_close_f64(what, &down(c, b), want, tol)
}

fn planes(planes: usize, h: usize, w: usize, complex: bool) -> pad::Planes {
    pad::Planes {
        planes,
        h,
        w,
        complex,
    }
}

fn ss(
    (n, cin, cout, h, w): (usize, usize, usize, usize, usize),
    (ph, pw): (usize, usize),
) -> SpectralShape {
    SpectralShape {
        n,
        cin,
        cout,
        h,
        w,
        ph,
        pw,
    }
}

// ------------------------------------------------------------------ context

#[test]
fn context_reports_adapter_and_lists_adapters() {
    let c = gpu_or_skip!("context_reports_adapter_and_lists_adapters");
    assert!(!c.adapter().name.is_empty());
    let all = GpuContext::list_adapters();
    println!("adapters: {all:?}");
    assert!(!all.is_empty());
}

#[test]
fn upload_download_roundtrip_and_pool() {
    let c = gpu_or_skip!("upload_download_roundtrip_and_pool");
    let v = Rng(1).vec(1000, -3.0, 3.0);
    let b = up(c, &v);
    assert_eq!(down(c, &b), v);
    assert_eq!(down(c, &c.zeros(77).unwrap()), vec![0.0; 77]);
    // A dropped buffer goes back to the pool and comes back out with the same size (on a
    // context of its own: the shared one is used by tests running in parallel).
    if let Ok(Opened::Ready(own)) = GpuContext::open(true) {
        let t = own.alloc(1000).unwrap();
        let size = t.byte_size();
        assert_eq!(own.pooled_bytes(), 0);
        drop(t);
        assert_eq!(own.pooled_bytes(), size);
        let t2 = own.alloc(1000).unwrap();
        assert_eq!(t2.byte_size(), size);
        assert_eq!(own.pooled_bytes(), 0);
    }
    assert_eq!(down(c, &c.copy(&b).unwrap()), v);
    // Launches are batched into one encoder until a flush or download.
    let _tmp: Vec<_> = (0..3)
        .map(|_| ew::scale_shift(c, &b, 2.0, 0.0).unwrap())
        .collect();
    assert!(c.pending_launches() >= 1);
    c.flush().unwrap();
    assert_eq!(down(c, &c.upload(&[]).unwrap()), Vec::<f32>::new());
}

#[test]
fn bad_lengths_are_errors_not_panics() {
    let c = gpu_or_skip!("bad_lengths_are_errors_not_panics");
    let (a, b) = (up(c, &[1.0; 10]), up(c, &[1.0; 9]));
    assert!(ew::binary(c, BinOp::Add, &a, &b, ew::Broadcast::Same).is_err());
    assert!(conv::conv2d(c, &cs(1, 1, 1, 3, 3, 2), &a, &b, None).is_err());
    assert!(reduce::mse(c, &a, &b).is_err());
    let s = ss((1, 1, 1, 3, 3), (4, 4));
    assert!(spectral::spectral_conv(c, &s, &a, &b, false).is_err());
}

// ------------------------------------------------------------------ conv2d

fn cs(n: usize, cin: usize, cout: usize, h: usize, w: usize, k: usize) -> ConvShape {
    ConvShape {
        n,
        cin,
        cout,
        h,
        w,
        k,
    }
}

fn conv_case(c: &GpuContext, s: ConvShape, seed: u64, backward: bool) {
    let mut r = Rng(seed);
    let x = r.vec(s.x_len(), -1.0, 1.0);
    let w = r.vec(s.w_len(), -0.5, 0.5);
    let b = r.vec(s.cout, -0.5, 0.5);
    let (gx, gw, gb) = (up(c, &x), up(c, &w), up(c, &b));
    let y = conv::conv2d(c, &s, &gx, &gw, Some(&gb)).unwrap();
    let (k, n, ci, h, wd, co) = (s.k, s.n, s.cin, s.h, s.w, s.cout);
    let tag = |what: &str| format!("conv2d k={k} {n}x{ci}x{h}x{wd}->{co} {what}");
    check(c, &tag("forward"), &y, &conv_ref(&s, &x, &w, &b), DOT);
    if backward {
        let gy = r.vec(s.y_len(), -1.0, 1.0);
        let ggy = up(c, &gy);
        let (dx_ref, dw_ref, db_ref) = conv_vjp_ref(&s, &x, &w, &gy);
        let dx = conv::conv2d_backward_input(c, &s, &ggy, &gw).unwrap();
        let (dw, db) = conv::conv2d_backward_weight(c, &s, &gx, &ggy).unwrap();
        check(c, &tag("backward_input"), &dx, &dx_ref, DOT);
        check(c, &tag("backward_weight"), &dw, &dw_ref, LONG_SUM);
        check(c, &tag("backward_bias"), &db, &db_ref, LONG_SUM);
    }
}

/// One `#[test]` per conv2d case: `name => (n, cin, cout, h, w, k), seed, with the VJPs`.
macro_rules! conv_tests {
    ($($name:ident => $shape:expr, $seed:expr, $backward:expr;)*) => {
        $(
            #[test]
            fn $name() {
                let c = gpu_or_skip!(stringify!($name));
                let (n, cin, cout, h, w, k) = $shape;
                conv_case(c, cs(n, cin, cout, h, w, k), $seed, $backward);
            }
        )*
    };
}

conv_tests! {
    conv2d_k3_odd_shape => (2, 3, 5, 17, 13, 3), 10, true;
    conv2d_k1 => (3, 4, 2, 7, 9, 1), 11, true;
    conv2d_k5_odd_shape => (1, 6, 7, 33, 20, 5), 12, true;
    conv2d_k5_tiny_image => (2, 1, 3, 2, 3, 5), 13, true;
    conv2d_k5_256x256_forward => (1, 8, 8, 256, 256, 5), 14, false;
    conv2d_k5_256x256_backward => (1, 2, 3, 256, 256, 5), 15, true;
}

#[test]
fn conv2d_without_bias() {
    let c = gpu_or_skip!("conv2d_without_bias");
    let s = cs(1, 2, 3, 5, 6, 3);
    let mut r = Rng(16);
    let x = r.vec(s.x_len(), -1.0, 1.0);
    let w = r.vec(s.w_len(), -1.0, 1.0);
    let y = conv::conv2d(c, &s, &up(c, &x), &up(c, &w), None).unwrap();
    let want = conv_ref(&s, &x, &w, &[0.0; 3]);
    check(c, "conv2d no bias", &y, &want, DOT);
}

// ------------------------------------------------------------------ elementwise

#[test]
fn binary_ops_with_broadcasts() {
    let c = gpu_or_skip!("binary_ops_with_broadcasts");
    let mut r = Rng(20);
    let (n, ch, hw) = (3, 5, 37);
    let len = n * ch * hw;
    let a = r.vec(len, -2.0, 2.0);
    use ew::Broadcast::*;
    let cases = [
        ("same", Same, len),
        ("channel", Channel { c: ch, hw }, ch),
        ("scalar", Scalar, 1),
        ("trailing", Trailing, hw),
    ];
    let bs: Vec<Vec<f32>> = cases.iter().map(|c| r.vec(c.2, 0.5, 2.0)).collect();
    let ga = up(c, &a);
    for ((bname, bc, _), b) in cases.iter().zip(&bs) {
        let idx = |i: usize| match bc {
            Same => i,
            Channel { .. } => (i / hw) % ch,
            Scalar => 0,
            Trailing => i % hw,
        };
        let gb = up(c, b);
        for (op, f) in [
            (BinOp::Add, (|x: f64, y: f64| x + y) as fn(f64, f64) -> f64),
            (BinOp::Sub, |x, y| x - y),
            (BinOp::Mul, |x, y| x * y),
            (BinOp::Div, |x, y| x / y),
        ] {
            let want: Vec<f64> = (0..len).map(|i| f(a[i] as f64, b[idx(i)] as f64)).collect();
            let got = ew::binary(c, op, &ga, &gb, *bc).unwrap();
            check(c, &format!("{op:?} {bname}"), &got, &want, ROUNDING);
        }
        // y = a / b: db (full shape) = -gy a / b^2
        let gy = r.vec(len, -1.0, 1.0);
        let want: Vec<f64> = (0..len)
            .map(|i| -(gy[i] as f64) * a[i] as f64 / (b[idx(i)] as f64).powi(2))
            .collect();
        let got = ew::div_backward_b(c, &up(c, &gy), &ga, &gb, *bc).unwrap();
        check(c, &format!("div_backward_b {bname}"), &got, &want, QUOTIENT);
    }
}

#[test]
fn unary_ops_and_vjps() {
    let c = gpu_or_skip!("unary_ops_and_vjps");
    let mut r = Rng(21);
    let n = 4099;
    let mut x = r.vec(n, -6.0, 6.0);
    x[..6].copy_from_slice(&[0.0, 1e-4, -30.0, 30.0, 100.0, -100.0]);
    let xpos = r.vec(n, 0.01, 10.0);
    let gy = r.vec(n, -1.0, 1.0);
    let ggy = up(c, &gy);
    type F = fn(f64) -> f64;
    fn sig(v: f64) -> f64 {
        1.0 / (1.0 + (-v).exp())
    }
    fn dtanh(v: f64) -> f64 {
        1.0 - v.tanh().powi(2)
    }
    let cases: Vec<(UnaryOp, bool, F, F)> = vec![
        (UnaryOp::Exp, false, |v| v.exp(), |v| v.exp()),
        (UnaryOp::Log, true, |v| v.ln(), |v| 1.0 / v),
        (UnaryOp::Sqrt, true, |v| v.sqrt(), |v| 0.5 / v.sqrt()),
        (UnaryOp::Square, false, |v| v * v, |v| 2.0 * v),
        (UnaryOp::Tanh, false, |v| v.tanh(), dtanh),
        (UnaryOp::Sigmoid, false, sig, |v| sig(v) * (1.0 - sig(v))),
    ];
    for (op, positive, f, df) in cases {
        // exp at |x| = 100 overflows f32; keep exp's inputs in range.
        let xs: Vec<f32> = if positive {
            xpos.clone()
        } else if op == UnaryOp::Exp {
            x.iter().map(|v| v.clamp(-30.0, 30.0)).collect()
        } else {
            x.clone()
        };
        let gx = up(c, &xs);
        let want: Vec<f64> = xs.iter().map(|&v| f(v as f64)).collect();
        let tol = GPU_TRANSCENDENTAL_VS_F64;
        let got = ew::unary(c, op, &gx).unwrap();
        check(c, &format!("{op:?} forward"), &got, &want, tol);
        let want: Vec<f64> = xs
            .iter()
            .zip(&gy)
            .map(|(&v, &g)| g as f64 * df(v as f64))
            .collect();
        let got = ew::unary_backward(c, op, &gx, &ggy).unwrap();
        check(c, &format!("{op:?} backward"), &got, &want, tol);
    }
    let slope = 0.2;
    let gx = up(c, &x);
    let op = UnaryOp::LeakyRelu(slope as f32);
    let want: Vec<f64> = x
        .iter()
        .map(|&v| if v > 0.0 { v as f64 } else { slope * v as f64 })
        .collect();
    let got = ew::unary(c, op, &gx).unwrap();
    check(c, "leaky_relu forward", &got, &want, ROUNDING);
    let want: Vec<f64> = x
        .iter()
        .zip(&gy)
        .map(|(&v, &g)| g as f64 * if v > 0.0 { 1.0 } else { slope })
        .collect();
    let got = ew::unary_backward(c, op, &gx, &ggy).unwrap();
    check(c, "leaky_relu backward", &got, &want, ROUNDING);
    let want: Vec<f64> = x.iter().map(|&v| 1.5 * v as f64 - 0.25).collect();
    let got = ew::scale_shift(c, &gx, 1.5, -0.25).unwrap();
    check(c, "scale_shift", &got, &want, ROUNDING);
}

#[test]
fn dispatch_folds_past_65535_workgroups() {
    let c = gpu_or_skip!("dispatch_folds_past_65535_workgroups");
    let n = 65_535 * 256 + 1_000; // needs a 2-D grid
    let x: Vec<f32> = (0..n).map(|i| (i % 1000) as f32).collect();
    let gx = up(c, &x);
    let want: Vec<f64> = x.iter().map(|&v| 2.0 * v as f64 + 1.0).collect();
    let y = ew::scale_shift(c, &gx, 2.0, 1.0).unwrap();
    check(c, "scale_shift 2-D grid", &y, &want, ROUNDING);
    let want: f64 = x.iter().map(|&v| v as f64).sum();
    let s = reduce::sum_all(c, &gx, 1.0).unwrap();
    check(c, "sum_all 16.8M", &s, &[want], HUGE_INTEGER_SUM);
}

// ------------------------------------------------------------------ complex and pad

fn cx(v: &[f32], i: usize) -> (f64, f64) {
    (v[2 * i] as f64, v[2 * i + 1] as f64)
}

#[test]
fn complex_ops_and_vjps() {
    let c = gpu_or_skip!("complex_ops_and_vjps");
    let mut r = Rng(30);
    let (batch, m) = (3, 101);
    let n = batch * m;
    let a = r.vec(2 * n, -2.0, 2.0);
    let bfull = r.vec(2 * n, -2.0, 2.0);
    let bper = r.vec(2 * m, -2.0, 2.0);
    let (ga, gbf, gbp) = (up(c, &a), up(c, &bfull), up(c, &bper));
    let mul = |x: (f64, f64), y: (f64, f64)| [x.0 * y.0 - x.1 * y.1, x.0 * y.1 + x.1 * y.0];
    let mut checks: Vec<(String, GpuBuffer, Vec<f64>)> = Vec::new();
    for (name, gb, b, period) in [("same", &gbf, &bfull, n), ("trailing", &gbp, &bper, m)] {
        let want = (0..n).flat_map(|i| mul(cx(&a, i), cx(b, i % period)));
        let got = complex::cmul(c, &ga, gb).unwrap();
        checks.push((format!("cmul {name}"), got, want.collect()));
        let conj = |(re, im): (f64, f64)| (re, -im);
        let want = (0..n).flat_map(|i| mul(cx(&a, i), conj(cx(b, i % period))));
        let got = complex::cmul_conj(c, &ga, gb).unwrap();
        checks.push((format!("cmul_conj {name}"), got, want.collect()));
    }
    let (re, im) = (r.vec(n, -1.0, 1.0), r.vec(n, -1.0, 1.0));
    let gy = r.vec(n, -1.0, 1.0);
    let z = |i: usize| cx(&a, i);
    let parts: [(&str, GpuBuffer, Vec<f64>); 6] = [
        (
            "conj",
            complex::conj(c, &ga),
            (0..n).flat_map(|i| [z(i).0, -z(i).1]).collect(),
        ),
        ("re", complex::re(c, &ga), (0..n).map(|i| z(i).0).collect()),
        ("im", complex::im(c, &ga), (0..n).map(|i| z(i).1).collect()),
        (
            "from_re_im",
            complex::from_re_im(c, &up(c, &re), &up(c, &im)),
            (0..n).flat_map(|i| [re[i] as f64, im[i] as f64]).collect(),
        ),
        (
            "abs2",
            complex::abs2(c, &ga),
            (0..n).map(|i| z(i).0.powi(2) + z(i).1.powi(2)).collect(),
        ),
        (
            "abs2_backward",
            complex::abs2_backward(c, &ga, &up(c, &gy)),
            (0..n)
                .flat_map(|i| [2.0 * z(i).0 * gy[i] as f64, 2.0 * z(i).1 * gy[i] as f64])
                .collect(),
        ),
    ]
    .map(|(name, got, want)| (name, got.unwrap(), want));
    checks.extend(parts.into_iter().map(|(n, g, w)| (n.to_string(), g, w)));
    for (name, got, want) in &checks {
        check(c, name, got, want, ROUNDING);
    }
    assert!(complex::cmul(c, &ga, &up(c, &[1.0; 8])).is_err());
}

#[test]
fn pad_and_crop_real_and_complex() {
    let c = gpu_or_skip!("pad_and_crop_real_and_complex");
    let mut r = Rng(31);
    for complex in [false, true] {
        let s = planes(3, 5, 7, complex);
        let words = if complex { 2 } else { 1 };
        let x = r.vec(3 * 5 * 7 * words, -1.0, 1.0);
        let gx = up(c, &x);
        let (t, b, l, rt) = (2, 1, 3, 4);
        let (oh, ow) = (t + 5 + b, l + 7 + rt);
        let mut want = vec![0.0f64; 3 * oh * ow * words];
        for q in 0..3 {
            for y in 0..5 {
                for xx in 0..7 {
                    for k in 0..words {
                        want[((q * oh + y + t) * ow + xx + l) * words + k] =
                            x[((q * 5 + y) * 7 + xx) * words + k] as f64;
                    }
                }
            }
        }
        let padded = pad::pad2d(c, &gx, s, t, b, l, rt).unwrap();
        let tag = |what: &str| format!("{what} complex={complex}");
        check(c, &tag("pad2d"), &padded, &want, ROUNDING);
        let back = pad::crop2d(c, &padded, planes(3, oh, ow, complex), t, 5, l, 7).unwrap();
        check(c, &tag("crop2d"), &back, &f64s(&x), ROUNDING);
        // An off-centre crop against direct indexing.
        let cropped = pad::crop2d(c, &gx, s, 1, 3, 2, 4).unwrap();
        let want: Vec<f64> = (0..3)
            .flat_map(|q| {
                (1..4).flat_map(move |y| {
                    (2..6).flat_map(move |xx| {
                        (0..words).map(move |k| ((q * 5 + y) * 7 + xx) * words + k)
                    })
                })
            })
            .map(|i| x[i] as f64)
            .collect();
        check(c, &tag("crop2d window"), &cropped, &want, ROUNDING);
        assert!(pad::crop2d(c, &gx, s, 3, 3, 0, 1).is_err());
    }
}

// ------------------------------------------------------------------ reductions and AdamW

#[test]
fn reductions() {
    let c = gpu_or_skip!("reductions");
    let mut r = Rng(40);
    for n in [1usize, 255, 4096, 4097, 300_001] {
        let x = r.vec(n, -1.0, 1.0);
        let gx = up(c, &x);
        let want: f64 = x.iter().map(|&v| v as f64).sum();
        let got = reduce::sum_all(c, &gx, 1.0).unwrap();
        check(c, &format!("sum_all n={n}"), &got, &[want], LONG_SUM);
        let got = reduce::sum_all(c, &gx, 1.0 / n as f32).unwrap();
        check(
            c,
            &format!("mean n={n}"),
            &got,
            &[want / n as f64],
            GPU_MEAN,
        );
        let y = r.vec(n, -1.0, 1.0);
        let gy = up(c, &y);
        let d = |i: usize| x[i] as f64 - y[i] as f64;
        let mse: f64 = (0..n).map(|i| d(i).powi(2)).sum::<f64>() / n as f64;
        let got = reduce::mse(c, &gx, &gy).unwrap();
        check(c, &format!("mse n={n}"), &got, &[mse], GPU_MSE);
        let want: Vec<f64> = (0..n).map(|i| 2.0 * d(i) * 0.7 / n as f64).collect();
        let got = reduce::mse_backward(c, &gx, &gy, &up(c, &[0.7])).unwrap();
        check(c, &format!("mse_backward n={n}"), &got, &want, ROUNDING);
    }
    let (n, ch, hw) = (3, 4, 1000);
    let x = r.vec(n * ch * hw, -1.0, 1.0);
    let gx = up(c, &x);
    let plane = |q: usize| (0..hw).map(|p| x[q * hw + p] as f64).sum::<f64>();
    let want: Vec<f64> = (0..ch)
        .map(|cc| (0..n).map(|nn| plane(nn * ch + cc)).sum())
        .collect();
    let got = reduce::channel_sums(c, &gx, n, ch, hw).unwrap();
    check(c, "channel_sums", &got, &want, LONG_SUM);
    let want: Vec<f64> = (0..n * ch).map(|q| plane(q) * 0.5).collect();
    let got = reduce::sum_rows(c, &gx, hw, 0.5).unwrap();
    check(c, "sum_rows", &got, &want, LONG_SUM);
    // Deterministic: the same input gives bit-identical sums.
    let a = down(c, &reduce::sum_all(c, &gx, 1.0).unwrap());
    let b = down(c, &reduce::sum_all(c, &gx, 1.0).unwrap());
    assert_eq!(a[0].to_bits(), b[0].to_bits());
}

#[test]
fn adamw_matches_pytorch_formula() {
    let c = gpu_or_skip!("adamw_matches_pytorch_formula");
    let mut r = Rng(50);
    let n = 1000;
    let mut p = r.vec(n, -1.0, 1.0);
    let mut m = vec![0.0f32; n];
    let mut v = vec![0.0f32; n];
    let (gp, gm, gv) = (up(c, &p), up(c, &m), up(c, &v));
    let (lr, b1, b2, eps, wd) = (1e-2f64, 0.9f64, 0.999f64, 1e-8f64, 0.01f64);
    for t in 1..=5u32 {
        let g = r.vec(n, -1.0, 1.0);
        let (beta1, beta2, weight_decay) = (b1, b2, wd);
        let s = adamw::AdamWStep {
            lr,
            beta1,
            beta2,
            eps,
            weight_decay,
            t,
        };
        adamw::adamw_step(c, &s, &gp, &up(c, &g), &gm, &gv).unwrap();
        // Reference in the same f32 arithmetic order as magprior's CPU optimiser.
        let bc1 = 1.0 - b1.powi(t as i32);
        let bc2 = 1.0 - b2.powi(t as i32);
        let (step, bc2s, decay) = ((lr / bc1) as f32, bc2.sqrt() as f32, (1.0 - lr * wd) as f32);
        for j in 0..n {
            m[j] = b1 as f32 * m[j] + (1.0 - b1 as f32) * g[j];
            v[j] = b2 as f32 * v[j] + (1.0 - b2 as f32) * g[j] * g[j];
            p[j] *= decay;
            p[j] -= step * m[j] / (v[j].sqrt() / bc2s + eps as f32);
        }
    }
    check(c, "adamw p", &gp, &f64s(&p), ROUNDING);
    check(c, "adamw m", &gm, &f64s(&m), ROUNDING);
    check(c, "adamw v", &gv, &f64s(&v), ROUNDING);
}

// ------------------------------------------------------------------ instance norm

fn instance_norm_case(c: &GpuContext, s: NormShape, affine: bool, seed: u64) {
    let mut r = Rng(seed);
    let len = s.n * s.c * s.m;
    let x: Vec<f32> = r.vec(len, -2.0, 3.0);
    let (w, b) = if affine {
        (r.vec(s.c, 0.5, 1.5), r.vec(s.c, -0.5, 0.5))
    } else {
        (vec![1.0; s.c], vec![0.0; s.c])
    };
    let gy = r.vec(len, -1.0, 1.0);
    let eps = 1e-5;
    let [y_ref, dx_ref, dw_ref, db_ref] =
        instance_norm_ref(&s, &f64s(&x), &f64s(&w), &f64s(&b), &f64s(&gy), eps as f64);
    let (gx, gw, gb) = (up(c, &x), up(c, &w), up(c, &b));
    let (wo, bo) = (affine.then_some(&gw), affine.then_some(&gb));
    let (y, stats) = norm::instance_norm(c, &s, &gx, wo, bo, eps).unwrap();
    let tag = format!("instance_norm {}x{}x{} affine={affine}", s.n, s.c, s.m);
    check(c, &format!("{tag} forward"), &y, &y_ref, GPU_NORM_FORWARD);
    let (dx, dw, db) = norm::instance_norm_backward(c, &s, &gx, wo, &stats, &up(c, &gy)).unwrap();
    check(c, &format!("{tag} dx"), &dx, &dx_ref, GPU_NORM_DX);
    check(c, &format!("{tag} dw"), &dw, &dw_ref, LONG_SUM);
    check(c, &format!("{tag} db"), &db, &db_ref, LONG_SUM);
}

/// One `#[test]` per instance-norm case: `name => (n, c, pixels), affine, seed`.
macro_rules! norm_tests {
    ($($name:ident => $shape:expr, $affine:expr, $seed:expr;)*) => {
        $(
            #[test]
            fn $name() {
                let c = gpu_or_skip!(stringify!($name));
                let (n, ch, m) = $shape;
                instance_norm_case(c, NormShape { n, c: ch, m }, $affine, $seed);
            }
        )*
    };
}

norm_tests! {
    instance_norm_affine_odd_shape => (3, 5, 13 * 11), true, 61;
    instance_norm_plain_large_plane => (1, 3, 256 * 256), false, 62;
    instance_norm_tiny_plane => (2, 1, 3), true, 63;
}

// ------------------------------------------------------------------ max pool, upsampling

fn max_pool_case(c: &GpuContext, planes: usize, h: usize, w: usize, seed: u64, ties: bool) {
    let mut r = Rng(seed);
    let mut x = r.vec(planes * h * w, -1.0, 1.0);
    if ties {
        x.iter_mut().for_each(|v| *v = (*v * 2.0).round());
    }
    let gy = r.vec(planes * (h / 2) * (w / 2), -1.0, 1.0);
    let [y_ref, dx_ref] = max_pool_ref(&x, &gy, planes, h, w);
    let xb = up(c, &x);
    let tag = format!("max_pool2d {planes}x{h}x{w} ties={ties}");
    let y = pool::max_pool2d(c, &xb, planes, h, w).unwrap();
    check(c, &format!("{tag} forward"), &y, &y_ref, ROUNDING);
    let dx = pool::max_pool2d_backward(c, &xb, &up(c, &gy), planes, h, w).unwrap();
    check(c, &format!("{tag} backward"), &dx, &dx_ref, ROUNDING);
}

#[test]
fn max_pool2d_even_and_odd_sides() {
    let c = gpu_or_skip!("max_pool2d_even_and_odd_sides");
    max_pool_case(c, 6, 8, 10, 70, false);
    max_pool_case(c, 3, 9, 7, 71, false);
    max_pool_case(c, 2, 5, 6, 72, true);
    max_pool_case(c, 1, 256, 256, 73, false);
}

fn upsample_case(c: &GpuContext, planes: usize, h: usize, w: usize, seed: u64) {
    let mut r = Rng(seed);
    let x = r.vec(planes * h * w, -1.0, 1.0);
    let gy = r.vec(planes * 4 * h * w, -1.0, 1.0);
    let [y_ref, dx_ref] = upsample_ref(&x, &gy, planes, h, w);
    let tag = format!("upsample_bilinear2d {planes}x{h}x{w}");
    let y = upsample::upsample_bilinear2d(c, &up(c, &x), planes, h, w).unwrap();
    let y = down(c, &y);
    assert_close_f64(&format!("{tag} forward"), &y, &y_ref, ROUNDING);
    let dx = upsample::upsample_bilinear2d_backward(c, &up(c, &gy), planes, h, w).unwrap();
    let dx = down(c, &dx);
    assert_close_f64(&format!("{tag} backward"), &dx, &dx_ref, SHORT_SUM);
    // Adjoint identity on the device results: <U x, gy> == <x, U^T gy>.
    let dot = |u: &[f32], v: &[f32]| u.iter().zip(v).map(|(a, b)| *a as f64 * *b as f64).sum();
    let (lhs, rhs) = ((dot(&y, &gy), 0.0), (dot(&x, &dx), 0.0));
    assert_adjoint(&format!("{tag} adjoint"), lhs, rhs, ADJOINT);
}

#[test]
fn upsample_bilinear2d_shapes() {
    let c = gpu_or_skip!("upsample_bilinear2d_shapes");
    upsample_case(c, 4, 5, 7, 80);
    upsample_case(c, 2, 1, 1, 81);
    upsample_case(c, 3, 1, 6, 82);
    upsample_case(c, 1, 128, 128, 83);
}

// ------------------------------------------------------------------ FFT, spectral convolution

fn peak(v: &[f64]) -> f64 {
    v.iter().fold(0.0f64, |m, v| m.max(v.abs()))
}

fn fft_case(c: &GpuContext, batch: usize, h: usize, w: usize, seed: u64) {
    let mut r = Rng(seed);
    let x = r.vec(2 * batch * h * w, -1.0, 1.0);
    let gx = up(c, &x);
    let tag = format!("fft2 {batch}x{h}x{w}");
    let y = fft::fft2(c, &gx, batch, h, w).unwrap();
    let yi = fft::ifft2(c, &gx, batch, h, w).unwrap();
    for (dir, got, sign, scale) in [
        ("forward", &y, -1.0, 1.0),
        ("inverse", &yi, 1.0, 1.0 / (h * w) as f64),
    ] {
        let want = dft2_ref(&f64s(&x), batch, h, w, sign, scale);
        let p = peak(&want);
        let tol = Tol::of_peak(GPU_FFT_OF_PEAK, p);
        let err = check(c, &format!("{tag} {dir}"), got, &want, tol);
        println!("{tag} {dir}: max error / peak = {:.2e}", err / p);
    }
    let back = fft::ifft2(c, &y, batch, h, w).unwrap();
    let tol = GPU_FFT_ROUNDTRIP;
    check(c, &format!("{tag} roundtrip"), &back, &f64s(&x), tol);
}

#[test]
fn fft2_power_of_two_shared() {
    let c = gpu_or_skip!("fft2_power_of_two_shared");
    fft_case(c, 2, 8, 16, 90);
    fft_case(c, 1, 1, 1, 91);
    fft_case(c, 3, 2, 1, 92);
    fft_case(c, 1, 256, 256, 93);
}

#[test]
fn fft2_power_of_two_stockham_rows_and_columns() {
    let c = gpu_or_skip!("fft2_power_of_two_stockham_rows_and_columns");
    fft_case(c, 1, 2, 4096, 94);
    fft_case(c, 1, 4096, 2, 95);
}

#[test]
fn fft2_bluestein() {
    let c = gpu_or_skip!("fft2_bluestein");
    fft_case(c, 2, 12, 10, 96);
    fft_case(c, 1, 1, 7, 97);
    fft_case(c, 1, 3, 1, 98);
    fft_case(c, 1, 100, 100, 99);
    fft_case(c, 1, 2, 1500, 100); // padded length 4096: Stockham inside Bluestein
    fft_case(c, 2, 16, 6, 101); // mixed: power-of-two columns, Bluestein rows
}

#[test]
fn fft2_adjoint_identity() {
    // <F x, y> == <x, F^H y> with F^H = unnormalised inverse (complex inner product).
    let c = gpu_or_skip!("fft2_adjoint_identity");
    let mut r = Rng(102);
    for (b, h, w) in [(2, 8, 8), (1, 6, 10)] {
        let x = r.vec(2 * b * h * w, -1.0, 1.0);
        let y = r.vec(2 * b * h * w, -1.0, 1.0);
        let fx = down(c, &fft::fft2(c, &up(c, &x), b, h, w).unwrap());
        let inv = fft::Direction::Inverse;
        let fhy = fft::fft2_scaled(c, &up(c, &y), b, h, w, inv, 1.0).unwrap();
        let fhy = down(c, &fhy);
        // sum conj(u) v
        let dot = |u: &[f32], v: &[f32]| {
            (0..u.len() / 2).fold((0.0f64, 0.0f64), |(re, im), k| {
                let (a, bb) = (u[2 * k] as f64, u[2 * k + 1] as f64);
                let (cc, d) = (v[2 * k] as f64, v[2 * k + 1] as f64);
                (re + a * cc + bb * d, im + a * d - bb * cc)
            })
        };
        let what = format!("fft2 adjoint {b}x{h}x{w}");
        assert_adjoint(&what, dot(&fx, &y), dot(&x, &fhy), GPU_FFT_ADJOINT);
    }
}

#[test]
fn spectral_conv_against_a_naive_dft() {
    let c = gpu_or_skip!("spectral_conv_against_a_naive_dft");
    let mut r = Rng(103);
    for (n, cin, cout, h, w, ph, pw) in [(2, 3, 2, 5, 6, 10, 12), (1, 2, 3, 7, 5, 9, 8)] {
        let s = ss((n, cin, cout, h, w), (ph, pw));
        let x = r.vec(n * cin * h * w, -1.0, 1.0);
        let k = r.vec(2 * cout * cin * ph * pw, -1.0, 1.0);
        let y = spectral::spectral_conv(c, &s, &up(c, &x), &up(c, &k), false).unwrap();
        let want = spectral_ref(&x, &k, (n, cin, h, w), (cout, ph, pw));
        check(c, &format!("spectral_conv {s:?}"), &y, &want, SUM_ORDER);
    }
}
