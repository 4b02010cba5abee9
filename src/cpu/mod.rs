//! CPU kernels on plain slices, shared by the ops (the hot ones live here).

pub mod conv;
