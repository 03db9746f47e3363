// Host: engine/src/models/sae/kernels/sparse.rs (CPU references there).
// Products with a sparse code (idx, val) [B, k] and the decoder W_dec [d_sae, d_in]:
//   decode       dense = Σ_t val[b, t] · W_dec[idx[b, t], :] + b_dec, one invocation per
//                (row, column), 256 / width rows to a workgroup, summed in increasing t
//   latent_grad  val[b, t] = W_dec[idx[b, t], :] · dense[b, :], one invocation per entry,
//                summed in increasing column
// Entries with idx = NO_LATENT (or any index past d_sae) contribute nothing and get 0. The
// host declares `b_dec` (binding 5 for decode, a private stub for latent_grad) and, after it,
// `code_rows` with ROWS: a code of B·k entries whose rows hold varying numbers of them
// (BatchTopK's), [B·k] the row of each entry then [B + 1] each row's first entry.

struct SparseParams {
    batch: u32,
    k: u32,
    d_in: u32,
    d_sae: u32,
    col_tiles: u32,
    groups: u32,
    // Columns per row in a decode workgroup (64, 128 or 256), which serves 256 / width rows.
    width: u32,
}

@group(0) @binding(0) var<uniform> sp: SparseParams;
@group(0) @binding(1) var<storage, read> code_idx: array<u32>;
@group(0) @binding(2) var<storage, read_write> code_val: array<f32>;
@group(0) @binding(3) var<storage, read> w_dec: array<f32>;
@group(0) @binding(4) var<storage, read_write> dense: array<f32>;

@compute @workgroup_size(256)
fn decode(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = group_index(wid, nwg);
    let row = (g / sp.col_tiles) * (256u / sp.width) + lid / sp.width;
    let col = (g % sp.col_tiles) * sp.width + lid % sp.width;
    if (g >= sp.groups || row >= sp.batch || col >= sp.d_in) {
        return;
    }
    var start = row * sp.k;
    var end = start + sp.k;
    if (ROWS) {
        start = code_rows[sp.batch * sp.k + row];
        end = code_rows[sp.batch * sp.k + row + 1u];
    }
    var acc = 0.0;
    for (var t = start; t < end; t++) {
        let j = code_idx[t];
        if (j < sp.d_sae) {
            acc += code_val[t] * w_dec[j * sp.d_in + col];
        }
    }
    dense[row * sp.d_in + col] = acc + b_dec[col];
}

@compute @workgroup_size(64)
fn latent_grad(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let e = group_index(wid, nwg) * 64u + lid;
    if (e >= sp.batch * sp.k) {
        return;
    }
    let j = code_idx[e];
    var acc = 0.0;
    if (j < sp.d_sae) {
        let w = j * sp.d_in;
        var row = e / sp.k;
        if (ROWS) {
            row = code_rows[e];
        }
        let x = row * sp.d_in;
        for (var i = 0u; i < sp.d_in; i++) {
            acc += w_dec[w + i] * dense[x + i];
        }
    }
    code_val[e] = acc;
}
