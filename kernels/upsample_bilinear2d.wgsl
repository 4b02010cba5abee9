// Bilinear x2 upsampling, align_corners = false (PyTorch): for output o along an axis of n
// inputs, src = max((o + 0.5) / 2 - 0.5, 0), i0 = floor(src), i1 = min(i0 + 1, n - 1),
// l1 = src - i0, l0 = 1 - l1;  y = l0y (l0x x00 + l1x x01) + l1y (l0x x10 + l1x x11).
// VJP as a gather: dx[i] = sum over the outputs o near 2i of wy(o, i) wx(o', j) gy[o, o']
// (outputs 2i-2 .. 2i+3 cover every o with i0(o) = i or i1(o) = i), so no atomics.

struct Params {
    planes: u32,
    h: u32,
    w: u32,
    oh: u32,
    ow: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;        // x, or gy
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;  // y, or dx

fn flat(wid: vec3<u32>, nwg: vec3<u32>, li: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * 256u + li;
}

fn source(o: u32) -> f32 {
    return max((f32(o) + 0.5) * 0.5 - 0.5, 0.0);
}

// Weight of input i in output o along an axis of n inputs.
fn weight(o: u32, i: u32, n: u32) -> f32 {
    let s = source(o);
    let i0 = u32(floor(s));
    let i1 = min(i0 + 1u, n - 1u);
    let l1 = s - f32(i0);
    var r = 0.0;
    if i0 == i { r += 1.0 - l1; }
    if i1 == i { r += l1; }
    return r;
}

@compute @workgroup_size(256)
fn forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat(wid, nwg, li);
    if i >= p.planes * p.oh * p.ow { return; }
    let ox = i % p.ow;
    let oy = (i / p.ow) % p.oh;
    let q = i / (p.ow * p.oh);
    let sy = source(oy);
    let sx = source(ox);
    let y0 = u32(floor(sy));
    let x0 = u32(floor(sx));
    let y1 = min(y0 + 1u, p.h - 1u);
    let x1 = min(x0 + 1u, p.w - 1u);
    let ly1 = sy - f32(y0);
    let lx1 = sx - f32(x0);
    let ly0 = 1.0 - ly1;
    let lx0 = 1.0 - lx1;
    let b = q * p.h * p.w;
    dst[i] = ly0 * (lx0 * src[b + y0 * p.w + x0] + lx1 * src[b + y0 * p.w + x1])
           + ly1 * (lx0 * src[b + y1 * p.w + x0] + lx1 * src[b + y1 * p.w + x1]);
}

@compute @workgroup_size(256)
fn backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat(wid, nwg, li);
    if i >= p.planes * p.h * p.w { return; }
    let ix = i % p.w;
    let iy = (i / p.w) % p.h;
    let q = i / (p.w * p.h);
    let oy_lo = u32(max(i32(2u * iy) - 2, 0));
    let oy_hi = min(2u * iy + 4u, p.oh);
    let ox_lo = u32(max(i32(2u * ix) - 2, 0));
    let ox_hi = min(2u * ix + 4u, p.ow);
    let b = q * p.oh * p.ow;
    var acc = 0.0;
    for (var oy = oy_lo; oy < oy_hi; oy++) {
        let wy = weight(oy, iy, p.h);
        if wy == 0.0 { continue; }
        var row = 0.0;
        for (var ox = ox_lo; ox < ox_hi; ox++) {
            row += weight(ox, ix, p.w) * src[b + oy * p.ow + ox];
        }
        acc += wy * row;
    }
    dst[i] = acc;
}
