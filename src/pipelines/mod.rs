//! Reconstructions: each is configuration plus an objective for the shared fitting loop
//! (`fit/`) over the physics of `physics/` and the networks of `nn/`.

pub mod ensemble;
pub mod joint;
pub mod nv;
pub mod siprad;
pub mod sweep;
