//! Lorentz TEM: electron optics and image formation, magnetic phase and integrated induction,
//! the SITIE baseline, the SIPRAD reconstruction (a deep image prior fitted through the forward
//! model), synthetic data and accuracy metrics. Units: nm and pixels, like PyLorentz.

pub use crate::fit::{Selection, StopReason};
pub use crate::physics::constants::{C_LIGHT, E_CHARGE, H_PLANCK, M_ELECTRON, PHI0};
pub use crate::physics::ltem::align::{
    align_stack, apply_shift, phase_correlation, AlignReference, Shift,
};
pub use crate::physics::ltem::contamination::{self, AmplitudeMap};
pub use crate::physics::ltem::forward::{
    add_noise, induction, magnetic_phase, magnetic_phase_at, LtemForward, PhaseForward,
};
pub use crate::physics::ltem::metrics::{self, accuracy, Accuracy};
pub use crate::physics::ltem::optics::{interaction_constant, wavelength_nm, Microscope};
pub use crate::physics::ltem::sitie::{min_subtracted, mirror_extend, sitie, SitieConfig};
pub use crate::physics::ltem::synthetic;
pub use crate::physics::ltem::tie::{
    mirror, tie, tie_flip, FlipAxis, FlipPhases, TieConfig, TieIntensity,
};
pub use crate::physics::ltem::tilt::{magnetic_phase_tilted, magnetic_phase_tilted_volume, Tilt};
pub use crate::pipelines::ensemble::{member_seed, Spread};
pub use crate::pipelines::siprad::{
    dual_valued, reconstruct, reconstruct_ensemble, reconstruct_focal_series, reconstruct_series,
    AmplitudeMode, AmplitudeSource, Siprad, SipradConfig, SipradEnsemble, SipradResult,
    SipradState, Stage, Stats,
};
