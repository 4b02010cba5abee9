//! Complex-number ops: build from (re, im), take re / im / conj / |z|^2.
//! Gradients use PyTorch's convention (see `autograd.rs`): grad = dL/da + i dL/db.

use super::{par_map, par_zip};
use crate::error::{Error, Result};
use crate::storage::Storage;
use crate::tensor::{DType, Tensor, C32};

impl Tensor {
    /// `z = re + i im` from two real tensors of one shape.
    /// VJP: `d re = Re(dz)`, `d im = Im(dz)`.
    pub fn complex(re: &Tensor, im: &Tensor) -> Result<Tensor> {
        if re.shape() != im.shape() {
            return Err(Error::ShapeMismatch {
                op: "complex",
                lhs: re.shape().to_vec(),
                rhs: im.shape().to_vec(),
            });
        }
        let z = par_zip(
            re.read().f32("complex")?,
            im.read().f32("complex")?,
            C32::new,
        );
        Ok(Tensor::from_op(
            re.shape().to_vec(),
            Storage::from_c32(z),
            "complex",
            &[re, im],
            |g| Ok(vec![Some(g.re()?), Some(g.im()?)]),
        ))
    }

    /// Real part. VJP: `dz = dy + 0i`.
    pub fn re(&self) -> Result<Tensor> {
        let y = par_map(self.read().c32("re")?, |z| z.re);
        Ok(Tensor::from_op(
            self.shape().to_vec(),
            Storage::from_f32(y),
            "re",
            &[self],
            |g| Ok(vec![Some(Tensor::complex(g, &g.zeros_like())?)]),
        ))
    }

    /// Imaginary part. VJP: `dz = 0 + i dy` (y = b, so dL/db = dy).
    pub fn im(&self) -> Result<Tensor> {
        let y = par_map(self.read().c32("im")?, |z| z.im);
        Ok(Tensor::from_op(
            self.shape().to_vec(),
            Storage::from_f32(y),
            "im",
            &[self],
            |g| Ok(vec![Some(Tensor::complex(&g.zeros_like(), g)?)]),
        ))
    }

    /// Complex conjugate (identity on real tensors). VJP: `dz = conj(dy)`.
    pub fn conj(&self) -> Result<Tensor> {
        if self.dtype() == DType::F32 {
            return Ok(self.clone());
        }
        let y = par_map(self.read().c32("conj")?, |z| z.conj());
        Ok(Tensor::from_op(
            self.shape().to_vec(),
            Storage::from_c32(y),
            "conj",
            &[self],
            |g| Ok(vec![Some(g.conj()?)]),
        ))
    }

    /// `|z|^2 = a^2 + b^2` (real). VJP: `dz = 2 z dy` (dL/da = 2a dy, dL/db = 2b dy).
    pub fn abs2(&self) -> Result<Tensor> {
        let y = par_map(self.read().c32("abs2")?, |z| z.norm_sqr());
        let z = self.clone();
        Ok(Tensor::from_op(
            self.shape().to_vec(),
            Storage::from_f32(y),
            "abs2",
            &[self],
            move |g| {
                let gz = par_zip(z.read().c32("abs2")?, g.read().f32("abs2")?, |z, g| {
                    z * (2.0 * g)
                });
                Ok(vec![Some(Tensor::from_shape_vec_c(z.shape(), gz)?)])
            },
        ))
    }
}
