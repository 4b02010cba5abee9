//! The NV models on states nobody here drew: magnetisation states relaxed by magnum.np
//! (`fixtures/relaxed/`, an independent micromagnetic solver), pushed through the forward model
//! (pinned against the exact cuboid field in `nv_invert.rs`), with 1 % noise, reconstructed
//! with the energy model; and the direction model with the nuisances a measured map carries
//! (offset, plane, dropouts). The README's panel (`examples/nv_relaxed.rs`) runs the same
//! states with the default iterations; these tests use fewer so that CI stays short.

use magprior::io::npy::read_npy;
use magprior::nv::{
    self, direction_cosine, mask, Circulation, DirectionSpec, EnergyConfig, ModelBackground,
    NvForward, NvGeometry, NvModel, NvReconConfig, Preset,
};
use magprior::{Rng, Tensor};
use std::path::PathBuf;

const MS: f32 = 8.6e5;

/// A relaxed state (3, H, W) in A/m, its support, and its noisy B_NV (1 % of max |B_NV|).
fn relaxed_problem(name: &str) -> (Vec<f32>, Vec<f32>, Vec<f32>, usize, usize, f64) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/relaxed");
    let m = read_npy(dir.join(format!("{name}_m.npy"))).unwrap();
    let (h, w) = (m.shape()[1], m.shape()[2]);
    let truth: Vec<f32> = m.to_vec().unwrap().iter().map(|v| v * MS).collect();
    let support = read_npy(dir.join(format!("{name}_support.npy")))
        .unwrap()
        .to_vec()
        .unwrap();
    let clean = NvForward::new(h, w, &NvGeometry::default())
        .unwrap()
        .bnv(&Tensor::from_shape_vec(&[1, 3, h, w], truth.clone()).unwrap())
        .unwrap()
        .to_vec()
        .unwrap();
    let sigma = 0.01 * clean.iter().fold(0f32, |a, v| a.max(v.abs())) as f64;
    let mut rng = Rng::new(7);
    let bnv = clean
        .iter()
        .map(|&v| (v as f64 + sigma * rng.normal()) as f32)
        .collect();
    (truth, support, bnv, h, w, sigma)
}

/// Runs the energy model with short phases; returns (in-plane cosine, circulation, chi2/px).
fn energy_run(name: &str) -> (f64, Circulation, f64) {
    let (truth, support, bnv, h, w, sigma) = relaxed_problem(name);
    let msk = mask::preset_mask(&support, h, w, Preset::None, 0.0, true).unwrap();
    let cfg = NvReconConfig {
        iters: 400,
        noise: Some(sigma),
        model: NvModel::Energy(EnergyConfig {
            start_iters: 100,
            ..Default::default()
        }),
        ..Default::default()
    };
    let res = nv::reconstruct(&bnv, h, w, &msk, &cfg, &mut |_| true).unwrap();
    let cos = direction_cosine(&truth, &res.magnetization, &support);
    let d = &res.diagnostics;
    println!(
        "{name}: cosine {cos:.3}, chi2/px {:.3}, circulation {}, flip dchi2 {:.1}; notes {:?}",
        d.chi2_per_pixel,
        d.circulation.as_str(),
        d.flip_delta_chi2,
        d.notes
    );
    // |M| = Ms by construction: inside the support every vector has length Ms
    let hw = h * w;
    for i in (0..hw).filter(|&i| support[i] > 0.5) {
        let n = (0..3)
            .map(|c| (res.magnetization[c * hw + i] as f64).powi(2))
            .sum::<f64>()
            .sqrt();
        assert!((n / MS as f64 - 1.0).abs() < 1e-3, "|M| {n} at {i}");
    }
    (cos, d.circulation, d.chi2_per_pixel)
}

#[test]
fn energy_model_recovers_the_relaxed_landau_ellipse_and_says_its_sense_is_determined() {
    // the relaxed Landau state has wall and edge charges: its sense is in the data
    let (cos, circ, chi2) = energy_run("landau_ellipse");
    assert_eq!(circ, Circulation::Determined);
    assert!(cos > 0.95, "cosine {cos}");
    assert!((0.8..1.3).contains(&chi2), "chi2 {chi2}");
}

#[test]
fn energy_model_on_the_vortex_disk_reports_the_sense_as_undetermined() {
    // a vortex in a disk is divergence-free and tangential at the edge: the data see the core
    // and not the circulation; the run must say so, and then only |cosine| is meaningful
    let (cos, circ, chi2) = energy_run("vortex_disk");
    assert_eq!(circ, Circulation::Undetermined);
    assert!(cos.abs() > 0.95, "cosine {cos}");
    assert!((0.8..1.3).contains(&chi2), "chi2 {chi2}");
}

#[test]
fn energy_model_recovers_the_seven_domain_rectangle() {
    // (the S, C and needle states: README's panel, examples/nv_relaxed.rs)
    // (the vortex-pair start finds it; a single vortex is the next-lowest objective)
    let (cos, circ, chi2) = energy_run("diamond_rect");
    assert_eq!(circ, Circulation::Determined);
    assert!(cos > 0.95, "cosine {cos}");
    assert!((0.8..1.3).contains(&chi2), "chi2 {chi2}");
}

/// A uniformly magnetised flake (out of the plane by 30 deg) with an offset, a tilt and
/// dropouts, as a measured map comes.
#[test]
fn direction_model_fits_direction_background_and_skips_dropouts() {
    let n = 48;
    let geom = NvGeometry {
        pixel: 20e-9,
        standoff: 60e-9,
        ..Default::default()
    };
    let c = (n as f64 - 1.0) / 2.0;
    let support = mask::ellipse_support(n, n, c, c, 14.0, 10.0, 20.0);
    let (theta, phi) = (30.0f64, 200.0f64);
    let u = nv::direction_from_angles(theta, phi);
    let hw = n * n;
    let mut m = vec![0f32; 3 * hw];
    for i in 0..hw {
        for k in 0..3 {
            m[k * hw + i] = support[i] * 5e5 * u[k] as f32;
        }
    }
    let clean = NvForward::new(n, n, &geom)
        .unwrap()
        .bnv(&Tensor::from_shape_vec(&[1, 3, n, n], m.clone()).unwrap())
        .unwrap()
        .to_vec()
        .unwrap();
    let peak = clean.iter().fold(0f32, |a, v| a.max(v.abs())) as f64;
    let mut rng = Rng::new(3);
    let (off, sx, sy) = (
        0.3 * peak,
        0.2 * peak / (n as f64 * 20e-9),
        -0.1 * peak / (n as f64 * 20e-9),
    );
    let mut bnv: Vec<f32> = (0..hw)
        .map(|i| {
            let (x, y) = (
                ((i % n) as f64 - c) * geom.pixel,
                ((i / n) as f64 - c) * geom.pixel,
            );
            (clean[i] as f64 + off + sx * x + sy * y + 0.01 * peak * rng.normal()) as f32
        })
        .collect();
    for i in (5..hw).step_by(37) {
        bnv[i] = f32::NAN;
    }
    let msk = mask::preset_mask(&support, n, n, Preset::None, 0.0, true).unwrap();
    let mut cfg = NvReconConfig {
        geom,
        iters: 400,
        lr: 3e-3,
        ms: 8e5,
        model: NvModel::Direction(DirectionSpec::Fit { start: None }),
        background: ModelBackground::Plane,
        ..Default::default()
    };
    // dropouts are an error unless they are to be left out
    let err = nv::reconstruct(&bnv, n, n, &msk, &cfg, &mut |_| true).unwrap_err();
    println!("without ignore_nan: {err}");
    assert!(err.to_string().contains("NaN") || err.to_string().contains("finite"));
    cfg.ignore_nan = true;
    let res = nv::reconstruct(&bnv, n, n, &msk, &cfg, &mut |_| true).unwrap();
    let (t, p) = res.direction.unwrap();
    let got = nv::direction_from_angles(t, p);
    let ang = (got.iter().zip(&u).map(|(a, b)| a * b).sum::<f64>())
        .clamp(-1.0, 1.0)
        .acos()
        .to_degrees();
    let d = &res.diagnostics;
    println!(
        "direction {t:.1}, {p:.1} (truth {theta}, {phi}): {ang:.2} deg off; background {:?} (truth {off:.3e}, {sx:.3e}, {sy:.3e}); chi2/px {:.3}",
        res.background, d.chi2_per_pixel
    );
    assert!(ang < 3.0, "direction off by {ang} deg");
    assert!((res.background.offset - off).abs() < 0.05 * off, "offset");
    assert!(
        (res.background.slope_x - sx).abs() < 0.1 * sx.abs(),
        "slope x"
    );
    assert!(
        (res.background.slope_y - sy).abs() < 0.1 * sy.abs(),
        "slope y"
    );
    assert!(
        (0.7..1.5).contains(&d.chi2_per_pixel),
        "chi2 {}",
        d.chi2_per_pixel
    );
    assert!(d.warnings.is_empty(), "{:?}", d.warnings);
    // the noise floor estimated from the map is the added one
    let ratio = d.noise_floor_t / (0.01 * peak);
    println!("noise floor / added noise: {ratio:.3}");
    assert!((ratio - 1.0).abs() < 0.25, "noise floor ratio {ratio}");
}

/// The NV axis and the standoff trained with M from wrong starts: both come back, and the
/// standoff's uncertainty covers the truth.
#[test]
fn nv_axis_and_standoff_are_fitted_from_wrong_starts() {
    let n = 48;
    let truth = NvGeometry {
        pixel: 20e-9,
        standoff: 60e-9,
        theta_deg: 54.7,
        phi_deg: 45.0,
        ..Default::default()
    };
    let c = (n as f64 - 1.0) / 2.0;
    let support = mask::ellipse_support(n, n, c, c, 14.0, 10.0, 20.0);
    let hw = n * n;
    let mut m = vec![0f32; 3 * hw];
    m[2 * hw..].copy_from_slice(&support.iter().map(|s| s * 5e5).collect::<Vec<_>>());
    let clean = NvForward::new(n, n, &truth)
        .unwrap()
        .bnv(&Tensor::from_shape_vec(&[1, 3, n, n], m).unwrap())
        .unwrap()
        .to_vec()
        .unwrap();
    let sigma = 0.01 * clean.iter().fold(0f32, |a, v| a.max(v.abs())) as f64;
    let mut rng = Rng::new(9);
    let bnv: Vec<f32> = clean
        .iter()
        .map(|&v| (v as f64 + sigma * rng.normal()) as f32)
        .collect();
    let msk = mask::preset_mask(&support, n, n, Preset::None, 0.0, true).unwrap();
    let cfg = NvReconConfig {
        geom: NvGeometry {
            standoff: 75e-9,
            theta_deg: 50.0,
            phi_deg: 38.0,
            ..truth.clone()
        },
        iters: 500,
        lr: 3e-3,
        ms: 8e5,
        noise: Some(sigma),
        model: NvModel::Direction(DirectionSpec::Given {
            theta_deg: 0.0,
            phi_deg: 0.0,
        }),
        fit_standoff: true,
        fit_axis: true,
        ..Default::default()
    };
    let res = nv::reconstruct(&bnv, n, n, &msk, &cfg, &mut |_| true).unwrap();
    let (t, p) = res.nv_axis.unwrap();
    let s = res.diagnostics.standoff_sigma.unwrap();
    println!(
        "axis {t:.2}, {p:.2} (truth 54.7, 45); standoff {:.2} +- {:.2} nm (truth 60); chi2/px {:.3}",
        res.standoff * 1e9,
        s * 1e9,
        res.diagnostics.chi2_per_pixel
    );
    assert!(
        (t - 54.7).abs() < 2.0 && (p - 45.0).abs() < 3.0,
        "axis {t}, {p}"
    );
    assert!(
        (res.standoff - 60e-9).abs() < 5e-9,
        "standoff {}",
        res.standoff
    );
    assert!(s > 0.0 && s.is_finite(), "standoff sigma {s}");
}
