//! `magprior.ltem`'s native functions: simulation, image formation, SITIE, SIPRAD (single
//! image, focal series, time series), induction. The microscope arrives as a dict in SI units
//! (PyLorentz-like names), converted here to the library's nm.

use crate::convert::{array, bad, input, map, pick, to_py_err, vec64};
use crate::nv::opt;
use crate::observe::Observer;
use magprior::ltem::{
    self, AmplitudeMode, AmplitudeSource, LtemForward, Microscope, Selection, SipradConfig,
    SipradResult, SitieConfig, Stage,
};
use magprior::Rng;
use numpy::PyReadonlyArrayDyn;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

/// The library's microscope from `mic` (`E` V, `Cs` m, `theta_c` rad, `def_spr` m, `Ca` m,
/// `phi_a` rad, `aperture` rad or None) with the pixel `scale` (m) and `defocus` (m).
fn microscope(mic: &Bound<'_, PyDict>, scale: f64, defocus: f64) -> PyResult<Microscope> {
    let e: f64 = opt(mic, "E")?;
    let m = Microscope {
        kv: e / 1e3,
        cs: opt::<f64>(mic, "Cs")? * 1e9,
        theta_c: opt(mic, "theta_c")?,
        spread: opt::<f64>(mic, "def_spr")? * 1e9,
        ca: opt::<f64>(mic, "Ca")? * 1e9,
        phi_a: opt(mic, "phi_a")?,
        defocus: defocus * 1e9,
        scale: scale * 1e9,
        aperture: opt(mic, "aperture")?,
    };
    m.validate().map_err(to_py_err)?;
    Ok(m)
}

/// The magnetisation `(2|3, H, W)` A/m of a film `thickness` (m) -> phase, induction, images.
#[pyfunction]
fn ltem_simulate<'py>(
    py: Python<'py>,
    magnetization: PyReadonlyArrayDyn<'py, f32>,
    mic: &Bound<'py, PyDict>,
    opts: &Bound<'py, PyDict>,
) -> PyResult<Bound<'py, PyDict>> {
    let (m, s) = input(&magnetization, "magnetization")?;
    let [c, h, w] = s[..] else {
        return Err(bad(
            "magnetization",
            format!("expected a (2|3, H, W) magnetisation in A/m, got shape {s:?}"),
        ));
    };
    if !(2..=3).contains(&c) || h < 2 || w < 2 {
        return Err(bad(
            "magnetization",
            format!("expected a (2|3, H, W) magnetisation in A/m, got shape {s:?}"),
        ));
    }
    let mic = microscope(mic, opt(opts, "scale")?, opt(opts, "defocus")?)?;
    let thickness: f64 = opt(opts, "thickness")?;
    let (tilt_x, tilt_y): (f64, f64) = (opt(opts, "tilt_x")?, opt(opts, "tilt_y")?);
    let layers: usize = opt(opts, "layers")?;
    let noise: f64 = opt(opts, "noise")?;
    let dose: Option<f64> = opt(opts, "dose")?;
    let seed: u64 = opt(opts, "seed")?;
    let pad: usize = opt(opts, "pad")?;
    let out = py
        .detach(|| -> magprior::Result<_> {
            let t_nm = thickness * 1e9;
            let phase = ltem::min_subtracted(if tilt_x != 0.0 || tilt_y != 0.0 {
                let mut m3 = m.clone();
                m3.resize(3 * h * w, 0.0);
                let tilt = ltem::Tilt {
                    x_deg: tilt_x,
                    y_deg: tilt_y,
                };
                ltem::magnetic_phase_tilted(&m3, h, w, layers, t_nm, mic.scale, tilt)?
            } else {
                ltem::magnetic_phase(&m[..h * w], &m[h * w..2 * h * w], h, w, t_nm, mic.scale)?
            });
            let b = ltem::induction(&phase, h, w, mic.scale)?;
            let clean = LtemForward::new(h, w, &mic, pad)?.image_of(&phase, None)?;
            let mut image = clean.clone();
            ltem::add_noise(&mut image, noise, dose, mic.scale, &mut Rng::new(seed))?;
            Ok((phase, b, clean, image))
        })
        .map_err(to_py_err)?;
    let d = PyDict::new(py);
    d.set_item("phase", array(py, out.0, &[h, w])?)?;
    d.set_item("induction", array(py, out.1, &[2, h, w])?)?;
    d.set_item("image_clean", array(py, out.2, &[h, w])?)?;
    d.set_item("image", array(py, out.3, &[h, w])?)?;
    Ok(d)
}

/// Phase (H, W) rad (and amplitude) -> the defocused image.
#[pyfunction]
#[pyo3(signature = (phase, mic, scale, defocus, pad, amplitude=None))]
fn ltem_forward<'py>(
    py: Python<'py>,
    phase: PyReadonlyArrayDyn<'py, f32>,
    mic: &Bound<'py, PyDict>,
    scale: f64,
    defocus: f64,
    pad: usize,
    amplitude: Option<PyReadonlyArrayDyn<'py, f32>>,
) -> PyResult<Bound<'py, PyAny>> {
    let (p, h, w) = map(&phase, "phase")?;
    let amp = map_like(amplitude.as_ref(), "amplitude", h, w, "phase")?;
    let mic = microscope(mic, scale, defocus)?;
    let img = py
        .detach(|| LtemForward::new(h, w, &mic, pad)?.image_of(&p, amp.as_deref()))
        .map_err(to_py_err)?;
    array(py, img, &[h, w])
}

/// SITIE phase of one image.
#[pyfunction]
#[pyo3(signature = (image, mic, scale, defocus, symmetric, qc=None))]
fn ltem_sitie<'py>(
    py: Python<'py>,
    image: PyReadonlyArrayDyn<'py, f32>,
    mic: &Bound<'py, PyDict>,
    scale: f64,
    defocus: f64,
    symmetric: bool,
    qc: Option<f64>,
) -> PyResult<Bound<'py, PyAny>> {
    let (img, h, w) = map(&image, "image")?;
    let mic = microscope(mic, scale, defocus)?;
    let cfg = SitieConfig { qc, symmetric };
    let p = py
        .detach(|| ltem::sitie(&img, h, w, &mic, &cfg))
        .map_err(to_py_err)?;
    array(py, p, &[h, w])
}

/// `(Bx t, By t)` (2, H, W) in T m from a phase (H, W) rad with pixel `scale` (m).
#[pyfunction]
fn ltem_induction<'py>(
    py: Python<'py>,
    phase: PyReadonlyArrayDyn<'py, f32>,
    scale: f64,
) -> PyResult<Bound<'py, PyAny>> {
    let (p, h, w) = map(&phase, "phase")?;
    if !(scale.is_finite() && scale > 0.0) {
        return Err(bad("scale", format!("must be positive, got {scale}")));
    }
    let b = ltem::induction(&p, h, w, scale * 1e9).map_err(to_py_err)?;
    array(py, b, &[2, h, w])
}

/// SIPRAD settings, as `ltem reconstruct` builds them from its flags.
fn config(o: &Bound<'_, PyDict>, mic: &Microscope) -> PyResult<SipradConfig> {
    let select: String = opt(o, "select")?;
    let track_after: usize = opt(o, "track_after")?;
    let holdout: Option<f64> = opt(o, "holdout")?;
    let selection = pick(
        "select",
        &select,
        &[
            ("validation", Selection::Validation { after: track_after }),
            ("lowest-loss", Selection::LowestLoss { after: track_after }),
            ("last", Selection::Last),
        ],
    )?;
    let holdout = match (&selection, holdout) {
        (Selection::Validation { .. }, None) => 0.1,
        (_, f) => f.unwrap_or(0.0),
    };
    let threshold: Option<f64> = opt(o, "amp_threshold")?;
    let smoothing: Option<f64> = opt(o, "amp_smoothing")?;
    let infocus: Option<Vec<f32>> = opt(o, "infocus")?;
    let mask: Option<Vec<bool>> = opt(o, "amp_mask")?;
    let solve_amp: bool = opt(o, "solve_amp")?;
    let source = match (infocus, mask, threshold) {
        (Some(_), Some(_), _) => return Err(bad("infocus", "give infocus or amp_mask, not both")),
        (Some(image), None, t) => Some(AmplitudeSource::Infocus {
            image,
            threshold: t.unwrap_or(0.7),
            smoothing,
        }),
        (None, Some(m), _) => Some(AmplitudeSource::Mask(m)),
        (None, None, Some(threshold)) => Some(AmplitudeSource::Image {
            threshold,
            smoothing,
        }),
        (None, None, None) => None,
    };
    let amplitude = match (source, solve_amp) {
        (None, false) => AmplitudeMode::Uniform,
        (None, true) => {
            return Err(bad(
                "solve_amp",
                "needs an initial amplitude (amp_threshold, infocus or amp_mask)",
            ))
        }
        (Some(s), false) => AmplitudeMode::Fixed(s),
        (Some(s), true) => AmplitudeMode::Learned(s),
    };
    let device: String = opt(o, "device")?;
    let xi: f64 = opt(o, "xi")?;
    let cfg = SipradConfig {
        iters: opt(o, "iters")?,
        pretrain: opt(o, "pretrain")?,
        lr: opt(o, "lr")?,
        noise_frac: opt(o, "noise_frac")?,
        sigma: opt(o, "sigma")?,
        selection,
        holdout,
        average: opt(o, "average")?,
        amp_scale_lr: opt(o, "amp_scale_lr")?,
        amplitude,
        v0: opt(o, "v0")?,
        xi: xi * 1e9,
        learn_kappa: opt(o, "learn_kappa")?,
        kappa_lr: opt(o, "kappa_lr")?,
        sitie: SitieConfig {
            qc: opt(o, "qc")?,
            symmetric: !opt::<bool>(o, "periodic_input")?,
        },
        seed: opt(o, "seed")?,
        channels: opt(o, "channels")?,
        kernel: opt(o, "kernel")?,
        pad: opt(o, "pad")?,
        device: crate::device(&device)?.0,
        ..Default::default()
    };
    cfg.validate_with(mic).map_err(to_py_err)?;
    Ok(cfg)
}

/// A SIPRAD result as a dict (what `ltem reconstruct` writes).
fn result_dict<'py>(
    py: Python<'py>,
    res: &SipradResult,
    mic: &Microscope,
    h: usize,
    w: usize,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let b = ltem::induction(&res.phase, h, w, mic.scale).map_err(to_py_err)?;
    d.set_item("phase", array(py, res.phase.clone(), &[h, w])?)?;
    d.set_item("phase_raw", array(py, res.phase_raw.clone(), &[h, w])?)?;
    d.set_item("sitie", array(py, res.sitie.clone(), &[h, w])?)?;
    d.set_item("induction", array(py, b, &[2, h, w])?)?;
    d.set_item("image_model", array(py, res.image_model.clone(), &[h, w])?)?;
    match &res.amplitude {
        Some(a) => d.set_item("amplitude", array(py, a.clone(), &[h, w])?)?,
        None => d.set_item("amplitude", py.None())?,
    }
    match &res.amplitude_init {
        Some(m) => d.set_item("amplitude_init", array(py, m.amplitude.clone(), &[h, w])?)?,
        None => d.set_item("amplitude_init", py.None())?,
    }
    match &res.amplitude_mask {
        Some(m) => {
            let v: Vec<f32> = m.iter().map(|&b| b as u8 as f32).collect();
            d.set_item("amplitude_mask", array(py, v, &[h, w])?)?
        }
        None => d.set_item("amplitude_mask", py.None())?,
    }
    d.set_item("warnings", res.warnings.clone())?;
    let all: Vec<_> = res.pretrain_history.iter().chain(&res.history).collect();
    let hist = PyDict::new(py);
    hist.set_item(
        "stage",
        all.iter()
            .map(|s| match s.stage {
                Stage::Pretrain => "pretrain",
                Stage::Fit => "fit",
            })
            .collect::<Vec<_>>(),
    )?;
    let col = |f: &dyn Fn(&ltem::Stats) -> f64| vec64(py, all.iter().map(|s| f(s)).collect());
    hist.set_item("iter", col(&|s| s.iter as f64))?;
    hist.set_item("loss", col(&|s| s.loss))?;
    hist.set_item("val_loss", col(&|s| s.val_loss))?;
    hist.set_item("amp_scale", col(&|s| s.amp_scale))?;
    hist.set_item("seconds", col(&|s| s.seconds))?;
    d.set_item("history", hist)?;
    let iters = res.history.len();
    let m = PyDict::new(py);
    m.set_item(
        "final_loss",
        res.history.last().map_or(f64::NAN, |s| s.loss),
    )?;
    m.set_item(
        "selected_loss",
        res.history
            .iter()
            .find(|s| s.iter == res.selected_iter)
            .map_or(f64::NAN, |s| s.loss),
    )?;
    m.set_item("selected_iteration", res.selected_iter)?;
    m.set_item("iterations", iters)?;
    m.set_item("pretrain_iterations", res.pretrain_history.len())?;
    m.set_item("seconds", res.seconds)?;
    m.set_item("seconds_per_iteration", res.seconds / iters.max(1) as f64)?;
    m.set_item("amp_scale", res.amp_scale)?;
    m.set_item("stop", res.stop.to_string())?;
    m.set_item("network_size", res.network_size)?;
    if let Some(init) = &res.amplitude_init {
        let frac = res.amplitude_area_fraction().unwrap_or(init.area_fraction);
        m.set_item("amplitude_area_fraction", frac)?;
        m.set_item("amplitude_init_area_fraction", init.area_fraction)?;
        m.set_item("amplitude_init_levels", init.levels.clone())?;
        m.set_item("amplitude_smoothing_px", init.smoothing)?;
        m.set_item("image_noise_estimate", init.noise)?;
        m.set_item("kappa", res.kappa)?;
    }
    m.set_item("warnings", res.warnings.clone())?;
    d.set_item("metrics", m)?;
    Ok(d)
}

/// Adds the accuracy against a true phase to a result's metrics.
fn add_truth(
    d: &Bound<'_, PyDict>,
    res: &SipradResult,
    truth: &[f32],
    h: usize,
    w: usize,
    scale_nm: f64,
) -> PyResult<()> {
    let py = d.py();
    let acc = |p: &[f32], border: bool| -> PyResult<Bound<'_, PyDict>> {
        let a = ltem::accuracy(p, truth, h, w, scale_nm, border).map_err(to_py_err)?;
        let x = PyDict::new(py);
        x.set_item("phase", a.phase)?;
        x.set_item("bx", a.bx)?;
        x.set_item("by", a.by)?;
        x.set_item("ssim", a.ssim)?;
        Ok(x)
    };
    let m = d
        .get_item("metrics")?
        .ok_or_else(|| bad("metrics", "missing"))?;
    m.set_item("accuracy", acc(&res.phase, true)?)?;
    m.set_item("accuracy_full_frame", acc(&res.phase, false)?)?;
    m.set_item("sitie_input_accuracy", acc(&res.sitie, true)?)?;
    if let Some(mask) = &res.amplitude_mask {
        let v = ltem::metrics::pearson_outside(&res.phase, truth, mask, (h, w), 4, true)
            .map_err(to_py_err)?;
        m.set_item("phase_accuracy_outside_amplitude", v)?;
    }
    Ok(())
}

/// An image (H, W) or a focal series (N, H, W) with one defocus each: `(data, n, h, w)`.
fn images(
    image: &PyReadonlyArrayDyn<'_, f32>,
    defoci: Option<&[f64]>,
) -> PyResult<(Vec<f32>, usize, usize, usize)> {
    let (data, s) = input(image, "image")?;
    let (n, h, w) = match s[..] {
        [h, w] => (1, h, w),
        [n, h, w] => (n, h, w),
        _ => {
            return Err(bad(
                "image",
                format!("expected an (H, W) image or an (N, H, W) focal series, got shape {s:?}"),
            ))
        }
    };
    if h < 2 || w < 2 {
        return Err(bad("image", format!("too small: shape {s:?}")));
    }
    if n > 1 && defoci.is_none_or(|d| d.len() != n) {
        return Err(bad(
            "defoci",
            format!("a focal series of {n} images needs {n} defoci"),
        ));
    }
    Ok((data, n, h, w))
}

/// An optional (H, W) map `what` of the size of `other`'s.
fn map_like(
    a: Option<&PyReadonlyArrayDyn<'_, f32>>,
    what: &str,
    h: usize,
    w: usize,
    other: &str,
) -> PyResult<Option<Vec<f32>>> {
    let Some(a) = a else {
        return Ok(None);
    };
    let (v, ah, aw) = map(a, what)?;
    if (ah, aw) != (h, w) {
        return Err(bad(
            what,
            format!("{ah}x{aw} does not match the {other}'s {h}x{w}"),
        ));
    }
    Ok(Some(v))
}

/// One SIPRAD reconstruction from an image (H, W), or a focal series (N, H, W) with `defoci`.
#[pyfunction]
#[pyo3(signature = (image, mic, opts, defoci=None, truth=None, callback=None))]
#[allow(clippy::too_many_arguments)]
fn ltem_reconstruct<'py>(
    py: Python<'py>,
    image: PyReadonlyArrayDyn<'py, f32>,
    mic: &Bound<'py, PyDict>,
    opts: &Bound<'py, PyDict>,
    defoci: Option<Vec<f64>>,
    truth: Option<PyReadonlyArrayDyn<'py, f32>>,
    callback: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let (data, n, h, w) = images(&image, defoci.as_deref())?;
    let mic = microscope(mic, opt(opts, "scale")?, opt(opts, "defocus")?)?;
    let cfg = config(opts, &mic)?;
    let truth = map_like(truth.as_ref(), "truth", h, w, "image")?;
    let mut obs = Observer::new(callback, cfg.pretrain + cfg.iters);
    let pretrain = cfg.pretrain;
    let res = py.detach(|| {
        let mut f = |st: &ltem::Stats| {
            let (stage, i) = match st.stage {
                Stage::Pretrain => ("pretrain", st.iter),
                Stage::Fit => ("fit", pretrain + st.iter),
            };
            obs.tick(stage, i, st.loss, &[("amp_scale", st.amp_scale)])
        };
        if n > 1 {
            let frames: Vec<&[f32]> = data.chunks(h * w).collect();
            let dnm: Vec<f64> = defoci.iter().flatten().map(|d| d * 1e9).collect();
            ltem::reconstruct_focal_series(&frames, &dnm, h, w, &mic, &cfg, &mut f)
        } else {
            ltem::reconstruct(&data, h, w, &mic, &cfg, &mut f)
        }
    });
    let interrupted = obs.finish()?;
    let res = res.map_err(to_py_err)?;
    let d = result_dict(py, &res, &mic, h, w)?;
    if let Some(t) = &truth {
        add_truth(&d, &res, t, h, w, mic.scale)?;
    }
    d.set_item("interrupted", interrupted)?;
    Ok(d)
}

/// A SIPRAD ensemble of `members` runs (seeds `seed, seed + 1, ...`) on an image (H, W) or a
/// focal series (N, H, W) with `defoci`: the spread arrays, the members' result dicts, metrics
/// (with `truth`: the accuracy of the mean and the 5-95 % band's coverage).
#[pyfunction]
#[pyo3(signature = (image, mic, opts, members, defoci=None, truth=None, callback=None))]
#[allow(clippy::too_many_arguments)]
fn ltem_ensemble<'py>(
    py: Python<'py>,
    image: PyReadonlyArrayDyn<'py, f32>,
    mic: &Bound<'py, PyDict>,
    opts: &Bound<'py, PyDict>,
    members: usize,
    defoci: Option<Vec<f64>>,
    truth: Option<PyReadonlyArrayDyn<'py, f32>>,
    callback: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let (data, n, h, w) = images(&image, defoci.as_deref())?;
    let mic = microscope(mic, opt(opts, "scale")?, opt(opts, "defocus")?)?;
    let cfg = config(opts, &mic)?;
    let truth = map_like(truth.as_ref(), "truth", h, w, "image")?;
    let per = cfg.pretrain + cfg.iters;
    let mut obs = Observer::new(callback, per * members);
    let pretrain = cfg.pretrain;
    let res = py.detach(|| {
        let frames: Vec<&[f32]> = data.chunks(h * w).collect();
        let dnm: Vec<f64> = defoci.iter().flatten().map(|d| d * 1e9).collect();
        let d = (n > 1).then_some(&dnm[..]);
        ltem::reconstruct_ensemble(&frames, d, h, w, &mic, &cfg, members, &mut |k, st| {
            let i = match st.stage {
                Stage::Pretrain => st.iter,
                Stage::Fit => pretrain + st.iter,
            };
            obs.tick("member", k * per + i, st.loss, &[("member", k as f64)])
        })
    });
    let interrupted = obs.finish()?;
    let ens = res.map_err(to_py_err)?;
    let out = PyDict::new(py);
    let (p, b) = (&ens.phase, &ens.induction);
    for (k, v) in [
        ("phase", &p.mean),
        ("phase_std", &p.std),
        ("phase_q05", &p.q05),
        ("phase_q95", &p.q95),
    ] {
        out.set_item(k, array(py, v.clone(), &[h, w])?)?;
    }
    for (k, v) in [
        ("induction", &b.mean),
        ("induction_std", &b.std),
        ("induction_q05", &b.q05),
        ("induction_q95", &b.q95),
    ] {
        out.set_item(k, array(py, v.clone(), &[2, h, w])?)?;
    }
    let list = PyList::empty(py);
    for (k, r) in ens.members.iter().enumerate() {
        let d = result_dict(py, r, &mic, h, w)?;
        if let Some(t) = &truth {
            add_truth(&d, r, t, h, w, mic.scale)?;
        }
        d.set_item("seed", ltem::member_seed(cfg.seed, k))?;
        list.append(d)?;
    }
    out.set_item("members", list)?;
    let (lm, ls) = ens.loss_spread();
    let mt = PyDict::new(py);
    mt.set_item("members", ens.members.len())?;
    mt.set_item("final_loss_mean", lm)?;
    mt.set_item("final_loss_std", ls)?;
    mt.set_item("stop", ens.stop.to_string())?;
    if let Some(t) = &truth {
        let keep = ltem::metrics::interior(h, w);
        let tb = ltem::induction(t, h, w, mic.scale).map_err(to_py_err)?;
        let keep2: Vec<bool> = keep.iter().chain(&keep).copied().collect();
        let acc = ltem::accuracy(&p.mean, t, h, w, mic.scale, true).map_err(to_py_err)?;
        mt.set_item("accuracy_phase", acc.phase)?;
        mt.set_item(
            "coverage_phase",
            p.coverage(t, Some(&keep)).map_err(to_py_err)?,
        )?;
        mt.set_item(
            "coverage_induction",
            b.coverage(&tb, Some(&keep2)).map_err(to_py_err)?,
        )?;
    }
    out.set_item("metrics", mt)?;
    out.set_item("interrupted", interrupted)?;
    Ok(out)
}

/// SIPRAD on a time series (N, H, W), each frame warm-started from the previous one; frames
/// aligned first when `align` names a reference.
#[pyfunction]
#[pyo3(signature = (frames, mic, opts, callback=None))]
fn ltem_series<'py>(
    py: Python<'py>,
    frames: PyReadonlyArrayDyn<'py, f32>,
    mic: &Bound<'py, PyDict>,
    opts: &Bound<'py, PyDict>,
    callback: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let (data, s) = input(&frames, "frames")?;
    let [n, h, w] = s[..] else {
        return Err(bad(
            "frames",
            format!("expected an (N, H, W) stack, got shape {s:?}"),
        ));
    };
    if n == 0 || h < 2 || w < 2 {
        return Err(bad(
            "frames",
            format!("expected an (N, H, W) stack, got shape {s:?}"),
        ));
    }
    let mic = microscope(mic, opt(opts, "scale")?, opt(opts, "defocus")?)?;
    let cfg = config(opts, &mic)?;
    let align: String = opt(opts, "align")?;
    let reference = pick(
        "align",
        &align,
        &[
            (
                "running",
                Some(ltem::AlignReference::Running { weight: 0.3 }),
            ),
            ("first", Some(ltem::AlignReference::First)),
            ("previous", Some(ltem::AlignReference::Previous)),
            ("none", None),
        ],
    )?;
    let frames: Vec<Vec<f32>> = data.chunks(h * w).map(<[f32]>::to_vec).collect();
    for (k, f) in frames.iter().enumerate() {
        if f.iter().map(|&v| v as f64).sum::<f64>() <= 0.0 {
            return Err(bad(
                "frames",
                format!("frame {k}: the mean intensity must be positive"),
            ));
        }
    }
    let total = cfg.pretrain + cfg.iters * n;
    let mut obs = Observer::new(callback, total);
    let out = py.detach(|| -> magprior::Result<_> {
        let (frames, shifts) = match reference {
            None => (frames, Vec::new()),
            Some(r) => {
                let sh = ltem::align_stack(&frames, h, w, r, 20)?;
                let aligned = frames
                    .iter()
                    .zip(&sh)
                    .map(|(f, s)| ltem::apply_shift(f, h, w, s.dy, s.dx))
                    .collect::<magprior::Result<Vec<_>>>()?;
                (aligned, sh)
            }
        };
        let mut done = 0usize;
        let results = ltem::reconstruct_series(&frames, h, w, &mic, &cfg, &mut |_k, st| {
            done += 1;
            obs.tick(
                "series",
                done.min(total),
                st.loss,
                &[("amp_scale", st.amp_scale)],
            )
        })?;
        Ok((results, shifts))
    });
    let interrupted = obs.finish()?;
    let (results, shifts) = out.map_err(to_py_err)?;
    let d = PyDict::new(py);
    let list = PyList::empty(py);
    for r in &results {
        list.append(result_dict(py, r, &mic, h, w)?)?;
    }
    d.set_item("frames", list)?;
    d.set_item(
        "shifts",
        shifts
            .iter()
            .map(|s| (s.dy, s.dx, s.peak))
            .collect::<Vec<_>>(),
    )?;
    d.set_item("interrupted", interrupted)?;
    Ok(d)
}

/// The relativistic electron wavelength (m) at an accelerating voltage `e` (V).
#[pyfunction]
fn ltem_wavelength(e: f64) -> PyResult<f64> {
    if !(e.is_finite() && e > 0.0) {
        return Err(bad(
            "E",
            format!("the accelerating voltage must be positive, got {e}"),
        ));
    }
    Ok(ltem::wavelength_nm(e / 1e3) * 1e-9)
}

/// A synthetic in-plane texture (2, n, n) in A/m: `"bubbles"` (a Bloch bubble lattice) or
/// `"stripes"`.
#[pyfunction]
fn ltem_texture<'py>(
    py: Python<'py>,
    kind: &str,
    n: usize,
    ms: f64,
    seed: u64,
) -> PyResult<Bound<'py, PyAny>> {
    let k = match kind {
        "bubbles" => ltem::synthetic::Texture::Bubbles,
        "stripes" => ltem::synthetic::Texture::Stripes,
        other => {
            return Err(bad(
                "kind",
                format!("{other:?}: expected bubbles or stripes"),
            ))
        }
    };
    if n < 8 {
        return Err(bad("n", format!("must be at least 8, got {n}")));
    }
    array(py, ltem::synthetic::texture(k, n, ms, seed), &[2, n, n])
}

/// Registers the functions.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(ltem_texture, m)?)?;
    m.add_function(wrap_pyfunction!(ltem_wavelength, m)?)?;
    m.add_function(wrap_pyfunction!(ltem_simulate, m)?)?;
    m.add_function(wrap_pyfunction!(ltem_forward, m)?)?;
    m.add_function(wrap_pyfunction!(ltem_sitie, m)?)?;
    m.add_function(wrap_pyfunction!(ltem_induction, m)?)?;
    m.add_function(wrap_pyfunction!(ltem_reconstruct, m)?)?;
    m.add_function(wrap_pyfunction!(ltem_ensemble, m)?)?;
    m.add_function(wrap_pyfunction!(ltem_series, m)?)?;
    Ok(())
}
