"""magprior.ltem from Python: every function equal to the CLI on the CPU, SITIE against ltempy's
(an independent package's) images, the electron wavelength against its textbook value, bad input
and interrupts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import magprior
from magprior import ltem

ROOT = Path(__file__).resolve().parents[2]

# a small run: the point is equality with the CLI, not quality
FAST = dict(iters=12, pretrain=6, track_after=2)
MIC = ltem.Microscope.siprad_demo()
MIC_FLAGS = ["--cs", "0.2mm", "--theta-c", "1e-5", "--spread", "80nm"]
FAST_FLAGS = ["--iters", "12", "--pretrain", "6", "--track-after", "2", "--device", "cpu", "--quiet", *MIC_FLAGS]


@pytest.fixture(scope="module")
def bubbles():
    """A 64x64 Bloch bubble lattice, in A/m."""
    return ltem.texture("bubbles", 64, ms=2e5, seed=1)


@pytest.fixture(scope="module")
def sim(bubbles):
    return ltem.simulate(bubbles, thickness=50e-9, scale=4e-9, defocus=-0.5e-3, noise=0.1, seed=2, microscope=MIC)


def test_simulate_equals_cli(bubbles, sim, tmp_path, run_cli):
    np.save(tmp_path / "m.npy", bubbles)
    run_cli("ltem", "simulate", "--magnetization", "m.npy", "--thickness", "50nm", "--scale", "4nm",
            "--defocus=-0.5mm", "--noise", "0.1", "--seed", "2", *MIC_FLAGS, "--out", "sim")
    for k in ("phase", "image", "image_clean", "induction"):
        assert np.array_equal(sim[k], np.load(tmp_path / "sim" / f"{k}.npy")), k
    assert sim["induction"].shape == (2, 64, 64) and sim["phase"].min() == 0.0


def test_forward_sitie_induction_equal_cli(sim, tmp_path, run_cli):
    np.save(tmp_path / "phase.npy", sim["phase"])
    np.save(tmp_path / "img.npy", sim["image"])
    run_cli("ltem", "forward", "--phase", "phase.npy", "--scale", "4nm", "--defocus=-0.5mm", *MIC_FLAGS, "--out", "f.npy")
    f = ltem.forward(sim["phase"], scale=4e-9, defocus=-0.5e-3, microscope=MIC)
    assert np.array_equal(f, np.load(tmp_path / "f.npy"))
    assert np.array_equal(f, sim["image_clean"])
    run_cli("ltem", "sitie", "--image", "img.npy", "--scale", "4nm", "--defocus=-0.5mm", "--symmetric",
            "--qc", "0.002", *MIC_FLAGS, "--out", "s.npy")
    # qc in SI (1/m) here, 1/nm on the command line
    s = ltem.sitie(sim["image"], scale=4e-9, defocus=-0.5e-3, symmetric=True, qc=2e6, microscope=MIC)
    assert np.array_equal(s, np.load(tmp_path / "s.npy"))
    run_cli("ltem", "induction", "--phase", "phase.npy", "--scale", "4nm", "--out", "b.npy")
    assert np.array_equal(ltem.induction(sim["phase"], scale=4e-9), np.load(tmp_path / "b.npy"))


def test_sitie_agrees_with_ltempy():
    d = ROOT / "fixtures" / "ltempy"
    cfg = np.load(d / "config.npy")  # scale nm, wavelength nm, Cs nm, divergence rad, D nm
    images, theirs = np.load(d / "images.npy"), np.load(d / "sitie.npy")
    mic = ltem.Microscope(Cs=cfg[2] * 1e-9, theta_c=float(cfg[3]), def_spr=0.0)
    ours = ltem.sitie(images[0], scale=cfg[0] * 1e-9, defocus=-cfg[4] * 1e-9, microscope=mic, symmetric=True)
    r = np.corrcoef(ours.ravel(), theirs.ravel())[0, 1]
    assert r > 0.95, r
    assert mic.lam == pytest.approx(cfg[1] * 1e-9, rel=1e-4)


def test_wavelength_is_the_textbook_value():
    assert ltem.Microscope(E=200e3).lam == pytest.approx(2.5079e-12, rel=1e-4)
    assert ltem.Microscope(E=300e3).lam == pytest.approx(1.9687e-12, rel=1e-4)


def test_reconstruct_equals_cli_bit_for_bit(sim, tmp_path, run_cli):
    np.save(tmp_path / "img.npy", sim["image"])
    np.save(tmp_path / "truth.npy", sim["phase"])
    run_cli("ltem", "reconstruct", "--image", "img.npy", "--scale", "4nm", "--defocus=-0.5mm",
            "--truth", "truth.npy", "--seed", "5", *FAST_FLAGS, "--out", "r")
    r = ltem.reconstruct(sim["image"], scale=4e-9, defocus=-0.5e-3, seed=5, truth=sim["phase"],
                         microscope=MIC, device="cpu", progress=False, **FAST)
    for k in ("phase", "phase_raw", "sitie", "induction", "image_model"):
        assert np.array_equal(getattr(r, k), np.load(tmp_path / "r" / f"{k}.npy")), k
    cm = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert r.metrics["accuracy"]["phase"] == pytest.approx(cm["accuracy"]["phase"], rel=1e-12)
    assert r.metrics["selected_iteration"] == cm["selected_iteration"]
    stages = list(r.history["stage"])
    assert stages.count("pretrain") == 6 and stages.count("fit") == 12


def test_focal_series_and_time_series_equal_cli(bubbles, tmp_path, run_cli):
    imgs = [ltem.simulate(bubbles, thickness=50e-9, defocus=d, noise=0.05, seed=k, microscope=MIC)["image"]
            for k, d in enumerate((-0.5e-3, 0.0, 0.5e-3))]
    for k, im in enumerate(imgs):
        np.save(tmp_path / f"i{k}.npy", im)
    run_cli("ltem", "reconstruct", "--image", "i0.npy,i1.npy,i2.npy", "--defoci=-0.5mm,0,0.5mm",
            *FAST_FLAGS, "--out", "fs")
    r = ltem.reconstruct(np.stack(imgs), defoci=[-0.5e-3, 0.0, 0.5e-3], microscope=MIC, device="cpu",
                         progress=False, **FAST)
    assert np.array_equal(r.phase, np.load(tmp_path / "fs" / "phase.npy"))

    np.save(tmp_path / "stack.npy", np.stack(imgs[:2]))
    run_cli("ltem", "series", "--frames", "stack.npy", "--defocus=-0.5mm", *FAST_FLAGS, "--out", "ts")
    s = ltem.series(np.stack(imgs[:2]), defocus=-0.5e-3, microscope=MIC, device="cpu", progress=False, **FAST)
    assert len(s.frames) == 2 and len(s.shifts) == 2
    for k in range(2):
        assert np.array_equal(s.frames[k].phase, np.load(tmp_path / "ts" / f"frame_{k:04}" / "phase.npy"))


def test_interrupt_and_bad_input(sim):
    def cb(stage, it, total, loss, info):
        if it == 4:
            raise KeyboardInterrupt

    with pytest.warns(magprior.MagpriorWarning, match="interrupted"):
        r = ltem.reconstruct(sim["image"], device="cpu", progress=cb, **FAST)
    assert r.interrupted and r.stop_reason == "interrupted" and r.phase.shape == (64, 64)
    with pytest.raises(ValueError, match="defoci"):
        ltem.reconstruct(np.stack([sim["image"]] * 2), progress=False, **FAST)
    with pytest.raises(TypeError, match="unknown setting"):
        ltem.reconstruct(sim["image"], iterations=3, progress=False)
    with pytest.raises(ValueError, match="select"):
        ltem.reconstruct(sim["image"], select="best", progress=False, **FAST)
    with pytest.raises(ValueError, match="image"):
        ltem.sitie(np.zeros(5))
    with pytest.raises(ValueError, match="kV|voltage|positive"):
        ltem.sitie(sim["image"], microscope=ltem.Microscope(E=-1.0))
    with pytest.raises(FileNotFoundError):
        ltem.sitie("/nonexistent/image.tif")


def test_gpu_matches_cpu():
    if not any(d["name"] == "gpu" for d in magprior.devices()):
        pytest.skip("SKIP: no GPU adapter")
    sim = ltem.simulate(ltem.texture("bubbles", 32, ms=2e5), thickness=50e-9, defocus=-0.2e-3, microscope=MIC)
    kw = dict(defocus=-0.2e-3, microscope=MIC, progress=False, select="last", iters=3, pretrain=2, noise_frac=0.0,
              channels=(8, 16))  # 4 levels on 32x32 would normalise 2x2 maps: ill-conditioned
    g = ltem.reconstruct(sim["image"], device="gpu", **kw)
    c = ltem.reconstruct(sim["image"], device="cpu", **kw)
    assert np.corrcoef(g.phase.ravel(), c.phase.ravel())[0, 1] > 0.9999
    assert np.abs(g.image_model - c.image_model).max() < 1e-3 * np.abs(c.image_model).max()


def test_ensemble_equals_cli(sim, tmp_path, run_cli):
    np.save(tmp_path / "img.npy", sim["image"])
    np.save(tmp_path / "truth.npy", sim["phase"])
    run_cli("ltem", "reconstruct", "--image", "img.npy", "--scale", "4nm", "--defocus=-0.5mm",
            "--truth", "truth.npy", "--ensemble", "2", *FAST_FLAGS, "--out", "e")
    r = ltem.reconstruct(sim["image"], scale=4e-9, defocus=-0.5e-3, truth=sim["phase"], ensemble=2,
                         microscope=MIC, device="cpu", progress=False, **FAST)
    for k in ("phase", "phase_std", "phase_q05", "phase_q95", "induction", "induction_std"):
        assert np.array_equal(getattr(r, k), np.load(tmp_path / "e" / f"{k}.npy")), k
    cm = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert r.metrics["coverage_phase"] == pytest.approx(cm["truth"]["coverage_phase"], rel=1e-12)
    assert len(r.members) == 2 and r.members[1].settings["seed"] == 1
    assert np.array_equal(r.members[0].phase, np.load(tmp_path / "e" / "members" / "seed_0" / "phase.npy"))


def test_contamination_from_an_in_focus_image_equals_cli(sim, tmp_path, run_cli):
    """A dark disc (amplitude 0.6) in the image and in an in-focus image of the field: the
    amplitude model finds it there, Python and the CLI agree bit for bit."""
    img = sim["image"].copy()
    yy, xx = np.mgrid[:64, :64]
    disc = (yy - 30) ** 2 + (xx - 22) ** 2 < 36
    img[disc] *= 0.36
    rng = np.random.default_rng(0)
    focus = np.where(disc, 0.36, 1.0) + 0.1 * rng.standard_normal((64, 64))
    np.save(tmp_path / "img.npy", img.astype(np.float32))
    np.save(tmp_path / "focus.npy", focus.astype(np.float32))
    np.save(tmp_path / "truth.npy", sim["phase"])
    run_cli("ltem", "reconstruct", "--image", "img.npy", "--scale", "4nm", "--defocus=-0.5mm",
            "--infocus", "focus.npy", "--solve-amp", "--truth", "truth.npy", *FAST_FLAGS,
            "--out", "r")
    r = ltem.reconstruct(img, scale=4e-9, defocus=-0.5e-3, infocus=focus, solve_amp=True,
                         truth=sim["phase"], microscope=MIC, device="cpu", progress=False, **FAST)
    for k in ("phase", "amplitude", "amplitude_init"):
        assert np.array_equal(getattr(r, k), np.load(tmp_path / "r" / f"{k}.npy")), k
    cm = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert r.metrics["amplitude_area_fraction"] == pytest.approx(cm["amplitude_area_fraction"])
    assert r.metrics["kappa"] == pytest.approx(cm["kappa"])
    iou = (r.amplitude_mask & disc).sum() / (r.amplitude_mask | disc).sum()
    assert iou > 0.7, iou
    assert r.amplitude_init[30, 22] < 0.7 and r.amplitude_init[0, 0] == pytest.approx(1.0, abs=1e-3)
    with pytest.raises(ValueError, match="solve_amp"):
        ltem.reconstruct(img, scale=4e-9, solve_amp=True, microscope=MIC, progress=False, **FAST)
