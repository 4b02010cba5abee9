//! A support (where the magnet is) read from the data alone.
//!
//! A score map is computed from B_NV ([`SupportRule`]): the magnitude `|m|` of a classical
//! inversion ([`invert`]) along a given direction, or the gradient magnitude of the smoothed
//! B_NV. It is thresholded by Otsu's method: over the finite pixels of the map, a 256-bin
//! histogram between the score's minimum and maximum, and the bin edge that maximises the
//! between-class variance `w0 w1 (mu0 - mu1)^2`; the threshold is that value times a user
//! `factor` (default 1; above 1 keeps less). Then the largest 4-connected component of the
//! pixels above it is kept, its holes are filled (background regions, 4-connected, that do not
//! touch the map's edge), and it is dilated (`grow > 0`) or eroded (`grow < 0`) by `|grow|`
//! pixels with a disk, keeping the largest component again.
//!
//! Default `grow`: 0 for the inversion (its `|m|` falls to half at the edge, where Otsu puts
//! the threshold of a two-level map), `-round(d / pixel)` for the gradient rule (the gradient
//! of a field seen at height `d` spreads over about `d` on both sides of an edge, and filling
//! the ring's inside keeps its outer half).

use super::forward::NvGeometry;
use super::invert::{auto_border, border_plane, invert, Filter, InversionConfig};
use crate::error::{Error, Result};
use crate::physics::signal::{components, gaussian_filter_f64, Boundary};

/// What is thresholded.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SupportRule {
    /// `|m|` of a classical inversion along `direction` (Hanning filter, border-plane
    /// background; see [`SupportOptions::wavelength`]).
    Inversion {
        /// The assumed magnetisation direction (need not be normalised).
        direction: [f64; 3],
    },
    /// `|grad B_NV|` after a border plane is removed and a Gaussian smoothing (see
    /// [`SupportOptions::smooth`]).
    Gradient,
}

/// Settings of [`auto_support_with`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SupportOptions {
    /// Multiplies Otsu's threshold (default 1).
    pub factor: f64,
    /// Pixels to dilate (> 0) or erode (< 0); `None`: the rule's default (module docs).
    pub grow: Option<i64>,
    /// Gaussian smoothing of B_NV for the gradient rule, in pixels; `None`:
    /// `max(1, d / (2 pixel))`.
    pub smooth: Option<f64>,
    /// Hanning wavelength of the inversion rule (m); `None`: `2 max(pixel, d)`.
    pub wavelength: Option<f64>,
    /// `None`: keep the largest component only; `Some(f)`: every component of at least `f`
    /// times the largest's area (and 4 pixels): maps with several flakes.
    pub min_component: Option<f64>,
}

impl Default for SupportOptions {
    fn default() -> Self {
        SupportOptions {
            factor: 1.0,
            grow: None,
            smooth: None,
            wavelength: None,
            min_component: None,
        }
    }
}

/// The result of [`auto_support`].
#[derive(Clone, Debug)]
pub struct AutoSupport {
    /// The support (H, W): 1 inside, 0 outside.
    pub support: Vec<f32>,
    /// The threshold applied to the score (Otsu's value times the factor).
    pub threshold: f64,
    /// Otsu's threshold of the score.
    pub otsu: f64,
    /// The rule that made the score.
    pub rule_used: SupportRule,
    /// The score map (H, W) that was thresholded (NaN where the data were not finite).
    pub score: Vec<f32>,
    /// Pixels dilated (> 0) or eroded (< 0).
    pub grow: i64,
    /// Connected components above the threshold before the largest was kept.
    pub components: usize,
    /// Fraction of the map inside the support.
    pub area_fraction: f64,
}

/// [`auto_support_with`] with the default options.
pub fn auto_support(
    bnv: &[f32],
    h: usize,
    w: usize,
    geom: &NvGeometry,
    rule: SupportRule,
) -> Result<AutoSupport> {
    auto_support_with(bnv, h, w, geom, rule, &SupportOptions::default())
}

/// A support from a B_NV map `(h, w)` (row-major, tesla; non-finite pixels allowed) by the
/// rule and options (module docs). Errors when the score has no contrast.
pub fn auto_support_with(
    bnv: &[f32],
    h: usize,
    w: usize,
    geom: &NvGeometry,
    rule: SupportRule,
    opts: &SupportOptions,
) -> Result<AutoSupport> {
    geom.validate()?;
    if bnv.len() != h * w || h == 0 || w == 0 {
        return Err(Error::arg(
            "auto support",
            format!("{} values for a {h}x{w} map", bnv.len()),
        ));
    }
    if !(opts.factor.is_finite() && opts.factor > 0.0) {
        return Err(Error::arg(
            "auto support",
            format!("factor must be positive, got {}", opts.factor),
        ));
    }
    let d_px = geom.standoff / geom.pixel;
    let (score, default_grow) = match rule {
        SupportRule::Inversion { direction } => {
            let wavelength = opts
                .wavelength
                .unwrap_or(2.0 * geom.pixel.max(geom.standoff));
            let inv = invert(
                bnv,
                h,
                w,
                geom,
                &InversionConfig::new(direction, Filter::Hanning { wavelength }),
            )?;
            let s: Vec<f64> = inv.m.iter().map(|&v| (v as f64).abs()).collect();
            (s, 0)
        }
        SupportRule::Gradient => {
            let sigma = opts.smooth.unwrap_or((0.5 * d_px).max(1.0));
            if !(sigma.is_finite() && sigma >= 0.0) {
                return Err(Error::arg(
                    "auto support",
                    format!("smoothing must be >= 0 pixels, got {sigma}"),
                ));
            }
            (
                gradient_score(bnv, h, w, geom.pixel, sigma)?,
                -(d_px.round() as i64),
            )
        }
    };
    let score: Vec<f64> = score
        .iter()
        .zip(bnv)
        .map(|(&s, b)| if b.is_finite() { s } else { f64::NAN })
        .collect();
    let otsu = otsu_threshold(&score).ok_or_else(|| {
        Error::arg(
            "auto support",
            "the score map has no contrast (constant or empty)",
        )
    })?;
    let threshold = otsu * opts.factor;
    let above: Vec<bool> = score.iter().map(|&s| s > threshold).collect();
    let keep = |m: &[bool]| match opts.min_component {
        None => largest_component(m, h, w),
        Some(f) => components_above(m, h, w, f),
    };
    let (largest, components) = keep(&above);
    if components == 0 {
        return Err(Error::arg(
            "auto support",
            format!("no pixel above the threshold {threshold:.4e}"),
        ));
    }
    let mut mask = fill_holes(&largest, h, w);
    let grow = opts.grow.unwrap_or(default_grow);
    if grow != 0 {
        mask = morph(&mask, h, w, grow);
        mask = keep(&mask).0;
    }
    let inside = mask.iter().filter(|&&v| v).count();
    Ok(AutoSupport {
        support: mask.iter().map(|&v| if v { 1.0 } else { 0.0 }).collect(),
        threshold,
        otsu,
        rule_used: rule,
        score: score.iter().map(|&s| s as f32).collect(),
        grow,
        components,
        area_fraction: inside as f64 / (h * w) as f64,
    })
}

/// `|grad B|` (T/m) of the map with a border plane removed (non-finite pixels set to the
/// plane) and smoothed by a Gaussian of `sigma` pixels (reflecting edges); central differences
/// inside, one-sided at the edges.
fn gradient_score(bnv: &[f32], h: usize, w: usize, pixel: f64, sigma: f64) -> Result<Vec<f64>> {
    let plane = border_plane(bnv, h, w, pixel, auto_border(h, w))?;
    let data: Vec<f64> = (0..h * w)
        .map(|i| {
            let (r, c) = ((i / w) as f64, (i % w) as f64);
            let v = bnv[i] as f64;
            if v.is_finite() {
                v - plane[0] - plane[1] * c * pixel - plane[2] * r * pixel
            } else {
                0.0
            }
        })
        .collect();
    let s = gaussian_filter_f64(&data, h, w, sigma, Boundary::Reflect, 4.0);
    let diff = |a: usize, b: usize, steps: f64| (s[a] - s[b]) / (steps * pixel);
    let mut g = vec![0f64; h * w];
    for r in 0..h {
        for c in 0..w {
            let i = r * w + c;
            let gx = match (c > 0, c + 1 < w) {
                (true, true) => diff(i + 1, i - 1, 2.0),
                (false, true) => diff(i + 1, i, 1.0),
                (true, false) => diff(i, i - 1, 1.0),
                (false, false) => 0.0,
            };
            let gy = match (r > 0, r + 1 < h) {
                (true, true) => diff(i + w, i - w, 2.0),
                (false, true) => diff(i + w, i, 1.0),
                (true, false) => diff(i, i - w, 1.0),
                (false, false) => 0.0,
            };
            g[i] = (gx * gx + gy * gy).sqrt();
        }
    }
    Ok(g)
}

/// Otsu's threshold of the finite values (module docs); `None` when there are none or they are
/// all equal.
pub fn otsu_threshold(values: &[f64]) -> Option<f64> {
    let finite = || values.iter().cloned().filter(|v| v.is_finite());
    let lo = finite().fold(f64::INFINITY, f64::min);
    let hi = finite().fold(f64::NEG_INFINITY, f64::max);
    if !(lo.is_finite() && hi > lo) {
        return None;
    }
    const BINS: usize = 256;
    let width = (hi - lo) / BINS as f64;
    let mut hist = [0f64; BINS];
    for v in finite() {
        let b = (((v - lo) / width) as usize).min(BINS - 1);
        hist[b] += 1.0;
    }
    let total: f64 = hist.iter().sum();
    let centre = |b: usize| lo + (b as f64 + 0.5) * width;
    let sum_all: f64 = hist.iter().enumerate().map(|(b, &n)| n * centre(b)).sum();
    let (mut w0, mut s0) = (0.0, 0.0);
    let (mut best, mut best_t) = (-1.0, lo + width);
    for (b, &n) in hist.iter().enumerate().take(BINS - 1) {
        w0 += n;
        s0 += n * centre(b);
        let w1 = total - w0;
        if w0 == 0.0 || w1 == 0.0 {
            continue;
        }
        let (m0, m1) = (s0 / w0, (sum_all - s0) / w1);
        let between = w0 * w1 * (m0 - m1).powi(2);
        if between > best {
            best = between;
            best_t = lo + (b + 1) as f64 * width;
        }
    }
    Some(best_t)
}

/// The largest 4-connected component of `mask` and the number of components.
pub fn largest_component(mask: &[bool], h: usize, w: usize) -> (Vec<bool>, usize) {
    let (label, sizes) = components(mask, h, w);
    let Some(best) = sizes
        .iter()
        .enumerate()
        .max_by_key(|&(i, &s)| (s, std::cmp::Reverse(i)))
        .map(|(i, _)| i + 1)
    else {
        return (vec![false; h * w], 0);
    };
    (label.iter().map(|&l| l == best).collect(), sizes.len())
}

/// Every 4-connected component of `mask` with at least `fraction` of the largest's area (and 4
/// pixels), and the number of components.
pub fn components_above(mask: &[bool], h: usize, w: usize, fraction: f64) -> (Vec<bool>, usize) {
    let (label, sizes) = components(mask, h, w);
    let Some(&big) = sizes.iter().max() else {
        return (vec![false; h * w], 0);
    };
    let min = ((fraction * big as f64).ceil() as usize).max(4).min(big);
    (
        label
            .iter()
            .map(|&l| l > 0 && sizes[l - 1] >= min)
            .collect(),
        sizes.len(),
    )
}

/// Fills the holes of `mask`: background regions (4-connected) that do not touch the edge.
pub fn fill_holes(mask: &[bool], h: usize, w: usize) -> Vec<bool> {
    let bg: Vec<bool> = mask.iter().map(|&v| !v).collect();
    let (label, sizes) = components(&bg, h, w);
    let mut touches = vec![false; sizes.len() + 1];
    for r in 0..h {
        for c in 0..w {
            if r == 0 || c == 0 || r + 1 == h || c + 1 == w {
                touches[label[r * w + c]] = true;
            }
        }
    }
    mask.iter()
        .zip(&label)
        .map(|(&m, &l)| m || !touches[l])
        .collect()
}

/// Dilation (`grow > 0`) or erosion (`grow < 0`) by a disk of radius `|grow|` pixels
/// (`dr^2 + dc^2 <= grow^2`); outside the map counts as background.
pub fn morph(mask: &[bool], h: usize, w: usize, grow: i64) -> Vec<bool> {
    let rad = grow.unsigned_abs() as i64;
    let offsets: Vec<(i64, i64)> = (-rad..=rad)
        .flat_map(|dr| (-rad..=rad).map(move |dc| (dr, dc)))
        .filter(|&(dr, dc)| dr * dr + dc * dc <= rad * rad)
        .collect();
    let at = |r: i64, c: i64| -> bool {
        r >= 0
            && c >= 0
            && (r as usize) < h
            && (c as usize) < w
            && mask[r as usize * w + c as usize]
    };
    (0..h * w)
        .map(|i| {
            let (r, c) = ((i / w) as i64, (i % w) as i64);
            if grow > 0 {
                offsets.iter().any(|&(dr, dc)| at(r + dr, c + dc))
            } else {
                offsets.iter().all(|&(dr, dc)| at(r + dr, c + dc))
            }
        })
        .collect()
}
