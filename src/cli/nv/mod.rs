//! `magprior nv ...`: forward, deproject, reconstruct, sweep, and the demo.

pub(crate) mod args;
pub(crate) mod output;

use crate::cli::common::{self, select_device, DeviceMeta, Progress, VERSION};
use anyhow::{bail, Context, Result};
pub use args::GeomArgs;
use args::{Problem, ReconArgs};
use clap::{Args, Parser, Subcommand};
use magprior::io::outdir::OutputDir;
use magprior::io::ovf::read_ovf;
use magprior::io::render;
use magprior::io::FileKind;
use magprior::nv::{self, NvForward, NvGeometry, NvResult, StopReason, SweepConfig};
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum NvCmd {
    /// Magnetisation -> B_NV (and optionally Bx, By, Bz).
    Forward(ForwardArgs),
    /// B_NV -> (Bx, By, Bz) with a regularised inverse.
    Deproject(DeprojectArgs),
    /// Classical Fourier inversion: B_NV -> the magnetisation along a known direction.
    Invert(InvertArgs),
    /// NV-DIP reconstruction of the magnetisation from a B_NV map.
    Reconstruct(ReconCmd),
    /// Reconstruct for several mask angles and/or standoffs and rank them by final loss.
    Sweep(SweepArgs),
}

#[derive(Args)]
pub struct ForwardArgs {
    /// Magnetisation: .npy (2|3, H, W) in A/m, or .ovf (its `valueunits` honoured: A/m used as
    /// it is, unit vectors scaled by --ms; several z layers summed at their depths).
    #[arg(long)]
    magnetization: PathBuf,
    #[command(flatten)]
    geom: GeomArgs,
    /// Saturation magnetisation for OVF unit vectors (A/m).
    #[arg(long, default_value_t = 8.6e5, value_parser = common::positive)]
    ms: f64,
    /// Output B_NV (H, W) in tesla, .npy (a .json beside it says what the input was).
    #[arg(long)]
    out: PathBuf,
    /// Also write (Bx, By, Bz) (3, H, W) in tesla here.
    #[arg(long)]
    components: Option<PathBuf>,
}

#[derive(Args)]
pub struct InvertArgs {
    /// B_NV map (H, W) in tesla: .npy, .txt or .tif.
    #[arg(long)]
    bnv: PathBuf,
    #[command(flatten)]
    geom: GeomArgs,
    /// Magnetisation direction THETA,PHI in degrees (polar from the normal, azimuth from +x).
    #[arg(long, value_parser = args::parse_angles, allow_hyphen_values = true)]
    direction: (f64, f64),
    /// Regularisation: hanning[:WAVELENGTH] (default wavelength max(2 standoff, 3 pixels)),
    /// tikhonov:K (rad/m, the wave number where the filter is one half) or none.
    #[arg(long, default_value = "hanning")]
    filter: String,
    /// What is removed from the map first.
    #[arg(long, value_enum, default_value_t = InvertBackground::Plane)]
    background: InvertBackground,
    /// Output: the magnetisation along the direction (H, W) in A/m, .npy; a .json beside it
    /// records the settings and M t in A and mu_B/nm^2.
    #[arg(long)]
    out: PathBuf,
}

/// `nv invert --background`.
#[derive(Clone, Copy, Debug, clap::ValueEnum, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
enum InvertBackground {
    /// Nothing (the map has no offset).
    None,
    /// The mean of the whole map.
    Mean,
    /// A plane through the map's border band.
    Plane,
}

#[derive(Args)]
pub struct DeprojectArgs {
    /// B_NV map (H, W) in tesla: .npy or .tif.
    #[arg(long)]
    bnv: PathBuf,
    #[command(flatten)]
    geom: GeomArgs,
    /// Fixed Tikhonov parameter (rad/m); by default chosen by the risk estimate.
    #[arg(long, value_parser = common::nonneg)]
    eps: Option<f64>,
    /// Output (3, H, W) in tesla, .npy.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
pub struct ReconCmd {
    #[command(flatten)]
    recon: ReconArgs,
    /// Members of an ensemble (seeds --seed, --seed + 1, ...): their mean is the estimate
    /// (magnetization.npy), the per-pixel spread is written beside it (magnetization_std.npy,
    /// _q05.npy, _q95.npy, magnetization_uncertainty.png), each member under members/seed_S/.
    #[arg(long, default_value_t = 1, value_parser = common::at_least_one)]
    ensemble: usize,
    /// Run one share of the ensemble's members (0-based I of N; default from
    /// SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT when set) into OUT/shard-I-of-N/;
    /// `magprior merge OUT` then writes what one process would have.
    #[arg(long, value_name = "I/N")]
    shard: Option<String>,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
pub struct SweepArgs {
    #[command(flatten)]
    recon: ReconArgs,
    /// Mask angles to try (degrees), e.g. 0,45,90,135.
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    angles: Option<Vec<f64>>,
    /// Standoffs to try, e.g. 30nm,50nm,70nm.
    #[arg(long, value_delimiter = ',', value_parser = common::nonneg_length)]
    standoffs: Option<Vec<f64>>,
    /// Seeds per setting (the spread over seeds says whether a ranking is significant).
    #[arg(long, value_delimiter = ',', default_value = "0")]
    seeds: Vec<u64>,
    /// Run one share of the sweep's runs (0-based I of N; default from SLURM_ARRAY_TASK_ID /
    /// SLURM_ARRAY_TASK_COUNT when set) into OUT/shard-I-of-N/; `magprior merge OUT` then
    /// writes what one process would have.
    #[arg(long, value_name = "I/N")]
    shard: Option<String>,
    /// Output directory (sweep.csv and one sub-directory per run).
    #[arg(long)]
    out: PathBuf,
}

pub fn run(cmd: NvCmd) -> Result<()> {
    match cmd {
        NvCmd::Forward(a) => forward(a),
        NvCmd::Deproject(a) => deproject(a),
        NvCmd::Invert(a) => invert(a),
        NvCmd::Reconstruct(a) => {
            let job = Problem::load(&a.recon)?;
            let cfg = a
                .recon
                .config(&job.geom, select_device(a.recon.device, a.recon.quiet)?)?;
            let shard = common::Shard::for_ensemble(a.shard.as_deref(), a.ensemble)?;
            if a.ensemble > 1 {
                return ensemble(&a, &job, &cfg, shard);
            }
            let out = OutputDir::create(&a.out)?;
            let res = run_one(
                &a.recon,
                &job,
                out.path(),
                a.recon.mask_angle,
                &cfg,
                "reconstruct",
            )?;
            let path = out.commit()?;
            output::report(&res, &path);
            Ok(())
        }
        NvCmd::Sweep(a) => sweep(a),
    }
}

/// What `nv forward` records beside its output.
#[derive(Serialize)]
struct ForwardMeta {
    program: &'static str,
    version: &'static str,
    magnetization: String,
    values: String,
    value_multiplier: f64,
    layers: usize,
    layer_thickness_m: f64,
    pixel_m: f64,
    standoff_m: f64,
    theta_deg: f64,
    phi_deg: f64,
    output_units: &'static str,
}

/// The magnetisation `nv forward` reads: z layers (C, h, w) in A/m, lowest first.
struct MagnetisationInput {
    layers: Vec<Vec<f32>>,
    h: usize,
    w: usize,
    /// OVF: the cell's (x, z) size in metres.
    cell: Option<(f64, f64)>,
    /// What the values were taken as.
    values: String,
    /// The file's `valuemultiplier` (applied).
    multiplier: f64,
}

fn forward(a: ForwardArgs) -> Result<()> {
    let path = &a.magnetization;
    let input = if FileKind::from_path(path) == Some(FileKind::Ovf) {
        let o = read_ovf(path)?;
        let mult = o.value_multiplier;
        let o = o.multiplied();
        let units = o.magnetisation_scale(a.ms, path)?;
        if let Some(w) = &units.warning {
            eprintln!("warning: {}: {w}", path.display());
        }
        let (scale, values) = (units.scale, units.description);
        let layers: Vec<Vec<f32>> = o
            .layers()
            .into_iter()
            .map(|l| l.data.iter().map(|v| (*v as f64 * scale) as f32).collect())
            .collect();
        MagnetisationInput {
            layers,
            h: o.ny,
            w: o.nx,
            cell: Some((o.step[0], o.step[2])),
            values,
            multiplier: mult,
        }
    } else {
        let t = magprior::io::load::load_array(path)?.tensor;
        let s = t.shape().to_vec();
        if s.len() != 3 || !(2..=3).contains(&s[0]) {
            bail!(
                "{}: expected a (2|3, H, W) magnetisation, got shape {s:?}",
                path.display()
            );
        }
        MagnetisationInput {
            layers: vec![t.to_vec()?],
            h: s[1],
            w: s[2],
            cell: None,
            values: "magnetisation in A/m (.npy)".to_string(),
            multiplier: 1.0,
        }
    };
    let MagnetisationInput {
        layers,
        h,
        w,
        cell,
        values,
        multiplier: mult,
    } = input;
    let mut g = a.geom.geometry(cell.map(|c| c.0), path)?;
    // an OVF mesh: each layer is a film of one cell's thickness at its own depth below the
    // top of the stack (layer nz-1 on top)
    if let Some((_, dz)) = cell {
        g.thickness = dz;
    }
    let n = layers.len();
    let c = layers[0].len() / (h * w);
    let (mut bnv, mut field) = (vec![0f32; h * w], vec![0f32; 3 * h * w]);
    for (k, layer) in layers.iter().enumerate() {
        let lg = NvGeometry {
            standoff: g.standoff + (n - 1 - k) as f64 * g.thickness,
            ..g.clone()
        };
        let op = NvForward::new(h, w, &lg)?;
        let m = magprior::Tensor::from_shape_vec(&[1, c, h, w], layer.clone())?;
        for (acc, v) in bnv.iter_mut().zip(op.bnv(&m)?.to_vec()?) {
            *acc += v;
        }
        if a.components.is_some() {
            for (acc, v) in field.iter_mut().zip(op.field(&m)?.to_vec()?) {
                *acc += v;
            }
        }
    }
    common::write_map(&a.out, &[h, w], &bnv)?;
    if let Some(p) = &a.components {
        common::write_map(p, &[3, h, w], &field)?;
    }
    common::write_json(
        &a.out.with_extension("json"),
        &ForwardMeta {
            program: "magprior nv forward",
            version: VERSION,
            magnetization: path.display().to_string(),
            values: values.clone(),
            value_multiplier: mult,
            layers: n,
            layer_thickness_m: g.thickness,
            pixel_m: g.pixel,
            standoff_m: g.standoff,
            theta_deg: g.theta_deg,
            phi_deg: g.phi_deg,
            output_units: "T",
        },
    )?;
    eprintln!(
        "{}: {values}; {n} layer(s) of {}{}",
        path.display(),
        magprior::units::format_length(g.thickness),
        if n > 1 {
            ", B_NV summed over the layers at their depths"
        } else {
            ""
        }
    );
    eprintln!("wrote {} ({h}x{w} B_NV, T)", a.out.display());
    Ok(())
}

/// What `nv invert` records beside its output.
#[derive(Serialize)]
#[allow(non_snake_case)]
struct InvertMeta {
    program: &'static str,
    version: &'static str,
    bnv: String,
    direction_theta_phi_deg: [f64; 2],
    filter: String,
    filter_parameter: f64,
    background: InvertBackground,
    background_offset_T_slope_T_per_m: [f64; 3],
    level: String,
    guarded_fraction: f64,
    pixel_m: f64,
    thickness_m: f64,
    standoff_m: f64,
    theta_deg: f64,
    phi_deg: f64,
    m_p99_A_per_m: f64,
    mt_p99_A: f64,
    mt_p99_mub_per_nm2: f64,
    output_units: &'static str,
}

fn invert(a: InvertArgs) -> Result<()> {
    let (data, h, w) = common::load_map(&a.bnv, 2)?;
    let g = a.geom.geometry(None, &a.bnv)?;
    let filter = match a.filter.split_once(':') {
        None if a.filter == "none" => nv::Filter::None,
        None if a.filter == "hanning" => nv::Filter::Hanning {
            wavelength: nv::default_wavelength(&g),
        },
        Some(("hanning", l)) => nv::Filter::Hanning {
            wavelength: common::positive_length(l).map_err(anyhow::Error::msg)?,
        },
        Some(("tikhonov", k)) => nv::Filter::Tikhonov {
            k: common::positive(k).map_err(anyhow::Error::msg)?,
        },
        _ => bail!(
            "--filter {}: expected hanning[:WAVELENGTH], tikhonov:K or none",
            a.filter
        ),
    };
    let mut cfg = nv::InversionConfig::new(
        nv::direction_from_angles(a.direction.0, a.direction.1),
        filter,
    );
    cfg.background = match a.background {
        InvertBackground::None => nv::Background::None,
        InvertBackground::Mean => nv::Background::Mean,
        InvertBackground::Plane => nv::Background::BorderPlane,
    };
    let inv = nv::invert(&data, h, w, &g, &cfg)
        .with_context(|| format!("inverting {}", a.bnv.display()))?;
    let mut abs: Vec<f64> = inv.m.iter().map(|v| (*v as f64).abs()).collect();
    let k = ((abs.len() - 1) as f64 * 0.99).round() as usize;
    let p99 = *abs.select_nth_unstable_by(k, |x, y| x.total_cmp(y)).1;
    common::write_map(&a.out, &[h, w], &inv.m)?;
    let mt = p99 * g.thickness;
    common::write_json(
        &a.out.with_extension("json"),
        &InvertMeta {
            program: "magprior nv invert",
            version: VERSION,
            bnv: a.bnv.display().to_string(),
            direction_theta_phi_deg: [a.direction.0, a.direction.1],
            filter: a.filter.clone(),
            filter_parameter: inv.filter_parameter,
            background: a.background,
            background_offset_T_slope_T_per_m: inv.background,
            level: format!("{:?}", inv.level),
            guarded_fraction: inv.guarded_fraction,
            pixel_m: g.pixel,
            thickness_m: g.thickness,
            standoff_m: g.standoff,
            theta_deg: g.theta_deg,
            phi_deg: g.phi_deg,
            m_p99_A_per_m: p99,
            mt_p99_A: mt,
            mt_p99_mub_per_nm2: nv::amperes_to_mub_per_nm2(mt),
            output_units:
                "A/m (H, W), the magnetisation along the direction; M t = value x thickness",
        },
    )?;
    eprintln!(
        "wrote {} (M along theta {}, phi {} deg; 99th percentile |M| {:.3e} A/m, M t {:.3e} A = {:.3} mu_B/nm^2 for {} thick)",
        a.out.display(),
        a.direction.0,
        a.direction.1,
        p99,
        mt,
        nv::amperes_to_mub_per_nm2(mt),
        magprior::units::format_length(g.thickness)
    );
    Ok(())
}

fn deproject(a: DeprojectArgs) -> Result<()> {
    let (data, h, w) = common::load_map(&a.bnv, 1)?;
    let g = a.geom.geometry(None, &a.bnv)?;
    let dp = nv::deproject(&data, h, w, &g, a.eps)?;
    common::write_map(&a.out, &[3, h, w], &dp.field)?;
    eprintln!(
        "wrote {} (Bx, By, Bz; eps = {:.4e} rad/m)",
        a.out.display(),
        dp.eps
    );
    Ok(())
}

/// Runs one reconstruction with the mask rotated by `angle` and writes everything into `dir`.
fn run_one(
    a: &ReconArgs,
    job: &Problem,
    dir: &Path,
    angle: f64,
    cfg: &nv::NvReconConfig,
    label: &str,
) -> Result<NvResult> {
    let mask = job.mask(a, angle)?;
    let mut progress = Progress::new(a.iters, a.quiet, label);
    let res = nv::reconstruct(&job.bnv, job.h, job.w, &mask, cfg, &mut |s| {
        progress.update(s.iter, s.loss, &format!("SNR {:5.1} dB", s.snr_db));
        !common::interrupted()
    })?;
    progress.finish();
    notes(&res, job, a);
    output::write_outputs(dir, a, job, &mask, cfg, &res, angle)?;
    Ok(res)
}

/// `nv reconstruct --ensemble K [--shard I/N]`: the members (or this share's) one after
/// another (each already uses every core), each written as a single run is under
/// `members/seed_S/`; then, in one process, the ensemble's own outputs from those directories.
fn ensemble(
    a: &ReconCmd,
    job: &Problem,
    cfg: &nv::NvReconConfig,
    shard: Option<common::Shard>,
) -> Result<()> {
    let r = &a.recon;
    let mask = job.mask(r, r.mask_angle)?;
    let k = a.ensemble;
    let range = shard.map_or(0..k, |s| s.block(k));
    let out = common::job_dir(&a.out, shard)?;
    let first = nv::NvReconConfig {
        seed: nv::member_seed(cfg.seed, range.start),
        ..cfg.clone()
    };
    let mut progress = common::MemberProgress::new(r.iters, k, range.start, r.quiet);
    let ens = nv::reconstruct_ensemble(
        &job.bnv,
        job.h,
        job.w,
        &mask,
        &first,
        range.len(),
        &mut |m, s| progress.update(m, s.iter, s.loss, &format!("SNR {:5.1} dB", s.snr_db)),
    )?;
    progress.finish();
    for (m, res) in ens.members.iter().enumerate() {
        let seed = nv::member_seed(first.seed, m);
        let dir = out.subdir(&format!("members/seed_{seed}"))?;
        notes(res, job, r);
        let c = nv::NvReconConfig {
            seed,
            ..cfg.clone()
        };
        output::write_outputs(&dir, r, job, &mask, &c, res, r.mask_angle)?;
    }
    match shard {
        Some(s) => common::finish_share(out, &a.out, s, "nv-ensemble", k, range, "members")?,
        None => {
            let summary = output::aggregate_ensemble(out.path())?;
            let path = out.commit()?;
            output::report_ensemble(&summary, &path);
        }
    }
    Ok(())
}

/// `magprior merge`: the ensemble's outputs computed in `staging` from the members there, then
/// reported as they will lie in `dir`.
pub fn finish_ensemble(staging: &Path, dir: &Path) -> Result<()> {
    let summary = output::aggregate_ensemble(staging)?;
    output::report_ensemble(&summary, dir);
    Ok(())
}

/// Warnings about how the run went.
fn notes(res: &NvResult, job: &Problem, a: &ReconArgs) {
    let (h, w) = (job.h, job.w);
    if res.network_size != (h, w) && !a.quiet {
        eprintln!(
            "note: {h}x{w} is not divisible by {}; the network ran at {}x{} and its output was cropped",
            1 << a.channels.len(),
            res.network_size.0,
            res.network_size.1
        );
    }
    if let StopReason::Diverged(i) = res.stop {
        eprintln!(
            "warning: the loss became NaN/inf at iteration {i}; kept the lowest-loss finite result (iteration {})",
            res.selected_iteration
        );
    }
}

#[derive(Serialize)]
struct SweepMeta<'a> {
    program: &'static str,
    version: &'static str,
    bnv: String,
    angles_deg: &'a [f64],
    standoffs_m: &'a [f64],
    seeds: &'a [u64],
    iterations: usize,
    lr: f64,
    ranking: &'static str,
    #[serde(flatten)]
    device: DeviceMeta,
}

#[derive(Serialize)]
struct SweepRunMeta {
    angle_deg: f64,
    standoff_m: f64,
    seed: u64,
}

fn sweep(a: SweepArgs) -> Result<()> {
    let r = &a.recon;
    let job = Problem::load(r)?;
    if a.angles.is_none() && a.standoffs.is_none() {
        bail!("give --angles and/or --standoffs to sweep over");
    }
    let sc = SweepConfig {
        angles: a.angles.clone().unwrap_or_else(|| vec![r.mask_angle]),
        standoffs: a
            .standoffs
            .clone()
            .unwrap_or_else(|| vec![job.geom.standoff]),
        seeds: a.seeds.clone(),
    };
    let device = select_device(r.device, r.quiet)?;
    let base = r.config(&job.geom, device)?;
    let shard = common::Shard::resolve(a.shard.as_deref())?;
    let total = sc.points().len();
    let range = shard.map_or(0..total, |s| s.block(total));
    let out = common::job_dir(&a.out, shard)?;
    let mut on_run = |p: &nv::SweepPoint, mask: &nv::Mask, res: &NvResult| -> Result<_> {
        let dir = out.subdir(&run_name(p))?;
        notes(res, &job, r);
        let cfg = nv::NvReconConfig {
            geom: NvGeometry {
                standoff: p.standoff,
                ..job.geom.clone()
            },
            seed: p.seed,
            ..base.clone()
        };
        let run = SweepRunMeta {
            angle_deg: p.angle,
            standoff_m: p.standoff,
            seed: p.seed,
        };
        output::write_outputs(&dir, r, &job, mask, &cfg, res, p.angle)?;
        common::write_json(&dir.join("metadata_sweep.json"), &run)
    };
    let mut progress: Option<Progress> = None;
    let mut obs = |p: &nv::SweepPoint, s: &nv::IterStats| {
        if s.iter == 1 {
            if let Some(old) = progress.take() {
                old.finish();
            }
            let label = format!(
                "angle {} standoff {:.1} nm seed {}",
                p.angle,
                p.standoff * 1e9,
                p.seed
            );
            progress = Some(Progress::new(r.iters, r.quiet, &label));
        }
        if let Some(pr) = progress.as_mut() {
            pr.update(s.iter, s.loss, &format!("SNR {:5.1} dB", s.snr_db));
        }
        !common::interrupted()
    };
    nv::sweep_range(
        &job.bnv,
        job.h,
        job.w,
        &|angle| job.mask(r, angle),
        &base,
        &sc,
        range.clone(),
        &mut on_run,
        &mut obs,
    )?;
    if let Some(pr) = progress {
        pr.finish();
    }
    common::write_json(
        &out.file("metadata.json"),
        &SweepMeta {
            program: "magprior nv sweep",
            version: VERSION,
            bnv: r.bnv.display().to_string(),
            angles_deg: &sc.angles,
            standoffs_m: &sc.standoffs,
            seeds: &sc.seeds,
            iterations: r.iters,
            lr: r.lr,
            ranking: "ascending mean over seeds of final_loss = the loss of the returned (lowest-loss) state",
            device: DeviceMeta::of(device),
        },
    )?;
    if let Some(s) = shard {
        return common::finish_share(out, &a.out, s, "nv-sweep", total, range, "runs");
    }
    let res = aggregate_sweep(out.path(), &sc)?;
    print_sweep(&res);
    let path = out.commit()?;
    println!(
        "{}: {} runs; sweep.csv ranks them (one directory per run)",
        path.display(),
        res.rows.iter().map(|r| r.losses.len()).sum::<usize>()
    );
    Ok(())
}

/// `magprior merge`: the sweep's table computed in `staging` from the runs there (its settings
/// from the shares' metadata.json), printed as it will lie in `dir`.
pub fn finish_sweep(staging: &Path, dir: &Path) -> Result<()> {
    let meta = common::read_json(&staging.join("metadata.json"))?;
    let list = |k: &str| -> Vec<f64> {
        meta[k]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_f64()).collect())
            .unwrap_or_default()
    };
    let sc = SweepConfig {
        angles: list("angles_deg"),
        standoffs: list("standoffs_m"),
        seeds: meta["seeds"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_u64()).collect())
            .unwrap_or_default(),
    };
    if sc.points().is_empty() {
        bail!(
            "{}: the shares' metadata.json lists no sweep settings",
            dir.display()
        );
    }
    let res = aggregate_sweep(staging, &sc)?;
    print_sweep(&res);
    println!("{}: sweep.csv ranks the merged runs", dir.display());
    Ok(())
}

/// A sweep run's directory name.
fn run_name(p: &nv::SweepPoint) -> String {
    format!(
        "angle_{:+07.2}_standoff_{:.1}nm_seed_{}",
        p.angle,
        p.standoff * 1e9,
        p.seed
    )
}

/// The sweep's table from its runs' directories in `dir` (in the order the runs ran; a run that
/// is missing - an interrupted sweep - ends it), ranked, written as sweep.csv: the same whether
/// the runs ran in one process or in merged shares.
fn aggregate_sweep(dir: &Path, sc: &SweepConfig) -> Result<nv::SweepResult> {
    let mut rows = Vec::new();
    let mut stop = StopReason::Completed;
    'outer: for &standoff in &sc.standoffs {
        for &angle in &sc.angles {
            let mut row = nv::SweepRow {
                angle,
                standoff,
                losses: vec![],
                snr_db: vec![],
                seconds: 0.0,
                freedom: 0,
            };
            for &seed in &sc.seeds {
                let d = dir.join(run_name(&nv::SweepPoint {
                    angle,
                    standoff,
                    seed,
                }));
                if !d.join("metrics.json").exists() {
                    stop = StopReason::Interrupted;
                    if !row.losses.is_empty() {
                        rows.push(row);
                    }
                    break 'outer;
                }
                let m = common::read_json(&d.join("metrics.json"))?;
                let selected = m["selected_iteration"].as_u64().unwrap_or(0) as usize;
                let log = std::fs::read_to_string(d.join("loss.csv"))
                    .with_context(|| format!("reading {}", d.join("loss.csv").display()))?;
                // the loss of the returned (lowest-loss) state, as the sweep ranks it
                let loss = log
                    .lines()
                    .nth(selected)
                    .and_then(|l| l.split(',').nth(1))
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(f64::NAN);
                row.losses.push(loss);
                row.snr_db.push(m["snr_db"].as_f64().unwrap_or(f64::NAN));
                row.seconds += m["seconds"].as_f64().unwrap_or(0.0);
                if m["stop"].as_str() == Some("interrupted") {
                    stop = StopReason::Interrupted;
                }
                let mask = magprior::io::npy::read_npy(d.join("mask.npy"))?.to_vec()?;
                row.freedom = mask.iter().filter(|v| v.abs() > 1e-6).count();
            }
            rows.push(row);
        }
    }
    let res = nv::rank_sweep(rows, sc.seeds.len(), stop);
    common::write_csv(
        &dir.join("sweep.csv"),
        "angle,standoff,final_loss,loss_std,snr_db,seconds,seeds,freedom",
        res.rows.iter().map(|row| {
            format!(
                "{},{:e},{:e},{:e},{:.3},{:.2},{},{}",
                row.angle,
                row.standoff,
                row.mean_loss(),
                row.loss_spread(),
                row.mean_snr_db(),
                row.seconds,
                row.losses.len(),
                row.freedom
            )
        }),
    )?;
    Ok(res)
}

/// The sweep's table, the ranking within groups of equal freedom, and its significance.
fn print_sweep(res: &nv::SweepResult) {
    use magprior::units::format_length;
    println!(
        "{:>4} {:>9} {:>12} {:>14} {:>11} {:>9} {:>8} {:>8}",
        "rank", "angle", "standoff", "final loss", "spread", "SNR dB", "seconds", "freedom"
    );
    for (i, r) in res.rows.iter().enumerate() {
        println!(
            "{:>4} {:>9.2} {:>12} {:>14.4e} {:>11.2e} {:>9.2} {:>8.1} {:>8}",
            i + 1,
            r.angle,
            format_length(r.standoff),
            r.mean_loss(),
            r.loss_spread(),
            r.mean_snr_db(),
            r.seconds,
            r.freedom
        );
    }
    if res.groups.len() > 1 {
        println!("masks differ in freedom (non-zero mask entries); ranking within each group:");
        for (f, idx) in &res.groups {
            let names: Vec<String> = idx
                .iter()
                .map(|&i| {
                    format!(
                        "{} deg/{}",
                        res.rows[i].angle,
                        format_length(res.rows[i].standoff)
                    )
                })
                .collect();
            println!("  freedom {f:>7}: {}", names.join("  <  "));
        }
    }
    match res.significance {
        nv::Significance::NothingToRank => {}
        nv::Significance::OneSeed => println!(
            "note: one seed per setting; rerun with --seeds 0,1,2 to see whether the ranking exceeds the seed-to-seed spread"
        ),
        nv::Significance::NotSignificant { gap, spread } => println!(
            "note: the best two differ by {gap:.2e}, within 2x the seed spread ({spread:.2e}): the ranking is not significant"
        ),
        nv::Significance::Significant { ratio } => {
            println!("the best setting beats the runner-up by {ratio:.1}x the seed spread")
        }
    }
    if res.groups.len() > 1 && res.rows.len() >= 2 {
        println!("caution: masks with more freedom (e.g. rotated by 45/135 deg) can fit better than the true one; compare within a group");
    }
}

/// The demo's flags, parsed as a user would give them.
#[derive(Parser)]
struct DemoArgs {
    #[command(flatten)]
    recon: ReconArgs,
}

#[derive(Serialize)]
struct DemoMeta {
    program: &'static str,
    version: &'static str,
    sample: &'static str,
    pixel_m: f64,
    thickness_m: f64,
    standoff_m: f64,
    noise: &'static str,
    direction_cosine_vs_truth: f64,
}

/// `magprior demo`: a synthetic Landau ellipse, simulated, reconstructed, written to ./magprior-demo/.
pub fn demo(iters: usize, quiet: bool, out: &Path) -> Result<()> {
    let n = 128;
    let geom = NvGeometry::default();
    let data = nv::synthetic::landau_ellipse(n, &geom, 8.6e5, 0.01, 7)?;
    let od = OutputDir::create(out)?;
    let input = od.file("bnv_measured.npy");
    common::write_map(&input, &[n, n], &data.bnv)?;
    common::write_map(
        &od.file("magnetization_true.npy"),
        &[3, n, n],
        &data.magnetization,
    )?;
    common::write_map(&od.file("support.npy"), &[n, n], &data.support)?;
    let hw = n * n;
    render::write_colour_wheel(
        &od.file("magnetization_true.png"),
        &data.magnetization[..hw],
        &data.magnetization[hw..2 * hw],
        n,
        n,
        "true M",
    )?;
    if !quiet {
        eprintln!("demo: 128x128 map (5 nm pixels) of a 460x310 nm Permalloy ellipse in a Landau state, 20 nm film, 50 nm standoff, 1 % noise; {iters} iterations");
    }
    let args = DemoArgs::try_parse_from([
        "demo",
        "--bnv",
        &input.display().to_string(),
        "--pixel",
        "5nm",
        "--thickness",
        "20nm",
        "--standoff",
        "50nm",
        "--theta",
        "54.75",
        "--mask-preset",
        "landau",
        "--background",
        "none",
        "--iters",
        &iters.to_string(),
        "--device",
        "cpu",
    ])
    .context("the demo's settings")?
    .recon;
    let args = ReconArgs { quiet, ..args };
    let job = Problem {
        bnv: data.bnv.clone(),
        h: n,
        w: n,
        geom: geom.clone(),
        masks: nv::MaskFile::Support(data.support.clone()),
        auto: None,
    };
    let rdir = od.subdir("reconstruction")?;
    let cfg = args.config(&geom, magprior::Device::Cpu)?;
    let res = run_one(&args, &job, &rdir, 0.0, &cfg, "demo")?;
    let cos = nv::direction_cosine(&data.magnetization, &res.magnetization, &data.support);
    common::write_json(
        &od.file("metadata.json"),
        &DemoMeta {
            program: "magprior demo",
            version: VERSION,
            sample: "Permalloy ellipse, semi-axes 0.36 n x 0.24 n pixels, Landau state (ccw), Ms 8.6e5 A/m",
            pixel_m: 5e-9,
            thickness_m: 20e-9,
            standoff_m: 50e-9,
            noise: "1 % of max |B_NV|, Gaussian, seed 7",
            direction_cosine_vs_truth: cos,
        },
    )?;
    let path = od.commit().context("writing the demo directory")?;
    output::report(&res, &path.join("reconstruction"));
    println!("direction cosine vs the true magnetisation inside the ellipse: {cos:.3}");
    println!(
        "true magnetisation: {}/magnetization_true.png",
        path.display()
    );
    Ok(())
}
