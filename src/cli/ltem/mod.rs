//! `magprior ltem ...`: simulate, forward, sitie, reconstruct (SIPRAD), series, induction.

mod args;
mod images;
mod output;

use crate::cli::common::{self, check_same, load_map, DeviceMeta, Progress, VERSION};
use anyhow::{bail, Context, Result};
use args::SipradArgs;
pub(crate) use args::{MicArgs, MicMeta};
use clap::{Args, Subcommand};
use magprior::io::load::load_array;
use magprior::io::outdir::OutputDir;
use magprior::io::render;
use magprior::ltem::{
    self, accuracy, add_noise, induction, magnetic_phase, sitie, LtemForward, Microscope,
    SipradConfig, SipradResult, SitieConfig, Stage, Stats, StopReason,
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
    /// TIE phase from a through-focal series (and a flipped series: magnetic and electrostatic phases).
    Tie(TieArgs),
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
    /// Sample tilt about x (degrees, right-handed; applied first).
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    tilt_x: f64,
    /// Sample tilt about y (degrees, right-handed; applied after the x tilt).
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    tilt_y: f64,
    /// Slices through the thickness for a tilted projection.
    #[arg(long, default_value_t = 16, value_parser = common::at_least_one)]
    layers: usize,
    #[command(flatten)]
    mic: MicArgs,
    /// Gaussian noise, std = level x mean(I) (0.5 = the papers' 50 %).
    #[arg(long, default_value_t = 0.0, value_parser = common::nonneg)]
    noise: f64,
    /// Poisson noise for this dose (electrons per nm^2).
    #[arg(long, value_parser = common::positive)]
    dose: Option<f64>,
    /// Seed of the noise (and of the particles' placement).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Contamination particles placed at random (discs of low amplitude and electrostatic phase
    /// kappa (-ln a), kappa = V0 sigma xi); writes amplitude.npy, phase_e.npy,
    /// contamination_mask.npy and image_infocus.npy (the field in focus, same noise level).
    #[arg(long, default_value_t = 0)]
    particles: usize,
    /// Particle radius range MIN,MAX (pixels).
    #[arg(long, value_delimiter = ',', default_values_t = [5.0, 15.0], value_parser = common::positive)]
    particle_radius: Vec<f64>,
    /// Particle amplitude range MIN,MAX (0 < a < 1).
    #[arg(long, value_delimiter = ',', default_values_t = [0.4, 0.8], value_parser = common::fraction_open)]
    particle_amp: Vec<f64>,
    /// Mean inner potential of the particles (V).
    #[arg(long, default_value_t = 20.0, value_parser = common::nonneg)]
    v0: f64,
    /// Absorption length xi of the particles.
    #[arg(long, value_parser = common::positive_length, default_value = "10nm")]
    xi: f64,
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
    /// Defocused image (H, W): .npy, .tif, .dm3/.dm4; or a through-focal series (files
    /// separated by commas, or one stack) with --defoci: one network fitted to every image.
    #[arg(long, value_delimiter = ',', required = true)]
    image: Vec<PathBuf>,
    /// Defocus of each image of a series (e.g. -1mm,0,1mm; --defocus is then not used).
    #[arg(long, value_delimiter = ',', value_parser = common::length, allow_hyphen_values = true)]
    defoci: Vec<f64>,
    #[command(flatten)]
    s: SipradArgs,
    /// Ground-truth phase (H, W) in rad: adds accuracies to metrics.json.
    #[arg(long)]
    truth: Option<PathBuf>,
    /// Members of an ensemble (seeds --seed, --seed + 1, ...: weights, input noise, hold-out
    /// split): their mean is the estimate (phase.npy, induction.npy), the per-pixel spread is
    /// written beside it (*_std.npy, *_q05.npy, *_q95.npy, pictures), each member under
    /// members/seed_S/; with --truth the band's coverage of the truth.
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
pub struct SeriesArgs {
    /// Frames: a TIFF stack, an .npy (F, H, W), or a directory of .npy/.tif images (name order).
    #[arg(long)]
    frames: PathBuf,
    #[command(flatten)]
    s: SipradArgs,
    /// Drift alignment before the reconstruction (sub-pixel phase correlation): against a
    /// running average of the aligned frames, the first frame, the previous frame, or none.
    #[arg(long, value_enum, default_value_t = AlignArg::Running)]
    align: AlignArg,
    /// Reconstruct one share of the frames (0-based I of N, contiguous blocks; default from
    /// SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT when set) into OUT/shard-I-of-N/: the
    /// alignment is computed on the whole stack, each share's first frame starts cold and the
    /// rest warm-start within it; `magprior merge OUT` then collects the frames.
    #[arg(long, value_name = "I/N")]
    shard: Option<String>,
    /// Output directory (frame_0000/, ... and summary.csv).
    #[arg(long)]
    out: PathBuf,
}

/// `--align`.
#[derive(Clone, Copy, Debug, clap::ValueEnum, PartialEq)]
pub enum AlignArg {
    /// Each frame against an exponential running average (weight 0.3) of the aligned frames.
    Running,
    /// Each frame against frame 0.
    First,
    /// Each frame against the previous one, the steps summed.
    Previous,
    /// No alignment.
    None,
}

/// `--flip-axis`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum FlipAxisArg {
    /// Columns reversed (the sample turned over about the image's y axis).
    Lr,
    /// Rows reversed (turned over about x).
    Ud,
}

/// `--intensity`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum IntensityArg {
    /// A constant I0 (in-focus mean, else the series mean): films of uniform thickness.
    Uniform,
    /// The in-focus image itself (needs a 0 defocus): varying thickness or absorption.
    Infocus,
}

#[derive(Args)]
pub struct TieArgs {
    /// The through-focal series: image files separated by commas (.dm3/.dm4/.tif/.npy), or one
    /// stack (F, H, W), in the order of --defoci.
    #[arg(long, value_delimiter = ',', required = true)]
    images: Vec<PathBuf>,
    /// Defocus of each image, e.g. -0.5mm,0,0.5mm (negative = underfocus; --defocus is not used).
    #[arg(long, value_delimiter = ',', required = true, value_parser = common::length, allow_hyphen_values = true)]
    defoci: Vec<f64>,
    /// The flipped series (the sample turned over), at the same defoci, as recorded: the
    /// magnetic and electrostatic phases are separated.
    #[arg(long, value_delimiter = ',')]
    flip: Vec<PathBuf>,
    /// The axis about which the flipped images are mirrored back.
    #[arg(long, value_enum, default_value_t = FlipAxisArg::Lr)]
    flip_axis: FlipAxisArg,
    /// Which intensity divides the transport term.
    #[arg(long, value_enum, default_value_t = IntensityArg::Uniform)]
    intensity: IntensityArg,
    /// Tikhonov frequency qc (1/nm); none by default.
    #[arg(long, value_parser = common::nonneg)]
    qc: Option<f64>,
    /// Periodic solve (default: mirror-symmetric extension, for measured images).
    #[arg(long)]
    periodic: bool,
    #[command(flatten)]
    mic: MicArgs,
    /// Ground-truth magnetic phase (H, W) in rad: prints the accuracy.
    #[arg(long)]
    truth: Option<PathBuf>,
    /// No notes.
    #[arg(long)]
    quiet: bool,
    /// Output phase (H, W) in rad, .npy (the magnetic phase with --flip, its electrostatic
    /// phase beside it as NAME_electrostatic.npy); a PNG and NAME.json are written beside it.
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
        LtemCmd::Tie(a) => tie_cmd(a),
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
    tilt_x_deg: f64,
    tilt_y_deg: f64,
    layers: Option<usize>,
    microscope: args::MicMeta,
    noise: f64,
    dose_e_per_nm2: Option<f64>,
    seed: u64,
    phase_formula: &'static str,
    orientation: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    particles: Vec<ParticleMeta>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kappa_rad: Option<f64>,
}

#[derive(Serialize)]
struct ParticleMeta {
    row_px: f64,
    col_px: f64,
    radius_px: f64,
    amplitude: f64,
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
    let tilted = a.tilt_x != 0.0 || a.tilt_y != 0.0;
    let phase = ltem::min_subtracted(if tilted {
        // the tilted projection sees Mz: a (2, H, W) input has none
        let mut m3 = m.clone();
        m3.resize(3 * h * w, 0.0);
        let tilt = ltem::Tilt {
            x_deg: a.tilt_x,
            y_deg: a.tilt_y,
        };
        ltem::magnetic_phase_tilted(&m3, h, w, a.layers, t_nm, mic.scale, tilt)?
    } else {
        magnetic_phase(&m[..h * w], &m[h * w..2 * h * w], h, w, t_nm, mic.scale)?
    });
    let b = induction(&phase, h, w, mic.scale)?;
    let particles = if a.particles > 0 {
        if a.particle_radius.len() != 2 || a.particle_amp.len() != 2 {
            bail!("--particle-radius and --particle-amp take two values each: MIN,MAX");
        }
        let r = (a.particle_radius[0], a.particle_radius[1]);
        let am = (a.particle_amp[0], a.particle_amp[1]);
        ltem::synthetic::random_particles(a.particles, r, am, h, w, a.seed)?
    } else {
        Vec::new()
    };
    let kappa = a.v0 * ltem::interaction_constant(mic.kv) * a.xi * 1e9;
    let amplitude = ltem::synthetic::particle_amplitude(&particles, h, w);
    let phase_e = ltem::synthetic::electrostatic_phase(&amplitude, kappa);
    let total: Vec<f32> = phase.iter().zip(&phase_e).map(|(p, e)| p + e).collect();
    let contaminated = !particles.is_empty();
    let clean = LtemForward::new(h, w, &mic, a.mic.pad)?
        .image_of(&total, contaminated.then_some(&amplitude[..]))?;
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
    if contaminated {
        let mask = ltem::synthetic::particle_mask(&particles, h, w);
        let mask: Vec<f32> = mask.iter().map(|&m| m as u8 as f32).collect();
        common::write_map(&out.file("amplitude.npy"), &[h, w], &amplitude)?;
        common::write_map(&out.file("phase_e.npy"), &[h, w], &phase_e)?;
        common::write_map(&out.file("contamination_mask.npy"), &[h, w], &mask)?;
        // the same field in focus, where the contamination shows without magnetic contrast
        let infocus = ltem::synthetic::in_focus_image(
            &total,
            &amplitude,
            (h, w),
            &mic,
            a.mic.pad,
            (a.noise, a.dose),
            a.seed ^ 0x1f0c,
        )?;
        common::write_map(&out.file("image_infocus.npy"), &[h, w], &infocus)?;
    }
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
            tilt_x_deg: a.tilt_x,
            tilt_y_deg: a.tilt_y,
            layers: tilted.then_some(a.layers),
            microscope: a.mic.meta(&mic),
            noise: a.noise,
            dose_e_per_nm2: a.dose,
            seed: a.seed,
            phase_formula: "phi_m(k) = -i (pi mu0 t / Phi0) (kx My - ky Mx) / k^2, Phi0 = h/(2e), phi(0) = 0, then min-subtracted; units: phase.npy rad (H, W), induction.npy T m (2, H, W) = (Bx t, By t), image.npy intensity (incident beam = 1)",
            orientation: "rows = y index (OVF files: rows in file order, y increasing with the row), columns = x",
            particles: particles
                .iter()
                .map(|p| ParticleMeta {
                    row_px: p.row,
                    col_px: p.col,
                    radius_px: p.radius,
                    amplitude: p.amplitude,
                })
                .collect(),
            kappa_rad: contaminated.then_some(kappa),
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
    let (img, h, w, scale) = load_single(&a.image, &a.mic)?;
    let mic = a.mic.microscope(scale)?;
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

#[derive(Serialize)]
struct TieMeta {
    program: &'static str,
    version: &'static str,
    images: Vec<String>,
    flip: Vec<String>,
    defoci_nm: Vec<f64>,
    shape: [usize; 2],
    scale_nm_per_px: f64,
    intensity: &'static str,
    qc_per_nm: Option<f64>,
    symmetric_extension: bool,
    flip_axis: Option<&'static str>,
    flip_shift_px: Option<[f64; 2]>,
    microscope: args::MicMeta,
    method: &'static str,
}

/// The frames of a series as slices.
fn frame_refs(f: &Frames) -> Vec<&[f32]> {
    f.frames.iter().map(|v| v.as_slice()).collect()
}

fn tie_cmd(a: TieArgs) -> Result<()> {
    let un = load_frames(&a.images, &a.mic, a.quiet)?;
    let count = |f: &Frames, what: &str| -> Result<()> {
        if f.frames.len() != a.defoci.len() {
            bail!(
                "{}: {} {what}images but {} values in --defoci",
                a.images
                    .first()
                    .map_or_else(String::new, |p| p.display().to_string()),
                f.frames.len(),
                a.defoci.len()
            );
        }
        Ok(())
    };
    count(&un, "")?;
    let fl = if a.flip.is_empty() {
        None
    } else {
        let f = load_frames(&a.flip, &a.mic, true)?;
        count(&f, "flipped ")?;
        if (f.h, f.w) != (un.h, un.w) {
            bail!(
                "{}: flipped images are {}x{}, the unflipped ones {}x{}",
                a.flip[0].display(),
                f.h,
                f.w,
                un.h,
                un.w
            );
        }
        Some(f)
    };
    // one scale for both series
    let scale = match (un.scale, fl.as_ref().and_then(|f| f.scale)) {
        (Some(p), Some(q)) if (p - q).abs() > 1e-3 * p => bail!(
            "{}: the flipped series' pixel size {:.4} nm differs from the unflipped {:.4} nm",
            a.flip[0].display(),
            q * 1e9,
            p * 1e9
        ),
        (p, q) => p.or(q),
    };
    let mic = a.mic.microscope(scale)?;
    let (h, w) = (un.h, un.w);
    let defoci_nm: Vec<f64> = a.defoci.iter().map(|d| d * 1e9).collect();
    let cfg = ltem::TieConfig {
        solver: SitieConfig {
            qc: a.qc,
            symmetric: !a.periodic,
        },
        intensity: match a.intensity {
            IntensityArg::Uniform => ltem::TieIntensity::Uniform,
            IntensityArg::Infocus => ltem::TieIntensity::InFocus,
        },
        flip_axis: match a.flip_axis {
            FlipAxisArg::Lr => ltem::FlipAxis::LeftRight,
            FlipAxisArg::Ud => ltem::FlipAxis::UpDown,
        },
    };
    let ctx = || a.images[0].display().to_string();
    let (phase, electrostatic, shift) = match &fl {
        None => (
            ltem::tie(&frame_refs(&un), &defoci_nm, h, w, &mic, &cfg).with_context(ctx)?,
            None,
            None,
        ),
        Some(f) => {
            let r = ltem::tie_flip(
                &frame_refs(&un),
                &frame_refs(f),
                &defoci_nm,
                h,
                w,
                &mic,
                &cfg,
            )
            .with_context(ctx)?;
            (
                r.magnetic,
                Some(r.electrostatic),
                Some([r.shift.0, r.shift.1]),
            )
        }
    };
    let truth = match &a.truth {
        Some(p) => {
            let (t, th, tw) = load_map(p, 2)?;
            check_same(p, (th, tw), &a.images[0], (h, w))?;
            Some(t)
        }
        None => None,
    };
    let stem = a.out.with_extension("");
    let side = |suffix: &str, ext: &str| -> PathBuf {
        let mut s = stem.as_os_str().to_os_string();
        s.push(suffix);
        PathBuf::from(s).with_extension(ext)
    };
    common::write_map(&a.out, &[h, w], &phase)?;
    let title = if fl.is_some() {
        "TIE magnetic phase"
    } else {
        "TIE phase"
    };
    write_phase_png(&a.out.with_extension("png"), &phase, h, w, title)?;
    if let Some(e) = &electrostatic {
        common::write_map(&side("_electrostatic", "npy"), &[h, w], e)?;
        write_phase_png(
            &side("_electrostatic", "png"),
            e,
            h,
            w,
            "TIE electrostatic phase",
        )?;
    }
    common::write_json(
        &a.out.with_extension("json"),
        &TieMeta {
            program: "magprior ltem tie",
            version: VERSION,
            images: un.names.clone(),
            flip: fl.as_ref().map(|f| f.names.clone()).unwrap_or_default(),
            defoci_nm: defoci_nm.clone(),
            shape: [h, w],
            scale_nm_per_px: mic.scale,
            intensity: match a.intensity {
                IntensityArg::Uniform => "uniform",
                IntensityArg::Infocus => "in-focus image",
            },
            qc_per_nm: a.qc,
            symmetric_extension: !a.periodic,
            flip_axis: fl.as_ref().map(|_| match a.flip_axis {
                FlipAxisArg::Lr => "left-right",
                FlipAxisArg::Ud => "up-down",
            }),
            flip_shift_px: shift,
            microscope: a.mic.meta(&mic),
            method: "div(I grad phi) = (2 pi / lambda) dI/d(df), dI/d(df) the least-squares slope over the series, inverse Laplacian in Fourier space (SPEC section 10); flip: phi_m = (phi - phi_flip)/2, phi_e = (phi + phi_flip)/2 after mirroring back and phase-correlation alignment",
        },
    )?;
    print!(
        "wrote {} ({h}x{w} {}, {} images, {:.3} nm/px)",
        a.out.display(),
        title,
        un.frames.len(),
        mic.scale
    );
    if let Some([dy, dx]) = shift {
        print!("; flipped series shifted by ({dy:.2}, {dx:.2}) px");
    }
    if let Some(t) = &truth {
        let acc = accuracy(&phase, t, h, w, mic.scale, true)?;
        print!(
            "; accuracy phase {:.4}, Bx {:.4}, By {:.4}",
            acc.phase, acc.bx, acc.by
        );
    }
    println!();
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

/// One (H, W) image (a one-frame stack is accepted) and the pixel size for it (m; `None`:
/// neither the file nor --scale gives one).
pub(crate) fn load_single(
    path: &Path,
    mic: &MicArgs,
) -> Result<(Vec<f32>, usize, usize, Option<f64>)> {
    let im = images::load(path)?;
    if im.frames.len() != 1 {
        bail!(
            "{}: a stack of {} frames; this command takes one image (`ltem series` or `ltem tie` take stacks)",
            path.display(),
            im.frames.len()
        );
    }
    let scale = images::resolve_scale(mic.scale, mic.force_scale, &[&im], false)?;
    let (h, w) = (im.h, im.w);
    let data = im.frames.into_iter().next().unwrap_or_default();
    Ok((data, h, w, scale))
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
    for w in &res.warnings {
        eprintln!("warning: {w}");
    }
}

fn reconstruct(a: ReconCmd) -> Result<()> {
    let input = a.image.first().cloned().unwrap_or_default();
    let series = load_frames(&a.image, &a.s.mic, a.s.quiet)?;
    let (h, w) = (series.h, series.w);
    if series.frames.len() > 1 && series.frames.len() != a.defoci.len() {
        bail!(
            "{}: {} images but {} values in --defoci (a series needs one defocus per image)",
            input.display(),
            series.frames.len(),
            a.defoci.len()
        );
    }
    if series.frames.len() == 1 && a.defoci.len() > 1 {
        bail!(
            "{}: one image but {} values in --defoci",
            input.display(),
            a.defoci.len()
        );
    }
    let (mut mic, cfg) = a.s.config(series.scale, (h, w))?;
    if a.defoci.len() == 1 {
        mic.defocus = a.defoci[0] * 1e9;
    }
    let image = series.frames[0].clone();
    let truth = match &a.truth {
        Some(p) => {
            let (t, th, tw) = load_map(p, 2)?;
            check_same(p, (th, tw), &input, (h, w))?;
            Some(t)
        }
        None => None,
    };
    let shard = common::Shard::for_ensemble(a.shard.as_deref(), a.ensemble)?;
    if a.ensemble > 1 {
        return ensemble(&a, &series, &mic, &cfg, truth.as_deref(), shard);
    }
    let out = OutputDir::create(&a.out)?;
    let mut progress = Progress::new(cfg.pretrain + cfg.iters, a.s.quiet, "siprad");
    let res = {
        let mut obs = observer(&mut progress, cfg.pretrain);
        if series.frames.len() > 1 {
            let defoci_nm: Vec<f64> = a.defoci.iter().map(|d| d * 1e9).collect();
            ltem::reconstruct_focal_series(
                &frame_refs(&series),
                &defoci_nm,
                h,
                w,
                &mic,
                &cfg,
                &mut obs,
            )
        } else {
            ltem::reconstruct(&image, h, w, &mic, &cfg, &mut obs)
        }
    }
    .with_context(|| input.display().to_string())?;
    progress.finish();
    report_notes(&res, h, w, a.s.quiet);
    let r = Recon {
        program: "magprior ltem reconstruct",
        input: &input,
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
            "; accuracy phase {:.3} ({} input {:.3}), Bx {:.3}, By {:.3}",
            acc.phase,
            if series.frames.len() > 1 {
                "TIE"
            } else {
                "SITIE"
            },
            sc.phase,
            acc.bx,
            acc.by
        );
    }
    println!();
    println!(
        "pictures: {0}/phase.png, {0}/induction.png, {0}/image.png, {0}/loss.png",
        path.display()
    );
    Ok(())
}

/// `ltem reconstruct --ensemble K [--shard I/N]`: the members (or this share's) one after
/// another, each written as a single run is under `members/seed_S/`; then, in one process, the
/// ensemble's own outputs from those directories.
fn ensemble(
    a: &ReconCmd,
    series: &Frames,
    mic: &Microscope,
    cfg: &SipradConfig,
    truth: Option<&[f32]>,
    shard: Option<common::Shard>,
) -> Result<()> {
    let (h, w) = (series.h, series.w);
    let input = a.image.first().cloned().unwrap_or_default();
    let refs = frame_refs(series);
    let defoci_nm: Vec<f64> = a.defoci.iter().map(|d| d * 1e9).collect();
    let defoci = (refs.len() > 1).then_some(&defoci_nm[..]);
    let k = a.ensemble;
    let range = shard.map_or(0..k, |s| s.block(k));
    let out = common::job_dir(&a.out, shard)?;
    let first = SipradConfig {
        seed: ltem::member_seed(cfg.seed, range.start),
        ..cfg.clone()
    };
    let per = cfg.pretrain + cfg.iters;
    let mut progress = common::MemberProgress::new(per, k, range.start, a.s.quiet);
    let ens = ltem::reconstruct_ensemble(
        &refs,
        defoci,
        h,
        w,
        mic,
        &first,
        range.len(),
        &mut |m, s| {
            let i = match s.stage {
                Stage::Pretrain => s.iter,
                Stage::Fit => cfg.pretrain + s.iter,
            };
            progress.update(m, i, s.loss, "")
        },
    )
    .with_context(|| input.display().to_string())?;
    progress.finish();
    // the truth by its absolute path: a later `merge` may run elsewhere
    let truth_path = match &a.truth {
        Some(p) => Some(std::fs::canonicalize(p).with_context(|| p.display().to_string())?),
        None => None,
    };
    let truth = truth_path.as_deref().zip(truth);
    for (m, res) in ens.members.iter().enumerate() {
        report_notes(res, h, w, a.s.quiet);
        let seed = ltem::member_seed(first.seed, m);
        let dir = out.subdir(&format!("members/seed_{seed}"))?;
        let c = SipradConfig {
            seed,
            ..cfg.clone()
        };
        let r = Recon {
            program: "magprior ltem reconstruct --ensemble (member)",
            input: &input,
            image: &series.frames[0],
            hw: (h, w),
            args: &a.s,
            mic,
            cfg: &c,
        };
        write_recon(&dir, &r, res, truth)?;
    }
    match shard {
        Some(s) => common::finish_share(out, &a.out, s, "ltem-ensemble", k, range, "members")?,
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

/// Frames of a series with their names and the pixel size for them.
struct Frames {
    frames: Vec<Vec<f32>>,
    h: usize,
    w: usize,
    names: Vec<String>,
    scale: Option<f64>,
}

/// A series from a stack file, or from a directory of images (name order), or from a list of
/// files; sizes and calibrations must agree.
fn load_frames(paths: &[PathBuf], mic: &MicArgs, quiet: bool) -> Result<Frames> {
    let files: Vec<PathBuf> = match paths {
        [dir] if dir.is_dir() => {
            let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
                .with_context(|| dir.display().to_string())?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    let e = p
                        .extension()
                        .and_then(|e| e.to_str())
                        .unwrap_or("")
                        .to_ascii_lowercase();
                    matches!(e.as_str(), "npy" | "tif" | "tiff" | "dm3" | "dm4")
                })
                .collect();
            files.sort();
            if files.is_empty() {
                bail!(
                    "{}: no .npy, .tif or .dm3/.dm4 frames in this directory",
                    dir.display()
                );
            }
            files
        }
        _ => paths.to_vec(),
    };
    let loaded: Vec<images::Calibrated> = files
        .iter()
        .map(|f| images::load(f))
        .collect::<Result<_>>()?;
    let first = &loaded[0];
    let mut out = Frames {
        frames: Vec::new(),
        h: first.h,
        w: first.w,
        names: Vec::new(),
        scale: None,
    };
    for im in &loaded {
        check_same(&im.path, (im.h, im.w), &first.path, (first.h, first.w))?;
        let stack = im.frames.len() > 1;
        for (k, f) in im.frames.iter().enumerate() {
            out.frames.push(f.clone());
            out.names.push(if stack {
                format!("{}[{k}]", im.path.display())
            } else {
                im.path
                    .file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
            });
        }
    }
    let refs: Vec<&images::Calibrated> = loaded.iter().collect();
    out.scale = images::resolve_scale(mic.scale, mic.force_scale, &refs, quiet)?;
    Ok(out)
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
    alignment: &'static str,
}

fn series(a: SeriesArgs) -> Result<()> {
    let Frames {
        frames,
        h,
        w,
        names,
        scale,
    } = load_frames(std::slice::from_ref(&a.frames), &a.s.mic, a.s.quiet)?;
    let (mic, cfg) = a.s.config(scale, (h, w))?;
    let mode = match a.align {
        AlignArg::Running => Some(ltem::AlignReference::Running { weight: 0.3 }),
        AlignArg::First => Some(ltem::AlignReference::First),
        AlignArg::Previous => Some(ltem::AlignReference::Previous),
        AlignArg::None => None,
    };
    let (frames, shifts) = match mode {
        None => (frames, vec![None; names.len()]),
        Some(m) => {
            let sh = ltem::align_stack(&frames, h, w, m, 20)
                .with_context(|| format!("{}: drift alignment", a.frames.display()))?;
            let aligned = frames
                .iter()
                .zip(&sh)
                .map(|(f, s)| ltem::apply_shift(f, h, w, s.dy, s.dx))
                .collect::<magprior::Result<Vec<_>>>()?;
            if !a.s.quiet {
                let max = sh.iter().map(|s| s.dy.hypot(s.dx)).fold(0f64, f64::max);
                eprintln!(
                    "drift alignment ({:?}): largest shift {max:.2} px (per frame in summary.csv)",
                    a.align
                );
            }
            (aligned, sh.into_iter().map(Some).collect())
        }
    };
    for (f, n) in frames.iter().zip(&names) {
        if f.iter().map(|&v| v as f64).sum::<f64>() <= 0.0 {
            bail!("{n}: the mean intensity must be positive");
        }
    }
    let shard = common::Shard::resolve(a.shard.as_deref())?;
    let range = shard.map_or(0..frames.len(), |s| s.block(frames.len()));
    let out = common::job_dir(&a.out, shard)?;
    let mine = &frames[range.clone()];
    let total = cfg.pretrain + cfg.iters * mine.len();
    let mut progress = Progress::new(total, a.s.quiet, "series");
    let mut done = 0usize;
    let results = ltem::reconstruct_series(mine, h, w, &mic, &cfg, &mut |k, s| {
        done += 1;
        let extra = format!("frame {}/{}", range.start + k + 1, frames.len());
        progress.update(done.min(total), s.loss, &extra);
        !common::interrupted()
    })
    .with_context(|| a.frames.display().to_string())?;
    progress.finish();
    for (j, res) in results.iter().enumerate() {
        let k = range.start + j;
        report_notes(res, h, w, a.s.quiet || j > 0);
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
        let (dy, dx, peak) = shifts[k].map_or((None, None, None), |s| {
            (Some(s.dy), Some(s.dx), Some(s.peak))
        });
        common::write_json(
            &dir.join("frame.json"),
            &FrameMeta {
                frame: k,
                source: names[k].clone(),
                shift_y_px: dy,
                shift_x_px: dx,
                align_peak: peak,
            },
        )?;
    }
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
            warm_start: if shard.is_some() {
                "frame k continues from frame k-1's networks and Adam state, input = its own SITIE phase, no pretraining; the first frame of each share (--shard) starts cold"
            } else {
                "frame k > 0 continues from frame k-1's networks and Adam state, input = its own SITIE phase, no pretraining"
            },
            alignment: match a.align {
                AlignArg::None => "none",
                AlignArg::Running => "sub-pixel phase correlation against a running average (weight 0.3) of the aligned frames; frames moved by the Fourier shift theorem on a mirror-extended copy",
                AlignArg::First => "sub-pixel phase correlation against frame 0; frames moved by the Fourier shift theorem on a mirror-extended copy",
                AlignArg::Previous => "sub-pixel phase correlation against the previous frame, steps summed; frames moved by the Fourier shift theorem on a mirror-extended copy",
            },
        },
    )?;
    if let Some(s) = shard {
        let n = frames.len();
        return common::finish_share(out, &a.out, s, "ltem-series", n, range, "frames");
    }
    let n = aggregate_series(out.path())?;
    let path = out.commit()?;
    println!(
        "{}: {n} of {} frames reconstructed; summary.csv and frame_NNNN/ per frame",
        path.display(),
        frames.len()
    );
    Ok(())
}

/// Where a series frame came from (frame_NNNN/frame.json).
#[derive(Serialize)]
struct FrameMeta {
    frame: usize,
    source: String,
    shift_y_px: Option<f64>,
    shift_x_px: Option<f64>,
    align_peak: Option<f64>,
}

/// summary.csv from the frames' directories in `dir` (frame_NNNN/, in order), the same whether
/// they ran in one process or in merged shares; returns how many there are.
fn aggregate_series(dir: &Path) -> Result<usize> {
    let mut frames: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("frame_"))
        })
        .collect();
    frames.sort();
    let mut rows = Vec::new();
    for d in &frames {
        let f = common::read_json(&d.join("frame.json"))?;
        let m = common::read_json(&d.join("metrics.json"))?;
        let num = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
        let pmax = magprior::io::npy::read_npy(d.join("phase.npy"))?
            .to_vec()?
            .into_iter()
            .fold(0f32, f32::max);
        rows.push(format!(
            "{},{},{:.3},{:.3},{:.3},{:e},{},{:.4},{:.4},{:.3},{}",
            f["frame"].as_u64().unwrap_or(0),
            f["source"].as_str().unwrap_or_default(),
            num(&f["shift_y_px"]),
            num(&f["shift_x_px"]),
            num(&f["align_peak"]),
            num(&m["final_loss"]),
            m["selected_iteration"].as_u64().unwrap_or(0),
            num(&m["amp_scale"]),
            pmax,
            num(&m["seconds"]),
            m["stop"].as_str().unwrap_or_default()
        ));
    }
    common::write_csv(
        &dir.join("summary.csv"),
        "frame,source,shift_y_px,shift_x_px,align_peak,final_loss,selected_iteration,amp_scale,phase_max_rad,seconds,stop",
        rows.into_iter(),
    )?;
    Ok(frames.len())
}

/// `magprior merge`: a series' summary computed in `staging` from the frames there, reported as
/// it will lie in `dir`.
pub fn finish_series(staging: &Path, dir: &Path) -> Result<()> {
    let n = aggregate_series(staging)?;
    let meta_path = staging.join("metadata.json");
    let mut meta = common::read_json(&meta_path)?;
    meta["reconstructed"] = n.into();
    common::write_json(&meta_path, &meta)?;
    println!(
        "{}: {n} frames merged; summary.csv and frame_NNNN/ per frame",
        dir.display()
    );
    Ok(())
}
