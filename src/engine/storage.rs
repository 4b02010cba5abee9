//! Where a tensor's data lives: host vectors or a GPU buffer. Ops never match on this; the
//! engine's dispatch (`dispatch.rs`) does, once, and the transfers below do.

use std::sync::Arc;

use crate::backend::gpu::GpuBuffer;
use crate::engine::device::{gpu_context, Device};
use crate::error::{Error, Result};

pub use crate::backend::C32;

/// Element type of a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    /// Real, f32.
    F32,
    /// Complex, two f32 (`re, im`).
    C32,
}

impl DType {
    /// Lower-case name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "real f32",
            DType::C32 => "complex c32",
        }
    }
    /// 32-bit words per element on the device.
    pub(crate) fn words(self) -> usize {
        match self {
            DType::F32 => 1,
            DType::C32 => 2,
        }
    }
}

/// Host memory: row-major vectors.
#[derive(Clone, Debug)]
pub(crate) enum CpuStorage {
    /// Real data.
    F32(Vec<f32>),
    /// Complex data.
    C32(Vec<C32>),
}

impl CpuStorage {
    pub(crate) fn dtype(&self) -> DType {
        match self {
            CpuStorage::F32(_) => DType::F32,
            CpuStorage::C32(_) => DType::C32,
        }
    }
    pub(crate) fn len(&self) -> usize {
        match self {
            CpuStorage::F32(v) => v.len(),
            CpuStorage::C32(v) => v.len(),
        }
    }
    /// Real data, or a dtype error naming `op`.
    pub(crate) fn f32(&self, op: &'static str) -> Result<&[f32]> {
        match self {
            CpuStorage::F32(v) => Ok(v),
            CpuStorage::C32(_) => Err(dtype_err(op, DType::F32, DType::C32)),
        }
    }
    /// Complex data, or a dtype error naming `op`.
    pub(crate) fn c32(&self, op: &'static str) -> Result<&[C32]> {
        match self {
            CpuStorage::C32(v) => Ok(v),
            CpuStorage::F32(_) => Err(dtype_err(op, DType::C32, DType::F32)),
        }
    }
    /// Real data for writing in place.
    pub(crate) fn f32_mut(&mut self, op: &'static str) -> Result<&mut [f32]> {
        match self {
            CpuStorage::F32(v) => Ok(v),
            CpuStorage::C32(_) => Err(dtype_err(op, DType::F32, DType::C32)),
        }
    }
    fn zeros(n: usize, dtype: DType) -> CpuStorage {
        match dtype {
            DType::F32 => CpuStorage::F32(vec![0.0; n]),
            DType::C32 => CpuStorage::C32(vec![C32::new(0.0, 0.0); n]),
        }
    }
}

/// Device memory: one buffer of 32-bit words, complex data interleaved `(re, im)`. Cloning
/// shares the buffer (tensors are immutable; the in-place writer copies a shared buffer first);
/// the buffer returns to the context's pool when the last holder drops it.
#[derive(Clone, Debug)]
pub(crate) struct GpuStorage {
    pub(crate) buf: Arc<GpuBuffer>,
    pub(crate) dtype: DType,
}

/// A tensor's data on one backend.
#[derive(Clone, Debug)]
pub(crate) enum Storage {
    /// Host memory, computed by `backend/cpu`.
    Cpu(CpuStorage),
    /// A GPU buffer, computed by `backend/gpu`.
    Gpu(GpuStorage),
}

impl Storage {
    pub(crate) fn dtype(&self) -> DType {
        match self {
            Storage::Cpu(c) => c.dtype(),
            Storage::Gpu(g) => g.dtype,
        }
    }
    /// Number of elements.
    pub(crate) fn len(&self) -> usize {
        match self {
            Storage::Cpu(c) => c.len(),
            Storage::Gpu(g) => g.buf.len / g.dtype.words(),
        }
    }
    pub(crate) fn device(&self) -> Device {
        match self {
            Storage::Cpu(_) => Device::Cpu,
            Storage::Gpu(_) => Device::Gpu,
        }
    }
    /// Real data copied to the host (a download for GPU data).
    pub(crate) fn to_f32_vec(&self, op: &'static str) -> Result<Vec<f32>> {
        match self {
            Storage::Cpu(c) => Ok(c.f32(op)?.to_vec()),
            Storage::Gpu(g) if g.dtype == DType::F32 => gpu_context()?.download(&g.buf),
            Storage::Gpu(_) => Err(dtype_err(op, DType::F32, DType::C32)),
        }
    }
    /// Complex data copied to the host (a download for GPU data).
    pub(crate) fn to_c32_vec(&self, op: &'static str) -> Result<Vec<C32>> {
        match self {
            Storage::Cpu(c) => Ok(c.c32(op)?.to_vec()),
            Storage::Gpu(g) if g.dtype == DType::C32 => Ok(gpu_context()?
                .download(&g.buf)?
                .chunks_exact(2)
                .map(|p| C32::new(p[0], p[1]))
                .collect()),
            Storage::Gpu(_) => Err(dtype_err(op, DType::C32, DType::F32)),
        }
    }
    /// The same data on `device` (a copy across; a shared handle when already there).
    pub(crate) fn to_device(&self, device: Device) -> Result<Storage> {
        Ok(match (self, device) {
            (Storage::Cpu(_), Device::Cpu) | (Storage::Gpu(_), Device::Gpu) => self.clone(),
            (Storage::Cpu(c), Device::Gpu) => {
                let ctx = gpu_context()?;
                let buf = match c {
                    CpuStorage::F32(v) => ctx.upload(v)?,
                    CpuStorage::C32(v) => ctx.upload(bytemuck::cast_slice::<C32, f32>(v))?,
                };
                Storage::gpu(buf, c.dtype())
            }
            (Storage::Gpu(g), Device::Cpu) => Storage::Cpu(match g.dtype {
                DType::F32 => CpuStorage::F32(self.to_f32_vec("to_device")?),
                DType::C32 => CpuStorage::C32(self.to_c32_vec("to_device")?),
            }),
        })
    }
    /// A zero-filled storage of `n` elements on `device`.
    pub(crate) fn zeros(n: usize, dtype: DType, device: Device) -> Result<Storage> {
        Ok(match device {
            Device::Cpu => Storage::Cpu(CpuStorage::zeros(n, dtype)),
            Device::Gpu => Storage::gpu(gpu_context()?.zeros(n * dtype.words())?, dtype),
        })
    }
    /// Wraps a device buffer holding `dtype` data.
    pub(crate) fn gpu(buf: GpuBuffer, dtype: DType) -> Storage {
        Storage::Gpu(GpuStorage {
            buf: Arc::new(buf),
            dtype,
        })
    }
    /// Makes this storage's device buffer unshared (copying it when another storage holds it),
    /// so it can be written in place without changing `detach`ed or reshaped views.
    pub(crate) fn make_unique(&mut self) -> Result<()> {
        if let Storage::Gpu(g) = self {
            if Arc::strong_count(&g.buf) > 1 {
                g.buf = Arc::new(gpu_context()?.copy(&g.buf)?);
            }
        }
        Ok(())
    }
}

pub(crate) fn dtype_err(op: &'static str, expected: DType, got: DType) -> Error {
    Error::DType {
        op,
        expected: expected.name(),
        got: got.name(),
    }
}
