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
    /// Exit-wave amplitude (h, w) of the contamination (all 1 without particles).
    pub amplitude: Vec<f32>,
    /// Electrostatic phase (h, w) of the contamination, rad (all 0 without particles).
    pub phase_e: Vec<f32>,
}

/// A contamination particle (ice, carbon, oxide): a disc of uniform amplitude with a soft edge
/// (`tanh` over 1 pixel) and the electrostatic phase `kappa (-ln a)` that goes with its thickness.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Particle {
    /// Centre row (pixels).
    pub row: f64,
    /// Centre column (pixels).
    pub col: f64,
    /// Radius (pixels).
    pub radius: f64,
    /// Amplitude inside (0 < a < 1).
    pub amplitude: f64,
}

impl Particle {
    /// The particle's amplitude factor at pixel `(r, c)` (1 far outside).
    fn factor(&self, r: f64, c: f64) -> f64 {
        let d = ((r - self.row).powi(2) + (c - self.col).powi(2)).sqrt();
        let inside = 0.5 * (1.0 - ((d - self.radius) / 1.0).tanh());
        1.0 - (1.0 - self.amplitude) * inside
    }
}

/// The amplitude map (h, w) of `particles` (overlaps multiply).
pub fn particle_amplitude(particles: &[Particle], h: usize, w: usize) -> Vec<f32> {
    (0..h * w)
        .map(|i| {
            let (r, c) = ((i / w) as f64, (i % w) as f64);
            particles.iter().map(|p| p.factor(r, c)).product::<f64>() as f32
        })
        .collect()
}

/// The electrostatic phase `kappa (-ln a)` (rad) of an amplitude map.
pub fn electrostatic_phase(amplitude: &[f32], kappa: f64) -> Vec<f32> {
    amplitude
        .iter()
        .map(|&a| (kappa * -(a as f64).ln()) as f32)
        .collect()
}

fn summed(a: &[f32], b: &[f32]) -> Vec<f32> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

impl Synthetic {
    /// The exit wave's whole phase: magnetic plus electrostatic (rad, (h, w)).
    pub fn exit_phase(&self) -> Vec<f32> {
        summed(&self.phase, &self.phase_e)
    }
}

/// The true contamination mask (h, w): pixels within a particle's radius.
pub fn particle_mask(particles: &[Particle], h: usize, w: usize) -> Vec<bool> {
    (0..h * w)
        .map(|i| {
            let (r, c) = ((i / w) as f64, (i % w) as f64);
            particles
                .iter()
                .any(|p| (r - p.row).powi(2) + (c - p.col).powi(2) < p.radius * p.radius)
        })
        .collect()
}

/// `count` particles with radii in `radius` and amplitudes in `amplitude` (uniform), placed at
/// random in an `(h, w)` field at least 2 radii from the edges and not overlapping (gap >= 4 px).
pub fn random_particles(
    count: usize,
    radius: (f64, f64),
    amplitude: (f64, f64),
    h: usize,
    w: usize,
    seed: u64,
) -> Result<Vec<Particle>> {
    let ok = radius.0 > 0.0
        && radius.0 <= radius.1
        && amplitude.0 > 0.0
        && amplitude.0 <= amplitude.1
        && amplitude.1 < 1.0;
    if !ok {
        return Err(Error::arg(
            "particles",
            format!("radii {radius:?} must be positive and amplitudes {amplitude:?} in (0, 1)"),
        ));
    }
    let mut rng = Rng::new(seed ^ 0x9a27_1c1e);
    let mut out: Vec<Particle> = Vec::with_capacity(count);
    for _ in 0..count {
        let r = rng.uniform_range(radius.0, radius.1);
        let a = rng.uniform_range(amplitude.0, amplitude.1);
        let placed = (0..1000).find_map(|_| {
            let (lo_r, hi_r) = (2.0 * r, h as f64 - 2.0 * r);
            let (lo_c, hi_c) = (2.0 * r, w as f64 - 2.0 * r);
            if lo_r >= hi_r || lo_c >= hi_c {
                return None;
            }
            let p = Particle {
                row: rng.uniform_range(lo_r, hi_r),
                col: rng.uniform_range(lo_c, hi_c),
                radius: r,
                amplitude: a,
            };
            let apart = out.iter().all(|q| {
                ((p.row - q.row).powi(2) + (p.col - q.col).powi(2)).sqrt()
                    > p.radius + q.radius + 4.0
            });
            apart.then_some(p)
        });
        match placed {
            Some(p) => out.push(p),
            None => {
                return Err(Error::arg(
                    "particles",
                    format!(
                        "{count} particles of radius up to {} do not fit in {h}x{w}",
                        radius.1
                    ),
                ))
            }
        }
    }
    Ok(out)
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
    simulate_contaminated(kind, n, ms, t_nm, mic, noise, seed, &[], 0.0)
}

/// The image of a field in focus (the same microscope at zero defocus): exit-wave `phase`
/// (magnetic plus electrostatic, rad) and `amplitude`, (h, w) each, on a grid enlarged by
/// `pad`, with Gaussian noise `noise x mean(I)` (and Poisson noise at `dose` electrons per
/// nm^2) from `seed`. Contamination shows there without magnetic contrast.
pub fn in_focus_image(
    phase: &[f32],
    amplitude: &[f32],
    (h, w): (usize, usize),
    mic: &Microscope,
    pad: usize,
    (noise, dose): (f64, Option<f64>),
    seed: u64,
) -> Result<Vec<f32>> {
    let focus = Microscope {
        defocus: 0.0,
        ..mic.clone()
    };
    let mut img = LtemForward::new(h, w, &focus, pad)?.image_of(phase, Some(amplitude))?;
    add_noise(&mut img, noise, dose, mic.scale, &mut Rng::new(seed))?;
    Ok(img)
}

/// As [`simulate`], with contamination: the exit wave carries the amplitude of `particles` and
/// their electrostatic phase `kappa (-ln a)` (`kappa = V0 sigma xi`, rad, see
/// [`crate::ltem::interaction_constant`]). The magnetic phase is the truth to recover.
#[allow(clippy::too_many_arguments)]
pub fn simulate_contaminated(
    kind: Texture,
    n: usize,
    ms: f64,
    t_nm: f64,
    mic: &Microscope,
    noise: f64,
    seed: u64,
    particles: &[Particle],
    kappa: f64,
) -> Result<Synthetic> {
    if n < 16 || !(kappa.is_finite() && kappa >= 0.0) {
        return Err(Error::arg(
            "synthetic",
            format!("n = {n} must be >= 16 and kappa = {kappa} finite and >= 0"),
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
    let amplitude = particle_amplitude(particles, n, n);
    let phase_e = electrostatic_phase(&amplitude, kappa);
    let total = summed(&phase, &phase_e);
    let fwd = LtemForward::new(n, n, mic, 1)?;
    let clean = fwd.image_of(&total, (!particles.is_empty()).then_some(&amplitude[..]))?;
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
        amplitude,
        phase_e,
    })
}
