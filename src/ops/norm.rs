//! Instance normalisation: each (sample, channel) plane normalised over H, W (biased variance),
//! then an optional per-channel affine map.

use crate::error::{Error, Result};
use crate::gpu::norm::{self as gnorm, NormShape};
use crate::gpu::GpuContext;
use crate::storage::{gpu_of, Storage};
use crate::tensor::{DType, Tensor};
use rayon::prelude::*;

/// GPU branch: forward saving (mean, rstd) per plane; VJP from x, the stats and `w`.
fn gpu_instance_norm(
    ctx: &'static GpuContext,
    x: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f32,
    inputs: &[&Tensor],
) -> Result<Tensor> {
    const OP: &str = "instance_norm";
    let s = x.shape().to_vec();
    let ns = NormShape {
        n: s[0],
        c: s[1],
        m: s[2] * s[3],
    };
    let wb = weight.map(|t| t.gbuf(OP)).transpose()?;
    let bb = bias.map(|t| t.gbuf(OP)).transpose()?;
    let (y, stats) = gnorm::instance_norm(ctx, &ns, &x.gbuf(OP)?, wb.as_ref(), bb.as_ref(), eps)?;
    let (xt, wt) = (x.clone(), weight.cloned());
    let (has_w, has_b) = (weight.is_some(), bias.is_some());
    Ok(Tensor::from_op(
        s.clone(),
        Storage::gpu(y, DType::F32),
        OP,
        inputs,
        move |g| {
            // dx = rstd (gh - mean(gh) - xh mean(gh xh)), gh = dy w[c];
            // dw[c] = sum_{n,p} dy xh, db[c] = sum_{n,p} dy
            let wb = wt.as_ref().map(|t| t.gbuf(OP)).transpose()?;
            let (dx, dw, db) = gnorm::instance_norm_backward(
                ctx,
                &ns,
                &xt.gbuf(OP)?,
                wb.as_ref(),
                &stats,
                &g.gbuf(OP)?,
            )?;
            let wrap = |shape: &[usize], b| {
                Tensor::from_storage(shape.to_vec(), Storage::gpu(b, DType::F32))
            };
            let mut out = vec![Some(wrap(&s, dx))];
            if has_w {
                out.push(Some(wrap(&[ns.c], dw)));
            }
            if has_b {
                out.push(Some(wrap(&[ns.c], db)));
            }
            Ok(out)
        },
    ))
}

impl Tensor {
    /// `y = (x - mean) / sqrt(var + eps) * w[c] + b[c]` per (n, c) plane; x is (N, C, H, W).
    ///
    /// VJP, with `xh = (x - mean) rstd` and `gh = dy w[c]` (means over the plane's m pixels):
    /// `dx = rstd (gh - mean(gh) - xh mean(gh xh))`, `dw[c] = sum_{n,p} dy xh`, `db[c] = sum_{n,p} dy`.
    pub fn instance_norm(
        &self,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f32,
    ) -> Result<Tensor> {
        const OP: &str = "instance_norm";
        self.expect_rank(OP, 4)?;
        let s = self.shape().to_vec();
        let (n, c, m) = (s[0], s[1], s[2] * s[3]);
        for p in [weight, bias].into_iter().flatten() {
            if p.shape() != [c] {
                return Err(Error::ShapeMismatch {
                    op: OP,
                    lhs: s.clone(),
                    rhs: p.shape().to_vec(),
                });
            }
        }
        let mut inputs = vec![self];
        inputs.extend(weight);
        inputs.extend(bias);
        if let Some(ctx) = gpu_of(OP, &inputs)? {
            if s[2] * s[3] == 0 || n * c == 0 {
                return Err(Error::shape(OP, &s, "empty planes"));
            }
            return gpu_instance_norm(ctx, self, weight, bias, eps, &inputs);
        }
        let wv = weight.map(|t| t.to_vec()).transpose()?;
        let bv = bias.map(|t| t.to_vec()).transpose()?;
        let xs = self.read();
        let x = xs.f32(OP)?;
        let mut xhat = vec![0f32; x.len()];
        let mut y = vec![0f32; x.len()];
        let mut rstd = vec![0f32; n * c];
        if m > 0 {
            xhat.par_chunks_mut(m)
                .zip(y.par_chunks_mut(m))
                .zip(x.par_chunks(m))
                .zip(rstd.par_iter_mut())
                .enumerate()
                .for_each(|(plane, (((xh, yv), xv), r))| {
                    let mean = lane_sum(xv.iter().map(|&v| v as f64)) / m as f64;
                    let var = lane_sum(xv.iter().map(|&v| (v as f64 - mean).powi(2))) / m as f64;
                    let rs = 1.0 / (var + eps as f64).sqrt();
                    *r = rs as f32;
                    let (mean, rs) = (mean as f32, rs as f32);
                    let ch = plane % c;
                    let (a, b) = (
                        wv.as_ref().map_or(1.0, |w| w[ch]),
                        bv.as_ref().map_or(0.0, |b| b[ch]),
                    );
                    for ((h, o), &v) in xh.iter_mut().zip(yv.iter_mut()).zip(xv) {
                        *h = (v - mean) * rs;
                        *o = *h * a + b;
                    }
                });
        }
        drop(xs);
        let (has_w, has_b) = (weight.is_some(), bias.is_some());
        let x_tracked = self.is_tracked();
        Ok(Tensor::from_op(
            s.clone(),
            Storage::from_f32(y),
            OP,
            &inputs,
            move |g| {
                let gs = g.read();
                let gy = gs.f32(OP)?;
                // per plane: sum(dy), sum(dy xh)
                let sums: Vec<(f64, f64)> = gy
                    .par_chunks(m.max(1))
                    .zip(xhat.par_chunks(m.max(1)))
                    .map(|(g, h)| {
                        (
                            lane_sum(g.iter().map(|&g| g as f64)),
                            lane_sum(g.iter().zip(h).map(|(&g, &h)| (g * h) as f64)),
                        )
                    })
                    .collect();
                let mut out = Vec::new();
                if x_tracked {
                    let mut gx = vec![0f32; gy.len()];
                    gx.par_chunks_mut(m.max(1))
                        .zip(gy.par_chunks(m.max(1)))
                        .zip(xhat.par_chunks(m.max(1)))
                        .enumerate()
                        .for_each(|(plane, ((gxv, g), h))| {
                            let a = wv.as_ref().map_or(1.0, |w| w[plane % c]) as f64;
                            let (sg, sgh) = sums[plane];
                            let r = rstd[plane] as f64;
                            // dx = r a g - r mean(a g) - h r mean(a g h), in f32 per pixel
                            let (ra, c0, c1) = (
                                (r * a) as f32,
                                (r * a * sg / m as f64) as f32,
                                (r * a * sgh / m as f64) as f32,
                            );
                            for ((o, &g), &h) in gxv.iter_mut().zip(g).zip(h) {
                                *o = ra * g - c0 - h * c1;
                            }
                        });
                    out.push(Some(Tensor::from_shape_vec(&s, gx)?));
                } else {
                    out.push(None);
                }
                let per_channel = |k: usize| -> Vec<f32> {
                    (0..c)
                        .map(|ch| {
                            (0..n)
                                .map(|i| {
                                    let p = sums[i * c + ch];
                                    if k == 0 {
                                        p.1
                                    } else {
                                        p.0
                                    }
                                })
                                .sum::<f64>() as f32
                        })
                        .collect()
                };
                if has_w {
                    out.push(Some(Tensor::from_shape_vec(&[c], per_channel(0))?));
                }
                if has_b {
                    out.push(Some(Tensor::from_shape_vec(&[c], per_channel(1))?));
                }
                Ok(out)
            },
        ))
    }
}

/// Sum in f64 over 8 independent lanes (keeps the adds pipelined; order fixed, so deterministic).
fn lane_sum(it: impl Iterator<Item = f64>) -> f64 {
    let mut lanes = [0f64; 8];
    for (i, v) in it.enumerate() {
        lanes[i & 7] += v;
    }
    lanes.iter().sum()
}
