//! Losses.

use super::reduce::sum_f64;
use crate::error::{Error, Result};
use crate::storage::Storage;
use crate::tensor::Tensor;

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
