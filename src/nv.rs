//! NV magnetometry: forward model, deprojection, the classical Fourier inversion, noise
//! diagnostics, automatic supports, masks, synthetic data and the NV-DIP reconstruction.
//!
//! The classical inversion of a map (what `magprior nv invert` runs):
//!
//! ```
//! use magprior::nv::{direction_from_angles, invert, Filter, InversionConfig, NvForward, NvGeometry};
//! use magprior::Tensor;
//! let (h, w) = (32, 32);
//! let geom = NvGeometry { pixel: 20e-9, standoff: 60e-9, ..Default::default() };
//! // an out-of-plane square, 5e5 A/m
//! let mut m = vec![0f32; 3 * h * w];
//! for r in 10..22 {
//!     for c in 10..22 {
//!         m[2 * h * w + r * w + c] = 5e5;
//!     }
//! }
//! let bnv = NvForward::new(h, w, &geom)?
//!     .bnv(&Tensor::from_shape_vec(&[1, 3, h, w], m)?)?
//!     .to_vec()?;
//! let cfg = InversionConfig::new(
//!     direction_from_angles(0.0, 0.0),
//!     Filter::Hanning { wavelength: 120e-9 },
//! );
//! let inv = invert(&bnv, h, w, &geom, &cfg)?;
//! assert!((inv.m[16 * w + 16] / 5e5 - 1.0).abs() < 0.1);
//! # Ok::<(), magprior::Error>(())
//! ```

pub use crate::fit::StopReason;
pub use crate::physics::constants::{MU0, MU_B};
pub use crate::physics::nv::deproject::{deproject, Deprojection};
pub use crate::physics::nv::energy::{self, Material};
pub use crate::physics::nv::forward::{NvForward, NvGeometry};
pub use crate::physics::nv::invert::{
    amperes_to_mub_per_nm2, areal_magnetization, areal_magnetization_mub_nm2, border_plane,
    default_wavelength, direction_from_angles, invert, Background, Filter, Inversion,
    InversionConfig, Level,
};
pub use crate::physics::nv::mask::{self, Mask, Preset};
pub use crate::physics::nv::mask::{MaskFile, MaskSpec};
pub use crate::physics::nv::metrics::{direction_cosine, nv_metrics, NvMetrics};
pub use crate::physics::nv::noise::{
    chi2_per_pixel, compare_with_zero, diagnose, lowk_excess, noise_floor, noise_map, Diagnostics,
    NoiseFloor, ZeroFieldCheck,
};
pub use crate::physics::nv::support::{
    self, auto_support, auto_support_with, AutoSupport, SupportOptions, SupportRule,
};
pub use crate::physics::nv::synthetic;
pub use crate::pipelines::ensemble::{member_seed, InplaneSpread, Spread};
pub use crate::pipelines::nv::{
    reconstruct, reconstruct_ensemble, support_from_spec, support_scan,
    Background as ModelBackground, BackgroundFit, Circulation, DirectionScan, DirectionSpec,
    EnergyConfig, EnergyReport, IterStats, NvDiagnostics, NvEnsemble, NvModel, NvReconConfig,
    NvResult, NvTarget, Start, StartOutcome, SupportFrom, SupportScan, UnitParametrisation,
};
pub use crate::pipelines::sweep::{
    rank as rank_sweep, sweep, sweep_range, Significance, SweepConfig, SweepPoint, SweepResult,
    SweepRow,
};
