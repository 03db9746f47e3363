// Shared by the SAE kernels (the host prepends it to each): indexing over 2-D grids, the
// sortable key of ReLU(x), and a scan across a 256-invocation workgroup.

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

// Inclusive scan of one value per invocation of a 256-wide workgroup: prefix sums, or suffix
// sums when `from_top`. Must be called from uniform control flow.
fn scan256(lid: u32, v: u32, from_top: bool) -> u32 {
    scan_buf[lid] = v;
    workgroupBarrier();
    for (var off = 1u; off < 256u; off <<= 1u) {
        var s = scan_buf[lid];
        if (from_top) {
            if (lid + off < 256u) {
                s += scan_buf[lid + off];
            }
        } else if (lid >= off) {
            s += scan_buf[lid - off];
        }
        workgroupBarrier();
        scan_buf[lid] = s;
        workgroupBarrier();
    }
    return scan_buf[lid];
}
