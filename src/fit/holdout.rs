//! Hold-out validation: a fixed random subset of pixels left out of the loss and used to judge
//! the fit (the fit stops improving there when it starts fitting the noise of the others).

use crate::engine::device::Device;
use crate::engine::tensor::Tensor;
use crate::error::{Error, Result};
use crate::rng::Rng;

/// Masks of the pixels in the loss and of the held-out ones, with their counts.
pub struct Holdout {
    train: Tensor,
    val: Tensor,
    n_train: f32,
    n_val: f32,
}

impl Holdout {
    /// Holds out each pixel of an `(h, w)` map with probability `fraction` (in `(0, 0.9)`), drawn
    /// from its own generator seeded with `seed`; masks `(1, 1, h, w)` on `device`.
    pub fn new(h: usize, w: usize, fraction: f64, seed: u64, device: Device) -> Result<Holdout> {
        if !(fraction > 0.0 && fraction < 0.9) {
            return Err(Error::arg(
                "holdout",
                format!("fraction must be in (0, 0.9), got {fraction}"),
            ));
        }
        let mut rng = Rng::new(seed);
        let m: Vec<f32> = (0..h * w)
            .map(|_| if rng.uniform() < fraction { 0.0 } else { 1.0 })
            .collect();
        let n_train = m.iter().sum::<f32>().max(1.0);
        let n_val = ((h * w) as f32 - n_train).max(1.0);
        let v: Vec<f32> = m.iter().map(|x| 1.0 - x).collect();
        Ok(Holdout {
            train: Tensor::from_shape_vec(&[1, 1, h, w], m)?.to_device(device)?,
            val: Tensor::from_shape_vec(&[1, 1, h, w], v)?.to_device(device)?,
            n_train,
            n_val,
        })
    }

    /// The mean squared error of `model` against `target` over the training pixels (tracked)
    /// and over the held-out ones (detached).
    pub fn losses(&self, model: &Tensor, target: &Tensor) -> Result<(Tensor, Tensor)> {
        let sq = model.sub(target)?.square()?;
        let val = crate::engine::autograd::no_grad(|| {
            sq.detach()
                .mul(&self.val)?
                .sum_all()?
                .scale(1.0 / self.n_val)
        })?;
        let train = sq.mul(&self.train)?.sum_all()?.scale(1.0 / self.n_train)?;
        Ok((train, val))
    }
}
