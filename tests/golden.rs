//! Every op's forward output and input gradients against the NumPy fixtures
//! (`fixtures/generate.py`), plus AdamW, ReduceLROnPlateau and one autoencoder forward.

mod common;
use common::*;
use magprior::nn::{Cae, CaeConfig};
use magprior::optim::{AdamW, ReduceLrOnPlateau};
use magprior::{Device, Rng, Tensor};

/// The golden families on the CPU, one `#[test]` each (the table is `common/golden.rs`; the
/// same cases run on the GPU in `gpu_ops.rs`).
macro_rules! golden_cpu {
    ($($test:ident => $family:literal),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                golden::check_family($family, Device::Cpu);
            }
        )*
        #[test]
        fn every_golden_family_runs_on_the_cpu() {
            golden::assert_all_families_tested(&[$($family),*]);
        }
    };
}

golden_cpu! {
    unary_ops => "unary",
    binary_ops_with_broadcasting => "binary",
    scalar_ops => "scalar",
    reductions => "reduce",
    conv2d_k1_k3_k5 => "conv2d",
    instance_norm => "instance_norm",
    max_pool_and_upsample => "pool_upsample",
    complex_ops => "complex",
    fft2_and_ifft2_any_size => "fft",
    pad_and_crop => "pad",
    mse_loss => "mse",
}

#[test]
fn adamw_ten_steps() {
    let cfg = fx("adamw", "config").to_vec().unwrap();
    let target = fx("adamw", "target");
    let p = fx("adamw", "p0").requires_grad();
    let mut opt = AdamW::new(vec![p.clone()], cfg[0] as f64);
    opt.betas = (cfg[1] as f64, cfg[2] as f64);
    opt.eps = cfg[3] as f64;
    opt.weight_decay = cfg[4] as f64;
    let traj = fx("adamw", "params").to_vec().unwrap();
    for t in 1..=10 {
        let loss = p.sub(&target).unwrap().square().unwrap().sum_all().unwrap();
        opt.step(&loss.backward().unwrap()).unwrap();
        assert_close_slice(
            &format!("adamw step {t}"),
            &p.to_vec().unwrap(),
            &traj[t * 5..(t + 1) * 5],
            ACCUMULATED,
        );
    }
    assert_eq!(opt.t, 10);
}

#[test]
fn reduce_lr_on_plateau_sequences() {
    for prefix in ["", "cooldown_"] {
        let c = fx("plateau", &format!("{prefix}config")).to_vec().unwrap();
        let mut s = ReduceLrOnPlateau::new(c[1] as f64, c[2] as usize, c[3] as f64);
        s.cooldown = c[4] as usize;
        s.min_lr = c[5] as f64;
        s.eps = c[6] as f64;
        let mut lr = c[0] as f64;
        let losses = fx("plateau", &format!("{prefix}losses")).to_vec().unwrap();
        let want = fx("plateau", &format!("{prefix}lrs")).to_vec().unwrap();
        let got: Vec<f32> = losses
            .iter()
            .map(|&l| {
                lr = s.step(l as f64, lr);
                lr as f32
            })
            .collect();
        assert_close_slice(&format!("plateau {prefix}lrs"), &got, &want, ELEMENTWISE);
    }
}

#[test]
fn cae_forward_with_given_weights() {
    let cfg = CaeConfig {
        in_ch: 1,
        out_ch: 2,
        channels: vec![4, 8],
        kernel: 3,
    };
    let net = Cae::new(&cfg, &mut Rng::new(0)).unwrap();
    let names = std::fs::read_to_string(fixture_dir().join("cae/param_names.txt")).unwrap();
    let ours: Vec<String> = net.named_parameters().into_iter().map(|(n, _)| n).collect();
    let theirs: Vec<&str> = names.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(ours, theirs, "parameter order");
    for (name, p) in net.named_parameters() {
        p.assign(&fx("cae", &name)).unwrap();
    }
    let out = net.forward(&fx("cae", "x")).unwrap();
    assert_close("cae out", &out, &fx("cae", "out"), NETWORK_VS_TORCH);
}

#[test]
fn parameter_counts_match_pytorch() {
    let count = |c: &CaeConfig| Cae::new(c, &mut Rng::new(0)).unwrap().num_parameters();
    insta::assert_snapshot!(
        format!(
            "nv default {}\nltem default {}",
            count(&CaeConfig::nv_default()),
            count(&CaeConfig::ltem_default())
        ),
        @r"
    nv default 77554
    ltem default 444001
    "
    );
}

/// Shapes of every op's output and a rounded summary of the network forward pass.
#[test]
fn shapes_and_summaries_snapshot() {
    let x = fx("conv2d", "k5_x");
    let w = fx("conv2d", "k5_w");
    let z = fx("complex", "z");
    let mut lines = vec![
        format!("conv2d {:?}", x.conv2d(&w, None).unwrap().shape()),
        format!(
            "max_pool2d {:?}",
            fx("max_pool", "x").max_pool2d().unwrap().shape()
        ),
        format!(
            "upsample {:?}",
            fx("upsample", "x").upsample_bilinear2d().unwrap().shape()
        ),
        format!(
            "instance_norm {:?}",
            fx("instance_norm", "x")
                .instance_norm(None, None, 1e-5)
                .unwrap()
                .shape()
        ),
        format!("fft2 {:?}", z.fft2().unwrap().shape()),
        format!(
            "abs2 {:?} {:?}",
            z.abs2().unwrap().shape(),
            z.abs2().unwrap().dtype()
        ),
        format!(
            "pad2d {:?}",
            fx("pad", "pad_x").pad2d(1, 2, 3, 0).unwrap().shape()
        ),
        format!("sum_axes {:?}", x.sum_axes(&[2, 3], false).unwrap().shape()),
        format!("mean_all {:?}", x.mean_all().unwrap().shape()),
        format!(
            "cat {:?}",
            Tensor::cat(&[x.clone(), x.clone()], 1).unwrap().shape()
        ),
    ];
    let cfg = CaeConfig {
        in_ch: 1,
        out_ch: 2,
        channels: vec![4, 8],
        kernel: 3,
    };
    let net = Cae::new(&cfg, &mut Rng::new(0)).unwrap();
    for (name, p) in net.named_parameters() {
        p.assign(&fx("cae", &name)).unwrap();
    }
    let out = net.forward(&fx("cae", "x")).unwrap();
    let v = out.to_vec().unwrap();
    let mean = v.iter().sum::<f32>() / v.len() as f32;
    let rms = (v.iter().map(|a| a * a).sum::<f32>() / v.len() as f32).sqrt();
    lines.push(format!(
        "cae out {:?} mean {:.3} rms {:.3}",
        out.shape(),
        mean,
        rms
    ));
    insta::assert_snapshot!(lines.join("\n"));
}
