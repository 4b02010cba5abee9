//! Zero padding and cropping of the last two axes (real and complex); each is the other's adjoint.

use crate::error::{Error, Result};
use crate::gpu::pad::{self as gpad, Planes};
use crate::storage::{gpu_of, Storage};
use crate::tensor::{DType, Tensor, C32};

/// Copies the window `[r0, r0+rows) x [c0, c0+cols)` of every (h, w) slice of `src` into the
/// window at `(dr0, dc0)` of every (dh, dw) slice of `dst`.
#[allow(clippy::too_many_arguments)]
fn copy_window<T: Copy>(
    src: &[T],
    (h, w): (usize, usize),
    (r0, c0): (usize, usize),
    dst: &mut [T],
    (dh, dw): (usize, usize),
    (dr0, dc0): (usize, usize),
    (rows, cols): (usize, usize),
) {
    if h * w == 0 || dh * dw == 0 {
        return;
    }
    for (s, d) in src.chunks(h * w).zip(dst.chunks_mut(dh * dw)) {
        for r in 0..rows {
            let so = (r0 + r) * w + c0;
            let do_ = (dr0 + r) * dw + dc0;
            d[do_..do_ + cols].copy_from_slice(&s[so..so + cols]);
        }
    }
}

impl Tensor {
    /// Window copy into a zero tensor of the last-two-axes size `out_hw`.
    fn window(
        &self,
        op: &'static str,
        src_at: (usize, usize),
        out_hw: (usize, usize),
        dst_at: (usize, usize),
        size: (usize, usize),
    ) -> Result<Storage> {
        let hw = self.hw(op)?;
        let batch = self.numel() / (hw.0 * hw.1).max(1);
        let n = batch * out_hw.0 * out_hw.1;
        if let Some(ctx) = gpu_of(op, &[self])? {
            let planes = Planes {
                planes: batch,
                h: hw.0,
                w: hw.1,
                complex: self.dtype() == DType::C32,
            };
            let x = self.gbuf(op)?;
            // pad: the whole input lands at dst_at; crop: the window at src_at fills the output
            let buf = if src_at == (0, 0) && size == hw {
                gpad::pad2d(
                    ctx,
                    &x,
                    planes,
                    dst_at.0,
                    out_hw.0 - dst_at.0 - size.0,
                    dst_at.1,
                    out_hw.1 - dst_at.1 - size.1,
                )?
            } else {
                gpad::crop2d(ctx, &x, planes, src_at.0, size.0, src_at.1, size.1)?
            };
            return Ok(Storage::gpu(buf, self.dtype()));
        }
        Ok(match self.dtype() {
            DType::F32 => {
                let mut out = vec![0f32; n];
                copy_window(
                    self.read().f32(op)?,
                    hw,
                    src_at,
                    &mut out,
                    out_hw,
                    dst_at,
                    size,
                );
                Storage::from_f32(out)
            }
            DType::C32 => {
                let mut out = vec![C32::new(0.0, 0.0); n];
                copy_window(
                    self.read().c32(op)?,
                    hw,
                    src_at,
                    &mut out,
                    out_hw,
                    dst_at,
                    size,
                );
                Storage::from_c32(out)
            }
        })
    }

    /// Zero padding of the last two axes by `(top, bottom, left, right)`.
    /// VJP: `dx = crop(dy)` (the padded region's gradient is dropped).
    pub fn pad2d(&self, top: usize, bottom: usize, left: usize, right: usize) -> Result<Tensor> {
        let (h, w) = self.hw("pad2d")?;
        let out_hw = (h + top + bottom, w + left + right);
        let storage = self.window("pad2d", (0, 0), out_hw, (top, left), (h, w))?;
        let mut shape = self.shape().to_vec();
        let r = shape.len();
        shape[r - 2] = out_hw.0;
        shape[r - 1] = out_hw.1;
        Ok(Tensor::from_op(
            shape,
            storage,
            "pad2d",
            &[self],
            move |g| Ok(vec![Some(g.crop2d(top, h, left, w)?)]),
        ))
    }

    /// Keeps rows `[row0, row0+rows)` and columns `[col0, col0+cols)` of the last two axes.
    /// VJP: `dx = zero-pad(dy)` back to the input size.
    pub fn crop2d(&self, row0: usize, rows: usize, col0: usize, cols: usize) -> Result<Tensor> {
        let (h, w) = self.hw("crop2d")?;
        if row0 + rows > h || col0 + cols > w {
            return Err(Error::shape(
                "crop2d",
                self.shape(),
                format!(
                    "window rows {row0}..{} cols {col0}..{} outside",
                    row0 + rows,
                    col0 + cols
                ),
            ));
        }
        let storage = self.window("crop2d", (row0, col0), (rows, cols), (0, 0), (rows, cols))?;
        let mut shape = self.shape().to_vec();
        let r = shape.len();
        shape[r - 2] = rows;
        shape[r - 1] = cols;
        Ok(Tensor::from_op(
            shape,
            storage,
            "crop2d",
            &[self],
            move |g| {
                Ok(vec![Some(g.pad2d(
                    row0,
                    h - row0 - rows,
                    col0,
                    w - col0 - cols,
                )?)])
            },
        ))
    }
}
