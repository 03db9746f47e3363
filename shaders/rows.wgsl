// Host: engine/src/kernels/rows.rs (CPU references: centre_ref, row_norms_ref,
// normalize_rows_ref, sum_ref beside it).
// Row-wise ops on a [rows, width] matrix and a vector's sum: out = a − b broadcast over rows (an
// SAE's centred input x − b_dec); the L2 norm of each row of a; each row of out scaled to unit
// norm in place (an SAE's decoder after its step); and one workgroup summing a into
// out[index] in a fixed order (a batch's loss). The host declares `a` and `b` (read-only) after
// `out` as the entry point needs them.

struct RowsParams {
    rows: u32,
    width: u32,
    index: u32,
    _a: u32,
}

@group(0) @binding(0) var<uniform> rp: RowsParams;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn centre(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = group_index(wid, nwg) * 256u + lid;
    if (i < rp.rows * rp.width) {
        out[i] = a[i] - b[i % rp.width];
    }
}

@compute @workgroup_size(256)
fn row_norms(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let r = group_index(wid, nwg) * 256u + lid;
    if (r >= rp.rows) {
        return;
    }
    var n = 0.0;
    for (var i = 0u; i < rp.width; i++) {
        n += a[r * rp.width + i] * a[r * rp.width + i];
    }
    out[r] = sqrt(n);
}

@compute @workgroup_size(256)
fn normalize_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let r = group_index(wid, nwg) * 256u + lid;
    if (r >= rp.rows) {
        return;
    }
    var n = 0.0;
    for (var i = 0u; i < rp.width; i++) {
        n += out[r * rp.width + i] * out[r * rp.width + i];
    }
    n = sqrt(n);
    if (n > 0.0) {
        for (var i = 0u; i < rp.width; i++) {
            out[r * rp.width + i] /= n;
        }
    }
}

var<workgroup> partial: array<f32, 256>;

@compute @workgroup_size(256)
fn sum(@builtin(local_invocation_index) lid: u32) {
    var s = 0.0;
    for (var i = lid; i < rp.rows * rp.width; i += 256u) {
        s += a[i];
    }
    partial[lid] = s;
    workgroupBarrier();
    for (var stride = 128u; stride > 0u; stride /= 2u) {
        if (lid < stride) {
            partial[lid] += partial[lid + stride];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        out[rp.index] = partial[0];
    }
}
