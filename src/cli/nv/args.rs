//! The flags of `magprior nv ...`, and their translation into the library's settings.

use crate::cli::common::{self, DeviceArg};
use anyhow::{anyhow, Result};
use clap::{Args, ValueEnum};
use magprior::nv::{mask, MaskSpec, NvGeometry, NvReconConfig, NvTarget, Preset};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Geometry flags shared by every NV subcommand. Lengths take units (5nm, 0.05um); a bare
/// number is metres.
#[derive(Args, Clone, Debug)]
pub struct GeomArgs {
    /// Pixel size (required unless the input file records it, as OVF does).
    #[arg(long, value_parser = common::positive_length, allow_hyphen_values = true)]
    pub pixel: Option<f64>,
    /// Film thickness.
    #[arg(long, value_parser = common::positive_length, default_value = "20nm", allow_hyphen_values = true)]
    pub thickness: f64,
    /// Sensor height above the film's top surface.
    #[arg(long, value_parser = common::nonneg_length, default_value = "50nm", allow_hyphen_values = true)]
    pub standoff: f64,
    /// NV axis polar angle from the sample normal (degrees).
    #[arg(long, default_value_t = 54.75, allow_hyphen_values = true)]
    pub theta: f64,
    /// NV axis azimuth from +x (degrees).
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    pub phi: f64,
    /// Zero-padding factor before the FFT.
    #[arg(long, default_value_t = 2, value_parser = common::at_least_one)]
    pub pad: usize,
    /// Smooth low-pass 1/(1+(k/kc)^4) on model and data, kc in rad/m (off by default).
    #[arg(long, value_parser = common::positive)]
    pub cutoff_k: Option<f64>,
}

impl GeomArgs {
    /// The geometry, the pixel from the flag or else from the file (`what`).
    pub fn geometry(&self, file_pixel: Option<f64>, what: &Path) -> Result<NvGeometry> {
        let pixel = self.pixel.or(file_pixel).ok_or_else(|| {
            anyhow!(
                "--pixel is required for {} (it does not record a cell size)",
                what.display()
            )
        })?;
        let g = NvGeometry {
            pixel,
            thickness: self.thickness,
            standoff: self.standoff,
            theta_deg: self.theta,
            phi_deg: self.phi,
            pad: self.pad,
            cutoff_k: self.cutoff_k,
        };
        g.validate()?;
        Ok(g)
    }
}

/// `--mask-preset`.
#[derive(Clone, Copy, Debug, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PresetArg {
    /// Four flux-closure domains.
    Landau,
    /// Uniform along --mask-angle.
    Dipole,
    /// Both in-plane components free.
    None,
}

/// `--chirality` of the Landau preset.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Chirality {
    /// M along (-y, x).
    Ccw,
    /// M along (y, -x).
    Cw,
}

/// `--target`.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetArg {
    /// The measured B_NV.
    Bnv,
    /// The three deprojected components.
    Deprojected,
}

/// Everything a reconstruction needs besides the output directory.
#[derive(Args, Clone)]
pub struct ReconArgs {
    /// Measured B_NV map (H, W) in tesla: .npy or .tif.
    #[arg(long)]
    pub bnv: PathBuf,
    #[command(flatten)]
    pub geom: GeomArgs,
    /// Saturation magnetisation (A/m).
    #[arg(long, default_value_t = 8.6e5, value_parser = common::positive)]
    pub ms: f64,
    /// Mask file: .npy (2|3, H, W) signed per component, or an (H, W) support (.npy/.png/.tif)
    /// used with --mask-preset.
    #[arg(long, conflicts_with = "support")]
    pub mask: Option<PathBuf>,
    /// Support: a file (.npy/.png/.tif, > 0.5 inside), `ellipse:RX,RY[,DEG]` or `rect:AX,AY`
    /// (semi-axes with units, centred in the map).
    #[arg(long)]
    pub support: Option<String>,
    /// Pattern inside the support.
    #[arg(long, value_enum, default_value_t = PresetArg::Landau)]
    pub mask_preset: PresetArg,
    /// Rotation of the pattern and its vectors (degrees, from +x towards +y).
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    pub mask_angle: f64,
    /// Landau circulation: ccw = M along (-y, x).
    #[arg(long, value_enum, default_value_t = Chirality::Ccw)]
    pub chirality: Chirality,
    /// Gaussian blur of the mask edges (pixels).
    #[arg(long, default_value_t = 0.0, value_parser = common::nonneg)]
    pub mask_blur: f64,
    /// Also fit Mz (three output components).
    #[arg(long)]
    pub with_mz: bool,
    /// Iterations.
    #[arg(long, default_value_t = 4000, value_parser = common::at_least_one)]
    pub iters: usize,
    /// AdamW learning rate (paper: 7.5e-4 Landau, 1e-4 dipole).
    #[arg(long, default_value_t = 7.5e-4, value_parser = common::positive)]
    pub lr: f64,
    /// AdamW weight decay.
    #[arg(long, default_value_t = 0.01, value_parser = common::nonneg)]
    pub weight_decay: f64,
    /// Seed of the weights and of the noise input.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Encoder channels per level.
    #[arg(long, value_delimiter = ',', default_value = "16,32", value_parser = common::at_least_one)]
    pub channels: Vec<usize>,
    /// Convolution kernel size (odd).
    #[arg(long, default_value_t = 5, value_parser = common::odd)]
    pub kernel: usize,
    /// Loss on B_NV or on the three deprojected components.
    #[arg(long, value_enum, default_value_t = TargetArg::Bnv)]
    pub target: TargetArg,
    /// Train the standoff too (reported in metrics.json).
    #[arg(long)]
    pub fit_standoff: bool,
    /// Learning rate of the standoff (nm per step scale).
    #[arg(long, default_value_t = 0.2, value_parser = common::positive)]
    pub standoff_lr: f64,
    /// Compute device (auto: a real GPU if present, else CPU). Env: MAGPRIOR_DEVICE.
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto, env = "MAGPRIOR_DEVICE")]
    pub device: DeviceArg,
    /// No progress output.
    #[arg(long)]
    pub quiet: bool,
}

impl ReconArgs {
    /// How masks are generated inside a support, rotated by `angle`.
    pub fn mask_spec(&self, angle: f64) -> MaskSpec {
        MaskSpec {
            preset: match self.mask_preset {
                PresetArg::Landau => Preset::Landau {
                    ccw: self.chirality == Chirality::Ccw,
                },
                PresetArg::Dipole => Preset::Dipole,
                PresetArg::None => Preset::None,
            },
            angle_deg: angle,
            with_mz: self.with_mz,
            blur: self.mask_blur,
        }
    }

    /// The library's settings for one run.
    pub fn config(&self, geom: &NvGeometry, device: magprior::Device) -> NvReconConfig {
        NvReconConfig {
            geom: geom.clone(),
            ms: self.ms,
            iters: self.iters,
            lr: self.lr,
            weight_decay: self.weight_decay,
            seed: self.seed,
            channels: self.channels.clone(),
            kernel: self.kernel,
            target: match self.target {
                TargetArg::Bnv => NvTarget::Bnv,
                TargetArg::Deprojected => NvTarget::Deprojected,
            },
            fit_standoff: self.fit_standoff,
            standoff_lr: self.standoff_lr,
            device,
            ..Default::default()
        }
    }
}

/// A loaded reconstruction problem: the map and where its mask comes from.
pub struct Problem {
    pub bnv: Vec<f32>,
    pub h: usize,
    pub w: usize,
    pub geom: NvGeometry,
    pub masks: mask::MaskFile,
}

impl Problem {
    /// Reads the map and the mask or support the flags name.
    pub fn load(a: &ReconArgs) -> Result<Problem> {
        let (bnv, h, w) = common::load_map(&a.bnv, 1)?;
        let geom = a.geom.geometry(None, &a.bnv)?;
        let from_file = |p: &Path| -> Result<mask::MaskFile> {
            let t = magprior::io::load::load_array(p)?.tensor;
            Ok(mask::mask_from_array(p, t.to_vec()?, t.shape(), h, w)?)
        };
        let masks = match (&a.mask, &a.support) {
            (Some(p), _) => from_file(p)?,
            (None, Some(spec)) => match mask::parse_support_shape(spec, h, w, geom.pixel)? {
                Some(s) => mask::MaskFile::Support(s),
                None => match from_file(Path::new(spec))? {
                    mask::MaskFile::Support(s) => mask::MaskFile::Support(s),
                    mask::MaskFile::Mask(_) => anyhow::bail!(
                        "{spec}: a support must be (H, W); give a (2|3, H, W) mask with --mask"
                    ),
                },
            },
            (None, None) => {
                anyhow::bail!("give --mask FILE or --support (FILE | ellipse:RX,RY | rect:AX,AY)")
            }
        };
        Ok(Problem {
            bnv,
            h,
            w,
            geom,
            masks,
        })
    }

    /// The mask for a run with the pattern rotated by `angle` (a mask file is used as given).
    pub fn mask(&self, a: &ReconArgs, angle: f64) -> Result<mask::Mask> {
        Ok(match &self.masks {
            mask::MaskFile::Mask(m) if a.mask_blur > 0.0 => m.clone().blurred(a.mask_blur),
            mask::MaskFile::Mask(m) => m.clone(),
            mask::MaskFile::Support(s) => a.mask_spec(angle).build(s, self.h, self.w)?,
        })
    }
}
