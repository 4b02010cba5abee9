//! CPU 2-D convolution kernels (stride 1, "same" zero padding, NCHW f32): im2col tiles + gemm.
//!
//! Every pass works on tiles of whole output rows of one image.  A tile's im2col matrix
//! (`cin*k*k` rows x `tile pixels` columns) is built in a per-thread buffer sized to stay
//! in L2, and multiplied with the weights by the `gemm` crate (single-threaded; the tiles
//! are distributed over rayon).  The full col matrix is never materialised.

use gemm::{gemm, Parallelism};
use rayon::prelude::*;

/// Shape of a stride-1, zero-"same"-padded 2-D cross-correlation (PyTorch `conv2d`, padding = k/2), NCHW, contiguous f32.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvShape {
    pub n: usize,
    pub cin: usize,
    pub cout: usize,
    pub h: usize,
    pub w: usize,
    pub k: usize,
}

impl ConvShape {
    fn hw(&self) -> usize {
        self.h * self.w
    }
    /// Reduction length of one output value: `cin*k*k`.
    fn kdim(&self) -> usize {
        self.cin * self.k * self.k
    }
    /// Output rows per tile so that the tile's col matrix is about `COL_TARGET` floats.
    fn tile_rows(&self) -> usize {
        (COL_TARGET / (self.kdim() * self.w).max(1)).clamp(1, self.h.max(1))
    }
}

/// Target size (in f32) of one im2col tile buffer (~1 MiB, half of a core's L2).
const COL_TARGET: usize = 1 << 18;

/// Raw output pointer shared by tasks that write disjoint regions.
#[derive(Clone, Copy)]
struct SyncPtr(*mut f32);
// SAFETY: only used for writes to disjoint index ranges from different tasks.
unsafe impl Send for SyncPtr {}
unsafe impl Sync for SyncPtr {}
impl SyncPtr {
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// Fill `col` (`cin*k*k` rows of `(r1-r0)*w` pixels) for output rows `r0..r1` of one image `xi`.
fn im2col(s: &ConvShape, xi: &[f32], r0: usize, r1: usize, col: &mut [f32]) {
    let (h, w, k, p) = (s.h, s.w, s.k, s.k / 2);
    let npix = (r1 - r0) * w;
    for (ci, plane) in xi.chunks_exact(h * w).enumerate() {
        for ky in 0..k {
            for kx in 0..k {
                let dst = &mut col[((ci * k + ky) * k + kx) * npix..][..npix];
                for (d, i) in dst.chunks_exact_mut(w).zip(r0..r1) {
                    // source row i + ky - p, source column j + kx - p
                    let ii = i + ky;
                    if ii < p || ii - p >= h {
                        d.fill(0.0);
                        continue;
                    }
                    let src = &plane[(ii - p) * w..][..w];
                    if kx >= p {
                        let sh = (kx - p).min(w);
                        d[..w - sh].copy_from_slice(&src[sh..]);
                        d[w - sh..].fill(0.0);
                    } else {
                        let sh = (p - kx).min(w);
                        d[..sh].fill(0.0);
                        d[sh..].copy_from_slice(&src[..w - sh]);
                    }
                }
            }
        }
    }
}

/// y = conv(x, weight) + bias. `y` is overwritten.
pub fn conv2d_forward(
    s: &ConvShape,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
) {
    debug_assert_eq!(x.len(), s.n * s.cin * s.hw());
    debug_assert_eq!(weight.len(), s.cout * s.kdim());
    debug_assert_eq!(y.len(), s.n * s.cout * s.hw());
    debug_assert!(bias.map_or(true, |b| b.len() == s.cout));
    debug_assert!(s.k % 2 == 1);
    forward_impl(s, x, weight, bias, y);
}

fn forward_impl(s: &ConvShape, x: &[f32], weight: &[f32], bias: Option<&[f32]>, y: &mut [f32]) {
    let (hw, kd, w) = (s.hw(), s.kdim(), s.w);
    if y.is_empty() {
        return;
    }
    if kd == 0 {
        for yc in y.chunks_exact_mut(hw) {
            yc.fill(0.0);
        }
        add_bias(s, bias, y);
        return;
    }
    let rows = s.tile_rows();
    let tpi = s.h.div_ceil(rows);
    let yp = SyncPtr(y.as_mut_ptr());
    (0..s.n * tpi).into_par_iter().for_each_init(
        || vec![0f32; if s.k == 1 { 0 } else { kd * rows * w }],
        |col, t| {
            let (img, r0) = (t / tpi, (t % tpi) * rows);
            let r1 = (r0 + rows).min(s.h);
            let npix = (r1 - r0) * w;
            let xi = &x[img * s.cin * hw..][..s.cin * hw];
            // lhs = col^T: pixel index has stride 1, reduction index stride `lhs_cs`.
            let (lhs, lhs_cs) = if s.k == 1 {
                (xi[r0 * w..].as_ptr(), hw)
            } else {
                im2col(s, xi, r0, r1, &mut col[..kd * npix]);
                (col.as_ptr(), npix)
            };
            // SAFETY: dst covers rows r0..r1 of every output channel of image `img`, disjoint
            // between tasks and in bounds; lhs/rhs are valid for the given strides.
            unsafe {
                let dst = yp.get().add(img * s.cout * hw + r0 * w);
                gemm(
                    npix,
                    s.cout,
                    kd,
                    dst,
                    hw as isize,
                    1,
                    false,
                    lhs,
                    lhs_cs as isize,
                    1,
                    weight.as_ptr(),
                    kd as isize,
                    1,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    Parallelism::None,
                );
                if let Some(b) = bias {
                    for (co, &bv) in b.iter().enumerate() {
                        let yc = std::slice::from_raw_parts_mut(dst.add(co * hw), npix);
                        yc.iter_mut().for_each(|v| *v += bv);
                    }
                }
            }
        },
    );
}

fn add_bias(s: &ConvShape, bias: Option<&[f32]>, y: &mut [f32]) {
    if let Some(b) = bias {
        for (yc, &bv) in y.chunks_exact_mut(s.hw()).zip(b.iter().cycle()) {
            yc.iter_mut().for_each(|v| *v += bv);
        }
    }
}

/// gx = dL/dx for upstream gy (n,cout,h,w). `gx` is overwritten.
///
/// For odd k and same padding this is the forward conv of `gy` with the spatially flipped,
/// in/out-transposed weight.
pub fn conv2d_backward_input(s: &ConvShape, gy: &[f32], weight: &[f32], gx: &mut [f32]) {
    debug_assert_eq!(gy.len(), s.n * s.cout * s.hw());
    debug_assert_eq!(weight.len(), s.cout * s.kdim());
    debug_assert_eq!(gx.len(), s.n * s.cin * s.hw());
    let kk = s.k * s.k;
    let mut wt = vec![0f32; weight.len()];
    for co in 0..s.cout {
        for ci in 0..s.cin {
            let src = &weight[(co * s.cin + ci) * kk..][..kk];
            let dst = &mut wt[(ci * s.cout + co) * kk..][..kk];
            for (d, v) in dst.iter_mut().zip(src.iter().rev()) {
                *d = *v;
            }
        }
    }
    let st = ConvShape {
        cin: s.cout,
        cout: s.cin,
        ..*s
    };
    forward_impl(&st, gy, &wt, None, gx);
}

/// gw = dL/dweight (cout,cin,k,k) and, if given, gb = dL/dbias (cout,) = sum of gy over n,h,w. Both overwritten.
pub fn conv2d_backward_weight(
    s: &ConvShape,
    x: &[f32],
    gy: &[f32],
    gw: &mut [f32],
    gb: Option<&mut [f32]>,
) {
    debug_assert_eq!(x.len(), s.n * s.cin * s.hw());
    debug_assert_eq!(gy.len(), s.n * s.cout * s.hw());
    debug_assert_eq!(gw.len(), s.cout * s.kdim());
    let (hw, kd, w) = (s.hw(), s.kdim(), s.w);
    if let Some(gb) = gb {
        debug_assert_eq!(gb.len(), s.cout);
        for (co, g) in gb.iter_mut().enumerate() {
            let sum: f64 = (0..s.n)
                .map(|img| {
                    gy[(img * s.cout + co) * hw..][..hw]
                        .iter()
                        .map(|&v| v as f64)
                        .sum::<f64>()
                })
                .sum();
            *g = sum as f32;
        }
    }
    gw.fill(0.0);
    if gy.is_empty() || kd == 0 {
        return;
    }
    let rows = s.tile_rows();
    let tpi = s.h.div_ceil(rows);
    let acc = (0..s.n * tpi)
        .into_par_iter()
        .fold(
            || {
                (
                    vec![0f32; gw.len()],
                    vec![0f32; if s.k == 1 { 0 } else { kd * rows * w }],
                )
            },
            |(mut acc, mut col), t| {
                let (img, r0) = (t / tpi, (t % tpi) * rows);
                let r1 = (r0 + rows).min(s.h);
                let npix = (r1 - r0) * w;
                let xi = &x[img * s.cin * hw..][..s.cin * hw];
                let gyt = &gy[img * s.cout * hw + r0 * w..];
                // rhs = col^T (npix x kd): pixel stride 1, reduction-row stride `rhs_cs`.
                let (rhs, rhs_cs) = if s.k == 1 {
                    (xi[r0 * w..].as_ptr(), hw)
                } else {
                    im2col(s, xi, r0, r1, &mut col[..kd * npix]);
                    (col.as_ptr(), npix)
                };
                // SAFETY: acc is cout x kd row-major; gy tile is cout x npix with row stride hw.
                unsafe {
                    gemm(
                        s.cout,
                        kd,
                        npix,
                        acc.as_mut_ptr(),
                        1,
                        kd as isize,
                        true,
                        gyt.as_ptr(),
                        1,
                        hw as isize,
                        rhs,
                        rhs_cs as isize,
                        1,
                        1.0,
                        1.0,
                        false,
                        false,
                        false,
                        Parallelism::None,
                    );
                }
                (acc, col)
            },
        )
        .map(|(acc, _)| acc)
        .reduce_with(|mut a, b| {
            a.iter_mut().zip(&b).for_each(|(u, v)| *u += v);
            a
        });
    if let Some(acc) = acc {
        gw.copy_from_slice(&acc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> f32 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        }
        fn vec(&mut self, len: usize) -> Vec<f32> {
            (0..len).map(|_| self.next()).collect()
        }
    }

    /// Calls `f(img, co, ci, i, j, ky, kx, xi, xj)` for every in-bounds tap.
    fn taps(s: &ConvShape, mut f: impl FnMut([usize; 9])) {
        let p = s.k / 2;
        for img in 0..s.n {
            for co in 0..s.cout {
                for ci in 0..s.cin {
                    for i in 0..s.h {
                        for j in 0..s.w {
                            for ky in 0..s.k {
                                for kx in 0..s.k {
                                    let (ii, jj) = (i + ky, j + kx);
                                    if ii >= p && jj >= p && ii - p < s.h && jj - p < s.w {
                                        f([img, co, ci, i, j, ky, kx, ii - p, jj - p]);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Naive f64 reference of all three passes: (y, gx, gw, gb).
    #[allow(clippy::type_complexity)]
    fn reference(
        s: &ConvShape,
        x: &[f32],
        w: &[f32],
        b: Option<&[f32]>,
        gy: &[f32],
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
        let (hw, k) = (s.h * s.w, s.k);
        let mut y = vec![0f64; s.n * s.cout * hw];
        let mut gx = vec![0f64; s.n * s.cin * hw];
        let mut gw = vec![0f64; w.len()];
        let mut gb = vec![0f64; s.cout];
        for img in 0..s.n {
            for co in 0..s.cout {
                for p in 0..hw {
                    let yi = (img * s.cout + co) * hw + p;
                    y[yi] = b.map_or(0.0, |b| b[co] as f64);
                    gb[co] += gy[yi] as f64;
                }
            }
        }
        taps(s, |[img, co, ci, i, j, ky, kx, xi, xj]| {
            let yi = ((img * s.cout + co) * s.h + i) * s.w + j;
            let xidx = ((img * s.cin + ci) * s.h + xi) * s.w + xj;
            let wi = ((co * s.cin + ci) * k + ky) * k + kx;
            y[yi] += w[wi] as f64 * x[xidx] as f64;
            gx[xidx] += w[wi] as f64 * gy[yi] as f64;
            gw[wi] += x[xidx] as f64 * gy[yi] as f64;
        });
        (y, gx, gw, gb)
    }

    fn assert_close(name: &str, got: &[f32], want: &[f64]) {
        assert_eq!(got.len(), want.len(), "{name}: length");
        let scale = want.iter().fold(1e-6f64, |m, v| m.max(v.abs()));
        let err = got
            .iter()
            .zip(want)
            .fold(0f64, |m, (g, w)| m.max((*g as f64 - w).abs()));
        assert!(err / scale < 1e-4, "{name}: rel max error {}", err / scale);
    }

    #[test]
    fn matches_reference() {
        let mut rng = Rng(0x9e3779b97f4a7c15);
        let cases = [
            // (n, cin, cout, h, w, k)
            (2, 3, 4, 7, 9, 1),
            (2, 3, 4, 7, 9, 3),
            (2, 3, 5, 7, 9, 5),
            (2, 2, 3, 7, 9, 7),
            (2, 2, 3, 1, 1, 3),
            (1, 2, 2, 1, 1, 5),
            (2, 3, 2, 3, 2, 5),
            (2, 2, 3, 2, 6, 7),
            (1, 1, 16, 12, 10, 5),
            (1, 16, 16, 13, 17, 5),
            (2, 16, 2, 9, 11, 1),
            (1, 8, 8, 40, 33, 3),
        ];
        for (case, &(n, cin, cout, h, w, k)) in cases.iter().enumerate() {
            let s = ConvShape {
                n,
                cin,
                cout,
                h,
                w,
                k,
            };
            let x = rng.vec(n * cin * h * w);
            let wt = rng.vec(cout * cin * k * k);
            let b = rng.vec(cout);
            let gy = rng.vec(n * cout * h * w);
            let bias = if case % 2 == 0 { Some(&b[..]) } else { None };
            let (ry, rgx, rgw, rgb) = reference(&s, &x, &wt, bias, &gy);
            let mut y = vec![f32::NAN; ry.len()];
            conv2d_forward(&s, &x, &wt, bias, &mut y);
            assert_close(&format!("forward {s:?}"), &y, &ry);
            let mut gx = vec![f32::NAN; rgx.len()];
            conv2d_backward_input(&s, &gy, &wt, &mut gx);
            assert_close(&format!("backward_input {s:?}"), &gx, &rgx);
            let mut gw = vec![f32::NAN; rgw.len()];
            let mut gb = vec![f32::NAN; cout];
            if case % 2 == 0 {
                conv2d_backward_weight(&s, &x, &gy, &mut gw, Some(&mut gb));
                assert_close(&format!("backward_bias {s:?}"), &gb, &rgb);
            } else {
                conv2d_backward_weight(&s, &x, &gy, &mut gw, None);
            }
            assert_close(&format!("backward_weight {s:?}"), &gw, &rgw);
        }
    }

    #[test]
    fn backward_input_is_adjoint() {
        let mut rng = Rng(42);
        for k in [1, 3, 5, 7] {
            let s = ConvShape {
                n: 2,
                cin: 5,
                cout: 6,
                h: 11,
                w: 8,
                k,
            };
            let x = rng.vec(s.n * s.cin * s.h * s.w);
            let wt = rng.vec(s.cout * s.cin * k * k);
            let gy = rng.vec(s.n * s.cout * s.h * s.w);
            let mut y = vec![0.0; gy.len()];
            let mut gx = vec![0.0; x.len()];
            conv2d_forward(&s, &x, &wt, None, &mut y);
            conv2d_backward_input(&s, &gy, &wt, &mut gx);
            let dot = |a: &[f32], b: &[f32]| {
                a.iter()
                    .zip(b)
                    .map(|(u, v)| *u as f64 * *v as f64)
                    .sum::<f64>()
            };
            let (lhs, rhs) = (dot(&y, &gy), dot(&x, &gx));
            assert!(
                (lhs - rhs).abs() <= 1e-5 * lhs.abs().max(1.0),
                "k={k}: {lhs} vs {rhs}"
            );
        }
    }

    #[test]
    fn large_tiled_case() {
        // several row tiles per image (kdim*w large) and n = 2
        let mut rng = Rng(7);
        let s = ConvShape {
            n: 2,
            cin: 32,
            cout: 8,
            h: 24,
            w: 300,
            k: 5,
        };
        let x = rng.vec(s.n * s.cin * s.h * s.w);
        let wt = rng.vec(s.cout * s.cin * 25);
        let b = rng.vec(s.cout);
        let gy = rng.vec(s.n * s.cout * s.h * s.w);
        let (ry, rgx, rgw, rgb) = reference(&s, &x, &wt, Some(&b), &gy);
        let mut y = vec![0.0; ry.len()];
        let mut gx = vec![0.0; rgx.len()];
        let mut gw = vec![0.0; rgw.len()];
        let mut gb = vec![0.0; s.cout];
        conv2d_forward(&s, &x, &wt, Some(&b), &mut y);
        conv2d_backward_input(&s, &gy, &wt, &mut gx);
        conv2d_backward_weight(&s, &x, &gy, &mut gw, Some(&mut gb));
        assert_close("forward", &y, &ry);
        assert_close("backward_input", &gx, &rgx);
        assert_close("backward_weight", &gw, &rgw);
        assert_close("backward_bias", &gb, &rgb);
    }
}
