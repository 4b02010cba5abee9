//! The exit-wave amplitude of SIPRAD (SPEC section 5): a fixed map from a threshold of the
//! image, the dual-valued constraint of a learned map, and the electrostatic phase that goes
//! with an amplitude (`phi_e = kappa (-ln a - min(-ln a))`).

use crate::engine::tensor::Tensor;
use crate::error::Result;
use crate::physics::signal::{gaussian_filter, Boundary};

/// The fixed amplitude map of a threshold on an image normalised to mean 1: pixels below it are
/// contamination with amplitude `sqrt(mean(I / I0) over them)`, the rest 1.
pub fn threshold_amplitude(norm_image: &[f32], threshold: f64) -> Vec<f32> {
    let dark: Vec<f64> = norm_image
        .iter()
        .filter(|&&v| (v as f64) < threshold)
        .map(|&v| v as f64)
        .collect();
    let low = if dark.is_empty() {
        1.0
    } else {
        (dark.iter().sum::<f64>() / dark.len() as f64)
            .max(1e-4)
            .sqrt()
    };
    norm_image
        .iter()
        .map(|&v| {
            if (v as f64) < threshold {
                low as f32
            } else {
                1.0
            }
        })
        .collect()
}

/// The dual-valued constraint: high = the mode of `a` rounded to 0.01 (ties: the smallest),
/// threshold = 0.75 high, low = min(a); `a <- where(a > thr, high, low)`, then a Gaussian blur of
/// sigma 1 pixel (mirror boundaries).
pub fn dual_valued(a: &[f32], h: usize, w: usize) -> Vec<f32> {
    let mut counts = std::collections::BTreeMap::new();
    for &v in a {
        if v.is_finite() {
            *counts
                .entry((v as f64 * 100.0).round() as i64)
                .or_insert(0usize) += 1;
        }
    }
    let high = counts
        .iter()
        .fold(
            (0i64, 0usize),
            |best, (&k, &n)| if n > best.1 { (k, n) } else { best },
        )
        .0 as f32
        / 100.0;
    let low = a
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .fold(f32::INFINITY, f32::min);
    let low = if low.is_finite() { low } else { high };
    let thr = 0.75 * high;
    let hard: Vec<f32> = a
        .iter()
        .map(|&v| if v > thr { high } else { low })
        .collect();
    gaussian_filter(&hard, h, w, 1.0, Boundary::Reflect, 4.0)
}

/// `phi_e = kappa (-ln a - min(-ln a))` of an amplitude map on the host.
pub(crate) fn phi_e_of(a: &[f32], kappa: f64) -> Vec<f32> {
    let amax = a.iter().copied().fold(f32::MIN_POSITIVE, f32::max) as f64;
    a.iter()
        .map(|&v| (kappa * (amax.ln() - (v.max(f32::MIN_POSITIVE) as f64).ln())) as f32)
        .collect()
}

/// `phi_e = kappa (ln max(a) - ln a)` of an amplitude tensor, where it lives; `max(a)` is taken
/// as a constant (its gradient would reach one pixel only).
pub(crate) fn phi_e_tensor(a: &Tensor, kappa: f64) -> Result<Tensor> {
    let amax = crate::engine::autograd::no_grad(|| a.detach().max_all()?.log())?;
    a.log()?.neg()?.add(&amax)?.scale(kappa as f32)
}
