//! NV magnetometry: forward model, deprojection, masks, synthetic data and the NV-DIP
//! reconstruction.

pub use crate::fit::StopReason;
pub use crate::physics::constants::{MU0, MU_B};
pub use crate::physics::nv::deproject::{deproject, Deprojection};
pub use crate::physics::nv::forward::{NvForward, NvGeometry};
pub use crate::physics::nv::mask::{self, Mask, Preset};
pub use crate::physics::nv::synthetic;
pub use crate::pipelines::nv_dip::{
    nv_metrics, reconstruct, IterStats, NvMetrics, NvReconConfig, NvResult, NvTarget,
};
