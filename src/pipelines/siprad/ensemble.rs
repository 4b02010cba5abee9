//! SIPRAD ensembles: the same reconstruction with several seeds (weights, input noise, hold-out
//! split), summarised per pixel.

use super::{reconstruct, reconstruct_focal_series, SipradConfig, SipradResult, Stats};
use crate::error::{Error, Result};
use crate::fit::StopReason;
use crate::physics::ltem::forward::induction;
use crate::physics::ltem::optics::Microscope;
use crate::pipelines::ensemble::{mean_std, run_members, Spread};
/// The outcome of [`reconstruct_ensemble`].
#[derive(Clone, Debug)]
pub struct SipradEnsemble {
    /// Each member's result; member k ran with seed [`member_seed`](crate::ensemble::member_seed)`(cfg.seed, k)` (weights,
    /// input noise and hold-out split), everything else the same.
    pub members: Vec<SipradResult>,
    /// Per-pixel statistics of the members' phases (H, W), rad: `mean` is the estimate.
    pub phase: Spread,
    /// Of the members' integrated induction (2, H, W), T m.
    pub induction: Spread,
    /// `Interrupted` when a member was stopped (no further members ran).
    pub stop: StopReason,
}

/// SIPRAD `members` times with the seeds `cfg.seed, cfg.seed + 1, ...` (member 0 is the single
/// run with `cfg`), summarised per pixel: one image (`images` of one, `defoci_nm` `None`:
/// [`reconstruct`]) or a focal series ([`reconstruct_focal_series`]). `observer` gets the member
/// index with each iteration's stats; returning `false` stops after that member.
#[allow(clippy::too_many_arguments)]
pub fn reconstruct_ensemble(
    images: &[&[f32]],
    defoci_nm: Option<&[f64]>,
    h: usize,
    w: usize,
    mic: &Microscope,
    cfg: &SipradConfig,
    members: usize,
    observer: &mut dyn FnMut(usize, &Stats) -> bool,
) -> Result<SipradEnsemble> {
    const OP: &str = "ltem ensemble";
    let (runs, stop) = run_members(
        OP,
        members,
        cfg.seed,
        |k, seed| {
            let c = SipradConfig {
                seed,
                ..cfg.clone()
            };
            let mut obs = |s: &Stats| observer(k, s);
            match (images, defoci_nm) {
                ([one], None) => reconstruct(one, h, w, mic, &c, &mut obs),
                (many, Some(d)) => reconstruct_focal_series(many, d, h, w, mic, &c, &mut obs),
                _ => Err(Error::arg(OP, "one image, or a series with its defoci")),
            }
        },
        |r| &r.stop,
    )?;
    let inductions = runs
        .iter()
        .map(|r| induction(&r.phase, h, w, mic.scale))
        .collect::<Result<Vec<_>>>()?;
    let p: Vec<&[f32]> = runs.iter().map(|r| r.phase.as_slice()).collect();
    let b: Vec<&[f32]> = inductions.iter().map(|v| v.as_slice()).collect();
    Ok(SipradEnsemble {
        phase: Spread::of(&p)?,
        induction: Spread::of(&b)?,
        members: runs,
        stop,
    })
}

impl SipradEnsemble {
    /// Mean and sample standard deviation of the members' final losses.
    pub fn loss_spread(&self) -> (f64, f64) {
        let l: Vec<f64> = self
            .members
            .iter()
            .map(|r| r.history.last().map_or(f64::NAN, |s| s.loss))
            .collect();
        mean_std(&l)
    }
}
