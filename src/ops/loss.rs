//! The mean squared error of two real tensors, fused into one pass each way.

use crate::backend::cpu::{par_map, par_zip, sum_f64};
use crate::backend::gpu::{reduce, GpuBuffer, GpuContext};
use crate::engine::dispatch::{expect_real, same_shape, Args, Kernel, Meta, Out};
use crate::engine::storage::CpuStorage;
use crate::engine::tensor::{Backward, Saved, Tensor};
use crate::error::Result;

/// `mean((a - b)^2)`, shape `[]`.
struct Mse;

impl Kernel for Mse {
    fn name(&self) -> &'static str {
        "mse_loss"
    }
    fn signature(&self, x: &[Meta]) -> Result<Vec<Out>> {
        expect_real(self.name(), x)?;
        same_shape(self.name(), x)?;
        Ok(vec![Out::real(vec![])])
    }
    fn cpu(&self, x: &Args<&CpuStorage>) -> Result<Vec<CpuStorage>> {
        let d = par_zip(x.real(0)?, x.real(1)?, |a, b| a - b);
        let n = d.len().max(1) as f64;
        let loss = sum_f64(&par_map(&d, |d| d * d)) / n;
        Ok(vec![CpuStorage::F32(vec![loss as f32])])
    }
    fn gpu(&self, ctx: &GpuContext, x: &Args<&GpuBuffer>) -> Result<Vec<GpuBuffer>> {
        Ok(vec![reduce::mse(ctx, x.buf(0), x.buf(1))?])
    }
}

impl Backward for Mse {
    // L = mean((a - b)^2)  =>  da = 2 (a - b) dL / n, db = -da
    fn backward(&self, s: &Saved, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let (a, b) = (&s.inputs[0], &s.inputs[1]);
        let ga = Tensor::compute(&MseGrad, &[a, b, g])?.remove(0);
        let gb = b.is_tracked().then(|| ga.neg()).transpose()?;
        Ok(vec![Some(ga), gb])
    }
}

/// `da = 2 (a - b) dy / n` from `(a, b, dy)` (dy read where it lives: no readback).
struct MseGrad;

impl Kernel for MseGrad {
    fn name(&self) -> &'static str {
        "mse_loss_backward"
    }
    fn signature(&self, x: &[Meta]) -> Result<Vec<Out>> {
        expect_real(self.name(), x)?;
        same_shape(self.name(), &x[..2])?;
        Ok(vec![Out::real(x[0].shape.to_vec())])
    }
    fn cpu(&self, x: &Args<&CpuStorage>) -> Result<Vec<CpuStorage>> {
        let (a, b, g) = (x.real(0)?, x.real(1)?, x.real(2)?);
        let n = a.len().max(1) as f64;
        let c = (2.0 * g[0] as f64 / n) as f32;
        let d = par_zip(a, b, |a, b| a - b);
        Ok(vec![CpuStorage::F32(par_map(&d, |d| c * d))])
    }
    fn gpu(&self, ctx: &GpuContext, x: &Args<&GpuBuffer>) -> Result<Vec<GpuBuffer>> {
        Ok(vec![reduce::mse_backward(
            ctx,
            x.buf(0),
            x.buf(1),
            x.buf(2),
        )?])
    }
}

impl Tensor {
    /// Mean squared error `mean((a - b)^2)` between two real tensors of one shape, shape `[]`.
    /// VJP: `da = 2 (a - b) dy / n`, `db = -da`.
    pub fn mse_loss(&self, target: &Tensor) -> Result<Tensor> {
        Tensor::apply(Mse, &[self, target])
    }
}
