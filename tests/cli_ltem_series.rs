//! `magprior ltem tie` and the file calibration of every LTEM command, as a user runs them: a
//! through-focal series in three files, a flip / unflip pair, the pixel size taken from an
//! ImageJ TIFF and checked against `--scale`, the DigitalMicrograph files of
//! `../shared/data/dm` (non-square pixels refused), and the series errors (one line, exit 2).

use magprior::io::npy::{read_npy, write_npy};
use magprior::ltem::synthetic::{simulate, Texture};
use magprior::ltem::{add_noise, mirror, FlipAxis, LtemForward, Microscope};
use magprior::{Rng, Tensor};
use std::fs::File;
use std::path::{Path, PathBuf};
use tiff::encoder::colortype::Gray32Float;
use tiff::encoder::{Rational, TiffEncoder};
use tiff::tags::Tag;

mod common;
use common::cli::{assert_nothing_written, assert_user_error, p, run, stderr, tmpdir};

const N: usize = 64;

/// The SIPRAD demo's optics as flags (the series' defoci come from --defoci).
const MIC: [&str; 6] = ["--cs", "0.2mm", "--theta-c", "1e-5", "--spread", "80nm"];

/// A bubble phase and images of `phase` at -0.2, 0, +0.2 mm with 10 % noise (own seed each),
/// written as `name_k.npy`.
fn series(dir: &Path, name: &str, phase: &[f32]) -> Vec<PathBuf> {
    series_amp(dir, name, phase, None)
}

/// [`series`] with an amplitude.
fn series_amp(dir: &Path, name: &str, phase: &[f32], amp: Option<&[f32]>) -> Vec<PathBuf> {
    // each series its own noise (a shared seed would correlate the flip pair's noise)
    let mut rng = Rng::new(name.bytes().map(u64::from).sum());
    [-2e5, 0.0, 2e5]
        .iter()
        .enumerate()
        .map(|(k, &df)| {
            let mic = Microscope {
                defocus: df,
                ..Microscope::siprad_demo()
            };
            let mut im = LtemForward::new(N, N, &mic, 1)
                .unwrap()
                .image_of(phase, amp)
                .unwrap();
            add_noise(&mut im, 0.1, None, mic.scale, &mut rng).unwrap();
            let f = dir.join(format!("{name}_{k}.npy"));
            write_npy(&f, &Tensor::from_shape_vec(&[N, N], im).unwrap()).unwrap();
            f
        })
        .collect()
}

fn truth_phase(dir: &Path) -> (Vec<f32>, PathBuf) {
    let s = simulate(
        Texture::Bubbles,
        N,
        8e5,
        60.0,
        &Microscope::siprad_demo(),
        0.0,
        2,
    )
    .unwrap();
    let f = dir.join("truth.npy");
    write_npy(
        &f,
        &Tensor::from_shape_vec(&[N, N], s.phase.clone()).unwrap(),
    )
    .unwrap();
    (s.phase, f)
}

fn join(v: &[PathBuf]) -> String {
    v.iter()
        .map(|f| p(f).to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// An ImageJ TIFF of `data` (N x N) with `px_per_nm` pixels per nm on both axes.
fn imagej_tiff(path: &Path, data: &[f32], px_per_nm: u32) {
    let mut enc = TiffEncoder::new(File::create(path).unwrap()).unwrap();
    let mut img = enc.new_image::<Gray32Float>(N as u32, N as u32).unwrap();
    img.encoder()
        .write_tag(Tag::ImageDescription, "ImageJ=1.54f\nunit=nm\n")
        .unwrap();
    img.x_resolution(Rational { n: px_per_nm, d: 4 });
    img.y_resolution(Rational { n: px_per_nm, d: 4 });
    img.write_data(data).unwrap();
}

fn accuracy_in(stdout: &str) -> f64 {
    stdout
        .split("accuracy phase ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(f64::NAN)
}

#[test]
fn tie_from_three_files_and_from_a_flip_pair() {
    let d = tmpdir("ltem-tie", "run");
    let (phase, truth) = truth_phase(&d);
    let files = series(&d, "un", &phase);
    let out = d.join("phase.npy");
    let mut args = vec![
        "ltem",
        "tie",
        "--defoci",
        "-0.2mm,0,0.2mm",
        "--scale",
        "4nm",
        "--periodic",
        "--qc",
        "0.001",
        "--out",
        p(&out),
        "--truth",
        p(&truth),
    ];
    args.extend_from_slice(&MIC);
    let list = join(&files);
    let mut a = args.clone();
    a.extend_from_slice(&["--images", &list]);
    let o = run(&a);
    let so = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{}", stderr(&o));
    let acc = accuracy_in(&so);
    eprintln!("{so}");
    assert!(acc > 0.95, "{so}");
    let rec = read_npy(&out).unwrap();
    assert_eq!(rec.shape(), &[N, N]);
    assert!(d.join("phase.png").exists() && d.join("phase.json").exists());
    let meta = std::fs::read_to_string(d.join("phase.json")).unwrap();
    assert!(
        meta.contains("\"defoci_nm\"") && meta.contains("200000"),
        "{meta}"
    );

    // the flip pair: the magnetic phase reverses and the image is mirrored, the
    // electrostatic phase (a particle) stays
    let phi_e: Vec<f32> = (0..N * N)
        .map(|i| {
            let (r, c) = ((i / N) as f32, (i % N) as f32);
            let dd = ((r - 25.0).powi(2) + (c - 35.0).powi(2)).sqrt();
            3.0 / (1.0 + ((dd - 14.0) / 2.0).exp())
        })
        .collect();
    let total: Vec<f32> = phase.iter().zip(&phi_e).map(|(m, e)| m + e).collect();
    let flipped = mirror(
        &phi_e
            .iter()
            .zip(&phase)
            .map(|(e, m)| e - m)
            .collect::<Vec<_>>(),
        N,
        N,
        FlipAxis::LeftRight,
    );
    // the particle absorbs a little: the in-focus contrast both series are aligned by
    let amp: Vec<f32> = phi_e.iter().map(|&e| 1.0 - 0.05 * e).collect();
    let amp_fl = mirror(&amp, N, N, FlipAxis::LeftRight);
    let un = series_amp(&d, "total", &total, Some(&amp));
    let fl = series_amp(&d, "flip", &flipped, Some(&amp_fl));
    let (ul, fll) = (join(&un), join(&fl));
    let mut a = args.clone();
    a.extend_from_slice(&["--images", &ul, "--flip", &fll]);
    let o = run(&a);
    let so = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{}", stderr(&o));
    let acc_flip = accuracy_in(&so);
    eprintln!("{so}");
    assert!(acc_flip > 0.95, "{so}");
    assert!(so.contains("shifted by"), "{so}");
    assert!(d.join("phase_electrostatic.npy").exists());
    // without the flip the particle spoils the magnetic phase
    let mut a = args.clone();
    a.extend_from_slice(&["--images", &ul]);
    let o = run(&a);
    let mixed = accuracy_in(&String::from_utf8_lossy(&o.stdout));
    assert!(mixed < acc_flip - 0.1, "{mixed} vs {acc_flip}");
}

#[test]
fn pixel_size_from_the_file_and_checked_against_scale() {
    let d = tmpdir("ltem-tie", "scale");
    let (phase, _) = truth_phase(&d);
    let files = series(&d, "s", &phase);
    // 2 nm pixels recorded in ImageJ TIFFs (8 / 4 pixels per nm... n/d = 2/4 -> 0.5 px/nm)
    let tifs: Vec<PathBuf> = files
        .iter()
        .enumerate()
        .map(|(k, f)| {
            let v = read_npy(f).unwrap().to_vec().unwrap();
            let t = d.join(format!("s_{k}.tif"));
            imagej_tiff(&t, &v, 2);
            t
        })
        .collect();
    let out = d.join("p.npy");
    let list = join(&tifs);
    let base = |extra: &[&str]| {
        let mut a = vec![
            "ltem",
            "tie",
            "--images",
            &list,
            "--defoci",
            "-0.2mm,0,0.2mm",
            "--out",
            p(&out),
        ];
        a.extend_from_slice(&MIC);
        a.extend_from_slice(extra);
        a.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let runv = |a: Vec<String>| {
        let r: Vec<&str> = a.iter().map(|s| s.as_str()).collect();
        run(&r)
    };
    // the file's scale is used and said
    let o = runv(base(&[]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("pixel size 2.0000 nm"),
        "{}",
        stderr(&o)
    );
    let meta = std::fs::read_to_string(d.join("p.json")).unwrap();
    assert!(meta.contains("\"scale_nm_per_px\": 2.0"), "{meta}");
    // a disagreeing --scale is an error naming both numbers and the way out
    std::fs::remove_file(&out).unwrap();
    let o = runv(base(&["--scale", "4nm"]));
    assert_user_error(&o, &["s_0.tif", "4.0000 nm", "2.0000 nm", "--force-scale"]);
    assert!(!out.exists());
    // ... unless forced
    let o = runv(base(&["--scale", "4nm", "--force-scale"]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("overrides"), "{}", stderr(&o));
    // the same file through sitie and reconstruct's reader
    let o = run(&[
        "ltem",
        "sitie",
        "--image",
        p(&tifs[0]),
        "--defocus",
        "-0.2mm",
        "--out",
        p(&d.join("si.npy")),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("pixel size 2.0000 nm"),
        "{}",
        stderr(&o)
    );
    // a series whose scales differ
    let v = read_npy(&files[1]).unwrap().to_vec().unwrap();
    let odd = d.join("odd.tif");
    imagej_tiff(&odd, &v, 4);
    let mixed = format!("{},{},{}", p(&tifs[0]), p(&odd), p(&tifs[2]));
    let mut a = base(&[]);
    a[3] = mixed;
    let o = runv(a);
    assert_user_error(&o, &["odd.tif", "differs", "one scale"]);
}

#[test]
fn dm_files_and_series_errors() {
    let d = tmpdir("ltem-tie", "errors");
    let dm = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/dm");
    let ns = dm.join("dmTest_float32_nonSquare_diffPixelSize.dm4");
    let out = d.join("x.npy");
    // DigitalMicrograph with x 1 nm, y 0.2 nm: refused with both sizes
    for cmd in [
        vec!["ltem", "sitie", "--image", p(&ns), "--out", p(&out)],
        vec![
            "ltem",
            "tie",
            "--images",
            p(&ns),
            "--defoci",
            "-1mm",
            "--out",
            p(&out),
        ],
    ] {
        assert_user_error(
            &run(&cmd),
            &["nonSquare", "non-square", "1.0000 nm", "0.2000 nm"],
        );
    }
    let (phase, _) = truth_phase(&d);
    let files = series(&d, "e", &phase);
    let two = join(&files[..2]);
    let tie = |images: &str, defoci: &str| {
        run(&[
            "ltem",
            "tie",
            "--images",
            images,
            "--defoci",
            defoci,
            "--scale",
            "4nm",
            "--out",
            p(&out),
        ])
    };
    // a defocus list of the wrong length
    assert_user_error(
        &tie(&two, "-0.2mm,0,0.2mm"),
        &["e_0.npy", "2 images", "3 values"],
    );
    // equal defoci
    assert_user_error(&tie(&two, "1mm,1mm"), &["not all be equal"]);
    // sizes that differ
    let small = d.join("small.npy");
    write_npy(
        &small,
        &Tensor::from_shape_vec(&[8, 8], vec![1.0; 64]).unwrap(),
    )
    .unwrap();
    let l = format!("{},{}", p(&files[0]), p(&small));
    assert_user_error(&tie(&l, "-0.2mm,0.2mm"), &["small.npy", "8x8"]);
    // a truncated DM file
    let bytes = std::fs::read(dm.join("dmTest_float32_nonSquare_diffPixelSize.dm3")).unwrap();
    let cut = d.join("cut.dm3");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    assert_user_error(&tie(p(&cut), "-1mm"), &["cut.dm3"]);
    assert_nothing_written(&d, "x.npy");
}

#[test]
fn drifting_movie_is_aligned_and_reconstructed_from_one_command() {
    let d = tmpdir("ltem-tie", "movie");
    // a 128 x 128 bubble film of which the camera sees the central 64 x 64: content enters
    // and leaves at the edges as the sample drifts, as in a real movie
    let big = 2 * N;
    let film = simulate(
        Texture::Bubbles,
        big,
        8e5,
        60.0,
        &Microscope::siprad_demo(),
        0.0,
        5,
    )
    .unwrap()
    .phase;
    // a 20-frame random walk of sub-pixel drifts (up to 1.5 px per frame and axis)
    let mut rng = Rng::new(11);
    let (mut y, mut x) = (0.0f64, 0.0f64);
    let mut truth = Vec::new();
    let mut stack = Vec::new();
    let mic = Microscope {
        defocus: -2e5,
        ..Microscope::siprad_demo()
    };
    let fwd = LtemForward::new(big, big, &mic, 1).unwrap();
    for k in 0..20 {
        if k > 0 {
            y += 1.5 * (2.0 * rng.uniform() - 1.0);
            x += 1.5 * (2.0 * rng.uniform() - 1.0);
        }
        truth.push((y, x));
        let moved = magprior::ltem::apply_shift(&film, big, big, y, x).unwrap();
        let mut im = fwd.image_of(&moved, None).unwrap();
        add_noise(&mut im, 0.05, None, mic.scale, &mut rng).unwrap();
        for r in N / 2..N / 2 + N {
            stack.extend_from_slice(&im[r * big + N / 2..r * big + N / 2 + N]);
        }
    }
    let f = d.join("movie.npy");
    write_npy(&f, &Tensor::from_shape_vec(&[20, N, N], stack).unwrap()).unwrap();
    let out = d.join("ser");
    let mut a = vec![
        "ltem",
        "series",
        "--frames",
        p(&f),
        "--out",
        p(&out),
        "--scale",
        "4nm",
        "--defocus",
        "-200um",
        "--iters",
        "2",
        "--pretrain",
        "2",
        "--channels",
        "4,8",
        "--quiet",
    ];
    a.extend_from_slice(&MIC);
    let o = run(&a);
    assert!(o.status.success(), "{}", stderr(&o));
    let csv = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    let mut worst = 0f64;
    for (k, line) in csv.lines().skip(1).enumerate() {
        let c: Vec<&str> = line.split(',').collect();
        let (sy, sx): (f64, f64) = (c[2].parse().unwrap(), c[3].parse().unwrap());
        // the shift that undoes frame k's drift relative to frame 0
        let (ty, tx) = truth[k];
        worst = worst.max((sy + ty).abs()).max((sx + tx).abs());
        eprintln!("frame {k}: found ({sy:.2}, {sx:.2}), drift ({ty:.2}, {tx:.2})");
        assert!(out.join(format!("frame_{k:04}/phase.npy")).exists());
    }
    eprintln!("20-frame drift recovered to {worst:.3} px (largest error)");
    assert_eq!(csv.lines().count(), 21);
    assert!(worst < 0.15, "{worst}\n{csv}");
    let meta = std::fs::read_to_string(out.join("metadata.json")).unwrap();
    assert!(meta.contains("running average"), "{meta}");
}

#[test]
fn reconstruct_takes_a_focal_series() {
    let d = tmpdir("ltem-tie", "ad");
    let (phase, truth) = truth_phase(&d);
    let files = series(&d, "ad", &phase);
    let out = d.join("rec");
    let list = join(&files);
    let mut a = vec![
        "ltem",
        "reconstruct",
        "--image",
        &list,
        "--defoci",
        "-0.2mm,0,0.2mm",
        "--scale",
        "4nm",
        "--iters",
        "3",
        "--pretrain",
        "2",
        "--channels",
        "4,8",
        "--quiet",
        "--truth",
        p(&truth),
        "--out",
        p(&out),
    ];
    a.extend_from_slice(&MIC);
    let o = run(&a);
    let so = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(so.contains("TIE input"), "{so}");
    assert!(out.join("phase.npy").exists() && out.join("metrics.json").exists());
    // one defocus per image
    let out2 = d.join("rec2");
    let mut b = a.clone();
    b[5] = "-0.2mm,0.2mm";
    let k = b.iter().position(|s| *s == p(&out)).unwrap();
    b[k] = p(&out2);
    assert_user_error(&run(&b), &["ad_0.npy", "3 images but 2 values"]);
    assert!(!out2.exists());
}

#[test]
fn a_sharded_series_merges_its_frames_each_share_starting_cold() {
    let d = tmpdir("series", "shards");
    let mic = Microscope {
        defocus: -2e5,
        ..Microscope::siprad_demo()
    };
    let n = 32;
    let frames: Vec<f32> = (0..3)
        .flat_map(|s| {
            simulate(Texture::Bubbles, n, 2e5, 100.0, &mic, 0.1, s)
                .unwrap()
                .image
        })
        .collect();
    let stack = d.join("stack.npy");
    write_npy(
        &stack,
        &Tensor::from_shape_vec(&[3, n, n], frames.clone()).unwrap(),
    )
    .unwrap();
    let tail = d.join("tail.npy");
    write_npy(
        &tail,
        &Tensor::from_shape_vec(&[2, n, n], frames[n * n..].to_vec()).unwrap(),
    )
    .unwrap();
    let args = |input: &Path, out: &Path, extra: &[&str]| -> Vec<String> {
        let mut v: Vec<&str> = vec![
            "ltem",
            "series",
            "--frames",
            p(input),
            "--defocus=-200um",
            "--iters",
            "3",
            "--pretrain",
            "2",
            "--channels",
            "4,8",
            "--align",
            "none",
            "--quiet",
            "--out",
            p(out),
        ];
        v.extend_from_slice(&MIC);
        v.extend_from_slice(extra);
        v.iter().map(|s| s.to_string()).collect()
    };
    let go = |v: Vec<String>| {
        let o = run(&v.iter().map(|s| s.as_str()).collect::<Vec<_>>());
        assert!(o.status.success(), "{}", stderr(&o));
    };
    let (one, tail_run, split) = (d.join("one"), d.join("tail_run"), d.join("split"));
    go(args(&stack, &one, &[]));
    go(args(&tail, &tail_run, &[]));
    go(args(&stack, &split, &["--shard", "0/2"]));
    go(args(&stack, &split, &["--shard", "1/2"]));
    go(vec!["merge".into(), p(&split).into()]);
    let bytes = |dir: &Path, f: &str| std::fs::read(dir.join(f)).unwrap();
    // share 0 is frame 0, cold as in the one-process run; share 1 is frames 1-2, frame 1 cold
    assert!(bytes(&one, "frame_0000/phase.npy") == bytes(&split, "frame_0000/phase.npy"));
    assert!(bytes(&tail_run, "frame_0000/phase.npy") == bytes(&split, "frame_0001/phase.npy"));
    assert!(bytes(&tail_run, "frame_0001/phase.npy") == bytes(&split, "frame_0002/phase.npy"));
    let summary = std::fs::read_to_string(split.join("summary.csv")).unwrap();
    assert_eq!(summary.lines().count(), 4, "{summary}");
    assert!(
        summary.lines().nth(3).unwrap().starts_with("2,"),
        "{summary}"
    );
    std::fs::remove_dir_all(&d).unwrap();
}
