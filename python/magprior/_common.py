"""Helpers shared by the modules: array conversion, devices, progress, warnings."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np

from . import _magprior

ArrayLike = Any
#: A progress callback: ``f(stage, iteration, total, loss, info) -> bool | None``; returning
#: ``False`` stops the run (the result so far is returned), raising ``KeyboardInterrupt`` too.
Callback = Callable[[str, int, int, float, dict], Optional[bool]]
Progress = Union[bool, str, Callback, None]


class MagpriorWarning(UserWarning):
    """A physics warning from a run (a fit no better than the zero field, magnetisation piled on
    its bound, a collapsed branch, an interrupted run)."""


def f32(a: ArrayLike, what: str, ndim: Optional[tuple] = None) -> np.ndarray:
    """``a`` as a C-contiguous float32 array (booleans and integers converted)."""
    arr = np.asarray(a)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{what}: expected a real array, got dtype {arr.dtype}")
    if ndim is not None and arr.ndim not in ndim:
        raise ValueError(f"{what}: expected {' or '.join(f'{n}-D' for n in ndim)} array, got shape {arr.shape}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def is_path(a: Any) -> bool:
    return isinstance(a, (str, os.PathLike))


def read_path(a: Any, allow_nan: bool = False) -> tuple:
    """``(array, calibration)`` of a file; ``(a, {})`` for an array."""
    if is_path(a):
        arr, cal = _magprior.io_read(str(Path(a)), allow_nan)
        return arr, cal
    return a, {}


def device(d: Optional[str]) -> str:
    """The device a run uses: the argument, else ``MAGPRIOR_DEVICE``, else ``"auto"``."""
    if d is None:
        d = os.environ.get("MAGPRIOR_DEVICE", "").strip() or "auto"
    return str(d)


class _Bar:
    """A tqdm bar fed by the native observer (created on the first tick)."""

    def __init__(self, desc: str):
        from tqdm.auto import tqdm  # noqa: F401  (import checked by the caller)

        self._tqdm = tqdm
        self.desc = desc
        self.bar = None

    def __call__(self, stage: str, it: int, total: int, loss: float, info: dict):
        if self.bar is None:
            self.bar = self._tqdm(total=total, desc=self.desc, leave=False)
        self.bar.n = it
        self.bar.set_postfix_str(f"{stage} loss {loss:.3e}", refresh=False)
        self.bar.update(0)
        return None

    def close(self):
        if self.bar is not None:
            self.bar.close()


def progress_callback(progress: Progress, desc: str):
    """``(callback for the native call, closer)`` for a ``progress=`` argument: ``True`` /
    ``"auto"`` a tqdm bar when tqdm is installed (else silent), ``False`` / ``None`` silent, a
    callable as it is."""
    if callable(progress):
        return progress, lambda: None
    if progress in (True, "auto"):
        try:
            bar = _Bar(desc)
        except ImportError:
            return None, lambda: None
        return bar, bar.close
    if progress in (False, None):
        return None, lambda: None
    raise ValueError(f"progress: expected True, False, 'auto' or a callable, got {progress!r}")


def run_native(fn, progress: Progress, desc: str, *args, **kwargs):
    """Calls a native run with a progress callback; the bar is closed however it ends."""
    cb, close = progress_callback(progress, desc)
    try:
        return fn(*args, callback=cb, **kwargs)
    finally:
        close()


def emit(metrics: dict, stop: str, interrupted: bool, what: str) -> None:
    """The run's physics warnings (and an interruption) as Python warnings."""
    for w in metrics.get("warnings", []) or []:
        warnings.warn(f"{what}: {w}", MagpriorWarning, stacklevel=3)
    if interrupted or stop == "interrupted":
        warnings.warn(
            f"{what}: interrupted; returning the result so far ({stop})", MagpriorWarning, stacklevel=3
        )
    elif stop.startswith("diverged"):
        warnings.warn(
            f"{what}: the loss became NaN/inf ({stop}); kept the last good result",
            MagpriorWarning,
            stacklevel=3,
        )
