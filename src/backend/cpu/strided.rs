//! Strided host loops: broadcasting binary maps, the sum back to an operand's shape (the
//! adjoint of broadcasting), window copies (pad / crop) and block gathers (cat / narrow).

use crate::backend::layout::{broadcast_strides, coalesce};
use rayon::prelude::*;

fn numel_of(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// `out[i] = f(a[ia], b[ib])` over the broadcast shape `out_shape`.
pub fn broadcast_binary<T, U>(
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
pub fn reduce_to<T>(g: &[T], gsh: &[usize], shape: &[usize]) -> Vec<T>
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

/// Copies the window `[r0, r0+rows) x [c0, c0+cols)` of every (h, w) slice of `src` into the
/// window at `(dr0, dc0)` of every (dh, dw) slice of `dst`.
#[allow(clippy::too_many_arguments)]
pub fn copy_window<T: Copy>(
    src: &[T],
    (h, w): (usize, usize),
    (r0, c0): (usize, usize),
    dst: &mut [T],
    (dh, dw): (usize, usize),
    (dr0, dc0): (usize, usize),
    (rows, cols): (usize, usize),
) {
    if h * w == 0 || dh * dw == 0 {
        return;
    }
    for (s, d) in src.chunks(h * w).zip(dst.chunks_mut(dh * dw)) {
        for r in 0..rows {
            let so = (r0 + r) * w + c0;
            let do_ = (dr0 + r) * dw + dc0;
            d[do_..do_ + cols].copy_from_slice(&s[so..so + cols]);
        }
    }
}

/// Concatenation along one axis: `parts` (each `outer x lens[i] x inner`) interleaved.
pub fn gather<T: Copy>(parts: &[&[T]], lens: &[usize], outer: usize, inner: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
    for o in 0..outer {
        for (p, &l) in parts.iter().zip(lens) {
            out.extend_from_slice(&p[o * l * inner..(o + 1) * l * inner]);
        }
    }
    out
}
