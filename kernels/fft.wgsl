// Complex FFT pieces over rows of interleaved (re, im) data; fft2 = rows, transpose, rows,
// transpose (host side). sign = -1 forward (NumPy: X_k = sum x_n e^{-2 pi i nk/N}), +1 inverse;
// every output is multiplied by `scale`.
//   rows_shared:    one workgroup per row of N = 2^log2n <= 2048: bit-reversed load into
//                   workgroup memory, log2n radix-2 butterfly stages, store.
//   stockham_pass:  one radix-2 Stockham stage in global memory (N > 2048), ping-pong buffers;
//                   stage with sub-length L = `half`: y[2i - k] = u0 + t, y[2i - k + L] = u0 - t,
//                   k = i mod L, u0 = x[i], t = e^{sign i pi k / L} x[i + N/2].
//   transpose:      (batch, R, C) -> (batch, C, R) through a 16x16 workgroup tile.
//   bluestein_*:    chirp-z for any N: a = x w (zero-padded to M = 2^m >= 2N-1),
//                   X = w (IFFT_M(FFT_M(a) FFT_M(b)))[:N], w_k = e^{sign i pi k^2 / N},
//                   b = conj(w) wrapped; aux holds w (pre/post) or FFT_M(b) (mul).

struct Params {
    rows: u32,
    n: u32,       // row length (complex elements) of src
    log2n: u32,
    half: u32,    // stockham_pass: current sub-transform length L
    m: u32,       // bluestein: padded length; transpose: columns C
    batch: u32,   // transpose
    sign: f32,
    scale: f32,
}

const PI: f32 = 3.14159265358979323846;
const MAX_SHARED: u32 = 2048u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec2<f32>>;
@group(0) @binding(3) var<storage, read> aux: array<vec2<f32>>;

var<workgroup> buf: array<vec2<f32>, 2048>;
var<workgroup> tile: array<vec2<f32>, 272>; // 16 x 17

fn cmul(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
    return vec2<f32>(a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x);
}

fn twiddle(k: u32, l: u32) -> vec2<f32> {
    let ang = p.sign * PI * f32(k) / f32(l);
    return vec2<f32>(cos(ang), sin(ang));
}

fn flat(wid: vec3<u32>, nwg: vec3<u32>, li: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * 256u + li;
}

@compute @workgroup_size(256)
fn rows_shared(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let row = wid.y * nwg.x + wid.x;
    if row >= p.rows { return; }
    let n = p.n;
    let base = row * n;
    for (var i = li; i < n; i += 256u) {
        var j = 0u;
        if p.log2n > 0u { j = reverseBits(i) >> (32u - p.log2n); }
        buf[j] = src[base + i];
    }
    workgroupBarrier();
    for (var s = 0u; s < p.log2n; s++) {
        let half = 1u << s;
        for (var b = li; b < n / 2u; b += 256u) {
            let pos = b & (half - 1u);
            let i0 = ((b >> s) << (s + 1u)) | pos;
            let i1 = i0 + half;
            let t = cmul(twiddle(pos, half), buf[i1]);
            let u = buf[i0];
            buf[i0] = u + t;
            buf[i1] = u - t;
        }
        workgroupBarrier();
    }
    for (var i = li; i < n; i += 256u) {
        dst[base + i] = buf[i] * p.scale;
    }
}

@compute @workgroup_size(256)
fn stockham_pass(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let j = flat(wid, nwg, li);
    let h = p.n / 2u;
    if j >= p.rows * h { return; }
    let row = j / h;
    let i = j % h;
    let base = row * p.n;
    let l = p.half;
    let k = i & (l - 1u);
    let u0 = src[base + i];
    let t = cmul(twiddle(k, l), src[base + i + h]);
    let o = base + 2u * i - k;
    dst[o] = (u0 + t) * p.scale;
    dst[o + l] = (u0 - t) * p.scale;
}

// src (batch, rows = R, m = C) -> dst (batch, C, R)
@compute @workgroup_size(16, 16, 1)
fn transpose(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let r_count = p.rows;
    let c_count = p.m;
    let plane = wid.z * r_count * c_count;
    let c = wid.x * 16u + lid.x;
    let r = wid.y * 16u + lid.y;
    if r < r_count && c < c_count {
        tile[lid.y * 17u + lid.x] = src[plane + r * c_count + c];
    }
    workgroupBarrier();
    // write: dst row = column c, dst column = row r
    let oc = wid.y * 16u + lid.x; // original row index
    let or = wid.x * 16u + lid.y; // original column index
    if oc < r_count && or < c_count {
        dst[plane + or * r_count + oc] = tile[lid.x * 17u + lid.y] * p.scale;
    }
}

// dst[row, k] = src[row, k] w_k for k < n, 0 for n <= k < m
@compute @workgroup_size(256)
fn bluestein_pre(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let j = flat(wid, nwg, li);
    if j >= p.rows * p.m { return; }
    let row = j / p.m;
    let k = j % p.m;
    var v = vec2<f32>(0.0, 0.0);
    if k < p.n { v = cmul(src[row * p.n + k], aux[k]); }
    dst[j] = v;
}

// dst[row, k] = src[row, k] aux[k] over rows of m
@compute @workgroup_size(256)
fn bluestein_mul(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let j = flat(wid, nwg, li);
    if j >= p.rows * p.m { return; }
    dst[j] = cmul(src[j], aux[j % p.m]);
}

// dst[row, k] = scale w_k src[row, k] for k < n (src rows of m)
@compute @workgroup_size(256)
fn bluestein_post(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let j = flat(wid, nwg, li);
    if j >= p.rows * p.n { return; }
    let row = j / p.n;
    let k = j % p.n;
    dst[j] = cmul(src[row * p.m + k], aux[k]) * p.scale;
}
