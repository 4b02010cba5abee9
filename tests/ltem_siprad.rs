//! SIPRAD end to end: a CI-sized run beats SITIE on a noisy synthetic image; the amplitude
//! branches run and stay finite; series mode warm-starts. The ignored `done_criterion_*` test is
//! the 128^2 measurement reported in the README (run it with `--release -- --ignored`).

use magprior::ltem::{
    self, accuracy, sitie,
    synthetic::{simulate, Texture},
    Microscope, Selection, Siprad, SipradConfig, SitieConfig, Stage,
};

fn env_f(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Accuracy vs iterations on a 128^2 bubble lattice at -1 mm with 50 % Gaussian noise.
/// Defaults are the library's; environment overrides: ITERS, LR, NOISE_FRAC, SIGMA, PRETRAIN,
/// HOLDOUT (0 = the paper's lowest-training-loss rule), QC, TEXTURE (bubbles|stripes), SEED, MS, T
/// (film thickness, nm; default 100 as in the paper's simulations), EVERY.
#[test]
#[ignore]
fn done_criterion_128() {
    let n = 128;
    let mic = Microscope::siprad_demo();
    let tex = if std::env::var("TEXTURE").as_deref() == Ok("stripes") {
        Texture::Stripes
    } else {
        Texture::Bubbles
    };
    let seed = env_f("SEED", 3.0) as u64;
    let data = simulate(tex, n, env_f("MS", 2e5), env_f("T", 100.0), &mic, 0.5, seed).unwrap();
    let pmax = data.phase.iter().copied().fold(0f32, f32::max);
    println!("true phase range 0..{pmax:.3} rad");
    let acc = |p: &[f32]| accuracy(p, &data.phase, n, n, mic.scale, true).unwrap();
    for qc in [
        None,
        Some(0.001),
        Some(0.002),
        Some(0.003),
        Some(0.005),
        Some(0.008),
        Some(0.012),
    ] {
        for symmetric in [false, true] {
            let s = sitie(&data.image, n, n, &mic, &SitieConfig { qc, symmetric }).unwrap();
            let a = acc(&s);
            println!(
                "SITIE qc {qc:?} sym {symmetric}: phase {:.4} bx {:.4} by {:.4}",
                a.phase, a.bx, a.by
            );
        }
    }
    let clean = sitie(&data.image_clean, n, n, &mic, &SitieConfig::default()).unwrap();
    println!(
        "SITIE of the noise-free image: phase {:.4}",
        acc(&clean).phase
    );
    let cfg = SipradConfig {
        iters: env_f("ITERS", 400.0) as usize,
        pretrain: env_f("PRETRAIN", 200.0) as usize,
        lr: env_f("LR", 5e-5),
        noise_frac: env_f("NOISE_FRAC", 1.0 / 30.0),
        sigma: env_f("SIGMA", 2.0),
        holdout: env_f("HOLDOUT", 0.1),
        sitie: SitieConfig {
            qc: std::env::var("QC").ok().and_then(|v| v.parse().ok()),
            symmetric: true,
        },
        selection: if env_f("HOLDOUT", 0.1) > 0.0 {
            Selection::Validation { after: 100 }
        } else {
            Selection::LowestLoss { after: 100 }
        },
        ..Default::default()
    };
    let mut s = Siprad::new(&data.image, n, n, &mic, &cfg).unwrap();
    s.pretrain(&mut |_| true).unwrap();
    let p0 = s.current_phase().unwrap();
    println!(
        "after pretraining: raw {:.4} smoothed {:.4}",
        acc(&p0).phase,
        acc(&ltem::metrics::gaussian_filter(&p0, n, n, cfg.sigma)).phase
    );
    let every = env_f("EVERY", 25.0) as usize;
    for i in 1..=cfg.iters {
        let st = s.step().unwrap().expect("finite");
        if i % every == 0 {
            let p = s.current_phase().unwrap();
            let sm = ltem::metrics::gaussian_filter(&p, n, n, cfg.sigma);
            let a = acc(&sm);
            println!(
                "iter {i:5} loss {:.5} val {:.5} scale {:.3} acc raw {:.4} smoothed {:.4} bx {:.4} by {:.4} ({:.3} s/it)",
                st.loss, st.val_loss, st.amp_scale, acc(&p).phase, a.phase, a.bx, a.by, st.seconds / i as f64
            );
        }
    }
    let (res, _) = s.finish(ltem::StopReason::Completed).unwrap();
    let a = acc(&res.phase);
    println!(
        "final (selected iteration {}): phase {:.4} bx {:.4} by {:.4} ssim {:.4}; {:.4} s/it",
        res.selected_iter,
        a.phase,
        a.bx,
        a.by,
        a.ssim,
        res.seconds / cfg.iters as f64
    );
    assert!(res.history.iter().all(|s| s.stage == Stage::Fit));
}

/// 64^2 bubbles (100 nm film, as in the paper's simulations) at -1 mm with 30 % noise: SIPRAD
/// with the default recipe (Tikhonov-filtered SITIE input, short fit, validation stop) beats plain
/// SITIE on the phase and the induction, and its result is finite and min-subtracted. At this
/// size and length the seed-to-seed spread of SIPRAD's accuracy is ~0.02 (seeds 0-5: 0.832 to
/// 0.902, mean 0.871, SITIE 0.852), so the claim is made for the mean of three seeds.
#[test]
fn ci_sized_siprad_beats_sitie_on_a_noisy_image() {
    let n = 64;
    let mic = Microscope::siprad_demo();
    let data = simulate(Texture::Bubbles, n, 2e5, 100.0, &mic, 0.3, 11).unwrap();
    let plain = sitie(&data.image, n, n, &mic, &SitieConfig::default()).unwrap();
    let s = accuracy(&plain, &data.phase, n, n, mic.scale, true).unwrap();
    let t0 = std::time::Instant::now();
    let (mut phase, mut bx, mut by) = (0.0, 0.0, 0.0);
    let seeds = [0u64, 1, 2];
    for seed in seeds {
        let cfg = SipradConfig {
            iters: 200,
            seed,
            selection: Selection::Validation { after: 50 },
            ..Default::default()
        };
        let mut seen = 0;
        let res = ltem::reconstruct(&data.image, n, n, &mic, &cfg, &mut |_| {
            seen += 1;
            true
        })
        .unwrap();
        assert_eq!(seen, 400);
        let a = accuracy(&res.phase, &data.phase, n, n, mic.scale, true).unwrap();
        println!("seed {seed}: SIPRAD {a:?}");
        assert!(a.phase > 0.8, "seed {seed}: {a:?}");
        assert!(res.phase.iter().all(|v| v.is_finite()));
        assert_eq!(res.phase.iter().copied().fold(f32::INFINITY, f32::min), 0.0);
        phase += a.phase / 3.0;
        bx += a.bx / 3.0;
        by += a.by / 3.0;
    }
    println!(
        "SIPRAD mean phase {phase:.4} bx {bx:.4} by {by:.4}\nSITIE {s:?}\n{:.1} s",
        t0.elapsed().as_secs_f64()
    );
    assert!(
        phase > s.phase + 0.01,
        "SIPRAD {phase} vs SITIE {}",
        s.phase
    );
    assert!(bx > s.bx && by > s.by, "induction: {bx} {by} vs {s:?}");
}

/// Both amplitude branches run, stay finite, and the learned one survives the dual-valued
/// constraint (applied every 5 iterations here, and after the last).
#[test]
fn amplitude_branches_run_and_stay_finite() {
    let n = 32;
    let mic = Microscope {
        defocus: -2e5,
        ..Microscope::siprad_demo()
    };
    let mut data = simulate(Texture::Bubbles, n, 2e5, 100.0, &mic, 0.1, 2).unwrap();
    // a dark particle
    for r in 10..16 {
        for c in 12..18 {
            data.image[r * n + c] *= 0.3;
        }
    }
    let src = ltem::AmplitudeSource::Image {
        threshold: 0.6,
        smoothing: None,
    };
    for amplitude in [
        ltem::AmplitudeMode::Fixed(src.clone()),
        ltem::AmplitudeMode::Learned(src.clone()),
    ] {
        let cfg = SipradConfig {
            iters: 12,
            pretrain: 60,
            lr: 1e-3,
            channels: vec![4, 8],
            amplitude: amplitude.clone(),
            constraint_every: 5,
            constraint_refit: 3,
            ..Default::default()
        };
        let res = ltem::reconstruct(&data.image, n, n, &mic, &cfg, &mut |_| true).unwrap();
        let a = res.amplitude.expect("amplitude");
        assert!(a.iter().all(|v| v.is_finite() && *v > 0.0), "{amplitude:?}");
        assert!(
            a[12 * n + 14] < a[0],
            "{amplitude:?}: the particle is darker"
        );
        assert!(res.phase.iter().all(|v| v.is_finite()));
    }
}

/// Series mode: the second frame continues from the first frame's network (no pretraining) and
/// the observer sees frame indices in order.
#[test]
fn series_warm_starts_from_the_previous_frame() {
    let n = 32;
    let mic = Microscope {
        defocus: -2e5,
        ..Microscope::siprad_demo()
    };
    let frames: Vec<Vec<f32>> = (0..2)
        .map(|s| {
            simulate(Texture::Bubbles, n, 2e5, 100.0, &mic, 0.1, s)
                .unwrap()
                .image
        })
        .collect();
    let cfg = SipradConfig {
        iters: 4,
        pretrain: 3,
        channels: vec![4, 8],
        ..Default::default()
    };
    let mut log = Vec::new();
    let res = ltem::reconstruct_series(&frames, n, n, &mic, &cfg, &mut |k, s| {
        log.push((k, s.stage));
        true
    })
    .unwrap();
    assert_eq!(res.len(), 2);
    assert_eq!(res[0].pretrain_history.len(), 3);
    assert!(res[1].pretrain_history.is_empty());
    assert_eq!(log.iter().filter(|(k, _)| *k == 1).count(), 4);
    assert!(log.windows(2).all(|w| w[0].0 <= w[1].0));
}

#[test]
fn ensemble_members_are_single_runs_with_their_own_seeds() {
    let n = 32;
    let mic = Microscope {
        defocus: -2e5,
        ..Microscope::siprad_demo()
    };
    let data = simulate(Texture::Bubbles, n, 2e5, 100.0, &mic, 0.2, 3).unwrap();
    let cfg = SipradConfig {
        iters: 4,
        pretrain: 3,
        channels: vec![4, 8],
        seed: 5,
        ..Default::default()
    };
    let ens =
        ltem::reconstruct_ensemble(&[&data.image], None, n, n, &mic, &cfg, 2, &mut |_, _| true)
            .unwrap();
    assert_eq!(ens.members.len(), 2);
    for (k, m) in ens.members.iter().enumerate() {
        let c = SipradConfig {
            seed: ltem::member_seed(5, k),
            ..cfg.clone()
        };
        let single = ltem::reconstruct(&data.image, n, n, &mic, &c, &mut |_| true).unwrap();
        assert_eq!(m.phase, single.phase, "member {k}");
    }
    // seeds change the weights, the input noise and the hold-out split: the members differ
    assert_ne!(ens.members[0].phase, ens.members[1].phase);
    let spread = ens.phase.std.iter().map(|&v| v as f64).sum::<f64>();
    assert!(spread > 0.0);
    assert_eq!(ens.induction.mean.len(), 2 * n * n);
    // the truth: the band's coverage is a fraction
    let keep = ltem::metrics::interior(n, n);
    let c = ens.phase.coverage(&data.phase, Some(&keep)).unwrap();
    assert!((0.0..=1.0).contains(&c));
    // a focal series needs its defoci
    assert!(ltem::reconstruct_ensemble(
        &[&data.image, &data.image],
        None,
        n,
        n,
        &mic,
        &cfg,
        2,
        &mut |_, _| true
    )
    .is_err());
}
