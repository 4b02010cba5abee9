//! What `magprior ltem reconstruct` (and each frame of `series`) writes: arrays, the loss log,
//! metrics and metadata (serde), and the pictures.

use super::args::{MicMeta, SipradArgs};
use crate::cli::common::{self, DeviceMeta, VERSION};
use anyhow::Result;
use magprior::io::render::{self, MapKind, Panel};
use magprior::ltem::{
    self, accuracy, induction, metrics, Accuracy, AmplitudeMode, AmplitudeSource, Microscope,
    Selection, SipradConfig, SipradResult, Stage,
};
use serde::Serialize;
use std::path::Path;

#[derive(Serialize)]
struct AccuracyMeta {
    phase: f64,
    bx: f64,
    by: f64,
    ssim: f64,
    border_px: usize,
}

impl From<&Accuracy> for AccuracyMeta {
    fn from(a: &Accuracy) -> Self {
        AccuracyMeta {
            phase: a.phase,
            bx: a.bx,
            by: a.by,
            ssim: a.ssim,
            border_px: a.border,
        }
    }
}

#[derive(Serialize)]
struct TruthMetrics {
    truth: String,
    accuracy: AccuracyMeta,
    accuracy_full_frame: AccuracyMeta,
    sitie_input_accuracy: AccuracyMeta,
    /// Phase accuracy farther than 4 px from the returned amplitude's low region.
    #[serde(skip_serializing_if = "Option::is_none")]
    phase_accuracy_outside_amplitude: Option<f64>,
    accuracy_definition: &'static str,
}

#[derive(Serialize)]
struct Metrics<'a> {
    final_loss: f64,
    selected_loss: f64,
    selected_iteration: usize,
    loss_definition: &'static str,
    iterations: usize,
    pretrain_iterations: usize,
    seconds: f64,
    seconds_per_iteration: f64,
    amp_scale: f64,
    stop: String,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    amplitude: Option<AmplitudeMetrics>,
    warnings: &'a [String],
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    truth: Option<TruthMetrics>,
}

#[derive(Serialize)]
struct AmplitudeMetrics {
    /// Of the returned amplitude's mask.
    amplitude_area_fraction: f64,
    /// Of the initial map.
    amplitude_init_area_fraction: f64,
    amplitude_regions: usize,
    amplitude_init_levels: Vec<f64>,
    amplitude_smoothing_px: f64,
    image_noise_estimate: f64,
    kappa: f64,
    kappa_learned: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum AmplitudeMeta {
    Uniform,
    Fixed {
        source: SourceMeta,
    },
    Learned {
        source: SourceMeta,
        constraint_every: usize,
        constraint_refit: usize,
    },
}

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum SourceMeta {
    /// Threshold of the smoothed image nearest focus.
    Image {
        threshold: f64,
        smoothing_px: Option<f64>,
    },
    Infocus {
        file: String,
        threshold: f64,
        smoothing_px: Option<f64>,
    },
    Mask {
        file: String,
    },
    Map,
}

impl SourceMeta {
    fn of(s: &AmplitudeSource, args: &SipradArgs) -> SourceMeta {
        let name = |p: &Option<std::path::PathBuf>| {
            p.as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        };
        match s {
            AmplitudeSource::Image {
                threshold,
                smoothing,
            } => SourceMeta::Image {
                threshold: *threshold,
                smoothing_px: *smoothing,
            },
            AmplitudeSource::Infocus {
                threshold,
                smoothing,
                ..
            } => SourceMeta::Infocus {
                file: name(&args.infocus),
                threshold: *threshold,
                smoothing_px: *smoothing,
            },
            AmplitudeSource::Mask(_) => SourceMeta::Mask {
                file: name(&args.amp_mask),
            },
            AmplitudeSource::Map(_) => SourceMeta::Map,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum SelectionMeta {
    LowestLossAfter(usize),
    LowestValidationLossAfter { after: usize, holdout: f64 },
    Last,
}

#[derive(Serialize)]
struct SitieInputMeta {
    qc_per_nm: Option<f64>,
    symmetric: bool,
}

#[derive(Serialize)]
#[allow(non_snake_case)]
struct Metadata<'a> {
    program: &'a str,
    version: &'static str,
    image: String,
    shape: [usize; 2],
    network_size: [usize; 2],
    microscope: MicMeta,
    iterations: usize,
    pretrain: usize,
    lr: f64,
    optimizer: &'static str,
    noise_frac: f64,
    sigma_px: f64,
    selection: SelectionMeta,
    amp_scale_lr: f64,
    amplitude: AmplitudeMeta,
    v0_V: f64,
    xi_nm: f64,
    sitie_input: SitieInputMeta,
    seed: u64,
    channels: &'a [usize],
    kernel: usize,
    #[serde(flatten)]
    device: DeviceMeta,
    units: Units,
}

#[derive(Serialize)]
struct Units {
    #[serde(rename = "phase.npy")]
    phase: &'static str,
    #[serde(rename = "phase_raw.npy")]
    phase_raw: &'static str,
    #[serde(rename = "sitie.npy")]
    sitie: &'static str,
    #[serde(rename = "induction.npy")]
    induction: &'static str,
    #[serde(rename = "image_model.npy")]
    image_model: &'static str,
    #[serde(rename = "amplitude.npy")]
    amplitude: &'static str,
    #[serde(rename = "amplitude_init.npy")]
    amplitude_init: &'static str,
}

/// One reconstruction's inputs, for its outputs.
pub struct Recon<'a> {
    pub program: &'a str,
    pub input: &'a Path,
    pub image: &'a [f32],
    pub hw: (usize, usize),
    pub args: &'a SipradArgs,
    pub mic: &'a Microscope,
    pub cfg: &'a SipradConfig,
}

/// Writes a reconstruction's outputs into `dir` (with accuracies when a truth is given).
pub fn write_recon(
    dir: &Path,
    r: &Recon,
    res: &SipradResult,
    truth: Option<(&Path, &[f32])>,
) -> Result<()> {
    let (h, w) = r.hw;
    let (mic, cfg) = (r.mic, r.cfg);
    let f = |n: &str| dir.join(n);
    let b = induction(&res.phase, h, w, mic.scale)?;
    common::write_map(&f("phase.npy"), &[h, w], &res.phase)?;
    common::write_map(&f("phase_raw.npy"), &[h, w], &res.phase_raw)?;
    common::write_map(&f("sitie.npy"), &[h, w], &res.sitie)?;
    common::write_map(&f("induction.npy"), &[2, h, w], &b)?;
    common::write_map(&f("image_model.npy"), &[h, w], &res.image_model)?;
    if let Some(a) = &res.amplitude {
        common::write_map(&f("amplitude.npy"), &[h, w], a)?;
        render::write_sequential_map(&f("amplitude.png"), a, h, w, "amplitude", "", 1.0)?;
    }
    if let Some(m) = &res.amplitude_init {
        common::write_map(&f("amplitude_init.npy"), &[h, w], &m.amplitude)?;
        let title = format!(
            "assumed amplitude: {:.1} % of the pixels, {} regions, smoothing {:.1} px",
            100.0 * m.area_fraction,
            m.levels.len(),
            m.smoothing
        );
        render::write_sequential_map(
            &f("amplitude_init.png"),
            &m.amplitude,
            h,
            w,
            &title,
            "",
            1.0,
        )?;
    }
    let rows = res.pretrain_history.iter().chain(&res.history).map(|s| {
        let stage = match s.stage {
            Stage::Pretrain => "pretrain",
            Stage::Fit => "fit",
        };
        format!(
            "{stage},{},{:e},{:.5},{:.4}",
            s.iter, s.loss, s.amp_scale, s.seconds
        )
    });
    common::write_csv(
        &f("loss.csv"),
        "stage,iteration,loss,amp_scale,seconds",
        rows,
    )?;
    let iters = res.history.len();
    let truth = match truth {
        Some((tp, t)) => Some(TruthMetrics {
            truth: tp.display().to_string(),
            accuracy: (&accuracy(&res.phase, t, h, w, mic.scale, true)?).into(),
            accuracy_full_frame: (&accuracy(&res.phase, t, h, w, mic.scale, false)?).into(),
            sitie_input_accuracy: (&accuracy(&res.sitie, t, h, w, mic.scale, true)?).into(),
            phase_accuracy_outside_amplitude: res
                .amplitude_mask
                .as_ref()
                .map(|m| metrics::pearson_outside(&res.phase, t, m, (h, w), 4, true))
                .transpose()?,
            accuracy_definition: "Pearson correlation with the truth (phase, Bx t, By t), border of n/16 px ignored; SSIM of the phase",
        }),
        None => None,
    };
    let metrics = Metrics {
        final_loss: res.history.last().map_or(f64::NAN, |s| s.loss),
        selected_loss: res
            .history
            .iter()
            .find(|s| s.iter == res.selected_iter)
            .map_or(f64::NAN, |s| s.loss),
        selected_iteration: res.selected_iter,
        loss_definition: "mean((I_model - I/mean(I))^2): MSE of the image normalised to mean 1",
        iterations: iters,
        pretrain_iterations: res.pretrain_history.len(),
        seconds: res.seconds,
        seconds_per_iteration: res.seconds / iters.max(1) as f64,
        amp_scale: res.amp_scale,
        stop: res.stop.to_string(),
        amplitude: res.amplitude_init.as_ref().map(|m| AmplitudeMetrics {
            amplitude_area_fraction: res.amplitude_area_fraction().unwrap_or(m.area_fraction),
            amplitude_init_area_fraction: m.area_fraction,
            amplitude_regions: m.levels.len(),
            amplitude_init_levels: m.levels.clone(),
            amplitude_smoothing_px: m.smoothing,
            image_noise_estimate: m.noise,
            kappa: res.kappa,
            kappa_learned: cfg.learn_kappa,
        }),
        warnings: &res.warnings,
        truth,
    };
    common::write_json(&f("metrics.json"), &metrics)?;
    let meta = Metadata {
        program: r.program,
        version: VERSION,
        image: r.input.display().to_string(),
        shape: [h, w],
        network_size: [res.network_size.0, res.network_size.1],
        microscope: r.args.mic.meta(mic),
        iterations: cfg.iters,
        pretrain: cfg.pretrain,
        lr: cfg.lr,
        optimizer: "Adam (betas 0.9, 0.999; eps 1e-8; no weight decay)",
        noise_frac: cfg.noise_frac,
        sigma_px: cfg.sigma,
        selection: match cfg.selection {
            Selection::LowestLoss { after } => SelectionMeta::LowestLossAfter(after),
            Selection::Validation { after } => SelectionMeta::LowestValidationLossAfter {
                after,
                holdout: cfg.holdout,
            },
            Selection::Last => SelectionMeta::Last,
        },
        amp_scale_lr: cfg.amp_scale_lr,
        amplitude: match &cfg.amplitude {
            AmplitudeMode::Uniform => AmplitudeMeta::Uniform,
            AmplitudeMode::Fixed(s) => AmplitudeMeta::Fixed {
                source: SourceMeta::of(s, r.args),
            },
            AmplitudeMode::Learned(s) => AmplitudeMeta::Learned {
                source: SourceMeta::of(s, r.args),
                constraint_every: cfg.constraint_every,
                constraint_refit: cfg.constraint_refit,
            },
        },
        v0_V: cfg.v0,
        xi_nm: cfg.xi,
        sitie_input: SitieInputMeta {
            qc_per_nm: cfg.sitie.qc,
            symmetric: cfg.sitie.symmetric,
        },
        seed: cfg.seed,
        channels: &cfg.channels,
        kernel: cfg.kernel,
        device: DeviceMeta::of(cfg.device),
        units: Units {
            phase: "rad (H, W), selected state, Gaussian-smoothed, minimum 0",
            phase_raw: "rad (H, W), network output before smoothing",
            sitie: "rad (H, W), the SITIE input",
            induction: "T m (2, H, W): (Bx t, By t) = (Phi0/pi) (-dphi/dy, dphi/dx)",
            image_model: "modelled image in the input's intensity units (H, W)",
            amplitude: "exit-wave amplitude without the learned scale (H, W)",
            amplitude_init:
                "the amplitude map assumed at the start (H, W): 1 outside the contamination",
        },
    };
    common::write_json(&f("metadata.json"), &meta)?;
    write_pictures(dir, r.image, res, &b, h, w)
}

/// `phase.png`, `induction.png`, `image.png` (measured | model), `loss.png`.
fn write_pictures(
    dir: &Path,
    image: &[f32],
    res: &SipradResult,
    b: &[f32],
    h: usize,
    w: usize,
) -> Result<()> {
    let f = |n: &str| dir.join(n);
    write_phase_png(&f("phase.png"), &res.phase, h, w, "SIPRAD phase")?;
    write_induction_png(&f("induction.png"), b, h, w)?;
    let panel = |data, title| Panel {
        data,
        h,
        w,
        title,
        unit: "",
        scale: 1.0,
        kind: MapKind::Sequential,
        limit: None,
    };
    render::write_panels(
        &f("image.png"),
        &[panel(image, "measured"), panel(&res.image_model, "model")],
    )?;
    if !res.history.is_empty() {
        let xs: Vec<f64> = res.history.iter().map(|s| s.iter as f64).collect();
        let ys: Vec<f64> = res.history.iter().map(|s| s.loss).collect();
        render::write_line_plot(
            &f("loss.png"),
            &xs,
            &ys,
            "loss",
            "iteration",
            "MSE (normalised image)",
            true,
        )?;
    }
    Ok(())
}

/// A phase map picture (rad).
pub fn write_phase_png(path: &Path, phase: &[f32], h: usize, w: usize, title: &str) -> Result<()> {
    render::write_sequential_map(path, phase, h, w, title, "rad", 1.0)?;
    Ok(())
}

/// An induction colour wheel (`b` = (Bx t, By t)).
pub fn write_induction_png(path: &Path, b: &[f32], h: usize, w: usize) -> Result<()> {
    let hw = h * w;
    render::write_colour_wheel(
        path,
        &b[..hw],
        &b[hw..],
        h,
        w,
        "B t (hue: direction, brightness: |B t|)",
    )?;
    Ok(())
}

/// One member in an ensemble's metrics.json (read back from the member's own metrics.json).
#[derive(Serialize)]
struct MemberOut {
    seed: u64,
    dir: String,
    final_loss: f64,
    selected_iteration: u64,
    stop: String,
    seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    accuracy_phase: Option<f64>,
}

/// What the ensemble's spread says about the truth (synthetic data).
#[derive(Serialize)]
struct EnsembleTruth {
    truth: String,
    /// Accuracy of the ensemble mean.
    accuracy: AccuracyMeta,
    /// Fraction of pixels (border of n/16 px ignored) whose true phase lies within the
    /// members' 5-95 % band; ~0.9 when the spread is calibrated.
    coverage_phase: f64,
    /// The same for (Bx t, By t).
    coverage_induction: f64,
    coverage_definition: &'static str,
}

#[derive(Serialize)]
#[allow(non_snake_case)]
struct EnsembleMetrics {
    members: usize,
    estimate: &'static str,
    final_loss_mean: f64,
    final_loss_std: f64,
    /// Mean over the frame of the phase's std (rad).
    phase_std_mean_rad: f64,
    /// Mean over the frame of the induction's spread sqrt(std_x^2 + std_y^2) (T m).
    induction_std_mean_T_m: f64,
    stop: String,
    seconds: f64,
    seconds_per_member: f64,
    member_runs: Vec<MemberOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    truth: Option<EnsembleTruth>,
}

#[derive(Serialize)]
struct EnsembleMeta<'a> {
    program: &'static str,
    version: &'static str,
    image: String,
    members: usize,
    seeds: &'a [u64],
    seed_rule: &'static str,
    member_dirs: &'a [String],
}

/// What [`aggregate_ensemble`] found, for the summary line.
pub struct EnsembleSummary {
    pub members: usize,
    pub loss: (f64, f64),
    pub phase_std_mean: f64,
    pub stop: String,
    /// Accuracy of the mean and the phase band's coverage, with a truth.
    pub truth: Option<(f64, f64)>,
}

/// The ensemble's outputs in `dir` from its members' directories (`members/seed_S/`, read back,
/// seeds ascending) - the same whether the members ran in one process or in merged shards: the
/// mean (the estimate) and the per-pixel spread of the phase and the induction, metrics.json
/// (the members' losses and their spread; with a truth the accuracy of the mean and the band's
/// coverage), metadata.json and the mean | std pictures.
pub fn aggregate_ensemble(dir: &Path) -> Result<EnsembleSummary> {
    let members = common::member_dirs(dir)?;
    let (mut phases, mut inds, mut runs) = (Vec::new(), Vec::new(), Vec::new());
    let (mut h, mut w, mut scale) = (0, 0, 0.0);
    let (mut image, mut truth_path) = (String::new(), None::<String>);
    for (seed, name) in &members {
        let d = dir.join(name);
        let (phase, s) = common::read_written(&d.join("phase.npy"), 2)?;
        if phases.is_empty() {
            (h, w) = (s[0], s[1]);
            let meta = common::read_json(&d.join("metadata.json"))?;
            image = meta["image"].as_str().unwrap_or_default().to_string();
            scale = meta["microscope"]["scale_nm_per_px"]
                .as_f64()
                .unwrap_or(f64::NAN);
        }
        phases.push(phase);
        inds.push(common::read_written(&d.join("induction.npy"), 3)?.0);
        let j = common::read_json(&d.join("metrics.json"))?;
        truth_path = j["truth"].as_str().map(str::to_string);
        runs.push(MemberOut {
            seed: *seed,
            dir: name.clone(),
            final_loss: j["final_loss"].as_f64().unwrap_or(f64::NAN),
            selected_iteration: j["selected_iteration"].as_u64().unwrap_or(0),
            stop: j["stop"].as_str().unwrap_or_default().to_string(),
            seconds: j["seconds"].as_f64().unwrap_or(f64::NAN),
            accuracy_phase: j["accuracy"]["phase"].as_f64(),
        });
    }
    let hw = h * w;
    let f = |n: &str| dir.join(n);
    let pr: Vec<&[f32]> = phases.iter().map(|v| v.as_slice()).collect();
    let br: Vec<&[f32]> = inds.iter().map(|v| v.as_slice()).collect();
    let (p, b) = (ltem::Spread::of(&pr)?, ltem::Spread::of(&br)?);
    for (name, v) in [
        ("phase.npy", &p.mean),
        ("phase_std.npy", &p.std),
        ("phase_q05.npy", &p.q05),
        ("phase_q95.npy", &p.q95),
    ] {
        common::write_map(&f(name), &[h, w], v)?;
    }
    for (name, v) in [
        ("induction.npy", &b.mean),
        ("induction_std.npy", &b.std),
        ("induction_q05.npy", &b.q05),
        ("induction_q95.npy", &b.q95),
    ] {
        common::write_map(&f(name), &[2, h, w], v)?;
    }
    let losses: Vec<f64> = runs.iter().map(|r| r.final_loss).collect();
    let (lm, ls) = magprior::ensemble::mean_std(&losses);
    let secs: f64 = runs.iter().map(|r| r.seconds).sum();
    let k = runs.len();
    let keep = ltem::metrics::interior(h, w);
    let truth_out = match &truth_path {
        Some(tp) => {
            let t = magprior::io::load::load_array(Path::new(tp))?
                .tensor
                .to_vec()?;
            let tb = induction(&t, h, w, scale)?;
            let keep2: Vec<bool> = keep.iter().chain(&keep).copied().collect();
            Some(EnsembleTruth {
                truth: tp.clone(),
                accuracy: (&accuracy(&p.mean, &t, h, w, scale, true)?).into(),
                coverage_phase: p.coverage(&t, Some(&keep))?,
                coverage_induction: b.coverage(&tb, Some(&keep2))?,
                coverage_definition: "fraction of pixels (border of n/16 px ignored) whose true value lies within the members' 5-95 % band",
            })
        }
        None => None,
    };
    let summary_truth = truth_out
        .as_ref()
        .map(|t| (t.accuracy.phase, t.coverage_phase));
    let stop = if runs.iter().any(|r| r.stop == "interrupted") {
        "interrupted"
    } else {
        "completed"
    };
    let phase_std_mean = p.std.iter().map(|&v| v as f64).sum::<f64>() / hw as f64;
    let seeds: Vec<u64> = members.iter().map(|(s, _)| *s).collect();
    let dirs: Vec<String> = members.iter().map(|(_, d)| d.clone()).collect();
    common::write_json(
        &f("metrics.json"),
        &EnsembleMetrics {
            members: k,
            estimate: "the members' mean (phase.npy, induction.npy); spread: *_std.npy (sample std), *_q05.npy / *_q95.npy (5 / 95 % quantiles); each member's outputs under members/seed_S/",
            final_loss_mean: lm,
            final_loss_std: ls,
            phase_std_mean_rad: phase_std_mean,
            induction_std_mean_T_m: (0..hw)
                .map(|i| (b.std[i] as f64).hypot(b.std[hw + i] as f64))
                .sum::<f64>()
                / hw as f64,
            stop: stop.to_string(),
            seconds: secs,
            seconds_per_member: secs / k.max(1) as f64,
            member_runs: runs,
            truth: truth_out,
        },
    )?;
    common::write_json(
        &f("metadata.json"),
        &EnsembleMeta {
            program: "magprior ltem reconstruct --ensemble",
            version: VERSION,
            image,
            members: k,
            seeds: &seeds,
            seed_rule: "member k: --seed + k (weights, input noise, hold-out split); everything else as given",
            member_dirs: &dirs,
        },
    )?;
    let lb = render::shared_limit(&[&b.mean]);
    let sb = render::shared_limit(&[&b.std]);
    let panels = [
        (
            "phase mean",
            &p.mean[..],
            "rad",
            1.0,
            MapKind::Sequential,
            None,
        ),
        (
            "phase std",
            &p.std[..],
            "rad",
            1.0,
            MapKind::Sequential,
            None,
        ),
        (
            "Bx t mean",
            &b.mean[..hw],
            "nT m",
            1e9,
            MapKind::Diverging,
            Some(lb),
        ),
        (
            "Bx t std",
            &b.std[..hw],
            "nT m",
            1e9,
            MapKind::Sequential,
            Some(sb),
        ),
        (
            "By t mean",
            &b.mean[hw..],
            "nT m",
            1e9,
            MapKind::Diverging,
            Some(lb),
        ),
        (
            "By t std",
            &b.std[hw..],
            "nT m",
            1e9,
            MapKind::Sequential,
            Some(sb),
        ),
    ]
    .map(|(title, data, unit, scale, kind, limit)| Panel {
        data,
        h,
        w,
        title,
        unit,
        scale,
        kind,
        limit,
    });
    render::write_panels(&f("phase_uncertainty.png"), &panels[..2])?;
    render::write_panels(&f("induction_uncertainty.png"), &panels[2..])?;
    Ok(EnsembleSummary {
        members: k,
        loss: (lm, ls),
        phase_std_mean,
        stop: stop.to_string(),
        truth: summary_truth,
    })
}

/// The ensemble's summary on stdout.
pub fn report_ensemble(s: &EnsembleSummary, path: &Path) {
    print!(
        "{}: {} members ({}), final loss {:.4e} +- {:.2e}, mean phase std {:.3e} rad",
        path.display(),
        s.members,
        s.stop,
        s.loss.0,
        s.loss.1,
        s.phase_std_mean
    );
    if let Some((acc, cov)) = s.truth {
        print!(
            "; accuracy of the mean {acc:.3}, truth inside the 5-95 % band at {:.1} % of the pixels",
            100.0 * cov
        );
    }
    println!();
    println!(
        "pictures: {0}/phase_uncertainty.png, {0}/induction_uncertainty.png (mean | std); members under {0}/members/",
        path.display()
    );
}
