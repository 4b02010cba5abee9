//! The flags of `magprior ltem ...`, and their translation into the library's settings.

use crate::cli::common::{self, select_device, DeviceArg};
use anyhow::Result;
use clap::{Args, ValueEnum};
use magprior::ltem::{
    AmplitudeMode, AmplitudeSource, Microscope, Selection, SipradConfig, SitieConfig,
};
use serde::Serialize;

/// Microscope flags shared by every LTEM subcommand. Lengths take units (4nm, -1mm); a bare
/// number is metres.
#[derive(Args, Clone, Debug)]
pub struct MicArgs {
    /// Accelerating voltage (kV).
    #[arg(long, default_value_t = 200.0, value_parser = common::positive)]
    pub kv: f64,
    /// Spherical aberration Cs.
    #[arg(long, value_parser = common::length, default_value = "1mm", allow_hyphen_values = true)]
    pub cs: f64,
    /// Beam divergence semi-angle (rad).
    #[arg(long, default_value_t = 0.6e-3, allow_hyphen_values = true, value_parser = common::nonneg)]
    pub theta_c: f64,
    /// Defocus spread Delta.
    #[arg(long, value_parser = common::nonneg_length, default_value = "120nm", allow_hyphen_values = true)]
    pub spread: f64,
    /// Two-fold astigmatism magnitude Ca.
    #[arg(long, value_parser = common::length, default_value = "0", allow_hyphen_values = true)]
    pub ca: f64,
    /// Two-fold astigmatism orientation (degrees from +x).
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    pub phi_a: f64,
    /// Pixel size (default: the file's calibration (DM3/DM4, ImageJ/OME TIFF, OVF cell), else 4nm).
    #[arg(long, value_parser = common::positive_length, allow_hyphen_values = true)]
    pub scale: Option<f64>,
    /// Use --scale even where it disagrees with the file's calibration.
    #[arg(long, requires = "scale")]
    pub force_scale: bool,
    /// Defocus; negative = underfocus (PyLorentz's sign).
    #[arg(long, value_parser = common::length, default_value = "-1mm", allow_hyphen_values = true)]
    pub defocus: f64,
    /// Objective aperture semi-angle (rad); none by default.
    #[arg(long, value_parser = common::positive)]
    pub aperture: Option<f64>,
    /// Padding factor of the forward model (1 = periodic; > 1 surrounds the field of view by vacuum).
    #[arg(long, default_value_t = 1, value_parser = common::at_least_one)]
    pub pad: usize,
}

/// The microscope as written to metadata.json.
#[derive(Serialize)]
pub struct MicMeta {
    kv: f64,
    wavelength_nm: f64,
    cs_nm: f64,
    theta_c_rad: f64,
    spread_nm: f64,
    ca_nm: f64,
    phi_a_deg: f64,
    defocus_nm: f64,
    scale_nm_per_px: f64,
    aperture_rad: Option<f64>,
    pad: usize,
}

impl MicArgs {
    /// The microscope in the library's units (nm), the pixel from the flag, else the file's,
    /// else 4 nm.
    pub fn microscope(&self, file_scale_m: Option<f64>) -> Result<Microscope> {
        let scale = self.scale.or(file_scale_m).unwrap_or(4e-9);
        let m = Microscope {
            kv: self.kv,
            cs: self.cs * 1e9,
            theta_c: self.theta_c,
            spread: self.spread * 1e9,
            ca: self.ca * 1e9,
            phi_a: self.phi_a.to_radians(),
            defocus: self.defocus * 1e9,
            scale: scale * 1e9,
            aperture: self.aperture,
        };
        m.validate()?;
        Ok(m)
    }

    /// The microscope for metadata.
    pub fn meta(&self, m: &Microscope) -> MicMeta {
        MicMeta {
            kv: m.kv,
            wavelength_nm: m.wavelength(),
            cs_nm: m.cs,
            theta_c_rad: m.theta_c,
            spread_nm: m.spread,
            ca_nm: m.ca,
            phi_a_deg: self.phi_a,
            defocus_nm: m.defocus,
            scale_nm_per_px: m.scale,
            aperture_rad: m.aperture,
            pad: self.pad,
        }
    }
}

/// `--select`.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq)]
pub enum SelectArg {
    /// The paper's rule: the lowest-loss state after --track-after iterations.
    LowestLoss,
    /// The state after the last iteration.
    Last,
    /// The lowest loss on --holdout pixels left out of the fit.
    Validation,
}

/// SIPRAD settings shared by `reconstruct` and `series`.
#[derive(Args, Clone)]
pub struct SipradArgs {
    #[command(flatten)]
    pub mic: MicArgs,
    /// Fitting iterations (after pretraining).
    #[arg(long, default_value_t = 400, value_parser = common::at_least_one)]
    pub iters: usize,
    /// Pretraining iterations on the SITIE input.
    #[arg(long, default_value_t = 200)]
    pub pretrain: usize,
    /// Adam learning rate (the paper's 2e-4 over-fits noisy images within ~100 iterations).
    #[arg(long, default_value_t = 5e-5, value_parser = common::positive)]
    pub lr: f64,
    /// Cumulative input noise per iteration (std, rad).
    #[arg(long, default_value_t = 1.0 / 30.0, value_parser = common::nonneg)]
    pub noise_frac: f64,
    /// Gaussian smoothing of the final phase (pixels).
    #[arg(long, default_value_t = 2.0, value_parser = common::nonneg)]
    pub sigma: f64,
    /// Which network state is returned.
    #[arg(long, value_enum, default_value_t = SelectArg::Validation)]
    pub select: SelectArg,
    /// With --select lowest-loss|validation: iterations before tracking starts.
    #[arg(long, default_value_t = 100)]
    pub track_after: usize,
    /// Output averaging: return the exponential moving average (decay per iteration, e.g. 0.99)
    /// of the network's phase over the fit iterations instead of the selected state's.
    #[arg(long, value_parser = common::positive)]
    pub average: Option<f64>,
    /// Fraction of pixels left out of the fit to validate it (--select validation; default 0.1 then).
    #[arg(long, value_parser = common::nonneg)]
    pub holdout: Option<f64>,
    /// Model contamination: pixels of the smoothed image (the image nearest focus, or
    /// --infocus) below this fraction of its background are contamination (default 0.7 with
    /// --infocus).
    #[arg(long, value_parser = common::fraction_open)]
    pub amp_threshold: Option<f64>,
    /// Gaussian smoothing (px) before the amplitude threshold (default: chosen from the image's
    /// estimated noise, 1.5-4 px; reported in metrics.json).
    #[arg(long, value_parser = common::nonneg)]
    pub amp_smoothing: Option<f64>,
    /// In-focus bright-field image of the same field: contamination is found in it.
    #[arg(long, conflicts_with = "amp_mask")]
    pub infocus: Option<std::path::PathBuf>,
    /// Contamination mask (H, W; non-zero = contamination), e.g. drawn by hand.
    #[arg(long)]
    pub amp_mask: Option<std::path::PathBuf>,
    /// Learn the amplitude with a second network (input: the initial map) under the guarded
    /// dual-valued constraint.
    #[arg(long)]
    pub solve_amp: bool,
    /// Learn kappa (the electrostatic phase per unit -ln a, start V0 sigma xi) as a scalar.
    #[arg(long)]
    pub learn_kappa: bool,
    /// Learning rate of kappa (Adam, rad per step).
    #[arg(long, default_value_t = 0.01, value_parser = common::nonneg)]
    pub kappa_lr: f64,
    /// Mean inner potential of the contamination (V), for phi_e.
    #[arg(long, default_value_t = 20.0, value_parser = common::nonneg)]
    pub v0: f64,
    /// Absorption length xi, for phi_e.
    #[arg(long, value_parser = common::positive_length, default_value = "10nm")]
    pub xi: f64,
    /// Learning rate of the amplitude scale.
    #[arg(long, default_value_t = 0.1, value_parser = common::nonneg)]
    pub amp_scale_lr: f64,
    /// Tikhonov qc (1/nm) of the SITIE input (default 1/(max(H, W) scale); 0 = none).
    #[arg(long, value_parser = common::nonneg)]
    pub qc: Option<f64>,
    /// Periodic (not mirror-symmetric) SITIE input.
    #[arg(long)]
    pub periodic_input: bool,
    /// Seed of the weights and of the input noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Encoder channels per level.
    #[arg(long, value_delimiter = ',', default_value = "16,32,64,128", value_parser = common::at_least_one)]
    pub channels: Vec<usize>,
    /// Convolution kernel size (odd).
    #[arg(long, default_value_t = 3, value_parser = common::odd)]
    pub kernel: usize,
    /// Compute device (auto: a real GPU if present, else CPU). Env: MAGPRIOR_DEVICE.
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto, env = "MAGPRIOR_DEVICE")]
    pub device: DeviceArg,
    /// No progress output.
    #[arg(long)]
    pub quiet: bool,
}

impl SipradArgs {
    /// The microscope (pixel size `scale_m` when resolved from the files, else the flag or
    /// 4 nm) and the library's settings (checked by the library).
    pub fn config(
        &self,
        scale_m: Option<f64>,
        (h, w): (usize, usize),
    ) -> Result<(Microscope, SipradConfig)> {
        let mic = self.mic.microscope(scale_m)?;
        let holdout = match (self.select, self.holdout) {
            (SelectArg::Validation, None) => 0.1,
            (_, f) => f.unwrap_or(0.0),
        };
        let amplitude = self.amplitude(h, w)?;
        let cfg = SipradConfig {
            iters: self.iters,
            pretrain: self.pretrain,
            lr: self.lr,
            noise_frac: self.noise_frac,
            sigma: self.sigma,
            selection: match self.select {
                SelectArg::LowestLoss => Selection::LowestLoss {
                    after: self.track_after,
                },
                SelectArg::Last => Selection::Last,
                SelectArg::Validation => Selection::Validation {
                    after: self.track_after,
                },
            },
            holdout,
            average: self.average,
            amp_scale_lr: self.amp_scale_lr,
            amplitude,
            v0: self.v0,
            xi: self.xi * 1e9,
            learn_kappa: self.learn_kappa,
            kappa_lr: self.kappa_lr,
            sitie: SitieConfig {
                qc: self.qc,
                symmetric: !self.periodic_input,
            },
            seed: self.seed,
            channels: self.channels.clone(),
            kernel: self.kernel,
            pad: self.mic.pad,
            device: select_device(self.device, self.quiet)?,
            ..Default::default()
        };
        cfg.validate_with(&mic)?;
        Ok((mic, cfg))
    }

    /// The amplitude model of the flags, its files loaded and checked against `(h, w)`.
    fn amplitude(&self, h: usize, w: usize) -> Result<AmplitudeMode> {
        let load = |p: &std::path::Path| -> Result<Vec<f32>> {
            let (v, fh, fw) = common::load_map(p, 3)?;
            if (fh, fw) != (h, w) {
                anyhow::bail!("{}: is {fh}x{fw} but the images are {h}x{w}", p.display());
            }
            Ok(v)
        };
        let source = match (&self.infocus, &self.amp_mask, self.amp_threshold) {
            (Some(p), _, t) => {
                let image = load(p)?;
                let mut sorted = image.clone();
                sorted.sort_by(f32::total_cmp);
                if sorted[sorted.len() / 2] <= 0.0 {
                    anyhow::bail!(
                        "{}: an in-focus image needs a positive median intensity",
                        p.display()
                    );
                }
                Some(AmplitudeSource::Infocus {
                    image,
                    threshold: t.unwrap_or(0.7),
                    smoothing: self.amp_smoothing,
                })
            }
            (None, Some(p), _) => {
                let mask: Vec<bool> = load(p)?.iter().map(|&v| v != 0.0).collect();
                let n = mask.iter().filter(|&&m| m).count();
                if n == mask.len() {
                    anyhow::bail!("{}: the mask covers the whole image", p.display());
                }
                Some(AmplitudeSource::Mask(mask))
            }
            (None, None, Some(threshold)) => Some(AmplitudeSource::Image {
                threshold,
                smoothing: self.amp_smoothing,
            }),
            (None, None, None) => None,
        };
        Ok(match (source, self.solve_amp) {
            (None, false) if self.learn_kappa => {
                anyhow::bail!("--learn-kappa needs an amplitude model (--amp-threshold, --infocus or --amp-mask)")
            }
            (None, false) => AmplitudeMode::Uniform,
            (None, true) => anyhow::bail!(
                "--solve-amp needs an initial amplitude (--amp-threshold, --infocus or --amp-mask)"
            ),
            (Some(s), false) => AmplitudeMode::Fixed(s),
            (Some(s), true) => AmplitudeMode::Learned(s),
        })
    }
}
