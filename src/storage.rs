//! Where a tensor's data lives. This enum is the one backend switch: CPU ops read their inputs
//! through `Storage::f32`/`Storage::c32` and build outputs with `Storage::from_*`; GPU ops take
//! device buffers through `gpu_of` + `Tensor::gbuf` and wrap results with `Storage::gpu`. Each op
//! matches on the device once, at the top of its forward and of its VJP.

use std::sync::Arc;

use crate::device::{gpu_context, Device};
use crate::error::{Error, Result};
use crate::gpu::{GpuBuffer, GpuContext};
use crate::tensor::{DType, Tensor, C32};

/// Host memory: row-major vectors.
#[derive(Clone, Debug)]
pub enum CpuStorage {
    /// Real data.
    F32(Vec<f32>),
    /// Complex data.
    C32(Vec<C32>),
}

/// Device memory: one buffer of 32-bit words, complex data interleaved `(re, im)`. Cloning
/// shares the buffer (tensors are immutable; in-place writers copy a shared buffer first).
#[derive(Clone, Debug)]
pub struct GpuStorage {
    /// The words (`numel` real, `2 numel` complex).
    pub buf: Arc<GpuBuffer>,
    /// Real or complex.
    pub dtype: DType,
}

/// A tensor's data on one backend.
#[derive(Clone, Debug)]
pub enum Storage {
    /// Host memory, computed by the CPU backend (rayon, rustfft).
    Cpu(CpuStorage),
    /// A GPU buffer, computed by the WGSL kernels of `gpu/`.
    Gpu(GpuStorage),
}

impl Storage {
    pub(crate) fn from_f32(v: Vec<f32>) -> Self {
        Storage::Cpu(CpuStorage::F32(v))
    }
    pub(crate) fn from_c32(v: Vec<C32>) -> Self {
        Storage::Cpu(CpuStorage::C32(v))
    }
    /// Wraps a device buffer holding `dtype` data.
    pub(crate) fn gpu(buf: GpuBuffer, dtype: DType) -> Self {
        Storage::Gpu(GpuStorage {
            buf: Arc::new(buf),
            dtype,
        })
    }
    pub(crate) fn dtype(&self) -> DType {
        match self {
            Storage::Cpu(CpuStorage::F32(_)) => DType::F32,
            Storage::Cpu(CpuStorage::C32(_)) => DType::C32,
            Storage::Gpu(g) => g.dtype,
        }
    }
    /// Number of elements.
    pub(crate) fn len(&self) -> usize {
        match self {
            Storage::Cpu(CpuStorage::F32(v)) => v.len(),
            Storage::Cpu(CpuStorage::C32(v)) => v.len(),
            Storage::Gpu(g) => match g.dtype {
                DType::F32 => g.buf.len,
                DType::C32 => g.buf.len / 2,
            },
        }
    }
    pub(crate) fn device(&self) -> Device {
        match self {
            Storage::Cpu(_) => Device::Cpu,
            Storage::Gpu(_) => Device::Gpu,
        }
    }
    /// Real host data, or a dtype error naming `op` (an error for GPU data: ops branch first).
    pub(crate) fn f32(&self, op: &'static str) -> Result<&[f32]> {
        match self {
            Storage::Cpu(CpuStorage::F32(v)) => Ok(v),
            Storage::Cpu(CpuStorage::C32(_)) => Err(dtype_err(op, DType::F32, DType::C32)),
            Storage::Gpu(_) => Err(on_gpu_err(op)),
        }
    }
    /// Complex host data, or a dtype error naming `op`.
    pub(crate) fn c32(&self, op: &'static str) -> Result<&[C32]> {
        match self {
            Storage::Cpu(CpuStorage::C32(v)) => Ok(v),
            Storage::Cpu(CpuStorage::F32(_)) => Err(dtype_err(op, DType::C32, DType::F32)),
            Storage::Gpu(_) => Err(on_gpu_err(op)),
        }
    }
    pub(crate) fn f32_mut(&mut self, op: &'static str) -> Result<&mut Vec<f32>> {
        match self {
            Storage::Cpu(CpuStorage::F32(v)) => Ok(v),
            Storage::Cpu(CpuStorage::C32(_)) => Err(dtype_err(op, DType::F32, DType::C32)),
            Storage::Gpu(_) => Err(on_gpu_err(op)),
        }
    }
    /// A handle to the device buffer (cheap: wgpu buffers are reference counted), or an error
    /// naming `op` for host data.
    pub(crate) fn gbuf(&self, op: &'static str) -> Result<GpuBuffer> {
        match self {
            Storage::Gpu(g) => Ok((*g.buf).clone()),
            Storage::Cpu(_) => Err(Error::Device {
                op,
                msg: "expected a tensor on the GPU, got one on the CPU".into(),
            }),
        }
    }
    /// The device buffer for writing in place: copied first when another storage shares it
    /// (copy-on-write keeps `detach`ed or reshaped views of a parameter unchanged).
    pub(crate) fn gbuf_unique(&mut self, op: &'static str) -> Result<GpuBuffer> {
        match self {
            Storage::Gpu(g) => {
                if Arc::strong_count(&g.buf) > 1 {
                    g.buf = Arc::new(gpu_context()?.copy(&g.buf)?);
                }
                Ok((*g.buf).clone())
            }
            Storage::Cpu(_) => self.gbuf(op),
        }
    }
    /// Real data copied to the host (a download for GPU data).
    pub(crate) fn to_f32_vec(&self, op: &'static str) -> Result<Vec<f32>> {
        match self {
            Storage::Gpu(g) if g.dtype == DType::F32 => gpu_context()?.download(&g.buf),
            Storage::Gpu(_) => Err(dtype_err(op, DType::F32, DType::C32)),
            _ => Ok(self.f32(op)?.to_vec()),
        }
    }
    /// Complex data copied to the host (a download for GPU data).
    pub(crate) fn to_c32_vec(&self, op: &'static str) -> Result<Vec<C32>> {
        match self {
            Storage::Gpu(g) if g.dtype == DType::C32 => Ok(gpu_context()?
                .download(&g.buf)?
                .chunks_exact(2)
                .map(|p| C32::new(p[0], p[1]))
                .collect()),
            Storage::Gpu(_) => Err(dtype_err(op, DType::C32, DType::F32)),
            _ => Ok(self.c32(op)?.to_vec()),
        }
    }
    /// The same data on `device` (a copy across; a shared handle when already there).
    pub(crate) fn to_device(&self, device: Device) -> Result<Storage> {
        Ok(match (self, device) {
            (Storage::Cpu(_), Device::Cpu) | (Storage::Gpu(_), Device::Gpu) => self.clone(),
            (Storage::Cpu(CpuStorage::F32(v)), Device::Gpu) => {
                Storage::gpu(gpu_context()?.upload(v)?, DType::F32)
            }
            (Storage::Cpu(CpuStorage::C32(v)), Device::Gpu) => {
                let words: Vec<f32> = v.iter().flat_map(|z| [z.re, z.im]).collect();
                Storage::gpu(gpu_context()?.upload(&words)?, DType::C32)
            }
            (Storage::Gpu(_), Device::Cpu) => match self.dtype() {
                DType::F32 => Storage::from_f32(self.to_f32_vec("to_device")?),
                DType::C32 => Storage::from_c32(self.to_c32_vec("to_device")?),
            },
        })
    }
    /// A zero-filled storage of `n` elements on `device`.
    pub(crate) fn zeros(n: usize, dtype: DType, device: Device) -> Result<Storage> {
        Ok(match (device, dtype) {
            (Device::Cpu, DType::F32) => Storage::from_f32(vec![0.0; n]),
            (Device::Cpu, DType::C32) => Storage::from_c32(vec![C32::new(0.0, 0.0); n]),
            (Device::Gpu, DType::F32) => Storage::gpu(gpu_context()?.zeros(n)?, dtype),
            (Device::Gpu, DType::C32) => Storage::gpu(gpu_context()?.zeros(2 * n)?, dtype),
        })
    }
}

/// The backend switch of an op: `Some(ctx)` when every tensor of `ts` lives on the GPU, `None`
/// when all are on the CPU, an error naming `op` when they are mixed.
pub(crate) fn gpu_of(op: &'static str, ts: &[&Tensor]) -> Result<Option<&'static GpuContext>> {
    let Some(first) = ts.first() else {
        return Ok(None);
    };
    let d = first.device();
    if let Some(other) = ts.iter().find(|t| t.device() != d) {
        return Err(Error::Device {
            op,
            msg: format!(
                "inputs on different devices ({} and {}); move them with to_device",
                d,
                other.device()
            ),
        });
    }
    match d {
        Device::Cpu => Ok(None),
        Device::Gpu => Ok(Some(gpu_context()?)),
    }
}

fn dtype_err(op: &'static str, expected: DType, got: DType) -> Error {
    Error::DType {
        op,
        expected: expected.name(),
        got: got.name(),
    }
}

fn on_gpu_err(op: &'static str) -> Error {
    Error::Device {
        op,
        msg: "this path reads host memory but the tensor is on the GPU".into(),
    }
}
