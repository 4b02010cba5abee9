//! NV-DIP on synthetic data: direction recovery, divergence handling, and mask presets.

use magprior::nv::{self, mask, NvForward, NvGeometry, NvReconConfig, Preset, StopReason};
use magprior::Tensor;

fn ellipse_problem(n: usize, angle: f64) -> (Vec<f32>, Vec<f32>, Vec<f32>, NvGeometry) {
    let g = NvGeometry::default();
    let c = (n as f64 - 1.0) / 2.0;
    let sup = mask::ellipse_support(n, n, c, c, 0.4 * n as f64, 0.27 * n as f64, 0.0);
    let truth = mask::preset_mask(&sup, n, n, Preset::Dipole, angle, false).unwrap();
    let m: Vec<f32> = truth.data.iter().map(|v| v * 8.6e5).collect();
    let bnv = NvForward::new(n, n, &g)
        .unwrap()
        .bnv(&Tensor::from_shape_vec(&[1, 2, n, n], m.clone()).unwrap())
        .unwrap()
        .to_vec()
        .unwrap();
    (bnv, m, sup, g)
}

#[test]
fn uniform_ellipse_direction_is_recovered_with_a_free_mask() {
    let n = 32;
    let (bnv, truth, sup, g) = ellipse_problem(n, 30.0);
    // `none`: both in-plane components free inside the support
    let m = mask::preset_mask(&sup, n, n, Preset::None, 0.0, false).unwrap();
    let cfg = NvReconConfig {
        geom: g,
        iters: 300,
        lr: 3e-3,
        ..Default::default()
    };
    let res = nv::reconstruct(&bnv, n, n, &m, &cfg, &mut |_| true).unwrap();
    assert_eq!(res.stop, StopReason::Completed);
    // the returned state is the lowest-loss iteration's, and its metrics are that iteration's
    let best = res
        .history
        .iter()
        .map(|s| s.loss)
        .fold(f64::INFINITY, f64::min);
    assert_eq!(res.history[res.selected_iteration - 1].loss, best);
    assert!(
        (res.metrics.mse - best).abs() <= 1e-3 * best,
        "{} vs {best}",
        res.metrics.mse
    );
    let hw = n * n;
    let (mut cos, mut cnt) = (0.0, 0);
    for i in 0..hw {
        if sup[i] > 0.0 {
            let (a, b) = (
                (truth[i], truth[hw + i]),
                (res.magnetization[i], res.magnetization[hw + i]),
            );
            let nb = (b.0 * b.0 + b.1 * b.1).sqrt();
            cos += ((a.0 * b.0 + a.1 * b.1) / (8.6e5 * nb.max(1e-6))) as f64;
            cnt += 1;
        }
    }
    let cos = cos / cnt as f64;
    assert!(
        cos > 0.9,
        "mean direction cosine {cos}, SNR {} dB",
        res.metrics.snr_db
    );
    assert!(res.metrics.snr_db > 20.0, "SNR {}", res.metrics.snr_db);
}

#[test]
fn divergence_keeps_the_last_finite_result() {
    let n = 16;
    let (bnv, _, sup, g) = ellipse_problem(n, 0.0);
    let m = mask::preset_mask(&sup, n, n, Preset::Dipole, 0.0, false).unwrap();
    // an absurd learning rate drives the weights to inf/NaN within a few steps
    let cfg = NvReconConfig {
        geom: g,
        iters: 200,
        lr: 1e30,
        ..Default::default()
    };
    let res = nv::reconstruct(&bnv, n, n, &m, &cfg, &mut |_| true).unwrap();
    match res.stop {
        StopReason::Diverged(i) => {
            assert_eq!(res.history.len(), i - 1);
            assert!(res.magnetization.iter().all(|v| v.is_finite()));
            assert!(res.metrics.mse.is_finite());
        }
        other => panic!("expected divergence, got {other:?}"),
    }
}

#[test]
fn observer_can_stop_a_run() {
    let n = 16;
    let (bnv, _, sup, g) = ellipse_problem(n, 0.0);
    let m = mask::preset_mask(&sup, n, n, Preset::Dipole, 0.0, false).unwrap();
    let cfg = NvReconConfig {
        geom: g,
        iters: 100,
        ..Default::default()
    };
    let res = nv::reconstruct(&bnv, n, n, &m, &cfg, &mut |s| s.iter < 3).unwrap();
    assert_eq!(res.stop, StopReason::Interrupted);
    assert_eq!(res.history.len(), 3);
}

/// Rounded picture of a mask: one character per pixel and component.
fn ascii(m: &nv::Mask) -> String {
    let mut s = String::new();
    for c in 0..m.channels {
        s.push_str(&format!("component {c}\n"));
        for r in 0..m.h {
            for col in 0..m.w {
                let v = m.data[c * m.h * m.w + r * m.w + col];
                s.push(match v {
                    v if v > 0.5 => '+',
                    v if v < -0.5 => '-',
                    v if v.abs() > 0.05 => '.',
                    _ => ' ',
                });
            }
            s.push('\n');
        }
    }
    s
}

#[test]
fn mask_presets_snapshot() {
    let (h, w) = (9, 13);
    let sup = mask::ellipse_support(h, w, 6.0, 4.0, 6.0, 4.0, 0.0);
    let landau = mask::preset_mask(&sup, h, w, Preset::Landau { ccw: true }, 0.0, false).unwrap();
    insta::assert_snapshot!("landau_ccw_0deg", ascii(&landau));
    let cw45 = mask::preset_mask(&sup, h, w, Preset::Landau { ccw: false }, 45.0, false).unwrap();
    insta::assert_snapshot!("landau_cw_45deg", ascii(&cw45));
    let dip = mask::preset_mask(&sup, h, w, Preset::Dipole, 135.0, true).unwrap();
    insta::assert_snapshot!("dipole_135deg_with_mz", ascii(&dip));
    let blurred = mask::preset_mask(&sup, h, w, Preset::None, 0.0, false)
        .unwrap()
        .blurred(1.0);
    insta::assert_snapshot!("none_blurred", ascii(&blurred));
}

#[test]
fn ensemble_members_are_single_runs_and_the_spread_is_their_statistics() {
    let n = 32;
    let (bnv, _, sup, g) = ellipse_problem(n, 30.0);
    let m = mask::preset_mask(&sup, n, n, Preset::None, 0.0, false).unwrap();
    let cfg = NvReconConfig {
        geom: g,
        iters: 6,
        seed: 9,
        ..Default::default()
    };
    let ens = nv::reconstruct_ensemble(&bnv, n, n, &m, &cfg, 3, &mut |_, _| true).unwrap();
    assert_eq!((ens.members.len(), &ens.stop), (3, &StopReason::Completed));
    for (k, member) in ens.members.iter().enumerate() {
        let c = NvReconConfig {
            seed: 9 + k as u64,
            ..cfg.clone()
        };
        let single = nv::reconstruct(&bnv, n, n, &m, &c, &mut |_| true).unwrap();
        assert_eq!(member.magnetization, single.magnetization, "member {k}");
    }
    // the statistics, recomputed here in f64
    let hw = n * n;
    for i in (0..3 * hw).step_by(97) {
        let v: Vec<f64> = ens
            .members
            .iter()
            .map(|r| r.magnetization[i] as f64)
            .collect();
        let mean = v.iter().sum::<f64>() / 3.0;
        let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 2.0).sqrt();
        let (lo, hi) = v
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
                (a.min(x), b.max(x))
            });
        let s = &ens.magnetization;
        assert!((s.mean[i] as f64 - mean).abs() <= 1e-3 + 1e-6 * mean.abs());
        assert!((s.std[i] as f64 - sd).abs() <= 1e-3 + 1e-5 * sd);
        assert!(s.q05[i] as f64 >= lo - 1e-3 && s.q95[i] as f64 <= hi + 1e-3);
    }
    // different seeds do differ: a free mask leaves room
    assert!(ens.inplane_spread(&sup).std_mean > 0.0);
    // an ensemble of one is the single run; a stop ends it after that member
    let one = nv::reconstruct_ensemble(&bnv, n, n, &m, &cfg, 1, &mut |_, _| true).unwrap();
    assert_eq!(one.magnetization.mean, ens.members[0].magnetization);
    assert!(one.magnetization.std.iter().all(|&v| v == 0.0));
    let stopped =
        nv::reconstruct_ensemble(&bnv, n, n, &m, &cfg, 3, &mut |k, s| k == 0 || s.iter < 2)
            .unwrap();
    assert_eq!(
        (stopped.members.len(), stopped.stop),
        (2, StopReason::Interrupted)
    );
    assert!(nv::reconstruct_ensemble(&bnv, n, n, &m, &cfg, 0, &mut |_, _| true).is_err());
}
