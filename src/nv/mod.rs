//! NV magnetometry: forward model, deprojection, masks and the NV-DIP reconstruction.

mod forward;
pub use forward::{NvForward, NvGeometry, MU0};
mod deproject;
pub use deproject::{deproject, Deprojection};
pub mod mask;
pub use mask::{Mask, Preset};
mod recon;
pub use recon::{
    nv_metrics, reconstruct, IterStats, NvMetrics, NvReconConfig, NvResult, NvTarget, StopReason,
};
pub mod synthetic;
