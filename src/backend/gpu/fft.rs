//! 2-D complex FFT over the last two axes of a (batch, H, W) tensor (`kernels/fft.wgsl`),
//! NumPy conventions: forward `e^{-2 pi i nk/N}`, inverse scaled by `1/(H W)`. Power-of-two
//! rows up to 2048 use one workgroup-memory radix-2 kernel; longer power-of-two rows use global
//! Stockham passes; other lengths use Bluestein's chirp-z through power-of-two FFTs. Columns are
//! transformed as rows between two tiled transposes.
//!
//! VJPs (conjugate convention, `dx = J^H dy`): `fft2` -> `fft2_scaled(gy, inverse, 1)`;
//! `ifft2` -> `fft2_scaled(gy, forward, 1/(H W))`.

use bytemuck::{Pod, Zeroable};

use super::{check_len, grid_1d, grid_groups, u32_of, Arg, GpuBuffer, GpuContext, Kernel};
use crate::error::{Error, Result};

const K: Kernel = super::gpu_kernel!("fft");
/// Longest row of the workgroup-memory kernel (`MAX_SHARED` in WGSL).
const MAX_SHARED: usize = 2048;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct Params {
    rows: u32,
    n: u32,
    log2n: u32,
    half: u32,
    m: u32,
    batch: u32,
    sign: f32,
    scale: f32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// `e^{-i ...}`
    Forward,
    /// `e^{+i ...}` (unscaled here; `fft2`'s inverse applies `1/(H W)`).
    Inverse,
}

impl Direction {
    fn sign(self) -> f32 {
        match self {
            Direction::Forward => -1.0,
            Direction::Inverse => 1.0,
        }
    }
}

/// `fft2` of `batch` planes of `(h, w)` complex values (`len = 2 batch h w`).
pub fn fft2(
    ctx: &GpuContext,
    x: &GpuBuffer,
    batch: usize,
    h: usize,
    w: usize,
) -> Result<GpuBuffer> {
    fft2_scaled(ctx, x, batch, h, w, Direction::Forward, 1.0)
}

/// `ifft2`: the inverse transform scaled by `1/(h w)`.
pub fn ifft2(
    ctx: &GpuContext,
    x: &GpuBuffer,
    batch: usize,
    h: usize,
    w: usize,
) -> Result<GpuBuffer> {
    fft2_scaled(
        ctx,
        x,
        batch,
        h,
        w,
        Direction::Inverse,
        1.0 / (h * w).max(1) as f32,
    )
}

/// `scale * sum_{y,x} z[y,x] e^{sign 2 pi i (ky y / h + kx x / w)}` per plane.
pub fn fft2_scaled(
    ctx: &GpuContext,
    x: &GpuBuffer,
    batch: usize,
    h: usize,
    w: usize,
    dir: Direction,
    scale: f32,
) -> Result<GpuBuffer> {
    const OP: &str = "fft2";
    check_len(OP, x, 2 * batch * h * w, &[batch, h, w, 2])?;
    if batch * h * w == 0 {
        return Err(Error::shape(OP, &[batch, h, w], "empty"));
    }
    let a = fft_rows(ctx, x, batch * h, w, dir, 1.0)?;
    let t = transpose(ctx, &a, batch, h, w, 1.0)?;
    drop(a);
    let b = fft_rows(ctx, &t, batch * w, h, dir, 1.0)?;
    drop(t);
    let y = transpose(ctx, &b, batch, w, h, scale)?;
    drop(b);
    Ok(y)
}

/// `(batch, r, c)` complex -> `(batch, c, r)`, times `scale`.
pub fn transpose(
    ctx: &GpuContext,
    x: &GpuBuffer,
    batch: usize,
    r: usize,
    c: usize,
    scale: f32,
) -> Result<GpuBuffer> {
    const OP: &str = "fft_transpose";
    check_len(OP, x, 2 * batch * r * c, &[batch, r, c, 2])?;
    let y = ctx.alloc(x.len)?;
    let p = Params {
        rows: u32_of(OP, r)?,
        m: u32_of(OP, c)?,
        batch: u32_of(OP, batch)?,
        scale,
        ..Default::default()
    };
    let groups = [
        u32_of(OP, c.div_ceil(16))?,
        u32_of(OP, r.div_ceil(16))?,
        u32_of(OP, batch)?,
    ];
    ctx.launch(
        &K,
        "transpose",
        &p,
        &[Arg::Read(x), Arg::Write(&y), Arg::Read(x)],
        groups,
    )?;
    Ok(y)
}

/// 1-D FFT of each of `rows` rows of `n` complex values, times `scale`.
pub fn fft_rows(
    ctx: &GpuContext,
    x: &GpuBuffer,
    rows: usize,
    n: usize,
    dir: Direction,
    scale: f32,
) -> Result<GpuBuffer> {
    const OP: &str = "fft_rows";
    check_len(OP, x, 2 * rows * n, &[rows, n, 2])?;
    if n.is_power_of_two() && n <= MAX_SHARED {
        let y = ctx.alloc(x.len)?;
        let p = Params {
            rows: u32_of(OP, rows)?,
            n: n as u32,
            log2n: n.trailing_zeros(),
            sign: dir.sign(),
            scale,
            ..Default::default()
        };
        ctx.launch(
            &K,
            "rows_shared",
            &p,
            &[Arg::Read(x), Arg::Write(&y), Arg::Read(x)],
            grid_groups(rows),
        )?;
        Ok(y)
    } else if n.is_power_of_two() {
        stockham(ctx, x, rows, n, dir, scale)
    } else {
        bluestein(ctx, x, rows, n, dir, scale)
    }
}

fn stockham(
    ctx: &GpuContext,
    x: &GpuBuffer,
    rows: usize,
    n: usize,
    dir: Direction,
    scale: f32,
) -> Result<GpuBuffer> {
    const OP: &str = "fft_rows";
    let stages = n.trailing_zeros();
    let mut bufs = [ctx.alloc(x.len)?, ctx.alloc(x.len)?];
    for s in 0..stages {
        let p = Params {
            rows: u32_of(OP, rows)?,
            n: u32_of(OP, n)?,
            half: 1 << s,
            sign: dir.sign(),
            scale: if s + 1 == stages { scale } else { 1.0 },
            ..Default::default()
        };
        let (lo, hi) = bufs.split_at_mut(1);
        let (src, dst) = if s % 2 == 0 {
            (&hi[0], &lo[0])
        } else {
            (&lo[0], &hi[0])
        };
        let src = if s == 0 { x } else { src };
        ctx.launch(
            &K,
            "stockham_pass",
            &p,
            &[Arg::Read(src), Arg::Write(dst), Arg::Read(src)],
            grid_1d(rows * n / 2),
        )?;
    }
    // The last stage (index stages - 1) wrote bufs[0] when it was even.
    let [a, b] = bufs;
    let (out, spare) = if (stages - 1).is_multiple_of(2) {
        (a, b)
    } else {
        (b, a)
    };
    drop(spare);
    Ok(out)
}

/// Chirp `w_k = e^{sign i pi k^2 / n}` (k^2 mod 2n in integers for accuracy), interleaved.
fn chirp(n: usize, sign: f64) -> Vec<f64> {
    (0..n)
        .flat_map(|k| {
            let q = (k as u128 * k as u128 % (2 * n as u128)) as f64;
            let a = sign * std::f64::consts::PI * q / n as f64;
            [a.cos(), a.sin()]
        })
        .collect()
}

/// In-place iterative radix-2 FFT in f64 (for the Bluestein kernel table), sign -1.
fn fft_f64(z: &mut [(f64, f64)]) {
    let n = z.len();
    let bits = n.trailing_zeros();
    for i in 0..n {
        let j = if bits == 0 {
            0
        } else {
            i.reverse_bits() >> (usize::BITS - bits)
        };
        if j > i {
            z.swap(i, j);
        }
    }
    let mut len = 2;
    while len <= n {
        for start in (0..n).step_by(len) {
            for k in 0..len / 2 {
                let a = -2.0 * std::f64::consts::PI * k as f64 / len as f64;
                let (c, s) = (a.cos(), a.sin());
                let (ur, ui) = z[start + k];
                let (vr, vi) = z[start + k + len / 2];
                let (tr, ti) = (vr * c - vi * s, vr * s + vi * c);
                z[start + k] = (ur + tr, ui + ti);
                z[start + k + len / 2] = (ur - tr, ui - ti);
            }
        }
        len *= 2;
    }
}

fn bluestein(
    ctx: &GpuContext,
    x: &GpuBuffer,
    rows: usize,
    n: usize,
    dir: Direction,
    scale: f32,
) -> Result<GpuBuffer> {
    const OP: &str = "fft_rows";
    let m = (2 * n - 1).next_power_of_two();
    let sign = dir.sign() as f64;
    let w = ctx.cached_table(&format!("fft.chirp.{n}.{sign}"), || {
        chirp(n, sign).into_iter().map(|v| v as f32).collect()
    })?;
    let bhat = ctx.cached_table(&format!("fft.bluestein.{n}.{sign}"), || {
        let c = chirp(n, sign);
        let mut b = vec![(0.0, 0.0); m];
        for k in 0..n {
            let v = (c[2 * k], -c[2 * k + 1]); // conj(w_k)
            b[k] = v;
            if k > 0 {
                b[m - k] = v;
            }
        }
        fft_f64(&mut b);
        b.into_iter()
            .flat_map(|(r, i)| [r as f32, i as f32])
            .collect()
    })?;
    let p = Params {
        rows: u32_of(OP, rows)?,
        n: u32_of(OP, n)?,
        m: u32_of(OP, m)?,
        scale,
        ..Default::default()
    };
    let a = ctx.alloc(2 * rows * m)?;
    ctx.launch(
        &K,
        "bluestein_pre",
        &p,
        &[Arg::Read(x), Arg::Write(&a), Arg::Read(&w)],
        grid_1d(rows * m),
    )?;
    let fa = fft_rows(ctx, &a, rows, m, Direction::Forward, 1.0)?;
    let prod = a; // reuse: same size
    ctx.launch(
        &K,
        "bluestein_mul",
        &p,
        &[Arg::Read(&fa), Arg::Write(&prod), Arg::Read(&bhat)],
        grid_1d(rows * m),
    )?;
    drop(fa);
    let conv = fft_rows(ctx, &prod, rows, m, Direction::Inverse, 1.0 / m as f32)?;
    drop(prod);
    let y = ctx.alloc(x.len)?;
    ctx.launch(
        &K,
        "bluestein_post",
        &p,
        &[Arg::Read(&conv), Arg::Write(&y), Arg::Read(&w)],
        grid_1d(rows * n),
    )?;
    drop(conv);
    Ok(y)
}
