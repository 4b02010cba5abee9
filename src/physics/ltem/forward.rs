//! Lorentz-TEM image formation (SPEC section 4) as differentiable tensor ops, the magnetic phase
//! of a magnetisation, the integrated induction of a phase, and simulated detector noise.

use super::optics::Microscope;
use crate::engine::device::Device;
use crate::error::{Error, Result};
use crate::physics::constants::{MU0, PHI0};
use crate::physics::signal::fftfreq;
use crate::rng::Rng;
use crate::{Tensor, C32};
use std::f64::consts::PI;

/// The image-formation operator for one image size and microscope:
/// `I = | ifft2( fft2(s a e^{i phi}) T ) |^2`, periodic, or on a grid enlarged by `pad` where
/// the wave outside the field of view is vacuum (`a = 1`, `phi = 0`) and the image is cropped back.
pub struct LtemForward {
    h: usize,
    w: usize,
    ph: usize,
    pw: usize,
    /// `T(q)` on the (padded) grid, shape (1, 1, ph, pw).
    transfer: Tensor,
}

impl LtemForward {
    /// Builds `T(q)` for `(h, w)` images (padding factor `pad >= 1`; 1 = periodic).
    pub fn new(h: usize, w: usize, mic: &Microscope, pad: usize) -> Result<LtemForward> {
        mic.validate()?;
        if h == 0 || w == 0 || pad == 0 {
            return Err(Error::arg(
                "ltem forward",
                format!("bad size {h}x{w} or pad {pad}"),
            ));
        }
        let (ph, pw) = (h * pad, w * pad);
        let transfer = Tensor::from_shape_vec_c(&[1, 1, ph, pw], mic.transfer(ph, pw))?;
        Ok(LtemForward {
            h,
            w,
            ph,
            pw,
            transfer,
        })
    }

    /// Image size `(h, w)`.
    pub fn size(&self) -> (usize, usize) {
        (self.h, self.w)
    }

    /// Moves the transfer function to `device`: [`LtemForward::image`] then takes phases,
    /// amplitudes and scales on that device ([`LtemForward::image_of`] uploads its inputs).
    pub fn to_device(&mut self, device: Device) -> Result<()> {
        self.transfer = self.transfer.to_device(device)?;
        Ok(())
    }

    /// The device the operator runs on (where its transfer function lives).
    pub fn device(&self) -> Device {
        self.transfer.device()
    }

    /// The transfer function on the (padded) grid, (1, 1, ph, pw) complex.
    pub fn transfer(&self) -> &Tensor {
        &self.transfer
    }

    /// The image of a phase `(N, 1, h, w)` (or any shape ending in (h, w)) with an optional real
    /// amplitude broadcastable to it and an optional amplitude scale (a one-element real
    /// tensor, e.g. shape `[1]`). Differentiable with respect to all three.
    pub fn image(
        &self,
        phase: &Tensor,
        amplitude: Option<&Tensor>,
        scale: Option<&Tensor>,
    ) -> Result<Tensor> {
        let (h, w) = phase.hw("ltem image")?;
        if (h, w) != (self.h, self.w) {
            return Err(Error::shape(
                "ltem image",
                phase.shape(),
                format!("operator is for {}x{}", self.h, self.w),
            ));
        }
        let mut amp = amplitude.cloned();
        if let Some(s) = scale {
            let s = s.reshape(&[1])?;
            amp = Some(match amp {
                Some(a) => a.mul(&s)?,
                None => s,
            });
        }
        let mut psi = phase.expi()?;
        if let Some(a) = amp {
            let a = a.broadcast_to(phase.shape())?;
            psi = psi.mul(&Tensor::complex(&a, &a.zeros_like()?)?)?;
        }
        if (self.ph, self.pw) != (h, w) {
            // vacuum outside the field of view: pad (psi - 1) with zeros, then add 1 back
            psi = psi
                .add_scalar(-1.0)?
                .pad2d(0, self.ph - h, 0, self.pw - w)?
                .add_scalar(1.0)?;
        }
        let img = psi.fft2()?.mul(&self.transfer)?.ifft2()?.abs2()?;
        if (self.ph, self.pw) != (h, w) {
            img.crop2d(0, h, 0, w)
        } else {
            Ok(img)
        }
    }

    /// Convenience: the image of a phase map `(h, w)` (rad) with an optional amplitude map, as
    /// plain vectors.
    pub fn image_of(&self, phase: &[f32], amplitude: Option<&[f32]>) -> Result<Vec<f32>> {
        let (h, w) = (self.h, self.w);
        let dev = self.device();
        let p = Tensor::from_shape_vec(&[1, 1, h, w], phase.to_vec())?.to_device(dev)?;
        let a = amplitude
            .map(|a| Tensor::from_shape_vec(&[1, 1, h, w], a.to_vec())?.to_device(dev))
            .transpose()?;
        crate::engine::autograd::no_grad(|| self.image(&p, a.as_ref(), None))?.to_vec()
    }
}

/// The magnetic phase as a differentiable operator: an in-plane magnetisation (1, 2, h, w) in
/// A/m (Mx, My) of a film of thickness `t_nm`, pixel `scale_nm`, beam along +z, to its phase
/// (1, 1, h, w) in rad (SPEC section 4):
/// `phi_m(k) = -i (pi mu0 t / Phi0) (kx My(k) - ky Mx(k)) / k^2`, `phi_m(0) = 0`, Phi0 = h/(2e),
/// one [`Tensor::spectral_conv`] on a grid zero-padded by `pad` (1 = periodic; 2 or more for an
/// isolated element, whose phase outside it is then not wrapped back in).
pub struct PhaseForward {
    h: usize,
    w: usize,
    /// (1, 2, ph, pw) complex.
    kernel: Tensor,
}

impl PhaseForward {
    /// The operator for `(h, w)` maps.
    pub fn new(h: usize, w: usize, t_nm: f64, scale_nm: f64, pad: usize) -> Result<PhaseForward> {
        const OP: &str = "magnetic phase";
        if h == 0 || w == 0 || pad == 0 {
            return Err(Error::arg(OP, format!("bad size {h}x{w} or pad {pad}")));
        }
        if !(t_nm > 0.0 && scale_nm > 0.0 && t_nm.is_finite() && scale_nm.is_finite()) {
            return Err(Error::arg(OP, "thickness and scale must be positive"));
        }
        let (ph, pw) = (h * pad, w * pad);
        let px = scale_nm * 1e-9;
        let pre = PI * MU0 * t_nm * 1e-9 / PHI0;
        let (qy, qx) = (fftfreq(ph, 1.0), fftfreq(pw, 1.0));
        let mut k = vec![C32::new(0.0, 0.0); 2 * ph * pw];
        for (r, &y) in qy.iter().enumerate() {
            for (c, &x) in qx.iter().enumerate() {
                let (kx, ky) = (2.0 * PI * x / px, 2.0 * PI * y / px);
                let k2 = kx * kx + ky * ky;
                if k2 == 0.0 {
                    continue;
                }
                // phi = [i pre ky / k^2] Mx + [-i pre kx / k^2] My
                k[r * pw + c] = C32::new(0.0, (pre * ky / k2) as f32);
                k[ph * pw + r * pw + c] = C32::new(0.0, (-pre * kx / k2) as f32);
            }
        }
        Ok(PhaseForward {
            h,
            w,
            kernel: Tensor::from_shape_vec_c(&[1, 2, ph, pw], k)?,
        })
    }

    /// Moves the kernel to `device`.
    pub fn to_device(&mut self, device: Device) -> Result<()> {
        self.kernel = self.kernel.to_device(device)?;
        Ok(())
    }

    /// The phase (1, 1, h, w) of `m` (1, 2, h, w) A/m, differentiable in `m`.
    pub fn phase(&self, m: &Tensor) -> Result<Tensor> {
        let s = m.shape();
        if m.rank() != 4 || s[0] != 1 || s[1] != 2 || (s[2], s[3]) != (self.h, self.w) {
            return Err(Error::shape(
                "magnetic phase",
                s,
                format!("expected (1, 2, {}, {})", self.h, self.w),
            ));
        }
        m.spectral_conv(&self.kernel)
    }
}

/// Magnetic phase (rad) of an in-plane magnetisation `mx, my` (A/m, (h, w) each) in a film of
/// thickness `t_nm`, pixel `scale_nm`, beam along +z (SPEC section 4, periodic), on plain vectors (the same formula as
/// [`PhaseForward`] with `pad` 1, evaluated as one complex FFT per component):
/// `phi_m(k) = -i (pi mu0 t / Phi0) (kx My(k) - ky Mx(k)) / k^2`, `phi_m(0) = 0`, Phi0 = h/(2e).
pub fn magnetic_phase(
    mx: &[f32],
    my: &[f32],
    h: usize,
    w: usize,
    t_nm: f64,
    scale_nm: f64,
) -> Result<Vec<f32>> {
    if mx.len() != h * w || my.len() != h * w {
        return Err(Error::arg(
            "magnetic_phase",
            format!("expected {}x{} components", h, w),
        ));
    }
    if !(t_nm > 0.0 && scale_nm > 0.0 && t_nm.is_finite() && scale_nm.is_finite()) {
        return Err(Error::arg(
            "magnetic_phase",
            "thickness and scale must be positive",
        ));
    }
    let to_c = |v: &[f32]| -> Result<Tensor> {
        Tensor::from_shape_vec_c(&[h, w], v.iter().map(|&x| C32::new(x, 0.0)).collect())
    };
    let (fx, fy) = crate::engine::autograd::no_grad(|| -> Result<_> {
        Ok((to_c(mx)?.fft2()?, to_c(my)?.fft2()?))
    })?;
    let (fx, fy) = (fx.to_vec_c()?, fy.to_vec_c()?);
    let px = scale_nm * 1e-9;
    let pre = PI * MU0 * t_nm * 1e-9 / PHI0;
    let (qy, qx) = (fftfreq(h, 1.0), fftfreq(w, 1.0));
    let mut out = vec![C32::new(0.0, 0.0); h * w];
    for (r, &y) in qy.iter().enumerate() {
        for (c, &x) in qx.iter().enumerate() {
            let i = r * w + c;
            let (kx, ky) = (2.0 * PI * x / px, 2.0 * PI * y / px);
            let k2 = kx * kx + ky * ky;
            if k2 == 0.0 {
                continue;
            }
            // -i pre (kx My - ky Mx) / k^2
            let num = (fy[i] * kx as f32 - fx[i] * ky as f32) * (pre / k2) as f32;
            out[i] = C32::new(num.im, -num.re);
        }
    }
    let t = Tensor::from_shape_vec_c(&[h, w], out)?;
    crate::engine::autograd::no_grad(|| t.ifft2()?.re()?.to_vec())
}

/// The magnetic phase (rad) at arbitrary points of the plane, exactly, for a film whose in-plane
/// magnetisation is uniform in each square cell of an `(h, w)` grid (`mx`, `my` in A/m; cell
/// `(r, c)` centred at `x = c cell_nm`, `y = r cell_nm`), thickness `t_nm`; `points` are `(x, y)`
/// in nm in that frame. Real space, no periodic images: the Green's function of SPEC section 4,
/// `phi(r) = (mu0 t / (2 Phi0)) integral (dx My - dy Mx) / |d|^2 d^2r'` (`d = r - r'`),
/// integrated in closed form over each cell. Independent of the FFT operators (a check of them,
/// and a simulator for data on a grid rotated or shifted against the magnetisation's). Costs
/// (cells with M != 0) x (points).
pub fn magnetic_phase_at(
    mx: &[f32],
    my: &[f32],
    h: usize,
    w: usize,
    cell_nm: f64,
    t_nm: f64,
    points: &[[f64; 2]],
) -> Result<Vec<f64>> {
    const OP: &str = "magnetic_phase_at";
    if mx.len() != h * w || my.len() != h * w {
        return Err(Error::arg(OP, format!("expected {}x{} components", h, w)));
    }
    if !(t_nm > 0.0 && cell_nm > 0.0 && t_nm.is_finite() && cell_nm.is_finite()) {
        return Err(Error::arg(OP, "thickness and cell size must be positive"));
    }
    // integral of u / (u^2 + v^2) over u and v: F(u, v) = (v/2) ln(u^2 + v^2) + u atan(v/u)
    // (its `- v` term cancels between the corners)
    fn f(u: f64, v: f64) -> f64 {
        let r2 = u * u + v * v;
        let log = if r2 > 0.0 { 0.5 * v * r2.ln() } else { 0.0 };
        let at = if u != 0.0 { u * (v / u).atan() } else { 0.0 };
        log + at
    }
    // integral over the cell [x0, x1] x [y0, y1] of (X - x') / |.|^2 and (Y - y') / |.|^2
    fn cell(dx: f64, dy: f64, a: f64) -> (f64, f64) {
        let (u0, u1, v0, v1) = (dx - a, dx + a, dy - a, dy + a);
        let ix = f(u1, v1) - f(u0, v1) - f(u1, v0) + f(u0, v0);
        let iy = f(v1, u1) - f(v0, u1) - f(v1, u0) + f(v0, u0);
        (ix, iy)
    }
    let cells: Vec<(f64, f64, f64, f64)> = (0..h * w)
        .filter(|&i| mx[i] != 0.0 || my[i] != 0.0)
        .map(|i| {
            let (r, c) = (i / w, i % w);
            (
                c as f64 * cell_nm,
                r as f64 * cell_nm,
                mx[i] as f64,
                my[i] as f64,
            )
        })
        .collect();
    // lengths in nm: the integral has units of nm, so the prefactor takes t in m and 1e-9
    let pre = MU0 * t_nm * 1e-9 / (2.0 * PHI0) * 1e-9;
    let a = 0.5 * cell_nm;
    Ok(crate::backend::cpu::par_map(points, |[x, y]| {
        let s: f64 = cells
            .iter()
            .map(|&(cx, cy, mx, my)| {
                let (ix, iy) = cell(x - cx, y - cy, a);
                ix * my - iy * mx
            })
            .sum();
        pre * s
    }))
}

/// Integrated in-plane induction `(Bx t, By t) = (Phi0/pi) (-dphi/dy, dphi/dx)` in T m from a
/// phase (rad), y along rows, pixel `scale_nm`. Central differences inside, one-sided at the
/// edges (like `numpy.gradient`). Returns (2, h, w) row-major.
pub fn induction(phase: &[f32], h: usize, w: usize, scale_nm: f64) -> Result<Vec<f32>> {
    if phase.len() != h * w || h < 2 || w < 2 {
        return Err(Error::arg(
            "induction",
            format!(
                "need an (h, w) map with h, w >= 2, got {} values for {h}x{w}",
                phase.len()
            ),
        ));
    }
    let px = scale_nm * 1e-9;
    let k = PHI0 / PI;
    let at = |r: usize, c: usize| phase[r * w + c] as f64;
    let d = |a: f64, b: f64, n: f64| (a - b) / (n * px);
    let mut out = vec![0f32; 2 * h * w];
    for r in 0..h {
        for c in 0..w {
            let dx = if c == 0 {
                d(at(r, 1), at(r, 0), 1.0)
            } else if c == w - 1 {
                d(at(r, c), at(r, c - 1), 1.0)
            } else {
                d(at(r, c + 1), at(r, c - 1), 2.0)
            };
            let dy = if r == 0 {
                d(at(1, c), at(0, c), 1.0)
            } else if r == h - 1 {
                d(at(r, c), at(r - 1, c), 1.0)
            } else {
                d(at(r + 1, c), at(r - 1, c), 2.0)
            };
            out[r * w + c] = (-k * dy) as f32;
            out[h * w + r * w + c] = (k * dx) as f32;
        }
    }
    Ok(out)
}

/// Adds detector noise to an image in place: Poisson counting noise for `dose` electrons per
/// nm^2 at the mean intensity (pixel area `scale_nm^2`; exact sampling below 30 counts, the
/// normal approximation above), then Gaussian noise of std `level * mean(I)` (the papers' "%
/// noise"). The mean intensity is preserved.
pub fn add_noise(
    img: &mut [f32],
    level: f64,
    dose: Option<f64>,
    scale_nm: f64,
    rng: &mut Rng,
) -> Result<()> {
    if !(level.is_finite() && level >= 0.0) {
        return Err(Error::arg(
            "noise",
            format!("level must be >= 0, got {level}"),
        ));
    }
    let mean = img.iter().map(|&v| v as f64).sum::<f64>() / img.len().max(1) as f64;
    if let Some(d) = dose {
        if !(d.is_finite() && d > 0.0) {
            return Err(Error::arg(
                "noise",
                format!("dose must be positive, got {d}"),
            ));
        }
        let per_px = d * scale_nm * scale_nm;
        for v in img.iter_mut() {
            let lam = (*v as f64 / mean).max(0.0) * per_px;
            *v = (poisson(lam, rng) / per_px * mean) as f32;
        }
    }
    if level > 0.0 {
        let sd = level * mean;
        for v in img.iter_mut() {
            *v += (sd * rng.normal()) as f32;
        }
    }
    Ok(())
}

fn poisson(lam: f64, rng: &mut Rng) -> f64 {
    if lam <= 0.0 {
        return 0.0;
    }
    if lam > 30.0 {
        return (lam + lam.sqrt() * rng.normal()).round().max(0.0);
    }
    // Knuth: count uniforms until their product drops below e^{-lambda}
    let limit = (-lam).exp();
    let (mut k, mut p) = (0.0, rng.uniform());
    while p > limit {
        k += 1.0;
        p *= rng.uniform();
    }
    k
}
