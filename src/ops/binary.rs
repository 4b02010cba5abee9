//! The four broadcasting binary ops (real with real, complex with complex), NumPy broadcasting.

use crate::backend::cpu::strided::broadcast_binary;
use crate::backend::gpu::broadcast as gstrided;
use crate::backend::gpu::elementwise::{self as gew, Broadcast};
use crate::backend::gpu::{GpuBuffer, GpuContext};
use crate::backend::layout::{broadcast_shape, broadcast_strides, coalesce, Walk};
use crate::backend::BinOp;
use crate::engine::dispatch::{same_dtype, Args, Kernel, Meta, Out};
use crate::engine::storage::{CpuStorage, DType};
use crate::engine::tensor::{Backward, Saved, Tensor};
use crate::error::Result;

struct Binary(BinOp);

impl Kernel for Binary {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn signature(&self, x: &[Meta]) -> Result<Vec<Out>> {
        let dtype = same_dtype(self.name(), x)?;
        let out = broadcast_shape(self.name(), x[0].shape, x[1].shape)?;
        Ok(vec![Out::new(out, dtype)])
    }
    fn cpu(&self, x: &Args<&CpuStorage>) -> Result<Vec<CpuStorage>> {
        let (ash, bsh) = (x.shape(0), x.shape(1));
        let out = broadcast_shape(self.name(), ash, bsh)?;
        let op = self.0;
        Ok(vec![match x.dtype(0) {
            DType::F32 => CpuStorage::F32(per_op(op, x.real(0)?, ash, x.real(1)?, bsh, &out)),
            DType::C32 => CpuStorage::C32(per_op(op, x.complex(0)?, ash, x.complex(1)?, bsh, &out)),
        }])
    }
    fn gpu(&self, ctx: &GpuContext, x: &Args<&GpuBuffer>) -> Result<Vec<GpuBuffer>> {
        let (ash, bsh) = (x.shape(0), x.shape(1));
        let out = broadcast_shape(self.name(), ash, bsh)?;
        let (a, b) = (x.buf(0), x.buf(1));
        let complex = x.dtype(0) == DType::C32;
        if !complex && ash == out.as_slice() {
            // same-shape (identical layouts up to leading 1s) and scalar right operands take
            // the plain elementwise kernels
            let same_layout =
                bsh.iter().rev().zip(out.iter().rev()).all(|(p, q)| p == q) && b.len == a.len;
            let numel_b: usize = bsh.iter().product();
            let bc = if same_layout && numel_b > 0 {
                Some(Broadcast::Same)
            } else if numel_b == 1 {
                Some(Broadcast::Scalar)
            } else {
                None
            };
            if let Some(bc) = bc {
                return Ok(vec![gew::binary(ctx, self.0, a, b, bc)?]);
            }
        }
        let mut strides = vec![broadcast_strides(ash, &out), broadcast_strides(bsh, &out)];
        let dims = coalesce(&out, &mut strides);
        let [sa, sb]: [Vec<usize>; 2] = [strides[0].clone(), strides[1].clone()];
        let walk = Walk { dims, sa, sb };
        Ok(vec![gstrided::binary(ctx, self.0, a, b, &walk, complex)?])
    }
}

/// The broadcast loop monomorphised per op (the `match` outside the loop).
fn per_op<T>(op: BinOp, a: &[T], ash: &[usize], b: &[T], bsh: &[usize], out: &[usize]) -> Vec<T>
where
    T: Copy
        + Send
        + Sync
        + Default
        + std::ops::Add<Output = T>
        + std::ops::Sub<Output = T>
        + std::ops::Mul<Output = T>
        + std::ops::Div<Output = T>,
{
    match op {
        BinOp::Add => broadcast_binary(a, ash, b, bsh, out, |x, y| x + y),
        BinOp::Sub => broadcast_binary(a, ash, b, bsh, out, |x, y| x - y),
        BinOp::Mul => broadcast_binary(a, ash, b, bsh, out, |x, y| x * y),
        BinOp::Div => broadcast_binary(a, ash, b, bsh, out, |x, y| x / y),
    }
}

impl Backward for Binary {
    // y = a + b: da = sum_to(dy), db = sum_to(dy)
    // y = a - b: da = sum_to(dy), db = -sum_to(dy)
    // y = a b:   da = sum_to(dy conj(b)), db = sum_to(dy conj(a))
    // y = a / b: da = sum_to(dy / conj(b)), db = -sum_to(dy / conj(b) conj(y))
    fn backward(&self, s: &Saved, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let (a, b) = (&s.inputs[0], &s.inputs[1]);
        let need = (a.is_tracked(), b.is_tracked());
        let (ga, gb) = match self.0 {
            BinOp::Add => (Some(g.clone()), Some(g.clone())),
            BinOp::Sub => (Some(g.clone()), need.1.then(|| g.neg()).transpose()?),
            BinOp::Mul => (
                need.0.then(|| g.mul(&b.conj()?)).transpose()?,
                need.1.then(|| g.mul(&a.conj()?)).transpose()?,
            ),
            BinOp::Div => {
                let ga = g.div(&b.conj()?)?;
                let gb = need
                    .1
                    .then(|| ga.mul(&s.output.detach().conj()?)?.neg())
                    .transpose()?;
                (Some(ga), gb)
            }
        };
        Ok(vec![
            ga.map(|t| t.sum_to(a.shape())).transpose()?,
            gb.map(|t| t.sum_to(b.shape())).transpose()?,
        ])
    }
}

impl Tensor {
    /// `self + rhs` with NumPy broadcasting. VJP: `da = sum_to(dy)`, `db = sum_to(dy)`.
    pub fn add(&self, rhs: &Tensor) -> Result<Tensor> {
        Tensor::apply(Binary(BinOp::Add), &[self, rhs])
    }
    /// `self - rhs` with broadcasting. VJP: `da = sum_to(dy)`, `db = -sum_to(dy)`.
    pub fn sub(&self, rhs: &Tensor) -> Result<Tensor> {
        Tensor::apply(Binary(BinOp::Sub), &[self, rhs])
    }
    /// `self * rhs` with broadcasting (complex: complex product).
    /// VJP: `da = sum_to(dy conj(b))`, `db = sum_to(dy conj(a))`.
    pub fn mul(&self, rhs: &Tensor) -> Result<Tensor> {
        Tensor::apply(Binary(BinOp::Mul), &[self, rhs])
    }
    /// `self / rhs` with broadcasting.
    /// VJP: `da = sum_to(dy / conj(b))`, `db = -sum_to(dy / conj(b) * conj(y))`.
    pub fn div(&self, rhs: &Tensor) -> Result<Tensor> {
        Tensor::apply(Binary(BinOp::Div), &[self, rhs])
    }
}
