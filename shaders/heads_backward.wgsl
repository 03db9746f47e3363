// Host: engine/src/kernels/heads.rs (CPU reference: heads_backward_ref there).
// The backward of the per-head projections out[r, h, e] = Σ_m x[r, m] w[h, m, e] + bias[h, e]:
//   heads_backward_x  dx[r, m] (+)= Σ_(h, e) dout[r, h, e] · w[h, m, e], an invocation an element
//                     (ACCUMULATE adds to dx: queries, keys and values share one input)
//   heads_backward_w  dw[h, m, e] = Σ_r x[r, m] · dout[r, h, e] and, for m = 0, dbias[h, e] =
//                     Σ_r dout[r, h, e], an invocation a weight, rows summed in order.

struct HeadsParams {
    rows: u32,
    d_in: u32,
    heads: u32,
    d_head: u32,
    accumulate: u32,
    _a: u32,
    _b: u32,
    _c: u32,
}

@group(0) @binding(0) var<uniform> hp: HeadsParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> dout: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;
@group(0) @binding(5) var<storage, read_write> dw: array<f32>;
@group(0) @binding(6) var<storage, read_write> dbias: array<f32>;

@compute @workgroup_size(256)
fn heads_backward_x(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let idx = group_index(wid, nwg) * 256u + lid;
    if (idx >= hp.rows * hp.d_in) { return; }
    let r = idx / hp.d_in;
    let m = idx % hp.d_in;
    let width = hp.heads * hp.d_head;
    var acc = 0.0;
    for (var he = 0u; he < width; he++) {
        let h = he / hp.d_head;
        let e = he % hp.d_head;
        acc += dout[r * width + he] * w[(h * hp.d_in + m) * hp.d_head + e];
    }
    if (hp.accumulate != 0u) {
        acc += dx[idx];
    }
    dx[idx] = acc;
}

@compute @workgroup_size(256)
fn heads_backward_w(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let idx = group_index(wid, nwg) * 256u + lid;
    let width = hp.heads * hp.d_head;
    if (idx >= hp.d_in * width) { return; }
    let e = idx % hp.d_head;
    let m = (idx / hp.d_head) % hp.d_in;
    let h = idx / (hp.d_head * hp.d_in);
    let he = h * hp.d_head + e;
    var acc = 0.0;
    var bias_acc = 0.0;
    for (var r = 0u; r < hp.rows; r++) {
        let g = dout[r * width + he];
        acc += x[r * hp.d_in + m] * g;
        bias_acc += g;
    }
    dw[idx] = acc;
    if (m == 0u) {
        dbias[he] = bias_acc;
    }
}
