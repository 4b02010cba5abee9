//! Line plots (e.g. loss against iteration) with round tick positions and number labels.

use super::canvas::{save, Canvas, MARGIN};
use super::colour::{BLACK, GREY};
use super::font::{fmt_num, text_w, CH};
use crate::error::{Error, Result};
use std::path::Path;

/// About `n` round tick positions (1, 2, 5 x 10^k steps) covering `[lo, hi]`.
fn nice_ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let raw = (hi - lo) / n.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let step = mag
        * if f < 1.5 {
            1.0
        } else if f < 3.0 {
            2.0
        } else if f < 7.0 {
            5.0
        } else {
            10.0
        };
    let mut t = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while t <= hi + step * 1e-9 && out.len() < 50 {
        out.push(if t.abs() < step * 1e-9 { 0.0 } else { t });
        t += step;
    }
    out
}

/// `[lo, hi]` of finite values, padded by `pad` of the span (or ±0.5 if flat; [0, 1] if none).
fn span(v: impl Iterator<Item = f64>, pad: f64) -> (f64, f64) {
    let (lo, hi) = v.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
        (a.min(x), b.max(x))
    });
    if !(lo.is_finite() && hi.is_finite()) {
        (0.0, 1.0)
    } else if hi > lo {
        (lo - pad * (hi - lo), hi + pad * (hi - lo))
    } else {
        (lo - 0.5, hi + 0.5)
    }
}

/// Line plot of `y` against `x` (e.g. loss vs iteration) with axes, tick labels and a log10 y
/// axis when `log_y` (non-positive values are then skipped). Non-finite points break the line;
/// with no finite point the axes are drawn with a note.
pub fn write_line_plot(
    path: &Path,
    x: &[f64],
    y: &[f64],
    title: &str,
    xlabel: &str,
    ylabel: &str,
    log_y: bool,
) -> Result<()> {
    if x.len() != y.len() {
        let msg = format!("{} x values but {} y values", x.len(), y.len());
        return Err(Error::arg("write_line_plot", msg));
    }
    let pts: Vec<Option<(f64, f64)>> = x
        .iter()
        .zip(y)
        .map(|(&a, &b)| {
            let b = match (log_y, b > 0.0) {
                (false, _) => b,
                (true, true) => b.log10(),
                (true, false) => f64::NAN,
            };
            (a.is_finite() && b.is_finite()).then_some((a, b))
        })
        .collect();
    let valid = || pts.iter().flatten();
    let (x0, x1) = span(valid().map(|p| p.0), 0.0);
    let (y0, y1) = span(valid().map(|p| p.1), 0.05);
    let decades: Vec<f64> = (y0.ceil() as i64..=y1.floor() as i64)
        .map(|d| d as f64)
        .collect();
    let yticks = if log_y && decades.len() >= 2 {
        let every = decades.len().div_ceil(8);
        decades.into_iter().step_by(every).collect()
    } else {
        nice_ticks(y0, y1, 5)
    };
    let ylab = |t: f64| {
        if !log_y {
            fmt_num(t)
        } else if t.fract() == 0.0 {
            format!("1e{t}")
        } else {
            fmt_num(10f64.powf(t))
        }
    };
    let ylabels: Vec<String> = yticks.iter().map(|&t| ylab(t)).collect();
    let ylw = ylabels.iter().map(|s| text_w(s)).max().unwrap_or(0);
    let (w, h) = (640usize, 440usize);
    let left = MARGIN + ylw + 10;
    let right = w - MARGIN - 30;
    let top = MARGIN + CH + 10 + CH + 10;
    let bottom = h - MARGIN - CH - 10 - CH - 10;
    let mut c = Canvas::new(w, h);
    c.text(MARGIN, MARGIN, title, BLACK);
    c.text(MARGIN, MARGIN + CH + 10, ylabel, BLACK);
    let (pw, ph) = ((right - left) as f64, (bottom - top) as f64);
    let px = |v: f64| left as f64 + (v - x0) / (x1 - x0) * pw;
    let py = |v: f64| bottom as f64 - (v - y0) / (y1 - y0) * ph;
    let grid = [225, 225, 225];
    for (t, s) in yticks.iter().zip(&ylabels) {
        let yy = py(*t).round() as usize;
        c.rect(left, yy, right - left, 1, grid);
        c.rect(left - 5, yy, 5, 1, BLACK);
        c.text(left - 8 - text_w(s), yy.saturating_sub(CH / 2), s, BLACK);
    }
    for t in nice_ticks(x0, x1, 6) {
        let xx = px(t).round() as usize;
        let s = fmt_num(t);
        c.rect(xx, top, 1, bottom - top, grid);
        c.rect(xx, bottom, 1, 5, BLACK);
        c.text(xx.saturating_sub(text_w(&s) / 2), bottom + 8, &s, BLACK);
    }
    c.frame(left, top, right - left, bottom - top, BLACK);
    let xl = ((left + right) / 2).saturating_sub(text_w(xlabel) / 2);
    c.text(xl.max(MARGIN), h - MARGIN - CH, xlabel, BLACK);
    let blue = [31, 119, 180];
    let n_valid = valid().count();
    for pair in pts.windows(2) {
        if let [Some(a), Some(b)] = pair {
            c.line((px(a.0), py(a.1)), (px(b.0), py(b.1)), blue, true);
        }
    }
    if n_valid == 1 {
        if let Some(p) = valid().next() {
            let (xx, yy) = (px(p.0) as usize, py(p.1) as usize);
            c.rect(xx.saturating_sub(2), yy.saturating_sub(2), 5, 5, blue);
        }
    } else if n_valid == 0 {
        let s = "no finite data";
        c.text((left + right - text_w(s)) / 2, (top + bottom) / 2, s, GREY);
    }
    save(path, &c)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{decode, done, tmp};
    use super::*;

    #[test]
    fn line_plot_linear_log_and_bad_input() {
        let x: Vec<f64> = (0..200).map(f64::from).collect();
        let y: Vec<f64> = x.iter().map(|i| 0.9 * (-i / 30.0).exp() + 1e-4).collect();
        for log_y in [false, true] {
            let p = tmp(&format!("plot-{log_y}.png"));
            write_line_plot(&p, &x, &y, "training loss", "iteration", "loss", log_y).unwrap();
            let img = decode(&p);
            done(&p);
            assert_eq!((img.0, img.1), (640, 440));
        }
        let p = tmp("plot-bad.png");
        assert!(write_line_plot(&p, &x, &y[1..], "", "", "", false).is_err());
        write_line_plot(&p, &[1.0], &[f64::NAN], "empty", "x", "y", true).unwrap();
        done(&p);
    }

    #[test]
    fn number_labels() {
        assert_eq!(fmt_num(0.0), "0");
        assert_eq!(fmt_num(1.25), "1.25");
        assert_eq!(fmt_num(-3.0), "-3");
        assert_eq!(fmt_num(123.4), "123");
        assert_eq!(fmt_num(0.0123), "0.0123");
        assert_eq!(fmt_num(2.5e-7), "2.5e-7");
        assert_eq!(fmt_num(1e6), "1e6");
        let ticks: Vec<String> = nice_ticks(0.0, 1.0, 5).into_iter().map(fmt_num).collect();
        assert_eq!(ticks, ["0", "0.2", "0.4", "0.6", "0.8", "1"]);
        let ticks: Vec<String> = nice_ticks(-37.0, 912.0, 6)
            .into_iter()
            .map(fmt_num)
            .collect();
        assert_eq!(ticks, ["0", "200", "400", "600", "800"]);
    }
}
