//! Sample tilt in the Lorentz-TEM forward model (SPEC section 10): the magnetic phase of a
//! tilted film or 3-D body, by rotating the sample, slicing it along its normal and projecting
//! each slice along the beam.
//!
//! # Conventions
//! Frames follow SPEC section 1: `x = col * pixel`, `y = row * pixel` (y runs *down* the rows),
//! `z` along the electron beam, and `(x, y, z)` is treated as a right-handed frame
//! (`x^ cross y^ = z^`). The sample is first rotated about `+x` by `x_deg`, then about the
//! (fixed, beam-frame) `+y` axis by `y_deg`, each right-handed (counter-clockwise looking down the
//! axis towards the origin). The rotation `R = Ry(y_deg) Rx(x_deg)` is *active*: a sample-frame
//! point or vector `r` goes to `R r` in the beam frame,
//!
//! ```text
//! Rx(a) = [[1, 0, 0], [0, cos a, -sin a], [0, sin a, cos a]]
//! Ry(b) = [[cos b, 0, sin b], [0, 1, 0], [-sin b, 0, cos b]]
//! R     = [[cb, sb sa, sb ca], [0, ca, -sa], [-sb, cb sa, cb ca]]
//! ```
//!
//! So a positive `x_deg` turns the film normal `+z` towards `-y` (towards the top rows), and a
//! positive `y_deg` turns it towards `+x`. An out-of-plane moment `+Mz` tilted by `x_deg = a` thus
//! looks, to the beam, like an in-plane `My' = -Mz sin a`.
//!
//! The rotation axis passes through the centre of the grid: pixel `((h-1)/2, (w-1)/2)` and, for a
//! volume, the mid-plane between slices `0` and `nz-1`.
//!
//! # Method
//! The sample-frame magnetisation `M` is rotated into the beam frame (`M' = R M`) and the volume is
//! cut into slices along the sample normal. A slice at height `z` (sample frame, from the
//! mid-plane) lands in the beam frame at
//! `(x', y') = A (x, y) + z (sb ca, -sa)`, `A = [[cb, sb sa], [0, ca]]`: shifted laterally by
//! `z sin(tilt)` (that is `z' tan(tilt)` with `z' = z cos(tilt)` its height along the beam) and
//! foreshortened by `cos(tilt)` along each tilt direction (for a tilt about both axes `A` also
//! shears by `sb sa`). The beam crosses the slice of thickness `dz` along a path
//! `dz / (n . z^) = dz / (cos(x_deg) cos(y_deg))` (`n = R z^` the tilted normal), while the
//! slice's area shrinks by `det A = cos(x_deg) cos(y_deg)` in projection, so the projected moment
//! `path * area` of every slice is conserved: `int P' d^2r' = dz int M' d^2r`.
//!
//! The resampling is done in Fourier space, without interpolation: by the shift theorem and the
//! scaling of the coordinates, the beam-frame spectrum of the projected moment is
//!
//! ```text
//! P'(k) = sum_slices dz e^{-i k.(shift)} F_slice(A^T k),
//! ```
//!
//! where `F_slice` is the slice's discrete-time Fourier transform evaluated exactly at the
//! (off-grid) sample-frame frequencies `A^T k` (the path-length factor and `det A` cancel). The
//! two axes separate, so a slice costs `O(h w (h + w))`. Each voxel is treated as a point moment
//! at its centre, band-limited onto the beam grid (sinc resampling): at zero tilt the sums are
//! plain DFTs and the result equals [`super::forward::magnetic_phase`]. The phase is SPEC section
//! 4's formula applied to the beam-frame in-plane components,
//! `phi(k) = -i (pi mu0 / Phi0) (kx P'y(k) - ky P'x(k)) / k^2`, `phi(0) = 0`.
//!
//! The output keeps the input grid `(h, w)` and the beam frame is periodic, like
//! `magnetic_phase`: pad the sample (with zeros) so that its tilted projection stays inside the
//! field of view, otherwise it wraps around. An extended film that fills the grid does *not* stay
//! periodic under tilt (foreshortening changes its period, and its edge becomes visible): image
//! the difference from a uniform background instead (a uniform infinite film has no contrast).

use crate::error::{Error, Result};
use crate::physics::constants::{MU0, PHI0};
use crate::physics::signal::fftfreq;
use crate::{Tensor, C32};
use std::f64::consts::PI;

/// Sample tilt angles in degrees: a right-handed rotation of the sample about `+x` (the axis
/// along the columns, i.e. along a row of the image) by `x_deg` first, then about `+y` (down the
/// rows) by `y_deg`; `z` is along the beam (see the module docs for the matrices). Both must lie
/// strictly inside (-90, 90) degrees.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Tilt {
    /// Rotation about the x axis, degrees (applied first).
    pub x_deg: f64,
    /// Rotation about the y axis, degrees (applied second).
    pub y_deg: f64,
}

impl Tilt {
    /// The rotation matrix `R = Ry(y_deg) Rx(x_deg)` taking sample-frame vectors to the beam
    /// frame, row-major.
    pub fn matrix(&self) -> [[f64; 3]; 3] {
        let (sa, ca) = self.x_deg.to_radians().sin_cos();
        let (sb, cb) = self.y_deg.to_radians().sin_cos();
        [
            [cb, sb * sa, sb * ca],
            [0.0, ca, -sa],
            [-sb, cb * sa, cb * ca],
        ]
    }

    fn validate(&self, op: &'static str) -> Result<()> {
        for (name, v) in [("x", self.x_deg), ("y", self.y_deg)] {
            if !(v.is_finite() && v.abs() < 90.0) {
                return Err(Error::arg(
                    op,
                    format!("tilt about {name} must be inside (-90, 90) degrees, got {v}"),
                ));
            }
        }
        Ok(())
    }
}

/// Magnetic phase (rad) of a tilted film: `m` is (3, h, w) row-major, the sample-frame
/// magnetisation `(Mx, My, Mz)` in A/m, uniform through the thickness `t_nm`; the film is cut
/// into `layers` slices along its normal (more layers resolve the lateral smear `t sin(tilt)`
/// better; 1 is exact at zero tilt). Pixel `scale_nm`. Same as [`magnetic_phase_tilted_volume`]
/// with `layers` copies of `m`, `dz = t / layers`. At zero tilt this is
/// [`super::forward::magnetic_phase`] of `(Mx, My)`. Periodic `(h, w)` output: pad the film so
/// its tilted projection stays inside (see the module docs).
pub fn magnetic_phase_tilted(
    m: &[f32],
    h: usize,
    w: usize,
    layers: usize,
    t_nm: f64,
    scale_nm: f64,
    tilt: Tilt,
) -> Result<Vec<f32>> {
    const OP: &str = "magnetic_phase_tilted";
    if h == 0 || w == 0 || layers == 0 || m.len() != 3 * h * w {
        return Err(Error::arg(
            OP,
            format!(
                "expected (3, h, w) = (3, {h}, {w}) values and layers >= 1, got {} values and {layers} layers",
                m.len()
            ),
        ));
    }
    if !(t_nm > 0.0 && t_nm.is_finite()) {
        return Err(Error::arg(
            OP,
            format!("thickness must be positive, got {t_nm}"),
        ));
    }
    let n = h * w;
    let slice = |_: usize| (&m[..n], &m[n..2 * n], &m[2 * n..]);
    project_phase(
        OP,
        &slice,
        layers,
        h,
        w,
        t_nm / layers as f64,
        scale_nm,
        tilt,
    )
}

/// Magnetic phase (rad) of a tilted 3-D body: `m` is (3, nz, h, w) row-major, the sample-frame
/// magnetisation `(Mx, My, Mz)` in A/m on voxels `scale_nm` wide and `dz_nm` thick (slice `l` at
/// height `(l - (nz-1)/2) dz` above the mid-plane). Rotated by `tilt` about the grid centre and
/// projected along the beam onto the same `(h, w)` pixel grid, periodic; see the module docs for
/// the method and the conventions. Pad the volume so its tilted projection stays inside.
pub fn magnetic_phase_tilted_volume(
    m: &[f32],
    nz: usize,
    h: usize,
    w: usize,
    dz_nm: f64,
    scale_nm: f64,
    tilt: Tilt,
) -> Result<Vec<f32>> {
    const OP: &str = "magnetic_phase_tilted_volume";
    let n = h * w;
    if n == 0 || nz == 0 || m.len() != 3 * nz * n {
        return Err(Error::arg(
            OP,
            format!(
                "expected (3, nz, h, w) = (3, {nz}, {h}, {w}) values, got {}",
                m.len()
            ),
        ));
    }
    let comp = |c: usize, l: usize| &m[(c * nz + l) * n..(c * nz + l + 1) * n];
    let slice = |l: usize| (comp(0, l), comp(1, l), comp(2, l));
    project_phase(OP, &slice, nz, h, w, dz_nm, scale_nm, tilt)
}

/// `(Mx, My, Mz)` of one slice, (h, w) each.
type SliceFn<'a> = dyn Fn(usize) -> (&'a [f32], &'a [f32], &'a [f32]) + 'a;

/// The shared core: project `nz` slices (given by `slice`) of thickness `dz_nm` and take the
/// phase of the projected beam-frame moment.
#[allow(clippy::too_many_arguments)]
fn project_phase(
    op: &'static str,
    slice: &SliceFn<'_>,
    nz: usize,
    h: usize,
    w: usize,
    dz_nm: f64,
    scale_nm: f64,
    tilt: Tilt,
) -> Result<Vec<f32>> {
    tilt.validate(op)?;
    if !(dz_nm > 0.0 && scale_nm > 0.0 && dz_nm.is_finite() && scale_nm.is_finite()) {
        return Err(Error::arg(
            op,
            format!("slice thickness and scale must be positive, got {dz_nm} and {scale_nm}"),
        ));
    }
    let (sa, ca) = tilt.x_deg.to_radians().sin_cos();
    let (sb, cb) = tilt.y_deg.to_radians().sin_cos();
    let rot = tilt.matrix();
    // wave numbers in rad per pixel; positions in pixels from the rotation axis
    let tx: Vec<f64> = fftfreq(w, 1.0).iter().map(|q| 2.0 * PI * q).collect();
    let ty: Vec<f64> = fftfreq(h, 1.0).iter().map(|q| 2.0 * PI * q).collect();
    let (cx, cy, cz) = (
        (w as f64 - 1.0) / 2.0,
        (h as f64 - 1.0) / 2.0,
        (nz as f64 - 1.0) / 2.0,
    );
    let dz_px = dz_nm / scale_nm;
    // sample-frame frequencies of the beam-frame k = (tx, ty):
    //   qx = cb tx,  qy = sb sa tx + ca ty,  qz = sb ca tx - sa ty
    // x pass kernel e^{-i cb tx_j (c - cx)}, [j][c]
    let kx_re_im = |j: usize, c: usize| {
        let a = -cb * tx[j] * (c as f64 - cx);
        (a.cos(), a.sin())
    };
    let mut kxr = vec![0f64; w * w];
    let mut kxi = vec![0f64; w * w];
    for j in 0..w {
        for c in 0..w {
            let (re, im) = kx_re_im(j, c);
            kxr[j * w + c] = re;
            kxi[j * w + c] = im;
        }
    }
    // y pass kernel e^{-i ca ty_i (r - cy)}, [i][r]
    let mut kyr = vec![0f64; h * h];
    let mut kyi = vec![0f64; h * h];
    for i in 0..h {
        for r in 0..h {
            let a = -ca * ty[i] * (r as f64 - cy);
            kyr[i * h + r] = a.cos();
            kyi[i * h + r] = a.sin();
        }
    }
    let n = h * w;
    // accumulated beam-frame spectra of P'x, P'y (in units of A/m * pixel)
    let mut acc = [vec![0f64; n], vec![0f64; n], vec![0f64; n], vec![0f64; n]];
    let mut comp = [vec![0f64; n], vec![0f64; n]];
    let (mut xr, mut xi) = (vec![0f64; n], vec![0f64; n]);
    let (mut yr, mut yi) = (vec![0f64; n], vec![0f64; n]);
    let mut nonzero = vec![false; h];
    for l in 0..nz {
        let (mx, my, mz) = slice(l);
        let z = (l as f64 - cz) * dz_px;
        // beam-frame in-plane components M' = R M (rows 0 and 1 of R)
        let mut any = false;
        for i in 0..n {
            let v = [mx[i] as f64, my[i] as f64, mz[i] as f64];
            comp[0][i] = rot[0][0] * v[0] + rot[0][1] * v[1] + rot[0][2] * v[2];
            comp[1][i] = rot[1][0] * v[0] + rot[1][1] * v[1] + rot[1][2] * v[2];
            any |= comp[0][i] != 0.0 || comp[1][i] != 0.0;
        }
        if !any {
            continue;
        }
        for (ci, f) in comp.iter().enumerate() {
            // x pass: X[r][j] = sum_c f[r][c] e^{-i cb tx_j (c - cx)}, then the kx-dependent
            // factors of the y and z phases, e^{-i sb tx_j (sa (r - cy) + ca z)}
            for r in 0..h {
                let row = &f[r * w..(r + 1) * w];
                nonzero[r] = row.iter().any(|&v| v != 0.0);
                if !nonzero[r] {
                    continue;
                }
                for j in 0..w {
                    let (kr, ki) = (&kxr[j * w..(j + 1) * w], &kxi[j * w..(j + 1) * w]);
                    let (mut sr, mut si) = (0.0, 0.0);
                    for c in 0..w {
                        sr += row[c] * kr[c];
                        si += row[c] * ki[c];
                    }
                    let (pi_, pr) = (-sb * tx[j] * (sa * (r as f64 - cy) + ca * z)).sin_cos();
                    xr[r * w + j] = sr * pr - si * pi_;
                    xi[r * w + j] = sr * pi_ + si * pr;
                }
            }
            // y pass: Y[i][j] = sum_r e^{-i ca ty_i (r - cy)} X[r][j]
            yr.iter_mut().for_each(|v| *v = 0.0);
            yi.iter_mut().for_each(|v| *v = 0.0);
            for i in 0..h {
                let (or, oi) = (&mut yr[i * w..(i + 1) * w], &mut yi[i * w..(i + 1) * w]);
                for r in (0..h).filter(|&r| nonzero[r]) {
                    let (kr, ki) = (kyr[i * h + r], kyi[i * h + r]);
                    let (ar, ai) = (&xr[r * w..(r + 1) * w], &xi[r * w..(r + 1) * w]);
                    for j in 0..w {
                        or[j] += kr * ar[j] - ki * ai[j];
                        oi[j] += kr * ai[j] + ki * ar[j];
                    }
                }
            }
            // z phase's ky part, e^{+i sa ty_i z}, and the slice thickness
            let (dst_r, dst_i) = acc.split_at_mut(2 * ci + 1);
            let (dst_r, dst_i) = (&mut dst_r[2 * ci], &mut dst_i[0]);
            for (i, &tyi) in ty.iter().enumerate() {
                let (s, c) = (sa * tyi * z).sin_cos();
                for j in 0..w {
                    let k = i * w + j;
                    dst_r[k] += dz_px * (yr[k] * c - yi[k] * s);
                    dst_i[k] += dz_px * (yr[k] * s + yi[k] * c);
                }
            }
        }
    }
    // phi(k) = -i (pi mu0 / Phi0) (kx P'y - ky P'x) / k^2 with k = t / px (t in rad/pixel) and
    // P' = px * (the sums above, in A/m * pixel): -i (pi mu0 px^2 / Phi0) (tx P'y - ty P'x) / t^2.
    // The origin factor e^{-i (tx cx + ty cy)} puts the rotation axis at the grid centre.
    let px = scale_nm * 1e-9;
    let pre = PI * MU0 * px * px / PHI0;
    let mut out = vec![C32::new(0.0, 0.0); n];
    for (i, &tyi) in ty.iter().enumerate() {
        for (j, &txj) in tx.iter().enumerate() {
            let k = i * w + j;
            let t2 = txj * txj + tyi * tyi;
            if t2 == 0.0 {
                continue;
            }
            let (nr, ni) = (
                (txj * acc[2][k] - tyi * acc[0][k]) * pre / t2,
                (txj * acc[3][k] - tyi * acc[1][k]) * pre / t2,
            );
            // -i (nr + i ni) = ni - i nr
            let (pr, pi_) = (ni, -nr);
            let (s, c) = (-(txj * cx + tyi * cy)).sin_cos();
            out[k] = C32::new((pr * c - pi_ * s) as f32, (pr * s + pi_ * c) as f32);
        }
    }
    let t = Tensor::from_shape_vec_c(&[h, w], out)?;
    crate::engine::autograd::no_grad(|| t.ifft2()?.re()?.to_vec())
}

// The physics module is private and `crate::ltem` does not re-export this one yet, so the
// checks live here rather than in `tests/`. The references below are built independently of
// `project_phase`: closed forms, analytic projections fed to the un-tilted `magnetic_phase`, and
// rotations written out as elementary rotations.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::physics::ltem::forward::magnetic_phase;

    const C: f64 = PI * MU0 / PHI0; // pi mu0 / Phi0, rad / (A)

    fn rms(a: &[f32]) -> f64 {
        (a.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / a.len() as f64).sqrt()
    }

    /// sqrt(sum (a - b)^2 / sum b^2) over the pixels where `keep` holds.
    fn rel_rms(a: &[f32], b: &[f32], keep: impl Fn(usize) -> bool) -> f64 {
        let (mut num, mut den) = (0.0, 0.0);
        for i in (0..a.len()).filter(|&i| keep(i)) {
            num += (a[i] as f64 - b[i] as f64).powi(2);
            den += (b[i] as f64).powi(2);
        }
        (num / den).sqrt()
    }

    /// Like [`rel_rms`] after removing the least-squares plane `a + b col + c row` from the
    /// difference: the periodic images of a dipole add, near the centre of the cell, a smooth
    /// field (to leading order a uniform one, a phase ramp) that an infinite-space closed form
    /// does not have.
    fn rel_rms_deramped(a: &[f32], b: &[f32], w: usize, keep: impl Fn(usize) -> bool) -> f64 {
        let idx: Vec<usize> = (0..a.len()).filter(|&i| keep(i)).collect();
        let basis = |i: usize| [1.0, (i % w) as f64, (i / w) as f64];
        let (mut g, mut v) = ([[0f64; 3]; 3], [0f64; 3]);
        for &i in &idx {
            let (f, d) = (basis(i), a[i] as f64 - b[i] as f64);
            for p in 0..3 {
                v[p] += f[p] * d;
                for q in 0..3 {
                    g[p][q] += f[p] * f[q];
                }
            }
        }
        // 3x3 normal equations by Cramer's rule
        let det = |m: [[f64; 3]; 3]| {
            m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
                - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
                + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
        };
        let d0 = det(g);
        let coef: Vec<f64> = (0..3)
            .map(|k| {
                let mut m = g;
                for (row, vr) in m.iter_mut().zip(v) {
                    row[k] = vr;
                }
                det(m) / d0
            })
            .collect();
        let (mut num, mut den) = (0.0, 0.0);
        for &i in &idx {
            let f = basis(i);
            let fit = coef[0] * f[0] + coef[1] * f[1] + coef[2] * f[2];
            num += (a[i] as f64 - b[i] as f64 - fit).powi(2);
            den += (b[i] as f64).powi(2);
        }
        (num / den).sqrt()
    }

    /// Rx(a) then Ry(b), right-handed, written out rather than taken from `Tilt::matrix`.
    fn rotate(v: [f64; 3], t: Tilt) -> [f64; 3] {
        let (a, b) = (t.x_deg.to_radians(), t.y_deg.to_radians());
        let [x, y, z] = v;
        let (y, z) = (y * a.cos() - z * a.sin(), y * a.sin() + z * a.cos());
        let (x, z) = (x * b.cos() + z * b.sin(), -x * b.sin() + z * b.cos());
        [x, y, z]
    }

    /// Closed-form phase of a uniformly magnetised sphere (radius `r0` m, beam-frame in-plane
    /// magnetisation `(mx, my)` A/m) at `(x, y)` m from its centre. Derivation from SPEC's
    /// formula: `-i kx / k^2` is the transform of `x / (2 pi r^2)`, so a point moment `p` (A m^2)
    /// has `phi = (C / 2 pi) (x py - y px) / r^2` (positive for `p` along +y at +x). For an
    /// axisymmetric projected thickness `t(r)`, Gauss's law in 2-D gives
    /// `phi = (C / r^2) (x My - y Mx) int_0^r t(s) s ds`; with `t = 2 sqrt(R^2 - s^2)`,
    /// `phi = (2/3) C R^3 (x My - y Mx) / r^2 [1 - (1 - r^2/R^2)^{3/2}]` (inside; 1 outside),
    /// i.e. `(C/2pi) p x .../r^2` with `p = (4/3) pi R^3 M` outside.
    fn sphere_phase(x: f64, y: f64, r0: f64, mx: f64, my: f64) -> f64 {
        let r2 = x * x + y * y;
        let f = if r2 < r0 * r0 {
            1.0 - (1.0 - r2 / (r0 * r0)).powf(1.5)
        } else {
            1.0
        };
        (2.0 / 3.0) * C * r0.powi(3) * (x * my - y * mx) / r2 * f
    }

    /// Closed form on an (h, w) grid centred at ((h-1)/2, (w-1)/2), `r_px` radius, pixel `px` m.
    fn sphere_map(h: usize, w: usize, r_px: f64, px: f64, mx: f64, my: f64) -> Vec<f32> {
        let (cy, cx) = ((h as f64 - 1.0) / 2.0, (w as f64 - 1.0) / 2.0);
        let mut out = vec![0f32; h * w];
        for r in 0..h {
            for c in 0..w {
                let (x, y) = ((c as f64 - cx) * px, (r as f64 - cy) * px);
                out[r * w + c] = sphere_phase(x, y, r_px * px, mx, my) as f32;
            }
        }
        out
    }

    /// Projected thickness (pixels) of the sphere centred `at` (x, y) px from the grid centre, averaged over `s x s` points per pixel.
    fn sphere_thickness(h: usize, w: usize, r_px: f64, s: usize, at: (f64, f64)) -> Vec<f64> {
        let (cy, cx) = ((h as f64 - 1.0) / 2.0, (w as f64 - 1.0) / 2.0);
        let mut out = vec![0f64; h * w];
        for r in 0..h {
            for c in 0..w {
                let mut acc = 0.0;
                for a in 0..s {
                    for b in 0..s {
                        let y = r as f64 - cy - at.1 + (a as f64 + 0.5) / s as f64 - 0.5;
                        let x = c as f64 - cx - at.0 + (b as f64 + 0.5) / s as f64 - 0.5;
                        acc += 2.0 * (r_px * r_px - x * x - y * y).max(0.0).sqrt();
                    }
                }
                out[r * w + c] = acc / (s * s) as f64;
            }
        }
        out
    }

    /// Un-tilted `magnetic_phase` of the sphere's analytic projection (the periodic closed form).
    fn sphere_projected(
        h: usize,
        w: usize,
        r_px: f64,
        scale_nm: f64,
        mx: f64,
        my: f64,
    ) -> Vec<f32> {
        let t = sphere_thickness(h, w, r_px, 6, (0.0, 0.0));
        let fx: Vec<f32> = t.iter().map(|&t| (mx * t) as f32).collect();
        let fy: Vec<f32> = t.iter().map(|&t| (my * t) as f32).collect();
        // thickness 1 px, moment folded into the magnetisation
        magnetic_phase(&fx, &fy, h, w, scale_nm, scale_nm).unwrap()
    }

    #[test]
    fn zero_tilt_is_magnetic_phase() {
        let (h, w, layers) = (24, 40, 3);
        let n = h * w;
        let mut m = vec![0f32; 3 * n];
        for r in 0..h {
            for c in 0..w {
                let (x, y) = (c as f64 / w as f64, r as f64 / h as f64);
                m[r * w + c] = (4e5 * (2.0 * PI * x).sin() * (0.3 + y)) as f32;
                m[n + r * w + c] = (3e5 * ((7.0 * x * y).cos() - 0.2 * x)) as f32;
                m[2 * n + r * w + c] = (5e5 * (5.0 * y).sin()) as f32;
            }
        }
        let want = magnetic_phase(&m[..n], &m[n..2 * n], h, w, 12.0, 2.5).unwrap();
        let got = magnetic_phase_tilted(&m, h, w, layers, 12.0, 2.5, Tilt::default()).unwrap();
        let peak = want.iter().fold(0f32, |a, &v| a.max(v.abs()));
        let err = got
            .iter()
            .zip(&want)
            .fold(0f32, |a, (x, y)| a.max((x - y).abs()));
        assert!(err <= 2e-6 * peak, "max diff {err} vs peak {peak}");
        // a volume with different slices: the phase of its thickness-weighted sum
        let nz = 4;
        let mut vol = vec![0f32; 3 * nz * n];
        for l in 0..nz {
            for c in 0..3 {
                for i in 0..n {
                    vol[(c * nz + l) * n + i] = m[c * n + (i + 37 * l) % n] * (1.0 + l as f32);
                }
            }
        }
        let sum = |c: usize| -> Vec<f32> {
            (0..n)
                .map(|i| (0..nz).map(|l| vol[(c * nz + l) * n + i]).sum::<f32>() / nz as f32)
                .collect()
        };
        let want = magnetic_phase(&sum(0), &sum(1), h, w, 3.0 * nz as f64, 2.5).unwrap();
        let got = magnetic_phase_tilted_volume(&vol, nz, h, w, 3.0, 2.5, Tilt::default()).unwrap();
        let peak = want.iter().fold(0f32, |a, &v| a.max(v.abs()));
        let err = got
            .iter()
            .zip(&want)
            .fold(0f32, |a, (x, y)| a.max((x - y).abs()));
        assert!(err <= 2e-6 * peak, "volume: max diff {err} vs peak {peak}");
    }

    #[test]
    fn rejects_bad_input() {
        let m = vec![0f32; 3 * 16];
        let bad = Tilt {
            x_deg: 90.0,
            y_deg: 0.0,
        };
        assert!(magnetic_phase_tilted(&m, 4, 4, 2, 5.0, 1.0, bad).is_err());
        let nan = Tilt {
            x_deg: 0.0,
            y_deg: f64::NAN,
        };
        assert!(magnetic_phase_tilted(&m, 4, 4, 2, 5.0, 1.0, nan).is_err());
        assert!(magnetic_phase_tilted(&m, 4, 5, 2, 5.0, 1.0, Tilt::default()).is_err());
        assert!(magnetic_phase_tilted(&m, 4, 4, 0, 5.0, 1.0, Tilt::default()).is_err());
        assert!(magnetic_phase_tilted(&m, 4, 4, 2, -5.0, 1.0, Tilt::default()).is_err());
        assert!(magnetic_phase_tilted_volume(&m, 2, 4, 4, 1.0, 1.0, Tilt::default()).is_err());
        assert!(magnetic_phase_tilted_volume(&m, 1, 4, 4, 1.0, 0.0, Tilt::default()).is_err());
        assert!(magnetic_phase_tilted_volume(&m, 1, 4, 4, 1.0, 1.0, Tilt::default()).is_ok());
    }

    /// The normalisation and sign of the closed form, against the un-tilted periodic formula on
    /// a large grid (no tilt code involved).
    #[test]
    fn sphere_closed_form_matches_magnetic_phase() {
        let (n, r_px, scale) = (512, 25.0, 2.0);
        let (mx, my) = (3e5, -4e5);
        let got = sphere_projected(n, n, r_px, scale, mx, my);
        let want = sphere_map(n, n, r_px, scale * 1e-9, mx, my);
        let c = (n as f64 - 1.0) / 2.0;
        let near = |i: usize| {
            let (r, q) = ((i / n) as f64 - c, (i % n) as f64 - c);
            r * r + q * q < (2.0 * r_px).powi(2)
        };
        let raw = rel_rms(&got, &want, near);
        let e = rel_rms_deramped(&got, &want, n, near);
        eprintln!(
            "sphere closed form vs magnetic_phase (512^2, r < 2R): rel rms {raw:.2e}, \
             {e:.2e} without the periodic images' ramp"
        );
        assert!(e < 2e-3, "rel rms {e}");
        // the wrong sign or a factor 3/2 would be far off
        assert!(raw < 3e-2, "rel rms {raw}");
    }

    /// A voxelised sphere seen at several tilts against the closed form for the rotated
    /// magnetisation's in-plane part (a sphere looks the same from every direction).
    #[test]
    fn tilted_sphere_matches_closed_form() {
        let (h, w, nz, r_px, scale) = (128usize, 128usize, 64usize, 25.0, 2.0);
        let m_s = [0.48 * 4e5, -0.6 * 4e5, 0.64 * 4e5];
        // voxel occupancy, 4^3 sub-samples on the boundary shell
        let (cy, cx, cz) = (
            (h as f64 - 1.0) / 2.0,
            (w as f64 - 1.0) / 2.0,
            (nz as f64 - 1.0) / 2.0,
        );
        let n = h * w;
        let mut occ = vec![0f32; nz * n];
        let s = 4;
        for l in 0..nz {
            for r in 0..h {
                for c in 0..w {
                    let (x, y, z) = (c as f64 - cx, r as f64 - cy, l as f64 - cz);
                    let d = (x * x + y * y + z * z).sqrt();
                    occ[l * n + r * w + c] = if d < r_px - 0.9 {
                        1.0
                    } else if d > r_px + 0.9 {
                        0.0
                    } else {
                        let mut k = 0;
                        for a in 0..s * s * s {
                            let f = |i: usize| (i as f64 + 0.5) / s as f64 - 0.5;
                            let (p, q, u) = (x + f(a % s), y + f(a / s % s), z + f(a / (s * s)));
                            k += (p * p + q * q + u * u < r_px * r_px) as usize;
                        }
                        k as f32 / (s * s * s) as f32
                    };
                }
            }
        }
        let mut vol = vec![0f32; 3 * nz * n];
        for c in 0..3 {
            for (i, &o) in occ.iter().enumerate() {
                vol[c * nz * n + i] = o * m_s[c] as f32;
            }
        }
        let inside = |i: usize| {
            let (r, q) = ((i / w) as f64 - cy, (i % w) as f64 - cx);
            r * r + q * q < (2.0 * r_px).powi(2)
        };
        for (tx, ty) in [(0.0, 0.0), (30.0, 0.0), (0.0, 20.0), (30.0, 20.0)] {
            let tilt = Tilt {
                x_deg: tx,
                y_deg: ty,
            };
            let mb = rotate(m_s, tilt);
            let got = magnetic_phase_tilted_volume(&vol, nz, h, w, scale, scale, tilt).unwrap();
            let periodic = sphere_projected(h, w, r_px, scale, mb[0], mb[1]);
            let closed = sphere_map(h, w, r_px, scale * 1e-9, mb[0], mb[1]);
            let e_per = rel_rms(&got, &periodic, |_| true);
            let e_closed = rel_rms_deramped(&got, &closed, w, inside);
            let e_raw = rel_rms(&got, &closed, inside);
            eprintln!(
                "sphere tilt ({tx}, {ty}): rel rms vs periodic closed form {e_per:.2e} (whole \
                 grid); vs closed form (r < 2R) {e_closed:.2e} deramped, {e_raw:.2e} raw"
            );
            assert!(e_per < 1e-3, "tilt ({tx}, {ty}): {e_per}");
            // at 128 px the periodic images still differ from open space beyond a ramp (the same
            // 2.5 % at zero tilt, where the tilt code equals magnetic_phase)
            assert!(e_closed < 4e-2, "tilt ({tx}, {ty}): {e_closed}");
        }
    }

    /// A skyrmion in a film minus the uniform background (`Mz = +Ms`; by linearity the phase of
    /// the skyrmion in an infinite film, whose uniform part has no contrast at any tilt).
    fn skyrmion(h: usize, w: usize, r_px: f64, wall: f64, neel: bool, ms: f64) -> Vec<f32> {
        let n = h * w;
        let (cy, cx) = ((h as f64 - 1.0) / 2.0, (w as f64 - 1.0) / 2.0);
        let mut m = vec![0f32; 3 * n];
        for r in 0..h {
            for c in 0..w {
                let (x, y) = (c as f64 - cx, r as f64 - cy);
                let rho = (x * x + y * y).sqrt();
                let th = 2.0 * ((r_px / wall).sinh() / (rho / wall).sinh()).atan();
                let (cp, sp) = (x / rho, y / rho);
                let (ux, uy) = if neel { (cp, sp) } else { (-sp, cp) };
                let i = r * w + c;
                m[i] = (ms * th.sin() * ux) as f32;
                m[n + i] = (ms * th.sin() * uy) as f32;
                m[2 * n + i] = (ms * (th.cos() - 1.0)) as f32;
            }
        }
        m
    }

    #[test]
    fn neel_contrast_grows_with_sin_tilt_bloch_has_it_untilted() {
        let (h, w, scale, t, layers, ms) = (128, 128, 2.0, 20.0, 10, 5e5);
        let neel = skyrmion(h, w, 15.0, 4.0, true, ms);
        let bloch = skyrmion(h, w, 15.0, 4.0, false, ms);
        let phase = |m: &[f32], deg: f64| {
            let tilt = Tilt {
                x_deg: deg,
                y_deg: 0.0,
            };
            rms(&magnetic_phase_tilted(m, h, w, layers, t, scale, tilt).unwrap())
        };
        let b0 = phase(&bloch, 0.0);
        let n0 = phase(&neel, 0.0);
        let n10 = phase(&neel, 10.0);
        eprintln!("skyrmion rms phase at 0 deg: Bloch {b0:.3e} rad, Neel {n0:.3e} rad");
        assert!(n0 < 1e-3 * b0, "Neel at 0 deg: {n0} vs Bloch {b0}");
        for deg in [20f64, 30.0] {
            let want = deg.to_radians().sin() / 10f64.to_radians().sin();
            let got = phase(&neel, deg) / n10;
            eprintln!("Neel rms({deg})/rms(10) = {got:.3}, sin ratio {want:.3}");
            assert!((got / want - 1.0).abs() < 0.1, "{deg} deg: {got} vs {want}");
        }
        // tilting about y instead gives the same contrast (the skyrmion is round)
        let about_y = rms(&magnetic_phase_tilted(
            &neel,
            h,
            w,
            layers,
            t,
            scale,
            Tilt {
                x_deg: 0.0,
                y_deg: 20.0,
            },
        )
        .unwrap());
        let about_x = phase(&neel, 20.0);
        assert!(
            (about_y / about_x - 1.0).abs() < 1e-2,
            "{about_y} vs {about_x}"
        );
    }

    /// A perpendicularly magnetised disc: no phase untilted; tilted about x by `a` it is the
    /// un-tilted phase of an in-plane `My' = -M sin a` over the disc's projection (an ellipse
    /// with semi-axes `R` and `R cos a`, each layer shifted by `-z sin a`, path `dz / cos a`),
    /// built here by analytic coverage; about y, `Mx' = +M sin b`.
    #[test]
    fn perpendicular_disc_tilts_into_in_plane_moment() {
        let (h, w, scale, t, layers, r0, ms) = (96, 96, 2.0, 8.0, 4, 20.0, 6e5);
        let n = h * w;
        let (cy, cx) = ((h as f64 - 1.0) / 2.0, (w as f64 - 1.0) / 2.0);
        let s = 8;
        // coverage of {(x/ax)^2 + ((y - y0)/ay)^2 < 1} per pixel
        let cover = |ax: f64, ay: f64, x0: f64, y0: f64| -> Vec<f64> {
            let mut out = vec![0f64; n];
            for r in 0..h {
                for c in 0..w {
                    let mut k = 0;
                    for a in 0..s * s {
                        let y = r as f64 - cy + ((a / s) as f64 + 0.5) / s as f64 - 0.5 - y0;
                        let x = c as f64 - cx + ((a % s) as f64 + 0.5) / s as f64 - 0.5 - x0;
                        k += ((x / ax).powi(2) + (y / ay).powi(2) < 1.0) as usize;
                    }
                    out[r * w + c] = k as f64 / (s * s) as f64;
                }
            }
            out
        };
        let disc = cover(r0, r0, 0.0, 0.0);
        let mut m = vec![0f32; 3 * n];
        for i in 0..n {
            m[2 * n + i] = (ms * disc[i]) as f32;
        }
        let flat = magnetic_phase_tilted(&m, h, w, layers, t, scale, Tilt::default()).unwrap();
        assert!(flat.iter().all(|&v| v == 0.0));
        let dz = t / layers as f64 / scale; // px
        let zs: Vec<f64> = (0..layers)
            .map(|l| (l as f64 - (layers as f64 - 1.0) / 2.0) * dz)
            .collect();
        for (about_x, deg) in [(true, 30f64), (true, -30.0), (false, 30.0)] {
            let a = deg.to_radians();
            let tilt = if about_x {
                Tilt {
                    x_deg: deg,
                    y_deg: 0.0,
                }
            } else {
                Tilt {
                    x_deg: 0.0,
                    y_deg: deg,
                }
            };
            let got = magnetic_phase_tilted(&m, h, w, layers, t, scale, tilt).unwrap();
            // in-plane moment per area: M sin(a) (dz / cos a) summed over the shifted ellipses
            let mut p = vec![0f64; n];
            for &z in &zs {
                let e = if about_x {
                    cover(r0, r0 * a.cos(), 0.0, -z * a.sin())
                } else {
                    cover(r0 * a.cos(), r0, z * a.sin(), 0.0)
                };
                for i in 0..n {
                    p[i] += ms * a.sin() / a.cos() * e[i] / layers as f64;
                }
            }
            let zero = vec![0f32; n];
            let pf: Vec<f32> = p.iter().map(|&v| v as f32).collect();
            let neg: Vec<f32> = p.iter().map(|&v| -v as f32).collect();
            let want = if about_x {
                magnetic_phase(&zero, &neg, h, w, t, scale).unwrap() // along -y
            } else {
                magnetic_phase(&pf, &zero, h, w, t, scale).unwrap() // along +x
            };
            let e = rel_rms(&got, &want, |_| true);
            eprintln!(
                "perpendicular disc, tilt {deg} about {}: rel rms {e:.2e}",
                if about_x { "x" } else { "y" }
            );
            assert!(e < 2e-2, "{e}");
        }
    }

    /// An off-axis ball at height `z = +8 px` moves, in the beam frame, to
    /// `(x', y') = (sin b cos a z, -sin a z)` (the shift; the rotated point `R (0, 0, z)`). The
    /// error left (about 6e-3) is the small ball's voxelisation, the same at zero tilt.
    #[test]
    fn off_axis_ball_shifts_with_the_tilt() {
        let (h, w, nz, r_px, z0, scale) = (64usize, 64usize, 31usize, 4.0, 8.0, 2.0);
        let n = h * w;
        let (cy, cx, cz) = (
            (h as f64 - 1.0) / 2.0,
            (w as f64 - 1.0) / 2.0,
            (nz as f64 - 1.0) / 2.0,
        );
        let m_s = [5e5, 0.0, 2e5];
        let mut vol = vec![0f32; 3 * nz * n];
        let s = 4;
        for l in 0..nz {
            for r in 0..h {
                for c in 0..w {
                    let mut k = 0;
                    for a in 0..s * s * s {
                        let f = |i: usize| (i as f64 + 0.5) / s as f64 - 0.5;
                        let (x, y) = (c as f64 - cx + f(a % s), r as f64 - cy + f(a / s % s));
                        let z = l as f64 - cz - z0 + f(a / (s * s));
                        k += (x * x + y * y + z * z < r_px * r_px) as usize;
                    }
                    let o = k as f64 / (s * s * s) as f64;
                    for (ci, mc) in m_s.iter().enumerate() {
                        vol[(ci * nz + l) * n + r * w + c] = (o * mc) as f32;
                    }
                }
            }
        }
        for (tx_, ty_) in [(30.0, 0.0), (0.0, 20.0), (30.0, 20.0)] {
            let tilt = Tilt {
                x_deg: tx_,
                y_deg: ty_,
            };
            let [px, py, _] = rotate([0.0, 0.0, z0], tilt);
            let mb = rotate(m_s, tilt);
            let got = magnetic_phase_tilted_volume(&vol, nz, h, w, scale, scale, tilt).unwrap();
            let t = sphere_thickness(h, w, r_px, 6, (px, py));
            let fx: Vec<f32> = t.iter().map(|&t| (mb[0] * t) as f32).collect();
            let fy: Vec<f32> = t.iter().map(|&t| (mb[1] * t) as f32).collect();
            let want = magnetic_phase(&fx, &fy, h, w, scale, scale).unwrap();
            let e = rel_rms(&got, &want, |_| true);
            // the same ball without the shift is far off
            let t0 = sphere_thickness(h, w, r_px, 6, (0.0, 0.0));
            let fx: Vec<f32> = t0.iter().map(|&t| (mb[0] * t) as f32).collect();
            let fy: Vec<f32> = t0.iter().map(|&t| (mb[1] * t) as f32).collect();
            let unshifted = magnetic_phase(&fx, &fy, h, w, scale, scale).unwrap();
            let e0 = rel_rms(&got, &unshifted, |_| true);
            eprintln!(
                "off-axis ball at ({tx_}, {ty_}): rel rms {e:.2e} (unshifted reference {e0:.2e})"
            );
            assert!(e < 1e-2 && e0 > 0.3, "({tx_}, {ty_}): {e} {e0}");
        }
    }
}
