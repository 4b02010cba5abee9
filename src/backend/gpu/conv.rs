//! 2-D convolution, stride 1, zero "same" padding (`kernels/conv2d.wgsl`): forward with bias,
//! and the VJPs wrt the input, the weight and the bias.

use bytemuck::{Pod, Zeroable};

use super::{check_len, grid_groups, reduce, u32_of, Arg, GpuBuffer, GpuContext, Kernel};
pub use crate::backend::ConvShape;
use crate::error::{Error, Result};

const K: Kernel = super::gpu_kernel!("conv2d");
const TILE: usize = 16;
const COB: usize = 4;
/// Pixels per partial in `backward_weight_partial` (must match the WGSL `CHUNK`).
const CHUNK: usize = 4096;

trait Check {
    fn check(&self, op: &'static str) -> Result<()>;
    fn params(&self, op: &'static str, co_blocks: usize, chunks: usize) -> Result<Params>;
    fn sweep_groups(&self, c_dst: usize) -> [u32; 3];
}

impl Check for ConvShape {
    fn check(&self, op: &'static str) -> Result<()> {
        if !matches!(self.k, 1 | 3 | 5) {
            return Err(Error::arg(
                op,
                format!("kernel size {} not in {{1, 3, 5}}", self.k),
            ));
        }
        if self.n * self.cin * self.cout * self.h * self.w == 0 {
            return Err(Error::shape(
                op,
                &[self.n, self.cin, self.cout, self.h, self.w],
                "empty",
            ));
        }
        Ok(())
    }
    fn params(&self, op: &'static str, co_blocks: usize, chunks: usize) -> Result<Params> {
        Ok(Params {
            n: u32_of(op, self.n)?,
            cin: u32_of(op, self.cin)?,
            cout: u32_of(op, self.cout)?,
            h: u32_of(op, self.h)?,
            w: u32_of(op, self.w)?,
            k: self.k as u32,
            pad: (self.k / 2) as u32,
            co_blocks: u32_of(op, co_blocks)?,
            chunks: u32_of(op, chunks)?,
            _pad: [0; 3],
        })
    }
    fn sweep_groups(&self, c_dst: usize) -> [u32; 3] {
        let z = self.n * c_dst.div_ceil(COB);
        [
            self.w.div_ceil(TILE) as u32,
            self.h.div_ceil(TILE) as u32,
            z.min(u32::MAX as usize) as u32,
        ]
    }
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n: u32,
    cin: u32,
    cout: u32,
    h: u32,
    w: u32,
    k: u32,
    pad: u32,
    co_blocks: u32,
    chunks: u32,
    _pad: [u32; 3],
}

/// `y = conv2d(x, weight) + bias`.
pub fn conv2d(
    ctx: &GpuContext,
    s: &ConvShape,
    x: &GpuBuffer,
    weight: &GpuBuffer,
    bias: Option<&GpuBuffer>,
) -> Result<GpuBuffer> {
    const OP: &str = "conv2d";
    s.check(OP)?;
    check_len(OP, x, s.x_len(), &[s.n, s.cin, s.h, s.w])?;
    check_len(OP, weight, s.w_len(), &[s.cout, s.cin, s.k, s.k])?;
    let zero_bias;
    let bias = match bias {
        Some(b) => {
            check_len(OP, b, s.cout, &[s.cout])?;
            b
        }
        None => {
            zero_bias = ctx.zeros(s.cout)?;
            &zero_bias
        }
    };
    let y = ctx.alloc(s.y_len())?;
    let p = s.params(OP, s.cout.div_ceil(COB), 0)?;
    ctx.launch(
        &K,
        "forward",
        &p,
        &[
            Arg::Read(x),
            Arg::Read(weight),
            Arg::Read(bias),
            Arg::Write(&y),
        ],
        s.sweep_groups(s.cout),
    )?;
    Ok(y)
}

/// `dx[n,i] = sum_o conv(gy[n,o], flip(w[o,i]))` — the transposed convolution of `gy`.
pub fn conv2d_backward_input(
    ctx: &GpuContext,
    s: &ConvShape,
    gy: &GpuBuffer,
    weight: &GpuBuffer,
) -> Result<GpuBuffer> {
    const OP: &str = "conv2d_backward_input";
    s.check(OP)?;
    check_len(OP, gy, s.y_len(), &[s.n, s.cout, s.h, s.w])?;
    check_len(OP, weight, s.w_len(), &[s.cout, s.cin, s.k, s.k])?;
    let dx = ctx.alloc(s.x_len())?;
    let p = s.params(OP, s.cin.div_ceil(COB), 0)?;
    ctx.launch(
        &K,
        "backward_input",
        &p,
        &[
            Arg::Read(gy),
            Arg::Read(weight),
            Arg::Read(weight),
            Arg::Write(&dx),
        ],
        s.sweep_groups(s.cin),
    )?;
    Ok(dx)
}

/// `dw[o,i,ky,kx] = sum_{n,y,x} gy[n,o,y,x] x[n,i,y+ky-p,x+kx-p]` and `db[o] = sum gy[n,o]`:
/// per-chunk partials, then an ordered sum over chunks (deterministic). Returns `(dw, db)`.
pub fn conv2d_backward_weight(
    ctx: &GpuContext,
    s: &ConvShape,
    x: &GpuBuffer,
    gy: &GpuBuffer,
) -> Result<(GpuBuffer, GpuBuffer)> {
    const OP: &str = "conv2d_backward_weight";
    s.check(OP)?;
    check_len(OP, x, s.x_len(), &[s.n, s.cin, s.h, s.w])?;
    check_len(OP, gy, s.y_len(), &[s.n, s.cout, s.h, s.w])?;
    let chunks = (s.n * s.h * s.w).div_ceil(CHUNK);
    let partial = ctx.alloc(chunks * s.w_len())?;
    let p = s.params(OP, 0, chunks)?;
    let groups = grid_groups(chunks * s.cout * s.cin);
    ctx.launch(
        &K,
        "backward_weight_partial",
        &p,
        &[
            Arg::Read(x),
            Arg::Read(gy),
            Arg::Read(gy),
            Arg::Write(&partial),
        ],
        groups,
    )?;
    let dw = reduce::sum_strided(ctx, &partial, chunks, s.w_len(), 1.0)?;
    drop(partial);
    let db = reduce::channel_sums(ctx, gy, s.n, s.cout, s.h * s.w)?;
    Ok((dw, db))
}
