//! `magprior.nv`'s native functions: forward model, deprojection, classical inversion,
//! supports and masks, NV-DIP reconstruction and sweeps. Settings arrive as one dict with every
//! key filled by the Python wrapper (which holds the CLI's defaults).

use crate::convert::{array, bad, input, map, pick, to_py_err, vec64};
use crate::observe::Observer;
use magprior::nv::{
    self, mask, DirectionSpec, EnergyConfig, Filter, InversionConfig, MaskSpec, Material,
    ModelBackground, NvForward, NvGeometry, NvModel, NvReconConfig, NvResult, NvTarget, Preset,
    SupportFrom, SweepConfig, UnitParametrisation,
};
use magprior::Tensor;
use numpy::PyReadonlyArrayDyn;
use pyo3::conversion::FromPyObjectOwned;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use std::path::Path;

/// `opts[key]`, extracted; a `ValueError` naming the key when it is missing or of the wrong type.
pub fn opt<'py, T: FromPyObjectOwned<'py>>(d: &Bound<'py, PyDict>, key: &str) -> PyResult<T> {
    match d.get_item(key)? {
        Some(v) => v.extract::<T>().map_err(|e| bad(key, e.into())),
        None => Err(bad(key, "missing setting")),
    }
}

/// The measurement geometry from `pixel, thickness, standoff, theta, phi, pad, cutoff_k`.
fn geometry(o: &Bound<'_, PyDict>) -> PyResult<NvGeometry> {
    let g = NvGeometry {
        pixel: opt(o, "pixel")?,
        thickness: opt(o, "thickness")?,
        standoff: opt(o, "standoff")?,
        theta_deg: opt(o, "theta")?,
        phi_deg: opt(o, "phi")?,
        pad: opt(o, "pad")?,
        cutoff_k: opt(o, "cutoff_k")?,
    };
    g.validate().map_err(to_py_err)?;
    Ok(g)
}

/// `M (C, H, W)` in A/m -> `B_NV (H, W)` and the components `(3, H, W)` in tesla.
#[pyfunction]
fn nv_forward<'py>(
    py: Python<'py>,
    magnetization: PyReadonlyArrayDyn<'py, f32>,
    opts: &Bound<'py, PyDict>,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let (m, s) = input(&magnetization, "magnetization")?;
    let [c, h, w] = s[..] else {
        return Err(bad(
            "magnetization",
            format!("expected a (2|3, H, W) magnetisation in A/m, got shape {s:?}"),
        ));
    };
    if !(2..=3).contains(&c) {
        return Err(bad(
            "magnetization",
            format!("expected 2 or 3 components, got shape {s:?}"),
        ));
    }
    let g = geometry(opts)?;
    let (bnv, field) = py
        .detach(|| -> magprior::Result<_> {
            let op = NvForward::new(h, w, &g)?;
            let t = Tensor::from_shape_vec(&[1, c, h, w], m)?;
            Ok((op.bnv(&t)?.to_vec()?, op.field(&t)?.to_vec()?))
        })
        .map_err(to_py_err)?;
    Ok((array(py, bnv, &[h, w])?, array(py, field, &[3, h, w])?))
}

/// `B_NV (H, W)` -> `(Bx, By, Bz) (3, H, W)` and the Tikhonov parameter used.
#[pyfunction]
fn nv_deproject<'py>(
    py: Python<'py>,
    bnv: PyReadonlyArrayDyn<'py, f32>,
    opts: &Bound<'py, PyDict>,
    eps: Option<f64>,
) -> PyResult<(Bound<'py, PyAny>, f64)> {
    let (b, h, w) = map(&bnv, "bnv")?;
    let g = geometry(opts)?;
    let d = py
        .detach(|| nv::deproject(&b, h, w, &g, eps))
        .map_err(to_py_err)?;
    Ok((array(py, d.field, &[3, h, w])?, d.eps))
}

/// The classical Fourier inversion along `(theta, phi)` (degrees): `(M (H, W) in A/m, info)`.
#[pyfunction]
fn nv_invert<'py>(
    py: Python<'py>,
    bnv: PyReadonlyArrayDyn<'py, f32>,
    opts: &Bound<'py, PyDict>,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyDict>)> {
    let (b, h, w) = map(&bnv, "bnv")?;
    let g = geometry(opts)?;
    let (theta, phi): (f64, f64) = opt(opts, "direction")?;
    let filter: String = opt(opts, "filter")?;
    let parameter: Option<f64> = opt(opts, "filter_parameter")?;
    let filter = match filter.as_str() {
        "hanning" => Filter::Hanning {
            wavelength: parameter.unwrap_or_else(|| nv::default_wavelength(&g)),
        },
        "tikhonov" => Filter::Tikhonov {
            k: parameter.ok_or_else(|| bad("filter", "tikhonov needs filter_parameter (rad/m)"))?,
        },
        "none" => Filter::None,
        other => {
            return Err(bad(
                "filter",
                format!("{other:?}: expected hanning, tikhonov or none"),
            ))
        }
    };
    let background: String = opt(opts, "background")?;
    let mut cfg = InversionConfig::new(nv::direction_from_angles(theta, phi), filter);
    cfg.background = pick(
        "background",
        &background,
        &[
            ("none", nv::Background::None),
            ("mean", nv::Background::Mean),
            ("plane", nv::Background::BorderPlane),
        ],
    )?;
    let inv = py
        .detach(|| nv::invert(&b, h, w, &g, &cfg))
        .map_err(to_py_err)?;
    let info = PyDict::new(py);
    info.set_item("guarded_fraction", inv.guarded_fraction)?;
    info.set_item("background", inv.background.to_vec())?;
    Ok((array(py, inv.m, &[h, w])?, info))
}

/// The support a spec names (`ellipse:RX,RY[,DEG]`, `rect:AX,AY`, `auto[:RULE]`) for a map of
/// `shape`; `bnv` is needed by `auto`. Returns `(support (H, W), info)`; `None` when the spec is
/// none of these.
#[pyfunction]
#[pyo3(signature = (spec, shape, opts, bnv=None))]
fn nv_support<'py>(
    py: Python<'py>,
    spec: &str,
    shape: (usize, usize),
    opts: &Bound<'py, PyDict>,
    bnv: Option<PyReadonlyArrayDyn<'py, f32>>,
) -> PyResult<Option<(Bound<'py, PyAny>, Bound<'py, PyDict>)>> {
    let (h, w) = shape;
    let g = geometry(opts)?;
    let direction: Option<(f64, f64)> = opt(opts, "direction")?;
    let ignore_nan: bool = opt(opts, "ignore_nan")?;
    let b = match &bnv {
        Some(a) => map(a, "bnv")?.0,
        None if spec == "auto" || spec.starts_with("auto:") => {
            return Err(bad("support", format!("{spec:?} needs the B_NV map")))
        }
        None => vec![0.0; h * w],
    };
    let found = py
        .detach(|| {
            nv::support_from_spec(
                spec,
                &b,
                h,
                w,
                &g,
                direction.map(|(t, p)| nv::direction_from_angles(t, p)),
                ignore_nan,
            )
        })
        .map_err(to_py_err)?;
    let Some(found) = found else {
        return Ok(None);
    };
    let info = PyDict::new(py);
    if let Some(a) = found.auto() {
        info.set_item("threshold", a.threshold)?;
        info.set_item("otsu", a.otsu)?;
        info.set_item("area_fraction", a.area_fraction)?;
        info.set_item("score", array(py, a.score.clone(), &[h, w])?)?;
    }
    if let SupportFrom::Scan(sc) = &found {
        info.set_item("direction", sc.direction)?;
        info.set_item("direction_score", sc.score)?;
    }
    Ok(Some((array(py, found.support().to_vec(), &[h, w])?, info)))
}

/// The preset's mask spec from `preset, mask_angle, chirality, with_mz, mask_blur`.
fn mask_spec(o: &Bound<'_, PyDict>) -> PyResult<MaskSpec> {
    let preset: String = opt(o, "mask_preset")?;
    let chirality: String = opt(o, "chirality")?;
    let ccw = pick("chirality", &chirality, &[("ccw", true), ("cw", false)])?;
    Ok(MaskSpec {
        preset: pick(
            "mask_preset",
            &preset,
            &[
                ("landau", Preset::Landau { ccw }),
                ("dipole", Preset::Dipole),
                ("vortex", Preset::Vortex { ccw }),
                ("none", Preset::None),
            ],
        )?,
        angle_deg: opt(o, "mask_angle")?,
        with_mz: opt(o, "with_mz")?,
        blur: opt(o, "mask_blur")?,
    })
}

/// A support `(H, W)` or a signed mask `(2|3, H, W)` from an array, as the CLI reads them from
/// files.
fn mask_file(
    a: &PyReadonlyArrayDyn<'_, f32>,
    what: &str,
    h: usize,
    w: usize,
) -> PyResult<mask::MaskFile> {
    let (d, s) = input(a, what)?;
    mask::mask_from_array(Path::new(what), d, &s, h, w).map_err(to_py_err)
}

/// The preset's mask `(C, H, W)` inside a support `(H, W)`.
#[pyfunction]
fn nv_mask<'py>(
    py: Python<'py>,
    support: PyReadonlyArrayDyn<'py, f32>,
    opts: &Bound<'py, PyDict>,
) -> PyResult<Bound<'py, PyAny>> {
    let (_, h, w) = map(&support, "support")?;
    let spec = mask_spec(opts)?;
    match mask_file(&support, "support", h, w)? {
        mask::MaskFile::Support(s) => {
            let m = spec.build(&s, h, w).map_err(to_py_err)?;
            array(py, m.data, &[m.channels, h, w])
        }
        mask::MaskFile::Mask(_) => Err(bad("support", "expected an (H, W) support")),
    }
}

/// The mask a reconstruction uses: `mask` as given (blurred when asked), else the preset in
/// `support` (an array, a spec, or a file name).
fn resolve_mask(
    py: Python<'_>,
    bnv: &[f32],
    h: usize,
    w: usize,
    o: &Bound<'_, PyDict>,
    g: &NvGeometry,
) -> PyResult<(mask::Mask, Option<Vec<f32>>)> {
    let spec = mask_spec(o)?;
    let mask_arr: Option<PyReadonlyArrayDyn<'_, f32>> = opt(o, "mask")?;
    let support_arr: Option<PyReadonlyArrayDyn<'_, f32>> = opt(o, "support")?;
    let support_spec: Option<String> = opt(o, "support_spec")?;
    let direction: Option<(f64, f64)> = opt(o, "support_direction")?;
    let ignore_nan: bool = opt(o, "ignore_nan")?;
    let file = match (mask_arr, support_arr, support_spec) {
        (Some(m), _, _) => mask_file(&m, "mask", h, w)?,
        (None, Some(s), _) => match mask_file(&s, "support", h, w)? {
            mask::MaskFile::Mask(_) => {
                return Err(bad(
                    "support",
                    "a support must be (H, W); give a (2|3, H, W) mask as mask=",
                ))
            }
            f => f,
        },
        (None, None, Some(spec_s)) => {
            let found = py
                .detach(|| {
                    nv::support_from_spec(
                        &spec_s,
                        bnv,
                        h,
                        w,
                        g,
                        direction.map(|(t, p)| nv::direction_from_angles(t, p)),
                        ignore_nan,
                    )
                })
                .map_err(to_py_err)?;
            match found {
                Some(f) => mask::MaskFile::Support(f.support().to_vec()),
                None => {
                    let p = Path::new(&spec_s);
                    let t = magprior::io::load::load_array(p).map_err(to_py_err)?.tensor;
                    let (d, s) = (t.to_vec().map_err(to_py_err)?, t.shape().to_vec());
                    match mask::mask_from_array(p, d, &s, h, w).map_err(to_py_err)? {
                        mask::MaskFile::Mask(_) => {
                            return Err(bad(
                                &spec_s,
                                "a support must be (H, W); give a (2|3, H, W) mask as mask=",
                            ))
                        }
                        f => f,
                    }
                }
            }
        }
        (None, None, None) => {
            return Err(bad(
                "support",
                "give support= (an (H, W) array, a file, 'ellipse:RX,RY', 'rect:AX,AY' or 'auto') or mask=",
            ))
        }
    };
    Ok(match file {
        mask::MaskFile::Mask(m) if spec.blur > 0.0 => (m.blurred(spec.blur), None),
        mask::MaskFile::Mask(m) => (m, None),
        mask::MaskFile::Support(s) => (spec.build(&s, h, w).map_err(to_py_err)?, Some(s)),
    })
}

/// The library's settings, exactly as `nv reconstruct` builds them from its flags.
fn config(o: &Bound<'_, PyDict>, g: &NvGeometry) -> PyResult<NvReconConfig> {
    let ms: Option<f64> = opt(o, "ms")?;
    let ms_value = ms.unwrap_or(8.6e5);
    let model: String = opt(o, "model")?;
    let direction: Option<(String, Option<(f64, f64)>)> = opt(o, "direction")?;
    let direction = match direction {
        None => None,
        Some((kind, angles)) => Some(match (kind.as_str(), angles) {
            ("given", Some((theta_deg, phi_deg))) => DirectionSpec::Given { theta_deg, phi_deg },
            ("fit", start) => DirectionSpec::Fit { start },
            _ => {
                return Err(bad(
                    "direction",
                    "expected (theta, phi), 'fit' or 'fit:THETA,PHI'",
                ))
            }
        }),
    };
    let lambda: Option<f64> = opt(o, "lambda_")?;
    let energy_network: bool = opt(o, "energy_network")?;
    let ku: f64 = opt(o, "ku")?;
    let dmi: f64 = opt(o, "dmi")?;
    let model = match model.as_str() {
        "tanh" => {
            if direction.is_some() {
                return Err(bad("direction", "needs model='direction'"));
            }
            NvModel::Tanh
        }
        "direction" => NvModel::Direction(direction.ok_or_else(|| {
            bad(
                "model",
                "'direction' needs direction=(theta, phi) or direction='fit'",
            )
        })?),
        "energy" => {
            let axis: (f64, f64, f64) = opt(o, "ku_axis")?;
            NvModel::Energy(EnergyConfig {
                material: Material {
                    ms: ms_value,
                    a_ex: opt(o, "exchange")?,
                    ku,
                    axis: [axis.0, axis.1, axis.2],
                    dmi,
                },
                lambda,
                start_iters: opt(o, "start_iters")?,
                parametrisation: if energy_network {
                    UnitParametrisation::Network
                } else {
                    UnitParametrisation::Direct
                },
                ..Default::default()
            })
        }
        other => {
            return Err(bad(
                "model",
                format!("{other:?}: expected tanh, direction or energy"),
            ))
        }
    };
    if !matches!(model, NvModel::Energy(_))
        && (lambda.is_some() || energy_network || ku != 0.0 || dmi != 0.0)
    {
        return Err(bad(
            "model",
            "lambda_, energy_network, ku and dmi belong to model='energy'",
        ));
    }
    let background: String = opt(o, "background")?;
    let noise: Option<f64> = opt(o, "noise")?;
    let device: String = opt(o, "device")?;
    let target: String = opt(o, "target")?;
    let cfg = NvReconConfig {
        geom: g.clone(),
        ms: ms_value,
        ms_auto: ms.is_none(),
        model,
        background: match background.as_str() {
            "none" => ModelBackground::None,
            "offset" => ModelBackground::Offset,
            "plane" => ModelBackground::Plane,
            "poly" => ModelBackground::Poly(opt(o, "background_degree")?),
            other => {
                return Err(bad(
                    "background",
                    format!("{other:?}: expected none, offset, plane or poly"),
                ))
            }
        },
        noise,
        noise_map: opt(o, "noise_map")?,
        ignore_nan: opt(o, "ignore_nan")?,
        fit_axis: opt(o, "fit_axis")?,
        iters: opt(o, "iters")?,
        lr: opt(o, "lr")?,
        weight_decay: opt(o, "weight_decay")?,
        seed: opt(o, "seed")?,
        channels: opt(o, "channels")?,
        kernel: opt(o, "kernel")?,
        target: pick(
            "target",
            &target,
            &[
                ("bnv", NvTarget::Bnv),
                ("deprojected", NvTarget::Deprojected),
            ],
        )?,
        fit_standoff: opt(o, "fit_standoff")?,
        standoff_lr: opt(o, "standoff_lr")?,
        device: crate::device(&device)?.0,
        ..Default::default()
    };
    cfg.validate().map_err(to_py_err)?;
    Ok(cfg)
}

/// The map, refused when it holds non-finite values unless they are to be ignored.
fn measured(
    a: &PyReadonlyArrayDyn<'_, f32>,
    ignore_nan: bool,
) -> PyResult<(Vec<f32>, usize, usize)> {
    let (b, h, w) = map(a, "bnv")?;
    if !ignore_nan {
        if let Some(i) = b.iter().position(|v| !v.is_finite()) {
            return Err(bad(
                "bnv",
                format!("non-finite value (NaN or inf) at element {i}; a measured map's dropouts can be left out of the fit with ignore_nan=True"),
            ));
        }
    }
    Ok((b, h, w))
}

/// What a reconstruction needs: the map and its size, the settings, the mask (and the support
/// it was made from).
struct Job {
    b: Vec<f32>,
    h: usize,
    w: usize,
    cfg: NvReconConfig,
    mask: mask::Mask,
    support: Option<Vec<f32>>,
}

/// The job `opts` describe for the map `bnv`.
fn job(
    py: Python<'_>,
    bnv: &PyReadonlyArrayDyn<'_, f32>,
    opts: &Bound<'_, PyDict>,
) -> PyResult<Job> {
    let (b, h, w) = measured(bnv, opt(opts, "ignore_nan")?)?;
    let g = geometry(opts)?;
    let cfg = config(opts, &g)?;
    let (mask, support) = resolve_mask(py, &b, h, w, opts, &g)?;
    Ok(Job {
        b,
        h,
        w,
        cfg,
        mask,
        support,
    })
}

/// One NV-DIP reconstruction: a dict of arrays, history and metrics.
#[pyfunction]
#[pyo3(signature = (bnv, opts, callback=None))]
fn nv_reconstruct<'py>(
    py: Python<'py>,
    bnv: PyReadonlyArrayDyn<'py, f32>,
    opts: &Bound<'py, PyDict>,
    callback: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let Job {
        b,
        h,
        w,
        cfg,
        mask: m,
        support,
    } = job(py, &bnv, opts)?;
    let mut obs = Observer::new(callback, cfg.iters);
    let res = py.detach(|| {
        nv::reconstruct(&b, h, w, &m, &cfg, &mut |s| {
            obs.tick("fit", s.iter, s.loss, &[("snr_db", s.snr_db), ("lr", s.lr)])
        })
    });
    let interrupted = obs.finish()?;
    let res = res.map_err(to_py_err)?;
    let out = result_dict(py, &res, &cfg, h, w)?;
    out.set_item("interrupted", interrupted)?;
    set_mask(&out, &m, support, h, w)?;
    Ok(out)
}

/// An NV-DIP ensemble of `members` runs (seeds `seed, seed + 1, ...`): the spread arrays, the
/// members' result dicts and the ensemble's metrics.
#[pyfunction]
#[pyo3(signature = (bnv, opts, members, callback=None))]
fn nv_ensemble<'py>(
    py: Python<'py>,
    bnv: PyReadonlyArrayDyn<'py, f32>,
    opts: &Bound<'py, PyDict>,
    members: usize,
    callback: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let Job {
        b,
        h,
        w,
        cfg,
        mask: m,
        support,
    } = job(py, &bnv, opts)?;
    let mut obs = Observer::new(callback, cfg.iters * members);
    let iters = cfg.iters;
    let res = py.detach(|| {
        nv::reconstruct_ensemble(&b, h, w, &m, &cfg, members, &mut |k, s| {
            obs.tick(
                "member",
                k * iters + s.iter,
                s.loss,
                &[("member", k as f64), ("snr_db", s.snr_db)],
            )
        })
    });
    let interrupted = obs.finish()?;
    let ens = res.map_err(to_py_err)?;
    let out = PyDict::new(py);
    let sm = &ens.magnetization;
    for (k, v) in [
        ("magnetization", &sm.mean),
        ("magnetization_std", &sm.std),
        ("magnetization_q05", &sm.q05),
        ("magnetization_q95", &sm.q95),
    ] {
        out.set_item(k, array(py, v.clone(), &[3, h, w])?)?;
    }
    out.set_item("bnv_model", array(py, ens.bnv_model.mean.clone(), &[h, w])?)?;
    out.set_item(
        "bnv_model_std",
        array(py, ens.bnv_model.std.clone(), &[h, w])?,
    )?;
    let list = PyList::empty(py);
    for (k, r) in ens.members.iter().enumerate() {
        let c = NvReconConfig {
            seed: nv::member_seed(cfg.seed, k),
            ..cfg.clone()
        };
        let d = result_dict(py, r, &c, h, w)?;
        d.set_item("seed", c.seed)?;
        list.append(d)?;
    }
    out.set_item("members", list)?;
    let sup: Vec<f32> = m.support().iter().map(|&x| x as u8 as f32).collect();
    let sp = ens.inplane_spread(&sup);
    let (lm, ls) = ens.loss_spread();
    let (cm, cs) = ens.chi2_spread();
    let mt = PyDict::new(py);
    mt.set_item("members", ens.members.len())?;
    mt.set_item("final_loss_mean", lm)?;
    mt.set_item("final_loss_std", ls)?;
    mt.set_item("chi2_per_pixel_mean", cm)?;
    mt.set_item("chi2_per_pixel_std", cs)?;
    mt.set_item("inplane_std_mean_A_per_m", sp.std_mean)?;
    mt.set_item("inplane_mean_abs_A_per_m", sp.mean_abs)?;
    mt.set_item("relative_inplane_spread", sp.relative)?;
    mt.set_item(
        "circulations",
        ens.members
            .iter()
            .map(|r| r.diagnostics.circulation.as_str())
            .collect::<Vec<_>>(),
    )?;
    mt.set_item("stop", ens.stop.to_string())?;
    let warnings: Vec<String> = ens
        .members
        .iter()
        .enumerate()
        .flat_map(|(k, r)| {
            r.diagnostics
                .warnings
                .iter()
                .map(move |w| format!("member {k}: {w}"))
        })
        .collect();
    mt.set_item("warnings", warnings)?;
    out.set_item("metrics", mt)?;
    out.set_item("interrupted", interrupted)?;
    set_mask(&out, &m, support, h, w)?;
    Ok(out)
}

/// The mask a run used and the support it came from (when one was given or found).
fn set_mask(
    out: &Bound<'_, PyDict>,
    m: &mask::Mask,
    support: Option<Vec<f32>>,
    h: usize,
    w: usize,
) -> PyResult<()> {
    let py = out.py();
    out.set_item("mask", array(py, m.data.clone(), &[m.channels, h, w])?)?;
    if let Some(s) = support {
        out.set_item("support", array(py, s, &[h, w])?)?;
    }
    Ok(())
}

/// Everything a reconstruction returns, as the CLI's outputs name it.
fn result_dict<'py>(
    py: Python<'py>,
    res: &NvResult,
    cfg: &NvReconConfig,
    h: usize,
    w: usize,
) -> PyResult<Bound<'py, PyDict>> {
    let hw = h * w;
    let c = res.magnetization.len() / hw.max(1);
    let d = PyDict::new(py);
    d.set_item(
        "magnetization",
        array(py, res.magnetization.clone(), &[c, h, w])?,
    )?;
    d.set_item("bnv_model", array(py, res.bnv_model.clone(), &[h, w])?)?;
    if let Some(n) = &res.noise_map {
        d.set_item("noise_map", array(py, n.clone(), &[h, w])?)?;
    }
    let hist = PyDict::new(py);
    let col = |f: &dyn Fn(&nv::IterStats) -> f64| vec64(py, res.history.iter().map(f).collect());
    hist.set_item("iter", col(&|s| s.iter as f64))?;
    hist.set_item("loss", col(&|s| s.loss))?;
    hist.set_item("misfit", col(&|s| s.misfit))?;
    hist.set_item("energy", col(&|s| s.energy))?;
    hist.set_item("lr", col(&|s| s.lr))?;
    hist.set_item("snr_db", col(&|s| s.snr_db))?;
    hist.set_item("seconds", col(&|s| s.seconds))?;
    hist.set_item("standoff", col(&|s| s.standoff))?;
    d.set_item("history", hist)?;

    let dg = &res.diagnostics;
    let iters = res.history.len();
    let secs = res.history.last().map_or(0.0, |s| s.seconds);
    let mt_max = (0..hw)
        .map(|i| {
            (0..c)
                .map(|k| (res.magnetization[k * hw + i] as f64).powi(2))
                .sum::<f64>()
                .sqrt()
        })
        .fold(0f64, f64::max)
        * cfg.geom.thickness;
    let m = PyDict::new(py);
    m.set_item("mse", res.metrics.mse)?;
    m.set_item("rmse_mT", res.metrics.rmse_mt)?;
    m.set_item("snr_db", res.metrics.snr_db)?;
    m.set_item("mean_m_inplane", res.metrics.mean_m_inplane)?;
    m.set_item(
        "final_loss",
        res.history.last().map_or(f64::NAN, |s| s.loss),
    )?;
    m.set_item("iterations", iters)?;
    m.set_item("seconds", secs)?;
    m.set_item("seconds_per_iteration", secs / iters.max(1) as f64)?;
    m.set_item("stop", res.stop.to_string())?;
    m.set_item("selected_iteration", res.selected_iteration)?;
    if cfg.fit_standoff {
        m.set_item("standoff", res.standoff)?;
        m.set_item("standoff_sigma", dg.standoff_sigma)?;
    }
    m.set_item("chi2_per_pixel", dg.chi2_per_pixel)?;
    m.set_item("zero_field_chi2_per_pixel", dg.zero_field_chi2_per_pixel)?;
    m.set_item("noise_floor_T", dg.noise_floor_t)?;
    m.set_item("noise_estimated", dg.noise_estimated)?;
    m.set_item("lowk_excess", dg.lowk_excess)?;
    m.set_item("edge_ratio", dg.edge_ratio)?;
    m.set_item("at_bound_fraction", dg.at_bound_fraction)?;
    let bg = PyDict::new(py);
    bg.set_item("model", format!("{:?}", cfg.background).to_lowercase())?;
    bg.set_item("offset_T", res.background.offset)?;
    bg.set_item("slope_x_T_per_m", res.background.slope_x)?;
    bg.set_item("slope_y_T_per_m", res.background.slope_y)?;
    m.set_item("background", bg)?;
    m.set_item("direction", res.direction)?;
    m.set_item("nv_axis", res.nv_axis)?;
    m.set_item("circulation", dg.circulation.as_str())?;
    m.set_item("flip_delta_chi2", dg.flip_delta_chi2)?;
    m.set_item("ms_A_per_m", res.ms)?;
    m.set_item("mt_max_A", mt_max)?;
    m.set_item("mt_max_mub_per_nm2", nv::amperes_to_mub_per_nm2(mt_max))?;
    if let Some(e) = &res.energy {
        let ed = PyDict::new(py);
        ed.set_item("lambda", e.lambda)?;
        ed.set_item("energy_J", e.parts.total())?;
        ed.set_item("exchange_J", e.parts.exchange)?;
        ed.set_item("demag_J", e.parts.demag)?;
        ed.set_item("anisotropy_J", e.parts.anisotropy)?;
        ed.set_item("dmi_J", e.parts.dmi)?;
        ed.set_item("best_start", e.starts[e.best_start].name.clone())?;
        ed.set_item("objective_spread", e.objective_spread)?;
        m.set_item("energy", ed)?;
    }
    m.set_item("warnings", dg.warnings.clone())?;
    m.set_item("notes", dg.notes.clone())?;
    m.set_item("network_size", res.network_size)?;
    d.set_item("metrics", m)?;
    Ok(d)
}

/// A sweep over mask angles, standoffs and seeds: the table rows and every run's result dict.
#[pyfunction]
#[pyo3(signature = (bnv, opts, callback=None))]
fn nv_sweep<'py>(
    py: Python<'py>,
    bnv: PyReadonlyArrayDyn<'py, f32>,
    opts: &Bound<'py, PyDict>,
    callback: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let Job {
        b,
        h,
        w,
        cfg: base,
        mask: base_mask,
        support,
    } = job(py, &bnv, opts)?;
    let spec = mask_spec(opts)?;
    let sc = SweepConfig {
        angles: opt(opts, "angles")?,
        standoffs: opt(opts, "standoffs")?,
        seeds: opt(opts, "seeds")?,
    };
    let total = base.iters * sc.angles.len() * sc.standoffs.len() * sc.seeds.len();
    let mut obs = Observer::new(callback, total);
    let mut runs: Vec<(nv::SweepPoint, mask::Mask, NvResult)> = Vec::new();
    let res = py.detach(|| {
        let done = std::cell::Cell::new(0usize);
        let mask_at = |angle: f64| -> magprior::Result<mask::Mask> {
            match &support {
                Some(s) => MaskSpec {
                    angle_deg: angle,
                    ..spec
                }
                .build(s, h, w),
                None => Ok(base_mask.clone()),
            }
        };
        nv::sweep(
            &b,
            h,
            w,
            &mask_at,
            &base,
            &sc,
            &mut |p, m, r| {
                done.set(done.get() + r.history.len());
                runs.push((*p, m.clone(), r.clone()));
                Ok::<(), magprior::Error>(())
            },
            &mut |_p, s| {
                obs.tick(
                    "sweep",
                    done.get() + s.iter,
                    s.loss,
                    &[("snr_db", s.snr_db)],
                )
            },
        )
    });
    let interrupted = obs.finish()?;
    let res = res.map_err(to_py_err)?;
    let out = PyDict::new(py);
    let rows = PyList::empty(py);
    for r in &res.rows {
        let d = PyDict::new(py);
        d.set_item("angle_deg", r.angle)?;
        d.set_item("standoff", r.standoff)?;
        d.set_item("losses", r.losses.clone())?;
        d.set_item("mean_loss", r.mean_loss())?;
        d.set_item("loss_spread", r.loss_spread())?;
        d.set_item("snr_db", r.snr_db.clone())?;
        d.set_item("seconds", r.seconds)?;
        d.set_item("freedom", r.freedom)?;
        rows.append(d)?;
    }
    out.set_item("rows", rows)?;
    out.set_item("groups", res.groups.clone())?;
    out.set_item("significance", format!("{:?}", res.significance))?;
    out.set_item("stop", res.stop.to_string())?;
    out.set_item("interrupted", interrupted)?;
    let results = PyList::empty(py);
    for (p, m, r) in &runs {
        let mut c = base.clone();
        c.geom.standoff = p.standoff;
        c.seed = p.seed;
        let d = result_dict(py, r, &c, h, w)?;
        d.set_item("angle_deg", p.angle)?;
        d.set_item("standoff", p.standoff)?;
        d.set_item("seed", p.seed)?;
        d.set_item("mask", array(py, m.data.clone(), &[m.channels, h, w])?)?;
        results.append(d)?;
    }
    out.set_item("results", results)?;
    Ok(out)
}

/// The demo's synthetic map: an `n x n` Landau-state ellipse (the paper's geometry: 5 nm
/// pixels, 20 nm film, 50 nm standoff) with Gaussian noise of `noise` x max |B_NV|.
#[pyfunction]
fn nv_demo(
    py: Python<'_>,
    n: usize,
    ms: f64,
    noise: f64,
    seed: u64,
) -> PyResult<Bound<'_, PyDict>> {
    let d = nv::synthetic::landau_ellipse(n, &NvGeometry::default(), ms, noise, seed)
        .map_err(to_py_err)?;
    let out = PyDict::new(py);
    out.set_item("bnv", array(py, d.bnv, &[n, n])?)?;
    out.set_item("bnv_clean", array(py, d.bnv_clean, &[n, n])?)?;
    out.set_item("magnetization", array(py, d.magnetization, &[3, n, n])?)?;
    out.set_item("support", array(py, d.support, &[n, n])?)?;
    Ok(out)
}

/// Mean cosine between the in-plane directions of two magnetisations inside a support.
#[pyfunction]
fn nv_direction_cosine(
    a: PyReadonlyArrayDyn<'_, f32>,
    b: PyReadonlyArrayDyn<'_, f32>,
    support: PyReadonlyArrayDyn<'_, f32>,
) -> PyResult<f64> {
    let (s, h, w) = map(&support, "support")?;
    let (da, sa) = input(&a, "a")?;
    let (db, sb) = input(&b, "b")?;
    for (what, sh) in [("a", &sa), ("b", &sb)] {
        if sh.len() != 3 || sh[0] < 2 || sh[1] != h || sh[2] != w {
            return Err(bad(
                what,
                format!("expected a (2|3, {h}, {w}) magnetisation, got shape {sh:?}"),
            ));
        }
    }
    Ok(nv::direction_cosine(&da, &db, &s))
}

/// Registers the functions.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(nv_demo, m)?)?;
    m.add_function(wrap_pyfunction!(nv_direction_cosine, m)?)?;
    m.add_function(wrap_pyfunction!(nv_forward, m)?)?;
    m.add_function(wrap_pyfunction!(nv_deproject, m)?)?;
    m.add_function(wrap_pyfunction!(nv_invert, m)?)?;
    m.add_function(wrap_pyfunction!(nv_support, m)?)?;
    m.add_function(wrap_pyfunction!(nv_mask, m)?)?;
    m.add_function(wrap_pyfunction!(nv_reconstruct, m)?)?;
    m.add_function(wrap_pyfunction!(nv_ensemble, m)?)?;
    m.add_function(wrap_pyfunction!(nv_sweep, m)?)?;
    Ok(())
}
