//! Shape ops: concatenation and slicing along one axis (each the other's adjoint), reshape (a
//! view: the storage is shared) and moves between devices.

use crate::backend::cpu::strided::gather;
use crate::backend::gpu::broadcast::copy_strided;
use crate::backend::gpu::{GpuBuffer, GpuContext};
use crate::backend::layout::{word_walk, Walk};
use crate::engine::device::Device;
use crate::engine::dispatch::{same_dtype, Args, Kernel, Meta, Out};
use crate::engine::storage::{CpuStorage, DType};
use crate::engine::tensor::{numel_of, Backward, Saved, Tensor};
use crate::error::{Error, Result};

/// `(outer, inner)` sizes around `axis`.
fn around(shape: &[usize], axis: usize) -> (usize, usize) {
    (
        shape[..axis].iter().product(),
        shape[axis + 1..].iter().product(),
    )
}

/// GPU copy of `outer` blocks of `block` elements: from `src` (blocks `src_pitch` apart, from
/// `src_off`) into `dst` (blocks `dst_pitch` apart, from `dst_off`); all in elements.
#[allow(clippy::too_many_arguments)]
fn gpu_blocks(
    ctx: &GpuContext,
    complex: bool,
    src: &GpuBuffer,
    (src_off, src_pitch): (usize, usize),
    dst: &GpuBuffer,
    (dst_off, dst_pitch): (usize, usize),
    (outer, block): (usize, usize),
) -> Result<()> {
    let k = if complex { 2 } else { 1 };
    let walk = Walk {
        dims: vec![outer, block],
        sa: vec![src_pitch, 1],
        sb: vec![dst_pitch, 1],
    };
    copy_strided(
        ctx,
        src,
        k * src_off,
        dst,
        k * dst_off,
        &word_walk(walk, complex),
    )
}

/// Concatenation of the inputs along `axis`.
struct Cat {
    axis: usize,
}

impl Kernel for Cat {
    fn name(&self) -> &'static str {
        "cat"
    }
    fn signature(&self, x: &[Meta]) -> Result<Vec<Out>> {
        let dtype = same_dtype("cat", x)?;
        let first = x[0].shape;
        if self.axis >= first.len() {
            return Err(Error::shape("cat", first, format!("no axis {}", self.axis)));
        }
        let mut shape = first.to_vec();
        shape[self.axis] = 0;
        for m in x {
            let mut s = m.shape.to_vec();
            let ok = s.len() == shape.len() && {
                s[self.axis] = 0;
                s == shape
            };
            if !ok {
                return Err(Error::ShapeMismatch {
                    op: "cat",
                    lhs: first.to_vec(),
                    rhs: m.shape.to_vec(),
                });
            }
        }
        shape[self.axis] = x.iter().map(|m| m.shape[self.axis]).sum();
        Ok(vec![Out::new(shape, dtype)])
    }
    fn cpu(&self, x: &Args<&CpuStorage>) -> Result<Vec<CpuStorage>> {
        let lens: Vec<usize> = (0..x.len()).map(|i| x.shape(i)[self.axis]).collect();
        let (outer, inner) = around(x.shape(0), self.axis);
        Ok(vec![match x.dtype(0) {
            DType::F32 => {
                let parts = (0..x.len())
                    .map(|i| x.real(i))
                    .collect::<Result<Vec<_>>>()?;
                CpuStorage::F32(gather(&parts, &lens, outer, inner))
            }
            DType::C32 => {
                let parts = (0..x.len())
                    .map(|i| x.complex(i))
                    .collect::<Result<Vec<_>>>()?;
                CpuStorage::C32(gather(&parts, &lens, outer, inner))
            }
        }])
    }
    fn gpu(&self, ctx: &GpuContext, x: &Args<&GpuBuffer>) -> Result<Vec<GpuBuffer>> {
        let lens: Vec<usize> = (0..x.len()).map(|i| x.shape(i)[self.axis]).collect();
        let (outer, inner) = around(x.shape(0), self.axis);
        let complex = x.dtype(0) == DType::C32;
        let total = lens.iter().sum::<usize>() * inner;
        let out = ctx.alloc(outer * total * x.dtype(0).words())?;
        let mut off = 0;
        for (i, &l) in lens.iter().enumerate() {
            let block = l * inner;
            gpu_blocks(
                ctx,
                complex,
                x.buf(i),
                (0, block),
                &out,
                (off, total),
                (outer, block),
            )?;
            off += block;
        }
        Ok(vec![out])
    }
}

impl Backward for Cat {
    // y = cat(x_i)  =>  dx_i = narrow(dy, axis, offset_i, len_i)
    fn backward(&self, s: &Saved, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let mut off = 0;
        let mut out = Vec::new();
        for t in s.inputs {
            let l = t.shape()[self.axis];
            out.push(Some(g.narrow(self.axis, off, l)?));
            off += l;
        }
        Ok(out)
    }
}

/// Elements `start..start+len` along `axis`.
struct Narrow {
    axis: usize,
    start: usize,
    len: usize,
}

impl Kernel for Narrow {
    fn name(&self) -> &'static str {
        "narrow"
    }
    fn signature(&self, x: &[Meta]) -> Result<Vec<Out>> {
        let s = x[0].shape;
        if self.axis >= s.len() || self.start + self.len > s[self.axis] {
            return Err(Error::shape(
                "narrow",
                s,
                format!(
                    "axis {} range {}..{} out of bounds",
                    self.axis,
                    self.start,
                    self.start + self.len
                ),
            ));
        }
        let mut shape = s.to_vec();
        shape[self.axis] = self.len;
        Ok(vec![Out::new(shape, x[0].dtype)])
    }
    fn cpu(&self, x: &Args<&CpuStorage>) -> Result<Vec<CpuStorage>> {
        let s = x.shape(0);
        let (outer, inner) = around(s, self.axis);
        let n = s[self.axis];
        let pick = |o: usize| (o * n + self.start) * inner..(o * n + self.start + self.len) * inner;
        Ok(vec![match x.dtype(0) {
            DType::F32 => {
                let v = x.real(0)?;
                CpuStorage::F32((0..outer).flat_map(|o| v[pick(o)].to_vec()).collect())
            }
            DType::C32 => {
                let v = x.complex(0)?;
                CpuStorage::C32((0..outer).flat_map(|o| v[pick(o)].to_vec()).collect())
            }
        }])
    }
    fn gpu(&self, ctx: &GpuContext, x: &Args<&GpuBuffer>) -> Result<Vec<GpuBuffer>> {
        let s = x.shape(0);
        let (outer, inner) = around(s, self.axis);
        let block = self.len * inner;
        let out = ctx.alloc(outer * block * x.dtype(0).words())?;
        gpu_blocks(
            ctx,
            x.dtype(0) == DType::C32,
            x.buf(0),
            (self.start * inner, s[self.axis] * inner),
            &out,
            (0, block),
            (outer, block),
        )?;
        Ok(vec![out])
    }
}

impl Backward for Narrow {
    // y = x[start..start+len along axis]  =>  dx = dy placed back, zeros elsewhere
    fn backward(&self, s: &Saved, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let full = s.inputs[0].shape();
        let n = full[self.axis];
        let mut parts = Vec::new();
        let mut zshape = full.to_vec();
        if self.start > 0 {
            zshape[self.axis] = self.start;
            parts.push(g.zeros_of(&zshape)?);
        }
        parts.push(g.clone());
        if self.start + self.len < n {
            zshape[self.axis] = n - self.start - self.len;
            parts.push(g.zeros_of(&zshape)?);
        }
        Ok(vec![Some(Tensor::cat(&parts, self.axis)?)])
    }
}

/// The VJP of a view: the gradient reshaped back.
struct Reshape;

impl Backward for Reshape {
    // y = reshape(x)  =>  dx = reshape(dy)
    fn backward(&self, s: &Saved, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(g.reshape(s.inputs[0].shape())?)])
    }
}

/// The VJP of a move between devices: the gradient moved back.
struct ToDevice(Device);

impl Backward for ToDevice {
    // y = x on another device  =>  dx = dy moved to x's device
    fn backward(&self, _: &Saved, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(g.to_device(self.0)?)])
    }
}

impl Tensor {
    /// Concatenates tensors of one dtype along `axis` (all other sizes equal).
    /// VJP: each input gets its slice `narrow(axis, offset, len)` of `dy`.
    pub fn cat(tensors: &[Tensor], axis: usize) -> Result<Tensor> {
        if tensors.is_empty() {
            return Err(Error::arg("cat", "no tensors"));
        }
        let inputs: Vec<&Tensor> = tensors.iter().collect();
        Tensor::apply(Cat { axis }, &inputs)
    }

    /// Concatenation along the channel axis (1).
    pub fn cat_channels(tensors: &[Tensor]) -> Result<Tensor> {
        Tensor::cat(tensors, 1)
    }

    /// Elements `start..start+len` along `axis`. VJP: `dy` placed back, zeros elsewhere.
    pub fn narrow(&self, axis: usize, start: usize, len: usize) -> Result<Tensor> {
        Tensor::apply(Narrow { axis, start, len }, &[self])
    }

    /// A view with another shape of the same number of elements (shares the data).
    /// VJP: `dx = reshape(dy)`.
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        if numel_of(shape) != self.numel() {
            return Err(Error::ShapeMismatch {
                op: "reshape",
                lhs: self.shape().to_vec(),
                rhs: shape.to_vec(),
            });
        }
        let storage = self.read().clone();
        Ok(Tensor::record(
            "reshape",
            shape.to_vec(),
            storage,
            &[self],
            vec![],
            Reshape,
        ))
    }

    /// This tensor on `device`: the same handle when already there, else a copy (an upload or
    /// a download). Differentiable: the gradient is moved back (`dx = to_device(dy, x's device)`).
    pub fn to_device(&self, device: Device) -> Result<Tensor> {
        let src = self.device();
        if src == device {
            return Ok(self.clone());
        }
        let storage = self.read().to_device(device)?;
        Ok(Tensor::record(
            "to_device",
            self.shape().to_vec(),
            storage,
            &[self],
            vec![],
            ToDevice(src),
        ))
    }
}
