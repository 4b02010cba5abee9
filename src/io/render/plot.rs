//! Pictures of maps: panels with colour bars side by side, and the colour-wheel picture of a
//! vector field, with the decorations of [`Decor`].

use super::canvas::{check_len, save, Canvas, MARGIN};
use super::colour::{colour, hsv, Rgb, BLACK, FRAME, GREY};
use super::decor::{
    block_average, check_decor, display_scale, draw_flag, draw_outline, draw_scale_bar, flag_lines,
    image_top, outline_sides, scale_bar, Scale, ScaleBar, SCALE_ROW,
};
use super::font::{fmt_num, text_w, CH, CW};
use super::{shared_limit, Decor, MapKind, Panel};
use crate::error::{Error, Result};
use std::path::Path;

/// Colour-bar width and the gap between image and bar.
const BAR_W: usize = 18;
const BAR_GAP: usize = 12;
/// Minimum colour-bar height, so that short images still get readable ticks.
const BAR_MIN_H: usize = 120;
/// Display width aimed at and the largest side of the image: one panel alone, one of several,
/// the colour-wheel picture. Larger maps are block-averaged for display.
pub(super) const ONE: (usize, usize) = (384, 1024);
pub(super) const MANY: (usize, usize) = (256, 768);
pub(super) const WHEEL: (usize, usize) = (384, 1024);

/// Colour range `(lo, hi)` of a panel.
fn panel_range(p: &Panel) -> (f32, f32) {
    let lim = p.limit.filter(|l| l.is_finite() && *l > 0.0);
    match p.kind {
        MapKind::Diverging => {
            let l = lim.unwrap_or_else(|| shared_limit(&[p.data]));
            (-l, l)
        }
        MapKind::Sequential => {
            if let Some(l) = lim {
                return (0.0, l);
            }
            let fin = p.data.iter().filter(|v| v.is_finite());
            let lo = fin.clone().fold(f32::INFINITY, |a, &b| a.min(b));
            let hi = fin.fold(f32::NEG_INFINITY, |a, &b| a.max(b));
            if !(lo.is_finite() && hi.is_finite()) {
                (0.0, 1.0)
            } else if hi > lo {
                (lo, hi)
            } else {
                let d = (lo.abs() * 0.1).max(0.5);
                (lo - d, hi + d)
            }
        }
    }
}

/// One panel, ready to draw: display scale, image colours, outline, scale bar, colour bar
/// (height, labels), outer width and the height below the top of the image.
pub(super) struct Layout {
    pub(super) s: Scale,
    pub(super) img_w: usize,
    pub(super) img_h: usize,
    cells: Vec<Rgb>,
    sides: Option<Vec<u8>>,
    bar: Option<ScaleBar>,
    bar_h: usize,
    labels: [String; 3],
    label_w: usize,
    pub(super) width: usize,
    pub(super) body_h: usize,
    lo: f32,
    hi: f32,
}

/// The layout of a panel at `(target, cap)` (see [`ONE`]); the colour range is that of the
/// full-resolution data even when it is block-averaged for display.
pub(super) fn layout(p: &Panel, (target, cap): (usize, usize), decor: &Decor) -> Layout {
    let s = display_scale(p.h, p.w, target, cap);
    let (img_w, img_h) = (s.cols * s.k, s.rows * s.k);
    let bar_h = img_h.max(BAR_MIN_H);
    let (lo, hi) = panel_range(p);
    let cells = block_average(p.data, p.h, p.w, s.d)
        .iter()
        .map(|&v| colour(p.kind, lo, hi, v))
        .collect();
    let sides = decor.support.map(|m| outline_sides(m, p.h, p.w, s));
    let bar = decor.pixel_size.and_then(|px| scale_bar(px, p.w, s));
    let mid = if p.kind == MapKind::Diverging {
        0.0
    } else {
        (lo + hi) / 2.0
    };
    let lab = |v: f32| {
        let s = fmt_num(v as f64 * p.scale);
        if p.unit.is_empty() {
            s
        } else {
            format!("{s} {}", p.unit)
        }
    };
    let labels = [lab(hi), lab(mid), lab(lo)];
    let label_w = labels.iter().map(|s| text_w(s)).max().unwrap_or(0);
    let width =
        (MARGIN + img_w + BAR_GAP + BAR_W + 6 + label_w + MARGIN).max(2 * MARGIN + text_w(p.title));
    let below = if bar.is_some() { SCALE_ROW } else { 0 };
    Layout {
        s,
        img_w,
        img_h,
        cells,
        sides,
        bar,
        bar_h,
        labels,
        label_w,
        width,
        body_h: bar_h.max(img_h + below),
        lo,
        hi,
    }
}

/// Draws the image of a map with its frame, outline and scale bar at `(left, top)`.
fn draw_image(c: &mut Canvas, (left, top): (usize, usize), l: &Layout) {
    c.blit(left, top, l.s.cols, l.s.k, &l.cells);
    if let Some(sides) = &l.sides {
        draw_outline(c, (left, top), l.s, &l.cells, sides);
    }
    c.frame(left, top, l.img_w, l.img_h, FRAME);
    if let Some(b) = &l.bar {
        draw_scale_bar(c, (left, top + l.img_h), b);
    }
}

fn draw_panel(c: &mut Canvas, x0: usize, top: usize, p: &Panel, l: &Layout) {
    c.text(x0 + MARGIN, MARGIN, p.title, BLACK);
    let left = x0 + MARGIN;
    draw_image(c, (left, top), l);
    let bx = left + l.img_w + BAR_GAP;
    for i in 0..l.bar_h {
        let t = 1.0 - i as f32 / (l.bar_h - 1).max(1) as f32;
        let rgb = colour(p.kind, l.lo, l.hi, l.lo + t * (l.hi - l.lo));
        c.rect(bx, top + i, BAR_W, 1, rgb);
    }
    c.frame(bx, top, BAR_W, l.bar_h, FRAME);
    for (j, s) in l.labels.iter().enumerate() {
        let ty = top + j * (l.bar_h - 1) / 2;
        c.rect(bx + BAR_W, ty, 4, 1, FRAME);
        c.text(bx + BAR_W + 6, ty.saturating_sub(CH / 2), s, BLACK);
    }
    debug_assert!(bx + BAR_W + 6 + l.label_w <= x0 + l.width);
}

/// Several panels side by side (e.g. measured | model | residual), each with its own title and
/// colour bar; panels that should share a colour scale get the same `limit` (see
/// [`shared_limit`] and [`compare_panels`](super::compare_panels)). Maps wider or taller than
/// 1024 pixels (768 with several panels) are block-averaged for display.
pub fn write_panels(path: &Path, panels: &[Panel]) -> Result<()> {
    write_panels_with(path, panels, &Decor::default())
}

/// [`write_panels`] with a scale bar, support outline and flag (see [`Decor`]) on every panel;
/// the support mask must have `h * w` values for each of them, and the flag is written once,
/// under the titles, across the picture.
pub fn write_panels_with(path: &Path, panels: &[Panel], decor: &Decor) -> Result<()> {
    if panels.is_empty() {
        return Err(Error::arg("write_panels", "no panels"));
    }
    for p in panels {
        check_len("write_panels", p.data.len(), p.h, p.w)?;
        check_decor("write_panels", decor, p.h, p.w)?;
    }
    let size = if panels.len() == 1 { ONE } else { MANY };
    let lays: Vec<Layout> = panels.iter().map(|p| layout(p, size, decor)).collect();
    let width = lays.iter().map(|l| l.width).sum();
    let flag = flag_lines(decor, width);
    let top = image_top(flag.len());
    let height = top + lays.iter().map(|l| l.body_h).max().unwrap_or(1) + MARGIN;
    let mut c = Canvas::new(width, height);
    draw_flag(&mut c, &flag);
    let mut x0 = 0;
    for (p, l) in panels.iter().zip(&lays) {
        draw_panel(&mut c, x0, top, p, l);
        x0 += l.width;
    }
    save(path, &c)
}

/// Diverging colour map (blue-white-red, symmetric about 0 with limit max|v| unless given)
/// with a vertical colour bar and labelled ticks (min, 0, max with `unit`), and a title line.
/// `scale` multiplies values for the labels only (e.g. 1e3 for T -> mT).
#[allow(clippy::too_many_arguments)]
pub fn write_scalar_map(
    path: &Path,
    data: &[f32],
    h: usize,
    w: usize,
    title: &str,
    unit: &str,
    scale: f64,
    limit: Option<f32>,
) -> Result<()> {
    let kind = MapKind::Diverging;
    let p = Panel {
        data,
        h,
        w,
        title,
        unit,
        scale,
        kind,
        limit,
    };
    write_panels(path, &[p])
}

/// Sequential (viridis-like) colour map over `[min, max]` of the data, for images or phase,
/// with the same colour bar (min, middle, max) and title as [`write_scalar_map`].
pub fn write_sequential_map(
    path: &Path,
    data: &[f32],
    h: usize,
    w: usize,
    title: &str,
    unit: &str,
    scale: f64,
) -> Result<()> {
    let kind = MapKind::Sequential;
    let p = Panel {
        data,
        h,
        w,
        title,
        unit,
        scale,
        kind,
        limit: None,
    };
    write_panels(path, &[p])
}

/// Radius of the colour-wheel legend.
const WHEEL_R: usize = 56;

/// Vector field `(vx, vy)` as a colour wheel: hue = direction `atan2(vy, vx)` (red = +x;
/// +y points DOWN the image since the row index is y), brightness = |v| / max |v| (black = 0),
/// non-finite grey; a legend wheel is drawn beside the image, and the title above. Maps larger
/// than 1024 pixels are shown with `(vx, vy)` averaged over blocks.
pub fn write_colour_wheel(
    path: &Path,
    vx: &[f32],
    vy: &[f32],
    h: usize,
    w: usize,
    title: &str,
) -> Result<()> {
    write_colour_wheel_with(path, vx, vy, h, w, title, &Decor::default())
}

/// [`write_colour_wheel`] with a scale bar under the image, the support outline over it and a
/// flag under the title (see [`Decor`]).
pub fn write_colour_wheel_with(
    path: &Path,
    vx: &[f32],
    vy: &[f32],
    h: usize,
    w: usize,
    title: &str,
    decor: &Decor,
) -> Result<()> {
    let op = "write_colour_wheel";
    check_len(op, vx.len(), h, w)?;
    check_len(op, vy.len(), h, w)?;
    check_decor(op, decor, h, w)?;
    let mag = |x: f32, y: f32| (x * x + y * y).sqrt();
    let mmax = vx
        .iter()
        .zip(vy)
        .map(|(&x, &y)| mag(x, y))
        .filter(|m| m.is_finite())
        .fold(0f32, f32::max);
    let mmax = if mmax > 0.0 { mmax } else { 1.0 };
    let s = display_scale(h, w, WHEEL.0, WHEEL.1);
    let (img_w, img_h) = (s.cols * s.k, s.rows * s.k);
    let (ax, ay) = (block_average(vx, h, w, s.d), block_average(vy, h, w, s.d));
    let cells: Vec<Rgb> = ax
        .iter()
        .zip(ay.iter())
        .map(|(&x, &y)| match x.is_finite() && y.is_finite() {
            true => hsv(y.atan2(x), mag(x, y) / mmax),
            false => GREY,
        })
        .collect();
    let bar = decor.pixel_size.and_then(|px| scale_bar(px, w, s));
    let captions = ["hue: direction", "bright: |v|"];
    let cap_w = captions.iter().map(|s| text_w(s)).max().unwrap_or(0);
    let legend_w = (2 * WHEEL_R + 6 + text_w("+x")).max(cap_w);
    let legend_h = 2 * WHEEL_R + 8 + CH + 12 + 2 * (CH + 6);
    let width = (MARGIN + img_w + 2 * MARGIN + legend_w + MARGIN).max(2 * MARGIN + text_w(title));
    let flag = flag_lines(decor, width);
    let top = image_top(flag.len());
    let body_h = img_h + if bar.is_some() { SCALE_ROW } else { 0 };
    let mut c = Canvas::new(width, top + body_h.max(legend_h) + MARGIN);
    c.text(MARGIN, MARGIN, title, BLACK);
    draw_flag(&mut c, &flag);
    c.blit(MARGIN, top, s.cols, s.k, &cells);
    if let Some(m) = decor.support {
        draw_outline(&mut c, (MARGIN, top), s, &cells, &outline_sides(m, h, w, s));
    }
    c.frame(MARGIN, top, img_w, img_h, FRAME);
    if let Some(b) = &bar {
        draw_scale_bar(&mut c, (MARGIN, top + img_h), b);
    }
    let (cx, cy) = (MARGIN + img_w + 2 * MARGIN + WHEEL_R, top + WHEEL_R);
    let rr = WHEEL_R as f32;
    for dy in -(WHEEL_R as i64)..=WHEEL_R as i64 {
        for dx in -(WHEEL_R as i64)..=WHEEL_R as i64 {
            let r = ((dx * dx + dy * dy) as f32).sqrt();
            if r <= rr {
                let rgb = hsv((dy as f32).atan2(dx as f32), r / rr);
                c.set(cx as i64 + dx, cy as i64 + dy, rgb);
            }
        }
    }
    c.text(cx + WHEEL_R + 6, cy - CH / 2, "+x", BLACK);
    c.text(cx - CW, cy + WHEEL_R + 8, "+y", BLACK);
    let mut y = cy + WHEEL_R + 8 + CH + 12;
    for s in captions {
        c.text(cx - WHEEL_R, y, s, BLACK);
        y += CH + 6;
    }
    save(path, &c)
}

#[cfg(test)]
mod tests {
    use super::super::colour::{diverging, WHITE};
    use super::super::testutil::{at, decode, done, field, px, tmp};
    use super::*;

    #[test]
    fn scalar_map_size_white_zero_and_grey_nan() {
        let (h, w) = (64, 64);
        let mut d = vec![0f32; h * w];
        for (i, v) in d.iter_mut().enumerate() {
            if i % w >= 32 {
                *v = 1.0;
            }
        }
        d[0] = f32::NAN;
        let p = tmp("scalar.png");
        write_scalar_map(&p, &d, h, w, "B_z", "mT", 1e3, None).unwrap();
        assert!(!p.with_extension("png.partial").exists());
        let img = decode(&p);
        done(&p);
        assert!(img.0 >= 384 && img.1 >= 384, "{}x{}", img.0, img.1);
        let k = 6;
        let (x, y) = at(k, 10, 10);
        assert_eq!(px(&img, x, y), WHITE);
        let (x, y) = at(k, 10, 50);
        let red = px(&img, x, y);
        assert!(red[0] > 80 && red[1] < 40 && red[2] < 60, "{red:?}");
        let (x, y) = at(k, 0, 0);
        assert_eq!(px(&img, x, y), GREY);
        assert_eq!(diverging(0.0), WHITE);
        assert!(diverging(-1.0)[2] > diverging(-1.0)[0]);
    }

    #[test]
    fn sequential_map_and_panels_sizes() {
        let (h, w) = (40, 50);
        let d: Vec<f32> = (0..h * w).map(|i| (i as f32 * 0.01).sin().abs()).collect();
        let p = tmp("seq.png");
        write_sequential_map(&p, &d, h, w, "phase", "rad", 1.0).unwrap();
        let img = decode(&p);
        done(&p);
        assert_eq!(display_scale(h, w, ONE.0, ONE.1).k, 8);
        assert!(img.0 >= 400 && img.1 >= 320 + MARGIN + CH);
        let m = field(32, 32);
        let r: Vec<f32> = m.iter().map(|v| v * 0.05).collect();
        let lim = shared_limit(&[&m]);
        let mk = |data, title, limit| Panel {
            data,
            h: 32,
            w: 32,
            title,
            unit: "mT",
            scale: 1e3,
            kind: MapKind::Diverging,
            limit,
        };
        let panels = [
            mk(&m, "measured", Some(lim)),
            mk(&m, "model", Some(lim)),
            mk(&r, "residual", None),
        ];
        let p = tmp("panels.png");
        write_panels(&p, &panels).unwrap();
        let img = decode(&p);
        done(&p);
        let one = layout(&panels[0], MANY, &Decor::default());
        assert_eq!(one.s.k, 8);
        assert!(img.0 >= 3 * 256 && img.1 == image_top(0) + one.body_h + MARGIN);
        assert!(write_panels(&p, &[]).is_err());
        let e = write_scalar_map(&p, &m, 31, 32, "x", "", 1.0, None).unwrap_err();
        assert!(matches!(e, Error::BadArgument { .. }));
    }

    #[test]
    fn colour_wheel_red_for_plus_x_black_for_zero() {
        let (h, w) = (64, 64);
        let vx: Vec<f32> = (0..h * w)
            .map(|i| if i < h * w / 2 { 1.0 } else { 0.0 })
            .collect();
        let vy = vec![0f32; h * w];
        let p = tmp("wheel.png");
        write_colour_wheel(&p, &vx, &vy, h, w, "m").unwrap();
        let img = decode(&p);
        done(&p);
        assert!(img.0 >= 384 + 2 * WHEEL_R);
        let (x, y) = at(6, 5, 5);
        assert_eq!(px(&img, x, y), [255, 0, 0]);
        let (x, y) = at(6, 60, 5);
        assert_eq!(px(&img, x, y), BLACK);
        // +y (down the image) is hue 90 degrees: yellow-green; -x is cyan.
        let down = hsv(std::f32::consts::FRAC_PI_2, 1.0);
        assert!(down[1] == 255 && down[2] == 0 && down[0] < 255);
        assert_eq!(hsv(std::f32::consts::PI, 1.0), [0, 255, 255]);
    }
}
