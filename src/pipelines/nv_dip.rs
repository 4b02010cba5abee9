//! NV-DIP (SPEC section 3): a CAE maps fixed noise to `M = Ms tanh(net(z)) mask`, pushed
//! through the forward model; AdamW + ReduceLROnPlateau fit the measured B_NV, on the shared
//! fitting loop (`fit/`), which returns the lowest-loss state.

use crate::engine::device::Device;
use crate::engine::tensor::Tensor;
use crate::error::{Error, Result};
use crate::fit::{Evaluation, Fit, Iteration, Objective, Selection, StopReason};
use crate::nn::{Cae, CaeConfig};
use crate::optim::{AdamW, ReduceLrOnPlateau};
use crate::physics::nv::deproject::deproject;
use crate::physics::nv::forward::{NvForward, NvGeometry};
use crate::physics::nv::mask::Mask;
use crate::physics::nv::metrics::{nv_metrics, NvMetrics};
use crate::rng::Rng;

/// What the loss compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NvTarget {
    /// `mean((B_NV,model - B_NV,meas)^2)` (paper Eq. 7 with a mean).
    Bnv,
    /// Mean over (Bx, By, Bz) of the squared difference to the deprojected measurement.
    Deprojected,
}

/// Settings of a reconstruction. `Default` gives the paper's Landau example.
#[derive(Clone, Debug)]
pub struct NvReconConfig {
    /// Geometry of the measurement.
    pub geom: NvGeometry,
    /// Saturation magnetisation (A/m).
    pub ms: f64,
    /// Iterations.
    pub iters: usize,
    /// AdamW learning rate (7.5e-4 Landau, 1e-4 dipole in the paper).
    pub lr: f64,
    /// AdamW weight decay.
    pub weight_decay: f64,
    /// Seeds the weights, then the noise input.
    pub seed: u64,
    /// Encoder channels per level.
    pub channels: Vec<usize>,
    /// Convolution kernel size.
    pub kernel: usize,
    /// Loss target.
    pub target: NvTarget,
    /// Train the standoff as a scalar (own Adam, lr in nm per step).
    pub fit_standoff: bool,
    /// Learning rate of the standoff (nm).
    pub standoff_lr: f64,
    /// ReduceLROnPlateau factor, patience, relative threshold.
    pub plateau: (f64, usize, f64),
    /// Where the network, the forward model and the optimiser run. On the GPU everything stays
    /// on the device during the loop; one small readback per iteration (loss and signal power).
    pub device: Device,
}

impl Default for NvReconConfig {
    fn default() -> Self {
        NvReconConfig {
            geom: NvGeometry::default(),
            ms: 8.6e5,
            iters: 4000,
            lr: 7.5e-4,
            weight_decay: 0.01,
            seed: 0,
            channels: vec![16, 32],
            kernel: 5,
            target: NvTarget::Bnv,
            fit_standoff: false,
            standoff_lr: 0.2,
            plateau: (0.75, 150, 1e-9),
            device: Device::Cpu,
        }
    }
}

impl NvReconConfig {
    /// Checks every setting; the error names the setting.
    pub fn validate(&self) -> Result<()> {
        const OP: &str = "nv reconstruct";
        self.geom.validate()?;
        if self.iters == 0 {
            return Err(Error::arg(OP, "iterations must be at least 1"));
        }
        for (name, v) in [("ms", self.ms), ("lr", self.lr)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::arg(OP, format!("{name} must be positive, got {v}")));
            }
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(Error::arg(OP, "weight decay must be >= 0"));
        }
        if self.fit_standoff && !(self.standoff_lr.is_finite() && self.standoff_lr > 0.0) {
            return Err(Error::arg(
                OP,
                "the standoff learning rate must be positive",
            ));
        }
        self.network(2).validate()
    }

    fn network(&self, out_ch: usize) -> CaeConfig {
        CaeConfig {
            in_ch: 1,
            out_ch,
            channels: self.channels.clone(),
            kernel: self.kernel,
        }
    }
}

/// One iteration's numbers, as logged to `loss.csv`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IterStats {
    /// 1-based iteration.
    pub iter: usize,
    /// Loss (T^2).
    pub loss: f64,
    /// Learning rate used.
    pub lr: f64,
    /// `10 log10(mean(model^2) / MSE)` in dB.
    pub snr_db: f64,
    /// Seconds since the start.
    pub seconds: f64,
    /// Standoff (m) used in this iteration.
    pub standoff: f64,
}

/// The outcome of [`reconstruct`].
#[derive(Clone, Debug)]
pub struct NvResult {
    /// (3, H, W) A/m (Mz zero unless fitted).
    pub magnetization: Vec<f32>,
    /// Modelled B_NV (H, W) T.
    pub bnv_model: Vec<f32>,
    /// Per-iteration log.
    pub history: Vec<IterStats>,
    /// Final metrics of the returned state.
    pub metrics: NvMetrics,
    /// Standoff of the returned state (m).
    pub standoff: f64,
    /// How the run ended.
    pub stop: StopReason,
    /// Size the network ran at when the image had to be padded for it.
    pub network_size: (usize, usize),
    /// Iteration whose state is returned: the one with the lowest loss (Adam at a constant
    /// learning rate makes occasional loss spikes; the last iterate may sit on one).
    pub selected_iteration: usize,
}

/// The NV-DIP objective: `M = tanh(net(z))` cropped, times the scaled mask, through the model.
struct Dip<'a> {
    net: &'a Cae,
    z: Tensor,
    mask: Tensor,
    fwd: NvForward,
    target: Tensor,
    meas: Tensor,
    kind: NvTarget,
    /// The trained standoff (nm), when fitted.
    standoff_nm: Option<Tensor>,
    hw: (usize, usize),
}

impl Objective for Dip<'_> {
    /// Reports: the model's signal power, the standoff (nm) when fitted, and with the
    /// deprojected target the B_NV mse; keeps: M, the model B_NV.
    fn evaluate(&mut self, _: usize) -> Result<Evaluation> {
        let (h, w) = self.hw;
        let m = self
            .net
            .forward(&self.z)?
            .crop2d(0, h, 0, w)?
            .tanh()?
            .mul(&self.mask)?;
        let bnv = match &self.standoff_nm {
            Some(d) => self.fwd.bnv_with_standoff(&m, &d.scale(1e-9)?)?,
            None => self.fwd.bnv(&m)?,
        };
        let loss = match self.kind {
            NvTarget::Bnv => bnv.mse_loss(&self.target)?,
            NvTarget::Deprojected => self.fwd.field(&m)?.mse_loss(&self.target)?,
        };
        let model = bnv.detach();
        let mut report = vec![model.square()?.mean_all()?];
        if let Some(d) = &self.standoff_nm {
            report.push(d.detach());
        }
        if self.kind != NvTarget::Bnv {
            report.push(model.mse_loss(&self.meas)?);
        }
        Ok(Evaluation {
            loss,
            validation: None,
            report,
            state: vec![m.detach(), model],
        })
    }

    /// The standoff stays >= 0 (clamped where it lives: no readback).
    fn after_step(&mut self, _: usize) -> Result<()> {
        if let Some(d) = &self.standoff_nm {
            d.assign(&crate::engine::autograd::no_grad(|| {
                d.detach().leaky_relu(0.0)
            })?)?;
        }
        Ok(())
    }
}

impl IterStats {
    /// From the loop's numbers: reports `[power, (standoff nm if fitted), (B_NV mse if the
    /// target is deprojected)]`.
    fn from_fit(it: &Iteration, cfg: &NvReconConfig) -> IterStats {
        let mut r = it.report.iter().copied();
        let power = r.next().unwrap_or(f64::NAN);
        let standoff = if cfg.fit_standoff {
            r.next().unwrap_or(f64::NAN) * 1e-9
        } else {
            cfg.geom.standoff
        };
        let mse = match cfg.target {
            NvTarget::Bnv => it.loss,
            NvTarget::Deprojected => r.next().unwrap_or(f64::NAN),
        };
        IterStats {
            iter: it.iter,
            loss: it.loss,
            lr: it.lr,
            snr_db: 10.0 * (power / mse).log10(),
            seconds: it.seconds,
            standoff,
        }
    }
}

/// Reconstructs M from a measured B_NV map `(h, w)` (tesla, row-major) with a mask of 2 or 3
/// channels. `observer` sees every iteration and returns `false` to stop early.
///
/// Sides not divisible by 2^levels are handled by running the network on the next larger size
/// and cropping its output (reported in `NvResult::network_size`).
pub fn reconstruct(
    bnv: &[f32],
    h: usize,
    w: usize,
    mask: &Mask,
    cfg: &NvReconConfig,
    observer: &mut dyn FnMut(&IterStats) -> bool,
) -> Result<NvResult> {
    const OP: &str = "nv reconstruct";
    cfg.validate()?;
    if bnv.len() != h * w {
        return Err(Error::arg(OP, format!("{} values for {h}x{w}", bnv.len())));
    }
    if (mask.h, mask.w) != (h, w) || !(2..=3).contains(&mask.channels) {
        return Err(Error::arg(
            OP,
            format!(
                "mask is {}x{}x{}, data is {h}x{w}",
                mask.channels, mask.h, mask.w
            ),
        ));
    }
    if let Some(i) = bnv.iter().position(|v| !v.is_finite()) {
        return Err(Error::arg(
            OP,
            format!("non-finite B_NV value at pixel {i}"),
        ));
    }
    let c = mask.channels;
    let net_cfg = cfg.network(c);
    let d = net_cfg.divisor();
    let (hp, wp) = (h.div_ceil(d) * d, w.div_ceil(d) * d);
    let mut rng = Rng::new(cfg.seed);
    // Everything is created on the CPU (same seeds, same values) and then moved to the device.
    let dev = cfg.device;
    let net = Cae::new(&net_cfg, &mut rng)?;
    net.to_device(dev)?;
    let z = Tensor::randn(&[1, 1, hp, wp], &mut rng).to_device(dev)?;
    let scaled_mask: Vec<f32> = mask.data.iter().map(|v| v * cfg.ms as f32).collect();
    let meas = Tensor::from_shape_vec(&[1, 1, h, w], bnv.to_vec())?.to_device(dev)?;
    let target = match cfg.target {
        NvTarget::Bnv => meas.clone(),
        NvTarget::Deprojected => {
            let dp = deproject(bnv, h, w, &cfg.geom, None)?;
            Tensor::from_shape_vec(&[1, 3, h, w], dp.field)?.to_device(dev)?
        }
    };
    let standoff_nm = Tensor::scalar((cfg.geom.standoff * 1e9) as f32).requires_grad();
    standoff_nm.move_to(dev)?;
    let mut obj = Dip {
        net: &net,
        z,
        mask: Tensor::from_shape_vec(&[1, c, h, w], scaled_mask)?.to_device(dev)?,
        fwd: NvForward::new(h, w, &cfg.geom)?,
        target,
        meas,
        kind: cfg.target,
        standoff_nm: cfg.fit_standoff.then(|| standoff_nm.clone()),
        hw: (h, w),
    };
    let mut opt = AdamW::new(net.parameters(), cfg.lr).with_weight_decay(cfg.weight_decay);
    let mut opt_d = AdamW::new(vec![standoff_nm], cfg.standoff_lr).with_weight_decay(0.0);
    let mut sched = ReduceLrOnPlateau::new(cfg.plateau.0, cfg.plateau.1, cfg.plateau.2);
    let mut opts: Vec<&mut AdamW> = vec![&mut opt];
    if cfg.fit_standoff {
        opts.push(&mut opt_d);
    }
    let mut fit = Fit::new(Selection::LowestLoss { after: 0 });
    let stop = fit.run(
        cfg.iters,
        &mut obj,
        &mut opts,
        Some(&mut sched),
        &mut |it| observer(&IterStats::from_fit(it, cfg)),
    )?;
    let (history, selected) = fit.finish();
    let sel = selected.ok_or_else(|| {
        Error::arg(
            OP,
            "the loss was not finite at the first iteration: nothing to keep",
        )
    })?;
    let mut mag = sel.state[0].to_vec()?;
    mag.resize(3 * h * w, 0.0);
    let model = sel.state[1].to_vec()?;
    let metrics = nv_metrics(&model, bnv, &mag, &mask.support());
    Ok(NvResult {
        magnetization: mag,
        bnv_model: model,
        history: history
            .iter()
            .map(|it| IterStats::from_fit(it, cfg))
            .collect(),
        metrics,
        standoff: IterStats::from_fit(&sel.stats, cfg).standoff,
        stop,
        network_size: (hp, wp),
        selected_iteration: sel.iter,
    })
}
