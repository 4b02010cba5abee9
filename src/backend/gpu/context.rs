//! The GPU device: adapter choice, the queue, the error sink and the pending command encoder
//! that batches kernel launches until `flush` or `download`. Buffers are in `buffer.rs`,
//! pipelines and launches in `launch.rs`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::resource::{GpuBuffer, Pipeline, Pool};
use crate::error::{Error, Result};

/// What `GpuContext::open` found.
#[allow(clippy::large_enum_variant)] // built once per process
pub enum Opened {
    /// A usable device.
    Ready(GpuContext),
    /// No usable adapter; the string says why (for a "using CPU" message).
    Unavailable(String),
}

/// Adapter description for logging.
#[derive(Clone, Debug)]
pub struct AdapterSummary {
    /// Adapter name.
    pub name: String,
    /// Backend (Vulkan, Metal, Dx12, Gl).
    pub backend: String,
    /// Discrete, integrated, virtual, CPU.
    pub device_type: String,
    /// Driver name and version.
    pub driver: String,
}

impl std::fmt::Display for AdapterSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}, {}, driver {})",
            self.name, self.backend, self.device_type, self.driver
        )
    }
}

#[derive(Default)]
pub(crate) struct State {
    pub(crate) modules: HashMap<&'static str, wgpu::ShaderModule>,
    pub(crate) pipelines: HashMap<(&'static str, &'static str), Arc<Pipeline>>,
    pub(crate) encoder: Option<wgpu::CommandEncoder>,
    pub(crate) pending_launches: usize,
    pub(crate) tables: HashMap<String, Arc<GpuBuffer>>,
}

/// The device, queue and caches; create once and share (`Send + Sync`).
pub struct GpuContext {
    pub(crate) device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    state: Mutex<State>,
    pub(crate) pool: Arc<Mutex<Pool>>,
    errors: Arc<Mutex<Vec<String>>>,
}

fn summarize(info: &wgpu::AdapterInfo) -> AdapterSummary {
    AdapterSummary {
        name: info.name.clone(),
        backend: format!("{:?}", info.backend),
        device_type: format!("{:?}", info.device_type),
        driver: format!("{} {}", info.driver, info.driver_info),
    }
}

/// Backends to probe: `WGPU_BACKEND` when set, else the primary ones (Vulkan, Metal, DX12).
/// GL is opt-in (`WGPU_BACKEND=gl`): probing EGL on a headless machine prints noise to stderr
/// and, with Vulkan missing, wgpu would silently settle on it.
fn backends() -> wgpu::Backends {
    wgpu::Backends::from_env().unwrap_or(wgpu::Backends::PRIMARY)
}

fn instance() -> wgpu::Instance {
    // `_from_env` honours WGPU_BACKEND (Instance::default() does not).
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    desc.backends = backends();
    wgpu::Instance::new(desc)
}

impl GpuContext {
    /// Opens the best adapter; `Ok(None)` when there is none usable (never panics). A CPU
    /// adapter (lavapipe, llvmpipe) is accepted only when `allow_cpu_adapter` is true.
    pub fn new(allow_cpu_adapter: bool) -> Result<Option<GpuContext>> {
        Ok(match Self::open(allow_cpu_adapter)? {
            Opened::Ready(c) => Some(c),
            Opened::Unavailable(_) => None,
        })
    }

    /// Like [`GpuContext::new`], but says why no adapter was usable. `Err` only when an adapter
    /// exists and creating its device fails.
    pub fn open(allow_cpu_adapter: bool) -> Result<Opened> {
        let instance = instance();
        let mut adapters = pollster::block_on(instance.enumerate_adapters(backends()));
        if adapters.is_empty() {
            let opts = wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::from_env()
                    .unwrap_or(wgpu::PowerPreference::HighPerformance),
                force_fallback_adapter: false,
                compatible_surface: None,
                apply_limit_buckets: false,
            };
            match pollster::block_on(instance.request_adapter(&opts)) {
                Ok(a) => adapters.push(a),
                Err(e) => return Ok(Opened::Unavailable(format!("no adapter: {e}"))),
            }
        }
        let rank = |t: wgpu::DeviceType| match t {
            wgpu::DeviceType::DiscreteGpu => 0,
            wgpu::DeviceType::IntegratedGpu => 1,
            wgpu::DeviceType::VirtualGpu => 2,
            wgpu::DeviceType::Other => 3,
            wgpu::DeviceType::Cpu => 4,
        };
        adapters.sort_by_key(|a| rank(a.get_info().device_type));
        let Some(adapter) = adapters
            .into_iter()
            .find(|a| allow_cpu_adapter || a.get_info().device_type != wgpu::DeviceType::Cpu)
        else {
            return Ok(Opened::Unavailable(
                "only CPU adapters found and CPU adapters are not allowed".into(),
            ));
        };
        let info = adapter.get_info();
        let desc = wgpu::DeviceDescriptor {
            label: Some("magprior"),
            required_features: wgpu::Features::empty(),
            required_limits: adapter.limits(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&desc))
            .map_err(|e| Error::gpu(format!("request_device on {}", info.name), e))?;
        // wgpu's default handler panics; collect errors and report them at the next flush.
        let errors = Arc::new(Mutex::new(Vec::new()));
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            sink.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(e.to_string());
        }));
        Ok(Opened::Ready(GpuContext {
            device,
            queue,
            info,
            state: Mutex::new(State::default()),
            pool: Arc::new(Mutex::new(Pool::default())),
            errors,
        }))
    }

    /// Every adapter the environment's backends offer, one line each.
    pub fn list_adapters() -> Vec<String> {
        pollster::block_on(instance().enumerate_adapters(backends()))
            .iter()
            .map(|a| summarize(&a.get_info()).to_string())
            .collect()
    }

    /// The adapter in use (name, backend, device type) for logging.
    pub fn adapter(&self) -> AdapterSummary {
        summarize(&self.info)
    }

    /// True when the adapter is a software rasteriser on the CPU.
    pub fn is_cpu_adapter(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn check_errors(&self) -> Result<()> {
        let mut v = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        if v.is_empty() {
            return Ok(());
        }
        let msg = v.join("; ");
        v.clear();
        Err(Error::gpu("device", msg))
    }

    /// Records commands into the pending encoder (created on first use).
    pub(crate) fn record(&self, f: impl FnOnce(&mut wgpu::CommandEncoder)) {
        let mut st = self.state();
        f(Self::encoder(&self.device, &mut st));
    }

    pub(crate) fn encoder<'s>(
        device: &wgpu::Device,
        st: &'s mut State,
    ) -> &'s mut wgpu::CommandEncoder {
        st.encoder.get_or_insert_with(|| {
            device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("batch"),
            })
        })
    }

    /// Number of launches recorded since the last flush.
    pub fn pending_launches(&self) -> usize {
        self.state().pending_launches
    }

    /// Submits every recorded launch as one command buffer.
    pub fn flush(&self) -> Result<()> {
        {
            // Submit under the lock: encoders reach the queue in recording order, and a
            // `download` that finds nothing pending knows its copy is already submitted.
            let mut st = self.state();
            st.pending_launches = 0;
            if let Some(enc) = st.encoder.take() {
                self.queue.submit(Some(enc.finish()));
            }
        }
        self.check_errors()
    }

    /// Flushes and blocks until the device is idle (for timing).
    pub fn synchronize(&self) -> Result<()> {
        self.flush()?;
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::gpu("poll", e))?;
        self.check_errors()
    }
}
