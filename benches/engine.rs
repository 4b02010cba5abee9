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

/// The user's path: `nv::reconstruct` (CAE, tanh, mask, NV forward model, MSE, backward, AdamW,
/// plateau), median seconds per iteration over 12 iterations after 3 warm-up ones.
fn bench_nv_dip(filter: &str, n: usize) {
    if !"nv-dip".contains(filter) && !filter.is_empty() {
        return;
    }
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
        iters: 15,
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
    report(
        &format!("NV-DIP iteration {n}^2 (CAE+physics+AdamW)"),
        dt[dt.len() / 2],
        None,
    );
}

fn main() {
    // cargo passes `--bench`; anything else is a name filter
    let filter = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .unwrap_or_default();
    println!(
        "magprior CPU benchmarks ({} rayon threads)",
        rayon::current_num_threads()
    );
    bench_conv(&filter);
    for hw in [128, 256] {
        bench_step(&filter, hw);
    }
    for n in [128, 256] {
        bench_nv_dip(&filter, n);
    }
    if "siprad".contains(&filter) || filter.is_empty() {
        for n in [128, 256] {
            let s = ltem_iteration_seconds(n, 12, magprior::Device::Cpu).unwrap();
            report(
                &format!("SIPRAD iteration {n}^2 (4-level CAE+image model+Adam)"),
                s,
                None,
            );
        }
    }
}
