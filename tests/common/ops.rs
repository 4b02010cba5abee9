//! The random-input op cases, one table for both kinds of check: `gradcheck.rs` checks each
//! case's VJP by central finite differences on the CPU, `gpu_ops.rs` runs it on the GPU and
//! compares forward and VJP with the CPU. Each case: its family, a name (which seeds its
//! inputs), how to make the inputs, the op, the finite-difference step and the GPU-vs-CPU
//! tolerance. Beside the table: the checks of the newer ops that need more than a table row
//! (ties of `max_all`, `randn_keyed`'s streams, `spectral_conv` against the composed operator,
//! the fused `conv2d_leaky`, `affine_sample`'s exact answers, adjoint and f64 derivatives), each
//! taking the device.

use super::*;
use magprior::Device;

type Inputs = Box<dyn Fn(&mut Rng) -> Vec<Tensor>>;
type OpFn = Box<dyn Fn(&[Tensor]) -> Tensor>;

/// One op case.
pub struct OpCase {
    pub family: &'static str,
    pub name: String,
    pub inputs: Inputs,
    pub op: OpFn,
    /// The central-difference step; `None` where finite differences cannot check the VJP at
    /// random points (a kink inside the step: the fused leaky ReLU, the ties of a maximum),
    /// which is then checked another way (named in the table).
    pub fd: Option<f32>,
    /// GPU against CPU, forward and VJP.
    pub gpu: Tol,
}

impl OpCase {
    /// The case's inputs, from a generator seeded by its name.
    pub fn make_inputs(&self) -> Vec<Tensor> {
        let seed = self.name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
        });
        (self.inputs)(&mut Rng::new(seed))
    }
}

/// Every family of the table, in table order.
pub const FAMILIES: [&str; 13] = [
    "unary",
    "binary",
    "reduce",
    "conv",
    "norm_pool_upsample",
    "complex",
    "fft",
    "shape",
    "loss",
    "spectral",
    "max_all",
    "expi",
    "sample",
];

/// Probes per input for the finite differences.
pub const PROBES: usize = 40;

struct Table(Vec<OpCase>);

impl Table {
    fn add(
        &mut self,
        family: &'static str,
        name: impl Into<String>,
        inputs: impl Fn(&mut Rng) -> Vec<Tensor> + 'static,
        op: impl Fn(&[Tensor]) -> Tensor + 'static,
        fd: Option<f32>,
        gpu: Tol,
    ) {
        self.0.push(OpCase {
            family,
            name: name.into(),
            inputs: Box::new(inputs),
            op: Box::new(op),
            fd,
            gpu,
        });
    }
}

/// Uniform real samples in `[lo, hi)`.
fn real(shape: &[usize], lo: f32, hi: f32) -> impl Fn(&mut Rng) -> Tensor {
    let shape = shape.to_vec();
    move |r| Tensor::rand(&shape, lo, hi, r)
}

/// Complex samples, both parts uniform in `[-1, 1)`, plus `shift` on the real part.
fn cplx(shape: &[usize], shift: f32) -> impl Fn(&mut Rng) -> Tensor {
    let shape = shape.to_vec();
    move |r| rand_c(&shape, r).add_scalar(shift).unwrap()
}

/// `|x|` uniform in `[0.05, 2.05)` with a random sign: two finite-difference steps away from
/// the kink of `abs` and `leaky_relu` at 0.
fn away_from_zero(shape: &[usize]) -> impl Fn(&mut Rng) -> Tensor {
    let shape = shape.to_vec();
    move |r| {
        let n: usize = shape.iter().product();
        let v = (0..n)
            .map(|_| {
                let m = r.uniform_range(0.05, 2.05) as f32;
                if r.uniform() < 0.5 {
                    -m
                } else {
                    m
                }
            })
            .collect();
        Tensor::from_shape_vec(&shape, v).unwrap()
    }
}

/// Distinct values 0.05 apart in random order: a maximum stays where it is under a
/// finite-difference step of 1e-2.
fn spaced(shape: &[usize]) -> impl Fn(&mut Rng) -> Tensor {
    let shape = shape.to_vec();
    move |r| {
        let n: usize = shape.iter().product();
        let mut v: Vec<f32> = (0..n).map(|i| i as f32 * 0.05 - 1.0).collect();
        for i in (1..n).rev() {
            v.swap(i, (r.next_u64() % (i as u64 + 1)) as usize);
        }
        Tensor::from_shape_vec(&shape, v).unwrap()
    }
}

fn one(f: impl Fn(&mut Rng) -> Tensor) -> impl Fn(&mut Rng) -> Vec<Tensor> {
    move |r| vec![f(r)]
}

fn two(
    f: impl Fn(&mut Rng) -> Tensor,
    g: impl Fn(&mut Rng) -> Tensor,
) -> impl Fn(&mut Rng) -> Vec<Tensor> {
    move |r| vec![f(r), g(r)]
}

/// Every op case.
pub fn cases() -> Vec<OpCase> {
    let mut t = Table(Vec::new());
    let (e, gt, so) = (ELEMENTWISE, GPU_TRANSCENDENTAL, SUM_ORDER);

    // ---------------------------------------------------------------- unary
    type U = fn(&Tensor) -> magprior::Result<Tensor>;
    let x4 = [2, 3, 7, 5];
    let unary: [(&str, U, f32, f32, f32, Tol); 9] = [
        ("exp", Tensor::exp, -3.0, 3.0, 1e-2, gt),
        ("log", Tensor::log, 0.1, 4.0, 1e-3, gt),
        ("sqrt", Tensor::sqrt, 0.1, 4.0, 1e-3, gt),
        ("square", Tensor::square, -2.0, 2.0, 1e-2, e),
        ("tanh", Tensor::tanh, -4.0, 4.0, 1e-2, gt),
        ("sigmoid", Tensor::sigmoid, -6.0, 6.0, 1e-2, gt),
        ("neg", Tensor::neg, -2.0, 2.0, 1e-2, e),
        ("scale", |x| x.scale(-0.7), -2.0, 2.0, 1e-2, e),
        ("add_scalar", |x| x.add_scalar(1.5), -2.0, 2.0, 1e-2, e),
    ];
    for (name, f, lo, hi, step, tol) in unary {
        let op = move |v: &[Tensor]| f(&v[0]).unwrap();
        t.add("unary", name, one(real(&x4, lo, hi)), op, Some(step), tol);
    }
    let kinked: [(&str, U); 2] = [("leaky_relu", |x| x.leaky_relu(0.2)), ("abs", Tensor::abs)];
    for (name, f) in kinked {
        let op = move |v: &[Tensor]| f(&v[0]).unwrap();
        t.add("unary", name, one(away_from_zero(&x4)), op, Some(1e-2), e);
    }
    // complex affine maps: add_scalar adds to the real part only
    let complex_affine: [(&str, U); 3] = [
        ("complex add_scalar", |z| z.add_scalar(2.0)),
        ("complex scale", |z| z.scale(-3.0)),
        ("complex neg", Tensor::neg),
    ];
    for (name, f) in complex_affine {
        let op = move |v: &[Tensor]| f(&v[0]).unwrap();
        t.add("unary", name, one(cplx(&[3, 4], 0.0)), op, Some(1e-2), e);
    }

    // ---------------------------------------------------------------- binary
    type B = fn(&Tensor, &Tensor) -> magprior::Result<Tensor>;
    let binary: [(&str, B); 4] = [
        ("add", Tensor::add),
        ("sub", Tensor::sub),
        ("mul", Tensor::mul),
        ("div", Tensor::div),
    ];
    let broadcasts: [(&str, &[usize], &[usize]); 9] = [
        ("same", &[2, 3, 4, 5], &[2, 3, 4, 5]),
        ("channel", &[2, 3, 4, 5], &[1, 3, 1, 1]),
        ("rank-3 channel", &[2, 3, 4, 5], &[3, 1, 1]),
        ("mask", &[2, 3, 4, 5], &[4, 5]),
        ("scalar", &[2, 3, 4, 5], &[]),
        ("lhs broadcast", &[1, 3, 1, 5], &[2, 3, 4, 5]),
        ("both", &[2, 1, 5], &[3, 1]),
        ("middle", &[2, 3, 4, 5], &[2, 1, 4, 1]),
        ("trailing", &[2, 3, 4], &[3, 4]),
    ];
    for (op_name, f) in binary {
        for (case, sa, sb) in broadcasts {
            let op = move |v: &[Tensor]| f(&v[0], &v[1]).unwrap();
            let name = format!("{op_name} {case}");
            t.add(
                "binary",
                name,
                two(real(sa, 0.5, 2.0), real(sb, 0.5, 2.0)),
                op,
                Some(1e-3),
                so,
            );
            // the divisor's real part is shifted away from 0
            let inputs = two(cplx(sa, 0.0), cplx(sb, 2.0));
            t.add(
                "binary",
                format!("complex {op_name} {case}"),
                inputs,
                op,
                Some(1e-3),
                so,
            );
        }
    }
    let a = real(&[2, 3, 4, 5], -1.0, 1.0);
    let op = |v: &[Tensor]| v[0].div(&v[1]).unwrap();
    t.add(
        "binary",
        "div signed",
        two(a, real(&[3, 1, 1], 0.5, 1.5)),
        op,
        Some(1e-3),
        so,
    );

    // ---------------------------------------------------------------- reductions, broadcasts
    type R = fn(&Tensor) -> magprior::Result<Tensor>;
    let reductions: [(&str, R); 6] = [
        ("sum_all", Tensor::sum_all),
        ("mean_all", Tensor::mean_all),
        ("sum_axes 2,3", |x| x.sum_axes(&[2, 3], false)),
        ("mean_axes 1 keepdim", |x| x.mean_axes(&[1], true)),
        ("sum_axes 0,2", |x| x.sum_axes(&[0, 2], false)),
        ("sum_to leading", |x| x.sum_to(&x.shape()[1..])),
    ];
    for (name, f) in reductions {
        let op = move |v: &[Tensor]| f(&v[0]).unwrap();
        t.add(
            "reduce",
            name,
            one(real(&[2, 3, 17, 9], -1.0, 1.0)),
            op,
            Some(1e-2),
            so,
        );
        let z = one(cplx(&[2, 3, 5, 4], 0.0));
        t.add("reduce", format!("complex {name}"), z, op, Some(1e-2), so);
    }
    let more: [(&str, &[usize], R); 7] = [
        ("sum_axes 0,-1 keepdim", &[2, 3, 4, 5], |x| {
            x.sum_axes(&[0, -1], true)
        }),
        ("mean_axes 1,2", &[2, 3, 4, 5], |x| {
            x.mean_axes(&[1, 2], false)
        }),
        ("sum_to middle", &[2, 3, 4, 5], |x| x.sum_to(&[3, 1, 5])),
        ("sum_to alternate", &[2, 3, 4, 5], |x| {
            x.sum_to(&[2, 1, 4, 1])
        }),
        ("sum_to trailing", &[2, 3, 4, 5], |x| x.sum_to(&[5])),
        ("broadcast_to", &[3, 1, 5], |x| {
            x.broadcast_to(&[2, 3, 4, 5])
        }),
        ("broadcast_to new axes", &[5], |x| {
            x.broadcast_to(&[2, 3, 4, 5])
        }),
    ];
    for (name, shape, f) in more {
        let op = move |v: &[Tensor]| f(&v[0]).unwrap();
        t.add(
            "reduce",
            name,
            one(real(shape, -1.0, 1.0)),
            op,
            Some(1e-2),
            so,
        );
    }
    let op = |v: &[Tensor]| v[0].sum_to(&[3, 1]).unwrap();
    t.add(
        "reduce",
        "complex sum_to",
        one(cplx(&[2, 3, 4], 0.0)),
        op,
        Some(1e-2),
        so,
    );
    let op = |v: &[Tensor]| v[0].broadcast_to(&[3, 2, 4]).unwrap();
    t.add(
        "reduce",
        "complex broadcast_to",
        one(cplx(&[1, 4], 0.0)),
        op,
        Some(1e-2),
        so,
    );
    // a long reduction through the GPU's tree kernel
    let op = |v: &[Tensor]| v[0].sum_all().unwrap();
    t.add(
        "reduce",
        "sum_all 2^18",
        one(real(&[1 << 18], -1.0, 1.0)),
        op,
        Some(1e-2),
        LONG_SUM,
    );

    // ---------------------------------------------------------------- conv (k 1, 3, 5)
    let convs = [
        (1, 1, 4, 9, 7, 1),
        (2, 3, 5, 11, 13, 3),
        (1, 4, 6, 16, 16, 5),
        (1, 2, 3, 3, 2, 5),
        (2, 3, 4, 6, 7, 1),
        (2, 3, 4, 6, 7, 3),
        (2, 3, 4, 6, 7, 5),
    ];
    for (n, cin, cout, h, w, k) in convs {
        let xwb = move |r: &mut Rng| {
            vec![
                Tensor::rand(&[n, cin, h, w], -1.0, 1.0, r),
                Tensor::rand(&[cout, cin, k, k], -0.5, 0.5, r),
                Tensor::rand(&[cout], -0.5, 0.5, r),
            ]
        };
        let tag = format!("k{k} {n}x{cin}x{h}x{w}->{cout}");
        let op = |v: &[Tensor]| v[0].conv2d(&v[1], Some(&v[2])).unwrap();
        t.add("conv", format!("conv2d {tag}"), xwb, op, Some(1e-2), so);
        let op = |v: &[Tensor]| v[0].conv2d(&v[1], None).unwrap();
        let xw = move |r: &mut Rng| xwb(r)[..2].to_vec();
        t.add(
            "conv",
            format!("conv2d {tag} no bias"),
            xw,
            op,
            Some(1e-2),
            so,
        );
        // the fused op's VJP: against conv2d + leaky_relu (check_fused_conv_leaky)
        let op = |v: &[Tensor]| v[0].conv2d_leaky(&v[1], Some(&v[2]), 0.2).unwrap();
        t.add("conv", format!("conv2d_leaky {tag}"), xwb, op, None, so);
    }

    // ---------------------------------------------------------------- norm, pool, upsample
    for (h, w) in [(9, 7), (5, 6)] {
        let xwb = move |r: &mut Rng| {
            vec![
                Tensor::rand(&[2, 3, h, w], -2.0, 2.0, r),
                Tensor::rand(&[3], 0.5, 1.5, r),
                Tensor::rand(&[3], -0.5, 0.5, r),
            ]
        };
        let f = "norm_pool_upsample";
        let op = |v: &[Tensor]| v[0].instance_norm(Some(&v[1]), Some(&v[2]), 1e-5).unwrap();
        t.add(
            f,
            format!("instance_norm affine {h}x{w}"),
            xwb,
            op,
            Some(1e-2),
            so,
        );
        let op = |v: &[Tensor]| v[0].instance_norm(None, None, 1e-5).unwrap();
        let x = one(real(&[2, 3, h, w], -2.0, 2.0));
        t.add(
            f,
            format!("instance_norm plain {h}x{w}"),
            x,
            op,
            Some(1e-2),
            so,
        );
        let op = |v: &[Tensor]| v[0].upsample_bilinear2d().unwrap();
        let x = one(real(&[2, 3, h, w], -2.0, 2.0));
        t.add(
            f,
            format!("upsample_bilinear2d {h}x{w}"),
            x,
            op,
            Some(1e-2),
            so,
        );
    }
    let pools: [(&str, &[usize]); 3] = [
        ("odd", &[2, 3, 9, 7]),
        ("even", &[1, 2, 8, 6]),
        ("even wide", &[2, 3, 6, 8]),
    ];
    for (name, shape) in pools {
        let op = |v: &[Tensor]| v[0].max_pool2d().unwrap();
        let x = one(spaced(shape));
        t.add(
            "norm_pool_upsample",
            format!("max_pool2d {name}"),
            x,
            op,
            Some(1e-2),
            e,
        );
    }

    // ---------------------------------------------------------------- complex
    let op = |v: &[Tensor]| Tensor::complex(&v[0], &v[1]).unwrap();
    let re_im = two(real(&[6, 10], -1.0, 1.0), real(&[6, 10], -1.0, 1.0));
    t.add("complex", "complex", re_im, op, Some(1e-2), e);
    let parts: [(&str, U, f32); 4] = [
        ("re", Tensor::re, 1e-2),
        ("im", Tensor::im, 1e-2),
        ("conj", Tensor::conj, 1e-2),
        ("abs2", Tensor::abs2, 1e-3),
    ];
    for (name, f, step) in parts {
        let op = move |v: &[Tensor]| f(&v[0]).unwrap();
        t.add(
            "complex",
            name,
            one(cplx(&[2, 6, 10], 0.0)),
            op,
            Some(step),
            e,
        );
    }

    // ---------------------------------------------------------------- FFT
    for shape in [[2, 8, 16], [1, 12, 10], [3, 7, 5], [1, 64, 64], [2, 6, 10]] {
        // linear, so the step only trades the outputs' f32 rounding: 4096-point transforms
        // (outputs ~64) need a longer one
        let step = if shape[1] * shape[2] > 1000 {
            0.25
        } else {
            1e-2
        };
        let op = |v: &[Tensor]| v[0].fft2().unwrap();
        let z = one(cplx(&shape, 0.0));
        t.add("fft", format!("fft2 {shape:?}"), z, op, Some(step), GPU_FFT);
        let op = |v: &[Tensor]| v[0].ifft2().unwrap();
        let z = one(cplx(&shape, 0.0));
        t.add(
            "fft",
            format!("ifft2 {shape:?}"),
            z,
            op,
            Some(step),
            GPU_FFT,
        );
    }
    // a non-linear chain through the FFT
    let op = |v: &[Tensor]| {
        let y = v[0].fft2().unwrap().mul(&v[1]).unwrap();
        y.ifft2().unwrap().abs2().unwrap()
    };
    let zw = two(cplx(&[2, 6, 10], 0.0), cplx(&[6, 10], 0.0));
    t.add("fft", "|ifft2(fft2(z) w)|^2", zw, op, Some(1e-3), GPU_FFT);

    // ---------------------------------------------------------------- shape
    let windows: [(&str, R); 6] = [
        ("pad2d", |x| x.pad2d(1, 2, 3, 0)),
        ("pad2d bottom-right", |x| x.pad2d(0, 5, 0, 6)),
        ("crop2d", |x| x.crop2d(1, 3, 2, 4)),
        ("narrow", |x| x.narrow(1, 1, 2)),
        ("narrow last", |x| x.narrow(x.rank() - 1, 2, 3)),
        ("reshape", |x| x.reshape(&[x.numel()])?.scale(2.0)),
    ];
    for (name, f) in windows {
        let op = move |v: &[Tensor]| f(&v[0]).unwrap();
        t.add(
            "shape",
            name,
            one(real(&[2, 3, 5, 6], -1.0, 1.0)),
            op,
            Some(1e-2),
            e,
        );
        let z = one(cplx(&[3, 5, 6], 0.0));
        t.add("shape", format!("complex {name}"), z, op, Some(1e-2), e);
    }
    let more: [(&str, R); 2] = [
        ("complex pad2d top-right", |x| x.pad2d(2, 1, 0, 3)),
        ("complex crop2d wide", |x| x.crop2d(1, 3, 2, 5)),
    ];
    for (name, f) in more {
        let op = move |v: &[Tensor]| f(&v[0]).unwrap();
        t.add(
            "shape",
            name,
            one(cplx(&[2, 6, 10], 0.0)),
            op,
            Some(1e-2),
            e,
        );
    }
    let op = |v: &[Tensor]| v[0].reshape(&[6, 20]).unwrap().square().unwrap();
    t.add(
        "shape",
        "reshape square",
        one(real(&[2, 3, 4, 5], -1.0, 1.0)),
        op,
        Some(1e-2),
        e,
    );
    let cat1 = |r: &mut Rng| {
        [[2, 1, 4], [2, 3, 4], [2, 2, 4]]
            .iter()
            .map(|s| Tensor::rand(s, -1.0, 1.0, r))
            .collect()
    };
    t.add(
        "shape",
        "cat axis 1",
        cat1,
        |v| Tensor::cat(v, 1).unwrap(),
        Some(1e-2),
        e,
    );
    let cat2 = two(real(&[2, 3, 1], -1.0, 1.0), real(&[2, 3, 4], -1.0, 1.0));
    t.add(
        "shape",
        "cat last axis",
        cat2,
        |v| Tensor::cat(v, 2).unwrap(),
        Some(1e-2),
        e,
    );
    let zcat = two(cplx(&[2, 3], 0.0), cplx(&[1, 3], 0.0));
    t.add(
        "shape",
        "complex cat axis 0",
        zcat,
        |v| Tensor::cat(v, 0).unwrap(),
        Some(1e-2),
        e,
    );
    // to_device is differentiable: on the GPU the gradient comes back from the CPU
    let op = |v: &[Tensor]| {
        let back = v[0].to_device(Device::Cpu).unwrap().square().unwrap();
        back.to_device(v[0].device()).unwrap()
    };
    t.add(
        "shape",
        "to_device",
        one(real(&[2, 3], -1.0, 1.0)),
        op,
        Some(1e-2),
        e,
    );

    // ---------------------------------------------------------------- loss
    let op = |v: &[Tensor]| v[0].mse_loss(&v[1]).unwrap();
    for shape in [&[1, 2, 33, 31][..], &[3, 4]] {
        let ab = two(real(shape, -1.0, 1.0), real(shape, -1.0, 1.0));
        t.add(
            "loss",
            format!("mse_loss {shape:?}"),
            ab,
            op,
            Some(1e-2),
            so,
        );
    }

    // ---------------------------------------------------------------- spectral_conv
    let spectral: [(&str, [usize; 4], [usize; 4]); 3] = [
        ("2x padded", [2, 3, 5, 6], [4, 3, 10, 12]),
        ("odd padding", [1, 2, 7, 5], [3, 2, 9, 8]),
        ("no padding", [1, 1, 4, 4], [2, 1, 4, 4]),
    ];
    for (name, xs, ks) in spectral {
        let op = |v: &[Tensor]| v[0].spectral_conv(&v[1]).unwrap();
        let xk = two(real(&xs, -1.0, 1.0), cplx(&ks, 0.0));
        t.add(
            "spectral",
            format!("spectral_conv {name}"),
            xk,
            op,
            Some(1e-2),
            GPU_FFT,
        );
    }

    // ---------------------------------------------------------------- max_all
    let op = |v: &[Tensor]| v[0].max_all().unwrap();
    t.add(
        "max_all",
        "max_all distinct",
        one(spaced(&[2, 3, 4, 5])),
        op,
        Some(1e-2),
        e,
    );
    // many elements equal to the maximum (rounded values): the even split on both devices,
    // its exact values in check_max_all_ties
    let ties = |r: &mut Rng| {
        let v = Tensor::rand(&[3, 50], -2.0, 2.0, r).to_vec().unwrap();
        let v = v.iter().map(|x| x.round()).collect();
        vec![Tensor::from_shape_vec(&[3, 50], v).unwrap()]
    };
    t.add("max_all", "max_all ties", ties, op, None, e);

    // ---------------------------------------------------------------- expi
    let op = |v: &[Tensor]| v[0].expi().unwrap();
    t.add(
        "expi",
        "expi",
        one(real(&[2, 3, 17], -6.0, 6.0)),
        op,
        Some(1e-2),
        gt,
    );
    let op = |v: &[Tensor]| v[0].expi().unwrap().abs2().unwrap();
    t.add(
        "expi",
        "|expi|^2",
        one(real(&[3, 17], -4.0, 4.0)),
        op,
        Some(1e-2),
        gt,
    );
    let op = |v: &[Tensor]| v[0].expi().unwrap().mul(&v[1]).unwrap().re().unwrap();
    let pz = two(real(&[4, 9], -4.0, 4.0), cplx(&[4, 9], 0.0));
    t.add("expi", "Re(expi(phi) z)", pz, op, Some(1e-2), gt);

    // ---------------------------------------------------------------- affine_sample
    // Both x and the affine map as inputs: the GPU-vs-CPU check covers both VJPs. Finite
    // differences in f32 at a fixed step cannot check the affine map's gradient: the sampled
    // image is only piecewise smooth, and with ~100-500 samples some sample crosses a pixel
    // line within any step large enough for f32 (a kink: an O(1) error in one term). So these
    // cases have no step; `check_affine_sample_f64` checks both gradients against f64 central
    // differences of an f64 reference with a step, per parameter, that no sample's cell
    // changes within (exact there: y is linear in each parameter inside a cell). The "in x"
    // cases (the map a constant) are finite-differenced here (linear in x).
    for g in SAMPLE_GEOMETRIES {
        let (oh, ow) = g.out;
        let a = g.affine();
        let inputs = move |r: &mut Rng| {
            vec![
                Tensor::rand(&SAMPLE_X, -1.0, 1.0, r),
                Tensor::from_shape_vec(&[6], a.to_vec()).unwrap(),
            ]
        };
        let op = move |v: &[Tensor]| v[0].affine_sample(&v[1], oh, ow).unwrap();
        let name = format!("affine_sample {}", g.name);
        t.add("sample", name, inputs, op, None, so);
        let op = move |v: &[Tensor]| {
            let a = Tensor::from_shape_vec(&[6], a.to_vec()).unwrap();
            v[0].affine_sample(&a.to_device(v[0].device()).unwrap(), oh, ow)
                .unwrap()
        };
        let x = one(real(&SAMPLE_X, -1.0, 1.0));
        let name = format!("affine_sample {} in x", g.name);
        t.add("sample", name, x, op, Some(1e-2), so);
    }
    t.0
}

/// The cases of `family`.
pub fn family(family: &str) -> Vec<OpCase> {
    assert!(FAMILIES.contains(&family), "unknown op family {family}");
    let v: Vec<OpCase> = cases().into_iter().filter(|c| c.family == family).collect();
    assert!(!v.is_empty(), "op family {family} has no cases");
    v
}

/// The table's families are exactly [`FAMILIES`], every name is unique, and `tested` (the
/// families a test file runs) are all of them.
pub fn assert_all_families_tested(tested: &[&str]) {
    let all = cases();
    let mut in_table: Vec<&str> = all.iter().map(|c| c.family).collect();
    in_table.dedup();
    assert_eq!(in_table, FAMILIES, "the table's families");
    let mut names: Vec<&str> = all.iter().map(|c| c.name.as_str()).collect();
    names.sort();
    let n = names.len();
    names.dedup();
    assert_eq!(
        names.len(),
        n,
        "case names (they seed the inputs) must be unique"
    );
    assert_eq!(tested, FAMILIES, "families run by this test file");
}

/// Finite differences of every case of `family` that has a step; returns how many.
pub fn check_family_fd(family_name: &str) -> usize {
    let mut n = 0;
    for c in family(family_name) {
        if let Some(step) = c.fd {
            check_grad(&c.name, &c.make_inputs(), |v| (c.op)(v), step, PROBES);
            n += 1;
        }
    }
    n
}

/// A random upstream gradient shaped like `t`.
fn upstream(t: &Tensor, seed: u64) -> Tensor {
    let mut r = Rng::new(seed);
    match t.dtype() {
        magprior::DType::F32 => Tensor::rand(t.shape(), -1.0, 1.0, &mut r),
        magprior::DType::C32 => rand_c(t.shape(), &mut r),
    }
}

/// Runs `f` on tracked copies of `inputs` on the CPU and on the GPU; compares the outputs and
/// the gradients of every input for one random upstream gradient, to `tol`.
pub fn gpu_vs_cpu(name: &str, inputs: &[Tensor], f: impl Fn(&[Tensor]) -> Tensor, tol: Tol) {
    let g = Device::Gpu;
    let cpu: Vec<Tensor> = inputs.iter().map(|t| t.clone().requires_grad()).collect();
    let gpu: Vec<Tensor> = inputs
        .iter()
        .map(|t| t.to_device(g).unwrap().requires_grad())
        .collect();
    let (yc, yg) = (f(&cpu), f(&gpu));
    assert_eq!(yg.device(), g, "{name}: output left the GPU");
    assert_close(&format!("{name} forward"), &yg, &yc, tol);
    let gy = upstream(&yc, 99);
    let gc = yc.backward_with(&gy).unwrap();
    let gg = yg.backward_with(&gy.to_device(g).unwrap()).unwrap();
    for (k, (xc, xg)) in cpu.iter().zip(&gpu).enumerate() {
        match (gc.get(xc), gg.get(xg)) {
            (Some(a), Some(b)) => {
                assert_eq!(b.device(), g, "{name}: gradient {k} left the GPU");
                assert_close(&format!("{name} grad {k}"), b, a, tol);
            }
            (None, None) => {}
            _ => panic!("{name}: gradient {k} present on one device only"),
        }
    }
}

/// Every case of `family` on the GPU against the CPU; returns how many.
pub fn check_family_gpu(family_name: &str) -> usize {
    let cases = family(family_name);
    for c in &cases {
        gpu_vs_cpu(&c.name, &c.make_inputs(), |v| (c.op)(v), c.gpu);
    }
    cases.len()
}

// ------------------------------------------------------------------ checks beyond the table

/// `max_all` with ties: `dy` split evenly over the maxima (PyTorch's rule), NaN propagating,
/// a one-element input, and an empty input refused.
pub fn check_max_all_ties(device: Device) {
    let on = |shape: &[usize], v: Vec<f32>| {
        let t = Tensor::from_shape_vec(shape, v).unwrap();
        t.to_device(device).unwrap().requires_grad()
    };
    let x = on(&[2, 4], vec![1.0, 3.0, -2.0, 3.0, 0.5, 3.0, 2.999, -7.0]);
    let m = x.max_all().unwrap();
    assert_eq!(m.device(), device);
    assert_eq!(m.to_scalar().unwrap(), 3.0);
    let g = m
        .backward_with(&Tensor::scalar(1.5).to_device(device).unwrap())
        .unwrap();
    let gx = g.get(&x).unwrap();
    assert_eq!(gx.device(), device);
    let want = [0.0, 0.5, 0.0, 0.5, 0.0, 0.5, 0.0, 0.0];
    assert_close_slice(
        &format!("{device} max_all ties"),
        &gx.to_vec().unwrap(),
        &want,
        ELEMENTWISE,
    );
    // all equal: every element gets dy / n
    let x = on(&[300], vec![-0.25; 300]);
    let g = x.max_all().unwrap().backward().unwrap();
    let want = vec![1.0 / 300.0; 300];
    let got = g.get(&x).unwrap().to_vec().unwrap();
    assert_close_slice(
        &format!("{device} max_all all equal"),
        &got,
        &want,
        ELEMENTWISE,
    );
    // a unique maximum past the first reduction chunk gets all of dy
    let mut v: Vec<f32> = (0..5000)
        .map(|i| ((i * 7919) % 5000) as f32 * 1e-3)
        .collect();
    v[4321] = 10.0;
    let x = on(&[5000], v);
    let m = x.max_all().unwrap();
    assert_eq!(m.to_scalar().unwrap(), 10.0);
    let gx = m.backward().unwrap().get(&x).unwrap().to_vec().unwrap();
    assert_eq!(gx[4321], 1.0);
    assert_eq!(gx.iter().filter(|&&v| v != 0.0).count(), 1);
    let one = on(&[1], vec![-4.0]);
    assert_eq!(one.max_all().unwrap().to_scalar().unwrap(), -4.0);
    assert!(Tensor::zeros(&[0])
        .to_device(device)
        .unwrap()
        .max_all()
        .is_err());
}

/// `max_all` propagates NaN (its documented contract) on `device`, wherever the NaN is: the
/// first element, inside the first 256-element chunk, past it; and its VJP then splits `dy`
/// over the NaNs.
pub fn check_max_all_nan(device: Device) {
    let mut wrong = Vec::new();
    for at in [0usize, 1, 3, 255, 256, 700, 999] {
        let mut v: Vec<f32> = (0..1000).map(|i| i as f32).collect();
        v[at] = f32::NAN;
        let x = Tensor::from_shape_vec(&[1000], v).unwrap();
        let m = x
            .to_device(device)
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        if !m.is_nan() {
            wrong.push(format!("NaN at {at}: max {m}"));
        }
    }
    // the VJP with the NaN first (so the maximum is NaN even where the reduction drops later
    // NaNs): dy split over the NaNs
    let x = Tensor::from_shape_vec(&[4], vec![f32::NAN, 1.0, 2.0, f32::NAN]).unwrap();
    let x = x.to_device(device).unwrap().requires_grad();
    let m = x.max_all().unwrap();
    let got = m.backward().unwrap().get(&x).unwrap().to_vec().unwrap();
    if got != [0.5, 0.0, 0.0, 0.5] {
        wrong.push(format!(
            "VJP at [NaN, 1, 2, NaN] {got:?}, want [0.5, 0, 0, 0.5]"
        ));
    }
    assert!(
        wrong.is_empty(),
        "{device} max_all and NaN: {}",
        wrong.join("; ")
    );
}

/// `randn_keyed`: the same key gives the same values, different keys differ, the mean and
/// standard deviation of 1e5 samples are 0 and 1 (5 sigma), and `scale` multiplies.
pub fn check_randn_keyed(device: Device) {
    let draw = |n: usize, key: u64, scale: f32| {
        let t = Tensor::randn_keyed(&[n], key, scale, device).unwrap();
        assert_eq!(t.device(), device);
        t.to_vec().unwrap()
    };
    let n = 100_000;
    let a = draw(n, 42, 1.0);
    assert_eq!(a, draw(n, 42, 1.0), "{device}: same key, other values");
    let b = draw(n, 43, 1.0);
    let same = a.iter().zip(&b).filter(|(x, y)| x == y).count();
    assert!(same < 10, "{device}: keys 42 and 43 agree at {same} of {n}");
    let c = draw(n, 42 | (1 << 40), 1.0);
    assert_ne!(
        a[..100],
        c[..100],
        "{device}: the key's high word is ignored"
    );
    let mean = a.iter().map(|&x| x as f64).sum::<f64>() / n as f64;
    let var = a.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n as f64;
    // 5 sigma: the mean's is 1/sqrt(n), the variance's sqrt(2/n)
    assert!(
        mean.abs() < 5.0 / (n as f64).sqrt(),
        "{device}: mean {mean}"
    );
    assert!(
        (var.sqrt() - 1.0).abs() < 2.5 * (2.0 / n as f64).sqrt(),
        "{device}: std {}",
        var.sqrt()
    );
    assert!(a.iter().all(|x| x.is_finite()));
    // a prefix of a longer stream is the shorter stream
    assert_eq!(draw(1000, 42, 1.0), a[..1000]);
    let scaled: Vec<f32> = draw(1000, 42, 2.5);
    let want: Vec<f32> = a[..1000].iter().map(|x| 2.5 * x).collect();
    assert_close_slice(
        &format!("{device} randn_keyed scale"),
        &scaled,
        &want,
        ELEMENTWISE,
    );
}

/// `spectral_conv` against the same operator composed from existing ops (pad2d, complex,
/// fft2, the product with K, the sum over C, ifft2, re, crop2d): forward and both gradients,
/// on `device`, to `tol`.
pub fn check_spectral_vs_composed(device: Device, tol: Tol) {
    let mut r = Rng::new(77);
    for (xs, ks) in [([2, 3, 5, 6], [4, 3, 10, 12]), ([1, 2, 7, 5], [3, 2, 9, 8])] {
        let x = Tensor::rand(&xs, -1.0, 1.0, &mut r);
        let k = rand_c(&ks, &mut r);
        let on = |t: &Tensor| t.to_device(device).unwrap().requires_grad();
        let (x1, k1, x2, k2) = (on(&x), on(&k), on(&x), on(&k));
        let fused = x1.spectral_conv(&k1).unwrap();
        let composed = {
            let (n, c, h, w) = (xs[0], xs[1], xs[2], xs[3]);
            let (o, ph, pw) = (ks[0], ks[2], ks[3]);
            let p = x2.pad2d(0, ph - h, 0, pw - w).unwrap();
            let z = Tensor::complex(&p, &p.zeros_like().unwrap()).unwrap();
            let f = z.fft2().unwrap().reshape(&[n, 1, c, ph, pw]).unwrap();
            let prod = f.mul(&k2.reshape(&[1, o, c, ph, pw]).unwrap()).unwrap();
            let y = prod.sum_axes(&[2], false).unwrap().ifft2().unwrap();
            y.re().unwrap().crop2d(0, h, 0, w).unwrap()
        };
        let what = format!("{device} spectral_conv {xs:?} * {ks:?}");
        assert_eq!(fused.device(), device);
        assert_close(&format!("{what} forward"), &fused, &composed, tol);
        let gy = Tensor::rand(fused.shape(), -1.0, 1.0, &mut r)
            .to_device(device)
            .unwrap();
        let (gf, gc) = (
            fused.backward_with(&gy).unwrap(),
            composed.backward_with(&gy).unwrap(),
        );
        let dx = gf.get(&x1).unwrap();
        assert_eq!(dx.device(), device);
        assert_close(&format!("{what} dx"), dx, gc.get(&x2).unwrap(), tol);
        let dk = gf.get(&k1).unwrap();
        assert_close(&format!("{what} dK"), dk, gc.get(&k2).unwrap(), tol);
    }
}

/// The fused `conv2d_leaky` equals `conv2d` then `leaky_relu`, forward and VJP, on `device`
/// (the fused VJP reads the output's sign; finite differences across the kink would be
/// meaningless).
pub fn check_fused_conv_leaky(device: Device) {
    let mut r = Rng::new(8);
    for k in [1, 3, 5] {
        let on = |t: Tensor| t.to_device(device).unwrap().requires_grad();
        let x = on(Tensor::rand(&[2, 3, 6, 7], -1.0, 1.0, &mut r));
        let w = on(Tensor::rand(&[4, 3, k, k], -0.5, 0.5, &mut r));
        let b = on(Tensor::rand(&[4], -0.5, 0.5, &mut r));
        let fused = x.conv2d_leaky(&w, Some(&b), 0.2).unwrap();
        let plain = x.conv2d(&w, Some(&b)).unwrap().leaky_relu(0.2).unwrap();
        assert_eq!(fused.device(), device);
        let what = format!("{device} conv2d_leaky k{k}");
        assert_close(&format!("{what} forward"), &fused, &plain, ELEMENTWISE);
        let gy = Tensor::rand(fused.shape(), -1.0, 1.0, &mut r)
            .to_device(device)
            .unwrap();
        let (gf, gp) = (
            fused.backward_with(&gy).unwrap(),
            plain.backward_with(&gy).unwrap(),
        );
        for (name, t) in [("x", &x), ("w", &w), ("b", &b)] {
            let got = gf.get(t).unwrap();
            assert_close(
                &format!("{what} d{name}"),
                got,
                gp.get(t).unwrap(),
                ELEMENTWISE,
            );
        }
    }
    // a slope <= 0 falls back to the unfused pair
    let x = Tensor::rand(&[1, 1, 4, 4], -1.0, 1.0, &mut r)
        .to_device(device)
        .unwrap();
    let w = Tensor::rand(&[1, 1, 3, 3], -1.0, 1.0, &mut r)
        .to_device(device)
        .unwrap();
    let a = x.conv2d_leaky(&w, None, 0.0).unwrap();
    let b = x.conv2d(&w, None).unwrap().leaky_relu(0.0).unwrap();
    assert_close(
        &format!("{device} conv2d_leaky slope 0"),
        &a,
        &b,
        ELEMENTWISE,
    );
}

// ------------------------------------------------------------------ affine_sample

/// x of the `affine_sample` cases: (N, C, H, W).
pub const SAMPLE_X: [usize; 4] = [2, 3, 9, 11];

/// One affine map of the `affine_sample` cases: a rotation by `theta_deg` and a scale
/// (input pixels per output pixel) about the centres of the output and of x, then `shift`
/// (columns, rows) in input pixels; the output is `out` (rows, columns).
#[derive(Clone, Copy, Debug)]
pub struct SampleGeometry {
    pub name: &'static str,
    pub theta_deg: f64,
    pub scale: f64,
    pub shift: (f64, f64),
    pub out: (usize, usize),
}

impl SampleGeometry {
    /// `[a_cc, a_cr, b_c, a_rc, a_rr, b_r]` (f32).
    pub fn affine(&self) -> [f32; 6] {
        let (h, w) = (SAMPLE_X[2] as f64, SAMPLE_X[3] as f64);
        let (oh, ow) = (self.out.0 as f64, self.out.1 as f64);
        let (sin, cos) = self.theta_deg.to_radians().sin_cos();
        let k = self.scale;
        let (acc, acr, arc, arr) = (k * cos, -k * sin, k * sin, k * cos);
        // the output's centre maps to x's centre, then the shift
        let (jc, ic) = ((ow - 1.0) / 2.0, (oh - 1.0) / 2.0);
        let bc = (w - 1.0) / 2.0 - (acc * jc + acr * ic) + self.shift.0;
        let br = (h - 1.0) / 2.0 - (arc * jc + arr * ic) + self.shift.1;
        [acc, acr, bc, arc, arr, br].map(|v| v as f32)
    }
}

/// The maps of the table: near-unit rotations with some outputs outside x, a magnification
/// (output finer than x: the GPU's gather visits several outputs per input pixel) and a
/// minification.
pub const SAMPLE_GEOMETRIES: [SampleGeometry; 4] = [
    SampleGeometry {
        name: "rotate 10 scale 1.1",
        theta_deg: 10.0,
        scale: 1.1,
        shift: (1.3, -0.8),
        out: (9, 11),
    },
    SampleGeometry {
        name: "rotate -9 scale 0.85",
        theta_deg: -9.0,
        scale: 0.85,
        shift: (-1.6, 2.1),
        out: (11, 13),
    },
    SampleGeometry {
        name: "magnify 0.4",
        theta_deg: 7.0,
        scale: 0.4,
        shift: (1.17, 0.83),
        out: (21, 25),
    },
    SampleGeometry {
        name: "minify 2.5",
        theta_deg: -12.0,
        scale: 2.5,
        shift: (0.7, -0.4),
        out: (5, 6),
    },
];

fn on_device(shape: &[usize], v: Vec<f32>, device: Device) -> Tensor {
    Tensor::from_shape_vec(shape, v)
        .unwrap()
        .to_device(device)
        .unwrap()
}

/// Exact answers on `device`: the identity returns x, an integer shift is a shifted copy with
/// zeros, a 90-degree rotation about the centre of a square image is the transposed and
/// flipped array, and sampling a linear ramp at interior points reproduces the ramp (bilinear
/// interpolation is exact on linear functions), with the ramp's exact affine gradient.
pub fn check_affine_sample_exact(device: Device) {
    let mut r = Rng::new(31);
    let (n, c, h, w) = (2, 3, 6, 8);
    let xv = Tensor::rand(&[n, c, h, w], -1.0, 1.0, &mut r)
        .to_vec()
        .unwrap();
    let x = on_device(&[n, c, h, w], xv.clone(), device);
    let sample = |x: &Tensor, a: [f32; 6], oh: usize, ow: usize| {
        let y = x
            .affine_sample(&on_device(&[6], a.to_vec(), device), oh, ow)
            .unwrap();
        assert_eq!(y.device(), device);
        y.to_vec().unwrap()
    };
    assert_eq!(
        sample(&x, [1.0, 0.0, 0.0, 0.0, 1.0, 0.0], h, w),
        xv,
        "{device}: the identity"
    );
    // identity + (2, -1): y[i, j] = x[i - 1, j + 2], zero outside; into a larger output too
    for (oh, ow) in [(h, w), (h + 2, w + 3)] {
        let got = sample(&x, [1.0, 0.0, 2.0, 0.0, 1.0, -1.0], oh, ow);
        let mut want = vec![0f32; n * c * oh * ow];
        for q in 0..n * c {
            for i in 0..oh {
                for j in 0..ow {
                    let (sr, sc) = (i as isize - 1, j as isize + 2);
                    if sr >= 0 && (sr as usize) < h && (sc as usize) < w {
                        want[(q * oh + i) * ow + j] = xv[(q * h + sr as usize) * w + sc as usize];
                    }
                }
            }
        }
        assert_eq!(got, want, "{device}: integer shift (2, -1) into {oh}x{ow}");
    }
    // 90 degrees about the centre of a 7x7 image: s_c = i, s_r = 6 - j, so y is x transposed
    // with its columns flipped
    let m = 7;
    let sq = Tensor::rand(&[1, 2, m, m], -1.0, 1.0, &mut r)
        .to_vec()
        .unwrap();
    let xs = on_device(&[1, 2, m, m], sq.clone(), device);
    let got = sample(&xs, [0.0, 1.0, 0.0, -1.0, 0.0, (m - 1) as f32], m, m);
    let mut want = vec![0f32; 2 * m * m];
    for q in 0..2 {
        for i in 0..m {
            for j in 0..m {
                // transpose: t[i][j] = x[j][i]; flip the columns: y[i][j] = t[i][m-1-j]
                want[(q * m + i) * m + j] = sq[(q * m + (m - 1 - j)) * m + i];
            }
        }
    }
    assert_eq!(got, want, "{device}: rotation by 90 degrees");
    // the ramp x = 3 r - 2 c + 1 sampled at interior points (strictly inside, so the taps past
    // the last row and column have weight 0 and dy/ds is the ramp's slope everywhere)
    let (rh, rw, oh, ow) = (9, 11, 6, 7);
    let ramp: Vec<f32> = (0..2 * rh * rw)
        .map(|k| {
            let (rr, cc) = ((k / rw) % rh, k % rw);
            3.0 * rr as f32 - 2.0 * cc as f32 + 1.0
        })
        .collect();
    let g = SampleGeometry {
        name: "ramp",
        theta_deg: 17.0,
        scale: 0.7,
        shift: (0.21, -0.13),
        out: (oh, ow),
    };
    let a = g.affine();
    let xr = on_device(&[2, 1, rh, rw], ramp, device);
    let at = on_device(&[6], a.to_vec(), device).requires_grad();
    let y = xr.affine_sample(&at, oh, ow).unwrap();
    let got = y.to_vec().unwrap();
    let a64 = a.map(|v| v as f64);
    let mut want = Vec::new();
    let mut sums = [0f64; 6];
    for _plane in 0..2 {
        for i in 0..oh {
            for j in 0..ow {
                let dir = [j as f64, i as f64, 1.0];
                let sc = a64[0] * dir[0] + a64[1] * dir[1] + a64[2];
                let sr = a64[3] * dir[0] + a64[4] * dir[1] + a64[5];
                assert!(
                    sr > 0.0 && sc > 0.0 && sr < (rh - 1) as f64 && sc < (rw - 1) as f64,
                    "ramp sample ({sr}, {sc}) is not interior"
                );
                want.push((3.0 * sr - 2.0 * sc + 1.0) as f32);
                // upstream gradient 1: dL/ds_c = -2, dL/ds_r = 3 at every sample
                for k in 0..3 {
                    sums[k] += -2.0 * dir[k];
                    sums[3 + k] += 3.0 * dir[k];
                }
            }
        }
    }
    assert_close_slice(&format!("{device} ramp"), &got, &want, ELEMENTWISE);
    let ga = y.sum_all().unwrap().backward().unwrap();
    let da = ga.get(&at).unwrap();
    assert_eq!(da.device(), device);
    let want: Vec<f32> = sums.iter().map(|&v| v as f32).collect();
    assert_close_slice(
        &format!("{device} ramp affine gradient"),
        &da.to_vec().unwrap(),
        &want,
        ELEMENTWISE,
    );
}

/// `<S x, y> = <x, S^T y>` on `device` for every map of the table (S^T by the backward pass),
/// and for a singular map (every output samples one point).
pub fn check_affine_sample_adjoint(device: Device) {
    let mut r = Rng::new(32);
    let singular = [0.0, 0.0, 4.3, 0.0, 0.0, 2.6];
    let maps = SAMPLE_GEOMETRIES
        .iter()
        .map(|g| (g.name, g.affine(), g.out))
        .chain([("singular", singular, (5, 6))]);
    for (name, a, (oh, ow)) in maps {
        let x = Tensor::rand(&SAMPLE_X, -1.0, 1.0, &mut r)
            .to_device(device)
            .unwrap()
            .requires_grad();
        let at = on_device(&[6], a.to_vec(), device);
        let sx = x.affine_sample(&at, oh, ow).unwrap();
        let y = Tensor::rand(sx.shape(), -1.0, 1.0, &mut r)
            .to_device(device)
            .unwrap();
        let sty = sx.backward_with(&y).unwrap().remove(&x).unwrap();
        assert_eq!(sty.device(), device);
        let dot = |u: &Tensor, v: &Tensor| -> f64 {
            let (u, v) = (u.to_vec().unwrap(), v.to_vec().unwrap());
            u.iter().zip(&v).map(|(a, b)| *a as f64 * *b as f64).sum()
        };
        assert_adjoint(
            &format!("{device} affine_sample {name}"),
            (dot(&sx, &y), 0.0),
            (dot(&x, &sty), 0.0),
            ADJOINT,
        );
    }
}

/// Both gradients of every map of the table against f64 on `device`: the forward and dx against
/// the f64 reference and its transpose, the affine map's gradient against central differences
/// of the f64 reference. The step of each parameter is half the largest with which no sample
/// changes cell (y is linear in each parameter inside a cell, so these differences are exact
/// up to rounding); no sample lies within 1e-4 of a pixel line, so f32 and f64 (and CPU and
/// GPU) agree on every cell. Also: only tracked inputs get a gradient.
pub fn check_affine_sample_f64(device: Device) {
    use super::reference::{affine_sample_ref, affine_sample_t_ref, f64s};
    let mut r = Rng::new(33);
    let [n, c, h, w] = SAMPLE_X;
    for g in SAMPLE_GEOMETRIES {
        let (oh, ow) = g.out;
        let dims = [n * c, h, w, oh, ow];
        let a32 = g.affine();
        let a: [f64; 6] = a32.map(|v| v as f64);
        let xv = Tensor::rand(&SAMPLE_X, -1.0, 1.0, &mut r).to_vec().unwrap();
        let gyv = Tensor::rand(&[n, c, oh, ow], -1.0, 1.0, &mut r)
            .to_vec()
            .unwrap();
        let (x64, gy64) = (f64s(&xv), f64s(&gyv));
        // the largest step per parameter that keeps every sample in its cell
        let mut steps = [f64::INFINITY; 6];
        let mut nearest = f64::INFINITY;
        let mut outside = 0;
        for i in 0..oh {
            for j in 0..ow {
                let dir = [j as f64, i as f64, 1.0];
                let sc = a[0] * dir[0] + a[1] * dir[1] + a[2];
                let sr = a[3] * dir[0] + a[4] * dir[1] + a[5];
                if sr < 0.0 || sc < 0.0 || sr > (h - 1) as f64 || sc > (w - 1) as f64 {
                    outside += 1;
                }
                for (k, s) in [(0, sc), (3, sr)] {
                    let d = (s - s.round()).abs();
                    nearest = nearest.min(d);
                    for (m, &v) in dir.iter().enumerate() {
                        if v != 0.0 {
                            steps[k + m] = steps[k + m].min(d / v.abs());
                        }
                    }
                }
            }
        }
        let what = format!("{device} affine_sample {}", g.name);
        assert!(
            nearest > 1e-4,
            "{what}: a sample {nearest:.1e} from a pixel line"
        );
        assert!(
            outside > 0 && outside < oh * ow,
            "{what}: {outside} of {} samples outside x",
            oh * ow
        );
        // the op, both inputs tracked
        let xt = on_device(&SAMPLE_X, xv.clone(), device).requires_grad();
        let at = on_device(&[6], a32.to_vec(), device).requires_grad();
        let y = xt.affine_sample(&at, oh, ow).unwrap();
        assert_eq!(y.device(), device);
        let grads = y
            .backward_with(&on_device(y.shape(), gyv.clone(), device))
            .unwrap();
        assert_close_f64(
            &format!("{what} forward vs f64"),
            &y.to_vec().unwrap(),
            &affine_sample_ref(&x64, dims, &a),
            ACCUMULATED,
        );
        let dx = grads.get(&xt).unwrap();
        assert_eq!(dx.device(), device);
        assert_close_f64(
            &format!("{what} dx vs f64 S^T gy"),
            &dx.to_vec().unwrap(),
            &affine_sample_t_ref(&gy64, dims, &a),
            ACCUMULATED,
        );
        let loss = |a: &[f64; 6]| -> f64 {
            let y = affine_sample_ref(&x64, dims, a);
            y.iter().zip(&gy64).map(|(p, q)| p * q).sum()
        };
        let fd: Vec<f64> = (0..6)
            .map(|k| {
                let step = (0.5 * steps[k]).min(1e-2);
                let (mut p, mut m) = (a, a);
                p[k] += step;
                m[k] -= step;
                (loss(&p) - loss(&m)) / (2.0 * step)
            })
            .collect();
        let da = grads.get(&at).unwrap();
        assert_eq!(da.device(), device);
        assert_eq!(da.shape(), [6]);
        println!("{what}: steps {steps:?}, affine gradient {fd:?}");
        assert_close_f64(
            &format!("{what} affine gradient vs f64 central differences"),
            &da.to_vec().unwrap(),
            &fd,
            SUM_ORDER,
        );
        // only the tracked input gets a gradient
        let xc = on_device(&SAMPLE_X, xv.clone(), device);
        let y = xc.affine_sample(&at, oh, ow).unwrap();
        let gr = y.sum_all().unwrap().backward().unwrap();
        assert!(gr.get(&at).is_some() && gr.get(&xc).is_none(), "{what}");
        let ac = on_device(&[6], a32.to_vec(), device);
        let y = xt.affine_sample(&ac, oh, ow).unwrap();
        let gr = y.sum_all().unwrap().backward().unwrap();
        assert!(gr.get(&xt).is_some() && gr.get(&ac).is_none(), "{what}");
    }
}

/// Bad shapes are errors, not panics, on `device`.
pub fn check_affine_sample_errors(device: Device) {
    let x = on_device(&[1, 1, 4, 5], vec![0.5; 20], device);
    let a = on_device(&[6], vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0], device);
    assert!(x.affine_sample(&a, 4, 5).is_ok());
    // a (2, 3) map is six numbers too
    assert!(x.affine_sample(&a.reshape(&[2, 3]).unwrap(), 4, 5).is_ok());
    let five = on_device(&[5], vec![1.0; 5], device);
    let e = x.affine_sample(&five, 4, 5).unwrap_err().to_string();
    assert!(e.contains("6 elements"), "{e}");
    let x3 = x.reshape(&[1, 4, 5]).unwrap();
    let e = x3.affine_sample(&a, 4, 5).unwrap_err().to_string();
    assert!(e.contains("rank 4"), "{e}");
    assert!(x.affine_sample(&a, 0, 5).is_err());
    assert!(x.affine_sample(&a, 4, 0).is_err());
    let empty = on_device(&[1, 1, 0, 5], vec![], device);
    assert!(empty.affine_sample(&a, 4, 5).is_err());
    let z = super::rand_c(&[1, 1, 4, 5], &mut Rng::new(1))
        .to_device(device)
        .unwrap();
    assert!(z.affine_sample(&a, 4, 5).is_err());
    let az = super::rand_c(&[6], &mut Rng::new(2))
        .to_device(device)
        .unwrap();
    assert!(x.affine_sample(&az, 4, 5).is_err());
}
