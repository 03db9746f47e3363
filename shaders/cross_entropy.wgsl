// Host: engine/src/kernels/cross_entropy.rs (CPU reference: cross_entropy_ref there).
// TransformerLens's language-modelling loss: each position predicts the next token of its row;
// the loss is the mean over every position but the last of each row.
// Large vocabularies take the positions in chunks (the unembedding's logits of every position at
// once would pass a binding's limit): logits and dlogits hold one chunk, rows `first ..
// first + rows` of the whole; tokens and row_loss are the whole batch's.
//   ce_rows  a segment of SEG invocations a position, SEG_ROWS a workgroup (common.wgsl): row_loss = log Σ exp(logits) − logit[target]
//            (0 at a row's last position), dlogits = (softmax − one-hot) / N
//   ce_sum   one workgroup: loss[0] = Σ row_loss / N over all `rows`, in a fixed order

struct CeParams {
    rows: u32,
    pos: u32,
    vocab: u32,
    count: f32,   // N, the predicted positions
    first: u32,   // the chunk's first position in the batch (ce_rows)
}

@group(0) @binding(0) var<uniform> cp: CeParams;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> tokens: array<u32>;
@group(0) @binding(3) var<storage, read_write> dlogits: array<f32>;
@group(0) @binding(4) var<storage, read_write> row_loss: array<f32>;
@group(0) @binding(5) var<storage, read_write> loss: array<f32>;

@compute @workgroup_size(256)
fn ce_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let r = group_index(wid, nwg) * SEG_ROWS + lid / SEG;
    let lane = lid % SEG;
    let live = r < cp.rows;
    let at = r * cp.vocab;
    let g = cp.first + r;
    // A row's last position predicts nothing: zero gradient and loss. It (and a row past the
    // end) loops over nothing in the reductions but still meets every barrier.
    let last = live && (g % cp.pos) == cp.pos - 1u;
    if (last) {
        for (var j = lane; j < cp.vocab; j += SEG) {
            dlogits[at + j] = 0.0;
        }
        if (lane == 0u) { row_loss[g] = 0.0; }
    }
    let vocab = select(0u, cp.vocab, live && !last);
    var tgt = 0u;
    if (vocab > 0u) {
        tgt = tokens[g + 1u];
    }
    var m = -3.4028234663852886e38;
    for (var j = lane; j < vocab; j += SEG) {
        m = max(m, logits[at + j]);
    }
    let row_max = segment_reduce(lid, m, true);
    var s = 0.0;
    for (var j = lane; j < vocab; j += SEG) {
        s += exp(logits[at + j] - row_max);
    }
    let total = segment_reduce(lid, s, false);
    for (var j = lane; j < vocab; j += SEG) {
        let p = exp(logits[at + j] - row_max) / total;
        dlogits[at + j] = (p - select(0.0, 1.0, j == tgt)) / cp.count;
    }
    if (vocab > 0u && lane == 0u) {
        row_loss[g] = log(total) + row_max - logits[at + tgt];
    }
}

@compute @workgroup_size(256)
fn ce_sum(@builtin(local_invocation_index) lid: u32) {
    var s = 0.0;
    for (var r = lid; r < cp.rows; r += 256u) {
        s += row_loss[r];
    }
    let total = workgroup_reduce(lid, s, false);
    if (lid == 0u) {
        loss[0] = total / cp.count;
    }
}
