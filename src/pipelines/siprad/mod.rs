//! SIPRAD (SPEC section 5): a deep image prior whose output phase, pushed through the
//! Lorentz-TEM forward model, must reproduce the measured image. The network input is the SITIE
//! phase; it is pretrained to reproduce that input, then fitted with Adam while its input drifts
//! (cumulative noise, drawn on the device). A learnable scalar scales the amplitude; a
//! non-uniform amplitude comes from a fixed threshold map or from a second network with the
//! dual-valued constraint (`amplitude.rs`). Both stages run on the shared fitting loop
//! (`fit/`), which keeps the selected state on the device.

mod amplitude;
mod config;
mod ensemble;
mod objective;
pub use amplitude::dual_valued;
pub use config::{AmplitudeMode, AmplitudeSource, SipradConfig};
pub use ensemble::{reconstruct_ensemble, SipradEnsemble};

use crate::engine::tensor::Tensor;
use crate::error::{Error, Result};
use crate::fit::{Fit, Holdout, Iteration, Selection, StopReason};
use crate::nn::Cae;
use crate::optim::AdamW;
use crate::physics::ltem::contamination::AmplitudeMap;
use crate::physics::ltem::forward::LtemForward;
use crate::physics::ltem::optics::{interaction_constant, Microscope};
use crate::physics::ltem::sitie::{min_subtracted, sitie};
use crate::physics::ltem::tie::{check_series, tie, TieConfig};
use crate::physics::signal::{gaussian_filter, Boundary};
use crate::rng::Rng;
use amplitude::{initial_map, phi_e_base};
use objective::{amplitude_now, map_tensor, padded, Fitting, Pretrain};

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
    /// `kappa` used by this iteration's model (rad per unit `-ln a`; NaN in pretraining).
    pub kappa: f64,
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
    /// `kappa` (rad per unit `-ln a`, a one-element tensor; a parameter when learned).
    pub kappa: Tensor,
    /// Its optimiser (used when `learn_kappa`).
    pub opt_kappa: AdamW,
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
    /// The initial amplitude map and how it was found (non-uniform modes).
    pub amplitude_init: Option<AmplitudeMap>,
    /// The contamination mask of the returned amplitude (non-uniform modes).
    pub amplitude_mask: Option<Vec<bool>>,
    /// `kappa` of the selected state (rad per unit `-ln a`; learned or `V0 sigma xi`).
    pub kappa: f64,
    /// What the run noticed and the user should know (a learned amplitude that collapsed).
    pub warnings: Vec<String>,
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

impl SipradResult {
    /// Fraction of the pixels in the returned amplitude's contamination mask (non-uniform
    /// modes).
    pub fn amplitude_area_fraction(&self) -> Option<f64> {
        self.amplitude_mask
            .as_ref()
            .map(|k| k.iter().filter(|&&v| v).count() as f64 / k.len().max(1) as f64)
    }
}

/// One recorded image of a focal series and its forward model.
pub(crate) struct Plane {
    /// The forward model at this image's defocus.
    pub(crate) fwd: LtemForward,
    /// Measured image / its mean, (1, 1, h, w).
    pub(crate) meas: Tensor,
    /// The image's mean intensity.
    pub(crate) i0: f64,
}

/// The modelled amplitude.
pub(crate) enum Amplitude {
    /// Uniform (times the learnable scale).
    Uniform,
    /// A fixed map and `phi_e / kappa`, (1, 1, h, w) each, with the map's mask.
    Fixed {
        amp: Tensor,
        base: Tensor,
        mask: Vec<bool>,
    },
    /// The amplitude network's input (1, 1, hp, wp): the initial map, then each constrained map;
    /// the mask of the last (sane) map; the support, the initial mask dilated by
    /// [`amplitude::SUPPORT_PX`], on the host and as a (1, 1, h, w) tensor of 1 and 0 (the
    /// amplitude is the network's output there and 1 outside: the network cannot explain
    /// magnetic contrast or noise as absorption away from the contamination, and the map's
    /// level is not a second amplitude scale); that map on the host, and the initial area
    /// fraction.
    Learned {
        input: Tensor,
        mask: Vec<bool>,
        allowed: Vec<bool>,
        support: Tensor,
        bias: Tensor,
        sane: Vec<f32>,
        area0: f64,
    },
}

/// A reconstruction in progress, driven iteration by iteration (see [`reconstruct`] for the
/// whole procedure). Useful to watch accuracy against iterations or to continue a series.
pub struct Siprad {
    cfg: SipradConfig,
    hw: (usize, usize),
    net_hw: (usize, usize),
    /// One forward model and measured image per defocus (one for single-image SIPRAD).
    planes: Vec<Plane>,
    holdout: Option<Holdout>,
    sitie_phase: Vec<f32>,
    /// The network input (1, 1, hp, wp), drifting by `noise_frac` N(0, 1) per iteration.
    input: Tensor,
    /// Key of the input's noise streams (one stream per iteration).
    noise_key: u64,
    state: SipradState,
    amplitude: Amplitude,
    amplitude_init: Option<AmplitudeMap>,
    warnings: Vec<String>,
    fit: Fit,
    pretrain_history: Vec<Stats>,
    history: Vec<Stats>,
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
        let state = fresh_state(cfg, mic)?;
        Siprad::with_state(&[image], &[mic.defocus], (h, w), mic, cfg, state, cfg.seed)
    }

    /// A fresh reconstruction from a through-focal series (automatic-differentiation phase
    /// retrieval over several images): `images[k]` recorded at `defoci_nm[k]` (`mic.defocus`
    /// is not used), one phase network whose image at every defocus must reproduce its
    /// measurement (the loss is the mean of the images' losses). The network input is the
    /// series' TIE phase; a threshold amplitude map comes from the image nearest focus.
    pub fn new_series(
        images: &[&[f32]],
        defoci_nm: &[f64],
        h: usize,
        w: usize,
        mic: &Microscope,
        cfg: &SipradConfig,
    ) -> Result<Siprad> {
        let state = fresh_state(cfg, mic)?;
        Siprad::with_state(images, defoci_nm, (h, w), mic, cfg, state, cfg.seed)
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
            &[image],
            &[mic.defocus],
            (h, w),
            mic,
            cfg,
            state,
            cfg.seed.wrapping_add(0x5eed),
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn with_state(
        images: &[&[f32]],
        defoci_nm: &[f64],
        (h, w): (usize, usize),
        mic: &Microscope,
        cfg: &SipradConfig,
        state: SipradState,
        noise_seed: u64,
    ) -> Result<Siprad> {
        const OP: &str = "siprad";
        cfg.validate()?;
        mic.validate()?;
        if images.is_empty() || h < 2 || w < 2 {
            return Err(Error::arg(
                OP,
                format!("{} images of {h}x{w}", images.len()),
            ));
        }
        check_series(OP, images, defoci_nm, h * w)?;
        if images.len() == 1 {
            let m = Microscope {
                defocus: defoci_nm[0],
                ..mic.clone()
            };
            cfg.validate_with(&m)?;
        }
        if state.net.config() != &cfg.network() {
            return Err(Error::arg(
                OP,
                "the network state does not match the configuration",
            ));
        }
        let dev = cfg.device;
        let mut planes = Vec::with_capacity(images.len());
        for (image, &df) in images.iter().zip(defoci_nm) {
            let i0 = image.iter().map(|&v| v as f64).sum::<f64>() / (h * w) as f64;
            if i0 <= 0.0 {
                return Err(Error::arg(
                    OP,
                    "the image's mean intensity must be positive",
                ));
            }
            let m = Microscope {
                defocus: df,
                ..mic.clone()
            };
            let mut fwd = LtemForward::new(h, w, &m, cfg.pad)?;
            fwd.to_device(dev)?;
            let norm: Vec<f32> = image.iter().map(|&v| (v as f64 / i0) as f32).collect();
            let meas = map_tensor(norm, (h, w), dev)?;
            planes.push(Plane { fwd, meas, i0 });
        }
        // the amplitude map and its threshold from the image nearest focus
        let nearest = (0..images.len())
            .min_by(|&a, &b| defoci_nm[a].abs().total_cmp(&defoci_nm[b].abs()))
            .unwrap_or(0);
        let image = images[nearest];
        // parameters move in place, so optimisers that already hold them keep them
        state.net.to_device(dev)?;
        state.amp_scale.move_to(dev)?;
        state.kappa.move_to(dev)?;
        if let Some((n, _)) = &state.amp_net {
            n.to_device(dev)?;
        }
        let mut sc = cfg.sitie.clone();
        if sc.qc.is_none() {
            sc.qc = Some(1.0 / (h.max(w) as f64 * mic.scale));
        }
        // the network input: SITIE of the one image, or the TIE of the series
        let sitie_phase = if images.len() == 1 {
            let m = Microscope {
                defocus: defoci_nm[0],
                ..mic.clone()
            };
            sitie(images[0], h, w, &m, &sc)?
        } else {
            let tc = TieConfig {
                solver: sc,
                ..TieConfig::default()
            };
            tie(images, defoci_nm, h, w, mic, &tc)?
        };
        // held-out pixels from their own generator, so the weights do not depend on it
        let holdout = (cfg.holdout > 0.0)
            .then(|| Holdout::new(h, w, cfg.holdout, cfg.seed ^ 0x0ba1_da7e, dev))
            .transpose()?;
        let d = cfg.network().divisor();
        let net_hw = (h.div_ceil(d) * d, w.div_ceil(d) * d);
        let up = |v: Vec<f32>| map_tensor(v, (h, w), dev);
        let mut warnings = Vec::new();
        let (amplitude, amplitude_init) = match &cfg.amplitude {
            AmplitudeMode::Uniform => (Amplitude::Uniform, None),
            AmplitudeMode::Fixed(src) => {
                let m = initial_map(src, image, h, w)?;
                warn_defocused(src, &mut warnings);
                let base = phi_e_base(&m.amplitude);
                let a = Amplitude::Fixed {
                    amp: up(m.amplitude.clone())?,
                    base: up(base)?,
                    mask: m.mask.clone(),
                };
                (a, Some(m))
            }
            AmplitudeMode::Learned(src) => {
                if state.amp_net.is_none() {
                    return Err(Error::arg(
                        OP,
                        "learned amplitude needs an amplitude network in the state",
                    ));
                }
                let m = initial_map(src, image, h, w)?;
                warn_defocused(src, &mut warnings);
                let allowed = amplitude::support(&m.mask, h, w);
                let a = Amplitude::Learned {
                    input: padded(&m.amplitude, (h, w), net_hw, dev)?,
                    bias: objective::logit_of(&m.amplitude, (h, w), dev)?,
                    support: up(allowed.iter().map(|&b| b as u8 as f32).collect())?,
                    allowed,
                    mask: m.mask.clone(),
                    sane: m.amplitude.clone(),
                    area0: m.area_fraction,
                };
                (a, Some(m))
            }
        };
        Ok(Siprad {
            cfg: cfg.clone(),
            hw: (h, w),
            net_hw,
            planes,
            holdout,
            input: padded(&sitie_phase, (h, w), net_hw, dev)?,
            sitie_phase,
            noise_key: Rng::new(noise_seed).next_u64(),
            state,
            amplitude,
            amplitude_init,
            warnings,
            fit: match cfg.average {
                Some(d) => Fit::new(cfg.selection).with_average(d),
                None => Fit::new(cfg.selection),
            },
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
        let target = map_tensor(self.sitie_phase.clone(), (h, w), dev)?;
        let lr = self.cfg.lr;
        let mut opt = AdamW::new(self.state.net.parameters(), lr).with_weight_decay(0.0);
        let amp = match (&self.state.amp_net, &self.amplitude) {
            (Some((n, _)), Amplitude::Learned { input, bias, .. }) => {
                let t = input.crop2d(0, h, 0, w)?;
                Some((
                    n,
                    AdamW::new(n.parameters(), lr).with_weight_decay(0.0),
                    input,
                    t,
                    bias,
                ))
            }
            _ => None,
        };
        let mut amp_opt = None;
        let mut obj = Pretrain {
            net: &self.state.net,
            input: &self.input,
            target,
            amp: amp.map(|(n, o, i, t, b)| {
                amp_opt = Some(o);
                (n, i.clone(), t, b.clone())
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
                kappa: f64::NAN,
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
            kappa,
            opt_kappa,
        } = &mut self.state;
        let (amp_net, amp_opt) = match amp_net {
            Some((n, o)) => (Some(&*n), Some(o)),
            None => (None, None),
        };
        let mut obj = Fitting {
            cfg: &self.cfg,
            hw: self.hw,
            net_hw: self.net_hw,
            planes: &self.planes,
            holdout: self.holdout.as_ref(),
            input: &mut self.input,
            noise_key: self.noise_key,
            net: &*net,
            amp_scale: &*amp_scale,
            amp_net,
            amplitude: &mut self.amplitude,
            kappa: &*kappa,
            warnings: &mut self.warnings,
        };
        let mut opts: Vec<&mut AdamW> = vec![opt, opt_scale];
        opts.extend(amp_opt);
        if self.cfg.learn_kappa {
            opts.push(opt_kappa);
        }
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
            kappa: it.report[1],
            seconds: it.seconds,
        }
    }

    /// Ends the run: takes the selected state, smooths and min-subtracts its phase, and returns
    /// the result with the trainable state (for the next frame of a series).
    pub fn finish(self, stop: StopReason) -> Result<(SipradResult, SipradState)> {
        let (h, w) = self.hw;
        let dev = self.cfg.device;
        // with output averaging: the moving average of the phase, with the last state's amplitude
        let chosen = match (self.fit.average(), self.fit.last()) {
            (Some(avg), Some(last)) => Some((avg.clone(), last)),
            _ => self.fit.selected().map(|s| (s.state[0].clone(), s)),
        };
        let (phase_t, amp_t, scale, kappa, selected_iter) = match chosen {
            Some((phase, s)) => (
                phase,
                s.state.get(1).cloned(),
                s.stats.report[0],
                s.stats.report[1],
                s.iter,
            ),
            None => {
                // no fit iteration: the pretrained network
                let phase = crate::engine::autograd::no_grad(|| {
                    self.state.net.forward(&self.input)?.crop2d(0, h, 0, w)
                })?;
                let amp_net = self.state.amp_net.as_ref().map(|(n, _)| n);
                let amp = crate::engine::autograd::no_grad(|| {
                    amplitude_now(&self.amplitude, amp_net, self.hw, &self.state.kappa)
                })?;
                let scale = self.state.amp_scale.to_scalar()? as f64;
                let kappa = self.state.kappa.to_scalar()? as f64;
                (phase, amp.map(|(a, _)| a), scale, kappa, 0)
            }
        };
        // the selected state's downloads: its phase (and amplitude)
        let phase_raw = phase_t.to_vec()?;
        let (amp, amplitude_mask, high) = match amp_t.as_ref().map(|a| a.to_vec()).transpose()? {
            None => (None, None, 1.0),
            Some(a) => match &self.amplitude {
                // a constrained learned map is divided by its background level: the scale
                // takes that level over
                Amplitude::Learned { mask, allowed, .. } => {
                    let c = amplitude::constrain(&a, mask, allowed, h, w);
                    (Some(c.map), Some(c.mask), c.high)
                }
                Amplitude::Fixed { mask, .. } => (Some(a), Some(mask.clone()), 1.0),
                Amplitude::Uniform => (Some(a), None, 1.0),
            },
        };
        let scale = scale * high;
        // model image of the selected (raw) phase with its amplitude
        let image_model = crate::engine::autograd::no_grad(|| -> Result<Vec<f32>> {
            let up = |v: Vec<f32>| map_tensor(v, (h, w), dev);
            let (a, phi) = match &amp {
                Some(a) => {
                    let e: Vec<f32> = phi_e_base(a)
                        .iter()
                        .map(|&b| (b as f64 * kappa) as f32)
                        .collect();
                    (Some(up(a.clone())?), phase_t.add(&up(e)?)?)
                }
                None => (None, phase_t.clone()),
            };
            let s = Tensor::from_shape_vec(&[1], vec![scale as f32])?.to_device(dev)?;
            let p = &self.planes[0];
            let img = p.fwd.image(&phi, a.as_ref(), Some(&s))?.to_vec()?;
            Ok(img.iter().map(|&v| (v as f64 * p.i0) as f32).collect())
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
            amplitude_init: self.amplitude_init,
            amplitude_mask,
            kappa,
            warnings: self.warnings,
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

/// Contamination found in a defocused image: a warning, since Fresnel and magnetic contrast
/// darken pixels too (measured on the validation panel, README).
fn warn_defocused(src: &AmplitudeSource, warnings: &mut Vec<String>) {
    if matches!(src, AmplitudeSource::Image { .. }) {
        warnings.push(
            "the contamination was found in a defocused image, where Fresnel fringes (a particle's \
             own electrostatic phase) and magnetic contrast darken and brighten pixels too: check \
             amplitude_init.png, and prefer an in-focus image (--infocus) or a mask (--amp-mask)"
                .to_string(),
        );
    }
}

/// New networks, optimisers, amplitude scale and `kappa = V0 sigma xi` from `cfg.seed`.
fn fresh_state(cfg: &SipradConfig, mic: &Microscope) -> Result<SipradState> {
    cfg.validate()?;
    let mut rng = Rng::new(cfg.seed);
    let net_cfg = cfg.network();
    let net = Cae::new(&net_cfg, &mut rng)?;
    let amp_net = match cfg.amplitude {
        AmplitudeMode::Learned { .. } => {
            let n = Cae::new(&net_cfg, &mut rng)?;
            let o = AdamW::new(n.parameters(), cfg.amp_lr()).with_weight_decay(0.0);
            Some((n, o))
        }
        _ => None,
    };
    let opt = AdamW::new(net.parameters(), cfg.lr).with_weight_decay(0.0);
    let amp_scale = Tensor::scalar(1.0).requires_grad();
    let opt_scale = AdamW::new(vec![amp_scale.clone()], cfg.amp_scale_lr).with_weight_decay(0.0);
    let k0 = (cfg.v0 * interaction_constant(mic.kv) * cfg.xi) as f32;
    let kappa = if cfg.learn_kappa {
        Tensor::scalar(k0).requires_grad()
    } else {
        Tensor::scalar(k0)
    };
    let opt_kappa = AdamW::new(vec![kappa.clone()], cfg.kappa_lr).with_weight_decay(0.0);
    let state = SipradState {
        net,
        opt,
        amp_scale,
        opt_scale,
        amp_net,
        kappa,
        opt_kappa,
    };
    Ok(state)
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

/// Reconstructs the magnetic phase from a through-focal series with one network
/// ([`Siprad::new_series`]: the loss is the mean over the images at their own defoci, the input
/// the series' TIE phase); otherwise as [`reconstruct`]. `mic.defocus` is not used.
pub fn reconstruct_focal_series(
    images: &[&[f32]],
    defoci_nm: &[f64],
    h: usize,
    w: usize,
    mic: &Microscope,
    cfg: &SipradConfig,
    observer: &mut dyn FnMut(&Stats) -> bool,
) -> Result<SipradResult> {
    let mut s = Siprad::new_series(images, defoci_nm, h, w, mic, cfg)?;
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
