//! The NV objective shared by every model: a magnetisation [`Source`] pushed through the forward
//! model (with the standoff and the NV axis fixed or trained), compared with the data by
//! [`Data::loss`] (background projected out, dropouts left out), plus the energy prior when the
//! model has one.

use super::data::Data;
use super::{Layout, NvTarget};
use crate::engine::autograd::no_grad;
use crate::engine::tensor::Tensor;
use crate::error::{Error, Result};
use crate::fit::{Evaluation, Objective};
use crate::nn::Cae;
use crate::physics::nv::energy::{normalized, Energy};
use crate::physics::nv::forward::NvForward;

/// Unit vectors `(sin th cos ph, sin th sin ph, cos th)` (1, 3, 1, 1) of two angles (2,) in
/// radians, differentiable in them.
pub(crate) fn unit_from_angles(angles: &Tensor) -> Result<Tensor> {
    let e = angles.expi()?;
    let (c, s) = (e.re()?, e.im()?);
    let (ct, st) = (c.narrow(0, 0, 1)?, s.narrow(0, 0, 1)?);
    let (cp, sp) = (c.narrow(0, 1, 1)?, s.narrow(0, 1, 1)?);
    Tensor::cat(&[st.mul(&cp)?, st.mul(&sp)?, ct], 0)?.reshape(&[1, 3, 1, 1])
}

/// Where the unit vectors of the energy model come from.
pub(crate) enum UnitParam {
    /// `v` itself is trained (the prior alone regularises).
    Direct(Tensor),
    /// `v = net(z)` (the deep image prior and the energy prior together).
    Network { net: Cae, z: Tensor },
}

/// How the magnetisation (1, C, H, W) in A/m is made.
pub(crate) enum Source {
    /// The paper's NV-DIP: `M = tanh(net(z)) mask`, the mask scaled by Ms.
    Tanh { net: Cae, z: Tensor, mask: Tensor },
    /// One direction: `M = tanh(net(z)) support Ms u(angles)`, the angles fixed or trained.
    Direction {
        net: Cae,
        z: Tensor,
        support: Tensor,
        angles: Tensor,
    },
    /// Unit vectors in the support: `M = Ms v / |v| support`.
    Unit {
        v: UnitParam,
        support: Tensor,
        ms: f32,
        /// A trained `log(Ms / ms)` (1,) when Ms is fitted.
        log_scale: Option<Tensor>,
    },
}

impl Source {
    /// The magnetisation of the current parameters (tracked) for an `(h, w)` map, and for the
    /// unit-vector source its unit field `m = v / |v|` (what the energy is a function of).
    pub(crate) fn magnetisation(&self, h: usize, w: usize) -> Result<(Tensor, Option<Tensor>)> {
        let run = |net: &Cae, z: &Tensor| net.forward(z)?.crop2d(0, h, 0, w);
        let m = match self {
            Source::Tanh { net, z, mask } => run(net, z)?.tanh()?.mul(mask),
            Source::Direction {
                net,
                z,
                support,
                angles,
            } => run(net, z)?
                .tanh()?
                .mul(support)?
                .mul(&unit_from_angles(angles)?),
            Source::Unit {
                v,
                support,
                ms,
                log_scale,
            } => {
                let v = match v {
                    UnitParam::Direct(v) => v.clone(),
                    UnitParam::Network { net, z } => run(net, z)?,
                };
                let unit = normalized(&v, support)?;
                let m = unit.scale(*ms)?;
                let m = match log_scale {
                    Some(s) => m.mul(&s.exp()?.reshape(&[1, 1, 1, 1])?)?,
                    None => m,
                };
                return Ok((m, Some(unit)));
            }
        };
        Ok((m?, None))
    }

    /// The trained direction angles (2,) in radians of the direction model.
    pub(crate) fn angles(&self) -> Option<&Tensor> {
        match self {
            Source::Direction { angles, .. } if angles.is_leaf() && angles.is_tracked() => {
                Some(angles)
            }
            _ => None,
        }
    }

    /// The trained log-scale of Ms.
    pub(crate) fn log_scale(&self) -> Option<&Tensor> {
        match self {
            Source::Unit { log_scale, .. } => log_scale.as_ref(),
            _ => None,
        }
    }

    /// The trained tensors of the magnetisation itself (network weights or `v`).
    pub(crate) fn parameters(&self) -> Vec<Tensor> {
        match self {
            Source::Tanh { net, .. } | Source::Direction { net, .. } => net.parameters(),
            Source::Unit { v, .. } => match v {
                UnitParam::Direct(v) => vec![v.clone()],
                UnitParam::Network { net, .. } => net.parameters(),
            },
        }
    }
}

/// The energy prior in the loss: `lambda 1e3 E / scale` next to the data's chi^2 per pixel.
pub(crate) struct Prior {
    pub(crate) energy: Energy,
    pub(crate) lambda: f64,
}

/// The whole objective.
pub(crate) struct NvObjective<'a> {
    pub(crate) source: Source,
    pub(crate) fwd: NvForward,
    pub(crate) data: &'a Data,
    /// Deprojected target (1, 3, h, w) when the loss compares the field components.
    pub(crate) deprojected: Option<Tensor>,
    pub(crate) kind: NvTarget,
    /// The trained standoff (nm), when fitted.
    pub(crate) standoff_nm: Option<Tensor>,
    /// The trained NV axis angles (2,) in radians, when fitted.
    pub(crate) axis: Option<Tensor>,
    pub(crate) prior: Option<Prior>,
    /// `1 / sigma^2` (1/T^2) when the loss is a chi^2 (with the prior).
    pub(crate) inv_var: Option<f64>,
    /// A magnetisation (1, C, h, w) to approach instead of the data (the initial guess from
    /// the classical inversion): while set, the loss is `mean((M - target)^2) / scale^2`.
    pub(crate) pretrain: Option<(Tensor, f32)>,
}

impl NvObjective<'_> {
    /// Where [`Objective::evaluate`] puts each reported scalar: `[power, misfit]`, then the
    /// energy, the standoff (nm), the NV axis (2, rad), the direction (2, rad), the log-scale.
    pub(crate) fn layout(&self) -> Layout {
        let mut next = 2;
        let mut slot = |present: bool, n: usize| {
            present.then(|| {
                next += n;
                next - n
            })
        };
        Layout {
            energy: slot(self.prior.is_some(), 1),
            standoff: slot(self.standoff_nm.is_some(), 1),
            axis: slot(self.axis.is_some(), 2),
            direction: slot(self.source.angles().is_some(), 2),
            log_scale: slot(self.source.log_scale().is_some(), 1),
        }
    }

    /// The modelled B_NV (1, 1, h, w) of a magnetisation, tracked.
    pub(crate) fn bnv(&self, m: &Tensor) -> Result<Tensor> {
        let standoff = self
            .standoff_nm
            .as_ref()
            .map(|d| d.scale(1e-9))
            .transpose()?;
        match (&self.axis, &standoff) {
            (None, None) => self.fwd.bnv(m),
            (None, Some(d)) => self.fwd.bnv_with_standoff(m, d),
            (Some(a), d) => {
                let b = match d {
                    Some(d) => self.fwd.field_with_standoff(m, d)?,
                    None => self.fwd.field(m)?,
                };
                b.mul(&unit_from_angles(a)?)?.sum_axes(&[1], true)
            }
        }
    }
}

impl Objective for NvObjective<'_> {
    /// Reports: the model's signal power (T^2), the data misfit (T^2, mean over the valid
    /// pixels, background projected out), then what [`NvObjective::layout`] lists; keeps: M,
    /// the model B_NV with its background, the model without it.
    fn evaluate(&mut self, _: usize) -> Result<Evaluation> {
        let (h, w) = (self.data.h, self.data.w);
        let (m, unit) = self.source.magnetisation(h, w)?;
        let bnv = self.bnv(&m)?;
        let (misfit, full) = self.data.loss(&bnv)?;
        let data_loss = match (self.kind, &self.deprojected) {
            (NvTarget::Deprojected, Some(t)) => self.fwd.field(&m)?.mse_loss(t)?,
            _ => misfit.clone(),
        };
        let mut report = vec![bnv.detach().square()?.mean_all()?, misfit.detach()];
        let loss = match (&self.prior, self.inv_var) {
            (Some(p), Some(iv)) => {
                let unit = unit.as_ref().ok_or_else(|| {
                    Error::arg("nv reconstruct", "the energy prior needs unit vectors")
                })?;
                let e = p.energy.energy(unit)?;
                report.push(e.detach());
                data_loss
                    .scale(iv as f32)?
                    .add(&e.scale((p.lambda * 1e3 / p.energy.scale()) as f32)?)?
            }
            _ => data_loss,
        };
        let loss = match &self.pretrain {
            Some((t, scale)) => m
                .sub(t)?
                .square()?
                .mean_all()?
                .scale(1.0 / (scale * scale))?,
            None => loss,
        };
        if let Some(d) = &self.standoff_nm {
            report.push(d.detach());
        }
        for a in self.axis.iter().chain(self.source.angles()) {
            report.push(a.detach().narrow(0, 0, 1)?);
            report.push(a.detach().narrow(0, 1, 1)?);
        }
        if let Some(s) = self.source.log_scale() {
            report.push(s.detach());
        }
        Ok(Evaluation {
            loss,
            validation: None,
            report,
            state: vec![m.detach(), full, bnv.detach()],
        })
    }

    /// The standoff stays >= 0 (clamped where it lives: no readback).
    fn after_step(&mut self, _: usize) -> Result<()> {
        if let Some(d) = &self.standoff_nm {
            d.assign(&no_grad(|| d.detach().leaky_relu(0.0))?)?;
        }
        Ok(())
    }
}
