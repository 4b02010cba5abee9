//! Elementwise maps on host slices: the real unary functions and their VJPs, and `a x + b`.
//! Each map is monomorphised per op (the `match` sits outside the loop, so the loops vectorise).

use super::{par_map, par_zip};
use crate::backend::{UnaryOp, C32};

macro_rules! per_op {
    ($op:expr, |$u:ident| $body:expr) => {
        match $op {
            UnaryOp::Exp => {
                let $u = UnaryOp::Exp;
                $body
            }
            UnaryOp::Log => {
                let $u = UnaryOp::Log;
                $body
            }
            UnaryOp::Sqrt => {
                let $u = UnaryOp::Sqrt;
                $body
            }
            UnaryOp::Square => {
                let $u = UnaryOp::Square;
                $body
            }
            UnaryOp::Tanh => {
                let $u = UnaryOp::Tanh;
                $body
            }
            UnaryOp::Sigmoid => {
                let $u = UnaryOp::Sigmoid;
                $body
            }
            UnaryOp::LeakyRelu(s) => {
                let $u = UnaryOp::LeakyRelu(s);
                $body
            }
            UnaryOp::Abs => {
                let $u = UnaryOp::Abs;
                $body
            }
        }
    };
}

/// `y = f(x)`.
pub fn unary(op: UnaryOp, x: &[f32]) -> Vec<f32> {
    per_op!(op, |u| par_map(x, move |v| u.f(v)))
}

/// `dx = dy f'(x)`.
pub fn unary_backward(op: UnaryOp, x: &[f32], gy: &[f32]) -> Vec<f32> {
    per_op!(op, |u| par_zip(gy, x, move |g, v| g * u.df(v)))
}

/// `y = a x + b` (real).
pub fn affine(x: &[f32], a: f32, b: f32) -> Vec<f32> {
    par_map(x, |v| a * v + b)
}

/// `y = a z + b` (complex; the real `b` adds to the real part).
pub fn affine_complex(z: &[C32], a: f32, b: f32) -> Vec<C32> {
    par_map(z, |z| C32::new(a * z.re + b, a * z.im))
}
