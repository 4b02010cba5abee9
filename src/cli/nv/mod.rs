//! `magprior nv ...`: forward, deproject, reconstruct, sweep, and the demo.

mod args;
mod output;

use crate::cli::common::{self, select_device, DeviceMeta, Progress, VERSION};
use anyhow::{bail, Context, Result};
use args::{GeomArgs, Problem, ReconArgs};
use clap::{Args, Subcommand};
use magprior::io::load::load_array;
use magprior::io::outdir::OutputDir;
use magprior::io::render;
use magprior::nv::{self, NvForward, NvGeometry, NvResult, StopReason, SweepConfig};
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum NvCmd {
    /// Magnetisation -> B_NV (and optionally Bx, By, Bz).
    Forward(ForwardArgs),
    /// B_NV -> (Bx, By, Bz) with a regularised inverse.
    Deproject(DeprojectArgs),
    /// NV-DIP reconstruction of the magnetisation from a B_NV map.
    Reconstruct(ReconCmd),
    /// Reconstruct for several mask angles and/or standoffs and rank them by final loss.
    Sweep(SweepArgs),
}

#[derive(Args)]
pub struct ForwardArgs {
    /// Magnetisation: .npy (2|3, H, W) in A/m, or .ovf (unit vectors scaled by --ms).
    #[arg(long)]
    magnetization: PathBuf,
    #[command(flatten)]
    geom: GeomArgs,
    /// Saturation magnetisation for OVF unit vectors (A/m).
    #[arg(long, default_value_t = 8.6e5, value_parser = common::positive)]
    ms: f64,
    /// Output B_NV (H, W) in tesla, .npy.
    #[arg(long)]
    out: PathBuf,
    /// Also write (Bx, By, Bz) (3, H, W) in tesla here.
    #[arg(long)]
    components: Option<PathBuf>,
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
    /// Output directory (sweep.csv and one sub-directory per run).
    #[arg(long)]
    out: PathBuf,
}

pub fn run(cmd: NvCmd) -> Result<()> {
    match cmd {
        NvCmd::Forward(a) => forward(a),
        NvCmd::Deproject(a) => deproject(a),
        NvCmd::Reconstruct(a) => {
            let job = Problem::load(&a.recon)?;
            let out = OutputDir::create(&a.out)?;
            let cfg = a
                .recon
                .config(&job.geom, select_device(a.recon.device, a.recon.quiet)?);
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

fn forward(a: ForwardArgs) -> Result<()> {
    let loaded = load_array(&a.magnetization)?;
    let is_ovf = loaded.cell.is_some();
    let t = loaded.tensor;
    let s = t.shape().to_vec();
    if s.len() != 3 || !(2..=3).contains(&s[0]) {
        bail!(
            "{}: expected a (2|3, H, W) magnetisation, got shape {s:?}",
            a.magnetization.display()
        );
    }
    let g = a
        .geom
        .geometry(loaded.cell.map(|c| c.0), &a.magnetization)?;
    let m = if is_ovf { t.scale(a.ms as f32)? } else { t };
    let m = m.reshape(&[1, s[0], s[1], s[2]])?;
    let op = NvForward::new(s[1], s[2], &g)?;
    common::write_map(&a.out, &[s[1], s[2]], &op.bnv(&m)?.to_vec()?)?;
    if let Some(p) = &a.components {
        common::write_map(p, &[3, s[1], s[2]], &op.field(&m)?.to_vec()?)?;
    }
    eprintln!("wrote {} ({}x{} B_NV, T)", a.out.display(), s[1], s[2]);
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
    let base = r.config(&job.geom, device);
    let out = OutputDir::create(&a.out)?;
    let mut on_run = |p: &nv::SweepPoint, mask: &nv::Mask, res: &NvResult| -> Result<_> {
        let name = format!(
            "angle_{:+07.2}_standoff_{:.1}nm_seed_{}",
            p.angle,
            p.standoff * 1e9,
            p.seed
        );
        let dir = out.subdir(&name)?;
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
    let res = nv::sweep(
        &job.bnv,
        job.h,
        job.w,
        &|angle| job.mask(r, angle),
        &base,
        &sc,
        &mut on_run,
        &mut obs,
    )?;
    if let Some(pr) = progress {
        pr.finish();
    }
    common::write_csv(
        &out.file("sweep.csv"),
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
    print_sweep(&res);
    let path = out.commit()?;
    println!(
        "wrote {}/sweep.csv and one directory per run",
        path.display()
    );
    Ok(())
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
    let args = ReconArgs {
        bnv: input,
        geom: GeomArgs {
            pixel: Some(geom.pixel),
            thickness: geom.thickness,
            standoff: geom.standoff,
            theta: geom.theta_deg,
            phi: geom.phi_deg,
            pad: geom.pad,
            cutoff_k: None,
        },
        ms: 8.6e5,
        mask: None,
        support: None,
        mask_preset: args::PresetArg::Landau,
        mask_angle: 0.0,
        chirality: args::Chirality::Ccw,
        mask_blur: 0.0,
        with_mz: false,
        iters,
        lr: 7.5e-4,
        weight_decay: 0.01,
        seed: 0,
        channels: vec![16, 32],
        kernel: 5,
        target: args::TargetArg::Bnv,
        fit_standoff: false,
        standoff_lr: 0.2,
        device: common::DeviceArg::Cpu,
        quiet,
    };
    let job = Problem {
        bnv: data.bnv.clone(),
        h: n,
        w: n,
        geom: geom.clone(),
        masks: nv::MaskFile::Support(data.support.clone()),
    };
    let rdir = od.subdir("reconstruction")?;
    let cfg = args.config(&geom, magprior::Device::Cpu);
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
