//! CPU 2-D convolution kernels (stride 1, "same" zero padding, NCHW f32) on top of `gemm`.
//!
//! k > 1: the input is copied once into a zero-padded "row-interleaved" layout (see `RowPad`)
//! in which, for one output row and one kernel column `kx`, the im2col matrix is an ordinary
//! strided matrix that `gemm` reads in place.  Each output row then costs `k` gemm calls with
//! reduction length `k*cin`; no im2col buffer is ever built.  k = 1 is a plain gemm on x.
//! Work is split over rayon by output rows (or pixel tiles); every gemm call is single-threaded.
//! Backward-input is the forward conv of gy with the flipped, in/out-transposed weight.

use super::SyncPtr;
use crate::backend::ConvShape;
use gemm::{gemm, Parallelism};
use rayon::prelude::*;

/// Pixels per task for 1x1 convolutions.
const PIX_TILE: usize = 4096;

/// Single-threaded `dst (m x n) = [dst +] lhs (m x k) * rhs (k x n)`; strides are (row, column).
#[allow(clippy::too_many_arguments)]
unsafe fn matmul(
    shape: (usize, usize, usize),
    dst: *mut f32,
    dst_s: (usize, usize),
    accumulate: bool,
    lhs: *const f32,
    lhs_s: (usize, usize),
    rhs: *const f32,
    rhs_s: (usize, usize),
) {
    matmul_par(
        Parallelism::None,
        shape,
        dst,
        dst_s,
        accumulate,
        lhs,
        lhs_s,
        rhs,
        rhs_s,
    )
}

/// [`matmul`] with gemm's own parallelism `par` (for calls too few to share out as tasks).
#[allow(clippy::too_many_arguments)]
unsafe fn matmul_par(
    par: Parallelism,
    (m, n, k): (usize, usize, usize),
    dst: *mut f32,
    (dst_rs, dst_cs): (usize, usize),
    accumulate: bool,
    lhs: *const f32,
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: *const f32,
    (rhs_rs, rhs_cs): (usize, usize),
) {
    gemm(
        m,
        n,
        k,
        dst,
        dst_cs as isize,
        dst_rs as isize,
        accumulate,
        lhs,
        lhs_cs as isize,
        lhs_rs as isize,
        rhs,
        rhs_cs as isize,
        rhs_rs as isize,
        1.0,
        1.0,
        false,
        false,
        false,
        par,
    );
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
    debug_assert!(bias.is_none_or(|b| b.len() == s.cout));
    debug_assert!(s.k % 2 == 1);
    forward_impl(s, x, weight, bias, None, y);
}

/// `y = leaky_relu(conv(x, weight) + bias, slope)`, the activation applied while the output tile
/// is written (no extra pass). `y` is overwritten.
pub fn conv2d_forward_leaky(
    s: &ConvShape,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    slope: f32,
    y: &mut [f32],
) {
    debug_assert_eq!(y.len(), s.n * s.cout * s.hw());
    forward_impl(s, x, weight, bias, Some(slope), y);
}

#[inline(always)]
fn act(v: f32, slope: Option<f32>) -> f32 {
    match slope {
        Some(a) if v <= 0.0 => a * v,
        _ => v,
    }
}

fn forward_impl(
    s: &ConvShape,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    slope: Option<f32>,
    y: &mut [f32],
) {
    if y.is_empty() {
        return;
    }
    if s.cin == 0 {
        for (yc, co) in y.chunks_exact_mut(s.hw()).zip((0..s.cout).cycle()) {
            yc.fill(act(bias.map_or(0.0, |b| b[co]), slope));
        }
    } else if s.k == 1 {
        if s.cin.min(s.cout) <= FEW_CHANNELS {
            forward_1x1_direct(s, x, weight, bias, y);
        } else {
            forward_1x1(s, x, weight, bias, y);
        }
        if slope.is_some() {
            y.par_iter_mut().for_each(|v| *v = act(*v, slope));
        }
    } else if s.cin == 1 && s.k <= 3 {
        forward_one_channel(s, x, weight, bias, slope, y);
    } else if use_col_blocks(s) {
        forward_blocks(s, x, weight, bias, slope, y);
    } else {
        forward_rows(s, x, weight, bias, slope, y);
    }
}

/// Up to this many weights per output channel (`cin k k`: the 1-channel input layers), or for
/// images narrower than [`NARROW`], output rows go in blocks through a gathered im2col matrix
/// and one gemm call per block ([`ColBlocks`]), instead of `k` calls per row with a reduction
/// of only `k cin` or a pixel dimension of only `w`.
const SMALL_KDIM: usize = 64;
/// Images narrower than this take the im2col-block path.
const NARROW: usize = 128;
/// Pixels per im2col block (whole rows; at least one row).
const BLOCK_PIXELS: usize = 256;

fn use_col_blocks(s: &ConvShape) -> bool {
    s.kdim() <= SMALL_KDIM || s.w < NARROW
}

/// Blocks of whole output rows and their im2col matrices.
struct ColBlocks {
    /// Rows per block.
    rows: usize,
    /// Blocks per image.
    per_image: usize,
    /// Fewer blocks than twice the threads (small images: one 16x16 block): gemm splits each
    /// call itself.
    par: Parallelism,
}

impl ColBlocks {
    fn new(s: &ConvShape) -> ColBlocks {
        let rows = (BLOCK_PIXELS / s.w.max(1)).clamp(1, s.h.max(1));
        let per_image = s.h.div_ceil(rows);
        let threads = rayon::current_num_threads();
        ColBlocks {
            rows,
            per_image,
            par: if s.n * per_image < 2 * threads {
                Parallelism::Rayon(threads)
            } else {
                Parallelism::None
            },
        }
    }

    /// Scratch length of one block's matrix.
    fn col_len(&self, s: &ConvShape) -> usize {
        s.kdim() * self.rows * s.w
    }

    /// Block `t`: (image, first row, rows).
    fn block(&self, s: &ConvShape, t: usize) -> (usize, usize, usize) {
        let (img, i0) = (t / self.per_image, (t % self.per_image) * self.rows);
        (img, i0, self.rows.min(s.h - i0))
    }

    /// Writes the block's im2col matrix, `col[q][r w + j] = x_pad[ci, i0 + r + ky, j + kx]`
    /// with `q = (ci k + ky) k + kx` (the weight's own order), `m = nr w` pixels per q; returns
    /// `m`.
    fn gather(
        &self,
        s: &ConvShape,
        xp: &RowPad,
        (img, i0, nr): (usize, usize, usize),
        col: &mut [f32],
    ) -> usize {
        let (k, cin, w, wx) = (s.k, s.cin, s.w, xp.wx);
        let m = nr * w;
        for r in 0..nr {
            let rows = xp.rows(s, img, i0 + r);
            for ci in 0..cin {
                for ky in 0..k {
                    let src = &rows[(ky * cin + ci) * wx..];
                    for kx in 0..k {
                        let q = (ci * k + ky) * k + kx;
                        col[q * m + r * w..q * m + (r + 1) * w].copy_from_slice(&src[kx..kx + w]);
                    }
                }
            }
        }
        m
    }
}

/// Forward through im2col blocks: per block, gather the (m x cin k k) matrix, then one gemm
/// against the weight, whose (cout, cin k k) layout is already the rhs; the block's rows of
/// every output channel are contiguous in y.
fn forward_blocks(
    s: &ConvShape,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    slope: Option<f32>,
    y: &mut [f32],
) {
    let (w, cout, hw, kd) = (s.w, s.cout, s.hw(), s.kdim());
    let xp = RowPad::new(s, x);
    let cb = ColBlocks::new(s);
    let yp = SyncPtr(y.as_mut_ptr());
    (0..s.n * cb.per_image).into_par_iter().for_each_init(
        || (vec![0f32; cb.col_len(s)], vec![0f32; cb.rows * w * cout]),
        |(col, tmp), t| {
            let blk = cb.block(s, t);
            let m = cb.gather(s, &xp, blk, col);
            // SAFETY: col is m x kd column-major, weight^T is kd x cout (stride kd per co),
            // tmp is m x cout column-major; all inside their buffers.
            unsafe {
                matmul_par(
                    cb.par,
                    (m, cout, kd),
                    tmp.as_mut_ptr(),
                    (1, m),
                    false,
                    col.as_ptr(),
                    (1, m),
                    weight.as_ptr(),
                    (1, kd),
                );
            }
            let (img, i0, _) = blk;
            for co in 0..cout {
                let b = bias.map_or(0.0, |b| b[co]);
                // SAFETY: rows i0.. of channel co of image img are written by this task only.
                let dst = unsafe {
                    std::slice::from_raw_parts_mut(yp.get().add((img * cout + co) * hw + i0 * w), m)
                };
                copy_out(dst, &tmp[co * m..], b, slope);
            }
        },
    );
}

/// Forward with one input channel and k <= 3 (SIPRAD's input layer), directly: per output row
/// and channel, `k^2` shifted rows of the padded input scaled and added (gemm with a reduction
/// of 9 is mostly overhead; at k = 5 the im2col blocks measured faster).
fn forward_one_channel(
    s: &ConvShape,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    slope: Option<f32>,
    y: &mut [f32],
) {
    let (h, w, k, cout, hw) = (s.h, s.w, s.k, s.cout, s.hw());
    let xp = RowPad::new(s, x);
    let wx = xp.wx;
    let yp = SyncPtr(y.as_mut_ptr());
    (0..s.n * h).into_par_iter().for_each_init(
        || vec![0f32; w],
        |acc, t| {
            let (img, i) = (t / h, t % h);
            let rows = xp.rows(s, img, i);
            for co in 0..cout {
                acc.fill(0.0);
                for ky in 0..k {
                    for kx in 0..k {
                        let wv = weight[(co * k + ky) * k + kx];
                        let src = &rows[ky * wx + kx..][..w];
                        super::wide(
                            #[inline(always)]
                            || {
                                for (a, &v) in acc.iter_mut().zip(src) {
                                    *a += wv * v;
                                }
                            },
                        );
                    }
                }
                // SAFETY: row i of channel co of image img is written by this task only.
                let dst = unsafe {
                    std::slice::from_raw_parts_mut(yp.get().add((img * cout + co) * hw + i * w), w)
                };
                copy_out(dst, acc, bias.map_or(0.0, |b| b[co]), slope);
            }
        },
    );
}

/// Backward-weight with one input channel, directly: `gw[co, ky, kx]` is the sum over rows of
/// the dot product of gy's row with the shifted padded input row (8 f32 lanes per row, rows
/// added in f64), one task per output channel.
fn backward_weight_one_channel(s: &ConvShape, x: &[f32], gy: &[f32], gw: &mut [f32]) {
    let (h, w, k, cout, hw) = (s.h, s.w, s.k, s.cout, s.hw());
    let xp = RowPad::new(s, x);
    let wx = xp.wx;
    gw.par_chunks_mut(k * k).enumerate().for_each(|(co, g)| {
        let mut sums = vec![0f64; k * k];
        for img in 0..s.n {
            for i in 0..h {
                let rows = xp.rows(s, img, i);
                let gr = &gy[(img * cout + co) * hw + i * w..][..w];
                for (tap, sum) in sums.iter_mut().enumerate() {
                    let src = &rows[(tap / k) * wx + tap % k..][..w];
                    *sum += super::wide(
                        #[inline(always)]
                        || dot(gr, src),
                    ) as f64;
                }
            }
        }
        for (o, v) in g.iter_mut().zip(&sums) {
            *o = *v as f32;
        }
    });
}

/// `sum a[i] b[i]` over 8 f32 lanes (a fixed order), so that it vectorises.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut l = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for j in 0..8 {
            l[j] += x[j] * y[j];
        }
    }
    l.iter().sum::<f32>() + tail
}

/// `dst = act(src + b)`: two loops, not a per-element match, so the copy-out vectorises.
#[inline(always)]
fn copy_out(dst: &mut [f32], src: &[f32], b: f32, slope: Option<f32>) {
    match slope {
        None => {
            for (d, v) in dst.iter_mut().zip(src) {
                *d = v + b;
            }
        }
        Some(a) => {
            for (d, v) in dst.iter_mut().zip(src) {
                let z = v + b;
                *d = if z > 0.0 { z } else { a * z };
            }
        }
    }
}

/// At most this many input or output channels, a 1x1 convolution (the network's head and its
/// dx) is a direct channel mix: gemm with a dimension of 2 runs at a few GFLOP/s.
const FEW_CHANNELS: usize = 4;

/// 1x1 forward as `y[co] = b[co] + sum_ci w[co, ci] x[ci]` over tiles of pixels (in cache),
/// the pixel loops vectorised.
fn forward_1x1_direct(
    s: &ConvShape,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
) {
    let (hw, cin, cout) = (s.hw(), s.cin, s.cout);
    const TILE: usize = 2048;
    let tpi = hw.div_ceil(TILE);
    let yp = SyncPtr(y.as_mut_ptr());
    (0..s.n * tpi).into_par_iter().for_each(|t| {
        let (img, p0) = (t / tpi, (t % tpi) * TILE);
        let np = TILE.min(hw - p0);
        for co in 0..cout {
            // SAFETY: pixels p0..p0+np of channel co of image img: written by this task only.
            let yr = unsafe {
                std::slice::from_raw_parts_mut(yp.get().add((img * cout + co) * hw + p0), np)
            };
            yr.fill(bias.map_or(0.0, |b| b[co]));
            for ci in 0..cin {
                let wv = weight[co * cin + ci];
                let xr = &x[(img * cin + ci) * hw + p0..][..np];
                super::wide(
                    #[inline(always)]
                    || {
                        for (o, &v) in yr.iter_mut().zip(xr) {
                            *o += wv * v;
                        }
                    },
                );
            }
        }
    });
}

/// 1x1 forward: per tile of pixels, y^T (pix x cout) = x^T (pix x cin) * w^T (cin x cout).
fn forward_1x1(s: &ConvShape, x: &[f32], weight: &[f32], bias: Option<&[f32]>, y: &mut [f32]) {
    let (hw, cin, cout) = (s.hw(), s.cin, s.cout);
    let tpi = hw.div_ceil(PIX_TILE);
    let yp = SyncPtr(y.as_mut_ptr());
    (0..s.n * tpi).into_par_iter().for_each(|t| {
        let (img, p0) = (t / tpi, (t % tpi) * PIX_TILE);
        let np = PIX_TILE.min(hw - p0);
        let xt = &x[img * cin * hw + p0..];
        // SAFETY: dst = pixels p0..p0+np of every channel of image img (disjoint per task);
        // lhs/rhs reads are inside x / weight.
        unsafe {
            let dst = yp.get().add(img * cout * hw + p0);
            matmul(
                (np, cout, cin),
                dst,
                (1, hw),
                false,
                xt.as_ptr(),
                (1, hw),
                weight.as_ptr(),
                (1, cin),
            );
            for co in 0..cout {
                let b = bias.map_or(0.0, |b| b[co]);
                let yc = std::slice::from_raw_parts_mut(dst.add(co * hw), np);
                yc.iter_mut().for_each(|v| *v += b);
            }
        }
    });
}

/// Input padded into a "row-interleaved" layout: per image, `h + 2p` padded rows, each holding
/// `cin` channel rows of `wx = round8(w) + 2p` floats (x at columns `p..p+w`, zeros elsewhere).
///
/// For output row `i` and a fixed `kx`, the im2col matrix (pixel j, q = ky*cin + ci) is
/// `buf[(i*cin + q)*wx + kx + j]`: unit stride along pixels and constant stride `wx` along q,
/// so gemm reads it in place.  The rows needed by one output row (`k*cin*wx` floats, ~80 KiB
/// for 16 channels at w = 256) stay in L2 and are shared with the next rows.
struct RowPad {
    buf: Vec<f32>,
    /// Pixels computed per output row: w rounded up to 8 (keeps gemm from repacking the lhs).
    wq: usize,
    /// Stride of one channel row.
    wx: usize,
    /// Floats per image.
    plane: usize,
}

impl RowPad {
    fn new(s: &ConvShape, x: &[f32]) -> RowPad {
        let (h, w, p, cin) = (s.h, s.w, s.k / 2, s.cin);
        let wq = w.div_ceil(8) * 8;
        let wx = wq + 2 * p;
        let plane = (h + 2 * p) * cin * wx;
        let mut buf = vec![0f32; s.n * plane];
        buf.par_chunks_mut(cin * wx)
            .enumerate()
            .for_each(|(t, dst)| {
                let (img, r) = (t / (h + 2 * p), t % (h + 2 * p));
                if r < p || r - p >= h {
                    return;
                }
                for (ci, d) in dst.chunks_exact_mut(wx).enumerate() {
                    d[p..p + w].copy_from_slice(&x[((img * cin + ci) * h + r - p) * w..][..w]);
                }
            });
        RowPad { buf, wq, wx, plane }
    }

    /// Start of the (k*cin) channel rows feeding output row `i` of image `img`.
    fn rows(&self, s: &ConvShape, img: usize, i: usize) -> &[f32] {
        &self.buf[img * self.plane + i * s.cin * self.wx..]
    }
}

/// Index decomposition of a (cout, cin, k, k) weight index into (co, ci, ky, kx).
fn split_widx(s: &ConvShape, idx: usize) -> (usize, usize, usize, usize) {
    let k = s.k;
    (
        idx / (k * k * s.cin),
        idx / (k * k) % s.cin,
        idx / k % k,
        idx % k,
    )
}

/// Forward for k > 1: per output row, `k` gemm calls (one per kx, reduction length k*cin)
/// accumulate a per-thread (wq x cout) tile, which is then copied (+ bias) into y.
fn forward_rows(
    s: &ConvShape,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    slope: Option<f32>,
    y: &mut [f32],
) {
    let (h, w, k, cin, cout, hw) = (s.h, s.w, s.k, s.cin, s.cout, s.hw());
    let kq = k * cin;
    let xp = RowPad::new(s, x);
    let (wq, wx) = (xp.wq, xp.wx);
    // wr[kx][co][q] = weight[co, ci, ky, kx] with q = ky*cin + ci
    let mut wr = vec![0f32; k * cout * kq];
    for (idx, &v) in weight.iter().enumerate() {
        let (co, ci, ky, kx) = split_widx(s, idx);
        wr[(kx * cout + co) * kq + ky * cin + ci] = v;
    }
    let yp = SyncPtr(y.as_mut_ptr());
    (0..s.n * h).into_par_iter().for_each_init(
        || vec![0f32; wq * cout],
        |tmp, t| {
            let (img, i) = (t / h, t % h);
            let rows = xp.rows(s, img, i);
            for kx in 0..k {
                // SAFETY: reads rows[q*wx + kx + j], q < k*cin, j < wq: inside the image's padded
                // rows since i + k - 1 < h + 2p and kx + wq <= wx; tmp is wq x cout.
                unsafe {
                    let lhs = rows.as_ptr().add(kx);
                    let rhs = wr[kx * cout * kq..].as_ptr();
                    matmul(
                        (wq, cout, kq),
                        tmp.as_mut_ptr(),
                        (1, wq),
                        kx > 0,
                        lhs,
                        (1, wx),
                        rhs,
                        (1, kq),
                    );
                }
            }
            for co in 0..cout {
                let b = bias.map_or(0.0, |b| b[co]);
                // SAFETY: row i of channel co of image img is written by this task only.
                let dst = unsafe {
                    std::slice::from_raw_parts_mut(yp.get().add((img * cout + co) * hw + i * w), w)
                };
                copy_out(dst, &tmp[co * wq..], b, slope);
            }
        },
    );
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
    forward_impl(&st, gy, &wt, None, None, gx);
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
    let hw = s.hw();
    if let Some(gb) = gb {
        debug_assert_eq!(gb.len(), s.cout);
        // per channel in parallel; 8 independent f64 lanes keep the adds pipelined
        gb.par_iter_mut().enumerate().for_each(|(co, g)| {
            let mut lanes = [0f64; 8];
            for img in 0..s.n {
                let plane = &gy[(img * s.cout + co) * hw..][..hw];
                let mut chunks = plane.chunks_exact(8);
                for c in &mut chunks {
                    for (l, &v) in lanes.iter_mut().zip(c) {
                        *l += v as f64;
                    }
                }
                for (l, &v) in lanes.iter_mut().zip(chunks.remainder()) {
                    *l += v as f64;
                }
            }
            *g = lanes.iter().sum::<f64>() as f32;
        });
    }
    if gy.is_empty() || s.cin == 0 {
        gw.fill(0.0);
    } else if s.k == 1 {
        backward_weight_1x1(s, x, gy, gw);
    } else if s.cin == 1 {
        backward_weight_one_channel(s, x, gy, gw);
    } else if use_col_blocks(s) {
        backward_weight_blocks(s, x, gy, gw);
    } else {
        backward_weight_rows(s, x, gy, gw);
    }
}

/// Sum of partial accumulators of length `len`, each fed by `f(acc, task)`. The tasks are split
/// into a fixed number of contiguous groups (independent of thread scheduling) and the group sums
/// are added in order, so the result is bit-for-bit reproducible.
fn reduce_tasks(ntasks: usize, len: usize, f: impl Fn(&mut [f32], usize) + Sync) -> Vec<f32> {
    reduce_tasks_with(ntasks, len, || (), |acc, _, t| f(acc, t))
}

/// [`reduce_tasks`] with a scratch value made once per group and handed to every task.
fn reduce_tasks_with<S>(
    ntasks: usize,
    len: usize,
    scratch: impl Fn() -> S + Sync,
    f: impl Fn(&mut [f32], &mut S, usize) + Sync,
) -> Vec<f32> {
    const GROUPS: usize = 8;
    let per = ntasks.div_ceil(GROUPS).max(1);
    let partial: Vec<Vec<f32>> = (0..ntasks.div_ceil(per))
        .into_par_iter()
        .map(|g| {
            let mut acc = vec![0f32; len];
            let mut sc = scratch();
            for t in g * per..((g + 1) * per).min(ntasks) {
                f(&mut acc, &mut sc, t);
            }
            acc
        })
        .collect();
    let mut out = vec![0f32; len];
    for p in &partial {
        out.iter_mut().zip(p).for_each(|(u, v)| *u += v);
    }
    out
}

/// 1x1 backward-weight: gw (cout x cin) += gy_tile (cout x pix) * x_tile^T (pix x cin).
fn backward_weight_1x1(s: &ConvShape, x: &[f32], gy: &[f32], gw: &mut [f32]) {
    let (hw, cin, cout) = (s.hw(), s.cin, s.cout);
    let tpi = hw.div_ceil(PIX_TILE);
    let acc = reduce_tasks(s.n * tpi, gw.len(), |acc, t| {
        let (img, p0) = (t / tpi, (t % tpi) * PIX_TILE);
        let np = PIX_TILE.min(hw - p0);
        let gyt = &gy[img * cout * hw + p0..];
        let xt = &x[img * cin * hw + p0..];
        // SAFETY: acc is cout x cin row-major; tiles are (channels x np) with row stride hw.
        unsafe {
            matmul(
                (cout, cin, np),
                acc.as_mut_ptr(),
                (cin, 1),
                true,
                gyt.as_ptr(),
                (hw, 1),
                xt.as_ptr(),
                (1, hw),
            )
        };
    });
    gw.copy_from_slice(&acc);
}

/// Backward-weight for k > 1: per output row and kx,
/// gw_kx (cout x k*cin, column-major) += gy_row (cout x w) * rows_kx (w x k*cin),
/// with per-thread partial sums.  gy is first transposed to pixel-major (`gyt[p][co]`) so that
/// gemm reads the lhs column-major in place, as in the forward pass, instead of gathering it.
fn backward_weight_rows(s: &ConvShape, x: &[f32], gy: &[f32], gw: &mut [f32]) {
    let (h, w, k, cin, cout, hw) = (s.h, s.w, s.k, s.cin, s.cout, s.hw());
    let kq = k * cin;
    let xp = RowPad::new(s, x);
    let gyt = pixel_major(s.n, cout, hw, gy);
    let acc = reduce_tasks(s.n * h, k * kq * cout, |acc, t| {
        let (img, i) = (t / h, t % h);
        let rows = xp.rows(s, img, i);
        let gyr = &gyt[(img * hw + i * w) * cout..];
        for kx in 0..k {
            // SAFETY: acc block kx is cout x kq (column-major); the gy row is cout x w,
            // column-major (stride cout between pixels); rows reads stay inside the padded
            // image (see forward_rows).
            unsafe {
                let dst = acc[kx * kq * cout..].as_mut_ptr();
                let rhs = rows.as_ptr().add(kx);
                matmul(
                    (cout, kq, w),
                    dst,
                    (1, cout),
                    true,
                    gyr.as_ptr(),
                    (1, cout),
                    rhs,
                    (1, xp.wx),
                );
            }
        }
    });
    for (idx, g) in gw.iter_mut().enumerate() {
        let (co, ci, ky, kx) = split_widx(s, idx);
        *g = acc[(kx * kq + ky * cin + ci) * cout + co];
    }
}

/// Backward-weight through im2col blocks: per block,
/// gw (cout x cin k k, row-major as the weight) += gy_block (cout x m) * col (m x cin k k), the
/// block's matrix gathered as in [`forward_blocks`]; per-thread partial sums.
fn backward_weight_blocks(s: &ConvShape, x: &[f32], gy: &[f32], gw: &mut [f32]) {
    let (w, cout, hw, kd) = (s.w, s.cout, s.hw(), s.kdim());
    let xp = RowPad::new(s, x);
    let cb = ColBlocks::new(s);
    let gyt = pixel_major(s.n, cout, hw, gy);
    let acc = reduce_tasks_with(
        s.n * cb.per_image,
        gw.len(),
        || vec![0f32; cb.col_len(s)],
        |acc, col, t| {
            let blk = cb.block(s, t);
            let m = cb.gather(s, &xp, blk, col);
            let (img, i0, _) = blk;
            let gyr = &gyt[(img * hw + i0 * w) * cout..];
            // SAFETY: acc is cout x kd row-major (strides (kd, 1)); the gy block is cout x m
            // column-major (stride cout per pixel); col is m x kd (stride m per q).
            unsafe {
                matmul_par(
                    cb.par,
                    (cout, kd, m),
                    acc.as_mut_ptr(),
                    (kd, 1),
                    true,
                    gyr.as_ptr(),
                    (1, cout),
                    col.as_ptr(),
                    (1, m),
                );
            }
        },
    );
    gw.copy_from_slice(&acc);
}

/// `(n, c, hw)` planes to pixel-major `(n, hw, c)`, in parallel over blocks of pixels.
fn pixel_major(n: usize, c: usize, hw: usize, x: &[f32]) -> Vec<f32> {
    const BLOCK: usize = 256;
    let mut out = vec![0f32; n * hw * c];
    out.par_chunks_mut(hw * c).enumerate().for_each(|(img, o)| {
        o.par_chunks_mut(BLOCK * c)
            .enumerate()
            .for_each(|(b, dst)| {
                for ch in 0..c {
                    let src = &x[(img * c + ch) * hw + b * BLOCK..];
                    for (j, v) in dst.chunks_exact_mut(c).zip(src) {
                        j[ch] = *v;
                    }
                }
            });
    });
    out
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
            // wide images: the per-row path (kdim > 64) and, for one input channel, row blocks
            (1, 16, 8, 5, 130, 5),
            (2, 1, 16, 3, 140, 5),
            (2, 1, 8, 6, 11, 3),
            // narrow images, blocks of several rows with a partial last block (h % rows != 0)
            (1, 9, 4, 37, 20, 3),
            // 1x1 with more than FEW_CHANNELS on both sides: the gemm path
            (2, 6, 5, 4, 7, 1),
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
