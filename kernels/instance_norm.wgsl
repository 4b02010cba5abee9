// Instance norm over each (n, c) plane of m = H*W pixels, with an optional affine map:
//   y = xh w[c] + b[c],  xh = (x - mean) rstd,  rstd = 1 / sqrt(var + eps)  (biased var)
// VJP (means over the plane), gh = gy w[c]:
//   dx = rstd (gh - mean(gh) - xh mean(gh xh))
//   dw[c] = sum_{n,p} gy xh,  db[c] = sum_{n,p} gy   (per-plane partials here; the host sums
//   them over n in order, reduce.wgsl sum_strided).
// One workgroup per plane; every statistic is a two-pass, fixed-order workgroup reduction.

struct Params {
    planes: u32,
    c: u32,
    m: u32, // pixels per plane
    has_weight: u32,
    has_bias: u32,
    eps: f32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> third: array<f32>;        // bias (forward) or gy
@group(0) @binding(4) var<storage, read_write> out: array<f32>;    // y or dx
@group(0) @binding(5) var<storage, read_write> stats: array<f32>;  // (mean, rstd) per plane
@group(0) @binding(6) var<storage, read_write> partial: array<f32>; // dw parts | db parts

var<workgroup> sh: array<vec4<f32>, 256>;

fn tree(li: u32, v: vec4<f32>) -> vec4<f32> {
    sh[li] = v;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s = s >> 1u) {
        if li < s {
            sh[li] = sh[li] + sh[li + s];
        }
        workgroupBarrier();
    }
    let r = sh[0];
    workgroupBarrier(); // sh is reused by the next tree
    return r;
}

fn w_of(c: u32) -> f32 {
    if p.has_weight != 0u { return weight[c]; }
    return 1.0;
}

@compute @workgroup_size(256)
fn forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let plane = wid.y * nwg.x + wid.x;
    if plane >= p.planes { return; }
    let base = plane * p.m;
    let inv_m = 1.0 / f32(p.m);
    var s = 0.0;
    for (var i = li; i < p.m; i += 256u) { s += x[base + i]; }
    let mean = tree(li, vec4<f32>(s, 0.0, 0.0, 0.0)).x * inv_m;
    var q = 0.0;
    for (var i = li; i < p.m; i += 256u) {
        let d = x[base + i] - mean;
        q += d * d;
    }
    let var_ = tree(li, vec4<f32>(q, 0.0, 0.0, 0.0)).x * inv_m;
    let rstd = 1.0 / sqrt(var_ + p.eps);
    let c = plane % p.c;
    let wc = w_of(c);
    var bc = 0.0;
    if p.has_bias != 0u { bc = third[c]; }
    for (var i = li; i < p.m; i += 256u) {
        out[base + i] = (x[base + i] - mean) * rstd * wc + bc;
    }
    if li == 0u {
        stats[2u * plane] = mean;
        stats[2u * plane + 1u] = rstd;
    }
}

@compute @workgroup_size(256)
fn backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let plane = wid.y * nwg.x + wid.x;
    if plane >= p.planes { return; }
    let base = plane * p.m;
    let inv_m = 1.0 / f32(p.m);
    let mean = stats[2u * plane];
    let rstd = stats[2u * plane + 1u];
    let wc = w_of(plane % p.c);
    // (sum gh, sum gh xh, sum gy xh, sum gy)
    var acc = vec4<f32>(0.0);
    for (var i = li; i < p.m; i += 256u) {
        let g = third[base + i];
        let xh = (x[base + i] - mean) * rstd;
        acc += vec4<f32>(g * wc, g * wc * xh, g * xh, g);
    }
    let t = tree(li, acc);
    let mean_gh = t.x * inv_m;
    let mean_ghxh = t.y * inv_m;
    for (var i = li; i < p.m; i += 256u) {
        let xh = (x[base + i] - mean) * rstd;
        out[base + i] = rstd * (third[base + i] * wc - mean_gh - xh * mean_ghxh);
    }
    if li == 0u {
        partial[plane] = t.z;
        partial[p.planes + plane] = t.w;
    }
}
