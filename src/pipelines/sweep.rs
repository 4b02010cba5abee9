//! Mask-orientation and standoff sweeps (SPEC section 3): NV-DIP for every (angle, standoff,
//! seed), ranked by the loss of each run's returned state. A ranking means something only
//! between masks of equal freedom and beyond the seed-to-seed spread, so the result groups the
//! rows by freedom and says whether the best beats the runner-up significantly.

use crate::error::Error;
use crate::fit::StopReason;
use crate::physics::nv::forward::NvGeometry;
use crate::physics::nv::mask::Mask;
use crate::pipelines::ensemble::mean_std;
use crate::pipelines::nv::{reconstruct, IterStats, NvReconConfig, NvResult};

/// What to sweep.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepConfig {
    /// Mask angles (degrees).
    pub angles: Vec<f64>,
    /// Standoffs (m).
    pub standoffs: Vec<f64>,
    /// Seeds per setting (several give the spread that decides significance).
    pub seeds: Vec<u64>,
}

/// One run of a sweep.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SweepPoint {
    /// Mask angle (degrees).
    pub angle: f64,
    /// Standoff (m).
    pub standoff: f64,
    /// Seed.
    pub seed: u64,
}

/// One setting (angle, standoff) over its seeds.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepRow {
    /// Mask angle (degrees).
    pub angle: f64,
    /// Standoff (m).
    pub standoff: f64,
    /// The loss of each seed's returned (lowest-loss) state (T^2).
    pub losses: Vec<f64>,
    /// Each seed's SNR (dB).
    pub snr_db: Vec<f64>,
    /// Seconds over the seeds.
    pub seconds: f64,
    /// The mask's non-zero (pixel, component) entries.
    pub freedom: usize,
}

impl SweepRow {
    /// Mean loss over the seeds.
    pub fn mean_loss(&self) -> f64 {
        mean_std(&self.losses).0
    }
    /// Sample standard deviation of the loss over the seeds (0 for one seed).
    pub fn loss_spread(&self) -> f64 {
        mean_std(&self.losses).1
    }
    /// Mean SNR over the seeds (dB).
    pub fn mean_snr_db(&self) -> f64 {
        mean_std(&self.snr_db).0
    }
}

impl SweepConfig {
    /// Every run of the sweep in the order it runs: standoffs outermost, then angles, then seeds.
    pub fn points(&self) -> Vec<SweepPoint> {
        let mut v = Vec::new();
        for &standoff in &self.standoffs {
            for &angle in &self.angles {
                for &seed in &self.seeds {
                    v.push(SweepPoint {
                        angle,
                        standoff,
                        seed,
                    });
                }
            }
        }
        v
    }
}

/// Whether the best setting beats the runner-up.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Significance {
    /// Fewer than two settings: nothing to rank.
    NothingToRank,
    /// One seed per setting: the spread is unknown.
    OneSeed,
    /// The loss gap is within 2x the larger seed spread.
    NotSignificant {
        /// Runner-up minus best mean loss (T^2).
        gap: f64,
        /// The larger of the two seed spreads (T^2).
        spread: f64,
    },
    /// The gap exceeds 2x the spread.
    Significant {
        /// gap / spread.
        ratio: f64,
    },
}

/// The outcome of [`sweep`].
#[derive(Clone, Debug, PartialEq)]
pub struct SweepResult {
    /// Settings, best (lowest mean loss) first.
    pub rows: Vec<SweepRow>,
    /// Row indices grouped by mask freedom (ascending freedom), each group best first: the
    /// ranking that means something.
    pub groups: Vec<(usize, Vec<usize>)>,
    /// Best vs runner-up.
    pub significance: Significance,
    /// `Interrupted` when a run was stopped (the sweep stops after it).
    pub stop: StopReason,
}

/// Runs NV-DIP for every (standoff, angle, seed) of `sc` on the map `bnv` (h, w) with the
/// mask `mask_at(angle)` and the settings of `base` (its geometry's standoff and its seed are
/// replaced). `on_run` sees each finished run (to write its outputs); `observer` each
/// iteration (returning `false` interrupts the sweep after the current run). The callbacks'
/// error type `E` is the caller's (any type a library [`Error`] converts into).
#[allow(clippy::too_many_arguments)]
pub fn sweep<E: From<Error>>(
    bnv: &[f32],
    h: usize,
    w: usize,
    mask_at: &dyn Fn(f64) -> std::result::Result<Mask, E>,
    base: &NvReconConfig,
    sc: &SweepConfig,
    on_run: &mut dyn FnMut(&SweepPoint, &Mask, &NvResult) -> std::result::Result<(), E>,
    observer: &mut dyn FnMut(&SweepPoint, &IterStats) -> bool,
) -> std::result::Result<SweepResult, E> {
    let all = 0..sc.points().len();
    sweep_range(bnv, h, w, mask_at, base, sc, all, on_run, observer)
}

/// [`sweep`] restricted to the runs `range` of [`SweepConfig::points`] (one share of a sweep
/// split over processes): rows hold the seeds of the range only, and rows without any are left
/// out; ranked as [`rank`] does.
#[allow(clippy::too_many_arguments)]
pub fn sweep_range<E: From<Error>>(
    bnv: &[f32],
    h: usize,
    w: usize,
    mask_at: &dyn Fn(f64) -> std::result::Result<Mask, E>,
    base: &NvReconConfig,
    sc: &SweepConfig,
    range: std::ops::Range<usize>,
    on_run: &mut dyn FnMut(&SweepPoint, &Mask, &NvResult) -> std::result::Result<(), E>,
    observer: &mut dyn FnMut(&SweepPoint, &IterStats) -> bool,
) -> std::result::Result<SweepResult, E> {
    const OP: &str = "nv sweep";
    if sc.angles.is_empty() || sc.standoffs.is_empty() || sc.seeds.is_empty() {
        return Err(Error::arg(OP, "needs at least one angle, standoff and seed").into());
    }
    if sc.standoffs.iter().any(|&d| !(d.is_finite() && d >= 0.0)) {
        return Err(Error::arg(OP, "standoffs must be >= 0").into());
    }
    let mut rows = Vec::new();
    let mut stop = StopReason::Completed;
    let mut index = 0usize;
    'outer: for &standoff in &sc.standoffs {
        for &angle in &sc.angles {
            let n = sc.seeds.len();
            let mine = (index..index + n).any(|i| range.contains(&i));
            if !mine {
                index += n;
                continue;
            }
            let mask = mask_at(angle)?;
            let mut row = SweepRow {
                angle,
                standoff,
                losses: vec![],
                snr_db: vec![],
                seconds: 0.0,
                freedom: mask.freedom(),
            };
            for &seed in &sc.seeds {
                index += 1;
                if !range.contains(&(index - 1)) {
                    continue;
                }
                let p = SweepPoint {
                    angle,
                    standoff,
                    seed,
                };
                let cfg = NvReconConfig {
                    geom: NvGeometry {
                        standoff,
                        ..base.geom.clone()
                    },
                    seed,
                    ..base.clone()
                };
                let res = reconstruct(bnv, h, w, &mask, &cfg, &mut |s| observer(&p, s))?;
                // the loss of the returned (lowest-loss) state: robust to Adam's late spikes
                row.losses.push(
                    res.history
                        .get(res.selected_iteration.saturating_sub(1))
                        .map_or(f64::NAN, |s| s.loss),
                );
                row.snr_db.push(res.metrics.snr_db);
                row.seconds += res.history.last().map_or(0.0, |s| s.seconds);
                on_run(&p, &mask, &res)?;
                if res.stop == StopReason::Interrupted {
                    stop = StopReason::Interrupted;
                    rows.push(row);
                    break 'outer;
                }
            }
            rows.push(row);
        }
    }
    Ok(rank(rows, sc.seeds.len(), stop))
}

/// Ranks a sweep's rows (in the order they ran) by mean loss, groups them by mask freedom and
/// says whether the best beats the runner-up given `seeds` seeds per setting.
pub fn rank(mut rows: Vec<SweepRow>, seeds: usize, stop: StopReason) -> SweepResult {
    rows.sort_by(|x, y| x.mean_loss().total_cmp(&y.mean_loss()));
    let mut freedoms: Vec<usize> = rows.iter().map(|r| r.freedom).collect();
    freedoms.sort_unstable();
    freedoms.dedup();
    let groups = freedoms
        .into_iter()
        .map(|f| {
            (
                f,
                (0..rows.len()).filter(|&i| rows[i].freedom == f).collect(),
            )
        })
        .collect();
    let significance = if rows.len() < 2 {
        Significance::NothingToRank
    } else if seeds < 2 {
        Significance::OneSeed
    } else {
        let (b, s) = (&rows[0], &rows[1]);
        let gap = s.mean_loss() - b.mean_loss();
        let spread = b.loss_spread().max(s.loss_spread());
        if gap <= 2.0 * spread {
            Significance::NotSignificant { gap, spread }
        } else {
            Significance::Significant {
                ratio: gap / spread.max(1e-300),
            }
        }
    };
    SweepResult {
        rows,
        groups,
        significance,
        stop,
    }
}
