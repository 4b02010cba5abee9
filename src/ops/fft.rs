//! 2-D discrete Fourier transforms over the last two axes of complex tensors, any sizes.
//! Forward `X(k) = sum_r x(r) e^{-i k.r}` (NumPy's sign), unnormalised; inverse divides by
//! n = H W. Kernels: `backend/cpu/fft.rs` (rustfft), `backend/gpu/fft.rs`.

use crate::backend::cpu::fft::{self as cpu, FftDirection};
use crate::backend::gpu::fft::{self as gpu, Direction};
use crate::backend::gpu::{GpuBuffer, GpuContext};
use crate::engine::dispatch::{expect_complex, Args, Kernel, Meta, Out};
use crate::engine::storage::CpuStorage;
use crate::engine::tensor::{hw_of, Backward, Saved, Tensor};
use crate::error::Result;

/// `scale * F^{+-}` over the last two axes: forward (sign -) or inverse (sign +, unscaled).
struct Fft2 {
    name: &'static str,
    inverse: bool,
    scale: f32,
}

impl Fft2 {
    fn forward(inverse: bool, n: f32) -> Fft2 {
        Fft2 {
            name: if inverse { "ifft2" } else { "fft2" },
            inverse,
            scale: if inverse { 1.0 / n } else { 1.0 },
        }
    }
}

impl Kernel for Fft2 {
    fn name(&self) -> &'static str {
        self.name
    }
    fn signature(&self, x: &[Meta]) -> Result<Vec<Out>> {
        expect_complex(self.name, x)?;
        hw_of(self.name, x[0].shape)?;
        Ok(vec![Out::complex(x[0].shape.to_vec())])
    }
    fn cpu(&self, x: &Args<&CpuStorage>) -> Result<Vec<CpuStorage>> {
        let (h, w) = hw_of(self.name, x.shape(0))?;
        let mut data = x.complex(0)?.to_vec();
        let dir = if self.inverse {
            FftDirection::Inverse
        } else {
            FftDirection::Forward
        };
        cpu::fft2(&mut data, h, w, dir, self.scale);
        Ok(vec![CpuStorage::C32(data)])
    }
    fn gpu(&self, ctx: &GpuContext, x: &Args<&GpuBuffer>) -> Result<Vec<GpuBuffer>> {
        let (h, w) = hw_of(self.name, x.shape(0))?;
        let batch = x.shape(0).iter().product::<usize>() / (h * w).max(1);
        let dir = if self.inverse {
            Direction::Inverse
        } else {
            Direction::Forward
        };
        Ok(vec![gpu::fft2_scaled(
            ctx,
            x.buf(0),
            batch,
            h,
            w,
            dir,
            self.scale,
        )?])
    }
}

impl Backward for Fft2 {
    // fft2:  y = F x        =>  dx = F^H dy = n ifft2(dy)   (the unnormalised inverse)
    // ifft2: y = F^H x / n  =>  dx = F dy / n = fft2(dy) / n
    fn backward(&self, s: &Saved, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let (h, w) = s.inputs[0].hw(self.name)?;
        let n = (h * w) as f32;
        let adjoint = Fft2 {
            name: self.name,
            inverse: !self.inverse,
            scale: if self.inverse { 1.0 / n } else { 1.0 },
        };
        Ok(vec![Some(Tensor::compute(&adjoint, &[g])?.remove(0))])
    }
}

impl Tensor {
    fn fft2_op(&self, inverse: bool) -> Result<Tensor> {
        let name = if inverse { "ifft2" } else { "fft2" };
        let (h, w) = self.hw(name)?;
        Tensor::apply(Fft2::forward(inverse, (h * w) as f32), &[self])
    }

    /// Forward 2-D FFT over the last two axes of a complex tensor (unnormalised, NumPy's sign).
    ///
    /// ```
    /// use magprior::{Tensor, C32};
    /// let x = Tensor::from_shape_vec_c(&[1, 2], vec![C32::new(1.0, 0.0), C32::new(2.0, 0.0)]).unwrap();
    /// let y = x.fft2().unwrap().to_vec_c().unwrap();
    /// assert_eq!(y, vec![C32::new(3.0, 0.0), C32::new(-1.0, 0.0)]);
    /// ```
    pub fn fft2(&self) -> Result<Tensor> {
        self.fft2_op(false)
    }

    /// Inverse 2-D FFT over the last two axes (divides by H W).
    pub fn ifft2(&self) -> Result<Tensor> {
        self.fft2_op(true)
    }
}
