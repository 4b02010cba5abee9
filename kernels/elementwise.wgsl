// Real elementwise ops: binary ops with a broadcast second operand, unary maps and their VJPs.
// Broadcast of b: b index = (i / b_div) % b_mod (same shape: 1, n; per channel: H*W, C;
// scalar: 1, 1; trailing: 1, len(b)).

struct Params {
    n: u32,
    b_div: u32,
    b_mod: u32,
    _pad0: u32,
    alpha: f32, // scale, or leaky_relu slope
    beta: f32,  // shift
    _pad1: f32,
    _pad2: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> c: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

fn flat(wid: vec3<u32>, nwg: vec3<u32>, li: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * 256u + li;
}

fn bv(i: u32) -> f32 {
    return b[(i / p.b_div) % p.b_mod];
}

// ---- binary: out = a (op) b
@compute @workgroup_size(256)
fn add(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat(wid, nwg, li);
    if i >= p.n { return; }
    out[i] = a[i] + bv(i);
}

@compute @workgroup_size(256)
fn sub(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat(wid, nwg, li);
    if i >= p.n { return; }
    out[i] = a[i] - bv(i);
}

@compute @workgroup_size(256)
fn mul(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat(wid, nwg, li);
    if i >= p.n { return; }
    out[i] = a[i] * bv(i);
}

@compute @workgroup_size(256)
fn div(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat(wid, nwg, li);
    if i >= p.n { return; }
    out[i] = a[i] / bv(i);
}

// y = x / w  =>  dw = -gy x / w^2 (full shape; the caller reduces a broadcast w).
// a = gy, b = w (broadcast), c = x.
@compute @workgroup_size(256)
fn div_backward_b(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat(wid, nwg, li);
    if i >= p.n { return; }
    let w = bv(i);
    out[i] = -a[i] * c[i] / (w * w);
}

// ---- unary: out = f(a); backward: out = gy f'(x) with a = x, b = gy (b_div = 1, b_mod = n)
@compute @workgroup_size(256)
fn scale_shift(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat(wid, nwg, li);
    if i >= p.n { return; }
    out[i] = p.alpha * a[i] + p.beta;
}

@compute @workgroup_size(256)
fn exp_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat(wid, nwg, li);
    if i >= p.n { return; }
    out[i] = exp(a[i]);
}

// y = exp(x): dx = gy exp(x)
@compute @workgroup_size(256)
fn exp_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat(wid, nwg, li);
    if i >= p.n { return; }
    out[i] = b[i] * exp(a[i]);
}

@compute @workgroup_size(256)
fn log_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat(wid, nwg, li);
    if i >= p.n { return; }
    out[i] = log(a[i]);
}

// y = ln x: dx = gy / x
@compute @workgroup_size(256)
fn log_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat(wid, nwg, li);
    if i >= p.n { return; }
    out[i] = b[i] / a[i];
}

@compute @workgroup_size(256)
fn sqrt_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat(wid, nwg, li);
    if i >= p.n { return; }
    out[i] = sqrt(a[i]);
}

// y = sqrt x: dx = gy / (2 sqrt x)
@compute @workgroup_size(256)
fn sqrt_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat(wid, nwg, li);
    if i >= p.n { return; }
    out[i] = b[i] * 0.5 / sqrt(a[i]);
}

@compute @workgroup_size(256)
fn square_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat(wid, nwg, li);
    if i >= p.n { return; }
    out[i] = a[i] * a[i];
}

// y = x^2: dx = 2 x gy
@compute @workgroup_size(256)
fn square_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat(wid, nwg, li);
    if i >= p.n { return; }
    out[i] = 2.0 * a[i] * b[i];
}

// tanh via exp(-2|x|): no overflow for large |x| on any driver.
fn tanh_stable(x: f32) -> f32 {
    let e = exp(-2.0 * abs(x));
    return sign(x) * (1.0 - e) / (1.0 + e);
}

@compute @workgroup_size(256)
fn tanh_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat(wid, nwg, li);
    if i >= p.n { return; }
    out[i] = tanh_stable(a[i]);
}

// y = tanh x: dx = gy (1 - y^2)
@compute @workgroup_size(256)
fn tanh_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat(wid, nwg, li);
    if i >= p.n { return; }
    let y = tanh_stable(a[i]);
    out[i] = b[i] * (1.0 - y * y);
}

fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        return 1.0 / (1.0 + exp(-x));
    }
    let e = exp(x);
    return e / (1.0 + e);
}

@compute @workgroup_size(256)
fn sigmoid_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat(wid, nwg, li);
    if i >= p.n { return; }
    out[i] = sigmoid(a[i]);
}

// y = s(x): dx = gy s (1 - s)
@compute @workgroup_size(256)
fn sigmoid_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat(wid, nwg, li);
    if i >= p.n { return; }
    let s = sigmoid(a[i]);
    out[i] = b[i] * s * (1.0 - s);
}

@compute @workgroup_size(256)
fn leaky_relu_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat(wid, nwg, li);
    if i >= p.n { return; }
    let x = a[i];
    out[i] = select(p.alpha * x, x, x > 0.0);
}

// y = x (x > 0), slope x otherwise: dx = gy (1 or slope)
@compute @workgroup_size(256)
fn leaky_relu_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat(wid, nwg, li);
    if i >= p.n { return; }
    out[i] = select(p.alpha, 1.0, a[i] > 0.0) * b[i];
}

@compute @workgroup_size(256)
fn abs_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat(wid, nwg, li);
    if i >= p.n { return; }
    out[i] = abs(a[i]);
}

// y = |x|: dx = gy sign(x) (0 at x = 0)
@compute @workgroup_size(256)
fn abs_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat(wid, nwg, li);
    if i >= p.n { return; }
    out[i] = sign(a[i]) * b[i];
}

// Complex affine map on interleaved (re, im) words: y = alpha z + beta (beta real: adds to re).
// VJP: dz = alpha gy (= scale_shift with beta 0).
@compute @workgroup_size(256)
fn affine_complex(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat(wid, nwg, li);
    if i >= p.n { return; }
    out[i] = p.alpha * a[i] + select(0.0, p.beta, i % 2u == 0u);
}
