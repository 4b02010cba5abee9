//! The numeric engine: tensors and their storage, the tape and its backward walk, devices, and
//! the one dispatch through which every op reaches a backend. The ops themselves are in
//! `src/ops/`, one file per family.

pub mod autograd;
pub mod device;
pub(crate) mod dispatch;
pub(crate) mod heap;
pub mod profile;
pub(crate) mod storage;
pub mod tensor;
