//! GPU backend (wgpu compute): the device context, pooled buffers, pipelines and launches, and
//! one launcher file per op family, each launching the entry points of
//! `kernels/<family>.wgsl`. Everything stays on the device until [`GpuContext::download`];
//! launches are batched into one command encoder per `flush`.

mod buffer;
mod context;
mod launch;
mod resource;

pub mod adamw;
pub mod broadcast;
pub mod complex;
pub mod conv;
pub mod elementwise;
pub mod fft;
pub mod norm;
pub mod pad;
pub mod pool;
pub mod random;
pub mod reduce;
pub mod sample;
pub mod spectral;
pub mod upsample;

pub use context::{AdapterSummary, GpuContext, Opened};
pub(crate) use launch::gpu_kernel;
pub use launch::{grid_1d, grid_groups, u32_of, Arg, Kernel, MAX_GROUPS_PER_DIM, WG_1D};
pub use resource::GpuBuffer;

use crate::error::{Error, Result};

/// Checks that a buffer holds `expected` words.
pub(crate) fn check_len(
    op: &'static str,
    buf: &GpuBuffer,
    expected: usize,
    shape: &[usize],
) -> Result<()> {
    if buf.len != expected {
        return Err(Error::LengthMismatch {
            op,
            len: buf.len,
            shape: shape.to_vec(),
        });
    }
    Ok(())
}
