// Shared by the `engine` (CPU) and `gpu` benches: seconds per SIPRAD fit iteration.

/// Seconds per SIPRAD fit iteration (default 4-level network, image model, backward, Adam) at
/// `n x n` on `device`, from the fit stage's clock, the first iteration excluded.
#[allow(dead_code)]
fn ltem_iteration_seconds(
    n: usize,
    iters: usize,
    device: magprior::Device,
) -> magprior::Result<f64> {
    use magprior::ltem::{
        self,
        synthetic::{simulate, Texture},
        Microscope, SipradConfig, Stage,
    };
    let mic = Microscope {
        defocus: -1e6,
        ..Microscope::siprad_demo()
    };
    let data = simulate(Texture::Bubbles, n, 2e5, 100.0, &mic, 0.5, 1)?;
    let cfg = SipradConfig {
        iters: iters + 1,
        pretrain: 1,
        device,
        ..Default::default()
    };
    let mut t = Vec::new();
    ltem::reconstruct(&data.image, n, n, &mic, &cfg, &mut |s| {
        if s.stage == Stage::Fit {
            t.push(s.seconds);
        }
        true
    })?;
    Ok((t[t.len() - 1] - t[0]) / (t.len() - 1).max(1) as f64)
}
