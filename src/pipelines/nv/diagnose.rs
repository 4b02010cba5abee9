//! What a finished NV run can and cannot claim (SPEC section 9): the residual against the noise
//! floor, the warnings a physicist must see (no better than a zero field, magnetisation piled on
//! the support's edge, output at its bound while the data want more, standoff at zero), the
//! null-space test for the circulation sense, and the standoff's uncertainty.
//!
//! Every number is computed on the host with the final geometry (fitted standoff and NV axis)
//! and the fitted background, from the returned magnetisation.

use super::data::Data;
use super::{NvModel, RunOutcome, Setup};
use crate::engine::autograd::no_grad;
use crate::engine::tensor::Tensor;
use crate::error::Result;
use crate::physics::nv::forward::{NvForward, NvGeometry};
use crate::physics::nv::noise::lowk_excess;

/// A flipped in-plane magnetisation changing the total chi^2 by less than this is "not
/// determined by the data" (a 3-sigma likelihood ratio, SPEC section 9).
pub const FLIP_THRESHOLD: f64 = 9.0;

/// Whether the data determine the circulation sense (in-plane M -> -in-plane M, Mz kept).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Circulation {
    /// Flipping the in-plane components raises the total chi^2 by at least 9.
    Determined,
    /// It does not: the sense is not determined by the data.
    Undetermined,
    /// No in-plane magnetisation to flip.
    NotApplicable,
}

impl Circulation {
    /// `"determined"`, `"undetermined"` or `"not_applicable"` (as in metrics.json).
    pub fn as_str(&self) -> &'static str {
        match self {
            Circulation::Determined => "determined",
            Circulation::Undetermined => "undetermined",
            Circulation::NotApplicable => "not_applicable",
        }
    }
}

/// The report of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct NvDiagnostics {
    /// The noise level used (T).
    pub noise_floor_t: f64,
    /// Whether it was estimated from the map (else given).
    pub noise_estimated: bool,
    /// Whether a per-pixel noise map weighted the fit and chi^2 (`noise_floor_t` is its median).
    pub noise_map: bool,
    /// chi^2 per valid pixel of the returned state.
    pub chi2_per_pixel: f64,
    /// chi^2 per pixel of the zero field (with the best background alone).
    pub zero_field_chi2_per_pixel: f64,
    /// Residual power at the lowest tenth of the wave numbers over the noise's (about 1 for a
    /// white residual).
    pub lowk_excess: f64,
    /// Mean |M| on the support's edge pixels over the mean inside (about 1 unless M piles up).
    pub edge_ratio: f64,
    /// Fraction of the support where the output is within 5 % of its bound (NaN for the
    /// energy model, whose |M| is Ms by construction).
    pub at_bound_fraction: f64,
    /// The null-space test.
    pub circulation: Circulation,
    /// The increase of the total chi^2 when the in-plane components are negated.
    pub flip_delta_chi2: f64,
    /// The standoff's 1-sigma uncertainty (m) from the curvature of chi^2 with the
    /// magnetisation held fixed (conditional: it ignores the trade-off with M), when fitted.
    pub standoff_sigma: Option<f64>,
    /// What must not be missed.
    pub warnings: Vec<String>,
    /// What is worth knowing.
    pub notes: Vec<String>,
}

/// A noise level that can divide: an estimate of ~0 (a noise-free synthetic map) is floored at
/// 1e-6 of the map's RMS, with a note.
pub(crate) fn usable_sigma(sigma: f64, data: &Data, notes: &mut Vec<String>) -> f64 {
    let rms = (data.host.iter().map(|&v| (v as f64).powi(2)).sum::<f64>()
        / data.n_valid.max(1) as f64)
        .sqrt();
    let floor = 1e-6 * rms.max(1e-30);
    if sigma.is_finite() && sigma > floor {
        sigma
    } else {
        notes.push(format!(
            "the map's noise floor is ~0 (a noise-free map?): chi^2 uses {floor:.3e} T; give --noise for a meaningful chi^2"
        ));
        floor
    }
}

/// The host-side evaluation: B_NV of magnetisations with the final geometry, SSE with the best
/// background.
struct Host<'a> {
    data: &'a Data,
    fwd: NvForward,
}

impl Host<'_> {
    fn bnv(&self, m: &[f32]) -> Result<Vec<f32>> {
        let (h, w) = (self.data.h, self.data.w);
        no_grad(|| {
            self.fwd
                .bnv(&Tensor::from_shape_vec(&[1, 3, h, w], m.to_vec())?)
        })?
        .to_vec()
    }
    fn sse(&self, m: &[f32]) -> Result<f64> {
        Ok(self
            .data
            .residual_perp(&self.bnv(m)?)
            .iter()
            .map(|x| x * x)
            .sum())
    }
}

/// Support pixels with a neighbour outside the support or on the map's border.
fn edge_pixels(support: &[f32], h: usize, w: usize) -> Vec<bool> {
    (0..h * w)
        .map(|i| {
            let (r, c) = (i / w, i % w);
            if support[i] < 0.5 {
                return false;
            }
            if r == 0 || c == 0 || r + 1 == h || c + 1 == w {
                return true;
            }
            [i - 1, i + 1, i - w, i + w]
                .iter()
                .any(|&j| support[j] < 0.5)
        })
        .collect()
}

/// The report of a finished run (module docs).
pub(crate) fn diagnose(
    data: &Data,
    geom: &NvGeometry,
    run: &RunOutcome,
    setup: &Setup,
    model: &NvModel,
    mask: &crate::physics::nv::mask::Mask,
    mut notes: Vec<String>,
) -> Result<NvDiagnostics> {
    let cfg = setup.cfg;
    let (h, w) = (data.h, data.w);
    let hw = h * w;
    let sigma = setup.sigma;
    let var = sigma * sigma;
    let n = data.n_valid.max(1) as f64;
    let host = Host {
        data,
        fwd: NvForward::new(h, w, geom)?,
    };
    let m = &run.magnetization;
    let mut warnings = Vec::new();
    let sse = host.sse(m)?;
    let sse0 = data.zero_field().sse;
    let chi2 = sse / (n * var);
    let chi2_zero = sse0 / (n * var);
    if sse >= sse0 {
        warnings.push(format!(
            "the fit is no better than a zero field (chi^2 per pixel {chi2:.3} vs {chi2_zero:.3} for no magnetisation): check the support, the standoff, the NV angles and the units of the map"
        ));
    }
    let resid: Vec<f32> = data
        .residual_perp(&host.bnv(m)?)
        .iter()
        .map(|&x| x as f32)
        .collect();
    let lowk = lowk_excess(&resid, h, w, sigma, 0.1)?;
    if lowk > 3.0 && chi2 > 1.5 {
        warnings.push(format!(
            "the residual has structure at long wavelengths (low-k power {lowk:.1} x the noise's): the model misses part of the field (support, standoff, background, model)"
        ));
    }
    // the edge
    let mag = |i: usize| {
        (0..3)
            .map(|c| (m[c * hw + i] as f64).powi(2))
            .sum::<f64>()
            .sqrt()
    };
    let edge = edge_pixels(&setup.support, h, w);
    let (mut se, mut ne, mut si, mut ni) = (0.0, 0usize, 0.0, 0usize);
    for (i, &on_edge) in edge.iter().enumerate().take(hw) {
        if setup.support[i] < 0.5 {
            continue;
        }
        if on_edge {
            se += mag(i);
            ne += 1;
        } else {
            si += mag(i);
            ni += 1;
        }
    }
    let edge_ratio = if ne > 0 && ni > 0 && si > 0.0 {
        (se / ne as f64) / (si / ni as f64)
    } else {
        f64::NAN
    };
    let energy_model = matches!(model, NvModel::Energy(_));
    if !energy_model && edge_ratio > 2.5 {
        warnings.push(format!(
            "the magnetisation piles up on the support's edge (mean |M| there {edge_ratio:.1} x the inside): the support may be too small, misplaced, or the standoff wrong"
        ));
    }
    // the bound
    let at_bound_fraction = if energy_model {
        f64::NAN
    } else {
        let bound = run.ms;
        let mut at = 0usize;
        let mut cnt = 0usize;
        for i in 0..hw {
            if setup.support[i] < 0.5 {
                continue;
            }
            cnt += 1;
            let hit = match model {
                NvModel::Tanh => (0..mask.channels).any(|c| {
                    let k = mask.data[c * hw + i].abs() as f64;
                    k > 0.1 && (m[c * hw + i] as f64).abs() >= 0.95 * bound * k
                }),
                _ => mag(i) >= 0.95 * bound,
            };
            at += hit as usize;
        }
        at as f64 / cnt.max(1) as f64
    };
    if at_bound_fraction > 0.25 {
        let bigger: Vec<f32> = m.iter().map(|v| v * 1.05).collect();
        let gain = (sse - host.sse(&bigger)?) / var;
        if gain > FLIP_THRESHOLD {
            warnings.push(format!(
                "the output sits at its bound (Ms = {:.3e} A/m) over {:.0} % of the support and 5 % more magnetisation would fit better (chi^2 -{gain:.0}): raise Ms or use --ms auto",
                run.ms,
                100.0 * at_bound_fraction
            ));
        } else {
            notes.push(format!(
                "the output is at its bound over {:.0} % of the support (a saturated state; a larger bound would not fit better)",
                100.0 * at_bound_fraction
            ));
        }
    }
    // the null-space test
    let inplane: f64 = (0..2 * hw).map(|j| (m[j] as f64).powi(2)).sum();
    let total: f64 = m.iter().map(|&v| (v as f64).powi(2)).sum();
    let (circulation, flip_delta_chi2) = if inplane <= 1e-6 * total.max(f64::MIN_POSITIVE) {
        (Circulation::NotApplicable, f64::NAN)
    } else {
        let flipped: Vec<f32> = m
            .iter()
            .enumerate()
            .map(|(j, &v)| if j < 2 * hw { -v } else { v })
            .collect();
        let d = (host.sse(&flipped)? - sse) / var;
        let c = if d.abs() < FLIP_THRESHOLD {
            Circulation::Undetermined
        } else {
            Circulation::Determined
        };
        match (&run.energy, model) {
            // the energy model: the reversed state relaxed (its Mz may adapt). Undetermined
            // when the two states keep opposite senses and their total chi^2 differ by less
            // than 9 or than twice the chi^2 statistic's own spread sqrt(2 N) (an estimated
            // noise level and an imperfect model cannot resolve less)
            (Some(rep), NvModel::Energy(_)) => match rep.flip_relaxed {
                Some((chi2_o, cos_o, swapped)) => {
                    let n = data.n_valid.max(1) as f64;
                    let chi2 = sse / var / n;
                    let dt = (chi2_o - chi2) * n;
                    let margin = FLIP_THRESHOLD.max(2.0 * (2.0 * n).sqrt());
                    let how = if swapped {
                        "the reversed state fitted better and is returned; "
                    } else {
                        ""
                    };
                    notes.push(format!(
                        "null-space test: {how}the state of opposite in-plane sense, relaxed, reaches chi^2 per pixel {chi2_o:.4} against {chi2:.4} (total difference {dt:.1}, resolvable above {margin:.0}; in-plane cosine between them {cos_o:.2})"
                    ));
                    if cos_o < -0.5 && dt < margin {
                        (Circulation::Undetermined, dt)
                    } else {
                        (Circulation::Determined, dt)
                    }
                }
                None => (c, d),
            },
            _ => (c, d),
        }
    };
    if flip_delta_chi2 <= -FLIP_THRESHOLD && circulation == Circulation::Determined {
        warnings.push(format!(
            "the in-plane magnetisation reversed fits the data better (chi^2 lower by {:.1}): the fit ended in the wrong sense; try other starts or seeds",
            -flip_delta_chi2
        ));
    }
    if circulation == Circulation::Undetermined {
        warnings.push(format!(
            "circulation sense not determined by the data: with the in-plane magnetisation negated the fit changes the total chi^2 by {flip_delta_chi2:.2} and still fits to the noise floor; the in-plane part is (nearly) in the stray field's null space"
        ));
    }
    // the standoff
    let standoff_sigma = if cfg.fit_standoff {
        let d = geom.standoff;
        if d < 0.5e-9 {
            warnings.push(
                "the fitted standoff is stuck at its bound 0: the data want the sensor closer than the film's surface (check the thickness and the scale)".into(),
            );
        }
        let step = (0.02 * d).max(0.5e-9);
        let at = |dd: f64| -> Result<f64> {
            let mut g = geom.clone();
            g.standoff = dd.max(0.0);
            Host {
                data,
                fwd: NvForward::new(h, w, &g)?,
            }
            .sse(m)
        };
        let (lo, mid, hi) = (at(d - step)?, sse, at(d + step)?);
        let curv = (hi - 2.0 * mid + lo) / (step * step);
        Some(if curv > 0.0 {
            sigma * (2.0 / curv).sqrt()
        } else {
            f64::INFINITY
        })
    } else {
        None
    };
    Ok(NvDiagnostics {
        noise_floor_t: sigma,
        noise_estimated: cfg.noise.is_none(),
        noise_map: cfg.noise_map,
        chi2_per_pixel: chi2,
        zero_field_chi2_per_pixel: chi2_zero,
        lowk_excess: lowk,
        edge_ratio,
        at_bound_fraction,
        circulation,
        flip_delta_chi2,
        standoff_sigma,
        warnings,
        notes,
    })
}
