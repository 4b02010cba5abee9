//! The AdamW update on host slices (PyTorch semantics; the GPU twin is `kernels/adamw.wgsl`).

use crate::backend::AdamWStep;

/// `m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; p *= 1 - lr wd;
/// p -= (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps)`, in place.
pub fn adamw(s: &AdamWStep, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
    let bc1 = 1.0 - s.beta1.powi(s.t as i32);
    let bc2 = 1.0 - s.beta2.powi(s.t as i32);
    let step = (s.lr / bc1) as f32;
    let bc2_sqrt = bc2.sqrt() as f32;
    let decay = (1.0 - s.lr * s.weight_decay) as f32;
    let (b1, b2, eps) = (s.beta1 as f32, s.beta2 as f32, s.eps as f32);
    for j in 0..p.len() {
        let gj = g[j];
        m[j] = b1 * m[j] + (1.0 - b1) * gj;
        v[j] = b2 * v[j] + (1.0 - b2) * gj * gj;
        p[j] *= decay;
        p[j] -= step * m[j] / (v[j].sqrt() / bc2_sqrt + eps);
    }
}
