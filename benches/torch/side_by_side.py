"""PyTorch reference for magprior's two training iterations, timed the same way, so that
magprior's seconds per iteration can be compared side by side on one machine.

Mirrored operation for operation, shape for shape (read from the Rust sources):

* nv-dip: `nv::reconstruct` as `bench_nv_dip` (benches/engine.rs) times it, with
  `NvReconConfig::default()`: the CAE `nv_default` (1 -> 2, channels [16, 32], 5x5) on fixed
  noise z (1, 1, n, n); M = tanh(net(z)) * Ms * mask (2 components, Landau preset mask of
  `landau_ellipse`); B_NV by the magnetostatic forward model in Fourier space, zero-padded to
  (2n, 2n) (`NvGeometry::pad = 2`); mse against the map (background None: `Data::loss` is
  `mse_loss`); one readback; lowest-loss state kept; backward; AdamW (lr 7.5e-4, weight decay
  0.01); ReduceLROnPlateau (0.75, 150, 1e-9).
* siprad: the fit stage of `ltem::reconstruct` as `ltem_iteration_seconds`
  (benches/common/ltem.rs) times it, with `SipradConfig::default()` and
  `Microscope::siprad_demo()` at df = -1 mm: the CAE `ltem_default` (1 -> 1, channels
  [16, 32, 64, 128], 3x3) on the drifting input (+= N(0, 1)/30 per iteration); exit wave
  s e^{i phi} (uniform amplitude, learnable scale s); fft2, transfer function, ifft2, |.|^2 on the
  unpadded (n, n) grid (`pad = 1`); mse over the training pixels (10 % held out, their loss
  computed detached); one readback; backward; Adam (network lr 5e-5, scale lr 0.1, no decay).

Run from the repository root:

    python3 -m venv .venv-torch
    .venv-torch/bin/pip install -r benches/torch/requirements.txt
    .venv-torch/bin/python benches/torch/side_by_side.py [--threads 2] [--sizes 128,256,512] \
        [--iters N] [--json]

next to `RAYON_NUM_THREADS=2 cargo bench --bench engine -- nv-dip` (and `-- siprad`). Each size:
3 warm-up iterations, then the median of N timed ones (default 12; 6 at n >= 512). Also printed:
the sgemm rate of torch.mm and the convolution FLOPs of one iteration (`flops`), from which
either engine's fraction of the sgemm rate follows. CHOICE marks where the mirror is not literal.
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

LEAKY_SLOPE = 0.2  # src/nn/mod.rs
MU0 = 4e-7 * math.pi
CAE = {  # CaeConfig::nv_default, CaeConfig::ltem_default
    "nv-dip": dict(in_ch=1, out_ch=2, channels=[16, 32], k=5),
    "siprad": dict(in_ch=1, out_ch=1, channels=[16, 32, 64, 128], k=3),
}


class Block(nn.Module):
    """conv -> LeakyReLU -> conv -> LeakyReLU -> InstanceNorm (affine, eps 1e-5)."""

    def __init__(self, cin, cout, k):
        super().__init__()
        # PyTorch's default init is magprior's: weights and biases uniform in +-1/sqrt(fan_in)
        self.conv1 = nn.Conv2d(cin, cout, k, padding=k // 2)
        self.conv2 = nn.Conv2d(cout, cout, k, padding=k // 2)
        self.norm = nn.InstanceNorm2d(cout, affine=True, eps=1e-5)

    def forward(self, x):
        # CHOICE: magprior fuses each conv with its LeakyReLU (conv2d_leaky); here two ops
        x = F.leaky_relu(self.conv1(x), LEAKY_SLOPE)
        return self.norm(F.leaky_relu(self.conv2(x), LEAKY_SLOPE))


def decoder_channels(channels):
    return channels[-2::-1] + [channels[0]]  # [c_{L-2}, ..., c_0, c_0]


class Cae(nn.Module):
    """src/nn/cae.rs: encoder levels (block, 2x2 max-pool), decoder levels (bilinear x2 with
    align_corners=False as in backend/cpu/resample.rs, then block), a 1x1 head; no skips."""

    def __init__(self, in_ch, out_ch, channels, k):
        super().__init__()
        self.enc, self.dec, cin = nn.ModuleList(), nn.ModuleList(), in_ch
        for c in channels:
            self.enc.append(Block(cin, c, k))
            cin = c
        for c in decoder_channels(channels):
            self.dec.append(Block(cin, c, k))
            cin = c
        self.head = nn.Conv2d(cin, out_ch, 1)

    def forward(self, x):
        for b in self.enc:
            x = F.max_pool2d(b(x), 2)
        for b in self.dec:
            x = b(F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False))
        return self.head(x)


def conv_layers(pipeline, n):
    """(cin, cout, k, side) of every convolution of the network at n x n, in order."""
    c, out = CAE[pipeline], []
    cin, side, k = c["in_ch"], n, c["k"]
    for ch in c["channels"]:
        out += [(cin, ch, k, side), (ch, ch, k, side)]
        cin, side = ch, side // 2
    for ch in decoder_channels(c["channels"]):
        side *= 2
        out += [(cin, ch, k, side), (ch, ch, k, side)]
        cin = ch
    return out + [(cin, c["out_ch"], 1, side)]


def flops(pipeline, n):
    """Convolution FLOPs of one training iteration: 2 MACs per conv forward, the same again for
    dW and for dX, without dX of the first layer (its input needs no gradient). FFTs, pooling,
    upsampling, norms, elementwise work and the optimiser are left out."""
    f = [2 * cin * cout * k * k * s * s for cin, cout, k, s in conv_layers(pipeline, n)]
    return 3 * sum(f) - f[0]


# ----------------------------------------------------------------------------------- NV-DIP
def nv_kernel(n, pixel=5e-9, t=20e-9, d=50e-9, theta=54.75, phi=0.0, pad=2):
    """B_NV(k) = sum_c K_c(k) M_c(k), c = x, y, on the rfft grid of the (pad n)^2 padded map
    (src/physics/nv/forward.rs, NvGeometry::default): (mu0/2) (e^{-kt} - 1)/k e^{-kd} times
    column c of A(k) = [[kx^2/k, kx ky/k, i kx], [kx ky/k, ky^2/k, i ky], [i kx, i ky, -k]]
    projected on the NV axis; K(0) = 0. Returns (1, 2, pad n, pad n / 2 + 1) complex64."""
    p = pad * n
    ky = 2 * np.pi * np.fft.fftfreq(p, pixel)[:, None]
    kx = 2 * np.pi * np.fft.rfftfreq(p, pixel)[None, :]
    k = np.hypot(kx, ky)
    ks = np.where(k == 0, 1.0, k)
    pre = np.where(k == 0, 0.0, -0.5 * MU0 * (1 - np.exp(-k * t)) / ks * np.exp(-k * d))
    th, ph = np.radians(theta), np.radians(phi)
    nx, ny, nz = np.sin(th) * np.cos(ph), np.sin(th) * np.sin(ph), np.cos(th)
    kern_x = nx * kx * kx / ks + ny * kx * ky / ks + 1j * nz * kx
    kern_y = nx * kx * ky / ks + ny * ky * ky / ks + 1j * nz * ky
    return torch.from_numpy(np.stack([pre * kern_x, pre * kern_y])[None].astype(np.complex64))


def bnv(m, kernel):
    """M (1, 2, n, n) A/m -> B_NV (1, 1, n, n) T: zero-pad bottom/right to (2n, 2n), FFT,
    multiply, sum over components, inverse FFT, crop (magprior's `spectral_conv`).
    CHOICE: rfft2/irfft2 of real planes; magprior packs the two M planes into one complex FFT
    (the same work as two real ones), transforms the one B_NV plane with a full complex FFT and
    skips the all-zero padding rows in the row pass. Transform size (2n, 2n) as magprior; per
    iteration magprior runs 4 complex (2n)^2 FFTs, torch 6 real ones (3 forward, 3 backward)."""
    n = m.shape[-1]
    spec = torch.fft.rfft2(m, s=(2 * n, 2 * n))
    return torch.fft.irfft2((spec * kernel).sum(1, keepdim=True), s=(2 * n, 2 * n))[..., :n, :n]


def landau_mask(n):
    """preset_mask(Landau { ccw: true }) in the ellipse of landau_ellipse (semi-axes 0.36 n,
    0.24 n): (1, 2, n, n) with components 0 or +-1. CHOICE: the domains are split by the
    ellipse's semi-axes rather than its pixel bounding box (the same within a pixel)."""
    c, ax, ay = (n - 1) / 2, 0.36 * n, 0.24 * n
    y, x = np.mgrid[0:n, 0:n] - c
    inside = (x / ax) ** 2 + (y / ay) ** 2 <= 1
    side = np.abs(x / ax) >= np.abs(y / ay)
    mx = np.where(side, 0.0, -np.sign(y)) * inside
    my = np.where(side, np.sign(x), 0.0) * inside
    return torch.from_numpy(np.stack([mx, my])[None].astype(np.float32))


class NvDip:
    def __init__(self, n, ms=8.6e5):
        torch.manual_seed(0)
        self.net = Cae(**CAE["nv-dip"])
        self.z = torch.randn(1, 1, n, n)
        self.mask = landau_mask(n) * ms  # Source::Tanh: the mask scaled by Ms
        self.kernel = nv_kernel(n)
        with torch.no_grad():  # CHOICE: data = B_NV of Ms * mask (unblurred) + 1 % of peak noise
            clean = bnv(self.mask, self.kernel)
            self.meas = clean + 0.01 * clean.abs().max() * torch.randn_like(clean)
        self.opt = torch.optim.AdamW(self.net.parameters(), lr=7.5e-4, weight_decay=0.01)
        self.sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.opt, factor=0.75, patience=150, threshold=1e-9, threshold_mode="rel")
        self.best = (math.inf, None)

    def step(self):
        m = torch.tanh(self.net(self.z)) * self.mask
        b = bnv(m, self.kernel)
        loss = F.mse_loss(b, self.meas)
        # magprior's one readback per iteration: the loss and the reports (power, misfit)
        loss_d = loss.detach()
        value, _, _ = torch.stack([loss_d, b.detach().square().mean(), loss_d]).tolist()
        if value < self.best[0]:  # Selection::LowestLoss keeps detached (M, B_NV)
            self.best = (value, (m.detach(), b.detach()))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.sched.step(value)
        return value


# ----------------------------------------------------------------------------------- SIPRAD
def transfer(n, kv=200.0, cs=2e5, theta_c=1e-5, spread=80.0, df=-1e6, scale=4.0):
    """Microscope::transfer (src/physics/ltem/optics.rs) of siprad_demo at df = -1 mm on the
    (n, n) grid, q in cycles per pixel, lengths in pixels: T = e^{-g} e^{-i chi} (no astigmatism,
    no aperture). Returns (1, 1, n, n) complex64."""
    e, m0, c, h = 1.602176634e-19, 9.1093837015e-31, 299792458.0, 6.62607015e-34
    ev = e * kv * 1e3
    lam = h / math.sqrt(2 * m0 * ev * (1 + ev / (2 * m0 * c * c))) * 1e9 / scale
    df, cs, dl = df / scale, cs / scale, spread / scale
    qy, qx = np.meshgrid(np.fft.fftfreq(n), np.fft.fftfreq(n), indexing="ij")
    q2 = qx * qx + qy * qy
    q = np.sqrt(q2)
    chi = -np.pi * lam * df * q2 + 0.5 * np.pi * cs * lam**3 * q2 * q2
    u = 1 + 2 * (np.pi * theta_c * dl) ** 2 * q2
    g = ((np.pi * lam * dl) ** 2 * q2 * q2 / 2
         + (np.pi * theta_c / lam) ** 2 * (cs * lam**3 * q2 * q - df * lam * q) ** 2) / u
    return torch.from_numpy((np.exp(-g) * np.exp(-1j * chi))[None, None].astype(np.complex64))


def ltem_image(phase, scale, tf):
    """LtemForward::image, periodic (pad 1): |ifft2(fft2(s e^{i phi}) T)|^2.
    CHOICE: torch.polar(s, phi) for magprior's expi, broadcast and complex multiply."""
    w = torch.fft.ifft2(torch.fft.fft2(torch.polar(scale.expand_as(phase), phase)) * tf)
    return w.real.square() + w.imag.square()


class Siprad:
    def __init__(self, n):
        torch.manual_seed(0)
        self.net = Cae(**CAE["siprad"])
        self.tf = transfer(n)
        # CHOICE: a smooth random phase (about 1 rad rms, features of ~20 px) stands in for the
        # bubble texture of `simulate`, and it is also the network input in place of its SITIE
        # phase; no pretraining (magprior's 1 pretraining iteration is not timed either)
        q = np.hypot(*np.meshgrid(np.fft.fftfreq(n), np.fft.fftfreq(n), indexing="ij"))
        noise = np.random.default_rng(1).standard_normal((n, n))
        phase = np.real(np.fft.ifft2(np.fft.fft2(noise) * np.exp(-(q / 0.03) ** 2)))
        phase = torch.from_numpy((phase / phase.std())[None, None].astype(np.float32))
        self.amp_scale = torch.ones((), requires_grad=True)  # Tensor::scalar(1.0)
        with torch.no_grad():
            img = ltem_image(phase, self.amp_scale, self.tf)
            self.meas = img / img.mean()  # Plane::meas: the image over its mean
        self.input = phase.clone()
        train = (torch.rand(1, 1, n, n) >= 0.1).float()  # Holdout: 10 % of pixels left out
        self.train, self.val = train, 1 - train
        self.n_train, self.n_val = train.sum().clamp(min=1), self.val.sum().clamp(min=1)
        # CHOICE: one Adam with two parameter groups for magprior's two AdamW(wd 0) optimisers
        self.opt = torch.optim.Adam([{"params": self.net.parameters()},
                                     {"params": [self.amp_scale], "lr": 0.1}], lr=5e-5)
        self.last = None

    def step(self):
        with torch.no_grad():  # the input drifts: += noise_frac N(0, 1), cumulative
            self.input += torch.randn_like(self.input) / 30
        phi = self.net(self.input)
        sq = (ltem_image(phi, self.amp_scale, self.tf) - self.meas).square()
        with torch.no_grad():
            val = (sq * self.val).sum() / self.n_val
        loss = (sq * self.train).sum() / self.n_train
        value, _, _ = torch.stack([loss.detach(), val, self.amp_scale.detach()]).tolist()
        # Selection::Validation { after: 100 } tracks nothing this early; the last state is kept
        self.last = phi.detach()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return value


# ---------------------------------------------------------------------------------- harness
def conv_backends(model):
    """Which ATen convolution kernels one iteration runs (mkldnn or the native im2col path)."""
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)  # the profiler's own start/stop chatter
    try:
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            model.step()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)
    keys = ("mkldnn_convolution", "slow_conv2d_forward", "thnn_conv2d")
    return {e.key.replace("aten::", ""): e.count for e in prof.key_averages()
            if any(k in e.key for k in keys)}


def bench(pipeline, n, iters, warmup=3):
    model = (NvDip if pipeline == "nv-dip" else Siprad)(n)
    losses, times = [], []
    for i in range(warmup + iters):
        t0 = time.perf_counter()
        losses.append(model.step())
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return statistics.median(times), losses, conv_backends(model)


def sgemm_gflops(reps=7):
    rates = {}
    for s in (1024, 2048):
        a, b = torch.randn(s, s), torch.randn(s, s)
        torch.mm(a, b)
        ts = []
        for _ in range(reps):
            t0 = time.perf_counter()
            torch.mm(a, b)
            ts.append(time.perf_counter() - t0)
        rates[s] = 2 * s**3 / statistics.median(ts) / 1e9
    return rates


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sizes", default="128,256,512")
    ap.add_argument("--iters", type=int, default=None, help="timed iterations (12; 6 at n >= 512)")
    ap.add_argument("--pipelines", default="nv-dip,siprad")
    ap.add_argument("--json", action="store_true", help="one JSON object per line on stdout")
    args = ap.parse_args()
    torch.set_num_interop_threads(1)
    torch.set_num_threads(args.threads)
    log = (lambda *a: print(*a, file=sys.stderr, flush=True)) if args.json else \
        (lambda *a: print(*a, flush=True))
    mkldnn = torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled
    log(f"torch {torch.__version__}, {torch.get_num_threads()} threads (interop "
        f"{torch.get_num_interop_threads()}), MKLDNN {'used' if mkldnn else 'not used'} "
        f"(available {torch.backends.mkldnn.is_available()})")
    rates = sgemm_gflops()
    sgemm = max(rates.values())
    log("sgemm (torch.mm f32): " + ", ".join(f"{s}^2 {r:.1f}" for s, r in rates.items())
        + f" GFLOP/s -> {sgemm:.1f} GFLOP/s")
    if args.json:
        print(json.dumps({"engine": "pytorch", "sgemm_gflops": round(sgemm, 2),
                          "torch": torch.__version__, "threads": args.threads}), flush=True)
    for pipeline in args.pipelines.split(","):
        for n in (int(s) for s in args.sizes.split(",")):
            iters = args.iters or (6 if n >= 512 else 12)
            secs, losses, backends = bench(pipeline, n, iters)
            gflop = flops(pipeline, n) / 1e9
            rate = gflop / secs
            log(f"{pipeline:<7} {n:>4}^2  {secs * 1e3:9.2f} ms/iter (median of {iters})  "
                f"conv {gflop:7.3f} GFLOP/iter = {rate:6.1f} GFLOP/s = {100 * rate / sgemm:4.1f} % "
                f"of sgemm\n{'':14}loss {losses[0]:.4e} -> {losses[-1]:.4e} over {len(losses)} "
                f"iterations; conv kernels of one iteration {backends}")
            if args.json:
                print(json.dumps({"engine": "pytorch", "pipeline": pipeline, "n": n,
                                  "seconds": secs, "gflop": round(gflop, 4),
                                  "threads": args.threads}), flush=True)


if __name__ == "__main__":
    main()
