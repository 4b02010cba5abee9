//! Finding contamination (ice, carbon, oxide particles) in Lorentz-TEM images: the noise level
//! of an image, a denoised threshold of it with boundaries refined at each region's half level,
//! connected regions, and the amplitude map they imply.
//!
//! A threshold of a raw noisy image picks noise: at 30 % Gaussian noise about a sixth of all
//! pixels fall below 0.7. So the image is smoothed first, by a Gaussian whose width follows the
//! estimated noise (the residual noise after smoothing is held near 4 % of the background), and
//! at least 1.5 px so that thin magnetic-contrast bands do not pass for particles. Regions
//! smaller than [`MIN_AREA`] pixels are dropped. Each region's boundary is then moved to where
//! the smoothed image crosses the middle between the background and the region's own level, so
//! that faint and dark particles get their true size alike, and its amplitude is the square
//! root of the region's mean normalised intensity in the unsmoothed image.

use crate::error::{Error, Result};
pub(crate) use crate::physics::signal::median;
use crate::physics::signal::{components, gaussian_filter, Boundary};

/// Regions smaller than this (pixels) are not contamination.
pub const MIN_AREA: usize = 12;

/// Residual relative noise aimed at by the automatic smoothing.
const TARGET_NOISE: f64 = 0.04;

/// Automatic smoothing bounds (pixels).
const SMOOTH_MIN: f64 = 1.5;
const SMOOTH_MAX: f64 = 4.0;

/// The amplitude map that a reconstruction assumes, and how it was found.
#[derive(Clone, Debug, PartialEq)]
pub struct AmplitudeMap {
    /// Amplitude (h, w): 1 outside the regions, each region's level inside, edges blurred by
    /// a Gaussian of 1 px.
    pub amplitude: Vec<f32>,
    /// The contamination mask (h, w).
    pub mask: Vec<bool>,
    /// Fraction of the pixels in the mask.
    pub area_fraction: f64,
    /// Amplitude of each connected region, in label order.
    pub levels: Vec<f64>,
    /// Gaussian smoothing (pixels) applied before the threshold (0 for a user mask).
    pub smoothing: f64,
    /// Estimated noise standard deviation of the image the map was found in, relative to its
    /// background level.
    pub noise: f64,
}

/// The standard deviation of white noise in an `(h, w)` image (Immerkaer 1996, with the median
/// of the absolute response instead of its mean, so that edges and textures count less): the
/// image is convolved with `[1 -2 1; -2 4 -2; 1 -2 1]` (which cancels any locally quadratic
/// signal; gain 6 on white noise) and `sigma = median|r| / (0.6745 * 6)`.
pub fn noise_level(img: &[f32], h: usize, w: usize) -> Result<f64> {
    if img.len() != h * w || h < 3 || w < 3 {
        return Err(Error::arg(
            "noise level",
            format!(
                "needs an image of at least 3x3 with h*w values, got {} for {h}x{w}",
                img.len()
            ),
        ));
    }
    const K: [[f64; 3]; 3] = [[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]];
    let mut r = Vec::with_capacity((h - 2) * (w - 2));
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            let mut s = 0.0;
            for (dy, row) in K.iter().enumerate() {
                for (dx, k) in row.iter().enumerate() {
                    s += k * img[(y + dy - 1) * w + x + dx - 1] as f64;
                }
            }
            r.push(s.abs());
        }
    }
    Ok(median(&mut r) / (0.674_489_75 * 6.0))
}

/// The automatic smoothing (pixels) for a relative noise level.
pub fn auto_smoothing(noise: f64) -> f64 {
    (noise / (2.0 * std::f64::consts::PI.sqrt() * TARGET_NOISE)).clamp(SMOOTH_MIN, SMOOTH_MAX)
}

/// Finds contamination in `image` (h, w; any positive units): normalised by its median, smoothed
/// (`smoothing` pixels, or [`auto_smoothing`] of its [`noise_level`]), pixels below
/// `threshold` x the smoothed image's median are seeds, regions of at least [`MIN_AREA`] pixels
/// are kept and their boundaries refined (module docs).
///
/// ```
/// use magprior::ltem::contamination::find_contamination;
/// let (h, w) = (64, 64);
/// // a flat image with one dark disc of radius 8 (intensity 0.36: amplitude 0.6)
/// let img: Vec<f32> = (0..h * w)
///     .map(|i| {
///         let (r, c) = ((i / w) as f32 - 30.0, (i % w) as f32 - 34.0);
///         if r * r + c * c < 64.0 { 0.36 } else { 1.0 }
///     })
///     .collect();
/// let map = find_contamination(&img, h, w, 0.7, None)?;
/// assert_eq!(map.levels.len(), 1);
/// assert!((map.levels[0] - 0.6).abs() < 0.03);
/// assert!((map.area_fraction - 201.0 / 4096.0).abs() < 0.01);
/// # Ok::<(), magprior::Error>(())
/// ```
pub fn find_contamination(
    image: &[f32],
    h: usize,
    w: usize,
    threshold: f64,
    smoothing: Option<f64>,
) -> Result<AmplitudeMap> {
    const OP: &str = "contamination";
    if image.len() != h * w || h < 3 || w < 3 {
        return Err(Error::arg(
            OP,
            format!(
                "needs h*w values (h, w >= 3), got {} for {h}x{w}",
                image.len()
            ),
        ));
    }
    if !(threshold.is_finite() && threshold > 0.0 && threshold < 1.0) {
        return Err(Error::arg(
            OP,
            format!("the threshold must be in (0, 1) of the background, got {threshold}"),
        ));
    }
    if let Some(s) = smoothing {
        if !(s.is_finite() && s >= 0.0) {
            return Err(Error::arg(OP, format!("smoothing must be >= 0, got {s}")));
        }
    }
    let norm = normalised(image, OP)?;
    let noise = noise_level(&norm, h, w)?;
    let s = smoothing.unwrap_or_else(|| auto_smoothing(noise));
    let smooth = if s > 0.0 {
        gaussian_filter(&norm, h, w, s, Boundary::Reflect, 4.0)
    } else {
        norm.clone()
    };
    let bg = median(&mut smooth.iter().map(|&v| v as f64).collect::<Vec<_>>());
    let seeds: Vec<bool> = smooth
        .iter()
        .map(|&v| (v as f64) < threshold * bg)
        .collect();
    let (labels, n) = label(&seeds, h, w);
    let mut mask = vec![false; h * w];
    let reach = (2.0 * s).ceil() as usize + 2;
    for k in 1..=n {
        let region: Vec<usize> = (0..h * w).filter(|&i| labels[i] == k).collect();
        if region.len() < MIN_AREA {
            continue;
        }
        let mut lv: Vec<f64> = region.iter().map(|&i| smooth[i] as f64).collect();
        let half = 0.5 * (bg + median(&mut lv));
        // the region grown (or shrunk) to the half level, within `reach` pixels of its seed
        let near = dilate(&region_mask(&region, h * w), h, w, reach);
        let inside: Vec<bool> = (0..h * w)
            .map(|i| near[i] && (smooth[i] as f64) < half)
            .collect();
        // keep the part connected to the seed's core (its pixels below the half level)
        let (l2, _) = label(&inside, h, w);
        let keep: std::collections::BTreeSet<usize> = region
            .iter()
            .filter(|&&i| inside[i])
            .map(|&i| l2[i])
            .collect();
        for i in 0..h * w {
            if l2[i] != 0 && keep.contains(&l2[i]) {
                mask[i] = true;
            }
        }
    }
    Ok(map_of_mask(&norm, mask, h, w, s, noise))
}

/// The amplitude map of a given contamination `mask` (h, w): each connected region's amplitude
/// is the square root of the mean of `image` (normalised by its median outside the mask) over it.
pub fn map_from_mask(image: &[f32], mask: &[bool], h: usize, w: usize) -> Result<AmplitudeMap> {
    const OP: &str = "amplitude mask";
    if image.len() != h * w || mask.len() != h * w || h < 3 || w < 3 {
        return Err(Error::arg(
            OP,
            format!(
                "image ({}) and mask ({}) must both be {h}x{w}",
                image.len(),
                mask.len()
            ),
        ));
    }
    let mut outside: Vec<f64> = image
        .iter()
        .zip(mask)
        .filter(|(_, &m)| !m)
        .map(|(&v, _)| v as f64)
        .collect();
    if outside.is_empty() {
        return Err(Error::arg(OP, "the mask covers the whole image"));
    }
    let bg = median(&mut outside);
    if !(bg.is_finite() && bg > 0.0) {
        return Err(Error::arg(
            OP,
            format!("the image's background level must be positive, got {bg}"),
        ));
    }
    let norm: Vec<f32> = image.iter().map(|&v| (v as f64 / bg) as f32).collect();
    let noise = noise_level(&norm, h, w)?;
    Ok(map_of_mask(&norm, mask.to_vec(), h, w, 0.0, noise))
}

/// The image divided by its median (which must be positive and finite).
fn normalised(image: &[f32], op: &'static str) -> Result<Vec<f32>> {
    let m = median(&mut image.iter().map(|&v| v as f64).collect::<Vec<_>>());
    if !(m.is_finite() && m > 0.0) {
        return Err(Error::arg(
            op,
            format!("the image's median intensity must be positive, got {m}"),
        ));
    }
    Ok(image.iter().map(|&v| (v as f64 / m) as f32).collect())
}

fn map_of_mask(
    norm: &[f32],
    mask: Vec<bool>,
    h: usize,
    w: usize,
    smoothing: f64,
    noise: f64,
) -> AmplitudeMap {
    let (labels, n) = label(&mask, h, w);
    let levels: Vec<f64> = region_means(&labels, n, norm)
        .iter()
        .map(|m| m.clamp(1e-4, 1.0).sqrt())
        .collect();
    let hard: Vec<f32> = labels
        .iter()
        .map(|&l| if l == 0 { 1.0 } else { levels[l - 1] as f32 })
        .collect();
    let amplitude = gaussian_filter(&hard, h, w, 1.0, Boundary::Reflect, 4.0);
    let area_fraction = mask.iter().filter(|&&m| m).count() as f64 / (h * w) as f64;
    AmplitudeMap {
        amplitude,
        mask,
        area_fraction,
        levels,
        smoothing,
        noise,
    }
}

/// The mean of `values` over each of the regions `1..=n` of `labels`.
pub(crate) fn region_means(labels: &[usize], n: usize, values: &[f32]) -> Vec<f64> {
    let mut sums = vec![(0.0f64, 0usize); n + 1];
    for (&l, &v) in labels.iter().zip(values) {
        sums[l].0 += v as f64;
        sums[l].1 += 1;
    }
    sums[1..]
        .iter()
        .map(|&(s, c)| s / c.max(1) as f64)
        .collect()
}

/// 4-connected components of `mask`: labels 1..=n (0 outside) and n.
pub(crate) fn label(mask: &[bool], h: usize, w: usize) -> (Vec<usize>, usize) {
    let (labels, sizes) = components(mask, h, w);
    (labels, sizes.len())
}

fn region_mask(region: &[usize], len: usize) -> Vec<bool> {
    let mut m = vec![false; len];
    for &i in region {
        m[i] = true;
    }
    m
}

/// `mask` dilated by a disc of `radius` pixels.
pub fn dilate(mask: &[bool], h: usize, w: usize, radius: usize) -> Vec<bool> {
    let r = radius as isize;
    let mut out = vec![false; h * w];
    for i in (0..h * w).filter(|&i| mask[i]) {
        let (y, x) = ((i / w) as isize, (i % w) as isize);
        for dy in -r..=r {
            for dx in -r..=r {
                if dy * dy + dx * dx > r * r {
                    continue;
                }
                let (yy, xx) = (y + dy, x + dx);
                if yy >= 0 && xx >= 0 && (yy as usize) < h && (xx as usize) < w {
                    out[yy as usize * w + xx as usize] = true;
                }
            }
        }
    }
    out
}

/// Intersection over union of two masks (1 when both are empty).
pub fn iou(a: &[bool], b: &[bool]) -> f64 {
    let inter = a.iter().zip(b).filter(|(&x, &y)| x && y).count();
    let union = a.iter().zip(b).filter(|(&x, &y)| x || y).count();
    if union == 0 {
        1.0
    } else {
        inter as f64 / union as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn noise_level_of_white_noise_on_a_smooth_image() {
        let (h, w) = (128, 128);
        let mut rng = Rng::new(3);
        for s in [0.05, 0.3, 0.5] {
            let img: Vec<f32> = (0..h * w)
                .map(|i| {
                    let (r, c) = ((i / w) as f64, (i % w) as f64);
                    (1.0 + 0.3 * (r / 20.0).sin() * (c / 15.0).cos() + s * rng.normal()) as f32
                })
                .collect();
            let est = noise_level(&img, h, w).unwrap();
            assert!((est / s - 1.0).abs() < 0.05, "{s}: {est}");
        }
    }

    #[test]
    fn labels_and_dilation() {
        let (h, w) = (5, 6);
        let m: Vec<bool> = "110000\n100011\n000001\n000000\n001000"
            .lines()
            .flat_map(|l| l.chars().map(|c| c == '1'))
            .collect();
        let (l, n) = label(&m, h, w);
        assert_eq!(n, 3);
        assert_eq!((l[0], l[1], l[6]), (1, 1, 1));
        assert_eq!((l[10], l[11], l[17]), (2, 2, 2));
        assert_eq!(l[26], 3);
        let d = dilate(&[false, false, true, false, false], 1, 5, 1);
        assert_eq!(d, vec![false, true, true, true, false]);
        assert!((iou(&m, &m) - 1.0).abs() < 1e-12);
        assert_eq!(median(&mut [3.0, f64::NAN, 1.0, 2.0, 10.0]), 2.5);
    }
}
