//! Classical Fourier inversion B_NV -> M for a magnetisation along a known direction (what
//! qdmpy / QDMlab users compare with), and the areal magnetisation that NV papers report.
//!
//! With `M(r) = m(r) u` for a known unit vector `u`, the forward model (SPEC section 2) reads
//! `B_NV(k) = K_u(k) m(k)` with `K_u = sum_c u_c K_c`, the per-component B_NV kernels of
//! [`NvForward`](super::forward::NvForward) built by the same code. Hence
//! `m(k) = B_NV(k) / K_u(k)`, regularised by a [`Filter`].
//!
//! `K_u` factorises as `-(mu0/2) (1-e^{-kt}) e^{-kd} (k^.n_xy + i n_z)(k^.u_xy + i u_z)`
//! (`k^ = k/|k|`): a radial envelope `(mu0/2)(1-e^{-kt}) e^{-kd}` (thin-film factor times the
//! standoff decay) times an angular factor of at most 1. The angular factor vanishes where `k` is perpendicular to the in-plane part of `u`
//! when `u_z = 0` (an in-plane magnetisation that is constant along `u` has no charges) or of
//! the NV axis when `n_z = 0`. The inversion divides only where the angular factor
//! `|K_u| / envelope` is at least `guard` and sets the other coefficients to zero; `k = 0` is
//! always lost (the field of a film does not see its mean magnetisation).
//!
//! Steps: (1) a background is removed from the map ([`Background`]; the default is a plane
//! fitted by least squares to the pixels of a border band, returned in [`Inversion::background`]);
//! non-finite pixels are set to the background (zero after removal). (2) The map is zero-padded
//! to `(pad h, pad w)` (the geometry's `pad`), Fourier transformed, divided by `K_u` under the
//! filter, transformed back and cropped. (3) The components the data cannot fix (`k = 0` and,
//! for an in-plane `u`, the line `k ⊥ u`) are set by [`Level`]: by default so that `m` averages
//! to zero over the border band, i.e. the magnet is assumed to lie inside the map.

use super::forward::{bnv_kernels, NvGeometry};
use crate::engine::autograd::no_grad;
use crate::engine::storage::C32;
use crate::engine::tensor::Tensor;
use crate::error::{Error, Result};
use crate::physics::constants::MU_B;
use crate::physics::signal::fit_plane;
use num_complex::Complex64;

/// How the division by the kernel is regularised.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Filter {
    /// Plain division `B_NV / K_u` (with the angular guard). Only for noise-free data.
    None,
    /// `W(k) B_NV / K_u` with the Hanning window `W = 0.5 (1 + cos(pi k / kc))` for
    /// `k < kc = 2 pi / wavelength` and 0 above (wavelength in metres). Noise is amplified by
    /// at most about `e^{kc d}` before the window takes over; `wavelength` of one to two
    /// standoffs is usual.
    Hanning {
        /// The shortest wavelength kept (m).
        wavelength: f64,
    },
    /// Tikhonov: `conj(K_u) / (|K_u|^2 + eps(k)^2) B_NV` with `eps(k) = e^{-k_s d} T(k)`,
    /// `T = (mu0/2)(1 - e^{-kt})` the thin-film factor of the kernel (`K_u = T e^{-kd} a(k^)`,
    /// `|a| <= 1` the angular factor). The filter is then
    /// `|G|^2 / (|G|^2 + e^{-2 k_s d})` applied to `B_NV / K_u`, `G = e^{-kd} a`: one half where
    /// the standoff attenuation (times the angular factor) equals that at the scale `k_s`, close
    /// to 1 below it, and smooth at the zeros of `a` (the angular guard is not applied). A
    /// constant eps would also damp the longest wavelengths, where `|K_u| ~ k t` vanishes with
    /// k, and bias the level of a whole flake. [`Inversion::filter_parameter`] is
    /// `e^{-k_s d}`.
    Tikhonov {
        /// The wave number scale `k_s` (rad/m) at which the filter is one half.
        k: f64,
    },
}

/// What is removed from the map before the inversion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Background {
    /// Nothing (the map must have no offset).
    None,
    /// The mean of the valid pixels of the whole map.
    Mean,
    /// A plane `offset + sx x + sy y` fitted by least squares to the valid pixels of the border
    /// band (falls back to the band's mean when the band cannot fix a plane).
    BorderPlane,
}

/// How the components that the data cannot fix are set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// Left at zero on the padded grid: `m` has zero mean over the padded map (the plain FFT
    /// result; the magnet then sits on a negative level of its area over the padded area).
    Padded,
    /// A constant chosen so that `m` averages to zero over the border band.
    BorderMean,
    /// For each line parallel to the in-plane part of `u` (one-pixel bins across it), a constant
    /// chosen so that `m` averages to zero over that line's border-band pixels: removes the
    /// invisible stripes of an in-plane magnetisation. Equals `BorderMean` when `u = z`.
    BorderLines,
    /// `BorderLines` when `|u_z| < 0.5` (polar angle above 60 deg: the line `k ⊥ u` is nearly
    /// invisible), else `BorderMean`.
    Auto,
}

/// Settings of [`invert`].
#[derive(Clone, Debug, PartialEq)]
pub struct InversionConfig {
    /// The magnetisation direction `u` (normalised by [`invert`]; must be non-zero).
    pub direction: [f64; 3],
    /// The regularisation.
    pub filter: Filter,
    /// The background removed first.
    pub background: Background,
    /// How the unrecoverable components are set.
    pub level: Level,
    /// Width of the border band in pixels; `None`: `max(2, min(h, w) / 20)`.
    pub border: Option<usize>,
    /// Coefficients whose angular factor `|K_u| / envelope` is below this are set to zero
    /// (default 1e-3; `Filter::Tikhonov` ignores it).
    pub guard: f64,
}

impl InversionConfig {
    /// A configuration with the given direction and filter, a border-plane background, the
    /// `Auto` level, the automatic border band and guard 1e-3.
    pub fn new(direction: [f64; 3], filter: Filter) -> InversionConfig {
        InversionConfig {
            direction,
            filter,
            background: Background::BorderPlane,
            level: Level::Auto,
            border: None,
            guard: 1e-3,
        }
    }
}

/// The Hanning wavelength used when none is given (the direction scan, the automatic
/// support, `nv invert --filter hanning`): `max(2 standoff, 3 pixels)`.
pub fn default_wavelength(geom: &NvGeometry) -> f64 {
    (2.0 * geom.standoff).max(3.0 * geom.pixel)
}

/// The unit vector `(sin th cos ph, sin th sin ph, cos th)` of a polar angle from the sample
/// normal and an azimuth from +x, in degrees.
pub fn direction_from_angles(theta_deg: f64, phi_deg: f64) -> [f64; 3] {
    let (th, ph) = (theta_deg.to_radians(), phi_deg.to_radians());
    [th.sin() * ph.cos(), th.sin() * ph.sin(), th.cos()]
}

/// The result of [`invert`].
#[derive(Clone, Debug)]
pub struct Inversion {
    /// Rows.
    pub h: usize,
    /// Columns.
    pub w: usize,
    /// The amplitude `m` along `u` (H, W) row-major, A/m (for the geometry's thickness; only
    /// `m t` is determined when the film is much thinner than the standoff).
    pub m: Vec<f32>,
    /// `m u` (3, H, W), A/m.
    pub magnetization: Vec<f32>,
    /// The unit direction used.
    pub direction: [f64; 3],
    /// The removed background `(offset T, slope along x T/m, slope along y T/m)` with
    /// `x = col * pixel`, `y = row * pixel`.
    pub background: [f64; 3],
    /// The Hanning cut-off `kc` (rad/m), the Tikhonov `e^{-k_s d}` (dimensionless), 0 for
    /// `Filter::None`.
    pub filter_parameter: f64,
    /// Fraction of the non-zero wave numbers set to zero by the angular guard.
    pub guarded_fraction: f64,
    /// The border band width used (pixels).
    pub border: usize,
    /// The level actually applied (`Auto` resolved).
    pub level: Level,
}

/// The border band: pixels within `b` of the map's edge.
pub(crate) fn in_border(r: usize, c: usize, h: usize, w: usize, b: usize) -> bool {
    r < b || c < b || r + b >= h || c + b >= w
}

/// The automatic border band width `max(2, min(h, w) / 20)` (never more than half the map).
pub(crate) fn auto_border(h: usize, w: usize) -> usize {
    (h.min(w) / 20).max(2).min(h.min(w).div_ceil(2))
}

/// Least-squares plane `offset + sx x + sy y` (`x = col * pixel`, `y = row * pixel`) through the
/// finite pixels of the border band of width `border`; the band's mean (slopes 0) when fewer
/// than three pixels or a degenerate layout. Errors when the band has no finite pixel.
pub fn border_plane(
    map: &[f32],
    h: usize,
    w: usize,
    pixel: f64,
    border: usize,
) -> Result<[f64; 3]> {
    if map.len() != h * w || h == 0 || w == 0 {
        return Err(Error::arg(
            "border plane",
            format!("{} values for a {h}x{w} map", map.len()),
        ));
    }
    let coef = fit_plane(map, h, w, |r, c| in_border(r, c, h, w, border))
        .ok_or_else(|| Error::arg("border plane", "no finite pixel in the border band"))?;
    // from centred pixel units to x = col * pixel, y = row * pixel
    let (cx, cy) = ((w as f64 - 1.0) / 2.0, (h as f64 - 1.0) / 2.0);
    Ok([
        coef[0] - coef[1] * cx - coef[2] * cy,
        coef[1] / pixel,
        coef[2] / pixel,
    ])
}

/// Checks a direction and returns it normalised.
fn unit(u: [f64; 3]) -> Result<[f64; 3]> {
    let n = u.iter().map(|x| x * x).sum::<f64>().sqrt();
    if !(n.is_finite() && n > 0.0) {
        return Err(Error::arg(
            "nv inversion",
            format!("direction must be a finite non-zero vector, got {u:?}"),
        ));
    }
    Ok(u.map(|x| x / n))
}

/// Zero-pads an (h, w) real map into the top-left corner of a (ph, pw) grid and Fourier
/// transforms it (unnormalised, NumPy's sign).
pub(crate) fn padded_fft(
    map: &[f64],
    h: usize,
    w: usize,
    ph: usize,
    pw: usize,
) -> Result<Vec<C32>> {
    let mut spec = vec![C32::new(0.0, 0.0); ph * pw];
    for r in 0..h {
        for c in 0..w {
            spec[r * pw + c] = C32::new(map[r * w + c] as f32, 0.0);
        }
    }
    no_grad(|| Tensor::from_shape_vec_c(&[ph, pw], spec)?.fft2())?.to_vec_c()
}

/// Inverse transform of a (ph, pw) spectrum, cropped to the top-left (h, w), real part.
pub(crate) fn cropped_ifft(
    spec: Vec<C32>,
    h: usize,
    w: usize,
    ph: usize,
    pw: usize,
) -> Result<Vec<f64>> {
    let out = no_grad(|| Tensor::from_shape_vec_c(&[ph, pw], spec)?.ifft2())?.to_vec_c()?;
    let mut m = Vec::with_capacity(h * w);
    for r in 0..h {
        m.extend(out[r * pw..r * pw + w].iter().map(|z| z.re as f64));
    }
    Ok(m)
}

/// Recovers the magnetisation amplitude along `cfg.direction` from a B_NV map `(h, w)`
/// (row-major, tesla; non-finite pixels allowed) and its geometry (module docs).
pub fn invert(
    bnv: &[f32],
    h: usize,
    w: usize,
    geom: &NvGeometry,
    cfg: &InversionConfig,
) -> Result<Inversion> {
    geom.validate()?;
    if bnv.len() != h * w || h == 0 || w == 0 {
        return Err(Error::arg(
            "nv inversion",
            format!("{} values for a {h}x{w} map", bnv.len()),
        ));
    }
    let u = unit(cfg.direction)?;
    if !(cfg.guard.is_finite() && (0.0..1.0).contains(&cfg.guard)) {
        return Err(Error::arg(
            "nv inversion",
            format!("guard must be in [0, 1), got {}", cfg.guard),
        ));
    }
    let positive = |name: &str, v: f64| {
        if v.is_finite() && v > 0.0 {
            Ok(())
        } else {
            Err(Error::arg(
                "nv inversion",
                format!("{name} must be positive, got {v}"),
            ))
        }
    };
    match cfg.filter {
        Filter::None => {}
        Filter::Hanning { wavelength } => positive("Hanning wavelength", wavelength)?,
        Filter::Tikhonov { k } => positive("Tikhonov k", k)?,
    }
    let border = match cfg.border {
        Some(b) if b == 0 || 2 * b > h.min(w) => {
            return Err(Error::arg(
                "nv inversion",
                format!("border band of {b} pixels does not fit a {h}x{w} map"),
            ))
        }
        Some(b) => b,
        None => auto_border(h, w),
    };
    if !bnv.iter().any(|v| v.is_finite()) {
        return Err(Error::arg("nv inversion", "the map has no finite pixel"));
    }
    // (1) background
    let background = match cfg.background {
        Background::None => [0.0; 3],
        Background::Mean => {
            let (s, n) = bnv
                .iter()
                .filter(|v| v.is_finite())
                .fold((0.0, 0usize), |(s, n), &v| (s + v as f64, n + 1));
            [s / n as f64, 0.0, 0.0]
        }
        Background::BorderPlane => border_plane(bnv, h, w, geom.pixel, border)?,
    };
    let px = geom.pixel;
    let data: Vec<f64> = (0..h * w)
        .map(|i| {
            let (r, c) = (i / w, i % w);
            let v = bnv[i];
            if v.is_finite() {
                v as f64
                    - background[0]
                    - background[1] * c as f64 * px
                    - background[2] * r as f64 * px
            } else {
                0.0
            }
        })
        .collect();
    // (2) padded Fourier division
    let (ph, pw) = (h * geom.pad, w * geom.pad);
    let spec = padded_fft(&data, h, w, ph, pw)?;
    let kern = bnv_kernels(ph, pw, geom);
    let ku: Vec<Complex64> = (0..ph * pw)
        .map(|i| (0..3).map(|c| kern.per_component[c][i] * u[c]).sum())
        .collect();
    let filter_parameter = match cfg.filter {
        Filter::None => 0.0,
        Filter::Hanning { wavelength } => 2.0 * std::f64::consts::PI / wavelength,
        Filter::Tikhonov { k } => (-k * geom.standoff).exp(),
    };
    let mut out = vec![C32::new(0.0, 0.0); ph * pw];
    let mut guarded = 0usize;
    for i in 1..ph * pw {
        let (k, kk, thin) = (kern.kmag[i], ku[i], kern.thin_film[i]);
        let env = thin * kern.decay[i];
        let b = Complex64::new(spec[i].re as f64, spec[i].im as f64);
        let guard_hit = !(env > 0.0 && kk.norm() >= cfg.guard * env);
        let mk = match cfg.filter {
            Filter::Tikhonov { .. } => {
                let den = kk.norm_sqr() + (filter_parameter * thin).powi(2);
                if den > 0.0 {
                    kk.conj() * b / den
                } else {
                    Complex64::new(0.0, 0.0)
                }
            }
            Filter::None | Filter::Hanning { .. } => {
                let win = match cfg.filter {
                    Filter::Hanning { .. } if k < filter_parameter => {
                        0.5 * (1.0 + (std::f64::consts::PI * k / filter_parameter).cos())
                    }
                    Filter::Hanning { .. } => 0.0,
                    _ => 1.0,
                };
                if guard_hit {
                    guarded += 1;
                    Complex64::new(0.0, 0.0)
                } else if win == 0.0 {
                    Complex64::new(0.0, 0.0)
                } else {
                    b / kk * win
                }
            }
        };
        out[i] = C32::new(mk.re as f32, mk.im as f32);
    }
    let mut m = cropped_ifft(out, h, w, ph, pw)?;
    // (3) the level of the unrecoverable components
    let level = match cfg.level {
        Level::Auto if u[2].abs() < 0.5 => Level::BorderLines,
        Level::Auto => Level::BorderMean,
        l => l,
    };
    match level {
        Level::Padded | Level::Auto => {}
        Level::BorderMean => {
            let (s, n) = border_sum(&m, bnv, h, w, border, |_, _| 0);
            let off = if n[0] > 0 { s[0] / n[0] as f64 } else { 0.0 };
            m.iter_mut().for_each(|v| *v -= off);
        }
        Level::BorderLines => subtract_border_lines(&mut m, bnv, h, w, border, u),
    }
    let m32: Vec<f32> = m.iter().map(|&v| v as f32).collect();
    let mut magnetization = Vec::with_capacity(3 * h * w);
    for uc in u {
        magnetization.extend(m.iter().map(|&v| (v * uc) as f32));
    }
    Ok(Inversion {
        h,
        w,
        m: m32,
        magnetization,
        direction: u,
        background,
        filter_parameter,
        guarded_fraction: guarded as f64 / (ph * pw - 1).max(1) as f64,
        border,
        level,
    })
}

/// Sums of `m` over the finite border-band pixels per bin (`bin(r, c)` < bins), and counts.
fn border_sum(
    m: &[f64],
    bnv: &[f32],
    h: usize,
    w: usize,
    border: usize,
    bin: impl Fn(usize, usize) -> usize,
) -> (Vec<f64>, Vec<usize>) {
    let mut s = Vec::new();
    let mut n = Vec::new();
    for r in 0..h {
        for c in 0..w {
            if !in_border(r, c, h, w, border) || !bnv[r * w + c].is_finite() {
                continue;
            }
            let b = bin(r, c);
            if b >= s.len() {
                s.resize(b + 1, 0.0);
                n.resize(b + 1, 0);
            }
            s[b] += m[r * w + c];
            n[b] += 1;
        }
    }
    if s.is_empty() {
        (vec![0.0], vec![0])
    } else {
        (s, n)
    }
}

/// [`Level::BorderLines`]: one-pixel bins of `s = (-u_y x + u_x y) / pixel` (constant along the
/// in-plane part of `u`); each bin's border-band mean is subtracted from its pixels (bins with
/// no border pixel take the nearest bin's value).
fn subtract_border_lines(
    m: &mut [f64],
    bnv: &[f32],
    h: usize,
    w: usize,
    border: usize,
    u: [f64; 3],
) {
    let nxy = (u[0] * u[0] + u[1] * u[1]).sqrt();
    let (ex, ey) = if nxy > 1e-12 {
        (-u[1] / nxy, u[0] / nxy)
    } else {
        (0.0, 0.0) // u = z: one bin, the border mean
    };
    let corners = [
        (0.0, 0.0),
        (w as f64, 0.0),
        (0.0, h as f64),
        (w as f64, h as f64),
    ];
    let smin = corners
        .iter()
        .map(|&(x, y)| ex * x + ey * y)
        .fold(f64::INFINITY, f64::min)
        - 1.0;
    let bin = |r: usize, c: usize| (ex * c as f64 + ey * r as f64 - smin).floor().max(0.0) as usize;
    let (s, n) = border_sum(m, bnv, h, w, border, bin);
    let filled: Vec<Option<f64>> = s
        .iter()
        .zip(&n)
        .map(|(&s, &n)| (n > 0).then(|| s / n as f64))
        .collect();
    let level_of = |b: usize| -> f64 {
        if let Some(Some(v)) = filled.get(b) {
            return *v;
        }
        // nearest bin with data
        (1..filled.len().max(b + 1) + 1)
            .find_map(|d| {
                let lo = b
                    .checked_sub(d)
                    .and_then(|i| filled.get(i).copied().flatten());
                let hi = filled.get(b + d).copied().flatten();
                lo.or(hi)
            })
            .unwrap_or(0.0)
    };
    for r in 0..h {
        for c in 0..w {
            m[r * w + c] -= level_of(bin(r, c));
        }
    }
}

/// The areal magnetisation `M t` (A) of a magnetisation map (A/m) for a film of thickness `t`
/// (m): what a stray field of a film much thinner than the standoff determines.
pub fn areal_magnetization(m: &[f32], thickness: f64) -> Vec<f32> {
    m.iter().map(|&v| (v as f64 * thickness) as f32).collect()
}

/// `M t` in Bohr magnetons per square nanometre: `M t / mu_B * 1e-18` (SPEC section 9).
pub fn amperes_to_mub_per_nm2(mt: f64) -> f64 {
    mt / MU_B * 1e-18
}

/// The areal magnetisation of a map (A/m, thickness in m) in mu_B/nm^2.
pub fn areal_magnetization_mub_nm2(m: &[f32], thickness: f64) -> Vec<f32> {
    m.iter()
        .map(|&v| amperes_to_mub_per_nm2(v as f64 * thickness) as f32)
        .collect()
}
