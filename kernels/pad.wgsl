// Zero pad / crop of the last two axes: out[q, y, x] = in[q, y + off_y, x + off_x] inside the
// input, 0 outside. pad(top, left): off = (-top, -left); crop(row0, col0): off = (row0, col0).
// The VJP of a pad is the crop with the same window, and the reverse.

struct Params {
    planes: u32,
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
    off_y: i32,
    off_x: i32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

fn flat(wid: vec3<u32>, nwg: vec3<u32>, li: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * 256u + li;
}

// Source index of output element i, or -1 for a zero.
fn source(i: u32) -> i32 {
    let x = i % p.out_w;
    let y = (i / p.out_w) % p.out_h;
    let q = i / (p.out_w * p.out_h);
    let sy = i32(y) + p.off_y;
    let sx = i32(x) + p.off_x;
    if sy < 0 || sx < 0 || sy >= i32(p.in_h) || sx >= i32(p.in_w) { return -1; }
    return i32((q * p.in_h + u32(sy)) * p.in_w + u32(sx));
}

@compute @workgroup_size(256)
fn window_real(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat(wid, nwg, li);
    if i >= p.planes * p.out_h * p.out_w { return; }
    let s = source(i);
    dst[i] = select(0.0, src[max(s, 0)], s >= 0);
}

@compute @workgroup_size(256)
fn window_complex(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat(wid, nwg, li);
    if i >= p.planes * p.out_h * p.out_w { return; }
    let s = source(i);
    let k = u32(max(s, 0));
    dst[2u * i] = select(0.0, src[2u * k], s >= 0);
    dst[2u * i + 1u] = select(0.0, src[2u * k + 1u], s >= 0);
}
