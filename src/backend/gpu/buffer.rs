//! The context's buffer operations: allocation from the pool, uploads, zero fills, device-side
//! copies and the one readback path (`download`).

use std::sync::{mpsc, Arc};

use super::context::GpuContext;
use super::resource::{bytes_for, GpuBuffer};
use crate::error::{Error, Result};

impl GpuContext {
    fn raw_buffer(&self, bytes: u64, mapped: bool) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: bytes,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: mapped,
        })
    }

    fn wrap(&self, buffer: wgpu::Buffer, len: usize) -> GpuBuffer {
        GpuBuffer::pooled(buffer, len, self.pool.clone())
    }

    /// Copies host data into a new device buffer.
    pub fn upload(&self, data: &[f32]) -> Result<GpuBuffer> {
        self.upload_words(bytemuck::cast_slice(data), data.len())
    }

    /// Copies raw 32-bit words (u32 indices) into a new device buffer.
    pub fn upload_u32(&self, data: &[u32]) -> Result<GpuBuffer> {
        self.upload_words(bytemuck::cast_slice(data), data.len())
    }

    fn upload_words(&self, bytes: &[u8], len: usize) -> Result<GpuBuffer> {
        // A fresh buffer mapped at creation: no ordering hazard with the pending encoder
        // (queue.write_buffer would land before commands already recorded).
        let buffer = self.raw_buffer(bytes_for(len), true);
        {
            let mut view = buffer
                .get_mapped_range_mut(..)
                .map_err(|e| Error::gpu("upload: map", e))?;
            view.slice(..bytes.len()).copy_from_slice(bytes);
        }
        buffer.unmap();
        Ok(self.wrap(buffer, len))
    }

    /// A buffer of `len` words with undefined content (from the pool when one fits); for outputs
    /// a kernel writes completely.
    pub fn alloc(&self, len: usize) -> Result<GpuBuffer> {
        let bytes = bytes_for(len);
        let reused = self
            .pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take(bytes);
        let buffer = reused.unwrap_or_else(|| self.raw_buffer(bytes, false));
        Ok(self.wrap(buffer, len))
    }

    /// A zero-filled buffer of `len` words (the clear is recorded in the pending encoder).
    pub fn zeros(&self, len: usize) -> Result<GpuBuffer> {
        let b = self.alloc(len)?;
        self.record(|enc| enc.clear_buffer(&b.buffer, 0, None));
        Ok(b)
    }

    /// A constant table (twiddles, chirps) computed once per context and key.
    pub fn cached_table(
        &self,
        key: &str,
        make: impl FnOnce() -> Vec<f32>,
    ) -> Result<Arc<GpuBuffer>> {
        if let Some(t) = self.state().tables.get(key) {
            return Ok(t.clone());
        }
        let t = Arc::new(self.upload(&make())?);
        Ok(self
            .state()
            .tables
            .entry(key.to_string())
            .or_insert(t)
            .clone())
    }

    /// Records a device-side copy of `src` into a new buffer.
    pub fn copy(&self, src: &GpuBuffer) -> Result<GpuBuffer> {
        let dst = self.alloc(src.len)?;
        self.record(|enc| {
            enc.copy_buffer_to_buffer(&src.buffer, 0, &dst.buffer, 0, bytes_for(src.len))
        });
        Ok(dst)
    }

    /// Reads a buffer back to the host (flushes pending work first); the only readback.
    pub fn download(&self, buf: &GpuBuffer) -> Result<Vec<f32>> {
        let bytes = self.download_bytes(buf)?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    /// Reads a buffer of u32 words back.
    pub fn download_u32(&self, buf: &GpuBuffer) -> Result<Vec<u32>> {
        let bytes = self.download_bytes(buf)?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    fn download_bytes(&self, buf: &GpuBuffer) -> Result<Vec<u8>> {
        let size = bytes_for(buf.len);
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("staging"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.record(|enc| enc.copy_buffer_to_buffer(&buf.buffer, 0, &staging, 0, size));
        self.flush()?;
        let (tx, rx) = mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::gpu("download: poll", e))?;
        rx.recv()
            .map_err(|e| Error::gpu("download: map callback", e))?
            .map_err(|e| Error::gpu("download: map", e))?;
        let out = {
            let view = staging
                .get_mapped_range(..)
                .map_err(|e| Error::gpu("download", e))?;
            view[..buf.len * 4].to_vec()
        };
        staging.unmap();
        self.check_errors()?;
        Ok(out)
    }

    /// Bytes held in free pooled buffers (for tests and diagnostics).
    pub fn pooled_bytes(&self) -> u64 {
        self.pool.lock().unwrap_or_else(|e| e.into_inner()).bytes()
    }
}
