//! The one tolerance table of the test suite, and the comparisons that use it.
//!
//! A check passes when `|got - want| <= abs + rel * |want|` for every element (computed in
//! f64). Each constant names one kind of comparison; where two kinds of comparison differ only
//! in how tight they can be, they have two names. Nothing here is looser than the per-file
//! tables it replaced: every call site keeps the bound it had.
//!
//! Vocabulary: "f64 reference" is a result computed in f64 from the same f32 inputs (NumPy, or
//! the naive Rust references of `reference.rs`); "CPU vs GPU" compares two f32 implementations
//! of one op whose sums run in different orders and whose transcendental functions differ
//! (lavapipe's are a few hundred ULP off libm).

/// Absolute + relative tolerance: `|got - want| <= abs + rel * |want|`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tol {
    pub abs: f64,
    pub rel: f64,
}

impl Tol {
    /// An absolute bound of `fraction` times `peak` (the largest magnitude of the reference).
    pub fn of_peak(fraction: f64, peak: f64) -> Tol {
        Tol {
            abs: fraction * peak,
            rel: 0.0,
        }
    }

    /// The bound for one element.
    pub fn bound(&self, want: f64) -> f64 {
        self.abs + self.rel * want.abs()
    }
}

// ------------------------------------------------------------------ elementwise

/// One or two f32 roundings against the f64 value (GPU elementwise and copy kernels against an
/// f64 reference of the same inputs).
pub const ROUNDING: Tol = Tol {
    abs: 1e-6,
    rel: 1e-6,
};
/// A few f32 roundings: an elementwise op (or a short chain of them) against an f64 NumPy
/// reference, or two f32 implementations of the same elementwise maths (GPU vs CPU, fused vs
/// unfused).
pub const ELEMENTWISE: Tol = Tol {
    abs: 1e-6,
    rel: 1e-5,
};
/// The GPU's `-g a / b^2` (div's VJP in b) against f64: four roundings.
pub const QUOTIENT: Tol = Tol {
    abs: 1e-6,
    rel: 4e-6,
};
/// GPU transcendental functions (exp, log, sqrt, tanh, sigmoid, sin, cos) against an f64
/// reference: a few hundred ULP on lavapipe.
pub const GPU_TRANSCENDENTAL_VS_F64: Tol = Tol {
    abs: 2e-6,
    rel: 3e-5,
};
/// GPU transcendental functions against the CPU's libm (both f32, so both sides' ULP errors
/// add), or against an f64 NumPy reference through a VJP chain.
pub const GPU_TRANSCENDENTAL: Tol = Tol {
    abs: 2e-6,
    rel: 5e-5,
};
/// `randn_keyed` on the GPU against the CPU (Box-Muller, `r cos(2 pi u)` with the radius `r`
/// up to 5.8): lavapipe's `cos` is ~1e-6 off libm in absolute terms near its zeros (Vulkan
/// allows 2^-11), so samples near 0 differ by up to ~1e-5 absolute.
pub const GPU_BOX_MULLER: Tol = Tol {
    abs: 2e-5,
    rel: 5e-5,
};

// ------------------------------------------------------------------ sums

/// A sum of up to 16 weighted O(1) terms on the GPU (bilinear upsampling's VJP) against f64.
pub const SHORT_SUM: Tol = Tol {
    abs: 2e-6,
    rel: 1e-6,
};
/// A GPU mean (pairwise sum scaled by 1/n) of up to ~3e5 O(1) terms against f64: the 1/n
/// scales the sum's error down with the value.
pub const GPU_MEAN: Tol = Tol {
    abs: 1e-6,
    rel: 1e-6,
};
/// The GPU's fused mean squared error of up to ~3e5 O(1) terms against f64.
pub const GPU_MSE: Tol = Tol {
    abs: 1e-6,
    rel: 1e-5,
};
/// f32 sums of hundreds of terms (conv, norm, reductions, FFT, broadcasting VJPs, AdamW
/// steps) on the CPU against f64 NumPy references.
pub const ACCUMULATED: Tol = Tol {
    abs: 1e-5,
    rel: 1e-4,
};
/// Two f32 implementations summing up to a few thousand O(1) terms in different orders (GPU vs
/// CPU), or the GPU against f64 NumPy references of such sums.
pub const SUM_ORDER: Tol = Tol {
    abs: 5e-5,
    rel: 2e-4,
};
/// GPU dot products of up to a few thousand O(1) terms (conv forward and input VJP) against
/// f64.
pub const DOT: Tol = Tol {
    abs: 2e-4,
    rel: 1e-4,
};
/// f32 sums of up to ~1e6 O(1) terms (pairwise on the GPU) against f64 or against the CPU.
pub const LONG_SUM: Tol = Tol {
    abs: 2e-3,
    rel: 1e-4,
};
/// A pairwise GPU sum of 16.8 million small integers against the exact f64 sum.
pub const HUGE_INTEGER_SUM: Tol = Tol {
    abs: 0.0,
    rel: 1e-6,
};
/// GPU instance-norm forward against f64 (two plane reductions, then elementwise).
pub const GPU_NORM_FORWARD: Tol = Tol {
    abs: 1e-5,
    rel: 1e-5,
};
/// GPU instance-norm input VJP against f64 (two more plane reductions of products).
pub const GPU_NORM_DX: Tol = Tol {
    abs: 2e-5,
    rel: 1e-4,
};

// ------------------------------------------------------------------ FFTs and physics maps

/// One GPU 2-D FFT against an f64 DFT: error relative to the transform's largest magnitude
/// (use with [`Tol::of_peak`]).
pub const GPU_FFT_OF_PEAK: f64 = 1e-5;
/// `ifft2(fft2(x))` on the GPU against `x` (O(1) values).
pub const GPU_FFT_ROUNDTRIP: Tol = Tol {
    abs: 1e-5,
    rel: 0.0,
};
/// FFT-based results on the GPU against the CPU (rustfft) or NumPy, elementwise: O(1) inputs,
/// transforms of up to ~1e3 terms each way (Bluestein adds two more); the NV and LTEM models.
pub const GPU_FFT: Tol = Tol {
    abs: 2e-4,
    rel: 2e-4,
};
/// The NV model with a trainable standoff on the GPU against the CPU (outputs in 10 mT, the
/// standoff in nm: the kernel `e^{-kd}` is recomputed on each device from an f32 standoff).
pub const GPU_NV_STANDOFF: Tol = Tol {
    abs: 5e-4,
    rel: 2e-3,
};
/// An FFT-based physics map (NV field, LTEM phase) in f32 against NumPy's f64: error relative
/// to the map's peak (use with [`Tol::of_peak`]).
pub const FIELD_OF_PEAK: f64 = 2e-5;
/// The fixed-standoff and trainable-standoff NV paths against each other (B in tesla, so the
/// absolute floor is 1e-9 T).
pub const STANDOFF_PATHS: Tol = Tol {
    abs: 1e-9,
    rel: 1e-4,
};
/// The LTEM transfer function (cos/sin of phases of hundreds of radians, evaluated in f64 and
/// stored in f32) against NumPy.
pub const TRANSFER_FN: Tol = Tol {
    abs: 2e-6,
    rel: 1e-5,
};

// ------------------------------------------------------------------ networks and runs

/// A whole autoencoder forward pass (tens of convs and norms) against PyTorch.
pub const NETWORK_VS_TORCH: Tol = Tol {
    abs: 1e-4,
    rel: 1e-3,
};
/// Three training iterations (forward, backward, AdamW) on the GPU against the CPU: losses and
/// parameters.
pub const TRAINING_GPU_VS_CPU: Tol = Tol {
    abs: 1e-4,
    rel: 2e-3,
};
/// The final loss of a 40-iteration NV-DIP run on the GPU against the CPU's.
pub const NV_RECON_LOSS: Tol = Tol {
    abs: 0.0,
    rel: 0.05,
};
/// The final loss of a short SIPRAD run on the GPU against the CPU's.
pub const SIPRAD_LOSS: Tol = Tol {
    abs: 0.0,
    rel: 0.03,
};
/// The pretraining losses of a short SIPRAD run on the GPU against the CPU's.
pub const SIPRAD_PRETRAIN_LOSS: Tol = Tol {
    abs: 1e-6,
    rel: 1e-3,
};
/// The fitted amplitude scale of a short SIPRAD run on the GPU against the CPU's.
pub const SIPRAD_AMP_SCALE: Tol = Tol {
    abs: 1e-3,
    rel: 0.0,
};
/// The selected phase of a short SIPRAD run, GPU against CPU, relative to the phase's largest
/// magnitude (at least 1e-3) (use with [`Tol::of_peak`]).
pub const SIPRAD_PHASE_OF_PEAK: f64 = 0.02;
/// The image model of a short SIPRAD run, GPU against CPU, relative to its largest magnitude
/// (use with [`Tol::of_peak`]).
pub const SIPRAD_IMAGE_OF_PEAK: f64 = 0.02;

// ------------------------------------------------------------------ derivatives and adjoints

/// Central finite differences in f32 (steps 1e-2..1e-3) against the VJP: truncation plus
/// rounding.
pub const FINITE_DIFF: Tol = Tol {
    abs: 2e-3,
    rel: 2e-2,
};
/// Central finite differences of an f64 function (step 1e-6) against its analytic gradient.
pub const FINITE_DIFF_F64: Tol = Tol {
    abs: 1e-6,
    rel: 0.0,
};
/// A physics model's gradient in one SI-scaled scalar (the NV standoff) against a central
/// difference of its f32 loss: relative only.
pub const FINITE_DIFF_PHYSICAL: Tol = Tol {
    abs: 0.0,
    rel: 0.02,
};
/// `<A x, y>` against `<x, A^H y>` for f32 operators on O(1) data (inner products in f64); the
/// relative part is taken of `|Re| + |Im|` of `<A x, y>`.
pub const ADJOINT: Tol = Tol {
    abs: 1e-4,
    rel: 1e-4,
};
/// The adjoint identity of an operator on SI-scaled data (M in A/m, B in tesla), whose inner
/// products are nowhere near 1: relative only.
pub const ADJOINT_PHYSICAL: Tol = Tol {
    abs: 0.0,
    rel: 1e-4,
};
/// The adjoint identity of the GPU's FFT (O(1) data, inner products of ~100 terms): absolute,
/// per real and imaginary part.
pub const GPU_FFT_ADJOINT: Tol = Tol {
    abs: 1e-3,
    rel: 0.0,
};

// ------------------------------------------------------------------ the comparisons

/// The core of every comparison: counts the elements outside `tol` (a non-finite `got` always
/// counts), finds the worst one relative to its bound, and panics with the count, the largest
/// error and where it is. Returns the largest absolute error.
pub fn compare(what: &str, got: &[f64], want: &[f64], tol: Tol) -> f64 {
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: length {} vs {}",
        got.len(),
        want.len()
    );
    let (mut bad, mut worst, mut at, mut max_err) = (0usize, -1f64, 0usize, 0f64);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g - w).abs();
        let ok = g.is_finite() && err <= tol.bound(w);
        if ok {
            max_err = max_err.max(err);
            continue;
        }
        bad += 1;
        let scaled = if g.is_finite() {
            err / tol.bound(w)
        } else {
            f64::INFINITY
        };
        if scaled > worst || scaled.is_nan() {
            worst = scaled;
            at = i;
        }
        max_err = f64::max(max_err, if err.is_nan() { f64::INFINITY } else { err });
    }
    assert!(
        bad == 0,
        "{what}: {bad} of {} elements outside {tol:?}; worst at flat index {at}: got {} want {} \
         (error {:.3e}, bound {:.3e}); largest error {max_err:.3e}",
        got.len(),
        got[at],
        want[at],
        (got[at] - want[at]).abs(),
        tol.bound(want[at])
    );
    max_err
}

/// `<A x, y>` (`lhs`) against `<x, A^H y>` (`rhs`), real and imaginary parts, each within
/// `tol.abs + tol.rel * (|Re lhs| + |Im lhs|)`.
pub fn assert_adjoint(what: &str, lhs: (f64, f64), rhs: (f64, f64), tol: Tol) {
    let bound = tol.bound(lhs.0.abs() + lhs.1.abs());
    let err = ((lhs.0 - rhs.0).abs(), (lhs.1 - rhs.1).abs());
    println!("{what}: <Ax, y> = {lhs:?}, <x, A^H y> = {rhs:?}");
    assert!(
        err.0 <= bound && err.1 <= bound,
        "{what}: <Ax, y> = {lhs:?} but <x, A^H y> = {rhs:?} (errors {err:?}, bound {bound:.3e})"
    );
}

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// f32 data against f32 data.
pub fn assert_close_slice(what: &str, got: &[f32], want: &[f32], tol: Tol) {
    compare(what, &f64s(got), &f64s(want), tol);
}

/// f32 data against an f64 reference; returns the largest absolute error (printed too).
pub fn assert_close_f64(what: &str, got: &[f32], want: &[f64], tol: Tol) -> f64 {
    let err = compare(what, &f64s(got), want, tol);
    println!("{what}: n={} max_abs_err={err:.3e}", got.len());
    err
}

/// One number against another.
pub fn assert_close_scalar(what: &str, got: f64, want: f64, tol: Tol) {
    compare(what, &[got], &[want], tol);
}
/// The final loss of a short joint NV + LTEM run on the GPU against the CPU's.
pub const JOINT_LOSS: Tol = Tol {
    abs: 0.0,
    rel: 0.03,
};
