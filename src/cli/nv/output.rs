//! What `magprior nv reconstruct` writes: arrays, the loss log, metrics and metadata (serde),
//! and the pictures.

use super::args::{Problem, ReconArgs};
use crate::cli::common::{self, DeviceMeta, VERSION};
use anyhow::{bail, Result};
use magprior::io::render::{self, Decor, MapKind, Panel};
use magprior::nv::{Mask, NvModel, NvReconConfig, NvResult};
use serde::Serialize;
use std::path::Path;

#[derive(Serialize)]
#[allow(non_snake_case)]
struct Metrics {
    mse: f64,
    rmse_mT: f64,
    snr_db: f64,
    snr_definition: &'static str,
    mean_m_inplane: f64,
    final_loss: f64,
    iterations: usize,
    seconds: f64,
    seconds_per_iteration: f64,
    stop: String,
    selected_iteration: usize,
    selection: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    standoff: Option<f64>,
    /// The standoff's 1-sigma uncertainty (m), when fitted.
    #[serde(skip_serializing_if = "Option::is_none")]
    standoff_sigma: Option<f64>,
    chi2_per_pixel: f64,
    zero_field_chi2_per_pixel: f64,
    noise_floor_T: f64,
    noise_floor_source: &'static str,
    lowk_excess: f64,
    edge_ratio: f64,
    at_bound_fraction: f64,
    background: BackgroundOut,
    /// Fitted or given magnetisation direction (theta, phi) of the direction model.
    #[serde(skip_serializing_if = "Option::is_none")]
    direction: Option<[f64; 2]>,
    /// Fitted NV axis (theta, phi).
    #[serde(skip_serializing_if = "Option::is_none")]
    nv_axis: Option<[f64; 2]>,
    circulation: &'static str,
    flip_delta_chi2: f64,
    ms_A_per_m: f64,
    mt_max_A: f64,
    mt_max_mub_per_nm2: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    energy: Option<EnergyOut>,
    warnings: Vec<String>,
    notes: Vec<String>,
}

#[derive(Serialize)]
#[allow(non_snake_case)]
struct BackgroundOut {
    model: String,
    offset_T: f64,
    slope_x_T_per_m: f64,
    slope_y_T_per_m: f64,
    reference: &'static str,
}

#[derive(Serialize)]
#[allow(non_snake_case)]
struct EnergyOut {
    lambda: f64,
    lambda_rule: &'static str,
    segments_lambda_chi2: Vec<[f64; 2]>,
    energy_J: f64,
    exchange_J: f64,
    demag_J: f64,
    anisotropy_J: f64,
    dmi_J: f64,
    starts: Vec<StartOut>,
    best_start: String,
    objective_spread: f64,
}

#[derive(Serialize)]
struct StartOut {
    name: String,
    objective: f64,
    chi2_per_pixel: f64,
    cos_to_best: f64,
}

#[derive(Serialize)]
struct Plateau {
    factor: f64,
    patience: usize,
    threshold: f64,
}

#[derive(Serialize)]
#[allow(non_snake_case)]
struct Metadata<'a> {
    program: &'static str,
    version: &'static str,
    bnv: String,
    shape: [usize; 2],
    network_size: [usize; 2],
    pixel_m: f64,
    thickness_m: f64,
    standoff_m: f64,
    theta_deg: f64,
    phi_deg: f64,
    pad: usize,
    cutoff_k: Option<f64>,
    ms_A_per_m: f64,
    ms_auto: bool,
    model: super::args::ModelArg,
    background: super::args::BackgroundArg,
    ignore_nan: bool,
    fit_axis: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    material: Option<MaterialOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    auto_support: Option<AutoSupportOut>,
    mask: Option<String>,
    support: Option<&'a str>,
    mask_preset: super::args::PresetArg,
    mask_angle_deg: f64,
    chirality: super::args::Chirality,
    mask_blur_px: f64,
    with_mz: bool,
    iterations: usize,
    lr: f64,
    weight_decay: f64,
    betas: [f64; 2],
    adam_eps: f64,
    plateau: Plateau,
    seed: u64,
    channels: &'a [usize],
    kernel: usize,
    target: super::args::TargetArg,
    fit_standoff: bool,
    standoff_lr_nm: f64,
    #[serde(flatten)]
    device: DeviceMeta,
    units: Units,
}

#[derive(Serialize)]
#[allow(non_snake_case)]
struct MaterialOut {
    exchange_J_per_m: f64,
    ku_J_per_m3: f64,
    ku_axis: [f64; 3],
    dmi_J_per_m2: f64,
}

#[derive(Serialize)]
struct AutoSupportOut {
    rule: String,
    threshold: f64,
    otsu: f64,
    grow_px: i64,
    components: usize,
    area_fraction: f64,
}

#[derive(Serialize)]
struct Units {
    #[serde(rename = "magnetization.npy")]
    magnetization: &'static str,
    #[serde(rename = "areal_magnetization.npy")]
    areal: &'static str,
    #[serde(rename = "areal_magnetization_mub_nm2.npy")]
    areal_mub: &'static str,
    #[serde(rename = "bnv_model.npy")]
    bnv_model: &'static str,
    loss: &'static str,
}

/// Writes a reconstruction's outputs into `dir`.
pub fn write_outputs(
    dir: &Path,
    a: &ReconArgs,
    job: &Problem,
    mask: &Mask,
    cfg: &NvReconConfig,
    res: &NvResult,
    angle: f64,
) -> Result<()> {
    let (h, w) = (job.h, job.w);
    let f = |n: &str| dir.join(n);
    common::write_map(&f("magnetization.npy"), &[3, h, w], &res.magnetization)?;
    let t = cfg.geom.thickness;
    common::write_map(
        &f("areal_magnetization.npy"),
        &[3, h, w],
        &magprior::nv::areal_magnetization(&res.magnetization, t),
    )?;
    common::write_map(
        &f("areal_magnetization_mub_nm2.npy"),
        &[3, h, w],
        &magprior::nv::areal_magnetization_mub_nm2(&res.magnetization, t),
    )?;
    if let Some(auto) = &job.auto {
        common::write_map(&f("support.npy"), &[h, w], &auto.support)?;
    }
    if let Some(m) = &res.noise_map {
        common::write_map(&f("noise_map.npy"), &[h, w], m)?;
    }
    common::write_map(&f("bnv_model.npy"), &[h, w], &res.bnv_model)?;
    common::write_map(&f("mask.npy"), &[mask.channels, h, w], &mask.data)?;
    common::write_csv(
        &f("loss.csv"),
        "iteration,loss,lr,snr,seconds",
        res.history.iter().map(|s| {
            format!(
                "{},{:e},{:e},{:.4},{:.4}",
                s.iter, s.loss, s.lr, s.snr_db, s.seconds
            )
        }),
    )?;
    let iters = res.history.len();
    let secs = res.history.last().map_or(0.0, |s| s.seconds);
    let d = &res.diagnostics;
    let hw = h * w;
    let mt_max = (0..hw)
        .map(|i| {
            (0..3)
                .map(|c| (res.magnetization[c * hw + i] as f64).powi(2))
                .sum::<f64>()
                .sqrt()
        })
        .fold(0f64, f64::max)
        * t;
    let metrics = Metrics {
        mse: res.metrics.mse,
        rmse_mT: res.metrics.rmse_mt,
        snr_db: res.metrics.snr_db,
        snr_definition: "10 log10(mean(B_NV,model^2) / MSE)",
        mean_m_inplane: res.metrics.mean_m_inplane,
        final_loss: res.history.last().map_or(f64::NAN, |s| s.loss),
        iterations: iters,
        seconds: secs,
        seconds_per_iteration: secs / iters.max(1) as f64,
        stop: res.stop.to_string(),
        selected_iteration: res.selected_iteration,
        selection:
            "lowest loss over the run (the returned magnetisation and model are that iteration's)",
        standoff: a.fit_standoff.then_some(res.standoff),
        standoff_sigma: d.standoff_sigma,
        chi2_per_pixel: d.chi2_per_pixel,
        zero_field_chi2_per_pixel: d.zero_field_chi2_per_pixel,
        noise_floor_T: d.noise_floor_t,
        noise_floor_source: if d.noise_map {
            "median of a per-pixel noise map (1.4826 MAD / sqrt 6 of second differences in 31-px windows, noise_map.npy); residuals and chi^2 are whitened by it"
        } else if d.noise_estimated {
            "estimated from the map's pixel differences (1.4826 MAD / sqrt 2)"
        } else {
            "given (--noise)"
        },
        lowk_excess: d.lowk_excess,
        edge_ratio: d.edge_ratio,
        at_bound_fraction: d.at_bound_fraction,
        background: BackgroundOut {
            model: format!("{:?}", cfg.background).to_lowercase(),
            offset_T: res.background.offset,
            slope_x_T_per_m: res.background.slope_x,
            slope_y_T_per_m: res.background.slope_y,
            reference: "b = offset + slope_x (x - xc) + slope_y (y - yc), (xc, yc) the map's centre, x = col * pixel, y = row * pixel",
        },
        direction: res.direction.map(|(t, p)| [t, p]),
        nv_axis: res.nv_axis.map(|(t, p)| [t, p]),
        circulation: d.circulation.as_str(),
        flip_delta_chi2: d.flip_delta_chi2,
        ms_A_per_m: res.ms,
        mt_max_A: mt_max,
        mt_max_mub_per_nm2: magprior::nv::amperes_to_mub_per_nm2(mt_max),
        energy: res.energy.as_ref().map(|e| EnergyOut {
            lambda: e.lambda,
            lambda_rule: match &cfg.model {
                NvModel::Energy(c) if c.lambda.is_some() => "given (--lambda)",
                _ => "discrepancy principle: chi^2 per pixel in [0.8, 1.3] at the noise floor",
            },
            segments_lambda_chi2: e.segments.iter().map(|&(l, c)| [l, c]).collect(),
            energy_J: e.parts.total(),
            exchange_J: e.parts.exchange,
            demag_J: e.parts.demag,
            anisotropy_J: e.parts.anisotropy,
            dmi_J: e.parts.dmi,
            starts: e
                .starts
                .iter()
                .map(|s| StartOut {
                    name: s.name.clone(),
                    objective: s.objective,
                    chi2_per_pixel: s.chi2_per_pixel,
                    cos_to_best: s.cos_to_best,
                })
                .collect(),
            best_start: e.starts[e.best_start].name.clone(),
            objective_spread: e.objective_spread,
        }),
        warnings: d.warnings.clone(),
        notes: d.notes.clone(),
    };
    common::write_json(&f("metrics.json"), &metrics)?;
    let g = &cfg.geom;
    let meta = Metadata {
        program: "magprior nv reconstruct",
        version: VERSION,
        bnv: a.bnv.display().to_string(),
        shape: [h, w],
        network_size: [res.network_size.0, res.network_size.1],
        pixel_m: g.pixel,
        thickness_m: g.thickness,
        standoff_m: g.standoff,
        theta_deg: g.theta_deg,
        phi_deg: g.phi_deg,
        pad: g.pad,
        cutoff_k: g.cutoff_k,
        ms_A_per_m: res.ms,
        ms_auto: cfg.ms_auto,
        model: a.model,
        background: a.background,
        ignore_nan: cfg.ignore_nan,
        fit_axis: cfg.fit_axis,
        material: match &cfg.model {
            NvModel::Energy(e) => Some(MaterialOut {
                exchange_J_per_m: e.material.a_ex,
                ku_J_per_m3: e.material.ku,
                ku_axis: e.material.axis,
                dmi_J_per_m2: e.material.dmi,
            }),
            _ => None,
        },
        auto_support: job.auto.as_ref().map(|s| AutoSupportOut {
            rule: format!("{:?}", s.rule_used),
            threshold: s.threshold,
            otsu: s.otsu,
            grow_px: s.grow,
            components: s.components,
            area_fraction: s.area_fraction,
        }),
        mask: a.mask.as_ref().map(|p| p.display().to_string()),
        support: a.support.as_deref(),
        mask_preset: a.mask_preset,
        mask_angle_deg: angle,
        chirality: a.chirality,
        mask_blur_px: a.mask_blur,
        with_mz: a.with_mz,
        iterations: cfg.iters,
        lr: cfg.lr,
        weight_decay: cfg.weight_decay,
        betas: [0.9, 0.999],
        adam_eps: 1e-8,
        plateau: Plateau {
            factor: cfg.plateau.0,
            patience: cfg.plateau.1,
            threshold: cfg.plateau.2,
        },
        seed: cfg.seed,
        channels: &cfg.channels,
        kernel: cfg.kernel,
        target: a.target,
        fit_standoff: cfg.fit_standoff,
        standoff_lr_nm: cfg.standoff_lr,
        device: DeviceMeta::of(cfg.device),
        units: Units {
            magnetization: "A/m (3, H, W)",
            areal: "A (3, H, W): M t, t = thickness_m",
            areal_mub: "mu_B / nm^2 (3, H, W): M t / (mu_B / nm^2)",
            bnv_model: "T (H, W)",
            loss: "T^2",
        },
    };
    common::write_json(&f("metadata.json"), &meta)?;
    let support: Vec<f32> = mask.support().iter().map(|&b| b as u8 as f32).collect();
    write_pictures(dir, job, res, &support)
}

/// `bnv.png` (measured | model on the measured data's colour range, residual on its own),
/// `magnetization.png` (scale bar, support outline, the ambiguity flag), `loss.png`, and
/// `support.png` when the support came from the data.
/// The pictures an NV fit and a joint fit share: `bnv.png` (measured | model | residual),
/// `magnetization.png` (colour wheel, with `flag` under the title when given) and, when Mz is
/// non-zero, `magnetization_z.png`. `m` is (3, h, w) A/m.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_bnv_and_magnetization(
    dir: &Path,
    bnv: &[f32],
    model: &[f32],
    model_title: &str,
    m: &[f32],
    (h, w): (usize, usize),
    pixel: f64,
    support: &[f32],
    wheel_title: &str,
    flag: Option<&str>,
) -> Result<()> {
    let f = |n: &str| dir.join(n);
    let resid: Vec<f32> = bnv.iter().zip(model).map(|(a, b)| a - b).collect();
    let panel = |data, title| Panel {
        data,
        h,
        w,
        title,
        unit: "mT",
        scale: 1e3,
        kind: MapKind::Diverging,
        limit: None,
    };
    let base = Decor::new().pixel_size(pixel).support(support);
    render::write_panels_with(
        &f("bnv.png"),
        &render::compare_panels(
            panel(bnv, "measured B_NV"),
            panel(model, model_title),
            Some(panel(&resid, "residual (own range)")),
        ),
        &base,
    )?;
    let decor = match flag {
        Some(t) => base.flag(t),
        None => base,
    };
    let hw = h * w;
    render::write_colour_wheel_with(
        &f("magnetization.png"),
        &m[..hw],
        &m[hw..2 * hw],
        h,
        w,
        wheel_title,
        &decor,
    )?;
    if m[2 * hw..].iter().any(|&v| v != 0.0) {
        render::write_panels_with(
            &f("magnetization_z.png"),
            &[Panel {
                data: &m[2 * hw..],
                h,
                w,
                title: "Mz",
                unit: "kA/m",
                scale: 1e-3,
                kind: MapKind::Diverging,
                limit: None,
            }],
            &base,
        )?;
    }
    Ok(())
}

fn write_pictures(dir: &Path, job: &Problem, res: &NvResult, support: &[f32]) -> Result<()> {
    let (h, w, bnv) = (job.h, job.w, &job.bnv[..]);
    let f = |n: &str| dir.join(n);
    let flag = res
        .diagnostics
        .warnings
        .iter()
        .find(|w| w.starts_with("circulation sense"))
        .map(|_| "circulation sense not determined by the data");
    write_bnv_and_magnetization(
        dir,
        bnv,
        &res.bnv_model,
        "model B_NV (background included)",
        &res.magnetization,
        (h, w),
        job.geom.pixel,
        support,
        "M in plane (hue: direction, brightness: |M|)",
        flag,
    )?;
    if let Some(auto) = &job.auto {
        render::write_panels_with(
            &f("support.png"),
            &[Panel {
                data: bnv,
                h,
                w,
                title: "measured B_NV with the automatic support",
                unit: "mT",
                scale: 1e3,
                kind: MapKind::Diverging,
                limit: Some(render::robust_limit(bnv, render::ROBUST_QUANTILE)),
            }],
            &Decor::new()
                .pixel_size(job.geom.pixel)
                .support(&auto.support),
        )?;
    }
    let xs: Vec<f64> = res.history.iter().map(|s| s.iter as f64).collect();
    let ys: Vec<f64> = res.history.iter().map(|s| s.loss).collect();
    render::write_line_plot(&f("loss.png"), &xs, &ys, "loss", "iteration", "loss", true)?;
    Ok(())
}

/// The summary lines on stdout, and the warnings on stderr.
pub fn report(res: &NvResult, path: &Path) {
    let m = &res.metrics;
    let d = &res.diagnostics;
    println!(
        "{}: {} iterations ({}), lowest loss at {}: RMSE {:.4} mT, SNR {:.1} dB, chi^2 per pixel {:.2} at a noise floor of {:.3e} T ({}), mean |M| {:.3e} A/m",
        path.display(),
        res.history.len(),
        res.stop,
        res.selected_iteration,
        m.rmse_mt,
        m.snr_db,
        d.chi2_per_pixel,
        d.noise_floor_t,
        if d.noise_estimated { "estimated" } else { "given" },
        m.mean_m_inplane
    );
    if let Some((t, p)) = res.direction {
        println!("direction: theta {t:.1} deg, phi {p:.1} deg");
    }
    if let Some(s) = d.standoff_sigma {
        println!("standoff: {:.1} +- {:.1} nm", res.standoff * 1e9, s * 1e9);
    }
    println!("circulation: {}", d.circulation.as_str());
    for n in &d.notes {
        eprintln!("note: {n}");
    }
    for w in &d.warnings {
        eprintln!("warning: {w}");
    }
    println!(
        "pictures: {0}/bnv.png, {0}/magnetization.png, {0}/loss.png",
        path.display()
    );
}

/// One member in an ensemble's metrics.json (read back from the member's own metrics.json).
#[derive(Serialize)]
struct MemberOut {
    seed: u64,
    dir: String,
    final_loss: f64,
    chi2_per_pixel: f64,
    zero_field_chi2_per_pixel: f64,
    circulation: String,
    selected_iteration: u64,
    stop: String,
    seconds: f64,
    warnings: Vec<String>,
}

/// An ensemble's metrics.json.
#[derive(Serialize)]
#[allow(non_snake_case)]
struct EnsembleMetrics {
    members: usize,
    estimate: &'static str,
    final_loss_mean: f64,
    final_loss_std: f64,
    chi2_per_pixel_mean: f64,
    chi2_per_pixel_std: f64,
    inplane_std_mean_A_per_m: f64,
    inplane_mean_abs_A_per_m: f64,
    relative_inplane_spread: f64,
    relative_inplane_spread_definition: &'static str,
    circulations: Vec<String>,
    stop: String,
    seconds: f64,
    seconds_per_member: f64,
    member_runs: Vec<MemberOut>,
}

#[derive(Serialize)]
struct EnsembleMeta<'a> {
    program: &'static str,
    version: &'static str,
    bnv: String,
    members: usize,
    seeds: &'a [u64],
    seed_rule: &'static str,
    member_dirs: &'a [String],
}

/// What [`aggregate_ensemble`] found, for the summary line.
pub struct EnsembleSummary {
    pub members: usize,
    pub loss: (f64, f64),
    pub spread: magprior::nv::InplaneSpread,
    pub circulations: Vec<String>,
    pub stop: String,
    pub warnings: Vec<String>,
}

/// The ensemble's own outputs in `dir`, from its members' directories (`members/seed_S/`, read
/// back, seeds ascending) - the same whether the members ran in one process or in shards
/// merged later: the mean (the estimate) and the per-pixel spread of M and of the modelled
/// B_NV, metrics.json, metadata.json and the mean | std picture.
pub fn aggregate_ensemble(dir: &Path) -> Result<EnsembleSummary> {
    let members = common::member_dirs(dir)?;
    let (mut ms, mut bs, mut runs) = (Vec::new(), Vec::new(), Vec::new());
    let (mut shape, mut support) = (Vec::new(), Vec::new());
    let mut bnv_path = String::new();
    for (seed, name) in &members {
        let d = dir.join(name);
        let (m, s) = common::read_written(&d.join("magnetization.npy"), 3)?;
        if support.is_empty() {
            let (mask, mshape) = common::read_written(&d.join("mask.npy"), 3)?;
            if s[0] != 3 || mshape[1..] != s[1..] {
                bail!(
                    "{}: magnetization {s:?} and mask {mshape:?} do not fit together",
                    d.display()
                );
            }
            let hw = s[1] * s[2];
            support = (0..hw)
                .map(|i| {
                    let any = (0..mshape[0]).any(|c| mask[c * hw + i] != 0.0);
                    any as u8 as f32
                })
                .collect();
            shape = s;
            let meta = common::read_json(&d.join("metadata.json"))?;
            bnv_path = meta["bnv"].as_str().unwrap_or_default().to_string();
        }
        ms.push(m);
        bs.push(common::read_written(&d.join("bnv_model.npy"), 2)?.0);
        let j = common::read_json(&d.join("metrics.json"))?;
        let num = |k: &str| j[k].as_f64().unwrap_or(f64::NAN);
        runs.push(MemberOut {
            seed: *seed,
            dir: name.clone(),
            final_loss: num("final_loss"),
            chi2_per_pixel: num("chi2_per_pixel"),
            zero_field_chi2_per_pixel: num("zero_field_chi2_per_pixel"),
            circulation: j["circulation"].as_str().unwrap_or_default().to_string(),
            selected_iteration: j["selected_iteration"].as_u64().unwrap_or(0),
            stop: j["stop"].as_str().unwrap_or_default().to_string(),
            seconds: num("seconds"),
            warnings: j["warnings"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
        });
    }
    let (h, w) = (shape[1], shape[2]);
    let hw = h * w;
    let f = |n: &str| dir.join(n);
    let mr: Vec<&[f32]> = ms.iter().map(|v| v.as_slice()).collect();
    let br: Vec<&[f32]> = bs.iter().map(|v| v.as_slice()).collect();
    let m = magprior::nv::Spread::of(&mr)?;
    let b = magprior::nv::Spread::of(&br)?;
    for (name, v) in [
        ("magnetization.npy", &m.mean),
        ("magnetization_std.npy", &m.std),
        ("magnetization_q05.npy", &m.q05),
        ("magnetization_q95.npy", &m.q95),
    ] {
        common::write_map(&f(name), &[3, h, w], v)?;
    }
    common::write_map(&f("bnv_model.npy"), &[h, w], &b.mean)?;
    common::write_map(&f("bnv_model_std.npy"), &[h, w], &b.std)?;
    let spread = m.inplane(&support);
    let losses: Vec<f64> = runs.iter().map(|r| r.final_loss).collect();
    let chi2: Vec<f64> = runs.iter().map(|r| r.chi2_per_pixel).collect();
    let (lm, ls) = magprior::ensemble::mean_std(&losses);
    let (cm, cs) = magprior::ensemble::mean_std(&chi2);
    let total: f64 = runs.iter().map(|r| r.seconds).sum();
    let k = runs.len();
    let seeds: Vec<u64> = members.iter().map(|(s, _)| *s).collect();
    let dirs: Vec<String> = members.iter().map(|(_, d)| d.clone()).collect();
    let stop = if runs.iter().any(|r| r.stop == "interrupted") {
        "interrupted".to_string()
    } else {
        "completed".to_string()
    };
    let circulations: Vec<String> = runs.iter().map(|r| r.circulation.clone()).collect();
    let warnings: Vec<String> = runs
        .iter()
        .flat_map(|r| {
            r.warnings
                .iter()
                .map(move |w| format!("member seed {}: {w}", r.seed))
        })
        .collect();
    common::write_json(
        &f("metrics.json"),
        &EnsembleMetrics {
            members: k,
            estimate: "the members' mean (magnetization.npy, bnv_model.npy); spread: *_std.npy (sample std), magnetization_q05.npy / _q95.npy (5 / 95 % quantiles); each member's outputs under members/seed_S/",
            final_loss_mean: lm,
            final_loss_std: ls,
            chi2_per_pixel_mean: cm,
            chi2_per_pixel_std: cs,
            inplane_std_mean_A_per_m: spread.std_mean,
            inplane_mean_abs_A_per_m: spread.mean_abs,
            relative_inplane_spread: spread.relative,
            relative_inplane_spread_definition: "mean over the support of sqrt(std_x^2 + std_y^2) over the mean of |mean M| in plane: ~0 when the members agree, ~1 or more when their directions scatter (what the data leave undetermined)",
            circulations: circulations.clone(),
            stop: stop.clone(),
            seconds: total,
            seconds_per_member: total / k.max(1) as f64,
            member_runs: runs,
        },
    )?;
    common::write_json(
        &f("metadata.json"),
        &EnsembleMeta {
            program: "magprior nv reconstruct --ensemble",
            version: VERSION,
            bnv: bnv_path,
            members: k,
            seeds: &seeds,
            seed_rule: "member k: --seed + k (the network's weights and its noise input); everything else as given",
            member_dirs: &dirs,
        },
    )?;
    let lim_mean = render::shared_limit(&[&m.mean[..2 * hw]]);
    let lim_std = render::shared_limit(&[&m.std[..2 * hw]]);
    let panels = [
        ("Mx mean", &m.mean[..hw], MapKind::Diverging, lim_mean),
        ("Mx std", &m.std[..hw], MapKind::Sequential, lim_std),
        ("My mean", &m.mean[hw..2 * hw], MapKind::Diverging, lim_mean),
        ("My std", &m.std[hw..2 * hw], MapKind::Sequential, lim_std),
    ]
    .map(|(title, data, kind, limit)| Panel {
        data,
        h,
        w,
        title,
        unit: "kA/m",
        scale: 1e-3,
        kind,
        limit: Some(limit),
    });
    render::write_panels(&f("magnetization_uncertainty.png"), &panels)?;
    Ok(EnsembleSummary {
        members: k,
        loss: (lm, ls),
        spread,
        circulations,
        stop,
        warnings,
    })
}

/// The ensemble's summary on stdout, the members' warnings on stderr.
pub fn report_ensemble(s: &EnsembleSummary, path: &Path) {
    println!(
        "{}: {} members ({}), final loss {:.4e} +- {:.2e}; in-plane spread {:.3e} A/m = {:.2} x the mean |M| ({:.3e} A/m); circulations {:?}",
        path.display(),
        s.members,
        s.stop,
        s.loss.0,
        s.loss.1,
        s.spread.std_mean,
        s.spread.relative,
        s.spread.mean_abs,
        s.circulations
    );
    for w in &s.warnings {
        eprintln!("warning: {w}");
    }
    println!(
        "pictures: {0}/magnetization_uncertainty.png (mean | std), members under {0}/members/",
        path.display()
    );
}
