//! Signal helpers shared by the physics of both instruments: FFT sample frequencies, a
//! separable Gaussian filter with a named boundary rule, and (crate-internal) a least-squares
//! plane.

/// `numpy.fft.fftfreq(n, d)`: frequencies in cycles per unit of `d`, in FFT order (0, 1, ...,
/// then the negative ones). `d = 1` gives cycles per sample (LTEM); `2 pi fftfreq(n, pixel)` the
/// angular wave numbers of the NV model.
pub fn fftfreq(n: usize, d: f64) -> Vec<f64> {
    (0..n)
        .map(|i| {
            let f = if i < n.div_ceil(2) {
                i as f64
            } else {
                i as f64 - n as f64
            };
            f / (n as f64 * d)
        })
        .collect()
}

/// Angular wave numbers `2 pi fftfreq(n, d)` (rad per unit of `d`).
pub fn wavenumbers(n: usize, d: f64) -> Vec<f64> {
    fftfreq(n, d)
        .into_iter()
        .map(|f| 2.0 * std::f64::consts::PI * f)
        .collect()
}

/// How [`gaussian_filter`] extends an image past its edges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Boundary {
    /// Mirror including the edge pixel, `(d c b a | a b c d | d c b a)` (scipy's `reflect`, its
    /// default): keeps the level at the edges (phases, images).
    Reflect,
    /// Zero outside (scipy's `constant` with `cval = 0`): softens a support's edge towards
    /// the empty surroundings (masks).
    Zero,
}

/// Gaussian filter of each `(h, w)` plane of `data` with standard deviation `sigma` pixels,
/// separable (rows then columns, f64 accumulation), the kernel truncated at radius
/// `round(truncate sigma)` (scipy: `int(truncate sigma + 0.5)`; its default `truncate` is 4).
/// `sigma <= 0` returns the data unchanged.
pub fn gaussian_filter(
    data: &[f32],
    h: usize,
    w: usize,
    sigma: f64,
    boundary: Boundary,
    truncate: f64,
) -> Vec<f32> {
    if sigma <= 0.0 || h == 0 || w == 0 {
        return data.to_vec();
    }
    let v: Vec<f64> = data.iter().map(|&x| x as f64).collect();
    gaussian_filter_f64(&v, h, w, sigma, boundary, truncate)
        .into_iter()
        .map(|x| x as f32)
        .collect()
}

/// [`gaussian_filter`] on f64 data.
pub fn gaussian_filter_f64(
    data: &[f64],
    h: usize,
    w: usize,
    sigma: f64,
    boundary: Boundary,
    truncate: f64,
) -> Vec<f64> {
    if sigma <= 0.0 || h == 0 || w == 0 {
        return data.to_vec();
    }
    let rad = (truncate * sigma + 0.5) as isize;
    let taps: Vec<f64> = (-rad..=rad)
        .map(|i| (-((i * i) as f64) / (2.0 * sigma * sigma)).exp())
        .collect();
    let norm: f64 = taps.iter().sum();
    // the source index for offset j on a line of n, or None for a zero
    let at = |j: isize, n: isize| -> Option<usize> {
        match boundary {
            Boundary::Reflect => {
                let period = 2 * n;
                let mut j = j.rem_euclid(period);
                if j >= n {
                    j = period - 1 - j;
                }
                Some(j as usize)
            }
            Boundary::Zero => (0..n).contains(&j).then_some(j as usize),
        }
    };
    // one 1-D pass over `count` lines of `n` samples (`stride` apart, lines `step` apart)
    let pass = |src: &[f64], n: usize, stride: usize, count: usize, step: usize| -> Vec<f64> {
        let mut out = vec![0f64; src.len()];
        for line in 0..count {
            for i in 0..n {
                let mut acc = 0.0;
                for (t, &k) in taps.iter().enumerate() {
                    if let Some(j) = at(i as isize + t as isize - rad, n as isize) {
                        acc += k * src[line * step + j * stride];
                    }
                }
                out[line * step + i * stride] = acc / norm;
            }
        }
        out
    };
    let mut out = Vec::with_capacity(data.len());
    for plane in data.chunks(h * w) {
        let rows = pass(plane, w, 1, h, w);
        out.extend(pass(&rows, h, w, w, 1));
    }
    out
}

/// Least-squares plane `p0 + p1 (col - cx) + p2 (row - cy)` (pixel units, centred on the map's
/// centre `cx = (w-1)/2`, `cy = (h-1)/2`) through the finite pixels of an `(h, w)` map for which
/// `use_pixel(row, col)` holds. The mean (slopes 0) when the pixels cannot fix a plane (fewer
/// than three, or on one line); `None` when there is none.
pub(crate) fn fit_plane(
    map: &[f32],
    h: usize,
    w: usize,
    use_pixel: impl Fn(usize, usize) -> bool,
) -> Option<[f64; 3]> {
    let (cx, cy) = ((w as f64 - 1.0) / 2.0, (h as f64 - 1.0) / 2.0);
    let mut a = [[0f64; 3]; 3];
    let mut b = [0f64; 3];
    for r in 0..h {
        for c in 0..w {
            let v = map.get(r * w + c).copied().unwrap_or(f32::NAN);
            if !v.is_finite() || !use_pixel(r, c) {
                continue;
            }
            let p = [1.0, c as f64 - cx, r as f64 - cy];
            for i in 0..3 {
                for j in 0..3 {
                    a[i][j] += p[i] * p[j];
                }
                b[i] += p[i] * v as f64;
            }
        }
    }
    if a[0][0] == 0.0 {
        return None;
    }
    Some(solve3(a, b).unwrap_or([b[0] / a[0][0], 0.0, 0.0]))
}

/// Solves a 3x3 system by Gaussian elimination with partial pivoting; `None` when (nearly)
/// singular.
pub(crate) fn solve3(mut a: [[f64; 3]; 3], mut b: [f64; 3]) -> Option<[f64; 3]> {
    let scale = a.iter().flatten().fold(0f64, |m, v| m.max(v.abs()));
    for col in 0..3 {
        let piv = (col..3).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[piv][col].abs() <= 1e-12 * scale {
            return None;
        }
        a.swap(col, piv);
        b.swap(col, piv);
        let pivot_row = a[col];
        for r in col + 1..3 {
            let f = a[r][col] / pivot_row[col];
            for (x, p) in a[r][col..].iter_mut().zip(&pivot_row[col..]) {
                *x -= f * p;
            }
            b[r] -= f * b[col];
        }
    }
    let mut x = [0f64; 3];
    for r in (0..3).rev() {
        let s: f64 = (r + 1..3).map(|c| a[r][c] * x[c]).sum();
        x[r] = (b[r] - s) / a[r][r];
    }
    Some(x)
}

/// Median of finite values (NaN when none); reorders `v`.
pub(crate) fn median(v: &mut [f64]) -> f64 {
    let mut n = 0;
    for i in 0..v.len() {
        if v[i].is_finite() {
            v.swap(n, i);
            n += 1;
        }
    }
    let v = &mut v[..n];
    if v.is_empty() {
        return f64::NAN;
    }
    let mid = v.len() / 2;
    let (_, m, _) = v.select_nth_unstable_by(mid, f64::total_cmp);
    let m = *m;
    if v.len().is_multiple_of(2) {
        let lo = v[..mid].iter().copied().fold(f64::NEG_INFINITY, f64::max);
        0.5 * (lo + m)
    } else {
        m
    }
}

/// Labels the 4-connected components of `mask`; returns each pixel's label (0 = none) and the
/// component sizes (index = label - 1).
pub(crate) fn components(mask: &[bool], h: usize, w: usize) -> (Vec<usize>, Vec<usize>) {
    let mut label = vec![0usize; h * w];
    let mut sizes = Vec::new();
    let mut queue = std::collections::VecDeque::new();
    for start in 0..h * w {
        if !mask[start] || label[start] != 0 {
            continue;
        }
        sizes.push(0);
        let id = sizes.len();
        label[start] = id;
        queue.push_back(start);
        while let Some(i) = queue.pop_front() {
            sizes[id - 1] += 1;
            let (r, c) = (i / w, i % w);
            let mut visit = |j: usize| {
                if mask[j] && label[j] == 0 {
                    label[j] = id;
                    queue.push_back(j);
                }
            };
            if r > 0 {
                visit(i - w);
            }
            if r + 1 < h {
                visit(i + w);
            }
            if c > 0 {
                visit(i - 1);
            }
            if c + 1 < w {
                visit(i + 1);
            }
        }
    }
    (label, sizes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fftfreq_matches_numpy() {
        // numpy.fft.fftfreq(5, 0.5) = [0, 0.4, 0.8, -0.8, -0.4]; (4) = [0, .25, -.5, -.25]
        let f = fftfreq(5, 0.5);
        let want = [0.0, 0.4, 0.8, -0.8, -0.4];
        assert!(f.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-12));
        assert_eq!(fftfreq(4, 1.0), vec![0.0, 0.25, -0.5, -0.25]);
    }

    #[test]
    fn boundaries_differ_only_at_the_edges() {
        let (h, w) = (9, 11);
        let img = vec![1f32; h * w];
        let r = gaussian_filter(&img, h, w, 1.0, Boundary::Reflect, 4.0);
        let z = gaussian_filter(&img, h, w, 1.0, Boundary::Zero, 4.0);
        // reflect keeps a constant image; zero darkens its edge, not its centre
        assert!(r.iter().all(|&v| (v - 1.0).abs() < 1e-6));
        assert!(z[0] < 0.5 && (z[4 * w + 5] - 1.0).abs() < 1e-4);
    }
}
