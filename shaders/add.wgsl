// Host: engine/src/kernels/add.rs (CPU reference: the elementwise sum and product).
// out[i] = a[i] + b[i]: the residual stream's additions (resid_mid = resid_pre + attn_out,
// resid_post = resid_mid + mlp_out), an invocation an element; and out[i] = a[i] · s, with b
// bound but unread (an SAE's batch scaled to its input scale).

struct AddParams {
    n: u32,
    s: f32,
    _b: u32,
    _c: u32,
}

@group(0) @binding(0) var<uniform> ad: AddParams;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn add(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = group_index(wid, nwg) * 256u + lid;
    if (i < ad.n) {
        out[i] = a[i] + b[i];
    }
}

@compute @workgroup_size(256)
fn scale(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = group_index(wid, nwg) * 256u + lid;
    if (i < ad.n) {
        out[i] = a[i] * ad.s;
    }
}
