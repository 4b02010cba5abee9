//! Instance normalisation of (n, c) planes of `m` pixels on the host: the forward saving
//! `(mean, rstd)` per plane, and its VJP.

use super::lane_sum;
use crate::backend::NormShape;
use rayon::prelude::*;

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
            let mean = lane_sum(xv.iter().map(|&v| v as f64)) / m as f64;
            let var = lane_sum(xv.iter().map(|&v| (v as f64 - mean).powi(2))) / m as f64;
            let (mean, rs) = (mean as f32, (1.0 / (var + eps as f64).sqrt()) as f32);
            st[0] = mean;
            st[1] = rs;
            let ch = plane % c;
            let (a, b) = (weight.map_or(1.0, |w| w[ch]), bias.map_or(0.0, |b| b[ch]));
            for (o, &v) in yv.iter_mut().zip(xv) {
                *o = (v - mean) * rs * a + b;
            }
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
    let xhat = |plane: usize, v: f32| (v - stats[2 * plane]) * stats[2 * plane + 1];
    // per plane: sum(dy), sum(dy xh)
    let sums: Vec<(f64, f64)> = gy
        .par_chunks(m.max(1))
        .zip(x.par_chunks(m.max(1)))
        .enumerate()
        .map(|(plane, (g, xv))| {
            (
                lane_sum(g.iter().map(|&g| g as f64)),
                lane_sum(g.iter().zip(xv).map(|(&g, &v)| (g * xhat(plane, v)) as f64)),
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
                for ((o, &g), &v) in gxv.iter_mut().zip(g).zip(xv) {
                    *o = ra * g - c0 - xhat(plane, v) * c1;
                }
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
