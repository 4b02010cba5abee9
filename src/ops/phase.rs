//! Phase factor `e^{i phi}` of a real tensor (complex result), the exit-wave building block of
//! the Lorentz-TEM forward model.

use super::{par_map, par_zip};
use crate::error::{Error, Result};
use crate::gpu::complex as gc;
use crate::storage::{gpu_of, Storage};
use crate::tensor::{DType, Tensor, C32};

impl Tensor {
    /// `y = e^{i phi} = cos(phi) + i sin(phi)` for a real tensor `phi` (complex output).
    ///
    /// ```
    /// use magprior::Tensor;
    /// let y = Tensor::from_shape_vec(&[2], vec![0.0, std::f32::consts::FRAC_PI_2])
    ///     .unwrap().expi().unwrap().to_vec_c().unwrap();
    /// assert!((y[0].re - 1.0).abs() < 1e-6 && (y[1].im - 1.0).abs() < 1e-6);
    /// ```
    pub fn expi(&self) -> Result<Tensor> {
        let y = match gpu_of("expi", &[self])? {
            Some(ctx) => {
                if self.dtype() != DType::F32 {
                    return Err(Error::DType {
                        op: "expi",
                        expected: DType::F32.name(),
                        got: self.dtype().name(),
                    });
                }
                Storage::gpu(gc::expi(ctx, &self.gbuf("expi")?)?, DType::C32)
            }
            None => Storage::from_c32(par_map(self.read().f32("expi")?, |p| {
                let (s, c) = p.sin_cos();
                C32::new(c, s)
            })),
        };
        // the output is saved for the VJP (it shares the buffer; outputs are never written)
        let saved = Tensor::from_storage(self.shape().to_vec(), y.clone());
        Ok(Tensor::from_op(
            self.shape().to_vec(),
            y,
            "expi",
            &[self],
            move |g| {
                // y = cos(phi) + i sin(phi); the stored gradient is g = dL/dRe(y) + i dL/dIm(y).
                // dphi = dL/dRe(y) * (-sin phi) + dL/dIm(y) * cos(phi)
                //      = Im((g_re + i g_im)(cos phi - i sin phi)) = Im(g * conj(y)).
                if let Some(ctx) = gpu_of("expi", &[g, &saved])? {
                    let gp = gc::expi_backward(ctx, &saved.gbuf("expi")?, &g.gbuf("expi")?)?;
                    let t =
                        Tensor::from_storage(saved.shape().to_vec(), Storage::gpu(gp, DType::F32));
                    return Ok(vec![Some(t)]);
                }
                let gy = par_zip(g.read().c32("expi")?, saved.read().c32("expi")?, |g, y| {
                    (g * y.conj()).im
                });
                Ok(vec![Some(Tensor::from_shape_vec(saved.shape(), gy)?)])
            },
        ))
    }
}
