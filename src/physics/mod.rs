//! The physics of both instruments, apart from any fitting: forward models, classical
//! inversions, masks, synthetic data, metrics, and the signal helpers they share. Everything
//! here is a function of its inputs; the reconstructions that fit these models to data are in
//! `pipelines/`.

pub mod constants;
pub mod ltem;
pub mod nv;
pub mod signal;
