//! Counter-based standard normal samples on the host, bit-for-bit the integers of
//! `kernels/random.wgsl` (the GPU's log and cos may differ from libm by ~1e-5 absolute).

use rayon::prelude::*;

/// Chris Wellons' `lowbias32` integer hash.
#[inline(always)]
fn mix(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^= x >> 16;
    x
}

/// Element `i` of the stream `key`: `scale` times a standard normal (Box-Muller of two hashed
/// uniforms).
#[inline(always)]
pub fn normal_at(key: u64, i: u32, scale: f32) -> f32 {
    let (k0, k1) = (key as u32, (key >> 32) as u32);
    let a = mix(mix(i.wrapping_mul(2) ^ k0) ^ k1);
    let b = mix(mix(i.wrapping_mul(2).wrapping_add(1) ^ k0) ^ k1);
    let u1 = ((a >> 8) + 1) as f32 / 16_777_216.0;
    let u2 = (b >> 8) as f32 / 16_777_216.0;
    scale * (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

/// `n` samples of the stream `key`, times `scale`.
pub fn normal(key: u64, n: usize, scale: f32) -> Vec<f32> {
    (0..n as u32)
        .into_par_iter()
        .map(|i| normal_at(key, i, scale))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Mean 0, variance 1, no correlation between neighbouring elements or between the streams
    /// of neighbouring keys (as the per-iteration keys of a drifting input are).
    #[test]
    fn streams_are_standard_normal_and_independent() {
        let n = 200_000;
        let a = normal(0x1234_5678_9abc_def0, n, 1.0);
        let b = normal(0x1234_5678_9abc_def0 ^ 0x9e37_79b9_7f4a_7c15, n, 1.0);
        let mean = |v: &[f32]| v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
        let dot = |x: &[f32], y: &[f32]| {
            x.iter()
                .zip(y)
                .map(|(&p, &q)| p as f64 * q as f64)
                .sum::<f64>()
                / x.len() as f64
        };
        // 5 sigma bounds for n = 2e5: mean 0.011, variance 0.016, correlations 0.011
        assert!(mean(&a).abs() < 0.011, "mean {}", mean(&a));
        assert!((dot(&a, &a) - 1.0).abs() < 0.016, "var {}", dot(&a, &a));
        assert!(dot(&a, &b).abs() < 0.011, "between keys {}", dot(&a, &b));
        assert!(dot(&a[1..], &a[..n - 1]).abs() < 0.011, "neighbours");
        let kurt = a.iter().map(|&x| (x as f64).powi(4)).sum::<f64>() / n as f64;
        assert!((kurt - 3.0).abs() < 0.1, "fourth moment {kurt}");
    }
}
