//! Real elementwise ops (`kernels/elementwise.wgsl`): binary ops with a broadcast right operand,
//! unary maps and their VJPs `gy * f'(x)`.

use bytemuck::{Pod, Zeroable};

use super::{check_len, grid_1d, u32_of, Arg, GpuBuffer, GpuContext, Kernel};
use crate::backend::{BinOp, UnaryOp};
use crate::error::{Error, Result};

const K: Kernel = super::gpu_kernel!("elementwise");

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n: u32,
    b_div: u32,
    b_mod: u32,
    _pad0: u32,
    alpha: f32,
    beta: f32,
    _pad1: [f32; 2],
}

/// How the right operand `b` lines up with `a` (NCHW).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Broadcast {
    /// `b` has `a`'s shape.
    Same,
    /// `b` is a (C) vector over an (N, C, hw) tensor.
    Channel { c: usize, hw: usize },
    /// `b` is one value (a 1-element buffer, e.g. a reduction's result).
    Scalar,
    /// `b` repeats with period `b.len` (e.g. an (H, W) map over (N, C, H, W)).
    Trailing,
}

impl Broadcast {
    fn div_mod(self, op: &'static str, a: &GpuBuffer, b: &GpuBuffer) -> Result<(u32, u32)> {
        let (div, modulo, need) = match self {
            Broadcast::Same => (1, a.len.max(1), a.len),
            Broadcast::Channel { c, hw } => {
                if c == 0 || hw == 0 || !a.len.is_multiple_of(c * hw) {
                    return Err(Error::arg(
                        op,
                        format!("{} elements are not (N, {c}, {hw})", a.len),
                    ));
                }
                (hw, c, c)
            }
            Broadcast::Scalar => (1, 1, 1),
            Broadcast::Trailing => {
                if b.len == 0 || !a.len.is_multiple_of(b.len) {
                    return Err(Error::arg(
                        op,
                        format!("{} elements do not repeat {}", a.len, b.len),
                    ));
                }
                (1, b.len, b.len)
            }
        };
        check_len(op, b, need, &[need])?;
        Ok((u32_of(op, div)?, u32_of(op, modulo)?))
    }
}

/// The forward and backward entry points of a unary map, and its parameter.
fn entries(op: UnaryOp) -> (&'static str, &'static str, f32) {
    match op {
        UnaryOp::Exp => ("exp_forward", "exp_backward", 0.0),
        UnaryOp::Log => ("log_forward", "log_backward", 0.0),
        UnaryOp::Sqrt => ("sqrt_forward", "sqrt_backward", 0.0),
        UnaryOp::Square => ("square_forward", "square_backward", 0.0),
        UnaryOp::Tanh => ("tanh_forward", "tanh_backward", 0.0),
        UnaryOp::Sigmoid => ("sigmoid_forward", "sigmoid_backward", 0.0),
        UnaryOp::LeakyRelu(s) => ("leaky_relu_forward", "leaky_relu_backward", s),
        UnaryOp::Abs => ("abs_forward", "abs_backward", 0.0),
    }
}

fn run(
    ctx: &GpuContext,
    entry: &'static str,
    p: Params,
    a: &GpuBuffer,
    b: &GpuBuffer,
    c: &GpuBuffer,
) -> Result<GpuBuffer> {
    let out = ctx.alloc(a.len)?;
    ctx.launch(
        &K,
        entry,
        &p,
        &[Arg::Read(a), Arg::Read(b), Arg::Read(c), Arg::Write(&out)],
        grid_1d(a.len),
    )?;
    Ok(out)
}

fn params(
    op: &'static str,
    n: usize,
    div: u32,
    modulo: u32,
    alpha: f32,
    beta: f32,
) -> Result<Params> {
    Ok(Params {
        n: u32_of(op, n)?,
        b_div: div,
        b_mod: modulo,
        _pad0: 0,
        alpha,
        beta,
        _pad1: [0.0; 2],
    })
}

/// `a (op) b` with `b` broadcast as `bc`.
pub fn binary(
    ctx: &GpuContext,
    op: BinOp,
    a: &GpuBuffer,
    b: &GpuBuffer,
    bc: Broadcast,
) -> Result<GpuBuffer> {
    let (div, modulo) = bc.div_mod("binary", a, b)?;
    let entry = op.name();
    run(
        ctx,
        entry,
        params("binary", a.len, div, modulo, 0.0, 0.0)?,
        a,
        b,
        a,
    )
}

/// For `y = x / w` (w broadcast as `bc`): `dw = -gy x / w^2` at full shape; reduce it over the
/// broadcast axes (e.g. [`super::reduce::channel_sums`]). `dx = gy / w` is `binary(Div)`.
pub fn div_backward_b(
    ctx: &GpuContext,
    gy: &GpuBuffer,
    x: &GpuBuffer,
    w: &GpuBuffer,
    bc: Broadcast,
) -> Result<GpuBuffer> {
    check_len("div_backward", x, gy.len, &[gy.len])?;
    let (div, modulo) = bc.div_mod("div_backward", gy, w)?;
    run(
        ctx,
        "div_backward_b",
        params("div_backward", gy.len, div, modulo, 0.0, 0.0)?,
        gy,
        w,
        x,
    )
}

/// `y = scale * x + shift`. VJP: `dx = scale * gy` (= `scale_shift(gy, scale, 0)`).
pub fn scale_shift(ctx: &GpuContext, x: &GpuBuffer, scale: f32, shift: f32) -> Result<GpuBuffer> {
    let n = x.len.max(1) as u32;
    run(
        ctx,
        "scale_shift",
        params("scale_shift", x.len, 1, n, scale, shift)?,
        x,
        x,
        x,
    )
}

/// `y = alpha z + beta` on a complex buffer of interleaved (re, im) words: `beta` (real) adds
/// to the real parts only. VJP: `dz = alpha gy` ([`scale_shift`] with shift 0).
pub fn affine_complex(ctx: &GpuContext, z: &GpuBuffer, alpha: f32, beta: f32) -> Result<GpuBuffer> {
    let n = z.len.max(1) as u32;
    run(
        ctx,
        "affine_complex",
        params("affine_complex", z.len, 1, n, alpha, beta)?,
        z,
        z,
        z,
    )
}

/// `y = f(x)`.
pub fn unary(ctx: &GpuContext, op: UnaryOp, x: &GpuBuffer) -> Result<GpuBuffer> {
    let (fwd, _, alpha) = entries(op);
    let n = x.len.max(1) as u32;
    run(ctx, fwd, params("unary", x.len, 1, n, alpha, 0.0)?, x, x, x)
}

/// `dx = gy * f'(x)`.
pub fn unary_backward(
    ctx: &GpuContext,
    op: UnaryOp,
    x: &GpuBuffer,
    gy: &GpuBuffer,
) -> Result<GpuBuffer> {
    let (_, bwd, alpha) = entries(op);
    check_len("unary_backward", gy, x.len, &[x.len])?;
    let n = x.len.max(1) as u32;
    run(
        ctx,
        bwd,
        params("unary_backward", x.len, 1, n, alpha, 0.0)?,
        x,
        gy,
        x,
    )
}
