//! A scan of classical inversions over magnetisation directions: for each direction `u`, the
//! Fourier inversion along `u` (Hanning filter), kept inside the support, pushed back through the
//! forward model with the best scale and the fitted background; the direction whose field fits
//! the data best is where the direction model starts, and its inversion gives Ms when it is to
//! be chosen from the data. A coarse grid over the hemisphere (u and -u are the same model:
//! the amplitude takes either sign), then two finer passes around the best.

use super::data::Data;
use crate::engine::autograd::no_grad;
use crate::engine::tensor::Tensor;
use crate::error::{Error, Result};
use crate::physics::nv::forward::{NvForward, NvGeometry};
use crate::physics::nv::invert::{direction_from_angles, invert, Filter, InversionConfig};

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
    /// [`MS_FACTOR`] times `m_p99` (A/m).
    pub ms_estimate: f64,
}

/// The misfit ratio and the p99 of |M| (A/m) of the inversion along one direction.
fn score(
    data: &Data,
    geom: &NvGeometry,
    fwd: &NvForward,
    support: &[f32],
    dir: (f64, f64),
    zero_sse: f64,
) -> Result<(f64, f64)> {
    let (h, w) = (data.h, data.w);
    let u = direction_from_angles(dir.0, dir.1);
    let wavelength = (2.0 * geom.standoff).max(3.0 * geom.pixel);
    let inv = invert(
        &data.with_nan(),
        h,
        w,
        geom,
        &InversionConfig::new(u, Filter::Hanning { wavelength }),
    )?;
    let amp: Vec<f32> = inv.m.iter().zip(support).map(|(m, s)| m * s).collect();
    let mag: Vec<f32> = u
        .iter()
        .flat_map(|&uc| amp.iter().map(move |&a| a * uc as f32))
        .collect();
    let g = no_grad(|| fwd.bnv(&Tensor::from_shape_vec(&[1, 3, h, w], mag)?))?.to_vec()?;
    // best scale a of the model next to the background: project both on the complement
    let r0 = data.residual_perp(&vec![0.0; h * w]);
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
    Ok((sse / zero_sse.max(f64::MIN_POSITIVE), p99))
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
    let zero_sse = data
        .residual_perp(&vec![0.0; h * w])
        .iter()
        .map(|x| x * x)
        .sum::<f64>();
    let mut tried: Vec<((f64, f64), f64)> = Vec::new();
    // (score, direction, p99) of the best direction so far
    let mut best = (f64::INFINITY, (0.0, 0.0), 0.0);
    let mut try_dir = |d: (f64, f64), best: &mut (f64, (f64, f64), f64)| -> Result<()> {
        let (s, p99) = score(data, geom, &fwd, support, d, zero_sse)?;
        tried.push((d, s));
        if s < best.0 {
            *best = (s, d, p99);
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
                let (t0, p0) = best.1;
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
    let (_, dir, p99) = best;
    Ok(DirectionScan {
        best: dir,
        tried,
        m_p99: p99,
        ms_estimate: (MS_FACTOR * p99).max(f64::MIN_POSITIVE),
    })
}
