// Host: engine/src/kernels/adam.rs (CPU reference: engine/src/train/adam.rs and clip.rs).
// Adam with global-norm clipping over several tensors, in three kinds of dispatch:
//   sum_squares  per tensor, one workgroup per chunk of WG·CHUNK elements: norms[out_index +
//                chunk] = Σ grad² over the chunk (a tree in workgroup memory, fixed order)
//   reduce       one workgroup: norms[out_index] = Σ norms[0..count], the global norm²
//   adam         per tensor, one invocation per element: the gradient scaled to the clipping
//                norm, then adam_update (adam_update.wgsl); elements from scaled_from on take
//                lr · lr_scale
// The host prepends WG, CHUNK and adam_update.wgsl.

struct AdamParams {
    count: u32,        // elements of this tensor (sum_squares, adam) or partial sums (reduce)
    out_index: u32,    // where sum_squares and reduce write in norms
    norm_index: u32,   // where adam reads the global norm² in norms
    scaled_from: u32,
    lr: f32,
    lr_scale: f32,
    c1: f32,
    c2: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    max_norm: f32,     // 0: no clipping
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> ap: AdamParams;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read_write> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> m1: array<f32>;
@group(0) @binding(4) var<storage, read_write> m2: array<f32>;
@group(0) @binding(5) var<storage, read_write> norms: array<f32>;

var<workgroup> partial: array<f32, WG>;

fn tree_sum(lid: u32, s: f32) -> f32 {
    partial[lid] = s;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
        if (lid < stride) {
            partial[lid] += partial[lid + stride];
        }
        workgroupBarrier();
    }
    return partial[0];
}

@compute @workgroup_size(WG)
fn sum_squares(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let chunk = wid.x + wid.y * nwg.x;
    let start = chunk * WG * CHUNK;
    var s = 0.0;
    for (var t = 0u; t < CHUNK; t++) {
        let i = start + t * WG + lid.x;
        if (i < ap.count) {
            s += grad[i] * grad[i];
        }
    }
    let total = tree_sum(lid.x, s);
    if (lid.x == 0u) {
        norms[ap.out_index + chunk] = total;
    }
}

@compute @workgroup_size(WG)
fn reduce(@builtin(local_invocation_id) lid: vec3<u32>) {
    var s = 0.0;
    for (var i = lid.x; i < ap.count; i += WG) {
        s += norms[i];
    }
    let total = tree_sum(lid.x, s);
    if (lid.x == 0u) {
        norms[ap.out_index] = total;
    }
}

@compute @workgroup_size(WG)
fn adam(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= ap.count) { return; }
    let norm = sqrt(norms[ap.norm_index]);
    var g = grad[i];
    if (ap.max_norm > 0.0 && norm > ap.max_norm) {
        g *= ap.max_norm / norm;
    }
    var m = m1[i];
    var v = m2[i];
    let lr = select(ap.lr, ap.lr * ap.lr_scale, i >= ap.scaled_from);
    param[i] = adam_update(param[i], g, &m, &v, lr, ap.c1, ap.c2, ap.beta1, ap.beta2, ap.eps, ap.weight_decay);
    m1[i] = m;
    m2[i] = v;
}
