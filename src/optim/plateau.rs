//! ReduceLROnPlateau (mode min, relative threshold), PyTorch semantics.

/// Lowers the learning rate by `factor` when the monitored loss has not improved by a relative
/// `threshold` for more than `patience` steps.
#[derive(Clone, Debug)]
pub struct ReduceLrOnPlateau {
    /// Multiplier applied on a plateau.
    pub factor: f64,
    /// Steps without improvement tolerated.
    pub patience: usize,
    /// Relative improvement needed: better iff `loss < best * (1 - threshold)`.
    pub threshold: f64,
    /// Steps to wait after a reduction before counting again.
    pub cooldown: usize,
    /// Lower bound of the learning rate.
    pub min_lr: f64,
    /// Reductions smaller than this are skipped.
    pub eps: f64,
    /// Best loss seen.
    pub best: f64,
    /// Steps since the last improvement.
    pub num_bad: usize,
    /// Remaining cooldown steps.
    pub cooldown_counter: usize,
}

impl ReduceLrOnPlateau {
    /// Mode min, threshold mode rel, cooldown 0, min_lr 0, eps 1e-8.
    pub fn new(factor: f64, patience: usize, threshold: f64) -> Self {
        ReduceLrOnPlateau {
            factor,
            patience,
            threshold,
            cooldown: 0,
            min_lr: 0.0,
            eps: 1e-8,
            best: f64::INFINITY,
            num_bad: 0,
            cooldown_counter: 0,
        }
    }

    /// Records `loss` and returns the (possibly reduced) learning rate for the next step.
    pub fn step(&mut self, loss: f64, lr: f64) -> f64 {
        if loss < self.best * (1.0 - self.threshold) {
            self.best = loss;
            self.num_bad = 0;
        } else {
            self.num_bad += 1;
        }
        if self.cooldown_counter > 0 {
            self.cooldown_counter -= 1;
            self.num_bad = 0;
        }
        let mut lr = lr;
        if self.num_bad > self.patience {
            let new_lr = (lr * self.factor).max(self.min_lr);
            if lr - new_lr > self.eps {
                lr = new_lr;
            }
            self.cooldown_counter = self.cooldown;
            self.num_bad = 0;
        }
        lr
    }
}
