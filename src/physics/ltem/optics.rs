//! Electron optics (SPEC section 4): relativistic wavelength, interaction constant, the
//! microscope's settings and its transfer function `T(q) = A(q) e^{-i chi(q)} e^{-g(q)}`.
//! Lengths in nm, spatial frequencies `q` in cycles per pixel (PyLorentz's units).

use crate::engine::storage::C32;
use crate::error::{Error, Result};
use crate::physics::constants::{C_LIGHT, E_CHARGE, H_PLANCK, M_ELECTRON};
use crate::physics::signal::fftfreq;
use std::f64::consts::PI;

/// Relativistic electron wavelength (nm) at accelerating voltage `kv` (kilovolts):
/// `lambda = h / sqrt(2 m e E (1 + e E / (2 m c^2)))`.
///
/// ```
/// let l = magprior::ltem::wavelength_nm(200.0);
/// assert!((l - 2.508e-3).abs() < 1e-6);
/// ```
pub fn wavelength_nm(kv: f64) -> f64 {
    let ev = E_CHARGE * kv * 1e3;
    let p2 = 2.0 * M_ELECTRON * ev * (1.0 + ev / (2.0 * M_ELECTRON * C_LIGHT * C_LIGHT));
    H_PLANCK / p2.sqrt() * 1e9
}

/// Interaction constant `sigma = 2 pi m gamma e lambda / h^2` in rad / (V nm), with
/// `gamma = 1 + e E / (m c^2)` (200 kV: 7.29e-3 rad/(V nm)).
pub fn interaction_constant(kv: f64) -> f64 {
    let ev = E_CHARGE * kv * 1e3;
    let gamma = 1.0 + ev / (M_ELECTRON * C_LIGHT * C_LIGHT);
    let lambda_m = wavelength_nm(kv) * 1e-9;
    // rad / (V m) -> rad / (V nm)
    2.0 * PI * M_ELECTRON * gamma * E_CHARGE * lambda_m / (H_PLANCK * H_PLANCK) * 1e-9
}

/// A microscope's imaging settings. Lengths in nm, angles in radians.
#[derive(Clone, Debug, PartialEq)]
pub struct Microscope {
    /// Accelerating voltage (kV).
    pub kv: f64,
    /// Spherical aberration Cs (nm).
    pub cs: f64,
    /// Beam divergence semi-angle theta_c (rad).
    pub theta_c: f64,
    /// Defocus spread Delta (nm).
    pub spread: f64,
    /// Two-fold astigmatism magnitude Ca (nm).
    pub ca: f64,
    /// Two-fold astigmatism orientation phi_a (rad, from +x).
    pub phi_a: f64,
    /// Defocus df (nm); negative = underfocus (PyLorentz's sign).
    pub defocus: f64,
    /// Pixel size (nm per pixel).
    pub scale: f64,
    /// Objective aperture semi-angle (rad): frequencies with `lambda |q| > aperture` are cut.
    /// `None`: no aperture.
    pub aperture: Option<f64>,
}

impl Default for Microscope {
    /// SPEC's defaults: 200 kV, Cs 1 mm, theta_c 0.6 mrad, Delta 120 nm, no astigmatism, 4 nm
    /// pixels, df = -1 mm, no aperture.
    fn default() -> Self {
        Microscope {
            kv: 200.0,
            cs: 1e6,
            theta_c: 0.6e-3,
            spread: 120.0,
            ca: 0.0,
            phi_a: 0.0,
            defocus: -1e6,
            scale: 4.0,
            aperture: None,
        }
    }
}

impl Microscope {
    /// The SIPRAD demo's microscope: Cs 0.2 mm, theta_c 0.01 mrad, Delta 80 nm, df -1 mm, 4 nm/px.
    pub fn siprad_demo() -> Microscope {
        Microscope {
            cs: 2e5,
            theta_c: 1e-5,
            spread: 80.0,
            ..Microscope::default()
        }
    }

    /// Electron wavelength (nm).
    pub fn wavelength(&self) -> f64 {
        wavelength_nm(self.kv)
    }

    /// Checks that every setting is finite and the voltage, pixel size and non-negative
    /// quantities are in range.
    pub fn validate(&self) -> Result<()> {
        let op = "microscope";
        let all = [
            ("kv", self.kv),
            ("cs", self.cs),
            ("theta_c", self.theta_c),
            ("spread", self.spread),
            ("ca", self.ca),
            ("phi_a", self.phi_a),
            ("defocus", self.defocus),
            ("scale", self.scale),
        ];
        if let Some((n, v)) = all.iter().find(|(_, v)| !v.is_finite()) {
            return Err(Error::arg(op, format!("{n} must be finite, got {v}")));
        }
        if self.kv <= 0.0 || self.scale <= 0.0 {
            return Err(Error::arg(op, "kv and scale must be positive"));
        }
        if self.cs < 0.0 || self.theta_c < 0.0 || self.spread < 0.0 {
            return Err(Error::arg(op, "cs, theta_c and spread must be >= 0"));
        }
        if let Some(a) = self.aperture {
            if !(a.is_finite() && a > 0.0) {
                return Err(Error::arg(
                    op,
                    format!("aperture must be positive, got {a}"),
                ));
            }
        }
        Ok(())
    }

    /// `T(q)` on an `(h, w)` grid (NumPy FFT order), q = fftfreq in cycles per pixel, every
    /// length divided by `scale`:
    ///
    /// ```text
    /// chi = -pi lambda (df + Ca cos(2(phi_q - phi_a))) q^2 + (pi/2) Cs lambda^3 q^4
    /// g   = [ (pi lambda Delta)^2 q^4 / 2 + (pi theta_c / lambda)^2 (Cs lambda^3 q^3 - df lambda q)^2 ] / u
    /// u   = 1 + 2 (pi theta_c Delta)^2 q^2
    /// T   = A(q) e^{-i chi} e^{-g},  A = 1 inside the aperture (lambda |q| <= alpha), else 0
    /// ```
    pub fn transfer(&self, h: usize, w: usize) -> Vec<C32> {
        let s = self.scale;
        let lam = self.wavelength() / s;
        let (df, cs, ca, dl) = (self.defocus / s, self.cs / s, self.ca / s, self.spread / s);
        let tc = self.theta_c;
        let (qy, qx) = (fftfreq(h, 1.0), fftfreq(w, 1.0));
        let mut out = Vec::with_capacity(h * w);
        for &y in &qy {
            for &x in &qx {
                let q2 = x * x + y * y;
                let q = q2.sqrt();
                // aperture in physical units: lambda [nm] * q [1/nm] = angle
                if let Some(alpha) = self.aperture {
                    if lam * q > alpha {
                        out.push(C32::new(0.0, 0.0));
                        continue;
                    }
                }
                let phi_q = y.atan2(x);
                let chi = -PI * lam * (df + ca * (2.0 * (phi_q - self.phi_a)).cos()) * q2
                    + 0.5 * PI * cs * lam.powi(3) * q2 * q2;
                let u = 1.0 + 2.0 * (PI * tc * dl).powi(2) * q2;
                let g = ((PI * lam * dl).powi(2) * q2 * q2 / 2.0
                    + (PI * tc / lam).powi(2) * (cs * lam.powi(3) * q2 * q - df * lam * q).powi(2))
                    / u;
                let env = (-g).exp();
                out.push(C32::new(
                    (env * chi.cos()) as f32,
                    (-env * chi.sin()) as f32,
                ));
            }
        }
        out
    }
}
