//! NV-DIP ensembles: the same reconstruction with several seeds, summarised per pixel.

use super::{reconstruct, IterStats, NvReconConfig, NvResult};
use crate::error::Result;
use crate::fit::StopReason;
use crate::physics::nv::mask::Mask;
use crate::pipelines::ensemble::{mean_std, run_members, InplaneSpread, Spread};
/// The outcome of [`reconstruct_ensemble`].
#[derive(Clone, Debug)]
pub struct NvEnsemble {
    /// Each member's result; member k ran with seed [`member_seed`](crate::ensemble::member_seed)`(cfg.seed, k)` (weights and
    /// noise input), everything else the same.
    pub members: Vec<NvResult>,
    /// Per-pixel statistics of the members' magnetisations (3, H, W), A/m: `mean` is the
    /// ensemble's estimate, `std` and the 5 / 95 % quantiles its spread.
    pub magnetization: Spread,
    /// Per-pixel statistics of the members' modelled B_NV (H, W), T.
    pub bnv_model: Spread,
    /// `Interrupted` when a member was stopped (no further members ran).
    pub stop: StopReason,
}

/// NV-DIP `members` times with the seeds `cfg.seed, cfg.seed + 1, ...` (member 0 is
/// [`reconstruct`] with `cfg`), summarised per pixel. Where the data do not determine the
/// magnetisation (the circulation of a flux-closure state, an in-plane field without charges)
/// the members disagree and the spread is large; where they do it is small. `observer` gets the
/// member index with each iteration's stats; returning `false` stops after that member.
/// Members run one after another: on the CPU each already uses every core.
pub fn reconstruct_ensemble(
    bnv: &[f32],
    h: usize,
    w: usize,
    mask: &Mask,
    cfg: &NvReconConfig,
    members: usize,
    observer: &mut dyn FnMut(usize, &IterStats) -> bool,
) -> Result<NvEnsemble> {
    let (runs, stop) = run_members(
        "nv ensemble",
        members,
        cfg.seed,
        |k, seed| {
            let c = NvReconConfig {
                seed,
                ..cfg.clone()
            };
            reconstruct(bnv, h, w, mask, &c, &mut |s| observer(k, s))
        },
        |r| &r.stop,
    )?;
    let m: Vec<&[f32]> = runs.iter().map(|r| r.magnetization.as_slice()).collect();
    let b: Vec<&[f32]> = runs.iter().map(|r| r.bnv_model.as_slice()).collect();
    Ok(NvEnsemble {
        magnetization: Spread::of(&m)?,
        bnv_model: Spread::of(&b)?,
        members: runs,
        stop,
    })
}

impl NvEnsemble {
    /// Mean and sample standard deviation of the members' final losses.
    pub fn loss_spread(&self) -> (f64, f64) {
        let l: Vec<f64> = self
            .members
            .iter()
            .map(|r| r.history.last().map_or(f64::NAN, |s| s.loss))
            .collect();
        mean_std(&l)
    }

    /// Mean and sample standard deviation of the members' chi^2 per pixel.
    pub fn chi2_spread(&self) -> (f64, f64) {
        let c: Vec<f64> = self
            .members
            .iter()
            .map(|r| r.diagnostics.chi2_per_pixel)
            .collect();
        mean_std(&c)
    }

    /// The in-plane spread inside `support` (H, W; > 0.5 inside): [`Spread::inplane`].
    pub fn inplane_spread(&self, support: &[f32]) -> InplaneSpread {
        self.magnetization.inplane(support)
    }
}
