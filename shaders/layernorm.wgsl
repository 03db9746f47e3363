// Host: engine/src/kernels/layernorm.rs (CPU reference: layernorm_ref there).
// LayerNorm over rows as TransformerLens computes it: x̂ = (x − mean) / s with
// s = √(mean((x − mean)²) + ε), y = x̂ · w + b. One 256-invocation workgroup per row: strided
// partial sums in a fixed order, then a tree in workgroup memory, so every row sums the same way
// on every run. `stats` [2, rows] keeps s (TransformerLens's hook_scale) then the mean, which
// the backward pass reads.

struct LnParams {
    rows: u32,
    width: u32,
    eps: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> lp: LnParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read_write> stats: array<f32>;

@compute @workgroup_size(256)
fn ln_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = group_index(wid, nwg);
    if (row >= lp.rows) {
        return;
    }
    let at = row * lp.width;
    var s = 0.0;
    for (var i = lid; i < lp.width; i += 256u) {
        s += x[at + i];
    }
    let mean = workgroup_reduce(lid, s, false) / f32(lp.width);
    var q = 0.0;
    for (var i = lid; i < lp.width; i += 256u) {
        let c = x[at + i] - mean;
        q += c * c;
    }
    let scale = sqrt(workgroup_reduce(lid, q, false) / f32(lp.width) + lp.eps);
    for (var i = lid; i < lp.width; i += 256u) {
        y[at + i] = (x[at + i] - mean) / scale * w[i] + b[i];
    }
    if (lid == 0u) {
        stats[row] = scale;
        stats[lp.rows + row] = mean;
    }
}
