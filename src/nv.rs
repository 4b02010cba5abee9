//! NV magnetometry: forward model, deprojection, masks, synthetic data and the NV-DIP
//! reconstruction.

pub use crate::fit::StopReason;
pub use crate::physics::constants::{MU0, MU_B};
pub use crate::physics::nv::deproject::{deproject, Deprojection};
pub use crate::physics::nv::energy;
pub use crate::physics::nv::forward::{NvForward, NvGeometry};
pub use crate::physics::nv::mask::{self, Mask, Preset};
pub use crate::physics::nv::mask::{MaskFile, MaskSpec};
pub use crate::physics::nv::metrics::{direction_cosine, nv_metrics, NvMetrics};
pub use crate::physics::nv::synthetic;
pub use crate::pipelines::nv_dip::{reconstruct, IterStats, NvReconConfig, NvResult, NvTarget};
pub use crate::pipelines::sweep::{
    sweep, Significance, SweepConfig, SweepPoint, SweepResult, SweepRow,
};
