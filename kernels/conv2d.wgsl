// 2-D convolution, stride 1, zero "same" padding pad = k / 2, odd k <= 5, NCHW.
//   forward:          y[n,o,y,x] = b[o] + sum_{i,ky,kx} w[o,i,ky,kx] x[n,i,y+ky-pad,x+kx-pad]
//   backward_input:   dx[n,i,y,x] = sum_{o,ky,kx} w[o,i,ky,kx] gy[n,o,y-ky+pad,x-kx+pad]
//                     = the forward sweep over gy with w transposed (o <-> i) and flipped.
//   backward_weight_partial: dw[o,i,ky,kx] = sum_{n,y,x} gy[n,o,y,x] x[n,i,y+ky-pad,x+kx-pad],
//                     one partial per chunk of CHUNK pixels; the host sums the chunks in order
//                     (reduce.wgsl sum_strided), so the result is deterministic.
// The forward sweeps stage a (TILE + k - 1)^2 input tile and COB output channels' weights in
// workgroup memory per input channel; each invocation computes COB output channels of 1 pixel.

struct Params {
    n: u32,
    cin: u32,
    cout: u32,
    h: u32,
    w: u32,
    k: u32,
    pad: u32,
    co_blocks: u32, // ceil(channels out of the sweep / COB)
    chunks: u32,    // backward_weight_partial: pixel chunks
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

const TILE: u32 = 16u;
const MAXK: u32 = 5u;
const HALO: u32 = 20u; // TILE + MAXK - 1
const COB: u32 = 4u;
const RED_WG: u32 = 128u;
const CHUNK: u32 = 4096u; // pixels per partial = RED_WG * 32

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;   // x (forward, weight) or gy (input)
@group(0) @binding(2) var<storage, read> wt: array<f32>;    // w, or gy for backward_weight
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> dst: array<f32>;

var<workgroup> tile: array<f32, 400>;      // HALO * HALO
var<workgroup> wsh: array<f32, 100>;       // COB * MAXK * MAXK
var<workgroup> red: array<f32, 3200>;      // RED_WG * MAXK * MAXK

fn sweep(wid: vec3<u32>, lid: vec3<u32>, li: u32, c_src: u32, c_dst: u32, transposed: bool) {
    let k = p.k;
    let kk = k * k;
    let hs = TILE + k - 1u;
    let n = wid.z / p.co_blocks;
    let co0 = (wid.z % p.co_blocks) * COB;
    let x0 = wid.x * TILE;
    let y0 = wid.y * TILE;
    let x = x0 + lid.x;
    let y = y0 + lid.y;
    let hw = p.h * p.w;
    var acc = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
    for (var ci = 0u; ci < c_src; ci++) {
        let plane = (n * c_src + ci) * hw;
        for (var j = li; j < hs * hs; j += TILE * TILE) {
            let sy = i32(y0 + j / hs) - i32(p.pad);
            let sx = i32(x0 + j % hs) - i32(p.pad);
            var v = 0.0;
            if sy >= 0 && sx >= 0 && sy < i32(p.h) && sx < i32(p.w) {
                v = src[plane + u32(sy) * p.w + u32(sx)];
            }
            tile[j] = v;
        }
        if li < COB * kk {
            let co = co0 + li / kk;
            let t = li % kk;
            var v = 0.0;
            if co < c_dst {
                if transposed {
                    v = wt[(ci * p.cin + co) * kk + (kk - 1u - t)];
                } else {
                    v = wt[(co * p.cin + ci) * kk + t];
                }
            }
            wsh[li] = v;
        }
        workgroupBarrier();
        for (var ky = 0u; ky < k; ky++) {
            for (var kx = 0u; kx < k; kx++) {
                let v = tile[(lid.y + ky) * hs + lid.x + kx];
                let t = ky * k + kx;
                acc[0] += v * wsh[t];
                acc[1] += v * wsh[kk + t];
                acc[2] += v * wsh[2u * kk + t];
                acc[3] += v * wsh[3u * kk + t];
            }
        }
        workgroupBarrier();
    }
    if x >= p.w || y >= p.h { return; }
    for (var c = 0u; c < COB; c++) {
        let co = co0 + c;
        if co < c_dst {
            var v = acc[c];
            if !transposed { v += bias[co]; }
            dst[(n * c_dst + co) * hw + y * p.w + x] = v;
        }
    }
}

@compute @workgroup_size(16, 16, 1)
fn forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    sweep(wid, lid, li, p.cin, p.cout, false);
}

@compute @workgroup_size(16, 16, 1)
fn backward_input(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    sweep(wid, lid, li, p.cout, p.cin, true);
}

// src = x, wt = gy; dst[((chunk * cout + o) * cin + i) * kk + t] = partial dw over the chunk.
@compute @workgroup_size(128)
fn backward_weight_partial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let g = wid.y * nwg.x + wid.x;
    if g >= p.chunks * p.cout * p.cin { return; }
    let k = p.k;
    let kk = k * k;
    let pad = i32(p.pad);
    let chunk = g / (p.cout * p.cin);
    let co = (g / p.cin) % p.cout;
    let ci = g % p.cin;
    let hw = p.h * p.w;
    let total = p.n * hw;
    let start = chunk * CHUNK;
    let end = min(start + CHUNK, total);
    var acc: array<f32, 25>;
    for (var t = 0u; t < 25u; t++) { acc[t] = 0.0; }
    for (var q = start + li; q < end; q += RED_WG) {
        let n = q / hw;
        let r = q % hw;
        let y = i32(r / p.w);
        let x = i32(r % p.w);
        let g_out = wt[(n * p.cout + co) * hw + r];
        let plane = (n * p.cin + ci) * hw;
        for (var ky = 0u; ky < k; ky++) {
            let sy = y + i32(ky) - pad;
            if sy < 0 || sy >= i32(p.h) { continue; }
            for (var kx = 0u; kx < k; kx++) {
                let sx = x + i32(kx) - pad;
                if sx < 0 || sx >= i32(p.w) { continue; }
                acc[ky * k + kx] += g_out * src[plane + u32(sy) * p.w + u32(sx)];
            }
        }
    }
    for (var t = 0u; t < kk; t++) { red[li * 25u + t] = acc[t]; }
    workgroupBarrier();
    for (var s = RED_WG / 2u; s > 0u; s = s >> 1u) {
        if li < s {
            for (var t = 0u; t < kk; t++) {
                red[li * 25u + t] += red[(li + s) * 25u + t];
            }
        }
        workgroupBarrier();
    }
    if li < kk {
        dst[((chunk * p.cout + co) * p.cin + ci) * kk + li] = red[li];
    }
}
