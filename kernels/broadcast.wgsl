// General strided kernels of the tensor engine (any broadcast, up to 8 coalesced dimensions):
//   binary:       out[i] = a[off_a + idx(i).sa] (op) b[off_b + idx(i).sb], real or complex
//   copy_strided: out[off_b + idx(i).sb] = a[off_a + idx(i).sa]  (words; narrow, cat, broadcast_to)
//   sum_to:       out[j] = sum_r a[idx(j).sa + ridx(r).rsa]       (adjoint of broadcasting)
// idx(i) is the row-major multi-index of i over `dims` (last dimension fastest). Every sum runs
// in a fixed order, so results do not depend on scheduling.

struct Params {
    n: u32,       // invocations that do work (outputs, or words copied)
    rank: u32,    // dimensions in dims / sa / sb
    op: u32,      // binary: 0 add, 1 sub, 2 mul, 3 div
    complex: u32, // 1: elements are interleaved (re, im) pairs
    off_a: u32,
    off_b: u32,
    count: u32,   // sum_to: terms per output (product of rdims)
    rrank: u32,   // sum_to: dimensions in rdims / rsa
    dims: array<vec4<u32>, 2>,
    sa: array<vec4<u32>, 2>,
    sb: array<vec4<u32>, 2>,
    rdims: array<vec4<u32>, 2>,
    rsa: array<vec4<u32>, 2>,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

fn flat(wid: vec3<u32>, nwg: vec3<u32>, li: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * 256u + li;
}

fn dim(d: u32) -> u32 { return p.dims[d / 4u][d % 4u]; }
fn sa(d: u32) -> u32 { return p.sa[d / 4u][d % 4u]; }
fn sb(d: u32) -> u32 { return p.sb[d / 4u][d % 4u]; }
fn rdim(d: u32) -> u32 { return p.rdims[d / 4u][d % 4u]; }
fn rsa(d: u32) -> u32 { return p.rsa[d / 4u][d % 4u]; }

fn cmul(x: vec2<f32>, y: vec2<f32>) -> vec2<f32> {
    return vec2<f32>(x.x * y.x - x.y * y.y, x.x * y.y + x.y * y.x);
}

// x / y = x conj(y) / |y|^2
fn cdiv(x: vec2<f32>, y: vec2<f32>) -> vec2<f32> {
    let d = y.x * y.x + y.y * y.y;
    return vec2<f32>(x.x * y.x + x.y * y.y, x.y * y.x - x.x * y.y) / d;
}

@compute @workgroup_size(256)
fn binary(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat(wid, nwg, li);
    if i >= p.n { return; }
    var rem = i;
    var ia = p.off_a;
    var ib = p.off_b;
    for (var d = i32(p.rank) - 1; d >= 0; d--) {
        let size = dim(u32(d));
        let k = rem % size;
        rem = rem / size;
        ia += k * sa(u32(d));
        ib += k * sb(u32(d));
    }
    if p.complex == 0u {
        let x = a[ia];
        let y = b[ib];
        var r: f32;
        switch p.op {
            case 0u: { r = x + y; }
            case 1u: { r = x - y; }
            case 2u: { r = x * y; }
            default: { r = x / y; }
        }
        out[i] = r;
    } else {
        let x = vec2<f32>(a[2u * ia], a[2u * ia + 1u]);
        let y = vec2<f32>(b[2u * ib], b[2u * ib + 1u]);
        var r: vec2<f32>;
        switch p.op {
            case 0u: { r = x + y; }
            case 1u: { r = x - y; }
            case 2u: { r = cmul(x, y); }
            default: { r = cdiv(x, y); }
        }
        out[2u * i] = r.x;
        out[2u * i + 1u] = r.y;
    }
}

@compute @workgroup_size(256)
fn copy_strided(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat(wid, nwg, li);
    if i >= p.n { return; }
    var rem = i;
    var src = p.off_a;
    var dst = p.off_b;
    for (var d = i32(p.rank) - 1; d >= 0; d--) {
        let size = dim(u32(d));
        let k = rem % size;
        rem = rem / size;
        src += k * sa(u32(d));
        dst += k * sb(u32(d));
    }
    out[dst] = a[src];
}

@compute @workgroup_size(256)
fn sum_to(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let j = flat(wid, nwg, li);
    if j >= p.n { return; }
    var rem = j;
    var base = 0u;
    for (var d = i32(p.rank) - 1; d >= 0; d--) {
        let size = dim(u32(d));
        base += (rem % size) * sa(u32(d));
        rem = rem / size;
    }
    var acc = vec2<f32>(0.0, 0.0);
    for (var r = 0u; r < p.count; r++) {
        var rr = r;
        var off = base;
        for (var d = i32(p.rrank) - 1; d >= 0; d--) {
            let size = rdim(u32(d));
            off += (rr % size) * rsa(u32(d));
            rr = rr / size;
        }
        if p.complex == 0u {
            acc.x += a[off];
        } else {
            acc += vec2<f32>(a[2u * off], a[2u * off + 1u]);
        }
    }
    if p.complex == 0u {
        out[j] = acc.x;
    } else {
        out[2u * j] = acc.x;
        out[2u * j + 1u] = acc.y;
    }
}
