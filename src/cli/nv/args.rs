//! The flags of `magprior nv ...`, and their translation into the library's settings.

use crate::cli::common::{self, DeviceArg};
use anyhow::{anyhow, Result};
use clap::{Args, ValueEnum};
use magprior::nv::{
    mask, AutoSupport, DirectionSpec, EnergyConfig, MaskSpec, Material, ModelBackground,
    NvGeometry, NvModel, NvReconConfig, NvTarget, Preset, SupportFrom, UnitParametrisation,
};
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
    #[arg(long = "pad", id = "nv_pad", default_value_t = 2, value_parser = common::at_least_one)]
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
    /// Tangential about the support's centre (with --with-mz: a vortex core).
    Vortex,
    /// Both in-plane components free (the default: nothing assumed about the texture).
    None,
}

/// `--model`.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelArg {
    /// The paper's NV-DIP: M = Ms tanh(net(z)) mask.
    Tanh,
    /// M = Ms tanh(net(z)) support u, one direction u (--direction).
    Direction,
    /// |M| = Ms in the support with a micromagnetic energy prior (--exchange, --ku, --dmi).
    Energy,
}

/// `--background`.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackgroundArg {
    /// None (synthetic maps).
    None,
    /// A constant offset.
    Offset,
    /// An offset and a linear plane.
    Plane,
    /// A polynomial in x and y of total degree --background-degree (long-wavelength drifts).
    Poly,
}

/// `--ms`: a value in A/m or `auto`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MsArg {
    /// Given (A/m).
    Value(f64),
    /// Chosen from a classical inversion of the data.
    Auto,
}

/// Parses `--ms`.
pub fn parse_ms(s: &str) -> std::result::Result<MsArg, String> {
    if s.eq_ignore_ascii_case("auto") {
        Ok(MsArg::Auto)
    } else {
        common::positive(s).map(MsArg::Value)
    }
}

/// Parses `--direction`: `THETA,PHI` in degrees or `fit` / `fit:THETA,PHI`.
pub fn parse_direction(s: &str) -> std::result::Result<DirectionSpec, String> {
    let angles = |t: &str| -> std::result::Result<(f64, f64), String> {
        let v: Vec<&str> = t.split(',').collect();
        match v.as_slice() {
            [a, b] => Ok((common::number(a.trim())?, common::number(b.trim())?)),
            _ => Err(format!(
                "'{s}': expected THETA,PHI (degrees), fit or fit:THETA,PHI"
            )),
        }
    };
    if s.eq_ignore_ascii_case("fit") {
        Ok(DirectionSpec::Fit { start: None })
    } else if let Some(rest) = s.strip_prefix("fit:") {
        Ok(DirectionSpec::Fit {
            start: Some(angles(rest)?),
        })
    } else {
        let (theta_deg, phi_deg) = angles(s)?;
        Ok(DirectionSpec::Given { theta_deg, phi_deg })
    }
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
    /// Saturation magnetisation (A/m): the output's bound (tanh, direction) or its magnitude
    /// (energy); `auto` chooses it from a classical inversion of the data (and the energy
    /// model then fits it).
    #[arg(long, default_value = "8.6e5", value_parser = parse_ms)]
    pub ms: MsArg,
    /// Magnetisation model.
    #[arg(long, value_enum, default_value_t = ModelArg::Tanh)]
    pub model: ModelArg,
    /// Direction of --model direction: THETA,PHI (degrees, polar from the normal, azimuth
    /// from +x), `fit` (trained from the best direction of a scan of classical inversions) or
    /// fit:THETA,PHI (trained from there).
    #[arg(long, value_parser = parse_direction, allow_hyphen_values = true)]
    pub direction: Option<DirectionSpec>,
    /// Background in B_NV fitted with the magnetisation (measured maps carry offsets and
    /// tilts; `none` for synthetic maps).
    #[arg(long, value_enum, default_value_t = BackgroundArg::Plane)]
    pub background: BackgroundArg,
    /// Total degree of `--background poly` (1 to 10).
    #[arg(long, default_value_t = 3)]
    pub background_degree: usize,
    /// Noise level of the map (T) for chi^2 and the energy weight, or `map`: a per-pixel noise
    /// map estimated from the map (31-px windows) that weights the fit and chi^2 (for noise that
    /// is not stationary, e.g. scans noisier towards their corners); default: one level
    /// estimated from the map's pixel differences.
    #[arg(long, value_parser = noise_arg)]
    pub noise: Option<NoiseArg>,
    /// Leave NaN / inf pixels (scan dropouts) out of the loss (without it they are an error).
    #[arg(long)]
    pub ignore_nan: bool,
    /// Train the NV axis angles (--theta, --phi as the start).
    #[arg(long)]
    pub fit_axis: bool,
    /// Exchange stiffness of the energy prior (J/m; Permalloy 1.3e-11).
    #[arg(long, default_value_t = 1.3e-11, value_parser = common::nonneg)]
    pub exchange: f64,
    /// Uniaxial anisotropy of the energy prior (J/m^3; > 0 easy axis).
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    pub ku: f64,
    /// Anisotropy axis (x,y,z).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0,0,1",
        allow_hyphen_values = true,
        num_args = 3
    )]
    pub ku_axis: Vec<f64>,
    /// Interfacial DMI of the energy prior (J/m^2).
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    pub dmi: f64,
    /// Fixed weight of the energy prior (default: chosen by the discrepancy principle, chi^2
    /// per pixel ~ 1 at the noise level).
    #[arg(long, value_parser = common::positive)]
    pub lambda: Option<f64>,
    /// Iterations of each of the energy model's starts (four uniform, two vortices, two vortex pairs, one
    /// random) before the lowest objective is continued.
    #[arg(long, default_value_t = 300, value_parser = common::at_least_one)]
    pub start_iters: usize,
    /// The energy model's unit vectors from the DIP network instead of trained directly.
    #[arg(long)]
    pub energy_network: bool,

    /// Mask file: .npy (2|3, H, W) signed per component, or an (H, W) support (.npy/.png/.tif)
    /// used with --mask-preset.
    #[arg(long, conflicts_with = "support")]
    pub mask: Option<PathBuf>,
    /// Support: a file (.npy/.png/.tif, > 0.5 inside), `ellipse:RX,RY[,DEG]` or `rect:AX,AY`
    /// (semi-axes with units, centred in the map), or `auto` (from the data: Otsu's threshold
    /// of the classical inversion along --direction THETA,PHI when given, else of the
    /// inversion along the direction that explains the map best (`auto:scan`);
    /// `auto:gradient` thresholds the field's gradient, `auto:inversion` the inversion along
    /// --direction or z; saved as support.png).
    #[arg(long)]
    pub support: Option<String>,
    /// Pattern inside the support (tanh model). `none` (the default) assumes nothing about
    /// the texture; the others constrain each pixel's direction.
    #[arg(long, value_enum, default_value_t = PresetArg::None)]
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
                PresetArg::Vortex => Preset::Vortex {
                    ccw: self.chirality == Chirality::Ccw,
                },
                PresetArg::None => Preset::None,
            },
            angle_deg: angle,
            with_mz: self.with_mz,
            blur: self.mask_blur,
        }
    }

    /// The library's settings for one run.
    pub fn config(&self, geom: &NvGeometry, device: magprior::Device) -> Result<NvReconConfig> {
        let ms = match self.ms {
            MsArg::Value(v) => v,
            MsArg::Auto => 8.6e5,
        };
        let model = match self.model {
            ModelArg::Tanh => {
                if self.direction.is_some() {
                    anyhow::bail!("--direction needs --model direction");
                }
                NvModel::Tanh
            }
            ModelArg::Direction => NvModel::Direction(self.direction.ok_or_else(|| {
                anyhow!("--model direction needs --direction THETA,PHI or --direction fit")
            })?),
            ModelArg::Energy => NvModel::Energy(EnergyConfig {
                material: Material {
                    ms,
                    a_ex: self.exchange,
                    ku: self.ku,
                    axis: [self.ku_axis[0], self.ku_axis[1], self.ku_axis[2]],
                    dmi: self.dmi,
                },
                lambda: self.lambda,
                start_iters: self.start_iters,
                parametrisation: if self.energy_network {
                    UnitParametrisation::Network
                } else {
                    UnitParametrisation::Direct
                },
                ..Default::default()
            }),
        };
        if self.model != ModelArg::Energy
            && (self.lambda.is_some() || self.energy_network || self.ku != 0.0 || self.dmi != 0.0)
        {
            anyhow::bail!("--lambda, --energy-network, --ku and --dmi belong to --model energy");
        }
        Ok(NvReconConfig {
            geom: geom.clone(),
            ms,
            ms_auto: self.ms == MsArg::Auto,
            model,
            background: match self.background {
                BackgroundArg::None => ModelBackground::None,
                BackgroundArg::Offset => ModelBackground::Offset,
                BackgroundArg::Plane => ModelBackground::Plane,
                BackgroundArg::Poly => ModelBackground::Poly(self.background_degree),
            },
            noise: match self.noise {
                Some(NoiseArg::Level(s)) => Some(s),
                _ => None,
            },
            noise_map: self.noise == Some(NoiseArg::Map),
            ignore_nan: self.ignore_nan,
            fit_axis: self.fit_axis,
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
        })
    }
}

/// A loaded reconstruction problem: the map and where its mask comes from.
pub struct Problem {
    pub bnv: Vec<f32>,
    pub h: usize,
    pub w: usize,
    pub geom: NvGeometry,
    pub masks: mask::MaskFile,
    /// The support found from the data (`--support auto`).
    pub auto: Option<AutoSupport>,
}

impl Problem {
    /// Reads the map and the mask or support the flags name.
    pub fn load(a: &ReconArgs) -> Result<Problem> {
        let (bnv, h, w) = if a.ignore_nan {
            common::load_map_with_nan(&a.bnv, 1)?
        } else {
            common::load_map(&a.bnv, 1)?
        };
        let geom = a.geom.geometry(None, &a.bnv)?;
        let from_file = |p: &Path| -> Result<mask::MaskFile> {
            let t = magprior::io::load::load_array(p)?.tensor;
            Ok(mask::mask_from_array(p, t.to_vec()?, t.shape(), h, w)?)
        };
        let mut auto = None;
        let masks = match (&a.mask, &a.support) {
            (Some(p), _) => from_file(p)?,
            (None, Some(spec)) => {
                let given = match a.direction {
                    Some(DirectionSpec::Given { theta_deg, phi_deg }) => {
                        Some(magprior::nv::direction_from_angles(theta_deg, phi_deg))
                    }
                    _ => None,
                };
                let found =
                    magprior::nv::support_from_spec(spec, &bnv, h, w, &geom, given, a.ignore_nan)
                        .map_err(|e| anyhow!("{}: {e}", a.bnv.display()))?;
                match found {
                    Some(found) => {
                        if let (SupportFrom::Scan(sc), false) = (&found, a.quiet) {
                            eprintln!(
                                "support: from the classical inversion along theta {:.1}, phi {:.1} deg (the best of {} directions; misfit {:.3} of the zero field's), {:.1} % of the map",
                                sc.direction.0,
                                sc.direction.1,
                                sc.tried.len(),
                                sc.score,
                                100.0 * sc.support.area_fraction
                            );
                        }
                        auto = found.auto().cloned();
                        mask::MaskFile::Support(found.support().to_vec())
                    }
                    None => match from_file(Path::new(spec))? {
                        mask::MaskFile::Support(s) => mask::MaskFile::Support(s),
                        mask::MaskFile::Mask(_) => anyhow::bail!(
                            "{spec}: a support must be (H, W); give a (2|3, H, W) mask with --mask"
                        ),
                    },
                }
            }
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
            auto,
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

/// Parses `THETA,PHI` in degrees.
pub fn parse_angles(s: &str) -> std::result::Result<(f64, f64), String> {
    match parse_direction(s)? {
        DirectionSpec::Given { theta_deg, phi_deg } => Ok((theta_deg, phi_deg)),
        DirectionSpec::Fit { .. } => Err(format!("'{s}': give THETA,PHI in degrees")),
    }
}

/// `--noise`: a level in tesla or `map`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum NoiseArg {
    /// One noise level (T).
    Level(f64),
    /// A per-pixel noise map estimated from the data.
    Map,
}

fn noise_arg(s: &str) -> std::result::Result<NoiseArg, String> {
    if s.eq_ignore_ascii_case("map") {
        return Ok(NoiseArg::Map);
    }
    common::positive(s).map(NoiseArg::Level)
}
