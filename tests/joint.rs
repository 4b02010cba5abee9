//! The joint NV + Lorentz-TEM reconstruction on a state relaxed by magnum.np (an independent
//! micromagnetic solver, `fixtures/relaxed/`), both measurements simulated from it on different
//! grids (the LTEM phase exactly in real space, not by the reconstruction's FFT path): the
//! null-space test per data set (a vortex's sense is invisible to NV, fixed by LTEM), the joint
//! fit beating the NV map alone, and the registration recovered by autodiff. The README's panel
//! (`examples/joint_relaxed.rs`) runs every state with the default iterations; these use fewer.

mod common;
use magprior::joint::{self, Datasets, JointConfig, LtemMeasurement, Registration};
use magprior::ltem::Microscope;
use magprior::nv::{direction_cosine, NvGeometry};

struct Problem {
    truth: Vec<f32>,
    support: Vec<f32>,
    h: usize,
    w: usize,
    hl: usize,
    wl: usize,
    sim: joint::Simulated,
    mic: Microscope,
}

fn problem(state: &str, reg: &Registration) -> Problem {
    let (truth, support, h, w) = common::relaxed_state(state);
    let mic = Microscope {
        defocus: -0.5e6,
        ..Microscope::siprad_demo()
    };
    // 90 % of the NV field of view in 4 nm pixels
    let side = |n: usize| ((n as f64 * 5.0 / 4.0 * 0.9 / 2.0).round() as usize) * 2;
    let (hl, wl) = (side(h), side(w));
    let sim = joint::simulate(
        &truth,
        h,
        w,
        &NvGeometry::default(),
        &mic,
        hl,
        wl,
        reg,
        0.01,
        0.2,
        11,
    )
    .unwrap();
    Problem {
        truth,
        support,
        h,
        w,
        hl,
        wl,
        sim,
        mic,
    }
}

fn run(
    p: &Problem,
    datasets: Datasets,
    reg: Registration,
    fit: bool,
    iters: usize,
) -> (f64, joint::JointResult) {
    let cfg = JointConfig {
        microscope: p.mic.clone(),
        datasets,
        registration: reg,
        fit_registration: fit,
        iters,
        ..Default::default()
    };
    let res = joint::reconstruct_joint(
        &p.sim.bnv,
        p.h,
        p.w,
        &LtemMeasurement::Image(p.sim.image.clone()),
        p.hl,
        p.wl,
        &p.support,
        &cfg,
        &mut |_| true,
    )
    .unwrap();
    let cos = direction_cosine(&p.truth, &res.magnetization, &p.support);
    println!(
        "{datasets:?}: cosine {cos:.3}, chi2/px NV {:.2} LTEM {:.2}, flip dchi2 NV {:.1} LTEM {:.1}, offset {:?} rotation {:.3}",
        res.nv.chi2_per_pixel,
        res.ltem.chi2_per_pixel,
        res.nv.flip_delta_chi2,
        res.ltem.flip_delta_chi2,
        res.registration.offset_nm,
        res.registration.rotation_deg
    );
    (cos, res)
}

#[test]
fn vortex_circulation_is_lost_by_nv_alone_and_fixed_jointly() {
    let reg = Registration {
        offset_nm: [6.0, -4.0],
        rotation_deg: 1.5,
    };
    let p = problem("vortex_disk", &reg);
    let truth_circ = joint::circulation(&p.truth, p.h, p.w, &p.support);
    assert!(
        truth_circ > 0.99,
        "the relaxed vortex is counter-clockwise: {truth_circ}"
    );
    let (cos_nv, nv) = run(&p, Datasets::Nv, reg, false, 600);
    // the joint run fits the registration from zero
    let (cos_joint, both) = run(&p, Datasets::Both, Registration::default(), true, 600);
    let circ = |r: &joint::JointResult| joint::circulation(&r.magnetization, p.h, p.w, &p.support);
    println!(
        "circulation: truth {truth_circ:.3}, NV alone {:.3}, joint {:.3}",
        circ(&nv),
        circ(&both)
    );
    // NV alone: the circulation is in the stray field's null space, the fit returns none
    assert!(circ(&nv).abs() < 0.3, "NV alone: {}", circ(&nv));
    assert!(cos_nv.abs() < 0.3, "NV alone: cosine {cos_nv}");
    // jointly: the Lorentz image fixes it (its own null-space test says so)
    assert!(both.ltem.determines_sense && both.joint_determines_sense);
    assert!(circ(&both) > 0.95, "joint: {}", circ(&both));
    assert!(cos_joint > 0.98, "joint cosine {cos_joint}");
    // each data set explained near its noise level (the NV map's sigma: 1 % of its peak)
    assert!(both.nv.chi2_per_pixel < 3.0 && both.ltem.chi2_per_pixel < 1.5);
    assert!((both.nv.sigma / p.sim.nv_sigma - 1.0).abs() < 0.1);
    // a vortex disk looks the same rotated: the rotation's uncertainty says so
    let (off, rot) = both.registration_sigma.unwrap();
    println!("registration sigma: offset {off:?} nm, rotation {rot:.2} deg");
    let o = both.registration.offset_nm;
    assert!((o[0] - 6.0).hypot(o[1] + 4.0) < 1.0, "offset {o:?}");
    assert!(rot > 0.5, "rotation sigma {rot}");
    assert!(
        both.warnings.iter().any(|w| w.contains("rotation")),
        "{:?}",
        both.warnings
    );
}

/// The joint model's tilted phase (layers resampled bilinearly through `affine_sample`) against
/// the tilt module's (`ltem::magnetic_phase_tilted`: slices resampled in Fourier space, no
/// interpolation), on relaxed states, same grid, periodic; and at zero tilt against
/// `ltem::magnetic_phase`.
#[test]
fn model_phase_under_tilt_matches_the_tilt_module() {
    use magprior::ltem::{magnetic_phase, magnetic_phase_tilted, Tilt};
    let rel = |a: &[f32], b: &[f32]| {
        let mean = |v: &[f32]| v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
        let (ma, mb) = (mean(a), mean(b));
        let num: f64 = a
            .iter()
            .zip(b)
            .map(|(&x, &y)| (x as f64 - ma - y as f64 + mb).powi(2))
            .sum();
        let den: f64 = b.iter().map(|&y| (y as f64 - mb).powi(2)).sum();
        (num / den).sqrt()
    };
    // the S state (in plane) and the vortex disk (its core's Mz seen under tilt)
    for (state, tilt, tol) in [
        ("s_state", Tilt::default(), 1e-4),
        (
            "s_state",
            Tilt {
                x_deg: 25.0,
                y_deg: 0.0,
            },
            0.01,
        ),
        (
            "s_state",
            Tilt {
                x_deg: 10.0,
                y_deg: -20.0,
            },
            0.01,
        ),
        (
            "vortex_disk",
            Tilt {
                x_deg: -30.0,
                y_deg: 15.0,
            },
            0.01,
        ),
    ] {
        let p = problem(state, &Registration::default());
        let (h, w) = (p.h, p.w);
        let cfg = JointConfig {
            microscope: Microscope {
                scale: 5.0,
                ..Default::default()
            },
            tilt,
            tilt_layers: 8,
            phase_pad: 1,
            ..Default::default()
        };
        let got = joint::model_phase(&p.truth, h, w, h, w, &cfg).unwrap();
        let want = if tilt == Tilt::default() {
            magnetic_phase(
                &p.truth[..h * w],
                &p.truth[h * w..2 * h * w],
                h,
                w,
                20.0,
                5.0,
            )
            .unwrap()
        } else {
            magnetic_phase_tilted(&p.truth, h, w, 8, 20.0, 5.0, tilt).unwrap()
        };
        let e = rel(&got, &want);
        println!("{state}, tilt {tilt:?}: relative L2 difference {e:.4}");
        assert!(e < tol, "{state}, tilt {tilt:?}: {e}");
    }
}
