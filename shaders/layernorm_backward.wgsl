// Host: engine/src/kernels/layernorm.rs (CPU reference: layernorm_backward_ref there).
// LayerNorm's backward from the forward's `stats` (s, then the mean, per row):
//   ln_backward_rows:   dx = (dx̂ − mean(dx̂) − x̂ · mean(dx̂ x̂)) / s with dx̂ = dy · w, a
//                       segment of SEG invocations per row (the forward's fixed-order sums);
//   ln_backward_params: dw[i] (+)= Σ_rows dy · x̂, db[i] (+)= Σ_rows dy, one invocation per
//                       column walking the rows in order (adjacent invocations read adjacent
//                       words), so the sums are deterministic. ACCUMULATE adds to dw and db.

struct LnParams {
    rows: u32,
    width: u32,
    eps: f32,
    accumulate: u32,
}

@group(0) @binding(0) var<uniform> lp: LnParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var<storage, read> stats: array<f32>;
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;
@group(0) @binding(6) var<storage, read_write> dw: array<f32>;
@group(0) @binding(7) var<storage, read_write> db: array<f32>;

@compute @workgroup_size(256)
fn ln_backward_rows(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = group_index(wid, nwg) * SEG_ROWS + lid / SEG;
    let lane = lid % SEG;
    let live = row < lp.rows;
    let width = select(0u, lp.width, live);
    let at = row * lp.width;
    var s = 1.0;
    var mean = 0.0;
    if (live) {
        s = stats[row];
        mean = stats[lp.rows + row];
    }
    var m1 = 0.0;
    var m2 = 0.0;
    for (var i = lane; i < width; i += SEG) {
        let g = dy[at + i] * w[i];
        m1 += g;
        m2 += g * (x[at + i] - mean) / s;
    }
    let n = f32(lp.width);
    let mean_g = segment_reduce(lid, m1, false) / n;
    let mean_gx = segment_reduce(lid, m2, false) / n;
    for (var i = lane; i < width; i += SEG) {
        let xh = (x[at + i] - mean) / s;
        dx[at + i] = (dy[at + i] * w[i] - mean_g - xh * mean_gx) / s;
    }
}

@compute @workgroup_size(256)
fn ln_backward_params(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = group_index(wid, nwg) * 256u + lid;
    if (i >= lp.width) {
        return;
    }
    var gw = 0.0;
    var gb = 0.0;
    for (var r = 0u; r < lp.rows; r++) {
        let g = dy[r * lp.width + i];
        gw += g * (x[r * lp.width + i] - stats[lp.rows + r]) / stats[r];
        gb += g;
    }
    if (lp.accumulate != 0u) {
        gw += dw[i];
        gb += db[i];
    }
    dw[i] = gw;
    db[i] = gb;
}
