//! What a map says about its own noise, and whether a model's residual is noise (SPEC section
//! 9: noise floor, chi^2 per pixel).
//!
//! [`noise_floor`] gives two estimates of a white-noise standard deviation:
//!
//! - from first differences of neighbouring pixels: `d = b(r, c+1) - b(r, c)` (and along rows),
//!   over pairs of valid pixels only, `sigma = 1.4826 MAD(d) / sqrt 2` per direction (the MAD
//!   taken about each direction's own median, so a plane adds nothing), the two directions
//!   combined as the pair-weighted root mean square. A difference of two pixels of independent
//!   noise has variance `2 sigma^2`; the median absolute deviation ignores the few large
//!   differences at edges and spikes, and a smooth signal adds only its small gradient spread.
//!   It is local, works with invalid pixels, and does not depend on how the map ends at its
//!   borders. The same from second differences `b(i-1) - 2 b(i) + b(i+1)` (variance
//!   `6 sigma^2`), in which a field's gradient cancels; [`NoiseFloor::sigma`], the one to use, is
//!   the smaller of the two (steep edges inflate the first differences most).
//! - from the spectrum: after a least-squares plane is removed (invalid pixels set to zero),
//!   the median of `|B(k)|^2` over the outer wave numbers (`|q| >= 1/4` cycles per pixel, half
//!   of Nyquist and above), divided by `ln 2` (the median of an exponential variable) and by
//!   the number of valid pixels, is `sigma^2` for white noise. For comparison: noise that is
//!   not white (filtered data, correlated drifts) makes the two disagree, the spectral one
//!   lower when the data were low-pass filtered.

use crate::engine::autograd::no_grad;
use crate::engine::storage::C32;
use crate::engine::tensor::Tensor;
use crate::error::{Error, Result};
use crate::physics::signal::{fftfreq, fit_plane, median};

/// The two noise estimates of [`noise_floor`] (tesla for a B_NV map).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NoiseFloor {
    /// The estimate to use: the smaller of `sigma_diff` and `sigma_diff2`.
    pub sigma: f64,
    /// From second differences along x and y (`1.4826 MAD / sqrt 6`).
    pub sigma_diff2: f64,
    /// From first differences along x and y combined (module docs).
    pub sigma_diff: f64,
    /// From differences along x (between columns) only.
    pub sigma_diff_x: f64,
    /// From differences along y (between rows) only.
    pub sigma_diff_y: f64,
    /// From the outer part of the spectrum (module docs).
    pub sigma_spectrum: f64,
    /// Valid pixel pairs used by the difference estimate.
    pub pairs: usize,
    /// Valid pixels.
    pub valid: usize,
}

/// Checks a map and a mask and returns the validity of each pixel (finite and in the mask).
fn validity(
    op: &'static str,
    map: &[f32],
    h: usize,
    w: usize,
    valid: Option<&[bool]>,
) -> Result<Vec<bool>> {
    if map.len() != h * w || h == 0 || w == 0 {
        return Err(Error::arg(
            op,
            format!("{} values for a {h}x{w} map", map.len()),
        ));
    }
    if let Some(v) = valid {
        if v.len() != map.len() {
            return Err(Error::arg(
                op,
                format!("mask of {} pixels for a map of {}", v.len(), map.len()),
            ));
        }
    }
    Ok(map
        .iter()
        .enumerate()
        .map(|(i, x)| x.is_finite() && valid.is_none_or(|v| v[i]))
        .collect())
}

/// [`validity`] of a list of any length (no shape).
fn validity_flat(op: &'static str, data: &[f32], valid: Option<&[bool]>) -> Result<Vec<bool>> {
    if let Some(v) = valid {
        if v.len() != data.len() {
            return Err(Error::arg(
                op,
                format!("mask of {} pixels for {} values", v.len(), data.len()),
            ));
        }
    }
    Ok(data
        .iter()
        .enumerate()
        .map(|(i, x)| x.is_finite() && valid.is_none_or(|v| v[i]))
        .collect())
}

/// `1.4826 MAD(d) / sqrt 2` of a list of differences; `None` when empty.
fn sigma_from_differences(d: &mut [f64]) -> Option<f64> {
    if d.is_empty() {
        return None;
    }
    let med = median(d);
    let mut dev: Vec<f64> = d.iter().map(|x| (x - med).abs()).collect();
    Some(1.4826 * median(&mut dev) / std::f64::consts::SQRT_2)
}

/// The white-noise level of a map `(h, w)` row-major, from its pixel differences and from its
/// spectrum (module docs). `valid` (same size) marks the pixels to use; non-finite pixels are
/// never used. Errors when no pair of neighbouring valid pixels exists.
pub fn noise_floor(map: &[f32], h: usize, w: usize, valid: Option<&[bool]>) -> Result<NoiseFloor> {
    let ok = validity("noise floor", map, h, w, valid)?;
    let mut dx = Vec::new();
    let mut dy = Vec::new();
    for r in 0..h {
        for c in 0..w {
            let i = r * w + c;
            if !ok[i] {
                continue;
            }
            if c + 1 < w && ok[i + 1] {
                dx.push(map[i + 1] as f64 - map[i] as f64);
            }
            if r + 1 < h && ok[i + w] {
                dy.push(map[i + w] as f64 - map[i] as f64);
            }
        }
    }
    let (nx, ny) = (dx.len(), dy.len());
    let sx = sigma_from_differences(&mut dx);
    let sy = sigma_from_differences(&mut dy);
    let sigma_diff = match (sx, sy) {
        (Some(a), Some(b)) => ((nx as f64 * a * a + ny as f64 * b * b) / (nx + ny) as f64).sqrt(),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => {
            return Err(Error::arg(
                "noise floor",
                "no pair of neighbouring valid pixels",
            ))
        }
    };
    // second differences b(i-1) - 2 b(i) + b(i+1) (variance 6 sigma^2): a field's gradient
    // cancels, so steep but smooth structure (edges seen at a standoff of a few pixels) adds
    // less than to the first differences; the smaller of the two is the less biased
    let mut d2: Vec<f64> = second_differences(map, h, w, &ok)
        .into_iter()
        .flatten()
        .filter(|v| v.is_finite())
        .collect();
    // sigma_from_differences divides by sqrt 2; the second difference needs sqrt 6
    let sigma_diff2 = sigma_from_differences(&mut d2).map(|s| s / 3f64.sqrt());
    let nvalid = ok.iter().filter(|&&v| v).count();
    Ok(NoiseFloor {
        sigma: sigma_diff2.map_or(sigma_diff, |s2| s2.min(sigma_diff)),
        sigma_diff,
        sigma_diff2: sigma_diff2.unwrap_or(f64::NAN),
        sigma_diff_x: sx.unwrap_or(f64::NAN),
        sigma_diff_y: sy.unwrap_or(f64::NAN),
        sigma_spectrum: spectral_sigma(map, h, w, &ok, nvalid)?,
        pairs: nx + ny,
        valid: nvalid,
    })
}

/// The second differences `b(i-1) - 2 b(i) + b(i+1)` centred on each pixel, along x and along
/// y, over valid pixels (NaN where the three pixels are not all valid or the pixel is on the
/// map's edge).
fn second_differences(map: &[f32], h: usize, w: usize, ok: &[bool]) -> Vec<[f64; 2]> {
    let mut d2 = vec![[f64::NAN; 2]; h * w];
    for r in 0..h {
        for c in 0..w {
            let i = r * w + c;
            if c >= 1 && c + 1 < w && ok[i - 1] && ok[i] && ok[i + 1] {
                d2[i][0] = map[i - 1] as f64 - 2.0 * map[i] as f64 + map[i + 1] as f64;
            }
            if r >= 1 && r + 1 < h && ok[i - w] && ok[i] && ok[i + w] {
                d2[i][1] = map[i - w] as f64 - 2.0 * map[i] as f64 + map[i + w] as f64;
            }
        }
    }
    d2
}

/// The unnormalised spectrum of the valid pixels (others zero) and `|q|` per coefficient
/// (cycles per pixel).
fn spectrum(values: &[f64], h: usize, w: usize) -> Result<(Vec<C32>, Vec<f64>)> {
    let data: Vec<C32> = values.iter().map(|&v| C32::new(v as f32, 0.0)).collect();
    let spec = no_grad(|| Tensor::from_shape_vec_c(&[h, w], data)?.fft2())?.to_vec_c()?;
    let (qy, qx) = (fftfreq(h, 1.0), fftfreq(w, 1.0));
    let q = qy
        .iter()
        .flat_map(|&y| qx.iter().map(move |&x| (x * x + y * y).sqrt()))
        .collect();
    Ok((spec, q))
}

/// The spectral estimate of [`noise_floor`].
fn spectral_sigma(map: &[f32], h: usize, w: usize, ok: &[bool], nvalid: usize) -> Result<f64> {
    if nvalid == 0 {
        return Ok(f64::NAN);
    }
    let (cx, cy) = ((w as f64 - 1.0) / 2.0, (h as f64 - 1.0) / 2.0);
    let plane = fit_plane(map, h, w, |r, c| ok[r * w + c]).unwrap_or([0.0; 3]);
    let values: Vec<f64> = map
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            if ok[i] {
                v as f64
                    - plane[0]
                    - plane[1] * ((i % w) as f64 - cx)
                    - plane[2] * ((i / w) as f64 - cy)
            } else {
                0.0
            }
        })
        .collect();
    let (spec, q) = spectrum(&values, h, w)?;
    let mut outer: Vec<f64> = spec
        .iter()
        .zip(&q)
        .filter(|(_, &q)| q >= 0.25)
        .map(|(z, _)| z.norm_sqr() as f64)
        .collect();
    if outer.is_empty() {
        return Ok(f64::NAN);
    }
    Ok((median(&mut outer) / std::f64::consts::LN_2 / nvalid as f64).sqrt())
}

/// A per-pixel noise level (same units as the map) for maps whose noise is not stationary
/// (scanning-NV maps are noisier where the photon count drops, e.g. towards a scan's corners):
/// the robust second-difference estimate of [`noise_floor`] (`1.4826 MAD / sqrt 6`, the MAD of
/// the differences along x and y about their median) taken in a `window` x
/// `window` neighbourhood, evaluated on a grid of step `window / 4` and interpolated
/// bilinearly; windows with fewer than 16 differences borrow the global estimate. Signal
/// gradients cancel in second differences and the median ignores the few steep edges, so the
/// map follows the noise rather than the field. `window` >= 5.
pub fn noise_map(
    map: &[f32],
    h: usize,
    w: usize,
    valid: Option<&[bool]>,
    window: usize,
) -> Result<Vec<f64>> {
    if window < 5 {
        return Err(Error::arg(
            "noise map",
            format!("window must be >= 5 px, got {window}"),
        ));
    }
    let ok = validity("noise map", map, h, w, valid)?;
    let d2 = second_differences(map, h, w, &ok);
    let sigma_of = |v: &mut Vec<f64>| -> f64 {
        sigma_from_differences(v).map_or(f64::NAN, |s| s / 3f64.sqrt())
    };
    let mut all: Vec<f64> = d2
        .iter()
        .flatten()
        .copied()
        .filter(|v| v.is_finite())
        .collect();
    let global = sigma_of(&mut all);
    if !global.is_finite() {
        return Err(Error::arg(
            "noise map",
            "no three neighbouring valid pixels in a row or column",
        ));
    }
    let step = (window / 4).max(1);
    let half = window / 2;
    let grid = |n: usize| -> Vec<usize> {
        let mut g: Vec<usize> = (0..n).step_by(step).collect();
        if g.last() != Some(&(n - 1)) {
            g.push(n - 1);
        }
        g
    };
    let (gr, gc) = (grid(h), grid(w));
    let mut coarse = vec![global; gr.len() * gc.len()];
    let mut buf = Vec::with_capacity(2 * window * window);
    for (a, &r0) in gr.iter().enumerate() {
        for (b, &c0) in gc.iter().enumerate() {
            buf.clear();
            for r in r0.saturating_sub(half)..(r0 + half + 1).min(h) {
                for c in c0.saturating_sub(half)..(c0 + half + 1).min(w) {
                    buf.extend(d2[r * w + c].iter().copied().filter(|v| v.is_finite()));
                }
            }
            if buf.len() >= 16 {
                let s = sigma_of(&mut buf);
                if s.is_finite() && s > 0.0 {
                    coarse[a * gc.len() + b] = s;
                }
            }
        }
    }
    // bilinear interpolation between the grid nodes
    let locate = |g: &[usize], x: usize| -> (usize, f64) {
        let k = g
            .partition_point(|&v| v <= x)
            .saturating_sub(1)
            .min(g.len().saturating_sub(2));
        if g.len() < 2 {
            return (0, 0.0);
        }
        let t = (x as f64 - g[k] as f64) / (g[k + 1] - g[k]) as f64;
        (k, t.clamp(0.0, 1.0))
    };
    let at = |a: usize, b: usize| coarse[a.min(gr.len() - 1) * gc.len() + b.min(gc.len() - 1)];
    let mut out = vec![0f64; h * w];
    for r in 0..h {
        let (a, ty) = locate(&gr, r);
        for c in 0..w {
            let (b, tx) = locate(&gc, c);
            let top = at(a, b) * (1.0 - tx) + at(a, b + 1) * tx;
            let bot = at(a + 1, b) * (1.0 - tx) + at(a + 1, b + 1) * tx;
            out[r * w + c] = top * (1.0 - ty) + bot * ty;
        }
    }
    Ok(out)
}

/// `chi^2` per pixel: the mean of `(residual / sigma)^2` over the valid, finite pixels.
pub fn chi2_per_pixel(residual: &[f32], sigma: f64, valid: Option<&[bool]>) -> Result<f64> {
    if !(sigma.is_finite() && sigma > 0.0) {
        return Err(Error::arg(
            "chi2",
            format!("sigma must be positive, got {sigma}"),
        ));
    }
    let ok = validity_flat("chi2", residual, valid)?;
    let (s, n) = residual
        .iter()
        .zip(&ok)
        .filter(|(_, &v)| v)
        .fold((0.0, 0usize), |(s, n), (&r, _)| {
            (s + (r as f64).powi(2), n + 1)
        });
    if n == 0 {
        return Err(Error::arg("chi2", "no valid pixel"));
    }
    Ok(s / n as f64 / (sigma * sigma))
}

/// The residual's mean power at low wave numbers over the white-noise expectation: the mean of
/// `|R(k)|^2` over the coefficients with `|q| < k_fraction / 2` cycles per pixel (the Nyquist
/// wave number is 1/2), `k = 0` included (an offset left in the residual is structure too),
/// divided by `n sigma^2` (n valid pixels; non-finite pixels count as zero and invalid). About
/// 1 (within `1/sqrt(count)`) for a white residual of standard deviation `sigma`, much more when
/// the model leaves smooth structure. `k_fraction` in `(0, 1]`.
pub fn lowk_excess(
    residual: &[f32],
    h: usize,
    w: usize,
    sigma: f64,
    k_fraction: f64,
) -> Result<f64> {
    let ok = validity("low-k excess", residual, h, w, None)?;
    if !(sigma.is_finite() && sigma > 0.0) {
        return Err(Error::arg(
            "low-k excess",
            format!("sigma must be positive, got {sigma}"),
        ));
    }
    if !(k_fraction > 0.0 && k_fraction <= 1.0) {
        return Err(Error::arg(
            "low-k excess",
            format!("k_fraction must be in (0, 1], got {k_fraction}"),
        ));
    }
    let n = ok.iter().filter(|&&v| v).count();
    if n == 0 {
        return Err(Error::arg("low-k excess", "no finite pixel"));
    }
    let values: Vec<f64> = residual
        .iter()
        .zip(&ok)
        .map(|(&r, &v)| if v { r as f64 } else { 0.0 })
        .collect();
    let (spec, q) = spectrum(&values, h, w)?;
    let (s, count) = spec
        .iter()
        .zip(&q)
        .filter(|(_, &q)| q < 0.5 * k_fraction)
        .fold((0.0, 0usize), |(s, c), (z, _)| {
            (s + z.norm_sqr() as f64, c + 1)
        });
    Ok(s / count as f64 / (n as f64 * sigma * sigma))
}

/// A model against the zero field, over the valid pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ZeroFieldCheck {
    /// `sum (data - model)^2`.
    pub sse_model: f64,
    /// `sum data^2`: the misfit of predicting no field at all.
    pub sse_zero: f64,
    /// `sse_model >= sse_zero`: the model explains nothing (or less than nothing).
    pub worse_than_zero: bool,
    /// Valid pixels compared.
    pub pixels: usize,
}

/// Compares a model map with the zero field over the pixels valid in `valid` and finite in
/// both maps.
pub fn compare_with_zero(
    data: &[f32],
    model: &[f32],
    valid: Option<&[bool]>,
) -> Result<ZeroFieldCheck> {
    if data.len() != model.len() {
        return Err(Error::arg(
            "zero-field check",
            format!("data of {} pixels, model of {}", data.len(), model.len()),
        ));
    }
    let ok = validity_flat("zero-field check", data, valid)?;
    let (mut sm, mut s0, mut n) = (0.0, 0.0, 0usize);
    for ((&d, &m), &v) in data.iter().zip(model).zip(&ok) {
        if v && m.is_finite() {
            sm += (d as f64 - m as f64).powi(2);
            s0 += (d as f64).powi(2);
            n += 1;
        }
    }
    if n == 0 {
        return Err(Error::arg("zero-field check", "no valid pixel"));
    }
    Ok(ZeroFieldCheck {
        sse_model: sm,
        sse_zero: s0,
        worse_than_zero: sm >= s0,
        pixels: n,
    })
}

/// What the residual of a model says: [`diagnose`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Diagnostics {
    /// The noise level used (given, or [`noise_floor`]'s `sigma` of the data).
    pub sigma: f64,
    /// [`chi2_per_pixel`] of `data - model`.
    pub chi2_per_pixel: f64,
    /// [`lowk_excess`] of `data - model`.
    pub lowk_excess: f64,
    /// The model against the zero field.
    pub zero_field: ZeroFieldCheck,
}

/// Residual diagnostics of a model map against data `(h, w)`: chi^2 per pixel, the low-k
/// excess below `k_fraction` of Nyquist, and the zero-field comparison, over the valid pixels.
/// `sigma = None` estimates the noise from the data's pixel differences.
pub fn diagnose(
    data: &[f32],
    model: &[f32],
    h: usize,
    w: usize,
    sigma: Option<f64>,
    valid: Option<&[bool]>,
    k_fraction: f64,
) -> Result<Diagnostics> {
    let ok = validity("diagnostics", data, h, w, valid)?;
    if model.len() != data.len() {
        return Err(Error::arg(
            "diagnostics",
            format!("data of {} pixels, model of {}", data.len(), model.len()),
        ));
    }
    let sigma = match sigma {
        Some(s) => s,
        None => noise_floor(data, h, w, valid)?.sigma,
    };
    let residual: Vec<f32> = data
        .iter()
        .zip(model)
        .zip(&ok)
        .map(|((&d, &m), &v)| if v { d - m } else { f32::NAN })
        .collect();
    Ok(Diagnostics {
        sigma,
        chi2_per_pixel: chi2_per_pixel(&residual, sigma, None)?,
        lowk_excess: lowk_excess(&residual, h, w, sigma, k_fraction)?,
        zero_field: compare_with_zero(data, model, valid)?,
    })
}
