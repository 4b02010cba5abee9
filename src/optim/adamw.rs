//! AdamW (decoupled weight decay), PyTorch semantics.

use crate::engine::autograd::GradStore;
use crate::engine::tensor::Tensor;
use crate::error::Result;
use crate::ops::{adamw_update, AdamWStep};

/// AdamW: `m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; p -= lr wd p;
/// p -= lr m_hat / (sqrt(v_hat) + eps)` with bias-corrected `m_hat`, `v_hat`.
///
/// Runs where each parameter lives, as one in-place engine op per parameter (on the GPU one
/// kernel over the parameter, its gradient and the moments, all device buffers).
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
    /// (their moments too), like PyTorch's `grad is None`. Runs where each parameter lives.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.t += 1;
        let step = AdamWStep {
            lr: self.lr,
            beta1: self.betas.0,
            beta2: self.betas.1,
            eps: self.eps,
            weight_decay: self.weight_decay,
            t: u32::try_from(self.t).unwrap_or(u32::MAX),
        };
        for (i, p) in self.params.iter().enumerate() {
            let Some(g) = grads.get(p) else { continue };
            let (m, v) = (&self.m[i], &self.v[i]);
            m.move_to(p.device())?;
            v.move_to(p.device())?;
            adamw_update(&step, p, g, m, v)?;
        }
        Ok(())
    }
}
