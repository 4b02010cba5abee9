//! The one backend switch. An op describes itself once — its name, its shape and dtype rule
//! ([`Kernel::signature`]), its CPU and GPU computations, and its VJP ([`Backward`]) — and
//! [`Tensor::apply`] does the rest for every op: the dtype check, the device check, the dispatch
//! to `backend/cpu` or `backend/gpu`, and the tape record. Nothing else in the crate matches on
//! where data lives, except the transfers of `storage.rs`.
//!
//! Backward kernels (conv's dx/dw/db, a norm's dx) are [`Kernel`]s too, run by
//! [`Tensor::compute`], which records nothing; in-place writers (the optimiser step) are
//! [`Update`]s, run by [`Tensor::update`].

use crate::backend::gpu::{GpuBuffer, GpuContext};
use crate::engine::autograd::is_grad_enabled;
use crate::engine::device::{gpu_context, Device};
use crate::engine::profile;
use crate::engine::storage::{dtype_err, CpuStorage, DType, Storage, C32};
use crate::engine::tensor::{numel_of, Backward, Node, Tensor};
use crate::error::{Error, Result};
use std::sync::{Arc, RwLockReadGuard};

/// Shape and dtype of one operand, as an op's signature sees it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Meta<'a> {
    pub(crate) shape: &'a [usize],
    pub(crate) dtype: DType,
}

/// Shape and dtype of one output.
#[derive(Clone, Debug)]
pub(crate) struct Out {
    pub(crate) shape: Vec<usize>,
    pub(crate) dtype: DType,
}

impl Out {
    pub(crate) fn new(shape: Vec<usize>, dtype: DType) -> Out {
        Out { shape, dtype }
    }
    pub(crate) fn real(shape: Vec<usize>) -> Out {
        Out::new(shape, DType::F32)
    }
    pub(crate) fn complex(shape: Vec<usize>) -> Out {
        Out::new(shape, DType::C32)
    }
}

/// An op's inputs on one backend: the data (`&CpuStorage` or `&GpuBuffer`) with the checked
/// shapes and dtypes.
pub(crate) struct Args<'a, T> {
    pub(crate) op: &'static str,
    pub(crate) data: Vec<T>,
    pub(crate) meta: Vec<Meta<'a>>,
}

impl<T: Copy> Args<'_, T> {
    pub(crate) fn shape(&self, i: usize) -> &[usize] {
        self.meta[i].shape
    }
    pub(crate) fn dtype(&self, i: usize) -> DType {
        self.meta[i].dtype
    }
    pub(crate) fn len(&self) -> usize {
        self.data.len()
    }
}

impl<'a> Args<'a, &'a CpuStorage> {
    /// Input `i`'s real data.
    pub(crate) fn real(&self, i: usize) -> Result<&'a [f32]> {
        self.data[i].f32(self.op)
    }
    /// Input `i`'s complex data.
    pub(crate) fn complex(&self, i: usize) -> Result<&'a [C32]> {
        self.data[i].c32(self.op)
    }
}

impl<'a> Args<'a, &'a GpuBuffer> {
    /// Input `i`'s device buffer.
    pub(crate) fn buf(&self, i: usize) -> &'a GpuBuffer {
        self.data[i]
    }
}

/// An op's forward computation on both backends.
pub(crate) trait Kernel: Send + Sync + 'static {
    /// Name for errors and the tape.
    fn name(&self) -> &'static str;
    /// Checks the inputs' shapes and dtypes and gives the outputs': the first is the op's
    /// result, any further ones are saved for its VJP (`Saved::extra`).
    fn signature(&self, x: &[Meta]) -> Result<Vec<Out>>;
    /// The outputs computed from host data.
    fn cpu(&self, x: &Args<&CpuStorage>) -> Result<Vec<CpuStorage>>;
    /// The outputs computed on the device (launches recorded, not waited for).
    fn gpu(&self, ctx: &GpuContext, x: &Args<&GpuBuffer>) -> Result<Vec<GpuBuffer>>;
}

/// An in-place update of `targets` from `inputs` (the optimiser step), on both backends.
pub(crate) trait Update: Send + Sync {
    fn name(&self) -> &'static str;
    /// Checks the targets' and the inputs' shapes and dtypes.
    fn check(&self, targets: &[Meta], inputs: &[Meta]) -> Result<()>;
    fn cpu(&self, targets: &mut [&mut CpuStorage], x: &Args<&CpuStorage>) -> Result<()>;
    fn gpu(&self, ctx: &GpuContext, targets: &[&GpuBuffer], x: &Args<&GpuBuffer>) -> Result<()>;
}

/// The common device of `ts`, or an error naming `op` when they are mixed.
fn common_device(op: &'static str, ts: &[&Tensor]) -> Result<Device> {
    let Some(first) = ts.first() else {
        return Ok(Device::Cpu);
    };
    let d = first.device();
    if let Some(other) = ts.iter().find(|t| t.device() != d) {
        return Err(Error::Device {
            op,
            msg: format!(
                "inputs on different devices ({d} and {}); move them with to_device",
                other.device()
            ),
        });
    }
    Ok(d)
}

/// One read guard per distinct tensor of `ts` (a tensor may appear twice, as in `x * x`), and
/// for each operand the index of its guard.
fn read_all<'t>(ts: &[&'t Tensor]) -> (Vec<RwLockReadGuard<'t, Storage>>, Vec<usize>) {
    let mut owners: Vec<&Tensor> = Vec::new();
    let mut guards = Vec::new();
    let mut index = Vec::with_capacity(ts.len());
    for t in ts {
        match owners.iter().position(|o| Arc::ptr_eq(&o.0, &t.0)) {
            Some(i) => index.push(i),
            None => {
                index.push(owners.len());
                owners.push(t);
                guards.push(t.read());
            }
        }
    }
    (guards, index)
}

fn wrong_device(op: &'static str) -> Error {
    Error::Device {
        op,
        msg: "an input moved to another device during the op".into(),
    }
}

/// The operands' shapes and dtypes, from their read guards.
fn metas<'t>(
    inputs: &[&'t Tensor],
    guards: &[RwLockReadGuard<Storage>],
    index: &[usize],
) -> Vec<Meta<'t>> {
    inputs
        .iter()
        .zip(index)
        .map(|(t, &i)| Meta {
            shape: t.shape(),
            dtype: guards[i].dtype(),
        })
        .collect()
}

/// Each operand's host data (all must be on the CPU).
fn host<'g>(
    op: &'static str,
    guards: &'g [RwLockReadGuard<Storage>],
    index: &[usize],
) -> Result<Vec<&'g CpuStorage>> {
    index
        .iter()
        .map(|&i| match &*guards[i] {
            Storage::Cpu(c) => Ok(c),
            Storage::Gpu(_) => Err(wrong_device(op)),
        })
        .collect()
}

/// Each operand's device buffer (all must be on the GPU).
fn device_bufs<'g>(
    op: &'static str,
    guards: &'g [RwLockReadGuard<Storage>],
    index: &[usize],
) -> Result<Vec<&'g GpuBuffer>> {
    index
        .iter()
        .map(|&i| match &*guards[i] {
            Storage::Gpu(g) => Ok(&*g.buf),
            Storage::Cpu(_) => Err(wrong_device(op)),
        })
        .collect()
}

/// Runs `k` on `inputs` on `device` (where they live); returns each output's shape and storage.
fn run<K: Kernel + ?Sized>(
    k: &K,
    inputs: &[&Tensor],
    device: Device,
) -> Result<Vec<(Vec<usize>, Storage)>> {
    let op = k.name();
    let (guards, index) = read_all(inputs);
    let meta = metas(inputs, &guards, &index);
    let outs = k.signature(&meta)?;
    let storages: Vec<Storage> = match device {
        Device::Cpu => {
            let data = host(op, &guards, &index)?;
            let got = profile::time(op, || k.cpu(&Args { op, data, meta }))?;
            got.into_iter().map(Storage::Cpu).collect()
        }
        Device::Gpu => {
            let ctx = gpu_context()?;
            let data = device_bufs(op, &guards, &index)?;
            let got = profile::time(op, || k.gpu(ctx, &Args { op, data, meta }))?;
            got.into_iter()
                .zip(&outs)
                .map(|(b, o)| Storage::gpu(b, o.dtype))
                .collect()
        }
    };
    debug_assert_eq!(storages.len(), outs.len(), "{op}: output count");
    for (s, o) in storages.iter().zip(&outs) {
        if s.len() != numel_of(&o.shape) || s.dtype() != o.dtype {
            return Err(Error::LengthMismatch {
                op,
                len: s.len(),
                shape: o.shape.clone(),
            });
        }
    }
    Ok(outs.into_iter().map(|o| o.shape).zip(storages).collect())
}

impl Tensor {
    /// Applies a differentiable op: computes it on the inputs' device and, when autodiff is on
    /// and an input is tracked, records it (with its saved extra outputs) on the tape.
    pub(crate) fn apply<O: Kernel + Backward>(op: O, inputs: &[&Tensor]) -> Result<Tensor> {
        let device = common_device(op.name(), inputs)?;
        let mut outs = run(&op, inputs, device)?.into_iter();
        let Some((shape, storage)) = outs.next() else {
            return Err(Error::arg(op.name(), "op produced no output"));
        };
        if !(is_grad_enabled() && inputs.iter().any(|t| t.is_tracked())) {
            return Ok(Tensor::from_storage(shape, storage));
        }
        let extra = outs.map(|(s, st)| Tensor::from_storage(s, st)).collect();
        Ok(Tensor::record(op.name(), shape, storage, inputs, extra, op))
    }

    /// Runs a kernel without recording it (backward kernels, inference-only helpers); every
    /// output is returned, as constants.
    pub(crate) fn compute<K: Kernel>(k: &K, inputs: &[&Tensor]) -> Result<Vec<Tensor>> {
        let device = common_device(k.name(), inputs)?;
        Ok(run(k, inputs, device)?
            .into_iter()
            .map(|(s, st)| Tensor::from_storage(s, st))
            .collect())
    }

    /// Runs a kernel without inputs (a source, e.g. a random stream) on `device`; its first
    /// output, a constant.
    pub(crate) fn generate<K: Kernel>(k: &K, device: Device) -> Result<Tensor> {
        let mut outs = run(k, &[], device)?.into_iter();
        let (shape, storage) = outs
            .next()
            .ok_or_else(|| Error::arg(k.name(), "source produced no output"))?;
        Ok(Tensor::from_storage(shape, storage))
    }

    /// A result that needs no kernel (a view or a transfer) with its VJP on the tape when an
    /// input is tracked and autodiff is on.
    pub(crate) fn record(
        op: &'static str,
        shape: Vec<usize>,
        storage: Storage,
        inputs: &[&Tensor],
        extra: Vec<Tensor>,
        backward: impl Backward,
    ) -> Tensor {
        if !(is_grad_enabled() && inputs.iter().any(|t| t.is_tracked())) {
            return Tensor::from_storage(shape, storage);
        }
        let node = Node {
            op,
            inputs: inputs.iter().map(|t| (*t).clone()).collect(),
            extra,
            backward: Box::new(backward),
        };
        Tensor::from_node(shape, storage, node)
    }

    /// Writes `targets` in place from `inputs` (all on one device; targets distinct from each
    /// other and from the inputs). A GPU target shared with another tensor is copied first, so
    /// `detach`ed snapshots never change.
    pub(crate) fn update<U: Update>(u: &U, targets: &[&Tensor], inputs: &[&Tensor]) -> Result<()> {
        let op = u.name();
        let all: Vec<&Tensor> = targets.iter().chain(inputs).copied().collect();
        let device = common_device(op, &all)?;
        for (i, t) in targets.iter().enumerate() {
            if all
                .iter()
                .enumerate()
                .any(|(j, o)| j != i && Arc::ptr_eq(&o.0, &t.0))
            {
                return Err(Error::arg(op, "a target also appears as another operand"));
            }
        }
        let mut writes: Vec<_> = targets.iter().map(|t| t.write()).collect();
        let (guards, index) = read_all(inputs);
        let meta = metas(inputs, &guards, &index);
        let tmeta: Vec<(Vec<usize>, DType)> = targets
            .iter()
            .zip(&writes)
            .map(|(t, w)| (t.shape().to_vec(), w.dtype()))
            .collect();
        let tm: Vec<Meta> = tmeta
            .iter()
            .map(|(s, d)| Meta {
                shape: s,
                dtype: *d,
            })
            .collect();
        u.check(&tm, &meta)?;
        match device {
            Device::Cpu => {
                let data = host(op, &guards, &index)?;
                let mut ts = writes
                    .iter_mut()
                    .map(|w| match &mut **w {
                        Storage::Cpu(c) => Ok(c),
                        Storage::Gpu(_) => Err(wrong_device(op)),
                    })
                    .collect::<Result<Vec<_>>>()?;
                profile::time(op, || u.cpu(&mut ts, &Args { op, data, meta }))
            }
            Device::Gpu => {
                let ctx = gpu_context()?;
                for w in writes.iter_mut() {
                    w.make_unique()?;
                }
                let data = device_bufs(op, &guards, &index)?;
                let ts = writes
                    .iter()
                    .map(|w| match &**w {
                        Storage::Gpu(g) => Ok(&*g.buf),
                        Storage::Cpu(_) => Err(wrong_device(op)),
                    })
                    .collect::<Result<Vec<_>>>()?;
                u.gpu(ctx, &ts, &Args { op, data, meta })
            }
        }
    }
}

// ------------------------------------------------------------------ signature helpers

/// Every input is real.
pub(crate) fn expect_real(op: &'static str, x: &[Meta]) -> Result<()> {
    expect_all(op, x, DType::F32)
}

/// Every input is complex.
pub(crate) fn expect_complex(op: &'static str, x: &[Meta]) -> Result<()> {
    expect_all(op, x, DType::C32)
}

fn expect_all(op: &'static str, x: &[Meta], d: DType) -> Result<()> {
    match x.iter().find(|m| m.dtype != d) {
        Some(m) => Err(dtype_err(op, d, m.dtype)),
        None => Ok(()),
    }
}

/// Every input has the first one's dtype, which is returned.
pub(crate) fn same_dtype(op: &'static str, x: &[Meta]) -> Result<DType> {
    let d = x.first().map_or(DType::F32, |m| m.dtype);
    expect_all(op, x, d)?;
    Ok(d)
}

/// Every input has the first one's shape.
pub(crate) fn same_shape(op: &'static str, x: &[Meta]) -> Result<()> {
    if let Some(m) = x.iter().find(|m| m.shape != x[0].shape) {
        return Err(Error::ShapeMismatch {
            op,
            lhs: x[0].shape.to_vec(),
            rhs: m.shape.to_vec(),
        });
    }
    Ok(())
}
