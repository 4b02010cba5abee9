//! Kernels and launches: WGSL files compiled once per context, compute pipelines cached by
//! (kernel, entry), and one launch = one compute pass recorded into the pending encoder.

use std::borrow::Cow;
use std::sync::Arc;

use super::context::GpuContext;
use super::resource::{GpuBuffer, Pipeline};
use crate::error::{Error, Result};

/// Threads per workgroup of every 1-D kernel (WGSL `@workgroup_size(256)`).
pub const WG_1D: u32 = 256;
/// Most workgroups wgpu allows along one dispatch dimension.
pub const MAX_GROUPS_PER_DIM: u32 = 65_535;

/// A WGSL source file compiled once per context: `kernels/<name>.wgsl`.
#[derive(Clone, Copy, Debug)]
pub struct Kernel {
    /// File stem.
    pub name: &'static str,
    /// WGSL source.
    pub source: &'static str,
}

/// `gpu_kernel!("conv2d")` embeds `kernels/conv2d.wgsl` from the crate root.
macro_rules! gpu_kernel {
    ($name:literal) => {
        $crate::backend::gpu::Kernel {
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
pub(crate) use gpu_kernel;

/// One binding of a launch; binding 0 is always the kernel's uniform parameter struct, the
/// bindings given here are numbered 1, 2, ... in order.
#[derive(Clone, Copy)]
pub enum Arg<'a> {
    /// `var<storage, read>`
    Read(&'a GpuBuffer),
    /// `var<storage, read_write>`
    Write(&'a GpuBuffer),
}

impl GpuContext {
    fn pipeline(
        &self,
        kernel: &Kernel,
        entry: &'static str,
        args: &[Arg],
    ) -> Result<Arc<Pipeline>> {
        let mut st = self.state();
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
            return Err(Error::gpu(format!("pipeline {}::{entry}", kernel.name), e));
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
            return Err(Error::gpu(
                format!("{}::{entry}", kernel.name),
                format!("dispatch {groups:?} exceeds {MAX_GROUPS_PER_DIM} per dimension"),
            ));
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
                .map_err(|e| Error::gpu("params", e))?
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
        let mut st = self.state();
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
