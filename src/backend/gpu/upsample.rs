//! Bilinear x2 upsampling, align_corners = false (`kernels/upsample_bilinear2d.wgsl`), and its
//! VJP as a gather (no atomics).

use bytemuck::{Pod, Zeroable};

use super::{check_len, grid_1d, u32_of, Arg, GpuBuffer, GpuContext, Kernel};
use crate::error::{Error, Result};

const K: Kernel = super::gpu_kernel!("upsample_bilinear2d");

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    planes: u32,
    h: u32,
    w: u32,
    oh: u32,
    ow: u32,
    _pad: [u32; 3],
}

fn params(op: &'static str, planes: usize, h: usize, w: usize) -> Result<Params> {
    if h == 0 || w == 0 {
        return Err(Error::shape(op, &[planes, h, w], "empty plane"));
    }
    Ok(Params {
        planes: u32_of(op, planes)?,
        h: u32_of(op, h)?,
        w: u32_of(op, w)?,
        oh: u32_of(op, 2 * h)?,
        ow: u32_of(op, 2 * w)?,
        _pad: [0; 3],
    })
}

/// `(planes, h, w) -> (planes, 2h, 2w)`.
pub fn upsample_bilinear2d(
    ctx: &GpuContext,
    x: &GpuBuffer,
    planes: usize,
    h: usize,
    w: usize,
) -> Result<GpuBuffer> {
    const OP: &str = "upsample_bilinear2d";
    check_len(OP, x, planes * h * w, &[planes, h, w])?;
    let p = params(OP, planes, h, w)?;
    let n_out = planes * 4 * h * w;
    let y = ctx.alloc(n_out)?;
    ctx.launch(
        &K,
        "forward",
        &p,
        &[Arg::Read(x), Arg::Write(&y)],
        grid_1d(n_out),
    )?;
    Ok(y)
}

/// VJP: `dx = U^T gy`, gy of shape `(planes, 2h, 2w)`, dx of `(planes, h, w)`.
pub fn upsample_bilinear2d_backward(
    ctx: &GpuContext,
    gy: &GpuBuffer,
    planes: usize,
    h: usize,
    w: usize,
) -> Result<GpuBuffer> {
    const OP: &str = "upsample_bilinear2d_backward";
    check_len(OP, gy, planes * 4 * h * w, &[planes, 2 * h, 2 * w])?;
    let p = params(OP, planes, h, w)?;
    let dx = ctx.alloc(planes * h * w)?;
    ctx.launch(
        &K,
        "backward",
        &p,
        &[Arg::Read(gy), Arg::Write(&dx)],
        grid_1d(planes * h * w),
    )?;
    Ok(dx)
}
