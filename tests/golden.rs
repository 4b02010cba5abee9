//! Every op's forward output and input gradients against the NumPy fixtures
//! (`fixtures/generate.py`), plus AdamW, ReduceLROnPlateau and one autoencoder forward.

mod common;
use common::*;
use magprior::nn::{Cae, CaeConfig};
use magprior::optim::{AdamW, ReduceLrOnPlateau};
use magprior::{Rng, Tensor};

/// Runs `f` on tracked copies of `inputs`, compares the output with `<prefix>out` and each input's
/// gradient (for upstream `<prefix>gy`) with the named fixtures.
fn check_vjp(
    group: &str,
    prefix: &str,
    inputs: &[&str],
    grads: &[&str],
    f: impl Fn(&[Tensor]) -> Tensor,
    tol: Tol,
) {
    let xs: Vec<Tensor> = inputs
        .iter()
        .map(|n| fx(group, &format!("{prefix}{n}")).requires_grad())
        .collect();
    let out = f(&xs);
    let what = format!("{group}/{prefix}");
    assert_close(
        &format!("{what}out"),
        &out,
        &fx(group, &format!("{prefix}out")),
        tol,
    );
    let g = out
        .backward_with(&fx(group, &format!("{prefix}gy")))
        .unwrap();
    for (x, gname) in xs.iter().zip(grads) {
        let want = fx(group, &format!("{prefix}{gname}"));
        let got = g
            .get(x)
            .unwrap_or_else(|| panic!("{what}: no gradient {gname}"));
        assert_close(&format!("{what}{gname}"), got, &want, tol);
    }
}

#[test]
fn unary_ops() {
    type F = fn(&Tensor) -> Tensor;
    let ops: [(&str, F); 9] = [
        ("exp", |x| x.exp().unwrap()),
        ("log", |x| x.log().unwrap()),
        ("sqrt", |x| x.sqrt().unwrap()),
        ("square", |x| x.square().unwrap()),
        ("tanh", |x| x.tanh().unwrap()),
        ("sigmoid", |x| x.sigmoid().unwrap()),
        ("leaky_relu", |x| x.leaky_relu(0.2).unwrap()),
        ("abs", |x| x.abs().unwrap()),
        ("neg", |x| x.neg().unwrap()),
    ];
    for (name, f) in ops {
        check_vjp(
            "unary",
            &format!("{name}_"),
            &["x"],
            &["gx"],
            |x| f(&x[0]),
            ELEMENTWISE,
        );
    }
}

#[test]
fn binary_ops_with_broadcasting() {
    type F = fn(&Tensor, &Tensor) -> Tensor;
    let ops: [(&str, F); 4] = [
        ("add", |a, b| a.add(b).unwrap()),
        ("sub", |a, b| a.sub(b).unwrap()),
        ("mul", |a, b| a.mul(b).unwrap()),
        ("div", |a, b| a.div(b).unwrap()),
    ];
    for (name, f) in ops {
        for case in ["same", "chan", "mask", "scalar"] {
            check_vjp(
                "binary",
                &format!("{name}_{case}_"),
                &["a", "b"],
                &["ga", "gb"],
                |x| f(&x[0], &x[1]),
                ACCUMULATED,
            );
        }
    }
}

#[test]
fn scalar_ops() {
    check_vjp(
        "scalar",
        "add_",
        &["x"],
        &["gx"],
        |x| x[0].add_scalar(1.5).unwrap(),
        ELEMENTWISE,
    );
    check_vjp(
        "scalar",
        "mul_",
        &["x"],
        &["gx"],
        |x| x[0].scale(-0.7).unwrap(),
        ELEMENTWISE,
    );
}

#[test]
fn reductions() {
    check_vjp(
        "reduce",
        "sum_all_",
        &["x"],
        &["gx"],
        |x| x[0].sum_all().unwrap(),
        ACCUMULATED,
    );
    check_vjp(
        "reduce",
        "mean_all_",
        &["x"],
        &["gx"],
        |x| x[0].mean_all().unwrap(),
        ACCUMULATED,
    );
    check_vjp(
        "reduce",
        "sum_axes23_",
        &["x"],
        &["gx"],
        |x| x[0].sum_axes(&[2, 3], false).unwrap(),
        ACCUMULATED,
    );
    check_vjp(
        "reduce",
        "mean_axis1_",
        &["x"],
        &["gx"],
        |x| x[0].mean_axes(&[1], false).unwrap(),
        ACCUMULATED,
    );
}

#[test]
fn conv2d_k1_k3_k5() {
    for k in [1, 3, 5] {
        check_vjp(
            "conv2d",
            &format!("k{k}_"),
            &["x", "w", "b"],
            &["gx", "gw", "gb"],
            |x| x[0].conv2d(&x[1], Some(&x[2])).unwrap(),
            ACCUMULATED,
        );
    }
}

#[test]
fn instance_norm() {
    check_vjp(
        "instance_norm",
        "",
        &["x", "w", "b"],
        &["gx", "gw", "gb"],
        |x| x[0].instance_norm(Some(&x[1]), Some(&x[2]), 1e-5).unwrap(),
        ACCUMULATED,
    );
}

#[test]
fn max_pool_and_upsample() {
    check_vjp(
        "max_pool",
        "",
        &["x"],
        &["gx"],
        |x| x[0].max_pool2d().unwrap(),
        ELEMENTWISE,
    );
    for p in ["", "odd_"] {
        check_vjp(
            "upsample",
            p,
            &["x"],
            &["gx"],
            |x| x[0].upsample_bilinear2d().unwrap(),
            ELEMENTWISE,
        );
    }
}

#[test]
fn complex_ops() {
    let g = "complex";
    let z = || fx(g, "z").requires_grad();
    // re, im, conj, abs2 of z
    for (name, f) in [
        ("re", Tensor::re as fn(&Tensor) -> magprior::Result<Tensor>),
        ("im", Tensor::im),
        ("conj", Tensor::conj),
        ("abs2", Tensor::abs2),
    ] {
        let zt = z();
        let out = f(&zt).unwrap();
        assert_close(
            &format!("{name} out"),
            &out,
            &fx(g, &format!("{name}_out")),
            ELEMENTWISE,
        );
        let gr = out.backward_with(&fx(g, &format!("{name}_gy"))).unwrap();
        assert_close(
            &format!("{name} gz"),
            gr.get(&zt).unwrap(),
            &fx(g, &format!("{name}_gz")),
            ELEMENTWISE,
        );
    }
    let (zt, wt) = (z(), fx(g, "w").requires_grad());
    let out = zt.mul(&wt).unwrap();
    assert_close("cmul out", &out, &fx(g, "cmul_out"), ELEMENTWISE);
    let gr = out.backward_with(&fx(g, "cmul_gy")).unwrap();
    assert_close(
        "cmul gz",
        gr.get(&zt).unwrap(),
        &fx(g, "cmul_gz"),
        ELEMENTWISE,
    );
    assert_close(
        "cmul gw",
        gr.get(&wt).unwrap(),
        &fx(g, "cmul_gw"),
        ELEMENTWISE,
    );
    check_vjp(
        g,
        "from_",
        &["re", "im"],
        &["gre", "gim"],
        |x| Tensor::complex(&x[0], &x[1]).unwrap(),
        ELEMENTWISE,
    );
}

#[test]
fn fft2_and_ifft2_any_size() {
    for case in ["pow2", "odd", "prime"] {
        check_vjp(
            "fft",
            &format!("fft2_{case}_"),
            &["x"],
            &["gx"],
            |x| x[0].fft2().unwrap(),
            ACCUMULATED,
        );
        check_vjp(
            "fft",
            &format!("ifft2_{case}_"),
            &["x"],
            &["gx"],
            |x| x[0].ifft2().unwrap(),
            ACCUMULATED,
        );
    }
}

#[test]
fn pad_and_crop() {
    check_vjp(
        "pad",
        "pad_",
        &["x"],
        &["gx"],
        |x| x[0].pad2d(1, 2, 3, 0).unwrap(),
        ELEMENTWISE,
    );
    check_vjp(
        "pad",
        "crop_",
        &["x"],
        &["gx"],
        |x| x[0].crop2d(2, 4, 1, 7).unwrap(),
        ELEMENTWISE,
    );
}

#[test]
fn mse_loss() {
    check_vjp(
        "mse",
        "",
        &["a", "b"],
        &["ga", "gb"],
        |x| x[0].mse_loss(&x[1]).unwrap(),
        ACCUMULATED,
    );
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
