//! Reductions: sum and mean over everything or over given axes (real and complex).

use crate::backend::cpu::{sum_c64, sum_f64};
use crate::backend::gpu::{broadcast as gstrided, reduce, GpuBuffer, GpuContext};
use crate::engine::dispatch::{Args, Kernel, Meta, Out};
use crate::engine::storage::{CpuStorage, DType};
use crate::engine::tensor::{Backward, Saved, Tensor};
use crate::error::{Error, Result};

/// The sum of all elements, shape `[]` (f64 accumulation on the CPU, fixed-order trees on the
/// GPU).
struct SumAll;

impl Kernel for SumAll {
    fn name(&self) -> &'static str {
        "sum_all"
    }
    fn signature(&self, x: &[Meta]) -> Result<Vec<Out>> {
        Ok(vec![Out::new(vec![], x[0].dtype)])
    }
    fn cpu(&self, x: &Args<&CpuStorage>) -> Result<Vec<CpuStorage>> {
        Ok(vec![match x.dtype(0) {
            DType::F32 => CpuStorage::F32(vec![sum_f64(x.real(0)?) as f32]),
            DType::C32 => CpuStorage::C32(vec![sum_c64(x.complex(0)?)]),
        }])
    }
    fn gpu(&self, ctx: &GpuContext, x: &Args<&GpuBuffer>) -> Result<Vec<GpuBuffer>> {
        let n: usize = x.shape(0).iter().product();
        Ok(vec![match x.dtype(0) {
            DType::F32 => reduce::sum_all(ctx, x.buf(0), 1.0)?,
            // complex: the general reduction kernel, one output of n terms
            DType::C32 => gstrided::sum_to(ctx, x.buf(0), (&[], &[]), (&[n], &[1]), true)?,
        }])
    }
}

impl Backward for SumAll {
    // y = sum(x)  =>  dx = dy broadcast to x's shape
    fn backward(&self, s: &Saved, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(g.broadcast_to(s.inputs[0].shape())?)])
    }
}

impl Tensor {
    /// Sum of all elements, shape `[]`. VJP: `dx = dy` broadcast to x's shape.
    pub fn sum_all(&self) -> Result<Tensor> {
        Tensor::apply(SumAll, &[self])
    }

    /// Mean of all elements, shape `[]`. VJP: `dx = dy / n`.
    pub fn mean_all(&self) -> Result<Tensor> {
        let n = self.numel().max(1);
        self.sum_all()?.scale(1.0 / n as f32)
    }

    /// Sum over `axes` (negative counts from the end); `keepdim` keeps them as size 1.
    /// VJP: `dx = dy` reshaped to keep the axes, broadcast to x's shape.
    pub fn sum_axes(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        let rank = self.rank() as isize;
        let mut reduced = vec![false; self.rank()];
        for &a in axes {
            let a2 = if a < 0 { a + rank } else { a };
            if !(0..rank).contains(&a2) {
                return Err(Error::arg(
                    "sum_axes",
                    format!("axis {a} out of range for rank {rank}"),
                ));
            }
            reduced[a2 as usize] = true;
        }
        let dims = self.shape().iter().zip(&reduced);
        let keep: Vec<usize> = dims.clone().map(|(&d, &r)| if r { 1 } else { d }).collect();
        let out_shape: Vec<usize> = if keepdim {
            keep.clone()
        } else {
            dims.filter(|(_, &r)| !r).map(|(&d, _)| d).collect()
        };
        self.sum_to(&keep)?.reshape(&out_shape)
    }

    /// Mean over `axes`. VJP: `dx = dy / count` broadcast back.
    pub fn mean_axes(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        let s = self.sum_axes(axes, keepdim)?;
        let count = self.numel() / s.numel().max(1);
        s.scale(1.0 / count.max(1) as f32)
    }
}
