"""Shared fixtures: the repository, the CLI binary (for bit-for-bit comparisons), small inputs."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def pytest_report_header(config):
    import magprior

    devs = ", ".join(f"{d['name']}: {d['description']}" for d in magprior.devices())
    return f"magprior {magprior.__version__}; devices: {devs}"


@pytest.fixture(scope="session")
def cli() -> Path:
    """The `magprior` binary: $MAGPRIOR_CLI, else built with cargo (debug profile)."""
    env = os.environ.get("MAGPRIOR_CLI")
    if env:
        p = Path(env)
        if not p.exists():
            pytest.fail(f"MAGPRIOR_CLI={env} does not exist")
        return p
    cargo = shutil.which("cargo")
    if cargo is None:
        pytest.skip("no cargo to build the CLI for the bit-for-bit comparisons")
    subprocess.run([cargo, "build", "--quiet", "--bin", "magprior"], cwd=ROOT, check=True)
    return ROOT / "target" / "debug" / "magprior"


@pytest.fixture
def run_cli(cli, tmp_path):
    """Runs the CLI (device cpu, quiet where the command takes it); returns its stdout."""

    def run(*args: str) -> str:
        env = dict(os.environ, MAGPRIOR_DEVICE="cpu")
        r = subprocess.run([str(cli), *args], capture_output=True, text=True, env=env, cwd=tmp_path)
        if r.returncode != 0:
            raise AssertionError(f"CLI {' '.join(args)} failed ({r.returncode}):\n{r.stderr}")
        return r.stdout

    return run


@pytest.fixture(scope="session")
def landau():
    """A 64x64 Landau-state ellipse (a relaxed state would need a solver: a clean preset
    pattern is enough to compare the two front ends) and its B_NV."""
    import magprior

    h = w = 64
    pixel = 5e-9
    sup = magprior.nv.support("ellipse:120nm,80nm", shape=(h, w), pixel=pixel)
    m = magprior.nv.mask(sup, preset="landau") * np.float32(8.6e5)
    bnv = magprior.nv.forward(m, pixel=pixel, thickness=20e-9, standoff=50e-9)
    return dict(m=m, bnv=bnv, support=sup, pixel=pixel)
