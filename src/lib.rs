//! # magprior
//!
//! Reconstructs nanoscale magnetic textures from microscope data with a physics-informed deep
//! image prior, on a numeric engine of its own: real and complex [`Tensor`]s, reverse-mode
//! autodiff on a tape, CPU kernels (rayon, rustfft, gemm) and WGSL compute kernels (wgpu), a
//! convolutional autoencoder ([`nn::Cae`]), [`optim::AdamW`] and [`optim::ReduceLrOnPlateau`]
//! with PyTorch semantics.
//!
//! ```
//! use magprior::{nn::{Cae, CaeConfig}, optim::AdamW, Rng, Tensor};
//! // Fit a tiny autoencoder to a fixed 8x8 image for a few steps.
//! let cfg = CaeConfig { in_ch: 1, out_ch: 1, channels: vec![4], kernel: 3 };
//! let net = Cae::new(&cfg, &mut Rng::new(0)).unwrap();
//! let mut rng = Rng::new(1);
//! let z = Tensor::randn(&[1, 1, 8, 8], &mut rng);
//! let target = Tensor::rand(&[1, 1, 8, 8], 0.0, 1.0, &mut rng);
//! let mut opt = AdamW::new(net.parameters(), 1e-2);
//! let first = net.forward(&z).unwrap().mse_loss(&target).unwrap().to_scalar().unwrap();
//! for _ in 0..20 {
//!     let loss = net.forward(&z).unwrap().mse_loss(&target).unwrap();
//!     opt.step(&loss.backward().unwrap()).unwrap();
//! }
//! let last = net.forward(&z).unwrap().mse_loss(&target).unwrap().to_scalar().unwrap();
//! assert!(last < first);
//! ```
#![warn(missing_docs)]

#[doc(hidden)]
pub mod backend;
mod engine;
pub mod error;
pub mod fit;
pub mod io;
pub mod joint;
pub mod ltem;
pub mod nn;
pub mod nv;
mod ops;
pub mod optim;
mod physics;
mod pipelines;
mod rng;
pub mod units;

pub use engine::heap::keep_freed_buffers;
pub use engine::profile;
pub use physics::signal;
pub use pipelines::ensemble;

pub use engine::autograd::{is_grad_enabled, no_grad, GradStore};
pub use engine::device::{AdapterSummary, Device, DeviceChoice};
pub use engine::storage::{DType, C32};
pub use engine::tensor::{Tensor, TensorId};
pub use error::{Error, Result};
pub use rng::Rng;
