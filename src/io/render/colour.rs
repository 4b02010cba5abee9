//! Colour maps: diverging blue-white-red, sequential viridis-like, and HSV for the colour wheel.

use super::MapKind;

/// An 8-bit RGB colour.
pub(super) type Rgb = [u8; 3];
pub(super) const WHITE: Rgb = [255, 255, 255];
pub(super) const BLACK: Rgb = [0, 0, 0];
pub(super) const GREY: Rgb = [128, 128, 128];
pub(super) const FRAME: Rgb = [60, 60, 60];
/// Warning text (flags): dark orange, readable on white.
pub(super) const WARN: Rgb = [196, 78, 0];

fn lerp(a: Rgb, b: Rgb, t: f32) -> Rgb {
    let f = |i: usize| (a[i] as f32 + (b[i] as f32 - a[i] as f32) * t).round() as u8;
    [f(0), f(1), f(2)]
}

fn ramp(stops: &[Rgb], t: f32) -> Rgb {
    let t = t.clamp(0.0, 1.0) * (stops.len() - 1) as f32;
    let i = (t.floor() as usize).min(stops.len() - 2);
    lerp(stops[i], stops[i + 1], t - i as f32)
}

/// Blue (-1) - white (0) - red (+1).
pub(super) fn diverging(t: f32) -> Rgb {
    if !t.is_finite() {
        return GREY;
    }
    const NEG: [Rgb; 3] = [WHITE, [67, 147, 195], [5, 48, 97]];
    const POS: [Rgb; 3] = [WHITE, [214, 96, 77], [103, 0, 31]];
    if t < 0.0 {
        ramp(&NEG, -t)
    } else {
        ramp(&POS, t)
    }
}

/// Viridis-like, 0 (dark purple) to 1 (yellow).
pub(super) fn sequential(t: f32) -> Rgb {
    const V: [Rgb; 9] = [
        [68, 1, 84],
        [71, 44, 122],
        [59, 81, 139],
        [44, 113, 142],
        [33, 144, 141],
        [39, 173, 129],
        [92, 200, 99],
        [170, 220, 50],
        [253, 231, 37],
    ];
    if t.is_finite() {
        ramp(&V, t)
    } else {
        GREY
    }
}

/// HSV with full saturation: `hue` in radians (0 = red), `value` in [0, 1].
pub(super) fn hsv(hue: f32, value: f32) -> Rgb {
    if !hue.is_finite() || !value.is_finite() {
        return GREY;
    }
    let h = hue.rem_euclid(std::f32::consts::TAU) / std::f32::consts::TAU * 6.0;
    let v = value.clamp(0.0, 1.0);
    let x = 1.0 - ((h % 2.0) - 1.0).abs();
    let (r, g, b) = match h as u32 {
        0 => (1.0, x, 0.0),
        1 => (x, 1.0, 0.0),
        2 => (0.0, 1.0, x),
        3 => (0.0, x, 1.0),
        4 => (x, 0.0, 1.0),
        _ => (1.0, 0.0, x),
    };
    let c = |u: f32| (u * v * 255.0).round() as u8;
    [c(r), c(g), c(b)]
}

pub(super) fn colour(kind: MapKind, lo: f32, hi: f32, v: f32) -> Rgb {
    match kind {
        MapKind::Diverging => diverging(v / hi),
        MapKind::Sequential => sequential((v - lo) / (hi - lo)),
    }
}

/// Black or white, whichever stands out more against `c` (by its luma).
pub(super) fn contrast(c: Rgb) -> Rgb {
    let luma = 0.299 * c[0] as f32 + 0.587 * c[1] as f32 + 0.114 * c[2] as f32;
    if luma >= 128.0 {
        BLACK
    } else {
        WHITE
    }
}
