//! Max pool 2x2 stride 2 (floor) (`kernels/max_pool2d.wgsl`): forward, and the VJP routing each
//! gradient to its window's argmax (recomputed from x).

use bytemuck::{Pod, Zeroable};

use super::{check_len, grid_1d, u32_of, Arg, GpuBuffer, GpuContext, Kernel};
use crate::error::{Error, Result};

const K: Kernel = super::gpu_kernel!("max_pool2d");

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
    if h < 2 || w < 2 {
        return Err(Error::shape(
            op,
            &[planes, h, w],
            "max_pool2d needs H, W >= 2",
        ));
    }
    Ok(Params {
        planes: u32_of(op, planes)?,
        h: u32_of(op, h)?,
        w: u32_of(op, w)?,
        oh: (h / 2) as u32,
        ow: (w / 2) as u32,
        _pad: [0; 3],
    })
}

/// `planes` (= N*C) planes of `(h, w)` -> `(h/2, w/2)`.
pub fn max_pool2d(
    ctx: &GpuContext,
    x: &GpuBuffer,
    planes: usize,
    h: usize,
    w: usize,
) -> Result<GpuBuffer> {
    const OP: &str = "max_pool2d";
    check_len(OP, x, planes * h * w, &[planes, h, w])?;
    let p = params(OP, planes, h, w)?;
    let n_out = planes * (h / 2) * (w / 2);
    let y = ctx.alloc(n_out)?;
    ctx.launch(
        &K,
        "forward",
        &p,
        &[Arg::Read(x), Arg::Read(x), Arg::Write(&y)],
        grid_1d(n_out),
    )?;
    Ok(y)
}

/// VJP: `dx[q, i] = gy[q, o]` where `i` is the argmax of window `o` of `x`, else 0 (shape
/// `(planes, h, w)`); the argmax is recomputed from `x`, nothing is saved by the forward.
pub fn max_pool2d_backward(
    ctx: &GpuContext,
    x: &GpuBuffer,
    gy: &GpuBuffer,
    planes: usize,
    h: usize,
    w: usize,
) -> Result<GpuBuffer> {
    const OP: &str = "max_pool2d_backward";
    let p = params(OP, planes, h, w)?;
    let n_out = planes * (h / 2) * (w / 2);
    check_len(OP, x, planes * h * w, &[planes, h, w])?;
    check_len(OP, gy, n_out, &[planes, h / 2, w / 2])?;
    let dx = ctx.alloc(planes * h * w)?;
    ctx.launch(
        &K,
        "backward",
        &p,
        &[Arg::Read(x), Arg::Read(gy), Arg::Write(&dx)],
        grid_1d(planes * h * w),
    )?;
    Ok(dx)
}
