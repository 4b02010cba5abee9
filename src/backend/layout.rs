//! Shape arithmetic shared by both backends: NumPy broadcasting, strides, and the coalesced
//! walks that the CPU loops and the GPU strided kernels follow.

use crate::error::{Error, Result};

/// A walk over `dims` (row-major) with one stride per operand per dimension.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Walk {
    /// Sizes, outermost first.
    pub dims: Vec<usize>,
    /// Strides of the first operand (elements).
    pub sa: Vec<usize>,
    /// Strides of the second operand (elements).
    pub sb: Vec<usize>,
}

/// The broadcast shape of `a` and `b` (right-aligned; sizes equal or 1).
pub fn broadcast_shape(op: &'static str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let da = if i + a.len() >= n {
            a[i + a.len() - n]
        } else {
            1
        };
        let db = if i + b.len() >= n {
            b[i + b.len() - n]
        } else {
            1
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => {
                return Err(Error::ShapeMismatch {
                    op,
                    lhs: a.to_vec(),
                    rhs: b.to_vec(),
                })
            }
        };
    }
    Ok(out)
}

/// Strides of `shape` seen inside `out` (right-aligned), 0 along broadcast dimensions.
pub fn broadcast_strides(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let off = out.len() - shape.len();
    let mut strides = vec![0; out.len()];
    let mut s = 1;
    for i in (0..shape.len()).rev() {
        strides[off + i] = if shape[i] == 1 { 0 } else { s };
        s *= shape[i];
    }
    strides
}

/// Merges neighbouring dimensions that every operand walks contiguously (or not at all), so the
/// innermost loop is as long as possible.
pub fn coalesce(out: &[usize], strides: &mut [Vec<usize>]) -> Vec<usize> {
    let mut dims: Vec<usize> = Vec::new();
    let mut st: Vec<Vec<usize>> = vec![Vec::new(); strides.len()];
    for (i, &d) in out.iter().enumerate() {
        if d == 1 {
            continue;
        }
        let can_merge = !dims.is_empty()
            && strides
                .iter()
                .zip(&st)
                .all(|(s, acc)| acc[acc.len() - 1] == s[i] * d);
        if can_merge {
            let last = dims.len() - 1;
            dims[last] *= d;
            for (s, acc) in strides.iter().zip(st.iter_mut()) {
                let l = acc.len() - 1;
                acc[l] = s[i];
            }
        } else {
            dims.push(d);
            for (s, acc) in strides.iter().zip(st.iter_mut()) {
                acc.push(s[i]);
            }
        }
    }
    if dims.is_empty() {
        dims.push(1);
        for acc in st.iter_mut() {
            acc.push(0);
        }
    }
    for (s, acc) in strides.iter_mut().zip(st) {
        *s = acc;
    }
    dims
}

/// Row-major (contiguous) strides of `shape`.
pub fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![0; shape.len()];
    let mut acc = 1;
    for i in (0..shape.len()).rev() {
        s[i] = acc;
        acc *= shape[i];
    }
    s
}

/// A walk in words: complex elements become a trailing pair of stride 1 (other strides doubled).
pub fn word_walk(mut w: Walk, complex: bool) -> Walk {
    if complex {
        for s in w.sa.iter_mut().chain(w.sb.iter_mut()) {
            *s *= 2;
        }
        w.dims.push(2);
        w.sa.push(1);
        w.sb.push(1);
    }
    w
}
