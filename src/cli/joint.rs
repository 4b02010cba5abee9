//! `magprior joint`: one magnetisation fitted to a B_NV map and a Lorentz-TEM image or phase.

use crate::cli::common::{self, select_device, DeviceArg, DeviceMeta, Progress, VERSION};
use crate::cli::ltem::{load_single, MicArgs, MicMeta};
use crate::cli::nv::args::{BackgroundArg, GeomArgs};
use anyhow::{anyhow, bail, Result};
use clap::{Args, ValueEnum};
use magprior::io::outdir::OutputDir;
use magprior::io::render::{self, Decor, MapKind, Panel};
use magprior::joint::{
    self, Datasets, JointConfig, JointModel, JointResult, LtemMeasurement, Registration,
};
use magprior::nv::{direction_cosine, ModelBackground};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// `--model`.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JointModelArg {
    /// |M| = Ms in the support, directions from the DIP network (soft magnetic elements).
    Unit,
    /// M = Ms tanh(net(z)) support per component (|M| <= Ms).
    Tanh,
}

/// `--datasets`.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DatasetsArg {
    /// Both measurements (the joint fit).
    Both,
    /// The NV map alone (the LTEM data are only compared with).
    Nv,
    /// The LTEM measurement alone.
    Ltem,
}

/// The flags of `magprior joint`.
#[derive(Args)]
#[command(mut_arg("nv_pad", |a| a.long("nv-pad")))]
pub struct JointArgs {
    /// Measured B_NV map (H, W) in tesla: .npy, .txt or .tif.
    #[arg(long)]
    bnv: PathBuf,
    #[command(flatten)]
    geom: GeomArgs,
    /// Support of the magnetisation on the NV grid: a file (.npy/.png/.tif, > 0.5 inside),
    /// `ellipse:RX,RY[,DEG]`, `rect:AX,AY` (semi-axes with units, centred) or `auto`.
    #[arg(long)]
    support: String,
    /// Background in B_NV fitted with the magnetisation.
    #[arg(long, value_enum, default_value_t = BackgroundArg::Plane)]
    background: BackgroundArg,
    /// Total degree of `--background poly`.
    #[arg(long, default_value_t = 3)]
    background_degree: usize,
    /// Leave NaN / inf B_NV pixels (scan dropouts) out of the fit (without it they are an error).
    #[arg(long)]
    ignore_nan: bool,
    /// Train the standoff (--standoff is the start).
    #[arg(long)]
    fit_standoff: bool,
    /// A defocused Lorentz-TEM image (.npy, .tif, .dm3, .dm4; calibration honoured), formed
    /// with the microscope flags.
    #[arg(long, conflicts_with = "phase", required_unless_present = "phase")]
    image: Option<PathBuf>,
    /// A magnetic phase map (rad) instead of an image (e.g. from a flip series).
    #[arg(long)]
    phase: Option<PathBuf>,
    #[command(flatten)]
    mic: MicArgs,
    /// Sample tilt of the LTEM measurement about x (degrees, right-handed; applied first; the
    /// axes through the NV map's centre).
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    tilt_x: f64,
    /// Sample tilt about y (degrees, right-handed; applied after the x tilt).
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    tilt_y: f64,
    /// Slices through the thickness for the tilted projection.
    #[arg(long, default_value_t = 8, value_parser = common::at_least_one)]
    layers: usize,
    /// Zero padding of the magnetic phase model (an element's net moment gives a phase that
    /// decays as 1/r).
    #[arg(long, default_value_t = 4, value_parser = common::at_least_one)]
    phase_pad: usize,
    /// Where the LTEM image's centre sits from the NV map's centre: X,Y with units
    /// (e.g. `12nm,-4nm`); the start when --fit-registration.
    #[arg(long, value_parser = parse_offset, allow_hyphen_values = true, default_value = "0,0")]
    offset: [f64; 2],
    /// Rotation of the LTEM axes against the NV axes (degrees, from +x towards +y).
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    rotation: f64,
    /// Fit the offset and rotation (by autodiff through the bilinear resampling).
    #[arg(long)]
    fit_registration: bool,
    /// Magnetisation model.
    #[arg(long, value_enum, default_value_t = JointModelArg::Unit)]
    model: JointModelArg,
    /// Model only the in-plane components (no Mz).
    #[arg(long)]
    in_plane: bool,
    /// Weight of the micromagnetic energy prior (exchange + demagnetising; unit model with Mz);
    /// 0 switches it off.
    #[arg(long, default_value_t = 1.0, value_parser = common::nonneg)]
    energy_weight: f64,
    /// Exchange stiffness of the energy prior (J/m; Permalloy 1.3e-11).
    #[arg(long, default_value_t = 1.3e-11, value_parser = common::nonneg)]
    exchange: f64,
    /// Which measurements the loss uses.
    #[arg(long, value_enum, default_value_t = DatasetsArg::Both)]
    datasets: DatasetsArg,
    /// Saturation magnetisation (A/m).
    #[arg(long, default_value_t = 8.6e5, value_parser = common::positive)]
    ms: f64,
    /// Iterations.
    #[arg(long, default_value_t = 2000, value_parser = common::at_least_one)]
    iters: usize,
    /// Learning rate of the network.
    #[arg(long, default_value_t = 1e-3, value_parser = common::positive)]
    lr: f64,
    /// Seed of the weights and the noise input.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// NV noise level (T); default: estimated from the map.
    #[arg(long, value_parser = common::positive)]
    nv_noise: Option<f64>,
    /// LTEM noise level (rad for a phase; for an image in units of its mean); default:
    /// estimated from the data.
    #[arg(long, value_parser = common::positive)]
    ltem_noise: Option<f64>,
    /// A true magnetisation (3, H, W) A/m on the NV grid (synthetic data): the in-plane cosine
    /// is reported.
    #[arg(long)]
    truth: Option<PathBuf>,
    /// Compute device.
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    device: DeviceArg,
    /// No progress output.
    #[arg(long)]
    quiet: bool,
    /// Output directory (written whole or not at all).
    #[arg(long)]
    out: PathBuf,
}

fn parse_offset(s: &str) -> std::result::Result<[f64; 2], String> {
    let parts: Vec<&str> = s.split(',').collect();
    if parts.len() != 2 {
        return Err(format!("'{s}': give X,Y (e.g. 12nm,-4nm)"));
    }
    let v = |p: &str| -> std::result::Result<f64, String> {
        let p = p.trim();
        if p == "0" {
            return Ok(0.0);
        }
        common::length(p).map(|m| m * 1e9)
    };
    Ok([v(parts[0])?, v(parts[1])?])
}

/// What metadata.json records.
#[derive(Serialize)]
struct Meta<'a> {
    program: &'static str,
    version: &'static str,
    command: &'static str,
    bnv: String,
    ltem: String,
    ltem_kind: &'static str,
    support: &'a str,
    nv_pixel_m: f64,
    thickness_m: f64,
    standoff_m: f64,
    theta_deg: f64,
    phi_deg: f64,
    nv_pad: usize,
    background: BackgroundArg,
    fit_standoff: bool,
    microscope: MicMeta,
    phase_pad: usize,
    tilt_x_deg: f64,
    tilt_y_deg: f64,
    tilt_layers: usize,
    offset_start_nm: [f64; 2],
    rotation_start_deg: f64,
    fit_registration: bool,
    model: JointModelArg,
    with_mz: bool,
    energy_weight: Option<f64>,
    exchange_j_per_m: f64,
    datasets: DatasetsArg,
    ms: f64,
    iters: usize,
    lr: f64,
    seed: u64,
    nv_noise: Option<f64>,
    ltem_noise: Option<f64>,
    device: DeviceMeta,
}

#[derive(Serialize)]
struct DatasetMeta {
    sigma: f64,
    sigma_source: &'static str,
    pixels: usize,
    chi2_per_pixel: f64,
    zero_chi2_per_pixel: f64,
    flip_delta_chi2: f64,
    determines_inplane_sense: bool,
}

impl DatasetMeta {
    fn of(r: &joint::DatasetReport) -> DatasetMeta {
        DatasetMeta {
            sigma: r.sigma,
            sigma_source: if r.sigma_estimated {
                "estimated from the data"
            } else {
                "given"
            },
            pixels: r.pixels,
            chi2_per_pixel: r.chi2_per_pixel,
            zero_chi2_per_pixel: r.zero_chi2_per_pixel,
            flip_delta_chi2: r.flip_delta_chi2,
            determines_inplane_sense: r.determines_sense,
        }
    }
}

#[derive(Serialize)]
struct Metrics {
    datasets: DatasetsArg,
    nv: DatasetMeta,
    ltem: DatasetMeta,
    nv_sigma_units: &'static str,
    ltem_sigma_units: &'static str,
    joint_flip_delta_chi2: f64,
    joint_determines_inplane_sense: bool,
    null_space_test: &'static str,
    offset_nm: [f64; 2],
    rotation_deg: f64,
    offset_sigma_nm: Option<[f64; 2]>,
    rotation_sigma_deg: Option<f64>,
    registration_sigma_note: &'static str,
    registration_convention: &'static str,
    standoff_m: f64,
    image_scale: f64,
    final_loss: f64,
    iterations: usize,
    seconds: f64,
    seconds_per_iteration: f64,
    selected_iteration: usize,
    stop: String,
    inplane_cosine_to_truth: Option<f64>,
    circulation: f64,
    circulation_of_truth: Option<f64>,
    circulation_definition: &'static str,
    warnings: Vec<String>,
}

/// Runs `magprior joint`.
pub fn run(a: JointArgs) -> Result<()> {
    let (bnv, h, w) = if a.ignore_nan {
        common::load_map_with_nan(&a.bnv, 3)?
    } else {
        common::load_map(&a.bnv, 3)?
    };
    let geom = a.geom.geometry(None, &a.bnv)?;
    let (ltem_path, is_image) = match (&a.image, &a.phase) {
        (Some(p), None) => (p.clone(), true),
        (None, Some(p)) => (p.clone(), false),
        _ => bail!("give one of --image FILE or --phase FILE"),
    };
    let (lt, hl, wl, file_scale) = load_single(&ltem_path, &a.mic)?;
    if hl < 3 || wl < 3 {
        bail!("{}: {hl}x{wl} is too small", ltem_path.display());
    }
    if let Some(i) = lt.iter().position(|v| !v.is_finite()) {
        bail!(
            "{}: not finite at pixel (row {}, col {})",
            ltem_path.display(),
            i / wl,
            i % wl
        );
    }
    let mic = a.mic.microscope(file_scale)?;
    let support =
        match magprior::nv::support_from_spec(&a.support, &bnv, h, w, &geom, None, a.ignore_nan)
            .map_err(|e| anyhow!("{}: {e}", a.bnv.display()))?
        {
            Some(found) => found.support().to_vec(),
            None => {
                let p = Path::new(&a.support);
                let (s, sh, sw) = common::load_map(p, 1)?;
                if (sh, sw) != (h, w) {
                    bail!(
                        "{}: the support is {sh}x{sw}, the B_NV map {h}x{w}",
                        p.display()
                    );
                }
                s
            }
        };
    let truth = match &a.truth {
        Some(p) => {
            let t = magprior::io::load::load_array(p)?.tensor;
            if t.shape() != [3, h, w] {
                bail!(
                    "{}: the truth must be (3, {h}, {w}), got {:?}",
                    p.display(),
                    t.shape()
                );
            }
            Some(t.to_vec()?)
        }
        None => None,
    };
    let device = select_device(a.device, a.quiet)?;
    let cfg = JointConfig {
        geom: geom.clone(),
        microscope: mic.clone(),
        ms: a.ms,
        model: match a.model {
            JointModelArg::Unit => JointModel::Unit,
            JointModelArg::Tanh => JointModel::Tanh,
        },
        with_mz: !a.in_plane,
        energy: (a.energy_weight > 0.0 && a.model == JointModelArg::Unit && !a.in_plane).then(
            || {
                (
                    magprior::nv::Material {
                        ms: a.ms,
                        a_ex: a.exchange,
                        ..Default::default()
                    },
                    a.energy_weight,
                )
            },
        ),
        datasets: match a.datasets {
            DatasetsArg::Both => Datasets::Both,
            DatasetsArg::Nv => Datasets::Nv,
            DatasetsArg::Ltem => Datasets::Ltem,
        },
        registration: Registration {
            offset_nm: a.offset,
            rotation_deg: a.rotation,
        },
        fit_registration: a.fit_registration,
        iters: a.iters,
        lr: a.lr,
        seed: a.seed,
        background: match a.background {
            BackgroundArg::None => ModelBackground::None,
            BackgroundArg::Offset => ModelBackground::Offset,
            BackgroundArg::Plane => ModelBackground::Plane,
            BackgroundArg::Poly => ModelBackground::Poly(a.background_degree),
        },
        ignore_nan: a.ignore_nan,
        fit_standoff: a.fit_standoff,
        nv_noise: a.nv_noise,
        ltem_noise: a.ltem_noise,
        tilt: magprior::ltem::Tilt {
            x_deg: a.tilt_x,
            y_deg: a.tilt_y,
        },
        tilt_layers: a.layers,
        phase_pad: a.phase_pad,
        image_pad: a.mic.pad,
        device,
        ..Default::default()
    };
    let meas = if is_image {
        LtemMeasurement::Image(lt)
    } else {
        LtemMeasurement::Phase(lt)
    };
    let out = OutputDir::create(&a.out)?;
    let mut progress = Progress::new(a.iters, a.quiet, "joint");
    let res = joint::reconstruct_joint(&bnv, h, w, &meas, hl, wl, &support, &cfg, &mut |s| {
        progress.update(
            s.iter,
            s.loss,
            &format!("chi2 NV {:.2} LTEM {:.2}", s.chi2_nv, s.chi2_ltem),
        );
        !common::interrupted()
    })?;
    progress.finish();
    let cosine = truth
        .as_ref()
        .map(|t| direction_cosine(t, &res.magnetization, &support));
    let dir = out.path().to_path_buf();
    let f = |n: &str| dir.join(n);
    common::write_map(&f("magnetization.npy"), &[3, h, w], &res.magnetization)?;
    common::write_map(&f("support.npy"), &[h, w], &support)?;
    common::write_map(&f("bnv_model.npy"), &[h, w], &res.bnv_model)?;
    // dropouts stay NaN in the residual
    let bnv_resid: Vec<f32> = bnv.iter().zip(&res.bnv_model).map(|(a, b)| a - b).collect();
    common::write_map(&f("bnv_residual.npy"), &[h, w], &bnv_resid)?;
    common::write_map(&f("phase_model.npy"), &[hl, wl], &res.phase_model)?;
    let lt_seen = &res.ltem_data;
    let lt_model = res.image_model.as_ref().unwrap_or(&res.phase_model);
    let lt_resid: Vec<f32> = lt_seen.iter().zip(lt_model).map(|(a, b)| a - b).collect();
    if let Some(img) = &res.image_model {
        common::write_map(&f("image_model.npy"), &[hl, wl], img)?;
        common::write_map(&f("image_residual.npy"), &[hl, wl], &lt_resid)?;
    } else {
        common::write_map(&f("phase_residual.npy"), &[hl, wl], &lt_resid)?;
    }
    common::write_csv(
        &f("loss.csv"),
        "iteration,loss,chi2_nv,chi2_ltem,offset_x_nm,offset_y_nm,rotation_deg,standoff_m,image_scale,lr,seconds",
        res.history.iter().map(|s| {
            format!(
                "{},{:e},{:e},{:e},{:.4},{:.4},{:.5},{:e},{:.5},{:e},{:.4}",
                s.iter,
                s.loss,
                s.chi2_nv,
                s.chi2_ltem,
                s.offset_nm[0],
                s.offset_nm[1],
                s.rotation_deg,
                s.standoff,
                s.scale,
                s.lr,
                s.seconds
            )
        }),
    )?;
    write_pictures(
        &dir, &bnv, h, w, &geom, &support, &res, lt_seen, &lt_resid, hl, wl, mic.scale,
    )?;
    let secs = res.history.last().map_or(0.0, |s| s.seconds);
    let iters = res.history.len();
    let metrics = Metrics {
        datasets: a.datasets,
        nv: DatasetMeta::of(&res.nv),
        ltem: DatasetMeta::of(&res.ltem),
        nv_sigma_units: "T",
        ltem_sigma_units: if is_image {
            "the image's mean"
        } else {
            "rad"
        },
        joint_flip_delta_chi2: res.joint_flip_delta_chi2,
        joint_determines_inplane_sense: res.joint_determines_sense,
        null_space_test: "the change of each data set's total chi^2 when the in-plane M is reversed (Mz kept); above 9 (3 sigma) the data set determines the in-plane sense",
        offset_nm: res.registration.offset_nm,
        rotation_deg: res.registration.rotation_deg,
        offset_sigma_nm: res.registration_sigma.map(|s| s.0),
        rotation_sigma_deg: res.registration_sigma.map(|s| s.1),
        registration_sigma_note: "from the curvature of the chi^2 with M held: a lower bound",
        registration_convention: "a point at r (nm from the LTEM image's centre, LTEM axes) sits at R(rotation) r + offset in the NV frame (nm from the NV map's centre); rotation counter-clockwise from +x towards +y",
        standoff_m: res.standoff,
        image_scale: res.scale,
        final_loss: res.history.last().map_or(f64::NAN, |s| s.loss),
        iterations: iters,
        seconds: secs,
        seconds_per_iteration: secs / iters.max(1) as f64,
        selected_iteration: res.selected_iteration,
        stop: res.stop.to_string(),
        inplane_cosine_to_truth: cosine,
        circulation: joint::circulation(&res.magnetization, h, w, &support),
        circulation_of_truth: truth.as_ref().map(|t| joint::circulation(t, h, w, &support)),
        circulation_definition: "mean azimuthal component of M_inplane about the support's centroid over mean |M_inplane|: +1 counter-clockwise (x along columns, y along rows), -1 clockwise, ~0 none",
        warnings: res.warnings.clone(),
    };
    common::write_json(&f("metrics.json"), &metrics)?;
    let meta = Meta {
        program: "magprior",
        version: VERSION,
        command: "joint",
        bnv: a.bnv.display().to_string(),
        ltem: ltem_path.display().to_string(),
        ltem_kind: if is_image { "image" } else { "phase" },
        support: &a.support,
        nv_pixel_m: geom.pixel,
        thickness_m: geom.thickness,
        standoff_m: geom.standoff,
        theta_deg: geom.theta_deg,
        phi_deg: geom.phi_deg,
        nv_pad: geom.pad,
        background: a.background,
        fit_standoff: a.fit_standoff,
        microscope: a.mic.meta(&mic),
        phase_pad: a.phase_pad,
        tilt_x_deg: a.tilt_x,
        tilt_y_deg: a.tilt_y,
        tilt_layers: a.layers,
        offset_start_nm: a.offset,
        rotation_start_deg: a.rotation,
        fit_registration: a.fit_registration,
        model: a.model,
        with_mz: !a.in_plane,
        energy_weight: cfg.energy.as_ref().map(|e| e.1),
        exchange_j_per_m: a.exchange,
        datasets: a.datasets,
        ms: a.ms,
        iters: a.iters,
        lr: a.lr,
        seed: a.seed,
        nv_noise: a.nv_noise,
        ltem_noise: a.ltem_noise,
        device: DeviceMeta::of(device),
    };
    common::write_json(&f("metadata.json"), &meta)?;
    let path = out.commit()?;
    println!("wrote {}", path.display());
    for (name, r) in [("NV", &res.nv), ("LTEM", &res.ltem)] {
        println!(
            "{name}: sigma {:.3e} ({}), chi^2/px {:.3} (zero model {:.3}), reversing the in-plane M changes chi^2 by {:.1}: sense {}",
            r.sigma,
            if r.sigma_estimated { "estimated" } else { "given" },
            r.chi2_per_pixel,
            r.zero_chi2_per_pixel,
            r.flip_delta_chi2,
            if r.determines_sense { "determined" } else { "NOT determined" }
        );
    }
    println!(
        "jointly: reversing changes chi^2 by {:.1}: sense {}",
        res.joint_flip_delta_chi2,
        if res.joint_determines_sense {
            "determined"
        } else {
            "NOT determined"
        }
    );
    let r = &res.registration;
    match res.registration_sigma {
        Some((so, sr)) => println!(
            "registration (fitted): offset ({:.2} +- {:.2}, {:.2} +- {:.2}) nm, rotation {:.3} +- {:.3} deg",
            r.offset_nm[0], so[0], r.offset_nm[1], so[1], r.rotation_deg, sr
        ),
        None => println!(
            "registration (given): offset ({:.2}, {:.2}) nm, rotation {:.3} deg",
            r.offset_nm[0], r.offset_nm[1], r.rotation_deg
        ),
    }
    println!(
        "circulation about the support's centroid: {:+.3} (+1 counter-clockwise, 0 none)",
        joint::circulation(&res.magnetization, h, w, &support)
    );
    if let Some(c) = cosine {
        println!("in-plane cosine to the truth: {c:.4}");
    }
    for wmsg in &res.warnings {
        eprintln!("warning: {wmsg}");
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn write_pictures(
    dir: &Path,
    bnv: &[f32],
    h: usize,
    w: usize,
    geom: &magprior::nv::NvGeometry,
    support: &[f32],
    res: &JointResult,
    lt_seen: &[f32],
    lt_resid: &[f32],
    hl: usize,
    wl: usize,
    scale_nm: f64,
) -> Result<()> {
    let f = |n: &str| dir.join(n);
    let flag = (!res.joint_determines_sense).then_some("in-plane sense not determined by the data");
    crate::cli::nv::output::write_bnv_and_magnetization(
        dir,
        bnv,
        &res.bnv_model,
        "model B_NV",
        &res.magnetization,
        (h, w),
        geom.pixel,
        support,
        "M in plane, joint fit (hue: direction, brightness: |M|)",
        flag,
    )?;
    let is_image = res.image_model.is_some();
    let lt_model = res.image_model.as_ref().unwrap_or(&res.phase_model);
    let lpanel = |data, title, kind| Panel {
        data,
        h: hl,
        w: wl,
        title,
        unit: if is_image { "of mean" } else { "rad" },
        scale: 1.0,
        kind,
        limit: None,
    };
    // an image is shown as intensities, a phase and every residual about zero
    let shown = if is_image {
        MapKind::Sequential
    } else {
        MapKind::Diverging
    };
    let (t_meas, t_model) = if is_image {
        ("measured image", "model image")
    } else {
        ("measured phase", "model phase")
    };
    render::write_panels_with(
        &f("ltem.png"),
        &render::compare_panels(
            lpanel(lt_seen, t_meas, shown),
            lpanel(lt_model, t_model, shown),
            Some(lpanel(lt_resid, "residual (own range)", MapKind::Diverging)),
        ),
        &Decor::new().pixel_size(scale_nm * 1e-9),
    )?;
    let xs: Vec<f64> = res.history.iter().map(|s| s.iter as f64).collect();
    let ys: Vec<f64> = res.history.iter().map(|s| s.loss).collect();
    render::write_line_plot(
        &f("loss.png"),
        &xs,
        &ys,
        "loss (chi^2 per pixel)",
        "iteration",
        "loss",
        true,
    )?;
    Ok(())
}
