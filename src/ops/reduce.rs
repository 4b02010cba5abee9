//! Reductions: sum and mean over everything or over given axes (real and complex).

use crate::error::{Error, Result};
use crate::gpu::reduce as greduce;
use crate::storage::{gpu_of, Storage};
use crate::tensor::{DType, Tensor, C32};
use rayon::prelude::*;

/// Deterministic parallel sum in f64: fixed chunks, partial sums combined in order.
pub(crate) fn sum_f64(x: &[f32]) -> f64 {
    const CHUNK: usize = 1 << 14;
    let partial: Vec<f64> = x
        .par_chunks(CHUNK)
        .map(|c| c.iter().map(|&v| v as f64).sum())
        .collect();
    partial.iter().sum()
}

fn sum_c64(x: &[C32]) -> C32 {
    let (mut re, mut im) = (0f64, 0f64);
    for z in x {
        re += z.re as f64;
        im += z.im as f64;
    }
    C32::new(re as f32, im as f32)
}

impl Tensor {
    /// Sum of all elements, shape `[]`. VJP: `dx = dy` broadcast to x's shape.
    pub fn sum_all(&self) -> Result<Tensor> {
        let shape = self.shape().to_vec();
        let storage = match (gpu_of("sum_all", &[self])?, self.dtype()) {
            (Some(ctx), DType::F32) => Storage::gpu(
                greduce::sum_all(ctx, &self.gbuf("sum_all")?, 1.0)?,
                DType::F32,
            ),
            // complex: the general reduction kernel, to shape []
            (Some(_), DType::C32) => {
                return self.reshape(&[self.numel()])?.sum_to(&[1])?.reshape(&[]);
            }
            (None, DType::F32) => {
                Storage::from_f32(vec![sum_f64(self.read().f32("sum_all")?) as f32])
            }
            (None, DType::C32) => Storage::from_c32(vec![sum_c64(self.read().c32("sum_all")?)]),
        };
        Ok(Tensor::from_op(
            vec![],
            storage,
            "sum_all",
            &[self],
            move |g| Ok(vec![Some(g.broadcast_to(&shape)?)]),
        ))
    }

    /// Mean of all elements, shape `[]`. VJP: `dx = dy / n`.
    pub fn mean_all(&self) -> Result<Tensor> {
        let n = self.numel().max(1);
        self.sum_all()?.scale(1.0 / n as f32)
    }

    /// Sum over `axes` (negative counts from the end); `keepdim` keeps them as size 1.
    /// VJP: `dx = dy` reshaped to keep the axes, broadcast to x's shape.
    pub fn sum_axes(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        let rank = self.rank() as isize;
        let mut reduced = vec![false; self.rank()];
        for &a in axes {
            let a2 = if a < 0 { a + rank } else { a };
            if !(0..rank).contains(&a2) {
                return Err(Error::arg(
                    "sum_axes",
                    format!("axis {a} out of range for rank {rank}"),
                ));
            }
            reduced[a2 as usize] = true;
        }
        let dims = self.shape().iter().zip(&reduced);
        let keep: Vec<usize> = dims.clone().map(|(&d, &r)| if r { 1 } else { d }).collect();
        let out_shape: Vec<usize> = if keepdim {
            keep.clone()
        } else {
            dims.filter(|(_, &r)| !r).map(|(&d, _)| d).collect()
        };
        self.sum_to(&keep)?.reshape(&out_shape)
    }

    /// Mean over `axes`. VJP: `dx = dy / count` broadcast back.
    pub fn mean_axes(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        let s = self.sum_axes(axes, keepdim)?;
        let count = self.numel() / s.numel().max(1);
        s.scale(1.0 / count.max(1) as f32)
    }
}
