//! SITIE (single-image transport of intensity, SPEC section 5): the phase from one defocused
//! image, `laplacian(phi) = (2 pi / (lambda df)) (I / I0 - 1)` solved in Fourier space, with an
//! optional Tikhonov filter and mirror-symmetric extension.

use super::optics::Microscope;
use crate::error::{Error, Result};
use crate::physics::signal::fftfreq;
use crate::{Tensor, C32};
use std::f64::consts::PI;

/// SITIE settings.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct SitieConfig {
    /// Tikhonov frequency qc (1/nm): `1/q^2 -> q^2 / (q^2 + qc^2)^2`. `None`: plain inverse
    /// Laplacian.
    pub qc: Option<f64>,
    /// Solve on the image mirrored into a (2h, 2w) periodic tile (no edge discontinuities).
    pub symmetric: bool,
}

/// SITIE phase (rad, (h, w), minimum 0) of an image `(h, w)`.
///
/// The sign follows from the weak-phase limit of section 4's forward model,
/// `I ~ I0 (1 + lambda df laplacian(phi) / (2 pi))` (lengths in pixels), so the result
/// correlates positively with the true phase for either sign of df. `I0 = mean(I)`.
pub fn sitie(
    image: &[f32],
    h: usize,
    w: usize,
    mic: &Microscope,
    cfg: &SitieConfig,
) -> Result<Vec<f32>> {
    const OP: &str = "sitie";
    mic.validate()?;
    if image.len() != h * w || h == 0 || w == 0 {
        return Err(Error::arg(
            OP,
            format!("{} values for {h}x{w}", image.len()),
        ));
    }
    if mic.defocus == 0.0 {
        return Err(Error::arg(
            OP,
            "defocus must be non-zero (an in-focus image has no phase contrast)",
        ));
    }
    if let Some(qc) = cfg.qc {
        if !(qc.is_finite() && qc >= 0.0) {
            return Err(Error::arg(OP, format!("qc must be >= 0, got {qc}")));
        }
    }
    if let Some(i) = image.iter().position(|v| !v.is_finite()) {
        return Err(Error::arg(OP, format!("non-finite pixel at {i}")));
    }
    let (eh, ew, ext) = if cfg.symmetric {
        (2 * h, 2 * w, mirror_extend(image, h, w))
    } else {
        (h, w, image.to_vec())
    };
    let i0 = ext.iter().map(|&v| v as f64).sum::<f64>() / ext.len() as f64;
    if i0 <= 0.0 {
        return Err(Error::arg(
            OP,
            "the image's mean intensity must be positive",
        ));
    }
    let lam = mic.wavelength() / mic.scale;
    let df = mic.defocus / mic.scale;
    let pre = 2.0 * PI / (lam * df);
    let rhs: Vec<f32> = ext
        .iter()
        .map(|&v| (pre * (v as f64 / i0 - 1.0)) as f32)
        .collect();
    let phase = inverse_laplacian(&rhs, eh, ew, cfg.qc.map(|q| q * mic.scale))?;
    let mut res = Vec::with_capacity(h * w);
    for r in 0..h {
        res.extend_from_slice(&phase[r * ew..r * ew + w]);
    }
    Ok(min_subtracted(res))
}

/// The periodic solution `phi` of `laplacian(phi) = rhs` on an `(h, w)` grid (lengths in
/// pixels): `-rhs(q) / (4 pi^2 q^2)`, `q = 0 -> 0`, or with a Tikhonov frequency `qc` (cycles
/// per pixel) the filtered `-rhs(q) q^2 / (4 pi^2 (q^2 + qc^2)^2)`.
pub(crate) fn inverse_laplacian(
    rhs: &[f32],
    h: usize,
    w: usize,
    qc: Option<f64>,
) -> Result<Vec<f32>> {
    let data: Vec<C32> = rhs.iter().map(|&v| C32::new(v, 0.0)).collect();
    let spec =
        crate::engine::autograd::no_grad(|| Tensor::from_shape_vec_c(&[h, w], data)?.fft2())?
            .to_vec_c()?;
    let (qy, qx) = (fftfreq(h, 1.0), fftfreq(w, 1.0));
    let mut out = vec![C32::new(0.0, 0.0); h * w];
    for (r, &y) in qy.iter().enumerate() {
        for (c, &x) in qx.iter().enumerate() {
            let q2 = x * x + y * y;
            if q2 == 0.0 {
                continue;
            }
            let inv_q2 = match qc {
                Some(qc) => q2 / (q2 + qc * qc).powi(2),
                None => 1.0 / q2,
            };
            let i = r * w + c;
            out[i] = spec[i] * (-inv_q2 / (4.0 * PI * PI)) as f32;
        }
    }
    crate::engine::autograd::no_grad(|| {
        Tensor::from_shape_vec_c(&[h, w], out)?
            .ifft2()?
            .re()?
            .to_vec()
    })
}

/// `[[I, fliplr I], [flipud I, flip I]]`: a (2h, 2w) image that is smooth across its periodic
/// boundaries.
pub fn mirror_extend(img: &[f32], h: usize, w: usize) -> Vec<f32> {
    let (eh, ew) = (2 * h, 2 * w);
    let mut out = vec![0f32; eh * ew];
    for r in 0..eh {
        let sr = if r < h { r } else { eh - 1 - r };
        for c in 0..ew {
            let sc = if c < w { c } else { ew - 1 - c };
            out[r * ew + c] = img[sr * w + sc];
        }
    }
    out
}

/// `v - min(v)`.
pub fn min_subtracted(mut v: Vec<f32>) -> Vec<f32> {
    let m = v.iter().copied().fold(f32::INFINITY, f32::min);
    if m.is_finite() {
        v.iter_mut().for_each(|x| *x -= m);
    }
    v
}
