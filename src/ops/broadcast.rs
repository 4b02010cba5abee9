//! `sum_to` (summing a gradient back to an operand's shape: the adjoint of broadcasting) and
//! `broadcast_to` (its adjoint), real and complex.

use crate::backend::cpu::strided::{broadcast_binary, reduce_to};
use crate::backend::gpu::broadcast as gstrided;
use crate::backend::gpu::{reduce, GpuBuffer, GpuContext};
use crate::backend::layout::{broadcast_shape, broadcast_strides, coalesce, contiguous_strides};
use crate::backend::layout::{word_walk, Walk};
use crate::backend::C32;
use crate::engine::dispatch::{Args, Kernel, Meta, Out};
use crate::engine::storage::{CpuStorage, DType};
use crate::engine::tensor::{numel_of, Backward, Saved, Tensor};
use crate::error::{Error, Result};

/// Sums over the dimensions of the input that `shape` broadcasts.
struct SumTo {
    shape: Vec<usize>,
}

impl Kernel for SumTo {
    fn name(&self) -> &'static str {
        "sum_to"
    }
    fn signature(&self, x: &[Meta]) -> Result<Vec<Out>> {
        let full = broadcast_shape("sum_to", &self.shape, x[0].shape)?;
        if full != x[0].shape {
            return Err(Error::ShapeMismatch {
                op: "sum_to",
                lhs: x[0].shape.to_vec(),
                rhs: self.shape.clone(),
            });
        }
        Ok(vec![Out::new(self.shape.clone(), x[0].dtype)])
    }
    fn cpu(&self, x: &Args<&CpuStorage>) -> Result<Vec<CpuStorage>> {
        let full = x.shape(0);
        Ok(vec![match x.dtype(0) {
            DType::F32 => CpuStorage::F32(reduce_to(x.real(0)?, full, &self.shape)),
            DType::C32 => CpuStorage::C32(reduce_to::<C32>(x.complex(0)?, full, &self.shape)),
        }])
    }
    /// Reduces the dimensions of `full` that `shape` broadcasts (fixed order). Real sums to a
    /// scalar, over leading or over trailing dimensions use `reduce.wgsl`'s tree and strided
    /// kernels; the rest the general `sum_to` kernel.
    fn gpu(&self, ctx: &GpuContext, x: &Args<&GpuBuffer>) -> Result<Vec<GpuBuffer>> {
        let (full, shape) = (x.shape(0), &self.shape);
        let complex = x.dtype(0) == DType::C32;
        let words = x.dtype(0).words();
        if numel_of(full) == 0 {
            return Ok(vec![ctx.zeros(numel_of(shape) * words)?]);
        }
        let xb = x.buf(0);
        if !complex && numel_of(shape) == 1 {
            return Ok(vec![reduce::sum_all(ctx, xb, 1.0)?]);
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
                return Ok(vec![reduce::sum_strided(ctx, xb, r, k, 1.0)?]);
            }
            if rs == 1 && ks == r {
                return Ok(vec![reduce::sum_rows(ctx, xb, r, 1.0)?]);
            }
        }
        let (kd, ks): (Vec<usize>, Vec<usize>) = kept.into_iter().unzip();
        let (rd, rs): (Vec<usize>, Vec<usize>) = red.into_iter().unzip();
        Ok(vec![gstrided::sum_to(
            ctx,
            xb,
            (&kd, &ks),
            (&rd, &rs),
            complex,
        )?])
    }
}

impl Backward for SumTo {
    // y = sum_to(x)  =>  dx = broadcast_to(dy)
    fn backward(&self, s: &Saved, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(g.broadcast_to(s.inputs[0].shape())?)])
    }
}

/// Repeats the input along broadcast dimensions.
struct BroadcastTo {
    shape: Vec<usize>,
}

impl Kernel for BroadcastTo {
    fn name(&self) -> &'static str {
        "broadcast_to"
    }
    fn signature(&self, x: &[Meta]) -> Result<Vec<Out>> {
        let full = broadcast_shape("broadcast_to", x[0].shape, &self.shape)?;
        if full != self.shape {
            return Err(Error::ShapeMismatch {
                op: "broadcast_to",
                lhs: x[0].shape.to_vec(),
                rhs: self.shape.clone(),
            });
        }
        Ok(vec![Out::new(self.shape.clone(), x[0].dtype)])
    }
    fn cpu(&self, x: &Args<&CpuStorage>) -> Result<Vec<CpuStorage>> {
        let (xs, s) = (x.shape(0), &self.shape[..]);
        Ok(vec![match x.dtype(0) {
            DType::F32 => {
                CpuStorage::F32(broadcast_binary(x.real(0)?, xs, &[0f32], &[], s, |v, _| v))
            }
            DType::C32 => CpuStorage::C32(broadcast_binary(
                x.complex(0)?,
                xs,
                &[C32::new(0.0, 0.0)],
                &[],
                s,
                |v, _| v,
            )),
        }])
    }
    /// A strided copy with stride 0 along the broadcast dimensions.
    fn gpu(&self, ctx: &GpuContext, x: &Args<&GpuBuffer>) -> Result<Vec<GpuBuffer>> {
        let complex = x.dtype(0) == DType::C32;
        let shape = &self.shape;
        let mut strides = vec![
            broadcast_strides(x.shape(0), shape),
            contiguous_strides(shape),
        ];
        let dims = coalesce(shape, &mut strides);
        let walk = Walk {
            dims,
            sa: strides[0].clone(),
            sb: strides[1].clone(),
        };
        let out = ctx.alloc(numel_of(shape) * x.dtype(0).words())?;
        gstrided::copy_strided(ctx, x.buf(0), 0, &out, 0, &word_walk(walk, complex))?;
        Ok(vec![out])
    }
}

impl Backward for BroadcastTo {
    // y = broadcast_to(x)  =>  dx = sum_to(dy)
    fn backward(&self, s: &Saved, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(g.sum_to(s.inputs[0].shape())?)])
    }
}

impl Tensor {
    /// Sums over broadcast dimensions so the result has `shape` (which must broadcast to
    /// this tensor's shape). VJP: `dx = broadcast_to(dy)`.
    pub fn sum_to(&self, shape: &[usize]) -> Result<Tensor> {
        if self.shape() == shape {
            return Ok(self.clone());
        }
        Tensor::apply(
            SumTo {
                shape: shape.to_vec(),
            },
            &[self],
        )
    }

    /// Repeats this tensor along broadcast dimensions to `shape`. VJP: `dx = sum_to(dy)`.
    pub fn broadcast_to(&self, shape: &[usize]) -> Result<Tensor> {
        if self.shape() == shape {
            return Ok(self.clone());
        }
        Tensor::apply(
            BroadcastTo {
                shape: shape.to_vec(),
            },
            &[self],
        )
    }
}
