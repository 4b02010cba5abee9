//! Contamination in Lorentz TEM: the noise estimate against the noise put in, the particles
//! found in an in-focus image against the particles placed, and a CI-sized SIPRAD run where
//! the in-focus amplitude map beats the uniform model outside the particles.

use magprior::ltem::{
    self, contamination, interaction_constant, metrics, synthetic, AmplitudeMode, AmplitudeSource,
    Microscope, SipradConfig,
};

fn demo(df_mm: f64) -> Microscope {
    Microscope {
        defocus: df_mm * 1e6,
        ..Microscope::siprad_demo()
    }
}

/// A contaminated field: its data, particles and the same field in focus (own noise).
fn field(
    n: usize,
    count: usize,
    noise: f64,
    seed: u64,
    mic: &Microscope,
) -> (synthetic::Synthetic, Vec<synthetic::Particle>, Vec<f32>) {
    let kappa = 20.0 * interaction_constant(mic.kv) * 10.0;
    let r = (n as f64 / 25.0, n as f64 / 9.0);
    let particles = synthetic::random_particles(count, r, (0.4, 0.8), n, n, seed).unwrap();
    let data = synthetic::simulate_contaminated(
        synthetic::Texture::Bubbles,
        n,
        2e5,
        100.0,
        mic,
        noise,
        seed,
        &particles,
        kappa,
    )
    .unwrap();
    let total = data.exit_phase();
    let infocus = synthetic::in_focus_image(
        &total,
        &data.amplitude,
        (n, n),
        mic,
        1,
        (noise, None),
        seed ^ 77,
    )
    .unwrap();
    (data, particles, infocus)
}

#[test]
fn noise_estimate_matches_the_noise_put_into_simulated_images() {
    // the defocused image carries strong magnetic contrast: the estimate must see through it
    for (noise, seed) in [(0.1, 1), (0.3, 2), (0.5, 3)] {
        let (data, _, infocus) = field(128, 2, noise, seed, &demo(-1.0));
        for (what, img) in [("defocused", &data.image), ("in focus", &infocus)] {
            let m = img.iter().map(|&v| v as f64).sum::<f64>() / img.len() as f64;
            let est = contamination::noise_level(img, 128, 128).unwrap();
            // the noise is level x mean(I); the estimate is in the image's units
            let rel = est / (noise * m);
            assert!((rel - 1.0).abs() < 0.12, "{what} at {noise}: {rel:.3}");
        }
    }
}

#[test]
fn particles_are_found_in_an_in_focus_image_at_30_percent_noise() {
    for seed in 0..4u64 {
        let count = 1 + seed as usize;
        let (_, particles, infocus) = field(128, count, 0.3, 10 + seed, &demo(-1.0));
        let truth = synthetic::particle_mask(&particles, 128, 128);
        let m = contamination::find_contamination(&infocus, 128, 128, 0.7, None).unwrap();
        let iou = contamination::iou(&m.mask, &truth);
        assert!(iou > 0.8, "seed {seed}: IoU {iou:.2}");
        assert_eq!(m.levels.len(), count, "seed {seed}");
        // 30 % noise needs about 2 px of smoothing
        assert!((1.8..2.6).contains(&m.smoothing), "{}", m.smoothing);
        // without smoothing the threshold picks noise (the failure the smoothing fixes)
        let raw = contamination::find_contamination(&infocus, 128, 128, 0.7, Some(0.0)).unwrap();
        let raw_iou = contamination::iou(&raw.mask, &truth);
        println!("seed {seed}: IoU {iou:.2} smoothed, {raw_iou:.2} raw");
        assert!(raw_iou < iou - 0.1, "raw {raw_iou:.2} vs {iou:.2}");
    }
}

#[test]
fn region_levels_come_from_the_intensity_inside() {
    // noiseless, in focus: I = a^2 inside each particle; the levels are their amplitudes
    let (_, particles, _) = field(96, 3, 0.0, 5, &demo(-1.0));
    let a = synthetic::particle_amplitude(&particles, 96, 96);
    let img: Vec<f32> = a.iter().map(|v| v * v).collect();
    let truth = synthetic::particle_mask(&particles, 96, 96);
    let m = contamination::map_from_mask(&img, &truth, 96, 96).unwrap();
    assert_eq!(m.levels.len(), 3);
    let mut got = m.levels.clone();
    let mut want: Vec<f64> = particles.iter().map(|p| p.amplitude).collect();
    got.sort_by(f64::total_cmp);
    want.sort_by(f64::total_cmp);
    for (g, w) in got.iter().zip(&want) {
        // the soft 1-px edge lifts the mean a little
        assert!((g - w).abs() < 0.06, "{got:?} vs {want:?}");
    }
    // bad input is an error, not a panic
    assert!(contamination::map_from_mask(&img, &vec![true; 96 * 96], 96, 96).is_err());
    assert!(contamination::find_contamination(&img, 96, 96, 1.5, None).is_err());
    assert!(contamination::find_contamination(&img[..10], 96, 96, 0.7, None).is_err());
}

#[test]
fn siprad_with_the_in_focus_amplitude_beats_the_uniform_model_outside_the_particles() {
    let n = 64;
    let mic = demo(-1.0);
    let (data, particles, infocus) = field(n, 2, 0.3, 21, &mic);
    let truth = synthetic::particle_mask(&particles, n, n);
    let run = |amplitude: AmplitudeMode, learn_kappa: bool| {
        let cfg = SipradConfig {
            iters: 200,
            selection: ltem::Selection::Validation { after: 50 },
            amplitude,
            learn_kappa,
            ..Default::default()
        };
        ltem::reconstruct(&data.image, n, n, &mic, &cfg, &mut |_| true).unwrap()
    };
    let outside =
        |p: &[f32]| metrics::pearson_outside(p, &data.phase, &truth, (n, n), 4, true).unwrap();
    let src = AmplitudeSource::Infocus {
        image: infocus,
        threshold: 0.7,
        smoothing: None,
    };
    let uniform = run(AmplitudeMode::Uniform, false);
    let fixed = run(AmplitudeMode::Fixed(src.clone()), false);
    let learned = run(AmplitudeMode::Learned(src), true);
    let (u, f, l) = (
        outside(&uniform.phase),
        outside(&fixed.phase),
        outside(&learned.phase),
    );
    println!("outside the particles: uniform {u:.3}, fixed {f:.3}, learned {l:.3}");
    assert!(f > u + 0.02, "fixed {f:.3} vs uniform {u:.3}");
    assert!(l > u, "learned {l:.3} vs uniform {u:.3}");
    let init = fixed.amplitude_init.as_ref().unwrap();
    assert_eq!(init.levels.len(), 2);
    let iou = contamination::iou(learned.amplitude_mask.as_ref().unwrap(), &truth);
    assert!(iou > 0.6, "learned IoU {iou:.2}");
    assert!(learned.kappa.is_finite() && learned.kappa > 0.0);
    assert!(learned
        .amplitude
        .unwrap()
        .iter()
        .all(|v| v.is_finite() && *v > 0.0));
}
