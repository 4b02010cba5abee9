//! Differentiable operations on [`Tensor`](crate::Tensor): one file per family, each op's
//! forward, VJP (with its maths as a comment) and `Tensor` method side by side.

pub(crate) mod broadcast;
pub mod complex;
pub mod conv;
pub mod elementwise;
pub mod fft;
pub mod loss;
pub mod norm;
pub mod pad;
pub mod phase;
pub mod pool;
pub mod reduce;
pub mod shape;
pub mod upsample;

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
