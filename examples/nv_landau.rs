//! Reconstructs a synthetic Landau-state Permalloy ellipse from its noisy NV map through the
//! library alone: `cargo run --release --example nv_landau [iterations]`.

use magprior::nv::{self, mask, NvGeometry, NvReconConfig, Preset};

fn main() -> magprior::Result<()> {
    let iters = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1500);
    let n = 128;
    let geom = NvGeometry::default(); // 5 nm pixels, 20 nm film, 50 nm standoff, 54.75 deg
    let data = nv::synthetic::landau_ellipse(n, &geom, 8.6e5, 0.01, 7)?;
    let mask = mask::preset_mask(
        &data.support,
        n,
        n,
        Preset::Landau { ccw: true },
        0.0,
        false,
    )?;
    let cfg = NvReconConfig {
        geom,
        iters,
        ..Default::default()
    };
    let result = nv::reconstruct(&data.bnv, n, n, &mask, &cfg, &mut |s| {
        if s.iter % 100 == 0 {
            println!(
                "iter {:5}  loss {:.3e} T^2  SNR {:5.1} dB  {:.1} s",
                s.iter, s.loss, s.snr_db, s.seconds
            );
        }
        true
    })?;
    // cosine similarity of the in-plane direction inside the ellipse
    let (mut cos, mut cnt) = (0.0, 0);
    for i in 0..n * n {
        if data.support[i] > 0.0 {
            let (a, b) = (
                (data.magnetization[i], data.magnetization[n * n + i]),
                (result.magnetization[i], result.magnetization[n * n + i]),
            );
            let na = (a.0 * a.0 + a.1 * a.1).sqrt();
            let nb = (b.0 * b.0 + b.1 * b.1).sqrt();
            if na > 0.0 && nb > 0.0 {
                cos += ((a.0 * b.0 + a.1 * b.1) / (na * nb)) as f64;
                cnt += 1;
            }
        }
    }
    let secs = result.history.last().map_or(0.0, |s| s.seconds);
    println!(
        "final: MSE {:.3e} T^2, RMSE {:.4} mT, SNR {:.1} dB, mean |M| {:.3e} A/m, direction cosine {:.3}, {:.1} ms/iter",
        result.metrics.mse,
        result.metrics.rmse_mt,
        result.metrics.snr_db,
        result.metrics.mean_m_inplane,
        cos / cnt.max(1) as f64,
        1e3 * secs / result.history.len().max(1) as f64
    );
    Ok(())
}
