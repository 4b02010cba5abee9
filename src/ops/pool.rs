//! 2x2 max pooling, stride 2 (odd trailing rows/columns dropped, like PyTorch), argmax saved.

use crate::error::Result;
use crate::gpu::pool as gpool;
use crate::storage::{gpu_of, Storage};
use crate::tensor::{DType, Tensor};
use rayon::prelude::*;

impl Tensor {
    /// `y[n,c,i,j] = max of x[n,c,2i..2i+2, 2j..2j+2]`.
    /// VJP: `dx` is `dy` routed to each window's argmax (first maximum on ties), zero elsewhere.
    pub fn max_pool2d(&self) -> Result<Tensor> {
        const OP: &str = "max_pool2d";
        self.expect_rank(OP, 4)?;
        let s = self.shape().to_vec();
        let (h, w) = (s[2], s[3]);
        let (oh, ow) = (h / 2, w / 2);
        let planes = s[0] * s[1];
        if let Some(ctx) = gpu_of(OP, &[self])? {
            let (y, arg) = gpool::max_pool2d(ctx, &self.gbuf(OP)?, planes, h, w)?;
            return Ok(Tensor::from_op(
                vec![s[0], s[1], oh, ow],
                Storage::gpu(y, DType::F32),
                OP,
                &[self],
                move |g| {
                    // dx: dy routed to each window's saved argmax
                    let gx = gpool::max_pool2d_backward(ctx, &g.gbuf(OP)?, &arg, planes, h, w)?;
                    Ok(vec![Some(Tensor::from_storage(
                        s.clone(),
                        Storage::gpu(gx, DType::F32),
                    ))])
                },
            ));
        }
        let mut y = vec![0f32; planes * oh * ow];
        let mut arg = vec![0u32; planes * oh * ow];
        if oh * ow > 0 {
            let xs = self.read();
            let x = xs.f32(OP)?;
            y.par_chunks_mut(oh * ow)
                .zip(arg.par_chunks_mut(oh * ow))
                .zip(x.par_chunks(h * w))
                .for_each(|((yv, av), xv)| {
                    for i in 0..oh {
                        for j in 0..ow {
                            let mut best = (2 * i) * w + 2 * j;
                            for idx in [best + 1, best + w, best + w + 1] {
                                // strict '>' keeps the first maximum; NaN propagates like PyTorch
                                if xv[idx] > xv[best] || xv[idx].is_nan() && !xv[best].is_nan() {
                                    best = idx;
                                }
                            }
                            yv[i * ow + j] = xv[best];
                            av[i * ow + j] = best as u32;
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
                if oh * ow > 0 {
                    let gs = g.read();
                    gx.par_chunks_mut(h * w)
                        .zip(gs.f32(OP)?.par_chunks(oh * ow))
                        .zip(arg.par_chunks(oh * ow))
                        .for_each(|((gxv, gv), av)| {
                            for (&gi, &a) in gv.iter().zip(av) {
                                gxv[a as usize] += gi;
                            }
                        });
                }
                Ok(vec![Some(Tensor::from_shape_vec(&s, gx)?)])
            },
        ))
    }
}
