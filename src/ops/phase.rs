//! Phase factor `e^{i phi}` of a real tensor (complex result), the exit-wave building block of
//! the Lorentz-TEM forward model.

use super::{par_map, par_zip};
use crate::error::Result;
use crate::storage::Storage;
use crate::tensor::{Tensor, C32};

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
        let y = par_map(self.read().f32("expi")?, |p| {
            let (s, c) = p.sin_cos();
            C32::new(c, s)
        });
        let saved = Tensor::from_storage(self.shape().to_vec(), Storage::from_c32(y.clone()));
        Ok(Tensor::from_op(
            self.shape().to_vec(),
            Storage::from_c32(y),
            "expi",
            &[self],
            move |g| {
                // y = cos(phi) + i sin(phi); the stored gradient is g = dL/dRe(y) + i dL/dIm(y).
                // dphi = dL/dRe(y) * (-sin phi) + dL/dIm(y) * cos(phi)
                //      = Im((g_re + i g_im)(cos phi - i sin phi)) = Im(g * conj(y)).
                let gy = par_zip(g.read().c32("expi")?, saved.read().c32("expi")?, |g, y| {
                    (g * y.conj()).im
                });
                Ok(vec![Some(Tensor::from_shape_vec(saved.shape(), gy)?)])
            },
        ))
    }
}
