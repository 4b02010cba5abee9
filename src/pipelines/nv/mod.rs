//! NV reconstructions (SPEC sections 3 and 9) on the shared fitting loop (`fit/`), which returns
//! the lowest-loss state. Three models of the magnetisation:
//!
//! - [`NvModel::Tanh`], the paper's NV-DIP: a CAE maps fixed noise to `M = Ms tanh(net(z))
//!   mask`;
//! - [`NvModel::Direction`]: `M = Ms tanh(net(z)) support u` with one direction `u` given or
//!   fitted (uniformly magnetised flakes, out-of-plane films);
//! - [`NvModel::Energy`]: `|M| = Ms` in the support and a micromagnetic energy prior in the loss
//!   (`physics::nv::energy`), its weight chosen by the discrepancy principle, from several
//!   starts.
//!
//! Every model shares the data term of `data.rs` (background offset / plane projected out,
//! dropouts left out), the nuisances trained with it (standoff, NV axis), and the report of
//! `diagnose.rs`: the residual against the noise floor, the warnings, and the null-space test
//! that says whether the data determine the circulation sense.

pub(crate) mod data;
pub(crate) mod diagnose;
mod energy_fit;
mod ensemble;
pub(crate) mod objective;
mod scan;

pub use data::{Background, BackgroundFit};
pub use diagnose::{Circulation, NvDiagnostics};
pub use energy_fit::{EnergyConfig, EnergyReport, Start, StartOutcome, UnitParametrisation};
pub use ensemble::{reconstruct_ensemble, NvEnsemble};
pub use scan::{support_from_spec, support_scan, DirectionScan, SupportFrom, SupportScan};

use crate::engine::device::Device;
use crate::engine::tensor::Tensor;
use crate::error::{Error, Result};
use crate::fit::{Fit, Iteration, Selection, StopReason};
use crate::nn::{Cae, CaeConfig};
use crate::optim::{AdamW, ReduceLrOnPlateau};
use crate::physics::nv::deproject::deproject;
use crate::physics::nv::forward::{NvForward, NvGeometry};
use crate::physics::nv::mask::Mask;
use crate::physics::nv::metrics::{nv_metrics, NvMetrics};
use crate::physics::nv::noise::noise_floor;
use crate::rng::Rng;
use data::Data;
use objective::{NvObjective, Prior, Source};

/// What the loss compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NvTarget {
    /// `mean((B_NV,model - B_NV,meas)^2)` (paper Eq. 7 with a mean).
    Bnv,
    /// Mean over (Bx, By, Bz) of the squared difference to the deprojected measurement (the
    /// tanh model only, without background or dropouts).
    Deprojected,
}

/// The magnetisation direction of [`NvModel::Direction`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DirectionSpec {
    /// Fixed: polar angle from the sample normal and azimuth from +x (degrees).
    Given {
        /// Polar angle (deg).
        theta_deg: f64,
        /// Azimuth (deg).
        phi_deg: f64,
    },
    /// Trained with the magnetisation, starting from `start` or, without one, from the best
    /// direction of a scan of classical inversions ([`DirectionScan`]).
    Fit {
        /// Start (theta, phi) in degrees.
        start: Option<(f64, f64)>,
    },
}

/// How the magnetisation is modelled.
#[derive(Clone, Debug, PartialEq)]
pub enum NvModel {
    /// `M = Ms tanh(net(z)) mask` (the paper's NV-DIP; the mask's 2 or 3 channels).
    Tanh,
    /// `M = Ms tanh(net(z)) support u`.
    Direction(DirectionSpec),
    /// `|M| = Ms` in the support, with the micromagnetic energy prior.
    Energy(EnergyConfig),
}

/// Settings of a reconstruction. `Default` gives the paper's Landau example.
#[derive(Clone, Debug)]
pub struct NvReconConfig {
    /// Geometry of the measurement.
    pub geom: NvGeometry,
    /// Saturation magnetisation (A/m): the output's bound (tanh, direction) or its magnitude
    /// (energy).
    pub ms: f64,
    /// Choose Ms from the data instead ([`DirectionScan::ms_estimate`]; the energy model then
    /// also fits it as a scale).
    pub ms_auto: bool,
    /// Iterations (the energy model's main phase; its starts run [`EnergyConfig::start_iters`]
    /// each before).
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
    /// The magnetisation model.
    pub model: NvModel,
    /// The background fitted with the magnetisation.
    pub background: Background,
    /// Leave non-finite pixels (scan dropouts) out of the loss instead of refusing them.
    pub ignore_nan: bool,
    /// The noise level of the map (T); `None`: estimated from it (`noise_floor`).
    pub noise: Option<f64>,
    /// Weight the data term and chi^2 by a per-pixel noise map estimated from the map
    /// ([`noise_map`](crate::physics::nv::noise::noise_map), 31-px windows): for maps whose noise
    /// is not stationary. Excludes `noise`.
    pub noise_map: bool,
    /// Train the standoff as a scalar (own Adam, lr in nm per step).
    pub fit_standoff: bool,
    /// Learning rate of the standoff (nm).
    pub standoff_lr: f64,
    /// Train the NV axis angles too (own Adam).
    pub fit_axis: bool,
    /// Learning rate of the NV axis and of a fitted magnetisation direction (degrees).
    pub angle_lr_deg: f64,
    /// ReduceLROnPlateau factor, patience, relative threshold.
    pub plateau: (f64, usize, f64),
    /// Where the network, the forward model and the optimiser run. On the GPU everything stays
    /// on the device during the loop; one small readback per iteration.
    pub device: Device,
}

impl Default for NvReconConfig {
    fn default() -> Self {
        NvReconConfig {
            geom: NvGeometry::default(),
            ms: 8.6e5,
            ms_auto: false,
            iters: 4000,
            lr: 7.5e-4,
            weight_decay: 0.01,
            seed: 0,
            channels: vec![16, 32],
            kernel: 5,
            target: NvTarget::Bnv,
            model: NvModel::Tanh,
            background: Background::None,
            ignore_nan: false,
            noise: None,
            noise_map: false,
            fit_standoff: false,
            standoff_lr: 0.2,
            fit_axis: false,
            angle_lr_deg: 0.5,
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
        if !(self.angle_lr_deg.is_finite() && self.angle_lr_deg > 0.0) {
            return Err(Error::arg(OP, "the angle learning rate must be positive"));
        }
        if let Background::Poly(d) = self.background {
            if !(1..=10).contains(&d) {
                return Err(Error::arg(
                    OP,
                    format!("the background polynomial's degree must be 1 to 10, got {d}"),
                ));
            }
        }
        if self.noise_map && self.noise.is_some() {
            return Err(Error::arg(
                OP,
                "a given noise level and a noise map exclude each other",
            ));
        }
        if let Some(s) = self.noise {
            if !(s.is_finite() && s > 0.0) {
                return Err(Error::arg(OP, format!("noise must be positive, got {s}")));
            }
        }
        if self.target == NvTarget::Deprojected {
            if self.model != NvModel::Tanh {
                return Err(Error::arg(
                    OP,
                    "the deprojected target works with the tanh model only",
                ));
            }
            if self.background != Background::None || self.ignore_nan || self.fit_axis {
                return Err(Error::arg(
                    OP,
                    "the deprojected target cannot fit a background, leave out dropouts or fit the NV axis: use the B_NV target",
                ));
            }
        }
        if let NvModel::Energy(e) = &self.model {
            e.validate()?;
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
    /// Loss (T^2; with the energy prior chi^2 per pixel plus the weighted energy).
    pub loss: f64,
    /// The data misfit: mean squared B_NV residual over the valid pixels, background removed
    /// (T^2).
    pub misfit: f64,
    /// The energy (J) with the prior, NaN without.
    pub energy: f64,
    /// Learning rate used.
    pub lr: f64,
    /// `10 log10(mean(model^2) / misfit)` in dB.
    pub snr_db: f64,
    /// Seconds since the start of this fit.
    pub seconds: f64,
    /// Standoff (m) used in this iteration.
    pub standoff: f64,
}

/// The outcome of [`reconstruct`].
#[derive(Clone, Debug)]
pub struct NvResult {
    /// (3, H, W) A/m (Mz zero unless modelled).
    pub magnetization: Vec<f32>,
    /// Modelled B_NV (H, W) T, the fitted background included.
    pub bnv_model: Vec<f32>,
    /// Per-iteration log (the energy model: its main phase).
    pub history: Vec<IterStats>,
    /// Final metrics of the returned state (over all pixels; dropouts count as 0 residual).
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
    /// Ms used (A/m): given, estimated (`ms_auto`), or fitted (energy model with `ms_auto`).
    pub ms: f64,
    /// The fitted background.
    pub background: BackgroundFit,
    /// The magnetisation direction (theta, phi) in degrees of the direction model, given or
    /// fitted; sign chosen so that the amplitude is mostly positive.
    pub direction: Option<(f64, f64)>,
    /// The NV axis (theta, phi) in degrees when fitted.
    pub nv_axis: Option<(f64, f64)>,
    /// The scan of classical inversions, when one ran (direction start, `ms_auto`).
    pub scan: Option<DirectionScan>,
    /// The energy model's starts, weight and energy.
    pub energy: Option<EnergyReport>,
    /// Residual against the noise floor, warnings, the null-space test, the standoff's
    /// uncertainty.
    pub diagnostics: NvDiagnostics,
    /// The per-pixel noise map (T, (h, w)) when one weighted the fit.
    pub noise_map: Option<Vec<f32>>,
}

/// Which scalars an objective reports after `[power, misfit]`, and where.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Layout {
    pub(crate) energy: Option<usize>,
    pub(crate) standoff: Option<usize>,
    pub(crate) axis: Option<usize>,
    pub(crate) direction: Option<usize>,
    pub(crate) log_scale: Option<usize>,
}

impl IterStats {
    pub(crate) fn from_fit(it: &Iteration, layout: &Layout, fixed_standoff: f64) -> IterStats {
        let r = |i: Option<usize>| i.and_then(|i| it.report.get(i)).copied();
        let power = r(Some(0)).unwrap_or(f64::NAN);
        let misfit = r(Some(1)).unwrap_or(f64::NAN);
        IterStats {
            iter: it.iter,
            loss: it.loss,
            misfit,
            energy: r(layout.energy).unwrap_or(f64::NAN),
            lr: it.lr,
            snr_db: 10.0 * (power / misfit).log10(),
            seconds: it.seconds,
            standoff: r(layout.standoff).map_or(fixed_standoff, |d| d * 1e-9),
        }
    }
}

/// What every model's run gives back for the report.
pub(crate) struct RunOutcome {
    pub(crate) magnetization: Vec<f32>,
    /// B_NV with the background.
    pub(crate) model: Vec<f32>,
    /// B_NV of the magnetisation alone.
    pub(crate) raw_model: Vec<f32>,
    pub(crate) history: Vec<IterStats>,
    pub(crate) stop: StopReason,
    pub(crate) selected: Iteration,
    pub(crate) layout: Layout,
    pub(crate) ms: f64,
    pub(crate) energy: Option<EnergyReport>,
}

/// What the models share while they are built: the data, the geometry, the support.
pub(crate) struct Setup<'a> {
    pub(crate) cfg: &'a NvReconConfig,
    pub(crate) data: &'a Data,
    pub(crate) support: Vec<f32>,
    pub(crate) sigma: f64,
    pub(crate) ms: f64,
    pub(crate) hw_net: (usize, usize),
}

impl Setup<'_> {
    /// The objective for a source, with the nuisances of the configuration.
    pub(crate) fn objective(
        &self,
        source: Source,
        prior: Option<Prior>,
    ) -> Result<NvObjective<'_>> {
        let cfg = self.cfg;
        let dev = cfg.device;
        let (h, w) = (self.data.h, self.data.w);
        let standoff_nm = cfg
            .fit_standoff
            .then(|| -> Result<Tensor> {
                let d = Tensor::scalar((cfg.geom.standoff * 1e9) as f32).requires_grad();
                d.move_to(dev)?;
                Ok(d)
            })
            .transpose()?;
        let axis = cfg
            .fit_axis
            .then(|| -> Result<Tensor> {
                let a = Tensor::from_shape_vec(
                    &[2],
                    vec![
                        cfg.geom.theta_deg.to_radians() as f32,
                        cfg.geom.phi_deg.to_radians() as f32,
                    ],
                )?
                .requires_grad();
                a.move_to(dev)?;
                Ok(a)
            })
            .transpose()?;
        let deprojected = match cfg.target {
            NvTarget::Bnv => None,
            NvTarget::Deprojected => {
                let dp = deproject(&self.data.host, h, w, &cfg.geom, None)?;
                Some(Tensor::from_shape_vec(&[1, 3, h, w], dp.field)?.to_device(dev)?)
            }
        };
        let inv_var = prior.as_ref().map(|_| 1.0 / (self.sigma * self.sigma));
        Ok(NvObjective {
            source,
            fwd: NvForward::new(h, w, &cfg.geom)?,
            data: self.data,
            deprojected,
            kind: cfg.target,
            standoff_nm,
            axis,
            prior,
            inv_var,
            pretrain: None,
        })
    }

    /// The optimisers: the source's parameters at `lr`, then each trained nuisance.
    pub(crate) fn optimisers(&self, obj: &NvObjective, lr: f64, weight_decay: f64) -> Vec<AdamW> {
        let cfg = self.cfg;
        let mut v = vec![AdamW::new(obj.source.parameters(), lr).with_weight_decay(weight_decay)];
        if let Some(d) = &obj.standoff_nm {
            v.push(AdamW::new(vec![d.clone()], cfg.standoff_lr).with_weight_decay(0.0));
        }
        let angles = obj.axis.iter().chain(obj.source.angles());
        for a in angles {
            v.push(
                AdamW::new(vec![a.clone()], cfg.angle_lr_deg.to_radians()).with_weight_decay(0.0),
            );
        }
        if let Some(s) = obj.source.log_scale() {
            v.push(AdamW::new(vec![s.clone()], 0.01).with_weight_decay(0.0));
        }
        v
    }

    /// Runs `iters` iterations of one objective; the state of the lowest loss is kept.
    pub(crate) fn fit(
        &self,
        obj: &mut NvObjective,
        opts: &mut [AdamW],
        iters: usize,
        observer: &mut dyn FnMut(&IterStats) -> bool,
    ) -> Result<FitOutcome> {
        let layout = obj.layout();
        let cfg = self.cfg;
        let mut sched = ReduceLrOnPlateau::new(cfg.plateau.0, cfg.plateau.1, cfg.plateau.2);
        let mut refs: Vec<&mut AdamW> = opts.iter_mut().collect();
        let mut fit = Fit::new(Selection::LowestLoss { after: 0 });
        let stop = fit.run(iters, obj, &mut refs, Some(&mut sched), &mut |it| {
            observer(&IterStats::from_fit(it, &layout, cfg.geom.standoff))
        })?;
        let (history, selected) = fit.finish();
        let sel = selected.ok_or_else(|| {
            Error::arg(
                "nv reconstruct",
                "the loss was not finite at the first iteration: nothing to keep",
            )
        })?;
        Ok(FitOutcome {
            history: history
                .iter()
                .map(|it| IterStats::from_fit(it, &layout, cfg.geom.standoff))
                .collect(),
            stop,
            magnetization: sel.state[0].clone(),
            model: sel.state[1].clone(),
            raw_model: sel.state[2].clone(),
            selected: sel.stats,
            layout,
        })
    }
}

/// One fit's kept state.
pub(crate) struct FitOutcome {
    pub(crate) history: Vec<IterStats>,
    pub(crate) stop: StopReason,
    /// (1, C, h, w) on the device.
    pub(crate) magnetization: Tensor,
    /// (1, 1, h, w) with the background, on the device.
    pub(crate) model: Tensor,
    /// (1, 1, h, w) without it.
    pub(crate) raw_model: Tensor,
    pub(crate) selected: Iteration,
    pub(crate) layout: Layout,
}

impl FitOutcome {
    /// The magnetisation (3, h, w), the model and the model without background (h, w) on the
    /// host.
    pub(crate) fn host(&self, hw: usize) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
        let mut m = self.magnetization.to_vec()?;
        m.resize(3 * hw, 0.0);
        Ok((m, self.model.to_vec()?, self.raw_model.to_vec()?))
    }
}

/// Window (pixels) of the noise map.
const NOISE_WINDOW: usize = 31;

/// Iterations in which the direction model's network learns the classical inversion before it
/// sees the data.
const PRETRAIN_ITERS: usize = 200;

/// The tanh and direction models: one network, one fit.
fn run_dip(
    setup: &Setup,
    mask: &Mask,
    direction: Option<(f64, f64, bool)>,
    observer: &mut dyn FnMut(&IterStats) -> bool,
) -> Result<RunOutcome> {
    let cfg = setup.cfg;
    let dev = cfg.device;
    let (h, w) = (setup.data.h, setup.data.w);
    let (hp, wp) = setup.hw_net;
    let mut rng = Rng::new(cfg.seed);
    // Everything is created on the CPU (same seeds, same values) and then moved to the device.
    let c = if direction.is_some() {
        1
    } else {
        mask.channels
    };
    let net = Cae::new(&cfg.network(c), &mut rng)?;
    net.to_device(dev)?;
    let z = Tensor::randn(&[1, 1, hp, wp], &mut rng).to_device(dev)?;
    let ms = setup.ms as f32;
    let source = match direction {
        None => {
            let scaled: Vec<f32> = mask.data.iter().map(|v| v * ms).collect();
            Source::Tanh {
                net,
                z,
                mask: Tensor::from_shape_vec(&[1, mask.channels, h, w], scaled)?.to_device(dev)?,
            }
        }
        Some((theta, phi, trained)) => {
            let sup: Vec<f32> = setup.support.iter().map(|v| v * ms).collect();
            let mut angles = Tensor::from_shape_vec(
                &[2],
                vec![theta.to_radians() as f32, phi.to_radians() as f32],
            )?;
            if trained {
                angles = angles.requires_grad();
            }
            angles.move_to(dev)?;
            Source::Direction {
                net,
                z,
                support: Tensor::from_shape_vec(&[1, 1, h, w], sup)?.to_device(dev)?,
                angles,
            }
        }
    };
    let mut obj = setup.objective(source, None)?;
    // the direction model starts from the classical inversion along its direction: the
    // network first learns that map (PRETRAIN_ITERS, not in the history), then the data
    if let (Some((theta, phi, _)), NvTarget::Bnv) = (direction, cfg.target) {
        let u = crate::physics::nv::invert::direction_from_angles(theta, phi);
        let lim = 0.95 * setup.ms;
        let amp: Vec<f32> = scan::inversion_along(setup.data, &cfg.geom, u)?
            .iter()
            .zip(&setup.support)
            .map(|(&a, &s)| (a as f64).clamp(-lim, lim) as f32 * s)
            .collect();
        let target = scan::along(u, &amp);
        let t = Tensor::from_shape_vec(&[1, 3, h, w], target)?.to_device(dev)?;
        obj.pretrain = Some((t, ms));
        let mut opts = setup.optimisers(&obj, cfg.lr * 4.0, 0.0);
        setup.fit(&mut obj, &mut opts, PRETRAIN_ITERS, &mut |_| true)?;
        obj.pretrain = None;
    }
    let mut opts = setup.optimisers(&obj, cfg.lr, cfg.weight_decay);
    let out = setup.fit(&mut obj, &mut opts, cfg.iters, observer)?;
    let (magnetization, model, raw_model) = out.host(h * w)?;
    Ok(RunOutcome {
        magnetization,
        model,
        raw_model,
        history: out.history,
        stop: out.stop,
        selected: out.selected,
        layout: out.layout,
        ms: setup.ms,
        energy: None,
    })
}

/// Folds a direction (deg) so that theta is in [0, 180] and phi in [0, 360).
fn fold_angles(theta: f64, phi: f64) -> (f64, f64) {
    let u = crate::physics::nv::invert::direction_from_angles(theta, phi);
    let t = u[2].clamp(-1.0, 1.0).acos().to_degrees();
    let p = if u[0].hypot(u[1]) < 1e-9 {
        0.0
    } else {
        u[1].atan2(u[0]).to_degrees().rem_euclid(360.0)
    };
    (t, p)
}

/// Reconstructs M from a measured B_NV map `(h, w)` (tesla, row-major) with a mask of 2 or 3
/// channels (the direction and energy models use only its support). `observer` sees every
/// iteration and returns `false` to stop early.
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
    // a per-pixel noise map (its median the reference level, the weights sigma_ref / sigma)
    let noise_map = if cfg.noise_map {
        let finite: Vec<bool> = bnv.iter().map(|v| v.is_finite()).collect();
        let m = crate::physics::nv::noise::noise_map(bnv, h, w, Some(&finite), NOISE_WINDOW)?;
        let mut sorted = m.clone();
        sorted.sort_by(|a, b| a.total_cmp(b));
        let reference = sorted[sorted.len() / 2];
        Some((m, reference))
    } else {
        None
    };
    let weights: Option<Vec<f64>> = noise_map
        .as_ref()
        .map(|(m, r)| m.iter().map(|s| r / s).collect());
    let data = Data::new(
        bnv,
        h,
        w,
        cfg.geom.pixel,
        cfg.background,
        cfg.ignore_nan,
        weights.as_deref(),
        cfg.device,
    )?;
    let support: Vec<f32> = mask.support().iter().map(|&b| b as u8 as f32).collect();
    if support.iter().all(|&s| s == 0.0) {
        return Err(Error::arg(OP, "the support is empty"));
    }
    let mut notes = Vec::new();
    let sigma = match (cfg.noise, &noise_map) {
        (_, Some((m, reference))) => {
            let (lo, hi) = m
                .iter()
                .fold((f64::INFINITY, 0f64), |(a, b), &v| (a.min(v), b.max(v)));
            notes.push(format!(
                "noise map ({NOISE_WINDOW}-px windows): {:.3e} to {:.3e} T, median {:.3e} T; the data term and chi^2 are weighted by it",
                lo, hi, reference
            ));
            diagnose::usable_sigma(*reference, &data, &mut notes)
        }
        (Some(s), None) => s,
        (None, None) => {
            let nf = noise_floor(bnv, h, w, Some(&data.valid_host))?;
            diagnose::usable_sigma(nf.sigma, &data, &mut notes)
        }
    };
    let d = cfg.network(2).divisor();
    let hw_net = (h.div_ceil(d) * d, w.div_ceil(d) * d);
    // the scan of classical inversions: a direction to start from, an Ms from the data
    let direction_fit = matches!(
        cfg.model,
        NvModel::Direction(DirectionSpec::Fit { start: None })
    );
    let scan = if direction_fit || cfg.ms_auto {
        let fixed = match cfg.model {
            NvModel::Direction(DirectionSpec::Given { theta_deg, phi_deg }) => {
                Some((theta_deg, phi_deg))
            }
            NvModel::Direction(DirectionSpec::Fit { start: Some(s) }) => Some(s),
            _ => None,
        };
        Some(scan::scan(&data, &cfg.geom, &support, fixed)?)
    } else {
        None
    };
    let ms = match (&scan, cfg.ms_auto) {
        (Some(s), true) if s.m_p99.is_nan() || s.m_p99 <= 0.0 => {
            return Err(Error::arg(
                OP,
                "Ms cannot be chosen from the data: the classical inversion is zero inside the support; give Ms",
            ))
        }
        (Some(s), true) => {
            notes.push(format!(
                "Ms chosen from the data: {:.4e} A/m ({} x the 99th percentile of |M| of the classical inversion along theta {:.1}, phi {:.1} deg, inside the support)",
                s.ms_estimate,
                scan::MS_FACTOR,
                s.best.0,
                s.best.1
            ));
            s.ms_estimate
        }
        _ => cfg.ms,
    };
    let setup = Setup {
        cfg,
        data: &data,
        support,
        sigma,
        ms,
        hw_net,
    };
    let run = match &cfg.model {
        NvModel::Tanh => run_dip(&setup, mask, None, observer)?,
        NvModel::Direction(spec) => {
            let (t, p, trained) = match *spec {
                DirectionSpec::Given { theta_deg, phi_deg } => (theta_deg, phi_deg, false),
                DirectionSpec::Fit {
                    start: Some((t, p)),
                } => (t, p, true),
                DirectionSpec::Fit { start: None } => {
                    let s = scan.as_ref().map_or((45.0, 0.0), |s| s.best);
                    (s.0, s.1, true)
                }
            };
            run_dip(&setup, mask, Some((t, p, trained)), observer)?
        }
        NvModel::Energy(e) => energy_fit::run(&setup, e, observer)?,
    };
    let sel = &run.selected;
    let value = |i: Option<usize>| i.and_then(|i| sel.report.get(i)).copied();
    let standoff = value(run.layout.standoff).map_or(cfg.geom.standoff, |d| d * 1e-9);
    let nv_axis = run.layout.axis.and_then(|i| {
        Some(fold_angles(
            sel.report.get(i)?.to_degrees(),
            sel.report.get(i + 1)?.to_degrees(),
        ))
    });
    let direction = match &cfg.model {
        NvModel::Direction(spec) => {
            let (t, p) = match (run.layout.direction, *spec) {
                (Some(i), _) => (
                    value(Some(i)).unwrap_or(f64::NAN).to_degrees(),
                    value(Some(i + 1)).unwrap_or(f64::NAN).to_degrees(),
                ),
                (None, DirectionSpec::Given { theta_deg, phi_deg }) => (theta_deg, phi_deg),
                (None, _) => (f64::NAN, f64::NAN),
            };
            // the sign: the amplitude mostly positive
            let u = crate::physics::nv::invert::direction_from_angles(t, p);
            let hw = h * w;
            let mean: f64 = (0..hw)
                .map(|i| {
                    (0..3)
                        .map(|c| run.magnetization[c * hw + i] as f64 * u[c])
                        .sum::<f64>()
                })
                .sum();
            Some(if mean < 0.0 {
                fold_angles(180.0 - t, p + 180.0)
            } else {
                fold_angles(t, p)
            })
        }
        _ => None,
    };
    let (_, background) = data.complete_host(&run.raw_model);
    let mut geom = cfg.geom.clone();
    geom.standoff = standoff;
    if let Some((t, p)) = nv_axis {
        geom.theta_deg = t;
        geom.phi_deg = p;
    }
    let diagnostics = diagnose::diagnose(&data, &geom, &run, &setup, &cfg.model, mask, notes)?;
    let metrics = nv_metrics(
        &run.model,
        &data.filled(&run.model),
        &run.magnetization,
        &mask.support(),
    );
    Ok(NvResult {
        magnetization: run.magnetization,
        bnv_model: run.model,
        history: run.history,
        metrics,
        standoff,
        stop: run.stop,
        network_size: hw_net,
        selected_iteration: sel.iter,
        ms: run.ms,
        background,
        direction,
        nv_axis,
        scan,
        energy: run.energy,
        diagnostics,
        noise_map: noise_map.map(|(m, _)| m.into_iter().map(|v| v as f32).collect()),
    })
}
