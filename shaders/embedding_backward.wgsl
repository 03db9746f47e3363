// Host: engine/src/kernels/embedding.rs (CPU reference: embedding_backward_ref there).
// The embeddings' gradients from the gradient at the residual stream's start:
//   embed_backward_tokens  dW_E[t, c] = Σ over the rows r holding token t (in increasing r) of
//                          g[r, c], an invocation an element of dW_E; the rows of each token
//                          come as lists (offsets [d_vocab + 1], rows) the host sorted, so
//                          nothing accumulates with atomics and the sums do not depend on timing
//   embed_backward_pos     dW_pos[p, c] = Σ_b g[b · pos + p, c] for p < pos (0 past it)

struct EmbedParams {
    rows: u32,
    pos: u32,
    d_model: u32,
    d_vocab: u32,
    n_ctx: u32,
    _a: u32,
    _b: u32,
    _c: u32,
}

@group(0) @binding(0) var<uniform> ep: EmbedParams;
@group(0) @binding(1) var<storage, read> offsets: array<u32>;
@group(0) @binding(2) var<storage, read> list: array<u32>;
@group(0) @binding(3) var<storage, read> g: array<f32>;
@group(0) @binding(4) var<storage, read_write> dw_e: array<f32>;
@group(0) @binding(5) var<storage, read_write> dw_pos: array<f32>;

@compute @workgroup_size(256)
fn embed_backward_tokens(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let idx = group_index(wid, nwg) * 256u + lid;
    if (idx >= ep.d_vocab * ep.d_model) { return; }
    let t = idx / ep.d_model;
    let c = idx % ep.d_model;
    var acc = 0.0;
    for (var i = offsets[t]; i < offsets[t + 1u]; i++) {
        acc += g[list[i] * ep.d_model + c];
    }
    dw_e[idx] = acc;
}

@compute @workgroup_size(256)
fn embed_backward_pos(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let idx = group_index(wid, nwg) * 256u + lid;
    if (idx >= ep.n_ctx * ep.d_model) { return; }
    let p = idx / ep.d_model;
    let c = idx % ep.d_model;
    var acc = 0.0;
    if (p < ep.pos) {
        for (var r = p; r < ep.rows; r += ep.pos) {
            acc += g[r * ep.d_model + c];
        }
    }
    dw_pos[idx] = acc;
}
