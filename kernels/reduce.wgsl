// Deterministic sums: every workgroup sums one fixed chunk in a fixed order (per-thread strided
// partials, then a shared-memory tree), so the result does not depend on scheduling.

struct Params {
    n: u32,      // elements of a (and b)
    chunk: u32,  // elements per workgroup (sum_stage, sq_diff_stage)
    count: u32,  // sum_strided: terms per output
    stride: u32, // sum_strided: outputs (= distance between terms)
    scale: f32,  // applied to every output
    offset: u32, // sum_strided: index of the first term
    _pad1: f32,
    _pad2: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> c: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

var<workgroup> sh: array<f32, 256>;


// NaN by its bits: WGSL lets implementations assume floats are never NaN, so `v != v` may be
// folded to false (it is on lavapipe).
fn is_nan(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

fn tree(li: u32, v: f32) -> f32 {
    sh[li] = v;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s = s >> 1u) {
        if li < s {
            sh[li] = sh[li] + sh[li + s];
        }
        workgroupBarrier();
    }
    return sh[0];
}

// out[g] = scale * sum(a[g*chunk .. min((g+1)*chunk, n)])
@compute @workgroup_size(256)
fn sum_stage(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let g = wid.y * nwg.x + wid.x;
    let start = g * p.chunk;
    if start >= p.n { return; }
    let end = min(start + p.chunk, p.n);
    var acc = 0.0;
    for (var i = start + li; i < end; i += 256u) {
        acc += a[i];
    }
    let s = tree(li, acc);
    if li == 0u { out[g] = s * p.scale; }
}

// out[g] = scale * sum((a - b)^2) over chunk g
@compute @workgroup_size(256)
fn sq_diff_stage(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let g = wid.y * nwg.x + wid.x;
    let start = g * p.chunk;
    if start >= p.n { return; }
    let end = min(start + p.chunk, p.n);
    var acc = 0.0;
    for (var i = start + li; i < end; i += 256u) {
        let d = a[i] - b[i];
        acc += d * d;
    }
    let s = tree(li, acc);
    if li == 0u { out[g] = s * p.scale; }
}

// out[j] = scale * sum_{k < count} a[offset + k * stride + j], j < stride (e.g. over N of (N, C)).
@compute @workgroup_size(256)
fn sum_strided(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let j = (wid.y * nwg.x + wid.x) * 256u + li;
    if j >= p.stride { return; }
    var acc = 0.0;
    for (var k = 0u; k < p.count; k++) {
        acc += a[p.offset + k * p.stride + j];
    }
    out[j] = acc * p.scale;
}

// L = mean((a - b)^2): da = 2 (a - b) gy / n with gy = c[0] (scale = 2 / n); db = -da.
@compute @workgroup_size(256)
fn mse_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wid.y * nwg.x + wid.x) * 256u + li;
    if i >= p.n { return; }
    out[i] = (a[i] - b[i]) * c[0] * p.scale;
}

// out[g] = max(a[g*chunk .. min((g+1)*chunk, n)]); NaN propagates. Starts from the chunk's
// first element (data, not a sentinel).
fn maxp(x: f32, y: f32) -> f32 {
    if y > x || (is_nan(y) && !is_nan(x)) { return y; }
    return x;
}

@compute @workgroup_size(256)
fn max_stage(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let g = wid.y * nwg.x + wid.x;
    let start = g * p.chunk;
    if start >= p.n { return; }
    let end = min(start + p.chunk, p.n);
    var acc = a[start];
    for (var i = start + li; i < end; i += 256u) {
        acc = maxp(acc, a[i]);
    }
    sh[li] = acc;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s = s >> 1u) {
        if li < s {
            sh[li] = maxp(sh[li], sh[li + s]);
        }
        workgroupBarrier();
    }
    if li == 0u { out[g] = sh[0]; }
}

// out[i] = 1 where a[i] equals the maximum c[0] (NaN equals NaN), else 0: the ties of a max.
@compute @workgroup_size(256)
fn ties(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wid.y * nwg.x + wid.x) * 256u + li;
    if i >= p.n { return; }
    let x = a[i];
    let m = c[0];
    var t = 0.0;
    if x == m || (is_nan(x) && is_nan(m)) { t = 1.0; }
    out[i] = t;
}
