//! Differentiable operations on [`Tensor`](crate::Tensor), one file per family. Each op is a
//! small struct that describes itself once to the engine (`engine/dispatch.rs`): its name, its
//! shape and dtype rule, its CPU kernel (`backend/cpu`), its GPU launcher (`backend/gpu`, WGSL in
//! `kernels/`) and its VJP (maths in a comment), beside the `Tensor` method users call.

mod binary;
mod broadcast;
mod complex;
mod conv;
mod elementwise;
mod fft;
mod loss;
mod norm;
mod optim;
mod pad;
mod random;
mod reduce;
mod resample;
mod sample;
mod shape;
mod spectral;

pub(crate) use optim::{adamw_update, AdamWStep};
