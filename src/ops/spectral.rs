//! Spectral convolution of zero-padded real planes — the linear operator of the physics
//! models (the NV stray field, the LTEM magnetic phase):
//! `y[n, o] = crop(Re F^-1 sum_c K[o, c] F pad(x[n, c]))`, x (N, C, h, w) real,
//! K (O, C, ph, pw) complex (ph >= h, pw >= w: the padded grid), y (N, O, h, w) real.
//! Kernels: `backend/cpu/spectral.rs`, `backend/gpu/spectral.rs` (+ `kernels/spectral.wgsl`).

use crate::backend::cpu::spectral as cpu;
use crate::backend::gpu::{spectral as gpu, GpuBuffer, GpuContext};
use crate::backend::SpectralShape;
use crate::engine::dispatch::{expect_complex, expect_real, Args, Kernel, Meta, Out};
use crate::engine::storage::CpuStorage;
use crate::engine::tensor::{Backward, Saved, Tensor};
use crate::error::{Error, Result};

const OP: &str = "spectral_conv";

/// The forward (`adjoint == false`: inputs `(x, K)`) or its adjoint in x (inputs `(g, K)`,
/// `T[o, c] = conj(K[c, o])`).
struct SpectralConv {
    s: SpectralShape,
    adjoint: bool,
}

impl Kernel for SpectralConv {
    fn name(&self) -> &'static str {
        OP
    }
    fn signature(&self, x: &[Meta]) -> Result<Vec<Out>> {
        expect_real(OP, &x[..1])?;
        expect_complex(OP, &x[1..])?;
        let s = &self.s;
        Ok(vec![Out::real(vec![s.n, s.cout, s.h, s.w])])
    }
    fn cpu(&self, x: &Args<&CpuStorage>) -> Result<Vec<CpuStorage>> {
        let y = cpu::spectral_conv(&self.s, x.real(0)?, x.complex(1)?, self.adjoint);
        Ok(vec![CpuStorage::F32(y)])
    }
    fn gpu(&self, ctx: &GpuContext, x: &Args<&GpuBuffer>) -> Result<Vec<GpuBuffer>> {
        Ok(vec![gpu::spectral_conv(
            ctx,
            &self.s,
            x.buf(0),
            x.buf(1),
            self.adjoint,
        )?])
    }
}

impl Backward for SpectralConv {
    // y = C K P x with P the zero padding, F^-1 = F^H / n, C the crop of the real part:
    // dx[n, c] = crop(Re F^-1 sum_o conj(K[o, c]) F pad(dy[n, o]))   (the adjoint operator)
    // dK[o, c] = sum_n conj(F pad x[n, c]) F pad(dy[n, o]) / n        (PyTorch's convention)
    fn backward(&self, s: &Saved, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let (x, k) = (&s.inputs[0], &s.inputs[1]);
        let t = self.s;
        let dx = if x.is_tracked() {
            let adj = SpectralConv {
                s: SpectralShape {
                    cin: t.cout,
                    cout: t.cin,
                    ..t
                },
                adjoint: true,
            };
            Some(Tensor::compute(&adj, &[g, k])?.remove(0))
        } else {
            None
        };
        let dk = if k.is_tracked() {
            Some(Tensor::compute(&KernelGrad { s: t }, &[x, g])?.remove(0))
        } else {
            None
        };
        Ok(vec![dx, dk])
    }
}

/// `dK` from `(x, dy)`.
struct KernelGrad {
    s: SpectralShape,
}

impl Kernel for KernelGrad {
    fn name(&self) -> &'static str {
        "spectral_conv_kernel_grad"
    }
    fn signature(&self, x: &[Meta]) -> Result<Vec<Out>> {
        expect_real(self.name(), x)?;
        let s = &self.s;
        Ok(vec![Out::complex(vec![s.cout, s.cin, s.ph, s.pw])])
    }
    fn cpu(&self, x: &Args<&CpuStorage>) -> Result<Vec<CpuStorage>> {
        let dk = cpu::spectral_kernel_grad(&self.s, x.real(0)?, x.real(1)?);
        Ok(vec![CpuStorage::C32(dk)])
    }
    fn gpu(&self, ctx: &GpuContext, x: &Args<&GpuBuffer>) -> Result<Vec<GpuBuffer>> {
        Ok(vec![gpu::spectral_kernel_grad(
            ctx,
            &self.s,
            x.buf(0),
            x.buf(1),
        )?])
    }
}

impl Tensor {
    /// Spectral convolution of zero-padded real planes:
    /// `y[n, o] = crop(Re F^-1 sum_c K[o, c] F pad(x[n, c]))` for x (N, C, h, w) real and a
    /// kernel K (O, C, ph, pw) complex given on the padded grid (ph >= h, pw >= w; the padding
    /// is at the bottom and right, F is NumPy's unnormalised `fft2`). y is (N, O, h, w).
    ///
    /// VJP: `dx = crop(Re F^-1 sum_o conj(K[o, c]) F pad(dy))` (the adjoint operator) and
    /// `dK[o, c] = sum_n conj(F pad x[n, c]) F pad(dy[n, o]) / (ph pw)`.
    ///
    /// ```
    /// use magprior::{Tensor, C32};
    /// // a kernel of ones on a 2x padded grid is the identity
    /// let x = Tensor::from_shape_vec(&[1, 1, 2, 2], vec![1.0, 2.0, 3.0, 4.0]).unwrap();
    /// let k = Tensor::from_shape_vec_c(&[1, 1, 4, 4], vec![C32::new(1.0, 0.0); 16]).unwrap();
    /// let y = x.spectral_conv(&k).unwrap().to_vec().unwrap();
    /// assert!(y.iter().zip([1.0, 2.0, 3.0, 4.0]).all(|(a, b)| (a - b).abs() < 1e-5));
    /// ```
    pub fn spectral_conv(&self, kernel: &Tensor) -> Result<Tensor> {
        self.expect_rank(OP, 4)?;
        kernel.expect_rank(OP, 4)?;
        let (xs, ks) = (self.shape(), kernel.shape());
        if ks[1] != xs[1] || ks[2] < xs[2] || ks[3] < xs[3] || ks[2] * ks[3] == 0 {
            return Err(Error::ShapeMismatch {
                op: OP,
                lhs: xs.to_vec(),
                rhs: ks.to_vec(),
            });
        }
        let s = SpectralShape {
            n: xs[0],
            cin: xs[1],
            cout: ks[0],
            h: xs[2],
            w: xs[3],
            ph: ks[2],
            pw: ks[3],
        };
        Tensor::apply(SpectralConv { s, adjoint: false }, &[self, kernel])
    }
}
