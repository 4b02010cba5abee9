//! `cargo bench --bench gpu`: per-kernel wall-clock times and whole NV-DIP iterations at 128^2
//! and 256^2 on the chosen GPU adapter (any kind, software ones included; lavapipe numbers say
//! nothing about a real GPU). With lavapipe: `WGPU_BACKEND=vulkan` and `VK_ICD_FILENAMES`
//! pointing at `lvp_icd.x86_64.json`. Prints a line and exits when there is no adapter.

use std::time::Instant;

include!("common/ltem.rs");

use magprior::backend::gpu::{
    adamw, conv, elementwise as ew, fft, norm, pool, reduce, upsample, GpuBuffer, GpuContext,
    Opened,
};
use magprior::backend::{BinOp, UnaryOp};

fn data(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            (((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8) as f32 / 16_777_216.0)
                - 0.5
        })
        .collect()
}

/// Runs `f` once to warm up (pipeline creation), then `reps` times; prints ms per call.
fn time<T>(
    ctx: &GpuContext,
    name: &str,
    reps: usize,
    mut f: impl FnMut() -> magprior::Result<T>,
) -> magprior::Result<()> {
    let _ = f()?;
    ctx.synchronize()?;
    let t = Instant::now();
    for _ in 0..reps {
        let _ = f()?;
    }
    ctx.synchronize()?;
    println!(
        "{name:<48} {:>9.3} ms",
        t.elapsed().as_secs_f64() * 1e3 / reps as f64
    );
    Ok(())
}

fn main() -> magprior::Result<()> {
    // `cargo bench` passes `--bench`; a number sets the repetitions
    let reps: usize = std::env::args()
        .skip(1)
        .find_map(|s| s.parse().ok())
        .unwrap_or(3);
    let ctx = match GpuContext::open(true)? {
        Opened::Ready(c) => c,
        Opened::Unavailable(r) => {
            println!("no GPU adapter ({r})");
            return Ok(());
        }
    };
    println!("adapter: {}  (reps = {reps})", ctx.adapter());
    let up = |v: &[f32]| ctx.upload(v);

    let s = conv::ConvShape {
        n: 1,
        cin: 16,
        cout: 16,
        h: 256,
        w: 256,
        k: 5,
    };
    let (x, w, b, gy) = (
        up(&data(s.x_len(), 1))?,
        up(&data(s.w_len(), 2))?,
        up(&data(s.cout, 3))?,
        up(&data(s.y_len(), 4))?,
    );
    time(&ctx, "conv2d 5x5 fwd 1x16->16 256x256", reps, || {
        conv::conv2d(&ctx, &s, &x, &w, Some(&b))
    })?;
    time(&ctx, "conv2d 5x5 backward_input", reps, || {
        conv::conv2d_backward_input(&ctx, &s, &gy, &w)
    })?;
    time(&ctx, "conv2d 5x5 backward_weight (+bias)", reps, || {
        conv::conv2d_backward_weight(&ctx, &s, &x, &gy)
    })?;
    let s3 = conv::ConvShape { k: 3, ..s };
    let w3 = up(&data(s3.w_len(), 5))?;
    time(&ctx, "conv2d 3x3 fwd 1x16->16 256x256", reps, || {
        conv::conv2d(&ctx, &s3, &x, &w3, Some(&b))
    })?;

    let ns = norm::NormShape {
        n: 1,
        c: 16,
        m: 256 * 256,
    };
    let (y, stats) = norm::instance_norm(&ctx, &ns, &x, Some(&b), Some(&b), 1e-5)?;
    time(&ctx, "instance_norm fwd 1x16x256x256", reps, || {
        norm::instance_norm(&ctx, &ns, &x, Some(&b), Some(&b), 1e-5)
    })?;
    time(&ctx, "instance_norm bwd", reps, || {
        norm::instance_norm_backward(&ctx, &ns, &x, Some(&b), &stats, &gy)
    })?;
    drop(y);

    let gp = up(&data(16 * 128 * 128, 6))?;
    time(&ctx, "max_pool2d fwd 16x256x256", reps, || {
        pool::max_pool2d(&ctx, &x, 16, 256, 256)
    })?;
    time(&ctx, "max_pool2d bwd", reps, || {
        pool::max_pool2d_backward(&ctx, &x, &gp, 16, 256, 256)
    })?;
    time(
        &ctx,
        "upsample_bilinear2d fwd 16x128x128 -> 256",
        reps,
        || upsample::upsample_bilinear2d(&ctx, &gp, 16, 128, 128),
    )?;
    time(&ctx, "upsample_bilinear2d bwd", reps, || {
        upsample::upsample_bilinear2d_backward(&ctx, &x, 16, 128, 128)
    })?;

    let z = up(&data(2 * 2 * 256 * 256, 7))?;
    time(&ctx, "fft2 2x256x256 (shared radix-2)", reps, || {
        fft::fft2(&ctx, &z, 2, 256, 256)
    })?;
    let z2 = up(&data(2 * 2 * 250 * 250, 8))?;
    time(&ctx, "fft2 2x250x250 (Bluestein, M=512)", reps, || {
        fft::fft2(&ctx, &z2, 2, 250, 250)
    })?;
    let z3 = up(&data(2 * 4 * 4096, 9))?;
    time(&ctx, "fft2 1x4x4096 (Stockham rows)", reps, || {
        fft::fft2(&ctx, &z3, 1, 4, 4096)
    })?;

    let n = 1 << 20;
    let (a, g) = (up(&data(n, 10))?, up(&data(n, 11))?);
    time(&ctx, "tanh fwd 1M", reps, || {
        ew::unary(&ctx, UnaryOp::Tanh, &a)
    })?;
    time(&ctx, "mul 1M (same shape)", reps, || {
        ew::binary(&ctx, BinOp::Mul, &a, &g, ew::Broadcast::Same)
    })?;
    time(&ctx, "sum_all 1M", reps, || reduce::sum_all(&ctx, &a, 1.0))?;
    time(&ctx, "mse 1M", reps, || reduce::mse(&ctx, &a, &g))?;
    let (p, m, v): (GpuBuffer, GpuBuffer, GpuBuffer) =
        (up(&data(n, 12))?, ctx.zeros(n)?, ctx.zeros(n)?);
    let step = adamw::AdamWStep {
        lr: 1e-3,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.01,
        t: 1,
    };
    time(&ctx, "adamw step 1M params", reps, || {
        adamw::adamw_step(&ctx, &step, &p, &g, &m, &v)
    })?;
    drop(ctx);

    // whole NV-DIP iterations through the tensor engine (CPU figures: `cargo bench --bench engine`)
    for n in [128, 256] {
        let s = nv_iteration_seconds(n, reps.min(3), magprior::Device::Gpu)?;
        println!("NV-DIP iteration {n}x{n} on gpu {:>28.3} s", s);
    }
    for n in [128, 256] {
        let s = ltem_iteration_seconds(n, reps.min(3), magprior::Device::Gpu)?;
        println!("SIPRAD iteration {n}x{n} on gpu {:>28.3} s", s);
    }
    Ok(())
}

/// Seconds per NV-DIP iteration (network forward + NV operator + backward + AdamW, one readback)
/// at `n x n` on `device`, the first (pipeline-building) iteration excluded.
fn nv_iteration_seconds(n: usize, iters: usize, device: magprior::Device) -> magprior::Result<f64> {
    use magprior::nv::{self, mask, NvGeometry, NvReconConfig, Preset};
    let geom = NvGeometry::default();
    let data = nv::synthetic::landau_ellipse(n, &geom, 8.6e5, 0.01, 7)?;
    let m = mask::preset_mask(
        &data.support,
        n,
        n,
        Preset::Landau { ccw: true },
        0.0,
        false,
    )?;
    let cfg = NvReconConfig {
        geom,
        iters: iters + 1,
        device,
        ..Default::default()
    };
    let res = nv::reconstruct(&data.bnv, n, n, &m, &cfg, &mut |_| true)?;
    let h = &res.history;
    Ok((h[h.len() - 1].seconds - h[0].seconds) / (h.len() - 1).max(1) as f64)
}
