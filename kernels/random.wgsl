// Counter-based standard normal samples: element i of the stream `key = (k0, k1)` is a pure
// function of (key, i), so the CPU (src/backend/cpu/random.rs) draws the same integers.
//   a = mix(mix((2i) ^ k0) ^ k1), b = mix(mix((2i + 1) ^ k0) ^ k1)   (mix = lowbias32)
//   u1 = ((a >> 8) + 1) / 2^24 in (0, 1], u2 = (b >> 8) / 2^24 in [0, 1)
//   z = scale * sqrt(-2 ln u1) cos(2 pi u2)                          (Box-Muller)

struct Params {
    n: u32,
    k0: u32,
    k1: u32,
    scale: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

fn mix(v: u32) -> u32 {
    var x = v;
    x ^= x >> 16u;
    x *= 0x7feb352du;
    x ^= x >> 15u;
    x *= 0x846ca68bu;
    x ^= x >> 16u;
    return x;
}

@compute @workgroup_size(256)
fn normal(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wid.y * nwg.x + wid.x) * 256u + li;
    if i >= p.n { return; }
    let a = mix(mix((2u * i) ^ p.k0) ^ p.k1);
    let b = mix(mix((2u * i + 1u) ^ p.k0) ^ p.k1);
    let u1 = f32((a >> 8u) + 1u) / 16777216.0;
    let u2 = f32(b >> 8u) / 16777216.0;
    out[i] = p.scale * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}
