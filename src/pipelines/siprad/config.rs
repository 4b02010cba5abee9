//! SIPRAD's settings: the amplitude model and every knob of the recipe, with their checks.

use crate::engine::device::Device;
use crate::error::{Error, Result};
use crate::fit::Selection;
use crate::nn::CaeConfig;
use crate::physics::ltem::optics::Microscope;
use crate::physics::ltem::sitie::SitieConfig;

/// Where the contamination (the non-uniform amplitude) is found.
#[derive(Clone, Debug, PartialEq)]
pub enum AmplitudeSource {
    /// In the (smoothed) image nearest focus: [`crate::ltem::contamination::find_contamination`]
    /// with this threshold (a fraction of the background level) and smoothing (pixels; `None`:
    /// chosen from the image's estimated noise).
    Image {
        /// Threshold, a fraction of the smoothed image's background (e.g. 0.7).
        threshold: f64,
        /// Gaussian smoothing before the threshold (pixels); `None`: automatic.
        smoothing: Option<f64>,
    },
    /// In an in-focus bright-field image `(h, w)` of the same field, where contamination shows
    /// without magnetic contrast; the same detection as [`AmplitudeSource::Image`].
    Infocus {
        /// The in-focus image (h, w), any positive units.
        image: Vec<f32>,
        /// Threshold, a fraction of its background.
        threshold: f64,
        /// Smoothing (pixels); `None`: automatic.
        smoothing: Option<f64>,
    },
    /// A given contamination mask `(h, w)` (`true` = contamination); each region's amplitude
    /// from the mean intensity over it in the image nearest focus.
    Mask(Vec<bool>),
    /// A given amplitude map `(h, w)` in (0, 1], used as it is (e.g. a simulation's truth).
    Map(Vec<f32>),
}

/// How the exit-wave amplitude is modelled.
#[derive(Clone, Debug, PartialEq)]
pub enum AmplitudeMode {
    /// Uniform amplitude (times the learnable scale).
    Uniform,
    /// A fixed map from its source, `phi_e = kappa (-ln a - min(-ln a))`.
    Fixed(AmplitudeSource),
    /// A second DIP (input: the source's map) outputs `a = sigmoid(net)`, trained jointly, made
    /// two-valued per region every `constraint_every` iterations (the background's mode and
    /// each region's own level) and guarded: a map whose background falls below 0.7 of its
    /// level or whose area fraction jumps stops the branch with a warning, and the last sane
    /// map is kept fixed from then on.
    Learned(AmplitudeSource),
}

/// SIPRAD settings. `Default` gives magprior's defaults, which differ from the paper's recipe
/// where measurement showed it over-fits (README, "Lorentz TEM"): lr 5e-5 (paper 2e-4), 400
/// iterations (paper ~1000-5000), 10 % of the pixels held out and the state with the lowest
/// held-out loss after iteration 100 returned (paper: lowest training loss), and a
/// Tikhonov-filtered, mirror-extended SITIE input. The paper's recipe is
/// `SipradConfig { lr: 2e-4, iters: 1000, selection: Selection::LowestLoss { after: 100 },
/// holdout: 0.0, .. }`.
#[derive(Clone, Debug)]
pub struct SipradConfig {
    /// Fitting iterations after pretraining.
    pub iters: usize,
    /// Pretraining iterations (network reproduces its SITIE input).
    pub pretrain: usize,
    /// Adam learning rate (weight decay 0), for pretraining and fitting.
    pub lr: f64,
    /// Each iteration the input gets `+= noise_frac * N(0, 1)` (cumulative).
    pub noise_frac: f64,
    /// Gaussian smoothing of the final phase (pixels; 0 = none).
    pub sigma: f64,
    /// Which state is returned.
    pub selection: Selection,
    /// Output averaging: return the exponential moving average (this decay per iteration, e.g.
    /// 0.99) of the network's phase over the fit iterations instead of the selected state's
    /// phase (the deep-image-prior paper's averaging). `None`: the selected state.
    pub average: Option<f64>,
    /// Fraction of pixels left out of the loss and used to validate (0 = none; needed by
    /// [`Selection::Validation`]).
    pub holdout: f64,
    /// Learning rate of the scalar amplitude scale (Adam).
    pub amp_scale_lr: f64,
    /// Amplitude model.
    pub amplitude: AmplitudeMode,
    /// Mean inner potential V0 (V) for `kappa = V0 sigma xi`.
    pub v0: f64,
    /// Absorption length xi (nm) for `kappa`.
    pub xi: f64,
    /// Learn `kappa` (the electrostatic phase per unit `-ln a`) as a scalar, starting from
    /// `V0 sigma xi` (V0 and xi are rarely known).
    pub learn_kappa: bool,
    /// Learning rate of `kappa` (Adam, rad per step).
    pub kappa_lr: f64,
    /// Adam learning rate of the amplitude network while fitting (`None`: `lr / 10`: the image
    /// is far more sensitive to the amplitude than to the phase, and at the phase's rate the
    /// network soon explains magnetic contrast and noise as absorption).
    pub amp_lr: Option<f64>,
    /// Dual-valued constraint period (learned amplitude).
    pub constraint_every: usize,
    /// Steps re-fitting the amplitude network to the constrained map after each constraint.
    pub constraint_refit: usize,
    /// SITIE settings for the network input. `qc: None` picks `1 / (max(h, w) scale)`: wavelengths
    /// longer than the field of view, which the image barely constrains, are filtered out
    /// (`Some(0.0)`: no filter).
    pub sitie: SitieConfig,
    /// Seeds the weights, then the input noise.
    pub seed: u64,
    /// Encoder channels per level.
    pub channels: Vec<usize>,
    /// Convolution kernel size.
    pub kernel: usize,
    /// Padding factor of the forward model (1 = periodic).
    pub pad: usize,
    /// Where the networks and the forward model run (default CPU). On the GPU the loop reads
    /// back one small tensor per iteration (loss, held-out loss, amplitude scale); the input
    /// noise is drawn on the CPU from the seeded generator and uploaded, and the selected phase
    /// stays on the device until the end, so both devices give the same result within float
    /// tolerance. (A learned amplitude also reads its map back once per iteration for its
    /// maximum.)
    pub device: Device,
}

impl Default for SipradConfig {
    fn default() -> Self {
        let net = CaeConfig::ltem_default();
        SipradConfig {
            iters: 400,
            pretrain: 200,
            lr: 5e-5,
            noise_frac: 1.0 / 30.0,
            sigma: 2.0,
            selection: Selection::Validation { after: 100 },
            average: None,
            holdout: 0.1,
            amp_scale_lr: 0.1,
            amplitude: AmplitudeMode::Uniform,
            v0: 20.0,
            xi: 10.0,
            learn_kappa: false,
            kappa_lr: 0.01,
            amp_lr: None,
            constraint_every: 100,
            constraint_refit: 50,
            sitie: SitieConfig {
                qc: None,
                symmetric: true,
            },
            seed: 0,
            channels: net.channels,
            kernel: net.kernel,
            pad: 1,
            device: Device::Cpu,
        }
    }
}

impl SipradConfig {
    /// Checks every setting; the error names the setting.
    pub fn validate(&self) -> Result<()> {
        const OP: &str = "siprad";
        if let Some(d) = self.average {
            if !(d > 0.0 && d < 1.0) {
                return Err(Error::arg(
                    OP,
                    format!("the averaging decay must be in (0, 1), got {d}"),
                ));
            }
        }
        if !(self.lr > 0.0
            && self.lr.is_finite()
            && self.noise_frac >= 0.0
            && self.sigma >= 0.0
            && self.amp_scale_lr >= 0.0
            && self.kappa_lr >= 0.0
            && self.v0 >= 0.0
            && self.xi > 0.0)
        {
            return Err(Error::arg(
                OP,
                "lr and xi must be positive; noise_frac, sigma, amp_scale_lr, kappa_lr and v0 >= 0",
            ));
        }
        if let Some(a) = self.amp_lr {
            if !(a.is_finite() && a > 0.0) {
                return Err(Error::arg(OP, format!("amp_lr must be positive, got {a}")));
            }
        }
        let threshold = match &self.amplitude {
            AmplitudeMode::Fixed(s) | AmplitudeMode::Learned(s) => match s {
                AmplitudeSource::Image { threshold, .. }
                | AmplitudeSource::Infocus { threshold, .. } => Some(*threshold),
                _ => None,
            },
            AmplitudeMode::Uniform => None,
        };
        if let Some(t) = threshold {
            if !(t > 0.0 && t < 1.0) {
                return Err(Error::arg(
                    OP,
                    format!("the amplitude threshold must be in (0, 1) of the background, got {t}"),
                ));
            }
        }
        if self.learn_kappa && self.amplitude == AmplitudeMode::Uniform {
            return Err(Error::arg(
                OP,
                "learning kappa needs an amplitude model (a uniform amplitude has no phi_e)",
            ));
        }
        if !(0.0..0.9).contains(&self.holdout) {
            return Err(Error::arg(
                OP,
                format!("holdout must be in [0, 0.9), got {}", self.holdout),
            ));
        }
        if matches!(self.selection, Selection::Validation { .. }) && self.holdout == 0.0 {
            return Err(Error::arg(
                OP,
                "validation selection needs a holdout fraction > 0",
            ));
        }
        if self.pad == 0 {
            return Err(Error::arg(OP, "pad must be >= 1"));
        }
        self.network().validate()
    }

    /// [`SipradConfig::validate`] plus what the microscope must offer: a valid microscope with a
    /// non-zero defocus (the SITIE input needs phase contrast).
    pub fn validate_with(&self, mic: &Microscope) -> Result<()> {
        self.validate()?;
        mic.validate()?;
        if mic.defocus == 0.0 {
            return Err(Error::arg(
                "siprad",
                "defocus must be non-zero (the SITIE input needs phase contrast)",
            ));
        }
        Ok(())
    }

    /// The amplitude network's fitting learning rate.
    pub(crate) fn amp_lr(&self) -> f64 {
        self.amp_lr.unwrap_or(self.lr / 10.0)
    }

    pub(crate) fn network(&self) -> CaeConfig {
        CaeConfig {
            in_ch: 1,
            out_ch: 1,
            channels: self.channels.clone(),
            kernel: self.kernel,
        }
    }
}
