// Host: engine/src/kernels/sum_rows.rs (CPU reference: sum_rows_ref there).
// Column sums of a [rows, width] matrix, out[c] (+)= Σ_r x[r, c]: a linear layer's bias
// gradient. One invocation a column walking the rows in order (adjacent invocations read
// adjacent words), so the sums are the same on every run.

struct SumParams {
    rows: u32,
    width: u32,
    accumulate: u32,
    _a: u32,
}

@group(0) @binding(0) var<uniform> sp: SumParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn sum_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let c = group_index(wid, nwg) * 256u + lid;
    if (c >= sp.width) { return; }
    var acc = 0.0;
    for (var r = 0u; r < sp.rows; r++) {
        acc += x[r * sp.width + c];
    }
    if (sp.accumulate != 0u) {
        acc += out[c];
    }
    out[c] = acc;
}
