//! Synthetic test data: a Permalloy ellipse in a Landau (flux-closure) state and its noisy B_NV.

use super::forward::{NvForward, NvGeometry};
use super::mask::{ellipse_support, gaussian_blur, preset_mask, Preset};
use crate::engine::tensor::Tensor;
use crate::error::Result;
use crate::rng::Rng;

/// A synthetic measurement with its ground truth.
#[derive(Clone, Debug)]
pub struct Synthetic {
    /// Rows.
    pub h: usize,
    /// Columns.
    pub w: usize,
    /// True magnetisation (3, H, W) A/m.
    pub magnetization: Vec<f32>,
    /// Support of the ellipse (H, W), 0/1.
    pub support: Vec<f32>,
    /// Noisy B_NV (H, W) T.
    pub bnv: Vec<f32>,
    /// Noise-free B_NV (H, W) T.
    pub bnv_clean: Vec<f32>,
}

/// An `n x n` map of an ellipse (semi-axes 0.36 n and 0.24 n pixels) holding four flux-closure
/// domains (counter-clockwise, walls along the bounding box's diagonals, softened by a 1-pixel
/// Gaussian, |M| = ms inside), imaged with `geom` and Gaussian noise of `noise` x max|B_NV|.
pub fn landau_ellipse(
    n: usize,
    geom: &NvGeometry,
    ms: f64,
    noise: f64,
    seed: u64,
) -> Result<Synthetic> {
    let c = (n as f64 - 1.0) / 2.0;
    let support = ellipse_support(n, n, c, c, 0.36 * n as f64, 0.24 * n as f64, 0.0);
    let mask = preset_mask(&support, n, n, Preset::Landau { ccw: true }, 0.0, false)?;
    let soft = gaussian_blur(&mask.data, n, n, 1.0);
    let mut m = vec![0f32; 3 * n * n];
    for i in 0..n * n {
        let (x, y) = (soft[i], soft[n * n + i]);
        let norm = (x * x + y * y).sqrt();
        if support[i] > 0.0 && norm > 0.0 {
            m[i] = (ms as f32) * x / norm;
            m[n * n + i] = (ms as f32) * y / norm;
        }
    }
    let fwd = NvForward::new(n, n, geom)?;
    let clean = fwd
        .bnv(&Tensor::from_shape_vec(&[1, 3, n, n], m.clone())?)?
        .to_vec()?;
    let peak = clean.iter().fold(0f32, |a, v| a.max(v.abs()));
    let mut rng = Rng::new(seed);
    let bnv = clean
        .iter()
        .map(|v| v + (noise * peak as f64 * rng.normal()) as f32)
        .collect();
    Ok(Synthetic {
        h: n,
        w: n,
        magnetization: m,
        support,
        bnv,
        bnv_clean: clean,
    })
}
