//! Accuracy against a ground truth (SPEC section 5): Pearson correlation of the phase and of each
//! induction component (optionally ignoring a border), SSIM, and the Gaussian filter used for
//! smoothing.

use super::forward::induction;
use crate::error::{Error, Result};
use crate::physics::signal::{self, Boundary};

/// Pearson correlation coefficient of two equally long arrays (0 if either is constant).
pub fn pearson(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len().min(b.len()).max(1) as f64;
    let ma = a.iter().map(|&v| v as f64).sum::<f64>() / n;
    let mb = b.iter().map(|&v| v as f64).sum::<f64>() / n;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (dx, dy) = (x as f64 - ma, y as f64 - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    if saa == 0.0 || sbb == 0.0 {
        return 0.0;
    }
    sab / (saa * sbb).sqrt()
}

/// The inner `(h - 2b, w - 2b)` window of an `(h, w)` map.
pub fn crop_border(v: &[f32], h: usize, w: usize, b: usize) -> Vec<f32> {
    if 2 * b >= h || 2 * b >= w {
        return v.to_vec();
    }
    (b..h - b)
        .flat_map(|r| v[r * w + b..r * w + w - b].iter().copied())
        .collect()
}

/// Where [`accuracy`] looks with `crop`: `true` inside the border of n/16 pixels (n the shorter
/// side), as an `(h, w)` mask.
pub fn interior(h: usize, w: usize) -> Vec<bool> {
    let b = h.min(w) / 16;
    let whole = 2 * b >= h || 2 * b >= w;
    (0..h * w)
        .map(|i| {
            let (r, c) = (i / w, i % w);
            whole || (r >= b && c >= b && r + b < h && c + b < w)
        })
        .collect()
}

/// Accuracies of a reconstructed phase against the truth.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Accuracy {
    /// Pearson correlation of the phases.
    pub phase: f64,
    /// Pearson correlation of Bx t.
    pub bx: f64,
    /// Pearson correlation of By t.
    pub by: f64,
    /// SSIM of the phases (data range of the truth).
    pub ssim: f64,
    /// Border (pixels) ignored on every side.
    pub border: usize,
}

/// Compares `phase` with `truth` (both (h, w), rad). `crop`: ignore a border of n/16 pixels
/// (n = the shorter side).
pub fn accuracy(
    phase: &[f32],
    truth: &[f32],
    h: usize,
    w: usize,
    scale_nm: f64,
    crop: bool,
) -> Result<Accuracy> {
    if phase.len() != h * w || truth.len() != h * w {
        return Err(Error::arg("accuracy", format!("both maps must be {h}x{w}")));
    }
    let b = if crop { h.min(w) / 16 } else { 0 };
    let bi = induction(phase, h, w, scale_nm)?;
    let bt = induction(truth, h, w, scale_nm)?;
    let hw = h * w;
    let c = |v: &[f32]| crop_border(v, h, w, b);
    let (ch, cw) = if 2 * b < h && 2 * b < w {
        (h - 2 * b, w - 2 * b)
    } else {
        (h, w)
    };
    Ok(Accuracy {
        phase: pearson(&c(phase), &c(truth)),
        bx: pearson(&c(&bi[..hw]), &c(&bt[..hw])),
        by: pearson(&c(&bi[hw..]), &c(&bt[hw..])),
        ssim: ssim(&c(phase), &c(truth), ch, cw),
        border: b,
    })
}

/// Structural similarity (Wang et al. 2004): Gaussian window sigma 1.5, K1 = 0.01, K2 = 0.03,
/// data range = max - min of `truth`; the mean SSIM map.
pub fn ssim(x: &[f32], truth: &[f32], h: usize, w: usize) -> f64 {
    let lo = truth.iter().copied().fold(f32::INFINITY, f32::min) as f64;
    let hi = truth.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let range = (hi - lo).max(1e-12);
    let (c1, c2) = ((0.01 * range).powi(2), (0.03 * range).powi(2));
    let f = |v: Vec<f64>| signal::gaussian_filter_f64(&v, h, w, 1.5, Boundary::Reflect, 4.0);
    let xs: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let ys: Vec<f64> = truth.iter().map(|&v| v as f64).collect();
    let mx = f(xs.clone());
    let my = f(ys.clone());
    let sxx = f(xs.iter().map(|v| v * v).collect());
    let syy = f(ys.iter().map(|v| v * v).collect());
    let sxy = f(xs.iter().zip(&ys).map(|(a, b)| a * b).collect());
    let mut total = 0.0;
    for i in 0..h * w {
        let (vx, vy, cxy) = (
            sxx[i] - mx[i] * mx[i],
            syy[i] - my[i] * my[i],
            sxy[i] - mx[i] * my[i],
        );
        total += ((2.0 * mx[i] * my[i] + c1) * (2.0 * cxy + c2))
            / ((mx[i] * mx[i] + my[i] * my[i] + c1) * (vx + vy + c2));
    }
    total / (h * w).max(1) as f64
}

/// Gaussian filter of an (h, w) map with standard deviation `sigma` pixels, kernel truncated
/// at 4 sigma, mirror ("reflect") boundaries — `scipy.ndimage.gaussian_filter`'s defaults.
pub fn gaussian_filter(v: &[f32], h: usize, w: usize, sigma: f64) -> Vec<f32> {
    signal::gaussian_filter(v, h, w, sigma, Boundary::Reflect, 4.0)
}

/// Pearson correlation of two `(h, w)` phases over the pixels farther than `margin` pixels from
/// `mask` (e.g. contamination, where the magnetic phase is least determined) and, with `crop`,
/// inside the border of n/16 pixels.
pub fn pearson_outside(
    phase: &[f32],
    truth: &[f32],
    mask: &[bool],
    (h, w): (usize, usize),
    margin: usize,
    crop: bool,
) -> Result<f64> {
    if phase.len() != h * w || truth.len() != h * w || mask.len() != h * w {
        return Err(Error::arg(
            "accuracy",
            format!("phase, truth and mask must all be {h}x{w}"),
        ));
    }
    let near = super::contamination::dilate(mask, h, w, margin);
    let keep = if crop {
        interior(h, w)
    } else {
        vec![true; h * w]
    };
    let (a, b): (Vec<f32>, Vec<f32>) = (0..h * w)
        .filter(|&i| keep[i] && !near[i])
        .map(|i| (phase[i], truth[i]))
        .unzip();
    Ok(pearson(&a, &b))
}
