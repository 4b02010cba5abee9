//! Every GPU kernel and VJP entry against a plain CPU reference (f64 accumulation) on random
//! inputs. Runs on any adapter, lavapipe included; without one each test prints
//! `SKIP: no GPU adapter (<reason>)` and returns (fails instead when
//! `MAGPRIOR_REQUIRE_GPU_TESTS` is set, as `.ci/run` does where lavapipe is installed).

use std::sync::OnceLock;

use magprior::backend::gpu::{
    adamw, complex, conv, elementwise as ew, fft, norm, pad, pool, reduce, upsample, GpuBuffer,
    GpuContext, Opened,
};
use magprior::backend::{BinOp, UnaryOp};

// ------------------------------------------------------------------ tolerances (one place)

/// `|got - want| <= abs + rel * |want|` per element.
#[derive(Clone, Copy, Debug)]
struct Tol {
    abs: f64,
    rel: f64,
}

/// Plain f32 arithmetic, one or a few roundings.
const EXACTISH: Tol = Tol {
    abs: 1e-6,
    rel: 1e-6,
};
/// exp/log/tanh/sigmoid on drivers a few hundred ULP off (lavapipe), relative to O(1) values.
const TRANSCENDENTAL: Tol = Tol {
    abs: 2e-6,
    rel: 3e-5,
};
/// Dot products of up to a few thousand O(1) terms in f32.
const DOT: Tol = Tol {
    abs: 2e-4,
    rel: 1e-4,
};
/// Sums of up to ~1e6 O(1) terms in f32 (pairwise on the device).
const LONG_SUM: Tol = Tol {
    abs: 2e-3,
    rel: 1e-4,
};
/// FFT outputs: error relative to the largest output magnitude of the transform.
const FFT_REL_TO_MAX: f64 = 1e-5;

fn ctx() -> Option<&'static GpuContext> {
    static CTX: OnceLock<Result<GpuContext, String>> = OnceLock::new();
    let c = CTX.get_or_init(|| match GpuContext::open(true) {
        Ok(Opened::Ready(c)) => {
            eprintln!("GPU adapter: {}", c.adapter());
            Ok(c)
        }
        Ok(Opened::Unavailable(r)) => Err(r),
        Err(e) => Err(e.to_string()),
    });
    match c {
        Ok(c) => Some(c),
        Err(r) => {
            if std::env::var_os("MAGPRIOR_REQUIRE_GPU_TESTS").is_some() {
                panic!("MAGPRIOR_REQUIRE_GPU_TESTS is set but no GPU adapter opened ({r})");
            }
            println!("SKIP: no GPU adapter ({r})");
            None
        }
    }
}

macro_rules! gpu_or_skip {
    () => {
        match ctx() {
            Some(c) => c,
            None => return,
        }
    };
}

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

/// Compares and panics with count, max error and where; returns the max abs error.
fn check(name: &str, got: &[f32], want: &[f64], tol: Tol) -> f64 {
    assert_eq!(
        got.len(),
        want.len(),
        "{name}: length {} vs {}",
        got.len(),
        want.len()
    );
    let (mut bad, mut max_err, mut at) = (0usize, 0.0f64, 0usize);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g as f64 - w).abs();
        let ok = err <= tol.abs + tol.rel * w.abs();
        if !ok || err.is_nan() {
            bad += 1;
        }
        if err > max_err || err.is_nan() {
            max_err = err;
            at = i;
        }
    }
    println!(
        "{name}: n={} max_abs_err={max_err:.3e} (at {at})",
        got.len()
    );
    assert!(
        bad == 0,
        "{name}: {bad} of {} elements outside {tol:?}; max error {max_err:.3e} at {at}: got {} want {}",
        got.len(),
        got[at],
        want[at]
    );
    max_err
}

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

fn up(c: &GpuContext, v: &[f32]) -> GpuBuffer {
    c.upload(v).expect("upload")
}

fn down(c: &GpuContext, b: &GpuBuffer) -> Vec<f32> {
    c.download(b).expect("download")
}

// ------------------------------------------------------------------ context

#[test]
fn context_reports_adapter_and_lists_adapters() {
    let c = gpu_or_skip!();
    let a = c.adapter();
    assert!(!a.name.is_empty());
    let all = GpuContext::list_adapters();
    println!("adapters: {all:?}");
    assert!(!all.is_empty());
}

#[test]
fn upload_download_roundtrip_and_pool() {
    let c = gpu_or_skip!();
    let v = Rng(1).vec(1000, -3.0, 3.0);
    let b = up(c, &v);
    assert_eq!(down(c, &b), v);
    let z = c.zeros(77).unwrap();
    assert_eq!(down(c, &z), vec![0.0; 77]);
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
    let cp = c.copy(&b).unwrap();
    assert_eq!(down(c, &cp), v);
    // Launches are batched into one encoder until a flush or download.
    let _tmp: Vec<_> = (0..3)
        .map(|_| ew::scale_shift(c, &b, 2.0, 0.0).unwrap())
        .collect();
    assert!(c.pending_launches() >= 1);
    c.flush().unwrap();
    let e = c.upload(&[]).unwrap();
    assert_eq!(down(c, &e), Vec::<f32>::new());
}

#[test]
fn bad_lengths_are_errors_not_panics() {
    let c = gpu_or_skip!();
    let a = up(c, &[1.0; 10]);
    let b = up(c, &[1.0; 9]);
    assert!(ew::binary(c, BinOp::Add, &a, &b, ew::Broadcast::Same).is_err());
    let s = conv::ConvShape {
        n: 1,
        cin: 1,
        cout: 1,
        h: 3,
        w: 3,
        k: 2,
    };
    assert!(conv::conv2d(c, &s, &a, &b, None).is_err());
    assert!(reduce::mse(c, &a, &b).is_err());
}

// ------------------------------------------------------------------ conv2d

fn conv_ref(s: &conv::ConvShape, x: &[f32], w: &[f32], b: &[f32]) -> Vec<f64> {
    let (n, ci, co, h, wd, k) = (s.n, s.cin, s.cout, s.h, s.w, s.k);
    let p = (k / 2) as isize;
    let mut y = vec![0.0f64; n * co * h * wd];
    for ni in 0..n {
        for o in 0..co {
            for yy in 0..h {
                for xx in 0..wd {
                    let mut acc = b[o] as f64;
                    for i in 0..ci {
                        for ky in 0..k {
                            let sy = yy as isize + ky as isize - p;
                            if sy < 0 || sy >= h as isize {
                                continue;
                            }
                            for kx in 0..k {
                                let sx = xx as isize + kx as isize - p;
                                if sx < 0 || sx >= wd as isize {
                                    continue;
                                }
                                acc += w[((o * ci + i) * k + ky) * k + kx] as f64
                                    * x[((ni * ci + i) * h + sy as usize) * wd + sx as usize]
                                        as f64;
                            }
                        }
                    }
                    y[((ni * co + o) * h + yy) * wd + xx] = acc;
                }
            }
        }
    }
    y
}

/// Scatter form of the VJPs: for every (output pixel, tap) add the products to dx and dw.
fn conv_vjp_ref(
    s: &conv::ConvShape,
    x: &[f32],
    w: &[f32],
    gy: &[f32],
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (n, ci, co, h, wd, k) = (s.n, s.cin, s.cout, s.h, s.w, s.k);
    let p = (k / 2) as isize;
    let mut dx = vec![0.0f64; s.x_len()];
    let mut dw = vec![0.0f64; s.w_len()];
    let mut db = vec![0.0f64; co];
    for ni in 0..n {
        for o in 0..co {
            for yy in 0..h {
                for xx in 0..wd {
                    let g = gy[((ni * co + o) * h + yy) * wd + xx] as f64;
                    db[o] += g;
                    for i in 0..ci {
                        for ky in 0..k {
                            let sy = yy as isize + ky as isize - p;
                            if sy < 0 || sy >= h as isize {
                                continue;
                            }
                            for kx in 0..k {
                                let sx = xx as isize + kx as isize - p;
                                if sx < 0 || sx >= wd as isize {
                                    continue;
                                }
                                let xi = ((ni * ci + i) * h + sy as usize) * wd + sx as usize;
                                let wi = ((o * ci + i) * k + ky) * k + kx;
                                dx[xi] += g * w[wi] as f64;
                                dw[wi] += g * x[xi] as f64;
                            }
                        }
                    }
                }
            }
        }
    }
    (dx, dw, db)
}

fn conv_case(s: conv::ConvShape, seed: u64, backward: bool) {
    let c = gpu_or_skip!();
    let mut r = Rng(seed);
    let x = r.vec(s.x_len(), -1.0, 1.0);
    let w = r.vec(s.w_len(), -0.5, 0.5);
    let b = r.vec(s.cout, -0.5, 0.5);
    let (gx, gw, gb) = (up(c, &x), up(c, &w), up(c, &b));
    let y = conv::conv2d(c, &s, &gx, &gw, Some(&gb)).unwrap();
    let tag = format!(
        "conv2d k={} {}x{}x{}x{}->{}",
        s.k, s.n, s.cin, s.h, s.w, s.cout
    );
    check(
        &format!("{tag} forward"),
        &down(c, &y),
        &conv_ref(&s, &x, &w, &b),
        DOT,
    );
    if backward {
        let gy = r.vec(s.y_len(), -1.0, 1.0);
        let ggy = up(c, &gy);
        let (dx_ref, dw_ref, db_ref) = conv_vjp_ref(&s, &x, &w, &gy);
        let dx = conv::conv2d_backward_input(c, &s, &ggy, &gw).unwrap();
        let (dw, db) = conv::conv2d_backward_weight(c, &s, &gx, &ggy).unwrap();
        check(
            &format!("{tag} backward_input"),
            &down(c, &dx),
            &dx_ref,
            DOT,
        );
        check(
            &format!("{tag} backward_weight"),
            &down(c, &dw),
            &dw_ref,
            LONG_SUM,
        );
        check(
            &format!("{tag} backward_bias"),
            &down(c, &db),
            &db_ref,
            LONG_SUM,
        );
    }
}

#[test]
fn conv2d_k3_odd_shape() {
    conv_case(
        conv::ConvShape {
            n: 2,
            cin: 3,
            cout: 5,
            h: 17,
            w: 13,
            k: 3,
        },
        10,
        true,
    );
}

#[test]
fn conv2d_k1() {
    conv_case(
        conv::ConvShape {
            n: 3,
            cin: 4,
            cout: 2,
            h: 7,
            w: 9,
            k: 1,
        },
        11,
        true,
    );
}

#[test]
fn conv2d_k5_odd_shape() {
    conv_case(
        conv::ConvShape {
            n: 1,
            cin: 6,
            cout: 7,
            h: 33,
            w: 20,
            k: 5,
        },
        12,
        true,
    );
}

#[test]
fn conv2d_k5_tiny_image() {
    conv_case(
        conv::ConvShape {
            n: 2,
            cin: 1,
            cout: 3,
            h: 2,
            w: 3,
            k: 5,
        },
        13,
        true,
    );
}

#[test]
fn conv2d_k5_256x256_forward() {
    conv_case(
        conv::ConvShape {
            n: 1,
            cin: 8,
            cout: 8,
            h: 256,
            w: 256,
            k: 5,
        },
        14,
        false,
    );
}

#[test]
fn conv2d_k5_256x256_backward() {
    conv_case(
        conv::ConvShape {
            n: 1,
            cin: 2,
            cout: 3,
            h: 256,
            w: 256,
            k: 5,
        },
        15,
        true,
    );
}

#[test]
fn conv2d_without_bias() {
    let c = gpu_or_skip!();
    let s = conv::ConvShape {
        n: 1,
        cin: 2,
        cout: 3,
        h: 5,
        w: 6,
        k: 3,
    };
    let mut r = Rng(16);
    let x = r.vec(s.x_len(), -1.0, 1.0);
    let w = r.vec(s.w_len(), -1.0, 1.0);
    let y = conv::conv2d(c, &s, &up(c, &x), &up(c, &w), None).unwrap();
    check(
        "conv2d no bias",
        &down(c, &y),
        &conv_ref(&s, &x, &w, &[0.0; 3]),
        DOT,
    );
}

// ------------------------------------------------------------------ elementwise

#[test]
#[allow(clippy::type_complexity)]
fn binary_ops_with_broadcasts() {
    let c = gpu_or_skip!();
    let mut r = Rng(20);
    let (n, ch, hw) = (3, 5, 37);
    let len = n * ch * hw;
    let a = r.vec(len, -2.0, 2.0);
    let cases: Vec<(&str, ew::Broadcast, Vec<f32>, Box<dyn Fn(usize) -> usize>)> = vec![
        (
            "same",
            ew::Broadcast::Same,
            r.vec(len, 0.5, 2.0),
            Box::new(|i| i),
        ),
        (
            "channel",
            ew::Broadcast::Channel { c: ch, hw },
            r.vec(ch, 0.5, 2.0),
            Box::new(move |i| (i / hw) % ch),
        ),
        (
            "scalar",
            ew::Broadcast::Scalar,
            r.vec(1, 0.5, 2.0),
            Box::new(|_| 0),
        ),
        (
            "trailing",
            ew::Broadcast::Trailing,
            r.vec(hw, 0.5, 2.0),
            Box::new(move |i| i % hw),
        ),
    ];
    let ga = up(c, &a);
    for (bname, bc, b, idx) in &cases {
        let gb = up(c, b);
        for (op, f) in [
            (BinOp::Add, (|x: f64, y: f64| x + y) as fn(f64, f64) -> f64),
            (BinOp::Sub, |x, y| x - y),
            (BinOp::Mul, |x, y| x * y),
            (BinOp::Div, |x, y| x / y),
        ] {
            let want: Vec<f64> = (0..len).map(|i| f(a[i] as f64, b[idx(i)] as f64)).collect();
            let got = down(c, &ew::binary(c, op, &ga, &gb, *bc).unwrap());
            check(&format!("{op:?} {bname}"), &got, &want, EXACTISH);
        }
        // y = a / b: db (full shape) = -gy a / b^2
        let gy = r.vec(len, -1.0, 1.0);
        let want: Vec<f64> = (0..len)
            .map(|i| -(gy[i] as f64) * a[i] as f64 / (b[idx(i)] as f64).powi(2))
            .collect();
        let got = down(
            c,
            &ew::div_backward_b(c, &up(c, &gy), &ga, &gb, *bc).unwrap(),
        );
        check(
            &format!("div_backward_b {bname}"),
            &got,
            &want,
            Tol {
                abs: 1e-6,
                rel: 4e-6,
            },
        );
    }
}

#[test]
fn unary_ops_and_vjps() {
    let c = gpu_or_skip!();
    let mut r = Rng(21);
    let n = 4099;
    let mut x = r.vec(n, -6.0, 6.0);
    x[0] = 0.0;
    x[1] = 1e-4;
    x[2] = -30.0;
    x[3] = 30.0;
    x[4] = 100.0;
    x[5] = -100.0;
    let xpos = r.vec(n, 0.01, 10.0);
    let gy = r.vec(n, -1.0, 1.0);
    let ggy = up(c, &gy);
    type F = fn(f64) -> f64;
    let sig: F = |v| 1.0 / (1.0 + (-v).exp());
    let cases: Vec<(UnaryOp, bool, F, F)> = vec![
        (UnaryOp::Exp, false, |v| v.exp(), |v| v.exp()),
        (UnaryOp::Log, true, |v| v.ln(), |v| 1.0 / v),
        (UnaryOp::Sqrt, true, |v| v.sqrt(), |v| 0.5 / v.sqrt()),
        (UnaryOp::Square, false, |v| v * v, |v| 2.0 * v),
        (
            UnaryOp::Tanh,
            false,
            |v| v.tanh(),
            |v| 1.0 - v.tanh().powi(2),
        ),
        (UnaryOp::Sigmoid, false, sig, |v| {
            let s = 1.0 / (1.0 + (-v).exp());
            s * (1.0 - s)
        }),
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
        check(
            &format!("{op:?} forward"),
            &down(c, &ew::unary(c, op, &gx).unwrap()),
            &want,
            TRANSCENDENTAL,
        );
        let want: Vec<f64> = xs
            .iter()
            .zip(&gy)
            .map(|(&v, &g)| g as f64 * df(v as f64))
            .collect();
        check(
            &format!("{op:?} backward"),
            &down(c, &ew::unary_backward(c, op, &gx, &ggy).unwrap()),
            &want,
            TRANSCENDENTAL,
        );
    }
    let slope = 0.2;
    let gx = up(c, &x);
    let want: Vec<f64> = x
        .iter()
        .map(|&v| if v > 0.0 { v as f64 } else { slope * v as f64 })
        .collect();
    let op = UnaryOp::LeakyRelu(slope as f32);
    check(
        "leaky_relu forward",
        &down(c, &ew::unary(c, op, &gx).unwrap()),
        &want,
        EXACTISH,
    );
    let want: Vec<f64> = x
        .iter()
        .zip(&gy)
        .map(|(&v, &g)| g as f64 * if v > 0.0 { 1.0 } else { slope })
        .collect();
    check(
        "leaky_relu backward",
        &down(c, &ew::unary_backward(c, op, &gx, &ggy).unwrap()),
        &want,
        EXACTISH,
    );
    let want: Vec<f64> = x.iter().map(|&v| 1.5 * v as f64 - 0.25).collect();
    check(
        "scale_shift",
        &down(c, &ew::scale_shift(c, &gx, 1.5, -0.25).unwrap()),
        &want,
        EXACTISH,
    );
}

#[test]
fn dispatch_folds_past_65535_workgroups() {
    let c = gpu_or_skip!();
    let n = 65_535 * 256 + 1_000; // needs a 2-D grid
    let x: Vec<f32> = (0..n).map(|i| (i % 1000) as f32).collect();
    let y = ew::scale_shift(c, &up(c, &x), 2.0, 1.0).unwrap();
    let got = down(c, &y);
    let want: Vec<f64> = x.iter().map(|&v| 2.0 * v as f64 + 1.0).collect();
    check("scale_shift 2-D grid", &got, &want, EXACTISH);
    let s = reduce::sum_all(c, &up(c, &x), 1.0).unwrap();
    let want: f64 = x.iter().map(|&v| v as f64).sum();
    check(
        "sum_all 16.8M",
        &down(c, &s),
        &[want],
        Tol {
            abs: 0.0,
            rel: 1e-6,
        },
    );
}

// ------------------------------------------------------------------ complex and pad

fn cx(v: &[f32], i: usize) -> (f64, f64) {
    (v[2 * i] as f64, v[2 * i + 1] as f64)
}

#[test]
fn complex_ops_and_vjps() {
    let c = gpu_or_skip!();
    let mut r = Rng(30);
    let (batch, m) = (3, 101);
    let n = batch * m;
    let a = r.vec(2 * n, -2.0, 2.0);
    let bfull = r.vec(2 * n, -2.0, 2.0);
    let bper = r.vec(2 * m, -2.0, 2.0);
    let (ga, gbf, gbp) = (up(c, &a), up(c, &bfull), up(c, &bper));
    let mul = |x: (f64, f64), y: (f64, f64)| [x.0 * y.0 - x.1 * y.1, x.0 * y.1 + x.1 * y.0];
    for (name, gb, b, period) in [("same", &gbf, &bfull, n), ("trailing", &gbp, &bper, m)] {
        let want: Vec<f64> = (0..n)
            .flat_map(|i| mul(cx(&a, i), cx(b, i % period)))
            .collect();
        check(
            &format!("cmul {name}"),
            &down(c, &complex::cmul(c, &ga, gb).unwrap()),
            &want,
            EXACTISH,
        );
        let want: Vec<f64> = (0..n)
            .flat_map(|i| {
                let w = cx(b, i % period);
                mul(cx(&a, i), (w.0, -w.1))
            })
            .collect();
        check(
            &format!("cmul_conj {name}"),
            &down(c, &complex::cmul_conj(c, &ga, gb).unwrap()),
            &want,
            EXACTISH,
        );
    }
    let want: Vec<f64> = (0..n)
        .flat_map(|i| [a[2 * i] as f64, -(a[2 * i + 1] as f64)])
        .collect();
    check(
        "conj",
        &down(c, &complex::conj(c, &ga).unwrap()),
        &want,
        EXACTISH,
    );
    let want: Vec<f64> = (0..n).map(|i| a[2 * i] as f64).collect();
    check(
        "re",
        &down(c, &complex::re(c, &ga).unwrap()),
        &want,
        EXACTISH,
    );
    let want: Vec<f64> = (0..n).map(|i| a[2 * i + 1] as f64).collect();
    check(
        "im",
        &down(c, &complex::im(c, &ga).unwrap()),
        &want,
        EXACTISH,
    );
    let re = r.vec(n, -1.0, 1.0);
    let im = r.vec(n, -1.0, 1.0);
    let want: Vec<f64> = (0..n).flat_map(|i| [re[i] as f64, im[i] as f64]).collect();
    check(
        "from_re_im",
        &down(
            c,
            &complex::from_re_im(c, &up(c, &re), &up(c, &im)).unwrap(),
        ),
        &want,
        EXACTISH,
    );
    let want: Vec<f64> = (0..n)
        .map(|i| cx(&a, i).0.powi(2) + cx(&a, i).1.powi(2))
        .collect();
    check(
        "abs2",
        &down(c, &complex::abs2(c, &ga).unwrap()),
        &want,
        EXACTISH,
    );
    let gy = r.vec(n, -1.0, 1.0);
    let want: Vec<f64> = (0..n)
        .flat_map(|i| {
            [
                2.0 * a[2 * i] as f64 * gy[i] as f64,
                2.0 * a[2 * i + 1] as f64 * gy[i] as f64,
            ]
        })
        .collect();
    check(
        "abs2_backward",
        &down(c, &complex::abs2_backward(c, &ga, &up(c, &gy)).unwrap()),
        &want,
        EXACTISH,
    );
    assert!(complex::cmul(c, &ga, &up(c, &[1.0; 8])).is_err());
}

#[test]
fn pad_and_crop_real_and_complex() {
    let c = gpu_or_skip!();
    let mut r = Rng(31);
    for complex in [false, true] {
        let s = pad::Planes {
            planes: 3,
            h: 5,
            w: 7,
            complex,
        };
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
        check(
            &format!("pad2d complex={complex}"),
            &down(c, &padded),
            &want,
            EXACTISH,
        );
        let ps = pad::Planes {
            planes: 3,
            h: oh,
            w: ow,
            complex,
        };
        let back = pad::crop2d(c, &padded, ps, t, 5, l, 7).unwrap();
        check(
            &format!("crop2d complex={complex}"),
            &down(c, &back),
            &f64s(&x),
            EXACTISH,
        );
        // An off-centre crop against direct indexing.
        let cropped = down(c, &pad::crop2d(c, &gx, s, 1, 3, 2, 4).unwrap());
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
        check(
            &format!("crop2d window complex={complex}"),
            &cropped,
            &want,
            EXACTISH,
        );
        assert!(pad::crop2d(c, &gx, s, 3, 3, 0, 1).is_err());
    }
}

// ------------------------------------------------------------------ reductions and AdamW

#[test]
fn reductions() {
    let c = gpu_or_skip!();
    let mut r = Rng(40);
    for n in [1usize, 255, 4096, 4097, 300_001] {
        let x = r.vec(n, -1.0, 1.0);
        let gx = up(c, &x);
        let want: f64 = x.iter().map(|&v| v as f64).sum();
        check(
            &format!("sum_all n={n}"),
            &down(c, &reduce::sum_all(c, &gx, 1.0).unwrap()),
            &[want],
            LONG_SUM,
        );
        let want_mean = want / n as f64;
        check(
            &format!("mean n={n}"),
            &down(c, &reduce::sum_all(c, &gx, 1.0 / n as f32).unwrap()),
            &[want_mean],
            EXACTISH,
        );
        let y = r.vec(n, -1.0, 1.0);
        let gy = up(c, &y);
        let mse: f64 = x
            .iter()
            .zip(&y)
            .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
            .sum::<f64>()
            / n as f64;
        let got = reduce::mse(c, &gx, &gy).unwrap();
        check(
            &format!("mse n={n}"),
            &down(c, &got),
            &[mse],
            Tol {
                abs: 1e-6,
                rel: 1e-5,
            },
        );
        let g = up(c, &[0.7]);
        let want: Vec<f64> = x
            .iter()
            .zip(&y)
            .map(|(&a, &b)| 2.0 * (a as f64 - b as f64) * 0.7 / n as f64)
            .collect();
        check(
            &format!("mse_backward n={n}"),
            &down(c, &reduce::mse_backward(c, &gx, &gy, &g).unwrap()),
            &want,
            EXACTISH,
        );
    }
    let (n, ch, hw) = (3, 4, 1000);
    let x = r.vec(n * ch * hw, -1.0, 1.0);
    let gx = up(c, &x);
    let want: Vec<f64> = (0..ch)
        .map(|cc| {
            (0..n)
                .map(|nn| {
                    (0..hw)
                        .map(|p| x[(nn * ch + cc) * hw + p] as f64)
                        .sum::<f64>()
                })
                .sum()
        })
        .collect();
    check(
        "channel_sums",
        &down(c, &reduce::channel_sums(c, &gx, n, ch, hw).unwrap()),
        &want,
        LONG_SUM,
    );
    let want: Vec<f64> = (0..n * ch)
        .map(|row| (0..hw).map(|p| x[row * hw + p] as f64).sum::<f64>() * 0.5)
        .collect();
    check(
        "sum_rows",
        &down(c, &reduce::sum_rows(c, &gx, hw, 0.5).unwrap()),
        &want,
        LONG_SUM,
    );
    // Deterministic: the same input gives bit-identical sums.
    let a = down(c, &reduce::sum_all(c, &gx, 1.0).unwrap());
    let b = down(c, &reduce::sum_all(c, &gx, 1.0).unwrap());
    assert_eq!(a[0].to_bits(), b[0].to_bits());
}

#[test]
fn adamw_matches_pytorch_formula() {
    let c = gpu_or_skip!();
    let mut r = Rng(50);
    let n = 1000;
    let mut p = r.vec(n, -1.0, 1.0);
    let mut m = vec![0.0f32; n];
    let mut v = vec![0.0f32; n];
    let (gp, gm, gv) = (up(c, &p), up(c, &m), up(c, &v));
    let (lr, b1, b2, eps, wd) = (1e-2f64, 0.9f64, 0.999f64, 1e-8f64, 0.01f64);
    for t in 1..=5u32 {
        let g = r.vec(n, -1.0, 1.0);
        let s = adamw::AdamWStep {
            lr,
            beta1: b1,
            beta2: b2,
            eps,
            weight_decay: wd,
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
    check("adamw p", &down(c, &gp), &f64s(&p), EXACTISH);
    check("adamw m", &down(c, &gm), &f64s(&m), EXACTISH);
    check("adamw v", &down(c, &gv), &f64s(&v), EXACTISH);
}

// ------------------------------------------------------------------ instance norm

/// f64 reference: (y, dx, dw, db) for weight w, bias b, upstream gy.
fn instance_norm_ref(
    s: &norm::NormShape,
    x: &[f64],
    w: &[f64],
    b: &[f64],
    gy: &[f64],
    eps: f64,
) -> [Vec<f64>; 4] {
    let (mut y, mut dx) = (vec![0.0; x.len()], vec![0.0; x.len()]);
    let (mut dw, mut db) = (vec![0.0; s.c], vec![0.0; s.c]);
    for q in 0..s.n * s.c {
        let c = q % s.c;
        let xs = &x[q * s.m..(q + 1) * s.m];
        let mean = xs.iter().sum::<f64>() / s.m as f64;
        let var = xs.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / s.m as f64;
        let rstd = 1.0 / (var + eps).sqrt();
        let xh: Vec<f64> = xs.iter().map(|v| (v - mean) * rstd).collect();
        let g = &gy[q * s.m..(q + 1) * s.m];
        let mgh = g.iter().map(|v| v * w[c]).sum::<f64>() / s.m as f64;
        let mghxh = g.iter().zip(&xh).map(|(v, h)| v * w[c] * h).sum::<f64>() / s.m as f64;
        for i in 0..s.m {
            y[q * s.m + i] = xh[i] * w[c] + b[c];
            dx[q * s.m + i] = rstd * (g[i] * w[c] - mgh - xh[i] * mghxh);
            dw[c] += g[i] * xh[i];
            db[c] += g[i];
        }
    }
    [y, dx, dw, db]
}

#[test]
#[allow(clippy::needless_range_loop)]
fn instance_norm_reference_vjp_matches_finite_differences() {
    // Checks the maths of the reference itself (f64 central differences of L = <gy, y>).
    let s = norm::NormShape { n: 2, c: 2, m: 7 };
    let mut r = Rng(60);
    let x = f64s(&r.vec(28, -1.0, 1.0));
    let w = f64s(&r.vec(2, 0.5, 1.5));
    let b = f64s(&r.vec(2, -0.5, 0.5));
    let gy = f64s(&r.vec(28, -1.0, 1.0));
    let loss = |x: &[f64], w: &[f64], b: &[f64]| -> f64 {
        let [y, ..] = instance_norm_ref(&s, x, w, b, &gy, 1e-5);
        y.iter().zip(&gy).map(|(a, g)| a * g).sum()
    };
    let [_, dx, dw, db] = instance_norm_ref(&s, &x, &w, &b, &gy, 1e-5);
    let h = 1e-6;
    let fd = |v: &[f64], i: usize, f: &dyn Fn(&[f64]) -> f64| {
        let (mut p, mut m) = (v.to_vec(), v.to_vec());
        p[i] += h;
        m[i] -= h;
        (f(&p) - f(&m)) / (2.0 * h)
    };
    for i in 0..x.len() {
        assert!(
            (fd(&x, i, &|v| loss(v, &w, &b)) - dx[i]).abs() < 1e-6,
            "dx[{i}]"
        );
    }
    for c in 0..2 {
        assert!(
            (fd(&w, c, &|v| loss(&x, v, &b)) - dw[c]).abs() < 1e-6,
            "dw[{c}]"
        );
        assert!(
            (fd(&b, c, &|v| loss(&x, &w, v)) - db[c]).abs() < 1e-6,
            "db[{c}]"
        );
    }
}

fn instance_norm_case(s: norm::NormShape, affine: bool, seed: u64) {
    let c = gpu_or_skip!();
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
    let (wo, bo) = if affine {
        (Some(&gw), Some(&gb))
    } else {
        (None, None)
    };
    let (y, stats) = norm::instance_norm(c, &s, &gx, wo, bo, eps).unwrap();
    let tag = format!("instance_norm {}x{}x{} affine={affine}", s.n, s.c, s.m);
    check(
        &format!("{tag} forward"),
        &down(c, &y),
        &y_ref,
        Tol {
            abs: 1e-5,
            rel: 1e-5,
        },
    );
    let (dx, dw, db) = norm::instance_norm_backward(c, &s, &gx, wo, &stats, &up(c, &gy)).unwrap();
    check(
        &format!("{tag} dx"),
        &down(c, &dx),
        &dx_ref,
        Tol {
            abs: 2e-5,
            rel: 1e-4,
        },
    );
    check(&format!("{tag} dw"), &down(c, &dw), &dw_ref, LONG_SUM);
    check(&format!("{tag} db"), &down(c, &db), &db_ref, LONG_SUM);
}

#[test]
fn instance_norm_affine_odd_shape() {
    instance_norm_case(
        norm::NormShape {
            n: 3,
            c: 5,
            m: 13 * 11,
        },
        true,
        61,
    );
}

#[test]
fn instance_norm_plain_large_plane() {
    instance_norm_case(
        norm::NormShape {
            n: 1,
            c: 3,
            m: 256 * 256,
        },
        false,
        62,
    );
}

#[test]
fn instance_norm_tiny_plane() {
    instance_norm_case(norm::NormShape { n: 2, c: 1, m: 3 }, true, 63);
}

// ------------------------------------------------------------------ max pool

fn max_pool_case(planes: usize, h: usize, w: usize, seed: u64, ties: bool) {
    let c = gpu_or_skip!();
    let mut r = Rng(seed);
    let mut x = r.vec(planes * h * w, -1.0, 1.0);
    if ties {
        x.iter_mut().for_each(|v| *v = (*v * 2.0).round());
    }
    let (oh, ow) = (h / 2, w / 2);
    let mut y_ref = vec![0.0f64; planes * oh * ow];
    let mut arg_ref = vec![0u32; planes * oh * ow];
    for q in 0..planes {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut best_at = 2 * oy * w + 2 * ox;
                for t in 1..4 {
                    let at = (2 * oy + t / 2) * w + 2 * ox + t % 2;
                    if x[q * h * w + at] > x[q * h * w + best_at] {
                        best_at = at;
                    }
                }
                y_ref[(q * oh + oy) * ow + ox] = x[q * h * w + best_at] as f64;
                arg_ref[(q * oh + oy) * ow + ox] = best_at as u32;
            }
        }
    }
    let xb = up(c, &x);
    let y = pool::max_pool2d(c, &xb, planes, h, w).unwrap();
    let tag = format!("max_pool2d {planes}x{h}x{w} ties={ties}");
    check(&format!("{tag} forward"), &down(c, &y), &y_ref, EXACTISH);
    let gy = r.vec(planes * oh * ow, -1.0, 1.0);
    let mut dx_ref = vec![0.0f64; planes * h * w];
    for q in 0..planes {
        for o in 0..oh * ow {
            dx_ref[q * h * w + arg_ref[q * oh * ow + o] as usize] += gy[q * oh * ow + o] as f64;
        }
    }
    let dx = pool::max_pool2d_backward(c, &xb, &up(c, &gy), planes, h, w).unwrap();
    check(&format!("{tag} backward"), &down(c, &dx), &dx_ref, EXACTISH);
}

#[test]
fn max_pool2d_even_and_odd_sides() {
    max_pool_case(6, 8, 10, 70, false);
    max_pool_case(3, 9, 7, 71, false);
    max_pool_case(2, 5, 6, 72, true);
    max_pool_case(1, 256, 256, 73, false);
}

// ------------------------------------------------------------------ bilinear upsampling

/// PyTorch's (index, weight) pairs of output o along an axis of n inputs (align_corners=false).
fn up_taps(o: usize, n: usize) -> [(usize, f64); 2] {
    let src = (((o as f32 + 0.5) * 0.5 - 0.5).max(0.0)) as f64;
    let i0 = src.floor() as usize;
    let i1 = (i0 + 1).min(n - 1);
    let l1 = src - i0 as f64;
    [(i0, 1.0 - l1), (i1, l1)]
}

fn upsample_case(planes: usize, h: usize, w: usize, seed: u64) {
    let c = gpu_or_skip!();
    let mut r = Rng(seed);
    let x = r.vec(planes * h * w, -1.0, 1.0);
    let gy = r.vec(planes * 4 * h * w, -1.0, 1.0);
    let (oh, ow) = (2 * h, 2 * w);
    let mut y_ref = vec![0.0f64; planes * oh * ow];
    let mut dx_ref = vec![0.0f64; planes * h * w];
    for q in 0..planes {
        for oy in 0..oh {
            for ox in 0..ow {
                let o = (q * oh + oy) * ow + ox;
                for (iy, wy) in up_taps(oy, h) {
                    for (ix, wx) in up_taps(ox, w) {
                        let i = (q * h + iy) * w + ix;
                        y_ref[o] += wy * wx * x[i] as f64;
                        dx_ref[i] += wy * wx * gy[o] as f64;
                    }
                }
            }
        }
    }
    let tag = format!("upsample_bilinear2d {planes}x{h}x{w}");
    let y = down(
        c,
        &upsample::upsample_bilinear2d(c, &up(c, &x), planes, h, w).unwrap(),
    );
    check(&format!("{tag} forward"), &y, &y_ref, EXACTISH);
    let dx = down(
        c,
        &upsample::upsample_bilinear2d_backward(c, &up(c, &gy), planes, h, w).unwrap(),
    );
    check(
        &format!("{tag} backward"),
        &dx,
        &dx_ref,
        Tol {
            abs: 2e-6,
            rel: 1e-6,
        },
    );
    // Adjoint identity on the device results: <U x, gy> == <x, U^T gy>.
    let lhs: f64 = y.iter().zip(&gy).map(|(a, b)| *a as f64 * *b as f64).sum();
    let rhs: f64 = x.iter().zip(&dx).map(|(a, b)| *a as f64 * *b as f64).sum();
    assert!(
        (lhs - rhs).abs() <= 1e-4 * (1.0 + lhs.abs()),
        "{tag} adjoint: {lhs} vs {rhs}"
    );
}

#[test]
fn upsample_bilinear2d_shapes() {
    upsample_case(4, 5, 7, 80);
    upsample_case(2, 1, 1, 81);
    upsample_case(3, 1, 6, 82);
    upsample_case(1, 128, 128, 83);
}

// ------------------------------------------------------------------ FFT

/// Naive f64 DFT of each row of `rows x n` complex values; `sign` -1 forward.
fn dft_rows(z: &[f64], rows: usize, n: usize, sign: f64) -> Vec<f64> {
    let tw: Vec<(f64, f64)> = (0..n)
        .map(|k| {
            let a = sign * 2.0 * std::f64::consts::PI * k as f64 / n as f64;
            (a.cos(), a.sin())
        })
        .collect();
    let mut out = vec![0.0; z.len()];
    for r in 0..rows {
        for k in 0..n {
            let (mut re, mut im) = (0.0, 0.0);
            for j in 0..n {
                let (c, s) = tw[(j * k) % n];
                let (a, b) = (z[2 * (r * n + j)], z[2 * (r * n + j) + 1]);
                re += a * c - b * s;
                im += a * s + b * c;
            }
            out[2 * (r * n + k)] = re;
            out[2 * (r * n + k) + 1] = im;
        }
    }
    out
}

fn transpose_ref(z: &[f64], batch: usize, r: usize, c: usize) -> Vec<f64> {
    let mut out = vec![0.0; z.len()];
    for b in 0..batch {
        for i in 0..r {
            for j in 0..c {
                for t in 0..2 {
                    out[2 * ((b * c + j) * r + i) + t] = z[2 * ((b * r + i) * c + j) + t];
                }
            }
        }
    }
    out
}

fn dft2_ref(z: &[f64], batch: usize, h: usize, w: usize, sign: f64, scale: f64) -> Vec<f64> {
    let a = dft_rows(z, batch * h, w, sign);
    let t = transpose_ref(&a, batch, h, w);
    let b = dft_rows(&t, batch * w, h, sign);
    transpose_ref(&b, batch, w, h)
        .into_iter()
        .map(|v| v * scale)
        .collect()
}

fn fft_case(batch: usize, h: usize, w: usize, seed: u64) {
    let c = gpu_or_skip!();
    let mut r = Rng(seed);
    let x = r.vec(2 * batch * h * w, -1.0, 1.0);
    let gx = up(c, &x);
    let tag = format!("fft2 {batch}x{h}x{w}");
    let want = dft2_ref(&f64s(&x), batch, h, w, -1.0, 1.0);
    let peak = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let y = fft::fft2(c, &gx, batch, h, w).unwrap();
    let err = check(
        &format!("{tag} forward"),
        &down(c, &y),
        &want,
        Tol {
            abs: FFT_REL_TO_MAX * peak,
            rel: 0.0,
        },
    );
    println!("{tag} forward: max error / peak = {:.2e}", err / peak);
    let want = dft2_ref(&f64s(&x), batch, h, w, 1.0, 1.0 / (h * w) as f64);
    let peak = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let yi = fft::ifft2(c, &gx, batch, h, w).unwrap();
    let err = check(
        &format!("{tag} inverse"),
        &down(c, &yi),
        &want,
        Tol {
            abs: FFT_REL_TO_MAX * peak,
            rel: 0.0,
        },
    );
    println!("{tag} inverse: max error / peak = {:.2e}", err / peak);
    // Round trip.
    let back = fft::ifft2(c, &y, batch, h, w).unwrap();
    check(
        &format!("{tag} roundtrip"),
        &down(c, &back),
        &f64s(&x),
        Tol {
            abs: 1e-5,
            rel: 0.0,
        },
    );
}

#[test]
fn fft2_power_of_two_shared() {
    fft_case(2, 8, 16, 90);
    fft_case(1, 1, 1, 91);
    fft_case(3, 2, 1, 92);
    fft_case(1, 256, 256, 93);
}

#[test]
fn fft2_power_of_two_stockham_rows_and_columns() {
    fft_case(1, 2, 4096, 94);
    fft_case(1, 4096, 2, 95);
}

#[test]
fn fft2_bluestein() {
    fft_case(2, 12, 10, 96);
    fft_case(1, 1, 7, 97);
    fft_case(1, 3, 1, 98);
    fft_case(1, 100, 100, 99);
    fft_case(1, 2, 1500, 100); // padded length 4096: Stockham inside Bluestein
    fft_case(2, 16, 6, 101); // mixed: power-of-two columns, Bluestein rows
}

#[test]
fn fft2_adjoint_identity() {
    // <F x, y> == <x, F^H y> with F^H = unnormalised inverse (complex inner product).
    let c = gpu_or_skip!();
    let mut r = Rng(102);
    for (b, h, w) in [(2, 8, 8), (1, 6, 10)] {
        let x = r.vec(2 * b * h * w, -1.0, 1.0);
        let y = r.vec(2 * b * h * w, -1.0, 1.0);
        let fx = down(c, &fft::fft2(c, &up(c, &x), b, h, w).unwrap());
        let fhy = down(
            c,
            &fft::fft2_scaled(c, &up(c, &y), b, h, w, fft::Direction::Inverse, 1.0).unwrap(),
        );
        let dot = |u: &[f32], v: &[f32]| {
            // sum conj(u) v
            let (mut re, mut im) = (0.0f64, 0.0f64);
            for k in 0..u.len() / 2 {
                let (a, bb, cc, d) = (
                    u[2 * k] as f64,
                    u[2 * k + 1] as f64,
                    v[2 * k] as f64,
                    v[2 * k + 1] as f64,
                );
                re += a * cc + bb * d;
                im += a * d - bb * cc;
            }
            (re, im)
        };
        let (l, rr) = (dot(&fx, &y), dot(&x, &fhy));
        println!("fft2 adjoint {b}x{h}x{w}: {l:?} vs {rr:?}");
        assert!(
            (l.0 - rr.0).abs() < 1e-3 && (l.1 - rr.1).abs() < 1e-3,
            "adjoint {l:?} vs {rr:?}"
        );
    }
}
