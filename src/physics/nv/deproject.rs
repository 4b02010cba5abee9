//! Deprojection B_NV -> (Bx, By, Bz) (SPEC section 2) with Tikhonov regularisation whose
//! strength minimises the estimated error of the recovered field.
//!
//! Above the film `B = -mu0 grad(potential)` with the potential ~ e^{-kz}, so
//! `Bx : By : Bz = i kx : i ky : -k`, `B_NV = D B_s` with `D = i kx nx + i ky ny - k nz`, and
//! `B_r(k) = T_r(k) conj(D)/(|D|^2 + eps^2) B_NV(k)`, `T = (i kx, i ky, -k)`.
//!
//! Choice of eps. Reprojection alone cannot choose it: for k != 0 the map B_NV -> B -> n.B is the
//! identity at eps = 0, so the reprojection error is smallest with no regularisation at all (the
//! authors' criterion). What eps trades is the field's error: a larger eps removes signal (bias,
//! the reprojection residual `(1-H) B_NV` mapped to the field) while a smaller one passes more
//! noise (variance). We minimise the estimated mean squared error of (Bx, By, Bz),
//!
//! `risk(eps) = sum_{k != 0} |T|^2/|D|^2 (1-H)^2 max(|B_NV|^2 - s2, 0) + s2 |T|^2 |D|^2/(|D|^2+eps^2)^2`
//!
//! with `H = |D|^2/(|D|^2+eps^2)`, `|T|^2 = 2 k^2`, and the white-noise power `s2` per Fourier
//! coefficient estimated from the outer half of the spectrum (where `e^{-k d}` has removed the
//! signal): median of `|B_NV(k)|^2` there divided by ln 2. The variance term is the penalty that
//! rules out eps -> 0 when the problem is ill-posed. For a tilted NV axis (cos theta well above 0)
//! the gain `k/|D| <= 1/cos(theta)` is bounded and the risk is flat at small eps, so a light
//! regularisation results; for an axis near the plane (theta -> 90 deg) D vanishes on a line
//! through k = 0 and the risk picks a real eps. Candidates: 121 log-spaced values from 1e-6 to
//! 1 times max |D|. The k = 0 component is set to zero (D(0) = 0: the mean is not recoverable).

use super::forward::NvGeometry;
use crate::error::{Error, Result};
use crate::physics::signal::wavenumbers;
use crate::{Tensor, C32};

/// The result of [`deproject`].
#[derive(Clone, Debug)]
pub struct Deprojection {
    /// (3, H, W) row-major: Bx, By, Bz in tesla.
    pub field: Vec<f32>,
    /// The Tikhonov parameter used (rad/m).
    pub eps: f64,
    /// `(eps, risk(eps))` for every candidate when eps was searched (empty when given).
    pub risk: Vec<(f64, f64)>,
    /// Estimated white-noise power per Fourier coefficient of the padded B_NV.
    pub noise_power: f64,
}

/// Recovers the vector field from B_NV `(H, W)` (row-major, tesla). With `eps = None` the
/// regularisation is chosen by the risk estimate (module docs).
pub fn deproject(
    bnv: &[f32],
    h: usize,
    w: usize,
    geom: &NvGeometry,
    eps: Option<f64>,
) -> Result<Deprojection> {
    geom.validate()?;
    if bnv.len() != h * w || h == 0 || w == 0 {
        return Err(Error::arg(
            "deproject",
            format!("{} values for a {h}x{w} map", bnv.len()),
        ));
    }
    let (ph, pw) = (h * geom.pad, w * geom.pad);
    let mut spec = vec![C32::new(0.0, 0.0); ph * pw];
    for r in 0..h {
        for c in 0..w {
            spec[r * pw + c] = C32::new(bnv[r * w + c], 0.0);
        }
    }
    let spec =
        crate::engine::autograd::no_grad(|| Tensor::from_shape_vec_c(&[ph, pw], spec)?.fft2())?
            .to_vec_c()?;
    let (ky, kx) = (wavenumbers(ph, geom.pixel), wavenumbers(pw, geom.pixel));
    let n = geom.axis();
    // D(k) and |B_NV(k)|^2 per coefficient
    let mut d = Vec::with_capacity(ph * pw);
    for &y in &ky {
        for &x in &kx {
            let k = (x * x + y * y).sqrt();
            d.push((-k * n[2], x * n[0] + y * n[1])); // re, im
        }
    }
    let d2: Vec<f64> = d.iter().map(|(a, b)| a * a + b * b).collect();
    let b2: Vec<f64> = spec.iter().map(|z| z.norm_sqr() as f64).collect();
    let kmag2: Vec<f64> = ky
        .iter()
        .flat_map(|&y| kx.iter().map(move |&x| x * x + y * y))
        .collect();
    let s2 = noise_power(&kmag2, &b2);
    let risk = |e: f64| {
        let mut r = 0.0;
        for ((&dd, &bb), &k2) in d2.iter().zip(&b2).zip(&kmag2).skip(1) {
            if dd == 0.0 {
                continue;
            }
            let t2 = 2.0 * k2;
            let hk = dd / (dd + e * e);
            r += t2 / dd * (1.0 - hk).powi(2) * (bb - s2).max(0.0)
                + s2 * t2 * dd / (dd + e * e).powi(2);
        }
        r
    };
    let dmax = d2.iter().cloned().fold(0.0, f64::max).sqrt();
    let (eps, risk_curve) = match eps {
        Some(e) if e.is_finite() && e >= 0.0 => (e, Vec::new()),
        Some(e) => {
            return Err(Error::arg(
                "deproject",
                format!("eps must be >= 0, got {e}"),
            ))
        }
        None => {
            let curve: Vec<(f64, f64)> = (0..=120)
                .map(|i| {
                    let e = dmax * 10f64.powf(-6.0 + 6.0 * i as f64 / 120.0);
                    (e, risk(e))
                })
                .collect();
            let best = curve
                .iter()
                .filter(|(_, g)| g.is_finite())
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .map(|p| p.0)
                .unwrap_or(dmax * 1e-6);
            (best, curve)
        }
    };
    let mut field = Vec::with_capacity(3 * h * w);
    for comp in 0..3 {
        let mut out = vec![C32::new(0.0, 0.0); ph * pw];
        for (r, &y) in ky.iter().enumerate() {
            for (c, &x) in kx.iter().enumerate() {
                let i = r * pw + c;
                let k = (x * x + y * y).sqrt();
                let (dr, di) = d[i];
                let den = d2[i] + eps * eps;
                if den == 0.0 {
                    continue;
                }
                // conj(D)/den
                let inv = (dr / den, -di / den);
                let t = match comp {
                    0 => (0.0, x),
                    1 => (0.0, y),
                    _ => (-k, 0.0),
                };
                let f = (t.0 * inv.0 - t.1 * inv.1, t.0 * inv.1 + t.1 * inv.0);
                let z = spec[i];
                out[i] = C32::new(
                    (f.0 * z.re as f64 - f.1 * z.im as f64) as f32,
                    (f.0 * z.im as f64 + f.1 * z.re as f64) as f32,
                );
            }
        }
        let out =
            crate::engine::autograd::no_grad(|| Tensor::from_shape_vec_c(&[ph, pw], out)?.ifft2())?
                .to_vec_c()?;
        for r in 0..h {
            field.extend(out[r * pw..r * pw + w].iter().map(|z| z.re));
        }
    }
    Ok(Deprojection {
        field,
        eps,
        risk: risk_curve,
        noise_power: s2,
    })
}

/// White-noise power per coefficient: median of |B|^2 over the outer half of the spectrum / ln 2.
fn noise_power(kmag2: &[f64], b2: &[f64]) -> f64 {
    let kmax2 = kmag2.iter().cloned().fold(0.0, f64::max);
    let mut outer: Vec<f64> = kmag2
        .iter()
        .zip(b2)
        .filter(|(&k2, _)| k2 >= 0.25 * kmax2)
        .map(|(_, &b)| b)
        .collect();
    if outer.is_empty() {
        return 0.0;
    }
    let mid = outer.len() / 2;
    let (_, m, _) = outer.select_nth_unstable_by(mid, |a, b| a.total_cmp(b));
    *m / std::f64::consts::LN_2
}
