// Host: engine/src/models/sae/kernels/batch_topk.rs (CPU reference: batch_topk_ref there).
// BatchTopK: the `keep` largest entries of ReLU(pre) over the whole [B, n] matrix, ties by
// lower flat index, written as a sparse code in row-major order.
//
// The matrix may come in chunks of whole rows, one buffer each (so a batch whose pre-activations
// exceed one binding still selects exactly); every dispatch but the picks reads one chunk,
// `base` being the flat index of its first entry.
//
// A global radix select over keys relu_key(pre), like topk.wgsl's but across workgroups:
//   init                  zero the histogram, state: nothing found, keep entries to take
//   hist_value, pick_value ×4   each workgroup histograms 4096 entries of a chunk into global
//                         memory (atomics on counts, so the order of adds does not matter);
//                         once every chunk is counted, one workgroup picks the next 8 bits of
//                         the threshold key T
//   hist_index, pick_index ×≤4  the same over flat indices among the entries tied at T, when
//                         only some of them are taken
//   count_rows            per row: entries kept (key > T, or key == T and index <= the limit)
//   scan_rows             the counts become each row's first entry
//   compact               per row: its kept entries in increasing latent order
// scratch: [0, 256) the histogram; [256, 264) the state: T's bits, entries still to take,
// entries matching, index bits, index limit. The code: idx and val [keep]; code_rows [keep] the
// row of each entry, then [B + 1] the first entry of each row (the layout the sparse kernels
// read).

struct BatchParams {
    total: u32,   // entries of the whole matrix
    keep: u32,
    shift: u32,
    groups: u32,  // workgroups of this dispatch
    base: u32,    // flat index of the chunk's first entry
    len: u32,     // entries in the chunk
    n: u32,       // entries per row
    row0: u32,    // the chunk's first row
    rows: u32,    // rows in the chunk
    batch: u32,
}

@group(0) @binding(0) var<uniform> bp: BatchParams;
@group(0) @binding(1) var<storage, read_write> pre: array<f32>;
@group(0) @binding(2) var<storage, read_write> scratch: array<atomic<u32>>;
@group(0) @binding(3) var<storage, read_write> code_idx: array<u32>;
@group(0) @binding(4) var<storage, read_write> code_val: array<f32>;
@group(0) @binding(5) var<storage, read_write> code_rows: array<u32>;

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
    let end = min(g * CHUNK + CHUNK, bp.len);
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
    let end = min(g * CHUNK + CHUNK, bp.len);
    for (var e = g * CHUNK + lid; e < end; e += WG) {
        let flat = bp.base + e;
        if ((flat & high) == prefix && relu_key(pre[e]) == t) {
            atomicAdd(&local_hist[(flat >> bp.shift) & 255u], 1u);
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

// Loads the selection (T, the index limit) into the workgroup; call from uniform control flow.
fn selection(lid: u32) -> vec2<u32> {
    if (lid == 0u) {
        shared_a = atomicLoad(&scratch[STATE]);
        shared_b = atomicLoad(&scratch[STATE + 4u]);
    }
    let t = workgroupUniformLoad(&shared_a);
    return vec2(t, shared_b);
}

// Whether the chunk's entry e is kept, and its key.
fn kept(e: u32, sel: vec2<u32>) -> vec2<u32> {
    let key = relu_key(pre[e]);
    let take = key > sel.x || (key == sel.x && bp.base + e <= sel.y);
    return vec2(select(0u, 1u, take), key);
}

// One workgroup per row of the chunk: its kept entries, at code_rows[keep + row + 1].
@compute @workgroup_size(256)
fn count_rows(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let r = group_index(wid, nwg);
    if (r >= bp.rows) {
        return;
    }
    let sel = selection(lid);
    var c = 0u;
    for (var j = lid; j < bp.n; j += WG) {
        c += kept(r * bp.n + j, sel).x;
    }
    let all = scan256(lid, c, false);
    if (lid == 255u) {
        code_rows[bp.keep + bp.row0 + r + 1u] = all;
    }
}

// One workgroup: the row counts become exclusive offsets, code_rows[keep + B] = keep.
@compute @workgroup_size(256)
fn scan_rows(@builtin(local_invocation_index) lid: u32) {
    let at = bp.keep + 1u;
    var carry = 0u;
    for (var r0 = 0u; r0 < bp.batch; r0 += WG) {
        let r = r0 + lid;
        var v = 0u;
        if (r < bp.batch) {
            v = code_rows[at + r];
        }
        let incl = scan256(lid, v, false);
        if (r < bp.batch) {
            code_rows[at + r] = carry + incl;
        }
        carry += scan_buf[255];
        workgroupBarrier();
    }
    if (lid == 0u) {
        code_rows[bp.keep] = 0u;
    }
}

// One workgroup per row of the chunk: writes its kept entries from the row's offset in
// increasing latent order. Each invocation owns a contiguous run of the row's latents: it
// counts its kept entries, one scan turns the counts into offsets, and it writes them: one
// scan a row instead of one per 256 latents (sixteen for a row of 4096), and barriers are
// what costs most on software adapters.
@compute @workgroup_size(256)
fn compact(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let r = group_index(wid, nwg);
    if (r >= bp.rows) {
        return;
    }
    let sel = selection(lid);
    let row = bp.row0 + r;
    let run = (bp.n + WG - 1u) / WG;
    let first = min(lid * run, bp.n);
    let last = min(first + run, bp.n);
    var c = 0u;
    for (var j = first; j < last; j++) {
        c += kept(r * bp.n + j, sel).x;
    }
    var at = code_rows[bp.keep + row] + scan256(lid, c, false) - c;
    for (var j = first; j < last && c > 0u; j++) {
        let k = kept(r * bp.n + j, sel);
        if (k.x == 1u) {
            code_idx[at] = j;
            code_val[at] = key_value(k.y);
            code_rows[at] = row;
            at += 1u;
            c -= 1u;
        }
    }
}
