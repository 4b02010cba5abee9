//! Instance normalisation of (n, c) planes of `m` pixels on the host: the forward saving
//! `(mean, rstd)` per plane, and its VJP.

use super::wide;
use crate::backend::NormShape;
use rayon::prelude::*;

/// `sum_i f(a[i], b[i])` in f64 over 8 independent lanes, element i in lane i mod 8 (a fixed
/// order: deterministic), written over chunks of 8 so that it vectorises.
#[inline(always)]
fn lanes2(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f64) -> f64 {
    let mut l = [0f64; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            l[k] += f(x[k], y[k]);
        }
    }
    for (k, (&x, &y)) in ra.iter().zip(rb).enumerate() {
        l[k] += f(x, y);
    }
    l.iter().sum()
}

/// `y = (x - mean) rstd w[c] + b[c]` per plane (biased variance, statistics in f64). Returns
/// `(y, stats)` with `stats = [mean, rstd]` per plane, interleaved.
pub fn instance_norm(
    x: &[f32],
    s: &NormShape,
    weight: Option<&[f32]>,
    bias: Option<&[f32]>,
    eps: f32,
) -> (Vec<f32>, Vec<f32>) {
    let (c, m) = (s.c, s.m);
    let planes = s.planes();
    let mut y = vec![0f32; x.len()];
    let mut stats = vec![0f32; 2 * planes];
    if m == 0 {
        return (y, stats);
    }
    y.par_chunks_mut(m)
        .zip(x.par_chunks(m))
        .zip(stats.par_chunks_mut(2))
        .enumerate()
        .for_each(|(plane, ((yv, xv), st))| {
            let mean = wide(|| lanes2(xv, xv, |v, _| v as f64)) / m as f64;
            let var = wide(|| lanes2(xv, xv, |v, _| (v as f64 - mean).powi(2))) / m as f64;
            let (mean, rs) = (mean as f32, (1.0 / (var + eps as f64).sqrt()) as f32);
            st[0] = mean;
            st[1] = rs;
            let ch = plane % c;
            let (a, b) = (weight.map_or(1.0, |w| w[ch]), bias.map_or(0.0, |b| b[ch]));
            wide(
                #[inline(always)]
                || {
                    for (o, &v) in yv.iter_mut().zip(xv) {
                        *o = (v - mean) * rs * a + b;
                    }
                },
            );
        });
    (y, stats)
}

/// The VJP with `xh = (x - mean) rstd` and `gh = dy w[c]` (means over a plane's m pixels):
/// `dx = rstd (gh - mean(gh) - xh mean(gh xh))` (when `need_dx`), `dw[c] = sum_{n,p} dy xh`,
/// `db[c] = sum_{n,p} dy`.
pub fn instance_norm_backward(
    x: &[f32],
    stats: &[f32],
    gy: &[f32],
    s: &NormShape,
    weight: Option<&[f32]>,
    need_dx: bool,
) -> (Option<Vec<f32>>, Vec<f32>, Vec<f32>) {
    let (c, m) = (s.c, s.m);
    // per plane: sum(dy), sum(dy xh)
    let sums: Vec<(f64, f64)> = gy
        .par_chunks(m.max(1))
        .zip(x.par_chunks(m.max(1)))
        .enumerate()
        .map(|(plane, (g, xv))| {
            let (mean, rs) = (stats[2 * plane], stats[2 * plane + 1]);
            (
                wide(|| lanes2(g, g, |g, _| g as f64)),
                wide(|| lanes2(g, xv, |g, v| (g * ((v - mean) * rs)) as f64)),
            )
        })
        .collect();
    let dx = need_dx.then(|| {
        let mut gx = vec![0f32; gy.len()];
        gx.par_chunks_mut(m.max(1))
            .zip(gy.par_chunks(m.max(1)))
            .zip(x.par_chunks(m.max(1)))
            .enumerate()
            .for_each(|(plane, ((gxv, g), xv))| {
                let a = weight.map_or(1.0, |w| w[plane % c]) as f64;
                let (sg, sgh) = sums[plane];
                let r = stats[2 * plane + 1] as f64;
                // dx = r a g - r mean(a g) - h r mean(a g h), in f32 per pixel
                let (ra, c0, c1) = (
                    (r * a) as f32,
                    (r * a * sg / m as f64) as f32,
                    (r * a * sgh / m as f64) as f32,
                );
                let (mean, rs) = (stats[2 * plane], stats[2 * plane + 1]);
                wide(
                    #[inline(always)]
                    || {
                        for ((o, &g), &v) in gxv.iter_mut().zip(g).zip(xv) {
                            *o = ra * g - c0 - ((v - mean) * rs) * c1;
                        }
                    },
                );
            });
        gx
    });
    let per_channel = |pick: fn((f64, f64)) -> f64| -> Vec<f32> {
        (0..c)
            .map(|ch| (0..s.n).map(|i| pick(sums[i * c + ch])).sum::<f64>() as f32)
            .collect()
    };
    (dx, per_channel(|p| p.1), per_channel(|p| p.0))
}
