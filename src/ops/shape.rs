//! Concatenation and slicing along one axis (real and complex); each is the other's adjoint.

use super::broadcast::word_walk;
use crate::error::{Error, Result};
use crate::gpu::broadcast::{copy_strided, Walk};
use crate::gpu::GpuContext;
use crate::storage::{gpu_of, Storage};
use crate::tensor::{DType, Tensor, C32};

/// GPU copy of `outer` blocks of `block` elements: from `src` (blocks `src_pitch` apart, from
/// `src_off`) into `dst` (blocks `dst_pitch` apart, from `dst_off`); all in elements.
#[allow(clippy::too_many_arguments)]
fn gpu_blocks(
    ctx: &GpuContext,
    src: &Tensor,
    src_off: usize,
    src_pitch: usize,
    dst: &crate::gpu::GpuBuffer,
    dst_off: usize,
    dst_pitch: usize,
    (outer, block): (usize, usize),
) -> Result<()> {
    let complex = src.dtype() == DType::C32;
    let k = if complex { 2 } else { 1 };
    let walk = word_walk(
        Walk {
            dims: vec![outer, block],
            sa: vec![src_pitch, 1],
            sb: vec![dst_pitch, 1],
        },
        complex,
    );
    copy_strided(
        ctx,
        &src.gbuf("copy")?,
        k * src_off,
        dst,
        k * dst_off,
        &walk,
    )
}

/// `(outer, inner)` sizes around `axis`.
fn around(shape: &[usize], axis: usize) -> (usize, usize) {
    (
        shape[..axis].iter().product(),
        shape[axis + 1..].iter().product(),
    )
}

fn gather<T: Copy>(parts: &[&[T]], lens: &[usize], outer: usize, inner: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
    for o in 0..outer {
        for (p, &l) in parts.iter().zip(lens) {
            out.extend_from_slice(&p[o * l * inner..(o + 1) * l * inner]);
        }
    }
    out
}

impl Tensor {
    /// Concatenates tensors of one dtype along `axis` (all other sizes equal).
    /// VJP: each input gets its slice `narrow(axis, offset, len)` of `dy`.
    pub fn cat(tensors: &[Tensor], axis: usize) -> Result<Tensor> {
        let first = tensors
            .first()
            .ok_or_else(|| Error::arg("cat", "no tensors"))?;
        if axis >= first.rank() {
            return Err(Error::shape(
                "cat",
                first.shape(),
                format!("no axis {axis}"),
            ));
        }
        let mut shape = first.shape().to_vec();
        shape[axis] = 0;
        let mut lens = Vec::new();
        for t in tensors {
            let mut s = t.shape().to_vec();
            if s.len() != shape.len() || t.dtype() != first.dtype() {
                return Err(Error::ShapeMismatch {
                    op: "cat",
                    lhs: first.shape().to_vec(),
                    rhs: s,
                });
            }
            lens.push(s[axis]);
            s[axis] = 0;
            if s != shape {
                return Err(Error::ShapeMismatch {
                    op: "cat",
                    lhs: first.shape().to_vec(),
                    rhs: t.shape().to_vec(),
                });
            }
        }
        shape[axis] = lens.iter().sum();
        let (outer, inner) = around(&shape, axis);
        let inputs: Vec<&Tensor> = tensors.iter().collect();
        if let Some(ctx) = gpu_of("cat", &inputs)? {
            let total = shape[axis] * inner;
            let words = outer * total * if first.dtype() == DType::C32 { 2 } else { 1 };
            let out = ctx.alloc(words)?;
            let mut off = 0;
            for (t, &l) in tensors.iter().zip(&lens) {
                gpu_blocks(ctx, t, 0, l * inner, &out, off, total, (outer, l * inner))?;
                off += l * inner;
            }
            let storage = Storage::gpu(out, first.dtype());
            return Ok(Tensor::from_op(shape, storage, "cat", &inputs, move |g| {
                let mut off = 0;
                let mut out = Vec::new();
                for &l in &lens {
                    out.push(Some(g.narrow(axis, off, l)?));
                    off += l;
                }
                Ok(out)
            }));
        }
        let guards: Vec<_> = tensors.iter().map(|t| t.read()).collect();
        let storage = match first.dtype() {
            DType::F32 => {
                let parts = guards
                    .iter()
                    .map(|g| g.f32("cat"))
                    .collect::<Result<Vec<_>>>()?;
                Storage::from_f32(gather(&parts, &lens, outer, inner))
            }
            DType::C32 => {
                let parts = guards
                    .iter()
                    .map(|g| g.c32("cat"))
                    .collect::<Result<Vec<_>>>()?;
                Storage::from_c32(gather::<C32>(&parts, &lens, outer, inner))
            }
        };
        drop(guards);
        Ok(Tensor::from_op(shape, storage, "cat", &inputs, move |g| {
            let mut off = 0;
            let mut out = Vec::new();
            for &l in &lens {
                out.push(Some(g.narrow(axis, off, l)?));
                off += l;
            }
            Ok(out)
        }))
    }

    /// Concatenation along the channel axis (1).
    pub fn cat_channels(tensors: &[Tensor]) -> Result<Tensor> {
        Tensor::cat(tensors, 1)
    }

    /// Elements `start..start+len` along `axis`. VJP: `dy` placed back, zeros elsewhere.
    pub fn narrow(&self, axis: usize, start: usize, len: usize) -> Result<Tensor> {
        let s = self.shape().to_vec();
        if axis >= s.len() || start + len > s[axis] {
            return Err(Error::shape(
                "narrow",
                &s,
                format!("axis {axis} range {start}..{} out of bounds", start + len),
            ));
        }
        let (outer, inner) = around(&s, axis);
        let n = s[axis];
        let pick = |o: usize| (o * n + start) * inner..(o * n + start + len) * inner;
        let storage = match self.dtype() {
            _ if self.device() == crate::Device::Gpu => {
                let ctx = crate::device::gpu_context()?;
                let k = if self.dtype() == DType::C32 { 2 } else { 1 };
                let out = ctx.alloc(k * outer * len * inner)?;
                let (src_pitch, block) = (n * inner, len * inner);
                gpu_blocks(
                    ctx,
                    self,
                    start * inner,
                    src_pitch,
                    &out,
                    0,
                    block,
                    (outer, block),
                )?;
                Storage::gpu(out, self.dtype())
            }
            DType::F32 => {
                let g = self.read();
                let x = g.f32("narrow")?;
                Storage::from_f32((0..outer).flat_map(|o| x[pick(o)].to_vec()).collect())
            }
            DType::C32 => {
                let g = self.read();
                let x = g.c32("narrow")?;
                Storage::from_c32((0..outer).flat_map(|o| x[pick(o)].to_vec()).collect())
            }
        };
        let mut shape = s.clone();
        shape[axis] = len;
        Ok(Tensor::from_op(
            shape,
            storage,
            "narrow",
            &[self],
            move |g| {
                let mut parts = Vec::new();
                let mut zshape = s.clone();
                if start > 0 {
                    zshape[axis] = start;
                    parts.push(zeros_of(g, &zshape));
                }
                parts.push(g.clone());
                if start + len < n {
                    zshape[axis] = n - start - len;
                    parts.push(zeros_of(g, &zshape));
                }
                Ok(vec![Some(Tensor::cat(&parts, axis)?)])
            },
        ))
    }
}

fn zeros_of(like: &Tensor, shape: &[usize]) -> Tensor {
    like.zeros_of(shape)
}
