//! Bilinear sampling through an affine map, zero outside (`kernels/affine_sample.wgsl`): the
//! forward, its VJP in x as a gather (no atomics) and the gradient in the sample position. The
//! affine map is a device buffer of six floats, bound read-only: it is a trained tensor, so it
//! is never read back to build the launch.

use bytemuck::{Pod, Zeroable};

use super::{check_len, grid_1d, u32_of, Arg, GpuBuffer, GpuContext, Kernel};
use crate::backend::SampleShape;
use crate::error::{Error, Result};

const K: Kernel = super::gpu_kernel!("affine_sample");

/// Most outputs per axis the VJP in x visits for one input pixel. The preimage of a pixel's
/// 2x2 tap square spans `2 (|A^-1| row sum) + 3` outputs per axis, so dx is exact up to a
/// magnification (output pixels per input pixel) of about 30 without rotation, about 21 at
/// 45 degrees; beyond that, and for a singular `A` (the whole output, capped), the GPU's dx
/// misses outputs. The CPU has no limit.
pub const GATHER_CAP: u32 = 64;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    planes: u32,
    h: u32,
    w: u32,
    oh: u32,
    ow: u32,
    cap: u32,
    _pad: [u32; 2],
}

fn params(op: &'static str, s: &SampleShape) -> Result<Params> {
    if s.h == 0 || s.w == 0 || s.oh == 0 || s.ow == 0 {
        return Err(Error::shape(
            op,
            &[s.planes, s.h, s.w, s.oh, s.ow],
            "empty input or output plane",
        ));
    }
    // every flat index the kernels form must fit a u32
    u32_of(op, s.input_len().max(s.output_len()).max(2 * s.oh * s.ow))?;
    Ok(Params {
        planes: u32_of(op, s.planes)?,
        h: u32_of(op, s.h)?,
        w: u32_of(op, s.w)?,
        oh: u32_of(op, s.oh)?,
        ow: u32_of(op, s.ow)?,
        cap: GATHER_CAP,
        _pad: [0; 2],
    })
}

fn check_affine(op: &'static str, a: &GpuBuffer) -> Result<()> {
    check_len(op, a, 6, &[6])
}

/// `y = S x`: x `(planes, h, w)`, the affine map's 6 floats -> `(planes, oh, ow)`.
pub fn affine_sample(
    ctx: &GpuContext,
    s: &SampleShape,
    x: &GpuBuffer,
    affine: &GpuBuffer,
) -> Result<GpuBuffer> {
    const OP: &str = "affine_sample";
    let p = params(OP, s)?;
    check_len(OP, x, s.input_len(), &[s.planes, s.h, s.w])?;
    check_affine(OP, affine)?;
    let y = ctx.alloc(s.output_len())?;
    ctx.launch(
        &K,
        "forward",
        &p,
        &[
            Arg::Read(x),
            Arg::Read(affine),
            Arg::Read(x),
            Arg::Write(&y),
        ],
        grid_1d(s.output_len()),
    )?;
    Ok(y)
}

/// VJP in x: `dx = S^T gy`, gy `(planes, oh, ow)` -> `(planes, h, w)` (a gather; see
/// [`GATHER_CAP`]).
pub fn affine_sample_grad_x(
    ctx: &GpuContext,
    s: &SampleShape,
    gy: &GpuBuffer,
    affine: &GpuBuffer,
) -> Result<GpuBuffer> {
    const OP: &str = "affine_sample_grad_x";
    let p = params(OP, s)?;
    check_len(OP, gy, s.output_len(), &[s.planes, s.oh, s.ow])?;
    check_affine(OP, affine)?;
    let dx = ctx.alloc(s.input_len())?;
    ctx.launch(
        &K,
        "grad_x",
        &p,
        &[
            Arg::Read(gy),
            Arg::Read(affine),
            Arg::Read(gy),
            Arg::Write(&dx),
        ],
        grid_1d(s.input_len()),
    )?;
    Ok(dx)
}

/// The gradient in the sample position summed over planes, `(2, oh, ow)`: `dL/ds_c` then
/// `dL/ds_r`, from x, the affine map and gy.
pub fn affine_sample_grad_pos(
    ctx: &GpuContext,
    s: &SampleShape,
    x: &GpuBuffer,
    affine: &GpuBuffer,
    gy: &GpuBuffer,
) -> Result<GpuBuffer> {
    const OP: &str = "affine_sample_grad_pos";
    let p = params(OP, s)?;
    check_len(OP, x, s.input_len(), &[s.planes, s.h, s.w])?;
    check_affine(OP, affine)?;
    check_len(OP, gy, s.output_len(), &[s.planes, s.oh, s.ow])?;
    let n = s.oh * s.ow;
    let gs = ctx.alloc(2 * n)?;
    ctx.launch(
        &K,
        "grad_pos",
        &p,
        &[
            Arg::Read(x),
            Arg::Read(affine),
            Arg::Read(gy),
            Arg::Write(&gs),
        ],
        grid_1d(n),
    )?;
    Ok(gs)
}
