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
    /// A vortex: M tangential to circles about the support's centre (its bounding box's,
    /// scaled to its aspect ratio); `ccw` = M along (-y, x) about the centre. The core's Mz
    /// needs `with_mz`.
    Vortex {
        /// Counter-clockwise circulation (in SPEC's frame).
        ccw: bool,
    },
    /// Support only: every in-plane component free (value 1).
    None,
}

impl std::str::FromStr for Preset {
    type Err = Error;
    fn from_str(s: &str) -> Result<Preset> {
        match s {
            "landau" => Ok(Preset::Landau { ccw: true }),
            "dipole" => Ok(Preset::Dipole),
            "vortex" => Ok(Preset::Vortex { ccw: true }),
            "none" => Ok(Preset::None),
            _ => Err(Error::arg(
                "mask preset",
                format!("unknown preset '{s}' (expected landau, dipole, vortex or none)"),
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
                Preset::Vortex { ccw } => {
                    // tangent to the ellipse through the pixel: (-v / ay^2, u / ax^2) direction
                    // in pattern coordinates, normalised, rotated by +angle
                    let (dx, dy) = (col as f64 - cx, r as f64 - cy);
                    let (u, v) = (c * dx + s * dy, -s * dx + c * dy);
                    let (tx, ty) = (-v / (ay * ay).max(1e-12), u / (ax * ax).max(1e-12));
                    let n = tx.hypot(ty);
                    let (tx, ty) = if n > 0.0 {
                        (tx / n, ty / n)
                    } else {
                        (0.0, 0.0)
                    };
                    let sign = if ccw { 1.0 } else { -1.0 };
                    (sign * (c * tx - s * ty), sign * (s * tx + c * ty))
                }
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

/// A support given as a centred shape: `ellipse:RX,RY[,DEG]` (semi-axes, rotation in degrees)
/// or `rect:AX,AY` (half-widths), lengths with units (`230nm`, `0.15um`; a bare number is
/// metres), for an `(h, w)` map of `pixel` metres. `Ok(None)` when `spec` is not a shape (e.g. a
/// file name).
///
/// ```
/// use magprior::nv::mask::parse_support_shape;
/// // half-widths 4 x 2 pixels around the centre (7.5, 7.5): columns 4..=11, rows 6..=9
/// let s = parse_support_shape("rect:20nm,10nm", 16, 16, 5e-9).unwrap().unwrap();
/// assert_eq!(s.iter().filter(|&&v| v > 0.5).count(), 8 * 4);
/// assert!(parse_support_shape("support.png", 16, 16, 5e-9).unwrap().is_none());
/// ```
pub fn parse_support_shape(spec: &str, h: usize, w: usize, pixel: f64) -> Result<Option<Vec<f32>>> {
    const OP: &str = "support";
    let Some((kind, rest)) = spec.split_once(':') else {
        return Ok(None);
    };
    if !matches!(kind, "ellipse" | "rect") {
        return Ok(None);
    }
    let parts: Vec<&str> = rest.split(',').collect();
    let len = |s: &str| -> Result<f64> {
        let v =
            crate::units::parse_length(s).map_err(|e| Error::arg(OP, format!("{spec}: {e}")))?;
        if v <= 0.0 {
            return Err(Error::arg(OP, format!("{spec}: sizes must be positive")));
        }
        Ok(v / pixel)
    };
    let (cx, cy) = ((w as f64 - 1.0) / 2.0, (h as f64 - 1.0) / 2.0);
    match (kind, parts.len()) {
        ("ellipse", 2 | 3) => {
            let angle = match parts.get(2) {
                Some(a) => a
                    .trim()
                    .parse::<f64>()
                    .map_err(|_| Error::arg(OP, format!("{spec}: bad angle '{a}'")))?,
                None => 0.0,
            };
            let (rx, ry) = (len(parts[0])?, len(parts[1])?);
            Ok(Some(ellipse_support(h, w, cx, cy, rx, ry, angle)))
        }
        ("rect", 2) => Ok(Some(rect_support(
            h,
            w,
            cx,
            cy,
            len(parts[0])?,
            len(parts[1])?,
        ))),
        _ => Err(Error::arg(
            OP,
            format!("{spec}: expected ellipse:RX,RY[,DEG] or rect:AX,AY"),
        )),
    }
}

/// What an array read from a file describes.
#[derive(Clone, Debug, PartialEq)]
pub enum MaskFile {
    /// A signed per-component mask (2|3, H, W) with values in [-1, 1].
    Mask(Mask),
    /// A support (H, W): 1 where the value is > 0.5, else 0.
    Support(Vec<f32>),
}

/// Interprets an array read from `path` (`data` with `shape`) as a mask or a support for an
/// `(h, w)` map; the error names the file and the problem.
pub fn mask_from_array(
    path: &std::path::Path,
    data: Vec<f32>,
    shape: &[usize],
    h: usize,
    w: usize,
) -> Result<MaskFile> {
    let bad = |msg: String| Error::Format {
        path: path.to_path_buf(),
        msg,
    };
    if shape.len() >= 2 && shape[shape.len() - 2..] != [h, w] {
        return Err(bad(format!("mask is {shape:?} but the map is {h}x{w}")));
    }
    match shape.len() {
        3 if (2..=3).contains(&shape[0]) => {
            if data.iter().any(|v| v.is_nan() || v.abs() > 1.0 + 1e-6) {
                return Err(bad("mask values must lie in [-1, 1]".into()));
            }
            Ok(MaskFile::Mask(Mask {
                channels: shape[0],
                h,
                w,
                data,
            }))
        }
        2 => Ok(MaskFile::Support(
            data.iter()
                .map(|&v| if v > 0.5 { 1.0 } else { 0.0 })
                .collect(),
        )),
        _ => Err(bad(format!(
            "expected a (2|3, H, W) mask or an (H, W) support, got {shape:?}"
        ))),
    }
}

/// How a mask is generated inside a support.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MaskSpec {
    /// The pattern.
    pub preset: Preset,
    /// Rotation of the pattern and its vectors (degrees, from +x towards +y).
    pub angle_deg: f64,
    /// A third component (Mz) equal to the support.
    pub with_mz: bool,
    /// Gaussian blur of the edges (pixels; 0 = none).
    pub blur: f64,
}

impl MaskSpec {
    /// The mask inside `support` (h, w).
    pub fn build(&self, support: &[f32], h: usize, w: usize) -> Result<Mask> {
        let m = preset_mask(support, h, w, self.preset, self.angle_deg, self.with_mz)?;
        Ok(if self.blur > 0.0 {
            m.blurred(self.blur)
        } else {
            m
        })
    }
}

impl Mask {
    /// Non-zero (pixel, component) entries: the mask's freedom, which decides how well a mask
    /// can fit (compare fits only between masks of equal freedom, SPEC section 3).
    pub fn freedom(&self) -> usize {
        self.data.iter().filter(|v| v.abs() > 1e-6).count()
    }

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
        // the vortex: tangential everywhere, the same sense as the Landau domains
        let v = preset_mask(&sup, h, w, Preset::Vortex { ccw: true }, 0.0, false).unwrap();
        let vat = |r: usize, c: usize| (v.data[r * w + c], v.data[h * w + r * w + c]);
        assert_eq!(vat(10, 17), (0.0, 1.0));
        assert_eq!(vat(17, 10), (-1.0, 0.0));
        let (x, y) = vat(14, 14); // below right: along (-1, 1) / sqrt 2
        assert!((x + 0.70710677).abs() < 1e-6 && (y - 0.70710677).abs() < 1e-6);
        let cw = preset_mask(&sup, h, w, Preset::Vortex { ccw: false }, 0.0, false).unwrap();
        assert_eq!(cw.data[10 * w + 17 + h * w], -1.0);
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
