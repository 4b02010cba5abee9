//! The NumPy golden-fixture cases (`fixtures/generate.py`), one table for both devices: each
//! case names its fixtures, the op, and the tolerance on the CPU and on the GPU. `golden.rs`
//! runs every family on the CPU, `gpu_ops.rs` on the GPU.

use super::*;
use magprior::Device;

/// An op of the table: the tracked inputs in, the output out.
pub type Op = fn(&[Tensor]) -> Tensor;

/// One fixture case: inputs `<input_prefix><input>`, output `<prefix>out`, upstream gradient
/// `<prefix>gy`, input gradients `<prefix><grad>`, all in `fixtures/<group>/`.
pub struct GoldenCase {
    /// The family (one `#[test]` per family on each device).
    pub family: &'static str,
    pub group: &'static str,
    pub prefix: String,
    /// The inputs' prefix: `prefix`, or `""` where several cases share their inputs.
    pub input_prefix: String,
    pub inputs: &'static [&'static str],
    pub grads: &'static [&'static str],
    pub op: Op,
    pub cpu: Tol,
    pub gpu: Tol,
}

/// Every family of the table, in table order.
pub const FAMILIES: [&str; 11] = [
    "unary",
    "binary",
    "scalar",
    "reduce",
    "conv2d",
    "instance_norm",
    "pool_upsample",
    "complex",
    "fft",
    "pad",
    "mse",
];

#[allow(clippy::too_many_arguments)]
fn case(
    family: &'static str,
    group: &'static str,
    prefix: &str,
    inputs: &'static [&'static str],
    grads: &'static [&'static str],
    op: Op,
    cpu: Tol,
    gpu: Tol,
) -> GoldenCase {
    GoldenCase {
        family,
        group,
        prefix: prefix.to_string(),
        input_prefix: prefix.to_string(),
        inputs,
        grads,
        op,
        cpu,
        gpu,
    }
}

/// Every golden case.
pub fn cases() -> Vec<GoldenCase> {
    let mut v = Vec::new();
    let unary: [(&str, Op); 9] = [
        ("exp", |x| x[0].exp().unwrap()),
        ("log", |x| x[0].log().unwrap()),
        ("sqrt", |x| x[0].sqrt().unwrap()),
        ("square", |x| x[0].square().unwrap()),
        ("tanh", |x| x[0].tanh().unwrap()),
        ("sigmoid", |x| x[0].sigmoid().unwrap()),
        ("leaky_relu", |x| x[0].leaky_relu(0.2).unwrap()),
        ("abs", |x| x[0].abs().unwrap()),
        ("neg", |x| x[0].neg().unwrap()),
    ];
    for (name, op) in unary {
        let p = format!("{name}_");
        v.push(case(
            "unary",
            "unary",
            &p,
            &["x"],
            &["gx"],
            op,
            ELEMENTWISE,
            GPU_TRANSCENDENTAL,
        ));
    }
    let binary: [(&str, Op); 4] = [
        ("add", |x| x[0].add(&x[1]).unwrap()),
        ("sub", |x| x[0].sub(&x[1]).unwrap()),
        ("mul", |x| x[0].mul(&x[1]).unwrap()),
        ("div", |x| x[0].div(&x[1]).unwrap()),
    ];
    for (name, op) in binary {
        for b in ["same", "chan", "mask", "scalar"] {
            let p = format!("{name}_{b}_");
            let (i, g) = (&["a", "b"], &["ga", "gb"]);
            v.push(case(
                "binary",
                "binary",
                &p,
                i,
                g,
                op,
                ACCUMULATED,
                SUM_ORDER,
            ));
        }
    }
    let (x, gx): (&[&str], &[&str]) = (&["x"], &["gx"]);
    let e = ELEMENTWISE;
    v.push(case(
        "scalar",
        "scalar",
        "add_",
        x,
        gx,
        |x| x[0].add_scalar(1.5).unwrap(),
        e,
        e,
    ));
    v.push(case(
        "scalar",
        "scalar",
        "mul_",
        x,
        gx,
        |x| x[0].scale(-0.7).unwrap(),
        e,
        e,
    ));
    let reduce: [(&str, Op); 4] = [
        ("sum_all_", |x| x[0].sum_all().unwrap()),
        ("mean_all_", |x| x[0].mean_all().unwrap()),
        ("sum_axes23_", |x| x[0].sum_axes(&[2, 3], false).unwrap()),
        ("mean_axis1_", |x| x[0].mean_axes(&[1], false).unwrap()),
    ];
    for (p, op) in reduce {
        v.push(case(
            "reduce",
            "reduce",
            p,
            x,
            gx,
            op,
            ACCUMULATED,
            SUM_ORDER,
        ));
    }
    let (xwb, gxwb): (&[&str], &[&str]) = (&["x", "w", "b"], &["gx", "gw", "gb"]);
    for k in [1, 3, 5] {
        let op: Op = |x| x[0].conv2d(&x[1], Some(&x[2])).unwrap();
        let p = format!("k{k}_");
        v.push(case(
            "conv2d",
            "conv2d",
            &p,
            xwb,
            gxwb,
            op,
            ACCUMULATED,
            SUM_ORDER,
        ));
    }
    let op: Op = |x| x[0].instance_norm(Some(&x[1]), Some(&x[2]), 1e-5).unwrap();
    let (f, g) = ("instance_norm", "instance_norm");
    v.push(case(f, g, "", xwb, gxwb, op, ACCUMULATED, SUM_ORDER));
    let f = "pool_upsample";
    v.push(case(
        f,
        "max_pool",
        "",
        x,
        gx,
        |x| x[0].max_pool2d().unwrap(),
        e,
        e,
    ));
    for p in ["", "odd_"] {
        let op: Op = |x| x[0].upsample_bilinear2d().unwrap();
        v.push(case(f, "upsample", p, x, gx, op, e, e));
    }
    let (re_im, gre_im): (&[&str], &[&str]) = (&["re", "im"], &["gre", "gim"]);
    let op: Op = |x| Tensor::complex(&x[0], &x[1]).unwrap();
    v.push(case("complex", "complex", "from_", re_im, gre_im, op, e, e));
    // re, im, conj, abs2 and the complex product share the inputs z (and w)
    let of_z: [(&str, Op); 4] = [
        ("re_", |x| x[0].re().unwrap()),
        ("im_", |x| x[0].im().unwrap()),
        ("conj_", |x| x[0].conj().unwrap()),
        ("abs2_", |x| x[0].abs2().unwrap()),
    ];
    for (p, op) in of_z {
        let mut c = case("complex", "complex", p, &["z"], &["gz"], op, e, e);
        c.input_prefix = String::new();
        v.push(c);
    }
    let op: Op = |x| x[0].mul(&x[1]).unwrap();
    let mut c = case(
        "complex",
        "complex",
        "cmul_",
        &["z", "w"],
        &["gz", "gw"],
        op,
        e,
        e,
    );
    c.input_prefix = String::new();
    v.push(c);
    for size in ["pow2", "odd", "prime"] {
        let p = format!("fft2_{size}_");
        v.push(case(
            "fft",
            "fft",
            &p,
            x,
            gx,
            |x| x[0].fft2().unwrap(),
            ACCUMULATED,
            GPU_FFT,
        ));
        let p = format!("ifft2_{size}_");
        v.push(case(
            "fft",
            "fft",
            &p,
            x,
            gx,
            |x| x[0].ifft2().unwrap(),
            ACCUMULATED,
            GPU_FFT,
        ));
    }
    v.push(case(
        "pad",
        "pad",
        "pad_",
        x,
        gx,
        |x| x[0].pad2d(1, 2, 3, 0).unwrap(),
        e,
        e,
    ));
    v.push(case(
        "pad",
        "pad",
        "crop_",
        x,
        gx,
        |x| x[0].crop2d(2, 4, 1, 7).unwrap(),
        e,
        e,
    ));
    let op: Op = |x| x[0].mse_loss(&x[1]).unwrap();
    let (ab, gab): (&[&str], &[&str]) = (&["a", "b"], &["ga", "gb"]);
    v.push(case("mse", "mse", "", ab, gab, op, ACCUMULATED, SUM_ORDER));
    v
}

/// Runs `case.op` on tracked copies of its input fixtures on `device`, compares the output with
/// `<prefix>out` and each input's gradient (for the upstream `<prefix>gy`) with its fixture,
/// to the device's tolerance; outputs and gradients must stay on `device`.
pub fn check(case: &GoldenCase, device: Device) {
    let tol = match device {
        Device::Cpu => case.cpu,
        Device::Gpu => case.gpu,
    };
    let load = |name: String| fx(case.group, &name);
    let xs: Vec<Tensor> = case
        .inputs
        .iter()
        .map(|n| {
            let t = load(format!("{}{n}", case.input_prefix));
            t.to_device(device).unwrap().requires_grad()
        })
        .collect();
    let out = (case.op)(&xs);
    let what = format!("{device} {}/{}", case.group, case.prefix);
    assert_eq!(out.device(), device, "{what}: the output left the device");
    let want = load(format!("{}out", case.prefix));
    assert_close(&format!("{what}out"), &out, &want, tol);
    let gy = load(format!("{}gy", case.prefix))
        .to_device(device)
        .unwrap();
    let g = out.backward_with(&gy).unwrap();
    assert_eq!(xs.len(), case.grads.len(), "{what}: one gradient per input");
    for (x, gname) in xs.iter().zip(case.grads) {
        let got = g
            .get(x)
            .unwrap_or_else(|| panic!("{what}: no gradient {gname}"));
        assert_eq!(got.device(), device, "{what}{gname}: left the device");
        let want = load(format!("{}{gname}", case.prefix));
        assert_close(&format!("{what}{gname}"), got, &want, tol);
    }
}

/// Checks every case of `family` on `device`; returns how many.
pub fn check_family(family: &str, device: Device) -> usize {
    assert!(FAMILIES.contains(&family), "unknown golden family {family}");
    let cases: Vec<GoldenCase> = cases().into_iter().filter(|c| c.family == family).collect();
    assert!(!cases.is_empty(), "golden family {family} has no cases");
    for c in &cases {
        check(c, device);
    }
    cases.len()
}

/// The table's families are exactly [`FAMILIES`], and `tested` (the families a test file runs)
/// are all of them.
pub fn assert_all_families_tested(tested: &[&str]) {
    let mut in_table: Vec<&str> = cases().iter().map(|c| c.family).collect();
    in_table.dedup();
    assert_eq!(in_table, FAMILIES, "the table's families");
    assert_eq!(tested, FAMILIES, "families run by this test file");
}
