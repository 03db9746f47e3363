// Host: engine/src/kernels/topk.rs (CPU reference: topk_ref there).
// Per-row TopK of ReLU(pre): for each row of pre [B, n], the k entries first in the order
// (value descending, index ascending), written as idx [B, k] and val [B, k] in that order.
// With USE_MASK only latents whose mask word is non-zero are eligible; slots left over when
// fewer than k are eligible hold (NO_LATENT, 0). The host prepends USE_MASK and declares
// `mask` (binding 5 with a mask, a private stub without).
//
// One workgroup per row. Keys are relu_key(pre) (0 for ineligible latents), so "first in the
// order" is "largest key, then lowest index". For k <= LIST_K, list_select (at the end) does it
// in one dispatch. Beyond, the k winners are found by radix select instead of a sort of the row:
//   value_pass ×4   8 bits of the k-th largest key T at a time, most significant first, from a
//                   histogram of the entries that match the bits found so far
//   index_pass ×≤4  when T is tied and only r of its entries are taken, the r-th lowest index
//                   among them, 8 bits at a time (skipped when all of them are taken)
//   gather          the winners (key > T, or key == T and index <= that limit) into workgroup
//                   memory, a bitonic sort by (key desc, index asc), and the output
// Each pass is its own dispatch and reads the row once, which bounds what one workgroup does
// per dispatch. state holds 8 words a row: T's bits found so far, entries still to take among
// those matching them, how many match, the index bits found so far, the index limit; then, for
// list_select with a mask, the eligible latents' count and list (n + 1 words).

struct TopkParams {
    batch: u32,
    n: u32,
    k: u32,
    shift: u32,
    first: u32,
    sort_n: u32,
}

@group(0) @binding(0) var<uniform> tp: TopkParams;
@group(0) @binding(1) var<storage, read_write> pre: array<f32>;
@group(0) @binding(2) var<storage, read_write> idx_out: array<u32>;
@group(0) @binding(3) var<storage, read_write> val_out: array<f32>;
@group(0) @binding(4) var<storage, read_write> state: array<u32>;

const WG: u32 = 256u;

var<workgroup> hist: array<atomic<u32>, 256>;
var<workgroup> taken: atomic<u32>;
var<workgroup> shared_a: u32;
var<workgroup> shared_b: u32;
var<workgroup> shared_c: u32;
var<workgroup> shared_d: u32;
var<workgroup> sort_key: array<u32, 256>;
var<workgroup> sort_idx: array<u32, 256>;

fn key_at(row: u32, e: u32) -> u32 {
    if (USE_MASK && mask[e] == 0u) {
        return 0u;
    }
    return relu_key(pre[row * tp.n + e]);
}

// list_select with USE_MASK reads the eligible latents from a list in ascending order that
// compact_mask writes after the per-row state: its length, then the latents. AuxK's mask
// marks the dead latents, usually few, so the selection costs what they cost, not d_sae.
fn eligible_at() -> u32 {
    return tp.batch * 8u;
}

fn eligible_count() -> u32 {
    if (USE_MASK) {
        return state[eligible_at()];
    }
    return tp.n;
}

fn eligible(q: u32) -> u32 {
    if (USE_MASK) {
        return state[eligible_at() + 1u + q];
    }
    return q;
}

// One workgroup: the latents whose mask word is non-zero, ascending, after their count.
@compute @workgroup_size(256)
fn compact_mask(@builtin(local_invocation_index) lid: u32) {
    var total = 0u;
    for (var e0 = 0u; e0 < tp.n; e0 += WG) {
        let e = e0 + lid;
        var v = 0u;
        if (USE_MASK && e < tp.n) {
            v = u32(mask[e] != 0u);
        }
        let incl = scan256(lid, v, false);
        if (v != 0u) {
            state[eligible_at() + total + incl] = e;
        }
        total += scan_buf[255];
        // The next scan overwrites scan_buf.
        workgroupBarrier();
    }
    if (lid == 0u) {
        state[eligible_at()] = total;
    }
}

// Bits above the current 8-bit digit (none for the top digit).
fn high_mask(shift: u32) -> u32 {
    return select(0xffffffffu << (shift + 8u), 0u, shift >= 24u);
}

@compute @workgroup_size(256)
fn value_pass(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = group_index(wid, nwg);
    if (row >= tp.batch) {
        return;
    }
    let s = row * 8u;
    if (lid == 0u) {
        if (tp.first != 0u) {
            state[s] = 0u;
            state[s + 1u] = tp.k;
            state[s + 2u] = tp.n;
            state[s + 3u] = 0u;
            state[s + 4u] = NO_LATENT;
        }
        shared_a = state[s];
        shared_b = state[s + 1u];
    }
    atomicStore(&hist[lid], 0u);
    let prefix = workgroupUniformLoad(&shared_a);
    let r = workgroupUniformLoad(&shared_b);
    let high = high_mask(tp.shift);
    for (var e = lid; e < tp.n; e += WG) {
        let key = key_at(row, e);
        if ((key & high) == prefix) {
            atomicAdd(&hist[(key >> tp.shift) & 255u], 1u);
        }
    }
    workgroupBarrier();
    let h = atomicLoad(&hist[lid]);
    let incl = scan256(lid, h, true);
    let above = incl - h;
    // Exactly one digit has fewer than r entries above it and at least r up to it.
    if (above < r && r <= incl) {
        state[s] = prefix | (lid << tp.shift);
        state[s + 1u] = r - above;
        state[s + 2u] = h;
    }
}

@compute @workgroup_size(256)
fn index_pass(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = group_index(wid, nwg);
    if (row >= tp.batch) {
        return;
    }
    let s = row * 8u;
    if (lid == 0u) {
        shared_a = state[s];
        shared_b = state[s + 1u];
        shared_c = state[s + 2u];
        shared_d = state[s + 3u];
    }
    atomicStore(&hist[lid], 0u);
    let r = workgroupUniformLoad(&shared_b);
    let count = workgroupUniformLoad(&shared_c);
    if (r == count) {
        // Every remaining candidate is taken: the index limit already admits them all.
        return;
    }
    let t = shared_a;
    let prefix = shared_d;
    let high = high_mask(tp.shift);
    for (var e = lid; e < tp.n; e += WG) {
        if ((e & high) == prefix && key_at(row, e) == t) {
            atomicAdd(&hist[(e >> tp.shift) & 255u], 1u);
        }
    }
    workgroupBarrier();
    let h = atomicLoad(&hist[lid]);
    let incl = scan256(lid, h, false);
    let below = incl - h;
    if (below < r && r <= incl) {
        let p = prefix | (lid << tp.shift);
        state[s + 1u] = r - below;
        state[s + 2u] = h;
        state[s + 3u] = p;
        state[s + 4u] = p | ((1u << tp.shift) - 1u);
    }
}

// True when (key a, index a) comes before (key b, index b) in the output order.
fn before(ka: u32, ia: u32, kb: u32, ib: u32) -> bool {
    return ka > kb || (ka == kb && ia < ib);
}

@compute @workgroup_size(256)
fn gather(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = group_index(wid, nwg);
    if (row >= tp.batch) {
        return;
    }
    let s = row * 8u;
    if (lid == 0u) {
        shared_a = state[s];
        shared_b = state[s + 4u];
        atomicStore(&taken, 0u);
    }
    sort_key[lid] = 0u;
    sort_idx[lid] = NO_LATENT;
    let t = workgroupUniformLoad(&shared_a);
    let limit = shared_b;
    for (var e = lid; e < tp.n; e += WG) {
        let key = key_at(row, e);
        if (key > t || (key == t && e <= limit)) {
            let slot = atomicAdd(&taken, 1u);
            if (slot < WG) {
                sort_key[slot] = key;
                sort_idx[slot] = e;
            }
        }
    }
    workgroupBarrier();
    // The k winners sit in the first k slots in arbitrary order; sort_n is a power of two >= k
    // and the slots past k hold (0, NO_LATENT), which sort last.
    for (var size = 2u; size <= tp.sort_n; size <<= 1u) {
        for (var stride = size >> 1u; stride > 0u; stride >>= 1u) {
            let other = lid ^ stride;
            if (other > lid && other < tp.sort_n) {
                let ka = sort_key[lid];
                let ia = sort_idx[lid];
                let kb = sort_key[other];
                let ib = sort_idx[other];
                var swap: bool;
                if ((lid & size) == 0u) {
                    swap = before(kb, ib, ka, ia);
                } else {
                    swap = before(ka, ia, kb, ib);
                }
                if (swap) {
                    sort_key[lid] = kb;
                    sort_idx[lid] = ib;
                    sort_key[other] = ka;
                    sort_idx[other] = ia;
                }
            }
            workgroupBarrier();
        }
    }
    if (lid < tp.k) {
        let key = sort_key[lid];
        let o = row * tp.k + lid;
        if (key == 0u) {
            idx_out[o] = NO_LATENT;
            val_out[o] = 0.0;
        } else {
            idx_out[o] = sort_idx[lid];
            val_out[o] = key_value(key);
        }
    }
}

// ---- small k: one dispatch ----
//
// For k <= LIST_K the row is read two or three times in one dispatch, with no histograms:
//   1. each of the LIST_WG invocations finds the largest key of its strided share; the k-th
//      largest of those maxima is a floor: at least k entries reach it, so none below it is
//      selected;
//   2. the entries at or above the floor (typically under 2k) go to workgroup memory, and each
//      one's rank in the output order is counted directly; ranks below k are written out;
//   3. only when more than CANDIDATES entries reach the floor (heavy ties, as in a row of
//      zeros), each invocation keeps its own first k in private arrays, rejecting most entries
//      with one compare against its k-th key, and the lists are merged pairwise in
//      log2(LIST_WG) rounds through workgroup memory.
// On software adapters, where workgroup atomics are serialised, barriers switch coroutines and
// dynamically indexed private arrays live in memory, this is several times faster than the
// radix passes.

const LIST_WG: u32 = 64u;
const LIST_K: u32 = 32u;
const CANDIDATES: u32 = 256u;

var<workgroup> list_key: array<u32, 1024>;
var<workgroup> list_idx: array<u32, 1024>;
var<workgroup> list_len: array<u32, 32>;
var<workgroup> cand_count: atomic<u32>;

@compute @workgroup_size(64)
fn list_select(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = group_index(wid, nwg);
    // Uniform across the workgroup, so returning keeps the barriers below in uniform control.
    if (row >= tp.batch) {
        return;
    }
    let k = tp.k;
    let m = eligible_count();
    let at = row * tp.n;
    var top = 0u;
    for (var q = lid; q < m; q += LIST_WG) {
        top = max(top, relu_key(pre[at + eligible(q)]));
    }
    list_key[lid] = top;
    if (lid == 0u) {
        atomicStore(&cand_count, 0u);
    }
    workgroupBarrier();
    var rank = 0u;
    for (var j = 0u; j < LIST_WG; j++) {
        let other = list_key[j];
        rank += u32(other > top || (other == top && j < lid));
    }
    if (rank == k - 1u) {
        list_len[0] = top;
    }
    // The key an entry must beat to be a candidate: just below the floor, and at least 0
    // (eligible latents' keys are at least 1). With fewer than k non-zero maxima the floor is 0
    // and every eligible entry is a candidate.
    let worst0 = max(workgroupUniformLoad(&list_len[0]), 1u) - 1u;
    for (var q = lid; q < m; q += LIST_WG) {
        let e = eligible(q);
        let key = relu_key(pre[at + e]);
        if (key > worst0) {
            let slot = atomicAdd(&cand_count, 1u);
            if (slot < CANDIDATES) {
                list_key[slot] = key;
                list_idx[slot] = e;
            }
        }
    }
    workgroupBarrier();
    if (lid == 0u) {
        list_len[1] = atomicLoad(&cand_count);
    }
    let total = workgroupUniformLoad(&list_len[1]);
    if (total <= CANDIDATES) {
        for (var c = lid; c < total; c += LIST_WG) {
            let key = list_key[c];
            let e = list_idx[c];
            var r = 0u;
            for (var j = 0u; j < total; j++) {
                r += u32(before(list_key[j], list_idx[j], key, e));
            }
            if (r < k) {
                idx_out[row * k + r] = e;
                val_out[row * k + r] = key_value(key);
            }
        }
        // Fewer candidates than k only when every eligible entry is one.
        for (var j = total + lid; j < k; j += LIST_WG) {
            idx_out[row * k + j] = NO_LATENT;
            val_out[row * k + j] = 0.0;
        }
        return;
    }
    var mk: array<u32, 32>;
    var mi: array<u32, 32>;
    var len = 0u;
    // The key an entry must beat to enter the list: the candidates' bound until the list is
    // full, then its k-th key (entries arrive in ascending index, so a tie with it loses).
    var worst = worst0;
    for (var q = lid; q < m; q += LIST_WG) {
        let e = eligible(q);
        let key = relu_key(pre[at + e]);
        if (key > worst) {
            // Insert after every entry with a key >= key (those have lower indices).
            var pos = min(len, k - 1u);
            while (pos > 0u && mk[pos - 1u] < key) {
                mk[pos] = mk[pos - 1u];
                mi[pos] = mi[pos - 1u];
                pos -= 1u;
            }
            mk[pos] = key;
            mi[pos] = e;
            len = min(len + 1u, k);
            if (len == k) {
                worst = mk[k - 1u];
            }
        }
    }
    // Rounds: the upper half of the live invocations publishes its lists, the lower half merges
    // its own with its partner's, keeping the first k.
    for (var half = LIST_WG / 2u; half > 0u; half >>= 1u) {
        if (lid >= half && lid < 2u * half) {
            let slot = lid - half;
            for (var j = 0u; j < len; j++) {
                list_key[slot * LIST_K + j] = mk[j];
                list_idx[slot * LIST_K + j] = mi[j];
            }
            list_len[slot] = len;
        }
        workgroupBarrier();
        if (lid < half) {
            let base = lid * LIST_K;
            let other = list_len[lid];
            var ok: array<u32, 32>;
            var oi: array<u32, 32>;
            var a = 0u;
            var b = 0u;
            var n_out = 0u;
            while (n_out < k && (a < len || b < other)) {
                var take_a = b >= other;
                if (a < len && b < other) {
                    take_a = before(mk[a], mi[a], list_key[base + b], list_idx[base + b]);
                }
                if (take_a) {
                    ok[n_out] = mk[a];
                    oi[n_out] = mi[a];
                    a += 1u;
                } else {
                    ok[n_out] = list_key[base + b];
                    oi[n_out] = list_idx[base + b];
                    b += 1u;
                }
                n_out += 1u;
            }
            mk = ok;
            mi = oi;
            len = n_out;
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        for (var j = 0u; j < k; j++) {
            let o = row * k + j;
            if (j < len) {
                idx_out[o] = mi[j];
                val_out[o] = key_value(mk[j]);
            } else {
                idx_out[o] = NO_LATENT;
                val_out[o] = 0.0;
            }
        }
    }
}
