//! Shared test helpers: fixture loading, the tolerance table and the comparisons that say where
//! they fail (`tol.rs`), central finite differences, the GPU gate, and the op tables shared by
//! the CPU and GPU tests (`golden.rs`: NumPy fixtures; `ops.rs`: random inputs;
//! `reference.rs`: naive f64 references of the kernels).
#![allow(dead_code)]

pub mod cli;
pub mod golden;
pub mod ops;
pub mod reference;
pub mod tol;

pub use tol::*;

use magprior::io::npy::read_npy_any;
use magprior::{DType, Rng, Tensor, C32};
use std::path::PathBuf;

pub fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Loads `fixtures/<group>/<name>.npy`.
pub fn fx(group: &str, name: &str) -> Tensor {
    let p = fixture_dir().join(group).join(format!("{name}.npy"));
    read_npy_any(&p).unwrap_or_else(|e| panic!("fixture {}: {e}", p.display()))
}

/// Flattens real or complex data to interleaved f32 for comparison.
pub fn flat(t: &Tensor) -> Vec<f32> {
    match t.dtype() {
        DType::F32 => t.to_vec().unwrap(),
        DType::C32 => t
            .to_vec_c()
            .unwrap()
            .into_iter()
            .flat_map(|z| [z.re, z.im])
            .collect(),
    }
}

/// Asserts same shape, dtype and values within `tol` (complex data compared as interleaved
/// re, im); on failure reports count, max error and where.
pub fn assert_close(what: &str, got: &Tensor, want: &Tensor, tol: Tol) {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    assert_eq!(got.dtype(), want.dtype(), "{what}: dtype");
    assert_close_slice(what, &flat(got), &flat(want), tol);
}

/// A random real tensor (uniform in [lo, hi)).
pub fn rand(shape: &[usize], lo: f32, hi: f32, rng: &mut Rng) -> Tensor {
    Tensor::rand(shape, lo, hi, rng)
}

/// A random complex tensor (real and imaginary parts uniform in [-1, 1)).
pub fn rand_c(shape: &[usize], rng: &mut Rng) -> Tensor {
    let n: usize = shape.iter().product();
    let v = (0..n)
        .map(|_| {
            C32::new(
                rng.uniform_range(-1.0, 1.0) as f32,
                rng.uniform_range(-1.0, 1.0) as f32,
            )
        })
        .collect();
    Tensor::from_shape_vec_c(shape, v).unwrap()
}

/// L(inputs) = sum(Re(conj(w) * f(inputs))) for a fixed random weight w, in f64.
fn weighted_loss(out: &Tensor, w: &[f32]) -> f64 {
    flat(out)
        .iter()
        .zip(w)
        .map(|(&a, &b)| a as f64 * b as f64)
        .sum()
}

/// Checks the VJP of `f` with respect to every input by central finite differences of the
/// scalar `sum(w * f(x))` (real and imaginary parts perturbed separately for complex inputs),
/// at up to `max_probe` coordinates per input.
pub fn check_grad(
    name: &str,
    inputs: &[Tensor],
    f: impl Fn(&[Tensor]) -> Tensor,
    step: f32,
    max_probe: usize,
) {
    let mut rng = Rng::new(1234);
    let tracked: Vec<Tensor> = inputs.iter().map(|t| t.clone().requires_grad()).collect();
    let out = f(&tracked);
    let nw = flat(&out).len();
    let w: Vec<f32> = (0..nw)
        .map(|_| rng.uniform_range(-1.0, 1.0) as f32)
        .collect();
    // upstream gradient with the same layout as out
    let gy = match out.dtype() {
        DType::F32 => Tensor::from_shape_vec(out.shape(), w.clone()).unwrap(),
        DType::C32 => Tensor::from_shape_vec_c(
            out.shape(),
            w.chunks(2).map(|p| C32::new(p[0], p[1])).collect(),
        )
        .unwrap(),
    };
    let grads = out.backward_with(&gy).unwrap();
    for (k, x) in tracked.iter().enumerate() {
        let g = grads
            .get(x)
            .unwrap_or_else(|| panic!("{name}: no gradient for input {k}"));
        let analytic = flat(g);
        let base = flat(x);
        let n = base.len();
        let probes: Vec<usize> = if n <= max_probe {
            (0..n).collect()
        } else {
            (0..max_probe)
                .map(|_| (rng.next_u64() as usize) % n)
                .collect()
        };
        let mut got = Vec::new();
        let mut want = Vec::new();
        for &i in &probes {
            let eval = |delta: f32| {
                let mut v = base.clone();
                v[i] += delta;
                let t = match x.dtype() {
                    DType::F32 => Tensor::from_shape_vec(x.shape(), v).unwrap(),
                    DType::C32 => Tensor::from_shape_vec_c(
                        x.shape(),
                        v.chunks(2).map(|p| C32::new(p[0], p[1])).collect(),
                    )
                    .unwrap(),
                };
                let mut args: Vec<Tensor> = inputs.to_vec();
                args[k] = t;
                weighted_loss(&magprior::no_grad(|| f(&args)), &w)
            };
            let fd = (eval(step) - eval(-step)) / (2.0 * step as f64);
            got.push(analytic[i]);
            want.push(fd as f32);
        }
        assert_close_slice(&format!("{name}: d/d input {k}"), &got, &want, FINITE_DIFF);
    }
}

static GPU_TESTS_RAN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// True when a GPU context is open (counted and printed as `GPU test NAME ran`); false with a
/// printed `SKIP: no GPU adapter (...)` when none opens, or a panic when
/// `MAGPRIOR_REQUIRE_GPU_TESTS` is set (CI, where the GPU tests must run).
pub fn gpu(name: &str) -> bool {
    match magprior::Device::select(magprior::DeviceChoice::Gpu) {
        Ok(_) => {
            let k = GPU_TESTS_RAN.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            let adapter = magprior::Device::Gpu
                .adapter()
                .map_or("?".to_string(), |a| a.to_string());
            if k == 1 {
                // `.ci/run` reports the adapter from this line
                eprintln!("GPU adapter: {adapter}");
            }
            println!("GPU test {name} ran ({k} so far) on {adapter}");
            true
        }
        Err(e) => {
            if std::env::var_os("MAGPRIOR_REQUIRE_GPU_TESTS").is_some() {
                panic!("MAGPRIOR_REQUIRE_GPU_TESTS is set but {e}");
            }
            println!("SKIP: no GPU adapter ({e})");
            false
        }
    }
}

/// A state relaxed by magnum.np (`fixtures/relaxed/<name>`): M (3, h, w) in A/m (Ms 8.6e5),
/// its support (h, w), h, w.
pub fn relaxed_state(name: &str) -> (Vec<f32>, Vec<f32>, usize, usize) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/relaxed");
    let m = magprior::io::npy::read_npy(dir.join(format!("{name}_m.npy"))).unwrap();
    let support = magprior::io::npy::read_npy(dir.join(format!("{name}_support.npy")))
        .unwrap()
        .to_vec()
        .unwrap();
    let (h, w) = (m.shape()[1], m.shape()[2]);
    let truth = m.to_vec().unwrap().iter().map(|v| v * 8.6e5).collect();
    (truth, support, h, w)
}
