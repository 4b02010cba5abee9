//! The `magprior` command line (binary only; the library holds the science).

pub mod common;
pub mod ltem;
pub mod nv;
