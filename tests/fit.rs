//! End to end: the autoencoder learns to reproduce a fixed 32x32 image from a fixed noise input.

use magprior::nn::{Cae, CaeConfig};
use magprior::optim::{AdamW, ReduceLrOnPlateau};
use magprior::{Rng, Tensor};

#[test]
fn cae_fits_a_fixed_image_loss_falls_100x() {
    let n = 32;
    let img: Vec<f32> = (0..n * n)
        .map(|i| {
            let (y, x) = ((i / n) as f32 / n as f32, (i % n) as f32 / n as f32);
            (6.0 * x).sin() * (4.0 * y).cos()
                + 0.5 * (-((x - 0.6).powi(2) + (y - 0.3).powi(2)) * 30.0).exp()
        })
        .collect();
    let target = Tensor::from_shape_vec(&[1, 1, n, n], img).unwrap();
    let mut rng = Rng::new(0);
    let cfg = CaeConfig {
        in_ch: 1,
        out_ch: 1,
        channels: vec![8, 16],
        kernel: 3,
    };
    let net = Cae::new(&cfg, &mut rng).unwrap();
    let z = Tensor::randn(&[1, 1, n, n], &mut rng);
    let mut opt = AdamW::new(net.parameters(), 1e-2);
    let mut sched = ReduceLrOnPlateau::new(0.75, 20, 1e-4);
    let mut first = None;
    let mut best = f32::INFINITY;
    for _ in 0..400 {
        let loss = net.forward(&z).unwrap().mse_loss(&target).unwrap();
        let l = loss.to_scalar().unwrap();
        first.get_or_insert(l);
        best = best.min(l);
        opt.step(&loss.backward().unwrap()).unwrap();
        opt.lr = sched.step(l as f64, opt.lr);
    }
    let first = first.unwrap();
    assert!(
        best.is_finite() && best * 100.0 < first,
        "loss {first} -> {best}"
    );
}

#[test]
fn same_seed_same_weights_and_loss_bit_for_bit() {
    let run = || {
        let mut rng = Rng::new(42);
        let net = Cae::new(&CaeConfig::nv_default(), &mut rng).unwrap();
        let z = Tensor::randn(&[1, 1, 16, 16], &mut rng);
        let mut opt = AdamW::new(net.parameters(), 1e-3);
        for _ in 0..3 {
            let loss = net
                .forward(&z)
                .unwrap()
                .square()
                .unwrap()
                .mean_all()
                .unwrap();
            opt.step(&loss.backward().unwrap()).unwrap();
        }
        net.forward(&z).unwrap().to_vec().unwrap()
    };
    assert_eq!(run(), run());
}
