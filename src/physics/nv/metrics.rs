//! Fit quality of an NV reconstruction and agreement with a known magnetisation.

/// Fit quality.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NvMetrics {
    /// Mean squared error of B_NV (T^2).
    pub mse: f64,
    /// Root mean squared error (mT).
    pub rmse_mt: f64,
    /// `10 log10(mean(B_NV,model^2) / MSE)` (dB). The paper prints mean(|AM|)/MSE, which is
    /// not dimensionless; this is the power ratio.
    pub snr_db: f64,
    /// Mean in-plane |M| over the mask's support (A/m).
    pub mean_m_inplane: f64,
}

/// MSE, RMSE, SNR of `model` against `meas`, and the mean in-plane |M| over `support`.
pub fn nv_metrics(model: &[f32], meas: &[f32], m: &[f32], support: &[bool]) -> NvMetrics {
    let n = model.len().max(1) as f64;
    let mse = model
        .iter()
        .zip(meas)
        .map(|(a, b)| ((a - b) as f64).powi(2))
        .sum::<f64>()
        / n;
    let power = model.iter().map(|a| (*a as f64).powi(2)).sum::<f64>() / n;
    let hw = support.len();
    let (mut sum, mut cnt) = (0.0, 0usize);
    for (i, &s) in support.iter().enumerate() {
        if s {
            sum += ((m[i] as f64).powi(2) + (m[hw + i] as f64).powi(2)).sqrt();
            cnt += 1;
        }
    }
    NvMetrics {
        mse,
        rmse_mt: mse.sqrt() * 1e3,
        snr_db: 10.0 * (power / mse).log10(),
        mean_m_inplane: sum / cnt.max(1) as f64,
    }
}

/// Mean cosine of the angle between the in-plane directions of two magnetisations (3, H, W)
/// over the pixels of `support` where both are non-zero: 1 for the same directions, -1 for
/// reversed ones, ~0 for unrelated ones.
pub fn direction_cosine(a: &[f32], b: &[f32], support: &[f32]) -> f64 {
    let hw = support.len();
    let (mut cos, mut cnt) = (0.0, 0usize);
    for i in 0..hw {
        let (ax, ay) = (a[i] as f64, a[hw + i] as f64);
        let (bx, by) = (b[i] as f64, b[hw + i] as f64);
        let (na, nb) = ((ax * ax + ay * ay).sqrt(), (bx * bx + by * by).sqrt());
        if support[i] > 0.5 && na > 0.0 && nb > 0.0 {
            cos += (ax * bx + ay * by) / (na * nb);
            cnt += 1;
        }
    }
    cos / cnt.max(1) as f64
}
