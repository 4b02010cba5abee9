//! Complex-number ops: build from (re, im), take re / im / conj / |z|^2, and the phase factor
//! `e^{i phi}` (the exit-wave building block of the Lorentz-TEM model). Gradients use PyTorch's
//! convention (`autograd.rs`): grad = dL/da + i dL/db.

use crate::backend::cpu::{par_map, par_zip};
use crate::backend::gpu::{complex as gpu, GpuBuffer, GpuContext};
use crate::backend::C32;
use crate::engine::dispatch::{expect_complex, expect_real, same_shape, Args, Kernel, Meta, Out};
use crate::engine::storage::{CpuStorage, DType};
use crate::engine::tensor::{Backward, Saved, Tensor};
use crate::error::Result;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Map {
    /// (re, im) real -> re + i im
    FromParts,
    /// z -> Re z
    Re,
    /// z -> Im z
    Im,
    /// z -> conj z
    Conj,
    /// z -> |z|^2 (real)
    Abs2,
    /// phi (real) -> e^{i phi}
    Expi,
}

/// The VJP kernels that need one of their own.
#[derive(Clone, Copy, PartialEq, Eq)]
enum MapGrad {
    /// (z, dy) -> 2 z dy: the VJP of `Abs2`
    Abs2,
    /// (y = e^{i phi}, dy) -> Im(dy conj(y)): the VJP of `Expi`
    Expi,
}

impl Kernel for Map {
    fn name(&self) -> &'static str {
        match self {
            Map::FromParts => "complex",
            Map::Re => "re",
            Map::Im => "im",
            Map::Conj => "conj",
            Map::Abs2 => "abs2",
            Map::Expi => "expi",
        }
    }
    fn signature(&self, x: &[Meta]) -> Result<Vec<Out>> {
        let op = self.name();
        same_shape(op, x)?;
        let shape = x[0].shape.to_vec();
        Ok(vec![match self {
            Map::FromParts | Map::Expi => {
                expect_real(op, x)?;
                Out::complex(shape)
            }
            Map::Re | Map::Im | Map::Abs2 => {
                expect_complex(op, x)?;
                Out::real(shape)
            }
            Map::Conj => {
                expect_complex(op, x)?;
                Out::complex(shape)
            }
        }])
    }
    fn cpu(&self, x: &Args<&CpuStorage>) -> Result<Vec<CpuStorage>> {
        Ok(vec![match self {
            Map::FromParts => CpuStorage::C32(par_zip(x.real(0)?, x.real(1)?, C32::new)),
            Map::Re => CpuStorage::F32(par_map(x.complex(0)?, |z| z.re)),
            Map::Im => CpuStorage::F32(par_map(x.complex(0)?, |z| z.im)),
            Map::Conj => CpuStorage::C32(par_map(x.complex(0)?, |z| z.conj())),
            Map::Abs2 => CpuStorage::F32(par_map(x.complex(0)?, |z| z.norm_sqr())),
            Map::Expi => CpuStorage::C32(par_map(x.real(0)?, |p| {
                let (s, c) = p.sin_cos();
                C32::new(c, s)
            })),
        }])
    }
    fn gpu(&self, ctx: &GpuContext, x: &Args<&GpuBuffer>) -> Result<Vec<GpuBuffer>> {
        let a = x.buf(0);
        Ok(vec![match self {
            Map::FromParts => gpu::from_re_im(ctx, a, x.buf(1))?,
            Map::Re => gpu::re(ctx, a)?,
            Map::Im => gpu::im(ctx, a)?,
            Map::Conj => gpu::conj(ctx, a)?,
            Map::Abs2 => gpu::abs2(ctx, a)?,
            Map::Expi => gpu::expi(ctx, a)?,
        }])
    }
}

impl Backward for Map {
    fn backward(&self, s: &Saved, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        Ok(match self {
            // z = re + i im  =>  d re = Re(dz), d im = Im(dz)
            Map::FromParts => vec![Some(g.re()?), Some(g.im()?)],
            // y = Re z  =>  dz = dy + 0i
            Map::Re => vec![Some(Tensor::complex(g, &g.zeros_like()?)?)],
            // y = Im z = b  =>  dL/db = dy, dz = 0 + i dy
            Map::Im => vec![Some(Tensor::complex(&g.zeros_like()?, g)?)],
            // y = conj z  =>  dz = conj(dy)
            Map::Conj => vec![Some(g.conj()?)],
            // y = a^2 + b^2  =>  dL/da = 2a dy, dL/db = 2b dy: dz = 2 z dy
            Map::Abs2 => vec![Some(grad(MapGrad::Abs2, &[&s.inputs[0], g])?)],
            // y = cos(phi) + i sin(phi), g = dL/dRe(y) + i dL/dIm(y):
            // dphi = dL/dRe(y) (-sin phi) + dL/dIm(y) cos(phi) = Im(g conj(y))
            Map::Expi => vec![Some(grad(MapGrad::Expi, &[s.output, g])?)],
        })
    }
}

impl Kernel for MapGrad {
    fn name(&self) -> &'static str {
        match self {
            MapGrad::Abs2 => "abs2_backward",
            MapGrad::Expi => "expi_backward",
        }
    }
    fn signature(&self, x: &[Meta]) -> Result<Vec<Out>> {
        let op = self.name();
        same_shape(op, x)?;
        let shape = x[0].shape.to_vec();
        expect_complex(op, &x[..1])?;
        Ok(vec![match self {
            MapGrad::Abs2 => {
                expect_real(op, &x[1..])?;
                Out::complex(shape)
            }
            MapGrad::Expi => {
                expect_complex(op, &x[1..])?;
                Out::real(shape)
            }
        }])
    }
    fn cpu(&self, x: &Args<&CpuStorage>) -> Result<Vec<CpuStorage>> {
        Ok(vec![match self {
            MapGrad::Abs2 => {
                CpuStorage::C32(par_zip(x.complex(0)?, x.real(1)?, |z, g| z * (2.0 * g)))
            }
            MapGrad::Expi => CpuStorage::F32(par_zip(x.complex(0)?, x.complex(1)?, |y, g| {
                (g * y.conj()).im
            })),
        }])
    }
    fn gpu(&self, ctx: &GpuContext, x: &Args<&GpuBuffer>) -> Result<Vec<GpuBuffer>> {
        Ok(vec![match self {
            MapGrad::Abs2 => gpu::abs2_backward(ctx, x.buf(0), x.buf(1))?,
            MapGrad::Expi => gpu::expi_backward(ctx, x.buf(0), x.buf(1))?,
        }])
    }
}

fn map(m: Map, inputs: &[&Tensor]) -> Result<Tensor> {
    Tensor::apply(m, inputs)
}

fn grad(m: MapGrad, inputs: &[&Tensor]) -> Result<Tensor> {
    let mut out = Tensor::compute(&m, inputs)?;
    Ok(out.remove(0))
}

impl Tensor {
    /// `z = re + i im` from two real tensors of one shape.
    /// VJP: `d re = Re(dz)`, `d im = Im(dz)`.
    pub fn complex(re: &Tensor, im: &Tensor) -> Result<Tensor> {
        map(Map::FromParts, &[re, im])
    }

    /// Real part. VJP: `dz = dy + 0i`.
    pub fn re(&self) -> Result<Tensor> {
        map(Map::Re, &[self])
    }

    /// Imaginary part. VJP: `dz = 0 + i dy` (y = b, so dL/db = dy).
    pub fn im(&self) -> Result<Tensor> {
        map(Map::Im, &[self])
    }

    /// Complex conjugate (identity on real tensors). VJP: `dz = conj(dy)`.
    pub fn conj(&self) -> Result<Tensor> {
        if self.dtype() == DType::F32 {
            return Ok(self.clone());
        }
        map(Map::Conj, &[self])
    }

    /// `|z|^2 = a^2 + b^2` (real). VJP: `dz = 2 z dy` (dL/da = 2a dy, dL/db = 2b dy).
    pub fn abs2(&self) -> Result<Tensor> {
        map(Map::Abs2, &[self])
    }

    /// `y = e^{i phi} = cos(phi) + i sin(phi)` for a real tensor `phi` (complex output).
    /// VJP: `dphi = Im(dy conj(y))`.
    ///
    /// ```
    /// use magprior::Tensor;
    /// let y = Tensor::from_shape_vec(&[2], vec![0.0, std::f32::consts::FRAC_PI_2])
    ///     .unwrap().expi().unwrap().to_vec_c().unwrap();
    /// assert!((y[0].re - 1.0).abs() < 1e-6 && (y[1].im - 1.0).abs() < 1e-6);
    /// ```
    pub fn expi(&self) -> Result<Tensor> {
        map(Map::Expi, &[self])
    }
}
