//! Lorentz-TEM physics: wavelength and interaction constant, transfer function, image formation
//! and magnetic phase against NumPy fixtures of SPEC section 4; the induction of a vortex;
//! SITIE in the weak-phase limit; gradients of the image model by finite differences; noise.

mod common;
use common::*;
use magprior::ltem::{
    self, add_noise, dual_valued, induction, interaction_constant, magnetic_phase, sitie,
    wavelength_nm, LtemForward, Microscope, SitieConfig,
};
use magprior::nv::MU0;
use magprior::{Rng, Tensor};

fn microscope_from(c: &[f32]) -> Microscope {
    Microscope {
        kv: c[0] as f64,
        cs: c[1] as f64,
        theta_c: c[2] as f64,
        spread: c[3] as f64,
        ca: c[4] as f64,
        phi_a: c[5] as f64,
        defocus: c[6] as f64,
        scale: c[7] as f64,
        aperture: (c[8] > 0.0).then_some(c[8] as f64),
    }
}

#[test]
fn wavelength_and_interaction_constant() {
    assert!(
        (wavelength_nm(200.0) - 2.508e-3).abs() < 1e-6,
        "{}",
        wavelength_nm(200.0)
    );
    assert!(
        (wavelength_nm(300.0) - 1.969e-3).abs() < 1e-6,
        "{}",
        wavelength_nm(300.0)
    );
    let want = fx("ltem", "wavelength").to_vec().unwrap();
    assert_close_slice(
        "wavelength, sigma",
        &[
            wavelength_nm(200.0) as f32,
            wavelength_nm(300.0) as f32,
            interaction_constant(200.0) as f32,
        ],
        &want,
        ELEMENTWISE,
    );
    // 200 kV: sigma = 7.29e-3 rad / (V nm)
    assert!((interaction_constant(200.0) - 7.29e-3).abs() < 1e-5);
}

#[test]
fn transfer_function_matches_numpy_fixture() {
    let mic = microscope_from(&fx("ltem", "config").to_vec().unwrap());
    let want = fx("ltem", "transfer");
    let (h, w) = (want.shape()[0], want.shape()[1]);
    let got = Tensor::from_shape_vec_c(&[h, w], mic.transfer(h, w)).unwrap();
    assert_close("transfer", &got, &want, TRANSFER_FN);
}

#[test]
fn image_matches_numpy_fixture() {
    let mic = microscope_from(&fx("ltem", "config").to_vec().unwrap());
    let phase = fx("ltem", "phase");
    let amp = fx("ltem", "amplitude");
    let (h, w) = (phase.shape()[0], phase.shape()[1]);
    let fwd = LtemForward::new(h, w, &mic, 1).unwrap();
    let p = phase.reshape(&[1, 1, h, w]).unwrap();
    let a = amp.reshape(&[1, 1, h, w]).unwrap();
    let got = fwd
        .image(&p, Some(&a), None)
        .unwrap()
        .reshape(&[h, w])
        .unwrap();
    assert_close("image", &got, &fx("ltem", "image"), ACCUMULATED);
    // the scale multiplies the amplitude: the image scales by s^2
    let s = Tensor::from_shape_vec(&[1], vec![1.5]).unwrap();
    let got2 = fwd
        .image(&p, Some(&a), Some(&s))
        .unwrap()
        .reshape(&[h, w])
        .unwrap();
    assert_close(
        "image, scale 1.5",
        &got2,
        &fx("ltem", "image").scale(2.25).unwrap(),
        ACCUMULATED,
    );
}

#[test]
fn magnetic_phase_matches_numpy_fixture() {
    let m = fx("ltem", "m");
    let cfg = fx("ltem", "m_config").to_vec().unwrap();
    let (h, w) = (m.shape()[1], m.shape()[2]);
    let v = m.to_vec().unwrap();
    let got = magnetic_phase(&v[..h * w], &v[h * w..], h, w, cfg[0] as f64, cfg[1] as f64).unwrap();
    let want = fx("ltem", "m_phase").to_vec().unwrap();
    let peak = want.iter().fold(0f32, |a, v| a.max(v.abs()));
    assert_close_slice(
        "m_phase",
        &got,
        &want,
        Tol::of_peak(FIELD_OF_PEAK, peak as f64),
    );
}

#[test]
fn vortex_induction_has_magnitude_mu0_ms_t_and_circulates_with_m() {
    let (n, scale, t, ms) = (96usize, 4.0, 20.0, 8e5);
    let (c0, rad) = (47.5f64, 35.0f64);
    let mut m = vec![0f32; 2 * n * n];
    for r in 0..n {
        for c in 0..n {
            let (x, y) = (c as f64 - c0, r as f64 - c0);
            let d = (x * x + y * y).sqrt();
            if d < rad {
                // counter-clockwise (y down the rows): M along (-y, x) / r
                m[r * n + c] = (-ms * y / d) as f32;
                m[n * n + r * n + c] = (ms * x / d) as f32;
            }
        }
    }
    let phase = magnetic_phase(&m[..n * n], &m[n * n..], n, n, t, scale).unwrap();
    let b = induction(&phase, n, n, scale).unwrap();
    let want = MU0 * ms * t * 1e-9; // T m
    let (mut cos_sum, mut mag_err, mut cnt) = (0.0, 0.0f64, 0);
    for r in 0..n {
        for c in 0..n {
            let (x, y) = (c as f64 - c0, r as f64 - c0);
            let d = (x * x + y * y).sqrt();
            if d > 8.0 && d < rad - 6.0 {
                let i = r * n + c;
                let (bx, by) = (b[i] as f64, b[n * n + i] as f64);
                let (mx, my) = (m[i] as f64, m[n * n + i] as f64);
                let bm = (bx * bx + by * by).sqrt();
                cos_sum += (bx * mx + by * my) / (bm * ms);
                mag_err = mag_err.max((bm / want - 1.0).abs());
                cnt += 1;
            }
        }
    }
    let cos = cos_sum / cnt as f64;
    assert!(cos > 0.999, "direction cosine {cos}");
    assert!(mag_err < 0.05, "|B t| deviates from mu0 Ms t by {mag_err}");
}

#[test]
fn sitie_of_a_weak_phase_image_correlates_with_the_phase() {
    let n = 64;
    // localised bumps (zero at the edges), so that the periodic and the mirror-symmetric
    // solutions both apply
    let bumps = [
        (20.0, 24.0, 5.0, 0.3),
        (40.0, 38.0, 7.0, -0.2),
        (28.0, 44.0, 4.0, 0.25),
    ];
    let phase: Vec<f32> = (0..n * n)
        .map(|i| {
            let (r, c) = ((i / n) as f32, (i % n) as f32);
            bumps
                .iter()
                .map(|&(y, x, s, a)| {
                    a * (-((r - y).powi(2) + (c - x).powi(2)) / (2.0 * s * s)).exp()
                })
                .sum()
        })
        .collect();
    // a nearly coherent beam (the SIPRAD demo's 0.01 mrad): with SPEC's default 0.6 mrad the
    // envelope blurs the wave itself and the contrast is no longer the TIE's
    for df in [-2e4, 2e4] {
        let mic = Microscope {
            defocus: df,
            ..Microscope::siprad_demo()
        };
        let img = LtemForward::new(n, n, &mic, 1)
            .unwrap()
            .image_of(&phase, None)
            .unwrap();
        for symmetric in [false, true] {
            let s = sitie(
                &img,
                n,
                n,
                &mic,
                &SitieConfig {
                    qc: None,
                    symmetric,
                },
            )
            .unwrap();
            let corr = ltem::metrics::pearson(&s, &phase);
            assert!(
                corr > 0.95,
                "df {df} symmetric {symmetric}: correlation {corr}"
            );
            assert_eq!(s.iter().copied().fold(f32::INFINITY, f32::min), 0.0);
        }
    }
    let mic = Microscope {
        defocus: 0.0,
        ..Microscope::default()
    };
    assert!(sitie(&phase, n, n, &mic, &SitieConfig::default()).is_err());
}

#[test]
fn expi_gradient_by_finite_differences() {
    let mut rng = Rng::new(3);
    let p = rand(&[3, 5], -3.0, 3.0, &mut rng);
    check_grad("expi", &[p], |x| x[0].expi().unwrap(), 1e-2, 15);
}

#[test]
fn image_model_gradients_by_finite_differences() {
    let (h, w) = (8, 10);
    let mic = Microscope {
        defocus: -3e4,
        scale: 2.0,
        ..Microscope::siprad_demo()
    };
    let mut rng = Rng::new(9);
    let phase = rand(&[1, 1, h, w], -1.0, 1.0, &mut rng);
    let amp = rand(&[1, 1, h, w], 0.6, 1.0, &mut rng);
    let s = Tensor::from_shape_vec(&[1], vec![1.1]).unwrap();
    for pad in [1, 2] {
        let fwd = LtemForward::new(h, w, &mic, pad).unwrap();
        check_grad(
            &format!("image (pad {pad})"),
            &[phase.clone(), amp.clone(), s.clone()],
            |x| fwd.image(&x[0], Some(&x[1]), Some(&x[2])).unwrap(),
            1e-2,
            20,
        );
    }
}

#[test]
fn noise_has_the_requested_level_and_keeps_the_mean() {
    let n = 64 * 64;
    let clean: Vec<f32> = (0..n)
        .map(|i| 1.0 + 0.2 * ((i % 64) as f32 / 64.0))
        .collect();
    let mean = clean.iter().sum::<f32>() as f64 / n as f64;
    let mut img = clean.clone();
    add_noise(&mut img, 0.5, None, 4.0, &mut Rng::new(1)).unwrap();
    let sd = (img
        .iter()
        .zip(&clean)
        .map(|(a, b)| ((a - b) as f64).powi(2))
        .sum::<f64>()
        / n as f64)
        .sqrt();
    assert!((sd / (0.5 * mean) - 1.0).abs() < 0.05, "noise std {sd}");
    let mut img = clean.clone();
    add_noise(&mut img, 0.0, Some(2.0), 4.0, &mut Rng::new(2)).unwrap();
    let m2 = img.iter().sum::<f32>() as f64 / n as f64;
    assert!(
        (m2 / mean - 1.0).abs() < 0.02,
        "Poisson mean {m2} vs {mean}"
    );
    // 32 electrons per pixel: relative std ~ 1/sqrt(32)
    let sd = (img
        .iter()
        .zip(&clean)
        .map(|(a, b)| ((a - b) as f64).powi(2))
        .sum::<f64>()
        / n as f64)
        .sqrt();
    assert!(
        (sd / (mean / 32f64.sqrt()) - 1.0).abs() < 0.15,
        "Poisson std {sd}"
    );
    assert!(add_noise(&mut img, -1.0, None, 4.0, &mut Rng::new(2)).is_err());
}

#[test]
fn dual_valued_constraint_is_two_valued_and_never_fails() {
    let (h, w) = (16, 16);
    let mut a = vec![0.93f32; h * w];
    for v in a.iter_mut().take(40) {
        *v = 0.3;
    }
    a[100] = 0.5;
    let c = dual_valued(&a, h, w);
    assert!(c
        .iter()
        .all(|v| v.is_finite() && *v >= 0.3 - 1e-6 && *v <= 0.93 + 1e-6));
    // far from the edge between the two regions the values are exactly high and low
    assert!((c[h * w - 1] - 0.93).abs() < 1e-4, "{}", c[h * w - 1]);
    let lo = c.iter().copied().fold(f32::INFINITY, f32::min);
    assert!((lo - 0.3).abs() < 0.05, "{lo}");
    // constant, empty-ish and non-finite inputs do not crash
    assert!(dual_valued(&[0.7; 64], 8, 8)
        .iter()
        .all(|v| (v - 0.7).abs() < 1e-6));
    let mut bad = vec![0.5f32; 64];
    bad[3] = f32::NAN;
    let _ = dual_valued(&bad, 8, 8);
}

/// The FFT phase operator against the exact real-space cell integral (`magnetic_phase_at`, no
/// FFT, no periodic images) on states relaxed by magnum.np, at the pixel centres; both means
/// removed (the FFT phase is defined up to a constant). A vortex has no net moment: its phase is
/// local and the two agree closely; the S state's net moment gives a phase decaying as 1/r, whose
/// periodic images the zero padding pushes away: the difference falls as the padding grows.
#[test]
fn padded_fft_phase_matches_the_exact_cell_integral_on_relaxed_states() {
    use magprior::io::npy::read_npy;
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/relaxed");
    for (name, pads, tol) in [
        ("vortex_disk", &[4][..], 0.005),
        ("s_state", &[2, 4, 8], 0.03),
    ] {
        let m = read_npy(dir.join(format!("{name}_m.npy"))).unwrap();
        let (h, w) = (m.shape()[1], m.shape()[2]);
        let v: Vec<f32> = m.to_vec().unwrap().iter().map(|x| x * 8.6e5).collect();
        let (mx, my) = (&v[..h * w], &v[h * w..2 * h * w]);
        let pts: Vec<[f64; 2]> = (0..h * w)
            .map(|i| [(i % w) as f64 * 5.0, (i / w) as f64 * 5.0])
            .collect();
        let mut exact = ltem::magnetic_phase_at(mx, my, h, w, 5.0, 20.0, &pts).unwrap();
        let centre = |v: &mut Vec<f64>| {
            let m = v.iter().sum::<f64>() / v.len() as f64;
            v.iter_mut().for_each(|x| *x -= m);
        };
        centre(&mut exact);
        let peak = exact.iter().fold(0f64, |m, v| m.max(v.abs()));
        // 20 nm of Permalloy: pi mu0 Ms t R / Phi0 ~ several rad
        assert!(peak > 1.0, "{name}: peak {peak}");
        let mut last = f64::INFINITY;
        for &pad in pads {
            let op = ltem::PhaseForward::new(h, w, 20.0, 5.0, pad).unwrap();
            let t = Tensor::from_shape_vec(&[1, 2, h, w], [mx, my].concat()).unwrap();
            let mut a: Vec<f64> = op
                .phase(&t)
                .unwrap()
                .to_vec()
                .unwrap()
                .iter()
                .map(|&x| x as f64)
                .collect();
            centre(&mut a);
            let err = a
                .iter()
                .zip(&exact)
                .map(|(x, y)| (x - y).powi(2))
                .sum::<f64>()
                .sqrt()
                / exact.iter().map(|y| y * y).sum::<f64>().sqrt();
            println!("{name}, pad {pad}: relative L2 difference {err:.4} (peak {peak:.2} rad)");
            assert!(
                err < last,
                "{name}: pad {pad} gives {err}, no better than {last}"
            );
            last = err;
        }
        assert!(last < tol, "{name}: {last}");
    }
}
