//! `cargo bench`: conv2d 5x5 forward/backward and full NV-DIP training steps (forward, backward,
//! AdamW) on the CPU backend. Prints median wall time over repeated runs.
//! Filter with an argument: `cargo bench -- step`.

use magprior::nn::{Cae, CaeConfig};
use magprior::nv::{self, mask, NvGeometry, NvReconConfig, Preset};
use magprior::optim::AdamW;
use magprior::{Rng, Tensor};
use std::time::Instant;

include!("common/ltem.rs");

fn median_secs(reps: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm-up
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(|a, b| a.total_cmp(b));
    t[reps / 2]
}

fn report(name: &str, secs: f64, flops: Option<f64>) {
    match flops {
        Some(f) => println!(
            "{name:<48} {:>9.3} ms  {:>6.1} GFLOP/s",
            secs * 1e3,
            f / secs / 1e9
        ),
        None => println!("{name:<48} {:>9.3} ms", secs * 1e3),
    }
}

fn bench_conv(filter: &str) {
    if !"conv2d".contains(filter) && !filter.is_empty() {
        return;
    }
    let mut rng = Rng::new(0);
    let (c, hw, k) = (16, 256, 5);
    let x = Tensor::randn(&[1, c, hw, hw], &mut rng).requires_grad();
    let w = Tensor::randn(&[c, c, k, k], &mut rng)
        .scale(0.05)
        .unwrap()
        .requires_grad();
    let b = Tensor::zeros(&[c]).requires_grad();
    let flops = 2.0 * (c * c * k * k * hw * hw) as f64;
    let fwd = median_secs(15, || {
        magprior::no_grad(|| x.conv2d(&w, Some(&b)).unwrap());
    });
    report("conv2d 5x5 16->16 256^2 forward", fwd, Some(flops));
    let y = x.conv2d(&w, Some(&b)).unwrap();
    let g = Tensor::randn(y.shape(), &mut rng);
    let bwd = median_secs(15, || {
        y.backward_with(&g).unwrap();
    });
    report(
        "conv2d 5x5 16->16 256^2 backward (dx, dw, db)",
        bwd,
        Some(2.0 * flops),
    );
}

fn bench_step(filter: &str, hw: usize) {
    if !"step".contains(filter) && !filter.is_empty() {
        return;
    }
    let mut rng = Rng::new(0);
    let net = Cae::new(&CaeConfig::nv_default(), &mut rng).unwrap();
    let z = Tensor::randn(&[1, 1, hw, hw], &mut rng);
    let target = Tensor::randn(&[1, 2, hw, hw], &mut rng).scale(0.1).unwrap();
    let mut opt = AdamW::new(net.parameters(), 1e-4);
    let fwd = median_secs(9, || {
        magprior::no_grad(|| net.forward(&z).unwrap());
    });
    report(&format!("NV CAE {hw}^2 forward only"), fwd, None);
    let step = median_secs(9, || {
        let loss = net
            .forward(&z)
            .unwrap()
            .tanh()
            .unwrap()
            .mse_loss(&target)
            .unwrap();
        let grads = loss.backward().unwrap();
        opt.step(&grads).unwrap();
    });
    report(
        &format!("NV CAE {hw}^2 training step (fwd+bwd+AdamW)"),
        step,
        None,
    );
}

/// Every convolution of the NV-DIP network at 256^2, one at a time: forward (with the leaky
/// ReLU), backward with dx, dw, db, and backward with dw, db only (the first layer's case).
/// `siprad-layers`: the same for the SIPRAD network's distinct 3x3 layers at 128^2.
fn bench_layers(filter: &str) {
    let nv = [
        (1, 16, 256, 5),
        (16, 16, 256, 5),
        (16, 32, 128, 5),
        (32, 32, 128, 5),
        (32, 16, 128, 5),
        (16, 16, 128, 5),
        (16, 2, 256, 1),
    ];
    let siprad = [
        (1, 16, 128, 3),
        (16, 16, 128, 3),
        (16, 32, 64, 3),
        (32, 32, 64, 3),
        (32, 64, 32, 3),
        (64, 64, 32, 3),
        (64, 128, 16, 3),
        (128, 128, 16, 3),
        (128, 64, 32, 3),
        (64, 32, 64, 3),
        (32, 16, 128, 3),
    ];
    let shapes: &[(usize, usize, usize, usize)] = match filter {
        "layers" => &nv,
        "siprad-layers" => &siprad,
        _ => return,
    };
    let mut rng = Rng::new(0);
    for &(cin, cout, hw, k) in shapes {
        let flops = 2.0 * (cin * cout * k * k * hw * hw) as f64;
        let w = Tensor::randn(&[cout, cin, k, k], &mut rng)
            .scale(0.05)
            .unwrap()
            .requires_grad();
        let b = Tensor::zeros(&[cout]).requires_grad();
        let name = format!("{cin}->{cout} k{k} {hw}^2");
        for tracked in [false, true] {
            let mut x = Tensor::randn(&[1, cin, hw, hw], &mut rng);
            if tracked {
                x = x.requires_grad();
            }
            let y = x.conv2d_leaky(&w, Some(&b), 0.01).unwrap();
            let g = Tensor::randn(y.shape(), &mut rng);
            if !tracked {
                let fwd = median_secs(15, || {
                    magprior::no_grad(|| x.conv2d_leaky(&w, Some(&b), 0.01).unwrap());
                });
                report(&format!("{name} forward"), fwd, Some(flops));
            }
            let bwd = median_secs(15, || {
                y.backward_with(&g).unwrap();
            });
            let (label, f) = if tracked {
                ("dx dw db", 2.0 * flops)
            } else {
                ("dw db", flops)
            };
            report(&format!("{name} backward {label}"), bwd, Some(f));
        }
    }
}

/// Elementwise passes on one 16-channel 256^2 activation (4 MiB): the memory-bound floor.
fn bench_elementwise(filter: &str) {
    if !"elementwise".contains(filter) || filter.is_empty() {
        return;
    }
    let mut rng = Rng::new(0);
    let x = Tensor::randn(&[1, 16, 256, 256], &mut rng).requires_grad();
    let g = Tensor::randn(&[1, 16, 256, 256], &mut rng);
    let t = median_secs(15, || {
        magprior::no_grad(|| x.tanh().unwrap());
    });
    report("tanh 16x256^2", t, None);
    let y = x.tanh().unwrap();
    let t = median_secs(15, || {
        y.backward_with(&g).unwrap();
    });
    report("tanh backward 16x256^2", t, None);
    let t = median_secs(15, || {
        magprior::no_grad(|| x.scale(2.0).unwrap());
    });
    report("scale 16x256^2", t, None);
    let t = median_secs(15, || {
        magprior::no_grad(|| x.max_pool2d().unwrap());
    });
    report("max_pool2d 16x256^2", t, None);
    let t = median_secs(15, || {
        magprior::no_grad(|| x.upsample_bilinear2d().unwrap());
    });
    report("upsample_bilinear2d 16x256^2", t, None);
}

/// The user's path: `nv::reconstruct` (CAE, tanh, mask, NV forward model, MSE, backward, AdamW,
/// plateau), median seconds per iteration over 12 iterations after 3 warm-up ones.
fn bench_nv_dip(filter: &str, n: usize) {
    if !"nv-dip".contains(filter) && !filter.is_empty() {
        return;
    }
    let _ = magprior::profile::take();
    report(
        &format!("NV-DIP iteration {n}^2 (CAE+physics+AdamW)"),
        nv_dip_seconds(n, 12),
        None,
    );
    print_profile(15);
}

/// With `MAGPRIOR_PROFILE=1`: the kernels' share of the iterations just run.
fn print_profile(iters: usize) {
    for t in magprior::profile::take().iter().take(24) {
        println!(
            "    {:<28} {:>5} calls {:>9.3} ms/iter",
            t.op,
            t.calls,
            t.seconds * 1e3 / iters.max(1) as f64
        );
    }
}

/// Peak resident set of this process so far (VmHWM), in MiB; 0 where /proc is absent.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Median seconds per NV-DIP iteration at `n x n` over `iters` iterations (3 warm-up ones
/// excluded), as the user's `nv::reconstruct` runs them.
fn nv_dip_seconds(n: usize, iters: usize) -> f64 {
    let geom = NvGeometry::default();
    let data = nv::synthetic::landau_ellipse(n, &geom, 8.6e5, 0.01, 7).unwrap();
    let m = mask::preset_mask(
        &data.support,
        n,
        n,
        Preset::Landau { ccw: true },
        0.0,
        false,
    )
    .unwrap();
    let cfg = NvReconConfig {
        geom,
        iters: iters + 3,
        ..Default::default()
    };
    let res = nv::reconstruct(&data.bnv, n, n, &m, &cfg, &mut |_| true).unwrap();
    let mut dt: Vec<f64> = res
        .history
        .windows(2)
        .skip(2)
        .map(|w| w[1].seconds - w[0].seconds)
        .collect();
    dt.sort_by(|a, b| a.total_cmp(b));
    dt[dt.len() / 2]
}

/// The machine's sgemm rate through the `gemm` crate (what the convolutions call), GFLOP/s:
/// the best of 1024^2 and 2048^2 square products on every rayon thread, median of 5.
fn sgemm_gflops() -> f64 {
    let threads = rayon::current_num_threads();
    [1024usize, 2048]
        .iter()
        .map(|&n| {
            let a = vec![1.0f32; n * n];
            let b = vec![0.5f32; n * n];
            let mut c = vec![0f32; n * n];
            let t = median_secs(5, || {
                // SAFETY: a, b, c are n x n column-major buffers of the right length.
                unsafe {
                    gemm::gemm(
                        n,
                        n,
                        n,
                        c.as_mut_ptr(),
                        n as isize,
                        1,
                        false,
                        a.as_ptr(),
                        n as isize,
                        1,
                        b.as_ptr(),
                        n as isize,
                        1,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::Rayon(threads),
                    )
                }
            });
            2.0 * (n * n * n) as f64 / t / 1e9
        })
        .fold(0.0, f64::max)
}

/// `one PIPELINE N [ITERS]` (nv-dip | siprad | sgemm): one measurement as a JSON line with the
/// process's peak RSS, for `benches/torch/compare.py`, which runs each in its own process.
fn run_one(args: &[String]) -> Result<(), String> {
    let pipeline = args.first().ok_or("one: needs PIPELINE N [ITERS]")?;
    if pipeline == "sgemm" {
        println!(
            "{{\"engine\":\"magprior\",\"sgemm_gflops\":{:.2},\"threads\":{}}}",
            sgemm_gflops(),
            rayon::current_num_threads()
        );
        return Ok(());
    }
    let n: usize = args
        .get(1)
        .and_then(|v| v.parse().ok())
        .ok_or("one: N must be a size")?;
    let iters: usize = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(12);
    let seconds = match pipeline.as_str() {
        "nv-dip" => nv_dip_seconds(n, iters),
        "siprad" => {
            ltem_iteration_seconds(n, iters, magprior::Device::Cpu).map_err(|e| e.to_string())?
        }
        other => return Err(format!("one: unknown pipeline {other}")),
    };
    println!(
        "{{\"engine\":\"magprior\",\"pipeline\":\"{pipeline}\",\"n\":{n},\"seconds\":{seconds:.6},\"peak_rss_mib\":{:.1},\"threads\":{}}}",
        peak_rss_mib(),
        rayon::current_num_threads()
    );
    Ok(())
}

fn main() {
    // as the `magprior` binary does: freed large buffers are reused, not page-faulted anew
    magprior::keep_freed_buffers();
    // cargo passes `--bench`; anything else is a name filter, or `one ...`
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if args.first().map(String::as_str) == Some("one") {
        if let Err(e) = run_one(&args[1..]) {
            eprintln!("{e}");
            std::process::exit(2);
        }
        return;
    }
    let filter = args.first().cloned().unwrap_or_default();
    println!(
        "magprior CPU benchmarks ({} rayon threads)",
        rayon::current_num_threads()
    );
    bench_conv(&filter);
    bench_layers(&filter);
    bench_elementwise(&filter);
    for hw in [128, 256] {
        bench_step(&filter, hw);
    }
    for n in [128, 256] {
        bench_nv_dip(&filter, n);
    }
    if "siprad".contains(&filter) || filter.is_empty() {
        for n in [128, 256] {
            let _ = magprior::profile::take();
            let s = ltem_iteration_seconds(n, 12, magprior::Device::Cpu).unwrap();
            report(
                &format!("SIPRAD iteration {n}^2 (4-level CAE+image model+Adam)"),
                s,
                None,
            );
            print_profile(13);
        }
    }
}
