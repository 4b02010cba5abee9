//! Complex-number ops: build from (re, im), take re / im / conj / |z|^2.
//! Gradients use PyTorch's convention (see `autograd.rs`): grad = dL/da + i dL/db.

use super::{par_map, par_zip};
use crate::error::{Error, Result};
use crate::gpu::complex as gc;
use crate::storage::{gpu_of, Storage};
use crate::tensor::{DType, Tensor, C32};

/// Checks a GPU operand's dtype (the CPU path checks through `Storage::f32/c32`).
fn want(op: &'static str, t: &Tensor, dtype: DType) -> Result<()> {
    if t.dtype() != dtype {
        return Err(Error::DType {
            op,
            expected: dtype.name(),
            got: t.dtype().name(),
        });
    }
    Ok(())
}

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
        let z = match gpu_of("complex", &[re, im])? {
            Some(ctx) => {
                want("complex", re, DType::F32)?;
                want("complex", im, DType::F32)?;
                let b = gc::from_re_im(ctx, &re.gbuf("complex")?, &im.gbuf("complex")?)?;
                Storage::gpu(b, DType::C32)
            }
            None => Storage::from_c32(par_zip(
                re.read().f32("complex")?,
                im.read().f32("complex")?,
                C32::new,
            )),
        };
        Ok(Tensor::from_op(
            re.shape().to_vec(),
            z,
            "complex",
            &[re, im],
            |g| Ok(vec![Some(g.re()?), Some(g.im()?)]),
        ))
    }

    /// Real part. VJP: `dz = dy + 0i`.
    pub fn re(&self) -> Result<Tensor> {
        let y = match gpu_of("re", &[self])? {
            Some(ctx) => {
                want("re", self, DType::C32)?;
                Storage::gpu(gc::re(ctx, &self.gbuf("re")?)?, DType::F32)
            }
            None => Storage::from_f32(par_map(self.read().c32("re")?, |z| z.re)),
        };
        Ok(Tensor::from_op(
            self.shape().to_vec(),
            y,
            "re",
            &[self],
            |g| Ok(vec![Some(Tensor::complex(g, &g.zeros_like())?)]),
        ))
    }

    /// Imaginary part. VJP: `dz = 0 + i dy` (y = b, so dL/db = dy).
    pub fn im(&self) -> Result<Tensor> {
        let y = match gpu_of("im", &[self])? {
            Some(ctx) => {
                want("im", self, DType::C32)?;
                Storage::gpu(gc::im(ctx, &self.gbuf("im")?)?, DType::F32)
            }
            None => Storage::from_f32(par_map(self.read().c32("im")?, |z| z.im)),
        };
        Ok(Tensor::from_op(
            self.shape().to_vec(),
            y,
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
        let y = match gpu_of("conj", &[self])? {
            Some(ctx) => Storage::gpu(gc::conj(ctx, &self.gbuf("conj")?)?, DType::C32),
            None => Storage::from_c32(par_map(self.read().c32("conj")?, |z| z.conj())),
        };
        Ok(Tensor::from_op(
            self.shape().to_vec(),
            y,
            "conj",
            &[self],
            |g| Ok(vec![Some(g.conj()?)]),
        ))
    }

    /// `|z|^2 = a^2 + b^2` (real). VJP: `dz = 2 z dy` (dL/da = 2a dy, dL/db = 2b dy).
    pub fn abs2(&self) -> Result<Tensor> {
        let y = match gpu_of("abs2", &[self])? {
            Some(ctx) => {
                want("abs2", self, DType::C32)?;
                Storage::gpu(gc::abs2(ctx, &self.gbuf("abs2")?)?, DType::F32)
            }
            None => Storage::from_f32(par_map(self.read().c32("abs2")?, |z| z.norm_sqr())),
        };
        let z = self.clone();
        Ok(Tensor::from_op(
            self.shape().to_vec(),
            y,
            "abs2",
            &[self],
            move |g| {
                if let Some(ctx) = gpu_of("abs2", &[g, &z])? {
                    let gz = gc::abs2_backward(ctx, &z.gbuf("abs2")?, &g.gbuf("abs2")?)?;
                    let t = Tensor::from_storage(z.shape().to_vec(), Storage::gpu(gz, DType::C32));
                    return Ok(vec![Some(t)]);
                }
                let gz = par_zip(z.read().c32("abs2")?, g.read().f32("abs2")?, |z, g| {
                    z * (2.0 * g)
                });
                Ok(vec![Some(Tensor::from_shape_vec_c(z.shape(), gz)?)])
            },
        ))
    }
}
