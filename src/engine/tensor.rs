//! The tensor: a cheap `Arc` handle to an NCHW, contiguous, real (f32) or complex (2 x f32)
//! array, plus the tape record (`Node`) of the op that made it. The record and the VJP trait
//! live here, beside the type that holds them; the walk over them is `autograd.rs`, the op
//! dispatch that creates them `dispatch.rs`.

use crate::engine::device::Device;
use crate::engine::storage::{CpuStorage, DType, Storage, C32};
use crate::error::{Error, Result};
use crate::rng::Rng;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Identifies a tensor for the gradient store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TensorId(usize);

impl TensorId {
    fn new() -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(1);
        TensorId(COUNTER.fetch_add(1, Ordering::Relaxed))
    }
}

/// What a VJP sees: the op's inputs, its output (the tensor being differentiated, alive for
/// the whole backward walk) and any extra outputs the forward saved for it.
pub(crate) struct Saved<'a> {
    pub(crate) inputs: &'a [Tensor],
    pub(crate) output: &'a Tensor,
    pub(crate) extra: &'a [Tensor],
}

/// The vector-Jacobian product of a recorded op: the gradients of its inputs (one per input,
/// `None` where none is needed) from the gradient `g` of its output. Written with device-agnostic
/// tensor ops or backward kernels (`Tensor::compute`), so it runs wherever the data lives.
pub(crate) trait Backward: Send + Sync + 'static {
    fn backward(&self, s: &Saved, g: &Tensor) -> Result<Vec<Option<Tensor>>>;
}

/// How an op result was made: the op's name, its inputs, saved extra outputs and its VJP.
pub(crate) struct Node {
    pub(crate) op: &'static str,
    pub(crate) inputs: Vec<Tensor>,
    pub(crate) extra: Vec<Tensor>,
    pub(crate) backward: Box<dyn Backward>,
}

pub(crate) struct Inner {
    pub(crate) id: TensorId,
    pub(crate) shape: Vec<usize>,
    pub(crate) storage: RwLock<Storage>,
    pub(crate) requires_grad: bool,
    pub(crate) node: Option<Node>,
}

/// An n-dimensional array (NCHW by convention), real or complex, that records the operations
/// applied to it when gradients are needed.
///
/// ```
/// use magprior::Tensor;
/// let x = Tensor::from_shape_vec(&[2, 2], vec![1.0, 2.0, 3.0, 4.0]).unwrap().requires_grad();
/// let y = x.square().unwrap().sum_all().unwrap();
/// let grads = y.backward().unwrap();
/// assert_eq!(grads.get(&x).unwrap().to_vec().unwrap(), vec![2.0, 4.0, 6.0, 8.0]);
/// ```
#[derive(Clone)]
pub struct Tensor(pub(crate) Arc<Inner>);

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Tensor({:?}, {}, {:?}{})",
            self.id(),
            self.dtype().name(),
            self.shape(),
            if self.0.requires_grad { ", grad" } else { "" }
        )
    }
}

pub(crate) fn numel_of(shape: &[usize]) -> usize {
    shape.iter().product()
}

impl Tensor {
    // ---------------------------------------------------------------- construction
    /// A constant (untracked leaf) holding `storage`.
    pub(crate) fn from_storage(shape: Vec<usize>, storage: Storage) -> Tensor {
        debug_assert_eq!(numel_of(&shape), storage.len());
        Tensor(Arc::new(Inner {
            id: TensorId::new(),
            shape,
            storage: RwLock::new(storage),
            requires_grad: false,
            node: None,
        }))
    }

    /// A tracked op result: `storage` with its tape record.
    pub(crate) fn from_node(shape: Vec<usize>, storage: Storage, node: Node) -> Tensor {
        debug_assert_eq!(numel_of(&shape), storage.len());
        Tensor(Arc::new(Inner {
            id: TensorId::new(),
            shape,
            storage: RwLock::new(storage),
            requires_grad: true,
            node: Some(node),
        }))
    }

    fn host(shape: &[usize], data: CpuStorage) -> Tensor {
        Tensor::from_storage(shape.to_vec(), Storage::Cpu(data))
    }

    /// A real tensor from data in row-major order.
    pub fn from_shape_vec(shape: &[usize], data: Vec<f32>) -> Result<Tensor> {
        if numel_of(shape) != data.len() {
            return Err(Error::LengthMismatch {
                op: "from_shape_vec",
                len: data.len(),
                shape: shape.to_vec(),
            });
        }
        Ok(Tensor::host(shape, CpuStorage::F32(data)))
    }

    /// A complex tensor from data in row-major order.
    pub fn from_shape_vec_c(shape: &[usize], data: Vec<C32>) -> Result<Tensor> {
        if numel_of(shape) != data.len() {
            return Err(Error::LengthMismatch {
                op: "from_shape_vec_c",
                len: data.len(),
                shape: shape.to_vec(),
            });
        }
        Ok(Tensor::host(shape, CpuStorage::C32(data)))
    }

    /// A real tensor filled with `value`.
    pub fn full(shape: &[usize], value: f32) -> Tensor {
        Tensor::host(shape, CpuStorage::F32(vec![value; numel_of(shape)]))
    }

    /// A real tensor of zeros.
    pub fn zeros(shape: &[usize]) -> Tensor {
        Tensor::full(shape, 0.0)
    }

    /// A real tensor of ones.
    pub fn ones(shape: &[usize]) -> Tensor {
        Tensor::full(shape, 1.0)
    }

    /// A complex tensor of zeros.
    pub fn zeros_c(shape: &[usize]) -> Tensor {
        Tensor::host(
            shape,
            CpuStorage::C32(vec![C32::new(0.0, 0.0); numel_of(shape)]),
        )
    }

    /// A zero tensor of the same shape, dtype and device.
    pub fn zeros_like(&self) -> Result<Tensor> {
        self.zeros_of(self.shape())
    }

    /// Zeros of `shape` with this tensor's dtype, on its device.
    pub(crate) fn zeros_of(&self, shape: &[usize]) -> Result<Tensor> {
        let storage = Storage::zeros(numel_of(shape), self.dtype(), self.device())?;
        Ok(Tensor::from_storage(shape.to_vec(), storage))
    }

    /// A real tensor filled with `value` on `device`.
    pub fn full_on(shape: &[usize], value: f32, device: Device) -> Result<Tensor> {
        Tensor::full(shape, value).to_device(device)
    }

    /// A real scalar (shape `[]`).
    pub fn scalar(value: f32) -> Tensor {
        Tensor::full(&[], value)
    }

    /// Standard normal samples from a seeded generator.
    pub fn randn(shape: &[usize], rng: &mut Rng) -> Tensor {
        let data = (0..numel_of(shape)).map(|_| rng.normal() as f32).collect();
        Tensor::host(shape, CpuStorage::F32(data))
    }

    /// Uniform samples in `[lo, hi)` from a seeded generator.
    pub fn rand(shape: &[usize], lo: f32, hi: f32, rng: &mut Rng) -> Tensor {
        let data = (0..numel_of(shape))
            .map(|_| rng.uniform_range(lo as f64, hi as f64) as f32)
            .collect();
        Tensor::host(shape, CpuStorage::F32(data))
    }

    /// Marks this tensor as a leaf variable (a parameter) whose gradient `backward` computes.
    /// Returns a new handle sharing nothing with the old one's autodiff history.
    pub fn requires_grad(self) -> Tensor {
        let storage = self.read().clone();
        Tensor(Arc::new(Inner {
            id: TensorId::new(),
            shape: self.0.shape.clone(),
            storage: RwLock::new(storage),
            requires_grad: true,
            node: None,
        }))
    }

    /// The same data without autodiff history (a constant).
    pub fn detach(&self) -> Tensor {
        Tensor::from_storage(self.0.shape.clone(), self.read().clone())
    }

    // ---------------------------------------------------------------- devices
    /// Where the data lives.
    pub fn device(&self) -> Device {
        self.read().device()
    }

    /// Moves this tensor's data to `device` in place, keeping its identity (id, gradient flag):
    /// how a model's parameters are moved after creation (`Cae::to_device`).
    pub fn move_to(&self, device: Device) -> Result<()> {
        if self.device() == device {
            return Ok(());
        }
        let moved = self.read().to_device(device)?;
        *self.write() = moved;
        Ok(())
    }

    // ---------------------------------------------------------------- queries
    /// Unique id (keys the gradient store).
    pub fn id(&self) -> TensorId {
        self.0.id
    }
    /// Dimensions, outermost first.
    pub fn shape(&self) -> &[usize] {
        &self.0.shape
    }
    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.0.shape.len()
    }
    /// Number of elements.
    pub fn numel(&self) -> usize {
        numel_of(&self.0.shape)
    }
    /// Real or complex.
    pub fn dtype(&self) -> DType {
        self.read().dtype()
    }
    /// Whether gradients flow to this tensor.
    pub fn is_tracked(&self) -> bool {
        self.0.requires_grad
    }
    /// Whether this tensor is a leaf (a parameter or a constant, not an op result).
    pub fn is_leaf(&self) -> bool {
        self.0.node.is_none()
    }
    /// The last two dimensions `(h, w)` of a tensor of rank >= 2.
    pub fn hw(&self, op: &'static str) -> Result<(usize, usize)> {
        hw_of(op, self.shape())
    }

    // ---------------------------------------------------------------- data access
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Storage> {
        self.0.storage.read().unwrap_or_else(|e| e.into_inner())
    }
    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, Storage> {
        self.0.storage.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Copies a real tensor's data out (row-major; a download for GPU data).
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        self.read().to_f32_vec("to_vec")
    }
    /// Copies a complex tensor's data out (row-major).
    pub fn to_vec_c(&self) -> Result<Vec<C32>> {
        self.read().to_c32_vec("to_vec_c")
    }
    /// The value of a one-element real tensor.
    pub fn to_scalar(&self) -> Result<f32> {
        if self.numel() != 1 {
            return Err(Error::shape("to_scalar", self.shape(), "not one element"));
        }
        Ok(self.to_vec()?[0])
    }

    /// Overwrites the data in place (same shape and dtype; the data is moved to this tensor's
    /// device); used on parameters, e.g. to clamp them.
    pub fn assign(&self, src: &Tensor) -> Result<()> {
        if src.shape() != self.shape() {
            return Err(Error::ShapeMismatch {
                op: "assign",
                lhs: self.shape().to_vec(),
                rhs: src.shape().to_vec(),
            });
        }
        if Arc::ptr_eq(&self.0, &src.0) {
            return Ok(());
        }
        let new = src.read().to_device(self.device())?;
        if new.dtype() != self.dtype() {
            return Err(Error::DType {
                op: "assign",
                expected: self.dtype().name(),
                got: new.dtype().name(),
            });
        }
        *self.write() = new;
        Ok(())
    }

    pub(crate) fn expect_rank(&self, op: &'static str, rank: usize) -> Result<()> {
        if self.rank() != rank {
            return Err(Error::shape(
                op,
                self.shape(),
                format!("expected rank {rank}"),
            ));
        }
        Ok(())
    }
}

/// The last two dimensions of `shape` (rank >= 2), or an error naming `op`.
pub(crate) fn hw_of(op: &'static str, s: &[usize]) -> Result<(usize, usize)> {
    if s.len() < 2 {
        return Err(Error::shape(op, s, "needs at least two dimensions"));
    }
    Ok((s[s.len() - 2], s[s.len() - 1]))
}

/// Long tapes would otherwise drop recursively (one stack frame per op); unlink them iteratively.
impl Drop for Inner {
    fn drop(&mut self) {
        let Some(node) = self.node.take() else { return };
        let mut stack = node.inputs;
        stack.extend(node.extra);
        while let Some(t) = stack.pop() {
            if let Ok(mut inner) = Arc::try_unwrap(t.0) {
                if let Some(node) = inner.node.take() {
                    stack.extend(node.inputs);
                    stack.extend(node.extra);
                }
            }
        }
    }
}
