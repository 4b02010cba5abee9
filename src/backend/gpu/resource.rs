//! The device resources the context holds: buffers (returned to a byte-bounded pool when
//! dropped) and compiled pipelines. Nothing here needs the context itself.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Most bytes the pool keeps in free buffers; a dropped buffer past this is freed.
const POOL_BYTES: u64 = 1 << 30;
/// Most free buffers of one size.
const POOL_PER_SIZE: usize = 64;

/// Free buffers by byte size.
#[derive(Default)]
pub(crate) struct Pool {
    free: HashMap<u64, Vec<wgpu::Buffer>>,
    bytes: u64,
}

impl Pool {
    pub(crate) fn take(&mut self, bytes: u64) -> Option<wgpu::Buffer> {
        let b = self.free.get_mut(&bytes)?.pop()?;
        self.bytes -= bytes;
        Some(b)
    }
    /// Bytes held in free buffers.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }
    fn give(&mut self, b: &wgpu::Buffer) {
        let size = b.size();
        let list = self.free.entry(size).or_default();
        if list.len() < POOL_PER_SIZE && self.bytes + size <= POOL_BYTES {
            list.push(b.clone());
            self.bytes += size;
        }
    }
}

/// A device buffer of `len` 32-bit words (f32 data; complex data uses 2 words per element).
/// Not `Clone`: a tensor's storage shares it through an `Arc`, and when the last holder drops
/// it the buffer goes back to its context's pool. Reusing it is safe because launches run in
/// the order they were recorded: commands already recorded still see the old content.
#[derive(Debug)]
pub struct GpuBuffer {
    pub(crate) buffer: wgpu::Buffer,
    /// Length in 32-bit words.
    pub len: usize,
    pool: Option<Arc<Mutex<Pool>>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pool({} bytes free)", self.bytes)
    }
}

impl GpuBuffer {
    /// A buffer of `len` words that returns to `pool` when dropped.
    pub(crate) fn pooled(buffer: wgpu::Buffer, len: usize, pool: Arc<Mutex<Pool>>) -> GpuBuffer {
        GpuBuffer {
            buffer,
            len,
            pool: Some(pool),
        }
    }
    /// Size in bytes of the backing allocation (at least 16).
    pub fn byte_size(&self) -> u64 {
        self.buffer.size()
    }
}

impl Drop for GpuBuffer {
    fn drop(&mut self) {
        if let Some(pool) = &self.pool {
            pool.lock()
                .unwrap_or_else(|e| e.into_inner())
                .give(&self.buffer);
        }
    }
}

pub(crate) fn bytes_for(len: usize) -> u64 {
    (len as u64 * 4).max(16)
}

/// A compiled compute pipeline and its bind-group layout.
pub(crate) struct Pipeline {
    pub(crate) pipeline: wgpu::ComputePipeline,
    pub(crate) layout: wgpu::BindGroupLayout,
}
