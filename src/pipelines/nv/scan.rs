//! A scan of classical inversions over magnetisation directions: for each direction `u`, the
//! Fourier inversion along `u` (Hanning filter), kept inside the support, pushed back through the
//! forward model with the best scale and the fitted background; the direction whose field fits
//! the data best is where the direction model starts, and its inversion gives Ms when it is to
//! be chosen from the data. A coarse grid over the hemisphere (u and -u are the same model:
//! the amplitude takes either sign), then two finer passes around the best.

use super::data::{Background, Data, ZeroField};
use crate::engine::autograd::no_grad;
use crate::engine::device::Device;
use crate::engine::tensor::Tensor;
use crate::error::{Error, Result};
use crate::physics::nv::forward::{NvForward, NvGeometry};
use crate::physics::nv::invert::{
    default_wavelength, direction_from_angles, invert, Filter, InversionConfig,
};
use crate::physics::nv::support::{auto_support_with, AutoSupport, SupportOptions, SupportRule};

/// Ms from the data is this times the 99th percentile of |M| of the best inversion inside the
/// support (room above the typical value for the network's bound).
pub(crate) const MS_FACTOR: f64 = 1.5;

/// The outcome of a direction scan.
#[derive(Clone, Debug, PartialEq)]
pub struct DirectionScan {
    /// The best direction (theta, phi) in degrees.
    pub best: (f64, f64),
    /// Every direction tried with its misfit relative to the zero field
    /// (`SSE / SSE_zero`, both with the fitted background; below 1 explains something).
    pub tried: Vec<((f64, f64), f64)>,
    /// The 99th percentile of |M| inside the support for the best direction (A/m).
    pub m_p99: f64,
    /// 1.5 times `m_p99` (A/m): room above the typical value for the bound.
    pub ms_estimate: f64,
}

/// The classical inversion of the map along `u` with the default Hanning filter
/// ([`default_wavelength`]): the amplitude (h, w) in A/m.
pub(crate) fn inversion_along(data: &Data, geom: &NvGeometry, u: [f64; 3]) -> Result<Vec<f32>> {
    let filter = Filter::Hanning {
        wavelength: default_wavelength(geom),
    };
    let cfg = InversionConfig::new(u, filter);
    Ok(invert(&data.with_nan(), data.h, data.w, geom, &cfg)?.m)
}

/// The magnetisation `amp u` (3, h, w), component-first.
pub(crate) fn along(u: [f64; 3], amp: &[f32]) -> Vec<f32> {
    u.iter()
        .flat_map(|&uc| amp.iter().map(move |&a| a * uc as f32))
        .collect()
}

/// The misfit ratio and the p99 of |M| (A/m) of the inversion along one direction.
fn score(
    data: &Data,
    geom: &NvGeometry,
    fwd: &NvForward,
    support: &[f32],
    dir: (f64, f64),
    zero: &ZeroField,
) -> Result<(f64, f64)> {
    let (h, w) = (data.h, data.w);
    let u = direction_from_angles(dir.0, dir.1);
    let inv = inversion_along(data, geom, u)?;
    let amp: Vec<f32> = inv.iter().zip(support).map(|(m, s)| m * s).collect();
    let mag = along(u, &amp);
    let g = no_grad(|| fwd.bnv(&Tensor::from_shape_vec(&[1, 3, h, w], mag)?))?.to_vec()?;
    // best scale a of the model next to the background: project both on the complement
    let r0 = &zero.residual;
    let gp = data.perp(&g);
    let gg: f64 = gp.iter().map(|x| x * x).sum();
    let rg: f64 = r0.iter().zip(&gp).map(|(a, b)| a * b).sum();
    let a = if gg > 0.0 { (rg / gg).max(0.0) } else { 0.0 };
    let sse = r0
        .iter()
        .zip(&gp)
        .map(|(r, g)| (r - a * g).powi(2))
        .sum::<f64>();
    let mut inside: Vec<f64> = amp
        .iter()
        .zip(support)
        .filter(|(_, &s)| s > 0.5)
        .map(|(m, _)| (*m as f64 * a).abs())
        .collect();
    let p99 = if inside.is_empty() {
        0.0
    } else {
        let k = ((inside.len() - 1) as f64 * 0.99).round() as usize;
        *inside.select_nth_unstable_by(k, |x, y| x.total_cmp(y)).1
    };
    Ok((sse / zero.sse.max(f64::MIN_POSITIVE), p99))
}

/// The coarse grid: theta 0, 30, 60, 90; phi every 30 deg (every 30 deg over half a turn at 90).
fn coarse() -> Vec<(f64, f64)> {
    let mut v = vec![(0.0, 0.0)];
    for t in [30.0, 60.0] {
        v.extend((0..12).map(|i| (t, 30.0 * i as f64)));
    }
    v.extend((0..6).map(|i| (90.0, 30.0 * i as f64)));
    v
}

/// A direction (theta, phi) in degrees and its score.
type Scored = ((f64, f64), f64);

/// The coarse grid and two refinements (steps 15 and 7.5 deg) around the best so far, or only
/// `fixed`: `eval` scores a direction (lower is better; `None` skips it). Returns the best
/// direction with its score, and every direction tried with its score.
fn search(
    fixed: Option<(f64, f64)>,
    mut eval: impl FnMut((f64, f64)) -> Result<Option<f64>>,
) -> Result<(Option<Scored>, Vec<Scored>)> {
    let mut tried: Vec<((f64, f64), f64)> = Vec::new();
    let mut best: Option<((f64, f64), f64)> = None;
    let mut try_dir = |d: (f64, f64), best: &mut Option<((f64, f64), f64)>| -> Result<()> {
        if let Some(s) = eval(d)? {
            tried.push((d, s));
            if best.is_none_or(|b| s < b.1) {
                *best = Some((d, s));
            }
        }
        Ok(())
    };
    match fixed {
        Some(d) => try_dir(d, &mut best)?,
        None => {
            for d in coarse() {
                try_dir(d, &mut best)?;
            }
            for step in [15.0, 7.5] {
                let Some(((t0, p0), _)) = best else { break };
                for dt in [-step, 0.0, step] {
                    for dp in [-step, 0.0, step] {
                        let t = (t0 + dt).clamp(0.0, 180.0);
                        if (dt, dp) != (0.0, 0.0) {
                            try_dir((t, (p0 + dp).rem_euclid(360.0)), &mut best)?;
                        }
                    }
                }
            }
        }
    }
    Ok((best, tried))
}

/// Scans the directions (or scores only `fixed`) for a map, its geometry and the support.
pub(crate) fn scan(
    data: &Data,
    geom: &NvGeometry,
    support: &[f32],
    fixed: Option<(f64, f64)>,
) -> Result<DirectionScan> {
    let (h, w) = (data.h, data.w);
    if support.len() != h * w {
        return Err(Error::arg(
            "direction scan",
            "support size differs from the map",
        ));
    }
    let fwd = NvForward::new(h, w, geom)?;
    let zero = data.zero_field();
    let mut p99s: Vec<((f64, f64), f64)> = Vec::new();
    let (best, tried) = search(fixed, |d| {
        let (s, p99) = score(data, geom, &fwd, support, d, &zero)?;
        p99s.push((d, p99));
        Ok(Some(s))
    })?;
    let (dir, _) =
        best.ok_or_else(|| Error::arg("direction scan", "no direction could be scored"))?;
    let p99 = p99s.iter().find(|(d, _)| *d == dir).map_or(0.0, |x| x.1);
    Ok(DirectionScan {
        best: dir,
        tried,
        m_p99: p99,
        ms_estimate: (MS_FACTOR * p99).max(f64::MIN_POSITIVE),
    })
}

/// A support and a direction found together from the data ([`support_scan`]).
#[derive(Clone, Debug)]
pub struct SupportScan {
    /// The support of the best direction.
    pub support: AutoSupport,
    /// The best direction (theta, phi) in degrees.
    pub direction: (f64, f64),
    /// Its misfit relative to the zero field (below 1 explains something).
    pub score: f64,
    /// Every direction tried with its score.
    pub tried: Vec<((f64, f64), f64)>,
}

/// A support when neither it nor the magnetisation's direction is known: for each direction
/// of the scan's grid, the classical inversion along it is thresholded
/// ([`crate::nv::auto_support`] with [`SupportRule::Inversion`], grown by half the inversion's
/// shortest wavelength, every component of at least 2 % of the largest's area kept) and the inversion inside that support is
/// scored as in the direction scan (its field, with the best scale and a fitted plane, against
/// the map); the best direction's support wins. For a uniformly magnetised flake the right
/// direction gives a flat plateau over the whole flake, a wrong one fragments or edges.
pub fn support_scan(
    bnv: &[f32],
    h: usize,
    w: usize,
    geom: &NvGeometry,
    ignore_nan: bool,
) -> Result<SupportScan> {
    let data = Data::new(
        bnv,
        h,
        w,
        geom.pixel,
        Background::Plane,
        ignore_nan,
        None,
        Device::Cpu,
    )?;
    let fwd = NvForward::new(h, w, geom)?;
    let zero = data.zero_field();
    let map = data.with_nan();
    // grown by half the inversion's shortest wavelength: a support a little too large costs
    // the fit little, one too small forces the field of the edges into the interior
    let wavelength = default_wavelength(geom);
    let opts = SupportOptions {
        grow: Some((wavelength / (2.0 * geom.pixel)).ceil() as i64),
        wavelength: Some(wavelength),
        // several flakes in one map: every one of at least 2 % of the largest's area
        min_component: Some(0.02),
        ..Default::default()
    };
    let mut supports: Vec<((f64, f64), AutoSupport)> = Vec::new();
    let (best, tried) = search(None, |d| {
        let rule = SupportRule::Inversion {
            direction: direction_from_angles(d.0, d.1),
        };
        let Ok(sup) = auto_support_with(&map, h, w, geom, rule, &opts) else {
            return Ok(None);
        };
        let (s, _) = score(&data, geom, &fwd, &sup.support, d, &zero)?;
        supports.push((d, sup));
        Ok(Some(s))
    })?;
    let (direction, score) = best.ok_or_else(|| {
        Error::arg(
            "automatic support",
            "no direction gave a classical inversion with contrast",
        )
    })?;
    let support = supports
        .into_iter()
        .find(|(d, _)| *d == direction)
        .map(|x| x.1)
        .ok_or_else(|| Error::arg("automatic support", "lost the best support"))?;
    Ok(SupportScan {
        support,
        direction,
        score,
        tried,
    })
}

/// A support resolved from its textual spec ([`support_from_spec`]).
#[derive(Clone, Debug)]
pub enum SupportFrom {
    /// `ellipse:RX,RY[,DEG]` or `rect:AX,AY`: the support (H, W), 1 inside.
    Shape(Vec<f32>),
    /// `auto:gradient`, `auto:inversion`, or `auto` with a known direction: one rule's support.
    Rule(AutoSupport),
    /// `auto` / `auto:scan` without a direction: the best direction's support of a scan.
    Scan(SupportScan),
}

impl SupportFrom {
    /// The support (H, W): 1 inside, 0 outside.
    pub fn support(&self) -> &[f32] {
        match self {
            SupportFrom::Shape(s) => s,
            SupportFrom::Rule(a) => &a.support,
            SupportFrom::Scan(s) => &s.support.support,
        }
    }

    /// The automatic support's details (threshold, score map), when it was found from the data.
    pub fn auto(&self) -> Option<&AutoSupport> {
        match self {
            SupportFrom::Shape(_) => None,
            SupportFrom::Rule(a) => Some(a),
            SupportFrom::Scan(s) => Some(&s.support),
        }
    }
}

/// The support a spec names (what `nv reconstruct --support` takes besides a file):
/// `ellipse:RX,RY[,DEG]` / `rect:AX,AY` (semi-axes with units, centred in the map), or `auto`
/// (the classical inversion along `direction` thresholded when one is given, else
/// [`support_scan`]), `auto:scan`, `auto:gradient`, `auto:inversion` (along `direction`, else
/// z). `Ok(None)` when the spec is none of these (the caller may read it as a file name).
pub fn support_from_spec(
    spec: &str,
    bnv: &[f32],
    h: usize,
    w: usize,
    geom: &NvGeometry,
    direction: Option<[f64; 3]>,
    ignore_nan: bool,
) -> Result<Option<SupportFrom>> {
    if spec != "auto" && !spec.starts_with("auto:") {
        return Ok(
            crate::physics::nv::mask::parse_support_shape(spec, h, w, geom.pixel)?
                .map(SupportFrom::Shape),
        );
    }
    let rule = match (spec, direction) {
        ("auto" | "auto:inversion", Some(direction)) => Some(SupportRule::Inversion { direction }),
        ("auto" | "auto:scan", _) => None,
        ("auto:gradient", _) => Some(SupportRule::Gradient),
        ("auto:inversion", None) => Some(SupportRule::Inversion {
            direction: [0.0, 0.0, 1.0],
        }),
        (other, _) => {
            return Err(Error::arg(
                "support",
                format!("{other}: expected auto, auto:scan, auto:gradient or auto:inversion"),
            ))
        }
    };
    Ok(Some(match rule {
        Some(rule) => SupportFrom::Rule(crate::physics::nv::support::auto_support(
            bnv, h, w, geom, rule,
        )?),
        None => SupportFrom::Scan(support_scan(bnv, h, w, geom, ignore_nan)?),
    }))
}
