//! SIPRAD (SPEC section 5): a deep image prior whose output phase, pushed through the Lorentz-TEM
//! forward model, must reproduce the measured image. The network input is the SITIE phase; it is
//! pretrained to reproduce that input, then fitted with Adam while its input drifts
//! (cumulative noise). A learnable scalar scales the amplitude; a non-uniform amplitude comes
//! from a fixed threshold map or from a second network with the dual-valued constraint.

use super::forward::LtemForward;
use super::metrics::gaussian_filter;
use super::optics::{interaction_constant, Microscope};
use super::sitie::{min_subtracted, sitie, SitieConfig};
use crate::error::{Error, Result};
use crate::nn::{Cae, CaeConfig};
use crate::optim::AdamW;
use crate::rng::Rng;
use crate::Device;
use crate::Tensor;
use std::time::Instant;

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

/// Which network state the result is taken from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Selection {
    /// The paper's rule: the lowest-loss state after iteration `after`.
    LowestLoss {
        /// Iterations before tracking starts.
        after: usize,
    },
    /// The state at the last iteration.
    Last,
    /// The lowest loss on the held-out pixels (`SipradConfig::holdout`) after iteration `after`:
    /// the fit stops improving there and starts fitting the noise of the other pixels.
    Validation {
        /// Iterations before tracking starts.
        after: usize,
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

/// Why a run ended.
#[derive(Clone, Debug, PartialEq)]
pub enum StopReason {
    /// All iterations done.
    Completed,
    /// The observer asked to stop.
    Interrupted,
    /// The loss became NaN/inf at this fit iteration; the result is the last good state.
    Diverged(usize),
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

/// Snapshot of the state a result is made from.
#[derive(Clone)]
struct Snapshot {
    iter: usize,
    /// What the selection compares (loss or validation loss).
    key: f64,
    /// Network phase (1, 1, h, w), detached, on the run's device.
    phase: Tensor,
    /// Amplitude (1, 1, h, w) without the scale, detached, on the run's device.
    amp: Option<Tensor>,
    scale: f64,
}

/// A reconstruction in progress, driven iteration by iteration (see [`reconstruct`] for the
/// whole procedure). Useful to watch accuracy against iterations or to continue a series.
pub struct Siprad {
    h: usize,
    w: usize,
    hp: usize,
    wp: usize,
    cfg: SipradConfig,
    fwd: LtemForward,
    /// Measured image / mean.
    meas: Tensor,
    /// 1 on the pixels in the loss, 0 on held-out ones (None: every pixel in the loss).
    train_mask: Option<(Tensor, Tensor, f32, f32)>,
    i0: f64,
    sitie_phase: Vec<f32>,
    input: Vec<f32>,
    rng: Rng,
    state: SipradState,
    amp_fixed: Option<Tensor>,
    phi_e_fixed: Option<Tensor>,
    amp_input: Option<Tensor>,
    kappa: f64,
    iter: usize,
    best: Option<Snapshot>,
    last: Option<Snapshot>,
    history: Vec<Stats>,
    pretrain_history: Vec<Stats>,
    start: Option<Instant>,
}

fn pad_to(v: &[f32], h: usize, w: usize, hp: usize, wp: usize) -> Vec<f32> {
    let mut out = vec![0f32; hp * wp];
    for r in 0..h {
        out[r * wp..r * wp + w].copy_from_slice(&v[r * w..r * w + w]);
    }
    out
}

/// The fixed amplitude map of [`AmplitudeMode::Fixed`] from an image normalised to mean 1.
pub fn threshold_amplitude(norm_image: &[f32], threshold: f64) -> Vec<f32> {
    let dark: Vec<f64> = norm_image
        .iter()
        .filter(|&&v| (v as f64) < threshold)
        .map(|&v| v as f64)
        .collect();
    let low = if dark.is_empty() {
        1.0
    } else {
        (dark.iter().sum::<f64>() / dark.len() as f64)
            .max(1e-4)
            .sqrt()
    };
    norm_image
        .iter()
        .map(|&v| {
            if (v as f64) < threshold {
                low as f32
            } else {
                1.0
            }
        })
        .collect()
}

/// The dual-valued constraint of SPEC section 5: high = the mode of `a` rounded to 0.01
/// (ties: the smallest), threshold = 0.75 high, low = min(a); `a <- where(a > thr, high, low)`,
/// then a Gaussian blur of sigma 1 pixel.
pub fn dual_valued(a: &[f32], h: usize, w: usize) -> Vec<f32> {
    let mut counts = std::collections::BTreeMap::new();
    for &v in a {
        if v.is_finite() {
            *counts
                .entry((v as f64 * 100.0).round() as i64)
                .or_insert(0usize) += 1;
        }
    }
    let high = counts
        .iter()
        .fold(
            (0i64, 0usize),
            |best, (&k, &n)| if n > best.1 { (k, n) } else { best },
        )
        .0 as f32
        / 100.0;
    let low = a
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .fold(f32::INFINITY, f32::min);
    let low = if low.is_finite() { low } else { high };
    let thr = 0.75 * high;
    let hard: Vec<f32> = a
        .iter()
        .map(|&v| if v > thr { high } else { low })
        .collect();
    gaussian_filter(&hard, h, w, 1.0)
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
        let mut rng = Rng::new(cfg.seed);
        let net_cfg = CaeConfig {
            in_ch: 1,
            out_ch: 1,
            channels: cfg.channels.clone(),
            kernel: cfg.kernel,
        };
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
        Siprad::with_state(image, h, w, mic, cfg, state, rng)
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
        let rng = Rng::new(cfg.seed.wrapping_add(0x5eed));
        Siprad::with_state(image, h, w, mic, cfg, state, rng)
    }

    fn with_state(
        image: &[f32],
        h: usize,
        w: usize,
        mic: &Microscope,
        cfg: &SipradConfig,
        state: SipradState,
        rng: Rng,
    ) -> Result<Siprad> {
        const OP: &str = "siprad";
        if image.len() != h * w || h < 2 || w < 2 {
            return Err(Error::arg(
                OP,
                format!("{} values for {h}x{w}", image.len()),
            ));
        }
        if let Some(i) = image.iter().position(|v| !v.is_finite()) {
            return Err(Error::arg(OP, format!("non-finite pixel at {i}")));
        }
        if !(cfg.lr > 0.0
            && cfg.lr.is_finite()
            && cfg.noise_frac >= 0.0
            && cfg.sigma >= 0.0
            && cfg.amp_scale_lr >= 0.0)
        {
            return Err(Error::arg(
                OP,
                "lr must be positive; noise_frac, sigma and amp_scale_lr >= 0",
            ));
        }
        if state.net.config().channels != cfg.channels || state.net.config().kernel != cfg.kernel {
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
        if !(0.0..0.9).contains(&cfg.holdout) {
            return Err(Error::arg(
                OP,
                format!("holdout must be in [0, 0.9), got {}", cfg.holdout),
            ));
        }
        if matches!(cfg.selection, Selection::Validation { .. }) && cfg.holdout == 0.0 {
            return Err(Error::arg(
                OP,
                "validation selection needs a holdout fraction > 0",
            ));
        }
        let train_mask = if cfg.holdout > 0.0 {
            // held-out pixels from their own generator, so the weights do not depend on it
            let mut mrng = Rng::new(cfg.seed ^ 0x0ba1_da7e);
            let m: Vec<f32> = (0..h * w)
                .map(|_| {
                    if mrng.uniform() < cfg.holdout {
                        0.0
                    } else {
                        1.0
                    }
                })
                .collect();
            let n_train = m.iter().sum::<f32>().max(1.0);
            let n_val = (h * w) as f32 - n_train;
            let v: Vec<f32> = m.iter().map(|x| 1.0 - x).collect();
            Some((
                Tensor::from_shape_vec(&[1, 1, h, w], m)?.to_device(dev)?,
                Tensor::from_shape_vec(&[1, 1, h, w], v)?.to_device(dev)?,
                n_train,
                n_val.max(1.0),
            ))
        } else {
            None
        };
        let d = 1usize << cfg.channels.len();
        let (hp, wp) = (h.div_ceil(d) * d, w.div_ceil(d) * d);
        let kappa = cfg.v0 * interaction_constant(mic.kv) * cfg.xi;
        let (mut amp_fixed, mut phi_e_fixed, mut amp_input) = (None, None, None);
        match cfg.amplitude {
            AmplitudeMode::Uniform => {}
            AmplitudeMode::Fixed { threshold } => {
                let a = threshold_amplitude(&norm, threshold);
                let phi_e = phi_e_of(&a, kappa);
                amp_fixed = Some(Tensor::from_shape_vec(&[1, 1, h, w], a)?.to_device(dev)?);
                phi_e_fixed = Some(Tensor::from_shape_vec(&[1, 1, h, w], phi_e)?.to_device(dev)?);
            }
            AmplitudeMode::Learned { threshold } => {
                if state.amp_net.is_none() {
                    return Err(Error::arg(
                        OP,
                        "learned amplitude needs an amplitude network in the state",
                    ));
                }
                let a = threshold_amplitude(&norm, threshold);
                amp_input = Some(
                    Tensor::from_shape_vec(&[1, 1, hp, wp], pad_to(&a, h, w, hp, wp))?
                        .to_device(dev)?,
                );
            }
        }
        Ok(Siprad {
            h,
            w,
            hp,
            wp,
            cfg: cfg.clone(),
            fwd,
            meas: Tensor::from_shape_vec(&[1, 1, h, w], norm)?.to_device(dev)?,
            train_mask,
            i0,
            input: pad_to(&sitie_phase, h, w, hp, wp),
            sitie_phase,
            rng,
            state,
            amp_fixed,
            phi_e_fixed,
            amp_input,
            kappa,
            iter: 0,
            best: None,
            last: None,
            history: Vec::new(),
            pretrain_history: Vec::new(),
            start: None,
        })
    }

    /// The SITIE phase used as the network input.
    pub fn sitie_phase(&self) -> &[f32] {
        &self.sitie_phase
    }

    /// Fit iterations done so far.
    pub fn iterations(&self) -> usize {
        self.iter
    }

    /// The network input (kept on the CPU, where its noise is drawn), uploaded to the device.
    fn input_tensor(&self) -> Result<Tensor> {
        Tensor::from_shape_vec(&[1, 1, self.hp, self.wp], self.input.clone())?
            .to_device(self.cfg.device)
    }

    /// Pretrains the phase network (and the amplitude network) to reproduce its input for
    /// `cfg.pretrain` iterations (MSE, Adam at `cfg.lr`). Returns `false` if the observer
    /// stopped it.
    pub fn pretrain(&mut self, observer: &mut dyn FnMut(&Stats) -> bool) -> Result<bool> {
        let start = Instant::now();
        let (h, w) = (self.h, self.w);
        let x = self.input_tensor()?;
        let target = Tensor::from_shape_vec(&[1, 1, h, w], self.sitie_phase.clone())?
            .to_device(self.cfg.device)?;
        let mut opt = AdamW::new(self.state.net.parameters(), self.cfg.lr).with_weight_decay(0.0);
        let mut amp = match (&self.state.amp_net, &self.amp_input) {
            (Some((n, _)), Some(ai)) => {
                let t = ai.crop2d(0, h, 0, w)?;
                Some((
                    n,
                    AdamW::new(n.parameters(), self.cfg.lr).with_weight_decay(0.0),
                    ai.clone(),
                    t,
                ))
            }
            _ => None,
        };
        for iter in 1..=self.cfg.pretrain {
            let loss = self
                .state
                .net
                .forward(&x)?
                .crop2d(0, h, 0, w)?
                .mse_loss(&target)?;
            let l = loss.to_scalar()? as f64;
            opt.step(&loss.backward()?)?;
            if let Some((n, o, ai, t)) = amp.as_mut() {
                let la = n.forward(ai)?.crop2d(0, h, 0, w)?.sigmoid()?.mse_loss(t)?;
                o.step(&la.backward()?)?;
            }
            let s = Stats {
                stage: Stage::Pretrain,
                iter,
                loss: l,
                best_loss: f64::NAN,
                val_loss: f64::NAN,
                amp_scale: 1.0,
                seconds: start.elapsed().as_secs_f64(),
            };
            self.pretrain_history.push(s);
            if !l.is_finite() {
                return Err(Error::arg(
                    "siprad",
                    format!("pretraining diverged at iteration {iter}"),
                ));
            }
            if !observer(&s) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The amplitude (without scale) and `phi_e` of the current state, as tensors.
    fn amplitude(&self) -> Result<(Option<Tensor>, Option<Tensor>)> {
        match (&self.state.amp_net, &self.amp_input) {
            (Some((n, _)), Some(ai)) => {
                let a = n.forward(ai)?.crop2d(0, self.h, 0, self.w)?.sigmoid()?;
                // phi_e = kappa (-ln a - min(-ln a)) = kappa (ln max(a) - ln a); max(a) is taken
                // as a constant (its gradient reaches one pixel only).
                let amax = a
                    .to_vec()?
                    .iter()
                    .copied()
                    .fold(f32::MIN_POSITIVE, f32::max);
                let phi_e = a
                    .log()?
                    .neg()?
                    .add_scalar(amax.ln())?
                    .scale(self.kappa as f32)?;
                Ok((Some(a), Some(phi_e)))
            }
            _ => Ok((self.amp_fixed.clone(), self.phi_e_fixed.clone())),
        }
    }

    /// The current network's phase (h, w), unsmoothed (no input noise added).
    pub fn current_phase(&self) -> Result<Vec<f32>> {
        crate::no_grad(|| {
            self.state
                .net
                .forward(&self.input_tensor()?)?
                .crop2d(0, self.h, 0, self.w)?
                .to_vec()
        })
    }

    /// One fit iteration: perturb the input, fit the image, update the networks and the scale.
    /// Returns the iteration's stats; a non-finite loss is reported as an error-free
    /// `Ok(None)` and leaves the last good state in place.
    pub fn step(&mut self) -> Result<Option<Stats>> {
        let start = *self.start.get_or_insert_with(Instant::now);
        let (h, w) = (self.h, self.w);
        if self.cfg.noise_frac > 0.0 {
            let nf = self.cfg.noise_frac;
            for v in self.input.iter_mut() {
                *v += (nf * self.rng.normal()) as f32;
            }
        }
        let x = self.input_tensor()?;
        let phi_m = self.state.net.forward(&x)?.crop2d(0, h, 0, w)?;
        let (amp, phi_e) = self.amplitude()?;
        let phi = match &phi_e {
            Some(e) => phi_m.add(e)?,
            None => phi_m.clone(),
        };
        let img = self
            .fwd
            .image(&phi, amp.as_ref(), Some(&self.state.amp_scale))?;
        let (loss, val) = match &self.train_mask {
            None => (img.mse_loss(&self.meas)?, None),
            Some((m, v, nt, nv)) => {
                let sq = img.sub(&self.meas)?.square()?;
                let val = crate::no_grad(|| sq.detach().mul(v)?.sum_all()?.scale(1.0 / nv))?;
                (sq.mul(m)?.sum_all()?.scale(1.0 / nt)?, Some(val))
            }
        };
        // loss, amplitude scale (and held-out loss): one readback
        let mut scalars = vec![
            loss.detach().reshape(&[1])?,
            self.state.amp_scale.detach().reshape(&[1])?,
        ];
        if let Some(v) = &val {
            scalars.push(v.reshape(&[1])?);
        }
        let vals = Tensor::cat(&scalars, 0)?.to_vec()?;
        let (l, scale) = (vals[0] as f64, vals[1] as f64);
        let val = vals.get(2).map_or(f64::NAN, |&v| v as f64);
        if !l.is_finite() {
            return Ok(None);
        }
        self.iter += 1;
        let snap = Snapshot {
            iter: self.iter,
            key: l,
            phase: phi_m.detach(),
            amp: amp.as_ref().map(|a| a.detach()),
            scale,
        };
        let (key, after) = match self.cfg.selection {
            Selection::LowestLoss { after } => (l, after),
            Selection::Validation { after } => (val, after),
            Selection::Last => (f64::NAN, usize::MAX),
        };
        if self.iter > after && self.best.as_ref().is_none_or(|b| key < b.key) {
            self.best = Some(Snapshot {
                key,
                ..snap.clone()
            });
        }
        self.last = Some(snap);
        let grads = loss.backward()?;
        drop(loss);
        self.state.opt.step(&grads)?;
        self.state.opt_scale.step(&grads)?;
        if let Some((_, o)) = self.state.amp_net.as_mut() {
            o.step(&grads)?;
        }
        if self.state.amp_net.is_some()
            && self.cfg.constraint_every > 0
            && self.iter.is_multiple_of(self.cfg.constraint_every)
        {
            self.apply_constraint()?;
        }
        let s = Stats {
            stage: Stage::Fit,
            iter: self.iter,
            loss: l,
            best_loss: self.best.as_ref().map_or(f64::NAN, |b| b.key),
            val_loss: val,
            amp_scale: scale,
            seconds: start.elapsed().as_secs_f64(),
        };
        self.history.push(s);
        Ok(Some(s))
    }

    /// The dual-valued constraint on the learned amplitude. A network output cannot be
    /// overwritten, so the constrained map becomes the amplitude network's new input and the
    /// network is re-fitted to reproduce it (`constraint_refit` Adam steps of MSE): training
    /// resumes from an amplitude that is (close to) the dual-valued map.
    fn apply_constraint(&mut self) -> Result<()> {
        let (h, w, hp, wp) = (self.h, self.w, self.hp, self.wp);
        let Some(ai) = self.amp_input.clone() else {
            return Ok(());
        };
        let Some((net, _)) = self.state.amp_net.as_ref() else {
            return Ok(());
        };
        let a = crate::no_grad(|| net.forward(&ai)?.crop2d(0, h, 0, w)?.sigmoid()?.to_vec())?;
        let c = dual_valued(&a, h, w);
        let dev = self.cfg.device;
        let new_in =
            Tensor::from_shape_vec(&[1, 1, hp, wp], pad_to(&c, h, w, hp, wp))?.to_device(dev)?;
        let target = Tensor::from_shape_vec(&[1, 1, h, w], c)?.to_device(dev)?;
        let mut opt = AdamW::new(net.parameters(), self.cfg.lr).with_weight_decay(0.0);
        for _ in 0..self.cfg.constraint_refit {
            let l = net
                .forward(&new_in)?
                .crop2d(0, h, 0, w)?
                .sigmoid()?
                .mse_loss(&target)?;
            opt.step(&l.backward()?)?;
        }
        self.amp_input = Some(new_in);
        Ok(())
    }

    /// Ends the run: takes the selected state, smooths and min-subtracts its phase, and returns
    /// the result with the trainable state (for the next frame of a series).
    pub fn finish(self, stop: StopReason) -> Result<(SipradResult, SipradState)> {
        let (h, w) = (self.h, self.w);
        let chosen = match self.cfg.selection {
            Selection::LowestLoss { .. } | Selection::Validation { .. } => {
                self.best.clone().or_else(|| self.last.clone())
            }
            Selection::Last => self.last.clone(),
        };
        let chosen = match chosen {
            Some(s) => s,
            None => {
                // no fit iteration: the pretrained network
                let (a, _) = crate::no_grad(|| self.amplitude())?;
                let phase = crate::no_grad(|| {
                    self.state
                        .net
                        .forward(&self.input_tensor()?)?
                        .crop2d(0, h, 0, w)
                })?;
                Snapshot {
                    iter: 0,
                    key: f64::NAN,
                    phase,
                    amp: a,
                    scale: self.state.amp_scale.to_scalar()? as f64,
                }
            }
        };
        let learned = self.state.amp_net.is_some();
        let dev = self.cfg.device;
        // the selected state's downloads: its phase (and amplitude)
        let phase_raw = chosen.phase.to_vec()?;
        let amp = chosen
            .amp
            .as_ref()
            .map(|a| a.to_vec())
            .transpose()?
            .map(|a| if learned { dual_valued(&a, h, w) } else { a });
        // model image of the selected (raw) phase with its amplitude
        let image_model = crate::no_grad(|| -> Result<Vec<f32>> {
            let p = chosen.phase.clone();
            let up = |v: Vec<f32>| Tensor::from_shape_vec(&[1, 1, h, w], v)?.to_device(dev);
            let (a, phi) = match &amp {
                Some(a) => {
                    let at = up(a.clone())?;
                    let e = up(phi_e_of(a, self.kappa))?;
                    (Some(at), p.add(&e)?)
                }
                None => (None, p),
            };
            let s = Tensor::from_shape_vec(&[1], vec![chosen.scale as f32])?.to_device(dev)?;
            let img = self.fwd.image(&phi, a.as_ref(), Some(&s))?.to_vec()?;
            Ok(img.iter().map(|&v| (v as f64 * self.i0) as f32).collect())
        })?;
        let phase = min_subtracted(gaussian_filter(&phase_raw, h, w, self.cfg.sigma));
        let seconds = self.history.last().map_or(0.0, |s| s.seconds);
        let res = SipradResult {
            phase,
            phase_raw,
            sitie: self.sitie_phase,
            image_model,
            amplitude: amp,
            amp_scale: chosen.scale,
            selected_iter: chosen.iter,
            pretrain_history: self.pretrain_history,
            history: self.history,
            stop,
            network_size: (self.hp, self.wp),
            seconds,
        };
        Ok((res, self.state))
    }
}

/// `phi_e = kappa (-ln a - min(-ln a))` of an amplitude map.
fn phi_e_of(a: &[f32], kappa: f64) -> Vec<f32> {
    let amax = a.iter().copied().fold(f32::MIN_POSITIVE, f32::max) as f64;
    a.iter()
        .map(|&v| (kappa * (amax.ln() - (v.max(f32::MIN_POSITIVE) as f64).ln())) as f32)
        .collect()
}

/// Runs the fit loop of `s` for `cfg.iters` iterations (observer may stop it), then finishes.
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
