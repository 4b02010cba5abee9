//! Bilinear sampling through an affine map, zero outside, on the host: the forward, its VJP in
//! x (a scatter, one plane per task) and the per-output-pixel gradient in the sample position
//! (summed over planes) from which the affine parameters' gradient is built.
//!
//! Output pixel (i, j) samples x at `s_c = a_cc j + a_cr i + b_c`, `s_r = a_rc j + a_rr i + b_r`
//! (pixel (r, c) of x sits at integer coordinates), from the taps `floor(s) + {0, 1}` with
//! weights `(1 - f, f)`; taps outside the image are 0. Every kernel computes the position and
//! the cell with [`source`] and [`Cell::of`], so their floor decisions agree. Any affine map
//! works here (a singular one too): nothing is inverted.

use crate::backend::SampleShape;
use rayon::prelude::*;

/// `(s_r, s_c)` of output pixel (i, j) under `a = [a_cc, a_cr, b_c, a_rc, a_rr, b_r]`, in the
/// same order of operations as the WGSL kernel.
#[inline(always)]
pub fn source(a: &[f32; 6], i: usize, j: usize) -> (f32, f32) {
    let (fi, fj) = (i as f32, j as f32);
    (a[3] * fj + a[4] * fi + a[5], a[0] * fj + a[1] * fi + a[2])
}

/// The cell of a sample: the top-left tap `(r0, c0)` and the fractions `(fr, fc)`. The tap
/// indices are clamped to `[-2, h]` x `[-2, w]` before the conversion (both taps of a clamped
/// index lie outside the image, so nothing changes; huge or non-finite positions cannot
/// overflow).
#[derive(Clone, Copy, Debug)]
pub struct Cell {
    pub r0: i64,
    pub c0: i64,
    pub fr: f32,
    pub fc: f32,
}

impl Cell {
    #[inline(always)]
    pub fn of(s: (f32, f32), h: usize, w: usize) -> Cell {
        let (fl_r, fl_c) = (s.0.floor(), s.1.floor());
        Cell {
            r0: fl_r.clamp(-2.0, h as f32) as i64,
            c0: fl_c.clamp(-2.0, w as f32) as i64,
            fr: s.0 - fl_r,
            fc: s.1 - fl_c,
        }
    }

    /// The four taps `[x00, x01, x10, x11]` of one plane (0 outside).
    #[inline(always)]
    fn taps(&self, xv: &[f32], h: usize, w: usize) -> [f32; 4] {
        let at = |r: i64, c: i64| {
            if r >= 0 && c >= 0 && (r as usize) < h && (c as usize) < w {
                xv[r as usize * w + c as usize]
            } else {
                0.0
            }
        };
        let (r, c) = (self.r0, self.c0);
        [at(r, c), at(r, c + 1), at(r + 1, c), at(r + 1, c + 1)]
    }
}

fn affine_of(a: &[f32]) -> [f32; 6] {
    let mut m = [0f32; 6];
    for (d, s) in m.iter_mut().zip(a) {
        *d = *s;
    }
    m
}

/// `y[q, i, j] = bilinear(x[q], s(i, j))`, zero outside; x (planes, h, w), y (planes, oh, ow).
pub fn affine_sample(s: &SampleShape, x: &[f32], a: &[f32]) -> Vec<f32> {
    let a = affine_of(a);
    let (h, w, oh, ow) = (s.h, s.w, s.oh, s.ow);
    let mut y = vec![0f32; s.output_len()];
    if ow == 0 || h * w == 0 {
        return y;
    }
    y.par_chunks_mut(ow).enumerate().for_each(|(t, yr)| {
        let (q, i) = (t / oh, t % oh);
        let xv = &x[q * h * w..][..h * w];
        for (j, o) in yr.iter_mut().enumerate() {
            let cell = Cell::of(source(&a, i, j), h, w);
            let [x00, x01, x10, x11] = cell.taps(xv, h, w);
            let (fr, fc) = (cell.fr, cell.fc);
            *o = (1.0 - fr) * ((1.0 - fc) * x00 + fc * x01) + fr * ((1.0 - fc) * x10 + fc * x11);
        }
    });
    y
}

/// VJP in x: `dx = S^T gy`, each output's gradient added to its four taps by their weights
/// (a scatter inside one plane; planes in parallel, each in a fixed order: deterministic).
pub fn affine_sample_grad_x(s: &SampleShape, gy: &[f32], a: &[f32]) -> Vec<f32> {
    let a = affine_of(a);
    let (h, w, oh, ow) = (s.h, s.w, s.oh, s.ow);
    let mut dx = vec![0f32; s.input_len()];
    if h * w == 0 || oh * ow == 0 {
        return dx;
    }
    // the cells are the same for every plane
    let cells: Vec<Cell> = (0..oh * ow)
        .into_par_iter()
        .map(|o| Cell::of(source(&a, o / ow, o % ow), h, w))
        .collect();
    dx.par_chunks_mut(h * w)
        .zip(gy.par_chunks(oh * ow))
        .for_each(|(d, g)| {
            let mut add = |r: i64, c: i64, v: f32| {
                if r >= 0 && c >= 0 && (r as usize) < h && (c as usize) < w {
                    d[r as usize * w + c as usize] += v;
                }
            };
            for (cell, &gv) in cells.iter().zip(g) {
                let (fr, fc, r, c) = (cell.fr, cell.fc, cell.r0, cell.c0);
                add(r, c, (1.0 - fr) * (1.0 - fc) * gv);
                add(r, c + 1, (1.0 - fr) * fc * gv);
                add(r + 1, c, fr * (1.0 - fc) * gv);
                add(r + 1, c + 1, fr * fc * gv);
            }
        });
    dx
}

/// The gradient in the sample position, summed over planes: `gs[0, i, j] = sum_q gy dy/ds_c`,
/// `gs[1, i, j] = sum_q gy dy/ds_r` with `dy/ds_c = (1-fr)(x01-x00) + fr(x11-x10)` and
/// `dy/ds_r = (1-fc)(x10-x00) + fc(x11-x01)` (taps outside are 0: the derivative of the
/// piecewise-bilinear, zero-extended image). Shape (2, oh, ow).
pub fn affine_sample_grad_pos(s: &SampleShape, x: &[f32], a: &[f32], gy: &[f32]) -> Vec<f32> {
    let a = affine_of(a);
    let (h, w, oh, ow) = (s.h, s.w, s.oh, s.ow);
    let n = oh * ow;
    if n == 0 || h * w == 0 {
        return vec![0f32; 2 * n];
    }
    let pairs: Vec<(f32, f32)> = (0..n)
        .into_par_iter()
        .map(|o| {
            let cell = Cell::of(source(&a, o / ow, o % ow), h, w);
            let (fr, fc) = (cell.fr, cell.fc);
            let (mut dc, mut dr) = (0f32, 0f32);
            for q in 0..s.planes {
                let g = gy[q * n + o];
                let [x00, x01, x10, x11] = cell.taps(&x[q * h * w..][..h * w], h, w);
                dc += g * ((1.0 - fr) * (x01 - x00) + fr * (x11 - x10));
                dr += g * ((1.0 - fc) * (x10 - x00) + fc * (x11 - x01));
            }
            (dc, dr)
        })
        .collect();
    pairs
        .iter()
        .map(|p| p.0)
        .chain(pairs.iter().map(|p| p.1))
        .collect()
}
