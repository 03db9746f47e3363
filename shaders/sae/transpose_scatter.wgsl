// Host: engine/src/models/sae/kernels/transpose.rs (CPU reference: weight_grad_sparse_ref there).
// Per-latent weight gradients from the lists of sae/transpose_lists.wgsl:
//   grad[j, :] += Σ_{e in list j} coef[e] · rows[e / k, :]   (and bias_grad[j] += Σ coef[e]
//   with BIAS)
// One invocation per (latent, column) walks the latent's list, sorted by entry: each output
// element is one sum in increasing entry order added once to the old value, so the result is
// the same bits on every run. Latents with empty lists return at once and touch nothing. The
// host prepends BIAS and ROWS and declares `bias_grad` (with BIAS) and then `code_rows` (with
// ROWS: the row of each entry, for codes whose rows hold varying numbers of entries), each a
// private stub when absent.

struct ScatterParams {
    k: u32,
    d_in: u32,
    d_sae: u32,
    list_at: u32,
    col_tiles: u32,
    // Columns per latent in a workgroup: 64, 128 or 256 (the host's choice for d_in), so a
    // workgroup serves 256 / width latents and narrow rows do not leave most lanes idle.
    width: u32,
    // Items (groups of 256 / width latents × column tiles) in all, and per workgroup (more
    // than one only on software adapters, where each workgroup costs time to start).
    items: u32,
    span: u32,
}

@group(0) @binding(0) var<uniform> sc: ScatterParams;
@group(0) @binding(1) var<storage, read_write> lists: array<u32>;
@group(0) @binding(2) var<storage, read_write> coef: array<f32>;
@group(0) @binding(3) var<storage, read_write> rows: array<f32>;
@group(0) @binding(4) var<storage, read_write> grad: array<f32>;

fn row_of(e: u32) -> u32 {
    if (ROWS) {
        return code_rows[e];
    }
    return e / sc.k;
}

@compute @workgroup_size(256)
fn accumulate(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = group_index(wid, nwg);
    let first = g * sc.span;
    let last = min(first + sc.span, sc.items);
    for (var it = first; it < last; it++) {
        accumulate_item(it, lid);
    }
}

// Item `it` of the grid: latents (it / col_tiles) · 256 / width + lid / width, columns tile
// it % col_tiles.
fn accumulate_item(it: u32, lid: u32) {
    let j = (it / sc.col_tiles) * (256u / sc.width) + lid / sc.width;
    if (j >= sc.d_sae) {
        return;
    }
    let tile = it % sc.col_tiles;
    let lane = lid % sc.width;
    let start = sc.list_at + lists[sc.d_sae + j];
    let end = sc.list_at + lists[sc.d_sae + j + 1u];
    if (start == end) {
        return;
    }
    let col = tile * sc.width + lane;
    if (col < sc.d_in) {
        var acc = 0.0;
        for (var p = start; p < end; p++) {
            let e = lists[p];
            acc += coef[e] * rows[row_of(e) * sc.d_in + col];
        }
        grad[j * sc.d_in + col] += acc;
    }
    if (BIAS && tile == 0u && lane == 0u) {
        var acc = 0.0;
        for (var p = start; p < end; p++) {
            acc += coef[lists[p]];
        }
        bias_grad[j] += acc;
    }
}
