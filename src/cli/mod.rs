//! The `magprior` command line (binary only; the library holds the science). Per pipeline:
//! its flags (`args.rs`), the run (`mod.rs`) and what it writes (`output.rs`).

pub mod common;
pub mod joint;
pub mod ltem;
pub mod merge;
pub mod nv;
