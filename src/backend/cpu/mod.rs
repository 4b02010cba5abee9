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
pub mod sample;
pub mod spectral;
pub mod strided;

use crate::backend::C32;
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Raw pointer shared by tasks that write disjoint regions of one buffer.
#[derive(Clone, Copy)]
pub(crate) struct SyncPtr<T>(pub(crate) *mut T);
// SAFETY: only used by tasks that access disjoint index ranges of the buffer.
unsafe impl<T> Send for SyncPtr<T> {}
unsafe impl<T> Sync for SyncPtr<T> {}
impl<T> SyncPtr<T> {
    pub(crate) fn get(self) -> *mut T {
        self.0
    }
}

/// Below this many elements a loop stays on one thread.
pub(crate) const PAR_MIN: usize = 1 << 15;

/// Elements per task of the elementwise maps (64 KiB of f32).
const MAP_CHUNK: usize = 1 << 14;

/// `y[i] = f(x[i])`, in parallel for large inputs. Written chunk by chunk into the output's
/// spare capacity: no zero fill, and a plain loop per chunk that the compiler vectorises
/// (rayon's element-wise `collect` does not), at the widest of SSE2 / AVX2 the CPU has
/// ([`wide`]).
pub(crate) fn par_map<T: Copy + Sync, U: Send>(x: &[T], f: impl Fn(T) -> U + Sync) -> Vec<U> {
    let mut out: Vec<U> = Vec::with_capacity(x.len());
    let fill = |o: &mut [MaybeUninit<U>], a: &[T]| {
        wide(
            #[inline(always)]
            || {
                for (o, &v) in o.iter_mut().zip(a) {
                    o.write(f(v));
                }
            },
        )
    };
    let spare = &mut out.spare_capacity_mut()[..x.len()];
    if x.len() >= PAR_MIN {
        spare
            .par_chunks_mut(MAP_CHUNK)
            .zip(x.par_chunks(MAP_CHUNK))
            .for_each(|(o, a)| fill(o, a));
    } else {
        fill(spare, x);
    }
    // SAFETY: every one of the first x.len() slots was written above.
    unsafe { out.set_len(x.len()) };
    out
}

/// `y[i] = f(a[i], b[i])`, in parallel for large inputs (written as [`par_map`] writes).
pub(crate) fn par_zip<T: Copy + Sync, S: Copy + Sync, U: Send>(
    a: &[T],
    b: &[S],
    f: impl Fn(T, S) -> U + Sync,
) -> Vec<U> {
    let n = a.len().min(b.len());
    debug_assert_eq!(a.len(), b.len());
    let mut out: Vec<U> = Vec::with_capacity(n);
    let fill = |o: &mut [MaybeUninit<U>], a: &[T], b: &[S]| {
        wide(
            #[inline(always)]
            || {
                for ((o, &x), &y) in o.iter_mut().zip(a).zip(b) {
                    o.write(f(x, y));
                }
            },
        )
    };
    let spare = &mut out.spare_capacity_mut()[..n];
    if n >= PAR_MIN {
        spare
            .par_chunks_mut(MAP_CHUNK)
            .zip(a[..n].par_chunks(MAP_CHUNK))
            .zip(b[..n].par_chunks(MAP_CHUNK))
            .for_each(|((o, a), b)| fill(o, a, b));
    } else {
        fill(spare, &a[..n], &b[..n]);
    }
    // SAFETY: every one of the first n slots was written above.
    unsafe { out.set_len(n) };
    out
}

/// Runs the loop `body` compiled for AVX2 when the CPU has it (checked at run time, cached by
/// std), else for the build's baseline (SSE2 on x86-64; other architectures: their baseline).
/// No FMA is enabled, so both paths round identically: results do not depend on the machine.
#[inline(always)]
pub(crate) fn wide<R>(body: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        /// The same body with AVX2 enabled; `body` is inlined into it.
        #[target_feature(enable = "avx2")]
        unsafe fn avx2<R>(body: impl FnOnce() -> R) -> R {
            body()
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            return unsafe { avx2(body) };
        }
    }
    body()
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
