//! Compute devices: the CPU backend, or the process-wide GPU context (wgpu), chosen with
//! `auto | cpu | gpu` (CLI `--device`, env `MAGPRIOR_DEVICE`).
//!
//! `auto` takes a hardware adapter (discrete, integrated, virtual) when one exists and otherwise
//! stays on the CPU with one informational line; `gpu` also accepts a CPU-type adapter (Mesa's
//! lavapipe) and is an error when no adapter opens at all.

use std::sync::OnceLock;

pub use crate::backend::gpu::AdapterSummary;
use crate::backend::gpu::{GpuContext, Opened};
use crate::error::{Error, Result};

/// Where tensors live and ops run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Device {
    /// Host memory, rayon + rustfft kernels.
    Cpu,
    /// The process-wide GPU context, opened on first use.
    Gpu,
}

/// What the user asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// A hardware GPU when one exists, else the CPU.
    #[default]
    Auto,
    /// The CPU backend.
    Cpu,
    /// Any GPU adapter, a CPU-type one (lavapipe) included; an error when none opens.
    Gpu,
}

impl std::str::FromStr for DeviceChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "gpu" => Ok(DeviceChoice::Gpu),
            other => Err(Error::arg(
                "device",
                format!("unknown device {other:?} (auto, cpu or gpu)"),
            )),
        }
    }
}

static GPU: OnceLock<std::result::Result<GpuContext, String>> = OnceLock::new();

/// The process-wide GPU context, opened on first use (any adapter type, the best ranked first:
/// discrete, integrated, virtual, other, CPU). An error says why none is usable.
pub(crate) fn gpu_context() -> Result<&'static GpuContext> {
    let c = GPU.get_or_init(|| match GpuContext::open(true) {
        Ok(Opened::Ready(c)) => Ok(c),
        Ok(Opened::Unavailable(why)) => Err(why),
        Err(e) => Err(e.to_string()),
    });
    c.as_ref().map_err(|why| Error::NoGpu(why.clone()))
}

impl Device {
    /// Resolves a choice. Returns the device and, when `auto` fell back to the CPU, one line
    /// saying why (for the user).
    pub fn select(choice: DeviceChoice) -> Result<(Device, Option<String>)> {
        match choice {
            DeviceChoice::Cpu => Ok((Device::Cpu, None)),
            DeviceChoice::Gpu => {
                gpu_context().map_err(|e| match e {
                    Error::NoGpu(why) => Error::NoGpu(format!(
                        "{why}; install a Vulkan/Metal/DX12 driver (or Mesa lavapipe) or use \
                         --device cpu"
                    )),
                    other => other,
                })?;
                Ok((Device::Gpu, None))
            }
            DeviceChoice::Auto => match gpu_context() {
                Ok(c) if !c.is_cpu_adapter() => Ok((Device::Gpu, None)),
                Ok(c) => Ok((
                    Device::Cpu,
                    Some(format!(
                        "device auto: only a CPU-type adapter ({}) found; using the CPU backend \
                         (--device gpu would use it)",
                        c.adapter().name
                    )),
                )),
                Err(e) => Ok((
                    Device::Cpu,
                    Some(format!("device auto: {e}; using the CPU backend")),
                )),
            },
        }
    }

    /// The choice in `MAGPRIOR_DEVICE` (`auto` when unset); an error for an unknown value.
    pub fn choice_from_env() -> Result<DeviceChoice> {
        match std::env::var("MAGPRIOR_DEVICE") {
            Ok(v) if !v.trim().is_empty() => v.parse(),
            _ => Ok(DeviceChoice::Auto),
        }
    }

    /// Every GPU adapter the environment's backends offer (`WGPU_BACKEND` selects them), one
    /// line each; empty when there is none.
    pub fn list_adapters() -> Vec<String> {
        GpuContext::list_adapters()
    }

    /// `"cpu"` or `"gpu"`.
    pub fn name(&self) -> &'static str {
        match self {
            Device::Cpu => "cpu",
            Device::Gpu => "gpu",
        }
    }

    /// The GPU adapter in use (`None` on the CPU or when no context is open).
    pub fn adapter(&self) -> Option<AdapterSummary> {
        match self {
            Device::Cpu => None,
            Device::Gpu => gpu_context().ok().map(|c| c.adapter()),
        }
    }

    /// Blocks until queued GPU work has finished (no-op on the CPU); for timing.
    pub fn synchronize(&self) -> Result<()> {
        match self {
            Device::Cpu => Ok(()),
            Device::Gpu => gpu_context()?.synchronize(),
        }
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
