// Host: engine/src/models/sae/kernels/transpose.rs (CPU reference: weight_grad_sparse_ref there).
// The transpose of a sparse code: for each latent j, the list of entries e = b·k + t with
// idx[e] = j, in increasing e. A counting sort, then a sort of each list so that the order does
// not depend on the order in which atomics landed:
//   zero_counts                       counts = 0
//   count                             counts[j] += 1 per entry (atomic)
//   block_sums, scan_sums, scan_apply offsets = exclusive scan of counts (blocks of 1024)
//   fill                              list[offsets[j] + --counts[j]] = e (atomic, any order)
//   sort                              each list ascending: one workgroup per 256 latents,
//                                     short lists by their latent's invocation, long ones by
//                                     the workgroup in workgroup memory up to LOCAL entries,
//                                     in place in storage beyond (same network, storage
//                                     barriers)
// scratch words: counts [d_sae] (zero again after fill), offsets [d_sae + 1], block sums
// [blocks], list [entries].

struct ListParams {
    entries: u32,
    d_sae: u32,
    blocks: u32,
    groups: u32,
}

@group(0) @binding(0) var<uniform> lp: ListParams;
@group(0) @binding(1) var<storage, read_write> code_idx: array<u32>;
@group(0) @binding(2) var<storage, read_write> scratch: array<atomic<u32>>;

const LOCAL: u32 = 2048u;

var<workgroup> local_list: array<u32, 2048>;
var<workgroup> shared_a: u32;
var<workgroup> shared_b: u32;

fn offsets_at() -> u32 {
    return lp.d_sae;
}

fn sums_at() -> u32 {
    return 2u * lp.d_sae + 1u;
}

fn list_at() -> u32 {
    return 2u * lp.d_sae + 1u + lp.blocks;
}

@compute @workgroup_size(256)
fn zero_counts(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let j = group_index(wid, nwg) * 256u + lid;
    if (j < lp.d_sae) {
        atomicStore(&scratch[j], 0u);
    }
}

@compute @workgroup_size(256)
fn count(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let e = group_index(wid, nwg) * 256u + lid;
    if (e < lp.entries) {
        let j = code_idx[e];
        if (j < lp.d_sae) {
            atomicAdd(&scratch[j], 1u);
        }
    }
}

fn count_or_zero(j: u32) -> u32 {
    if (j < lp.d_sae) {
        return atomicLoad(&scratch[j]);
    }
    return 0u;
}

@compute @workgroup_size(256)
fn block_sums(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let blk = group_index(wid, nwg);
    if (blk >= lp.blocks) {
        return;
    }
    let j = blk * 1024u + lid * 4u;
    let v = count_or_zero(j) + count_or_zero(j + 1u) + count_or_zero(j + 2u) + count_or_zero(j + 3u);
    let incl = scan256(lid, v, false);
    if (lid == 255u) {
        atomicStore(&scratch[sums_at() + blk], incl);
    }
}

// One workgroup: the block sums become exclusive block offsets, and offsets[d_sae] the total.
@compute @workgroup_size(256)
fn scan_sums(@builtin(local_invocation_index) lid: u32) {
    var carry = 0u;
    for (var b0 = 0u; b0 < lp.blocks; b0 += 256u) {
        let b = b0 + lid;
        var v = 0u;
        if (b < lp.blocks) {
            v = atomicLoad(&scratch[sums_at() + b]);
        }
        let incl = scan256(lid, v, false);
        if (b < lp.blocks) {
            atomicStore(&scratch[sums_at() + b], carry + incl - v);
        }
        carry += scan_buf[255];
        workgroupBarrier();
    }
    if (lid == 0u) {
        atomicStore(&scratch[offsets_at() + lp.d_sae], carry);
    }
}

@compute @workgroup_size(256)
fn scan_apply(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let blk = group_index(wid, nwg);
    if (blk >= lp.blocks) {
        return;
    }
    let j = blk * 1024u + lid * 4u;
    let c0 = count_or_zero(j);
    let c1 = count_or_zero(j + 1u);
    let c2 = count_or_zero(j + 2u);
    let c3 = count_or_zero(j + 3u);
    let v = c0 + c1 + c2 + c3;
    let base = atomicLoad(&scratch[sums_at() + blk]) + scan256(lid, v, false) - v;
    let o = offsets_at() + j;
    if (j < lp.d_sae) {
        atomicStore(&scratch[o], base);
    }
    if (j + 1u < lp.d_sae) {
        atomicStore(&scratch[o + 1u], base + c0);
    }
    if (j + 2u < lp.d_sae) {
        atomicStore(&scratch[o + 2u], base + c0 + c1);
    }
    if (j + 3u < lp.d_sae) {
        atomicStore(&scratch[o + 3u], base + c0 + c1 + c2);
    }
}

@compute @workgroup_size(256)
fn fill(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let e = group_index(wid, nwg) * 256u + lid;
    if (e < lp.entries) {
        let j = code_idx[e];
        if (j < lp.d_sae) {
            let slot = atomicSub(&scratch[j], 1u) - 1u;
            let at = atomicLoad(&scratch[offsets_at() + j]) + slot;
            atomicStore(&scratch[list_at() + at], e);
        }
    }
}

// The pairs one step of the sorting network compares, for a list padded to n2 (a power of
// two): pair p of the "flip" step (first of each merge size) or of a half-cleaner of distance
// d. The lower position always receives the smaller entry, so padding past the list's end
// (notionally +inf) never moves and need not exist.
fn pair(p: u32, size: u32, d: u32, flip: bool) -> vec2<u32> {
    if (flip) {
        let half = size >> 1u;
        let base = (p / half) * size;
        let off = p % half;
        return vec2(base + off, base + size - 1u - off);
    }
    let a = (p / d) * 2u * d + p % d;
    return vec2(a, a + d);
}

// Lists of at most SHORT entries, almost all of them for sparse codes, are sorted by their own
// invocation in private memory; longer ones are gathered and sorted by the whole workgroup.
const SHORT: u32 = 32u;

var<workgroup> long_count: atomic<u32>;
var<workgroup> long_latents: array<u32, 256>;

// Sorts the list of c entries at base with the whole workgroup: in workgroup memory up to
// LOCAL entries, in place in storage beyond. c must be uniform.
fn sort_long(lid: u32, base: u32, c: u32) {
    var n2 = 2u;
    while (n2 < c) {
        n2 <<= 1u;
    }
    if (c <= LOCAL) {
        for (var i = lid; i < n2; i += 256u) {
            local_list[i] = select(0xffffffffu, atomicLoad(&scratch[base + i]), i < c);
        }
        workgroupBarrier();
        for (var size = 2u; size <= n2; size <<= 1u) {
            for (var d = size >> 1u; d > 0u; d >>= 1u) {
                for (var p = lid; p < n2 / 2u; p += 256u) {
                    let ab = pair(p, size, d, d == size >> 1u);
                    let x = local_list[ab.x];
                    let y = local_list[ab.y];
                    if (x > y) {
                        local_list[ab.x] = y;
                        local_list[ab.y] = x;
                    }
                }
                workgroupBarrier();
            }
        }
        for (var i = lid; i < c; i += 256u) {
            atomicStore(&scratch[base + i], local_list[i]);
        }
    } else {
        for (var size = 2u; size <= n2; size <<= 1u) {
            for (var d = size >> 1u; d > 0u; d >>= 1u) {
                for (var p = lid; p < n2 / 2u; p += 256u) {
                    let ab = pair(p, size, d, d == size >> 1u);
                    if (ab.y < c) {
                        let x = atomicLoad(&scratch[base + ab.x]);
                        let y = atomicLoad(&scratch[base + ab.y]);
                        if (x > y) {
                            atomicStore(&scratch[base + ab.x], y);
                            atomicStore(&scratch[base + ab.y], x);
                        }
                    }
                }
                storageBarrier();
            }
        }
    }
    // The next list reuses local_list.
    workgroupBarrier();
}

// One workgroup per 256 latents: each invocation insertion-sorts its latent's list when it is
// short, and the workgroup then sorts the long ones one after another. Far fewer workgroups
// than one per latent, which matters where a workgroup costs microseconds however little it
// does (software adapters run each of its invocations as a coroutine).
@compute @workgroup_size(256)
fn sort(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let j = group_index(wid, nwg) * 256u + lid;
    if (lid == 0u) {
        atomicStore(&long_count, 0u);
    }
    workgroupBarrier();
    if (j < lp.d_sae) {
        let start = atomicLoad(&scratch[offsets_at() + j]);
        let c = atomicLoad(&scratch[offsets_at() + j + 1u]) - start;
        let base = list_at() + start;
        if (c > SHORT) {
            long_latents[atomicAdd(&long_count, 1u)] = j;
        } else if (c > 1u) {
            var l: array<u32, 32>;
            for (var i = 0u; i < c; i++) {
                let v = atomicLoad(&scratch[base + i]);
                var at = i;
                while (at > 0u && l[at - 1u] > v) {
                    l[at] = l[at - 1u];
                    at -= 1u;
                }
                l[at] = v;
            }
            for (var i = 0u; i < c; i++) {
                atomicStore(&scratch[base + i], l[i]);
            }
        }
    }
    let n_long = workgroupUniformLoad(&long_count);
    for (var t = 0u; t < n_long; t++) {
        if (lid == 0u) {
            let jl = long_latents[t];
            shared_a = atomicLoad(&scratch[offsets_at() + jl]);
            shared_b = atomicLoad(&scratch[offsets_at() + jl + 1u]);
        }
        let start = workgroupUniformLoad(&shared_a);
        let c = workgroupUniformLoad(&shared_b) - start;
        sort_long(lid, list_at() + start, c);
    }
}
