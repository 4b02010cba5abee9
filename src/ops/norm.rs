//! Instance normalisation: each (sample, channel) plane normalised over H, W (biased variance),
//! then an optional per-channel affine map.

use crate::error::{Error, Result};
use crate::storage::Storage;
use crate::tensor::Tensor;
use rayon::prelude::*;

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
                    let mean = xv.iter().map(|&v| v as f64).sum::<f64>() / m as f64;
                    let var = xv.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / m as f64;
                    let rs = 1.0 / (var + eps as f64).sqrt();
                    *r = rs as f32;
                    let ch = plane % c;
                    let (a, b) = (
                        wv.as_ref().map_or(1.0, |w| w[ch]),
                        bv.as_ref().map_or(0.0, |b| b[ch]),
                    );
                    for ((h, o), &v) in xh.iter_mut().zip(yv.iter_mut()).zip(xv) {
                        *h = ((v as f64 - mean) * rs) as f32;
                        *o = *h * a + b;
                    }
                });
        }
        drop(xs);
        let mut inputs = vec![self];
        inputs.extend(weight);
        inputs.extend(bias);
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
                        g.iter().zip(h).fold((0.0, 0.0), |(a, b), (&g, &h)| {
                            (a + g as f64, b + (g * h) as f64)
                        })
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
                            let (mg, mgh) = (a * sg / m as f64, a * sgh / m as f64);
                            let r = rstd[plane] as f64;
                            for ((o, &g), &h) in gxv.iter_mut().zip(g).zip(h) {
                                *o = (r * (a * g as f64 - mg - h as f64 * mgh)) as f32;
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
