//! NV magnetometry physics: the forward model M -> B -> B_NV, deprojection, the classical
//! Fourier inversion, noise diagnostics, automatic supports, masks and synthetic data.

pub mod deproject;
pub mod energy;
pub mod forward;
pub mod invert;
pub mod mask;
pub mod metrics;
pub mod noise;
pub mod support;
pub mod synthetic;
