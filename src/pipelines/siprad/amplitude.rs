//! The exit-wave amplitude of SIPRAD (SPEC section 5): the initial map from its source (the
//! contamination found in a denoised image, an in-focus image, a mask or a given map), the
//! dual-valued constraint of a learned map (SPEC's rule, and the region-aware one the pipeline
//! uses), and the electrostatic phase that goes with an amplitude
//! (`phi_e = kappa (-ln a - min(-ln a))`).

use super::config::AmplitudeSource;
use crate::engine::tensor::Tensor;
use crate::error::{Error, Result};
use crate::physics::ltem::contamination::{
    dilate, find_contamination, label, map_from_mask, median, region_means, AmplitudeMap,
};
use crate::physics::signal::{gaussian_filter, Boundary};

/// The initial amplitude map of `source` for images `(h, w)`; `image` is the image nearest focus.
pub(crate) fn initial_map(
    source: &AmplitudeSource,
    image: &[f32],
    h: usize,
    w: usize,
) -> Result<AmplitudeMap> {
    let check = |what: &str, n: usize| {
        if n == h * w {
            Ok(())
        } else {
            Err(Error::arg(
                "siprad amplitude",
                format!("the {what} has {n} values, the images {h}x{w}"),
            ))
        }
    };
    match source {
        AmplitudeSource::Image {
            threshold,
            smoothing,
        } => find_contamination(image, h, w, *threshold, *smoothing),
        AmplitudeSource::Infocus {
            image: infocus,
            threshold,
            smoothing,
        } => {
            check("in-focus image", infocus.len())?;
            let found = find_contamination(infocus, h, w, *threshold, *smoothing)?;
            // levels from the in-focus image itself (I = a^2 there)
            let mut m = map_from_mask(infocus, &found.mask, h, w)?;
            m.smoothing = found.smoothing;
            Ok(m)
        }
        AmplitudeSource::Mask(mask) => {
            check("amplitude mask", mask.len())?;
            map_from_mask(image, mask, h, w)
        }
        AmplitudeSource::Map(a) => {
            check("amplitude map", a.len())?;
            if a.iter().any(|&v| !(v > 0.0 && v <= 1.0)) {
                return Err(Error::arg(
                    "siprad amplitude",
                    "an amplitude map must lie in (0, 1]",
                ));
            }
            let lo = a.iter().copied().fold(1.0f32, f32::min);
            let cut = 0.5 * (1.0 + lo);
            let mask: Vec<bool> = a.iter().map(|&v| lo < 0.98 && v < cut).collect();
            let (labels, n) = label(&mask, h, w);
            let levels = region_means(&labels, n, a);
            Ok(AmplitudeMap {
                amplitude: a.clone(),
                area_fraction: mask.iter().filter(|&&m| m).count() as f64 / (h * w) as f64,
                mask,
                levels,
                smoothing: 0.0,
                noise: f64::NAN,
            })
        }
    }
}

/// How far (pixels) around the contamination a learned amplitude may differ from 1.
pub(crate) const SUPPORT_PX: usize = 3;

/// The support of a learned amplitude: `mask` dilated by [`SUPPORT_PX`].
pub(crate) fn support(mask: &[bool], h: usize, w: usize) -> Vec<bool> {
    dilate(mask, h, w, SUPPORT_PX)
}

/// A learned amplitude made two-valued per region: the map, its mask, and the background level
/// it was divided by.
pub(crate) struct Constrained {
    pub(crate) map: Vec<f32>,
    pub(crate) mask: Vec<bool>,
    pub(crate) high: f64,
    pub(crate) area_fraction: f64,
}

/// The region-aware dual-valued constraint of a learned amplitude `a` (h, w) given the previous
/// mask and the `allowed` pixels (the initial mask dilated by [`SUPPORT_PX`]): high = the mode
/// (0.01 bins) of `a` outside the previous mask; each previous region keeps the allowed pixels
/// within [`SUPPORT_PX`] of it that lie below the middle between high and the region's median
/// level, at that level (regions neither appear nor wander: the amplitude network only
/// refines the level and outline of contamination that was found). The two-valued map is
/// blurred by 1 px and divided by high.
pub(crate) fn constrain(
    a: &[f32],
    prev: &[bool],
    allowed: &[bool],
    h: usize,
    w: usize,
) -> Constrained {
    let high = mode(a.iter().zip(prev).filter(|(_, &m)| !m).map(|(&v, _)| v))
        .or_else(|| mode(a.iter().copied()))
        .unwrap_or(1.0)
        .max(1e-3);
    let (labels, n) = label(prev, h, w);
    let mut hard = vec![high as f32; h * w];
    let mut mask = vec![false; h * w];
    for k in 1..=n {
        let region: Vec<bool> = labels.iter().map(|&l| l == k).collect();
        let mut v: Vec<f64> = (0..h * w)
            .filter(|&i| region[i])
            .map(|i| a[i] as f64)
            .collect();
        let low = median(&mut v);
        if !low.is_finite() {
            continue;
        }
        let half = 0.5 * (high + low);
        let near = dilate(&region, h, w, SUPPORT_PX);
        for i in 0..h * w {
            if near[i] && allowed[i] && (a[i] as f64) < half {
                mask[i] = true;
                hard[i] = low as f32;
            }
        }
    }
    let blurred = gaussian_filter(&hard, h, w, 1.0, Boundary::Reflect, 4.0);
    let map = blurred
        .iter()
        .map(|&v| ((v as f64 / high) as f32).clamp(1e-3, 1.0))
        .collect();
    let area_fraction = mask.iter().filter(|&&m| m).count() as f64 / (h * w) as f64;
    Constrained {
        map,
        mask,
        high,
        area_fraction,
    }
}

/// The guard of a learned amplitude: a constrained map whose background level `high` fell
/// below 0.7 (it was 1 after the previous constraint) or whose area fraction jumped (above
/// `2 area0 + 0.02` or below `area0 / 2 - 0.02`, `area0` the initial map's) has collapsed.
pub(crate) fn collapsed(high: f64, area: f64, area0: f64) -> bool {
    !(high.is_finite() && high >= 0.7) || area > 2.0 * area0 + 0.02 || area < 0.5 * area0 - 0.02
}

/// The most frequent value of finite `v` rounded to 0.01 (ties: the smallest); `None` if empty.
fn mode(v: impl Iterator<Item = f32>) -> Option<f64> {
    let mut counts = std::collections::BTreeMap::new();
    for x in v.filter(|x| x.is_finite()) {
        *counts
            .entry((x as f64 * 100.0).round() as i64)
            .or_insert(0usize) += 1;
    }
    counts
        .iter()
        .fold(None, |best: Option<(i64, usize)>, (&k, &n)| match best {
            Some((_, bn)) if bn >= n => best,
            _ => Some((k, n)),
        })
        .map(|(k, _)| k as f64 / 100.0)
}

/// The dual-valued constraint: high = the mode of `a` rounded to 0.01 (ties: the smallest),
/// threshold = 0.75 high, low = min(a); `a <- where(a > thr, high, low)`, then a Gaussian blur of
/// sigma 1 pixel (mirror boundaries).
pub fn dual_valued(a: &[f32], h: usize, w: usize) -> Vec<f32> {
    let high = mode(a.iter().copied()).unwrap_or(0.0) as f32;
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

/// `ln max(a) - ln a` of an amplitude map on the host: `phi_e / kappa`.
pub(crate) fn phi_e_base(a: &[f32]) -> Vec<f32> {
    let amax = a.iter().copied().fold(f32::MIN_POSITIVE, f32::max) as f64;
    a.iter()
        .map(|&v| (amax.ln() - (v.max(f32::MIN_POSITIVE) as f64).ln()) as f32)
        .collect()
}

/// `ln max(a) - ln a` of an amplitude tensor, where it lives; `max(a)` is taken as a constant
/// (its gradient would reach one pixel only).
pub(crate) fn phi_e_base_tensor(a: &Tensor) -> Result<Tensor> {
    let amax = crate::engine::autograd::no_grad(|| a.detach().max_all()?.log())?;
    a.log()?.neg()?.add(&amax)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 32x32 map: background 0.9, a dark disc (0.45) and a faint one (0.8, above SPEC's
    /// 0.75 high threshold).
    fn two_particles() -> (Vec<f32>, Vec<bool>) {
        let (h, w) = (32, 32);
        let mut a = vec![0.9f32; h * w];
        let mut mask = vec![false; h * w];
        for i in 0..h * w {
            let (r, c) = ((i / w) as f32, (i % w) as f32);
            if (r - 8.0).powi(2) + (c - 8.0).powi(2) < 16.0 {
                a[i] = 0.45;
                mask[i] = true;
            }
            if (r - 22.0).powi(2) + (c - 22.0).powi(2) < 25.0 {
                a[i] = 0.8 * 0.9;
                mask[i] = true;
            }
        }
        (a, mask)
    }

    #[test]
    fn constraint_keeps_the_background_and_each_region_level() {
        let (a, mask) = two_particles();
        let c = constrain(&a, &mask, &support(&mask, 32, 32), 32, 32);
        assert!((c.high - 0.9).abs() < 1e-6, "{}", c.high);
        assert_eq!(c.mask, mask);
        // background renormalised to 1, the faint particle kept at 0.8, the dark one at 0.5
        assert!((c.map[31 * 32] - 1.0).abs() < 1e-4);
        assert!(
            (c.map[22 * 32 + 22] - 0.8).abs() < 0.02,
            "{}",
            c.map[22 * 32 + 22]
        );
        assert!(
            (c.map[8 * 32 + 8] - 0.5).abs() < 0.02,
            "{}",
            c.map[8 * 32 + 8]
        );
        // SPEC's rule loses the faint particle (0.72 > 0.75 x 0.9 = 0.675)
        let spec = dual_valued(&a, 32, 32);
        assert!((spec[22 * 32 + 22] - 0.9).abs() < 0.02);
        assert!(!collapsed(c.high, c.area_fraction, c.area_fraction));
    }

    #[test]
    fn constraint_keeps_regions_in_place_and_the_guard_trips() {
        let (mut a, mask) = two_particles();
        // a dark blob far from both is not contamination the network may invent
        for r in 2..7 {
            for c in 22..27 {
                a[r * 32 + c] = 0.3;
            }
        }
        let c = constrain(&a, &mask, &support(&mask, 32, 32), 32, 32);
        assert!(!c.mask[4 * 32 + 24]);
        assert_eq!(c.mask, mask);
        // a map that fell everywhere (the scale degeneracy) trips the guard
        let low: Vec<f32> = a.iter().map(|v| v * 0.6).collect();
        let c2 = constrain(&low, &mask, &support(&mask, 32, 32), 32, 32);
        assert!(collapsed(c2.high, c2.area_fraction, 0.05));
        // and so does an area fraction that jumps
        assert!(collapsed(1.0, 0.3, 0.05));
        assert!(collapsed(1.0, 0.0, 0.1));
        assert!(!collapsed(1.0, 0.06, 0.05));
    }
}
