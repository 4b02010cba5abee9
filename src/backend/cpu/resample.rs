//! 2x2 max pooling (stride 2, floor) and bilinear x2 upsampling (`align_corners = false`) of
//! planes on the host, with their VJPs.

use rayon::prelude::*;

/// In-plane index of the first maximum of the window at output `(i, j)` (row-major order;
/// NaN propagates like PyTorch).
#[inline(always)]
fn window_argmax(xv: &[f32], w: usize, i: usize, j: usize) -> usize {
    let mut best = (2 * i) * w + 2 * j;
    for idx in [best + 1, best + w, best + w + 1] {
        // strict '>' keeps the first maximum
        if xv[idx] > xv[best] || xv[idx].is_nan() && !xv[best].is_nan() {
            best = idx;
        }
    }
    best
}

/// `y[q, i, j] = max of x[q, 2i..2i+2, 2j..2j+2]` over `(h, w)` planes.
pub fn max_pool2d(x: &[f32], h: usize, w: usize) -> Vec<f32> {
    let (oh, ow) = (h / 2, w / 2);
    let planes = x.len() / (h * w).max(1);
    let mut y = vec![0f32; planes * oh * ow];
    if oh * ow == 0 {
        return y;
    }
    y.par_chunks_mut(oh * ow)
        .zip(x.par_chunks(h * w))
        .for_each(|(yv, xv)| {
            for i in 0..oh {
                for j in 0..ow {
                    yv[i * ow + j] = xv[window_argmax(xv, w, i, j)];
                }
            }
        });
    y
}

/// VJP: `dx` is `dy` routed to each window's argmax (recomputed from x), zero elsewhere.
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
                for j in 0..ow {
                    gxv[window_argmax(xv, w, i, j)] += gv[i * ow + j];
                }
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

/// Bilinear x2 upsampling of `(h, w)` planes to `(2h, 2w)`.
pub fn upsample_bilinear2d(x: &[f32], h: usize, w: usize) -> Vec<f32> {
    let (oh, ow) = (2 * h, 2 * w);
    let planes = x.len() / (h * w).max(1);
    let mut y = vec![0f32; planes * oh * ow];
    if h * w == 0 {
        return y;
    }
    let (ty, tx) = (taps(h), taps(w));
    y.par_chunks_mut(oh * ow)
        .zip(x.par_chunks(h * w))
        .for_each(|(yv, xv)| {
            for (i, &(r0, r1, a0, a1)) in ty.iter().enumerate() {
                let (row0, row1) = (&xv[r0 * w..(r0 + 1) * w], &xv[r1 * w..(r1 + 1) * w]);
                for (j, &(c0, c1, b0, b1)) in tx.iter().enumerate() {
                    yv[i * ow + j] =
                        a0 * (b0 * row0[c0] + b1 * row0[c1]) + a1 * (b0 * row1[c0] + b1 * row1[c1]);
                }
            }
        });
    y
}

/// VJP (the transpose): each `dy` pixel adds its four weights' share to its source pixels.
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
    gx
}
