// BatchTopK: the `keep` largest entries of ReLU(pre) over the whole [B, n] matrix, ties by
// lower flat index, written densely to f (everything else 0).
//
// A global radix select over keys relu_key(pre), like sae_topk.wgsl's but across workgroups:
//   init                  zero the histogram, state: nothing found, keep entries to take
//   hist_value, pick_value ×4   each workgroup histograms a chunk of 4096 entries into global
//                         memory (atomics on counts, so the order of adds does not matter);
//                         one workgroup then picks the next 8 bits of the threshold key T
//   hist_index, pick_index ×≤4  the same over flat indices among the entries tied at T, when
//                         only some of them are taken
//   write                 f = ReLU(pre) where key > T, or key == T and index <= the limit
// scratch: [0, 256) the histogram; [256, 264) the state: T's bits, entries still to take,
// entries matching, index bits, index limit, the threshold value (f32 bits, written last).

struct BatchParams {
    total: u32,
    keep: u32,
    shift: u32,
    groups: u32,
}

@group(0) @binding(0) var<uniform> bp: BatchParams;
@group(0) @binding(1) var<storage, read_write> pre: array<f32>;
@group(0) @binding(2) var<storage, read_write> f_out: array<f32>;
@group(0) @binding(3) var<storage, read_write> scratch: array<atomic<u32>>;

const WG: u32 = 256u;
const CHUNK: u32 = 4096u;
const STATE: u32 = 256u;

var<workgroup> local_hist: array<atomic<u32>, 256>;
var<workgroup> shared_a: u32;
var<workgroup> shared_b: u32;
var<workgroup> shared_c: u32;
var<workgroup> shared_d: u32;

fn high_mask(shift: u32) -> u32 {
    return select(0xffffffffu << (shift + 8u), 0u, shift >= 24u);
}

@compute @workgroup_size(256)
fn init(@builtin(local_invocation_index) lid: u32) {
    atomicStore(&scratch[lid], 0u);
    if (lid == 0u) {
        atomicStore(&scratch[STATE], 0u);
        atomicStore(&scratch[STATE + 1u], bp.keep);
        atomicStore(&scratch[STATE + 2u], bp.total);
        atomicStore(&scratch[STATE + 3u], 0u);
        atomicStore(&scratch[STATE + 4u], NO_LATENT);
        atomicStore(&scratch[STATE + 5u], 0u);
    }
}

@compute @workgroup_size(256)
fn hist_value(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = group_index(wid, nwg);
    if (g >= bp.groups) {
        return;
    }
    atomicStore(&local_hist[lid], 0u);
    if (lid == 0u) {
        shared_a = atomicLoad(&scratch[STATE]);
    }
    let prefix = workgroupUniformLoad(&shared_a);
    let high = high_mask(bp.shift);
    let end = min(g * CHUNK + CHUNK, bp.total);
    for (var e = g * CHUNK + lid; e < end; e += WG) {
        let key = relu_key(pre[e]);
        if ((key & high) == prefix) {
            atomicAdd(&local_hist[(key >> bp.shift) & 255u], 1u);
        }
    }
    workgroupBarrier();
    let h = atomicLoad(&local_hist[lid]);
    if (h != 0u) {
        atomicAdd(&scratch[lid], h);
    }
}

@compute @workgroup_size(256)
fn pick_value(@builtin(local_invocation_index) lid: u32) {
    if (lid == 0u) {
        shared_a = atomicLoad(&scratch[STATE]);
        shared_b = atomicLoad(&scratch[STATE + 1u]);
    }
    let r = workgroupUniformLoad(&shared_b);
    let prefix = shared_a;
    let h = atomicLoad(&scratch[lid]);
    atomicStore(&scratch[lid], 0u);
    let incl = scan256(lid, h, true);
    let above = incl - h;
    if (above < r && r <= incl) {
        atomicStore(&scratch[STATE], prefix | (lid << bp.shift));
        atomicStore(&scratch[STATE + 1u], r - above);
        atomicStore(&scratch[STATE + 2u], h);
    }
}

@compute @workgroup_size(256)
fn hist_index(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = group_index(wid, nwg);
    if (g >= bp.groups) {
        return;
    }
    atomicStore(&local_hist[lid], 0u);
    if (lid == 0u) {
        shared_a = atomicLoad(&scratch[STATE]);
        shared_b = atomicLoad(&scratch[STATE + 1u]);
        shared_c = atomicLoad(&scratch[STATE + 2u]);
        shared_d = atomicLoad(&scratch[STATE + 3u]);
    }
    let r = workgroupUniformLoad(&shared_b);
    let count = workgroupUniformLoad(&shared_c);
    if (r == count) {
        return;
    }
    let t = shared_a;
    let prefix = shared_d;
    let high = high_mask(bp.shift);
    let end = min(g * CHUNK + CHUNK, bp.total);
    for (var e = g * CHUNK + lid; e < end; e += WG) {
        if ((e & high) == prefix && relu_key(pre[e]) == t) {
            atomicAdd(&local_hist[(e >> bp.shift) & 255u], 1u);
        }
    }
    workgroupBarrier();
    let h = atomicLoad(&local_hist[lid]);
    if (h != 0u) {
        atomicAdd(&scratch[lid], h);
    }
}

@compute @workgroup_size(256)
fn pick_index(@builtin(local_invocation_index) lid: u32) {
    if (lid == 0u) {
        shared_b = atomicLoad(&scratch[STATE + 1u]);
        shared_c = atomicLoad(&scratch[STATE + 2u]);
        shared_d = atomicLoad(&scratch[STATE + 3u]);
    }
    let r = workgroupUniformLoad(&shared_b);
    let count = workgroupUniformLoad(&shared_c);
    if (r == count) {
        // hist_index added nothing either, so the histogram is still zero.
        return;
    }
    let prefix = shared_d;
    let h = atomicLoad(&scratch[lid]);
    atomicStore(&scratch[lid], 0u);
    let incl = scan256(lid, h, false);
    let below = incl - h;
    if (below < r && r <= incl) {
        let p = prefix | (lid << bp.shift);
        atomicStore(&scratch[STATE + 1u], r - below);
        atomicStore(&scratch[STATE + 2u], h);
        atomicStore(&scratch[STATE + 3u], p);
        atomicStore(&scratch[STATE + 4u], p | ((1u << bp.shift) - 1u));
    }
}

@compute @workgroup_size(256)
fn write(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = group_index(wid, nwg);
    if (g >= bp.groups) {
        return;
    }
    if (lid == 0u) {
        shared_a = atomicLoad(&scratch[STATE]);
        shared_b = atomicLoad(&scratch[STATE + 4u]);
    }
    let t = workgroupUniformLoad(&shared_a);
    let limit = shared_b;
    if (g == 0u && lid == 0u) {
        atomicStore(&scratch[STATE + 5u], bitcast<u32>(key_value(t)));
    }
    let end = min(g * CHUNK + CHUNK, bp.total);
    for (var e = g * CHUNK + lid; e < end; e += WG) {
        let key = relu_key(pre[e]);
        let keep = key > t || (key == t && e <= limit);
        f_out[e] = select(0.0, key_value(key), keep);
    }
}
