//! Spectral convolution of zero-padded real planes on the host: for each sample `n`,
//! `y[n, o] = crop(Re F^-1 sum_c T[o, c] F pad(x[n, c]))`, with `T = K` (kernel (O, C, ph, pw))
//! or, for the adjoint, `T[o, c] = conj(K[c, o])` (kernel (C, O, ph, pw)); and the kernel's
//! gradient `dK[o, c] = sum_n conj(F pad x[n, c]) F pad g[n, o] / (ph pw)`.
//!
//! Two real planes share one complex transform (`Z = F(a + ib)`, `A(k) = (Z(k) + conj Z(-k))/2`,
//! `B(k) = (Z(k) - conj Z(-k))/2i`), and the zero rows of the padding are skipped (`RowsUsed`).

use super::fft::{fft2_rows, FftDirection, RowsUsed};
use crate::backend::{SpectralShape, C32};
use rayon::prelude::*;

const ZERO: C32 = C32::new(0.0, 0.0);

fn plane(s: &SpectralShape) -> usize {
    s.ph * s.pw
}

/// `a + i b` of two real (h, w) planes, zero-padded to (ph, pw) (`b` absent: real `a`).
fn embed(s: &SpectralShape, a: &[f32], b: Option<&[f32]>) -> Vec<C32> {
    let mut buf = vec![ZERO; plane(s)];
    buf[..s.h * s.pw]
        .par_chunks_mut(s.pw)
        .enumerate()
        .for_each(|(r, row)| {
            let row = &mut row[..s.w];
            let src = r * s.w..(r + 1) * s.w;
            match b {
                Some(b) => {
                    for ((d, &x), &y) in row.iter_mut().zip(&a[src.clone()]).zip(&b[src]) {
                        *d = C32::new(x, y);
                    }
                }
                None => {
                    for (d, &x) in row.iter_mut().zip(&a[src]) {
                        *d = C32::new(x, 0.0);
                    }
                }
            }
        });
    buf
}

/// Elements per task of the per-frequency loops.
const CHUNK: usize = 1 << 13;

/// The spectra `F pad(p)` of `planes` (each h w, contiguous), two per transform.
fn spectra(s: &SpectralShape, planes: &[f32], count: usize) -> Vec<Vec<C32>> {
    let hw = s.h * s.w;
    let src = |i: usize| &planes[i * hw..(i + 1) * hw];
    let mut out = Vec::with_capacity(count);
    let mut c = 0;
    while c < count {
        let pair = c + 1 < count;
        let mut z = embed(s, src(c), pair.then(|| src(c + 1)));
        let (ph, pw) = (s.ph, s.pw);
        fft2_rows(
            &mut z,
            ph,
            pw,
            FftDirection::Forward,
            1.0,
            RowsUsed::Input(s.h),
        );
        if pair {
            let mut a = vec![ZERO; plane(s)];
            let mut b = vec![ZERO; plane(s)];
            a.par_chunks_mut(pw)
                .zip(b.par_chunks_mut(pw))
                .enumerate()
                .for_each(|(r, (a, b))| {
                    let (row, nrow) = (&z[r * pw..][..pw], &z[(ph - r) % ph * pw..][..pw]);
                    for (c, (a, b)) in a.iter_mut().zip(b).enumerate() {
                        let (zi, zn) = (row[c], nrow[(pw - c) % pw].conj());
                        *a = (zi + zn) * 0.5;
                        *b = (zi - zn) * C32::new(0.0, -0.5);
                    }
                });
            out.push(a);
            out.push(b);
            c += 2;
        } else {
            out.push(z);
            c += 1;
        }
    }
    out
}

/// `crop(Re F^-1 u)` of each spectrum, appended to `y`; two per transform through
/// `Re F^-1 u = F^-1 Herm(u)`, `Herm(u)(k) = (u(k) + conj u(-k)) / 2`.
fn images(s: &SpectralShape, u: &[Vec<C32>], y: &mut Vec<f32>) {
    let (h, w, ph, pw) = (s.h, s.w, s.ph, s.pw);
    let inv = 1.0 / plane(s) as f32;
    let crop = |buf: &[C32], part: fn(&C32) -> f32, y: &mut Vec<f32>| {
        for r in 0..h {
            y.extend(buf[r * pw..r * pw + w].iter().map(part));
        }
    };
    let mut o = 0;
    while o < u.len() {
        if o + 1 < u.len() {
            let (u0, u1) = (&u[o], &u[o + 1]);
            let mut z = vec![ZERO; plane(s)];
            z.par_chunks_mut(pw).enumerate().for_each(|(r, zr)| {
                let nr = (ph - r) % ph;
                let (a0, n0) = (&u0[r * pw..][..pw], &u0[nr * pw..][..pw]);
                let (a1, n1) = (&u1[r * pw..][..pw], &u1[nr * pw..][..pw]);
                for (c, z) in zr.iter_mut().enumerate() {
                    let j = (pw - c) % pw;
                    let h0 = (a0[c] + n0[j].conj()) * 0.5;
                    let h1 = (a1[c] + n1[j].conj()) * 0.5;
                    *z = h0 + h1 * C32::new(0.0, 1.0);
                }
            });
            fft2_rows(
                &mut z,
                ph,
                pw,
                FftDirection::Inverse,
                inv,
                RowsUsed::Output(h),
            );
            crop(&z, |z| z.re, y);
            crop(&z, |z| z.im, y);
            o += 2;
        } else {
            let mut z = u[o].clone();
            fft2_rows(
                &mut z,
                ph,
                pw,
                FftDirection::Inverse,
                inv,
                RowsUsed::Output(h),
            );
            crop(&z, |z| z.re, y);
            o += 1;
        }
    }
}

/// `y[n, o] = crop(Re F^-1 sum_c T[o, c] F pad(x[n, c]))`: x (n, cin, h, w), y (n, cout, h, w).
/// `kernel` is (cout, cin, ph, pw) (`T = K`), or (cin, cout, ph, pw) with `adjoint`
/// (`T[o, c] = conj(K[c, o])`).
pub fn spectral_conv(s: &SpectralShape, x: &[f32], kernel: &[C32], adjoint: bool) -> Vec<f32> {
    let (hw, p) = (s.h * s.w, plane(s));
    let k = |o: usize, c: usize| -> (&[C32], bool) {
        let idx = if adjoint {
            c * s.cout + o
        } else {
            o * s.cin + c
        };
        (&kernel[idx * p..(idx + 1) * p], adjoint)
    };
    let mut y = Vec::with_capacity(s.n * s.cout * hw);
    for n in 0..s.n {
        let xs = spectra(s, &x[n * s.cin * hw..(n + 1) * s.cin * hw], s.cin);
        let u: Vec<Vec<C32>> = (0..s.cout)
            .map(|o| {
                let mut acc = vec![ZERO; p];
                acc.par_chunks_mut(CHUNK).enumerate().for_each(|(t, acc)| {
                    let r = t * CHUNK..t * CHUNK + acc.len();
                    for (c, xc) in xs.iter().enumerate() {
                        let (kc, conj) = k(o, c);
                        let (xc, kc) = (&xc[r.clone()], &kc[r.clone()]);
                        if conj {
                            for ((a, &xv), kv) in acc.iter_mut().zip(xc).zip(kc) {
                                *a += kv.conj() * xv;
                            }
                        } else {
                            for ((a, &xv), &kv) in acc.iter_mut().zip(xc).zip(kc) {
                                *a += xv * kv;
                            }
                        }
                    }
                });
                acc
            })
            .collect();
        images(s, &u, &mut y);
    }
    y
}

/// `dK[o, c] = sum_n conj(F pad x[n, c]) F pad g[n, o] / (ph pw)`: the gradient of the forward
/// [`spectral_conv`] with respect to its (cout, cin, ph, pw) kernel, for upstream `g`.
pub fn spectral_kernel_grad(s: &SpectralShape, x: &[f32], g: &[f32]) -> Vec<C32> {
    let (hw, p) = (s.h * s.w, plane(s));
    let inv = 1.0 / p as f32;
    let mut dk = vec![ZERO; s.cout * s.cin * p];
    for n in 0..s.n {
        let xs = spectra(s, &x[n * s.cin * hw..(n + 1) * s.cin * hw], s.cin);
        let gs = spectra(s, &g[n * s.cout * hw..(n + 1) * s.cout * hw], s.cout);
        for (o, go) in gs.iter().enumerate() {
            for (c, xc) in xs.iter().enumerate() {
                let d = &mut dk[(o * s.cin + c) * p..(o * s.cin + c + 1) * p];
                d.par_chunks_mut(CHUNK)
                    .zip(xc.par_chunks(CHUNK))
                    .zip(go.par_chunks(CHUNK))
                    .for_each(|((d, xc), go)| {
                        for ((dv, xv), gv) in d.iter_mut().zip(xc).zip(go) {
                            *dv += xv.conj() * gv * inv;
                        }
                    });
            }
        }
    }
    dk
}
