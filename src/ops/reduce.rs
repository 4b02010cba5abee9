//! Reductions: sum and mean over everything or over given axes (real and complex), and the
//! maximum.

use crate::backend::cpu::{par_map, sum_c64, sum_f64};
use crate::backend::gpu::{broadcast as gstrided, reduce, GpuBuffer, GpuContext};
use crate::engine::dispatch::{expect_real, Args, Kernel, Meta, Out};
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

/// The largest element, shape `[]` (NaN propagates).
struct MaxAll;

impl Kernel for MaxAll {
    fn name(&self) -> &'static str {
        "max_all"
    }
    fn signature(&self, x: &[Meta]) -> Result<Vec<Out>> {
        expect_real(self.name(), x)?;
        if x[0].shape.iter().product::<usize>() == 0 {
            return Err(Error::shape(self.name(), x[0].shape, "empty"));
        }
        Ok(vec![Out::real(vec![])])
    }
    fn cpu(&self, x: &Args<&CpuStorage>) -> Result<Vec<CpuStorage>> {
        let v = x.real(0)?;
        let m = v[1..].iter().fold(v[0], |m, &y| {
            if y > m || (y.is_nan() && !m.is_nan()) {
                y
            } else {
                m
            }
        });
        Ok(vec![CpuStorage::F32(vec![m])])
    }
    fn gpu(&self, ctx: &GpuContext, x: &Args<&GpuBuffer>) -> Result<Vec<GpuBuffer>> {
        Ok(vec![reduce::max_all(ctx, x.buf(0))?])
    }
}

impl Backward for MaxAll {
    // y = max(x)  =>  dx = dy t / sum(t), t = 1 where x == y (PyTorch's even split of ties)
    fn backward(&self, s: &Saved, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let t = Tensor::compute(&Ties, &[&s.inputs[0], s.output])?.remove(0);
        let share = g.div(&t.sum_all()?)?;
        Ok(vec![Some(t.mul(&share)?)])
    }
}

/// `1` where x equals the 1-element max, else `0`: inputs `(x, max)`.
struct Ties;

impl Kernel for Ties {
    fn name(&self) -> &'static str {
        "max_all_ties"
    }
    fn signature(&self, x: &[Meta]) -> Result<Vec<Out>> {
        expect_real(self.name(), x)?;
        Ok(vec![Out::real(x[0].shape.to_vec())])
    }
    fn cpu(&self, x: &Args<&CpuStorage>) -> Result<Vec<CpuStorage>> {
        let m = x.real(1)?[0];
        let t = par_map(x.real(0)?, |v| {
            if v == m || (v.is_nan() && m.is_nan()) {
                1.0
            } else {
                0.0
            }
        });
        Ok(vec![CpuStorage::F32(t)])
    }
    fn gpu(&self, ctx: &GpuContext, x: &Args<&GpuBuffer>) -> Result<Vec<GpuBuffer>> {
        Ok(vec![reduce::ties(ctx, x.buf(0), x.buf(1))?])
    }
}

impl Tensor {
    /// The largest element, shape `[]` (NaN propagates). VJP: `dy` split evenly over the
    /// elements equal to the maximum (PyTorch's rule for ties).
    pub fn max_all(&self) -> Result<Tensor> {
        Tensor::apply(MaxAll, &[self])
    }
}
