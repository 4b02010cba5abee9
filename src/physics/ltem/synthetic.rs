//! Synthetic Lorentz-TEM test data: Bloch bubble lattices and stripe domains, their magnetic
//! phase (SPEC section 4's formula), and noisy defocused images.

use super::forward::{add_noise, magnetic_phase, LtemForward};
use super::optics::Microscope;
use crate::error::{Error, Result};
use crate::rng::Rng;
use std::f64::consts::PI;

/// A simulated image with its ground truth.
#[derive(Clone, Debug)]
pub struct Synthetic {
    /// Rows.
    pub h: usize,
    /// Columns.
    pub w: usize,
    /// In-plane magnetisation (2, h, w), A/m.
    pub magnetization: Vec<f32>,
    /// True magnetic phase (h, w), rad, minimum 0.
    pub phase: Vec<f32>,
    /// Noise-free image (h, w), mean about 1.
    pub image_clean: Vec<f32>,
    /// Noisy image (h, w).
    pub image: Vec<f32>,
}

/// Which texture to simulate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Texture {
    /// A staggered lattice of Bloch bubbles (radius 0.07 n, wall width 0.02 n, random chirality).
    Bubbles,
    /// Bloch stripe domains, period n/4, slightly undulating.
    Stripes,
}

/// In-plane magnetisation (2, n, n) in A/m of a texture (periodic in the n x n box).
pub fn texture(kind: Texture, n: usize, ms: f64, seed: u64) -> Vec<f32> {
    let mut m = vec![0f32; 2 * n * n];
    let nf = n as f64;
    let mut rng = Rng::new(seed);
    match kind {
        Texture::Bubbles => {
            let per_row = 4usize;
            let sp = nf / per_row as f64;
            let (r0, wall) = (0.07 * nf, (0.02 * nf).max(1.0));
            let mut centres = Vec::new();
            for j in 0..per_row {
                for i in 0..per_row {
                    let off = if j % 2 == 1 { sp / 2.0 } else { 0.0 };
                    let chir = if rng.uniform() < 0.5 { -1.0 } else { 1.0 };
                    centres.push(((i as f64 + 0.5) * sp + off, (j as f64 + 0.5) * sp, chir));
                }
            }
            for r in 0..n {
                for c in 0..n {
                    // nearest centre, periodic
                    let mut best = (f64::INFINITY, 0.0, 0.0, 1.0);
                    for &(cx, cy, chir) in &centres {
                        let mut dx = c as f64 - cx;
                        let mut dy = r as f64 - cy;
                        dx -= nf * (dx / nf).round();
                        dy -= nf * (dy / nf).round();
                        let d = (dx * dx + dy * dy).sqrt();
                        if d < best.0 {
                            best = (d, dx, dy, chir);
                        }
                    }
                    let (d, dx, dy, chir) = best;
                    if d > 0.0 {
                        let a = ms / ((d - r0) / wall).cosh() * chir;
                        m[r * n + c] = (-a * dy / d) as f32;
                        m[n * n + r * n + c] = (a * dx / d) as f32;
                    }
                }
            }
        }
        Texture::Stripes => {
            let period = nf / 4.0;
            let phase0 = rng.uniform() * 2.0 * PI;
            for r in 0..n {
                for c in 0..n {
                    // stripes across x, undulating along y
                    let u = c as f64 + 0.06 * nf * (2.0 * PI * r as f64 / nf + phase0).sin();
                    let arg = 2.0 * PI * u / period;
                    let mz = (3.0 * arg.sin()).tanh();
                    let inplane = (1.0 - mz * mz).max(0.0).sqrt() * arg.cos().signum();
                    // the wall runs along the local tangent (d/dy of the wall line, then y)
                    let slope =
                        0.06 * nf * 2.0 * PI / nf * (2.0 * PI * r as f64 / nf + phase0).cos();
                    let norm = (1.0 + slope * slope).sqrt();
                    m[r * n + c] = (ms * inplane * (-slope) / norm) as f32;
                    m[n * n + r * n + c] = (ms * inplane / norm) as f32;
                }
            }
        }
    }
    m
}

/// Simulates an `n x n` texture of saturation `ms` (A/m) in a film `t_nm` thick, imaged by
/// `mic` (periodic), with Gaussian noise `noise x mean(I)` from `seed`.
pub fn simulate(
    kind: Texture,
    n: usize,
    ms: f64,
    t_nm: f64,
    mic: &Microscope,
    noise: f64,
    seed: u64,
) -> Result<Synthetic> {
    if n < 16 {
        return Err(Error::arg(
            "synthetic",
            format!("n = {n} is too small (>= 16)"),
        ));
    }
    let m = texture(kind, n, ms, seed);
    let phase = super::sitie::min_subtracted(magnetic_phase(
        &m[..n * n],
        &m[n * n..],
        n,
        n,
        t_nm,
        mic.scale,
    )?);
    let fwd = LtemForward::new(n, n, mic, 1)?;
    let clean = fwd.image_of(&phase, None)?;
    let mut image = clean.clone();
    add_noise(
        &mut image,
        noise,
        None,
        mic.scale,
        &mut Rng::new(seed.wrapping_add(1)),
    )?;
    Ok(Synthetic {
        h: n,
        w: n,
        magnetization: m,
        phase,
        image_clean: clean,
        image,
    })
}
