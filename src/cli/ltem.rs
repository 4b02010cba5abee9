//! `magprior ltem ...`: simulate, forward, sitie, reconstruct (SIPRAD), series, induction.

use super::common::{self, num, select_device, DeviceArg, Progress};
use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use magprior::io::load::load_array;
use magprior::io::npy::write_npy;
use magprior::io::outdir::OutputDir;
use magprior::io::render::{self, MapKind, Panel};
use magprior::ltem::{
    self, accuracy, add_noise, induction, magnetic_phase, sitie, Accuracy, AmplitudeMode,
    LtemForward, Microscope, Selection, SipradConfig, SipradResult, SitieConfig, Stage, Stats,
    StopReason,
};
use magprior::{Rng, Tensor};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

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

/// Microscope flags shared by every LTEM subcommand. Lengths take units (4nm, -1mm); a bare
/// number is metres.
#[derive(Args, Clone, Debug)]
pub struct MicArgs {
    /// Accelerating voltage (kV).
    #[arg(long, default_value_t = 200.0)]
    pub kv: f64,
    /// Spherical aberration Cs.
    #[arg(long, value_parser = common::length, default_value = "1mm", allow_hyphen_values = true)]
    pub cs: f64,
    /// Beam divergence semi-angle (rad).
    #[arg(long, default_value_t = 0.6e-3, allow_hyphen_values = true)]
    pub theta_c: f64,
    /// Defocus spread Delta.
    #[arg(long, value_parser = common::length, default_value = "120nm", allow_hyphen_values = true)]
    pub spread: f64,
    /// Two-fold astigmatism magnitude Ca.
    #[arg(long, value_parser = common::length, default_value = "0", allow_hyphen_values = true)]
    pub ca: f64,
    /// Two-fold astigmatism orientation (degrees from +x).
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    pub phi_a: f64,
    /// Pixel size (default 4nm, or the cell size an OVF file records).
    #[arg(long, value_parser = common::positive_length, allow_hyphen_values = true)]
    pub scale: Option<f64>,
    /// Defocus; negative = underfocus (PyLorentz's sign).
    #[arg(long, value_parser = common::length, default_value = "-1mm", allow_hyphen_values = true)]
    pub defocus: f64,
    /// Objective aperture semi-angle (rad); none by default.
    #[arg(long)]
    pub aperture: Option<f64>,
    /// Padding factor of the forward model (1 = periodic; > 1 surrounds the field of view by vacuum).
    #[arg(long, default_value_t = 1)]
    pub pad: usize,
}

impl MicArgs {
    fn microscope(&self, file_scale_m: Option<f64>) -> Result<Microscope> {
        let scale = self.scale.or(file_scale_m).unwrap_or(4e-9);
        if self.pad == 0 {
            bail!("--pad must be at least 1");
        }
        let m = Microscope {
            kv: self.kv,
            cs: self.cs * 1e9,
            theta_c: self.theta_c,
            spread: self.spread * 1e9,
            ca: self.ca * 1e9,
            phi_a: self.phi_a.to_radians(),
            defocus: self.defocus * 1e9,
            scale: scale * 1e9,
            aperture: self.aperture,
        };
        m.validate().map_err(|e| anyhow!("microscope flags: {e}"))?;
        Ok(m)
    }

    fn json(&self, m: &Microscope) -> serde_json::Value {
        json!({
            "kv": m.kv, "wavelength_nm": m.wavelength(), "cs_nm": m.cs, "theta_c_rad": m.theta_c,
            "spread_nm": m.spread, "ca_nm": m.ca, "phi_a_deg": self.phi_a, "defocus_nm": m.defocus,
            "scale_nm_per_px": m.scale, "aperture_rad": m.aperture, "pad": self.pad,
        })
    }
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
    #[arg(long, default_value_t = 8.6e5)]
    ms: f64,
    #[command(flatten)]
    mic: MicArgs,
    /// Gaussian noise, std = level x mean(I) (0.5 = the papers' 50 %).
    #[arg(long, default_value_t = 0.0)]
    noise: f64,
    /// Poisson noise for this dose (electrons per nm^2).
    #[arg(long)]
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
    #[arg(long)]
    qc: Option<f64>,
    /// Mirror-symmetric extension against edge artefacts.
    #[arg(long)]
    symmetric: bool,
    /// Output phase (H, W) in rad, .npy (a PNG is written beside it).
    #[arg(long)]
    out: PathBuf,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq)]
pub enum SelectArg {
    /// The paper's rule: the lowest-loss state after --track-after iterations.
    LowestLoss,
    /// The state after the last iteration.
    Last,
    /// The lowest loss on --holdout pixels left out of the fit.
    Validation,
}

/// SIPRAD settings shared by `reconstruct` and `series`.
#[derive(Args, Clone)]
pub struct SipradArgs {
    #[command(flatten)]
    mic: MicArgs,
    /// Fitting iterations (after pretraining).
    #[arg(long, default_value_t = DEFAULT_ITERS)]
    iters: usize,
    /// Pretraining iterations on the SITIE input.
    #[arg(long, default_value_t = 200)]
    pretrain: usize,
    /// Adam learning rate (the paper's 2e-4 over-fits noisy images within ~100 iterations).
    #[arg(long, default_value_t = 5e-5)]
    lr: f64,
    /// Cumulative input noise per iteration (std, rad).
    #[arg(long, default_value_t = 1.0 / 30.0)]
    noise_frac: f64,
    /// Gaussian smoothing of the final phase (pixels).
    #[arg(long, default_value_t = 2.0)]
    sigma: f64,
    /// Which network state is returned.
    #[arg(long, value_enum, default_value_t = DEFAULT_SELECT)]
    select: SelectArg,
    /// With --select lowest-loss|validation: iterations before tracking starts.
    #[arg(long, default_value_t = 100)]
    track_after: usize,
    /// Fraction of pixels left out of the fit to validate it (--select validation; default 0.1 then).
    #[arg(long)]
    holdout: Option<f64>,
    /// Fixed amplitude map: pixels with I/mean(I) below this are contamination.
    #[arg(long)]
    amp_threshold: Option<f64>,
    /// Learn the amplitude with a second network (input: the --amp-threshold map).
    #[arg(long, requires = "amp_threshold")]
    solve_amp: bool,
    /// Mean inner potential of the contamination (V), for phi_e.
    #[arg(long, default_value_t = 20.0)]
    v0: f64,
    /// Absorption length xi, for phi_e.
    #[arg(long, value_parser = common::positive_length, default_value = "10nm")]
    xi: f64,
    /// Learning rate of the amplitude scale.
    #[arg(long, default_value_t = 0.1)]
    amp_scale_lr: f64,
    /// Tikhonov qc (1/nm) of the SITIE input (default 1/(max(H, W) scale); 0 = none).
    #[arg(long)]
    qc: Option<f64>,
    /// Periodic (not mirror-symmetric) SITIE input.
    #[arg(long)]
    periodic_input: bool,
    /// Seed of the weights and of the input noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Encoder channels per level.
    #[arg(long, value_delimiter = ',', default_value = "16,32,64,128")]
    channels: Vec<usize>,
    /// Convolution kernel size (odd).
    #[arg(long, default_value_t = 3)]
    kernel: usize,
    /// Compute device (auto: a real GPU if present, else CPU). Env: MAGPRIOR_DEVICE.
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto, env = "MAGPRIOR_DEVICE")]
    device: DeviceArg,
    /// No progress output.
    #[arg(long)]
    quiet: bool,
}

/// Default fitting iterations (see the README: chosen from accuracy-vs-iteration measurements).
const DEFAULT_ITERS: usize = 400;
/// Default selection rule.
const DEFAULT_SELECT: SelectArg = SelectArg::Validation;

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

/// An (H, W) map from a file (an (1, H, W) array is accepted).
fn load_map(path: &Path) -> Result<(Vec<f32>, usize, usize)> {
    let t = load_array(path)?.tensor;
    match t.shape() {
        [h, w] | [1, h, w] if *h >= 2 && *w >= 2 => Ok((t.to_vec()?, *h, *w)),
        s => bail!(
            "{}: expected an (H, W) image with H, W >= 2, got shape {s:?}",
            path.display()
        ),
    }
}

fn check_same(path: &Path, hw: (usize, usize), other: &Path, ohw: (usize, usize)) -> Result<()> {
    if hw != ohw {
        bail!(
            "{}: is {}x{} but {} is {}x{}",
            path.display(),
            hw.0,
            hw.1,
            other.display(),
            ohw.0,
            ohw.1
        );
    }
    Ok(())
}

fn png_path(out: &Path) -> PathBuf {
    out.with_extension("png")
}

fn write_phase_png(path: &Path, phase: &[f32], h: usize, w: usize, title: &str) -> Result<()> {
    render::write_sequential_map(path, phase, h, w, title, "rad", 1.0)?;
    Ok(())
}

fn write_induction_png(path: &Path, b: &[f32], h: usize, w: usize) -> Result<()> {
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
    if !(a.ms.is_finite() && a.ms > 0.0) {
        bail!("--ms must be positive, got {}", a.ms);
    }
    if !(a.noise.is_finite() && a.noise >= 0.0) {
        bail!("--noise must be >= 0, got {}", a.noise);
    }
    if let Some(d) = a.dose {
        if !(d.is_finite() && d > 0.0) {
            bail!("--dose must be positive, got {d}");
        }
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
    let fwd = LtemForward::new(h, w, &mic, a.mic.pad)?;
    let clean = fwd.image_of(&phase, None)?;
    let mut image = clean.clone();
    add_noise(
        &mut image,
        a.noise,
        a.dose,
        mic.scale,
        &mut Rng::new(a.seed),
    )?;
    let out = OutputDir::create(&a.out)?;
    write_npy(
        out.file("phase.npy"),
        &Tensor::from_shape_vec(&[h, w], phase.clone())?,
    )?;
    write_npy(
        out.file("image.npy"),
        &Tensor::from_shape_vec(&[h, w], image.clone())?,
    )?;
    write_npy(
        out.file("image_clean.npy"),
        &Tensor::from_shape_vec(&[h, w], clean)?,
    )?;
    write_npy(
        out.file("induction.npy"),
        &Tensor::from_shape_vec(&[2, h, w], b.clone())?,
    )?;
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
        &json!({
            "program": "magprior ltem simulate", "version": env!("CARGO_PKG_VERSION"),
            "magnetization": a.magnetization.display().to_string(), "shape": [h, w],
            "ovf_unit_vectors_times_ms": is_ovf, "ms_A_per_m": a.ms, "thickness_nm": t_nm,
            "microscope": a.mic.json(&mic), "noise": a.noise, "dose_e_per_nm2": a.dose, "seed": a.seed,
            "phase_formula": "phi_m(k) = -i (pi mu0 t / Phi0) (kx My - ky Mx) / k^2, Phi0 = h/(2e), phi(0) = 0, then min-subtracted",
            "units": {"phase.npy": "rad (H, W)", "induction.npy": "T m (2, H, W): (Bx t, By t)",
                      "image.npy": "intensity, incident beam = 1 (H, W)", "image_clean.npy": "noise-free image"},
            "orientation": "rows = y index (OVF files: rows in file order, y increasing with the row), columns = x",
        }),
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
    let (phase, h, w) = load_map(&a.phase)?;
    let amp = match &a.amplitude {
        Some(p) => {
            let (v, ah, aw) = load_map(p)?;
            check_same(p, (ah, aw), &a.phase, (h, w))?;
            Some(v)
        }
        None => None,
    };
    let mic = a.mic.microscope(None)?;
    let img = LtemForward::new(h, w, &mic, a.mic.pad)?.image_of(&phase, amp.as_deref())?;
    write_npy(&a.out, &Tensor::from_shape_vec(&[h, w], img)?)?;
    eprintln!(
        "wrote {} ({h}x{w} image, defocus {} nm)",
        a.out.display(),
        mic.defocus
    );
    Ok(())
}

fn sitie_cmd(a: SitieArgs) -> Result<()> {
    let (img, h, w) = load_map(&a.image)?;
    let mic = a.mic.microscope(None)?;
    if mic.defocus == 0.0 {
        bail!("--defocus must be non-zero for SITIE (an in-focus image has no phase contrast)");
    }
    if let Some(q) = a.qc {
        if !(q.is_finite() && q >= 0.0) {
            bail!("--qc must be >= 0, got {q}");
        }
    }
    let cfg = SitieConfig {
        qc: a.qc,
        symmetric: a.symmetric,
    };
    let phase = sitie(&img, h, w, &mic, &cfg).with_context(|| a.image.display().to_string())?;
    write_npy(&a.out, &Tensor::from_shape_vec(&[h, w], phase.clone())?)?;
    write_phase_png(&png_path(&a.out), &phase, h, w, "SITIE phase")?;
    eprintln!("wrote {} ({h}x{w} SITIE phase, rad)", a.out.display());
    Ok(())
}

fn induction_cmd(a: InductionArgs) -> Result<()> {
    let (phase, h, w) = load_map(&a.phase)?;
    let b = induction(&phase, h, w, a.scale * 1e9)?;
    write_npy(&a.out, &Tensor::from_shape_vec(&[2, h, w], b.clone())?)?;
    write_induction_png(&png_path(&a.out), &b, h, w)?;
    eprintln!("wrote {} ((Bx t, By t) in T m, {h}x{w})", a.out.display());
    Ok(())
}

impl SipradArgs {
    fn config(&self) -> Result<(Microscope, SipradConfig)> {
        let mic = self.mic.microscope(None)?;
        if mic.defocus == 0.0 {
            bail!("--defocus must be non-zero (the SITIE input needs phase contrast)");
        }
        for (name, v, pos) in [
            ("--lr", self.lr, true),
            ("--noise-frac", self.noise_frac, false),
            ("--sigma", self.sigma, false),
            ("--amp-scale-lr", self.amp_scale_lr, false),
            ("--v0", self.v0, false),
        ] {
            if !v.is_finite() || v < 0.0 || (pos && v == 0.0) {
                bail!(
                    "{name} must be {}, got {v}",
                    if pos { "positive" } else { ">= 0" }
                );
            }
        }
        if self.iters == 0 {
            bail!("--iters must be at least 1");
        }
        if self.kernel.is_multiple_of(2) {
            bail!("--kernel must be odd, got {}", self.kernel);
        }
        if self.channels.is_empty() || self.channels.contains(&0) {
            bail!("--channels must be positive numbers");
        }
        if let Some(t) = self.amp_threshold {
            if !(t.is_finite() && t > 0.0) {
                bail!(
                    "--amp-threshold must be positive (a fraction of the mean intensity), got {t}"
                );
            }
        }
        if let Some(q) = self.qc {
            if !(q.is_finite() && q >= 0.0) {
                bail!("--qc must be >= 0, got {q}");
            }
        }
        let holdout = match (self.select, self.holdout) {
            (_, Some(f)) if !(0.0..0.9).contains(&f) => {
                bail!("--holdout must be in [0, 0.9), got {f}")
            }
            (SelectArg::Validation, Some(0.0)) => bail!("--select validation needs --holdout > 0"),
            (SelectArg::Validation, None) => 0.1,
            (_, f) => f.unwrap_or(0.0),
        };
        let amplitude = match (self.amp_threshold, self.solve_amp) {
            (None, _) => AmplitudeMode::Uniform,
            (Some(threshold), false) => AmplitudeMode::Fixed { threshold },
            (Some(threshold), true) => AmplitudeMode::Learned { threshold },
        };
        let cfg = SipradConfig {
            iters: self.iters,
            pretrain: self.pretrain,
            lr: self.lr,
            noise_frac: self.noise_frac,
            sigma: self.sigma,
            selection: match self.select {
                SelectArg::LowestLoss => Selection::LowestLoss {
                    after: self.track_after,
                },
                SelectArg::Last => Selection::Last,
                SelectArg::Validation => Selection::Validation {
                    after: self.track_after,
                },
            },
            holdout,
            amp_scale_lr: self.amp_scale_lr,
            amplitude,
            v0: self.v0,
            xi: self.xi * 1e9,
            sitie: SitieConfig {
                qc: self.qc,
                symmetric: !self.periodic_input,
            },
            seed: self.seed,
            channels: self.channels.clone(),
            kernel: self.kernel,
            pad: self.mic.pad,
            device: select_device(self.device, self.quiet)?,
            ..Default::default()
        };
        Ok((mic, cfg))
    }
}

fn stop_text(s: &StopReason) -> String {
    match s {
        StopReason::Completed => "completed".into(),
        StopReason::Interrupted => "interrupted".into(),
        StopReason::Diverged(i) => format!("diverged at iteration {i}"),
    }
}

/// Observer with progress display and Ctrl-C.
fn observer<'a>(progress: &'a mut Progress, pretrain: usize) -> impl FnMut(&Stats) -> bool + 'a {
    let flag = common::interrupt_flag();
    move |s: &Stats| {
        let i = if s.stage == Stage::Pretrain {
            s.iter
        } else {
            pretrain + s.iter
        };
        let extra = if s.stage == Stage::Pretrain {
            "pretraining".to_string()
        } else {
            format!("scale {:.3}", s.amp_scale)
        };
        progress.update(i, s.loss, &extra);
        !flag.load(Ordering::SeqCst)
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

fn accuracy_json(a: &Accuracy) -> serde_json::Value {
    json!({"phase": num(a.phase), "bx": num(a.bx), "by": num(a.by), "ssim": num(a.ssim), "border_px": a.border})
}

#[allow(clippy::too_many_arguments)]
fn write_recon(
    dir: &Path,
    program: &str,
    input: &Path,
    image: &[f32],
    h: usize,
    w: usize,
    s: &SipradArgs,
    mic: &Microscope,
    cfg: &SipradConfig,
    res: &SipradResult,
    truth: Option<(&Path, &[f32])>,
) -> Result<()> {
    let f = |n: &str| dir.join(n);
    let b = induction(&res.phase, h, w, mic.scale)?;
    write_npy(
        f("phase.npy"),
        &Tensor::from_shape_vec(&[h, w], res.phase.clone())?,
    )?;
    write_npy(
        f("phase_raw.npy"),
        &Tensor::from_shape_vec(&[h, w], res.phase_raw.clone())?,
    )?;
    write_npy(
        f("sitie.npy"),
        &Tensor::from_shape_vec(&[h, w], res.sitie.clone())?,
    )?;
    write_npy(
        f("induction.npy"),
        &Tensor::from_shape_vec(&[2, h, w], b.clone())?,
    )?;
    write_npy(
        f("image_model.npy"),
        &Tensor::from_shape_vec(&[h, w], res.image_model.clone())?,
    )?;
    if let Some(a) = &res.amplitude {
        write_npy(
            f("amplitude.npy"),
            &Tensor::from_shape_vec(&[h, w], a.clone())?,
        )?;
        render::write_sequential_map(&f("amplitude.png"), a, h, w, "amplitude", "", 1.0)?;
    }
    let rows = res.pretrain_history.iter().chain(&res.history).map(|s| {
        let stage = if s.stage == Stage::Pretrain {
            "pretrain"
        } else {
            "fit"
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
    let mut metrics = json!({
        "final_loss": num(res.history.last().map_or(f64::NAN, |s| s.loss)),
        "selected_loss": num(res.history.iter().find(|s| s.iter == res.selected_iter).map_or(f64::NAN, |s| s.loss)),
        "selected_iteration": res.selected_iter,
        "loss_definition": "mean((I_model - I/mean(I))^2): MSE of the image normalised to mean 1",
        "iterations": iters,
        "pretrain_iterations": res.pretrain_history.len(),
        "seconds": num(res.seconds),
        "seconds_per_iteration": num(res.seconds / iters.max(1) as f64),
        "amp_scale": num(res.amp_scale),
        "stop": stop_text(&res.stop),
    });
    if let Some((tp, t)) = truth {
        let crop = accuracy(&res.phase, t, h, w, mic.scale, true)?;
        let full = accuracy(&res.phase, t, h, w, mic.scale, false)?;
        let sc = accuracy(&res.sitie, t, h, w, mic.scale, true)?;
        metrics["truth"] = json!(tp.display().to_string());
        metrics["accuracy"] = accuracy_json(&crop);
        metrics["accuracy_full_frame"] = accuracy_json(&full);
        metrics["sitie_input_accuracy"] = accuracy_json(&sc);
        metrics["accuracy_definition"] = json!("Pearson correlation with the truth (phase, Bx t, By t), border of n/16 px ignored; SSIM of the phase");
    }
    common::write_json(&f("metrics.json"), &metrics)?;
    let amp = match cfg.amplitude {
        AmplitudeMode::Uniform => json!("uniform"),
        AmplitudeMode::Fixed { threshold } => json!({"fixed_threshold": threshold}),
        AmplitudeMode::Learned { threshold } => {
            json!({"learned_threshold": threshold, "constraint_every": cfg.constraint_every, "constraint_refit": cfg.constraint_refit})
        }
    };
    let meta = json!({
        "program": program, "version": env!("CARGO_PKG_VERSION"),
        "image": input.display().to_string(), "shape": [h, w],
        "network_size": [res.network_size.0, res.network_size.1],
        "microscope": s.mic.json(mic),
        "iterations": cfg.iters, "pretrain": cfg.pretrain, "lr": cfg.lr, "optimizer": "Adam (betas 0.9, 0.999; eps 1e-8; no weight decay)",
        "noise_frac": cfg.noise_frac, "sigma_px": cfg.sigma,
        "selection": match cfg.selection { Selection::LowestLoss { after } => json!({"lowest_loss_after": after}), Selection::Validation { after } => json!({"lowest_validation_loss_after": after, "holdout": cfg.holdout}), Selection::Last => json!("last") },
        "amp_scale_lr": cfg.amp_scale_lr, "amplitude": amp, "v0_V": cfg.v0, "xi_nm": cfg.xi,
        "sitie_input": {"qc_per_nm": cfg.sitie.qc, "symmetric": cfg.sitie.symmetric},
        "seed": cfg.seed, "channels": cfg.channels, "kernel": cfg.kernel,
        "device": cfg.device.name(), "adapter": cfg.device.adapter().map(|a| a.to_string()),
        "units": {
            "phase.npy": "rad (H, W), selected state, Gaussian-smoothed, minimum 0",
            "phase_raw.npy": "rad (H, W), network output before smoothing",
            "sitie.npy": "rad (H, W), the SITIE input",
            "induction.npy": "T m (2, H, W): (Bx t, By t) = (Phi0/pi) (-dphi/dy, dphi/dx)",
            "image_model.npy": "modelled image in the input's intensity units (H, W)",
            "amplitude.npy": "exit-wave amplitude without the learned scale (H, W)",
        },
    });
    common::write_json(&f("metadata.json"), &meta)?;
    write_phase_png(&f("phase.png"), &res.phase, h, w, "SIPRAD phase")?;
    write_induction_png(&f("induction.png"), &b, h, w)?;
    let (lo, hi) = image
        .iter()
        .chain(&res.image_model)
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let _ = (lo, hi);
    render::write_panels(
        &f("image.png"),
        &[
            Panel {
                data: image,
                h,
                w,
                title: "measured",
                unit: "",
                scale: 1.0,
                kind: MapKind::Sequential,
                limit: None,
            },
            Panel {
                data: &res.image_model,
                h,
                w,
                title: "model",
                unit: "",
                scale: 1.0,
                kind: MapKind::Sequential,
                limit: None,
            },
        ],
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

fn reconstruct(a: ReconCmd) -> Result<()> {
    let (image, h, w) = load_map(&a.image)?;
    let (mic, cfg) = a.s.config()?;
    let truth = match &a.truth {
        Some(p) => {
            let (t, th, tw) = load_map(p)?;
            check_same(p, (th, tw), &a.image, (h, w))?;
            Some(t)
        }
        None => None,
    };
    if image.iter().map(|&v| v as f64).sum::<f64>() <= 0.0 {
        bail!("{}: the mean intensity must be positive", a.image.display());
    }
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
    let t = a.truth.as_deref().zip(truth.as_deref());
    write_recon(
        out.path(),
        "magprior ltem reconstruct",
        &a.image,
        &image,
        h,
        w,
        &a.s,
        &mic,
        &cfg,
        &res,
        t,
    )?;
    let path = out.commit()?;
    print!(
        "{}: {} iterations ({}), selected iteration {}, loss {:.4e}, {:.3} s/iteration",
        path.display(),
        res.history.len(),
        stop_text(&res.stop),
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
            let (v, fh, fw) = load_map(f)?;
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
    let flag = common::interrupt_flag();
    let mut done = 0usize;
    let results = ltem::reconstruct_series(&frames, h, w, &mic, &cfg, &mut |k, s| {
        done += 1;
        let extra = format!("frame {}/{}", k + 1, frames.len());
        progress.update(done.min(total), s.loss, &extra);
        !flag.load(Ordering::SeqCst)
    })
    .with_context(|| a.frames.display().to_string())?;
    progress.finish();
    let mut rows = Vec::new();
    for (k, res) in results.iter().enumerate() {
        report_notes(res, h, w, a.s.quiet || k > 0);
        let dir = out.subdir(&format!("frame_{k:04}"))?;
        write_recon(
            &dir,
            "magprior ltem series",
            Path::new(&names[k]),
            &frames[k],
            h,
            w,
            &a.s,
            &mic,
            &cfg,
            res,
            None,
        )?;
        let pmax = res.phase.iter().copied().fold(0f32, f32::max);
        rows.push(format!(
            "{k},{},{:e},{},{:.4},{:.4},{:.3},{}",
            names[k],
            res.history.last().map_or(f64::NAN, |s| s.loss),
            res.selected_iter,
            res.amp_scale,
            pmax,
            res.seconds,
            stop_text(&res.stop)
        ));
    }
    common::write_csv(
        &out.file("summary.csv"),
        "frame,source,final_loss,selected_iteration,amp_scale,phase_max_rad,seconds,stop",
        rows.into_iter(),
    )?;
    common::write_json(
        &out.file("metadata.json"),
        &json!({
            "program": "magprior ltem series", "version": env!("CARGO_PKG_VERSION"),
            "frames": a.frames.display().to_string(), "count": frames.len(), "reconstructed": results.len(),
            "shape": [h, w], "device": cfg.device.name(), "adapter": cfg.device.adapter().map(|a| a.to_string()),
            "warm_start": "frame k > 0 continues from frame k-1's networks and Adam state, input = its own SITIE phase, no pretraining",
        }),
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
