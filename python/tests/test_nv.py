"""magprior.nv from Python: every function on real arrays, equal bit for bit to the CLI on the
CPU, against an independent field (a dipole's), bad input, interrupts, the GIL."""

from __future__ import annotations

import threading
import time
import warnings

import numpy as np
import pytest

import magprior
from magprior import nv

MU0 = 4e-7 * np.pi


def test_forward_equals_cli(landau, tmp_path, run_cli):
    np.save(tmp_path / "m.npy", landau["m"])
    run_cli("nv", "forward", "--magnetization", "m.npy", "--pixel", "5nm", "--thickness", "20nm",
            "--standoff", "50nm", "--out", "bnv.npy", "--components", "b.npy")
    bnv, b = nv.forward(landau["m"], pixel=5e-9, thickness=20e-9, standoff=50e-9, components=True)
    assert bnv.dtype == np.float32 and bnv.shape == (64, 64) and b.shape == (3, 64, 64)
    assert np.array_equal(bnv, np.load(tmp_path / "bnv.npy"))
    assert np.array_equal(b, np.load(tmp_path / "b.npy"))


def test_forward_matches_the_dipole_far_field():
    # a 20 nm cube magnetised along z, seen from 400 nm above: B is a point dipole's
    n, pixel, ms, d = 128, 10e-9, 1e6, 400e-9
    m = np.zeros((3, n, n), np.float32)
    m[2, 63:65, 63:65] = ms
    t = 20e-9
    bz, b = nv.forward(m, pixel=pixel, thickness=t, standoff=d, theta=0.0, pad=4, components=True)
    moment = ms * (2 * pixel) ** 2 * t
    z = d + t / 2
    y, x = (np.mgrid[0:n, 0:n] - 63.5) * pixel
    r = np.sqrt(x**2 + y**2 + z**2)
    exact = MU0 * moment / (4 * np.pi * r**3) * (3 * z**2 / r**2 - 1)
    inner = r < 800e-9
    err = np.abs(b[2][inner] - exact[inner]).max() / np.abs(exact).max()
    assert err < 0.01, err
    assert np.allclose(bz, b[2], rtol=1e-5, atol=1e-6 * np.abs(bz).max())  # theta = 0: B_NV is Bz


def test_deproject_and_invert_equal_cli(landau, tmp_path, run_cli):
    np.save(tmp_path / "bnv.npy", landau["bnv"])
    run_cli("nv", "deproject", "--bnv", "bnv.npy", "--pixel", "5nm", "--out", "b.npy")
    b, eps = nv.deproject(landau["bnv"], pixel=5e-9, return_eps=True)
    assert np.array_equal(b, np.load(tmp_path / "b.npy")) and eps > 0
    run_cli("nv", "invert", "--bnv", "bnv.npy", "--pixel", "5nm", "--direction", "90,0", "--out", "inv.npy")
    inv = nv.invert(landau["bnv"], pixel=5e-9, direction=(90.0, 0.0))
    assert np.array_equal(inv, np.load(tmp_path / "inv.npy"))


def test_support_shapes_and_masks():
    sup = nv.support("ellipse:120nm,80nm", shape=(64, 64), pixel=5e-9)
    area = np.pi * 24 * 16  # semi-axes in pixels
    assert sup.shape == (64, 64) and set(np.unique(sup)) <= {0.0, 1.0}
    assert abs(sup.sum() / area - 1) < 0.05
    rect = nv.support("rect:50nm,25nm", shape=(64, 64), pixel=5e-9)
    assert rect.sum() == pytest.approx(20 * 10, rel=0.1)
    for preset in nv.PRESETS:
        m = nv.mask(sup, preset=preset)
        assert m.shape == (2, 64, 64)
        assert np.all(m[:, sup == 0] == 0) and np.abs(m).max() <= 1.0
    ccw, cw = nv.mask(sup, preset="landau"), nv.mask(sup, preset="landau", chirality="cw")
    assert np.array_equal(ccw, -cw)
    assert nv.mask(sup, preset="vortex", with_mz=True).shape == (3, 64, 64)
    # the automatic support finds the ellipse from its field: along the known direction
    # closely, by a scan of directions (grown by half a wavelength) around it
    m = nv.mask(sup, preset="dipole") * np.float32(8.6e5)
    bnv = nv.forward(m, pixel=5e-9)
    given = nv.support("auto", bnv=bnv, pixel=5e-9, direction=(90.0, 0.0))
    iou = (given * sup).sum() / np.maximum(given, sup).sum()
    assert iou > 0.8, iou
    scan, info = nv.support("auto", bnv=bnv, pixel=5e-9, return_info=True)
    assert (scan * sup).sum() / sup.sum() > 0.95 and scan.mean() < 0.9, info["area_fraction"]


def _cli_recon(run_cli, tmp_path, name, *flags):
    out = tmp_path / name
    run_cli("nv", "reconstruct", "--bnv", "bnv.npy", "--pixel", "5nm", "--device", "cpu", "--quiet",
            "--out", str(out), *flags)
    return out


def test_reconstruct_equals_cli_bit_for_bit(landau, tmp_path, run_cli):
    np.save(tmp_path / "bnv.npy", landau["bnv"])
    np.save(tmp_path / "sup.npy", landau["support"])
    out = _cli_recon(run_cli, tmp_path, "a", "--support", "sup.npy", "--iters", "40", "--seed", "3")
    r = nv.reconstruct(landau["bnv"], pixel=5e-9, thickness=20e-9, standoff=50e-9,
                       support=landau["support"], mask_preset="none", iters=40, seed=3,
                       device="cpu", progress=False)
    assert r.magnetization.dtype == np.float32 and r.magnetization.shape == (3, 64, 64)
    assert np.array_equal(r.magnetization, np.load(out / "magnetization.npy"))
    assert np.array_equal(r.bnv_model, np.load(out / "bnv_model.npy"))
    import json

    cm = json.loads((out / "metrics.json").read_text())
    for k in ("chi2_per_pixel", "zero_field_chi2_per_pixel", "mse", "snr_db", "selected_iteration"):
        assert r.metrics[k] == pytest.approx(cm[k], rel=1e-12), k
    assert r.metrics["warnings"] == cm["warnings"]
    assert len(r.history["loss"]) == 40 and r.stop_reason == "completed" and not r.interrupted


def test_reconstruct_with_a_shape_and_a_preset_equals_cli(landau, tmp_path, run_cli):
    np.save(tmp_path / "bnv.npy", landau["bnv"])
    out = _cli_recon(run_cli, tmp_path, "b", "--support", "ellipse:120nm,80nm", "--mask-preset", "landau",
                     "--background", "none", "--iters", "25", "--lr", "1e-3")
    r = nv.reconstruct(landau["bnv"], pixel=5e-9, support="ellipse:120nm,80nm", mask_preset="landau",
                       background="none", iters=25, lr=1e-3, device="cpu", progress=False)
    assert np.array_equal(r.magnetization, np.load(out / "magnetization.npy"))
    assert np.array_equal(r.mask, nv.mask(landau["support"], preset="landau"))


def test_reconstruct_recovers_the_landau_state(landau):
    # the preset fixes the pattern; the network finds the magnitude: the in-plane cosine with
    # the truth and the fit's chi^2 say it worked (not just ran)
    r = nv.reconstruct(landau["bnv"], pixel=5e-9, support=landau["support"], mask_preset="landau",
                       background="none", noise=1e-5, iters=150, lr=2e-3, device="cpu", progress=False)
    cos = nv.direction_cosine(r.magnetization, landau["m"], landau["support"])
    assert cos > 0.95, cos
    assert r.history["loss"][-1] < r.history["loss"][0] / 10


def test_sweep_runs_each_setting_as_reconstruct_does(landau):
    s = nv.sweep(landau["bnv"], pixel=5e-9, support=landau["support"], mask_preset="dipole",
                 angles=[0.0, 90.0], iters=10, device="cpu", progress=False)
    assert len(s.rows) == 2 and len(s.results) == 2
    for res in s.results:
        one = nv.reconstruct(landau["bnv"], pixel=5e-9, support=landau["support"], mask_preset="dipole",
                             mask_angle=res.settings["mask_angle"], iters=10, device="cpu", progress=False)
        assert np.array_equal(res.magnetization, one.magnetization)


def test_keyboard_interrupt_returns_the_result_so_far(landau):
    seen, infos = [], []

    def cb(stage, it, total, loss, info):
        seen.append(it)
        infos.append((stage, total, info))
        if it == 7:
            raise KeyboardInterrupt

    with pytest.warns(magprior.MagpriorWarning, match="interrupted"):
        r = nv.reconstruct(landau["bnv"], pixel=5e-9, support=landau["support"], iters=500,
                           device="cpu", progress=cb)
    assert r.interrupted and r.stop_reason == "interrupted"
    assert len(r.history["loss"]) == 7 and seen[-1] == 7 and seen[0] == 1
    assert r.magnetization.shape == (3, 64, 64) and np.isfinite(r.magnetization).all()
    assert infos[0][0] == "fit" and infos[0][1] == 500 and {"snr_db", "lr"} <= set(infos[0][2])


def test_callback_returning_false_stops_and_other_exceptions_propagate(landau):
    r = nv.reconstruct(landau["bnv"], pixel=5e-9, support=landau["support"], iters=500, device="cpu",
                       progress=lambda s, i, n, loss, info: i < 3)
    assert len(r.history["loss"]) == 3 and r.stop_reason == "interrupted"

    def bad(*_):
        raise ZeroDivisionError("from the callback")

    with pytest.raises(ZeroDivisionError, match="from the callback"):
        nv.reconstruct(landau["bnv"], pixel=5e-9, support=landau["support"], iters=50, device="cpu",
                       progress=bad)


def test_the_gil_is_released_while_computing(landau):
    ticks = []
    stop = threading.Event()

    def counter():
        while not stop.is_set():
            ticks.append(1)
            time.sleep(0.001)

    th = threading.Thread(target=counter)
    th.start()
    t0 = time.perf_counter()
    nv.reconstruct(landau["bnv"], pixel=5e-9, support=landau["support"], iters=30, device="cpu", progress=False)
    dt = time.perf_counter() - t0
    stop.set()
    th.join()
    # a thread that needs the GIL every millisecond keeps running during the reconstruction
    assert len(ticks) > 0.2 * dt / 0.0011, (len(ticks), dt)


def test_bad_input_raises_the_right_exception(landau, tmp_path):
    b, sup = landau["bnv"], landau["support"]
    with pytest.raises(ValueError, match=r"bnv: expected an \(H, W\) map"):
        nv.reconstruct(b[0], pixel=5e-9, support=sup, iters=1, progress=False)
    nan = b.copy()
    nan[3, 4] = np.nan
    with pytest.raises(ValueError, match="ignore_nan=True"):
        nv.reconstruct(nan, pixel=5e-9, support=sup, iters=1, progress=False)
    with pytest.raises(ValueError, match="mask_preset"):
        nv.reconstruct(b, pixel=5e-9, support=sup, mask_preset="spiral", iters=1, progress=False)
    with pytest.raises(ValueError, match="support"):
        nv.reconstruct(b, pixel=5e-9, iters=1, progress=False)
    with pytest.raises(ValueError, match="lr must be positive"):
        nv.reconstruct(b, pixel=5e-9, support=sup, lr=-1.0, iters=1, progress=False)
    with pytest.raises(ValueError, match="unknown device"):
        nv.reconstruct(b, pixel=5e-9, support=sup, iters=1, device="tpu", progress=False)
    with pytest.raises(ValueError, match="pixel"):
        nv.reconstruct(b, support=sup, iters=1, progress=False)
    with pytest.raises(FileNotFoundError, match="nope.npy"):
        nv.reconstruct(b, pixel=5e-9, support=str(tmp_path / "nope.npy"), iters=1, progress=False)
    with pytest.raises(ValueError, match="support"):
        nv.reconstruct(b, pixel=5e-9, support=np.ones((32, 32)), iters=1, progress=False)
    with pytest.raises(ValueError, match="magnetization"):
        nv.forward(np.zeros((4, 8, 8)), pixel=5e-9)
    # NaN pixels are left out when asked
    r = nv.reconstruct(nan, pixel=5e-9, support=sup, iters=3, ignore_nan=True, progress=False)
    assert np.isfinite(r.magnetization).all()


def test_a_file_name_reads_the_map_and_its_calibration(landau, tmp_path):
    np.save(tmp_path / "bnv.npy", landau["bnv"].astype(">f8"))  # big-endian float64: read, not refused
    r = nv.reconstruct(str(tmp_path / "bnv.npy"), pixel=5e-9, support=landau["support"], iters=5,
                       device="cpu", progress=False)
    r2 = nv.reconstruct(landau["bnv"], pixel=5e-9, support=landau["support"], iters=5, device="cpu",
                        progress=False)
    assert np.array_equal(r.magnetization, r2.magnetization)


def test_physics_warnings_reach_python(landau):
    # a map of pure noise: the fit explains nothing better than the zero field
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 1e-4, (64, 64)).astype(np.float32)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        r = nv.reconstruct(noise, pixel=5e-9, support=landau["support"], iters=20, device="cpu", progress=False)
    assert r.metrics["warnings"], r.metrics
    assert any(issubclass(x.category, magprior.MagpriorWarning) for x in w)


def test_gpu_matches_cpu():
    if not any(d["name"] == "gpu" for d in magprior.devices()):
        pytest.skip("SKIP: no GPU adapter")
    d = nv.demo_landau(32)
    kw = dict(pixel=5e-9, support=d["support"], mask_preset="landau", iters=4, progress=False)
    g = nv.reconstruct(d["bnv"], device="gpu", **kw)
    c = nv.reconstruct(d["bnv"], device="cpu", **kw)
    scale = np.abs(c.magnetization).max()
    assert scale > 0 and np.abs(g.magnetization - c.magnetization).max() < 1e-2 * scale
    assert np.abs(g.bnv_model - c.bnv_model).max() < 1e-2 * np.abs(c.bnv_model).max()


def test_ctrl_c_stops_a_run_and_returns_the_result_so_far(tmp_path):
    # a real SIGINT, as a terminal's Ctrl-C or Jupyter's "interrupt kernel" sends it
    import signal
    import subprocess
    import sys

    script = tmp_path / "run.py"
    script.write_text(
        "import sys, numpy as np, magprior\n"
        "d = magprior.nv.demo_landau(64)\n"
        "def cb(stage, it, total, loss, info):\n"
        "    if it == 2:\n"
        "        print('running', flush=True)\n"
        "r = magprior.nv.reconstruct(d['bnv'], pixel=5e-9, support=d['support'], iters=100000,\n"
        "                            device='cpu', progress=cb)\n"
        "print('stop', r.stop_reason, len(r.history['loss']), np.isfinite(r.magnetization).all(), flush=True)\n"
    )
    p = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout is not None
    assert p.stdout.readline().strip() == "running"
    time.sleep(0.5)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    words = out.split()
    assert words[:2] == ["stop", "interrupted"] and 2 < int(words[2]) < 100000 and words[3] == "True", out
    assert "interrupted" in err  # the MagpriorWarning


def test_ensemble_equals_cli_and_its_members_are_single_runs(landau, tmp_path, run_cli):
    np.save(tmp_path / "bnv.npy", landau["bnv"])
    np.save(tmp_path / "sup.npy", landau["support"])
    out = _cli_recon(run_cli, tmp_path, "e", "--support", "sup.npy", "--iters", "15", "--seed", "4",
                     "--ensemble", "3")
    r = nv.reconstruct(landau["bnv"], pixel=5e-9, support=landau["support"], iters=15, seed=4, ensemble=3,
                       device="cpu", progress=False)
    for k in ("magnetization", "magnetization_std", "magnetization_q05", "magnetization_q95"):
        assert np.array_equal(getattr(r, k), np.load(out / f"{k}.npy")), k
    assert len(r.members) == 3 and [m.settings["seed"] for m in r.members] == [4, 5, 6]
    one = nv.reconstruct(landau["bnv"], pixel=5e-9, support=landau["support"], iters=15, seed=5,
                         device="cpu", progress=False)
    assert np.array_equal(r.members[1].magnetization, one.magnetization)
    stack = np.stack([m.magnetization for m in r.members])
    assert np.allclose(r.magnetization, stack.mean(0), atol=1e-3)
    assert np.allclose(r.magnetization_std, stack.std(0, ddof=1), rtol=1e-4, atol=1e-2)
    assert np.all(r.magnetization_q05 <= r.magnetization_q95)
    import json

    cm = json.loads((out / "metrics.json").read_text())
    assert r.metrics["relative_inplane_spread"] == pytest.approx(cm["relative_inplane_spread"], rel=1e-12)
