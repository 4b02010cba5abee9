//! AdamW (decoupled weight decay), PyTorch semantics.

use crate::autograd::GradStore;
use crate::error::{Error, Result};
use crate::gpu::adamw::{adamw_step, AdamWStep};
use crate::storage::gpu_of;
use crate::tensor::Tensor;

/// AdamW: `m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; p -= lr wd p;
/// p -= lr m_hat / (sqrt(v_hat) + eps)` with bias-corrected `m_hat`, `v_hat`.
///
/// Runs where each parameter lives: on the GPU the update is one in-place kernel
/// (`kernels/adamw.wgsl`) over the parameter, its gradient and the moments, all device buffers.
pub struct AdamW {
    params: Vec<Tensor>,
    /// First-moment estimates, one per parameter (moved to the parameter's device at a step).
    pub m: Vec<Tensor>,
    /// Second-moment estimates, one per parameter.
    pub v: Vec<Tensor>,
    /// Steps taken.
    pub t: u64,
    /// Learning rate.
    pub lr: f64,
    /// Exponential decay rates of the moments.
    pub betas: (f64, f64),
    /// Added to the denominator.
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
}

impl AdamW {
    /// AdamW over `params` with PyTorch's defaults: betas (0.9, 0.999), eps 1e-8, weight decay 0.01.
    pub fn new(params: Vec<Tensor>, lr: f64) -> AdamW {
        let m = params.iter().map(|p| Tensor::zeros(p.shape())).collect();
        let v = params.iter().map(|p| Tensor::zeros(p.shape())).collect();
        AdamW {
            params,
            m,
            v,
            t: 0,
            lr,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }

    /// Sets the weight decay (0 gives plain Adam).
    pub fn with_weight_decay(mut self, wd: f64) -> AdamW {
        self.weight_decay = wd;
        self
    }

    /// The parameters being optimised.
    pub fn params(&self) -> &[Tensor] {
        &self.params
    }

    /// One update from the gradients in `grads`; parameters without a gradient are left alone
    /// (their moments too), like PyTorch's `grad is None`.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.t += 1;
        let (b1, b2) = self.betas;
        let bc1 = 1.0 - b1.powi(self.t as i32);
        let bc2 = 1.0 - b2.powi(self.t as i32);
        let step = (self.lr / bc1) as f32;
        let bc2_sqrt = bc2.sqrt() as f32;
        let decay = (1.0 - self.lr * self.weight_decay) as f32;
        let (b1f, b2f, eps) = (b1 as f32, b2 as f32, self.eps as f32);
        for (i, p) in self.params.iter().enumerate() {
            let Some(g) = grads.get(p) else { continue };
            if g.shape() != p.shape() {
                return Err(Error::ShapeMismatch {
                    op: "AdamW",
                    lhs: p.shape().to_vec(),
                    rhs: g.shape().to_vec(),
                });
            }
            let (mt, vt) = (&self.m[i], &self.v[i]);
            mt.move_to(p.device())?;
            vt.move_to(p.device())?;
            if let Some(ctx) = gpu_of("AdamW", &[p, g])? {
                let s = AdamWStep {
                    lr: self.lr,
                    beta1: b1,
                    beta2: b2,
                    eps: self.eps,
                    weight_decay: self.weight_decay,
                    t: u32::try_from(self.t).unwrap_or(u32::MAX),
                };
                let pb = p.write().gbuf_unique("AdamW")?;
                let mb = mt.write().gbuf_unique("AdamW")?;
                let vb = vt.write().gbuf_unique("AdamW")?;
                adamw_step(ctx, &s, &pb, &g.gbuf("AdamW")?, &mb, &vb)?;
                continue;
            }
            let gs = g.read();
            let gv = gs.f32("AdamW")?;
            let mut ps = p.write();
            let pv = ps.f32_mut("AdamW")?;
            let mut ms = mt.write();
            let m = ms.f32_mut("AdamW")?;
            let mut vs = vt.write();
            let v = vs.f32_mut("AdamW")?;
            for j in 0..pv.len() {
                let gj = gv[j];
                m[j] = b1f * m[j] + (1.0 - b1f) * gj;
                v[j] = b2f * v[j] + (1.0 - b2f) * gj * gj;
                pv[j] *= decay;
                pv[j] -= step * m[j] / (v[j].sqrt() / bc2_sqrt + eps);
            }
        }
        Ok(())
    }
}
