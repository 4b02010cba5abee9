//! 2x2 max pooling (stride 2, floor) and bilinear x2 upsampling (`align_corners = false`) of
//! planes on the host, with their VJPs.

use rayon::prelude::*;

/// The first maximum of four values in row-major window order (strict `>`; NaN propagates like
/// PyTorch): written as selects so the row loops vectorise.
#[inline(always)]
fn max4(a: f32, b: f32, c: f32, d: f32) -> f32 {
    let pick = |best: f32, v: f32| {
        if v > best || v.is_nan() && !best.is_nan() {
            v
        } else {
            best
        }
    };
    pick(pick(pick(a, b), c), d)
}

/// `y[q, i, j] = max of x[q, 2i..2i+2, 2j..2j+2]` over `(h, w)` planes.
pub fn max_pool2d(x: &[f32], h: usize, w: usize) -> Vec<f32> {
    let (oh, ow) = (h / 2, w / 2);
    let planes = x.len() / (h * w).max(1);
    let mut y = vec![0f32; planes * oh * ow];
    if oh * ow == 0 {
        return y;
    }
    y.par_chunks_mut(ow).enumerate().for_each(|(t, yr)| {
        let (q, i) = (t / oh, t % oh);
        let r0 = &x[q * h * w + 2 * i * w..][..2 * ow];
        let r1 = &x[q * h * w + (2 * i + 1) * w..][..2 * ow];
        super::wide(
            #[inline(always)]
            || {
                for ((o, a), b) in yr
                    .iter_mut()
                    .zip(r0.chunks_exact(2))
                    .zip(r1.chunks_exact(2))
                {
                    *o = max4(a[0], a[1], b[0], b[1]);
                }
            },
        )
    });
    y
}

/// VJP: `dx` is `dy` routed to each window's first maximum (recomputed from x), zero elsewhere;
/// each window's four values are written at once (no scatter into a zeroed buffer).
pub fn max_pool2d_backward(x: &[f32], gy: &[f32], h: usize, w: usize) -> Vec<f32> {
    let (oh, ow) = (h / 2, w / 2);
    let mut gx = vec![0f32; x.len()];
    if oh * ow == 0 {
        return gx;
    }
    gx.par_chunks_mut(h * w)
        .zip(gy.par_chunks(oh * ow))
        .zip(x.par_chunks(h * w))
        .for_each(|((gxv, gv), xv)| {
            for i in 0..oh {
                let (top, bottom) = gxv[2 * i * w..(2 * i + 2) * w].split_at_mut(w);
                let (r0, r1) = (&xv[2 * i * w..][..w], &xv[(2 * i + 1) * w..][..w]);
                let g = &gv[i * ow..][..ow];
                super::wide(
                    #[inline(always)]
                    || {
                        let windows = top
                            .chunks_exact_mut(2)
                            .zip(bottom.chunks_exact_mut(2))
                            .zip(r0.chunks_exact(2).zip(r1.chunks_exact(2)))
                            .zip(g);
                        for (((t, b), (x0, x1)), &gij) in windows {
                            let m = max4(x0[0], x0[1], x1[0], x1[1]);
                            // the first position holding the maximum (NaN: the first NaN),
                            // as masks (& and |, no branches) so the loop vectorises
                            let hit = |v: f32| (v == m) | (v.is_nan() & m.is_nan());
                            let ka = hit(x0[0]);
                            let kb = !ka & hit(x0[1]);
                            let kc = !ka & !kb & hit(x1[0]);
                            let kd = !ka & !kb & !kc;
                            t[0] = if ka { gij } else { 0.0 };
                            t[1] = if kb { gij } else { 0.0 };
                            b[0] = if kc { gij } else { 0.0 };
                            b[1] = if kd { gij } else { 0.0 };
                        }
                    },
                );
            }
        });
    gx
}

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

/// Bilinear x2 upsampling of `(h, w)` planes to `(2h, 2w)`, separably: per output row the two
/// source rows are blended once (`a0 r0 + a1 r1`), then the blend is interpolated along the row.
pub fn upsample_bilinear2d(x: &[f32], h: usize, w: usize) -> Vec<f32> {
    let (oh, ow) = (2 * h, 2 * w);
    let planes = x.len() / (h * w).max(1);
    let mut y = vec![0f32; planes * oh * ow];
    if h * w == 0 {
        return y;
    }
    let (ty, tx) = (taps(h), taps(w));
    y.par_chunks_mut(ow).enumerate().for_each_init(
        || vec![0f32; w],
        |blend, (t, yr)| {
            let (q, i) = (t / oh, t % oh);
            let (r0, r1, a0, a1) = ty[i];
            let xv = &x[q * h * w..][..h * w];
            let (row0, row1) = (&xv[r0 * w..][..w], &xv[r1 * w..][..w]);
            super::wide(
                #[inline(always)]
                || {
                    for ((b, &u), &v) in blend.iter_mut().zip(row0).zip(row1) {
                        *b = a0 * u + a1 * v;
                    }
                },
            );
            for (o, &(c0, c1, b0, b1)) in yr.iter_mut().zip(&tx) {
                *o = b0 * blend[c0] + b1 * blend[c1];
            }
        },
    );
    y
}

/// VJP (the transpose, separably): each `dy` row is folded onto a source-width row by the
/// column weights, which then adds to its two source rows by the row weights.
pub fn upsample_bilinear2d_backward(gy: &[f32], h: usize, w: usize) -> Vec<f32> {
    let (oh, ow) = (2 * h, 2 * w);
    let planes = gy.len() / (oh * ow).max(1);
    let mut gx = vec![0f32; planes * h * w];
    if h * w == 0 {
        return gx;
    }
    let (ty, tx) = (taps(h), taps(w));
    gx.par_chunks_mut(h * w)
        .zip(gy.par_chunks(oh * ow))
        .for_each(|(gxv, gv)| {
            let mut fold = vec![0f32; w];
            for (i, &(r0, r1, a0, a1)) in ty.iter().enumerate() {
                fold.fill(0.0);
                for (&g, &(c0, c1, b0, b1)) in gv[i * ow..][..ow].iter().zip(&tx) {
                    fold[c0] += b0 * g;
                    fold[c1] += b1 * g;
                }
                super::wide(
                    #[inline(always)]
                    || {
                        for (d, &f) in gxv[r0 * w..][..w].iter_mut().zip(&fold) {
                            *d += a0 * f;
                        }
                        for (d, &f) in gxv[r1 * w..][..w].iter_mut().zip(&fold) {
                            *d += a1 * f;
                        }
                    },
                );
            }
        });
    gx
}
