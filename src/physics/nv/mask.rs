//! Masks for NV-DIP (SPEC section 3): a support (where the film is) and a per-component pattern
//! inside it. Mask values in [-1, 1] scale each magnetisation component; 0 forbids it there.
//! Coordinates follow SPEC: x = column, y = row (pointing down the image), angles from +x
//! towards +y. Rotating a preset rotates both the pattern and the vectors.

use crate::error::{Error, Result};
use crate::physics::signal::{self, Boundary};

/// A generated or loaded mask: `(channels, h, w)` row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Mask {
    /// 2 (Mx, My) or 3 (with Mz).
    pub channels: usize,
    /// Rows.
    pub h: usize,
    /// Columns.
    pub w: usize,
    /// Values, component-first.
    pub data: Vec<f32>,
}

/// Domain pattern placed inside a support.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Preset {
    /// Four flux-closure domains split by the diagonals of the support's bounding box;
    /// `ccw` = M circulates along (-y, x).
    Landau {
        /// Counter-clockwise circulation (in SPEC's frame).
        ccw: bool,
    },
    /// Uniform magnetisation along the mask angle.
    Dipole,
    /// Support only: every in-plane component free (value 1).
    None,
}

impl std::str::FromStr for Preset {
    type Err = Error;
    fn from_str(s: &str) -> Result<Preset> {
        match s {
            "landau" => Ok(Preset::Landau { ccw: true }),
            "dipole" => Ok(Preset::Dipole),
            "none" => Ok(Preset::None),
            _ => Err(Error::arg(
                "mask preset",
                format!("unknown preset '{s}' (expected landau, dipole or none)"),
            )),
        }
    }
}

/// An elliptical support: 1 inside, 0 outside. Centre `(cx, cy)` and semi-axes in pixels,
/// `angle_deg` rotates the `rx` axis from +x towards +y.
pub fn ellipse_support(
    h: usize,
    w: usize,
    cx: f64,
    cy: f64,
    rx: f64,
    ry: f64,
    angle_deg: f64,
) -> Vec<f32> {
    let (s, c) = angle_deg.to_radians().sin_cos();
    let mut out = vec![0f32; h * w];
    for r in 0..h {
        for col in 0..w {
            let (dx, dy) = (col as f64 - cx, r as f64 - cy);
            let (u, v) = (c * dx + s * dy, -s * dx + c * dy);
            if (u / rx).powi(2) + (v / ry).powi(2) <= 1.0 {
                out[r * w + col] = 1.0;
            }
        }
    }
    out
}

/// A rectangular support of half-widths `(ax, ay)` pixels around `(cx, cy)`.
pub fn rect_support(h: usize, w: usize, cx: f64, cy: f64, ax: f64, ay: f64) -> Vec<f32> {
    let mut out = vec![0f32; h * w];
    for r in 0..h {
        for c in 0..w {
            if (c as f64 - cx).abs() <= ax && (r as f64 - cy).abs() <= ay {
                out[r * w + c] = 1.0;
            }
        }
    }
    out
}

/// Bounding box of `support > 0.5`: centre (cx, cy) and half sizes (ax, ay) in pixels.
fn bounding_box(support: &[f32], h: usize, w: usize) -> Option<(f64, f64, f64, f64)> {
    let (mut r0, mut r1, mut c0, mut c1) = (usize::MAX, 0, usize::MAX, 0);
    for r in 0..h {
        for c in 0..w {
            if support[r * w + c] > 0.5 {
                r0 = r0.min(r);
                r1 = r1.max(r);
                c0 = c0.min(c);
                c1 = c1.max(c);
            }
        }
    }
    (r0 != usize::MAX).then(|| {
        (
            (c0 + c1) as f64 / 2.0,
            (r0 + r1) as f64 / 2.0,
            (c1 - c0 + 1) as f64 / 2.0,
            (r1 - r0 + 1) as f64 / 2.0,
        )
    })
}

/// Places `preset` inside `support` (h, w), rotated by `angle_deg`; `with_mz` adds a third
/// component equal to the support.
pub fn preset_mask(
    support: &[f32],
    h: usize,
    w: usize,
    preset: Preset,
    angle_deg: f64,
    with_mz: bool,
) -> Result<Mask> {
    if support.len() != h * w {
        return Err(Error::arg(
            "mask",
            format!("support has {} values for {h}x{w}", support.len()),
        ));
    }
    let (cx, cy, ax, ay) = bounding_box(support, h, w)
        .ok_or_else(|| Error::arg("mask", "the support is empty (no pixel > 0.5)"))?;
    let (s, c) = angle_deg.to_radians().sin_cos();
    let channels = if with_mz { 3 } else { 2 };
    let mut data = vec![0f32; channels * h * w];
    for r in 0..h {
        for col in 0..w {
            let i = r * w + col;
            let sup = support[i];
            if sup == 0.0 {
                continue;
            }
            let (mx, my) = match preset {
                Preset::None => (1.0, 1.0),
                Preset::Dipole => (c, s),
                Preset::Landau { ccw } => {
                    // pattern coordinates: rotate the position by -angle
                    let (dx, dy) = (col as f64 - cx, r as f64 - cy);
                    let (u, v) = (c * dx + s * dy, -s * dx + c * dy);
                    let (m0x, m0y) = if (u / ax).abs() >= (v / ay).abs() {
                        (0.0, u.signum())
                    } else {
                        (-v.signum(), 0.0)
                    };
                    let sign = if ccw { 1.0 } else { -1.0 };
                    // rotate the vector by +angle
                    (sign * (c * m0x - s * m0y), sign * (s * m0x + c * m0y))
                }
            };
            data[i] = (mx * sup as f64) as f32;
            data[h * w + i] = (my * sup as f64) as f32;
            if with_mz {
                data[2 * h * w + i] = sup;
            }
        }
    }
    Ok(Mask {
        channels,
        h,
        w,
        data,
    })
}

/// Gaussian blur (sigma in pixels, zero outside, truncated at 3 sigma) of each `h x w` plane.
pub fn gaussian_blur(data: &[f32], h: usize, w: usize, sigma: f64) -> Vec<f32> {
    signal::gaussian_filter(data, h, w, sigma, Boundary::Zero, 3.0)
}

impl Mask {
    /// Blurs the mask's edges with a Gaussian of `sigma` pixels.
    pub fn blurred(mut self, sigma: f64) -> Mask {
        self.data = gaussian_blur(&self.data, self.h, self.w, sigma);
        self
    }
    /// Where any component is non-zero.
    pub fn support(&self) -> Vec<bool> {
        let n = self.h * self.w;
        (0..n)
            .map(|i| (0..self.channels).any(|c| self.data[c * n + i] != 0.0))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn landau_circulates_ccw_and_rotates_vectors() {
        let (h, w) = (21, 21);
        let sup = ellipse_support(h, w, 10.0, 10.0, 9.0, 9.0, 0.0);
        let m = preset_mask(&sup, h, w, Preset::Landau { ccw: true }, 0.0, false).unwrap();
        let at = |r: usize, c: usize| (m.data[r * w + c], m.data[h * w + r * w + c]);
        assert_eq!(at(10, 17), (0.0, 1.0)); // right domain: +y
        assert_eq!(at(17, 10), (-1.0, 0.0)); // y > 0 (down): -x
        assert_eq!(at(10, 3), (0.0, -1.0));
        assert_eq!(at(3, 10), (1.0, 0.0));
        assert_eq!(at(0, 0), (0.0, 0.0)); // outside the ellipse
                                          // at 90 deg a circular Landau pattern maps onto itself (off the domain walls)
        let m90 = preset_mask(&sup, h, w, Preset::Landau { ccw: true }, 90.0, false).unwrap();
        for r in 0..h {
            for c in 0..w {
                let (dx, dy) = (c as i64 - 10, r as i64 - 10);
                if dx.abs() == dy.abs() {
                    continue;
                }
                for ch in 0..2 {
                    let i = ch * h * w + r * w + c;
                    assert!((m.data[i] - m90.data[i]).abs() < 1e-6, "({r},{c})");
                }
            }
        }
        let d = preset_mask(&sup, h, w, Preset::Dipole, 90.0, true).unwrap();
        assert!(
            d.data[10 * w + 10].abs() < 1e-6 && (d.data[h * w + 10 * w + 10] - 1.0).abs() < 1e-6
        );
        assert_eq!(d.data[2 * h * w + 10 * w + 10], 1.0);
    }
    #[test]
    fn blur_keeps_the_mean_inside() {
        let sup = rect_support(16, 16, 7.5, 7.5, 4.0, 4.0);
        let b = gaussian_blur(&sup, 16, 16, 1.0);
        let (s0, s1): (f32, f32) = (sup.iter().sum(), b.iter().sum());
        assert!((s0 - s1).abs() < 1e-3 * s0);
        assert!(b[0] < 1e-6 && b[7 * 16 + 7] > 0.99);
    }
}
