"""magprior: physics-informed deep image prior reconstruction of nanoscale magnetic textures
from scanning NV magnetometry (:mod:`magprior.nv`) and Lorentz TEM (:mod:`magprior.ltem`), on a
numeric engine of its own (Rust).

    >>> import magprior
    >>> r = magprior.nv.reconstruct(bnv, pixel=5e-9, support="ellipse:230nm,150nm", iters=200)
    >>> r.magnetization.shape   # (2, H, W) float32, A/m

Arrays are NumPy, units SI, keywords carry the CLI's defaults; every reconstruction takes
``device="auto" | "cpu" | "gpu"`` and ``progress=``; Ctrl-C stops a run and returns the result
so far.
"""

from __future__ import annotations

from typing import List

from . import _magprior
from . import io, ltem, nv
from ._common import MagpriorWarning

__version__: str = _magprior.__version__

__all__ = ["nv", "ltem", "io", "devices", "MagpriorWarning", "__version__"]


def devices() -> List[dict]:
    """The compute devices: ``[{"name": "cpu", "description": ...}, {"name": "gpu",
    "description": <adapter>}, ...]`` (one entry per GPU adapter the environment offers;
    ``device="gpu"`` takes the best ranked)."""
    return _magprior.devices()
