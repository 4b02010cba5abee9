//! TIE from a through-focal series against the exact image formation on phases we know
//! (SPEC section 10): better than SITIE on the same data, noise-free and at 20 % noise; the
//! least-squares derivative over unequal defoci; the in-focus intensity mode on an absorbing
//! sample; the flip / unflip separation of magnetic and electrostatic phases; the errors.

use magprior::ltem::{
    accuracy, add_noise, apply_shift, mirror, sitie, synthetic, tie, tie_flip, FlipAxis,
    LtemForward, Microscope, SitieConfig, TieConfig, TieIntensity,
};
use magprior::Rng;

const N: usize = 128;

/// A bubble lattice's exact phase and the microscope (SIPRAD demo, 4 nm/px).
fn bubbles() -> (Vec<f32>, Microscope) {
    let mic = Microscope::siprad_demo();
    let s = synthetic::simulate(synthetic::Texture::Bubbles, N, 8e5, 60.0, &mic, 0.0, 3)
        .expect("synthetic");
    (s.phase, mic)
}

/// Images of `phase` (and `amplitude`) at each defocus (nm), with Gaussian noise `level`.
fn series(
    phase: &[f32],
    amplitude: Option<&[f32]>,
    mic: &Microscope,
    defoci: &[f64],
    level: f64,
    seed: u64,
) -> Vec<Vec<f32>> {
    let mut rng = Rng::new(seed);
    defoci
        .iter()
        .map(|&df| {
            let mut m = mic.clone();
            m.defocus = df;
            let mut im = LtemForward::new(N, N, &m, 1)
                .expect("forward")
                .image_of(phase, amplitude)
                .expect("image");
            add_noise(&mut im, level, None, m.scale, &mut rng).expect("noise");
            im
        })
        .collect()
}

fn refs(v: &[Vec<f32>]) -> Vec<&[f32]> {
    v.iter().map(|x| x.as_slice()).collect()
}

fn acc(p: &[f32], t: &[f32]) -> f64 {
    accuracy(p, t, N, N, 4.0, true).expect("accuracy").phase
}

/// Tikhonov filters (1/nm) over which both methods take their best, to be fair to each.
const QCS: [Option<f64>; 4] = [None, Some(1e-3), Some(3e-3), Some(1e-2)];

/// The best SITIE accuracy over [`QCS`] (periodic solve: the synthetic sample is periodic).
fn best_sitie(img: &[f32], mic: &Microscope, df: f64, truth: &[f32]) -> f64 {
    let mut m = mic.clone();
    m.defocus = df;
    QCS.into_iter()
        .map(|qc| {
            acc(
                &sitie(img, N, N, &m, &cfg(qc).solver).expect("sitie"),
                truth,
            )
        })
        .fold(f64::NEG_INFINITY, f64::max)
}

/// The best TIE accuracy over [`QCS`].
fn best_tie(imgs: &[Vec<f32>], defoci: &[f64], mic: &Microscope, truth: &[f32]) -> f64 {
    QCS.into_iter()
        .map(|qc| {
            acc(
                &tie(&refs(imgs), defoci, N, N, mic, &cfg(qc)).expect("tie"),
                truth,
            )
        })
        .fold(f64::NEG_INFINITY, f64::max)
}

/// Periodic solve (the synthetic samples are periodic), uniform I0.
fn cfg(qc: Option<f64>) -> TieConfig {
    TieConfig {
        solver: SitieConfig {
            qc,
            symmetric: false,
        },
        intensity: TieIntensity::Uniform,
        flip_axis: FlipAxis::LeftRight,
    }
}

#[test]
fn tie_matches_the_exact_phase_and_beats_sitie() {
    let (truth, mic) = bubbles();
    // 0.5 mm: a defocus at which SITIE's linearisation of I(df) has visibly broken down
    let d = 5e5;
    let defoci = [-d, 0.0, d];
    let imgs = series(&truth, None, &mic, &defoci, 0.0, 1);
    let (a_tie, a_sitie) = (
        best_tie(&imgs, &defoci, &mic, &truth),
        best_sitie(&imgs[0], &mic, -d, &truth),
    );
    eprintln!("noise-free: TIE {a_tie:.4}, SITIE at -D {a_sitie:.4}");
    assert!(a_tie > 0.99, "{a_tie}");
    assert!(a_tie > a_sitie + 0.005, "TIE {a_tie} vs SITIE {a_sitie}");
    // 20 % noise on every image
    let imgs = series(&truth, None, &mic, &defoci, 0.2, 2);
    let (a_tie, a_sitie) = (
        best_tie(&imgs, &defoci, &mic, &truth),
        best_sitie(&imgs[0], &mic, -d, &truth),
    );
    eprintln!("20 % noise: TIE {a_tie:.4}, SITIE at -D {a_sitie:.4}");
    assert!(a_tie > 0.9, "{a_tie}");
    assert!(a_tie > a_sitie, "TIE {a_tie} vs SITIE {a_sitie}");
}

#[test]
fn least_squares_derivative_over_unequal_defoci() {
    let (truth, mic) = bubbles();
    let three = [-2e5, 0.0, 2e5];
    let five = [-2e5, -1e5, 0.0, 5e4, 2e5];
    let a3 = series(&truth, None, &mic, &three, 0.0, 1);
    let a5 = series(&truth, None, &mic, &five, 0.0, 1);
    let p3 = tie(&refs(&a3), &three, N, N, &mic, &cfg(None)).expect("tie");
    let p5 = tie(&refs(&a5), &five, N, N, &mic, &cfg(None)).expect("tie");
    let (r3, r5) = (acc(&p3, &truth), acc(&p5, &truth));
    eprintln!("3 images {r3:.4}, 5 unequal {r5:.4}");
    assert!(r5 > 0.99 && (r5 - r3).abs() < 0.01, "{r3} {r5}");
    // two images, one side of focus only, still a derivative
    let two = [-2e5, -1e5];
    let a2 = series(&truth, None, &mic, &two, 0.0, 1);
    let p2 = tie(&refs(&a2), &two, N, N, &mic, &cfg(None)).expect("tie");
    assert!(acc(&p2, &truth) > 0.95);
}

#[test]
fn in_focus_intensity_mode_on_an_absorbing_sample() {
    let (truth, mic) = bubbles();
    // amplitude: a smooth absorption wedge 1 -> 0.5 across the field of view
    let amp: Vec<f32> = (0..N * N)
        .map(|i| 1.0 - 0.5 * (i % N) as f32 / N as f32)
        .collect();
    let defoci = [-2e5, 0.0, 2e5];
    let imgs = series(&truth, Some(&amp), &mic, &defoci, 0.0, 1);
    let uni = tie(&refs(&imgs), &defoci, N, N, &mic, &cfg(None)).expect("tie");
    let mut c = cfg(None);
    c.intensity = TieIntensity::InFocus;
    let inf = tie(&refs(&imgs), &defoci, N, N, &mic, &c).expect("tie");
    let (au, ai) = (acc(&uni, &truth), acc(&inf, &truth));
    eprintln!("absorbing wedge: uniform I0 {au:.4}, in-focus I {ai:.4}");
    assert!(ai > au && ai > 0.98, "{au} {ai}");
    // without an in-focus image the mode is refused
    let two = [-2e5, 2e5];
    let e = tie(&refs(&imgs[..1]), &two[..1], N, N, &mic, &c);
    assert!(e.is_err());
    let e = tie(&[&imgs[0], &imgs[2]], &two, N, N, &mic, &c).expect_err("no in-focus image");
    assert!(e.to_string().contains("defocus 0"), "{e}");
}

#[test]
fn flip_series_separates_magnetic_and_electrostatic_phases() {
    let (phi_m, mic) = bubbles();
    // an electrostatic phase: a particle (a smooth-edged disk of 4 rad), off centre
    let phi_e: Vec<f32> = (0..N * N)
        .map(|i| {
            let (r, c) = ((i / N) as f32, (i % N) as f32);
            let d = ((r - 50.0).powi(2) + (c - 70.0).powi(2)).sqrt();
            4.0 / (1.0 + ((d - 30.0) / 3.0).exp())
        })
        .collect();
    let defoci = [-2e5, 0.0, 2e5];
    let total: Vec<f32> = phi_m.iter().zip(&phi_e).map(|(a, b)| a + b).collect();
    // the sample turned over about y: the magnetic phase reverses, the image is mirrored
    let flipped: Vec<f32> = mirror(
        &phi_e
            .iter()
            .zip(&phi_m)
            .map(|(e, m)| e - m)
            .collect::<Vec<_>>(),
        N,
        N,
        FlipAxis::LeftRight,
    );
    // the particle also absorbs (amplitude down to 0.8): the in-focus contrast by which the
    // two series are aligned
    let amp: Vec<f32> = phi_e.iter().map(|&e| 1.0 - 0.05 * e).collect();
    let un = series(&total, Some(&amp), &mic, &defoci, 0.0, 1);
    // ... and the holder does not put it back exactly: a sub-pixel offset
    let flipped = apply_shift(&flipped, N, N, 2.4, -1.7).expect("shift");
    let amp_fl =
        apply_shift(&mirror(&amp, N, N, FlipAxis::LeftRight), N, N, 2.4, -1.7).expect("shift");
    let fl = series(&flipped, Some(&amp_fl), &mic, &defoci, 0.0, 2);
    let r = tie_flip(&refs(&un), &refs(&fl), &defoci, N, N, &mic, &cfg(None)).expect("flip");
    let (am, ae) = (acc(&r.magnetic, &phi_m), acc(&r.electrostatic, &phi_e));
    eprintln!(
        "flip: magnetic {am:.4}, electrostatic {ae:.4}, shift {:?}",
        r.shift
    );
    assert!(am > 0.98 && ae > 0.98, "{am} {ae}");
    // mirrored back about y, the offset (2.4, -1.7) reads (2.4, +1.7): undone by (-2.4, -1.7)
    assert!(
        (r.shift.0 + 2.4).abs() < 0.1 && (r.shift.1 + 1.7).abs() < 0.1,
        "{:?}",
        r.shift
    );
    // the single series alone mixes both: its correlation with phi_m is much lower
    let mixed = tie(&refs(&un), &defoci, N, N, &mic, &cfg(None)).expect("tie");
    let amix = acc(&mixed, &phi_m);
    eprintln!("one series alone vs the magnetic phase: {amix:.4}");
    assert!(amix < am - 0.1, "{amix}");
}

#[test]
fn bad_series_are_refused() {
    let (truth, mic) = bubbles();
    let imgs = series(&truth, None, &mic, &[-2e5, 2e5], 0.0, 1);
    let c = cfg(None);
    let msg = |r: magprior::Result<Vec<f32>>| r.expect_err("must fail").to_string();
    assert!(msg(tie(&refs(&imgs), &[-2e5], N, N, &mic, &c)).contains("defocus values"));
    assert!(msg(tie(&refs(&imgs), &[1e5, 1e5], N, N, &mic, &c)).contains("not all be equal"));
    assert!(msg(tie(&refs(&imgs[..1]), &[1e5], N, N, &mic, &c)).contains("at least 2"));
    let short = vec![1.0f32; 10];
    assert!(msg(tie(&[&imgs[0], &short], &[-1e5, 1e5], N, N, &mic, &c)).contains("pixels"));
    let mut nan = imgs[1].clone();
    nan[5] = f32::NAN;
    assert!(msg(tie(&[&imgs[0], &nan], &[-1e5, 1e5], N, N, &mic, &c)).contains("non-finite"));
}

/// Images made by a tool we did not write (ltempy: its Aharonov-Bohm phase of a skyrmion
/// lattice, its wave propagation with mirror padding, its SITIE; `fixtures/generate_ltempy.py`):
/// our TIE of its -D, 0, +D series recovers its phase, better than its own SITIE of the -D
/// image, and our SITIE of that image agrees with its SITIE.
#[test]
fn tie_on_ltempy_images() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/ltempy");
    let load = |n: &str| {
        magprior::io::npy::read_npy(dir.join(format!("{n}.npy")))
            .expect("fixture")
            .to_vec()
            .expect("values")
    };
    let cfg_v = load("config");
    let (scale, cs, div, d) = (
        cfg_v[0] as f64,
        cfg_v[2] as f64,
        cfg_v[3] as f64,
        cfg_v[4] as f64,
    );
    let (truth, images, their_sitie) = (load("phase"), load("images"), load("sitie"));
    let n = 128;
    let mic = Microscope {
        kv: 200.0,
        cs,
        theta_c: div,
        spread: 0.0,
        scale,
        defocus: -d,
        ..Microscope::default()
    };
    let imgs: Vec<&[f32]> = images.chunks(n * n).collect();
    let a = |p: &[f32]| accuracy(p, &truth, n, n, scale, true).expect("acc").phase;
    let c = TieConfig {
        solver: SitieConfig {
            qc: None,
            symmetric: true,
        },
        ..TieConfig::default()
    };
    let ours = tie(&imgs, &[-d, 0.0, d], n, n, &mic, &c).expect("tie");
    let our_sitie = sitie(imgs[0], n, n, &mic, &c.solver).expect("sitie");
    let (a_tie, a_their, a_our_sitie) = (a(&ours), a(&their_sitie), a(&our_sitie));
    let agree = magprior::ltem::metrics::pearson(&our_sitie, &their_sitie);
    eprintln!(
        "ltempy series: our TIE {a_tie:.4}, ltempy SITIE {a_their:.4}, our SITIE {a_our_sitie:.4}, our SITIE vs ltempy SITIE r = {agree:.4}"
    );
    assert!(a_tie > 0.99, "{a_tie}");
    assert!(a_tie > a_their, "{a_tie} vs {a_their}");
    assert!(agree > 0.95, "{agree}");
}
