"""The repository's notebook runs headless (nbclient) without an error, and says what it found."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

NB = Path(__file__).resolve().parents[1] / "notebooks" / "demo.ipynb"


def test_the_demo_notebook_runs():
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(NB, as_version=4)
    os.environ.setdefault("MPLBACKEND", "Agg")
    nbclient.NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(NB.parent)}}).execute()
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "direction cosine vs truth" in text and "phase accuracy: SIPRAD" in text
    cos = float(text.split("direction cosine vs truth")[1].split()[0])
    assert cos > 0.9, text
    acc = text.split("phase accuracy: SIPRAD")[1].split()
    siprad, sitie = float(acc[0].rstrip(",")), float(acc[2])
    assert siprad > 0.8 and siprad > sitie, text
