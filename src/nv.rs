//! NV magnetometry: forward model, deprojection, the classical Fourier inversion, noise
//! diagnostics, automatic supports, masks, synthetic data and the NV-DIP reconstruction.

pub use crate::fit::StopReason;
pub use crate::physics::constants::{MU0, MU_B};
pub use crate::physics::nv::deproject::{deproject, Deprojection};
pub use crate::physics::nv::energy::{self, Material};
pub use crate::physics::nv::forward::{NvForward, NvGeometry};
pub use crate::physics::nv::invert::{
    amperes_to_mub_per_nm2, areal_magnetization, areal_magnetization_mub_nm2, border_plane,
    direction_from_angles, invert, Background, Filter, Inversion, InversionConfig, Level,
};
pub use crate::physics::nv::mask::{self, Mask, Preset};
pub use crate::physics::nv::mask::{MaskFile, MaskSpec};
pub use crate::physics::nv::metrics::{direction_cosine, nv_metrics, NvMetrics};
pub use crate::physics::nv::noise::{
    chi2_per_pixel, compare_with_zero, diagnose, lowk_excess, noise_floor, Diagnostics, NoiseFloor,
    ZeroFieldCheck,
};
pub use crate::physics::nv::support::{
    self, auto_support, auto_support_with, AutoSupport, SupportOptions, SupportRule,
};
pub use crate::physics::nv::synthetic;
pub use crate::pipelines::nv::{
    reconstruct, support_scan, Background as ModelBackground, BackgroundFit, Circulation,
    DirectionScan, DirectionSpec, EnergyConfig, EnergyReport, IterStats, NvDiagnostics, NvModel,
    NvReconConfig, NvResult, NvTarget, Start, StartOutcome, SupportScan, UnitParametrisation,
};
pub use crate::pipelines::sweep::{
    sweep, Significance, SweepConfig, SweepPoint, SweepResult, SweepRow,
};
