//! CPU backend: kernels on plain host slices (rayon for parallelism, rustfft, gemm), one file per
//! op family, called by the ops of `src/ops/` through the engine's dispatch. Parallel reductions
//! use fixed chunkings combined in order, so results are bit-for-bit reproducible.

pub mod conv;
pub mod elementwise;
pub mod fft;
pub mod norm;
pub mod optim;
pub mod random;
pub mod resample;
pub mod spectral;
pub mod strided;

use crate::backend::C32;
use rayon::prelude::*;

/// Below this many elements a loop stays on one thread.
pub(crate) const PAR_MIN: usize = 1 << 15;

/// `y[i] = f(x[i])`, in parallel for large inputs.
pub(crate) fn par_map<T: Copy + Sync, U: Send>(x: &[T], f: impl Fn(T) -> U + Sync) -> Vec<U> {
    if x.len() >= PAR_MIN {
        x.par_iter().map(|&v| f(v)).collect()
    } else {
        x.iter().map(|&v| f(v)).collect()
    }
}

/// `y[i] = f(a[i], b[i])`, in parallel for large inputs.
pub(crate) fn par_zip<T: Copy + Sync, S: Copy + Sync, U: Send>(
    a: &[T],
    b: &[S],
    f: impl Fn(T, S) -> U + Sync,
) -> Vec<U> {
    debug_assert_eq!(a.len(), b.len());
    if a.len() >= PAR_MIN {
        a.par_iter().zip(b).map(|(&x, &y)| f(x, y)).collect()
    } else {
        a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect()
    }
}

/// Deterministic parallel sum in f64: fixed chunks, partial sums combined in order.
pub(crate) fn sum_f64(x: &[f32]) -> f64 {
    const CHUNK: usize = 1 << 14;
    let partial: Vec<f64> = x
        .par_chunks(CHUNK)
        .map(|c| c.iter().map(|&v| v as f64).sum())
        .collect();
    partial.iter().sum()
}

/// Sum of complex values in f64.
pub(crate) fn sum_c64(x: &[C32]) -> C32 {
    let (mut re, mut im) = (0f64, 0f64);
    for z in x {
        re += z.re as f64;
        im += z.im as f64;
    }
    C32::new(re as f32, im as f32)
}

/// Sum in f64 over 8 independent lanes (keeps the adds pipelined; order fixed, so deterministic).
pub(crate) fn lane_sum(it: impl Iterator<Item = f64>) -> f64 {
    let mut lanes = [0f64; 8];
    for (i, v) in it.enumerate() {
        lanes[i & 7] += v;
    }
    lanes.iter().sum()
}
