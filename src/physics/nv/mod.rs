//! NV magnetometry physics: the forward model M -> B -> B_NV, deprojection, masks and
//! synthetic data.

pub mod deproject;
pub mod energy;
pub mod forward;
pub mod mask;
pub mod metrics;
pub mod synthetic;
