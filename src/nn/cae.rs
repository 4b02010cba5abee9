//! The convolutional autoencoder (no skip connections) of SPEC section 6.

use super::{Conv2d, InstanceNorm2d, LEAKY_SLOPE};
use crate::engine::device::Device;
use crate::engine::tensor::Tensor;
use crate::error::{Error, Result};
use crate::rng::Rng;

/// Shape of a [`Cae`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaeConfig {
    /// Input channels (1 for a noise image or a phase).
    pub in_ch: usize,
    /// Output channels (2 for Mx, My; 3 with Mz; 1 for a phase).
    pub out_ch: usize,
    /// Encoder channels per level, e.g. `[16, 32]`.
    pub channels: Vec<usize>,
    /// Odd kernel size (5 for NV-DIP, 3 for SIPRAD).
    pub kernel: usize,
}

impl CaeConfig {
    /// NV-DIP default: 1 -> 2, channels [16, 32], 5x5 (77,554 parameters).
    pub fn nv_default() -> CaeConfig {
        CaeConfig {
            in_ch: 1,
            out_ch: 2,
            channels: vec![16, 32],
            kernel: 5,
        }
    }
    /// SIPRAD default: 1 -> 1, channels [16, 32, 64, 128], 3x3 (444,001 parameters).
    pub fn ltem_default() -> CaeConfig {
        CaeConfig {
            in_ch: 1,
            out_ch: 1,
            channels: vec![16, 32, 64, 128],
            kernel: 3,
        }
    }
    /// Checks the shape: at least one level, non-zero channels, an odd kernel.
    pub fn validate(&self) -> Result<()> {
        let c = &self.channels;
        if c.is_empty() || c.contains(&0) || self.in_ch == 0 || self.out_ch == 0 {
            return Err(Error::arg(
                "Cae",
                "channels, in_ch and out_ch must be non-zero",
            ));
        }
        if self.kernel.is_multiple_of(2) {
            return Err(Error::arg(
                "Cae",
                format!("kernel {} must be odd", self.kernel),
            ));
        }
        Ok(())
    }

    /// Image sides must be divisible by this (2^levels).
    pub fn divisor(&self) -> usize {
        1 << self.channels.len()
    }
}

/// One level: conv -> LeakyReLU -> conv -> LeakyReLU -> InstanceNorm.
struct Block {
    conv1: Conv2d,
    conv2: Conv2d,
    norm: InstanceNorm2d,
}

impl Block {
    fn new(cin: usize, cout: usize, k: usize, rng: &mut Rng) -> Block {
        Block {
            conv1: Conv2d::new(cin, cout, k, rng),
            conv2: Conv2d::new(cout, cout, k, rng),
            norm: InstanceNorm2d::new(cout),
        }
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = x.conv2d_leaky(&self.conv1.weight, Some(&self.conv1.bias), LEAKY_SLOPE)?;
        let h = h.conv2d_leaky(&self.conv2.weight, Some(&self.conv2.bias), LEAKY_SLOPE)?;
        self.norm.forward(&h)
    }
    fn named(&self, prefix: &str, out: &mut Vec<(String, Tensor)>) {
        for (n, t) in [
            ("conv1.weight", &self.conv1.weight),
            ("conv1.bias", &self.conv1.bias),
            ("conv2.weight", &self.conv2.weight),
            ("conv2.bias", &self.conv2.bias),
            ("norm.weight", &self.norm.weight),
            ("norm.bias", &self.norm.bias),
        ] {
            out.push((format!("{prefix}.{n}"), t.clone()));
        }
    }
}

/// Encoder levels (block + 2x2 max-pool), decoder levels (bilinear x2 + block) with channels
/// mirrored (`[c_{L-2}, ..., c_0, c_0]`), and a 1x1 head.
pub struct Cae {
    config: CaeConfig,
    enc: Vec<Block>,
    dec: Vec<Block>,
    head: Conv2d,
}

impl Cae {
    /// A network with PyTorch-default initial weights drawn from `rng`
    /// (encoder first, then decoder, then head, each conv weight before its bias).
    pub fn new(config: &CaeConfig, rng: &mut Rng) -> Result<Cae> {
        config.validate()?;
        let c = &config.channels;
        let k = config.kernel;
        let mut enc = Vec::new();
        let mut cin = config.in_ch;
        for &ch in c {
            enc.push(Block::new(cin, ch, k, rng));
            cin = ch;
        }
        let mut dec = Vec::new();
        let outs: Vec<usize> = c[..c.len() - 1]
            .iter()
            .rev()
            .copied()
            .chain([c[0]])
            .collect();
        for &ch in &outs {
            dec.push(Block::new(cin, ch, k, rng));
            cin = ch;
        }
        let head = Conv2d::new(cin, config.out_ch, 1, rng);
        Ok(Cae {
            config: config.clone(),
            enc,
            dec,
            head,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &CaeConfig {
        &self.config
    }

    /// `(N, in_ch, H, W) -> (N, out_ch, H, W)`; H and W must be divisible by 2^levels.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.expect_rank("Cae", 4)?;
        let (h, w) = x.hw("Cae")?;
        let d = self.config.divisor();
        if x.shape()[1] != self.config.in_ch || h % d != 0 || w % d != 0 || h == 0 || w == 0 {
            return Err(Error::shape(
                "Cae",
                x.shape(),
                format!(
                    "needs {} input channels and sides divisible by {d}",
                    self.config.in_ch
                ),
            ));
        }
        let mut h = x.clone();
        for b in &self.enc {
            h = b.forward(&h)?.max_pool2d()?;
        }
        for b in &self.dec {
            h = b.forward(&h.upsample_bilinear2d()?)?;
        }
        self.head.forward(&h)
    }

    /// Parameters with PyTorch-style names (`enc0.conv1.weight`, ..., `head.bias`).
    pub fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for (i, b) in self.enc.iter().enumerate() {
            b.named(&format!("enc{i}"), &mut out);
        }
        for (i, b) in self.dec.iter().enumerate() {
            b.named(&format!("dec{i}"), &mut out);
        }
        out.push(("head.weight".into(), self.head.weight.clone()));
        out.push(("head.bias".into(), self.head.bias.clone()));
        out
    }

    /// All trainable tensors, in `named_parameters` order.
    pub fn parameters(&self) -> Vec<Tensor> {
        self.named_parameters()
            .into_iter()
            .map(|(_, t)| t)
            .collect()
    }

    /// Moves every parameter to `device` in place (their identities are kept, so an optimiser
    /// built before or after sees the same tensors). Create on the CPU, then move:
    /// `Cae::new(..)?.to_device(Device::Gpu)`.
    pub fn to_device(&self, device: Device) -> Result<()> {
        for p in self.parameters() {
            p.move_to(device)?;
        }
        Ok(())
    }

    /// Total number of trainable scalars.
    pub fn num_parameters(&self) -> usize {
        self.parameters().iter().map(Tensor::numel).sum()
    }
}
