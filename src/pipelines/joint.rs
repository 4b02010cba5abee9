//! Joint NV + Lorentz-TEM reconstruction: one magnetisation on the NV map's grid explains both
//! measurements. NV sees the in-plane M only through its charges (div M, M.n at the edges), a
//! Lorentz phase at normal incidence only through its curl; together they fix the in-plane
//! field, and NV adds the out-of-plane core.
//!
//! The magnetisation `M` (1, C, h, w) comes from the NV pipeline's sources (the tanh DIP, or unit
//! vectors from the DIP network with `|M| = Ms` in the support). It goes through the NV forward
//! model (with the NV pipeline's background projection and, optionally, a trained standoff), and,
//! resampled bilinearly onto the LTEM grid through a trained rotation and offset
//! ([`Tensor::affine_sample`]) with its vectors rotated into the LTEM frame, through the
//! magnetic phase ([`PhaseForward`], zero-padded) and, for an image, the microscope's image
//! formation ([`LtemForward`]) with a trained amplitude scale. The loss is the total chi^2 of
//! both data sets, each residual divided by its own noise variance (estimated from its data and
//! reported), per pixel of both. After the fit, the null-space test of the NV pipeline runs per
//! data set and jointly: does reversing the in-plane M (Mz kept) change each data set's chi^2
//! by more than 9?

use crate::engine::autograd::no_grad;
use crate::engine::device::Device;
use crate::engine::tensor::Tensor;
use crate::error::{Error, Result};
use crate::fit::{Evaluation, Fit, Iteration, Objective, Selection, StopReason};
use crate::nn::{Cae, CaeConfig};
use crate::optim::{AdamW, ReduceLrOnPlateau};
use crate::physics::ltem::contamination::noise_level;
use crate::physics::ltem::forward::{LtemForward, PhaseForward};
use crate::physics::ltem::optics::Microscope;
use crate::physics::ltem::tilt::Tilt;
use crate::physics::nv::energy::{Energy, Material};
use crate::physics::nv::forward::NvGeometry;
use crate::physics::nv::noise::noise_floor;
use crate::pipelines::nv::objective::{NvObjective, Prior, Source, UnitParam};
use crate::pipelines::nv::{data::Data, Background, NvReconConfig, Setup};
use crate::rng::Rng;

const OP: &str = "joint reconstruct";

/// The Lorentz-TEM measurement.
#[derive(Clone, Debug)]
pub enum LtemMeasurement {
    /// A defocused image (any units: it is divided by its mean), formed by `microscope`.
    Image(Vec<f32>),
    /// A magnetic phase map (rad), e.g. from a flip series; its mean is arbitrary.
    Phase(Vec<f32>),
}

/// Which measurements the loss uses (the others are still evaluated and reported).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Datasets {
    /// Both (the joint fit).
    Both,
    /// The NV map alone.
    Nv,
    /// The LTEM measurement alone.
    Ltem,
}

impl Datasets {
    /// `both`, `nv`, `ltem`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Datasets::Both => "both",
            Datasets::Nv => "nv",
            Datasets::Ltem => "ltem",
        }
    }
}

/// How the magnetisation is parametrised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JointModel {
    /// `M = Ms tanh(net(z)) support` per component (the NV-DIP output stage, no pattern).
    Tanh,
    /// `M = Ms v / |v|` in the support, `v = net(z)` (soft magnetic elements: `|M| = Ms`).
    Unit,
}

/// Where the LTEM grid sits on the NV grid: the LTEM image's centre is at `offset_nm` (x, y)
/// from the NV map's centre, and the LTEM axes are the NV axes rotated by `rotation_deg`
/// (counter-clockwise from +x towards +y). A point at `r_l` (nm, from the LTEM centre, LTEM
/// axes) is at `R(rotation) r_l + offset` in the NV frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Registration {
    /// Offset (x, y) in nm.
    pub offset_nm: [f64; 2],
    /// Rotation in degrees.
    pub rotation_deg: f64,
}

impl Default for Registration {
    fn default() -> Self {
        Registration {
            offset_nm: [0.0, 0.0],
            rotation_deg: 0.0,
        }
    }
}

/// Settings of a joint reconstruction.
#[derive(Clone, Debug)]
pub struct JointConfig {
    /// The NV measurement's geometry; its `thickness` is the film's, for both models.
    pub geom: NvGeometry,
    /// The microscope; its `scale` is the LTEM pixel (nm). Only an image uses the optics.
    pub microscope: Microscope,
    /// Saturation magnetisation (A/m).
    pub ms: f64,
    /// The parametrisation.
    pub model: JointModel,
    /// Model Mz too (vortex cores, out-of-plane parts).
    pub with_mz: bool,
    /// The micromagnetic energy prior of the NV pipeline (`JointModel::Unit` with Mz only):
    /// `lambda 1e3 E / ((mu0/2) Ms^2 t p^2 N_support)` added to the chi^2 per pixel. NV sees the
    /// in-plane divergence and Mz only in one combination (their fields are nearly the same
    /// in a thin film) and LTEM sees neither, so without it a joint fit can trade volume charges
    /// for Mz; the demagnetising and exchange energy rule such trades out.
    pub energy: Option<(Material, f64)>,
    /// Which measurements the loss uses.
    pub datasets: Datasets,
    /// Registration: the start (or the fixed value).
    pub registration: Registration,
    /// Train the registration.
    pub fit_registration: bool,
    /// Learning rates of the offset (nm) and the rotation (degrees); they fall to a tenth over
    /// the second half of the run.
    pub registration_lr: (f64, f64),
    /// Iterations.
    pub iters: usize,
    /// With both data sets: the fraction of `iters` at the start that fits the LTEM data alone
    /// with the registration held (the curl part first: from the NV map alone the network
    /// settles in states whose in-plane charges mimic the field and that the weaker LTEM term
    /// cannot pull out of). The returned state is chosen after it.
    pub warmup: f64,
    /// With both data sets: the fraction of `iters` by which the NV weight has risen from
    /// 1e-3 of its value to all of it (after the warm-up).
    pub nv_ramp: f64,
    /// AdamW learning rate of the network.
    pub lr: f64,
    /// Weight decay of the network.
    pub weight_decay: f64,
    /// Seeds the weights and the noise input.
    pub seed: u64,
    /// Encoder channels per level.
    pub channels: Vec<usize>,
    /// Convolution kernel size.
    pub kernel: usize,
    /// ReduceLROnPlateau factor, patience, relative threshold.
    pub plateau: (f64, usize, f64),
    /// The NV background fitted with M (offset, plane, ...).
    pub background: Background,
    /// Leave non-finite B_NV pixels (scan dropouts) out of the NV term instead of refusing them.
    pub ignore_nan: bool,
    /// Train the standoff.
    pub fit_standoff: bool,
    /// Learning rate of the standoff (nm).
    pub standoff_lr: f64,
    /// Train the image's amplitude scale (an image only).
    pub fit_scale: bool,
    /// NV noise level (T); `None`: estimated from the map's pixel differences.
    pub nv_noise: Option<f64>,
    /// LTEM noise level (rad for a phase; for an image in units of its mean); `None`: estimated
    /// (Immerkaer's operator).
    pub ltem_noise: Option<f64>,
    /// The sample tilt of the LTEM measurement (SPEC section 10; the tilt axes through the NV
    /// map's centre); the film is cut into `tilt_layers` slices along its normal.
    pub tilt: Tilt,
    /// Slices of the film under tilt (1 is exact at zero tilt).
    pub tilt_layers: usize,
    /// Zero padding of the magnetic phase (an element's net moment gives a phase decaying as
    /// 1/r: on an exact cell integral, pad 2 is 18 % off for an S state, 4 is 5 %, 8 is 1.3 %).
    pub phase_pad: usize,
    /// Padding of the image formation (1 = periodic).
    pub image_pad: usize,
    /// Where everything runs.
    pub device: Device,
}

impl Default for JointConfig {
    fn default() -> Self {
        JointConfig {
            geom: NvGeometry::default(),
            microscope: Microscope::default(),
            ms: 8.6e5,
            model: JointModel::Unit,
            with_mz: true,
            energy: Some((Material::default(), 1.0)),
            datasets: Datasets::Both,
            registration: Registration::default(),
            fit_registration: false,
            registration_lr: (0.5, 0.05),
            iters: 2000,
            warmup: 0.1,
            nv_ramp: 0.5,
            lr: 1e-3,
            weight_decay: 0.0,
            seed: 0,
            channels: vec![16, 32],
            kernel: 5,
            plateau: (0.75, 150, 1e-9),
            background: Background::None,
            ignore_nan: false,
            fit_standoff: false,
            standoff_lr: 0.2,
            fit_scale: true,
            nv_noise: None,
            ltem_noise: None,
            tilt: Tilt::default(),
            tilt_layers: 8,
            phase_pad: 4,
            image_pad: 1,
            device: Device::Cpu,
        }
    }
}

impl JointConfig {
    /// Checks every setting; the error names it.
    pub fn validate(&self) -> Result<()> {
        self.geom.validate()?;
        self.microscope.validate()?;
        if self.iters == 0 {
            return Err(Error::arg(OP, "iterations must be at least 1"));
        }
        for (name, v) in [
            ("ms", self.ms),
            ("lr", self.lr),
            ("offset learning rate", self.registration_lr.0),
            ("rotation learning rate", self.registration_lr.1),
            ("standoff learning rate", self.standoff_lr),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::arg(OP, format!("{name} must be positive, got {v}")));
            }
        }
        if !(0.0 <= self.warmup && self.warmup <= self.nv_ramp && self.nv_ramp < 0.95) {
            return Err(Error::arg(
                OP,
                format!(
                    "need 0 <= warm-up ({}) <= NV ramp ({}) < 0.95 (fractions of the iterations)",
                    self.warmup, self.nv_ramp
                ),
            ));
        }
        let r = &self.registration;
        if !(r.offset_nm.iter().all(|v| v.is_finite()) && r.rotation_deg.is_finite()) {
            return Err(Error::arg(OP, "the registration must be finite"));
        }
        for (name, v) in [("NV noise", self.nv_noise), ("LTEM noise", self.ltem_noise)] {
            if let Some(s) = v {
                if !(s.is_finite() && s > 0.0) {
                    return Err(Error::arg(OP, format!("{name} must be positive, got {s}")));
                }
            }
        }
        for (name, v) in [("x", self.tilt.x_deg), ("y", self.tilt.y_deg)] {
            if !(v.is_finite() && v.abs() < 80.0) {
                return Err(Error::arg(
                    OP,
                    format!("the tilt about {name} must be inside (-80, 80) degrees, got {v}"),
                ));
            }
        }
        if self.tilt_layers == 0 {
            return Err(Error::arg(OP, "the film needs at least one layer"));
        }
        if self.phase_pad == 0 || self.image_pad == 0 {
            return Err(Error::arg(OP, "padding factors must be at least 1"));
        }
        if let Some((mat, lambda)) = &self.energy {
            if self.model != JointModel::Unit || !self.with_mz {
                return Err(Error::arg(
                    OP,
                    "the energy prior needs the unit model with Mz",
                ));
            }
            if !(lambda.is_finite() && *lambda > 0.0) {
                return Err(Error::arg(
                    OP,
                    format!("the energy weight must be positive, got {lambda}"),
                ));
            }
            if (mat.ms - self.ms).abs() > 1e-6 * self.ms {
                return Err(Error::arg(OP, "the energy prior's Ms differs from ms"));
            }
        }
        self.network().validate()
    }

    fn channels_out(&self) -> usize {
        if self.with_mz {
            3
        } else {
            2
        }
    }

    fn network(&self) -> CaeConfig {
        CaeConfig {
            in_ch: 1,
            out_ch: self.channels_out(),
            channels: self.channels.clone(),
            kernel: self.kernel,
        }
    }

    /// The NV pipeline's settings for the NV half (its data term and nuisances).
    fn nv_config(&self) -> NvReconConfig {
        NvReconConfig {
            geom: self.geom.clone(),
            ms: self.ms,
            iters: self.iters,
            lr: self.lr,
            weight_decay: self.weight_decay,
            seed: self.seed,
            channels: self.channels.clone(),
            kernel: self.kernel,
            background: self.background,
            ignore_nan: self.ignore_nan,
            noise: self.nv_noise,
            fit_standoff: self.fit_standoff,
            standoff_lr: self.standoff_lr,
            plateau: self.plateau,
            device: self.device,
            ..Default::default()
        }
    }
}

/// One iteration's numbers (`loss.csv`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct JointIter {
    /// 1-based iteration.
    pub iter: usize,
    /// The loss: total chi^2 per pixel of the data sets in use.
    pub loss: f64,
    /// NV chi^2 per pixel.
    pub chi2_nv: f64,
    /// LTEM chi^2 per pixel.
    pub chi2_ltem: f64,
    /// Offset (nm).
    pub offset_nm: [f64; 2],
    /// Rotation (deg).
    pub rotation_deg: f64,
    /// Standoff (m).
    pub standoff: f64,
    /// Image amplitude scale.
    pub scale: f64,
    /// The energy (J) with the prior, else NaN.
    pub energy: f64,
    /// Learning rate.
    pub lr: f64,
    /// Seconds since the start.
    pub seconds: f64,
}

/// What one data set says about the result.
#[derive(Clone, Debug, PartialEq)]
pub struct DatasetReport {
    /// Noise level used (T for NV; rad for a phase; image mean units for an image).
    pub sigma: f64,
    /// Whether `sigma` was estimated from the data (else given).
    pub sigma_estimated: bool,
    /// Pixels in the data term.
    pub pixels: usize,
    /// chi^2 per pixel of the returned state.
    pub chi2_per_pixel: f64,
    /// chi^2 per pixel of the zero model (no magnetisation).
    pub zero_chi2_per_pixel: f64,
    /// Change of this data set's total chi^2 when the in-plane M is reversed (Mz kept).
    pub flip_delta_chi2: f64,
    /// Whether this data set alone determines the sense of the in-plane M (`flip_delta_chi2`
    /// above 9, a 3-sigma likelihood ratio).
    pub determines_sense: bool,
}

/// The outcome of [`reconstruct_joint`].
#[derive(Clone, Debug)]
pub struct JointResult {
    /// (3, h, w) A/m on the NV grid (Mz zero unless modelled).
    pub magnetization: Vec<f32>,
    /// Modelled B_NV (h, w) T with the fitted background.
    pub bnv_model: Vec<f32>,
    /// Modelled magnetic phase on the LTEM grid (h_l, w_l) rad (for a phase: with the
    /// measurement's mean).
    pub phase_model: Vec<f32>,
    /// Modelled image (h_l, w_l) in units of the measurement's mean, for an image.
    pub image_model: Option<Vec<f32>>,
    /// The LTEM measurement as the model is compared with it (an image divided by its mean).
    pub ltem_data: Vec<f32>,
    /// The registration of the returned state.
    pub registration: Registration,
    /// With a fitted registration: the standard deviations of the offset (x, y; nm) and of the
    /// rotation (deg) from the curvature of the chi^2 with M held (a lower bound: M could
    /// follow); infinite where the chi^2 has no curvature.
    pub registration_sigma: Option<([f64; 2], f64)>,
    /// Standoff (m).
    pub standoff: f64,
    /// The image's amplitude scale (1 for a phase).
    pub scale: f64,
    /// The NV data set.
    pub nv: DatasetReport,
    /// The LTEM data set.
    pub ltem: DatasetReport,
    /// Change of the joint chi^2 (both data sets) when the in-plane M is reversed.
    pub joint_flip_delta_chi2: f64,
    /// Whether the two data sets together determine the in-plane sense.
    pub joint_determines_sense: bool,
    /// Per-iteration log.
    pub history: Vec<JointIter>,
    /// How the run ended.
    pub stop: StopReason,
    /// The iteration whose state is returned (lowest loss).
    pub selected_iteration: usize,
    /// Physics warnings (a fit worse than zero, chi^2 far above 1, a registration that ran
    /// away).
    pub warnings: Vec<String>,
}

/// The LTEM half of the objective.
struct LtemTerm {
    hl: usize,
    wl: usize,
    phase_op: PhaseForward,
    image_op: Option<LtemForward>,
    /// (1, 1, hl, wl): the phase, or the image divided by its mean.
    meas: Tensor,
    /// Amplitude scale (1,), trained or fixed.
    scale: Tensor,
    /// Rotation (1,) rad and offset (2,) nm, trained or fixed.
    angle: Tensor,
    offset: Tensor,
    /// The sample tilt: `R` (sample -> beam frame), `A^-1` (2x2), the lateral shift per
    /// height `s` (nm per nm), `det A`, and the layers' heights (nm from the mid-plane).
    tilt: [[f64; 3]; 3],
    binv: [[f64; 2]; 2],
    shift: [f64; 2],
    det: f64,
    layers: Vec<f64>,
    /// NV pixel (nm), LTEM pixel / NV pixel, centres (col, row) of both grids.
    pn: f64,
    rho: f64,
    cn: [f64; 2],
    cl: [f64; 2],
}

impl LtemTerm {
    /// The affine map (6,) from LTEM pixel indices to NV pixel coordinates (see
    /// [`Tensor::affine_sample`]) for the film's layer at height `z` (nm, from its mid-plane),
    /// and (cos, sin) of the registration's rotation as (1,) tensors. An LTEM pixel `q` is at
    /// `u = R(rotation) (q - c_l) p_l + offset` in the beam frame (NV axes, nm from the tilt
    /// axis through the NV map's centre); the layer's sample-frame point under it is
    /// `A^-1 (u - z s)` (SPEC section 10: `A` foreshortens, `s` the shift per height).
    fn affine(&self, z: f64) -> Result<(Tensor, Tensor, Tensor)> {
        let e = self.angle.expi()?;
        let (c, s) = (e.re()?, e.im()?);
        let pl = (self.rho * self.pn) as f32;
        let (tx, ty) = (self.offset.narrow(0, 0, 1)?, self.offset.narrow(0, 1, 1)?);
        let (cx, cy) = (self.cl[0] as f32, self.cl[1] as f32);
        // u = [pl c, -pl s; pl s, pl c] (j, i) + u0,  u0 = t - z s - pl R c_l
        let u0x = tx
            .sub(&c.scale(pl * cx)?.sub(&s.scale(pl * cy)?)?)?
            .add_scalar((-z * self.shift[0]) as f32)?;
        let u0y = ty
            .sub(&s.scale(pl * cx)?.add(&c.scale(pl * cy)?)?)?
            .add_scalar((-z * self.shift[1]) as f32)?;
        let (ujx, uix) = (c.scale(pl)?, s.scale(-pl)?);
        let (ujy, uiy) = (s.scale(pl)?, c.scale(pl)?);
        // s_nv = B u / pn + c_n with B = A^-1
        let b = self.binv;
        let inv_p = 1.0 / self.pn;
        let row = |k: usize| -> Result<[Tensor; 3]> {
            let (b0, b1) = ((b[k][0] * inv_p) as f32, (b[k][1] * inv_p) as f32);
            Ok([
                ujx.scale(b0)?.add(&ujy.scale(b1)?)?,
                uix.scale(b0)?.add(&uiy.scale(b1)?)?,
                u0x.scale(b0)?
                    .add(&u0y.scale(b1)?)?
                    .add_scalar(self.cn[k] as f32)?,
            ])
        };
        let [acc, acr, bc] = row(0)?;
        let [arc, arr, br] = row(1)?;
        let a = Tensor::cat(&[acc, acr, bc, arc, arr, br], 0)?;
        Ok((a, c, s))
    }

    /// The projected in-plane moment per thickness (1, 2, hl, wl) in the LTEM axes: M
    /// resampled from the NV grid, per layer rotated into the beam frame by the tilt, and summed
    /// over the layers (each `1 / (layers det A)`, so that the projected moment is conserved).
    fn inplane(&self, m: &Tensor) -> Result<Tensor> {
        let ch = m.shape()[1];
        let r = self.tilt;
        let weight = 1.0 / (self.layers.len() as f64 * self.det);
        let mut sum: Option<(Tensor, Tensor)> = None;
        let mut rot = None;
        for &z in &self.layers {
            let (a, c, s) = self.affine(z)?;
            let mi = m.affine_sample(&a, self.hl, self.wl)?;
            let comp = |k: usize| mi.narrow(1, k, 1);
            // beam-frame components (NV axes): M' = R_tilt M (the rows for x and y)
            let beam = |row: [f64; 3]| -> Result<Tensor> {
                let mut t = comp(0)?.scale((row[0] * weight) as f32)?;
                t = t.add(&comp(1)?.scale((row[1] * weight) as f32)?)?;
                if ch > 2 && row[2] != 0.0 {
                    t = t.add(&comp(2)?.scale((row[2] * weight) as f32)?)?;
                }
                Ok(t)
            };
            let (bx, by) = (beam(r[0])?, beam(r[1])?);
            sum = Some(match sum {
                Some((x, y)) => (x.add(&bx)?, y.add(&by)?),
                None => (bx, by),
            });
            rot = Some((c, s));
        }
        let ((mx, my), (c, s)) = sum.zip(rot).ok_or_else(|| Error::arg(OP, "no layers"))?;
        let (c, s) = (c.reshape(&[1, 1, 1, 1])?, s.reshape(&[1, 1, 1, 1])?);
        // components in the LTEM axes: R(rotation)^T M'
        let lx = mx.mul(&c)?.add(&my.mul(&s)?)?;
        let ly = my.mul(&c)?.sub(&mx.mul(&s)?)?;
        Tensor::cat(&[lx, ly], 1)
    }

    /// The model (phase, or image) and the mean squared residual (tracked).
    fn misfit(&self, m: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        let phase = self.phase_op.phase(&self.inplane(m)?)?;
        match &self.image_op {
            Some(op) => {
                let img = op.image(&phase, None, Some(&self.scale))?;
                let mse = img.mse_loss(&self.meas)?;
                Ok((phase, img, mse))
            }
            None => {
                // the phase's mean is arbitrary: compare with the residual's mean removed
                let r = phase.sub(&self.meas)?;
                let mean = r.mean_all()?;
                let mse = r.sub(&mean.reshape(&[1, 1, 1, 1])?)?.square()?.mean_all()?;
                let shown = phase.sub(&mean.detach().reshape(&[1, 1, 1, 1])?)?;
                Ok((phase, shown, mse))
            }
        }
    }
}

/// The LTEM half for `(hl, wl)` data `meas` (an image divided by its mean, or a phase) of a
/// magnetisation on an `(h, w)` NV grid, on `cfg.device`.
fn ltem_term(
    cfg: &JointConfig,
    (h, w): (usize, usize),
    (hl, wl): (usize, usize),
    meas_host: Vec<f32>,
    image: bool,
) -> Result<LtemTerm> {
    let dev = cfg.device;
    let t_nm = cfg.geom.thickness * 1e9;
    let mut phase_op = PhaseForward::new(hl, wl, t_nm, cfg.microscope.scale, cfg.phase_pad)?;
    phase_op.to_device(dev)?;
    let image_op = if image {
        let mut op = LtemForward::new(hl, wl, &cfg.microscope, cfg.image_pad)?;
        op.to_device(dev)?;
        Some(op)
    } else {
        None
    };
    let reg = &cfg.registration;
    let pn = cfg.geom.pixel * 1e9;
    let rt = cfg.tilt.matrix();
    // SPEC section 10: A = [[cb, sb sa], [0, ca]], s = (sb ca, -sa) (the tilt module's frame)
    let (sa, ca) = cfg.tilt.x_deg.to_radians().sin_cos();
    let (sb, cb) = cfg.tilt.y_deg.to_radians().sin_cos();
    let det = cb * ca;
    let binv = [[1.0 / cb, -sb * sa / (cb * ca)], [0.0, 1.0 / ca]];
    let nl = if cfg.tilt == Tilt::default() {
        1
    } else {
        cfg.tilt_layers
    };
    let dz = t_nm / nl as f64;
    Ok(LtemTerm {
        tilt: rt,
        binv,
        shift: [sb * ca, -sa],
        det,
        layers: (0..nl)
            .map(|l| (l as f64 - (nl as f64 - 1.0) / 2.0) * dz)
            .collect(),
        hl,
        wl,
        phase_op,
        image_op,
        meas: Tensor::from_shape_vec(&[1, 1, hl, wl], meas_host)?.to_device(dev)?,
        scale: param(vec![1.0], &[1], image && cfg.fit_scale, dev)?,
        angle: param(
            vec![reg.rotation_deg.to_radians() as f32],
            &[1],
            cfg.fit_registration,
            dev,
        )?,
        offset: param(
            vec![reg.offset_nm[0] as f32, reg.offset_nm[1] as f32],
            &[2],
            cfg.fit_registration,
            dev,
        )?,
        pn,
        rho: cfg.microscope.scale / pn,
        cn: [(w as f64 - 1.0) / 2.0, (h as f64 - 1.0) / 2.0],
        cl: [(wl as f64 - 1.0) / 2.0, (hl as f64 - 1.0) / 2.0],
    })
}

/// The magnetic phase (hl, wl) in rad that the joint model gives a magnetisation `m` (3 or
/// 2, h, w; A/m on the NV grid of `cfg.geom`) on the LTEM grid of `cfg.microscope.scale`, placed
/// by `cfg.registration`, seen through `cfg.tilt`: the path of [`reconstruct_joint`] (bilinear
/// resampling, zero padding `cfg.phase_pad`), for checks and for predicting an LTEM
/// measurement from a reconstruction.
pub fn model_phase(
    m: &[f32],
    h: usize,
    w: usize,
    hl: usize,
    wl: usize,
    cfg: &JointConfig,
) -> Result<Vec<f32>> {
    cfg.validate()?;
    let c = m.len() / (h * w).max(1);
    if !(2..=3).contains(&c) || m.len() != c * h * w {
        return Err(Error::arg(
            "joint model phase",
            format!("M must be (2|3, {h}, {w})"),
        ));
    }
    let lt = ltem_term(cfg, (h, w), (hl, wl), vec![0.0; hl * wl], false)?;
    let t = Tensor::from_shape_vec(&[1, c, h, w], m.to_vec())?.to_device(cfg.device)?;
    no_grad(|| lt.phase_op.phase(&lt.inplane(&t)?))?.to_vec()
}

/// The joint objective: NV and LTEM terms on one magnetisation.
struct JointObjective<'a> {
    nv: NvObjective<'a>,
    lt: LtemTerm,
    /// Weights of the mean squared residuals in the loss: `n / sigma^2 / n_used`.
    w_nv: f32,
    w_lt: f32,
    /// `1 / sigma^2` of each, for the report.
    iv_nv: f32,
    iv_lt: f32,
    /// The energy prior and its factor in the loss.
    prior: Option<(Prior, f32)>,
}

impl JointObjective<'_> {
    /// The two mean squared residuals of a magnetisation (tracked), and the models.
    fn misfits(&self, m: &Tensor) -> Result<[Tensor; 5]> {
        let bnv = self.nv.bnv(m)?;
        let (mse_nv, full) = self.nv.data.loss(&bnv)?;
        let (phase, shown, mse_lt) = self.lt.misfit(m)?;
        Ok([mse_nv, mse_lt, full, phase, shown])
    }
}

impl Objective for JointObjective<'_> {
    /// Reports `[chi2_nv, chi2_ltem, rotation (rad), offset x, y (nm), standoff (nm), scale]`;
    /// keeps M, B_NV with background, the phase, the shown LTEM model.
    fn evaluate(&mut self, _: usize) -> Result<Evaluation> {
        let (h, w) = (self.nv.data.h, self.nv.data.w);
        let (m, unit) = self.nv.source.magnetisation(h, w)?;
        let [mse_nv, mse_lt, full, phase, shown] = self.misfits(&m)?;
        let mut loss = mse_nv.scale(self.w_nv)?.add(&mse_lt.scale(self.w_lt)?)?;
        let mut energy = Tensor::scalar(f32::NAN).to_device(m.device())?;
        if let (Some((p, factor)), Some(u)) = (&self.prior, &unit) {
            let e = p.energy.energy(u)?;
            loss = loss.add(&e.scale(*factor)?)?;
            energy = e.detach();
        }
        let standoff = match &self.nv.standoff_nm {
            Some(d) => d.detach(),
            None => Tensor::scalar((self.nv.fwd.geometry().standoff * 1e9) as f32)
                .to_device(m.device())?,
        };
        let report = vec![
            mse_nv.detach().scale(self.iv_nv)?,
            mse_lt.detach().scale(self.iv_lt)?,
            self.lt.angle.detach().reshape(&[1])?,
            self.lt.offset.detach().narrow(0, 0, 1)?,
            self.lt.offset.detach().narrow(0, 1, 1)?,
            standoff.reshape(&[1])?,
            self.lt.scale.detach().reshape(&[1])?,
            energy.reshape(&[1])?,
        ];
        Ok(Evaluation {
            loss,
            validation: None,
            report,
            state: vec![m.detach(), full, phase.detach(), shown.detach()],
        })
    }

    fn after_step(&mut self, iter: usize) -> Result<()> {
        self.nv.after_step(iter)
    }
}

fn iter_stats(it: &Iteration) -> JointIter {
    let r = |i: usize| it.report.get(i).copied().unwrap_or(f64::NAN);
    JointIter {
        iter: it.iter,
        loss: it.loss,
        chi2_nv: r(0),
        chi2_ltem: r(1),
        rotation_deg: r(2).to_degrees(),
        offset_nm: [r(3), r(4)],
        standoff: r(5) * 1e-9,
        scale: r(6),
        energy: r(7),
        lr: it.lr,
        seconds: it.seconds,
    }
}

/// A trained (or fixed) parameter on the device.
fn param(v: Vec<f32>, shape: &[usize], trained: bool, dev: Device) -> Result<Tensor> {
    let mut t = Tensor::from_shape_vec(shape, v)?;
    if trained {
        t = t.requires_grad();
    }
    t.move_to(dev)?;
    Ok(t)
}

/// Reconstructs one magnetisation from a B_NV map `bnv` (h, w; tesla, pixel `cfg.geom.pixel`)
/// and a Lorentz-TEM measurement (`hl`, `wl`; pixel `cfg.microscope.scale` nm), with the support
/// `support` (h, w; > 0.5 inside) on the NV grid. `observer` sees every iteration and returns
/// `false` to stop.
#[allow(clippy::too_many_arguments)]
pub fn reconstruct_joint(
    bnv: &[f32],
    h: usize,
    w: usize,
    ltem: &LtemMeasurement,
    hl: usize,
    wl: usize,
    support: &[f32],
    cfg: &JointConfig,
    observer: &mut dyn FnMut(&JointIter) -> bool,
) -> Result<JointResult> {
    cfg.validate()?;
    let dev = cfg.device;
    if bnv.len() != h * w || support.len() != h * w {
        return Err(Error::arg(
            OP,
            format!(
                "the B_NV map has {} values and the support {} for {h}x{w}",
                bnv.len(),
                support.len()
            ),
        ));
    }
    let meas_l = match ltem {
        LtemMeasurement::Image(v) | LtemMeasurement::Phase(v) => v,
    };
    if meas_l.len() != hl * wl || hl < 3 || wl < 3 {
        return Err(Error::arg(
            OP,
            format!("the LTEM map has {} values for {hl}x{wl}", meas_l.len()),
        ));
    }
    if let Some(i) = meas_l.iter().position(|v| !v.is_finite()) {
        return Err(Error::arg(
            OP,
            format!("the LTEM map is not finite at pixel {i}"),
        ));
    }
    let support01: Vec<f32> = support.iter().map(|&s| (s > 0.5) as u8 as f32).collect();
    if support01.iter().all(|&s| s == 0.0) {
        return Err(Error::arg(OP, "the support is empty"));
    }
    let mut warnings = Vec::new();
    // ---- the NV half: data term, nuisances (the NV pipeline's)
    let nv_cfg = cfg.nv_config();
    let data = Data::new(bnv, h, w, cfg.geom.pixel, cfg.background, false, None, dev)?;
    let (sigma_nv, nv_est) = match cfg.nv_noise {
        Some(s) => (s, false),
        None => {
            let nf = noise_floor(bnv, h, w, Some(&data.valid_host))?;
            let s = crate::pipelines::nv::diagnose::usable_sigma(nf.sigma, &data, &mut warnings);
            (s, true)
        }
    };
    // ---- the LTEM half
    let image = matches!(ltem, LtemMeasurement::Image(_));
    let meas_host: Vec<f32> = if image {
        let mean = meas_l.iter().map(|&v| v as f64).sum::<f64>() / meas_l.len() as f64;
        if mean.is_nan() || mean <= 0.0 {
            return Err(Error::arg(OP, "the LTEM image's mean is not positive"));
        }
        meas_l.iter().map(|&v| (v as f64 / mean) as f32).collect()
    } else {
        meas_l.clone()
    };
    let (sigma_lt, lt_est) = match cfg.ltem_noise {
        Some(s) => (s, false),
        None => {
            let s = noise_level(&meas_host, hl, wl)?;
            let rms = (meas_host.iter().map(|&v| (v as f64).powi(2)).sum::<f64>()
                / meas_host.len() as f64)
                .sqrt();
            let floor = 1e-6 * rms.max(1e-30);
            if s > floor {
                (s, true)
            } else {
                warnings.push(format!(
                    "the LTEM map's noise level is ~0 (noise-free?): chi^2 uses {floor:.3e}; give the LTEM noise for a meaningful chi^2"
                ));
                (floor, true)
            }
        }
    };
    let lt = ltem_term(cfg, (h, w), (hl, wl), meas_host.clone(), image)?;
    let (reg, pn) = (&cfg.registration, cfg.geom.pixel * 1e9);
    // ---- the magnetisation
    let mut rng = Rng::new(cfg.seed);
    let net_cfg = cfg.network();
    let net = Cae::new(&net_cfg, &mut rng)?;
    net.to_device(dev)?;
    let d = net_cfg.divisor();
    let hw_net = (h.div_ceil(d) * d, w.div_ceil(d) * d);
    let z = Tensor::randn(&[1, 1, hw_net.0, hw_net.1], &mut rng).to_device(dev)?;
    let c = cfg.channels_out();
    let ms = cfg.ms as f32;
    let source = match cfg.model {
        JointModel::Tanh => {
            let mask: Vec<f32> = (0..c)
                .flat_map(|_| support01.iter().map(|s| s * ms))
                .collect();
            Source::Tanh {
                net,
                z,
                mask: Tensor::from_shape_vec(&[1, c, h, w], mask)?.to_device(dev)?,
            }
        }
        JointModel::Unit => Source::Unit {
            v: UnitParam::Network { net, z },
            support: Tensor::from_shape_vec(&[1, 1, h, w], support01.clone())?.to_device(dev)?,
            ms,
            log_scale: None,
        },
    };
    let setup = Setup {
        cfg: &nv_cfg,
        data: &data,
        support: support01.clone(),
        sigma: sigma_nv,
        ms: cfg.ms,
        hw_net,
    };
    let nv_obj = setup.objective(source, None)?;
    let (n_nv, n_lt) = (data.n_valid as f64, (hl * wl) as f64);
    let (use_nv, use_lt) = match cfg.datasets {
        Datasets::Both => (1.0, 1.0),
        Datasets::Nv => (1.0, 0.0),
        Datasets::Ltem => (0.0, 1.0),
    };
    let n_used = use_nv * n_nv + use_lt * n_lt;
    let mut obj = JointObjective {
        nv: nv_obj,
        lt,
        w_nv: (use_nv * n_nv / (sigma_nv * sigma_nv) / n_used) as f32,
        w_lt: (use_lt * n_lt / (sigma_lt * sigma_lt) / n_used) as f32,
        iv_nv: (1.0 / (sigma_nv * sigma_nv)) as f32,
        iv_lt: (1.0 / (sigma_lt * sigma_lt)) as f32,
        prior: None,
    };
    if let Some((mat, lambda)) = &cfg.energy {
        let energy = Energy::new(
            h,
            w,
            cfg.geom.pixel,
            cfg.geom.thickness,
            &support01,
            mat,
            cfg.geom.pad,
            dev,
        )?;
        let factor = (lambda * 1e3 / energy.scale()) as f32;
        obj.prior = Some((
            Prior {
                energy,
                lambda: *lambda,
            },
            factor,
        ));
    }
    // ---- the optimisers: the network (and the standoff), the registration, the scale
    let mut opts = setup.optimisers(&obj.nv, cfg.lr, cfg.weight_decay);
    let n_base = opts.len();
    let (off_lr, rot_lr) = (cfg.registration_lr.0, cfg.registration_lr.1.to_radians());
    if cfg.fit_registration {
        opts.push(AdamW::new(vec![obj.lt.offset.clone()], off_lr).with_weight_decay(0.0));
        opts.push(AdamW::new(vec![obj.lt.angle.clone()], rot_lr).with_weight_decay(0.0));
    }
    if image && cfg.fit_scale {
        opts.push(AdamW::new(vec![obj.lt.scale.clone()], 1e-3).with_weight_decay(0.0));
    }
    // ---- the fit, in segments. With both data sets: a warm-up on the LTEM data alone, then the NV weight rises geometrically from 1e-3 of its own to all
    // of it by `nv_ramp` (a continuation: the LTEM term keeps its say while the much stiffer
    // NV term takes over the charges); the state is chosen after the ramp.
    const SEGMENTS: usize = 40;
    let both = cfg.datasets == Datasets::Both;
    let (w_nv, w_lt) = (obj.w_nv, obj.w_lt);
    let ramp_end = if both {
        (cfg.nv_ramp * cfg.iters as f64).round() as usize
    } else {
        0
    };
    let mut fit = Fit::new(Selection::LowestLoss { after: ramp_end });
    let mut sched = ReduceLrOnPlateau::new(cfg.plateau.0, cfg.plateau.1, cfg.plateau.2);
    let mut stop = StopReason::Completed;
    let mut done = 0;
    let mut was_ramping = both;
    for seg in 0..SEGMENTS {
        if stop != StopReason::Completed {
            break;
        }
        let until = cfg.iters * (seg + 1) / SEGMENTS;
        if until == done {
            continue;
        }
        let f = done as f64 / cfg.iters as f64;
        let warming = both && f < cfg.warmup;
        let ramping = both && done < ramp_end;
        if both {
            let factor = if warming {
                0.0
            } else if ramping {
                let t = (f - cfg.warmup) / (cfg.nv_ramp - cfg.warmup).max(1e-9);
                10f64.powf(-3.0 * (1.0 - t.clamp(0.0, 1.0)))
            } else {
                1.0
            };
            obj.w_nv = (w_nv as f64 * factor) as f32;
            obj.w_lt = w_lt;
            if warming {
                obj.w_lt = (1.0 / (sigma_lt * sigma_lt)) as f32;
            }
        }
        if was_ramping && !ramping {
            // the loss changed its meaning while ramping: a fresh schedule for the final stage
            sched = ReduceLrOnPlateau::new(cfg.plateau.0, cfg.plateau.1, cfg.plateau.2);
            opts[0].lr = cfg.lr;
            was_ramping = false;
        }
        // the registration: fitted from the start (the support anchors it even while the LTEM
        // term is alone), its learning rates falling to a tenth over the second half
        let decay = if f < 0.5 { 1.0 } else { 1.0 - 1.8 * (f - 0.5) };
        if cfg.fit_registration {
            opts[n_base].lr = off_lr * decay;
            opts[n_base + 1].lr = rot_lr * decay;
        }
        let mut refs: Vec<&mut AdamW> = opts.iter_mut().collect();
        let sched_now = if ramping { None } else { Some(&mut sched) };
        stop = fit.run(until - done, &mut obj, &mut refs, sched_now, &mut |it| {
            observer(&iter_stats(it))
        })?;
        done = until;
    }
    // a run stopped before the final stage returns its last state
    let last = fit.last().cloned();
    let (history, selected) = fit.finish();
    let sel = selected.or(last).ok_or_else(|| {
        Error::arg(
            OP,
            "the loss was not finite at the first iteration: nothing to keep",
        )
    })?;
    let stats = iter_stats(&sel.stats);
    // ---- the returned state, and the null-space test per data set and jointly
    let m = sel.state[0].clone();
    let hw = h * w;
    let mut magnetization = m.to_vec()?;
    magnetization.resize(3 * hw, 0.0);
    let bnv_model = sel.state[1].to_vec()?;
    let (phase_raw, shown) = (sel.state[2].to_vec()?, sel.state[3].to_vec()?);
    let (phase_model, image_model) = if image {
        (phase_raw, Some(shown))
    } else {
        (shown, None)
    };
    // the registration of the selected state: put it back into the parameters for the test
    obj.lt.angle.assign(
        &Tensor::from_shape_vec(&[1], vec![stats.rotation_deg.to_radians() as f32])?
            .to_device(dev)?,
    )?;
    obj.lt.offset.assign(
        &Tensor::from_shape_vec(
            &[2],
            vec![stats.offset_nm[0] as f32, stats.offset_nm[1] as f32],
        )?
        .to_device(dev)?,
    )?;
    obj.lt
        .scale
        .assign(&Tensor::from_shape_vec(&[1], vec![stats.scale as f32])?.to_device(dev)?)?;
    if let Some(d) = &obj.nv.standoff_nm {
        d.assign(&Tensor::scalar((stats.standoff * 1e9) as f32).to_device(dev)?)?;
    }
    let sse = |m: &Tensor| -> Result<(f64, f64)> {
        let [a, b, ..] = no_grad(|| obj.misfits(m))?;
        Ok((a.to_scalar()? as f64 * n_nv, b.to_scalar()? as f64 * n_lt))
    };
    let (sse_nv, sse_lt) = sse(&m)?;
    let flip: Vec<f32> = {
        let mut v = m.to_vec()?;
        v[..2 * hw].iter_mut().for_each(|x| *x = -*x);
        v
    };
    let (flip_nv, flip_lt) = sse(&Tensor::from_shape_vec(m.shape(), flip)?.to_device(dev)?)?;
    let zero =
        Tensor::from_shape_vec(m.shape(), vec![0.0; m.shape().iter().product()])?.to_device(dev)?;
    let (zero_nv, zero_lt) = sse(&zero)?;
    let (v_nv, v_lt) = (sigma_nv * sigma_nv, sigma_lt * sigma_lt);
    // the registration's uncertainty: the curvature of the fitted data's chi^2 in each
    // parameter by central differences, M held (so a lower bound), sigma = sqrt(2 / curvature)
    let registration_sigma = if cfg.fit_registration && use_lt > 0.0 {
        let base = [stats.offset_nm[0], stats.offset_nm[1], stats.rotation_deg];
        let chi2_at = |p: [f64; 3]| -> Result<f64> {
            obj.lt.offset.assign(
                &Tensor::from_shape_vec(&[2], vec![p[0] as f32, p[1] as f32])?.to_device(dev)?,
            )?;
            obj.lt.angle.assign(
                &Tensor::from_shape_vec(&[1], vec![p[2].to_radians() as f32])?.to_device(dev)?,
            )?;
            let (a, b) = sse(&m)?;
            Ok(use_nv * a / v_nv + use_lt * b / v_lt)
        };
        let c0 = chi2_at(base)?;
        let mut sig = [f64::INFINITY; 3];
        for (k, step) in [(0, 0.25 * pn), (1, 0.25 * pn), (2, 0.25)] {
            let (mut lo, mut hi) = (base, base);
            lo[k] -= step;
            hi[k] += step;
            let curv = (chi2_at(hi)? - 2.0 * c0 + chi2_at(lo)?) / (step * step);
            if curv > 0.0 {
                sig[k] = (2.0 / curv).sqrt();
            }
        }
        chi2_at(base)?;
        Some(([sig[0], sig[1]], sig[2]))
    } else {
        None
    };
    let report = |sigma, est, n: f64, sse: f64, zero: f64, flip: f64, var: f64| DatasetReport {
        sigma,
        sigma_estimated: est,
        pixels: n as usize,
        chi2_per_pixel: sse / var / n,
        zero_chi2_per_pixel: zero / var / n,
        flip_delta_chi2: (flip - sse) / var,
        determines_sense: (flip - sse) / var > 9.0,
    };
    let nv = report(sigma_nv, nv_est, n_nv, sse_nv, zero_nv, flip_nv, v_nv);
    let ltr = report(sigma_lt, lt_est, n_lt, sse_lt, zero_lt, flip_lt, v_lt);
    let joint_flip = nv.flip_delta_chi2 + ltr.flip_delta_chi2;
    // ---- warnings
    let used = |d: Datasets| cfg.datasets == Datasets::Both || cfg.datasets == d;
    for (name, r, d) in [("NV", &nv, Datasets::Nv), ("LTEM", &ltr, Datasets::Ltem)] {
        if !used(d) {
            continue;
        }
        if r.chi2_per_pixel >= r.zero_chi2_per_pixel {
            warnings.push(format!(
                "the {name} data are explained no better than by zero magnetisation (chi^2 per pixel {:.3} vs {:.3})",
                r.chi2_per_pixel, r.zero_chi2_per_pixel
            ));
        } else if r.chi2_per_pixel > 4.0 {
            warnings.push(format!(
                "the {name} data are not explained down to their noise level (chi^2 per pixel {:.2}): model error, a wrong geometry or a misregistration",
                r.chi2_per_pixel
            ));
        }
    }
    if cfg.fit_registration {
        let fov = (hl.min(wl) as f64) * cfg.microscope.scale;
        let moved = ((stats.offset_nm[0] - reg.offset_nm[0]).powi(2)
            + (stats.offset_nm[1] - reg.offset_nm[1]).powi(2))
        .sqrt();
        if moved > 0.25 * fov {
            warnings.push(format!(
                "the registration moved by {moved:.1} nm, more than a quarter of the LTEM field of view: give a closer start"
            ));
        }
    }
    if let Some((off, rot)) = registration_sigma {
        if rot > 0.5 {
            warnings.push(format!(
                "the rotation between the grids is poorly determined by the data (sigma {rot:.2} deg with M held, a lower bound): the element looks nearly the same rotated; the returned M is unaffected only where that symmetry holds"
            ));
        }
        if off[0].max(off[1]) > 0.5 * pn {
            warnings.push(format!(
                "the offset between the grids is not determined to half an NV pixel (sigma {:.2}, {:.2} nm)",
                off[0], off[1]
            ));
        }
    }
    if cfg.datasets == Datasets::Both && (joint_flip.is_nan() || joint_flip <= 9.0) {
        warnings.push(
            "the in-plane sense is not determined even by both data sets together".to_string(),
        );
    }
    Ok(JointResult {
        magnetization,
        bnv_model,
        phase_model,
        image_model,
        ltem_data: meas_host,
        registration: Registration {
            offset_nm: stats.offset_nm,
            rotation_deg: stats.rotation_deg,
        },
        registration_sigma,
        standoff: stats.standoff,
        scale: stats.scale,
        nv,
        ltem: ltr,
        joint_flip_delta_chi2: joint_flip,
        joint_determines_sense: joint_flip > 9.0,
        history: history.iter().map(iter_stats).collect(),
        stop,
        selected_iteration: sel.iter,
        warnings,
    })
}

/// Simulated measurements of one magnetisation for the joint reconstruction (see [`simulate`]).
#[derive(Clone, Debug)]
pub struct Simulated {
    /// Noisy B_NV (h, w) T.
    pub bnv: Vec<f32>,
    /// The NV noise level (T).
    pub nv_sigma: f64,
    /// The exact magnetic phase on the LTEM grid (hl, wl) rad.
    pub phase: Vec<f32>,
    /// The noisy defocused image (hl, wl), mean ~1.
    pub image: Vec<f32>,
}

/// Simulates both measurements of a magnetisation `m` (3, h, w) A/m on the NV grid (pixel
/// `geom.pixel`, film `geom.thickness`): B_NV by the NV forward model with Gaussian noise of
/// `nv_noise` x its peak |B_NV|; the magnetic phase on an `(hl, wl)` LTEM grid of pixel
/// `mic.scale` nm placed by `reg`, computed exactly in real space
/// ([`magnetic_phase_at`](crate::physics::ltem::forward::magnetic_phase_at): no FFT, no
/// resampling of M, so not the reconstruction's own path), and its image through `mic`
/// (periodic) with Gaussian noise of `image_noise` x its mean.
#[allow(clippy::too_many_arguments)]
pub fn simulate(
    m: &[f32],
    h: usize,
    w: usize,
    geom: &NvGeometry,
    mic: &Microscope,
    hl: usize,
    wl: usize,
    reg: &Registration,
    nv_noise: f64,
    image_noise: f64,
    seed: u64,
) -> Result<Simulated> {
    const OP: &str = "joint simulate";
    if m.len() != 3 * h * w {
        return Err(Error::arg(OP, format!("M must be (3, {h}, {w})")));
    }
    geom.validate()?;
    mic.validate()?;
    let fwd = crate::physics::nv::forward::NvForward::new(h, w, geom)?;
    let clean =
        no_grad(|| fwd.bnv(&Tensor::from_shape_vec(&[1, 3, h, w], m.to_vec())?))?.to_vec()?;
    let peak = clean.iter().fold(0f64, |a, &v| a.max((v as f64).abs()));
    let nv_sigma = nv_noise * peak;
    let mut rng = Rng::new(seed);
    let bnv = clean
        .iter()
        .map(|&v| (v as f64 + nv_sigma * rng.normal()) as f32)
        .collect();
    let pn = geom.pixel * 1e9;
    let pl = mic.scale;
    let (c, s) = (
        reg.rotation_deg.to_radians().cos(),
        reg.rotation_deg.to_radians().sin(),
    );
    let (cxl, cyl) = ((wl as f64 - 1.0) / 2.0, (hl as f64 - 1.0) / 2.0);
    let (cxn, cyn) = ((w as f64 - 1.0) / 2.0 * pn, (h as f64 - 1.0) / 2.0 * pn);
    let points: Vec<[f64; 2]> = (0..hl * wl)
        .map(|k| {
            let (x, y) = (((k % wl) as f64 - cxl) * pl, ((k / wl) as f64 - cyl) * pl);
            [
                c * x - s * y + reg.offset_nm[0] + cxn,
                s * x + c * y + reg.offset_nm[1] + cyn,
            ]
        })
        .collect();
    // (dx My - dy Mx) is the z component of a cross product: the same in every frame, so the
    // phase at the LTEM points is evaluated in the NV frame with the NV components
    let hw = h * w;
    let exact = crate::physics::ltem::forward::magnetic_phase_at(
        &m[..hw],
        &m[hw..2 * hw],
        h,
        w,
        pn,
        geom.thickness * 1e9,
        &points,
    )?;
    let mean = exact.iter().sum::<f64>() / exact.len() as f64;
    let phase: Vec<f32> = exact.iter().map(|&v| (v - mean) as f32).collect();
    let op = LtemForward::new(hl, wl, mic, 1)?;
    let mut image = op.image_of(&phase, None)?;
    crate::physics::ltem::forward::add_noise(&mut image, image_noise, None, pl, &mut rng)?;
    Ok(Simulated {
        bnv,
        nv_sigma,
        phase,
        image,
    })
}

/// The circulation of an in-plane magnetisation (3 or 2, h, w) about the centroid of its
/// support (h, w; > 0.5 inside): the mean over the support of the azimuthal component
/// `m_phi = (-(y - yc) mx + (x - xc) my) / r` of the unit in-plane direction, weighted by
/// `|M_inplane|` (x = column, y = row): +1 for a perfect counter-clockwise vortex (y up the
/// rows), -1 clockwise, ~0 for a state without circulation.
pub fn circulation(m: &[f32], h: usize, w: usize, support: &[f32]) -> f64 {
    let hw = h * w;
    if m.len() < 2 * hw || support.len() != hw {
        return f64::NAN;
    }
    let inside: Vec<usize> = (0..hw).filter(|&i| support[i] > 0.5).collect();
    if inside.is_empty() {
        return f64::NAN;
    }
    let n = inside.len() as f64;
    let xc = inside.iter().map(|&i| (i % w) as f64).sum::<f64>() / n;
    let yc = inside.iter().map(|&i| (i / w) as f64).sum::<f64>() / n;
    let (mut num, mut den) = (0.0, 0.0);
    for &i in &inside {
        let (dx, dy) = ((i % w) as f64 - xc, (i / w) as f64 - yc);
        let r = dx.hypot(dy);
        let (mx, my) = (m[i] as f64, m[hw + i] as f64);
        let a = mx.hypot(my);
        if r < 1e-9 || a == 0.0 {
            continue;
        }
        num += (-dy * mx + dx * my) / r;
        den += a;
    }
    if den > 0.0 {
        num / den
    } else {
        0.0
    }
}
