// Bilinear sampling through an affine map, zero outside (`backend/cpu/sample.rs` is the same
// maths on the host). Output pixel (i, j) samples x at
//   s_c = a_cc j + a_cr i + b_c,   s_r = a_rc j + a_rr i + b_r
// (pixel (r, c) of x at integer coordinates), taps floor(s) + {0, 1}, weights (1 - f, f), taps
// outside the image 0. The affine map stays on the device: a read-only storage buffer of six
// floats [a_cc, a_cr, b_c, a_rc, a_rr, b_r] (it is trained), never a uniform.
//
// forward:     y[q, i, j] = (1-fr)((1-fc) x00 + fc x01) + fr((1-fc) x10 + fc x11)
// grad_x:      dx = S^T gy as a gather (no atomics): the outputs that tap input (r, c) have
//              s in (r-1, r+1) x (c-1, c+1); their (j, i) lie in the bounding box of that
//              square's preimage under A = [[a_cc, a_cr], [a_rc, a_rr]] (inverted here), plus
//              a 1-px margin, clamped to the output and to at most p.cap outputs per axis (a
//              singular or near-singular A: the whole output, capped). Each output's weight
//              for (r, c) is recomputed with the forward's `source` and `cell`, so the floor
//              decisions agree.
// grad_pos:    gs[0, o] = sum_q gy dy/ds_c, gs[1, o] = sum_q gy dy/ds_r, from which the
//              affine parameters' gradient is built with tensor ops.

struct Params {
    planes: u32,
    h: u32,
    w: u32,
    oh: u32,
    ow: u32,
    cap: u32,    // most outputs per axis the gather visits for one input pixel
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;        // x (forward, grad_pos) or gy (grad_x)
@group(0) @binding(2) var<storage, read> aff: array<f32>;        // [a_cc, a_cr, b_c, a_rc, a_rr, b_r]
@group(0) @binding(3) var<storage, read> gy: array<f32>;         // grad_pos only (else a dummy)
@group(0) @binding(4) var<storage, read_write> dst: array<f32>;  // y, dx or gs

fn flat(wid: vec3<u32>, nwg: vec3<u32>, li: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * 256u + li;
}

// (s_r, s_c) of output (i, j), in the CPU's order of operations.
fn source(i: u32, j: u32) -> vec2<f32> {
    let fi = f32(i);
    let fj = f32(j);
    return vec2<f32>(aff[3] * fj + aff[4] * fi + aff[5], aff[0] * fj + aff[1] * fi + aff[2]);
}

// The top-left tap (clamped to [-2, h] x [-2, w] before the conversion: both taps of a clamped
// index stay outside) and the fractions.
struct Cell {
    r0: i32,
    c0: i32,
    fr: f32,
    fc: f32,
}

fn cell(s: vec2<f32>) -> Cell {
    let fl = floor(s);
    let r0 = i32(clamp(fl.x, -2.0, f32(p.h)));
    let c0 = i32(clamp(fl.y, -2.0, f32(p.w)));
    return Cell(r0, c0, s.x - fl.x, s.y - fl.y);
}

// x[b + r w + c], 0 outside the image.
fn tap(b: u32, r: i32, c: i32) -> f32 {
    if r < 0 || c < 0 || r >= i32(p.h) || c >= i32(p.w) {
        return 0.0;
    }
    return src[b + u32(r) * p.w + u32(c)];
}

// Weight of index k along one axis for a cell starting at k0 with fraction f.
fn weight(k: i32, k0: i32, f: f32) -> f32 {
    if k == k0 {
        return 1.0 - f;
    }
    if k == k0 + 1 {
        return f;
    }
    return 0.0;
}

@compute @workgroup_size(256)
fn forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let t = flat(wid, nwg, li);
    if t >= p.planes * p.oh * p.ow { return; }
    let j = t % p.ow;
    let i = (t / p.ow) % p.oh;
    let q = t / (p.ow * p.oh);
    let k = cell(source(i, j));
    let b = q * p.h * p.w;
    let x00 = tap(b, k.r0, k.c0);
    let x01 = tap(b, k.r0, k.c0 + 1);
    let x10 = tap(b, k.r0 + 1, k.c0);
    let x11 = tap(b, k.r0 + 1, k.c0 + 1);
    dst[t] = (1.0 - k.fr) * ((1.0 - k.fc) * x00 + k.fc * x01)
           + k.fr * ((1.0 - k.fc) * x10 + k.fc * x11);
}

// [lo, hi] (inclusive, hi < lo when empty) of the outputs along an axis of n whose preimage
// coordinate lies within `half` (+ a 1-px margin) of `centre`, at most `cap` long.
fn span(centre: f32, half: f32, n: u32, cap: u32) -> vec2<i32> {
    let top = f32(n);
    let lo_f = clamp(floor(centre - half - 1.0), 0.0, top);
    let hi_f = clamp(ceil(centre + half + 1.0), -1.0, top - 1.0);
    // integer clamps after the conversion: bounded loops whatever the floats were
    let lo = clamp(i32(lo_f), 0, i32(n));
    let hi = clamp(i32(hi_f), -1, i32(n) - 1);
    return vec2<i32>(lo, min(hi, lo + i32(cap) - 1));
}

@compute @workgroup_size(256)
fn grad_x(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let t = flat(wid, nwg, li);
    if t >= p.planes * p.h * p.w { return; }
    let c = i32(t % p.w);
    let r = i32((t / p.w) % p.h);
    let q = t / (p.w * p.h);
    // (s_c, s_r) - b = A (j, i): the square (c-1, c+1) x (r-1, r+1) around (c, r) maps back to
    // (j, i) within (|inv00| + |inv01|, |inv10| + |inv11|) of inv ((c, r) - b)
    let a00 = aff[0];
    let a01 = aff[1];
    let a10 = aff[3];
    let a11 = aff[4];
    let det = a00 * a11 - a01 * a10;
    var cols = vec2<i32>(0, min(i32(p.ow), i32(p.cap)) - 1);
    var rows = vec2<i32>(0, min(i32(p.oh), i32(p.cap)) - 1);
    if abs(det) > 1e-20 {
        let inv = 1.0 / det;
        let dc = f32(c) - aff[2];
        let dr = f32(r) - aff[5];
        let jc = inv * (a11 * dc - a01 * dr);
        let ic = inv * (a00 * dr - a10 * dc);
        let ej = abs(inv) * (abs(a11) + abs(a01));
        let ei = abs(inv) * (abs(a10) + abs(a00));
        cols = span(jc, ej, p.ow, p.cap);
        rows = span(ic, ei, p.oh, p.cap);
    }
    let b = q * p.oh * p.ow;
    var acc = 0.0;
    for (var i = rows.x; i <= rows.y; i++) {
        var row = 0.0;
        for (var j = cols.x; j <= cols.y; j++) {
            let k = cell(source(u32(i), u32(j)));
            let wr = weight(r, k.r0, k.fr);
            let wc = weight(c, k.c0, k.fc);
            row += wr * wc * src[b + u32(i) * p.ow + u32(j)];
        }
        acc += row;
    }
    dst[t] = acc;
}

@compute @workgroup_size(256)
fn grad_pos(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let n = p.oh * p.ow;
    let t = flat(wid, nwg, li);
    if t >= n { return; }
    let j = t % p.ow;
    let i = t / p.ow;
    let k = cell(source(i, j));
    var dc = 0.0;
    var dr = 0.0;
    for (var q = 0u; q < p.planes; q++) {
        let g = gy[q * n + t];
        let b = q * p.h * p.w;
        let x00 = tap(b, k.r0, k.c0);
        let x01 = tap(b, k.r0, k.c0 + 1);
        let x10 = tap(b, k.r0 + 1, k.c0);
        let x11 = tap(b, k.r0 + 1, k.c0 + 1);
        dc += g * ((1.0 - k.fr) * (x01 - x00) + k.fr * (x11 - x10));
        dr += g * ((1.0 - k.fc) * (x10 - x00) + k.fc * (x11 - x01));
    }
    dst[t] = dc;
    dst[n + t] = dr;
}
