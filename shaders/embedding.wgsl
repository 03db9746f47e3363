// Host: engine/src/kernels/embedding.rs (CPU reference: embedding_ref there).
// The residual stream's start: resid[r, :] = W_E[tokens[r], :] + W_pos[r % pos, :], with the
// two terms also written apart (TransformerLens's hook_embed and hook_pos_embed). One invocation
// an element; a token past the vocabulary writes zeros (the host checks tokens first).

struct EmbedParams {
    rows: u32,
    pos: u32,
    d_model: u32,
    d_vocab: u32,
}

@group(0) @binding(0) var<uniform> ep: EmbedParams;
@group(0) @binding(1) var<storage, read> tokens: array<u32>;
@group(0) @binding(2) var<storage, read> w_e: array<f32>;
@group(0) @binding(3) var<storage, read> w_pos: array<f32>;
@group(0) @binding(4) var<storage, read_write> embed: array<f32>;
@group(0) @binding(5) var<storage, read_write> pos_embed: array<f32>;
@group(0) @binding(6) var<storage, read_write> resid: array<f32>;

@compute @workgroup_size(256)
fn embed_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let idx = group_index(wid, nwg) * 256u + lid;
    if (idx >= ep.rows * ep.d_model) { return; }
    let r = idx / ep.d_model;
    let c = idx % ep.d_model;
    let t = tokens[r];
    var e = 0.0;
    if (t < ep.d_vocab) {
        e = w_e[t * ep.d_model + c];
    }
    let p = w_pos[(r % ep.pos) * ep.d_model + c];
    embed[idx] = e;
    pos_embed[idx] = p;
    resid[idx] = e + p;
}
