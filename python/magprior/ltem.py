"""Lorentz TEM: simulation, image formation, SITIE, SIPRAD (a deep image prior fitted through
the microscope's image-formation model) for one image, a focal series or a time series, and the
integrated induction.

Units are SI: lengths in metres (pixel ``scale``, ``defocus``, ``Cs``...), the accelerating
voltage ``E`` in volts, angles in radians, phases in radians, the induction ``(Bx t, By t)`` in
T m. A negative defocus is underfocus (PyLorentz's sign). Defaults are the CLI's
(``magprior ltem reconstruct --help``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import List, Optional, Sequence

import numpy as np

from . import _magprior
from ._common import ArrayLike, Progress, device as _device, emit, f32, read_path, run_native

__all__ = [
    "Microscope",
    "texture",
    "simulate",
    "forward",
    "sitie",
    "reconstruct",
    "series",
    "induction",
    "LtemReconstruction",
    "LtemSeries",
]


@dataclass
class Microscope:
    """The microscope, with PyLorentz's field names but SI units.

    Attributes:
        E: accelerating voltage (V).
        Cs: spherical aberration (m).
        theta_c: beam divergence semi-angle (rad).
        def_spr: defocus spread (m).
        Ca: two-fold astigmatism magnitude (m).
        phi_a: its orientation (rad from +x).
        aperture: objective aperture semi-angle (rad), None for none.
    """

    E: float = 200e3
    Cs: float = 1e-3
    theta_c: float = 0.6e-3
    def_spr: float = 120e-9
    Ca: float = 0.0
    phi_a: float = 0.0
    aperture: Optional[float] = None

    @classmethod
    def siprad_demo(cls) -> "Microscope":
        """The SIPRAD paper's demo microscope: 200 kV, Cs 0.2 mm, theta_c 0.01 mrad, defocus
        spread 80 nm (the defaults are SPEC's: Cs 1 mm, theta_c 0.6 mrad, spread 120 nm)."""
        return cls(Cs=0.2e-3, theta_c=1e-5, def_spr=80e-9)

    @property
    def lam(self) -> float:
        """The relativistic electron wavelength (m)."""
        return _magprior.ltem_wavelength(float(self.E))

    def _dict(self) -> dict:
        d = {k: (None if v is None else float(v)) for k, v in asdict(self).items()}
        return d


def _mic(microscope: Optional[Microscope]) -> dict:
    if microscope is None:
        microscope = Microscope()
    if not isinstance(microscope, Microscope):
        raise ValueError(f"microscope: expected a magprior.ltem.Microscope, got {type(microscope).__name__}")
    return microscope._dict()


def _image_and_scale(image, scale, what="image"):
    arr, cal = read_path(image)
    if scale is None:
        scale = cal.get("pixel_x") or 4e-9
    return f32(arr, what), float(scale)


def texture(kind: str = "bubbles", n: int = 128, *, ms: float = 8.6e5, seed: int = 0) -> np.ndarray:
    """A synthetic in-plane texture ``(2, n, n)`` in A/m, periodic in the box: ``"bubbles"`` (a
    staggered Bloch bubble lattice, radius 0.07 n, random chiralities) or ``"stripes"`` (Bloch
    stripe domains, period n/4)."""
    return _magprior.ltem_texture(kind, int(n), float(ms), int(seed))


def simulate(
    magnetization: ArrayLike,
    *,
    thickness: float,
    scale: Optional[float] = None,
    defocus: float = -1e-3,
    microscope: Optional[Microscope] = None,
    ms: float = 8.6e5,
    tilt_x: float = 0.0,
    tilt_y: float = 0.0,
    layers: int = 16,
    noise: float = 0.0,
    dose: Optional[float] = None,
    seed: int = 0,
    pad: int = 1,
) -> dict:
    """A magnetisation ``(2|3, H, W)`` in A/m (or an OVF file: unit vectors times ``ms``) of a
    film ``thickness`` (m) -> ``dict(phase, induction, image, image_clean)`` (what
    ``ltem simulate`` writes): the magnetic phase (rad, minimum 0), ``(Bx t, By t)`` (T m), the
    defocused image with Gaussian noise of std ``noise`` x mean (or Poisson noise for ``dose``
    electrons/nm^2) and without. ``tilt_x`` / ``tilt_y`` (degrees) tilt the sample, projected
    through ``layers`` slices."""
    arr, cal = read_path(magnetization)
    m = f32(arr, "magnetization", (3,))
    if cal.get("cell") is not None:
        m = m * np.float32(ms)
        if scale is None:
            scale = cal["cell"][0]
    o = dict(
        thickness=float(thickness),
        scale=float(scale if scale is not None else 4e-9),
        defocus=float(defocus),
        tilt_x=float(tilt_x),
        tilt_y=float(tilt_y),
        layers=int(layers),
        noise=float(noise),
        dose=None if dose is None else float(dose),
        seed=int(seed),
        pad=int(pad),
    )
    return _magprior.ltem_simulate(m, _mic(microscope), o)


def forward(
    phase: ArrayLike,
    *,
    scale: float = 4e-9,
    defocus: float = -1e-3,
    microscope: Optional[Microscope] = None,
    amplitude: Optional[ArrayLike] = None,
    pad: int = 1,
) -> np.ndarray:
    """Phase ``(H, W)`` rad (and amplitude) -> the defocused image (incident intensity 1)."""
    a = None if amplitude is None else f32(amplitude, "amplitude", (2,))
    return _magprior.ltem_forward(f32(phase, "phase", (2,)), _mic(microscope), float(scale), float(defocus), int(pad), a)


def sitie(
    image: ArrayLike,
    *,
    scale: Optional[float] = None,
    defocus: float = -1e-3,
    microscope: Optional[Microscope] = None,
    qc: Optional[float] = None,
    symmetric: bool = False,
) -> np.ndarray:
    """The SITIE phase (rad, ``(H, W)``) of one defocused image (an array or a file; ``scale``
    from the file's calibration when not given, else 4 nm). ``qc``: Tikhonov frequency (1/m; the
    CLI's ``--qc`` takes 1/nm);
    ``symmetric``: mirror-symmetric extension against edge artefacts."""
    img, s = _image_and_scale(image, scale)
    q = None if qc is None else float(qc) / 1e9  # 1/m -> the library's 1/nm
    return _magprior.ltem_sitie(img, _mic(microscope), s, float(defocus), bool(symmetric), q)


def induction(phase: ArrayLike, *, scale: float) -> np.ndarray:
    """The integrated in-plane induction ``(Bx t, By t)`` ``(2, H, W)`` in T m of a magnetic
    phase (rad) with pixel ``scale`` (m)."""
    return _magprior.ltem_induction(f32(phase, "phase", (2,)), float(scale))


@dataclass
class LtemReconstruction:
    """The result of :func:`reconstruct` (what ``ltem reconstruct`` writes).

    Attributes:
        phase: ``(H, W)`` rad, the selected state, Gaussian-smoothed, minimum 0.
        phase_raw: the network output before smoothing; sitie: the SITIE (or TIE) input.
        induction: ``(2, H, W)`` T m, ``(Bx t, By t)`` of ``phase``.
        image_model: the modelled image; amplitude: the exit-wave amplitude (when modelled);
            amplitude_init: the map assumed at the start; amplitude_mask: the contamination mask
            of ``amplitude`` (bool); warnings: what the run noticed (a collapsed learned map).
        history: dict of arrays per iteration: ``stage, iter, loss, val_loss, amp_scale, seconds``.
        metrics: dict (final/selected loss, iterations, seconds, amp_scale, stop; with ``truth``
            the accuracy).
        stop_reason, interrupted: how the run ended.
        phase_std, phase_q05, phase_q95, induction_std, induction_q05, induction_q95: with
            ``ensemble=K > 1``: the per-pixel sample std and 5 / 95 % quantiles over the members
            (``phase`` and ``induction`` are then the members' means; ``metrics`` the
            ensemble's, with ``truth`` the accuracy of the mean and the band's coverage;
            ``members`` each member's :class:`LtemReconstruction`).
    """

    phase: np.ndarray
    phase_raw: np.ndarray
    sitie: np.ndarray
    induction: np.ndarray
    image_model: np.ndarray
    amplitude: Optional[np.ndarray]
    history: dict
    metrics: dict
    stop_reason: str = "completed"
    interrupted: bool = False
    phase_std: Optional[np.ndarray] = None
    phase_q05: Optional[np.ndarray] = None
    phase_q95: Optional[np.ndarray] = None
    induction_std: Optional[np.ndarray] = None
    induction_q05: Optional[np.ndarray] = None
    induction_q95: Optional[np.ndarray] = None
    members: Optional[list] = None
    amplitude_init: Optional[np.ndarray] = None
    amplitude_mask: Optional[np.ndarray] = None
    warnings: list = field(default_factory=list)
    settings: dict = field(default_factory=dict, repr=False)

    @classmethod
    def _ensemble(cls, d: dict, settings: dict) -> "LtemReconstruction":
        inter = bool(d["interrupted"])
        members = [cls._from(m, dict(settings, seed=m["seed"]), inter) for m in d["members"]]
        first = members[0]
        return cls(
            phase=d["phase"],
            phase_raw=first.phase_raw,
            sitie=first.sitie,
            induction=d["induction"],
            image_model=first.image_model,
            amplitude=first.amplitude,
            history=first.history,
            metrics=d["metrics"],
            stop_reason=d["metrics"]["stop"],
            interrupted=inter,
            members=members,
            settings=settings,
            **{k: d[k] for k in ("phase_std", "phase_q05", "phase_q95", "induction_std", "induction_q05", "induction_q95")},
        )

    @classmethod
    def _from(cls, d: dict, settings: dict, interrupted: bool) -> "LtemReconstruction":
        return cls(
            phase=d["phase"],
            phase_raw=d["phase_raw"],
            sitie=d["sitie"],
            induction=d["induction"],
            image_model=d["image_model"],
            amplitude=d.get("amplitude"),
            amplitude_init=d.get("amplitude_init"),
            amplitude_mask=None if d.get("amplitude_mask") is None else d["amplitude_mask"] > 0,
            warnings=list(d.get("warnings", [])),
            history=d["history"],
            metrics=d["metrics"],
            stop_reason=d["metrics"]["stop"],
            interrupted=interrupted,
            settings=settings,
        )


def _siprad(kw: dict) -> dict:
    o = dict(kw)
    o["channels"] = [int(c) for c in o["channels"]]
    o["device"] = _device(o["device"])
    for k in ("holdout", "average", "amp_threshold", "amp_smoothing", "qc"):
        o[k] = None if o[k] is None else float(o[k])
    if o["infocus"] is not None:
        o["infocus"] = f32(o["infocus"], "infocus", (2,)).ravel().tolist()
    if o["amp_mask"] is not None:
        o["amp_mask"] = [bool(v) for v in np.asarray(o["amp_mask"]).ravel()]
    o["learn_kappa"] = bool(o["learn_kappa"])
    o["kappa_lr"] = float(o["kappa_lr"])
    if o["qc"] is not None:
        o["qc"] /= 1e9  # 1/m -> the library's 1/nm
    for k in ("lr", "noise_frac", "sigma", "v0", "xi", "amp_scale_lr", "defocus"):
        o[k] = float(o[k])
    return o


_SIPRAD_DEFAULTS = dict(
    defocus=-1e-3,
    iters=400,
    pretrain=200,
    lr=5e-5,
    noise_frac=1.0 / 30.0,
    sigma=2.0,
    select="validation",
    track_after=100,
    holdout=None,
    average=None,
    amp_threshold=None,
    amp_smoothing=None,
    infocus=None,
    amp_mask=None,
    solve_amp=False,
    learn_kappa=False,
    kappa_lr=0.01,
    v0=20.0,
    xi=10e-9,
    amp_scale_lr=0.1,
    qc=None,
    periodic_input=False,
    seed=0,
    channels=(16, 32, 64, 128),
    kernel=3,
    pad=1,
    device=None,
)


def _options(scale, settings: dict) -> dict:
    unknown = set(settings) - set(_SIPRAD_DEFAULTS)
    if unknown:
        raise TypeError(f"unknown setting(s) {sorted(unknown)}; expected {sorted(_SIPRAD_DEFAULTS)}")
    o = dict(_SIPRAD_DEFAULTS)
    o.update(settings)
    o["scale"] = scale
    return _siprad(o)


def reconstruct(
    image: ArrayLike,
    *,
    scale: Optional[float] = None,
    defoci: Optional[Sequence[float]] = None,
    microscope: Optional[Microscope] = None,
    truth: Optional[ArrayLike] = None,
    ensemble: int = 1,
    progress: Progress = "auto",
    **settings,
) -> LtemReconstruction:
    """SIPRAD: the magnetic phase from one defocused image ``(H, W)`` (or a focal series
    ``(N, H, W)`` with one defocus per image in ``defoci``, metres), the same computation as
    ``magprior ltem reconstruct`` (bit-identical on the CPU).

    Settings (keywords, the CLI's defaults): ``defocus=-1e-3`` (m), ``iters=400``,
    ``pretrain=200``, ``lr=5e-5``, ``noise_frac=1/30``, ``sigma=2.0`` (px), ``select=
    "validation"`` (or ``"lowest-loss"``, ``"last"``), ``track_after=100``, ``holdout=None``
    (0.1 with validation), ``average=None`` (a decay, e.g. 0.99: return the moving average of
    the phase over the fit iterations), ``amp_threshold=None`` (model contamination: pixels of the
    smoothed image below this fraction of its background; 0.7 with ``infocus``),
    ``amp_smoothing=None`` (px; chosen from the noise), ``infocus=None`` (an in-focus image
    (H, W) of the field to find the contamination in), ``amp_mask=None`` (a mask (H, W),
    non-zero = contamination), ``solve_amp=False`` (learn the amplitude, guarded),
    ``learn_kappa=False`` (learn phi_e per unit -ln a), ``kappa_lr=0.01``, ``v0=20`` (V),
    ``xi=10e-9`` (m), ``amp_scale_lr=0.1``,
    ``qc=None`` (1/m; default 1/(max(H, W) scale)), ``periodic_input=False``, ``seed=0``, ``channels=(16, 32, 64, 128)``,
    ``kernel=3``, ``pad=1``, ``device=None`` (``MAGPRIOR_DEVICE`` or auto).

    ``scale``: pixel size (m), from the file's calibration when ``image`` is a file, else 4 nm.
    ``truth``: a true phase (H, W) for the accuracy in ``metrics``. ``ensemble``: members of an
    ensemble (seeds ``seed, seed + 1, ...``; ``ltem reconstruct --ensemble K``): the mean is
    returned with the per-pixel spread. ``progress``: as in :func:`magprior.nv.reconstruct`.
    """
    img, s = _image_and_scale(image, scale)
    o = _options(s, settings)
    t = None if truth is None else f32(truth, "truth", (2,))
    members = int(ensemble)
    if members < 1:
        raise ValueError(f"ensemble: at least one member, got {members}")
    if members > 1:
        d = run_native(
            _magprior.ltem_ensemble,
            progress,
            "ltem ensemble",
            img,
            _mic(microscope),
            o,
            members,
            None if defoci is None else [float(x) for x in defoci],
            t,
        )
        r = LtemReconstruction._ensemble(d, o)
        emit(r.metrics, r.stop_reason, r.interrupted, "ltem reconstruct --ensemble")
        return r
    d = run_native(
        _magprior.ltem_reconstruct,
        progress,
        "ltem reconstruct",
        img,
        _mic(microscope),
        o,
        None if defoci is None else [float(x) for x in defoci],
        t,
    )
    r = LtemReconstruction._from(d, o, bool(d["interrupted"]))
    emit(r.metrics, r.stop_reason, r.interrupted, "ltem reconstruct")
    return r


@dataclass
class LtemSeries:
    """The result of :func:`series`: one :class:`LtemReconstruction` per frame and the drift
    shifts ``(dy, dx, peak)`` in pixels per frame (empty without alignment)."""

    frames: List[LtemReconstruction]
    shifts: list
    interrupted: bool = False


def series(
    frames: ArrayLike,
    *,
    scale: Optional[float] = None,
    align: str = "running",
    microscope: Optional[Microscope] = None,
    progress: Progress = "auto",
    **settings,
) -> LtemSeries:
    """SIPRAD on a time series ``(N, H, W)`` (what ``ltem series`` runs): frames aligned
    (``align``: ``"running"``, ``"first"``, ``"previous"`` or ``"none"``), then each
    reconstructed warm-started from the previous frame's network. Settings as
    :func:`reconstruct`."""
    st, s = _image_and_scale(frames, scale, "frames")
    o = _options(s, settings)
    o["align"] = align
    d = run_native(_magprior.ltem_series, progress, "ltem series", st, _mic(microscope), o)
    inter = bool(d["interrupted"])
    out = LtemSeries([LtemReconstruction._from(f, o, inter) for f in d["frames"]], d["shifts"], inter)
    for r in out.frames:
        emit(r.metrics, r.stop_reason, False, "ltem series")
    if inter:
        emit({}, "interrupted", True, "ltem series")
    return out

