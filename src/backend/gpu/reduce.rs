//! Deterministic reductions (`kernels/reduce.wgsl`): sum of all, per-row sums, per-channel sums,
//! the mean squared error and its gradient. Two-stage: fixed chunks per workgroup, then again
//! over the partials, so results never depend on scheduling.

use bytemuck::{Pod, Zeroable};

use super::{check_len, grid_1d, grid_groups, u32_of, Arg, GpuBuffer, GpuContext, Kernel};
use crate::error::{Error, Result};

const K: Kernel = super::gpu_kernel!("reduce");
/// Elements one workgroup sums in a stage of `sum_all`.
const CHUNK: usize = 4096;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n: u32,
    chunk: u32,
    count: u32,
    stride: u32,
    scale: f32,
    offset: u32,
    _pad: [f32; 2],
}

fn params(n: usize, chunk: usize, count: usize, stride: usize, scale: f32) -> Result<Params> {
    Ok(Params {
        n: u32_of("reduce", n)?,
        chunk: u32_of("reduce", chunk)?,
        count: u32_of("reduce", count)?,
        stride: u32_of("reduce", stride)?,
        scale,
        offset: 0,
        _pad: [0.0; 2],
    })
}

/// `out[r] = scale * sum(x[r*len .. (r+1)*len])` for `x.len / len` rows (one workgroup a row).
pub fn sum_rows(ctx: &GpuContext, x: &GpuBuffer, len: usize, scale: f32) -> Result<GpuBuffer> {
    if len == 0 || !x.len.is_multiple_of(len) {
        return Err(Error::arg(
            "sum_rows",
            format!("{} elements are not rows of {len}", x.len),
        ));
    }
    stage(ctx, "sum_stage", x, x, len, scale)
}

fn stage(
    ctx: &GpuContext,
    entry: &'static str,
    a: &GpuBuffer,
    b: &GpuBuffer,
    chunk: usize,
    scale: f32,
) -> Result<GpuBuffer> {
    let groups = a.len.div_ceil(chunk);
    let out = ctx.alloc(groups)?;
    let p = params(a.len, chunk, 0, 0, scale)?;
    ctx.launch(
        &K,
        entry,
        &p,
        &[Arg::Read(a), Arg::Read(b), Arg::Read(a), Arg::Write(&out)],
        grid_groups(groups),
    )?;
    Ok(out)
}

/// `scale * sum(f(a, b))` down to one value: `entry` over chunks, then `sum_stage` over the
/// partials until one workgroup is left; `scale` is applied once, in the last stage.
fn to_scalar(
    ctx: &GpuContext,
    entry: &'static str,
    a: &GpuBuffer,
    b: &GpuBuffer,
    scale: f32,
) -> Result<GpuBuffer> {
    if a.len <= CHUNK {
        return stage(ctx, entry, a, b, CHUNK, scale);
    }
    let mut cur = stage(ctx, entry, a, b, CHUNK, 1.0)?;
    while cur.len > CHUNK {
        let next = stage(ctx, "sum_stage", &cur, &cur, CHUNK, 1.0)?;
        drop(cur);
        cur = next;
    }
    let out = stage(ctx, "sum_stage", &cur, &cur, CHUNK, scale)?;
    drop(cur);
    Ok(out)
}

/// `scale * sum(x)` as a 1-element buffer (no readback).
pub fn sum_all(ctx: &GpuContext, x: &GpuBuffer, scale: f32) -> Result<GpuBuffer> {
    if x.len == 0 {
        return ctx.zeros(1);
    }
    to_scalar(ctx, "sum_stage", x, x, scale)
}

/// `out[j] = scale * sum_k x[k * stride + j]` for `j < stride` (e.g. sum over N of an (N, C)).
pub fn sum_strided(
    ctx: &GpuContext,
    x: &GpuBuffer,
    count: usize,
    stride: usize,
    scale: f32,
) -> Result<GpuBuffer> {
    check_len("sum_strided", x, count * stride, &[count, stride])?;
    sum_strided_at(ctx, x, 0, count, stride, scale)
}

/// [`sum_strided`] over the words of `x` from `offset` on: `out[j] = scale * sum_k
/// x[offset + k * stride + j]`.
pub fn sum_strided_at(
    ctx: &GpuContext,
    x: &GpuBuffer,
    offset: usize,
    count: usize,
    stride: usize,
    scale: f32,
) -> Result<GpuBuffer> {
    if offset + count * stride > x.len {
        return Err(Error::arg(
            "sum_strided",
            format!("{offset} + {count} x {stride} exceeds {} words", x.len),
        ));
    }
    let out = ctx.alloc(stride)?;
    let mut p = params(x.len, 0, count, stride, scale)?;
    p.offset = u32_of("sum_strided", offset)?;
    ctx.launch(
        &K,
        "sum_strided",
        &p,
        &[Arg::Read(x), Arg::Read(x), Arg::Read(x), Arg::Write(&out)],
        grid_1d(stride),
    )?;
    Ok(out)
}

/// Per-channel sums of an (N, C, HW) tensor: `out[c] = sum_{n, p} x[n, c, p]`.
pub fn channel_sums(
    ctx: &GpuContext,
    x: &GpuBuffer,
    n: usize,
    c: usize,
    hw: usize,
) -> Result<GpuBuffer> {
    check_len("channel_sums", x, n * c * hw, &[n, c, hw])?;
    if hw == 0 || n == 0 {
        return ctx.zeros(c);
    }
    let planes = sum_rows(ctx, x, hw, 1.0)?;
    let out = sum_strided(ctx, &planes, n, c, 1.0)?;
    drop(planes);
    Ok(out)
}

/// `mean((a - b)^2)` as a 1-element buffer.
pub fn mse(ctx: &GpuContext, a: &GpuBuffer, b: &GpuBuffer) -> Result<GpuBuffer> {
    check_len("mse", b, a.len, &[a.len])?;
    if a.len == 0 {
        return Err(Error::arg("mse", "empty input"));
    }
    to_scalar(ctx, "sq_diff_stage", a, b, 1.0 / a.len as f32)
}

/// Gradient of `L = mean((a - b)^2)` wrt `a` given `gy = dL` (1-element buffer):
/// `da = 2 (a - b) gy / n`; the gradient wrt `b` is `-da`.
pub fn mse_backward(
    ctx: &GpuContext,
    a: &GpuBuffer,
    b: &GpuBuffer,
    gy: &GpuBuffer,
) -> Result<GpuBuffer> {
    check_len("mse_backward", b, a.len, &[a.len])?;
    check_len("mse_backward", gy, 1, &[1])?;
    let out = ctx.alloc(a.len)?;
    let p = params(a.len, 0, 0, 0, 2.0 / a.len.max(1) as f32)?;
    ctx.launch(
        &K,
        "mse_backward",
        &p,
        &[Arg::Read(a), Arg::Read(b), Arg::Read(gy), Arg::Write(&out)],
        grid_1d(a.len),
    )?;
    Ok(out)
}

/// `max(x)` as a 1-element buffer (NaN propagates), by fixed chunks then over the partials.
pub fn max_all(ctx: &GpuContext, x: &GpuBuffer) -> Result<GpuBuffer> {
    if x.len == 0 {
        return Err(Error::arg("max_all", "empty input"));
    }
    let mut cur = stage(ctx, "max_stage", x, x, CHUNK, 1.0)?;
    while cur.len > 1 {
        let next = stage(ctx, "max_stage", &cur, &cur, CHUNK, 1.0)?;
        cur = next;
    }
    Ok(cur)
}

/// `1` where `x` equals the 1-element `max` (NaN equals NaN), else `0`.
pub fn ties(ctx: &GpuContext, x: &GpuBuffer, max: &GpuBuffer) -> Result<GpuBuffer> {
    check_len("ties", max, 1, &[1])?;
    let out = ctx.alloc(x.len)?;
    let p = params(x.len, 0, 0, 0, 1.0)?;
    ctx.launch(
        &K,
        "ties",
        &p,
        &[Arg::Read(x), Arg::Read(x), Arg::Read(max), Arg::Write(&out)],
        grid_1d(x.len),
    )?;
    Ok(out)
}
