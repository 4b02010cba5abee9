// Spectral convolution of zero-padded real planes (see src/backend/gpu/spectral.rs):
//   embed:   real (planes, h, w) -> complex (planes, ph, pw), zero outside the image
//   mix:     U[n, o, k] = sum_c T(o, c, k) X[n, c, k], T = K[o, c] or, adjoint, conj(K[c, o])
//   crop_re: complex (planes, ph, pw) -> real (planes, h, w), scale * re
//   kgrad:   dK[o, c, k] = scale * sum_n conj(X[n, c, k]) G[n, o, k]
// Complex data interleaved (re, im); `plane` = ph * pw.

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
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

fn flat(wid: vec3<u32>, nwg: vec3<u32>, li: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * 256u + li;
}

fn za(i: u32) -> vec2<f32> { return vec2<f32>(a[2u * i], a[2u * i + 1u]); }
fn zb(i: u32) -> vec2<f32> { return vec2<f32>(b[2u * i], b[2u * i + 1u]); }
fn put(i: u32, z: vec2<f32>) { out[2u * i] = z.x; out[2u * i + 1u] = z.y; }
fn cmul(x: vec2<f32>, y: vec2<f32>) -> vec2<f32> {
    return vec2<f32>(x.x * y.x - x.y * y.y, x.x * y.y + x.y * y.x);
}
fn conj(z: vec2<f32>) -> vec2<f32> { return vec2<f32>(z.x, -z.y); }

// a: real planes (planes, h, w); out: complex (planes, ph, pw)
@compute @workgroup_size(256)
fn embed(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat(wid, nwg, li);
    let plane = p.ph * p.pw;
    if i >= p.planes * plane { return; }
    let q = i / plane;
    let r = (i % plane) / p.pw;
    let c = i % p.pw;
    var v = 0.0;
    if r < p.h && c < p.w { v = a[(q * p.h + r) * p.w + c]; }
    put(i, vec2<f32>(v, 0.0));
}

// a: X (n, cin, plane); b: K (cout, cin, plane) or, adjoint, (cin, cout, plane); out: (n, cout, plane)
@compute @workgroup_size(256)
fn mix(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat(wid, nwg, li);
    let plane = p.ph * p.pw;
    if i >= p.n * p.cout * plane { return; }
    let k = i % plane;
    let o = (i / plane) % p.cout;
    let s = i / (plane * p.cout);
    var acc = vec2<f32>(0.0, 0.0);
    for (var c = 0u; c < p.cin; c++) {
        let x = za((s * p.cin + c) * plane + k);
        if p.adjoint != 0u {
            acc += cmul(x, conj(zb((c * p.cout + o) * plane + k)));
        } else {
            acc += cmul(x, zb((o * p.cin + c) * plane + k));
        }
    }
    put(i, acc);
}

// a: complex (planes, ph, pw); out: real (planes, h, w)
@compute @workgroup_size(256)
fn crop_re(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat(wid, nwg, li);
    if i >= p.planes * p.h * p.w { return; }
    let q = i / (p.h * p.w);
    let r = (i / p.w) % p.h;
    let c = i % p.w;
    out[i] = p.scale * a[2u * ((q * p.ph + r) * p.pw + c)];
}

// a: X (n, cin, plane); b: G (n, cout, plane); out: dK (cout, cin, plane)
@compute @workgroup_size(256)
fn kgrad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat(wid, nwg, li);
    let plane = p.ph * p.pw;
    if i >= p.cout * p.cin * plane { return; }
    let k = i % plane;
    let c = (i / plane) % p.cin;
    let o = i / (plane * p.cin);
    var acc = vec2<f32>(0.0, 0.0);
    for (var s = 0u; s < p.n; s++) {
        acc += cmul(conj(za((s * p.cin + c) * plane + k)), zb((s * p.cout + o) * plane + k));
    }
    put(i, p.scale * acc);
}
