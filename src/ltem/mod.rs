//! Lorentz TEM: electron optics and image formation, magnetic phase and integrated induction,
//! the SITIE baseline, the SIPRAD reconstruction (a deep image prior fitted through the forward
//! model), synthetic data and accuracy metrics. Units: nm and pixels, like PyLorentz.

mod optics;
pub use optics::{
    interaction_constant, wavelength_nm, Microscope, C_LIGHT, E_CHARGE, H_PLANCK, M_ELECTRON, PHI0,
};
mod forward;
pub use forward::{add_noise, induction, magnetic_phase, LtemForward};
mod sitie;
pub use sitie::{min_subtracted, mirror_extend, sitie, SitieConfig};
pub mod metrics;
pub use metrics::{accuracy, Accuracy};
mod siprad;
pub mod synthetic;
pub use siprad::{
    dual_valued, reconstruct, reconstruct_series, threshold_amplitude, AmplitudeMode, Selection,
    Siprad, SipradConfig, SipradResult, SipradState, Stage, Stats, StopReason,
};
