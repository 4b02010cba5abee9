//! The data term of an NV reconstruction: the measured map on the run's device, the pixels that
//! count (NaN dropouts left out with `ignore_nan`), and the background (offset, plane) fitted to
//! the residual at every iteration by variable projection: with `P` the orthogonal projector
//! onto span{1, x, y} over the valid pixels, the loss is `|(I - P)(data - model)|^2 / n`, the
//! background is `P (data - model)`, and autodiff differentiates through the projection (the
//! background is always the best one for the current magnetisation, without a learning rate).
//!
//! With per-pixel weights `W = sigma_ref / sigma(x, y)` (a noise map, for maps whose noise is
//! not stationary) everything is done on whitened residuals: the loss is
//! `|(I - P_W) W (data - model)|^2 / n` with `P_W` the projector onto span{W, W x, W y}, which is
//! weighted least squares for the background and the magnetisation alike, and every residual
//! the diagnostics see ([`Data::perp`]) is whitened, so chi^2 is per pixel against its own noise.

use crate::engine::autograd::no_grad;
use crate::engine::device::Device;
use crate::engine::tensor::Tensor;
use crate::error::{Error, Result};
use crate::physics::signal::solve3;

/// The background fitted with the magnetisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Background {
    /// None.
    #[default]
    None,
    /// A constant offset.
    Offset,
    /// An offset and a linear plane.
    Plane,
    /// A polynomial in x and y of this total degree (long-wavelength drifts; 1 = `Plane`).
    Poly(usize),
}

impl Background {
    fn terms(self) -> usize {
        match self {
            Background::None => 0,
            Background::Offset => 1,
            Background::Plane => 3,
            Background::Poly(d) => (d + 1) * (d + 2) / 2,
        }
    }

    /// The exponents (of x, of y) of term `j`: 1, x, y, x^2, x y, y^2, x^3, ...
    fn exponents(j: usize) -> (i32, i32) {
        let mut d = 0;
        let mut first = 0;
        while first + d < j {
            first += d + 1;
            d += 1;
        }
        let k = (j - first) as i32;
        (d as i32 - k, k)
    }
}

/// The fitted background in physical units: `b(x, y) = offset + slope_x (x - xc) + slope_y
/// (y - yc)`, (xc, yc) the map's centre.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct BackgroundFit {
    /// Offset at the map's centre (T).
    pub offset: f64,
    /// Slope along x (T/m).
    pub slope_x: f64,
    /// Slope along y (T/m).
    pub slope_y: f64,
}

/// The zero field against the data: [`Data::zero_field`].
pub(crate) struct ZeroField {
    /// `(I - P) data` over the valid pixels.
    pub(crate) residual: Vec<f64>,
    /// Its squared norm (T^2).
    pub(crate) sse: f64,
}

/// The measured map and how the model is compared with it.
pub(crate) struct Data {
    pub(crate) h: usize,
    pub(crate) w: usize,
    /// The map, invalid pixels 0, (1, 1, h, w) on the device.
    pub(crate) meas: Tensor,
    /// 1 on valid pixels (None: all are).
    pub(crate) valid: Option<Tensor>,
    pub(crate) valid_host: Vec<bool>,
    pub(crate) n_valid: usize,
    /// Orthonormal background basis over the valid pixels (K, 1, h, w).
    basis: Option<Tensor>,
    /// The same on the host (K x h w), f64.
    basis_host: Vec<Vec<f64>>,
    /// Per-pixel weights `sigma_ref / sigma` (1, 1, h, w) and on the host (None: uniform).
    weight: Option<Tensor>,
    weight_host: Option<Vec<f64>>,
    pub(crate) host: Vec<f32>,
    pub(crate) pixel: f64,
}

impl Data {
    /// `bnv` (h, w) in tesla. NaN/inf pixels are an error unless `ignore_nan`. `weights`
    /// (h, w, positive): per-pixel `sigma_ref / sigma` (module docs).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        bnv: &[f32],
        h: usize,
        w: usize,
        pixel: f64,
        background: Background,
        ignore_nan: bool,
        weights: Option<&[f64]>,
        device: Device,
    ) -> Result<Data> {
        const OP: &str = "nv reconstruct";
        if bnv.len() != h * w {
            return Err(Error::arg(OP, format!("{} values for {h}x{w}", bnv.len())));
        }
        let valid_host: Vec<bool> = bnv.iter().map(|v| v.is_finite()).collect();
        let n_valid = valid_host.iter().filter(|&&v| v).count();
        if n_valid < h * w && !ignore_nan {
            let i = valid_host.iter().position(|v| !v).unwrap_or(0);
            return Err(Error::arg(
                OP,
                format!(
                    "non-finite B_NV value at pixel {i} ({} of {} pixels); leave them out with --ignore-nan",
                    h * w - n_valid,
                    h * w
                ),
            ));
        }
        if let Some(wt) = weights {
            if wt.len() != h * w || wt.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
                return Err(Error::arg(
                    OP,
                    "the noise weights must be positive and one per pixel",
                ));
            }
        }
        let wt = |i: usize| weights.map_or(1.0, |v| v[i]);
        if n_valid < 4 * background.terms().max(1) {
            return Err(Error::arg(OP, format!("only {n_valid} finite pixels")));
        }
        let host: Vec<f32> = bnv
            .iter()
            .map(|&v| if v.is_finite() { v } else { 0.0 })
            .collect();
        let valid = (n_valid < h * w)
            .then(|| {
                let v = valid_host.iter().map(|&b| b as u8 as f32).collect();
                Tensor::from_shape_vec(&[1, 1, h, w], v)?.to_device(device)
            })
            .transpose()?;
        // Gram-Schmidt of 1, x, y over the valid pixels
        let mut basis_host: Vec<Vec<f64>> = Vec::new();
        let (xc, yc) = ((w as f64 - 1.0) / 2.0, (h as f64 - 1.0) / 2.0);
        // coordinates scaled to about [-1, 1] so that high powers stay conditioned
        let scale = 0.5 * (h.max(w) as f64 - 1.0).max(1.0);
        for j in 0..background.terms() {
            let mut v: Vec<f64> = (0..h * w)
                .map(|i| {
                    if !valid_host[i] {
                        return 0.0;
                    }
                    let (y, x) = (((i / w) as f64 - yc) / scale, ((i % w) as f64 - xc) / scale);
                    let (ex, ey) = Background::exponents(j);
                    wt(i) * x.powi(ex) * y.powi(ey)
                })
                .collect();
            for q in &basis_host {
                let d: f64 = q.iter().zip(&v).map(|(a, b)| a * b).sum();
                v.iter_mut().zip(q).for_each(|(x, a)| *x -= d * a);
            }
            let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
            if n > 1e-9 {
                v.iter_mut().for_each(|x| *x /= n);
                basis_host.push(v);
            }
        }
        let basis = (!basis_host.is_empty())
            .then(|| {
                let flat = basis_host.iter().flatten().map(|&x| x as f32).collect();
                Tensor::from_shape_vec(&[basis_host.len(), 1, h, w], flat)?.to_device(device)
            })
            .transpose()?;
        let weight = weights
            .map(|v| {
                let f = v.iter().map(|&x| x as f32).collect();
                Tensor::from_shape_vec(&[1, 1, h, w], f)?.to_device(device)
            })
            .transpose()?;
        Ok(Data {
            h,
            w,
            meas: Tensor::from_shape_vec(&[1, 1, h, w], host.clone())?.to_device(device)?,
            valid,
            valid_host,
            n_valid,
            basis,
            basis_host,
            weight,
            weight_host: weights.map(|v| v.to_vec()),
            host,
            pixel,
        })
    }

    /// `P r` of a (1, 1, h, w) residual (r zero on invalid pixels).
    fn project(&self, basis: &Tensor, r: &Tensor) -> Result<Tensor> {
        let c = basis.mul(r)?.sum_axes(&[1, 2, 3], true)?;
        basis.mul(&c)?.sum_axes(&[0], true)
    }

    /// The loss `|(I - P)(data - model)|^2 / n` over the valid pixels (tracked) and the model
    /// with its fitted background (detached). Without background and invalid pixels this is
    /// `mse_loss` itself.
    pub(crate) fn loss(&self, model: &Tensor) -> Result<(Tensor, Tensor)> {
        if self.basis.is_none() && self.valid.is_none() && self.weight.is_none() {
            return Ok((model.mse_loss(&self.meas)?, model.detach()));
        }
        let mut r = self.meas.sub(model)?;
        if let Some(v) = &self.valid {
            r = r.mul(v)?;
        }
        if let Some(wt) = &self.weight {
            r = r.mul(wt)?;
        }
        let (e, full) = match &self.basis {
            Some(b) => {
                let p = self.project(b, &r)?;
                // the background in data units: P_W (W r) / W
                let bg = match &self.weight {
                    Some(wt) => no_grad(|| p.detach().div(wt))?,
                    None => p.detach(),
                };
                let full = no_grad(|| model.detach().add(&bg))?;
                (r.sub(&p)?, full)
            }
            None => (r, model.detach()),
        };
        let loss = e.square()?.sum_all()?.scale(1.0 / self.n_valid as f32)?;
        Ok((loss, full))
    }

    /// The model (h, w, host) completed with its best background, and that background.
    pub(crate) fn complete_host(&self, model: &[f32]) -> (Vec<f32>, BackgroundFit) {
        let r: Vec<f64> = (0..self.h * self.w)
            .map(|i| {
                if self.valid_host[i] {
                    (self.host[i] - model[i]) as f64 * self.weight_at(i)
                } else {
                    0.0
                }
            })
            .collect();
        let mut bg = vec![0f64; self.h * self.w];
        for q in &self.basis_host {
            let c: f64 = q.iter().zip(&r).map(|(a, b)| a * b).sum();
            bg.iter_mut().zip(q).for_each(|(b, a)| *b += c * a);
        }
        // whitened -> data units
        bg.iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b /= self.weight_at(i));
        let fit = self.plane_of(&bg);
        let full = model.iter().zip(&bg).map(|(&m, &b)| m + b as f32).collect();
        (full, fit)
    }

    /// The offset and slopes of a background map (exactly a plane on the valid pixels).
    fn plane_of(&self, bg: &[f64]) -> BackgroundFit {
        let (h, w) = (self.h, self.w);
        if self.basis_host.is_empty() {
            return BackgroundFit::default();
        }
        let (xc, yc) = ((w as f64 - 1.0) / 2.0, (h as f64 - 1.0) / 2.0);
        // least squares of bg on (1, x, y) over valid pixels (3x3 normal equations)
        let mut a = [[0f64; 3]; 3];
        let mut b = [0f64; 3];
        for (i, &g) in bg.iter().enumerate().take(h * w) {
            if !self.valid_host[i] {
                continue;
            }
            let f = [1.0, (i % w) as f64 - xc, (i / w) as f64 - yc];
            for r in 0..3 {
                b[r] += f[r] * g;
                for c in 0..3 {
                    a[r][c] += f[r] * f[c];
                }
            }
        }
        // offset only when the valid pixels cannot fix a plane
        let c =
            solve3(a, b).unwrap_or([if a[0][0] > 0.0 { b[0] / a[0][0] } else { 0.0 }, 0.0, 0.0]);
        BackgroundFit {
            offset: c[0],
            slope_x: c[1] / self.pixel,
            slope_y: c[2] / self.pixel,
        }
    }

    /// The map with NaN at its invalid pixels.
    pub(crate) fn with_nan(&self) -> Vec<f32> {
        (0..self.h * self.w)
            .map(|i| {
                if self.valid_host[i] {
                    self.host[i]
                } else {
                    f32::NAN
                }
            })
            .collect()
    }

    /// The weight of pixel `i` (1 without a noise map).
    pub(crate) fn weight_at(&self, i: usize) -> f64 {
        self.weight_host.as_ref().map_or(1.0, |v| v[i])
    }

    /// `(I - P) W x` over the valid pixels (0 elsewhere), in f64: whitened when there are
    /// weights.
    pub(crate) fn perp(&self, x: &[f32]) -> Vec<f64> {
        let mut r: Vec<f64> = (0..self.h * self.w)
            .map(|i| {
                if self.valid_host[i] {
                    x[i] as f64 * self.weight_at(i)
                } else {
                    0.0
                }
            })
            .collect();
        for q in &self.basis_host {
            let c: f64 = q.iter().zip(&r).map(|(a, b)| a * b).sum();
            r.iter_mut().zip(q).for_each(|(v, a)| *v -= c * a);
        }
        r
    }

    /// `(I - P)(data - model)` over the valid pixels: the residual with the best background.
    pub(crate) fn residual_perp(&self, model: &[f32]) -> Vec<f64> {
        let d: Vec<f32> = self.host.iter().zip(model).map(|(a, b)| a - b).collect();
        self.perp(&d)
    }

    /// The zero field's residual (the best background alone, projected out) and its squared
    /// norm: what a model is compared with.
    pub(crate) fn zero_field(&self) -> ZeroField {
        let residual = self.residual_perp(&vec![0.0; self.h * self.w]);
        let sse = residual.iter().map(|x| x * x).sum();
        ZeroField { residual, sse }
    }

    /// The map with its invalid pixels replaced by `model`'s (zero residual there).
    pub(crate) fn filled(&self, model: &[f32]) -> Vec<f32> {
        (0..self.h * self.w)
            .map(|i| {
                if self.valid_host[i] {
                    self.host[i]
                } else {
                    model[i]
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cubic drift is projected out exactly by `Poly(3)` and not by `Plane`; the term order.
    #[test]
    fn polynomial_background_is_projected_out() {
        assert_eq!(Background::exponents(0), (0, 0));
        assert_eq!(Background::exponents(2), (0, 1));
        assert_eq!(Background::exponents(5), (0, 2));
        assert_eq!(Background::exponents(6), (3, 0));
        assert_eq!(Background::Poly(3).terms(), 10);
        let (h, w) = (12, 15);
        let model: Vec<f32> = (0..h * w).map(|i| ((i * 7) % 5) as f32 * 1e-4).collect();
        let drift = |i: usize| {
            let (x, y) = ((i % w) as f32 / 7.0 - 1.0, (i / w) as f32 / 5.5 - 1.0);
            1e-5 * (1.0 + x - 0.5 * y + 0.3 * x * x * y - 0.2 * y * y * y)
        };
        let data: Vec<f32> = (0..h * w).map(|i| model[i] + drift(i)).collect();
        let m = Tensor::from_shape_vec(&[1, 1, h, w], model.clone()).unwrap();
        let cubic = Data::new(
            &data,
            h,
            w,
            1e-7,
            Background::Poly(3),
            false,
            None,
            Device::Cpu,
        )
        .unwrap();
        assert!(cubic.loss(&m).unwrap().0.to_scalar().unwrap() < 1e-17);
        let plane = Data::new(
            &data,
            h,
            w,
            1e-7,
            Background::Plane,
            false,
            None,
            Device::Cpu,
        )
        .unwrap();
        assert!(plane.loss(&m).unwrap().0.to_scalar().unwrap() > 1e-14);
    }

    /// A plane added to a map is found exactly, and the loss of the right model is then zero.
    #[test]
    fn plane_background_is_projected_out() {
        let (h, w) = (8, 9);
        let model: Vec<f32> = (0..h * w).map(|i| ((i * 7) % 5) as f32 * 1e-4).collect();
        let plane = |i: usize| 2e-5 + 3e-6 * ((i % w) as f32 - 4.0) - 1e-6 * ((i / w) as f32 - 3.5);
        let mut data: Vec<f32> = (0..h * w).map(|i| model[i] + plane(i)).collect();
        data[5] = f32::NAN;
        let d = Data::new(
            &data,
            h,
            w,
            1e-7,
            Background::Plane,
            true,
            None,
            Device::Cpu,
        )
        .unwrap();
        let m = Tensor::from_shape_vec(&[1, 1, h, w], model.clone()).unwrap();
        let (loss, _) = d.loss(&m).unwrap();
        assert!(loss.to_scalar().unwrap() < 1e-16);
        let (_, fit) = d.complete_host(&model);
        assert!((fit.offset - 2e-5).abs() < 1e-9, "{fit:?}");
        assert!((fit.slope_x - 3e-6 / 1e-7).abs() < 1e-2 * 30.0, "{fit:?}");
        assert!((fit.slope_y + 1e-6 / 1e-7).abs() < 1e-2 * 10.0, "{fit:?}");
        assert!(Data::new(
            &data,
            h,
            w,
            1e-7,
            Background::Plane,
            false,
            None,
            Device::Cpu
        )
        .is_err());
    }
}
