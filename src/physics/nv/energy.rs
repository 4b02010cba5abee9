//! The micromagnetic energy of a single layer of cells (SPEC section 9), as a differentiable
//! function of the unit magnetisation `m` (1, 3, H, W) inside a support: exchange, thin-film
//! demagnetising energy in Fourier space, uniaxial anisotropy and interfacial DMI. Used as a
//! prior by the NV reconstruction (`--model energy`): the stray field sees only the charges of
//! the in-plane magnetisation, the energy says which of the fields that explain them is
//! physical.
//!
//! With pixel `p`, thickness `t`, `M = Ms m`, and the zero-padded unnormalised FFT `M~(k)` over
//! `N` padded pixels:
//!
//! - `E_ex = A t sum over neighbour pairs in the support |m_i - m_j|^2`
//! - `E_d = (mu0/2) t p^2 (1/N) sum_k [(1 - g(kt)) |k^ . M~_inplane(k)|^2 + g(kt) |M~_z(k)|^2]`,
//!   `g(x) = (1 - e^{-x}) / x`, `g(0) = 1`, `k^ = k / |k|` (0 at k = 0)
//! - `E_K = -K_u t p^2 sum (m . u)^2`
//! - `E_DMI = D t p^2 sum [m_z div m - (m . grad) m_z]`, on the pairs of neighbours: `D t p` times
//!   the pair averages and differences (`m_z dm_x - m_x dm_z` along x, likewise along y).

use crate::engine::autograd::no_grad;
use crate::engine::device::Device;
use crate::engine::storage::C32;
use crate::engine::tensor::Tensor;
use crate::error::{Error, Result};
use crate::physics::constants::MU0;
use crate::physics::signal::wavenumbers;

/// Material constants of a film. `Default` is Permalloy (Ms 8.6e5 A/m, A 1.3e-11 J/m, no
/// anisotropy, no DMI).
#[derive(Clone, Debug, PartialEq)]
pub struct Material {
    /// Saturation magnetisation (A/m).
    pub ms: f64,
    /// Exchange stiffness (J/m).
    pub a_ex: f64,
    /// Uniaxial anisotropy constant (J/m^3; > 0 easy axis).
    pub ku: f64,
    /// Anisotropy axis (unit vector; normalised on use).
    pub axis: [f64; 3],
    /// Interfacial DMI constant (J/m^2).
    pub dmi: f64,
}

impl Default for Material {
    fn default() -> Self {
        Material {
            ms: 8.6e5,
            a_ex: 1.3e-11,
            ku: 0.0,
            axis: [0.0, 0.0, 1.0],
            dmi: 0.0,
        }
    }
}

/// The energy terms of one state (J).
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct EnergyParts {
    /// Exchange.
    pub exchange: f64,
    /// Demagnetising (magnetostatic self-energy).
    pub demag: f64,
    /// Uniaxial anisotropy.
    pub anisotropy: f64,
    /// Interfacial DMI.
    pub dmi: f64,
}

impl EnergyParts {
    /// The total (J).
    pub fn total(&self) -> f64 {
        self.exchange + self.demag + self.anisotropy + self.dmi
    }
}

/// The energy functional for one map size, geometry, support and material, with its constant
/// tensors on one device.
pub struct Energy {
    h: usize,
    w: usize,
    pad: (usize, usize),
    material: Material,
    /// `A t`, `(mu0/2) t p^2 / N`, `K t p^2`, `D t p`
    coef: [f32; 4],
    /// pairs of neighbours both inside the support: along x (1, 1, h, w-1), along y (1, 1, h-1, w)
    pair_x: Tensor,
    pair_y: Tensor,
    /// support (1, 1, h, w)
    support: Tensor,
    /// `k^_x sqrt(1 - g)`, `k^_y sqrt(1 - g)`, `sqrt(g)` (complex, (ph, pw))
    kx: Tensor,
    ky: Tensor,
    kz: Tensor,
    /// `(mu0/2) Ms^2 t p^2 N_support`: the energy of full shape anisotropy, the natural unit
    scale: f64,
}

impl Energy {
    /// The functional for `(h, w)` maps of `pixel` metres, a film of `thickness`, the
    /// support (h, w) (> 0.5 inside), on a grid zero-padded by `pad`, tensors on `device`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        h: usize,
        w: usize,
        pixel: f64,
        thickness: f64,
        support: &[f32],
        material: &Material,
        pad: usize,
        device: Device,
    ) -> Result<Energy> {
        const OP: &str = "energy prior";
        if support.len() != h * w || h < 2 || w < 2 || pad == 0 {
            return Err(Error::arg(
                OP,
                format!("support of {} values for {h}x{w}", support.len()),
            ));
        }
        for (n, v) in [
            ("pixel", pixel),
            ("thickness", thickness),
            ("ms", material.ms),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::arg(OP, format!("{n} must be positive, got {v}")));
            }
        }
        for (n, v) in [
            ("A", material.a_ex),
            ("K", material.ku),
            ("D", material.dmi),
        ] {
            if !v.is_finite() {
                return Err(Error::arg(OP, format!("{n} must be finite, got {v}")));
            }
        }
        let sup: Vec<f32> = support.iter().map(|&v| (v > 0.5) as u8 as f32).collect();
        let n_sup = sup.iter().sum::<f32>() as f64;
        if n_sup == 0.0 {
            return Err(Error::arg(OP, "the support is empty"));
        }
        let pairs = |dr: usize, dc: usize| -> Result<Tensor> {
            let (ph, pw) = (h - dr, w - dc);
            let v = (0..ph * pw)
                .map(|i| {
                    let (r, c) = (i / pw, i % pw);
                    sup[r * w + c] * sup[(r + dr) * w + c + dc]
                })
                .collect();
            Tensor::from_shape_vec(&[1, 1, ph, pw], v)?.to_device(device)
        };
        let (ph, pw) = (h * pad, w * pad);
        let (ky, kx) = (wavenumbers(ph, pixel), wavenumbers(pw, pixel));
        let n = (ph * pw) as f64;
        let (mut gx, mut gy, mut gz) = (Vec::new(), Vec::new(), Vec::new());
        for &y in &ky {
            for &x in &kx {
                let k = (x * x + y * y).sqrt();
                let g = if k == 0.0 {
                    1.0
                } else {
                    (1.0 - (-k * thickness).exp()) / (k * thickness)
                };
                let (hx, hy) = if k == 0.0 { (0.0, 0.0) } else { (x / k, y / k) };
                let s = (1.0 - g).max(0.0).sqrt();
                gx.push(C32::new((hx * s) as f32, 0.0));
                gy.push(C32::new((hy * s) as f32, 0.0));
                gz.push(C32::new(g.sqrt() as f32, 0.0));
            }
        }
        let kt = |v: Vec<C32>| Tensor::from_shape_vec_c(&[ph, pw], v)?.to_device(device);
        let p2 = pixel * pixel;
        Ok(Energy {
            h,
            w,
            pad: (ph, pw),
            material: material.clone(),
            coef: [
                (material.a_ex * thickness) as f32,
                (0.5 * MU0 * thickness * p2 / n) as f32,
                (material.ku * thickness * p2) as f32,
                (material.dmi * thickness * pixel) as f32,
            ],
            pair_x: pairs(0, 1)?,
            pair_y: pairs(1, 0)?,
            support: Tensor::from_shape_vec(&[1, 1, h, w], sup)?.to_device(device)?,
            kx: kt(gx)?,
            ky: kt(gy)?,
            kz: kt(gz)?,
            scale: 0.5 * MU0 * material.ms * material.ms * thickness * p2 * n_sup,
        })
    }

    /// `(mu0/2) Ms^2 t p^2 N_support` (J): the demagnetising energy of the support magnetised
    /// out of plane in the thin-film limit, the unit in which the prior is weighed.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// The material.
    pub fn material(&self) -> &Material {
        &self.material
    }

    /// The support (1, 1, h, w), 0 or 1.
    pub fn support(&self) -> &Tensor {
        &self.support
    }

    fn check(&self, m: &Tensor) -> Result<()> {
        if m.shape() != [1, 3, self.h, self.w] {
            return Err(Error::shape(
                "energy prior",
                m.shape(),
                format!("expected (1, 3, {}, {})", self.h, self.w),
            ));
        }
        Ok(())
    }

    /// The four terms as scalar tensors (J), differentiable in `m` (1, 3, h, w): unit vectors
    /// inside the support, 0 outside.
    pub fn terms(&self, m: &Tensor) -> Result<[Tensor; 4]> {
        self.check(m)?;
        let (h, w) = (self.h, self.w);
        let [a, dcoef, k, d] = self.coef;
        // neighbour differences and averages
        let dx = m.crop2d(0, h, 1, w - 1)?.sub(&m.crop2d(0, h, 0, w - 1)?)?;
        let dy = m.crop2d(1, h - 1, 0, w)?.sub(&m.crop2d(0, h - 1, 0, w)?)?;
        let exchange = dx
            .square()?
            .mul(&self.pair_x)?
            .sum_all()?
            .add(&dy.square()?.mul(&self.pair_y)?.sum_all()?)?
            .scale(a)?;
        // demag: |k^ . M~|^2 (1 - g) + |M~z|^2 g, over the padded spectrum
        let ms = self.material.ms as f32;
        let (ph, pw) = self.pad;
        let mp = m.scale(ms)?.pad2d(0, ph - h, 0, pw - w)?;
        let spec = Tensor::complex(&mp, &mp.zeros_like()?)?.fft2()?;
        let ch = |c: usize| spec.narrow(1, c, 1);
        let inplane = ch(0)?.mul(&self.kx)?.add(&ch(1)?.mul(&self.ky)?)?;
        let demag = inplane
            .abs2()?
            .sum_all()?
            .add(&ch(2)?.mul(&self.kz)?.abs2()?.sum_all()?)?
            .scale(dcoef)?;
        // anisotropy: -K t p^2 sum (m . u)^2
        let u = self.material.axis;
        let un = (u[0] * u[0] + u[1] * u[1] + u[2] * u[2]).sqrt().max(1e-300);
        let axis =
            Tensor::from_shape_vec(&[1, 3, 1, 1], u.iter().map(|&x| (x / un) as f32).collect())?
                .to_device(m.device())?;
        let anisotropy = m
            .mul(&axis)?
            .sum_axes(&[1], true)?
            .square()?
            .sum_all()?
            .scale(-k)?;
        // DMI: D t p sum over pairs [m_z d m_c - m_c d m_z], c = x along x, c = y along y
        let pair_term = |diff: &Tensor, avg: Tensor, c: usize, mask: &Tensor| -> Result<Tensor> {
            let mz = avg.narrow(1, 2, 1)?;
            let mc = avg.narrow(1, c, 1)?;
            mz.mul(&diff.narrow(1, c, 1)?)?
                .sub(&mc.mul(&diff.narrow(1, 2, 1)?)?)?
                .mul(mask)?
                .sum_all()
        };
        let avg_x = m
            .crop2d(0, h, 1, w - 1)?
            .add(&m.crop2d(0, h, 0, w - 1)?)?
            .scale(0.5)?;
        let avg_y = m
            .crop2d(1, h - 1, 0, w)?
            .add(&m.crop2d(0, h - 1, 0, w)?)?
            .scale(0.5)?;
        let dmi = pair_term(&dx, avg_x, 0, &self.pair_x)?
            .add(&pair_term(&dy, avg_y, 1, &self.pair_y)?)?
            .scale(d)?;
        Ok([exchange, demag, anisotropy, dmi])
    }

    /// The total energy (J), differentiable in `m`.
    pub fn energy(&self, m: &Tensor) -> Result<Tensor> {
        let [a, b, c, d] = self.terms(m)?;
        a.add(&b)?.add(&c)?.add(&d)
    }

    /// The four terms of a state (J), evaluated without recording.
    pub fn parts(&self, m: &Tensor) -> Result<EnergyParts> {
        let t = no_grad(|| self.terms(m))?;
        let v = Tensor::cat(
            &t.iter()
                .map(|x| x.reshape(&[1]))
                .collect::<Result<Vec<_>>>()?,
            0,
        )?
        .to_vec()?;
        Ok(EnergyParts {
            exchange: v[0] as f64,
            demag: v[1] as f64,
            anisotropy: v[2] as f64,
            dmi: v[3] as f64,
        })
    }
}

/// Unit vectors `v / |v|` per pixel of a (1, 3, h, w) field, times the (1, 1, h, w) support:
/// the direct parametrisation of `|m| = 1` inside the support (differentiable in `v`).
pub fn normalized(v: &Tensor, support: &Tensor) -> Result<Tensor> {
    let norm = v
        .square()?
        .sum_axes(&[1], true)?
        .add_scalar(1e-12)?
        .sqrt()?;
    v.div(&norm)?.mul(support)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uniform(h: usize, w: usize, dir: [f32; 3], sup: &[f32]) -> Tensor {
        let mut v = vec![0f32; 3 * h * w];
        for c in 0..3 {
            for i in 0..h * w {
                v[c * h * w + i] = dir[c] * sup[i];
            }
        }
        Tensor::from_shape_vec(&[1, 3, h, w], v).unwrap()
    }

    /// A large uniformly out-of-plane film has the demagnetising energy (mu0/2) Ms^2 V (full
    /// shape anisotropy); in plane it has almost none, and exchange vanishes for both.
    #[test]
    fn uniform_films_have_the_shape_anisotropy_energies() {
        let (h, w) = (64, 64);
        let sup = vec![1f32; h * w];
        let mat = Material::default();
        let e = Energy::new(h, w, 5e-9, 2e-9, &sup, &mat, 4, Device::Cpu).unwrap();
        let v = mat.ms.powi(2) * 0.5 * MU0 * 5e-9 * 5e-9 * 2e-9 * (h * w) as f64;
        let z = e.parts(&uniform(h, w, [0.0, 0.0, 1.0], &sup)).unwrap();
        assert!((z.demag / v - 1.0).abs() < 0.05, "{} vs {v}", z.demag);
        assert!(z.exchange.abs() < 1e-30);
        let x = e.parts(&uniform(h, w, [1.0, 0.0, 0.0], &sup)).unwrap();
        assert!(x.demag < 0.05 * v, "in-plane {} vs {v}", x.demag);
        assert!(x.demag > 0.0);
    }

    /// Exchange of a linear twist: sum of |dm|^2 over pairs, A t each.
    #[test]
    fn exchange_counts_pairs_inside_the_support() {
        let (h, w) = (4, 5);
        let mut sup = vec![1f32; h * w];
        sup[0] = 0.0;
        let mat = Material::default();
        let e = Energy::new(h, w, 5e-9, 20e-9, &sup, &mat, 2, Device::Cpu).unwrap();
        // m along x left of column 2, along y from column 2 on: |dm|^2 = 2 at the step
        let mut v = vec![0f32; 3 * h * w];
        for r in 0..h {
            for c in 0..w {
                let i = r * w + c;
                if sup[i] > 0.0 {
                    if c < 2 {
                        v[i] = 1.0;
                    } else {
                        v[h * w + i] = 1.0;
                    }
                }
            }
        }
        let p = e
            .parts(&Tensor::from_shape_vec(&[1, 3, h, w], v).unwrap())
            .unwrap();
        // pairs across the step: 4 rows, all inside the support
        let want = 4.0 * 2.0 * mat.a_ex * 20e-9;
        assert!(
            (p.exchange / want - 1.0).abs() < 1e-5,
            "{} vs {want}",
            p.exchange
        );
    }
}
