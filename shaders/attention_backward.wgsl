// Host: engine/src/kernels/attention.rs (CPU reference: attention_backward_ref there).
// Causal attention's backward from the forward's pattern and the gradient at z (layouts as in
// attention.wgsl). dP = dz · vᵀ, dq = dS · k, dk = dSᵀ · q and dv = Pᵀ · dz are batched tiled
// products (matmul.wgsl); this is the step between the first and the rest:
//   attn_backward_ds  ds holds dP: replace each row by dS = P (dP − Σ P dP) / √d_head, a
//                     segment of SEG invocations a (batch, head, query) row (common.wgsl).
// Every sum is one chain in a fixed order, and nothing accumulates with atomics, so the results
// are the same on every run.

struct AttnParams {
    batch: u32,
    pos: u32,
    heads: u32,
    d_head: u32,
    scale: f32,   // 1 / √d_head
    _a: u32,
    _b: u32,
    _c: u32,
}

@group(0) @binding(0) var<uniform> at: AttnParams;
@group(0) @binding(1) var<storage, read> pat: array<f32>;
@group(0) @binding(2) var<storage, read_write> ds: array<f32>;

@compute @workgroup_size(256)
fn attn_backward_ds(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = group_index(wid, nwg) * SEG_ROWS + lid / SEG;
    let lane = lid % SEG;
    let live = row < at.batch * at.heads * at.pos;
    let pos = select(0u, at.pos, live);
    let srow = row * at.pos;
    var acc = 0.0;
    for (var j = lane; j < pos; j += SEG) {
        acc += pat[srow + j] * ds[srow + j];
    }
    let dot = segment_reduce(lid, acc, false);
    // Above the diagonal P is 0, so dS is too whatever dP holds there.
    for (var j = lane; j < pos; j += SEG) {
        ds[srow + j] = pat[srow + j] * (ds[srow + j] - dot) * at.scale;
    }
}
