// Per-latent weight gradients from the lists of sae_lists.wgsl:
//   grad[j, :] += Σ_{e in list j} coef[e] · rows[e / k, :]   (and bias_grad[j] += Σ coef[e]
//   with BIAS)
// One workgroup per (latent, 256 columns) walks the latent's list, sorted by entry: each output
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
}

@group(0) @binding(0) var<uniform> sc: ScatterParams;
@group(0) @binding(1) var<storage, read_write> lists: array<u32>;
@group(0) @binding(2) var<storage, read_write> coef: array<f32>;
@group(0) @binding(3) var<storage, read_write> rows: array<f32>;
@group(0) @binding(4) var<storage, read_write> grad: array<f32>;

var<workgroup> shared_a: u32;

fn row_of(e: u32) -> u32 {
    if (ROWS) {
        return code_rows[e];
    }
    return e / sc.k;
}
var<workgroup> shared_b: u32;

@compute @workgroup_size(256)
fn accumulate(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = group_index(wid, nwg);
    let j = g / sc.col_tiles;
    if (j >= sc.d_sae) {
        return;
    }
    let tile = g % sc.col_tiles;
    if (lid == 0u) {
        shared_a = lists[sc.d_sae + j];
        shared_b = lists[sc.d_sae + j + 1u];
    }
    let start = sc.list_at + workgroupUniformLoad(&shared_a);
    let end = sc.list_at + workgroupUniformLoad(&shared_b);
    if (start == end) {
        return;
    }
    let col = tile * 256u + lid;
    if (col < sc.d_in) {
        var acc = 0.0;
        for (var p = start; p < end; p++) {
            let e = lists[p];
            acc += coef[e] * rows[row_of(e) * sc.d_in + col];
        }
        grad[j * sc.d_in + col] += acc;
    }
    if (BIAS && tile == 0u && lid == 0u) {
        var acc = 0.0;
        for (var p = start; p < end; p++) {
            acc += coef[lists[p]];
        }
        bias_grad[j] += acc;
    }
}
