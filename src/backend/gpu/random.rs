//! Counter-based standard normal samples on the device (`kernels/random.wgsl`); the CPU twin
//! is `backend/cpu/random.rs`.

use bytemuck::{Pod, Zeroable};

use super::{grid_1d, u32_of, Arg, GpuBuffer, GpuContext, Kernel};
use crate::error::Result;

const K: Kernel = super::gpu_kernel!("random");

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n: u32,
    k0: u32,
    k1: u32,
    scale: f32,
}

/// `n` samples of the stream `key`, times `scale`.
pub fn normal(ctx: &GpuContext, key: u64, n: usize, scale: f32) -> Result<GpuBuffer> {
    let out = ctx.alloc(n)?;
    let p = Params {
        n: u32_of("randn", n)?,
        k0: key as u32,
        k1: (key >> 32) as u32,
        scale,
    };
    ctx.launch(&K, "normal", &p, &[Arg::Write(&out)], grid_1d(n))?;
    Ok(out)
}
