"""Scanning NV magnetometry: forward model, deprojection, classical inversion, supports and
masks, and the NV-DIP reconstruction (a deep image prior fitted through the magnetostatic
forward model).

Units are SI throughout: lengths in metres, fields in tesla, magnetisation in A/m, angles in
degrees (as the CLI). Arrays are ``(H, W)`` maps with rows along y and columns along x; a
magnetisation is ``(C, H, W)`` with C = 2 (Mx, My) or 3 (with Mz). Defaults are the CLI's
(``magprior nv reconstruct --help``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence, Tuple, Union

import numpy as np

from . import _magprior
from ._common import ArrayLike, Progress, device as _device, emit, f32, is_path, read_path, run_native

__all__ = [
    "forward",
    "deproject",
    "invert",
    "support",
    "mask",
    "reconstruct",
    "sweep",
    "NvReconstruction",
    "NvSweep",
    "demo_landau",
    "direction_cosine",
    "PRESETS",
    "SUPPORT_SHAPES",
]

#: The mask presets: the pattern imposed inside the support.
PRESETS = ("none", "landau", "dipole", "vortex")
#: The support specs besides arrays and files.
SUPPORT_SHAPES = ("ellipse:RX,RY[,DEG]", "rect:AX,AY", "auto", "auto:scan", "auto:gradient", "auto:inversion")


def _geom(pixel, thickness, standoff, theta, phi, pad, cutoff_k) -> dict:
    if pixel is None:
        raise ValueError("pixel: the pixel size (m) is required (the input records none)")
    return dict(
        pixel=float(pixel),
        thickness=float(thickness),
        standoff=float(standoff),
        theta=float(theta),
        phi=float(phi),
        pad=int(pad),
        cutoff_k=None if cutoff_k is None else float(cutoff_k),
    )


def _map_and_pixel(bnv, pixel, allow_nan=False):
    arr, cal = read_path(bnv, allow_nan)
    if pixel is None:
        pixel = cal.get("pixel_x")
    return f32(arr, "bnv"), pixel


def forward(
    magnetization: ArrayLike,
    *,
    pixel: float,
    thickness: float = 20e-9,
    standoff: float = 50e-9,
    theta: float = 54.75,
    phi: float = 0.0,
    pad: int = 2,
    cutoff_k: Optional[float] = None,
    components: bool = False,
) -> Union[np.ndarray, Tuple[np.ndarray, np.ndarray]]:
    """The stray field of a film: ``M (2|3, H, W)`` in A/m -> ``B_NV (H, W)`` in T.

    ``pixel`` (m), film ``thickness`` (m), sensor ``standoff`` above the top surface (m), NV
    axis ``theta`` (polar from the normal) and ``phi`` (azimuth from +x) in degrees, zero-padding
    factor ``pad``. With ``components=True`` returns ``(bnv, b)`` with ``b = (Bx, By, Bz)``
    ``(3, H, W)`` in T.
    """
    m = f32(magnetization, "magnetization", (3,))
    bnv, b = _magprior.nv_forward(m, _geom(pixel, thickness, standoff, theta, phi, pad, cutoff_k))
    return (bnv, b) if components else bnv


def deproject(
    bnv: ArrayLike,
    *,
    pixel: Optional[float] = None,
    theta: float = 54.75,
    phi: float = 0.0,
    pad: int = 2,
    eps: Optional[float] = None,
    return_eps: bool = False,
):
    """``B_NV (H, W)`` in T -> ``(Bx, By, Bz) (3, H, W)`` in T by a regularised inverse
    (Tikhonov ``eps`` in rad/m; chosen by the risk estimate when None). With
    ``return_eps=True`` returns ``(b, eps_used)``."""
    b, pixel = _map_and_pixel(bnv, pixel)
    g = _geom(pixel, 20e-9, 50e-9, theta, phi, pad, None)
    out, e = _magprior.nv_deproject(b, g, None if eps is None else float(eps))
    return (out, e) if return_eps else out


def invert(
    bnv: ArrayLike,
    *,
    direction: Tuple[float, float],
    pixel: Optional[float] = None,
    thickness: float = 20e-9,
    standoff: float = 50e-9,
    theta: float = 54.75,
    phi: float = 0.0,
    pad: int = 2,
    filter: str = "hanning",
    filter_parameter: Optional[float] = None,
    background: str = "plane",
) -> np.ndarray:
    """The classical Fourier inversion of ``B_NV`` along a known magnetisation ``direction``
    ``(theta, phi)`` in degrees: the magnetisation along it, ``(H, W)`` in A/m.

    ``filter``: ``"hanning"`` (``filter_parameter`` the shortest wavelength kept in m, default
    max(2 standoff, 3 pixels)), ``"tikhonov"`` (``filter_parameter`` the wave number in rad/m
    where the filter is one half) or ``"none"``; ``background``: ``"plane"`` (through the border
    band), ``"mean"`` or ``"none"``."""
    b, pixel = _map_and_pixel(bnv, pixel)
    g = _geom(pixel, thickness, standoff, theta, phi, pad, None)
    g.update(
        direction=(float(direction[0]), float(direction[1])),
        filter=filter,
        filter_parameter=None if filter_parameter is None else float(filter_parameter),
        background=background,
    )
    m, _ = _magprior.nv_invert(b, g)
    return m


def support(
    spec: str,
    *,
    shape: Optional[Tuple[int, int]] = None,
    bnv: Optional[ArrayLike] = None,
    pixel: Optional[float] = None,
    thickness: float = 20e-9,
    standoff: float = 50e-9,
    theta: float = 54.75,
    phi: float = 0.0,
    pad: int = 2,
    direction: Optional[Tuple[float, float]] = None,
    ignore_nan: bool = False,
    return_info: bool = False,
):
    """A support ``(H, W)`` (1 inside, 0 outside) from a spec, as ``--support`` takes it:

    - ``"ellipse:RX,RY[,DEG]"``, ``"rect:AX,AY"``: semi-axes with units (``"230nm,150nm"``),
      centred in a map of ``shape`` (or ``bnv``'s shape) with pixel ``pixel``;
    - ``"auto"``, ``"auto:scan"``, ``"auto:gradient"``, ``"auto:inversion"``: found from ``bnv``
      (Otsu's threshold of the classical inversion along ``direction`` when given, else of the
      direction that explains the map best).

    With ``return_info=True`` returns ``(support, info)`` (threshold, area fraction, score map,
    the scan's direction)."""
    b = None
    if bnv is not None:
        b, pixel = _map_and_pixel(bnv, pixel, ignore_nan)
        shape = b.shape
    if shape is None:
        raise ValueError("support: give shape=(H, W) or bnv=")
    g = _geom(pixel, thickness, standoff, theta, phi, pad, None)
    g.update(direction=None if direction is None else tuple(map(float, direction)), ignore_nan=bool(ignore_nan))
    found = _magprior.nv_support(spec, (int(shape[0]), int(shape[1])), g, b)
    if found is None:
        raise ValueError(f"support: {spec!r}: expected one of {', '.join(SUPPORT_SHAPES)}")
    return found if return_info else found[0]


def mask(
    support: ArrayLike,
    *,
    preset: str = "none",
    angle: float = 0.0,
    chirality: str = "ccw",
    with_mz: bool = False,
    blur: float = 0.0,
) -> np.ndarray:
    """The mask ``(2|3, H, W)`` of a preset inside a support ``(H, W)``: ``"none"`` (both
    in-plane components free), ``"landau"`` (four flux-closure domains), ``"dipole"`` (uniform
    along ``angle``), ``"vortex"`` (tangential about the centre); ``angle`` rotates the pattern
    (degrees from +x towards +y), ``chirality`` ``"ccw"`` (M along (-y, x)) or ``"cw"``,
    ``with_mz`` adds Mz, ``blur`` smooths the edges (pixels)."""
    s = f32(support, "support", (2,))
    return _magprior.nv_mask(
        s,
        dict(mask_preset=preset, mask_angle=float(angle), chirality=chirality, with_mz=bool(with_mz), mask_blur=float(blur)),
    )


def demo_landau(n: int = 128, *, ms: float = 8.6e5, noise: float = 0.01, seed: int = 7) -> dict:
    """The demo's synthetic measurement (what ``magprior demo`` reconstructs): an ``n x n`` map
    (5 nm pixels, 20 nm Permalloy film, 50 nm standoff, NV axis 54.75 deg) of an ellipse
    (semi-axes 0.36 n x 0.24 n pixels) in a Landau state, with Gaussian noise of ``noise`` x
    max |B_NV|. Returns ``dict(bnv, bnv_clean, magnetization (3, n, n) A/m, support, pixel,
    thickness, standoff)``."""
    d = _magprior.nv_demo(int(n), float(ms), float(noise), int(seed))
    d.update(pixel=5e-9, thickness=20e-9, standoff=50e-9)
    return d


def direction_cosine(a: ArrayLike, b: ArrayLike, support: ArrayLike) -> float:
    """Mean cosine between the in-plane directions of two magnetisations ``(2|3, H, W)`` over
    the support's pixels where both are non-zero (1 same, -1 reversed, ~0 unrelated)."""
    return _magprior.nv_direction_cosine(f32(a, "a", (3,)), f32(b, "b", (3,)), f32(support, "support", (2,)))


@dataclass
class NvReconstruction:
    """The result of :func:`reconstruct` (what ``nv reconstruct`` writes to its directory).

    Attributes:
        magnetization: ``(3, H, W)`` float32, A/m (Mz zero unless modelled), the selected
            (lowest-loss) iteration's.
        bnv_model: ``(H, W)`` float32, T, the model's B_NV (background included).
        history: dict of arrays per iteration: ``iter, loss, misfit, energy, lr, snr_db, seconds,
            standoff``.
        metrics: dict, the keys of ``metrics.json`` (chi2_per_pixel, zero_field_chi2_per_pixel,
            noise_floor_T, background, circulation, warnings, notes, ...).
        mask: ``(C, H, W)`` the mask used; support: ``(H, W)`` when one was given or found.
        noise_map: ``(H, W)`` T when ``noise="map"``.
        stop_reason: ``"completed"``, ``"interrupted"`` or ``"diverged at iteration N"``.
        interrupted: whether Ctrl-C / the callback stopped the run.
        magnetization_std, magnetization_q05, magnetization_q95: with ``ensemble=K > 1``: the
            per-pixel sample std and 5 / 95 % quantiles over the members (``magnetization`` and
            ``bnv_model`` are then the members' means, ``metrics`` the ensemble's: losses and
            their spread, ``relative_inplane_spread``, circulations); ``members`` each member's
            :class:`NvReconstruction` (``history`` is member 0's).
    """

    magnetization: np.ndarray
    bnv_model: np.ndarray
    history: dict
    metrics: dict
    mask: np.ndarray
    support: Optional[np.ndarray] = None
    noise_map: Optional[np.ndarray] = None
    stop_reason: str = "completed"
    interrupted: bool = False
    magnetization_std: Optional[np.ndarray] = None
    magnetization_q05: Optional[np.ndarray] = None
    magnetization_q95: Optional[np.ndarray] = None
    members: Optional[list] = None
    settings: dict = field(default_factory=dict, repr=False)

    @classmethod
    def _ensemble(cls, d: dict, settings: dict) -> "NvReconstruction":
        members = [cls._from(dict(m, mask=d["mask"]), dict(settings, seed=m["seed"])) for m in d["members"]]
        return cls(
            magnetization=d["magnetization"],
            bnv_model=d["bnv_model"],
            history=members[0].history,
            metrics=d["metrics"],
            mask=d["mask"],
            support=d.get("support"),
            stop_reason=d["metrics"]["stop"],
            interrupted=bool(d.get("interrupted", False)),
            magnetization_std=d["magnetization_std"],
            magnetization_q05=d["magnetization_q05"],
            magnetization_q95=d["magnetization_q95"],
            members=members,
            settings=settings,
        )

    @classmethod
    def _from(cls, d: dict, settings: dict) -> "NvReconstruction":
        return cls(
            magnetization=d["magnetization"],
            bnv_model=d["bnv_model"],
            history=d["history"],
            metrics=d["metrics"],
            mask=d["mask"],
            support=d.get("support"),
            noise_map=d.get("noise_map"),
            stop_reason=d["metrics"]["stop"],
            interrupted=bool(d.get("interrupted", False)),
            settings=settings,
        )


def _direction(direction) -> Optional[tuple]:
    if direction is None:
        return None
    if isinstance(direction, str):
        if direction == "fit":
            return ("fit", None)
        if direction.startswith("fit:"):
            t, p = direction[4:].split(",")
            return ("fit", (float(t), float(p)))
        t, p = direction.split(",")
        return ("given", (float(t), float(p)))
    t, p = direction
    return ("given", (float(t), float(p)))


def _settings(bnv, kw: dict) -> tuple:
    """The map and every setting the native call expects, from :func:`reconstruct`'s keywords."""
    b, pixel = _map_and_pixel(bnv, kw.pop("pixel"), kw["ignore_nan"])
    g = _geom(pixel, kw.pop("thickness"), kw.pop("standoff"), kw.pop("theta"), kw.pop("phi"), kw.pop("pad"), kw.pop("cutoff_k"))
    sup, m = kw.pop("support"), kw.pop("mask")
    ms, noise = kw.pop("ms"), kw.pop("noise")
    o = dict(g)
    o.update(
        mask=None if m is None else f32(m, "mask", (2, 3)),
        support=None if sup is None or isinstance(sup, str) or is_path(sup) else f32(sup, "support", (2,)),
        support_spec=str(sup) if sup is not None and (isinstance(sup, str) or is_path(sup)) else None,
        support_direction=None,
        ms=None if isinstance(ms, str) and ms == "auto" else float(ms),
        noise=None if noise is None or noise == "map" else float(noise),
        noise_map=noise == "map",
        direction=_direction(kw.pop("direction")),
        channels=[int(c) for c in kw.pop("channels")],
        ku_axis=tuple(float(x) for x in kw.pop("ku_axis")),
        device=_device(kw.pop("device")),
    )
    d = o["direction"]
    if d is not None and d[0] == "given":
        o["support_direction"] = d[1]
    for k, v in kw.items():
        o[k] = v
    return b, o


def reconstruct(
    bnv: ArrayLike,
    *,
    pixel: Optional[float] = None,
    thickness: float = 20e-9,
    standoff: float = 50e-9,
    theta: float = 54.75,
    phi: float = 0.0,
    pad: int = 2,
    cutoff_k: Optional[float] = None,
    support: Optional[Union[ArrayLike, str]] = None,
    mask: Optional[ArrayLike] = None,
    mask_preset: str = "none",
    mask_angle: float = 0.0,
    chirality: str = "ccw",
    mask_blur: float = 0.0,
    with_mz: bool = False,
    ms: Union[float, str] = 8.6e5,
    model: str = "tanh",
    direction: Optional[Union[Tuple[float, float], str]] = None,
    background: str = "plane",
    background_degree: int = 3,
    noise: Optional[Union[float, str]] = None,
    ignore_nan: bool = False,
    fit_axis: bool = False,
    exchange: float = 1.3e-11,
    ku: float = 0.0,
    ku_axis: Sequence[float] = (0.0, 0.0, 1.0),
    dmi: float = 0.0,
    lambda_: Optional[float] = None,
    start_iters: int = 300,
    energy_network: bool = False,
    iters: int = 4000,
    lr: float = 7.5e-4,
    weight_decay: float = 0.01,
    seed: int = 0,
    channels: Sequence[int] = (16, 32),
    kernel: int = 5,
    target: str = "bnv",
    fit_standoff: bool = False,
    standoff_lr: float = 0.2,
    device: Optional[str] = None,
    ensemble: int = 1,
    progress: Progress = "auto",
) -> NvReconstruction:
    """NV-DIP: the magnetisation of a film from its measured ``B_NV (H, W)`` map (T).

    The same computation as ``magprior nv reconstruct`` with the same settings: on the CPU the
    magnetisation is bit-identical to the CLI's ``magnetization.npy``.

    Args:
        bnv: the map in tesla (an array, or a file name the CLI reads).
        pixel, thickness, standoff: metres; theta, phi: the NV axis in degrees; pad: FFT
            zero-padding factor; cutoff_k: optional low-pass (rad/m).
        support: where the film is: an ``(H, W)`` array (> 0.5 inside), a file, ``"ellipse:RX,RY"``,
            ``"rect:AX,AY"`` or ``"auto"`` (see :func:`support`); or give ``mask``, a signed
            ``(2|3, H, W)`` mask.
        mask_preset, mask_angle, chirality, mask_blur, with_mz: the pattern inside the support
            (see :func:`mask`).
        ms: saturation magnetisation (A/m), the output's bound, or ``"auto"`` (from the data).
        model: ``"tanh"`` (the paper's), ``"direction"`` (one direction ``direction=(theta, phi)``
            or ``"fit"``), ``"energy"`` (|M| = Ms with a micromagnetic energy prior: ``exchange``
            J/m, ``ku`` J/m^3 along ``ku_axis``, ``dmi`` J/m^2, weight ``lambda_`` or the
            discrepancy principle, ``start_iters``, ``energy_network``).
        background: fitted with M: ``"plane"`` (default, measured maps), ``"offset"``, ``"poly"``
            (degree ``background_degree``) or ``"none"`` (synthetic maps).
        noise: the map's noise level (T), ``"map"`` (a per-pixel noise map), or None (estimated).
        ignore_nan: leave NaN pixels out of the fit. fit_axis / fit_standoff: train those too.
        iters, lr, weight_decay, seed, channels, kernel: the optimisation and the network.
        target: ``"bnv"`` or ``"deprojected"``.
        ensemble: members of an ensemble (seeds ``seed, seed + 1, ...``; ``nv reconstruct
            --ensemble K``): the mean is returned with the per-pixel spread.
        device: ``"auto"`` / ``"cpu"`` / ``"gpu"`` (default: ``MAGPRIOR_DEVICE`` or auto).
        progress: ``"auto"`` (a tqdm bar when tqdm is installed), False, or a callable
            ``f(stage, iteration, total, loss, info)`` (return False to stop).

    Returns:
        :class:`NvReconstruction`. Ctrl-C (or "interrupt kernel") stops after the current
        iteration and returns the result so far with ``stop_reason == "interrupted"``. The run's
        physics warnings are issued as :class:`magprior.MagpriorWarning`.

    Raises:
        ValueError: bad settings or arrays (the message names the setting).
        FileNotFoundError / OSError: a file that cannot be read.
        RuntimeError: ``device="gpu"`` without a usable adapter.
    """
    kw = dict(locals())
    bnv = kw.pop("bnv")
    prog = kw.pop("progress")
    members = int(kw.pop("ensemble"))
    b, o = _settings(bnv, kw)
    if members > 1:
        d = run_native(_magprior.nv_ensemble, prog, "nv ensemble", b, o, members)
        r = NvReconstruction._ensemble(d, o)
        emit(r.metrics, r.stop_reason, r.interrupted, "nv reconstruct --ensemble")
        return r
    if members < 1:
        raise ValueError(f"ensemble: at least one member, got {members}")
    d = run_native(_magprior.nv_reconstruct, prog, "nv reconstruct", b, o)
    r = NvReconstruction._from(d, o)
    emit(r.metrics, r.stop_reason, r.interrupted, "nv reconstruct")
    return r


@dataclass
class NvSweep:
    """The result of :func:`sweep`: ``rows`` (one dict per (standoff, angle), best first, with
    the seeds' losses), ``groups`` (row indices by mask freedom), ``significance``, and every
    run's :class:`NvReconstruction` in ``results`` (each with ``settings`` angle/standoff/seed)."""

    rows: list
    groups: list
    significance: str
    results: list
    stop_reason: str
    interrupted: bool


def sweep(
    bnv: ArrayLike,
    *,
    angles: Optional[Sequence[float]] = None,
    standoffs: Optional[Sequence[float]] = None,
    seeds: Sequence[int] = (0,),
    progress: Progress = "auto",
    **settings,
) -> NvSweep:
    """:func:`reconstruct` for every mask angle (degrees), standoff (m) and seed, ranked by final
    loss (what ``nv sweep`` runs). ``settings`` are :func:`reconstruct`'s keywords."""
    if angles is None and standoffs is None:
        raise ValueError("sweep: give angles= and/or standoffs=")
    import inspect

    params = inspect.signature(reconstruct).parameters
    unknown = set(settings) - set(params)
    if unknown:
        raise TypeError(f"sweep: unknown setting(s) {sorted(unknown)}")
    kw = {k: p.default for k, p in params.items() if k not in ("bnv", "progress", "ensemble")}
    kw.update(settings)
    b, o = _settings(bnv, kw)
    o["angles"] = [float(a) for a in (angles if angles is not None else [o["mask_angle"]])]
    o["standoffs"] = [float(s) for s in (standoffs if standoffs is not None else [o["standoff"]])]
    o["seeds"] = [int(s) for s in seeds]
    d = run_native(_magprior.nv_sweep, progress, "nv sweep", b, o)
    results = []
    for r in d["results"]:
        s = dict(o, mask_angle=r["angle_deg"], standoff=r["standoff"], seed=r["seed"])
        results.append(NvReconstruction._from(r, s))
    out = NvSweep(d["rows"], d["groups"], d["significance"], results, d["stop"], bool(d["interrupted"]))
    emit({}, out.stop_reason, out.interrupted, "nv sweep")
    return out
