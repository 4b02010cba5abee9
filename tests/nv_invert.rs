//! Classical Fourier inversion B_NV -> M against the exact field of homogeneously magnetised
//! cuboids (written here from the magnetic surface charges, the closed form of Engel-Herbert &
//! Hesjedal 2005 that magpylib uses, and checked against the dipole far field), the round trip
//! on the project's own forward model, and the background plane.

use magprior::nv::{
    amperes_to_mub_per_nm2, areal_magnetization, areal_magnetization_mub_nm2, auto_support,
    diagnose, direction_from_angles, invert, noise_floor, noise_map, Background, Filter,
    InversionConfig, Level, NvForward, NvGeometry, SupportRule, MU0, MU_B,
};
use magprior::{Rng, Tensor};
use std::f64::consts::PI;

// ---------------------------------------------------------------- the exact cuboid field

/// `ln(Y + R)` without cancellation for `Y < 0` (`= ln((X^2 + Z^2) / (R - Y))`).
fn ln_y_plus_r(x: f64, y: f64, z: f64) -> f64 {
    let r = (x * x + y * y + z * z).sqrt();
    if y >= 0.0 {
        (y + r).ln()
    } else {
        ((x * x + z * z) / (r - y)).ln()
    }
}

/// `H` (A/m, local axes: a, b, c = normal, first and second in-face axis) at offset `Z` along the
/// normal from a rectangle of uniform charge `sigma` spanning `X in [x1, x2]`, `Y in [y1, y2]`
/// (offsets of the face's edges from the point): `sigma/(4 pi) int (r - r')/|r - r'|^3 dA'`.
fn face_field(sigma: f64, xs: [f64; 2], ys: [f64; 2], z: f64) -> [f64; 3] {
    let mut h = [0.0; 3];
    for (i, &x) in xs.iter().enumerate() {
        for (j, &y) in ys.iter().enumerate() {
            let s = if i == j { 1.0 } else { -1.0 };
            let r = (x * x + y * y + z * z).sqrt();
            h[0] += s * (x * y / (z * r)).atan(); // int Z/R^3
            h[1] += s * ln_y_plus_r(x, y, z); // int -X/R^3
            h[2] += s * ln_y_plus_r(y, x, z); // int -Y/R^3
        }
    }
    h.map(|v| sigma / (4.0 * PI) * v)
}

/// Exact B (tesla) at `p` of the cuboid `[lo, hi]` magnetised uniformly with `m` (A/m): the sum
/// of the fields of its six charged faces (charge `M . n`), `B = mu0 H` outside.
fn cuboid_field(p: [f64; 3], lo: [f64; 3], hi: [f64; 3], m: [f64; 3]) -> [f64; 3] {
    let mut b = [0.0; 3];
    for a in 0..3 {
        if m[a] == 0.0 {
            continue;
        }
        let (ib, ic) = ((a + 1) % 3, (a + 2) % 3); // cyclic: local (a, b, c) keeps handedness
        let xs = [lo[ib] - p[ib], hi[ib] - p[ib]];
        let ys = [lo[ic] - p[ic], hi[ic] - p[ic]];
        for (face, sigma) in [(hi[a], m[a]), (lo[a], -m[a])] {
            let hl = face_field(sigma, xs, ys, p[a] - face);
            b[a] += MU0 * hl[0];
            b[ib] += MU0 * hl[1];
            b[ic] += MU0 * hl[2];
        }
    }
    b
}

fn dipole_field(p: [f64; 3], moment: [f64; 3]) -> [f64; 3] {
    let r = (p[0] * p[0] + p[1] * p[1] + p[2] * p[2]).sqrt();
    let mr = (0..3).map(|i| moment[i] * p[i]).sum::<f64>() / r;
    std::array::from_fn(|i| MU0 / (4.0 * PI * r.powi(3)) * (3.0 * mr * p[i] / r - moment[i]))
}

#[test]
fn cuboid_field_has_the_dipole_far_field() {
    // a 10 nm cube at the origin, seen from 300-500 nm in several directions
    let (lo, hi) = ([-5e-9; 3], [5e-9; 3]);
    let ms = 1e6;
    for m in [
        [0.0, 0.0, ms],
        [ms, 0.0, 0.0],
        [0.0, ms, 0.0],
        [0.6 * ms, -0.3 * ms, 0.74 * ms],
    ] {
        let moment = m.map(|v| v * 1e-24);
        for p in [
            [0.0, 0.0, 3e-7],
            [2e-7, -1e-7, 3e-7],
            [-4e-7, 2e-7, 1e-7],
            [1e-7, 3e-7, -2e-7],
        ] {
            let (got, want) = (cuboid_field(p, lo, hi, m), dipole_field(p, moment));
            let norm = want.iter().map(|v| v * v).sum::<f64>().sqrt();
            let err = (0..3)
                .map(|i| (got[i] - want[i]).powi(2))
                .sum::<f64>()
                .sqrt()
                / norm;
            assert!(
                err < 2e-3,
                "m {m:?} at {p:?}: {got:?} vs dipole {want:?} ({err})"
            );
        }
    }
    // just above the centre of a wide film magnetised along z the two charge sheets cancel
    // (B = 0 outside an infinite film), while the top sheet alone gives mu0 Ms / 2
    let b = cuboid_field(
        [0.0, 0.0, 1e-9],
        [-1e-4, -1e-4, -2e-8],
        [1e-4, 1e-4, 0.0],
        [0.0, 0.0, ms],
    );
    let half = 0.5 * MU0 * ms;
    assert!(b[2].abs() < 1e-3 * half, "film Bz {b:?}");
    let top = face_field(ms, [-1e-4, 1e-4], [-1e-4, 1e-4], 1e-9);
    assert!((MU0 * top[0] - half).abs() < 1e-3 * half, "sheet {top:?}");
}

// ---------------------------------------------------------------- the inversion vs exact

struct Case {
    h: usize,
    w: usize,
    geom: NvGeometry,
    bnv: Vec<f32>,
    /// rectangle in metres: (x0, x1, y0, y1)
    rect: (f64, f64, f64, f64),
}

/// An `lx x ly x 20 nm` rectangle magnetised `m` (A/m), top at z = 0, seen at `d` above it on a
/// 64 nm grid of `h x w`, B_NV along `(theta, phi)`.
fn exact_case(m: [f64; 3], theta: f64, phi: f64, d: f64) -> Case {
    let (h, w, px, t) = (112usize, 128usize, 64e-9, 20e-9);
    let (lx, ly) = (2e-6, 1.5e-6);
    // centre off the pixel grid so that no pixel centre lies on an edge
    let (cx, cy) = (
        (w as f64 - 1.0) / 2.0 * px + 7e-9,
        (h as f64 - 1.0) / 2.0 * px - 11e-9,
    );
    let lo = [cx - lx / 2.0, cy - ly / 2.0, -t];
    let hi = [cx + lx / 2.0, cy + ly / 2.0, 0.0];
    let geom = NvGeometry {
        pixel: px,
        thickness: t,
        standoff: d,
        theta_deg: theta,
        phi_deg: phi,
        pad: 2,
        cutoff_k: None,
    };
    let n = geom.axis();
    let mut bnv = vec![0f32; h * w];
    for r in 0..h {
        for c in 0..w {
            let b = cuboid_field([c as f64 * px, r as f64 * px, d], lo, hi, m);
            bnv[r * w + c] = (n[0] * b[0] + n[1] * b[1] + n[2] * b[2]) as f32;
        }
    }
    Case {
        h,
        w,
        geom,
        bnv,
        rect: (lo[0], hi[0], lo[1], hi[1]),
    }
}

/// Signed distance (m) of pixel (r, c) from the rectangle's boundary: negative inside.
fn rect_distance(case: &Case, r: usize, c: usize) -> f64 {
    let (x, y) = (c as f64 * case.geom.pixel, r as f64 * case.geom.pixel);
    let (x0, x1, y0, y1) = case.rect;
    let dx = (x0 - x).max(x - x1);
    let dy = (y0 - y).max(y - y1);
    if dx <= 0.0 && dy <= 0.0 {
        dx.max(dy)
    } else {
        (dx.max(0.0).powi(2) + dy.max(0.0).powi(2)).sqrt()
    }
}

/// (mean, max |dev|) of m / ms inside (more than `margin` from the edges), max |m| / ms outside
/// (more than `margin` from the edges and off the map's border band), rms / ms outside.
fn score(case: &Case, m: &[f32], ms: f64, margin: f64) -> (f64, f64, f64, f64) {
    let (mut s, mut n, mut dev, mut out, mut out2, mut nout) = (0.0, 0, 0f64, 0f64, 0.0, 0);
    for r in 0..case.h {
        for c in 0..case.w {
            let v = m[r * case.w + c] as f64 / ms;
            let dist = rect_distance(case, r, c);
            if dist < -margin {
                s += v;
                n += 1;
                dev = dev.max((v - 1.0).abs());
            } else if dist > margin && r >= 6 && c >= 6 && r + 6 < case.h && c + 6 < case.w {
                // outside, and off the map's border band (6 px: the automatic band is 5), where
                // the levels are set and the field lost beyond the map bends the in-plane lines
                out = out.max(v.abs());
                out2 += v * v;
                nout += 1;
            }
        }
    }
    (s / n as f64, dev, out, (out2 / nout as f64).sqrt())
}

#[test]
fn out_of_plane_rectangle_from_its_exact_field() {
    let ms = 1e6;
    let d = 100e-9;
    for (theta, phi) in [(54.7, 45.0), (0.0, 0.0)] {
        let case = exact_case([0.0, 0.0, ms], theta, phi, d);
        for wavelength in [2.0 * case.geom.pixel, d, 2.0 * d] {
            let cfg = InversionConfig::new([0.0, 0.0, 1.0], Filter::Hanning { wavelength });
            let inv = invert(&case.bnv, case.h, case.w, &case.geom, &cfg).unwrap();
            assert_eq!(inv.level, Level::BorderMean);
            let (mean, dev, out, out_rms) = score(&case, &inv.m, ms, 2.0 * d);
            println!(
                "theta {theta} phi {phi} Hanning {:.0} nm: inside mean {mean:.4} max|dev| {dev:.4}, outside max {out:.4} rms {out_rms:.4} (of Ms)",
                wavelength * 1e9
            );
            assert!((mean - 1.0).abs() < 0.01, "inside mean {mean}");
            assert!(dev < 0.03, "inside max deviation {dev}");
            assert!(out < 0.03 && out_rms < 0.01, "outside {out} rms {out_rms}");
            // the vector map is m u
            assert_eq!(inv.magnetization.len(), 3 * case.h * case.w);
            assert!(inv.magnetization[..2 * case.h * case.w]
                .iter()
                .all(|&v| v == 0.0));
            assert_eq!(&inv.magnetization[2 * case.h * case.w..], &inv.m[..]);
        }
    }
}

#[test]
fn in_plane_rectangle_from_its_exact_field() {
    let ms = 1e6;
    let d = 100e-9;
    for (phi_m, theta, phi) in [(0.0, 54.7, 45.0), (30.0, 54.7, 45.0), (0.0, 0.0, 0.0)] {
        let u = direction_from_angles(90.0, phi_m);
        let case = exact_case(u.map(|v| v * ms), theta, phi, d);
        let cfg = InversionConfig::new(u, Filter::Hanning { wavelength: d });
        let inv = invert(&case.bnv, case.h, case.w, &case.geom, &cfg).unwrap();
        assert_eq!(inv.level, Level::BorderLines);
        let (mean, dev, out, out_rms) = score(&case, &inv.m, ms, 2.0 * d);
        println!(
            "in-plane u at {phi_m} deg, NV theta {theta} phi {phi}: inside mean {mean:.4} max|dev| {dev:.4}, outside max {out:.4} rms {out_rms:.4}; guarded {:.4}",
            inv.guarded_fraction
        );
        assert!((mean - 1.0).abs() < 0.02, "inside mean {mean}");
        assert!(dev < 0.06, "inside max deviation {dev}");
        assert!(out < 0.06 && out_rms < 0.02, "outside {out} rms {out_rms}");
        // without the line levels the invisible stripes along u remain
        let mut plain = cfg.clone();
        plain.level = Level::Padded;
        let raw = invert(&case.bnv, case.h, case.w, &case.geom, &plain).unwrap();
        let (mean_raw, _, out_raw, _) = score(&case, &raw.m, ms, 2.0 * d);
        println!("  level Padded: inside mean {mean_raw:.4}, outside max {out_raw:.4}");
        assert!(
            out_raw > 2.0 * out,
            "the line levels should matter: {out_raw} vs {out}"
        );
    }
}

#[test]
fn tikhonov_and_no_filter_on_the_exact_field() {
    let ms = 1e6;
    let d = 100e-9;
    let case = exact_case([0.0, 0.0, ms], 54.7, 45.0, d);
    let mut errs = Vec::new();
    for k in [1.0 / d, 2.0 / d, 4.0 / d] {
        let cfg = InversionConfig::new([0.0, 0.0, 1.0], Filter::Tikhonov { k });
        let inv = invert(&case.bnv, case.h, case.w, &case.geom, &cfg).unwrap();
        let (mean, dev, out, _) = score(&case, &inv.m, ms, 2.0 * d);
        println!("Tikhonov k = {:.1}/d (e^(-k d) = {:.3e}): inside mean {mean:.4} max|dev| {dev:.4} outside max {out:.4}", k * d, inv.filter_parameter);
        assert!((inv.filter_parameter - (-k * d).exp()).abs() < 1e-12);
        errs.push((mean - 1.0).abs());
    }
    // a larger k scale regularises less: the interior level gets closer to Ms
    assert!(errs[2] < errs[0], "Tikhonov errors {errs:?}");
    assert!(errs[2] < 0.05, "Tikhonov at 4/d: {}", errs[2]);
    // a k scale must be positive
    let cfg = InversionConfig::new([0.0, 0.0, 1.0], Filter::Tikhonov { k: -1.0 });
    assert!(invert(&case.bnv, case.h, case.w, &case.geom, &cfg).is_err());
}

// ---------------------------------------------------------------- round trip, background

fn disk_map(h: usize, w: usize, u: [f64; 3], ms: f64) -> Vec<f32> {
    let (cy, cx, rad) = (h as f64 / 2.0, w as f64 / 2.3, h.min(w) as f64 / 4.0);
    let mut m = vec![0f32; 3 * h * w];
    for r in 0..h {
        for c in 0..w {
            let rr = ((r as f64 - cy).powi(2) + (c as f64 - cx).powi(2)).sqrt();
            // a soft edge keeps the map smooth; the amplitude varies inside
            let a = ms * (1.0 + 0.3 * (c as f64 / 7.0).sin()) / (1.0 + ((rr - rad) / 1.5).exp());
            for k in 0..3 {
                m[k * h * w + r * w + c] = (a * u[k]) as f32;
            }
        }
    }
    m
}

#[test]
fn round_trip_on_the_forward_model() {
    let (h, w, ms) = (48usize, 64usize, 8.6e5);
    for (u, theta, phi) in [
        ([0.0, 0.0, 1.0], 54.75, 0.0),
        ([0.3, 0.2, 0.93], 54.75, 30.0),
        ([0.8, -0.6, 0.0], 54.75, 30.0),
        ([0.0, 0.0, 1.0], 0.0, 0.0),
    ] {
        // 30 nm pixels at 50 nm: e^{kd} at the corner of the spectrum stays ~1e3, so the
        // unfiltered division keeps f32 rounding small. No padding: forward and inversion then
        // share one periodic grid and the round trip is exact but for k = 0 (set by the level)
        // and the guarded coefficients; with padding the field outside the map is lost and
        // the low k carry a few per cent of error (see the exact-field tests for that case).
        let geom = NvGeometry {
            pixel: 30e-9,
            thickness: 10e-9,
            standoff: 50e-9,
            theta_deg: theta,
            phi_deg: phi,
            pad: 1,
            ..Default::default()
        };
        let n: f64 = u[0] * u[0] + u[1] * u[1] + u[2] * u[2];
        let u = u.map(|v| v / n.sqrt());
        let m = disk_map(h, w, u, ms);
        let op = NvForward::new(h, w, &geom).unwrap();
        let bnv = op
            .bnv(&Tensor::from_shape_vec(&[1, 3, h, w], m.clone()).unwrap())
            .unwrap()
            .to_vec()
            .unwrap();
        let mut cfg = InversionConfig::new(u, Filter::None);
        cfg.background = Background::None;
        let inv = invert(&bnv, h, w, &geom, &cfg).unwrap();
        let truth: Vec<f32> = (0..h * w)
            .map(|i| (0..3).map(|k| m[k * h * w + i] as f64 * u[k]).sum::<f64>() as f32)
            .collect();
        let num: f64 = inv
            .m
            .iter()
            .zip(&truth)
            .map(|(a, b)| ((a - b) as f64).powi(2))
            .sum();
        let den: f64 = truth.iter().map(|b| (*b as f64).powi(2)).sum();
        let err = (num / den).sqrt();
        let vnum: f64 = inv
            .magnetization
            .iter()
            .zip(&m)
            .map(|(a, b)| ((a - b) as f64).powi(2))
            .sum();
        let verr = (vnum / den).sqrt();
        println!("round trip u {u:?} theta {theta} phi {phi}: rel L2 {err:.2e} (vector {verr:.2e}), level {:?}", inv.level);
        // in-plane u: the line k ⊥ u is invisible and rebuilt by the border lines, which on
        // a slanted one-pixel binning are exact only to about a per cent
        let tol = if u[2].abs() > 0.5 { 1e-3 } else { 3e-2 };
        assert!(err < tol && verr < tol, "round trip error {err} / {verr}");
    }
}

#[test]
fn background_plane_is_recovered() {
    let ms = 1e6;
    let d = 100e-9;
    let case = exact_case([0.0, 0.0, ms], 54.7, 45.0, d);
    let cfg = InversionConfig::new([0.0, 0.0, 1.0], Filter::Hanning { wavelength: d });
    let clean = invert(&case.bnv, case.h, case.w, &case.geom, &cfg).unwrap();
    let peak = case.bnv.iter().fold(0f32, |a, v| a.max(v.abs())) as f64;
    // offset 30 % of the peak, slopes of 20 % of the peak across the map
    let px = case.geom.pixel;
    let plane = [
        0.3 * peak,
        0.2 * peak / (case.w as f64 * px),
        -0.2 * peak / (case.h as f64 * px),
    ];
    let mut noisy_rng = Rng::new(5);
    let with: Vec<f32> = (0..case.h * case.w)
        .map(|i| {
            let (r, c) = ((i / case.w) as f64, (i % case.w) as f64);
            (case.bnv[i] as f64 + plane[0] + plane[1] * c * px + plane[2] * r * px) as f32
        })
        .collect();
    let inv = invert(&with, case.h, case.w, &case.geom, &cfg).unwrap();
    // the fit is linear: what it adds is exactly the plane (to f32 rounding)
    for (i, p) in plane.iter().enumerate() {
        let got = inv.background[i] - clean.background[i];
        assert!(
            (got - p).abs() < 1e-4 * p.abs(),
            "background {i}: {got:e} vs {p:e}"
        );
    }
    // and the stray field's own border contributes little to it: the absolute plane is close
    let rel: Vec<f64> = (0..3)
        .map(|i| (inv.background[i] - plane[i]).abs() / plane[i].abs())
        .collect();
    println!(
        "background with plane {:?} vs added {plane:?}: rel errors {rel:?}",
        inv.background
    );
    assert!(rel.iter().all(|&e| e < 0.02), "absolute background {rel:?}");
    // the magnetisation does not change
    let diff = inv
        .m
        .iter()
        .zip(&clean.m)
        .map(|(a, b)| (a - b).abs() as f64)
        .fold(0.0, f64::max);
    assert!(diff < 1e-3 * ms, "m changed by {diff}");
    // with only the mean removed, the plane leaves a large error in m
    let mut mean_only = cfg.clone();
    mean_only.background = Background::Mean;
    let bad = invert(&with, case.h, case.w, &case.geom, &mean_only).unwrap();
    let (mean_b, dev_b, _, _) = score(&case, &bad.m, ms, 2.0 * d);
    let (mean_g, dev_g, _, _) = score(&case, &inv.m, ms, 2.0 * d);
    println!("mean-only background: inside mean {mean_b:.3} max|dev| {dev_b:.3}; plane: {mean_g:.4} {dev_g:.4}");
    assert!(dev_b > 3.0 * dev_g);
    // NaN pixels are accepted and do not spread
    let mut holes = with.clone();
    for _ in 0..20 {
        let i = (noisy_rng.uniform() * (case.h * case.w) as f64) as usize % (case.h * case.w);
        holes[i] = f32::NAN;
    }
    let inv_h = invert(&holes, case.h, case.w, &case.geom, &cfg).unwrap();
    assert!(inv_h.m.iter().all(|v| v.is_finite()));
}

#[test]
fn areal_magnetization_units() {
    // 1e6 A/m x 1 nm = 1e-3 A = 1e-3 / mu_B * 1e-18 mu_B/nm^2 = 107.8 mu_B/nm^2
    let mt = areal_magnetization(&[1e6, -2e6], 1e-9);
    assert!((mt[0] - 1e-3).abs() < 1e-9 && (mt[1] + 2e-3).abs() < 1e-9);
    let mub = areal_magnetization_mub_nm2(&[1e6], 1e-9);
    let want = 1e-3 / MU_B * 1e-18;
    assert!((mub[0] as f64 - want).abs() < 1e-4 * want && (want - 107.83).abs() < 0.01);
    assert!((amperes_to_mub_per_nm2(1e-3) - want).abs() < 1e-9 * want);
}

#[test]
fn bad_arguments_are_errors() {
    let g = NvGeometry::default();
    let map = vec![0f32; 16 * 16];
    let ok = InversionConfig::new([0.0, 0.0, 1.0], Filter::Hanning { wavelength: 1e-7 });
    assert!(invert(&map, 16, 16, &g, &ok).is_ok());
    assert!(invert(&map, 16, 15, &g, &ok).is_err());
    let mut c = ok.clone();
    c.direction = [0.0; 3];
    assert!(invert(&map, 16, 16, &g, &c).is_err());
    let mut c = ok.clone();
    c.filter = Filter::Hanning { wavelength: -1.0 };
    assert!(invert(&map, 16, 16, &g, &c).is_err());
    let mut c = ok.clone();
    c.border = Some(9);
    assert!(invert(&map, 16, 16, &g, &c).is_err());
    let mut c = ok;
    c.guard = 1.5;
    assert!(invert(&map, 16, 16, &g, &c).is_err());
    assert!(invert(
        &[f32::NAN; 256],
        16,
        16,
        &g,
        &InversionConfig::new([0.0, 0.0, 1.0], Filter::None)
    )
    .is_err());
}

// ---------------------------------------------------------------- noise floor, support

/// Adds white Gaussian noise of standard deviation `sigma`.
fn with_noise(map: &[f32], sigma: f64, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    map.iter()
        .map(|&v| (v as f64 + sigma * rng.normal()) as f32)
        .collect()
}

#[test]
fn noise_floor_of_a_field_with_known_noise() {
    // the exact field of an out-of-plane rectangle plus white noise of a known level: both
    // estimates find it; the smooth field adds little to the pixel differences
    let case = exact_case([0.0, 0.0, 1e6], 54.7, 45.0, 100e-9);
    let peak = case.bnv.iter().fold(0f32, |m, v| m.max(v.abs())) as f64;
    for frac in [0.01, 0.05] {
        let sigma = frac * peak;
        let noisy = with_noise(&case.bnv, sigma, 11);
        let nf = noise_floor(&noisy, case.h, case.w, None).unwrap();
        println!(
            "noise {sigma:.3e} T: diff {:.3e} (x {:.3e}, y {:.3e}), spectrum {:.3e}",
            nf.sigma_diff, nf.sigma_diff_x, nf.sigma_diff_y, nf.sigma_spectrum
        );
        assert!((nf.sigma / sigma - 1.0).abs() < 0.08, "diff {}", nf.sigma);
        assert!(
            (nf.sigma_spectrum / sigma - 1.0).abs() < 0.15,
            "spec {}",
            nf.sigma_spectrum
        );
        // the residual of the true field is noise: chi^2 ~ 1, no low-k excess, better than 0
        let d = diagnose(&noisy, &case.bnv, case.h, case.w, Some(sigma), None, 0.1).unwrap();
        assert!(
            (d.chi2_per_pixel - 1.0).abs() < 0.05,
            "chi2 {}",
            d.chi2_per_pixel
        );
        assert!(d.lowk_excess < 2.0, "low-k {}", d.lowk_excess);
        assert!(!d.zero_field.worse_than_zero);
        // a model that misses the magnet: structure at low k, and no better than zero
        let zero = vec![0f32; noisy.len()];
        let d0 = diagnose(&noisy, &zero, case.h, case.w, Some(sigma), None, 0.1).unwrap();
        assert!(
            d0.lowk_excess > 10.0,
            "low-k of the zero model {}",
            d0.lowk_excess
        );
        assert!(d0.zero_field.worse_than_zero);
    }
    // NaN dropouts are skipped, not propagated
    let mut holes = with_noise(&case.bnv, 0.02 * peak, 3);
    for i in (0..holes.len()).step_by(17) {
        holes[i] = f32::NAN;
    }
    let nf = noise_floor(&holes, case.h, case.w, None).unwrap();
    assert!(
        (nf.sigma / (0.02 * peak) - 1.0).abs() < 0.1,
        "with holes {}",
        nf.sigma
    );
    assert!(noise_floor(&[f32::NAN; 4], 2, 2, None).is_err());
}

/// Noise that grows across the map (a scan noisier towards one side, as the measured CuCrP2S6
/// map is towards its corner), on the exact field of a rectangle: the noise map follows the
/// true level, the single global estimate does not, and chi^2 of the true field against the
/// map is 1 everywhere.
#[test]
fn noise_map_follows_noise_that_is_not_stationary() {
    let case = exact_case([0.0, 0.0, 1e6], 54.7, 45.0, 100e-9);
    let (h, w) = (case.h, case.w);
    let peak = case.bnv.iter().fold(0f32, |m, v| m.max(v.abs())) as f64;
    // sigma from 0.5 % to 4 % of the peak, left to right
    let level = |c: usize| peak * (0.005 + 0.035 * c as f64 / (w - 1) as f64);
    let mut rng = Rng::new(5);
    let noisy: Vec<f32> = case
        .bnv
        .iter()
        .enumerate()
        .map(|(i, &v)| (v as f64 + level(i % w) * rng.normal()) as f32)
        .collect();
    let m = noise_map(&noisy, h, w, None, 21).unwrap();
    let mut worst = 0f64;
    let mut mean_err = (0.0, 0.0);
    let mut chi2 = (0.0, 0.0);
    for r in 0..h {
        for c in 0..w {
            let i = r * w + c;
            let rel = m[i] / level(c) - 1.0;
            // away from the map's left and right edges, where the window is one-sided
            if (10..w - 10).contains(&c) {
                worst = worst.max(rel.abs());
                mean_err.0 += rel.abs();
                mean_err.1 += 1.0;
            }
            let res = (noisy[i] - case.bnv[i]) as f64 / m[i];
            chi2.0 += res * res;
            chi2.1 += 1.0;
        }
    }
    let global = noise_floor(&noisy, h, w, None).unwrap().sigma;
    let chi2 = chi2.0 / chi2.1;
    let mean_err = mean_err.0 / mean_err.1;
    println!(
        "noise map: mean relative error {mean_err:.3}, worst {worst:.3}; chi^2 of the true field {chi2:.3}; global estimate {global:.3e} for levels {:.3e}..{:.3e}",
        level(0),
        level(w - 1)
    );
    assert!(mean_err < 0.08 && worst < 0.35, "{mean_err} {worst}");
    assert!((chi2 - 1.0).abs() < 0.1, "{chi2}");
    assert!(noise_map(&noisy, h, w, None, 3).is_err());
}

#[test]
fn automatic_support_finds_the_rectangle() {
    for (m, rule) in [
        (
            [0.0, 0.0, 1e6],
            SupportRule::Inversion {
                direction: [0.0, 0.0, 1.0],
            },
        ),
        ([0.0, 0.0, 1e6], SupportRule::Gradient),
        // an in-plane flake: its field comes from the two charged ends, so the gradient
        // rule sees two blobs; the inversion along the (known or scanned) direction fills it
        (
            [1e6, 0.0, 0.0],
            SupportRule::Inversion {
                direction: [1.0, 0.0, 0.0],
            },
        ),
    ] {
        let case = exact_case(m, 54.7, 45.0, 100e-9);
        let peak = case.bnv.iter().fold(0f32, |a, v| a.max(v.abs())) as f64;
        let noisy = with_noise(&case.bnv, 0.02 * peak, 7);
        let sup = auto_support(&noisy, case.h, case.w, &case.geom, rule).unwrap();
        // intersection over union with the true rectangle (pixel centres inside)
        let (mut inter, mut union) = (0usize, 0usize);
        for r in 0..case.h {
            for c in 0..case.w {
                let truth = rect_distance(&case, r, c) < 0.0;
                let got = sup.support[r * case.w + c] > 0.5;
                inter += (truth && got) as usize;
                union += (truth || got) as usize;
            }
        }
        let iou = inter as f64 / union as f64;
        println!(
            "support {rule:?} for m {m:?}: IoU {iou:.3}, area {:.3}, grow {}, components {}",
            sup.area_fraction, sup.grow, sup.components
        );
        assert!(iou > 0.8, "IoU {iou}");
    }
    // a map without contrast has no support
    let flat = vec![1e-6f32; 32 * 32];
    let geom = NvGeometry::default();
    assert!(auto_support(&flat, 32, 32, &geom, SupportRule::Gradient).is_err());
}
