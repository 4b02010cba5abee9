"""Reading the files the CLI reads: ``.npy`` (any dtype, Fortran order, big-endian), text
matrices, TIFF (ImageJ / OME calibration), PNG, DigitalMicrograph ``.dm3`` / ``.dm4``, and OVF
1.0 / 2.0 (text, binary 4 / 8) from mumax3, OOMMF and other writers."""

from __future__ import annotations

import os
from typing import Tuple, Union

import numpy as np

from . import _magprior

__all__ = ["read"]


def read(path: Union[str, os.PathLike], *, allow_nan: bool = False) -> Tuple[np.ndarray, dict]:
    """Reads ``path`` -> ``(array, calibration)``.

    The array is float32: ``.npy`` as stored; images ``(H, W)`` or stacks ``(frames, H, W)``;
    OVF ``(3, ny, nx)`` (z-averaged, not multiplied by the ``valuemultiplier``).
    ``calibration`` holds ``pixel_x``, ``pixel_y``, ``pixel_z`` (metres or None), ``source``
    (which file fields they came from), and for OVF ``cell`` (x, y, z in m), ``value_units``
    (the header's unit, e.g. ``"A/m"`` or ``"1"``), ``values`` (what that means) and
    ``value_multiplier``.

    Non-finite values are an error unless ``allow_nan`` (scan dropouts).

    Raises:
        FileNotFoundError: no such file. OSError: it cannot be read.
        ValueError: its content is not a supported array (the message says why).
    """
    return _magprior.io_read(os.fspath(path), bool(allow_nan))
