//! OVF files as mumax3 and OOMMF write them (`../shared/data/ovf/`, `example_mumax.ovf`): mesh,
//! cell size, value units, the value multiplier, layers, and scalar fields.

mod io_common;

use io_common::{data_file, scratch};
use magprior::io::ovf::{read_ovf, read_ovf_field, write_ovf, Ovf, OvfEncoding, ValueUnits};
use magprior::io::{read, FileKind};
use std::path::Path;

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs()
}

fn norm(v: &[f32; 3]) -> f64 {
    v.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt()
}

fn assert_step(o: &Ovf, want: [f64; 3]) {
    for k in 0..3 {
        assert!(
            close(o.step[k], want[k], 1e-12),
            "step {:?} vs {want:?}",
            o.step
        );
    }
}

/// Every cell's |v| (times the multiplier) is `want` (or 0 where `zeros` allows), to `rel`.
fn assert_norms(o: &Ovf, want: f64, rel: f64, zeros: bool) {
    for (i, v) in o.data.iter().enumerate() {
        let n = norm(v) * o.value_multiplier;
        assert!(
            close(n, want, rel) || (zeros && n == 0.0),
            "cell {i}: |v| = {n}, want {want}"
        );
    }
}

fn get(name: &str) -> Option<std::path::PathBuf> {
    data_file(name, name)
}

#[test]
fn example_mumax_ovf1_text_unit_vectors() {
    let Some(p) = get("example_mumax.ovf") else {
        return;
    };
    let o = read_ovf(&p).unwrap();
    assert_eq!((o.nx, o.ny, o.nz), (500, 500, 1));
    assert_step(&o, [5e-9; 3]);
    assert_eq!(o.value_units, ValueUnits::Unitless);
    assert_eq!(o.value_multiplier, 1.0);
    assert_norms(&o, 1.0, 1e-4, true);
    assert_eq!(
        o.norm_range().map(|(lo, hi)| (lo > 0.9999, hi < 1.0001)),
        Some((true, true))
    );
    let a = read(&p).unwrap();
    assert_eq!(a.kind, FileKind::Ovf);
    assert_eq!(a.shape, vec![1, 3, 500, 500]);
    assert_eq!(a.calibration.pixel(), Some((5e-9, 5e-9)));
    assert_eq!(a.calibration.value_units, Some(ValueUnits::Unitless));
    // Cell (x=450, y=250) points along +x, as in the file.
    assert_eq!(a.data[250 * 500 + 450], o.data[250 * 500 + 450][0]);
    let l = magprior::io::load::load_array(&p).unwrap();
    assert_eq!(l.tensor.shape(), &[3, 500, 500]);
    assert_eq!(l.cell, Some((5e-9, 5e-9)));
}

#[test]
fn mumax_bin4_unit_vectors() {
    let Some(p) = get("ovf/mumax-bin4-linux.ovf") else {
        return;
    };
    let o = read_ovf(&p).unwrap();
    assert_eq!((o.nx, o.ny, o.nz), (128, 32, 1));
    assert_step(&o, [3.90625e-9, 3.90625e-9, 3e-9]);
    assert_eq!(o.value_units, ValueUnits::Unitless, "valueunits: 1 1 1");
    assert!(!o.is_magnetisation());
    assert_norms(&o, 1.0, 1e-6, false);
    assert!(close(o.data[0][0] as f64, 0.995_037_14, 1e-6));
    assert!(close(o.data[0][1] as f64, 0.099_503_72, 1e-6));
    assert!(close(o.layer_z(0), 1.5e-9, 1e-12));
}

#[test]
fn mumax_txt_a_per_m_header_holds_unit_vectors() {
    let Some(p) = get("ovf/mumax-txt-linux.ovf") else {
        return;
    };
    let o = read_ovf(&p).unwrap();
    assert_eq!((o.nx, o.ny, o.nz), (24, 12, 4));
    assert_step(&o, [2.5e-9; 3]);
    // The header says A/m ...
    assert_eq!(o.value_units, ValueUnits::AmperePerMetre);
    // ... but the values are unit vectors: the reader reports both, the caller decides.
    assert_norms(&o, 1.0, 1e-6, false);
    let layers = o.layers();
    assert_eq!(layers.len(), 4);
    for (k, l) in layers.iter().enumerate() {
        assert!(
            close(l.z, 1.25e-9 + 2.5e-9 * k as f64, 1e-9),
            "{k}: {}",
            l.z
        );
        assert_eq!(l.data.len(), 3 * 12 * 24);
    }
}

#[test]
fn mumax3_m_full_is_a_per_m() {
    let Some(p) = get("ovf/mumax3_m_full_Apm.ovf") else {
        return;
    };
    let o = read_ovf(&p).unwrap();
    assert_eq!((o.nx, o.ny, o.nz), (20, 10, 4));
    assert_step(&o, [5e-9; 3]);
    assert_eq!(o.value_units, ValueUnits::AmperePerMetre);
    assert!(o.is_magnetisation());
    assert_eq!(o.value_multiplier, 1.0);
    // Values really are A/m: |M| = Ms = 8e5 everywhere, not unit vectors.
    assert_norms(&o, 8e5, 1e-6, false);
    assert!(close(o.data[0][0] as f64, 190_354.36, 1e-6));
    assert!(close(o.data[0][1] as f64, -774_671.8, 1e-6));
    let cal = read(&p).unwrap().calibration;
    assert_eq!(cal.value_units, Some(ValueUnits::AmperePerMetre));
    assert_eq!(cal.cell, Some([5e-9; 3]));
    // Layer by layer: (3, ny, nx) at z = 2.5, 7.5, 12.5, 17.5 nm; layer 2, cell (x 3, y 4).
    let l = o.layer(2).unwrap();
    assert!(close(l.z, 12.5e-9, 1e-9));
    let v = o.data[(2 * 10 + 4) * 20 + 3];
    for (c, &vc) in v.iter().enumerate() {
        assert_eq!(l.data[(c * 10 + 4) * 20 + 3], vc);
    }
    assert!(o.layer(4).is_none());
}

#[test]
fn mumax3_scalar_regions_is_not_a_magnetisation() {
    let Some(p) = get("ovf/mumax3_scalar_regions.ovf") else {
        return;
    };
    let e = read_ovf(&p).unwrap_err().to_string();
    assert!(
        e.contains("mumax3_scalar_regions.ovf")
            && e.contains("valuedim 1")
            && e.contains("scalar field ('regions')")
            && e.contains("not a magnetisation"),
        "{e}"
    );
    let e = magprior::io::load::load_array(&p)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("not a magnetisation"), "{e}");
    // As a scalar field it reads: region numbers 1 and 2 on 256 x 128 x 2 cells of 5 nm.
    let f = read_ovf_field(&p).unwrap();
    assert_eq!((f.nx, f.ny, f.nz, f.valuedim), (256, 128, 2, 1));
    assert_eq!(f.value_labels, vec!["regions".to_string()]);
    assert!(f.values.iter().all(|&v| v == 1.0 || v == 2.0));
    assert!(f.values.contains(&1.0) && f.values.contains(&2.0));
    let a = read(&p).unwrap();
    assert_eq!(a.shape, vec![2, 1, 128, 256]);
    assert_eq!(a.calibration.value_units, Some(ValueUnits::Unitless));
}

#[test]
fn oommf_ovf1_bin4_multi_layer_body() {
    let Some(p) = get("ovf/oommf-ovf1-bin4.omf") else {
        return;
    };
    let o = read_ovf(&p).unwrap();
    assert_eq!((o.nx, o.ny, o.nz), (32, 32, 32));
    assert_step(&o, [3.125e-9; 3]);
    assert_eq!(o.value_units, ValueUnits::AmperePerMetre, "valueunit: A/m");
    assert_eq!(o.value_multiplier, 1.0);
    // ValueRangeMinMag / MaxMag of the header: 1261566.26...
    assert_norms(&o, 1_261_566.26, 1e-6, false);
    let layers = o.layers();
    assert_eq!(layers.len(), 32);
    assert!(close(layers[0].z, 1.5625e-9, 1e-9));
    assert!(close(layers[31].z - layers[30].z, 3.125e-9, 1e-6));
    // The z average (to_chw) is the mean of the layers.
    let chw = o.to_chw();
    for i in [0, 1000, 3 * 1024 - 1] {
        let mean = layers.iter().map(|l| l.data[i] as f64).sum::<f64>() / 32.0;
        assert!((chw[i] as f64 - mean).abs() <= 1e-6 * 1.3e6, "{i}");
    }
}

#[test]
fn oommf_ovf2_bin8_and_text_agree() {
    let (Some(pb), Some(pt)) = (
        get("ovf/oommf-ovf2-bin8.omf"),
        get("ovf/oommf-ovf2-txt.omf"),
    ) else {
        return;
    };
    let b = read_ovf(&pb).unwrap();
    let t = read_ovf(&pt).unwrap();
    for o in [&b, &t] {
        assert_eq!((o.nx, o.ny, o.nz), (5, 5, 5));
        assert_step(o, [1e-9; 3]);
        assert_eq!(o.value_units, ValueUnits::AmperePerMetre);
        assert_norms(o, 8e6, 1e-6, false);
    }
    for (x, y) in b.data.iter().zip(&t.data) {
        for c in 0..3 {
            assert!((x[c] - y[c]).abs() <= 1.0, "{x:?} vs {y:?}");
        }
    }
    assert!(close(b.data[0][0] as f64, 7_826_205.0, 1e-7));
}

#[test]
fn oommf_value_multiplier_gives_ms() {
    let Some(p) = get("ovf/oommf_ovf1_bin4_valuemultiplier.ovf") else {
        return;
    };
    let o = read_ovf(&p).unwrap();
    assert_eq!((o.nx, o.ny, o.nz), (100, 25, 1));
    assert_step(&o, [2e-8; 3]);
    assert_eq!(o.value_units, ValueUnits::AmperePerMetre);
    assert_eq!(o.value_multiplier, 8e5);
    // Stored as unit vectors, |M| = 8e5 A/m after the multiplier.
    for v in &o.data {
        assert!(close(norm(v), 1.0, 1e-6));
    }
    assert_norms(&o, 8e5, 1e-6, false);
    let (lo, hi) = o.norm_range().unwrap();
    assert!(close(lo, 8e5, 1e-6) && close(hi, 8e5, 1e-6));
    let m = o.multiplied();
    assert_eq!(m.value_multiplier, 1.0);
    assert!(close(norm(&m.data[7]), 8e5, 1e-6));
    // io::read applies the multiplier; load_array keeps the stored values (the CLI scales
    // OVF input by --ms itself) and reports the multiplier in its calibration.
    let a = read(&p).unwrap();
    assert_eq!(a.calibration.value_multiplier, Some(8e5));
    let plane = 100 * 25;
    let mx = a.data[0] as f64;
    let my = a.data[plane] as f64;
    let mz = a.data[2 * plane] as f64;
    assert!(close((mx * mx + my * my + mz * mz).sqrt(), 8e5, 1e-6));
    let l = magprior::io::load::load_array(&p).unwrap();
    assert_eq!(l.calibration.value_multiplier, Some(8e5));
    assert!(l.tensor.to_vec().unwrap()[0].abs() <= 1.0);
}

#[test]
fn lower_case_data_binary_8_with_negative_z_and_no_units() {
    let Some(p) = get("ovf/ovf2-bin8_different-case.ovf") else {
        return;
    };
    let o = read_ovf(&p).unwrap();
    assert_eq!((o.nx, o.ny, o.nz), (25, 25, 6));
    assert_step(&o, [4e-9, 4e-9, 5e-10]);
    // No valueunits line: the file does not say; the values are A/m-sized.
    assert_eq!(o.value_units, ValueUnits::Unspecified);
    let (lo, hi) = o.norm_range().unwrap();
    assert!(lo > 5e5 && hi < 7e6, "{lo} {hi}");
    // zmin = -8 nm: layer centres at -7.75, -7.25, ... -5.25 nm.
    assert!(close(o.layer_z(0), -7.75e-9, 1e-9));
    assert!(close(o.layer_z(5), -5.25e-9, 1e-9));
    assert!(close(o.data[0][0] as f64, 4150.3003, 1e-6));
}

#[test]
fn oommf_skyrmion_disk_text() {
    let Some(p) = get("ovf/skyrmion-disk.omf") else {
        return;
    };
    let o = read_ovf(&p).unwrap();
    assert_eq!((o.nx, o.ny, o.nz), (20, 20, 2));
    assert_step(&o, [5e-9; 3]);
    assert_eq!(o.value_units, ValueUnits::AmperePerMetre);
    // |M| = 1.1e6 A/m inside the disk, exact zeros outside; the corners are outside.
    assert_norms(&o, 1.1e6, 1e-6, true);
    assert_eq!(norm(&o.data[0]), 0.0);
    let inside = o.data.iter().filter(|v| norm(v) > 0.0).count();
    assert_eq!(inside, 632);
    assert!(norm(&o.data[10 * 20 + 10]) > 1e6, "the centre is magnetic");
    assert!(close(o.base[0], -4.75e-8, 1e-9), "xbase");
}

#[test]
fn header_keywords_in_any_case_and_value_units() {
    let d = scratch("ovf-case");
    let p = d.join("case.ovf");
    let text = "# oommf ovf 2.0\n# SEGMENT COUNT: 1\n# BEGIN: SEGMENT\n# begin: header\n\
                # TITLE: m\n# MeshType: Rectangular\n# MESHUNIT: nm\n# XNODES: 2\n\
                # YNodes: 1\n# znodes: 1\n# XSTEPSIZE: 2\n# YStepSize: 3\n# zstepsize: 4\n\
                # VALUEDIM: 3\n# ValueUnits: None None None\n# END: HEADER\n\
                # BEGIN: DATA TEXT\n1 0 0\n0 1 0\n# END: DATA TEXT\n# END: SEGMENT\n";
    std::fs::write(&p, text).unwrap();
    let o = read_ovf(&p).unwrap();
    assert_eq!((o.nx, o.ny, o.nz), (2, 1, 1));
    assert_step(&o, [2e-9, 3e-9, 4e-9]);
    assert_eq!(o.value_units, ValueUnits::Unitless, "OOMMF's None");
    assert_eq!(o.data, vec![[1., 0., 0.], [0., 1., 0.]]);
    // No base/min: the first cell centre is half a step in.
    assert!(close(o.layer_z(0), 2e-9, 1e-12));

    for (h, want) in [
        (Some("A/m A/m A/m"), ValueUnits::AmperePerMetre),
        (Some("a/m"), ValueUnits::AmperePerMetre),
        (Some("{A/m} {A/m} {A/m}"), ValueUnits::AmperePerMetre),
        (Some("1 1 1"), ValueUnits::Unitless),
        (Some("None"), ValueUnits::Unitless),
        (Some(""), ValueUnits::Unitless),
        (None, ValueUnits::Unspecified),
        (Some("T T T"), ValueUnits::Other("T".into())),
        (Some("A/m A/m 1"), ValueUnits::Other("A/m A/m 1".into())),
    ] {
        assert_eq!(ValueUnits::parse(h), want, "{h:?}");
    }
    std::fs::remove_dir_all(&d).ok();
}

fn body(nz: usize, units: ValueUnits, mult: f64) -> Ovf {
    let (nx, ny) = (3, 2);
    Ovf {
        nx,
        ny,
        nz,
        step: [2e-9, 2e-9, 1e-9],
        data: (0..nx * ny * nz)
            .map(|i| [i as f32, -(i as f32), 0.5])
            .collect(),
        title: "M".into(),
        value_multiplier: mult,
        value_units: units,
        base: [1e-9, 1e-9, -3.5e-9],
    }
}

fn round_trip(p: &Path, o: &Ovf, version: u8, enc: OvfEncoding) -> Ovf {
    write_ovf(p, o, version, enc).unwrap();
    read_ovf(p).unwrap()
}

#[test]
fn multi_layer_round_trip_keeps_units_and_depths() {
    let d = scratch("ovf-layers");
    let p = d.join("body.ovf");
    for units in [
        ValueUnits::AmperePerMetre,
        ValueUnits::Unitless,
        ValueUnits::Unspecified,
        ValueUnits::Other("mT".into()),
    ] {
        for (version, enc) in [(1, OvfEncoding::Binary4), (2, OvfEncoding::Text)] {
            let o = body(4, units.clone(), 1.0);
            let r = round_trip(&p, &o, version, enc);
            assert_eq!(r.value_units, units, "v{version}");
            assert_eq!(r.data, o.data);
            for k in 0..4 {
                assert!(close(r.layer_z(k), -3.5e-9 + k as f64 * 1e-9, 1e-9), "{k}");
            }
            let l = r.layer(3).unwrap();
            // Layer 3, cell (x 1, y 1) = index 3*6 + 4 = 22: mx = 22, my = -22.
            assert_eq!((l.data[4], l.data[6 + 4]), (22.0, -22.0));
        }
    }
    // OVF 1.0 keeps the multiplier; io::read applies it.
    let o = body(2, ValueUnits::AmperePerMetre, 1e5);
    let r = round_trip(&p, &o, 1, OvfEncoding::Binary8);
    assert_eq!(r.value_multiplier, 1e5);
    let a = read(&p).unwrap();
    assert_eq!(a.shape, vec![2, 3, 2, 3]);
    // Layer 1, component x, cell (x 2, y 0) = index 6 + 2 = 8.
    assert_eq!(a.data[3 * 6 + 2], 8e5);
    std::fs::remove_dir_all(&d).ok();
}
