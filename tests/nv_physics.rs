//! NV forward model and deprojection: NumPy fixtures of SPEC's formula, the dipole far field,
//! the adjoint identity, and the deprojection round trip.

mod common;
use common::*;
use magprior::nv::{deproject, NvForward, NvGeometry, MU0};
use magprior::{Rng, Tensor};

fn geometry_from(cfg: &[f32]) -> NvGeometry {
    NvGeometry {
        pixel: cfg[0] as f64,
        thickness: cfg[1] as f64,
        standoff: cfg[2] as f64,
        theta_deg: cfg[3] as f64,
        phi_deg: cfg[4] as f64,
        pad: cfg[5] as usize,
        cutoff_k: (cfg[6] > 0.0).then_some(cfg[6] as f64),
    }
}

fn rel_l2(a: &[f32], b: &[f32]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
    let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (num / den).sqrt()
}

#[test]
fn forward_matches_numpy_fixture() {
    for case in ["full", "inplane"] {
        let g = geometry_from(&fx("nv", &format!("{case}_config")).to_vec().unwrap());
        let m = fx("nv", &format!("{case}_m"));
        let (c, h, w) = (m.shape()[0], m.shape()[1], m.shape()[2]);
        let m = m.reshape(&[1, c, h, w]).unwrap();
        let op = NvForward::new(h, w, &g).unwrap();
        let want = fx("nv", &format!("{case}_bnv"));
        let got = op.bnv(&m).unwrap().reshape(&[h, w]).unwrap();
        let peak = flat(&want).iter().fold(0f32, |a, v| a.max(v.abs()));
        assert_close(
            &format!("{case} bnv"),
            &got,
            &want,
            Tol::of_peak(FIELD_OF_PEAK, peak as f64),
        );
        let want_f = fx("nv", &format!("{case}_field"));
        let got_f = op.field(&m).unwrap().reshape(&[3, h, w]).unwrap();
        let peak = flat(&want_f).iter().fold(0f32, |a, v| a.max(v.abs()));
        assert_close(
            &format!("{case} field"),
            &got_f,
            &want_f,
            Tol::of_peak(FIELD_OF_PEAK, peak as f64),
        );
    }
}

#[test]
fn far_field_of_a_small_uniform_square_is_a_dipole() {
    let (n, px, t, d, ms) = (64usize, 5e-9, 5e-9, 150e-9, 8.6e5);
    // 2x2-pixel square, magnetised along +x, at rows/cols 31..33
    let mut m = vec![0f32; 2 * n * n];
    for r in 31..33 {
        for c in 31..33 {
            m[r * n + c] = ms as f32;
        }
    }
    let g = NvGeometry {
        pixel: px,
        thickness: t,
        standoff: d,
        pad: 4,
        ..Default::default()
    };
    let op = NvForward::new(n, n, &g).unwrap();
    let b = op
        .field(&Tensor::from_shape_vec(&[1, 2, n, n], m).unwrap())
        .unwrap()
        .to_vec()
        .unwrap();
    let moment = ms * (2.0 * px) * (2.0 * px) * t; // A m^2 along x
    let (x0, y0, z0) = (32.0 * px - 0.5 * px, 32.0 * px - 0.5 * px, -t / 2.0);
    let mut want = vec![0f32; 3 * n * n];
    for r in 0..n {
        for c in 0..n {
            let (rx, ry, rz) = (c as f64 * px - x0, r as f64 * px - y0, d - z0);
            let rr = (rx * rx + ry * ry + rz * rz).sqrt();
            let mdotr = moment * rx / rr;
            let k = MU0 / (4.0 * std::f64::consts::PI) / rr.powi(3);
            let comps = [
                3.0 * rx / rr * mdotr - moment,
                3.0 * ry / rr * mdotr,
                3.0 * rz / rr * mdotr,
            ];
            for (i, v) in comps.iter().enumerate() {
                want[i * n * n + r * n + c] = (k * v) as f32;
            }
        }
    }
    let err = rel_l2(&b, &want);
    assert!(err < 0.03, "relative L2 error vs dipole field {err}");
}

#[test]
fn forward_operator_adjoint_identity() {
    let mut rng = Rng::new(9);
    let g = NvGeometry {
        phi_deg: 20.0,
        ..Default::default()
    };
    let op = NvForward::new(12, 20, &g).unwrap();
    let m = rand(&[1, 3, 12, 20], -1e5, 1e5, &mut rng).requires_grad();
    let y = rand(&[1, 1, 12, 20], -1.0, 1.0, &mut rng);
    let am = op.bnv(&m).unwrap();
    let lhs: f64 = flat(&am)
        .iter()
        .zip(flat(&y))
        .map(|(a, b)| *a as f64 * b as f64)
        .sum();
    let aty = am.backward_with(&y).unwrap().remove(&m).unwrap();
    let rhs: f64 = flat(&m)
        .iter()
        .zip(flat(&aty))
        .map(|(a, b)| *a as f64 * b as f64)
        .sum();
    assert_adjoint("NV forward", (lhs, 0.0), (rhs, 0.0), ADJOINT_PHYSICAL);
}

#[test]
fn standoff_gradient_matches_finite_difference() {
    let m = fx("nv", "full_m");
    let (h, w) = (m.shape()[1], m.shape()[2]);
    let m = m.reshape(&[1, 3, h, w]).unwrap();
    let g = NvGeometry::default();
    let op = NvForward::new(h, w, &g).unwrap();
    let target = op.bnv(&m).unwrap().scale(1.1).unwrap();
    // the standoff in units of 10 nm keeps the scalar O(1) for f32
    let loss = |d: f32| {
        let dt = Tensor::scalar(d).requires_grad();
        let l = op
            .bnv_with_standoff(&m, &dt.scale(1e-8).unwrap())
            .unwrap()
            .mse_loss(&target)
            .unwrap();
        (
            l.to_scalar().unwrap() as f64,
            l.backward().unwrap().get(&dt).unwrap().to_scalar().unwrap() as f64,
        )
    };
    let (_, grad) = loss(4.0);
    let fd = (loss(4.01).0 - loss(3.99).0) / 0.02;
    assert_close_scalar("d loss / d standoff vs fd", grad, fd, FINITE_DIFF_PHYSICAL);
    // the fixed-standoff and trainable paths agree at the same value
    let a = op.bnv(&m).unwrap();
    let b = op.bnv_with_standoff(&m, &Tensor::scalar(50e-9)).unwrap();
    assert_close("standoff paths", &b, &a, STANDOFF_PATHS);
}

/// A 150 x 90 nm rectangle magnetised along (1, 0.5) in a 64^2 window of 5 nm pixels:
/// (clean B_NV, true (Bx, By, Bz), geometry).
fn rectangle_case(theta: f64) -> (Vec<f32>, Vec<f32>, NvGeometry) {
    let n = 64;
    let mut m = vec![0f32; 3 * n * n];
    for r in 23..41 {
        for c in 17..47 {
            m[r * n + c] = 8.6e5 * 0.894;
            m[n * n + r * n + c] = 8.6e5 * 0.447;
        }
    }
    let g = NvGeometry {
        phi_deg: 30.0,
        theta_deg: theta,
        ..Default::default()
    };
    let op = NvForward::new(n, n, &g).unwrap();
    let mt = Tensor::from_shape_vec(&[1, 3, n, n], m).unwrap();
    (
        op.bnv(&mt).unwrap().to_vec().unwrap(),
        op.field(&mt).unwrap().to_vec().unwrap(),
        g,
    )
}

fn reproject(f: &[f32], g: &NvGeometry) -> Vec<f32> {
    let (axis, n) = (g.axis(), f.len() / 3);
    (0..n)
        .map(|i| (0..3).map(|r| axis[r] as f32 * f[r * n + i]).sum())
        .collect()
}

#[test]
fn deprojection_round_trip_and_eps_choice() {
    let n = 64;
    let (clean, truth, g) = rectangle_case(54.75);
    // noise-free: n.B(B_NV) == B_NV up to the (unrecoverable) mean; field within SPEC's 4-12 %
    let dp = deproject(&clean, n, n, &g, None).unwrap();
    assert_eq!(dp.risk.len(), 121);
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
    let centred = |v: &[f32]| v.iter().map(|x| x - mean(v)).collect::<Vec<_>>();
    let err = rel_l2(&centred(&reproject(&dp.field, &g)), &centred(&clean));
    assert!(err < 1e-3, "round trip n.B(B_NV) vs B_NV: {err}");
    let err_b = rel_l2(&dp.field, &truth);
    assert!(
        err_b < 0.13,
        "deprojected field vs truth {err_b} (window truncation only)"
    );
    // with 1 % noise the chosen eps is as good as the best candidate, within 2 %
    let peak = clean.iter().fold(0f32, |a, v| a.max(v.abs()));
    let mut rng = Rng::new(3);
    let noisy: Vec<f32> = clean
        .iter()
        .map(|v| v + 0.01 * peak * rng.normal() as f32)
        .collect();
    let dp = deproject(&noisy, n, n, &g, None).unwrap();
    let chosen = rel_l2(&dp.field, &truth);
    let best = dp
        .risk
        .iter()
        .step_by(8)
        .map(|&(e, _)| rel_l2(&deproject(&noisy, n, n, &g, Some(e)).unwrap().field, &truth))
        .fold(f64::INFINITY, f64::min);
    assert!(
        chosen < 1.02 * best,
        "chosen eps {:.3e}: {chosen} vs best {best}",
        dp.eps
    );
    assert!(dp.noise_power > 0.0);
}

#[test]
fn in_plane_nv_axis_needs_and_gets_regularisation() {
    let n = 64;
    let (clean, truth, g) = rectangle_case(89.0);
    let peak = clean.iter().fold(0f32, |a, v| a.max(v.abs()));
    let mut rng = Rng::new(4);
    let noisy: Vec<f32> = clean
        .iter()
        .map(|v| v + 0.01 * peak * rng.normal() as f32)
        .collect();
    let chosen = deproject(&noisy, n, n, &g, None).unwrap();
    let none = deproject(&noisy, n, n, &g, Some(1e-3)).unwrap();
    let (ec, en) = (rel_l2(&chosen.field, &truth), rel_l2(&none.field, &truth));
    assert!(
        chosen.eps > 1e4 && ec < en,
        "chosen eps {:.3e} err {ec} vs unregularised {en}",
        chosen.eps
    );
}

#[test]
fn support_specs_resolve_to_shapes_rules_or_nothing() {
    use magprior::nv::{support_from_spec, SupportFrom};
    let (h, w) = (32, 32);
    let geom = NvGeometry {
        pixel: 5e-9,
        ..Default::default()
    };
    let zero = vec![0f32; h * w];
    // a shape: the same support the mask module draws, no data needed
    let s = support_from_spec("ellipse:40nm,20nm", &zero, h, w, &geom, None, false)
        .unwrap()
        .unwrap();
    assert!(matches!(s, SupportFrom::Shape(_)) && s.auto().is_none());
    let area = s.support().iter().sum::<f32>();
    let exact = std::f32::consts::PI * 8.0 * 4.0;
    assert!((area / exact - 1.0).abs() < 0.15, "{area} vs {exact}");
    // anything else is not a spec (the caller reads it as a file name)
    assert!(
        support_from_spec("sup.npy", &zero, h, w, &geom, None, false)
            .unwrap()
            .is_none()
    );
    // an unknown rule is an error naming it
    let e = support_from_spec("auto:magic", &zero, h, w, &geom, None, false).unwrap_err();
    assert!(e.to_string().contains("auto:magic"), "{e}");
    // a rule from data: an out-of-plane square found along z
    let mut m = vec![0f32; 3 * h * w];
    for r in 10..22 {
        for c in 10..22 {
            m[2 * h * w + r * w + c] = 8e5;
        }
    }
    let bnv = NvForward::new(h, w, &geom)
        .unwrap()
        .bnv(&Tensor::from_shape_vec(&[1, 3, h, w], m).unwrap())
        .unwrap()
        .to_vec()
        .unwrap();
    let found = support_from_spec("auto", &bnv, h, w, &geom, Some([0.0, 0.0, 1.0]), false)
        .unwrap()
        .unwrap();
    assert!(matches!(found, SupportFrom::Rule(_)));
    let inside = found.support()[16 * w + 16];
    let corner = found.support()[0];
    assert!(inside == 1.0 && corner == 0.0);
}
