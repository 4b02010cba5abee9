//! The GPU device: adapter choice, pipeline cache, buffers (upload / pool / download) and the
//! pending command encoder that batches kernel launches until `flush` or `download`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{mpsc, Arc, Mutex, MutexGuard};

use crate::error::{Error, Result};

/// Threads per workgroup of every 1-D kernel (WGSL `@workgroup_size(256)`).
pub const WG_1D: u32 = 256;
/// Most workgroups wgpu allows along one dispatch dimension.
pub const MAX_GROUPS_PER_DIM: u32 = 65_535;
/// Pooled buffers kept per size; more are dropped on `recycle`.
const POOL_PER_SIZE: usize = 8;

/// A WGSL source file compiled once per context: `kernels/<name>.wgsl`.
#[derive(Clone, Copy, Debug)]
pub struct Kernel {
    pub name: &'static str,
    pub source: &'static str,
}

/// `kernel!("conv2d")` embeds `kernels/conv2d.wgsl` from the crate root.
#[macro_export]
#[doc(hidden)]
macro_rules! gpu_kernel {
    ($name:literal) => {
        $crate::gpu::Kernel {
            name: $name,
            source: include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/kernels/",
                $name,
                ".wgsl"
            )),
        }
    };
}

/// A device buffer of `len` 32-bit words (f32 data; complex data uses 2 words per element;
/// argmax indices are stored as u32 words).
#[derive(Debug, Clone)]
pub struct GpuBuffer {
    pub buffer: wgpu::Buffer,
    pub len: usize,
}

impl GpuBuffer {
    /// Size in bytes of the backing allocation (at least 16).
    pub fn byte_size(&self) -> u64 {
        self.buffer.size()
    }
}

/// One binding of a launch; binding 0 is always the kernel's uniform parameter struct, the
/// bindings given here are numbered 1, 2, ... in order.
#[derive(Clone, Copy)]
pub enum Arg<'a> {
    /// `var<storage, read>`
    Read(&'a GpuBuffer),
    /// `var<storage, read_write>`
    Write(&'a GpuBuffer),
}

/// What `GpuContext::open` found.
#[allow(clippy::large_enum_variant)] // built once per process
pub enum Opened {
    Ready(GpuContext),
    /// No usable adapter; the string says why (for a "using CPU" message).
    Unavailable(String),
}

/// Adapter description for logging.
#[derive(Clone, Debug)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: String,
    pub device_type: String,
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

struct Pipeline {
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
}

#[derive(Default)]
struct State {
    modules: HashMap<&'static str, wgpu::ShaderModule>,
    pipelines: HashMap<(&'static str, &'static str), Arc<Pipeline>>,
    encoder: Option<wgpu::CommandEncoder>,
    pending_launches: usize,
    pool: HashMap<u64, Vec<wgpu::Buffer>>,
    tables: HashMap<String, Arc<GpuBuffer>>,
}

/// The device, queue and caches; create once and share (`Send + Sync`).
pub struct GpuContext {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    state: Mutex<State>,
    errors: Arc<Mutex<Vec<String>>>,
}

fn backend_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Backend(format!("{what}: {e}"))
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
            .map_err(|e| backend_err(&format!("request_device on {}", info.name), e))?;
        // wgpu's default handler panics; collect errors and report them at the next flush.
        let errors = Arc::new(Mutex::new(Vec::new()));
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut v) = sink.lock() {
                v.push(e.to_string());
            }
        }));
        Ok(Opened::Ready(GpuContext {
            device,
            queue,
            info,
            state: Mutex::new(State::default()),
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

    pub fn device(&self) -> &wgpu::Device {
        &self.device
    }

    fn state(&self) -> Result<MutexGuard<'_, State>> {
        self.state
            .lock()
            .map_err(|_| Error::Backend("GPU context lock poisoned".into()))
    }

    fn check_errors(&self) -> Result<()> {
        let mut v = self
            .errors
            .lock()
            .map_err(|_| Error::Backend("error sink poisoned".into()))?;
        if v.is_empty() {
            return Ok(());
        }
        let msg = v.join("; ");
        v.clear();
        Err(Error::Backend(msg))
    }

    // ---------------------------------------------------------------- buffers

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

    fn bytes_for(len: usize) -> u64 {
        (len as u64 * 4).max(16)
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
        let buffer = self.raw_buffer(Self::bytes_for(len), true);
        {
            let mut view = buffer
                .get_mapped_range_mut(..)
                .map_err(|e| backend_err("upload: map", e))?;
            view.slice(..bytes.len()).copy_from_slice(bytes);
        }
        buffer.unmap();
        Ok(GpuBuffer { buffer, len })
    }

    /// A buffer of `len` words with undefined content (from the pool when one fits); for outputs
    /// a kernel writes completely.
    pub fn alloc(&self, len: usize) -> Result<GpuBuffer> {
        let bytes = Self::bytes_for(len);
        let reused = self.state()?.pool.get_mut(&bytes).and_then(|v| v.pop());
        let buffer = reused.unwrap_or_else(|| self.raw_buffer(bytes, false));
        Ok(GpuBuffer { buffer, len })
    }

    /// A zero-filled buffer of `len` words (the clear is recorded in the pending encoder).
    pub fn zeros(&self, len: usize) -> Result<GpuBuffer> {
        let b = self.alloc(len)?;
        let mut st = self.state()?;
        let enc = Self::encoder(&self.device, &mut st);
        enc.clear_buffer(&b.buffer, 0, None);
        Ok(b)
    }

    /// Returns a temporary to the pool. Later launches may reuse its memory; commands already
    /// recorded still see the old content (launches execute in recording order).
    pub fn recycle(&self, buf: GpuBuffer) {
        if let Ok(mut st) = self.state() {
            let v = st.pool.entry(buf.buffer.size()).or_default();
            if v.len() < POOL_PER_SIZE {
                v.push(buf.buffer);
            }
        }
    }

    /// A constant table (twiddles, chirps) computed once per context and key.
    pub fn cached_table(
        &self,
        key: &str,
        make: impl FnOnce() -> Vec<f32>,
    ) -> Result<Arc<GpuBuffer>> {
        if let Some(t) = self.state()?.tables.get(key) {
            return Ok(t.clone());
        }
        let t = Arc::new(self.upload(&make())?);
        Ok(self
            .state()?
            .tables
            .entry(key.to_string())
            .or_insert(t)
            .clone())
    }

    /// Records a device-side copy of `src` into a new buffer.
    pub fn copy(&self, src: &GpuBuffer) -> Result<GpuBuffer> {
        let dst = self.alloc(src.len)?;
        let mut st = self.state()?;
        let enc = Self::encoder(&self.device, &mut st);
        enc.copy_buffer_to_buffer(&src.buffer, 0, &dst.buffer, 0, Self::bytes_for(src.len));
        Ok(dst)
    }

    /// Reads a buffer back to the host (flushes pending work first); the only readback.
    pub fn download(&self, buf: &GpuBuffer) -> Result<Vec<f32>> {
        let bytes = self.download_bytes(buf)?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    /// Reads a buffer of u32 words back (argmax indices).
    pub fn download_u32(&self, buf: &GpuBuffer) -> Result<Vec<u32>> {
        let bytes = self.download_bytes(buf)?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    fn download_bytes(&self, buf: &GpuBuffer) -> Result<Vec<u8>> {
        let size = Self::bytes_for(buf.len);
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("staging"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        {
            let mut st = self.state()?;
            let enc = Self::encoder(&self.device, &mut st);
            enc.copy_buffer_to_buffer(&buf.buffer, 0, &staging, 0, size);
        }
        self.flush()?;
        let (tx, rx) = mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| backend_err("download: poll", e))?;
        rx.recv()
            .map_err(|e| backend_err("download: map callback", e))?
            .map_err(|e| backend_err("download: map", e))?;
        let out = {
            let view = staging
                .get_mapped_range(..)
                .map_err(|e| backend_err("download", e))?;
            view[..buf.len * 4].to_vec()
        };
        staging.unmap();
        self.check_errors()?;
        Ok(out)
    }

    // ---------------------------------------------------------------- commands

    fn encoder<'s>(device: &wgpu::Device, st: &'s mut State) -> &'s mut wgpu::CommandEncoder {
        st.encoder.get_or_insert_with(|| {
            device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("batch"),
            })
        })
    }

    /// Number of launches recorded since the last flush.
    pub fn pending_launches(&self) -> usize {
        self.state().map(|s| s.pending_launches).unwrap_or(0)
    }

    /// Submits every recorded launch as one command buffer.
    pub fn flush(&self) -> Result<()> {
        {
            // Submit under the lock: encoders reach the queue in recording order, and a
            // `download` that finds nothing pending knows its copy is already submitted.
            let mut st = self.state()?;
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
            .map_err(|e| backend_err("poll", e))?;
        self.check_errors()
    }

    fn pipeline(
        &self,
        kernel: &Kernel,
        entry: &'static str,
        args: &[Arg],
    ) -> Result<Arc<Pipeline>> {
        let mut st = self.state()?;
        if let Some(p) = st.pipelines.get(&(kernel.name, entry)) {
            return Ok(p.clone());
        }
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        if !st.modules.contains_key(kernel.name) {
            let m = self
                .device
                .create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(kernel.name),
                    source: wgpu::ShaderSource::Wgsl(Cow::Borrowed(kernel.source)),
                });
            st.modules.insert(kernel.name, m);
        }
        let mut entries = vec![wgpu::BindGroupLayoutEntry {
            binding: 0,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        }];
        for (i, a) in args.iter().enumerate() {
            entries.push(wgpu::BindGroupLayoutEntry {
                binding: i as u32 + 1,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage {
                        read_only: matches!(a, Arg::Read(_)),
                    },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            });
        }
        let layout = self
            .device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(entry),
                entries: &entries,
            });
        let pl = self
            .device
            .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(entry),
                bind_group_layouts: &[Some(&layout)],
                immediate_size: 0,
            });
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: Some(&pl),
                module: &st.modules[kernel.name],
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            });
        if let Some(e) = pollster::block_on(scope.pop()) {
            st.modules.remove(kernel.name);
            return Err(Error::Backend(format!(
                "pipeline {}::{entry}: {e}",
                kernel.name
            )));
        }
        let p = Arc::new(Pipeline { pipeline, layout });
        st.pipelines.insert((kernel.name, entry), p.clone());
        Ok(p)
    }

    /// Records one kernel launch (its own compute pass) into the pending encoder.
    pub fn launch<P: bytemuck::Pod>(
        &self,
        kernel: &Kernel,
        entry: &'static str,
        params: &P,
        args: &[Arg],
        groups: [u32; 3],
    ) -> Result<()> {
        if groups.iter().any(|&g| g > MAX_GROUPS_PER_DIM) {
            return Err(Error::Backend(format!(
                "{}::{entry}: dispatch {groups:?} exceeds {MAX_GROUPS_PER_DIM} per dimension",
                kernel.name
            )));
        }
        if groups.contains(&0) {
            return Ok(());
        }
        let p = self.pipeline(kernel, entry, args)?;
        let uniform = {
            let bytes = bytemuck::bytes_of(params);
            let size = (bytes.len() as u64).div_ceil(16).max(1) * 16;
            let b = self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("params"),
                size,
                usage: wgpu::BufferUsages::UNIFORM,
                mapped_at_creation: true,
            });
            b.get_mapped_range_mut(..)
                .map_err(|e| backend_err("params", e))?
                .slice(..bytes.len())
                .copy_from_slice(bytes);
            b.unmap();
            b
        };
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: uniform.as_entire_binding(),
        }];
        for (i, a) in args.iter().enumerate() {
            let (Arg::Read(b) | Arg::Write(b)) = a;
            entries.push(wgpu::BindGroupEntry {
                binding: i as u32 + 1,
                resource: b.buffer.as_entire_binding(),
            });
        }
        let bg = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(entry),
            layout: &p.layout,
            entries: &entries,
        });
        let mut st = self.state()?;
        st.pending_launches += 1;
        let enc = Self::encoder(&self.device, &mut st);
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(entry),
            timestamp_writes: None,
        });
        pass.set_pipeline(&p.pipeline);
        pass.set_bind_group(0, &bg, &[]);
        pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
        Ok(())
    }
}

/// Workgroups for `threads` invocations of a 1-D kernel of `WG_1D` threads, folded into 2-D
/// past 65,535 groups (WGSL side: `wg = wid.y * nwg.x + wid.x`).
pub fn grid_1d(threads: usize) -> [u32; 3] {
    grid_groups(threads.div_ceil(WG_1D as usize))
}

/// `groups` workgroups laid out as `[x, y, 1]` with `x <= 65,535`.
pub fn grid_groups(groups: usize) -> [u32; 3] {
    let max = MAX_GROUPS_PER_DIM as usize;
    if groups <= max {
        [groups as u32, 1, 1]
    } else {
        [
            max as u32,
            groups.div_ceil(max).min(u32::MAX as usize) as u32,
            1,
        ]
    }
}

/// `usize -> u32` for a kernel parameter, with an error naming the op when it does not fit.
pub fn u32_of(op: &'static str, v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::arg(op, format!("{v} does not fit a u32 kernel parameter")))
}
