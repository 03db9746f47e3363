// Host: engine/src/kernels/common.rs (prepended to every kernel of kernels/ and models/sae/kernels/).
// Shared by the general and SAE kernels (the host prepends it to each): indexing over 2-D grids, the
// sortable key of ReLU(x), a scan across a 256-invocation workgroup, and a fixed-order sum or
// maximum across one.

// An empty slot of a sparse code (a masked TopK with fewer eligible latents than k).
const NO_LATENT: u32 = 0xffffffffu;

// The linear index of a workgroup: grids spill from x into y past 65535 groups.
fn group_index(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
}

// ReLU(v) as a u32 that orders like the float (non-negative floats' bits do), plus one so that
// key 0 stays free for "never selected". NaN and -0.0 count as zero.
fn relu_key(v: f32) -> u32 {
    return bitcast<u32>(select(0.0, v, v > 0.0)) + 1u;
}

// The exact value behind a key of at least 1.
fn key_value(key: u32) -> f32 {
    return bitcast<f32>(key - 1u);
}

var<workgroup> scan_buf: array<u32, 256>;
var<workgroup> scan_groups: array<u32, 16>;

// Inclusive scan of one value per invocation of a 256-wide workgroup: prefix sums, or suffix
// sums when `from_top`. After a prefix scan, scan_buf[255] holds the total. Must be called from
// uniform control flow.
//
// Sixteen invocations each scan sixteen consecutive values, one scans the sixteen group totals,
// and every invocation adds its group's offset: four barriers, where a Hillis–Steele scan takes
// seventeen. Barriers dominate on software rasterizers, which run a workgroup's invocations as
// coroutines switched at each barrier.
fn scan256(lid: u32, v: u32, from_top: bool) -> u32 {
    // Values sit in scan order, so a suffix scan is a prefix scan of the reversed row.
    let at = select(lid, 255u - lid, from_top);
    scan_buf[at] = v;
    workgroupBarrier();
    if (lid < 16u) {
        var s = 0u;
        for (var i = lid * 16u; i < lid * 16u + 16u; i++) {
            s += scan_buf[i];
            scan_buf[i] = s;
        }
        scan_groups[lid] = s;
    }
    workgroupBarrier();
    if (lid == 0u) {
        var s = 0u;
        for (var g = 0u; g < 16u; g++) {
            let t = scan_groups[g];
            scan_groups[g] = s;
            s += t;
        }
    }
    workgroupBarrier();
    let incl = scan_buf[at] + scan_groups[at / 16u];
    scan_buf[at] = incl;
    workgroupBarrier();
    return incl;
}

// Workgroup memory of workgroup_reduce (allocated only where an entry point uses it).
var<workgroup> reduce_part: array<f32, 256>;

// The sum (or, with max_not_sum, the maximum) of each of 256 invocations' `x`, every invocation
// getting it: a tree in a fixed order, so the result is the same on every run. Call it from
// uniform control flow.
fn workgroup_reduce(lid: u32, x: f32, max_not_sum: bool) -> f32 {
    reduce_part[lid] = x;
    workgroupBarrier();
    for (var stride = 128u; stride > 0u; stride /= 2u) {
        if (lid < stride) {
            let o = reduce_part[lid + stride];
            reduce_part[lid] = select(reduce_part[lid] + o, max(reduce_part[lid], o), max_not_sum);
        }
        workgroupBarrier();
    }
    let r = reduce_part[0];
    workgroupBarrier();
    return r;
}

// Row kernels (LayerNorm, SoLU, attention's softmax rows) give each row SEG invocations of a
// 256-invocation workgroup, SEG_ROWS = 256 / SEG rows a workgroup. The host declares both
// (kernels::Kernel, from Gpu::row_lanes): 32 on GPUs, where rows of a few hundred elements
// would leave most of a whole workgroup idle and pay eight levels of barriers for each
// reduction, where a segment pays five for eight rows at once; 1 on software adapters, where a
// barrier switches between every invocation of the workgroup and a row is better one
// invocation's loop.

// The sum (or, with max_not_sum, the maximum) of `x` over the SEG invocations that share lid's
// row, each of them getting it: a tree in a fixed order over reduce_part, so the result is the
// same on every run. Call it from uniform control flow: every invocation of the workgroup,
// whether its row exists or not.
fn segment_reduce(lid: u32, x: f32, max_not_sum: bool) -> f32 {
    if (SEG == 1u) {
        return x;
    }
    reduce_part[lid] = x;
    workgroupBarrier();
    let lane = lid % SEG;
    for (var stride = SEG / 2u; stride > 0u; stride /= 2u) {
        if (lane < stride) {
            let o = reduce_part[lid + stride];
            reduce_part[lid] = select(reduce_part[lid] + o, max(reduce_part[lid], o), max_not_sum);
        }
        workgroupBarrier();
    }
    let r = reduce_part[lid - lane];
    workgroupBarrier();
    return r;
}

