//! Elementwise maps: the real unary functions (exp, log, sqrt, square, tanh, sigmoid, leaky
//! ReLU, abs) and the affine map `a x + b` on real or complex tensors.

use crate::backend::cpu::elementwise as cpu;
use crate::backend::gpu::{elementwise as gpu, GpuBuffer, GpuContext};
use crate::backend::UnaryOp;
use crate::engine::dispatch::{expect_real, Args, Kernel, Meta, Out};
use crate::engine::storage::{CpuStorage, DType};
use crate::engine::tensor::{Backward, Saved, Tensor};
use crate::error::Result;

/// `y = f(x)`, real.
struct Unary(UnaryOp);

impl Kernel for Unary {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn signature(&self, x: &[Meta]) -> Result<Vec<Out>> {
        expect_real(self.name(), x)?;
        Ok(vec![Out::real(x[0].shape.to_vec())])
    }
    fn cpu(&self, x: &Args<&CpuStorage>) -> Result<Vec<CpuStorage>> {
        Ok(vec![CpuStorage::F32(cpu::unary(self.0, x.real(0)?))])
    }
    fn gpu(&self, ctx: &GpuContext, x: &Args<&GpuBuffer>) -> Result<Vec<GpuBuffer>> {
        Ok(vec![gpu::unary(ctx, self.0, x.buf(0))?])
    }
}

impl Backward for Unary {
    // y = f(x)  =>  dx = dy f'(x)
    fn backward(&self, s: &Saved, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let dx = Tensor::compute(&UnaryGrad(self.0), &[&s.inputs[0], g])?;
        Ok(dx.into_iter().map(Some).collect())
    }
}

/// `dx = dy f'(x)` from (x, dy).
struct UnaryGrad(UnaryOp);

impl Kernel for UnaryGrad {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn signature(&self, x: &[Meta]) -> Result<Vec<Out>> {
        expect_real(self.name(), x)?;
        crate::engine::dispatch::same_shape(self.name(), x)?;
        Ok(vec![Out::real(x[0].shape.to_vec())])
    }
    fn cpu(&self, x: &Args<&CpuStorage>) -> Result<Vec<CpuStorage>> {
        let dx = cpu::unary_backward(self.0, x.real(0)?, x.real(1)?);
        Ok(vec![CpuStorage::F32(dx)])
    }
    fn gpu(&self, ctx: &GpuContext, x: &Args<&GpuBuffer>) -> Result<Vec<GpuBuffer>> {
        Ok(vec![gpu::unary_backward(ctx, self.0, x.buf(0), x.buf(1))?])
    }
}

/// `y = a x + b` for real constants, on real or complex tensors (b adds to the real part).
struct Affine {
    name: &'static str,
    a: f32,
    b: f32,
}

impl Kernel for Affine {
    fn name(&self) -> &'static str {
        self.name
    }
    fn signature(&self, x: &[Meta]) -> Result<Vec<Out>> {
        Ok(vec![Out::new(x[0].shape.to_vec(), x[0].dtype)])
    }
    fn cpu(&self, x: &Args<&CpuStorage>) -> Result<Vec<CpuStorage>> {
        Ok(vec![match x.dtype(0) {
            DType::F32 => CpuStorage::F32(cpu::affine(x.real(0)?, self.a, self.b)),
            DType::C32 => CpuStorage::C32(cpu::affine_complex(x.complex(0)?, self.a, self.b)),
        }])
    }
    fn gpu(&self, ctx: &GpuContext, x: &Args<&GpuBuffer>) -> Result<Vec<GpuBuffer>> {
        Ok(vec![match x.dtype(0) {
            DType::F32 => gpu::scale_shift(ctx, x.buf(0), self.a, self.b)?,
            DType::C32 => gpu::affine_complex(ctx, x.buf(0), self.a, self.b)?,
        }])
    }
}

impl Backward for Affine {
    // y = a x + b  =>  dx = a dy (a is real, so conj(a) = a)
    fn backward(&self, _: &Saved, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(if self.a == 1.0 {
            g.clone()
        } else {
            g.scale(self.a)?
        })])
    }
}

impl Tensor {
    fn unary(&self, op: UnaryOp) -> Result<Tensor> {
        Tensor::apply(Unary(op), &[self])
    }
    /// `e^x`. VJP: `dx = dy * e^x`.
    pub fn exp(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Exp)
    }
    /// Natural logarithm. VJP: `dx = dy / x`.
    pub fn log(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Log)
    }
    /// Square root. VJP: `dx = dy / (2 sqrt x)`.
    pub fn sqrt(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Sqrt)
    }
    /// `x^2`. VJP: `dx = 2 x dy`.
    pub fn square(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Square)
    }
    /// Hyperbolic tangent. VJP: `dx = dy (1 - tanh^2 x)`.
    pub fn tanh(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Tanh)
    }
    /// Logistic sigmoid `1/(1+e^-x)`. VJP: `dx = dy s (1 - s)`.
    pub fn sigmoid(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Sigmoid)
    }
    /// `x` for `x > 0`, else `slope * x`. VJP: `dx = dy` where `x > 0`, else `slope * dy`.
    pub fn leaky_relu(&self, slope: f32) -> Result<Tensor> {
        self.unary(UnaryOp::LeakyRelu(slope))
    }
    /// `|x|` (real). VJP: `dx = sign(x) dy`, 0 at x = 0.
    pub fn abs(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Abs)
    }

    fn affine(&self, name: &'static str, a: f32, b: f32) -> Result<Tensor> {
        Tensor::apply(Affine { name, a, b }, &[self])
    }
    /// `-x`. VJP: `dx = -dy`.
    pub fn neg(&self) -> Result<Tensor> {
        self.affine("neg", -1.0, 0.0)
    }
    /// `c x` for a real constant c. VJP: `dx = c dy`.
    pub fn scale(&self, c: f32) -> Result<Tensor> {
        self.affine("scale", c, 0.0)
    }
    /// `x + c` for a real constant c. VJP: `dx = dy`.
    pub fn add_scalar(&self, c: f32) -> Result<Tensor> {
        self.affine("add_scalar", 1.0, c)
    }
}
