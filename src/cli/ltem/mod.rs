//! `magprior ltem ...`: simulate, forward, sitie, reconstruct (SIPRAD), series, induction.

mod args;
mod output;

use crate::cli::common::{self, check_same, load_map, DeviceMeta, Progress, VERSION};
use anyhow::{bail, Context, Result};
use args::{MicArgs, SipradArgs};
use clap::{Args, Subcommand};
use magprior::io::load::load_array;
use magprior::io::outdir::OutputDir;
use magprior::io::render;
use magprior::ltem::{
    self, accuracy, add_noise, induction, magnetic_phase, sitie, LtemForward, SipradResult,
    SitieConfig, Stage, Stats, StopReason,
};
use magprior::Rng;
use output::{write_induction_png, write_phase_png, write_recon, Recon};
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum LtemCmd {
    /// Magnetisation -> magnetic phase, integrated induction and a (noisy) defocused image.
    Simulate(SimulateArgs),
    /// Phase (and amplitude) -> defocused image.
    Forward(ForwardArgs),
    /// SITIE phase from one defocused image.
    Sitie(SitieArgs),
    /// SIPRAD reconstruction of the magnetic phase from one defocused image.
    Reconstruct(ReconCmd),
    /// SIPRAD on a stack of frames, each warm-started from the previous frame's network.
    Series(SeriesArgs),
    /// Integrated in-plane induction (Bx t, By t) in T m from a phase.
    Induction(InductionArgs),
}

#[derive(Args)]
pub struct SimulateArgs {
    /// Magnetisation: .npy (2|3, H, W) in A/m, or .ovf (unit vectors x --ms; rows = y index).
    #[arg(long)]
    magnetization: PathBuf,
    /// Film thickness.
    #[arg(long, value_parser = common::positive_length, allow_hyphen_values = true)]
    thickness: f64,
    /// Saturation magnetisation for OVF unit vectors (A/m).
    #[arg(long, default_value_t = 8.6e5, value_parser = common::positive)]
    ms: f64,
    #[command(flatten)]
    mic: MicArgs,
    /// Gaussian noise, std = level x mean(I) (0.5 = the papers' 50 %).
    #[arg(long, default_value_t = 0.0, value_parser = common::nonneg)]
    noise: f64,
    /// Poisson noise for this dose (electrons per nm^2).
    #[arg(long, value_parser = common::positive)]
    dose: Option<f64>,
    /// Seed of the noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
pub struct ForwardArgs {
    /// Phase (H, W) in rad, .npy.
    #[arg(long)]
    phase: PathBuf,
    /// Amplitude (H, W), .npy (default uniform 1).
    #[arg(long)]
    amplitude: Option<PathBuf>,
    #[command(flatten)]
    mic: MicArgs,
    /// Output image (H, W), .npy.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
pub struct SitieArgs {
    /// Defocused image (H, W): .npy or .tif.
    #[arg(long)]
    image: PathBuf,
    #[command(flatten)]
    mic: MicArgs,
    /// Tikhonov frequency qc (1/nm).
    #[arg(long, value_parser = common::nonneg)]
    qc: Option<f64>,
    /// Mirror-symmetric extension against edge artefacts.
    #[arg(long)]
    symmetric: bool,
    /// Output phase (H, W) in rad, .npy (a PNG is written beside it).
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
pub struct ReconCmd {
    /// Defocused image (H, W): .npy or .tif.
    #[arg(long)]
    image: PathBuf,
    #[command(flatten)]
    s: SipradArgs,
    /// Ground-truth phase (H, W) in rad: adds accuracies to metrics.json.
    #[arg(long)]
    truth: Option<PathBuf>,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
pub struct SeriesArgs {
    /// Frames: a TIFF stack, an .npy (F, H, W), or a directory of .npy/.tif images (name order).
    #[arg(long)]
    frames: PathBuf,
    #[command(flatten)]
    s: SipradArgs,
    /// Output directory (frame_0000/, ... and summary.csv).
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
pub struct InductionArgs {
    /// Phase (H, W) in rad, .npy.
    #[arg(long)]
    phase: PathBuf,
    /// Pixel size.
    #[arg(long, value_parser = common::positive_length, default_value = "4nm", allow_hyphen_values = true)]
    scale: f64,
    /// Output (2, H, W) in T m, .npy (a colour-wheel PNG is written beside it).
    #[arg(long)]
    out: PathBuf,
}

pub fn run(cmd: LtemCmd) -> Result<()> {
    match cmd {
        LtemCmd::Simulate(a) => simulate(a),
        LtemCmd::Forward(a) => forward(a),
        LtemCmd::Sitie(a) => sitie_cmd(a),
        LtemCmd::Reconstruct(a) => reconstruct(a),
        LtemCmd::Series(a) => series(a),
        LtemCmd::Induction(a) => induction_cmd(a),
    }
}

#[derive(Serialize)]
#[allow(non_snake_case)]
struct SimulateMeta {
    program: &'static str,
    version: &'static str,
    magnetization: String,
    shape: [usize; 2],
    ovf_unit_vectors_times_ms: bool,
    ms_A_per_m: f64,
    thickness_nm: f64,
    microscope: args::MicMeta,
    noise: f64,
    dose_e_per_nm2: Option<f64>,
    seed: u64,
    phase_formula: &'static str,
    orientation: &'static str,
}

fn simulate(a: SimulateArgs) -> Result<()> {
    let loaded = load_array(&a.magnetization)?;
    let is_ovf = loaded.cell.is_some();
    let s = loaded.tensor.shape().to_vec();
    if s.len() != 3 || !(2..=3).contains(&s[0]) || s[1] < 2 || s[2] < 2 {
        bail!(
            "{}: expected a (2|3, H, W) magnetisation, got shape {s:?}",
            a.magnetization.display()
        );
    }
    let mic = a.mic.microscope(loaded.cell.map(|c| c.0))?;
    let (h, w) = (s[1], s[2]);
    let mut m = loaded.tensor.to_vec()?;
    if is_ovf {
        m.iter_mut().for_each(|v| *v *= a.ms as f32);
    }
    let t_nm = a.thickness * 1e9;
    let phase = ltem::min_subtracted(magnetic_phase(
        &m[..h * w],
        &m[h * w..2 * h * w],
        h,
        w,
        t_nm,
        mic.scale,
    )?);
    let b = induction(&phase, h, w, mic.scale)?;
    let clean = LtemForward::new(h, w, &mic, a.mic.pad)?.image_of(&phase, None)?;
    let mut image = clean.clone();
    add_noise(
        &mut image,
        a.noise,
        a.dose,
        mic.scale,
        &mut Rng::new(a.seed),
    )?;
    let out = OutputDir::create(&a.out)?;
    common::write_map(&out.file("phase.npy"), &[h, w], &phase)?;
    common::write_map(&out.file("image.npy"), &[h, w], &image)?;
    common::write_map(&out.file("image_clean.npy"), &[h, w], &clean)?;
    common::write_map(&out.file("induction.npy"), &[2, h, w], &b)?;
    write_phase_png(&out.file("phase.png"), &phase, h, w, "magnetic phase")?;
    render::write_sequential_map(
        &out.file("image.png"),
        &image,
        h,
        w,
        "defocused image",
        "",
        1.0,
    )?;
    write_induction_png(&out.file("induction.png"), &b, h, w)?;
    common::write_json(
        &out.file("metadata.json"),
        &SimulateMeta {
            program: "magprior ltem simulate",
            version: VERSION,
            magnetization: a.magnetization.display().to_string(),
            shape: [h, w],
            ovf_unit_vectors_times_ms: is_ovf,
            ms_A_per_m: a.ms,
            thickness_nm: t_nm,
            microscope: a.mic.meta(&mic),
            noise: a.noise,
            dose_e_per_nm2: a.dose,
            seed: a.seed,
            phase_formula: "phi_m(k) = -i (pi mu0 t / Phi0) (kx My - ky Mx) / k^2, Phi0 = h/(2e), phi(0) = 0, then min-subtracted; units: phase.npy rad (H, W), induction.npy T m (2, H, W) = (Bx t, By t), image.npy intensity (incident beam = 1)",
            orientation: "rows = y index (OVF files: rows in file order, y increasing with the row), columns = x",
        },
    )?;
    let path = out.commit()?;
    let pmax = phase.iter().copied().fold(0f32, f32::max);
    println!(
        "{}: {h}x{w}, phase 0..{pmax:.3} rad, {:.2} nm/px, defocus {} nm",
        path.display(),
        mic.scale,
        mic.defocus
    );
    Ok(())
}

fn forward(a: ForwardArgs) -> Result<()> {
    let (phase, h, w) = load_map(&a.phase, 2)?;
    let amp = match &a.amplitude {
        Some(p) => {
            let (v, ah, aw) = load_map(p, 2)?;
            check_same(p, (ah, aw), &a.phase, (h, w))?;
            Some(v)
        }
        None => None,
    };
    let mic = a.mic.microscope(None)?;
    let img = LtemForward::new(h, w, &mic, a.mic.pad)?.image_of(&phase, amp.as_deref())?;
    common::write_map(&a.out, &[h, w], &img)?;
    eprintln!(
        "wrote {} ({h}x{w} image, defocus {} nm)",
        a.out.display(),
        mic.defocus
    );
    Ok(())
}

fn sitie_cmd(a: SitieArgs) -> Result<()> {
    let (img, h, w) = load_map(&a.image, 2)?;
    let mic = a.mic.microscope(None)?;
    let cfg = SitieConfig {
        qc: a.qc,
        symmetric: a.symmetric,
    };
    let phase = sitie(&img, h, w, &mic, &cfg).with_context(|| a.image.display().to_string())?;
    common::write_map(&a.out, &[h, w], &phase)?;
    write_phase_png(&a.out.with_extension("png"), &phase, h, w, "SITIE phase")?;
    eprintln!("wrote {} ({h}x{w} SITIE phase, rad)", a.out.display());
    Ok(())
}

fn induction_cmd(a: InductionArgs) -> Result<()> {
    let (phase, h, w) = load_map(&a.phase, 2)?;
    let b = induction(&phase, h, w, a.scale * 1e9)?;
    common::write_map(&a.out, &[2, h, w], &b)?;
    write_induction_png(&a.out.with_extension("png"), &b, h, w)?;
    eprintln!("wrote {} ((Bx t, By t) in T m, {h}x{w})", a.out.display());
    Ok(())
}

/// Observer with progress display and Ctrl-C.
fn observer<'a>(progress: &'a mut Progress, pretrain: usize) -> impl FnMut(&Stats) -> bool + 'a {
    move |s: &Stats| {
        let (i, extra) = match s.stage {
            Stage::Pretrain => (s.iter, "pretraining".to_string()),
            Stage::Fit => (pretrain + s.iter, format!("scale {:.3}", s.amp_scale)),
        };
        progress.update(i, s.loss, &extra);
        !common::interrupted()
    }
}

fn report_notes(res: &SipradResult, h: usize, w: usize, quiet: bool) {
    if res.network_size != (h, w) && !quiet {
        eprintln!(
            "note: {h}x{w} is not divisible by the network's 2^levels; it ran at {}x{} and its output was cropped",
            res.network_size.0, res.network_size.1
        );
    }
    if let StopReason::Diverged(i) = res.stop {
        eprintln!("warning: the loss became NaN/inf at iteration {i}; kept the last good state");
    }
}

fn reconstruct(a: ReconCmd) -> Result<()> {
    let (image, h, w) = load_map(&a.image, 2)?;
    let (mic, cfg) = a.s.config()?;
    let truth = match &a.truth {
        Some(p) => {
            let (t, th, tw) = load_map(p, 2)?;
            check_same(p, (th, tw), &a.image, (h, w))?;
            Some(t)
        }
        None => None,
    };
    let out = OutputDir::create(&a.out)?;
    let mut progress = Progress::new(cfg.pretrain + cfg.iters, a.s.quiet, "siprad");
    let res = ltem::reconstruct(
        &image,
        h,
        w,
        &mic,
        &cfg,
        &mut observer(&mut progress, cfg.pretrain),
    )
    .with_context(|| a.image.display().to_string())?;
    progress.finish();
    report_notes(&res, h, w, a.s.quiet);
    let r = Recon {
        program: "magprior ltem reconstruct",
        input: &a.image,
        image: &image,
        hw: (h, w),
        args: &a.s,
        mic: &mic,
        cfg: &cfg,
    };
    write_recon(
        out.path(),
        &r,
        &res,
        a.truth.as_deref().zip(truth.as_deref()),
    )?;
    let path = out.commit()?;
    print!(
        "{}: {} iterations ({}), selected iteration {}, loss {:.4e}, {:.3} s/iteration",
        path.display(),
        res.history.len(),
        res.stop,
        res.selected_iter,
        res.history.last().map_or(f64::NAN, |s| s.loss),
        res.seconds / res.history.len().max(1) as f64
    );
    if let Some(t) = &truth {
        let acc = accuracy(&res.phase, t, h, w, mic.scale, true)?;
        let sc = accuracy(&res.sitie, t, h, w, mic.scale, true)?;
        print!(
            "; accuracy phase {:.3} (SITIE input {:.3}), Bx {:.3}, By {:.3}",
            acc.phase, sc.phase, acc.bx, acc.by
        );
    }
    println!();
    println!(
        "pictures: {0}/phase.png, {0}/induction.png, {0}/image.png, {0}/loss.png",
        path.display()
    );
    Ok(())
}

/// Frames of a series: (frames, h, w, names).
type Frames = (Vec<Vec<f32>>, usize, usize, Vec<String>);

fn load_frames(path: &Path) -> Result<Frames> {
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| path.display().to_string())?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let e = p
                    .extension()
                    .and_then(|e| e.to_str())
                    .unwrap_or("")
                    .to_ascii_lowercase();
                matches!(e.as_str(), "npy" | "tif" | "tiff")
            })
            .collect();
        files.sort();
        if files.is_empty() {
            bail!(
                "{}: no .npy or .tif frames in this directory",
                path.display()
            );
        }
        let mut frames = Vec::new();
        let (mut h, mut w) = (0, 0);
        for (i, f) in files.iter().enumerate() {
            let (v, fh, fw) = load_map(f, 2)?;
            if i == 0 {
                (h, w) = (fh, fw);
            } else {
                check_same(f, (fh, fw), &files[0], (h, w))?;
            }
            frames.push(v);
        }
        let names = files
            .iter()
            .map(|f| {
                f.file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
            })
            .collect();
        return Ok((frames, h, w, names));
    }
    let t = load_array(path)?.tensor;
    let (n, h, w) = match t.shape() {
        [n, h, w] => (*n, *h, *w),
        [h, w] => (1, *h, *w),
        s => bail!(
            "{}: expected a (frames, H, W) stack, got shape {s:?}",
            path.display()
        ),
    };
    if h < 2 || w < 2 {
        bail!("{}: frames must be at least 2x2", path.display());
    }
    let v = t.to_vec()?;
    let frames = v.chunks(h * w).map(|c| c.to_vec()).collect();
    Ok((
        frames,
        h,
        w,
        (0..n).map(|i| format!("{}[{i}]", path.display())).collect(),
    ))
}

#[derive(Serialize)]
struct SeriesMeta {
    program: &'static str,
    version: &'static str,
    frames: String,
    count: usize,
    reconstructed: usize,
    shape: [usize; 2],
    #[serde(flatten)]
    device: DeviceMeta,
    warm_start: &'static str,
}

fn series(a: SeriesArgs) -> Result<()> {
    let (frames, h, w, names) = load_frames(&a.frames)?;
    let (mic, cfg) = a.s.config()?;
    for (f, n) in frames.iter().zip(&names) {
        if f.iter().map(|&v| v as f64).sum::<f64>() <= 0.0 {
            bail!("{n}: the mean intensity must be positive");
        }
    }
    let out = OutputDir::create(&a.out)?;
    let total = cfg.pretrain + cfg.iters * frames.len();
    let mut progress = Progress::new(total, a.s.quiet, "series");
    let mut done = 0usize;
    let results = ltem::reconstruct_series(&frames, h, w, &mic, &cfg, &mut |k, s| {
        done += 1;
        let extra = format!("frame {}/{}", k + 1, frames.len());
        progress.update(done.min(total), s.loss, &extra);
        !common::interrupted()
    })
    .with_context(|| a.frames.display().to_string())?;
    progress.finish();
    let mut rows = Vec::new();
    for (k, res) in results.iter().enumerate() {
        report_notes(res, h, w, a.s.quiet || k > 0);
        let dir = out.subdir(&format!("frame_{k:04}"))?;
        let r = Recon {
            program: "magprior ltem series",
            input: Path::new(&names[k]),
            image: &frames[k],
            hw: (h, w),
            args: &a.s,
            mic: &mic,
            cfg: &cfg,
        };
        write_recon(&dir, &r, res, None)?;
        let pmax = res.phase.iter().copied().fold(0f32, f32::max);
        rows.push(format!(
            "{k},{},{:e},{},{:.4},{:.4},{:.3},{}",
            names[k],
            res.history.last().map_or(f64::NAN, |s| s.loss),
            res.selected_iter,
            res.amp_scale,
            pmax,
            res.seconds,
            res.stop
        ));
    }
    common::write_csv(
        &out.file("summary.csv"),
        "frame,source,final_loss,selected_iteration,amp_scale,phase_max_rad,seconds,stop",
        rows.into_iter(),
    )?;
    common::write_json(
        &out.file("metadata.json"),
        &SeriesMeta {
            program: "magprior ltem series",
            version: VERSION,
            frames: a.frames.display().to_string(),
            count: frames.len(),
            reconstructed: results.len(),
            shape: [h, w],
            device: DeviceMeta::of(cfg.device),
            warm_start: "frame k > 0 continues from frame k-1's networks and Adam state, input = its own SITIE phase, no pretraining",
        },
    )?;
    let path = out.commit()?;
    println!(
        "{}: {} of {} frames reconstructed; summary.csv and frame_NNNN/ per frame",
        path.display(),
        results.len(),
        frames.len()
    );
    Ok(())
}
