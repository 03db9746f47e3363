// Host: engine/src/kernels/heads.rs (CPU reference: heads_ref there).
// Per-head projections in TransformerLens's layout: out[r, h, e] = Σ_m x[r, m] · w[h, m, e]
// + bias[h, e] (W_Q, W_K, W_V [n_heads, d_model, d_head] on a [rows, d_model] input), one
// invocation an output element, the sum over m in increasing order.

struct HeadsParams {
    rows: u32,
    d_in: u32,
    heads: u32,
    d_head: u32,
}

@group(0) @binding(0) var<uniform> hp: HeadsParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn heads_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let idx = group_index(wid, nwg) * 256u + lid;
    let width = hp.heads * hp.d_head;
    if (idx >= hp.rows * width) { return; }
    let r = idx / width;
    let he = idx % width;
    let h = he / hp.d_head;
    let e = he % hp.d_head;
    var acc = 0.0;
    for (var m = 0u; m < hp.d_in; m++) {
        acc += x[r * hp.d_in + m] * w[(h * hp.d_in + m) * hp.d_head + e];
    }
    out[idx] = acc + bias[he];
}
