//! Spectral convolution of zero-padded real planes on the device (`kernels/spectral.wgsl` with
//! the FFTs of `fft.rs`): `y[n, o] = crop(Re F^-1 sum_c T[o, c] F pad(x[n, c]))` and the kernel's
//! gradient; see `backend/cpu/spectral.rs` for the conventions.

use bytemuck::{Pod, Zeroable};

use super::fft::{fft2_scaled, Direction};
use super::{check_len, grid_1d, u32_of, Arg, GpuBuffer, GpuContext, Kernel};
pub use crate::backend::SpectralShape;
use crate::error::Result;

const K: Kernel = super::gpu_kernel!("spectral");

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct Params {
    n: u32,
    cin: u32,
    cout: u32,
    planes: u32,
    h: u32,
    w: u32,
    ph: u32,
    pw: u32,
    adjoint: u32,
    scale: f32,
    _pad: [u32; 2],
}

fn params(op: &'static str, s: &SpectralShape) -> Result<Params> {
    Ok(Params {
        n: u32_of(op, s.n)?,
        cin: u32_of(op, s.cin)?,
        cout: u32_of(op, s.cout)?,
        h: u32_of(op, s.h)?,
        w: u32_of(op, s.w)?,
        ph: u32_of(op, s.ph)?,
        pw: u32_of(op, s.pw)?,
        scale: 1.0,
        ..Default::default()
    })
}

fn launch(
    ctx: &GpuContext,
    entry: &'static str,
    p: &Params,
    a: &GpuBuffer,
    b: &GpuBuffer,
    out_words: usize,
    threads: usize,
) -> Result<GpuBuffer> {
    let out = ctx.alloc(out_words)?;
    ctx.launch(
        &K,
        entry,
        p,
        &[Arg::Read(a), Arg::Read(b), Arg::Write(&out)],
        grid_1d(threads),
    )?;
    Ok(out)
}

/// `F pad(x)` of `planes` real (h, w) planes: complex (planes, ph, pw).
fn spectra(ctx: &GpuContext, s: &SpectralShape, x: &GpuBuffer, planes: usize) -> Result<GpuBuffer> {
    let mut p = params("spectral embed", s)?;
    p.planes = u32_of("spectral embed", planes)?;
    let n = planes * s.ph * s.pw;
    let z = launch(ctx, "embed", &p, x, x, 2 * n, n)?;
    fft2_scaled(ctx, &z, planes, s.ph, s.pw, Direction::Forward, 1.0)
}

/// `y[n, o] = crop(Re F^-1 sum_c T[o, c] F pad(x[n, c]))`; `kernel` (cout, cin, ph, pw) complex,
/// or (cin, cout, ph, pw) with `adjoint` (`T[o, c] = conj(K[c, o])`).
pub fn spectral_conv(
    ctx: &GpuContext,
    s: &SpectralShape,
    x: &GpuBuffer,
    kernel: &GpuBuffer,
    adjoint: bool,
) -> Result<GpuBuffer> {
    const OP: &str = "spectral_conv";
    let plane = s.ph * s.pw;
    check_len(OP, x, s.n * s.cin * s.h * s.w, &[s.n, s.cin, s.h, s.w])?;
    check_len(
        OP,
        kernel,
        2 * s.cout * s.cin * plane,
        &[s.cout, s.cin, s.ph, s.pw, 2],
    )?;
    let xs = spectra(ctx, s, x, s.n * s.cin)?;
    let mut p = params(OP, s)?;
    p.adjoint = adjoint as u32;
    let n_u = s.n * s.cout * plane;
    let u = launch(ctx, "mix", &p, &xs, kernel, 2 * n_u, n_u)?;
    drop(xs);
    let img = fft2_scaled(
        ctx,
        &u,
        s.n * s.cout,
        s.ph,
        s.pw,
        Direction::Inverse,
        1.0 / plane as f32,
    )?;
    drop(u);
    p.planes = u32_of(OP, s.n * s.cout)?;
    let n_y = s.n * s.cout * s.h * s.w;
    launch(ctx, "crop_re", &p, &img, &img, n_y, n_y)
}

/// `dK[o, c] = sum_n conj(F pad x[n, c]) F pad g[n, o] / (ph pw)`: (cout, cin, ph, pw) complex.
pub fn spectral_kernel_grad(
    ctx: &GpuContext,
    s: &SpectralShape,
    x: &GpuBuffer,
    g: &GpuBuffer,
) -> Result<GpuBuffer> {
    const OP: &str = "spectral_kernel_grad";
    check_len(OP, x, s.n * s.cin * s.h * s.w, &[s.n, s.cin, s.h, s.w])?;
    check_len(OP, g, s.n * s.cout * s.h * s.w, &[s.n, s.cout, s.h, s.w])?;
    let xs = spectra(ctx, s, x, s.n * s.cin)?;
    let gs = spectra(ctx, s, g, s.n * s.cout)?;
    let mut p = params(OP, s)?;
    let plane = s.ph * s.pw;
    p.scale = 1.0 / plane as f32;
    let n = s.cout * s.cin * plane;
    launch(ctx, "kgrad", &p, &xs, &gs, 2 * n, n)
}
