//! Naive f64 references of the kernels (loops over the definitions, f64 accumulation), shared
//! by the GPU kernel tests (`gpu_kernels.rs`) and the CPU checks of the references themselves
//! (`gradcheck.rs`).
#![allow(clippy::needless_range_loop)]

use magprior::backend::{ConvShape, NormShape};

/// f32 data widened to f64.
pub fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// conv2d forward (cross-correlation, zero "same" padding) with bias `b`.
pub fn conv_ref(s: &ConvShape, x: &[f32], w: &[f32], b: &[f32]) -> Vec<f64> {
    let (n, ci, co, h, wd, k) = (s.n, s.cin, s.cout, s.h, s.w, s.k);
    let p = (k / 2) as isize;
    let mut y = vec![0.0f64; n * co * h * wd];
    for ni in 0..n {
        for o in 0..co {
            for yy in 0..h {
                for xx in 0..wd {
                    let mut acc = b[o] as f64;
                    for i in 0..ci {
                        for ky in 0..k {
                            let sy = yy as isize + ky as isize - p;
                            if sy < 0 || sy >= h as isize {
                                continue;
                            }
                            for kx in 0..k {
                                let sx = xx as isize + kx as isize - p;
                                if sx < 0 || sx >= wd as isize {
                                    continue;
                                }
                                acc += w[((o * ci + i) * k + ky) * k + kx] as f64
                                    * x[((ni * ci + i) * h + sy as usize) * wd + sx as usize]
                                        as f64;
                            }
                        }
                    }
                    y[((ni * co + o) * h + yy) * wd + xx] = acc;
                }
            }
        }
    }
    y
}

/// Scatter form of the VJPs: for every (output pixel, tap) add the products to dx and dw.
pub fn conv_vjp_ref(
    s: &ConvShape,
    x: &[f32],
    w: &[f32],
    gy: &[f32],
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (n, ci, co, h, wd, k) = (s.n, s.cin, s.cout, s.h, s.w, s.k);
    let p = (k / 2) as isize;
    let mut dx = vec![0.0f64; s.x_len()];
    let mut dw = vec![0.0f64; s.w_len()];
    let mut db = vec![0.0f64; co];
    for ni in 0..n {
        for o in 0..co {
            for yy in 0..h {
                for xx in 0..wd {
                    let g = gy[((ni * co + o) * h + yy) * wd + xx] as f64;
                    db[o] += g;
                    for i in 0..ci {
                        for ky in 0..k {
                            let sy = yy as isize + ky as isize - p;
                            if sy < 0 || sy >= h as isize {
                                continue;
                            }
                            for kx in 0..k {
                                let sx = xx as isize + kx as isize - p;
                                if sx < 0 || sx >= wd as isize {
                                    continue;
                                }
                                let xi = ((ni * ci + i) * h + sy as usize) * wd + sx as usize;
                                let wi = ((o * ci + i) * k + ky) * k + kx;
                                dx[xi] += g * w[wi] as f64;
                                dw[wi] += g * x[xi] as f64;
                            }
                        }
                    }
                }
            }
        }
    }
    (dx, dw, db)
}

/// f64 reference: (y, dx, dw, db) for weight w, bias b, upstream gy.
pub fn instance_norm_ref(
    s: &NormShape,
    x: &[f64],
    w: &[f64],
    b: &[f64],
    gy: &[f64],
    eps: f64,
) -> [Vec<f64>; 4] {
    let (mut y, mut dx) = (vec![0.0; x.len()], vec![0.0; x.len()]);
    let (mut dw, mut db) = (vec![0.0; s.c], vec![0.0; s.c]);
    for q in 0..s.n * s.c {
        let c = q % s.c;
        let xs = &x[q * s.m..(q + 1) * s.m];
        let mean = xs.iter().sum::<f64>() / s.m as f64;
        let var = xs.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / s.m as f64;
        let rstd = 1.0 / (var + eps).sqrt();
        let xh: Vec<f64> = xs.iter().map(|v| (v - mean) * rstd).collect();
        let g = &gy[q * s.m..(q + 1) * s.m];
        let mgh = g.iter().map(|v| v * w[c]).sum::<f64>() / s.m as f64;
        let mghxh = g.iter().zip(&xh).map(|(v, h)| v * w[c] * h).sum::<f64>() / s.m as f64;
        for i in 0..s.m {
            y[q * s.m + i] = xh[i] * w[c] + b[c];
            dx[q * s.m + i] = rstd * (g[i] * w[c] - mgh - xh[i] * mghxh);
            dw[c] += g[i] * xh[i];
            db[c] += g[i];
        }
    }
    [y, dx, dw, db]
}

/// PyTorch's (index, weight) pairs of output o along an axis of n inputs (align_corners=false).
pub fn up_taps(o: usize, n: usize) -> [(usize, f64); 2] {
    let src = (((o as f32 + 0.5) * 0.5 - 0.5).max(0.0)) as f64;
    let i0 = src.floor() as usize;
    let i1 = (i0 + 1).min(n - 1);
    let l1 = src - i0 as f64;
    [(i0, 1.0 - l1), (i1, l1)]
}

/// Naive f64 DFT of each row of `rows x n` complex values; `sign` -1 forward.
pub fn dft_rows(z: &[f64], rows: usize, n: usize, sign: f64) -> Vec<f64> {
    let tw: Vec<(f64, f64)> = (0..n)
        .map(|k| {
            let a = sign * 2.0 * std::f64::consts::PI * k as f64 / n as f64;
            (a.cos(), a.sin())
        })
        .collect();
    let mut out = vec![0.0; z.len()];
    for r in 0..rows {
        for k in 0..n {
            let (mut re, mut im) = (0.0, 0.0);
            for j in 0..n {
                let (c, s) = tw[(j * k) % n];
                let (a, b) = (z[2 * (r * n + j)], z[2 * (r * n + j) + 1]);
                re += a * c - b * s;
                im += a * s + b * c;
            }
            out[2 * (r * n + k)] = re;
            out[2 * (r * n + k) + 1] = im;
        }
    }
    out
}

pub fn transpose_ref(z: &[f64], batch: usize, r: usize, c: usize) -> Vec<f64> {
    let mut out = vec![0.0; z.len()];
    for b in 0..batch {
        for i in 0..r {
            for j in 0..c {
                for t in 0..2 {
                    out[2 * ((b * c + j) * r + i) + t] = z[2 * ((b * r + i) * c + j) + t];
                }
            }
        }
    }
    out
}

pub fn dft2_ref(z: &[f64], batch: usize, h: usize, w: usize, sign: f64, scale: f64) -> Vec<f64> {
    let a = dft_rows(z, batch * h, w, sign);
    let t = transpose_ref(&a, batch, h, w);
    let b = dft_rows(&t, batch * w, h, sign);
    transpose_ref(&b, batch, w, h)
        .into_iter()
        .map(|v| v * scale)
        .collect()
}

/// Bilinear x2 upsampling of `planes` (h, w) planes and its VJP for the upstream `gy`:
/// `(y, dx)`.
pub fn upsample_ref(x: &[f32], gy: &[f32], planes: usize, h: usize, w: usize) -> [Vec<f64>; 2] {
    let (oh, ow) = (2 * h, 2 * w);
    let mut y = vec![0.0f64; planes * oh * ow];
    let mut dx = vec![0.0f64; planes * h * w];
    for q in 0..planes {
        for oy in 0..oh {
            for ox in 0..ow {
                let o = (q * oh + oy) * ow + ox;
                for (iy, wy) in up_taps(oy, h) {
                    for (ix, wx) in up_taps(ox, w) {
                        let i = (q * h + iy) * w + ix;
                        y[o] += wy * wx * x[i] as f64;
                        dx[i] += wy * wx * gy[o] as f64;
                    }
                }
            }
        }
    }
    [y, dx]
}

/// 2x2 max pooling of `planes` (h, w) planes (odd sides drop the last row / column) and its
/// VJP for `gy`, routing each window's gradient to its first maximum: `(y, dx)`.
pub fn max_pool_ref(x: &[f32], gy: &[f32], planes: usize, h: usize, w: usize) -> [Vec<f64>; 2] {
    let (oh, ow) = (h / 2, w / 2);
    let mut y = vec![0.0f64; planes * oh * ow];
    let mut dx = vec![0.0f64; planes * h * w];
    for q in 0..planes {
        let plane = &x[q * h * w..(q + 1) * h * w];
        for oy in 0..oh {
            for ox in 0..ow {
                let mut best = 2 * oy * w + 2 * ox;
                for t in 1..4 {
                    let at = (2 * oy + t / 2) * w + 2 * ox + t % 2;
                    if plane[at] > plane[best] {
                        best = at;
                    }
                }
                let o = (q * oh + oy) * ow + ox;
                y[o] = plane[best] as f64;
                dx[q * h * w + best] += gy[o] as f64;
            }
        }
    }
    [y, dx]
}

/// Spectral convolution `y[n, o] = crop(Re F^-1 sum_c K[o, c] F pad(x[n, c]))` by naive DFTs:
/// x (n, cin, h, w) real, K (cout, cin, ph, pw) complex interleaved, y (n, cout, h, w).
#[allow(clippy::too_many_arguments)]
pub fn spectral_ref(
    x: &[f32],
    k: &[f32],
    (n, cin, h, w): (usize, usize, usize, usize),
    (cout, ph, pw): (usize, usize, usize),
) -> Vec<f64> {
    let plane = ph * pw;
    // F pad(x[n, c]), interleaved
    let mut fx = vec![0.0f64; 2 * n * cin * plane];
    for p in 0..n * cin {
        for r in 0..h {
            for c in 0..w {
                fx[2 * (p * plane + r * pw + c)] = x[(p * h + r) * w + c] as f64;
            }
        }
    }
    let fx = dft2_ref(&fx, n * cin, ph, pw, -1.0, 1.0);
    let mut acc = vec![0.0f64; 2 * n * cout * plane];
    for ni in 0..n {
        for o in 0..cout {
            for ci in 0..cin {
                for i in 0..plane {
                    let (a, b) = (
                        fx[2 * ((ni * cin + ci) * plane + i)],
                        fx[2 * ((ni * cin + ci) * plane + i) + 1],
                    );
                    let kk = 2 * ((o * cin + ci) * plane + i);
                    let (c, d) = (k[kk] as f64, k[kk + 1] as f64);
                    let at = 2 * ((ni * cout + o) * plane + i);
                    acc[at] += a * c - b * d;
                    acc[at + 1] += a * d + b * c;
                }
            }
        }
    }
    let y = dft2_ref(&acc, n * cout, ph, pw, 1.0, 1.0 / plane as f64);
    let mut out = vec![0.0f64; n * cout * h * w];
    for p in 0..n * cout {
        for r in 0..h {
            for c in 0..w {
                out[(p * h + r) * w + c] = y[2 * (p * plane + r * pw + c)];
            }
        }
    }
    out
}

/// Affine bilinear sampling in f64, zero outside: the taps and weights of output (i, j) of an
/// `(oh, ow)` output, `s_c = a0 j + a1 i + a2`, `s_r = a3 j + a4 i + a5`, over an `(h, w)` image:
/// `[(r, c, weight)]` for the taps inside the image.
pub fn affine_taps(
    a: &[f64; 6],
    i: usize,
    j: usize,
    h: usize,
    w: usize,
) -> Vec<(usize, usize, f64)> {
    let (fi, fj) = (i as f64, j as f64);
    let (sr, sc) = (a[3] * fj + a[4] * fi + a[5], a[0] * fj + a[1] * fi + a[2]);
    let (r0, c0) = (sr.floor(), sc.floor());
    let (fr, fc) = (sr - r0, sc - c0);
    let mut taps = Vec::new();
    for (dr, wr) in [(0.0, 1.0 - fr), (1.0, fr)] {
        for (dc, wc) in [(0.0, 1.0 - fc), (1.0, fc)] {
            let (r, c) = (r0 + dr, c0 + dc);
            if r >= 0.0 && c >= 0.0 && r < h as f64 && c < w as f64 {
                taps.push((r as usize, c as usize, wr * wc));
            }
        }
    }
    taps
}

/// `y = S x` (forward) of `planes` planes `(h, w)` -> `(oh, ow)`, in f64.
pub fn affine_sample_ref(x: &[f64], dims: [usize; 5], a: &[f64; 6]) -> Vec<f64> {
    let [planes, h, w, oh, ow] = dims;
    let mut y = vec![0.0; planes * oh * ow];
    for i in 0..oh {
        for j in 0..ow {
            for (r, c, wt) in affine_taps(a, i, j, h, w) {
                for q in 0..planes {
                    y[(q * oh + i) * ow + j] += wt * x[(q * h + r) * w + c];
                }
            }
        }
    }
    y
}

/// `dx = S^T gy` of [`affine_sample_ref`], in f64.
pub fn affine_sample_t_ref(gy: &[f64], dims: [usize; 5], a: &[f64; 6]) -> Vec<f64> {
    let [planes, h, w, oh, ow] = dims;
    let mut dx = vec![0.0; planes * h * w];
    for i in 0..oh {
        for j in 0..ow {
            for (r, c, wt) in affine_taps(a, i, j, h, w) {
                for q in 0..planes {
                    dx[(q * h + r) * w + c] += wt * gy[(q * oh + i) * ow + j];
                }
            }
        }
    }
    dx
}
