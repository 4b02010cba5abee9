//! AdamW update in place on the device (`kernels/adamw.wgsl`), PyTorch semantics.

use bytemuck::{Pod, Zeroable};

use super::{check_len, grid_1d, u32_of, Arg, GpuBuffer, GpuContext, Kernel};
pub use crate::backend::AdamWStep;
use crate::error::Result;

const K: Kernel = super::gpu_kernel!("adamw");

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n: u32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    decay: f32,
    step: f32,
    bc2_sqrt: f32,
    _pad: f32,
}

/// `m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; p *= 1 - lr wd;
/// p -= (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps)` with `bc_i = 1 - b_i^t` (computed in f64).
pub fn adamw_step(
    ctx: &GpuContext,
    s: &AdamWStep,
    param: &GpuBuffer,
    grad: &GpuBuffer,
    m: &GpuBuffer,
    v: &GpuBuffer,
) -> Result<()> {
    let n = param.len;
    for b in [grad, m, v] {
        check_len("adamw", b, n, &[n])?;
    }
    let t = s.t.max(1) as i32;
    let bc1 = 1.0 - s.beta1.powi(t);
    let bc2 = 1.0 - s.beta2.powi(t);
    let p = Params {
        n: u32_of("adamw", n)?,
        beta1: s.beta1 as f32,
        beta2: s.beta2 as f32,
        eps: s.eps as f32,
        decay: (1.0 - s.lr * s.weight_decay) as f32,
        step: (s.lr / bc1) as f32,
        bc2_sqrt: bc2.sqrt() as f32,
        _pad: 0.0,
    };
    ctx.launch(
        &K,
        "adamw_step",
        &p,
        &[
            Arg::Write(param),
            Arg::Read(grad),
            Arg::Write(m),
            Arg::Write(v),
        ],
        grid_1d(n),
    )
}
