//! 2x2 max pooling (stride 2; odd trailing rows/columns dropped, like PyTorch) and bilinear x2
//! upsampling (`align_corners = false`, PyTorch's default), NCHW.

use crate::backend::cpu::resample as cpu;
use crate::backend::gpu::{pool as gpool, upsample as gup, GpuBuffer, GpuContext};
use crate::engine::dispatch::{expect_real, Args, Kernel, Meta, Out};
use crate::engine::storage::CpuStorage;
use crate::engine::tensor::{Backward, Saved, Tensor};
use crate::error::{Error, Result};

/// Which resampling, and the direction: the forward of each, or its VJP (inputs `(x, dy)`
/// for the pool, `(dy)` for the upsampling).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Resample {
    MaxPool,
    MaxPoolGrad,
    Upsample,
    UpsampleGrad,
}

/// One of the four, described by the shape of the pooled or upsampled input x.
struct Op {
    kind: Resample,
    /// (N, C, H, W) of x.
    x: [usize; 4],
}

impl Op {
    fn planes(&self) -> usize {
        self.x[0] * self.x[1]
    }
}

impl Kernel for Op {
    fn name(&self) -> &'static str {
        match self.kind {
            Resample::MaxPool => "max_pool2d",
            Resample::MaxPoolGrad => "max_pool2d_backward",
            Resample::Upsample => "upsample_bilinear2d",
            Resample::UpsampleGrad => "upsample_bilinear2d_backward",
        }
    }
    fn signature(&self, x: &[Meta]) -> Result<Vec<Out>> {
        expect_real(self.name(), x)?;
        let [n, c, h, w] = self.x;
        Ok(vec![Out::real(match self.kind {
            Resample::MaxPool => vec![n, c, h / 2, w / 2],
            Resample::Upsample => vec![n, c, 2 * h, 2 * w],
            Resample::MaxPoolGrad | Resample::UpsampleGrad => self.x.to_vec(),
        })])
    }
    fn cpu(&self, x: &Args<&CpuStorage>) -> Result<Vec<CpuStorage>> {
        let [_, _, h, w] = self.x;
        Ok(vec![CpuStorage::F32(match self.kind {
            Resample::MaxPool => cpu::max_pool2d(x.real(0)?, h, w),
            Resample::MaxPoolGrad => cpu::max_pool2d_backward(x.real(0)?, x.real(1)?, h, w),
            Resample::Upsample => cpu::upsample_bilinear2d(x.real(0)?, h, w),
            Resample::UpsampleGrad => cpu::upsample_bilinear2d_backward(x.real(0)?, h, w),
        })])
    }
    fn gpu(&self, ctx: &GpuContext, x: &Args<&GpuBuffer>) -> Result<Vec<GpuBuffer>> {
        let ([_, _, h, w], q) = (self.x, self.planes());
        Ok(vec![match self.kind {
            Resample::MaxPool => gpool::max_pool2d(ctx, x.buf(0), q, h, w)?,
            Resample::MaxPoolGrad => gpool::max_pool2d_backward(ctx, x.buf(0), x.buf(1), q, h, w)?,
            Resample::Upsample => gup::upsample_bilinear2d(ctx, x.buf(0), q, h, w)?,
            Resample::UpsampleGrad => gup::upsample_bilinear2d_backward(ctx, x.buf(0), q, h, w)?,
        }])
    }
}

impl Backward for Op {
    // max pool: dx = dy routed to each window's argmax (first maximum on ties), zero elsewhere
    // upsample: dx = U^T dy (each dy pixel adds its four weights' share to its sources)
    fn backward(&self, s: &Saved, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let (kind, inputs) = match self.kind {
            Resample::MaxPool => (Resample::MaxPoolGrad, vec![&s.inputs[0], g]),
            _ => (Resample::UpsampleGrad, vec![g]),
        };
        let k = Op { kind, x: self.x };
        Ok(Tensor::compute(&k, &inputs)?
            .into_iter()
            .map(Some)
            .collect())
    }
}

fn nchw(t: &Tensor, op: &'static str) -> Result<[usize; 4]> {
    t.expect_rank(op, 4)?;
    let s = t.shape();
    Ok([s[0], s[1], s[2], s[3]])
}

impl Tensor {
    /// `y[n,c,i,j] = max of x[n,c,2i..2i+2, 2j..2j+2]`.
    /// VJP: `dx` is `dy` routed to each window's argmax (first maximum on ties), zero elsewhere.
    pub fn max_pool2d(&self) -> Result<Tensor> {
        let x = nchw(self, "max_pool2d")?;
        if x[2] < 2 || x[3] < 2 {
            return Err(Error::shape("max_pool2d", self.shape(), "needs H, W >= 2"));
        }
        let op = Op {
            kind: Resample::MaxPool,
            x,
        };
        Tensor::apply(op, &[self])
    }

    /// `y = bilinear x2 upsampling of x` (N, C, H, W) -> (N, C, 2H, 2W).
    /// VJP: the transpose: each `dy` pixel adds its four weights' share to its source pixels.
    pub fn upsample_bilinear2d(&self) -> Result<Tensor> {
        let x = nchw(self, "upsample_bilinear2d")?;
        let op = Op {
            kind: Resample::Upsample,
            x,
        };
        Tensor::apply(op, &[self])
    }
}
