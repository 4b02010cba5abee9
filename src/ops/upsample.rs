//! Bilinear upsampling by 2 with `align_corners = false` (PyTorch's default), NCHW.

use crate::error::Result;
use crate::gpu::upsample as gup;
use crate::storage::{gpu_of, Storage};
use crate::tensor::{DType, Tensor};
use rayon::prelude::*;

/// For each output index along one axis: the two source indices and their weights.
/// PyTorch: `src = max((o + 0.5) / 2 - 0.5, 0)`, `i0 = floor(src)`, `i1 = min(i0 + 1, n - 1)`.
fn taps(n: usize) -> Vec<(usize, usize, f32, f32)> {
    (0..2 * n)
        .map(|o| {
            let src = ((o as f32 + 0.5) * 0.5 - 0.5).max(0.0);
            let i0 = (src.floor() as usize).min(n - 1);
            let i1 = (i0 + 1).min(n - 1);
            let l1 = src - i0 as f32;
            (i0, i1, 1.0 - l1, l1)
        })
        .collect()
}

impl Tensor {
    /// `y = bilinear x2 upsampling of x` (N, C, H, W) -> (N, C, 2H, 2W).
    /// VJP: the transpose: each `dy` pixel adds its four weights' share to its source pixels.
    pub fn upsample_bilinear2d(&self) -> Result<Tensor> {
        const OP: &str = "upsample_bilinear2d";
        self.expect_rank(OP, 4)?;
        let s = self.shape().to_vec();
        let (h, w) = (s[2], s[3]);
        let (oh, ow) = (2 * h, 2 * w);
        let planes = s[0] * s[1];
        if let Some(ctx) = gpu_of(OP, &[self])? {
            let y = gup::upsample_bilinear2d(ctx, &self.gbuf(OP)?, planes, h, w)?;
            return Ok(Tensor::from_op(
                vec![s[0], s[1], oh, ow],
                Storage::gpu(y, DType::F32),
                OP,
                &[self],
                move |g| {
                    // dx = U^T dy
                    let gx = gup::upsample_bilinear2d_backward(ctx, &g.gbuf(OP)?, planes, h, w)?;
                    Ok(vec![Some(Tensor::from_storage(
                        s.clone(),
                        Storage::gpu(gx, DType::F32),
                    ))])
                },
            ));
        }
        let mut y = vec![0f32; planes * oh * ow];
        let (ty, tx) = (taps(h), taps(w));
        if h * w > 0 {
            let xs = self.read();
            y.par_chunks_mut(oh * ow)
                .zip(xs.f32(OP)?.par_chunks(h * w))
                .for_each(|(yv, xv)| {
                    for (i, &(r0, r1, a0, a1)) in ty.iter().enumerate() {
                        let (row0, row1) = (&xv[r0 * w..(r0 + 1) * w], &xv[r1 * w..(r1 + 1) * w]);
                        for (j, &(c0, c1, b0, b1)) in tx.iter().enumerate() {
                            yv[i * ow + j] = a0 * (b0 * row0[c0] + b1 * row0[c1])
                                + a1 * (b0 * row1[c0] + b1 * row1[c1]);
                        }
                    }
                });
        }
        Ok(Tensor::from_op(
            vec![s[0], s[1], oh, ow],
            Storage::from_f32(y),
            OP,
            &[self],
            move |g| {
                let mut gx = vec![0f32; planes * h * w];
                if h * w > 0 {
                    let gs = g.read();
                    gx.par_chunks_mut(h * w)
                        .zip(gs.f32(OP)?.par_chunks(oh * ow))
                        .for_each(|(gxv, gv)| {
                            for (i, &(r0, r1, a0, a1)) in ty.iter().enumerate() {
                                for (j, &(c0, c1, b0, b1)) in tx.iter().enumerate() {
                                    let gij = gv[i * ow + j];
                                    gxv[r0 * w + c0] += a0 * b0 * gij;
                                    gxv[r0 * w + c1] += a0 * b1 * gij;
                                    gxv[r1 * w + c0] += a1 * b0 * gij;
                                    gxv[r1 * w + c1] += a1 * b1 * gij;
                                }
                            }
                        });
                }
                Ok(vec![Some(Tensor::from_shape_vec(&s, gx)?)])
            },
        ))
    }
}
