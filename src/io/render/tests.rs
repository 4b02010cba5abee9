//! Pixel tests of the decorations: scale bars, support outlines, flags, the measured colour
//! range of [`compare_panels`] and the display of large maps, read back from the PNG files.

use super::canvas::MARGIN;
use super::colour::{Rgb, BLACK, FRAME, WARN, WHITE};
use super::decor::{image_top, outline_width, FLAG_ROW, SCALE_DY, SCALE_T};
use super::font::{CH, CW};
use super::plot::{layout, MANY};
use super::testutil::{decode, done, field, px, tmp};
use super::*;

type Img = (usize, usize, Vec<u8>);

fn panel<'a>(data: &'a [f32], h: usize, w: usize, title: &'a str) -> Panel<'a> {
    Panel {
        data,
        h,
        w,
        title,
        unit: "mT",
        scale: 1e3,
        kind: MapKind::Diverging,
        limit: None,
    }
}

fn write_one(name: &str, p: Panel, d: &Decor) -> Img {
    let path = tmp(name);
    write_panels_with(&path, &[p], d).unwrap();
    let img = decode(&path);
    done(&path);
    img
}

/// Black pixels of row `y` from `x0` on, as (first, count of the run starting at the first).
fn black_run(img: &Img, y: usize, x0: usize) -> (usize, usize) {
    let first = (x0..img.0)
        .find(|&x| px(img, x, y) == BLACK)
        .unwrap_or(img.0);
    let n = (first..img.0)
        .take_while(|&x| px(img, x, y) == BLACK)
        .count();
    (first, n)
}

/// Checks the scale bar under an image with bottom-left corner (left, bottom): exactly `len`
/// black pixels in each of its rows, starting at `left`, white around it, a label to its right.
fn assert_scale_bar(img: &Img, left: usize, bottom: usize, len: usize) {
    let y0 = bottom + SCALE_DY;
    for y in y0..y0 + SCALE_T {
        assert_eq!(black_run(img, y, left - 1), (left, len), "bar row {y}");
    }
    for x in left..left + len {
        assert_eq!(px(img, x, y0 - 1), WHITE);
        assert_eq!(px(img, x, y0 + SCALE_T), WHITE);
    }
    let label = (bottom + 8..bottom + 8 + CH)
        .flat_map(|y| (left + len + 6..left + len + 6 + 6 * CW).map(move |x| (x, y)))
        .filter(|&(x, y)| px(img, x, y) == BLACK)
        .count();
    assert!(
        label > 20,
        "no label next to the bar ({label} black pixels)"
    );
}

#[test]
fn scale_bar_length_is_physical_length_over_pixel_size_times_upscale() {
    // 64 px of 10 nm: a fifth of 640 nm is 128 nm -> a 100 nm bar; the panel is upscaled 6x.
    let (h, w, k) = (64, 64, 6);
    let d = vec![0f32; h * w];
    let decor = Decor::new().pixel_size(10e-9);
    let img = write_one("bar.png", panel(&d, h, w, "B"), &decor);
    let len = (100e-9_f64 / 10e-9 * k as f64).round() as usize;
    assert_eq!(len, 60);
    assert_scale_bar(&img, MARGIN, image_top(0) + h * k, len);
    // a 2.5 um pixel on a 16 px map: 8 um -> 10 um bar of 4 data pixels, upscaled 24x
    let d = vec![0f32; 16 * 16];
    let img = write_one(
        "bar16.png",
        panel(&d, 16, 16, "B"),
        &decor.pixel_size(2.5e-6),
    );
    assert_scale_bar(&img, MARGIN, image_top(0) + 16 * 24, 4 * 24);
    // the colour-wheel picture: the same bar under its image
    let (vx, vy) = (vec![1f32; h * w], vec![0f32; h * w]);
    let p = tmp("bar-wheel.png");
    write_colour_wheel_with(&p, &vx, &vy, h, w, "m", &decor).unwrap();
    let img = decode(&p);
    done(&p);
    assert_scale_bar(&img, MARGIN, image_top(0) + h * k, len);
    // no pixel size, no bar: no row is added under the image
    let img = write_one("nobar.png", panel(&d, 16, 16, "B"), &Decor::new());
    assert_eq!(img.1, image_top(0) + 16 * 24 + MARGIN);
}

/// A 0/1 disc with a notch, so that the boundary has corners and concave parts.
fn support(h: usize, w: usize) -> Vec<f32> {
    (0..h * w)
        .map(|i| {
            let (r, c) = ((i / w) as f32 - 15.5, (i % w) as f32 - 14.0);
            let notch = (i / w) > 14 && (i / w) < 18 && (i % w) > 20;
            f32::from(r * r + c * c < 110.0 && !notch)
        })
        .collect()
}

/// Whether picture pixel (ox, oy) of data cell (r, c) lies on the outline: the cell is inside
/// and the pixel is within `t` of a side whose neighbour (within the map) is outside.
fn on_outline(
    m: &[f32],
    h: usize,
    w: usize,
    (r, c): (usize, usize),
    (ox, oy): (usize, usize),
    k: usize,
) -> bool {
    let inside = |r: usize, c: usize| m[r * w + c] >= 0.5;
    let t = outline_width(k);
    inside(r, c)
        && ((r > 0 && !inside(r - 1, c) && oy < t)
            || (r + 1 < h && !inside(r + 1, c) && oy >= k - t)
            || (c > 0 && !inside(r, c - 1) && ox < t)
            || (c + 1 < w && !inside(r, c + 1) && ox >= k - t))
}

/// Checks every pixel of an image at (left, top) of `h x w` cells of `k x k`: the outline
/// colour exactly where [`on_outline`] says, `base(r, c)` elsewhere.
fn assert_outline(
    img: &Img,
    (left, top): (usize, usize),
    (h, w, k): (usize, usize, usize),
    m: &[f32],
    line: Rgb,
    base: impl Fn(usize, usize) -> Rgb,
) {
    let mut n = 0;
    for y in top..top + h * k {
        for x in left..left + w * k {
            let (r, c, ox, oy) = ((y - top) / k, (x - left) / k, (x - left) % k, (y - top) % k);
            let want = if on_outline(m, h, w, (r, c), (ox, oy), k) {
                n += 1;
                line
            } else {
                base(r, c)
            };
            assert_eq!(px(img, x, y), want, "pixel ({x}, {y}) of cell ({r}, {c})");
        }
    }
    assert!(n > 100, "{n} outline pixels");
}

#[test]
fn outline_pixels_lie_exactly_on_the_support_boundary() {
    let (h, w) = (32, 32);
    let m = support(h, w);
    // diverging zeros are white: the outline is black over them
    let d = vec![0f32; h * w];
    let img = write_one(
        "outline.png",
        panel(&d, h, w, "B"),
        &Decor::new().support(&m),
    );
    assert_outline(
        &img,
        (MARGIN, image_top(0)),
        (h, w, 12),
        &m,
        BLACK,
        |_, _| WHITE,
    );
    // colour wheel: red inside (outline white, for contrast), black outside
    let vx: Vec<f32> = m.clone();
    let vy = vec![0f32; h * w];
    let p = tmp("outline-wheel.png");
    write_colour_wheel_with(&p, &vx, &vy, h, w, "m", &Decor::new().support(&m)).unwrap();
    let img = decode(&p);
    done(&p);
    let base = |r: usize, c: usize| {
        if m[r * w + c] >= 0.5 {
            [255, 0, 0]
        } else {
            BLACK
        }
    };
    assert_outline(&img, (MARGIN, image_top(0)), (h, w, 12), &m, WHITE, base);
    // a mask of the wrong size is refused
    let e = write_panels_with(&p, &[panel(&d, h, w, "B")], &Decor::new().support(&m[1..]));
    assert!(e.is_err());
}

/// Pixels of the warning colour in rows `y0..y1`.
fn warn_pixels(img: &Img, y0: usize, y1: usize) -> usize {
    (y0..y1.min(img.1))
        .flat_map(|y| (0..img.0).map(move |x| (x, y)))
        .filter(|&(x, y)| px(img, x, y) == WARN)
        .count()
}

#[test]
fn flag_text_is_drawn_under_the_title_and_wrapped() {
    let (h, w) = (16, 16);
    let d = vec![0f32; h * w];
    let plain = write_one("noflag.png", panel(&d, h, w, "B"), &Decor::new());
    assert_eq!(warn_pixels(&plain, 0, plain.1), 0);
    let flag = "circulation sense not determined by the data; the chirality was fixed by the \
                prior, not measured, so read the sense of rotation with care";
    let img = write_one("flag.png", panel(&d, h, w, "B"), &Decor::new().flag(flag));
    let row = |i: usize| MARGIN + CH + 6 + i * FLAG_ROW;
    // two lines, both in the warning colour, nothing of it elsewhere, within the margins
    assert!(warn_pixels(&img, row(0), row(1)) > 50);
    assert!(warn_pixels(&img, row(1), row(2)) > 50);
    assert_eq!(
        warn_pixels(&img, 0, row(0)) + warn_pixels(&img, row(2), img.1),
        0
    );
    for y in row(0)..row(2) {
        for x in (0..MARGIN).chain(img.0 - MARGIN..img.0) {
            assert_ne!(px(&img, x, y), WARN);
        }
    }
    // the image moved down by the two lines: its frame is at the new top
    let top = image_top(2);
    assert_eq!(top, image_top(0) + 2 * FLAG_ROW);
    assert_eq!(px(&img, MARGIN + 5, top - 1), FRAME);
    assert_eq!(img.1, plain.1 + 2 * FLAG_ROW);
    assert_eq!(img.0, plain.0, "the flag must not widen the picture");
}

#[test]
fn model_outlier_does_not_change_the_measured_panel() {
    let (h, w) = (48, 48);
    let measured = field(h, w);
    let model: Vec<f32> = measured.iter().map(|v| 0.9 * v).collect();
    let mut hot = model.clone();
    hot[w - 1] = 100.0 * shared_limit(&[&measured]); // an edge artefact of the model
    let render = |name: &str, model: &[f32], robust: bool| {
        let res: Vec<f32> = measured.iter().zip(model).map(|(a, b)| a - b).collect();
        let mut ps = compare_panels(
            panel(&measured, h, w, "measured"),
            panel(model, h, w, "model"),
            Some(panel(&res, h, w, "residual")),
        );
        if !robust {
            // the old way: one limit over both
            let lim = Some(shared_limit(&[&measured, model]));
            ps[0].limit = lim;
            ps[1].limit = lim;
        }
        let p = tmp(name);
        write_panels(&p, &ps).unwrap();
        let img = decode(&p);
        done(&p);
        (img, layout(&ps[0], MANY, &Decor::new()).width)
    };
    let ((a, wa), (b, wb)) = (
        render("cmp-a.png", &model, true),
        render("cmp-b.png", &hot, true),
    );
    assert_eq!((a.0, a.1, wa), (b.0, b.1, wb));
    let region = |img: &Img, x0: usize, x1: usize| -> Vec<u8> {
        (0..img.1)
            .flat_map(|y| img.2[(y * img.0 + x0) * 3..(y * img.0 + x1) * 3].to_vec())
            .collect()
    };
    assert!(
        region(&a, 0, wa) == region(&b, 0, wb),
        "measured panel changed"
    );
    // the model panel too, apart from the hot pixel (saturated red)
    let k = super::decor::display_scale(h, w, MANY.0, MANY.1).k;
    assert_eq!(k, 6);
    let (left, top) = (wa + MARGIN, image_top(0));
    let cell = (left + (w - 1) * k + k / 2, top + k / 2);
    assert_eq!(
        px(&a, wa + MARGIN + 5 * k, top + 7 * k),
        px(&b, wa + MARGIN + 5 * k, top + 7 * k)
    );
    assert_ne!(px(&a, cell.0, cell.1), px(&b, cell.0, cell.1));
    assert_eq!(px(&b, cell.0, cell.1), [103, 0, 31]);
    // with a limit shared over measured and model, the outlier washes the measurement out
    let (c, wc) = render("cmp-c.png", &hot, false);
    assert!(
        region(&a, 0, wa) != region(&c, 0, wc),
        "the test cannot fail"
    );
}

#[test]
fn robust_limit_ignores_a_few_hot_pixels() {
    let mut v: Vec<f32> = (0..1000).map(|i| (i as f32 / 999.0) - 0.5).collect();
    assert!((robust_limit(&v, 1.0) - 0.5).abs() < 1e-6);
    let before = robust_limit(&v, ROBUST_QUANTILE);
    v[3] = 1e6;
    v[7] = f32::NAN;
    let after = robust_limit(&v, ROBUST_QUANTILE);
    assert!(
        after < 0.51 && (after - before).abs() < 2e-3,
        "{before} {after}"
    );
    assert_eq!(robust_limit(&[], 0.995), 1.0);
    assert_eq!(robust_limit(&[0.0; 10], 0.995), 1.0);
    // mostly zero: falls back to the largest |v|
    let mut z = vec![0f32; 1000];
    z[0] = -3.0;
    assert_eq!(robust_limit(&z, 0.995), 3.0);
}

#[test]
fn large_maps_are_block_averaged_and_the_file_stays_small() {
    let n = 2048;
    // a +-1 checkerboard averages to 0 (white) over 2x2 blocks
    let d: Vec<f32> = (0..n * n)
        .map(|i| if (i / n + i % n) % 2 == 0 { 1.0 } else { -1.0 })
        .collect();
    let path = tmp("large.png");
    let decor = Decor::new().pixel_size(1e-9);
    write_panels_with(&path, &[panel(&d, n, n, "B")], &decor).unwrap();
    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap();
    let img = decode(&path);
    done(&path);
    assert!(img.0 < 1200 && img.1 < 1200, "{}x{}", img.0, img.1);
    assert!(bytes < 1 << 20, "{bytes} bytes");
    let top = image_top(0);
    for (x, y) in [(0, 0), (511, 700), (1023, 1023)] {
        assert_eq!(px(&img, MARGIN + x, top + y), WHITE);
    }
    assert_eq!(px(&img, MARGIN + 1024, top + 10), FRAME);
    // 2048 nm / 5 -> a 500 nm bar: 500 data pixels, 250 on the halved display
    assert_scale_bar(&img, MARGIN, top + 1024, 250);
}
