//! Instance norm over (n, c) planes with an optional affine map (`kernels/instance_norm.wgsl`):
//! forward saving (mean, rstd) per plane, and the VJP wrt x, weight and bias.

use bytemuck::{Pod, Zeroable};

use super::{check_len, grid_groups, reduce, u32_of, Arg, GpuBuffer, GpuContext, Kernel};
pub use crate::backend::NormShape;
use crate::error::{Error, Result};

const K: Kernel = super::gpu_kernel!("instance_norm");

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    planes: u32,
    c: u32,
    m: u32,
    has_weight: u32,
    has_bias: u32,
    eps: f32,
    _pad: [u32; 2],
}

fn params(
    op: &'static str,
    s: &NormShape,
    has_weight: bool,
    has_bias: bool,
    eps: f32,
) -> Result<Params> {
    if s.m == 0 || s.planes() == 0 {
        return Err(Error::shape(op, &[s.n, s.c, s.m], "empty"));
    }
    Ok(Params {
        planes: u32_of(op, s.planes())?,
        c: u32_of(op, s.c)?,
        m: u32_of(op, s.m)?,
        has_weight: has_weight as u32,
        has_bias: has_bias as u32,
        eps,
        _pad: [0; 2],
    })
}

/// `y = (x - mean) rstd w[c] + b[c]` per plane (biased variance). Returns `(y, stats)` with
/// `stats = [(mean, rstd); n * c]` for the backward pass.
pub fn instance_norm(
    ctx: &GpuContext,
    s: &NormShape,
    x: &GpuBuffer,
    weight: Option<&GpuBuffer>,
    bias: Option<&GpuBuffer>,
    eps: f32,
) -> Result<(GpuBuffer, GpuBuffer)> {
    const OP: &str = "instance_norm";
    check_len(OP, x, s.numel(), &[s.n, s.c, s.m])?;
    for b in [weight, bias].into_iter().flatten() {
        check_len(OP, b, s.c, &[s.c])?;
    }
    let p = params(OP, s, weight.is_some(), bias.is_some(), eps)?;
    let y = ctx.alloc(s.numel())?;
    let stats = ctx.alloc(2 * s.planes())?;
    let args = [
        Arg::Read(x),
        Arg::Read(weight.unwrap_or(x)),
        Arg::Read(bias.unwrap_or(x)),
        Arg::Write(&y),
        Arg::Write(&stats),
    ];
    ctx.launch(&K, "forward", &p, &args, grid_groups(s.planes()))?;
    Ok((y, stats))
}

/// VJP: `dx = rstd (gh - mean(gh) - xh mean(gh xh))` with `gh = gy w[c]`,
/// `dw[c] = sum gy xh`, `db[c] = sum gy`. Returns `(dx, dw, db)`.
pub fn instance_norm_backward(
    ctx: &GpuContext,
    s: &NormShape,
    x: &GpuBuffer,
    weight: Option<&GpuBuffer>,
    stats: &GpuBuffer,
    gy: &GpuBuffer,
) -> Result<(GpuBuffer, GpuBuffer, GpuBuffer)> {
    const OP: &str = "instance_norm_backward";
    check_len(OP, x, s.numel(), &[s.n, s.c, s.m])?;
    check_len(OP, gy, s.numel(), &[s.n, s.c, s.m])?;
    check_len(OP, stats, 2 * s.planes(), &[s.planes(), 2])?;
    if let Some(w) = weight {
        check_len(OP, w, s.c, &[s.c])?;
    }
    let p = params(OP, s, weight.is_some(), false, 0.0)?;
    let dx = ctx.alloc(s.numel())?;
    let partial = ctx.alloc(2 * s.planes())?;
    let args = [
        Arg::Read(x),
        Arg::Read(weight.unwrap_or(x)),
        Arg::Read(gy),
        Arg::Write(&dx),
        Arg::Write(stats),
        Arg::Write(&partial),
    ];
    ctx.launch(&K, "backward", &p, &args, grid_groups(s.planes()))?;
    let dw = reduce::sum_strided_at(ctx, &partial, 0, s.n, s.c, 1.0)?;
    let db = reduce::sum_strided_at(ctx, &partial, s.planes(), s.n, s.c, 1.0)?;
    drop(partial);
    Ok((dx, dw, db))
}
