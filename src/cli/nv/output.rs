//! What `magprior nv reconstruct` writes: arrays, the loss log, metrics and metadata (serde),
//! and the pictures.

use super::args::{Problem, ReconArgs};
use crate::cli::common::{self, DeviceMeta, VERSION};
use anyhow::Result;
use magprior::io::render::{self, MapKind, Panel};
use magprior::nv::{Mask, NvReconConfig, NvResult};
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
struct Units {
    #[serde(rename = "magnetization.npy")]
    magnetization: &'static str,
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
        ms_A_per_m: cfg.ms,
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
            bnv_model: "T (H, W)",
            loss: "T^2",
        },
    };
    common::write_json(&f("metadata.json"), &meta)?;
    write_pictures(dir, &job.bnv, res, h, w)
}

/// `bnv.png` (measured | model | residual), `magnetization.png`, `loss.png`.
fn write_pictures(dir: &Path, bnv: &[f32], res: &NvResult, h: usize, w: usize) -> Result<()> {
    let f = |n: &str| dir.join(n);
    let lim = render::shared_limit(&[bnv, &res.bnv_model]);
    let resid: Vec<f32> = bnv.iter().zip(&res.bnv_model).map(|(a, b)| a - b).collect();
    let panel = |data, title, limit| Panel {
        data,
        h,
        w,
        title,
        unit: "mT",
        scale: 1e3,
        kind: MapKind::Diverging,
        limit,
    };
    render::write_panels(
        &f("bnv.png"),
        &[
            panel(bnv, "measured B_NV", Some(lim)),
            panel(&res.bnv_model, "model B_NV", Some(lim)),
            panel(&resid, "residual", None),
        ],
    )?;
    let hw = h * w;
    render::write_colour_wheel(
        &f("magnetization.png"),
        &res.magnetization[..hw],
        &res.magnetization[hw..2 * hw],
        h,
        w,
        "M (hue: direction, brightness: |M|)",
    )?;
    let xs: Vec<f64> = res.history.iter().map(|s| s.iter as f64).collect();
    let ys: Vec<f64> = res.history.iter().map(|s| s.loss).collect();
    render::write_line_plot(
        &f("loss.png"),
        &xs,
        &ys,
        "loss",
        "iteration",
        "MSE (T^2)",
        true,
    )?;
    Ok(())
}

/// The summary lines on stdout.
pub fn report(res: &NvResult, path: &Path) {
    let m = &res.metrics;
    println!(
        "{}: {} iterations ({}), lowest loss at {}: MSE {:.3e} T^2, RMSE {:.4} mT, SNR {:.1} dB, mean |M| {:.3e} A/m",
        path.display(),
        res.history.len(),
        res.stop,
        res.selected_iteration,
        m.mse,
        m.rmse_mt,
        m.snr_db,
        m.mean_m_inplane
    );
    println!(
        "pictures: {0}/bnv.png, {0}/magnetization.png, {0}/loss.png",
        path.display()
    );
}
