//! Zero pad / crop of the last two axes (`kernels/pad.wgsl`), real or complex. The VJP of a
//! pad is the crop of the same window and the reverse.

use bytemuck::{Pod, Zeroable};

use super::{check_len, grid_1d, u32_of, Arg, GpuBuffer, GpuContext, Kernel};
use crate::error::{Error, Result};

const K: Kernel = super::gpu_kernel!("pad");

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    planes: u32,
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
    off_y: i32,
    off_x: i32,
    _pad: u32,
}

/// Planes of `(h, w)`; `complex` doubles the words per element.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Planes {
    pub planes: usize,
    pub h: usize,
    pub w: usize,
    pub complex: bool,
}

impl Planes {
    fn words(&self, h: usize, w: usize) -> usize {
        self.planes * h * w * if self.complex { 2 } else { 1 }
    }
}

#[allow(clippy::too_many_arguments)]
fn window(
    ctx: &GpuContext,
    op: &'static str,
    x: &GpuBuffer,
    s: Planes,
    oh: usize,
    ow: usize,
    off_y: i64,
    off_x: i64,
) -> Result<GpuBuffer> {
    check_len(op, x, s.words(s.h, s.w), &[s.planes, s.h, s.w])?;
    let out = ctx.alloc(s.words(oh, ow))?;
    let i32_of = |v: i64| i32::try_from(v).map_err(|_| Error::arg(op, "offset too large"));
    let p = Params {
        planes: u32_of(op, s.planes)?,
        in_h: u32_of(op, s.h)?,
        in_w: u32_of(op, s.w)?,
        out_h: u32_of(op, oh)?,
        out_w: u32_of(op, ow)?,
        off_y: i32_of(off_y)?,
        off_x: i32_of(off_x)?,
        _pad: 0,
    };
    let entry = if s.complex {
        "window_complex"
    } else {
        "window_real"
    };
    ctx.launch(
        &K,
        entry,
        &p,
        &[Arg::Read(x), Arg::Write(&out)],
        grid_1d(s.planes * oh * ow),
    )?;
    Ok(out)
}

/// Zero-pads each plane to `(top + h + bottom, left + w + right)`. VJP: [`crop2d`] with
/// `(top, h, left, w)`.
pub fn pad2d(
    ctx: &GpuContext,
    x: &GpuBuffer,
    s: Planes,
    top: usize,
    bottom: usize,
    left: usize,
    right: usize,
) -> Result<GpuBuffer> {
    window(
        ctx,
        "pad2d",
        x,
        s,
        top + s.h + bottom,
        left + s.w + right,
        -(top as i64),
        -(left as i64),
    )
}

/// Keeps rows `row0 .. row0 + rows` and columns `col0 .. col0 + cols` of each plane. VJP:
/// [`pad2d`] back to `(h, w)`.
pub fn crop2d(
    ctx: &GpuContext,
    x: &GpuBuffer,
    s: Planes,
    row0: usize,
    rows: usize,
    col0: usize,
    cols: usize,
) -> Result<GpuBuffer> {
    if row0 + rows > s.h || col0 + cols > s.w {
        return Err(Error::shape(
            "crop2d",
            &[s.planes, s.h, s.w],
            format!("window ({row0}+{rows}, {col0}+{cols}) outside"),
        ));
    }
    window(ctx, "crop2d", x, s, rows, cols, row0 as i64, col0 as i64)
}
