//! General strided kernels (`kernels/broadcast.wgsl`): binary ops under any NumPy broadcast
//! (real and complex), strided word copies (narrow, cat, broadcast_to) and `sum_to`, the
//! adjoint of broadcasting. Shapes arrive as (coalesced) dimensions with per-operand strides in
//! elements; at most [`MAX_RANK`] dimensions.

use bytemuck::{Pod, Zeroable};

use super::{grid_1d, u32_of, Arg, GpuBuffer, GpuContext, Kernel};
pub use crate::backend::layout::Walk;
use crate::backend::BinOp;
use crate::error::{Error, Result};

const K: Kernel = super::gpu_kernel!("broadcast");
/// Most dimensions a launch takes (after coalescing).
pub const MAX_RANK: usize = 8;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct Params {
    n: u32,
    rank: u32,
    op: u32,
    complex: u32,
    off_a: u32,
    off_b: u32,
    count: u32,
    rrank: u32,
    dims: [u32; 8],
    sa: [u32; 8],
    sb: [u32; 8],
    rdims: [u32; 8],
    rsa: [u32; 8],
}

fn pack(op: &'static str, v: &[usize]) -> Result<[u32; 8]> {
    if v.len() > MAX_RANK {
        return Err(Error::arg(
            op,
            format!("{} dimensions exceed the GPU limit of {MAX_RANK}", v.len()),
        ));
    }
    let mut out = [0u32; 8];
    for (o, &x) in out.iter_mut().zip(v) {
        *o = u32_of(op, x)?;
    }
    Ok(out)
}

fn walk_params(op: &'static str, w: &Walk) -> Result<Params> {
    if w.sa.len() != w.dims.len() || w.sb.len() != w.dims.len() {
        return Err(Error::arg(op, "walk strides do not match its dimensions"));
    }
    Ok(Params {
        n: u32_of(op, w.dims.iter().product())?,
        rank: w.dims.len() as u32,
        dims: pack(op, &w.dims)?,
        sa: pack(op, &w.sa)?,
        sb: pack(op, &w.sb)?,
        ..Default::default()
    })
}

/// `out[i] = a[ia(i)] (op) b[ib(i)]` over `walk` (strides in elements; complex when `complex`).
pub fn binary(
    ctx: &GpuContext,
    op: BinOp,
    a: &GpuBuffer,
    b: &GpuBuffer,
    walk: &Walk,
    complex: bool,
) -> Result<GpuBuffer> {
    const OP: &str = "broadcast binary";
    let mut p = walk_params(OP, walk)?;
    p.op = op.code();
    p.complex = complex as u32;
    let n = p.n as usize;
    let out = ctx.alloc(if complex { 2 * n } else { n })?;
    ctx.launch(
        &K,
        "binary",
        &p,
        &[Arg::Read(a), Arg::Read(b), Arg::Write(&out)],
        grid_1d(n),
    )?;
    Ok(out)
}

/// `dst[off_dst + idx.sb] = src[off_src + idx.sa]` for every multi-index of `walk` (words).
pub fn copy_strided(
    ctx: &GpuContext,
    src: &GpuBuffer,
    off_src: usize,
    dst: &GpuBuffer,
    off_dst: usize,
    walk: &Walk,
) -> Result<()> {
    const OP: &str = "copy_strided";
    let mut p = walk_params(OP, walk)?;
    p.off_a = u32_of(OP, off_src)?;
    p.off_b = u32_of(OP, off_dst)?;
    let n = p.n as usize;
    ctx.launch(
        &K,
        "copy_strided",
        &p,
        &[Arg::Read(src), Arg::Read(src), Arg::Write(dst)],
        grid_1d(n),
    )
}

/// `out[j] = sum_r x[j.sa + r.rsa]`: `kept` walks the outputs (row-major over `kept.dims`,
/// input strides in `kept.sa`), `reduced` (dims, input strides) the terms of each sum.
pub fn sum_to(
    ctx: &GpuContext,
    x: &GpuBuffer,
    kept: (&[usize], &[usize]),
    reduced: (&[usize], &[usize]),
    complex: bool,
) -> Result<GpuBuffer> {
    const OP: &str = "sum_to";
    let n: usize = kept.0.iter().product();
    let count: usize = reduced.0.iter().product();
    if kept.0.len() != kept.1.len() || reduced.0.len() != reduced.1.len() {
        return Err(Error::arg(OP, "strides do not match dimensions"));
    }
    let p = Params {
        n: u32_of(OP, n)?,
        rank: kept.0.len() as u32,
        complex: complex as u32,
        count: u32_of(OP, count)?,
        rrank: reduced.0.len() as u32,
        dims: pack(OP, kept.0)?,
        sa: pack(OP, kept.1)?,
        rdims: pack(OP, reduced.0)?,
        rsa: pack(OP, reduced.1)?,
        ..Default::default()
    };
    let out = ctx.alloc(if complex { 2 * n } else { n })?;
    ctx.launch(
        &K,
        "sum_to",
        &p,
        &[Arg::Read(x), Arg::Read(x), Arg::Write(&out)],
        grid_1d(n),
    )?;
    Ok(out)
}
