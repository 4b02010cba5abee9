//! The energy model: `|M| = Ms` in the support, the loss `chi^2 per pixel + lambda 1e3 E / E0`
//! (SPEC section 9; `E0 = (mu0/2) Ms^2 t p^2 N_support`), from several starts.
//!
//! 1. **Starts.** Each start (uniform states along four directions, vortices of either sense,
//!    a smooth random field, or a field of the caller's) runs [`EnergyConfig::start_iters`]
//!    iterations at the starting weight; the lowest objective wins and every start's objective,
//!    chi^2 and agreement with the winner are reported (flux-closure states have local minima
//!    the optimiser does not leave: starts matter).
//! 2. **Weight by the discrepancy principle.** The winner continues for the run's iterations in
//!    segments; after each, the weight moves so that chi^2 per pixel lands in
//!    [`EnergyConfig::chi2_band`] (factor 4 until bracketed, then geometric bisection). A
//!    given weight (`lambda`) runs one segment.

use super::objective::{Prior, Source, UnitParam};
use super::{IterStats, Layout, RunOutcome, Setup};
use crate::engine::autograd::no_grad;
use crate::engine::tensor::Tensor;
use crate::error::{Error, Result};
use crate::fit::StopReason;
use crate::nn::Cae;
use crate::physics::nv::energy::{Energy, EnergyParts, Material};
use crate::physics::nv::mask::gaussian_blur;
use crate::physics::nv::metrics::direction_cosine;
use crate::rng::Rng;

/// Where the unit vectors come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum UnitParametrisation {
    /// `m = v / |v|`, `v` trained directly (the energy prior alone regularises).
    #[default]
    Direct,
    /// `m = net(z) / |net(z)|`: the deep image prior and the energy prior together. Starts
    /// are then network seeds (the run's seed plus the start's index).
    Network,
}

/// A start of the energy model.
#[derive(Clone, Debug, PartialEq)]
pub enum Start {
    /// Uniform in-plane magnetisation at this azimuth (deg).
    Uniform {
        /// Azimuth from +x (deg).
        phi_deg: f64,
    },
    /// A vortex about the support's centroid: `m = s z x r^` with `s = +1` or `-1`.
    Vortex {
        /// `true`: `s = +1` (counter-clockwise with x right and y up).
        positive: bool,
    },
    /// Two vortices of opposite sense side by side along the support's longer axis (centres
    /// at a quarter of its extent from either end): the diamond / seven-domain family of
    /// rectangles. `positive`: the first (left or upper) one has `s = +1`.
    VortexPair {
        /// The first vortex's sense.
        positive: bool,
    },
    /// A smooth random field (Gaussian noise blurred over 3 pixels).
    Random {
        /// Seed of the field.
        seed: u64,
    },
    /// A field of the caller's (3, H, W), normalised inside the support.
    Field(Vec<f32>),
}

impl Start {
    /// A short name for reports.
    pub fn name(&self) -> String {
        match self {
            Start::Uniform { phi_deg } => format!("uniform {phi_deg:.0} deg"),
            Start::Vortex { positive } => {
                format!("vortex {}", if *positive { "+" } else { "-" })
            }
            Start::VortexPair { positive } => {
                format!("vortex pair {}", if *positive { "+-" } else { "-+" })
            }
            Start::Random { seed } => format!("random (seed {seed})"),
            Start::Field(_) => "given field".into(),
        }
    }

    /// The start's `v` (3, h, w) inside `support`.
    fn field(&self, h: usize, w: usize, support: &[f32]) -> Result<Vec<f32>> {
        let hw = h * w;
        let mut v = vec![0f32; 3 * hw];
        match self {
            Start::Uniform { phi_deg } => {
                let (s, c) = phi_deg.to_radians().sin_cos();
                for i in 0..hw {
                    v[i] = c as f32;
                    v[hw + i] = s as f32;
                }
            }
            Start::Vortex { positive } => {
                let (cx, cy) = centroid(h, w, support);
                let s = if *positive { 1.0 } else { -1.0 };
                vortex_into(&mut v, h, w, &[(cx, cy, s)]);
            }
            Start::VortexPair { positive } => {
                let (cx, cy) = centroid(h, w, support);
                let inside = (0..hw).filter(|&i| support[i] > 0.5);
                let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
                for i in inside {
                    let (x, y) = ((i % w) as f64, (i / w) as f64);
                    (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
                }
                let s = if *positive { 1.0 } else { -1.0 };
                let centres = if x1 - x0 >= y1 - y0 {
                    let d = (x1 - x0).max(0.0) / 4.0;
                    [(cx - d, cy, s), (cx + d, cy, -s)]
                } else {
                    let d = (y1 - y0).max(0.0) / 4.0;
                    [(cx, cy - d, s), (cx, cy + d, -s)]
                };
                vortex_into(&mut v, h, w, &centres);
            }
            Start::Random { seed } => {
                let mut rng = Rng::new(*seed);
                for c in 0..3 {
                    let noise: Vec<f32> = (0..hw).map(|_| rng.normal() as f32).collect();
                    v[c * hw..(c + 1) * hw].copy_from_slice(&gaussian_blur(&noise, h, w, 3.0));
                }
            }
            Start::Field(f) => {
                if f.len() != 3 * hw {
                    return Err(Error::arg(
                        "energy start",
                        format!("a start field needs 3 x {h} x {w} values, got {}", f.len()),
                    ));
                }
                v.copy_from_slice(f);
            }
        }
        Ok(v)
    }
}

/// The centroid (col, row) of a support.
fn centroid(h: usize, w: usize, support: &[f32]) -> (f64, f64) {
    let hw = h * w;
    let n: f64 = support.iter().map(|&s| s as f64).sum::<f64>().max(1.0);
    let cx = (0..hw)
        .map(|i| (i % w) as f64 * support[i] as f64)
        .sum::<f64>()
        / n;
    let cy = (0..hw)
        .map(|i| (i / w) as f64 * support[i] as f64)
        .sum::<f64>()
        / n;
    (cx, cy)
}

/// Writes vortices `(col, row, sense)` into `v` (3, h, w): each pixel circulates about its
/// nearest centre, `m = s z x r^`, with the core (within half a pixel) along +z.
fn vortex_into(v: &mut [f32], h: usize, w: usize, centres: &[(f64, f64, f64)]) {
    let hw = h * w;
    for i in 0..hw {
        let (x, y) = ((i % w) as f64, (i / w) as f64);
        let near = centres.iter().min_by(|a, b| {
            (x - a.0)
                .hypot(y - a.1)
                .total_cmp(&(x - b.0).hypot(y - b.1))
        });
        let Some(&(cx, cy, s)) = near else { return };
        let (dx, dy) = (x - cx, y - cy);
        let r = dx.hypot(dy);
        if r < 0.5 {
            v[2 * hw + i] = 1.0;
        } else {
            v[i] = (-s * dy / r) as f32;
            v[hw + i] = (s * dx / r) as f32;
        }
    }
}

/// Settings of the energy model.
#[derive(Clone, Debug, PartialEq)]
pub struct EnergyConfig {
    /// Material constants (`ms` is replaced by the reconstruction's Ms).
    pub material: Material,
    /// A fixed weight; `None`: chosen by the discrepancy principle.
    pub lambda: Option<f64>,
    /// The weight the starts run with and the discrepancy search begins at.
    pub lambda_start: f64,
    /// The chi^2 per pixel the discrepancy principle aims for.
    pub chi2_band: (f64, f64),
    /// The starts.
    pub starts: Vec<Start>,
    /// Iterations of each start before the winner is chosen.
    pub start_iters: usize,
    /// Segments of the main phase (the weight moves between them).
    pub segments: usize,
    /// Direct `v` or the network.
    pub parametrisation: UnitParametrisation,
    /// Adam learning rate of `v` (the direct parametrisation; the network uses the run's).
    pub lr: f64,
}

impl Default for EnergyConfig {
    /// Permalloy, discrepancy weight from 1, nine starts (four uniform, two vortices, two
    /// vortex pairs, one random) of 300 iterations, four segments, direct parametrisation at lr 0.02.
    fn default() -> Self {
        EnergyConfig {
            material: Material::default(),
            lambda: None,
            lambda_start: 1.0,
            chi2_band: (0.8, 1.3),
            starts: vec![
                Start::Uniform { phi_deg: 0.0 },
                Start::Uniform { phi_deg: 90.0 },
                Start::Uniform { phi_deg: 180.0 },
                Start::Uniform { phi_deg: 270.0 },
                Start::Vortex { positive: true },
                Start::Vortex { positive: false },
                Start::VortexPair { positive: true },
                Start::VortexPair { positive: false },
                Start::Random { seed: 1 },
            ],
            start_iters: 300,
            segments: 4,
            parametrisation: UnitParametrisation::Direct,
            lr: 0.02,
        }
    }
}

impl EnergyConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<()> {
        const OP: &str = "energy model";
        if self.starts.is_empty() {
            return Err(Error::arg(OP, "at least one start is needed"));
        }
        if self.segments == 0 {
            return Err(Error::arg(OP, "segments must be at least 1"));
        }
        for (n, v) in [
            ("lambda start", self.lambda_start),
            ("lr", self.lr),
            ("lambda", self.lambda.unwrap_or(1.0)),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::arg(OP, format!("{n} must be positive, got {v}")));
            }
        }
        let (lo, hi) = self.chi2_band;
        if !(lo.is_finite() && hi.is_finite() && 0.0 < lo && lo < hi) {
            return Err(Error::arg(
                OP,
                format!("chi2 band ({lo}, {hi}) is not an interval"),
            ));
        }
        Ok(())
    }
}

/// How one start ended.
#[derive(Clone, Debug, PartialEq)]
pub struct StartOutcome {
    /// The start's name.
    pub name: String,
    /// The objective of its best state at the starting weight.
    pub objective: f64,
    /// Its chi^2 per pixel.
    pub chi2_per_pixel: f64,
    /// Its energy (J).
    pub energy: f64,
    /// Mean in-plane cosine of its state to the winner's (1 the same state, -1 reversed).
    pub cos_to_best: f64,
}

/// What the energy model reports.
#[derive(Clone, Debug, PartialEq)]
pub struct EnergyReport {
    /// The final weight.
    pub lambda: f64,
    /// `(lambda, chi^2 per pixel)` of each segment of the main phase.
    pub segments: Vec<(f64, f64)>,
    /// The segment whose state is returned (0-based).
    pub chosen_segment: usize,
    /// The energy terms of the returned state (J).
    pub parts: EnergyParts,
    /// `E0 = (mu0/2) Ms^2 t p^2 N_support` (J), the energy unit of the prior.
    pub scale: f64,
    /// Every start, in the order given.
    pub starts: Vec<StartOutcome>,
    /// The winner's index in `starts`.
    pub best_start: usize,
    /// Largest minus smallest objective over the starts.
    pub objective_spread: f64,
    /// The null-space test with relaxation (direct parametrisation): the fitted state with
    /// its in-plane part negated is relaxed at the final weight for `start_iters`, and the
    /// lower objective of the two is returned. Here: the chi^2 per pixel of the OTHER state
    /// (not returned), its in-plane cosine to the returned one (near -1: the two have opposite
    /// senses), and whether the reversed one won.
    pub flip_relaxed: Option<(f64, f64, bool)>,
}

/// The chi^2 per pixel and the energy of a selected iteration.
fn chi2_energy(it: &crate::fit::Iteration, layout: &Layout, sigma: f64) -> (f64, f64) {
    let misfit = it.report.get(1).copied().unwrap_or(f64::NAN);
    let e = layout
        .energy
        .and_then(|i| it.report.get(i))
        .copied()
        .unwrap_or(f64::NAN);
    (misfit / (sigma * sigma), e)
}

/// Runs the energy model (module docs).
pub(crate) fn run(
    setup: &Setup,
    e: &EnergyConfig,
    observer: &mut dyn FnMut(&IterStats) -> bool,
) -> Result<RunOutcome> {
    let cfg = setup.cfg;
    let dev = cfg.device;
    let (h, w) = (setup.data.h, setup.data.w);
    let hw = h * w;
    let mut material = e.material.clone();
    material.ms = setup.ms;
    let energy = || {
        Energy::new(
            h,
            w,
            cfg.geom.pixel,
            cfg.geom.thickness,
            &setup.support,
            &material,
            2,
            dev,
        )
    };
    let support = Tensor::from_shape_vec(&[1, 1, h, w], setup.support.clone())?.to_device(dev)?;
    let lambda0 = e.lambda.unwrap_or(e.lambda_start);
    let source = |i: usize, start: &Start| -> Result<Source> {
        let log_scale = cfg
            .ms_auto
            .then(|| -> Result<Tensor> {
                let s = Tensor::zeros(&[1]).requires_grad();
                s.move_to(dev)?;
                Ok(s)
            })
            .transpose()?;
        let v = match e.parametrisation {
            UnitParametrisation::Direct => {
                let mut rng = Rng::new(cfg.seed.wrapping_add(1000 + i as u64));
                let mut f = start.field(h, w, &setup.support)?;
                // a little noise breaks the symmetries of the uniform and vortex starts
                f.iter_mut().for_each(|x| *x += 0.01 * rng.normal() as f32);
                let v = Tensor::from_shape_vec(&[1, 3, h, w], f)?.requires_grad();
                v.move_to(dev)?;
                UnitParam::Direct(v)
            }
            UnitParametrisation::Network => {
                let mut rng = Rng::new(cfg.seed.wrapping_add(i as u64));
                let net = Cae::new(&cfg.network(3), &mut rng)?;
                net.to_device(dev)?;
                let (hp, wp) = setup.hw_net;
                let z = Tensor::randn(&[1, 1, hp, wp], &mut rng).to_device(dev)?;
                UnitParam::Network { net, z }
            }
        };
        Ok(Source::Unit {
            v,
            support: support.clone(),
            ms: setup.ms as f32,
            log_scale,
        })
    };
    let lr = match e.parametrisation {
        UnitParametrisation::Direct => e.lr,
        UnitParametrisation::Network => cfg.lr,
    };
    let wd = match e.parametrisation {
        UnitParametrisation::Direct => 0.0,
        UnitParametrisation::Network => cfg.weight_decay,
    };
    // 1. the starts
    let mut outcomes: Vec<(StartOutcome, Vec<f32>)> = Vec::new();
    let mut best: Option<(
        usize,
        f64,
        super::objective::NvObjective,
        Vec<crate::optim::AdamW>,
    )> = None;
    let mut interrupted = false;
    for (i, start) in e.starts.iter().enumerate() {
        let mut obj = setup.objective(
            source(i, start)?,
            Some(Prior {
                energy: energy()?,
                lambda: lambda0,
            }),
        )?;
        let mut opts = setup.optimisers(&obj, lr, wd);
        let out = setup.fit(&mut obj, &mut opts, e.start_iters.max(1), observer)?;
        let (chi2, en) = chi2_energy(&out.selected, &out.layout, setup.sigma);
        let objective = out.selected.loss;
        let (m, _, _) = out.host(hw)?;
        outcomes.push((
            StartOutcome {
                name: start.name(),
                objective,
                chi2_per_pixel: chi2,
                energy: en,
                cos_to_best: f64::NAN,
            },
            m,
        ));
        if best.as_ref().is_none_or(|b| objective < b.1) {
            best = Some((i, objective, obj, opts));
        }
        if out.stop == StopReason::Interrupted {
            interrupted = true;
            break;
        }
    }
    let (best_i, _, mut obj, mut opts) =
        best.ok_or_else(|| Error::arg("energy model", "no start ran"))?;
    let best_m = outcomes[best_i].1.clone();
    for (o, m) in outcomes.iter_mut() {
        o.cos_to_best = direction_cosine(m, &best_m, &setup.support);
    }
    let objs: Vec<f64> = outcomes.iter().map(|(o, _)| o.objective).collect();
    let spread = objs.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
        - objs.iter().cloned().fold(f64::INFINITY, f64::min);
    // 2. the main phase, the weight by the discrepancy principle
    let n_seg = if e.lambda.is_some() { 1 } else { e.segments };
    let per = (cfg.iters / n_seg).max(1);
    let (lo, hi) = e.chi2_band;
    let mut lambda = lambda0;
    let (mut too_big, mut too_small): (Option<f64>, Option<f64>) = (None, None);
    let mut segs: Vec<(f64, f64)> = Vec::new();
    let mut results = Vec::new();
    let mut history = Vec::new();
    let mut stop = if interrupted {
        StopReason::Interrupted
    } else {
        StopReason::Completed
    };
    let mut offset = 0;
    let mut offsets = Vec::new();
    for _ in 0..n_seg {
        if interrupted {
            break;
        }
        if let Some(p) = obj.prior.as_mut() {
            p.lambda = lambda;
        }
        let out = setup.fit(&mut obj, &mut opts, per, observer)?;
        offsets.push(offset);
        history.extend(out.history.iter().map(|s| IterStats {
            iter: s.iter + offset,
            ..*s
        }));
        offset += out.history.len();
        let (chi2, _) = chi2_energy(&out.selected, &out.layout, setup.sigma);
        segs.push((lambda, chi2));
        let stopped = out.stop != StopReason::Completed;
        if stopped {
            stop = out.stop.clone();
        }
        results.push(out);
        if stopped {
            break;
        }
        if chi2 > hi {
            too_big = Some(too_big.map_or(lambda, |b: f64| b.min(lambda)));
        } else if chi2 < lo {
            too_small = Some(too_small.map_or(lambda, |s: f64| s.max(lambda)));
        } else {
            continue; // in the band: keep the weight
        }
        lambda = match (too_small, too_big) {
            (Some(s), Some(b)) => (s * b).sqrt(),
            (None, Some(b)) => b / 4.0,
            (Some(s), None) => s * 4.0,
            (None, None) => lambda,
        };
    }
    // the last segment in the band, else the one closest to it
    let dist = |c: f64| {
        if c > hi {
            (c / hi).ln()
        } else if c < lo {
            (lo / c).ln()
        } else {
            0.0
        }
    };
    let chosen = (0..segs.len())
        .rev()
        .min_by(|&a, &b| dist(segs[a].1).total_cmp(&dist(segs[b].1)))
        .unwrap_or(0);
    let (mut out, lambda) = match results.into_iter().nth(chosen) {
        Some(o) => (o, segs[chosen].0),
        None => {
            // interrupted during the starts: a short fit of the winner to have a state
            let o = setup.fit(&mut obj, &mut opts, 1, &mut |_| true)?;
            (o, lambda0)
        }
    };
    out.selected.iter += offsets.get(chosen).copied().unwrap_or(0);
    // Ms of a fit's returned state (its fitted scale, when Ms is fitted)
    let ms_of = |o: &super::FitOutcome| {
        let scale = o
            .layout
            .log_scale
            .and_then(|i| o.selected.report.get(i))
            .map_or(1.0, |s| s.exp());
        setup.ms * scale
    };
    // 3. the null-space test with relaxation: the state with its in-plane part negated,
    // relaxed at the final weight (Mz and the rest may adapt); the lower objective is returned
    let mut flip_relaxed = None;
    let mut host = out.host(hw)?;
    if e.parametrisation == UnitParametrisation::Direct && stop != StopReason::Interrupted {
        // the unit vectors, in-plane part negated (host.0 is (3, h, w))
        let inv_ms = (1.0 / ms_of(&out)) as f32;
        let f: Vec<f32> = host
            .0
            .iter()
            .enumerate()
            .map(|(j, &v)| if j < 2 * hw { -v * inv_ms } else { v * inv_ms })
            .collect();
        let mut fobj = setup.objective(
            source(e.starts.len(), &Start::Field(f))?,
            Some(Prior {
                energy: energy()?,
                lambda,
            }),
        )?;
        let mut fopts = setup.optimisers(&fobj, lr, wd);
        let mut fo = setup.fit(&mut fobj, &mut fopts, e.start_iters.max(1), &mut |_| true)?;
        let (chi2_r, _) = chi2_energy(&out.selected, &out.layout, setup.sigma);
        let (chi2_f, _) = chi2_energy(&fo.selected, &fo.layout, setup.sigma);
        let flipped = fo.host(hw)?;
        let cos = direction_cosine(&flipped.0, &host.0, &setup.support);
        if fo.selected.loss < out.selected.loss {
            // the reversed state is the better one: return it, report the other
            fo.selected.iter = out.selected.iter;
            out = fo;
            host = flipped;
            flip_relaxed = Some((chi2_r, cos, true));
        } else {
            flip_relaxed = Some((chi2_f, cos, false));
        }
    }
    let (magnetization, model, raw_model) = host;
    let ms = ms_of(&out);
    let unit = no_grad(|| out.magnetization.scale((1.0 / ms) as f32))?;
    let prior = obj
        .prior
        .as_ref()
        .ok_or_else(|| Error::arg("energy model", "the prior is missing"))?;
    let parts = prior.energy.parts(&unit)?;
    Ok(RunOutcome {
        magnetization,
        model,
        raw_model,
        history,
        stop,
        selected: out.selected,
        layout: out.layout,
        ms,
        energy: Some(EnergyReport {
            lambda,
            segments: segs,
            chosen_segment: chosen,
            parts,
            scale: prior.energy.scale(),
            starts: outcomes.into_iter().map(|(o, _)| o).collect(),
            best_start: best_i,
            objective_spread: spread,
            flip_relaxed,
        }),
    })
}
