//! Ensembles: K runs that differ in their seeds (weights, input noise and, for SIPRAD, the
//! hold-out split), summarised per pixel. The ensemble mean is the estimate; the standard
//! deviation and the 5 / 95 % quantiles say how much of it the data (and the prior) pin down.

use crate::error::{Error, Result};
use crate::fit::StopReason;

/// Member `k`'s seed: member 0 is the single run with `seed`, so an ensemble of one is that run.
pub fn member_seed(seed: u64, k: usize) -> u64 {
    seed.wrapping_add(k as u64)
}

/// Runs `members` members one after another (member k: `run(k, member_seed(seed, k))`) until
/// one ends interrupted (`stop_of` says how each ended); returns them and the ensemble's stop.
pub(crate) fn run_members<R>(
    op: &'static str,
    members: usize,
    seed: u64,
    mut run: impl FnMut(usize, u64) -> Result<R>,
    stop_of: impl Fn(&R) -> &StopReason,
) -> Result<(Vec<R>, StopReason)> {
    if members == 0 {
        return Err(Error::arg(op, "needs at least one member"));
    }
    let mut out = Vec::with_capacity(members);
    for k in 0..members {
        let r = run(k, member_seed(seed, k))?;
        let interrupted = *stop_of(&r) == StopReason::Interrupted;
        out.push(r);
        if interrupted {
            return Ok((out, StopReason::Interrupted));
        }
    }
    Ok((out, StopReason::Completed))
}

/// Per-element statistics over an ensemble's members (all of one length).
#[derive(Clone, Debug, PartialEq)]
pub struct Spread {
    /// Members summarised.
    pub members: usize,
    /// Mean.
    pub mean: Vec<f32>,
    /// Sample standard deviation (n - 1; 0 for one member).
    pub std: Vec<f32>,
    /// 5 % quantile (linear interpolation between order statistics, NumPy's default).
    pub q05: Vec<f32>,
    /// 95 % quantile.
    pub q95: Vec<f32>,
}

/// The `q` quantile of sorted values, linearly interpolated (`numpy.quantile`'s default).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (i, f) = (pos.floor() as usize, pos - pos.floor());
    match sorted.get(i + 1) {
        Some(&next) => sorted[i] + f * (next - sorted[i]),
        None => sorted[i],
    }
}

impl Spread {
    /// The statistics of `members` (at least one, all the same length).
    pub fn of(members: &[&[f32]]) -> Result<Spread> {
        const OP: &str = "ensemble";
        let Some(first) = members.first() else {
            return Err(Error::arg(OP, "no members"));
        };
        let n = first.len();
        if members.iter().any(|m| m.len() != n) {
            return Err(Error::arg(OP, "members of different sizes"));
        }
        let k = members.len();
        let mut out = Spread {
            members: k,
            mean: Vec::with_capacity(n),
            std: Vec::with_capacity(n),
            q05: Vec::with_capacity(n),
            q95: Vec::with_capacity(n),
        };
        let mut v = vec![0f64; k];
        for i in 0..n {
            for (slot, m) in v.iter_mut().zip(members) {
                *slot = m[i] as f64;
            }
            let mean = v.iter().sum::<f64>() / k as f64;
            let var = if k > 1 {
                v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (k - 1) as f64
            } else {
                0.0
            };
            v.sort_by(f64::total_cmp);
            out.mean.push(mean as f32);
            out.std.push(var.sqrt() as f32);
            out.q05.push(quantile(&v, 0.05) as f32);
            out.q95.push(quantile(&v, 0.95) as f32);
        }
        Ok(out)
    }

    /// The fraction of elements (where `keep`, when given) whose `truth` lies within
    /// `[q05, q95]`: about 0.9 for a calibrated ensemble, less when it is overconfident.
    pub fn coverage(&self, truth: &[f32], keep: Option<&[bool]>) -> Result<f64> {
        if truth.len() != self.mean.len() || keep.is_some_and(|k| k.len() != truth.len()) {
            return Err(Error::arg("ensemble coverage", "the truth's size differs"));
        }
        let (mut inside, mut count) = (0usize, 0usize);
        for (i, &t) in truth.iter().enumerate() {
            if keep.is_some_and(|k| !k[i]) {
                continue;
            }
            count += 1;
            if self.q05[i] <= t && t <= self.q95[i] {
                inside += 1;
            }
        }
        Ok(inside as f64 / count.max(1) as f64)
    }
}

/// How much the members disagree about an in-plane field inside a support.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InplaneSpread {
    /// Mean over the support of `sqrt(std_x^2 + std_y^2)`.
    pub std_mean: f64,
    /// Mean over the support of the in-plane magnitude of the mean.
    pub mean_abs: f64,
    /// `std_mean / mean_abs`: ~0 when the members agree; ~1 or more when their directions
    /// scatter (what the data leave undetermined, e.g. a vortex's circulation).
    pub relative: f64,
}

impl Spread {
    /// For a field (C >= 2, H, W) whose first two components are in plane: the spread inside
    /// `support` (H, W; > 0.5 inside).
    pub fn inplane(&self, support: &[f32]) -> InplaneSpread {
        let hw = support.len();
        let (m, s) = (&self.mean, &self.std);
        let (mut spread, mut level, mut n) = (0.0, 0.0, 0usize);
        for i in (0..hw).filter(|&i| support[i] > 0.5 && hw + i < m.len()) {
            spread += (s[i] as f64).hypot(s[hw + i] as f64);
            level += (m[i] as f64).hypot(m[hw + i] as f64);
            n += 1;
        }
        let (std_mean, mean_abs) = (spread / n.max(1) as f64, level / n.max(1) as f64);
        InplaneSpread {
            std_mean,
            mean_abs,
            relative: std_mean / mean_abs.max(f64::MIN_POSITIVE),
        }
    }
}

/// Mean and sample standard deviation of a few numbers (members' losses).
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let m = v.iter().sum::<f64>() / n;
    let s = if v.len() > 1 {
        (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    (m, s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_matches_numpy_definitions() {
        // numpy: mean, std(ddof=1), quantile(linear) of [1, 2, 4, 8] = 3.75, 3.0957, 1.15, 7.4
        let m: Vec<Vec<f32>> = [1.0, 2.0, 4.0, 8.0].iter().map(|&x| vec![x, -x]).collect();
        let refs: Vec<&[f32]> = m.iter().map(|v| v.as_slice()).collect();
        let s = Spread::of(&refs).unwrap();
        assert_eq!(s.mean, vec![3.75, -3.75]);
        assert!((s.std[0] - 3.095_696_2).abs() < 1e-6, "{}", s.std[0]);
        assert!((s.q05[0] - 1.15).abs() < 1e-6 && (s.q95[0] - 7.4).abs() < 1e-6);
        assert!((s.q05[1] + 7.4).abs() < 1e-6 && (s.q95[1] + 1.15).abs() < 1e-6);
        assert_eq!(s.coverage(&[2.0, 0.0], None).unwrap(), 0.5);
        assert_eq!(s.coverage(&[2.0, 0.0], Some(&[true, false])).unwrap(), 1.0);
        let one = Spread::of(&refs[..1]).unwrap();
        assert_eq!((one.std[0], one.q05[0], one.q95[0]), (0.0, 1.0, 1.0));
        assert!(Spread::of(&[]).is_err());
    }
}
