"""magprior.io.read: unusual but valid files are read, calibrations honoured, bad files raise
with the file's name; the real files of other tools when the shared data folder is present."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import magprior
from magprior import io

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


def test_npy_variants_are_read(tmp_path):
    a = np.arange(12, dtype=np.float64).reshape(3, 4)
    for name, arr in [("f8be", a.astype(">f8")), ("fortran", np.asfortranarray(a)), ("int", a.astype(np.int16))]:
        p = tmp_path / f"{name}.npy"
        np.save(p, arr)
        got, cal = io.read(p)
        assert got.dtype == np.float32 and np.array_equal(got, a.astype(np.float32)), name
        assert cal["pixel_x"] is None


def test_ovf_text_file_with_lower_case_keywords(tmp_path):
    # an OVF 2.0 text file written here from the format's description (not by magprior)
    nx, ny = 3, 2
    lines = ["# OOMMF OVF 2.0", "# segment count: 1", "# begin: segment", "# begin: header",
             "# title: m", "# meshtype: rectangular", "# meshunit: m", "# xmin: 0", "# ymin: 0", "# zmin: 0",
             "# xmax: 1.5e-08", "# ymax: 1e-08", "# zmax: 2e-09", "# valuedim: 3", "# valueunits: 1 1 1",
             "# xbase: 2.5e-09", "# ybase: 2.5e-09", "# zbase: 1e-09", "# xnodes: 3", "# ynodes: 2",
             "# znodes: 1", "# xstepsize: 5e-09", "# ystepsize: 5e-09", "# zstepsize: 2e-09",
             "# end: header", "# begin: data text"]
    for j in range(ny):
        for i in range(nx):
            lines.append(f"{i} {j} 1")
    lines += ["# end: data text", "# end: segment"]
    p = tmp_path / "m.ovf"
    p.write_text("\n".join(lines) + "\n")
    m, cal = io.read(p)
    assert m.shape == (3, ny, nx)
    assert np.array_equal(m[0], np.array([[0, 1, 2], [0, 1, 2]], np.float32))
    assert np.array_equal(m[1], np.array([[0, 0, 0], [1, 1, 1]], np.float32))
    assert cal["cell"] == pytest.approx([5e-9, 5e-9, 2e-9]) and cal["pixel_x"] == pytest.approx(5e-9)
    assert cal["value_units"] == "1"


def test_bad_files_raise_with_the_file_name(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.npy"):
        io.read(tmp_path / "missing.npy")
    p = tmp_path / "garbage.npy"
    p.write_bytes(b"not an npy file at all")
    with pytest.raises(ValueError, match="garbage.npy"):
        io.read(p)
    q = tmp_path / "nan.npy"
    np.save(q, np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match="non-finite"):
        io.read(q)
    got, _ = io.read(q, allow_nan=True)
    assert np.isnan(got[0, 1])


def test_devices_lists_the_cpu_first():
    d = magprior.devices()
    assert d[0]["name"] == "cpu" and all({"name", "description"} <= set(x) for x in d)


@pytest.mark.skipif(not SHARED.is_dir(), reason="SKIP: ../shared/data (real files of other tools) is absent")
def test_real_files_of_other_tools():
    m, cal = io.read(SHARED / "example_mumax.ovf")
    assert m.ndim == 3 and m.shape[0] == 3 and cal["cell"] is not None
    norms = np.linalg.norm(m, axis=0)
    assert np.nanmax(norms) > 0
    dms = sorted((SHARED / "dm").glob("*.dm[34]"))
    assert dms, "no DigitalMicrograph files in the shared folder"
    for f in dms:
        a, cal = io.read(f)
        assert a.ndim in (2, 3) and np.isfinite(a).all(), f.name
