//! Elementwise ops: unary maths (real), scalar add/mul and neg (real and complex), and the four
//! broadcasting binary ops (real with real, complex with complex), each with its VJP.

use super::broadcast::{broadcast_binary, broadcast_shape, gpu_binary};
use super::par_map;
use crate::error::{Error, Result};
use crate::gpu::elementwise::{self as gew, Unary};
use crate::storage::{gpu_of, Storage};
use crate::tensor::{DType, Tensor, C32};

impl Tensor {
    /// A real unary map `y = f(x)` whose VJP is `dx = dy * df(x)`; `gop` is the same map's
    /// GPU kernel pair (`kernels/elementwise.wgsl`).
    fn unary(
        &self,
        op: &'static str,
        gop: Unary,
        f: impl Fn(f32) -> f32 + Sync,
        df: impl Fn(f32) -> f32 + Copy + Send + Sync + 'static,
    ) -> Result<Tensor> {
        let out = match gpu_of(op, &[self])? {
            Some(ctx) => {
                expect_real(op, self)?;
                Storage::gpu(gew::unary(ctx, gop, &self.gbuf(op)?)?, DType::F32)
            }
            None => Storage::from_f32(par_map(self.read().f32(op)?, f)),
        };
        let x = self.clone();
        Ok(Tensor::from_op(
            self.shape().to_vec(),
            out,
            op,
            &[self],
            move |g| {
                if let Some(ctx) = gpu_of(op, &[g, &x])? {
                    let gx = gew::unary_backward(ctx, gop, &x.gbuf(op)?, &g.gbuf(op)?)?;
                    let t = Tensor::from_storage(x.shape().to_vec(), Storage::gpu(gx, DType::F32));
                    return Ok(vec![Some(t)]);
                }
                let gs = g.read();
                let xs = x.read();
                let gx = super::par_zip(gs.f32(op)?, xs.f32(op)?, |g, x| g * df(x));
                Ok(vec![Some(Tensor::from_shape_vec(x.shape(), gx)?)])
            },
        ))
    }

    /// `e^x`. VJP: `dx = dy * e^x`.
    pub fn exp(&self) -> Result<Tensor> {
        self.unary("exp", Unary::Exp, f32::exp, f32::exp)
    }
    /// Natural logarithm. VJP: `dx = dy / x`.
    pub fn log(&self) -> Result<Tensor> {
        self.unary("log", Unary::Log, f32::ln, |x| 1.0 / x)
    }
    /// Square root. VJP: `dx = dy / (2 sqrt x)`.
    pub fn sqrt(&self) -> Result<Tensor> {
        self.unary("sqrt", Unary::Sqrt, f32::sqrt, |x| 0.5 / x.sqrt())
    }
    /// `x^2`. VJP: `dx = 2 x dy`.
    pub fn square(&self) -> Result<Tensor> {
        self.unary("square", Unary::Square, |x| x * x, |x| 2.0 * x)
    }
    /// Hyperbolic tangent. VJP: `dx = dy (1 - tanh^2 x)`.
    pub fn tanh(&self) -> Result<Tensor> {
        self.unary("tanh", Unary::Tanh, f32::tanh, |x| {
            let t = x.tanh();
            1.0 - t * t
        })
    }
    /// Logistic sigmoid `1/(1+e^-x)`. VJP: `dx = dy s (1 - s)`.
    pub fn sigmoid(&self) -> Result<Tensor> {
        self.unary("sigmoid", Unary::Sigmoid, sigmoid, |x| {
            let s = sigmoid(x);
            s * (1.0 - s)
        })
    }
    /// `x` for `x > 0`, else `slope * x`. VJP: `dx = dy` where `x > 0`, else `slope * dy`.
    pub fn leaky_relu(&self, slope: f32) -> Result<Tensor> {
        self.unary(
            "leaky_relu",
            Unary::LeakyRelu(slope),
            move |x| if x > 0.0 { x } else { slope * x },
            move |x| if x > 0.0 { 1.0 } else { slope },
        )
    }
    /// `|x|` (real). VJP: `dx = sign(x) dy`, 0 at x = 0.
    pub fn abs(&self) -> Result<Tensor> {
        self.unary("abs", Unary::Abs, f32::abs, |x| {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                0.0
            }
        })
    }

    /// `y = a x + b` for real constants, on real or complex tensors (b adds to the real part).
    /// VJP: `dx = a dy` (a is real, so conj(a) = a).
    fn affine(&self, op: &'static str, a: f32, b: f32) -> Result<Tensor> {
        let storage = match (gpu_of(op, &[self])?, self.dtype()) {
            (Some(ctx), DType::F32) => {
                Storage::gpu(gew::scale_shift(ctx, &self.gbuf(op)?, a, b)?, DType::F32)
            }
            (Some(ctx), DType::C32) => {
                Storage::gpu(gew::affine_complex(ctx, &self.gbuf(op)?, a, b)?, DType::C32)
            }
            (None, DType::F32) => Storage::from_f32(par_map(self.read().f32(op)?, |x| a * x + b)),
            (None, DType::C32) => Storage::from_c32(par_map(self.read().c32(op)?, |z| {
                C32::new(a * z.re + b, a * z.im)
            })),
        };
        Ok(Tensor::from_op(
            self.shape().to_vec(),
            storage,
            op,
            &[self],
            move |g| Ok(vec![Some(if a == 1.0 { g.clone() } else { g.scale(a)? })]),
        ))
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

    /// `self + rhs` with NumPy broadcasting. VJP: `da = sum_to(dy)`, `db = sum_to(dy)`.
    pub fn add(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, BinOp::Add)
    }
    /// `self - rhs` with broadcasting. VJP: `da = sum_to(dy)`, `db = -sum_to(dy)`.
    pub fn sub(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, BinOp::Sub)
    }
    /// `self * rhs` with broadcasting (complex: complex product).
    /// VJP: `da = sum_to(dy conj(b))`, `db = sum_to(dy conj(a))`.
    pub fn mul(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, BinOp::Mul)
    }
    /// `self / rhs` with broadcasting.
    /// VJP: `da = sum_to(dy / conj(b))`, `db = -sum_to(dy / conj(b) * conj(y))`.
    pub fn div(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, BinOp::Div)
    }

    fn binary(&self, rhs: &Tensor, op: BinOp) -> Result<Tensor> {
        let name = op.name();
        let (dt, dr) = (self.dtype(), rhs.dtype());
        if dt != dr {
            return Err(Error::DType {
                op: name,
                expected: dt.name(),
                got: dr.name(),
            });
        }
        let out_shape = broadcast_shape(name, self.shape(), rhs.shape())?;
        let storage = if let Some(ctx) = gpu_of(name, &[self, rhs])? {
            gpu_binary(ctx, op, self, rhs, &out_shape)?
        } else {
            let (a, b) = (self.read(), rhs.read());
            let (ash, bsh) = (self.shape(), rhs.shape());
            match dt {
                DType::F32 => {
                    let (a, b) = (a.f32(name)?, b.f32(name)?);
                    Storage::from_f32(match op {
                        BinOp::Add => broadcast_binary(a, ash, b, bsh, &out_shape, |x, y| x + y),
                        BinOp::Sub => broadcast_binary(a, ash, b, bsh, &out_shape, |x, y| x - y),
                        BinOp::Mul => broadcast_binary(a, ash, b, bsh, &out_shape, |x, y| x * y),
                        BinOp::Div => broadcast_binary(a, ash, b, bsh, &out_shape, |x, y| x / y),
                    })
                }
                DType::C32 => {
                    let (a, b) = (a.c32(name)?, b.c32(name)?);
                    Storage::from_c32(match op {
                        BinOp::Add => broadcast_binary(a, ash, b, bsh, &out_shape, |x, y| x + y),
                        BinOp::Sub => broadcast_binary(a, ash, b, bsh, &out_shape, |x, y| x - y),
                        BinOp::Mul => broadcast_binary(a, ash, b, bsh, &out_shape, |x, y| x * y),
                        BinOp::Div => broadcast_binary(a, ash, b, bsh, &out_shape, |x, y| x / y),
                    })
                }
            }
        };
        let (a, b) = (self.clone(), rhs.clone());
        let y_for_div = match op {
            BinOp::Div if rhs.is_tracked() => {
                Some(Tensor::from_storage(out_shape.clone(), storage.clone()))
            }
            _ => None,
        };
        Ok(Tensor::from_op(
            out_shape,
            storage,
            name,
            &[self, rhs],
            move |g| {
                let need = (a.is_tracked(), b.is_tracked());
                let (ga, gb) = match op {
                    BinOp::Add => (Some(g.clone()), Some(g.clone())),
                    BinOp::Sub => (Some(g.clone()), Some(g.neg()?)),
                    BinOp::Mul => (
                        need.0.then(|| g.mul(&b.conj()?)).transpose()?,
                        need.1.then(|| g.mul(&a.conj()?)).transpose()?,
                    ),
                    BinOp::Div => {
                        let ga = g.div(&b.conj()?)?;
                        let gb = match &y_for_div {
                            Some(y) => Some(ga.mul(&y.conj()?)?.neg()?),
                            None => None,
                        };
                        (Some(ga), gb)
                    }
                };
                Ok(vec![
                    ga.map(|t| t.sum_to(a.shape())).transpose()?,
                    gb.map(|t| t.sum_to(b.shape())).transpose()?,
                ])
            },
        ))
    }
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
}

impl BinOp {
    pub(crate) fn name(self) -> &'static str {
        match self {
            BinOp::Add => "add",
            BinOp::Sub => "sub",
            BinOp::Mul => "mul",
            BinOp::Div => "div",
        }
    }
}

fn expect_real(op: &'static str, t: &Tensor) -> Result<()> {
    if t.dtype() != DType::F32 {
        return Err(Error::DType {
            op,
            expected: DType::F32.name(),
            got: t.dtype().name(),
        });
    }
    Ok(())
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}
