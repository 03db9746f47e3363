// Host: engine/src/kernels/matmul.rs (split over k; CPU reference: matmul_ref there).
// A product with few output tiles and a long k runs as `parts` products over slices of k
// (matmul.wgsl, batched), each into its own [m, n] slab of `partial`; this sums the slabs in
// order into c, an invocation an element: c[m, n] = (old c with ACCUMULATE) + Σ_s partial[s]
// + (bias[n] with BIAS), at c's split layout with SPLIT_C (see matmul.wgsl). Fixed order, so
// the result is the same on every run.

struct ReduceParams {
    m: u32,
    n: u32,
    parts: u32,
    c_ld: u32,
    c_block: u32,
    c_stride: u32,
}

@group(0) @binding(0) var<uniform> rp: ReduceParams;
@group(0) @binding(1) var<storage, read> partial: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;

@compute @workgroup_size(256)
fn matmul_reduce(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = group_index(wid, nwg) * 256u + lid;
    let len = rp.m * rp.n;
    if (i >= len) {
        return;
    }
    let row = i / rp.n;
    let col = i % rp.n;
    var acc = 0.0;
    for (var s = 0u; s < rp.parts; s++) {
        acc += partial[s * len + i];
    }
    // The same order as an unsplit product's store: the sum, then the bias, then the old c.
    if (BIAS) {
        acc += bias[col];
    }
    var at = i;
    if (SPLIT_C) {
        at = row * rp.c_ld + (col / rp.c_block) * rp.c_stride + col % rp.c_block;
    }
    if (ACCUMULATE) {
        acc = c[at] + acc;
    }
    c[at] = acc;
}
