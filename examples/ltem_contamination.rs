//! SIPRAD on contaminated samples, through the library alone: the validation panel of the
//! amplitude model (README, "Amplitude and electrostatic phase").
//!
//! `cargo run --release --example ltem_contamination -- [panel|noise|CASE...] [--truth-map]`
//!
//! Each case is a 128^2 Bloch texture (bubbles or stripes, Ms 2e5 A/m, 100 nm) with 1-4
//! contamination particles (radius 5-15 px, amplitude 0.4-0.8, `phi_e = kappa (-ln a)` with
//! V0 = 20 V, xi = 10 nm), imaged with the SIPRAD demo microscope at -0.5, -1 or -2 mm with
//! Gaussian noise. On the same image: SITIE (plain and with the Tikhonov filter SIPRAD uses
//! for its input), SIPRAD with a uniform amplitude, with the fixed map found in the denoised
//! image, and with the learned (guarded, dual-valued) map, every setting at the library's
//! defaults. Accuracy: Pearson correlation of the phase with the truth farther than 4 px from
//! the true particles (and inside the border of n/16); IoU: of the map's low region with the
//! true particles. `panel`: the 8 cases at 30 % noise; `noise`: two of them at 10 and 50 %.
//! `--truth-map` adds SIPRAD with the true amplitude map (the upper bound of a fixed map);
//! `--learn-kappa` learns kappa in the learned runs. The "no particles" column is SIPRAD on the
//! same field without contamination (same noise), measured on the same pixels: what the
//! texture, defocus and noise allow. `--detect-only` prints the maps found, and no SIPRAD.

use magprior::ltem::{
    self, contamination, interaction_constant, metrics, synthetic, AmplitudeMode, AmplitudeSource,
    Microscope, SipradConfig, SitieConfig,
};

struct Case {
    name: String,
    texture: synthetic::Texture,
    particles: usize,
    defocus_mm: f64,
    noise: f64,
    seed: u64,
}

fn case(name: &str, texture: synthetic::Texture, particles: usize, df: f64, noise: f64) -> Case {
    let seed = name
        .bytes()
        .fold(7u64, |a, b| a.wrapping_mul(31).wrapping_add(b as u64));
    Case {
        name: name.to_string(),
        texture,
        particles,
        defocus_mm: df,
        noise,
        seed,
    }
}

fn panel() -> Vec<Case> {
    use synthetic::Texture::{Bubbles, Stripes};
    vec![
        case("b1", Bubbles, 1, -0.5, 0.3),
        case("b2", Bubbles, 2, -1.0, 0.3),
        case("b3", Bubbles, 3, -2.0, 0.3),
        case("b4", Bubbles, 4, -1.0, 0.3),
        case("s1", Stripes, 1, -1.0, 0.3),
        case("s2", Stripes, 2, -0.5, 0.3),
        case("s3", Stripes, 3, -1.0, 0.3),
        case("s4", Stripes, 4, -2.0, 0.3),
    ]
}

fn noise_panel() -> Vec<Case> {
    use synthetic::Texture::{Bubbles, Stripes};
    let mut v = Vec::new();
    for n in [0.1, 0.5] {
        v.push(case(&format!("b2@{n}"), Bubbles, 2, -1.0, n));
        v.push(case(&format!("s3@{n}"), Stripes, 3, -1.0, n));
    }
    v
}

fn main() -> magprior::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let truth_map = args.iter().any(|a| a == "--truth-map");
    let mut cases = Vec::new();
    for a in args.iter().filter(|a| !a.starts_with("--")) {
        match a.as_str() {
            "panel" => cases.extend(panel()),
            "noise" => cases.extend(noise_panel()),
            name => cases.extend(
                panel()
                    .into_iter()
                    .chain(noise_panel())
                    .filter(|c| c.name == name),
            ),
        }
    }
    if cases.is_empty() {
        cases = panel();
    }
    println!(
        "| case | particles (r px, a) | df mm | noise | SITIE | Tik-SITIE | SIPRAD uniform | SIPRAD fixed, defocused image | SIPRAD fixed, in focus | SIPRAD learned, in focus |{} no particles (SIPRAD) | IoU defocused | IoU in focus | IoU learned | smoothing px |",
        if truth_map { " SIPRAD truth map |" } else { "" }
    );
    println!(
        "|---|---|---|---|---|---|---|---|---|---|{}---|---|---|---|---|",
        if truth_map { "---|" } else { "" }
    );
    for c in &cases {
        run_case(c, truth_map)?;
    }
    Ok(())
}

fn run_case(c: &Case, truth_map: bool) -> magprior::Result<()> {
    let n = 128;
    let mic = Microscope {
        defocus: c.defocus_mm * 1e6,
        ..Microscope::siprad_demo()
    };
    let kappa = 20.0 * interaction_constant(mic.kv) * 10.0;
    let particles =
        synthetic::random_particles(c.particles, (5.0, 15.0), (0.4, 0.8), n, n, c.seed)?;
    let data = synthetic::simulate_contaminated(
        c.texture, n, 2e5, 100.0, &mic, c.noise, c.seed, &particles, kappa,
    )?;
    let truth_mask = synthetic::particle_mask(&particles, n, n);
    // the same field in focus (same noise level, its own noise), for the in-focus source
    let total = data.exit_phase();
    let infocus = synthetic::in_focus_image(
        &total,
        &data.amplitude,
        (n, n),
        &mic,
        1,
        (c.noise, None),
        c.seed ^ 0x1f0c,
    )?;
    let outside =
        |phase: &[f32]| metrics::pearson_outside(phase, &data.phase, &truth_mask, (n, n), 4, true);
    if std::env::args().any(|a| a == "--detect-only") {
        let m = contamination::find_contamination(&data.image, n, n, 0.7, None)?;
        let f = contamination::find_contamination(&infocus, n, n, 0.7, None)?;
        println!(
            "{} in focus: IoU {:.2}, {} regions (true {}), smoothing {:.1}, levels {:?}",
            c.name,
            contamination::iou(&f.mask, &truth_mask),
            f.levels.len(),
            particles.len(),
            f.smoothing,
            f.levels
                .iter()
                .map(|v| (v * 100.0).round() / 100.0)
                .collect::<Vec<_>>(),
        );
        println!(
            "{}: IoU {:.2}, {} regions (true {}), area {:.3} (true {:.3}), smoothing {:.1}, noise {:.3}, levels {:?} true {:?}",
            c.name,
            contamination::iou(&m.mask, &truth_mask),
            m.levels.len(),
            particles.len(),
            m.area_fraction,
            truth_mask.iter().filter(|&&v| v).count() as f64 / (n * n) as f64,
            m.smoothing,
            m.noise,
            m.levels.iter().map(|v| (v * 100.0).round() / 100.0).collect::<Vec<_>>(),
            particles.iter().map(|p| (p.amplitude * 100.0).round() / 100.0).collect::<Vec<_>>()
        );
        return Ok(());
    }
    let plain = ltem::sitie(
        &data.image,
        n,
        n,
        &mic,
        &SitieConfig {
            qc: None,
            symmetric: true,
        },
    )?;
    let tik = ltem::sitie(
        &data.image,
        n,
        n,
        &mic,
        &SitieConfig {
            qc: Some(1.0 / (n as f64 * mic.scale)),
            symmetric: true,
        },
    )?;
    let learn_kappa = std::env::args().any(|a| a == "--learn-kappa");
    let run = |amplitude: AmplitudeMode| -> magprior::Result<ltem::SipradResult> {
        let amplitude_is_learned = matches!(amplitude, AmplitudeMode::Learned(_));
        let cfg = SipradConfig {
            amplitude,
            learn_kappa: learn_kappa && amplitude_is_learned,
            ..Default::default()
        };
        ltem::reconstruct(&data.image, n, n, &mic, &cfg, &mut |_| true)
    };
    let single = AmplitudeSource::Image {
        threshold: 0.7,
        smoothing: None,
    };
    let focused = AmplitudeSource::Infocus {
        image: infocus.clone(),
        threshold: 0.7,
        smoothing: None,
    };
    let uniform = run(AmplitudeMode::Uniform)?;
    let from_image = run(AmplitudeMode::Fixed(single))?;
    let fixed = run(AmplitudeMode::Fixed(focused.clone()))?;
    let learned = run(AmplitudeMode::Learned(focused))?;
    let clean_field = synthetic::simulate(c.texture, n, 2e5, 100.0, &mic, c.noise, c.seed)?;
    let reference = ltem::reconstruct(
        &clean_field.image,
        n,
        n,
        &mic,
        &SipradConfig::default(),
        &mut |_| true,
    )?;
    let truth_cell = if truth_map {
        let r = run(AmplitudeMode::Fixed(AmplitudeSource::Map(
            data.amplitude.clone(),
        )))?;
        format!(" {:.3} |", outside(&r.phase)?)
    } else {
        String::new()
    };
    let iou = |r: &ltem::SipradResult| {
        r.amplitude_mask
            .as_ref()
            .map_or(f64::NAN, |m| contamination::iou(m, &truth_mask))
    };
    let desc: Vec<String> = particles
        .iter()
        .map(|p| format!("{:.0}, {:.2}", p.radius, p.amplitude))
        .collect();
    let init = fixed.amplitude_init.as_ref();
    let warn = if learned.warnings.is_empty() {
        ""
    } else {
        " (collapsed, kept)"
    };
    for w in learned.warnings.iter().filter(|w| w.contains("collapsed")) {
        eprintln!("{}: {w}", c.name);
    }
    println!(
        "| {} | {} | {} | {:.0} % | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3}{} |{} {:.3} | {:.2} | {:.2} | {:.2} | {:.1} |",
        c.name,
        desc.join("; "),
        c.defocus_mm,
        100.0 * c.noise,
        outside(&plain)?,
        outside(&tik)?,
        outside(&uniform.phase)?,
        outside(&from_image.phase)?,
        outside(&fixed.phase)?,
        outside(&learned.phase)?,
        warn,
        truth_cell,
        outside(&reference.phase)?,
        iou(&from_image),
        iou(&fixed),
        iou(&learned),
        init.map_or(f64::NAN, |m| m.smoothing),
    );
    Ok(())
}
