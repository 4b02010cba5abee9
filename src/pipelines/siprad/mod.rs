//! SIPRAD (SPEC section 5): a deep image prior whose output phase, pushed through the
//! Lorentz-TEM forward model, must reproduce the measured image. The network input is the SITIE
//! phase; it is pretrained to reproduce that input, then fitted with Adam while its input drifts
//! (cumulative noise, drawn on the device). A learnable scalar scales the amplitude; a
//! non-uniform amplitude comes from a fixed threshold map or from a second network with the
//! dual-valued constraint (`amplitude.rs`). Both stages run on the shared fitting loop
//! (`fit/`), which keeps the selected state on the device.

mod amplitude;
pub use amplitude::{dual_valued, threshold_amplitude};

use crate::engine::device::Device;
use crate::engine::tensor::Tensor;
use crate::error::{Error, Result};
use crate::fit::{Evaluation, Fit, Holdout, Iteration, Objective, Selection, StopReason};
use crate::nn::{Cae, CaeConfig};
use crate::optim::AdamW;
use crate::physics::ltem::forward::LtemForward;
use crate::physics::ltem::optics::{interaction_constant, Microscope};
use crate::physics::ltem::sitie::{min_subtracted, sitie, SitieConfig};
use crate::physics::signal::{gaussian_filter, Boundary};
use crate::rng::Rng;
use amplitude::{phi_e_of, phi_e_tensor};

/// How the exit-wave amplitude is modelled.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AmplitudeMode {
    /// Uniform amplitude (times the learnable scale).
    Uniform,
    /// A fixed map: pixels whose normalised intensity `I / mean(I)` is below `threshold` are
    /// contamination with amplitude `sqrt(mean(I / I0) over them)`, the rest 1;
    /// `phi_e = kappa (-ln a - min(-ln a))`.
    Fixed {
        /// Threshold on `I / mean(I)`.
        threshold: f64,
    },
    /// A second DIP (input: the fixed map above) outputs `a = sigmoid(net)`, trained jointly,
    /// with the dual-valued constraint every `constraint_every` iterations and after the last.
    Learned {
        /// Threshold on `I / mean(I)` for the network's input map.
        threshold: f64,
    },
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
            holdout: 0.1,
            amp_scale_lr: 0.1,
            amplitude: AmplitudeMode::Uniform,
            v0: 20.0,
            xi: 10.0,
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

/// Which phase of the run an iteration belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Pretraining on the SITIE input.
    Pretrain,
    /// Fitting the image.
    Fit,
}

/// One iteration's numbers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stats {
    /// Stage.
    pub stage: Stage,
    /// 1-based iteration within the stage.
    pub iter: usize,
    /// Loss: MSE of the image normalised to mean 1 (fit), or of the phase (pretraining, rad^2).
    pub loss: f64,
    /// Lowest fit loss considered so far by the selection rule (NaN before tracking starts).
    pub best_loss: f64,
    /// Loss on the held-out pixels (NaN without a hold-out).
    pub val_loss: f64,
    /// The amplitude scale used by this iteration's model (before its update).
    pub amp_scale: f64,
    /// Seconds since the stage began.
    pub seconds: f64,
}

/// The trainable state, handed from one frame to the next in series mode.
pub struct SipradState {
    /// The phase network.
    pub net: Cae,
    /// Its optimiser (fitting).
    pub opt: AdamW,
    /// The amplitude scale (a one-element parameter).
    pub amp_scale: Tensor,
    /// Its optimiser.
    pub opt_scale: AdamW,
    /// The amplitude network and its optimiser (learned amplitude only).
    pub amp_net: Option<(Cae, AdamW)>,
}

/// The outcome of a reconstruction.
#[derive(Clone, Debug)]
pub struct SipradResult {
    /// Magnetic phase (h, w), rad: the selected state, smoothed, minimum 0.
    pub phase: Vec<f32>,
    /// The selected state's network output (h, w) before smoothing.
    pub phase_raw: Vec<f32>,
    /// The SITIE phase used as input (h, w).
    pub sitie: Vec<f32>,
    /// Modelled image of the selected state, in the units of the input image.
    pub image_model: Vec<f32>,
    /// Amplitude map (h, w) without the scale (fixed or learned modes).
    pub amplitude: Option<Vec<f32>>,
    /// Amplitude scale of the selected state.
    pub amp_scale: f64,
    /// Fit iteration of the selected state (0: the pretrained network).
    pub selected_iter: usize,
    /// Pretraining log.
    pub pretrain_history: Vec<Stats>,
    /// Fit log.
    pub history: Vec<Stats>,
    /// How the run ended.
    pub stop: StopReason,
    /// Size the network ran at (sides padded to a multiple of 2^levels).
    pub network_size: (usize, usize),
    /// Seconds spent fitting (without pretraining).
    pub seconds: f64,
}

/// The modelled amplitude.
enum Amplitude {
    /// Uniform (times the learnable scale).
    Uniform,
    /// A fixed map and its electrostatic phase, (1, 1, h, w) each.
    Fixed { amp: Tensor, phi_e: Tensor },
    /// The amplitude network's input (1, 1, hp, wp): the threshold map, then each constrained
    /// map.
    Learned { input: Tensor },
}

/// A reconstruction in progress, driven iteration by iteration (see [`reconstruct`] for the
/// whole procedure). Useful to watch accuracy against iterations or to continue a series.
pub struct Siprad {
    cfg: SipradConfig,
    hw: (usize, usize),
    net_hw: (usize, usize),
    fwd: LtemForward,
    /// Measured image / mean, (1, 1, h, w).
    meas: Tensor,
    holdout: Option<Holdout>,
    i0: f64,
    sitie_phase: Vec<f32>,
    /// The network input (1, 1, hp, wp), drifting by `noise_frac` N(0, 1) per iteration.
    input: Tensor,
    /// Key of the input's noise streams (one stream per iteration).
    noise_key: u64,
    state: SipradState,
    amplitude: Amplitude,
    kappa: f64,
    fit: Fit,
    pretrain_history: Vec<Stats>,
    history: Vec<Stats>,
}

/// Zero-pads an (h, w) map to (1, 1, hp, wp) on `device`.
fn padded(
    v: &[f32],
    (h, w): (usize, usize),
    (hp, wp): (usize, usize),
    dev: Device,
) -> Result<Tensor> {
    Tensor::from_shape_vec(&[1, 1, h, w], v.to_vec())?
        .pad2d(0, hp - h, 0, wp - w)?
        .to_device(dev)
}

impl SipradConfig {
    /// Checks every setting; the error names the setting.
    pub fn validate(&self) -> Result<()> {
        const OP: &str = "siprad";
        if !(self.lr > 0.0
            && self.lr.is_finite()
            && self.noise_frac >= 0.0
            && self.sigma >= 0.0
            && self.amp_scale_lr >= 0.0)
        {
            return Err(Error::arg(
                OP,
                "lr must be positive; noise_frac, sigma and amp_scale_lr >= 0",
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

    fn network(&self) -> CaeConfig {
        CaeConfig {
            in_ch: 1,
            out_ch: 1,
            channels: self.channels.clone(),
            kernel: self.kernel,
        }
    }
}

impl Siprad {
    /// A fresh reconstruction of `image` (h, w) with new networks from `cfg.seed`.
    pub fn new(
        image: &[f32],
        h: usize,
        w: usize,
        mic: &Microscope,
        cfg: &SipradConfig,
    ) -> Result<Siprad> {
        cfg.validate()?;
        let mut rng = Rng::new(cfg.seed);
        let net_cfg = cfg.network();
        let net = Cae::new(&net_cfg, &mut rng)?;
        let amp_net = match cfg.amplitude {
            AmplitudeMode::Learned { .. } => {
                let n = Cae::new(&net_cfg, &mut rng)?;
                let o = AdamW::new(n.parameters(), cfg.lr).with_weight_decay(0.0);
                Some((n, o))
            }
            _ => None,
        };
        let opt = AdamW::new(net.parameters(), cfg.lr).with_weight_decay(0.0);
        let amp_scale = Tensor::scalar(1.0).requires_grad();
        let opt_scale =
            AdamW::new(vec![amp_scale.clone()], cfg.amp_scale_lr).with_weight_decay(0.0);
        let state = SipradState {
            net,
            opt,
            amp_scale,
            opt_scale,
            amp_net,
        };
        Siprad::with_state(image, (h, w), mic, cfg, state, cfg.seed)
    }

    /// Continues from a previous frame's networks and optimisers (series mode): the input is
    /// this image's SITIE phase; no pretraining is needed.
    pub fn warm(
        image: &[f32],
        h: usize,
        w: usize,
        mic: &Microscope,
        cfg: &SipradConfig,
        state: SipradState,
    ) -> Result<Siprad> {
        Siprad::with_state(
            image,
            (h, w),
            mic,
            cfg,
            state,
            cfg.seed.wrapping_add(0x5eed),
        )
    }

    fn with_state(
        image: &[f32],
        (h, w): (usize, usize),
        mic: &Microscope,
        cfg: &SipradConfig,
        state: SipradState,
        noise_seed: u64,
    ) -> Result<Siprad> {
        const OP: &str = "siprad";
        cfg.validate_with(mic)?;
        if image.len() != h * w || h < 2 || w < 2 {
            return Err(Error::arg(
                OP,
                format!("{} values for {h}x{w}", image.len()),
            ));
        }
        if let Some(i) = image.iter().position(|v| !v.is_finite()) {
            return Err(Error::arg(OP, format!("non-finite pixel at {i}")));
        }
        if state.net.config() != &cfg.network() {
            return Err(Error::arg(
                OP,
                "the network state does not match the configuration",
            ));
        }
        let i0 = image.iter().map(|&v| v as f64).sum::<f64>() / (h * w) as f64;
        if i0 <= 0.0 {
            return Err(Error::arg(
                OP,
                "the image's mean intensity must be positive",
            ));
        }
        let norm: Vec<f32> = image.iter().map(|&v| (v as f64 / i0) as f32).collect();
        let dev = cfg.device;
        let mut fwd = LtemForward::new(h, w, mic, cfg.pad)?;
        fwd.to_device(dev)?;
        // parameters move in place, so optimisers that already hold them keep them
        state.net.to_device(dev)?;
        state.amp_scale.move_to(dev)?;
        if let Some((n, _)) = &state.amp_net {
            n.to_device(dev)?;
        }
        let mut sc = cfg.sitie.clone();
        if sc.qc.is_none() {
            sc.qc = Some(1.0 / (h.max(w) as f64 * mic.scale));
        }
        let sitie_phase = sitie(image, h, w, mic, &sc)?;
        // held-out pixels from their own generator, so the weights do not depend on it
        let holdout = (cfg.holdout > 0.0)
            .then(|| Holdout::new(h, w, cfg.holdout, cfg.seed ^ 0x0ba1_da7e, dev))
            .transpose()?;
        let d = cfg.network().divisor();
        let net_hw = (h.div_ceil(d) * d, w.div_ceil(d) * d);
        let kappa = cfg.v0 * interaction_constant(mic.kv) * cfg.xi;
        let up = |v: Vec<f32>| Tensor::from_shape_vec(&[1, 1, h, w], v)?.to_device(dev);
        let amplitude = match cfg.amplitude {
            AmplitudeMode::Uniform => Amplitude::Uniform,
            AmplitudeMode::Fixed { threshold } => {
                let a = threshold_amplitude(&norm, threshold);
                let phi_e = phi_e_of(&a, kappa);
                Amplitude::Fixed {
                    amp: up(a)?,
                    phi_e: up(phi_e)?,
                }
            }
            AmplitudeMode::Learned { threshold } => {
                if state.amp_net.is_none() {
                    return Err(Error::arg(
                        OP,
                        "learned amplitude needs an amplitude network in the state",
                    ));
                }
                let a = threshold_amplitude(&norm, threshold);
                Amplitude::Learned {
                    input: padded(&a, (h, w), net_hw, dev)?,
                }
            }
        };
        Ok(Siprad {
            cfg: cfg.clone(),
            hw: (h, w),
            net_hw,
            fwd,
            meas: up(norm)?,
            holdout,
            i0,
            input: padded(&sitie_phase, (h, w), net_hw, dev)?,
            sitie_phase,
            noise_key: Rng::new(noise_seed).next_u64(),
            state,
            amplitude,
            kappa,
            fit: Fit::new(cfg.selection),
            pretrain_history: Vec::new(),
            history: Vec::new(),
        })
    }

    /// The SITIE phase used as the network input.
    pub fn sitie_phase(&self) -> &[f32] {
        &self.sitie_phase
    }

    /// Fit iterations done so far.
    pub fn iterations(&self) -> usize {
        self.fit.iterations()
    }

    /// Pretrains the phase network (and the amplitude network) to reproduce its input for
    /// `cfg.pretrain` iterations (MSE, Adam at `cfg.lr`). Returns `false` if the observer
    /// stopped it.
    pub fn pretrain(&mut self, observer: &mut dyn FnMut(&Stats) -> bool) -> Result<bool> {
        let (h, w) = self.hw;
        let dev = self.cfg.device;
        let target =
            Tensor::from_shape_vec(&[1, 1, h, w], self.sitie_phase.clone())?.to_device(dev)?;
        let lr = self.cfg.lr;
        let mut opt = AdamW::new(self.state.net.parameters(), lr).with_weight_decay(0.0);
        let amp = match (&self.state.amp_net, &self.amplitude) {
            (Some((n, _)), Amplitude::Learned { input }) => {
                let t = input.crop2d(0, h, 0, w)?;
                Some((
                    n,
                    AdamW::new(n.parameters(), lr).with_weight_decay(0.0),
                    input,
                    t,
                ))
            }
            _ => None,
        };
        let mut amp_opt = None;
        let mut obj = Pretrain {
            net: &self.state.net,
            input: &self.input,
            target,
            amp: amp.map(|(n, o, i, t)| {
                amp_opt = Some(o);
                (n, i.clone(), t)
            }),
            hw: (h, w),
        };
        let mut opts: Vec<&mut AdamW> = vec![&mut opt];
        opts.extend(amp_opt.as_mut());
        let mut fit = Fit::new(Selection::Last);
        let history = &mut self.pretrain_history;
        let stop = fit.run(self.cfg.pretrain, &mut obj, &mut opts, None, &mut |it| {
            let s = Stats {
                stage: Stage::Pretrain,
                iter: it.iter,
                loss: it.report[0],
                best_loss: f64::NAN,
                val_loss: f64::NAN,
                amp_scale: 1.0,
                seconds: it.seconds,
            };
            history.push(s);
            observer(&s)
        })?;
        match stop {
            StopReason::Diverged(i) => Err(Error::arg(
                "siprad",
                format!("pretraining diverged at iteration {i}"),
            )),
            StopReason::Interrupted => Ok(false),
            StopReason::Completed => Ok(true),
        }
    }

    /// The current network's phase (h, w), unsmoothed (no input noise added).
    pub fn current_phase(&self) -> Result<Vec<f32>> {
        let (h, w) = self.hw;
        crate::engine::autograd::no_grad(|| {
            self.state
                .net
                .forward(&self.input)?
                .crop2d(0, h, 0, w)?
                .to_vec()
        })
    }

    /// One fit iteration: perturb the input, fit the image, update the networks and the scale.
    /// `Ok(None)` when the loss was not finite (the last good state stays in place).
    pub fn step(&mut self) -> Result<Option<Stats>> {
        let SipradState {
            net,
            opt,
            amp_scale,
            opt_scale,
            amp_net,
        } = &mut self.state;
        let (amp_net, amp_opt) = match amp_net {
            Some((n, o)) => (Some(&*n), Some(o)),
            None => (None, None),
        };
        let mut obj = Fitting {
            cfg: &self.cfg,
            hw: self.hw,
            net_hw: self.net_hw,
            fwd: &self.fwd,
            meas: &self.meas,
            holdout: self.holdout.as_ref(),
            input: &mut self.input,
            noise_key: self.noise_key,
            net: &*net,
            amp_scale: &*amp_scale,
            amp_net,
            amplitude: &mut self.amplitude,
            kappa: self.kappa,
        };
        let mut opts: Vec<&mut AdamW> = vec![opt, opt_scale];
        opts.extend(amp_opt);
        let Some(it) = self.fit.step(&mut obj, &mut opts, None)? else {
            return Ok(None);
        };
        let best = self.fit.selected().map_or(f64::NAN, |b| b.key);
        let s = self.stats(&it, best);
        self.history.push(s);
        Ok(Some(s))
    }

    fn stats(&self, it: &Iteration, best: f64) -> Stats {
        let tracking = match self.cfg.selection {
            Selection::LowestLoss { after } | Selection::Validation { after } => it.iter > after,
            Selection::Last => false,
        };
        Stats {
            stage: Stage::Fit,
            iter: it.iter,
            loss: it.loss,
            best_loss: if tracking { best } else { f64::NAN },
            val_loss: it.validation,
            amp_scale: it.report[0],
            seconds: it.seconds,
        }
    }

    /// Ends the run: takes the selected state, smooths and min-subtracts its phase, and returns
    /// the result with the trainable state (for the next frame of a series).
    pub fn finish(self, stop: StopReason) -> Result<(SipradResult, SipradState)> {
        let (h, w) = self.hw;
        let dev = self.cfg.device;
        let learned = self.state.amp_net.is_some();
        let (phase_t, amp_t, scale, selected_iter) = match self.fit.selected() {
            Some(s) => (
                s.state[0].clone(),
                s.state.get(1).cloned(),
                s.stats.report[0],
                s.iter,
            ),
            None => {
                // no fit iteration: the pretrained network
                let phase = crate::engine::autograd::no_grad(|| {
                    self.state.net.forward(&self.input)?.crop2d(0, h, 0, w)
                })?;
                let amp_net = self.state.amp_net.as_ref().map(|(n, _)| n);
                let amp = crate::engine::autograd::no_grad(|| {
                    amplitude_now(&self.amplitude, amp_net, self.hw, self.kappa)
                })?;
                let scale = self.state.amp_scale.to_scalar()? as f64;
                (phase, amp.map(|(a, _)| a), scale, 0)
            }
        };
        // the selected state's downloads: its phase (and amplitude)
        let phase_raw = phase_t.to_vec()?;
        let amp = amp_t.as_ref().map(|a| a.to_vec()).transpose()?.map(|a| {
            if learned {
                dual_valued(&a, h, w)
            } else {
                a
            }
        });
        // model image of the selected (raw) phase with its amplitude
        let image_model = crate::engine::autograd::no_grad(|| -> Result<Vec<f32>> {
            let up = |v: Vec<f32>| Tensor::from_shape_vec(&[1, 1, h, w], v)?.to_device(dev);
            let (a, phi) = match &amp {
                Some(a) => (
                    Some(up(a.clone())?),
                    phase_t.add(&up(phi_e_of(a, self.kappa))?)?,
                ),
                None => (None, phase_t.clone()),
            };
            let s = Tensor::from_shape_vec(&[1], vec![scale as f32])?.to_device(dev)?;
            let img = self.fwd.image(&phi, a.as_ref(), Some(&s))?.to_vec()?;
            Ok(img.iter().map(|&v| (v as f64 * self.i0) as f32).collect())
        })?;
        let smooth = gaussian_filter(&phase_raw, h, w, self.cfg.sigma, Boundary::Reflect, 4.0);
        let seconds = self.fit.history().last().map_or(0.0, |s| s.seconds);
        let res = SipradResult {
            phase: min_subtracted(smooth),
            phase_raw,
            sitie: self.sitie_phase,
            image_model,
            amplitude: amp,
            amp_scale: scale,
            selected_iter,
            pretrain_history: self.pretrain_history,
            history: self.history,
            stop,
            network_size: self.net_hw,
            seconds,
        };
        Ok((res, self.state))
    }
}

/// The current amplitude (without scale) and `phi_e`, as tensors (none when uniform).
fn amplitude_now(
    amplitude: &Amplitude,
    amp_net: Option<&Cae>,
    (h, w): (usize, usize),
    kappa: f64,
) -> Result<Option<(Tensor, Tensor)>> {
    match (amplitude, amp_net) {
        (Amplitude::Learned { input }, Some(n)) => {
            let a = n.forward(input)?.crop2d(0, h, 0, w)?.sigmoid()?;
            let phi_e = phi_e_tensor(&a, kappa)?;
            Ok(Some((a, phi_e)))
        }
        (Amplitude::Fixed { amp, phi_e }, _) => Ok(Some((amp.clone(), phi_e.clone()))),
        _ => Ok(None),
    }
}

/// Pretraining: the phase network reproduces the SITIE phase, the amplitude network its input
/// map; one loss (their sum: the networks share no parameter, so each gets its own gradient).
struct Pretrain<'a> {
    net: &'a Cae,
    input: &'a Tensor,
    target: Tensor,
    amp: Option<(&'a Cae, Tensor, Tensor)>,
    hw: (usize, usize),
}

impl Objective for Pretrain<'_> {
    /// Reports the phase loss.
    fn evaluate(&mut self, _: usize) -> Result<Evaluation> {
        let (h, w) = self.hw;
        let l = self
            .net
            .forward(self.input)?
            .crop2d(0, h, 0, w)?
            .mse_loss(&self.target)?;
        let report = vec![l.detach()];
        let loss = match &self.amp {
            Some((n, input, t)) => l.add(
                &n.forward(input)?
                    .crop2d(0, h, 0, w)?
                    .sigmoid()?
                    .mse_loss(t)?,
            )?,
            None => l,
        };
        Ok(Evaluation {
            loss,
            validation: None,
            report,
            state: vec![],
        })
    }
}

/// The fit: the drifting input through the phase network, the amplitude, the image model, the
/// (held-out) image loss; the constraint of a learned amplitude after the step.
struct Fitting<'a> {
    cfg: &'a SipradConfig,
    hw: (usize, usize),
    net_hw: (usize, usize),
    fwd: &'a LtemForward,
    meas: &'a Tensor,
    holdout: Option<&'a Holdout>,
    input: &'a mut Tensor,
    noise_key: u64,
    net: &'a Cae,
    amp_scale: &'a Tensor,
    amp_net: Option<&'a Cae>,
    amplitude: &'a mut Amplitude,
    kappa: f64,
}

impl Objective for Fitting<'_> {
    /// Reports the amplitude scale; keeps the phase (and the amplitude).
    fn evaluate(&mut self, iter: usize) -> Result<Evaluation> {
        let (h, w) = self.hw;
        let (hp, wp) = self.net_hw;
        let nf = self.cfg.noise_frac;
        if nf > 0.0 {
            let key = self.noise_key ^ (iter as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let noise = Tensor::randn_keyed(&[1, 1, hp, wp], key, nf as f32, self.input.device())?;
            *self.input = self.input.add(&noise)?;
        }
        let phi_m = self.net.forward(self.input)?.crop2d(0, h, 0, w)?;
        let amp = amplitude_now(self.amplitude, self.amp_net, self.hw, self.kappa)?;
        let (a, phi) = match &amp {
            Some((a, e)) => (Some(a), phi_m.add(e)?),
            None => (None, phi_m.clone()),
        };
        let img = self.fwd.image(&phi, a, Some(self.amp_scale))?;
        let (loss, validation) = match self.holdout {
            None => (img.mse_loss(self.meas)?, None),
            Some(ho) => {
                let (l, v) = ho.losses(&img, self.meas)?;
                (l, Some(v))
            }
        };
        let mut state = vec![phi_m.detach()];
        state.extend(amp.map(|(a, _)| a.detach()));
        Ok(Evaluation {
            loss,
            validation,
            report: vec![self.amp_scale.detach()],
            state,
        })
    }

    /// Every `constraint_every` iterations the learned amplitude is made dual-valued. A network
    /// output cannot be overwritten, so the constrained map becomes the amplitude network's new
    /// input and the network is re-fitted to reproduce it (`constraint_refit` Adam steps of
    /// MSE): training resumes from an amplitude that is (close to) the dual-valued map.
    fn after_step(&mut self, iter: usize) -> Result<()> {
        let every = self.cfg.constraint_every;
        let (Some(net), Amplitude::Learned { input }) = (self.amp_net, &mut *self.amplitude) else {
            return Ok(());
        };
        if every == 0 || !iter.is_multiple_of(every) {
            return Ok(());
        }
        let (h, w) = self.hw;
        let dev = self.cfg.device;
        let a = crate::engine::autograd::no_grad(|| {
            net.forward(input)?.crop2d(0, h, 0, w)?.sigmoid()?.to_vec()
        })?;
        let c = dual_valued(&a, h, w);
        let new_in = padded(&c, self.hw, self.net_hw, dev)?;
        let mut refit = Refit {
            net,
            input: &new_in,
            target: Tensor::from_shape_vec(&[1, 1, h, w], c)?.to_device(dev)?,
            hw: self.hw,
        };
        let mut opt = AdamW::new(net.parameters(), self.cfg.lr).with_weight_decay(0.0);
        let mut fit = Fit::new(Selection::Last);
        fit.run(
            self.cfg.constraint_refit,
            &mut refit,
            &mut [&mut opt],
            None,
            &mut |_| true,
        )?;
        *input = new_in;
        Ok(())
    }
}

/// The amplitude network re-fitted to a constrained map (its new input).
struct Refit<'a> {
    net: &'a Cae,
    input: &'a Tensor,
    target: Tensor,
    hw: (usize, usize),
}

impl Objective for Refit<'_> {
    fn evaluate(&mut self, _: usize) -> Result<Evaluation> {
        let (h, w) = self.hw;
        let loss = self
            .net
            .forward(self.input)?
            .crop2d(0, h, 0, w)?
            .sigmoid()?
            .mse_loss(&self.target)?;
        Ok(Evaluation {
            loss,
            validation: None,
            report: vec![],
            state: vec![],
        })
    }
}

/// Runs the fit loop of `s` for `iters` iterations (observer may stop it), then finishes.
fn run_fit(
    mut s: Siprad,
    iters: usize,
    observer: &mut dyn FnMut(&Stats) -> bool,
) -> Result<(SipradResult, SipradState)> {
    let mut stop = StopReason::Completed;
    for _ in 0..iters {
        match s.step()? {
            None => {
                stop = StopReason::Diverged(s.iterations() + 1);
                break;
            }
            Some(st) => {
                if !observer(&st) {
                    stop = StopReason::Interrupted;
                    break;
                }
            }
        }
    }
    s.finish(stop)
}

/// Reconstructs the magnetic phase from one defocused image `(h, w)` (any positive intensity
/// units) with SIPRAD: SITIE input, pretraining, fitting, selection, smoothing. `observer` sees
/// every pretraining and fitting iteration and returns `false` to stop (the result so far is
/// returned).
///
/// ```
/// use magprior::ltem::{self, synthetic::{simulate, Texture}, Microscope, SipradConfig};
/// let mic = Microscope { defocus: -2e5, ..Microscope::siprad_demo() };
/// let data = simulate(Texture::Bubbles, 32, 2e5, 50.0, &mic, 0.1, 1)?;
/// let cfg = SipradConfig { iters: 5, pretrain: 5, channels: vec![4, 8], ..Default::default() };
/// let res = ltem::reconstruct(&data.image, 32, 32, &mic, &cfg, &mut |_| true)?;
/// assert_eq!(res.phase.len(), 32 * 32);
/// let acc = ltem::accuracy(&res.phase, &data.phase, 32, 32, mic.scale, false)?;
/// println!("phase accuracy {:.3}", acc.phase);
/// # Ok::<(), magprior::Error>(())
/// ```
pub fn reconstruct(
    image: &[f32],
    h: usize,
    w: usize,
    mic: &Microscope,
    cfg: &SipradConfig,
    observer: &mut dyn FnMut(&Stats) -> bool,
) -> Result<SipradResult> {
    let mut s = Siprad::new(image, h, w, mic, cfg)?;
    if !s.pretrain(observer)? {
        return Ok(s.finish(StopReason::Interrupted)?.0);
    }
    Ok(run_fit(s, cfg.iters, observer)?.0)
}

/// Reconstructs a series of frames (each `(h, w)`) in order; every frame after the first
/// continues from the previous frame's networks and optimiser state (no pretraining).
/// `observer` gets the frame index with each iteration's stats. Stops after the frame during
/// which the observer returned `false`.
pub fn reconstruct_series(
    frames: &[Vec<f32>],
    h: usize,
    w: usize,
    mic: &Microscope,
    cfg: &SipradConfig,
    observer: &mut dyn FnMut(usize, &Stats) -> bool,
) -> Result<Vec<SipradResult>> {
    let mut out = Vec::new();
    let mut state: Option<SipradState> = None;
    for (k, f) in frames.iter().enumerate() {
        let mut obs = |s: &Stats| observer(k, s);
        let (res, st) = match state.take() {
            None => {
                let mut s = Siprad::new(f, h, w, mic, cfg)?;
                if !s.pretrain(&mut obs)? {
                    out.push(s.finish(StopReason::Interrupted)?.0);
                    return Ok(out);
                }
                run_fit(s, cfg.iters, &mut obs)?
            }
            Some(st) => run_fit(Siprad::warm(f, h, w, mic, cfg, st)?, cfg.iters, &mut obs)?,
        };
        let stop = res.stop.clone();
        out.push(res);
        if stop == StopReason::Interrupted {
            break;
        }
        state = Some(st);
    }
    Ok(out)
}
