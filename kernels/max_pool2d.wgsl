// Max pool 2x2, stride 2, floor: y[q, oy, ox] = max of x[q, 2oy + {0,1}, 2ox + {0,1}], the
// first maximum in row-major order wins (NaN propagates).
// VJP: dx[q, iy, ix] = gy[q, iy/2, ix/2] if (iy, ix) is its window's argmax (recomputed from x)
// else 0 — a gather: each input lies in at most one window, so no atomics.

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
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gy: array<f32>;         // backward only
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;  // y, or dx


// NaN by its bits: WGSL lets implementations assume floats are never NaN, so `v != v` may be
// folded to false (it is on lavapipe).
fn is_nan(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

fn flat(wid: vec3<u32>, nwg: vec3<u32>, li: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * 256u + li;
}

// In-plane index of the first maximum of window (oy, ox) of plane `base`.
fn argmax(base: u32, oy: u32, ox: u32) -> u32 {
    var best_at = (2u * oy) * p.w + 2u * ox;
    var best = x[base + best_at];
    for (var t = 1u; t < 4u; t++) {
        let at = (2u * oy + t / 2u) * p.w + 2u * ox + t % 2u;
        let v = x[base + at];
        if v > best || (is_nan(v) && !is_nan(best)) {
            best = v;
            best_at = at;
        }
    }
    return best_at;
}

@compute @workgroup_size(256)
fn forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat(wid, nwg, li);
    if i >= p.planes * p.oh * p.ow { return; }
    let ox = i % p.ow;
    let oy = (i / p.ow) % p.oh;
    let base = (i / (p.ow * p.oh)) * p.h * p.w;
    dst[i] = x[base + argmax(base, oy, ox)];
}

@compute @workgroup_size(256)
fn backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat(wid, nwg, li);
    if i >= p.planes * p.h * p.w { return; }
    let r = i % (p.h * p.w);
    let q = i / (p.h * p.w);
    let oy = (r / p.w) / 2u;
    let ox = (r % p.w) / 2u;
    var g = 0.0;
    if oy < p.oh && ox < p.ow {
        if argmax(q * p.h * p.w, oy, ox) == r { g = gy[(q * p.oh + oy) * p.ow + ox]; }
    }
    dst[i] = g;
}
