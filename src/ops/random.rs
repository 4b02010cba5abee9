//! Counter-based random streams on either device: element `i` of stream `key` is a pure
//! function of `(key, i)` (a hash, then Box-Muller), so a stream needs no state, no upload,
//! and gives the same integers on the CPU and the GPU. Kernels: `backend/cpu/random.rs`,
//! `kernels/random.wgsl`.

use crate::backend::cpu::random as cpu;
use crate::backend::gpu::{random as gpu, GpuBuffer, GpuContext};
use crate::engine::device::Device;
use crate::engine::dispatch::{Args, Kernel, Meta, Out};
use crate::engine::storage::CpuStorage;
use crate::engine::tensor::{numel_of, Tensor};
use crate::error::Result;

/// A source: `scale` times standard normal samples of the stream `key`.
struct Normal {
    shape: Vec<usize>,
    key: u64,
    scale: f32,
}

impl Kernel for Normal {
    fn name(&self) -> &'static str {
        "randn_keyed"
    }
    fn signature(&self, _: &[Meta]) -> Result<Vec<Out>> {
        Ok(vec![Out::real(self.shape.clone())])
    }
    fn cpu(&self, _: &Args<&CpuStorage>) -> Result<Vec<CpuStorage>> {
        let n = numel_of(&self.shape);
        Ok(vec![CpuStorage::F32(cpu::normal(self.key, n, self.scale))])
    }
    fn gpu(&self, ctx: &GpuContext, _: &Args<&GpuBuffer>) -> Result<Vec<GpuBuffer>> {
        let n = numel_of(&self.shape);
        Ok(vec![gpu::normal(ctx, self.key, n, self.scale)?])
    }
}

impl Tensor {
    /// `scale` times standard normal samples, element `i` a pure function of `(key, i)`: drawn
    /// where they are used (no upload), the same integers on every device and thread count
    /// (the float transform may differ slightly: the GPU's log and cos are less accurate than
    /// libm, up to ~1e-5 absolute near the zeros of cos on lavapipe). For
    /// noise that changes each iteration, derive `key` from a seed and the iteration.
    ///
    /// ```
    /// use magprior::{Device, Tensor};
    /// let a = Tensor::randn_keyed(&[1000], 7, 1.0, Device::Cpu).unwrap().to_vec().unwrap();
    /// let b = Tensor::randn_keyed(&[1000], 7, 1.0, Device::Cpu).unwrap().to_vec().unwrap();
    /// assert_eq!(a, b);
    /// let mean = a.iter().sum::<f32>() / 1000.0;
    /// assert!(mean.abs() < 0.1);
    /// ```
    pub fn randn_keyed(shape: &[usize], key: u64, scale: f32, device: Device) -> Result<Tensor> {
        let k = Normal {
            shape: shape.to_vec(),
            key,
            scale,
        };
        Tensor::generate(&k, device)
    }
}
