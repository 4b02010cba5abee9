//! The micromagnetic energy prior against an independent solver: the exchange and
//! demagnetising energies of states relaxed by magnum.np (`fixtures/relaxed/`, its own energies
//! in the JSON beside each state), and the prior's gradient by finite differences.

mod common;
use magprior::io::npy::read_npy;
use magprior::nv::energy::{Energy, Material};
use magprior::{Device, Tensor};
use std::path::PathBuf;

fn relaxed(name: &str) -> (Tensor, Vec<f32>, serde_json::Value) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/relaxed");
    let m = read_npy(dir.join(format!("{name}_m.npy"))).unwrap();
    let sup = read_npy(dir.join(format!("{name}_support.npy")))
        .unwrap()
        .to_vec()
        .unwrap();
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(format!("{name}.json"))).unwrap())
            .unwrap();
    let s = m.shape().to_vec();
    (m.reshape(&[1, 3, s[1], s[2]]).unwrap(), sup, meta)
}

#[test]
fn energies_of_relaxed_states_match_magnum_np() {
    for name in [
        "landau_ellipse",
        "vortex_disk",
        "needle",
        "s_state",
        "c_state",
        "diamond_rect",
    ] {
        let (m, sup, meta) = relaxed(name);
        let (h, w) = (m.shape()[2], m.shape()[3]);
        let mat = Material::default();
        let e = Energy::new(h, w, 5e-9, 20e-9, &sup, &mat, 2, Device::Cpu).unwrap();
        let p = e.parts(&m).unwrap();
        let want = &meta["energy_J"];
        let (ex, dm) = (
            want["exchange"].as_f64().unwrap(),
            want["demag"].as_f64().unwrap(),
        );
        println!(
            "{name}: exchange {:.4e} (magnum.np {ex:.4e}, {:+.2} %), demag {:.4e} ({dm:.4e}, {:+.2} %)",
            p.exchange,
            100.0 * (p.exchange / ex - 1.0),
            p.demag,
            100.0 * (p.demag / dm - 1.0)
        );
        assert!((p.exchange / ex - 1.0).abs() < 1e-3, "{name} exchange");
        // SPEC's demagnetising energy is the continuum energy of the band-limited field; it
        // matches magnum.np's prism cells where the charges are spread (in-plane states: 1-2 %,
        // the diamond 4 %) and is low where they sit in one or two pixels: the Mz of a vortex
        // core (-18 % Landau ellipse, -31 % vortex disk, whose energy is mostly the core's)
        let bound = match name {
            "landau_ellipse" => 0.20,
            "vortex_disk" => 0.33,
            "diamond_rect" => 0.05,
            _ => 0.02,
        };
        assert!((p.demag / dm - 1.0).abs() < bound, "{name} demag");
    }
}

/// The prior's VJP (every term, DMI and anisotropy included) by central finite differences.
#[test]
fn energy_gradient_matches_finite_differences() {
    let (h, w) = (6, 7);
    let mut sup = vec![1f32; h * w];
    sup[0] = 0.0;
    sup[h * w - 1] = 0.0;
    let mat = Material {
        ku: 2e5,
        axis: [0.3, 0.1, 1.0],
        dmi: 2e-3,
        ..Material::default()
    };
    let e = Energy::new(h, w, 5e-9, 4e-9, &sup, &mat, 2, Device::Cpu).unwrap();
    let v = common::rand(&[1, 3, h, w], -1.0, 1.0, &mut magprior::Rng::new(3));
    let unit = |v: &Tensor| magprior::nv::energy::normalized(v, e.support()).unwrap();
    let scale = e.scale() as f32;
    common::check_grad(
        "energy prior",
        &[v],
        |x| e.energy(&unit(&x[0])).unwrap().scale(1.0 / scale).unwrap(),
        1e-3,
        40,
    );
}
