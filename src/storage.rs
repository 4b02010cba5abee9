//! Where a tensor's data lives. This enum is the one backend switch: every op reads its inputs
//! through `Storage::f32`/`Storage::c32` and builds its output with `Storage::from_*`. The CPU
//! variant holds plain vectors; a GPU variant (wgpu buffers) joins it here, so op bodies keep one
//! match point instead of one per op.

use crate::error::{Error, Result};
use crate::tensor::{DType, C32};

/// Host memory: row-major vectors.
#[derive(Clone, Debug)]
pub enum CpuStorage {
    /// Real data.
    F32(Vec<f32>),
    /// Complex data.
    C32(Vec<C32>),
}

/// A tensor's data on one backend.
#[derive(Clone, Debug)]
pub enum Storage {
    /// Host memory, computed by the CPU backend (rayon, rustfft).
    Cpu(CpuStorage),
}

impl Storage {
    pub(crate) fn from_f32(v: Vec<f32>) -> Self {
        Storage::Cpu(CpuStorage::F32(v))
    }
    pub(crate) fn from_c32(v: Vec<C32>) -> Self {
        Storage::Cpu(CpuStorage::C32(v))
    }
    pub(crate) fn dtype(&self) -> DType {
        match self {
            Storage::Cpu(CpuStorage::F32(_)) => DType::F32,
            Storage::Cpu(CpuStorage::C32(_)) => DType::C32,
        }
    }
    pub(crate) fn len(&self) -> usize {
        match self {
            Storage::Cpu(CpuStorage::F32(v)) => v.len(),
            Storage::Cpu(CpuStorage::C32(v)) => v.len(),
        }
    }
    /// Real data, or a dtype error naming `op`.
    pub(crate) fn f32(&self, op: &'static str) -> Result<&[f32]> {
        match self {
            Storage::Cpu(CpuStorage::F32(v)) => Ok(v),
            Storage::Cpu(CpuStorage::C32(_)) => Err(dtype_err(op, DType::F32, DType::C32)),
        }
    }
    /// Complex data, or a dtype error naming `op`.
    pub(crate) fn c32(&self, op: &'static str) -> Result<&[C32]> {
        match self {
            Storage::Cpu(CpuStorage::C32(v)) => Ok(v),
            Storage::Cpu(CpuStorage::F32(_)) => Err(dtype_err(op, DType::C32, DType::F32)),
        }
    }
    pub(crate) fn f32_mut(&mut self, op: &'static str) -> Result<&mut Vec<f32>> {
        match self {
            Storage::Cpu(CpuStorage::F32(v)) => Ok(v),
            Storage::Cpu(CpuStorage::C32(_)) => Err(dtype_err(op, DType::F32, DType::C32)),
        }
    }
    pub(crate) fn to_f32_vec(&self, op: &'static str) -> Result<Vec<f32>> {
        Ok(self.f32(op)?.to_vec())
    }
    pub(crate) fn to_c32_vec(&self, op: &'static str) -> Result<Vec<C32>> {
        Ok(self.c32(op)?.to_vec())
    }
}

fn dtype_err(op: &'static str, expected: DType, got: DType) -> Error {
    Error::DType {
        op,
        expected: expected.name(),
        got: got.name(),
    }
}
