// AdamW step in place, PyTorch semantics (host computes the bias corrections in f64):
// m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; p *= 1 - lr wd;
// p -= (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps),  bc_i = 1 - b_i^t.

struct Params {
    n: u32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    decay: f32,    // 1 - lr * weight_decay
    step: f32,     // lr / bc1
    bc2_sqrt: f32, // sqrt(bc2)
    _pad0: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;

@compute @workgroup_size(256)
fn adamw_step(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wid.y * nwg.x + wid.x) * 256u + li;
    if i >= p.n { return; }
    let g = grad[i];
    let mi = p.beta1 * m[i] + (1.0 - p.beta1) * g;
    let vi = p.beta2 * v[i] + (1.0 - p.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    var x = param[i] * p.decay;
    x -= p.step * mi / (sqrt(vi) / p.bc2_sqrt + p.eps);
    param[i] = x;
}
