//! TIE from a through-focal series (SPEC section 10): the longitudinal derivative of the
//! intensity from several images at their own defoci, then the inverse Laplacian of SITIE
//! (Tikhonov filter, mirror-symmetric extension), and the flip / unflip separation of the
//! magnetic and electrostatic phases.
//!
//! With lengths in pixels and PyLorentz's defocus sign (negative = underfocus), the transport
//! of intensity reads `div(I0 grad phi) = (2 pi / lambda) dI/d(df)`; for a uniform in-focus
//! intensity this is `laplacian(phi) = (2 pi / lambda) dI/d(df) / I0`, SITIE's equation in the
//! small-defocus limit (`dI/d(df) ~ (I(df) - I0) / df`).
//!
//! - The derivative is the least-squares slope of `I(df)` per pixel over the series (for
//!   `-D, 0, +D` exactly `(I(+D) - I(-D)) / 2D`); two images at different defoci suffice.
//! - `I0` is the in-focus image's mean when the series has a `df = 0` image, else the mean of
//!   all images' means. [`TieIntensity::InFocus`] uses the in-focus image itself (samples of
//!   varying thickness or absorption): `phi = lap^-1 div( grad(lap^-1 rhs) / I_infocus )`
//!   (Paganin & Nugent's solution, the curl-free part).
//! - Flip series: the sample turned over reverses the magnetic phase and mirrors the image, the
//!   electrostatic phase keeps its sign. The flipped images are mirrored back (about
//!   [`FlipAxis`]), reconstructed, and that reconstruction is shifted onto the unflipped one
//!   by the sub-pixel cross-correlation of the two series' in-focus images (amplitude
//!   contrast, shared by both and free of magnetic contrast, which is what microscopists align
//!   on), or of their mean images when there is no in-focus image; then
//!   `phi_m = (phi - phi_flip) / 2`, `phi_e = (phi + phi_flip) / 2`.

use super::align::apply_shift;
use super::optics::Microscope;
use super::sitie::{inverse_laplacian, min_subtracted, mirror_extend, SitieConfig};
use crate::engine::autograd::no_grad;
use crate::engine::storage::C32;
use crate::engine::tensor::Tensor;
use crate::error::{Error, Result};
use crate::physics::signal::fftfreq;
use std::f64::consts::PI;

/// Which intensity divides the transport term.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TieIntensity {
    /// A constant `I0` (in-focus mean, else the series mean): thin films of uniform thickness.
    #[default]
    Uniform,
    /// The in-focus image itself (needs a `df = 0` image): varying thickness or absorption.
    InFocus,
}

/// Settings of [`tie`] and [`tie_flip`].
#[derive(Clone, Debug, PartialEq, Default)]
pub struct TieConfig {
    /// Tikhonov filter and mirror-symmetric extension, as for SITIE.
    pub solver: SitieConfig,
    /// Which intensity divides the transport term.
    pub intensity: TieIntensity,
    /// [`tie_flip`]: the axis about which the flipped images are mirrored back.
    pub flip_axis: FlipAxis,
}

/// The axis about which a flipped series is mirrored back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FlipAxis {
    /// Columns reversed (`fliplr`: the sample turned over about the image's y axis).
    #[default]
    LeftRight,
    /// Rows reversed (`flipud`: turned over about the x axis).
    UpDown,
}

/// The result of [`tie_flip`].
#[derive(Clone, Debug, PartialEq)]
pub struct FlipPhases {
    /// `(phi - phi_flip) / 2` (rad, minimum 0).
    pub magnetic: Vec<f32>,
    /// `(phi + phi_flip) / 2` (rad, minimum 0).
    pub electrostatic: Vec<f32>,
    /// The shift (rows, columns) applied to the mirrored-back flipped reconstruction.
    pub shift: (f64, f64),
}

/// Checks a focal series: one defocus per image, every image `n` finite pixels, finite defoci.
pub(crate) fn check_series(
    op: &'static str,
    images: &[&[f32]],
    defoci: &[f64],
    n: usize,
) -> Result<()> {
    if images.len() != defoci.len() {
        return Err(Error::arg(
            op,
            format!(
                "{} images but {} defocus values",
                images.len(),
                defoci.len()
            ),
        ));
    }
    for (k, (im, df)) in images.iter().zip(defoci).enumerate() {
        if im.len() != n {
            return Err(Error::arg(
                op,
                format!("image {k} has {} pixels, expected {n}", im.len()),
            ));
        }
        if let Some(i) = im.iter().position(|v| !v.is_finite()) {
            return Err(Error::arg(
                op,
                format!("image {k}: non-finite pixel at {i}"),
            ));
        }
        if !df.is_finite() {
            return Err(Error::arg(op, format!("defocus {k} is not finite")));
        }
    }
    Ok(())
}

/// The least-squares slope `dI/d(df)` per pixel (intensity per pixel of defocus) of a series,
/// `I0`, and the index of the in-focus image when there is one.
fn derivative(
    images: &[&[f32]],
    defoci_px: &[f64],
    n: usize,
) -> Result<(Vec<f32>, f64, Option<usize>)> {
    const OP: &str = "tie";
    if images.len() < 2 {
        return Err(Error::arg(
            OP,
            format!(
                "a through-focal series needs at least 2 images, got {}",
                images.len()
            ),
        ));
    }
    check_series(OP, images, defoci_px, n)?;
    let mean_df = defoci_px.iter().sum::<f64>() / defoci_px.len() as f64;
    let sxx: f64 = defoci_px.iter().map(|d| (d - mean_df).powi(2)).sum();
    let span = defoci_px.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
        - defoci_px.iter().cloned().fold(f64::INFINITY, f64::min);
    if sxx.is_nan() || sxx <= 0.0 || span <= 0.0 {
        return Err(Error::arg(
            OP,
            "the defoci must not all be equal (the derivative along the beam needs two planes)",
        ));
    }
    let means: Vec<f64> = images
        .iter()
        .map(|im| im.iter().map(|&v| v as f64).sum::<f64>() / n as f64)
        .collect();
    let infocus = defoci_px.iter().position(|&d| d.abs() < 1e-9 * span);
    let i0 = match infocus {
        Some(k) => means[k],
        None => means.iter().sum::<f64>() / means.len() as f64,
    };
    if i0.is_nan() || i0 <= 0.0 {
        return Err(Error::arg(OP, "the mean intensity must be positive"));
    }
    let weights: Vec<f64> = defoci_px.iter().map(|d| (d - mean_df) / sxx).collect();
    let mut d = vec![0f64; n];
    for (im, &wk) in images.iter().zip(&weights) {
        for (acc, &v) in d.iter_mut().zip(im.iter()) {
            *acc += wk * v as f64;
        }
    }
    Ok((d.into_iter().map(|v| v as f32).collect(), i0, infocus))
}

/// The spectral gradient `(d/dx, d/dy)` of a periodic `(h, w)` map (per pixel).
fn gradient(v: &[f32], h: usize, w: usize) -> Result<(Vec<f32>, Vec<f32>)> {
    let data: Vec<C32> = v.iter().map(|&x| C32::new(x, 0.0)).collect();
    let spec = no_grad(|| Tensor::from_shape_vec_c(&[h, w], data)?.fft2())?.to_vec_c()?;
    let (qy, qx) = (fftfreq(h, 1.0), fftfreq(w, 1.0));
    let mut gx = vec![C32::new(0.0, 0.0); h * w];
    let mut gy = gx.clone();
    for (r, &y) in qy.iter().enumerate() {
        for (c, &x) in qx.iter().enumerate() {
            let i = r * w + c;
            // d/dx <-> 2 pi i qx (the Nyquist terms dropped so the result stays real)
            let (x, y) = (
                if 2 * c == w { 0.0 } else { x },
                if 2 * r == h { 0.0 } else { y },
            );
            let s = spec[i];
            let ix = C32::new(0.0, (2.0 * PI * x) as f32);
            let iy = C32::new(0.0, (2.0 * PI * y) as f32);
            gx[i] = s * ix;
            gy[i] = s * iy;
        }
    }
    let back = |g: Vec<C32>| -> Result<Vec<f32>> {
        no_grad(|| {
            Tensor::from_shape_vec_c(&[h, w], g)?
                .ifft2()?
                .re()?
                .to_vec()
        })
    };
    Ok((back(gx)?, back(gy)?))
}

/// The phase (rad, (h, w), extended grid if symmetric) from a right-hand side
/// `(2 pi / lambda) dI/d(df)` (pixels), divided by `I0` or by the in-focus image.
fn solve(
    rhs: Vec<f32>,
    infocus: Option<&[f32]>,
    i0: f64,
    h: usize,
    w: usize,
    mic: &Microscope,
    cfg: &TieConfig,
) -> Result<Vec<f32>> {
    let qc = cfg.solver.qc.map(|q| q * mic.scale);
    let (eh, ew, rhs, infocus) = if cfg.solver.symmetric {
        (
            2 * h,
            2 * w,
            mirror_extend(&rhs, h, w),
            infocus.map(|f| mirror_extend(f, h, w)),
        )
    } else {
        (h, w, rhs, infocus.map(|f| f.to_vec()))
    };
    let phase = match infocus {
        None => {
            let scaled: Vec<f32> = rhs.iter().map(|&v| (v as f64 / i0) as f32).collect();
            inverse_laplacian(&scaled, eh, ew, qc)?
        }
        Some(f) => {
            // phi = lap^-1 div( grad(lap^-1 rhs) / I ), I floored at 5 % of its mean so that
            // dark pixels (holes in the support film excepted) do not blow up
            let psi = inverse_laplacian(&rhs, eh, ew, qc)?;
            let (gx, gy) = gradient(&psi, eh, ew)?;
            let floor = 0.05 * i0;
            let inv: Vec<f64> = f.iter().map(|&v| 1.0 / (v as f64).max(floor)).collect();
            let gx: Vec<f32> = gx
                .iter()
                .zip(&inv)
                .map(|(&g, &s)| (g as f64 * s) as f32)
                .collect();
            let gy: Vec<f32> = gy
                .iter()
                .zip(&inv)
                .map(|(&g, &s)| (g as f64 * s) as f32)
                .collect();
            let (dxx, _) = gradient(&gx, eh, ew)?;
            let (_, dyy) = gradient(&gy, eh, ew)?;
            let div: Vec<f32> = dxx.iter().zip(&dyy).map(|(a, b)| a + b).collect();
            inverse_laplacian(&div, eh, ew, None)?
        }
    };
    let mut out = Vec::with_capacity(h * w);
    for r in 0..h {
        out.extend_from_slice(&phase[r * ew..r * ew + w]);
    }
    Ok(out)
}

/// The phase before min-subtraction.
fn tie_raw(
    images: &[&[f32]],
    defoci_nm: &[f64],
    h: usize,
    w: usize,
    mic: &Microscope,
    cfg: &TieConfig,
) -> Result<Vec<f32>> {
    mic.validate()?;
    if h < 2 || w < 2 {
        return Err(Error::arg(
            "tie",
            format!("images must be at least 2x2, got {h}x{w}"),
        ));
    }
    if let Some(qc) = cfg.solver.qc {
        if !(qc.is_finite() && qc >= 0.0) {
            return Err(Error::arg("tie", format!("qc must be >= 0, got {qc}")));
        }
    }
    let defoci_px: Vec<f64> = defoci_nm.iter().map(|d| d / mic.scale).collect();
    let (d, i0, focus) = derivative(images, &defoci_px, h * w)?;
    let lam = mic.wavelength() / mic.scale;
    let rhs: Vec<f32> = d
        .iter()
        .map(|&v| (2.0 * PI / lam * v as f64) as f32)
        .collect();
    let infocus = match (cfg.intensity, focus) {
        (TieIntensity::Uniform, _) => None,
        (TieIntensity::InFocus, Some(k)) => Some(images[k]),
        (TieIntensity::InFocus, None) => {
            return Err(Error::arg(
                "tie",
                "the in-focus intensity mode needs an image at defocus 0 in the series",
            ))
        }
    };
    solve(rhs, infocus, i0, h, w, mic, cfg)
}

/// The phase (rad, `(h, w)`, minimum 0) from a through-focal series: `images[k]` recorded at
/// `defoci_nm[k]` (negative = underfocus; `mic.defocus` is not used), the other microscope
/// parameters from `mic` (module docs for the method).
///
/// ```
/// use magprior::ltem::{tie, LtemForward, Microscope, TieConfig};
/// let (h, w) = (32, 32);
/// let phase: Vec<f32> = (0..h * w)
///     .map(|i| (-(((i / w) as f32 - 16.0).powi(2) + ((i % w) as f32 - 16.0).powi(2)) / 40.0).exp())
///     .collect();
/// let mut mic = Microscope::siprad_demo();
/// let mut images = Vec::new();
/// for df in [-2e5, 0.0, 2e5] {
///     mic.defocus = df; // nm
///     images.push(LtemForward::new(h, w, &mic, 1)?.image_of(&phase, None)?);
/// }
/// let refs: Vec<&[f32]> = images.iter().map(|v| v.as_slice()).collect();
/// let rec = tie(&refs, &[-2e5, 0.0, 2e5], h, w, &mic, &TieConfig::default())?;
/// let r = magprior::ltem::metrics::pearson(&rec, &phase);
/// assert!(r > 0.95, "{r}");
/// # Ok::<(), magprior::Error>(())
/// ```
pub fn tie(
    images: &[&[f32]],
    defoci_nm: &[f64],
    h: usize,
    w: usize,
    mic: &Microscope,
    cfg: &TieConfig,
) -> Result<Vec<f32>> {
    Ok(min_subtracted(tie_raw(images, defoci_nm, h, w, mic, cfg)?))
}

/// The shift (rows, columns) that, applied to `g` with [`apply_shift`], brings it onto `f`:
/// the peak of the plain (energy-weighted, not whitened) cross-correlation of the mean-free
/// images within a quarter of each side, refined by a parabola through the peak and its
/// neighbours along each axis. Plain correlation because the two images share their strong,
/// smooth features while their noise is independent; a whitened (phase) correlation weights
/// the noisy high frequencies as much as those.
fn register(f: &[f32], g: &[f32], h: usize, w: usize) -> Result<(f64, f64)> {
    let spec = |v: &[f32]| -> Result<Vec<C32>> {
        let m = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
        let data: Vec<C32> = v
            .iter()
            .map(|&x| C32::new((x as f64 - m) as f32, 0.0))
            .collect();
        no_grad(|| Tensor::from_shape_vec_c(&[h, w], data)?.fft2())?.to_vec_c()
    };
    let (a, b) = (spec(f)?, spec(g)?);
    let prod: Vec<C32> = a.iter().zip(&b).map(|(x, y)| x * y.conj()).collect();
    let c = no_grad(|| {
        Tensor::from_shape_vec_c(&[h, w], prod)?
            .ifft2()?
            .re()?
            .to_vec()
    })?;
    let wrap = |i: usize, n: usize| -> i64 {
        if 2 * i > n {
            i as i64 - n as i64
        } else {
            i as i64
        }
    };
    let (mut best, mut at) = (f32::NEG_INFINITY, (0usize, 0usize));
    for r in 0..h {
        for col in 0..w {
            let (dy, dx) = (wrap(r, h), wrap(col, w));
            if 4 * dy.unsigned_abs() as usize > h || 4 * dx.unsigned_abs() as usize > w {
                continue;
            }
            let v = c[r * w + col];
            if v > best {
                (best, at) = (v, (r, col));
            }
        }
    }
    let val = |r: usize, col: usize| c[(r % h) * w + (col % w)] as f64;
    let vertex = |m: f64, z: f64, p: f64| {
        let den = m - 2.0 * z + p;
        if den.abs() > 1e-30 {
            (0.5 * (m - p) / den).clamp(-0.5, 0.5)
        } else {
            0.0
        }
    };
    let (r, col) = at;
    let z = val(r, col);
    let fy = vertex(val(r + h - 1, col), z, val(r + 1, col));
    let fx = vertex(val(r, col + w - 1), z, val(r, col + 1));
    Ok((wrap(r, h) as f64 + fy, wrap(col, w) as f64 + fx))
}

/// Mirrors an `(h, w)` image about `axis`.
pub fn mirror(img: &[f32], h: usize, w: usize, axis: FlipAxis) -> Vec<f32> {
    let mut out = vec![0f32; img.len()];
    for r in 0..h {
        for c in 0..w {
            let (sr, sc) = match axis {
                FlipAxis::LeftRight => (r, w - 1 - c),
                FlipAxis::UpDown => (h - 1 - r, c),
            };
            out[r * w + c] = img[sr * w + sc];
        }
    }
    out
}

/// The magnetic and electrostatic phases from an unflipped and a flipped through-focal series
/// at the same defoci (module docs). The flipped images are as recorded (mirrored); they are
/// mirrored back about `cfg.flip_axis` here.
pub fn tie_flip(
    unflip: &[&[f32]],
    flip: &[&[f32]],
    defoci_nm: &[f64],
    h: usize,
    w: usize,
    mic: &Microscope,
    cfg: &TieConfig,
) -> Result<FlipPhases> {
    let axis = cfg.flip_axis;
    if unflip.len() != flip.len() {
        return Err(Error::arg(
            "tie flip",
            format!(
                "{} unflipped images but {} flipped ones",
                unflip.len(),
                flip.len()
            ),
        ));
    }
    let back: Vec<Vec<f32>> = flip
        .iter()
        .map(|im| {
            if im.len() == h * w {
                Ok(mirror(im, h, w, axis))
            } else {
                Err(Error::arg(
                    "tie flip",
                    format!("a flipped image has {} pixels, expected {h}x{w}", im.len()),
                ))
            }
        })
        .collect::<Result<_>>()?;
    let back_refs: Vec<&[f32]> = back.iter().map(|v| v.as_slice()).collect();
    let phi = tie_raw(unflip, defoci_nm, h, w, mic, cfg)?;
    let phi_flip = tie_raw(&back_refs, defoci_nm, h, w, mic, cfg)?;
    // register the mirrored-back series on the unflipped one by their in-focus images
    // (amplitude contrast, which both share and which carries no magnetic contrast), else by
    // the series' mean images (the first-order magnetic contrast cancels over a symmetric
    // series)
    let reference = |s: &[&[f32]]| -> Vec<f32> {
        match defoci_nm.iter().position(|&d| d == 0.0) {
            Some(k) => s[k].to_vec(),
            None => {
                let k = s.len() as f32;
                (0..h * w)
                    .map(|i| s.iter().map(|im| im[i]).sum::<f32>() / k)
                    .collect()
            }
        }
    };
    let sh = register(&reference(unflip), &reference(&back_refs), h, w)?;
    let phi_flip = apply_shift(&phi_flip, h, w, sh.0, sh.1)?;
    let magnetic = phi
        .iter()
        .zip(&phi_flip)
        .map(|(a, b)| 0.5 * (a - b))
        .collect();
    let electrostatic = phi
        .iter()
        .zip(&phi_flip)
        .map(|(a, b)| 0.5 * (a + b))
        .collect();
    Ok(FlipPhases {
        magnetic: min_subtracted(magnetic),
        electrostatic: min_subtracted(electrostatic),
        shift: sh,
    })
}
