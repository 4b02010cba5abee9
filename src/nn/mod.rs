//! Layers and the convolutional autoencoder of SPEC section 6, initialised like PyTorch.

mod cae;
pub use cae::{Cae, CaeConfig};

use crate::engine::tensor::Tensor;
use crate::error::Result;
use crate::rng::Rng;

/// Negative slope of every LeakyReLU in the autoencoder.
pub const LEAKY_SLOPE: f32 = 0.2;

/// A 2-D convolution layer (stride 1, "same" zero padding, odd square kernel, bias).
pub struct Conv2d {
    /// (out, in, k, k)
    pub weight: Tensor,
    /// (out,)
    pub bias: Tensor,
}

impl Conv2d {
    /// PyTorch's default initialisation: Kaiming-uniform with a = sqrt(5), i.e. weights and bias
    /// uniform in `[-1/sqrt(fan_in), 1/sqrt(fan_in)]`, fan_in = in * k * k.
    pub fn new(cin: usize, cout: usize, k: usize, rng: &mut Rng) -> Conv2d {
        let bound = 1.0 / ((cin * k * k) as f32).sqrt();
        Conv2d {
            weight: Tensor::rand(&[cout, cin, k, k], -bound, bound, rng).requires_grad(),
            bias: Tensor::rand(&[cout], -bound, bound, rng).requires_grad(),
        }
    }
    /// `conv2d(x, weight) + bias`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.conv2d(&self.weight, Some(&self.bias))
    }
}

/// Instance normalisation with a learnable per-channel scale and shift (init 1 and 0).
pub struct InstanceNorm2d {
    /// (C,) scale
    pub weight: Tensor,
    /// (C,) shift
    pub bias: Tensor,
    /// Added to the variance.
    pub eps: f32,
}

impl InstanceNorm2d {
    /// `channels` planes, affine, eps = 1e-5 (PyTorch's default).
    pub fn new(channels: usize) -> InstanceNorm2d {
        InstanceNorm2d {
            weight: Tensor::ones(&[channels]).requires_grad(),
            bias: Tensor::zeros(&[channels]).requires_grad(),
            eps: 1e-5,
        }
    }
    /// Normalises each (n, c) plane, then scales and shifts per channel.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.instance_norm(Some(&self.weight), Some(&self.bias), self.eps)
    }
}
