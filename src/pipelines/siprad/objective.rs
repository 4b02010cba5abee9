//! SIPRAD's objectives for the fitting loop: pretraining on the SITIE input, the image fit with
//! its drifting input and amplitude constraint, and the amplitude network's re-fit.

use super::amplitude::{collapsed, constrain, phi_e_base, phi_e_base_tensor};
use super::{Amplitude, Plane, SipradConfig};
use crate::engine::device::Device;
use crate::engine::tensor::Tensor;
use crate::error::Result;
use crate::fit::{Evaluation, Fit, Holdout, Objective, Selection};
use crate::nn::Cae;
use crate::optim::AdamW;

/// An (h, w) map as a (1, 1, h, w) tensor on `dev`.
pub(crate) fn map_tensor(v: Vec<f32>, (h, w): (usize, usize), dev: Device) -> Result<Tensor> {
    Tensor::from_shape_vec(&[1, 1, h, w], v)?.to_device(dev)
}

/// Zero-pads an (h, w) map to (1, 1, hp, wp) on `device`.
pub(crate) fn padded(
    v: &[f32],
    (h, w): (usize, usize),
    (hp, wp): (usize, usize),
    dev: Device,
) -> Result<Tensor> {
    map_tensor(v.to_vec(), (h, w), Device::Cpu)?
        .pad2d(0, hp - h, 0, wp - w)?
        .to_device(dev)
}

/// `logit(clamp(map, 1e-3, 0.999))` as a (1, 1, h, w) tensor on `dev`: the amplitude
/// network's output is `sigmoid(net + logit(map))`, so a network that outputs ~0 (as a fresh
/// one does) reproduces its map and training learns corrections to it (a plain sigmoid starts
/// at 0.5 everywhere and 200 pretraining steps do not bring it back to the map).
pub(crate) fn logit_of(map: &[f32], (h, w): (usize, usize), dev: Device) -> Result<Tensor> {
    let v: Vec<f32> = map
        .iter()
        .map(|&a| {
            let a = a.clamp(1e-3, 0.999);
            (a / (1.0 - a)).ln()
        })
        .collect();
    map_tensor(v, (h, w), dev)
}

/// The amplitude network's map: `sigmoid(net(input) + bias)` cropped to (h, w).
pub(crate) fn amp_output(
    net: &Cae,
    input: &Tensor,
    bias: &Tensor,
    (h, w): (usize, usize),
) -> Result<Tensor> {
    net.forward(input)?.crop2d(0, h, 0, w)?.add(bias)?.sigmoid()
}

/// A learned amplitude: `1 + support (sigmoid(net(input) + bias) - 1)`.
fn learned_amplitude(
    net: &Cae,
    input: &Tensor,
    bias: &Tensor,
    support: &Tensor,
    hw: (usize, usize),
) -> Result<Tensor> {
    amp_output(net, input, bias, hw)?
        .add_scalar(-1.0)?
        .mul(support)?
        .add_scalar(1.0)
}

/// The current amplitude (without scale) and `phi_e`, as tensors (none when uniform).
pub(crate) fn amplitude_now(
    amplitude: &Amplitude,
    amp_net: Option<&Cae>,
    (h, w): (usize, usize),
    kappa: &Tensor,
) -> Result<Option<(Tensor, Tensor)>> {
    let k = kappa.reshape(&[1])?;
    match (amplitude, amp_net) {
        (
            Amplitude::Learned {
                input,
                support,
                bias,
                ..
            },
            Some(n),
        ) => {
            let a = learned_amplitude(n, input, bias, support, (h, w))?;
            let phi_e = phi_e_base_tensor(&a)?.mul(&k)?;
            Ok(Some((a, phi_e)))
        }
        (Amplitude::Fixed { amp, base, .. }, _) => Ok(Some((amp.clone(), base.mul(&k)?))),
        _ => Ok(None),
    }
}

/// Pretraining: the phase network reproduces the SITIE phase, the amplitude network its input
/// map; one loss (their sum: the networks share no parameter, so each gets its own gradient).
pub(crate) struct Pretrain<'a> {
    pub(crate) net: &'a Cae,
    pub(crate) input: &'a Tensor,
    pub(crate) target: Tensor,
    pub(crate) amp: Option<(&'a Cae, Tensor, Tensor, Tensor)>,
    pub(crate) hw: (usize, usize),
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
            Some((n, input, t, bias)) => {
                l.add(&amp_output(n, input, bias, (h, w))?.mse_loss(t)?)?
            }
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
pub(crate) struct Fitting<'a> {
    pub(crate) cfg: &'a SipradConfig,
    pub(crate) hw: (usize, usize),
    pub(crate) net_hw: (usize, usize),
    pub(crate) planes: &'a [Plane],
    pub(crate) holdout: Option<&'a Holdout>,
    pub(crate) input: &'a mut Tensor,
    pub(crate) noise_key: u64,
    pub(crate) net: &'a Cae,
    pub(crate) amp_scale: &'a Tensor,
    pub(crate) amp_net: Option<&'a Cae>,
    pub(crate) amplitude: &'a mut Amplitude,
    pub(crate) kappa: &'a Tensor,
    pub(crate) warnings: &'a mut Vec<String>,
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
        // the mean over the series' images of each image's loss
        let k = self.planes.len() as f32;
        let mut loss: Option<Tensor> = None;
        let mut validation: Option<Tensor> = None;
        for p in self.planes {
            let img = p.fwd.image(&phi, a, Some(self.amp_scale))?;
            let (l, v) = match self.holdout {
                None => (img.mse_loss(&p.meas)?, None),
                Some(ho) => {
                    let (l, v) = ho.losses(&img, &p.meas)?;
                    (l, Some(v))
                }
            };
            loss = Some(match loss {
                None => l,
                Some(acc) => acc.add(&l)?,
            });
            if let Some(v) = v {
                validation = Some(match validation {
                    None => v,
                    Some(acc) => acc.add(&v)?,
                });
            }
        }
        let loss = match loss {
            Some(l) if k > 1.0 => l.scale(1.0 / k)?,
            Some(l) => l,
            None => return Err(crate::error::Error::arg("siprad", "no image to fit")),
        };
        let validation = match validation {
            Some(v) if k > 1.0 => Some(v.scale(1.0 / k)?),
            v => v,
        };
        let mut state = vec![phi_m.detach()];
        state.extend(amp.map(|(a, _)| a.detach()));
        Ok(Evaluation {
            loss,
            validation,
            report: vec![self.amp_scale.detach(), self.kappa.detach()],
            state,
        })
    }

    /// Every `constraint_every` iterations the learned amplitude is made dual-valued per region
    /// ([`constrain`]) and divided by its background level, which the amplitude scale takes
    /// over. A network output cannot be overwritten, so the constrained map becomes the
    /// amplitude network's new input and the network is re-fitted to reproduce it
    /// (`constraint_refit` Adam steps of MSE). Guard: a background level below 0.7 (the map's
    /// level was 1 after the previous constraint) or an area fraction that jumps (above
    /// `2 area0 + 0.02`, or below `area0 / 2 - 0.02`) is a collapse: the branch stops with a
    /// warning and the last sane map is kept fixed from then on.
    fn after_step(&mut self, iter: usize) -> Result<()> {
        let every = self.cfg.constraint_every;
        let Some(net) = self.amp_net else {
            return Ok(());
        };
        let Amplitude::Learned {
            input,
            mask,
            allowed,
            support,
            bias,
            sane,
            area0,
        } = &mut *self.amplitude
        else {
            return Ok(());
        };
        if every == 0 || !iter.is_multiple_of(every) {
            return Ok(());
        }
        let (h, w) = self.hw;
        let dev = self.cfg.device;
        let a = crate::engine::autograd::no_grad(|| {
            learned_amplitude(net, input, bias, support, self.hw)?.to_vec()
        })?;
        let c = constrain(&a, mask, allowed, h, w);
        if collapsed(c.high, c.area_fraction, *area0) {
            self.warnings.push(format!(
                "the learned amplitude collapsed at iteration {iter} (background level {:.2}, \
                 area fraction {:.3} from {:.3}); its branch stopped and the last sane map is \
                 kept fixed",
                c.high, c.area_fraction, area0
            ));
            let base = phi_e_base(sane);
            *self.amplitude = Amplitude::Fixed {
                amp: map_tensor(sane.clone(), self.hw, dev)?,
                base: map_tensor(base, self.hw, dev)?,
                mask: mask.clone(),
            };
            return Ok(());
        }
        // the scale takes the background level over
        let s = crate::engine::autograd::no_grad(|| self.amp_scale.scale(c.high as f32))?;
        self.amp_scale.assign(&s)?;
        let new_in = padded(&c.map, self.hw, self.net_hw, dev)?;
        let new_bias = logit_of(&c.map, self.hw, dev)?;
        let mut refit = Refit {
            net,
            input: &new_in,
            bias: &new_bias,
            target: map_tensor(c.map.clone(), self.hw, dev)?,
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
        *bias = new_bias;
        *mask = c.mask;
        *sane = c.map;
        Ok(())
    }
}

/// The amplitude network re-fitted to a constrained map (its new input).
struct Refit<'a> {
    net: &'a Cae,
    input: &'a Tensor,
    bias: &'a Tensor,
    target: Tensor,
    hw: (usize, usize),
}

impl Objective for Refit<'_> {
    fn evaluate(&mut self, _: usize) -> Result<Evaluation> {
        let loss = amp_output(self.net, self.input, self.bias, self.hw)?.mse_loss(&self.target)?;
        Ok(Evaluation {
            loss,
            validation: None,
            report: vec![],
            state: vec![],
        })
    }
}
