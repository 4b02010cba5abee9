//! NumPy broadcasting for the binary ops, and its adjoint `sum_to` (summing a gradient back
//! to an operand's shape) with `broadcast_to`.

use crate::error::{Error, Result};
use crate::storage::Storage;
use crate::tensor::{numel_of, DType, Tensor, C32};
use rayon::prelude::*;

/// The broadcast shape of `a` and `b` (right-aligned; sizes equal or 1).
pub(crate) fn broadcast_shape(op: &'static str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
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
fn broadcast_strides(shape: &[usize], out: &[usize]) -> Vec<usize> {
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
fn coalesce(out: &[usize], strides: &mut [Vec<usize>]) -> Vec<usize> {
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

/// `out[i] = f(a[ia], b[ib])` over the broadcast shape `out_shape`.
pub(crate) fn broadcast_binary<T, U>(
    a: &[T],
    ash: &[usize],
    b: &[T],
    bsh: &[usize],
    out_shape: &[usize],
    f: impl Fn(T, T) -> U + Sync,
) -> Vec<U>
where
    T: Copy + Send + Sync,
    U: Copy + Send + Sync + Default,
{
    let n = numel_of(out_shape);
    if a.len() == n && b.len() == n {
        return super::par_zip(a, b, f);
    }
    if b.len() == 1 && a.len() == n {
        let y = b[0];
        return super::par_map(a, |x| f(x, y));
    }
    let mut strides = vec![
        broadcast_strides(ash, out_shape),
        broadcast_strides(bsh, out_shape),
    ];
    let dims = coalesce(out_shape, &mut strides);
    let inner = dims[dims.len() - 1];
    let (sa, sb) = (&strides[0], &strides[1]);
    let (ia, ib) = (sa[dims.len() - 1], sb[dims.len() - 1]);
    let mut out = vec![U::default(); n];
    let row = |(r, chunk): (usize, &mut [U])| {
        // offsets of row r in a and b
        let (mut oa, mut ob, mut rem) = (0, 0, r);
        for d in (0..dims.len() - 1).rev() {
            let i = rem % dims[d];
            rem /= dims[d];
            oa += i * sa[d];
            ob += i * sb[d];
        }
        for (j, o) in chunk.iter_mut().enumerate() {
            *o = f(a[oa + j * ia], b[ob + j * ib]);
        }
    };
    if n >= super::PAR_MIN {
        out.par_chunks_mut(inner).enumerate().for_each(row);
    } else {
        out.chunks_mut(inner).enumerate().for_each(row);
    }
    out
}

/// Sums `g` (of the broadcast shape) down to `shape`: the adjoint of broadcasting. Works on rows
/// of the innermost (coalesced) dimension: added as a slice when that dimension is kept, summed
/// to one value when it is reduced.
fn reduce_to<T>(g: &[T], gsh: &[usize], shape: &[usize]) -> Vec<T>
where
    T: Copy + Default + std::ops::AddAssign,
{
    let mut strides = vec![broadcast_strides(shape, gsh)];
    let dims = coalesce(gsh, &mut strides);
    let s = &strides[0];
    let mut out = vec![T::default(); numel_of(shape)];
    let last = dims.len() - 1;
    let inner = dims[last];
    for (r, row) in g.chunks(inner.max(1)).enumerate() {
        let (mut off, mut rem) = (0, r);
        for d in (0..last).rev() {
            off += (rem % dims[d]) * s[d];
            rem /= dims[d];
        }
        if s[last] == 0 {
            let mut acc = T::default();
            for &v in row {
                acc += v;
            }
            out[off] += acc;
        } else {
            for (o, &v) in out[off..off + inner].iter_mut().zip(row) {
                *o += v;
            }
        }
    }
    out
}

impl Tensor {
    /// Sums over broadcast dimensions so the result has `shape` (which must broadcast to
    /// this tensor's shape). VJP: `dx = broadcast_to(dy)`.
    pub fn sum_to(&self, shape: &[usize]) -> Result<Tensor> {
        if self.shape() == shape {
            return Ok(self.clone());
        }
        let full = broadcast_shape("sum_to", shape, self.shape())?;
        if full != self.shape() {
            return Err(Error::ShapeMismatch {
                op: "sum_to",
                lhs: self.shape().to_vec(),
                rhs: shape.to_vec(),
            });
        }
        let storage = match self.dtype() {
            DType::F32 => Storage::from_f32(reduce_to(self.read().f32("sum_to")?, &full, shape)),
            DType::C32 => {
                Storage::from_c32(reduce_to::<C32>(self.read().c32("sum_to")?, &full, shape))
            }
        };
        Ok(Tensor::from_op(
            shape.to_vec(),
            storage,
            "sum_to",
            &[self],
            move |g| Ok(vec![Some(g.broadcast_to(&full)?)]),
        ))
    }

    /// Repeats this tensor along broadcast dimensions to `shape`. VJP: `dx = sum_to(dy)`.
    pub fn broadcast_to(&self, shape: &[usize]) -> Result<Tensor> {
        if self.shape() == shape {
            return Ok(self.clone());
        }
        let full = broadcast_shape("broadcast_to", self.shape(), shape)?;
        if full != shape {
            return Err(Error::ShapeMismatch {
                op: "broadcast_to",
                lhs: self.shape().to_vec(),
                rhs: shape.to_vec(),
            });
        }
        let xs = self.shape().to_vec();
        let storage = match self.dtype() {
            DType::F32 => Storage::from_f32(broadcast_binary(
                self.read().f32("broadcast_to")?,
                &xs,
                &[0.0f32],
                &[],
                shape,
                |x, _| x,
            )),
            DType::C32 => Storage::from_c32(broadcast_binary(
                self.read().c32("broadcast_to")?,
                &xs,
                &[C32::new(0.0, 0.0)],
                &[],
                shape,
                |x, _| x,
            )),
        };
        Ok(Tensor::from_op(
            shape.to_vec(),
            storage,
            "broadcast_to",
            &[self],
            move |g| Ok(vec![Some(g.sum_to(&xs)?)]),
        ))
    }
}
