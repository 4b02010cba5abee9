//! Lorentz-TEM physics: electron optics and image formation, the magnetic phase and the
//! integrated induction, the SITIE baseline and the TIE of a through-focal series, drift alignment, synthetic data and accuracy metrics. Units: nm and
//! pixels, like PyLorentz.

pub mod align;
pub mod contamination;
pub mod forward;
pub mod metrics;
pub mod optics;
pub mod sitie;
pub mod synthetic;
pub mod tie;
pub mod tilt;
