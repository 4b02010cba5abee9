//! Elementwise maps on host slices: the real unary functions and their VJPs, and `a x + b`.
//! Each map is monomorphised per op (the `match` sits outside the loop, so the loops vectorise).

use super::{par_map, par_zip};
use crate::backend::{UnaryOp, C32};

// Each arm's closures name their op as a constant (capturing at most the slope), so the
// loop they are inlined into holds no per-element `match` and vectorises.
macro_rules! per_op {
    ($op:expr, |$f:ident, $df:ident| $body:expr) => {
        match $op {
            UnaryOp::Exp => {
                let $f = |v: f32| UnaryOp::Exp.f(v);
                let $df = |v: f32| UnaryOp::Exp.df(v);
                $body
            }
            UnaryOp::Log => {
                let $f = |v: f32| UnaryOp::Log.f(v);
                let $df = |v: f32| UnaryOp::Log.df(v);
                $body
            }
            UnaryOp::Sqrt => {
                let $f = |v: f32| UnaryOp::Sqrt.f(v);
                let $df = |v: f32| UnaryOp::Sqrt.df(v);
                $body
            }
            UnaryOp::Square => {
                let $f = |v: f32| UnaryOp::Square.f(v);
                let $df = |v: f32| UnaryOp::Square.df(v);
                $body
            }
            UnaryOp::Tanh => {
                let $f = |v: f32| UnaryOp::Tanh.f(v);
                let $df = |v: f32| UnaryOp::Tanh.df(v);
                $body
            }
            UnaryOp::Sigmoid => {
                let $f = |v: f32| UnaryOp::Sigmoid.f(v);
                let $df = |v: f32| UnaryOp::Sigmoid.df(v);
                $body
            }
            UnaryOp::Abs => {
                let $f = |v: f32| UnaryOp::Abs.f(v);
                let $df = |v: f32| UnaryOp::Abs.df(v);
                $body
            }
            UnaryOp::LeakyRelu(s) => {
                let $f = move |v: f32| UnaryOp::LeakyRelu(s).f(v);
                let $df = move |v: f32| UnaryOp::LeakyRelu(s).df(v);
                $body
            }
        }
    };
}

/// `y = f(x)`.
pub fn unary(op: UnaryOp, x: &[f32]) -> Vec<f32> {
    #[allow(unused_variables)]
    let y = per_op!(op, |f, df| par_map(x, f));
    y
}

/// `dx = dy f'(x)`.
pub fn unary_backward(op: UnaryOp, x: &[f32], gy: &[f32]) -> Vec<f32> {
    #[allow(unused_variables)]
    let dx = per_op!(op, |f, df| par_zip(gy, x, move |g, v| g * df(v)));
    dx
}

/// `y = a x + b` (real).
pub fn affine(x: &[f32], a: f32, b: f32) -> Vec<f32> {
    par_map(x, |v| a * v + b)
}

/// `y = a z + b` (complex; the real `b` adds to the real part).
pub fn affine_complex(z: &[C32], a: f32, b: f32) -> Vec<C32> {
    par_map(z, |z| C32::new(a * z.re + b, a * z.im))
}
