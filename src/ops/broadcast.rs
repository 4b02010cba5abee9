//! NumPy broadcasting for the binary ops, and its adjoint `sum_to` (summing a gradient back
//! to an operand's shape) with `broadcast_to`.

use super::elementwise::BinOp;
use crate::error::{Error, Result};
use crate::gpu::broadcast::{self as gb, Walk};
use crate::gpu::elementwise::{self as gew, Broadcast};
use crate::gpu::{reduce, GpuContext};
use crate::storage::{gpu_of, Storage};
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
        let storage = match (gpu_of("sum_to", &[self])?, self.dtype()) {
            (Some(ctx), _) => gpu_sum_to(ctx, self, &full, shape)?,
            (None, DType::F32) => {
                Storage::from_f32(reduce_to(self.read().f32("sum_to")?, &full, shape))
            }
            (None, DType::C32) => {
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
            _ if self.device() == crate::Device::Gpu => gpu_broadcast_to(self, shape)?,
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

/// Row-major (contiguous) strides of `shape`.
pub(crate) fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![0; shape.len()];
    let mut acc = 1;
    for i in (0..shape.len()).rev() {
        s[i] = acc;
        acc *= shape[i];
    }
    s
}

/// A walk in words: complex elements become a trailing pair of stride 1 (other strides doubled).
pub(crate) fn word_walk(mut w: Walk, complex: bool) -> Walk {
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

/// GPU branch of the broadcasting binary ops (`elementwise.rs`): same-shape and scalar real
/// operands through `elementwise.wgsl`, everything else through the general strided kernel.
pub(crate) fn gpu_binary(
    ctx: &GpuContext,
    op: BinOp,
    a: &Tensor,
    b: &Tensor,
    out: &[usize],
) -> Result<Storage> {
    let name = op.name();
    let (ab, bb) = (a.gbuf(name)?, b.gbuf(name)?);
    let dtype = a.dtype();
    if dtype == DType::F32 && a.shape() == out {
        let bc = if b.numel() == a.numel() && b.shape().iter().product::<usize>() > 0 {
            Some(Broadcast::Same)
        } else if b.numel() == 1 {
            Some(Broadcast::Scalar)
        } else {
            None
        };
        // `Same` needs identical layouts: b's shape equals out up to leading 1s.
        let same_layout = b
            .shape()
            .iter()
            .rev()
            .zip(out.iter().rev())
            .all(|(x, y)| x == y);
        if let Some(bc) = bc.filter(|bc| *bc == Broadcast::Scalar || same_layout) {
            let gop = match op {
                BinOp::Add => gew::Binary::Add,
                BinOp::Sub => gew::Binary::Sub,
                BinOp::Mul => gew::Binary::Mul,
                BinOp::Div => gew::Binary::Div,
            };
            return Ok(Storage::gpu(gew::binary(ctx, gop, &ab, &bb, bc)?, dtype));
        }
    }
    let mut strides = vec![
        broadcast_strides(a.shape(), out),
        broadcast_strides(b.shape(), out),
    ];
    let dims = coalesce(out, &mut strides);
    let [sa, sb]: [Vec<usize>; 2] = [strides[0].clone(), strides[1].clone()];
    let gop = match op {
        BinOp::Add => gb::BinOp::Add,
        BinOp::Sub => gb::BinOp::Sub,
        BinOp::Mul => gb::BinOp::Mul,
        BinOp::Div => gb::BinOp::Div,
    };
    let walk = Walk { dims, sa, sb };
    let buf = gb::binary(ctx, gop, &ab, &bb, &walk, dtype == DType::C32)?;
    Ok(Storage::gpu(buf, dtype))
}

/// GPU `sum_to`: reduces the dimensions of `full` that `shape` broadcasts (fixed order). Real
/// sums to a scalar, over leading or over trailing dimensions use `reduce.wgsl`'s tree and
/// strided kernels; the rest the general `sum_to` kernel.
fn gpu_sum_to(ctx: &GpuContext, x: &Tensor, full: &[usize], shape: &[usize]) -> Result<Storage> {
    const OP: &str = "sum_to";
    let dtype = x.dtype();
    let complex = dtype == DType::C32;
    if numel_of(full) == 0 {
        return Storage::zeros(numel_of(shape), dtype, crate::Device::Gpu);
    }
    let xb = x.gbuf(OP)?;
    if !complex && numel_of(shape) == 1 {
        return Ok(Storage::gpu(reduce::sum_all(ctx, &xb, 1.0)?, dtype));
    }
    let tstr = broadcast_strides(shape, full);
    let istr = contiguous_strides(full);
    // (size, input stride) of the kept and of the reduced dimensions
    let mut kept: Vec<(usize, usize)> = vec![];
    let mut red: Vec<(usize, usize)> = vec![];
    for d in 0..full.len() {
        if full[d] <= 1 {
            continue;
        }
        let list = if tstr[d] != 0 { &mut kept } else { &mut red };
        match list.last_mut() {
            // merge with the previous dimension when contiguous with it
            Some(last) if last.1 == istr[d] * full[d] => *last = (last.0 * full[d], istr[d]),
            _ => list.push((full[d], istr[d])),
        }
    }
    if !complex && kept.len() == 1 && red.len() == 1 {
        let ((k, ks), (r, rs)) = (kept[0], red[0]);
        if ks == 1 && rs == k {
            return Ok(Storage::gpu(
                reduce::sum_strided(ctx, &xb, r, k, 1.0)?,
                dtype,
            ));
        }
        if rs == 1 && ks == r {
            return Ok(Storage::gpu(reduce::sum_rows(ctx, &xb, r, 1.0)?, dtype));
        }
    }
    let (kd, ks): (Vec<usize>, Vec<usize>) = kept.into_iter().unzip();
    let (rd, rs): (Vec<usize>, Vec<usize>) = red.into_iter().unzip();
    let buf = gb::sum_to(ctx, &xb, (&kd, &ks), (&rd, &rs), complex)?;
    Ok(Storage::gpu(buf, dtype))
}

/// GPU `broadcast_to`: a strided copy with stride 0 along the broadcast dimensions.
fn gpu_broadcast_to(x: &Tensor, shape: &[usize]) -> Result<Storage> {
    const OP: &str = "broadcast_to";
    let ctx = crate::device::gpu_context()?;
    let dtype = x.dtype();
    let complex = dtype == DType::C32;
    let mut strides = vec![
        broadcast_strides(x.shape(), shape),
        contiguous_strides(shape),
    ];
    let dims = coalesce(shape, &mut strides);
    let walk = Walk {
        dims,
        sa: strides[0].clone(),
        sb: strides[1].clone(),
    };
    let n = numel_of(shape) * if complex { 2 } else { 1 };
    let out = ctx.alloc(n)?;
    gb::copy_strided(ctx, &x.gbuf(OP)?, 0, &out, 0, &word_walk(walk, complex))?;
    Ok(Storage::gpu(out, dtype))
}
