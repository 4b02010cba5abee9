"""magprior against PyTorch, side by side in one run on this machine.

For each pipeline (nv-dip, siprad) and size, runs magprior's measurement
(`cargo bench --bench engine -- one PIPELINE N`, release build, RAYON_NUM_THREADS) and the PyTorch
mirror (`side_by_side.py`, same network, physics, optimiser and size, torch at the same thread
count) in turn, each in a fresh process, ROUNDS times; prints the medians, the per-round ratio
magprior / PyTorch (its median), the fraction of the machine's sgemm rate each reaches on the
convolutions' FLOPs, magprior's peak RSS, the CPU and its vector extensions, and the targets of
the CPU-speed issue. `--growth` times magprior alone from 128^2 to 1024^2.

    python3 -m venv .venv-torch && .venv-torch/bin/pip install -r benches/torch/requirements.txt
    .venv-torch/bin/python benches/torch/compare.py [--threads 2] [--sizes 128,256,512]
        [--rounds 3] [--growth]

Nothing here is needed by the tests.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))
from side_by_side import flops  # noqa: E402  (the conv FLOPs of one iteration)


def cpu():
    """Model name and the SIMD extensions that matter here, from /proc/cpuinfo."""
    model, flags = "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model == "unknown CPU":
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    ext = [f for f in ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl",
                       "avx512_bf16", "amx_tile") if f in flags]
    return model, ext


def engine_binary():
    """Builds the `engine` bench (release) and returns its executable."""
    out = subprocess.run(
        ["cargo", "bench", "--bench", "engine", "--no-run", "--message-format=json"],
        cwd=ROOT, check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg["target"]["name"] == "engine" \
                and msg.get("executable"):
            return msg["executable"]
    raise SystemExit("compare.py: cargo did not report the engine bench executable")


def json_lines(cmd, env):
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"compare.py: {' '.join(cmd)} failed:\n{res.stderr[-2000:]}")
    return [json.loads(l) for l in res.stdout.splitlines() if l.startswith("{")]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sizes", default="128,256,512")
    ap.add_argument("--pipelines", default="nv-dip,siprad")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--growth", action="store_true",
                    help="magprior alone at 128..1024 (time and peak RSS per size)")
    args = ap.parse_args()
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads), OMP_NUM_THREADS=str(args.threads))
    model, ext = cpu()
    print(f"CPU: {model}, {os.cpu_count()} logical CPUs, vector extensions: {' '.join(ext)}")
    print(f"threads: {args.threads} (rayon for magprior, torch.set_num_threads for PyTorch)")
    exe = engine_binary()
    torch_cmd = [sys.executable, str(HERE / "side_by_side.py"), "--json",
                 "--threads", str(args.threads)]
    if args.growth:
        print("\nmagprior growth (median s/iter, process peak RSS)")
        print("| pipeline | n | s / iter | peak RSS MiB |")
        print("|---|---|---|---|")
        for p in args.pipelines.split(","):
            for n in (128, 256, 512, 1024):
                r = json_lines([exe, "one", p, str(n), "6" if n >= 512 else "12"], env)[-1]
                print(f"| {p} | {n}^2 | {r['seconds']:.3f} | {r['peak_rss_mib']:.0f} |",
                      flush=True)
        return
    sg_m = json_lines([exe, "one", "sgemm"], env)[-1]["sgemm_gflops"]
    rows = []
    for p in args.pipelines.split(","):
        for n in (int(s) for s in args.sizes.split(",")):
            iters = 6 if n >= 512 else 12
            mine, theirs, rss, sg_t = [], [], [], []
            for _ in range(args.rounds):
                m = json_lines([exe, "one", p, str(n), str(iters)], env)[-1]
                t = json_lines(torch_cmd + ["--pipelines", p, "--sizes", str(n),
                                            "--iters", str(iters)], env)
                mine.append(m["seconds"])
                rss.append(m["peak_rss_mib"])
                theirs.append(t[-1]["seconds"])
                sg_t.append(t[0]["sgemm_gflops"])
            ratio = statistics.median(a / b for a, b in zip(mine, theirs))
            rows.append((p, n, statistics.median(mine), statistics.median(theirs), ratio,
                         max(rss), statistics.median(sg_t)))
            print(f"  {p} {n}^2: magprior {mine}, PyTorch {theirs}", file=sys.stderr, flush=True)
    sgemm = max([sg_m] + [r[6] for r in rows])
    print(f"sgemm rate: gemm crate {sg_m:.1f} GFLOP/s, torch.mm "
          f"{max(r[6] for r in rows):.1f} GFLOP/s -> machine {sgemm:.1f} GFLOP/s")
    print(f"medians of {args.rounds} rounds, each engine in a fresh process per measurement\n")
    print("| one iteration | magprior s | PyTorch s | magprior / PyTorch | <= 0.67 | "
          "magprior % sgemm | PyTorch % sgemm | magprior peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|")
    for p, n, a, b, ratio, rss, _ in rows:
        g = flops(p, n) / 1e9
        print(f"| {p} {n}^2 | {a:.3f} | {b:.3f} | {ratio:.2f} | {'yes' if ratio <= 0.67 else 'no'}"
              f" | {100 * g / a / sgemm:.0f} % | {100 * g / b / sgemm:.0f} % | {rss:.0f} |")
    nv256 = [r for r in rows if r[0] == "nv-dip" and r[1] == 256]
    if nv256:
        p, n, a, b, ratio, rss, _ = nv256[0]
        rate = 100 * flops(p, n) / 1e9 / a / sgemm
        print(f"\ntargets: NV-DIP 256^2 at {rate:.0f} % of sgemm (target >= 75 %), peak RSS "
              f"{rss:.0f} MiB (target <= 300)")


if __name__ == "__main__":
    main()
