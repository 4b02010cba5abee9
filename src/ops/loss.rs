//! Losses.

use super::reduce::sum_f64;
use crate::error::{Error, Result};
use crate::gpu::reduce as greduce;
use crate::storage::{gpu_of, Storage};
use crate::tensor::{DType, Tensor};

impl Tensor {
    /// Mean squared error `mean((a - b)^2)` between two real tensors of one shape, shape `[]`.
    /// VJP: `da = 2 (a - b) dy / n`, `db = -da`.
    pub fn mse_loss(&self, target: &Tensor) -> Result<Tensor> {
        if self.shape() != target.shape() {
            return Err(Error::ShapeMismatch {
                op: "mse_loss",
                lhs: self.shape().to_vec(),
                rhs: target.shape().to_vec(),
            });
        }
        if let Some(ctx) = gpu_of("mse_loss", &[self, target])? {
            for t in [self, target] {
                if t.dtype() != DType::F32 {
                    return Err(Error::DType {
                        op: "mse_loss",
                        expected: DType::F32.name(),
                        got: t.dtype().name(),
                    });
                }
            }
            let loss = greduce::mse(ctx, &self.gbuf("mse_loss")?, &target.gbuf("mse_loss")?)?;
            let (a, b) = (self.clone(), target.clone());
            return Ok(Tensor::from_op(
                vec![],
                Storage::gpu(loss, DType::F32),
                "mse_loss",
                &[self, target],
                move |g| {
                    // da = 2 (a - b) dy / n (dy read on the device), db = -da
                    let ga = greduce::mse_backward(
                        ctx,
                        &a.gbuf("mse_loss")?,
                        &b.gbuf("mse_loss")?,
                        &g.gbuf("mse_loss")?,
                    )?;
                    let ga = Tensor::from_storage(a.shape().to_vec(), Storage::gpu(ga, DType::F32));
                    let gb = if b.is_tracked() {
                        Some(ga.neg()?)
                    } else {
                        None
                    };
                    Ok(vec![Some(ga), gb])
                },
            ));
        }
        let diff = super::par_zip(
            self.read().f32("mse_loss")?,
            target.read().f32("mse_loss")?,
            |a, b| a - b,
        );
        let n = diff.len().max(1) as f64;
        let loss = sum_f64(&super::par_map(&diff, |d| d * d)) / n;
        let shape = self.shape().to_vec();
        Ok(Tensor::from_op(
            vec![],
            Storage::from_f32(vec![loss as f32]),
            "mse_loss",
            &[self, target],
            move |g| {
                let c = (2.0 * g.to_scalar()? as f64 / n) as f32;
                let ga = Tensor::from_shape_vec(&shape, super::par_map(&diff, |d| c * d))?;
                let gb = ga.neg()?;
                Ok(vec![Some(ga), Some(gb)])
            },
        ))
    }
}
