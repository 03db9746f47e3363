// Host: engine/src/kernels/attention.rs (CPU reference: attention_ref there).
// Causal multi-head attention's forward as TransformerLens computes it, on q, k, v laid out
// [batch, pos, head, d_head] (its hook_q|k|v): scores [batch, head, query, key] =
// q·k / √d_head with −∞ above the diagonal (hook_attn_scores), pattern = softmax over keys
// (hook_pattern), z = pattern · v in q's layout (hook_z). The two products are batched tiled
// products (matmul.wgsl, a product a (batch, head)); this is the step between them:
//   attn_softmax  scores hold q·kᵀ: scale and mask each row in place and write its softmax to
//                 pattern; a segment of SEG invocations a (batch, head, query) row, SEG_ROWS
//                 rows a workgroup (common.wgsl).
// Every sum is one chain in a fixed order, so results are the same on every run. The backward
// is attention_backward.wgsl.

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
@group(0) @binding(1) var<storage, read_write> scores: array<f32>;
@group(0) @binding(2) var<storage, read_write> pattern: array<f32>;

const NEG_INF: f32 = -3.4028234663852886e38;

@compute @workgroup_size(256)
fn attn_softmax(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = group_index(wid, nwg) * SEG_ROWS + lid / SEG;
    let lane = lid % SEG;
    let live = row < at.batch * at.heads * at.pos;
    // A row past the end loops over nothing but still meets every barrier.
    let pos = select(0u, at.pos, live);
    let i = row % at.pos;
    let srow = row * at.pos;
    var m = NEG_INF;
    for (var j = lane; j < pos; j += SEG) {
        if (j <= i) {
            let s = scores[srow + j] * at.scale;
            m = max(m, s);
            scores[srow + j] = s;
        } else {
            // TransformerLens's masked score is −∞ (built at run time: a constant −∞ is
            // refused by shader compilers; the host passes _a = 0).
            scores[srow + j] = bitcast<f32>(0xff800000u | at._a);
        }
    }
    let row_max = segment_reduce(lid, m, true);
    var total = 0.0;
    for (var j = lane; j < pos && j <= i; j += SEG) {
        total += exp(scores[srow + j] - row_max);
    }
    let denom = segment_reduce(lid, total, false);
    for (var j = lane; j < pos; j += SEG) {
        pattern[srow + j] = select(0.0, exp(scores[srow + j] - row_max) / denom, j <= i);
    }
}
