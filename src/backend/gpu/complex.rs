//! Complex elementwise ops (`kernels/complex.wgsl`) on interleaved (re, im) buffers; a complex
//! buffer of `n` elements has `len = 2n` words.

use bytemuck::{Pod, Zeroable};

use super::{check_len, grid_1d, u32_of, Arg, GpuBuffer, GpuContext, Kernel};
use crate::error::{Error, Result};

const K: Kernel = super::gpu_kernel!("complex");

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n: u32,
    b_mod: u32,
    _pad: [u32; 2],
}

fn elems(op: &'static str, z: &GpuBuffer) -> Result<usize> {
    if !z.len.is_multiple_of(2) {
        return Err(Error::DType {
            op,
            expected: "complex (even length)",
            got: "odd length",
        });
    }
    Ok(z.len / 2)
}

fn run(
    ctx: &GpuContext,
    entry: &'static str,
    n: usize,
    b_mod: usize,
    out_len: usize,
    a: &GpuBuffer,
    b: &GpuBuffer,
) -> Result<GpuBuffer> {
    let out = ctx.alloc(out_len)?;
    let p = Params {
        n: u32_of(entry, n)?,
        b_mod: u32_of(entry, b_mod.max(1))?,
        _pad: [0; 2],
    };
    ctx.launch(
        &K,
        entry,
        &p,
        &[Arg::Read(a), Arg::Read(b), Arg::Write(&out)],
        grid_1d(n),
    )?;
    Ok(out)
}

fn product(
    ctx: &GpuContext,
    entry: &'static str,
    a: &GpuBuffer,
    b: &GpuBuffer,
) -> Result<GpuBuffer> {
    let n = elems(entry, a)?;
    let nb = elems(entry, b)?;
    if nb == 0 || n % nb != 0 {
        return Err(Error::arg(
            entry,
            format!("{n} complex elements do not repeat {nb}"),
        ));
    }
    run(ctx, entry, n, nb, a.len, a, b)
}

/// `y = a b`; `b` may repeat with period `b.len` (e.g. an (H, W) transfer function over a
/// batch). VJP: `da = gy conj(b)`, `db = gy conj(a)` (both via [`cmul_conj`]).
pub fn cmul(ctx: &GpuContext, a: &GpuBuffer, b: &GpuBuffer) -> Result<GpuBuffer> {
    product(ctx, "cmul", a, b)
}

/// `y = a conj(b)`, broadcast like [`cmul`].
pub fn cmul_conj(ctx: &GpuContext, a: &GpuBuffer, b: &GpuBuffer) -> Result<GpuBuffer> {
    product(ctx, "cmul_conj", a, b)
}

/// `y = conj(z)`. VJP: `dz = conj(gy)`.
pub fn conj(ctx: &GpuContext, z: &GpuBuffer) -> Result<GpuBuffer> {
    let n = elems("conj", z)?;
    run(ctx, "conj", n, 1, z.len, z, z)
}

/// `z = re + i im` from two real buffers. VJP: `dre = re(gz)`, `dim = im(gz)`.
pub fn from_re_im(ctx: &GpuContext, re: &GpuBuffer, im: &GpuBuffer) -> Result<GpuBuffer> {
    check_len("complex", im, re.len, &[re.len])?;
    run(ctx, "from_re_im", re.len, 1, 2 * re.len, re, im)
}

/// `re(z)`. VJP: `dz = gy + 0i` (= `from_re_im(gy, 0)`).
pub fn re(ctx: &GpuContext, z: &GpuBuffer) -> Result<GpuBuffer> {
    let n = elems("re", z)?;
    run(ctx, "re", n, 1, n, z, z)
}

/// `im(z)`. VJP: `dz = 0 + i gy`.
pub fn im(ctx: &GpuContext, z: &GpuBuffer) -> Result<GpuBuffer> {
    let n = elems("im", z)?;
    run(ctx, "im", n, 1, n, z, z)
}

/// `|z|^2` (real).
pub fn abs2(ctx: &GpuContext, z: &GpuBuffer) -> Result<GpuBuffer> {
    let n = elems("abs2", z)?;
    run(ctx, "abs2", n, 1, n, z, z)
}

/// VJP of `|z|^2`: `dz = 2 z gy` (gy real).
pub fn abs2_backward(ctx: &GpuContext, z: &GpuBuffer, gy: &GpuBuffer) -> Result<GpuBuffer> {
    let n = elems("abs2_backward", z)?;
    check_len("abs2_backward", gy, n, &[n])?;
    run(ctx, "abs2_backward", n, 1, z.len, z, gy)
}

/// `y = e^{i phi}` of a real buffer (complex result). VJP: `dphi = Im(gy conj(y))`, i.e.
/// [`expi_backward`].
pub fn expi(ctx: &GpuContext, phi: &GpuBuffer) -> Result<GpuBuffer> {
    run(ctx, "expi", phi.len, 1, 2 * phi.len, phi, phi)
}

/// VJP of [`expi`] from its output `y` and upstream `gy` (both complex): `Im(gy conj(y))`.
pub fn expi_backward(ctx: &GpuContext, y: &GpuBuffer, gy: &GpuBuffer) -> Result<GpuBuffer> {
    check_len("expi_backward", gy, y.len, &[y.len / 2, 2])?;
    let t = cmul_conj(ctx, gy, y)?;
    let out = im(ctx, &t)?;
    drop(t);
    Ok(out)
}
