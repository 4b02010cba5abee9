// Complex elementwise ops on interleaved (re, im) f32 pairs; n counts complex elements.
// The second operand b may repeat with period b_mod complex elements (b index = i % b_mod).

struct Params {
    n: u32,
    b_mod: u32,
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
fn zb(i: u32) -> vec2<f32> { let j = i % p.b_mod; return vec2<f32>(b[2u * j], b[2u * j + 1u]); }
fn put(i: u32, z: vec2<f32>) { out[2u * i] = z.x; out[2u * i + 1u] = z.y; }
fn cmul_(x: vec2<f32>, y: vec2<f32>) -> vec2<f32> {
    return vec2<f32>(x.x * y.x - x.y * y.y, x.x * y.y + x.y * y.x);
}

// y = a b.  VJP (conjugate convention): da = gy conj(b), db = gy conj(a) -> `cmul_conj`.
@compute @workgroup_size(256)
fn cmul(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat(wid, nwg, li);
    if i >= p.n { return; }
    put(i, cmul_(za(i), zb(i)));
}

// y = a conj(b)
@compute @workgroup_size(256)
fn cmul_conj(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat(wid, nwg, li);
    if i >= p.n { return; }
    let w = zb(i);
    put(i, cmul_(za(i), vec2<f32>(w.x, -w.y)));
}

// y = conj(a). VJP: da = conj(gy)
@compute @workgroup_size(256)
fn conj(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat(wid, nwg, li);
    if i >= p.n { return; }
    let z = za(i);
    put(i, vec2<f32>(z.x, -z.y));
}

// y = re + i im (a = re, b = im, both real of n). VJP: dre = re(gy), dim = im(gy)
@compute @workgroup_size(256)
fn from_re_im(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat(wid, nwg, li);
    if i >= p.n { return; }
    put(i, vec2<f32>(a[i], b[i]));
}

// y = re(z) (real). VJP: dz = gy + 0i
@compute @workgroup_size(256)
fn re(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat(wid, nwg, li);
    if i >= p.n { return; }
    out[i] = a[2u * i];
}

// y = im(z) (real). VJP: dz = 0 + i gy
@compute @workgroup_size(256)
fn im(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat(wid, nwg, li);
    if i >= p.n { return; }
    out[i] = a[2u * i + 1u];
}

// y = |z|^2 (real)
@compute @workgroup_size(256)
fn abs2(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat(wid, nwg, li);
    if i >= p.n { return; }
    let z = za(i);
    out[i] = z.x * z.x + z.y * z.y;
}

// VJP of |z|^2: dz = 2 z gy (a = z complex, b = gy real; b_mod unused)
@compute @workgroup_size(256)
fn abs2_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat(wid, nwg, li);
    if i >= p.n { return; }
    put(i, 2.0 * b[i] * za(i));
}

// y = e^{i a} = cos(a) + i sin(a) for real a (n elements).
// VJP (g = dL/dRe y + i dL/dIm y): da = Im(g conj(y)) -> `cmul_conj` then `im`.
@compute @workgroup_size(256)
fn expi(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat(wid, nwg, li);
    if i >= p.n { return; }
    put(i, vec2<f32>(cos(a[i]), sin(a[i])));
}
