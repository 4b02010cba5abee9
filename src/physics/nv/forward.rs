//! NV magnetometry forward model (SPEC section 2): magnetisation M(x, y) of a film of thickness t
//! -> stray field B at standoff d above it -> B_NV = n . B, in Fourier space with zero padding.

use crate::engine::device::Device;
use crate::engine::storage::C32;
use crate::engine::tensor::Tensor;
use crate::error::{Error, Result};
use crate::physics::constants::MU0;
use crate::physics::signal::wavenumbers;
use num_complex::Complex64;
use std::collections::HashMap;
use std::sync::Mutex;

/// Geometry and sensor of an NV measurement. Lengths in metres, angles in degrees.
#[derive(Clone, Debug, PartialEq)]
pub struct NvGeometry {
    /// Pixel size (m).
    pub pixel: f64,
    /// Film thickness t (m); the film occupies -t <= z <= 0.
    pub thickness: f64,
    /// Sensor height d above the top surface (m).
    pub standoff: f64,
    /// NV axis polar angle from the sample normal (deg), default 54.75.
    pub theta_deg: f64,
    /// NV axis azimuth from +x (deg), default 0.
    pub phi_deg: f64,
    /// Zero-padding factor before the FFT (>= 1), default 2.
    pub pad: usize,
    /// Optional smooth low-pass `1/(1+(k/kc)^4)` (kc in rad/m), applied to model and data alike.
    pub cutoff_k: Option<f64>,
}

impl Default for NvGeometry {
    /// The paper's defaults: 5 nm pixels, 20 nm Permalloy film, 50 nm standoff, 54.75 deg, pad 2.
    fn default() -> Self {
        NvGeometry {
            pixel: 5e-9,
            thickness: 20e-9,
            standoff: 50e-9,
            theta_deg: 54.75,
            phi_deg: 0.0,
            pad: 2,
            cutoff_k: None,
        }
    }
}

impl NvGeometry {
    /// Unit vector of the NV axis `(sin th cos ph, sin th sin ph, cos th)`.
    pub fn axis(&self) -> [f64; 3] {
        let (th, ph) = (self.theta_deg.to_radians(), self.phi_deg.to_radians());
        [th.sin() * ph.cos(), th.sin() * ph.sin(), th.cos()]
    }

    /// Checks that lengths are positive and finite and the padding factor is at least 1.
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [("pixel", self.pixel), ("thickness", self.thickness)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::arg(
                    "nv geometry",
                    format!("{name} must be positive, got {v}"),
                ));
            }
        }
        if !(self.standoff.is_finite() && self.standoff >= 0.0) {
            return Err(Error::arg(
                "nv geometry",
                format!("standoff must be >= 0, got {}", self.standoff),
            ));
        }
        if self.pad == 0 {
            return Err(Error::arg("nv geometry", "pad must be >= 1"));
        }
        if let Some(kc) = self.cutoff_k {
            if !(kc.is_finite() && kc > 0.0) {
                return Err(Error::arg(
                    "nv geometry",
                    format!("cutoff-k must be positive, got {kc}"),
                ));
            }
        }
        Ok(())
    }
}

/// `-(mu0/2) (1-e^{-kt})/k A(k)` times the optional low-pass, on the padded grid (ph, pw), in
/// f64: `a[r][c]` maps M component c to field component r; and |k| (rad/m). k = 0: B(0) = 0 (the
/// limits of kx^2/k, kx ky/k, i kx and k all vanish).
fn field_kernels_f64(ph: usize, pw: usize, g: &NvGeometry) -> ([[Vec<Complex64>; 3]; 3], Vec<f64>) {
    let (ky, kx) = (wavenumbers(ph, g.pixel), wavenumbers(pw, g.pixel));
    let n = ph * pw;
    let mut kmag = vec![0.0; n];
    let zero = || vec![Complex64::new(0.0, 0.0); n];
    let mut a: [[Vec<Complex64>; 3]; 3] = std::array::from_fn(|_| std::array::from_fn(|_| zero()));
    let t = g.thickness;
    for (r, &ky) in ky.iter().enumerate() {
        for (c, &kx) in kx.iter().enumerate() {
            let i = r * pw + c;
            let k = (kx * kx + ky * ky).sqrt();
            kmag[i] = k;
            if k == 0.0 {
                continue;
            }
            let thick = -(1.0 - (-k * t).exp()) / k; // (1 - e^{-kt})/k, thin film -> t
            let lp = g.cutoff_k.map_or(1.0, |kc| 1.0 / (1.0 + (k / kc).powi(4)));
            let pre = 0.5 * MU0 * thick * lp;
            // A(k) = [[kx^2/k, kx ky/k, i kx], [kx ky/k, ky^2/k, i ky], [i kx, i ky, -k]]
            let m = [
                [(kx * kx / k, 0.0), (kx * ky / k, 0.0), (0.0, kx)],
                [(kx * ky / k, 0.0), (ky * ky / k, 0.0), (0.0, ky)],
                [(0.0, kx), (0.0, ky), (-k, 0.0)],
            ];
            for rr in 0..3 {
                for cc in 0..3 {
                    let (re, im) = m[rr][cc];
                    a[rr][cc][i] = Complex64::new(pre * re, pre * im);
                }
            }
        }
    }
    (a, kmag)
}

/// [`field_kernels_f64`] rounded to the f32 kernels of the engine.
fn field_kernels(ph: usize, pw: usize, g: &NvGeometry) -> ([[Vec<C32>; 3]; 3], Vec<f64>) {
    let (a, kmag) = field_kernels_f64(ph, pw, g);
    let a = a.map(|row| {
        row.map(|k| {
            k.iter()
                .map(|z| C32::new(z.re as f32, z.im as f32))
                .collect()
        })
    });
    (a, kmag)
}

/// The forward model's B_NV kernels on the padded grid `(ph, pw)`, per magnetisation component,
/// in f64 (for the classical inversions, which divide by them).
pub(crate) struct BnvKernels {
    /// `K_c(k)`, c = x, y, z: `B_NV(k) = sum_c K_c(k) M_c(k)` with both sides the unnormalised
    /// FFTs of the padded maps (T per A/m: the numbers [`NvForward::bnv`] multiplies by, in
    /// f64), the standoff decay `e^{-kd}` and the optional low-pass included. Every `|K_c|` is
    /// `thin_film * decay` times an angular factor of at most 1.
    pub(crate) per_component: [Vec<Complex64>; 3],
    /// `|k|` (rad/m) per coefficient.
    pub(crate) kmag: Vec<f64>,
    /// The thin-film factor `(mu0/2) (1-e^{-kt})` times the optional low-pass: `|a_zz|`, the
    /// magnitude of the `B_z` kernel of `M_z` before the standoff decay.
    pub(crate) thin_film: Vec<f64>,
    /// The standoff decay `e^{-kd}`.
    pub(crate) decay: Vec<f64>,
}

/// `K_c = sum_r n_r a[r][c] e^{-kd}` from the field kernels (SPEC section 2), with or without
/// the standoff decay.
fn project_on_axis(
    a: &[[Vec<Complex64>; 3]; 3],
    kmag: &[f64],
    g: &NvGeometry,
    with_standoff: bool,
) -> [Vec<Complex64>; 3] {
    let n = g.axis();
    std::array::from_fn(|c| {
        kmag.iter()
            .enumerate()
            .map(|(i, &k)| {
                let e = if with_standoff {
                    (-k * g.standoff).exp()
                } else {
                    1.0
                };
                a.iter()
                    .zip(n)
                    .map(|(row, nr)| row[c][i] * nr)
                    .sum::<Complex64>()
                    * e
            })
            .collect()
    })
}

/// The per-component B_NV kernels of the geometry on a `(ph, pw)` padded grid (see
/// [`BnvKernels`]).
pub(crate) fn bnv_kernels(ph: usize, pw: usize, g: &NvGeometry) -> BnvKernels {
    let (a, kmag) = field_kernels_f64(ph, pw, g);
    let per_component = project_on_axis(&a, &kmag, g, true);
    let thin_film = a[2][2].iter().map(|z| z.norm()).collect();
    let decay = kmag.iter().map(|&k| (-k * g.standoff).exp()).collect();
    BnvKernels {
        per_component,
        kmag,
        thin_film,
        decay,
    }
}

/// Which constant kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    /// B_NV with the fixed standoff, (1, C, ph, pw)
    Bnv,
    /// B_NV without e^{-kd}, for a trained standoff, (1, C, ph, pw)
    BnvNoStandoff,
    /// (Bx, By, Bz) with the standoff, (3, C, ph, pw)
    Field,
    /// (Bx, By, Bz) without e^{-kd}, for a trained standoff, (3, C, ph, pw)
    FieldNoStandoff,
    /// -|k| (ph, pw), real, to build e^{-kd}
    NegK,
}

/// The differentiable operator M (1, C, H, W) in A/m -> B_NV (1, 1, H, W) in tesla (C = 2 for
/// Mx, My; 3 adds Mz), and M -> (Bx, By, Bz): spectral convolutions
/// ([`Tensor::spectral_conv`]) with kernels on the padded grid, each built on first use on the
/// input's device and kept there.
pub struct NvForward {
    h: usize,
    w: usize,
    geom: NvGeometry,
    kernels: Mutex<HashMap<(Kind, usize, Device), Tensor>>,
}

impl NvForward {
    /// Operator for H x W images, on the CPU.
    pub fn new(h: usize, w: usize, geom: &NvGeometry) -> Result<NvForward> {
        geom.validate()?;
        if h == 0 || w == 0 {
            return Err(Error::arg("nv forward", "empty image"));
        }
        Ok(NvForward {
            h,
            w,
            geom: geom.clone(),
            kernels: Mutex::new(HashMap::new()),
        })
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<(Kind, usize, Device), Tensor>> {
        self.kernels.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The geometry.
    pub fn geometry(&self) -> &NvGeometry {
        &self.geom
    }

    /// The channel count of a valid input.
    fn channels(&self, m: &Tensor) -> Result<usize> {
        let s = m.shape();
        if m.rank() != 4 || s[0] != 1 || !(2..=3).contains(&s[1]) || m.hw("nv")? != (self.h, self.w)
        {
            return Err(Error::shape(
                "nv forward",
                s,
                format!("expected (1, 2|3, {}, {})", self.h, self.w),
            ));
        }
        Ok(s[1])
    }

    /// The `kind` kernel for `c` input channels on `device`, built on first use.
    fn kernel(&self, kind: Kind, c: usize, device: Device) -> Result<Tensor> {
        if let Some(t) = self.cache().get(&(kind, c, device)) {
            return Ok(t.clone());
        }
        let g = &self.geom;
        let (ph, pw) = (self.h * g.pad, self.w * g.pad);
        let t = match kind {
            Kind::NegK => {
                let (_, kmag) = field_kernels(ph, pw, g);
                Tensor::from_shape_vec(&[ph, pw], kmag.iter().map(|&k| -k as f32).collect())?
            }
            Kind::Bnv | Kind::BnvNoStandoff => {
                let (a, kmag) = field_kernels_f64(ph, pw, g);
                let per = project_on_axis(&a, &kmag, g, kind == Kind::Bnv);
                let v = per
                    .iter()
                    .take(c)
                    .flat_map(|k| k.iter().map(|z| C32::new(z.re as f32, z.im as f32)))
                    .collect();
                Tensor::from_shape_vec_c(&[1, c, ph, pw], v)?
            }
            Kind::Field | Kind::FieldNoStandoff => {
                let (a, kmag) = field_kernels(ph, pw, g);
                let decay: Vec<f32> = kmag
                    .iter()
                    .map(|&k| match kind {
                        Kind::Field => (-k * g.standoff).exp() as f32,
                        _ => 1.0,
                    })
                    .collect();
                let mut v = Vec::with_capacity(3 * c * ph * pw);
                for row in &a {
                    for kern in row.iter().take(c) {
                        v.extend(kern.iter().zip(&decay).map(|(&k, &e)| k * e));
                    }
                }
                Tensor::from_shape_vec_c(&[3, c, ph, pw], v)?
            }
        };
        t.move_to(device)?;
        self.cache().insert((kind, c, device), t.clone());
        Ok(t)
    }

    /// `B_NV = n . B(M)`: (1, C, H, W) A/m -> (1, 1, H, W) T, one spectral convolution:
    /// `y = crop(Re(F^-1 sum_c K_c F pad(m_c)))`.
    pub fn bnv(&self, m: &Tensor) -> Result<Tensor> {
        m.spectral_conv(&self.kernel(Kind::Bnv, self.channels(m)?, m.device())?)
    }

    /// `B_NV` with the standoff given as a scalar tensor (metres), differentiable with respect to
    /// it: the kernel `K0 e^{-k d}` is built from tensor ops, then one spectral convolution
    /// (whose VJP includes the kernel's gradient).
    pub fn bnv_with_standoff(&self, m: &Tensor, standoff: &Tensor) -> Result<Tensor> {
        let k0 = self.kernel(Kind::BnvNoStandoff, self.channels(m)?, m.device())?;
        m.spectral_conv(&k0.mul(&self.decay(standoff, m.device())?)?)
    }

    /// `(Bx, By, Bz)` with the standoff as a scalar tensor (metres), differentiable with respect
    /// to it, as [`NvForward::bnv_with_standoff`]: (1, C, H, W) A/m -> (1, 3, H, W) T.
    pub fn field_with_standoff(&self, m: &Tensor, standoff: &Tensor) -> Result<Tensor> {
        let k0 = self.kernel(Kind::FieldNoStandoff, self.channels(m)?, m.device())?;
        m.spectral_conv(&k0.mul(&self.decay(standoff, m.device())?)?)
    }

    /// `e^{-k d}` (1, 1, ph, pw), complex, from tensor ops on a scalar standoff `d`.
    fn decay(&self, standoff: &Tensor, device: Device) -> Result<Tensor> {
        let neg_k = self.kernel(Kind::NegK, 1, device)?;
        let (ph, pw) = (neg_k.shape()[0], neg_k.shape()[1]);
        let e = neg_k.mul(&standoff.reshape(&[1, 1])?)?.exp()?;
        Tensor::complex(&e, &e.zeros_like()?)?.reshape(&[1, 1, ph, pw])
    }

    /// The stray field `(Bx, By, Bz)` at the sensor: (1, C, H, W) A/m -> (1, 3, H, W) T.
    pub fn field(&self, m: &Tensor) -> Result<Tensor> {
        m.spectral_conv(&self.kernel(Kind::Field, self.channels(m)?, m.device())?)
    }
}
