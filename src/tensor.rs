//! The tensor: a cheap `Arc` handle to an NCHW, contiguous, real (f32) or complex (2 x f32) array,
//! plus the autodiff node that produced it (see `autograd.rs`).

use crate::autograd::{self, BackwardFn, Node};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::gpu::GpuBuffer;
use crate::rng::Rng;
use crate::storage::Storage;
use num_complex::Complex32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Complex single precision, `re, im`.
pub type C32 = Complex32;

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
}

/// Identifies a tensor for the gradient store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TensorId(usize);

impl TensorId {
    fn new() -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(1);
        TensorId(COUNTER.fetch_add(1, Ordering::Relaxed))
    }
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

/// A non-owning handle to an op's own output, for VJPs that reuse the forward result.
pub(crate) struct WeakTensor(std::sync::Weak<Inner>);

impl WeakTensor {
    /// The output tensor; an error if it no longer exists (cannot happen during `backward`).
    pub(crate) fn get(&self, op: &'static str) -> Result<Tensor> {
        self.0.upgrade().map(Tensor).ok_or_else(|| {
            Error::Backend(format!("{op}: output released before its backward pass"))
        })
    }
}

pub(crate) fn numel_of(shape: &[usize]) -> usize {
    shape.iter().product()
}

impl Tensor {
    // ---------------------------------------------------------------- construction
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

    /// The result of an operation: records `backward` on the tape when autodiff is on and an input
    /// requires a gradient; otherwise a plain constant.
    pub(crate) fn from_op(
        shape: Vec<usize>,
        storage: Storage,
        op: &'static str,
        inputs: &[&Tensor],
        backward: impl Fn(&Tensor) -> Result<Vec<Option<Tensor>>> + Send + Sync + 'static,
    ) -> Tensor {
        let track = autograd::is_grad_enabled() && inputs.iter().any(|t| t.0.requires_grad);
        if !track {
            return Tensor::from_storage(shape, storage);
        }
        let node = Node {
            op,
            inputs: inputs.iter().map(|t| (*t).clone()).collect(),
            backward: Box::new(backward) as BackwardFn,
        };
        Tensor(Arc::new(Inner {
            id: TensorId::new(),
            shape,
            storage: RwLock::new(storage),
            requires_grad: true,
            node: Some(node),
        }))
    }

    /// Like [`Tensor::from_op`], but the VJP is built from a weak handle to the output itself,
    /// so it can read the forward result (e.g. `y` of a fused activation) without copying it.
    /// The handle is valid whenever the VJP runs (the backward walk holds the output).
    pub(crate) fn from_op_with_output<F>(
        shape: Vec<usize>,
        storage: Storage,
        op: &'static str,
        inputs: &[&Tensor],
        make_backward: impl FnOnce(WeakTensor) -> F,
    ) -> Tensor
    where
        F: Fn(&Tensor) -> Result<Vec<Option<Tensor>>> + Send + Sync + 'static,
    {
        let track = autograd::is_grad_enabled() && inputs.iter().any(|t| t.0.requires_grad);
        if !track {
            return Tensor::from_storage(shape, storage);
        }
        let inputs: Vec<Tensor> = inputs.iter().map(|t| (*t).clone()).collect();
        Tensor(Arc::new_cyclic(|weak| Inner {
            id: TensorId::new(),
            shape,
            storage: RwLock::new(storage),
            requires_grad: true,
            node: Some(Node {
                op,
                inputs,
                backward: Box::new(make_backward(WeakTensor(weak.clone()))) as BackwardFn,
            }),
        }))
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
        Ok(Tensor::from_storage(
            shape.to_vec(),
            Storage::from_f32(data),
        ))
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
        Ok(Tensor::from_storage(
            shape.to_vec(),
            Storage::from_c32(data),
        ))
    }

    /// A real tensor filled with `value`.
    pub fn full(shape: &[usize], value: f32) -> Tensor {
        Tensor::from_storage(
            shape.to_vec(),
            Storage::from_f32(vec![value; numel_of(shape)]),
        )
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
        Tensor::from_storage(
            shape.to_vec(),
            Storage::from_c32(vec![C32::new(0.0, 0.0); numel_of(shape)]),
        )
    }

    /// A zero tensor of the same shape, dtype and device.
    pub fn zeros_like(&self) -> Tensor {
        self.zeros_of(self.shape())
    }

    /// Zeros of `shape` with this tensor's dtype, on its device (on the CPU should the GPU
    /// allocation fail; the op using them then reports the device mismatch).
    pub(crate) fn zeros_of(&self, shape: &[usize]) -> Tensor {
        let n = numel_of(shape);
        let storage = Storage::zeros(n, self.dtype(), self.device())
            .or_else(|_| Storage::zeros(n, self.dtype(), Device::Cpu));
        match storage {
            Ok(s) => Tensor::from_storage(shape.to_vec(), s),
            Err(_) => Tensor::zeros(shape), // unreachable: CPU zeros cannot fail
        }
    }

    /// A real tensor filled with `value` on `device`.
    pub fn full_on(shape: &[usize], value: f32, device: Device) -> Result<Tensor> {
        Tensor::full(shape, value).to_device(device)
    }

    // ---------------------------------------------------------------- devices
    /// Where the data lives.
    pub fn device(&self) -> Device {
        self.read().device()
    }

    /// This tensor on `device`: the same handle when already there, else a copy (an upload or
    /// a download). Differentiable: the gradient is moved back (`dx = to_device(dy, x's device)`).
    pub fn to_device(&self, device: Device) -> Result<Tensor> {
        let src = self.device();
        if src == device {
            return Ok(self.clone());
        }
        let storage = self.read().to_device(device)?;
        Ok(Tensor::from_op(
            self.shape().to_vec(),
            storage,
            "to_device",
            &[self],
            move |g| Ok(vec![Some(g.to_device(src)?)]),
        ))
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

    /// The device buffer of a GPU tensor (an error naming `op` for a CPU tensor).
    pub(crate) fn gbuf(&self, op: &'static str) -> Result<GpuBuffer> {
        self.read().gbuf(op)
    }

    /// A real scalar (shape `[]`).
    pub fn scalar(value: f32) -> Tensor {
        Tensor::full(&[], value)
    }

    /// Standard normal samples from a seeded generator.
    pub fn randn(shape: &[usize], rng: &mut Rng) -> Tensor {
        let data = (0..numel_of(shape)).map(|_| rng.normal() as f32).collect();
        Tensor::from_storage(shape.to_vec(), Storage::from_f32(data))
    }

    /// Uniform samples in `[lo, hi)` from a seeded generator.
    pub fn rand(shape: &[usize], lo: f32, hi: f32, rng: &mut Rng) -> Tensor {
        let data = (0..numel_of(shape))
            .map(|_| rng.uniform_range(lo as f64, hi as f64) as f32)
            .collect();
        Tensor::from_storage(shape.to_vec(), Storage::from_f32(data))
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
        let s = self.shape();
        if s.len() < 2 {
            return Err(Error::shape(op, s, "needs at least two dimensions"));
        }
        Ok((s[s.len() - 2], s[s.len() - 1]))
    }

    // ---------------------------------------------------------------- data access
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Storage> {
        self.0.storage.read().unwrap_or_else(|e| e.into_inner())
    }
    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, Storage> {
        self.0.storage.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Copies a real tensor's data out (row-major).
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
    /// device); used by optimisers on parameters.
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

    /// A view with another shape of the same number of elements (copies the handle's data).
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        if numel_of(shape) != self.numel() {
            return Err(Error::ShapeMismatch {
                op: "reshape",
                lhs: self.shape().to_vec(),
                rhs: shape.to_vec(),
            });
        }
        let old = self.shape().to_vec();
        Ok(Tensor::from_op(
            shape.to_vec(),
            self.read().clone(),
            "reshape",
            &[self],
            // y = reshape(x)  =>  dx = reshape(dy)
            move |g| Ok(vec![Some(g.reshape(&old)?)]),
        ))
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

/// Long tapes would otherwise drop recursively (one stack frame per op); unlink them iteratively.
impl Drop for Inner {
    fn drop(&mut self) {
        let Some(node) = self.node.take() else { return };
        let mut stack = node_into_inputs(node);
        while let Some(t) = stack.pop() {
            if let Ok(mut inner) = Arc::try_unwrap(t.0) {
                if let Some(node) = inner.node.take() {
                    stack.extend(node_into_inputs(node));
                }
            }
        }
    }
}

fn node_into_inputs(node: Node) -> Vec<Tensor> {
    let Node {
        inputs, backward, ..
    } = node;
    drop(backward); // its captures are inputs (still held below) or untracked constants
    inputs
}
