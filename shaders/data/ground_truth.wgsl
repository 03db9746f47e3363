// Host: engine/src/data/ground_truth.rs (CPU reference: GroundTruthSource::next_batch there).
// Planted ground-truth features on the device: row r of the batch is sample number
// (lo, hi) + r, the sum of its active features each scaled by its magnitude, drawn by the same
// counter-based RNG as the host (rng.wgsl, prepended by the host). One 256-invocation
// workgroup a row: each chunk of 256 features is drawn one feature an invocation, the active
// ones are compacted in feature order by a workgroup scan, and every invocation adds them to its
// columns of the row. So the work is one draw a feature plus one multiply-add per active
// feature and column, and each column adds its features in the host's order.

// The first six words are every device-drawn source's (engine/src/data/device.rs).
struct GroundTruthParams {
    rows: u32,
    d: u32,
    n_features: u32,
    seed: u32,
    // The first row's sample number, low and high words.
    lo: u32,
    hi: u32,
    group_size: u32,
    // 0: uniform in [a, b); 1: |normal(a, b)|, folded; 2: the constant a.
    magnitude: u32,
    probability: f32,
    coherence: f32,
    a: f32,
    b: f32,
}

@group(0) @binding(0) var<uniform> gt: GroundTruthParams;
@group(0) @binding(1) var<storage, read> features: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

var<workgroup> active_feature: array<u32, 256>;
var<workgroup> active_magnitude: array<f32, 256>;

// Feature f's coefficient in sample (lo, hi): 0 when it is off (GroundTruthSource::active).
fn coefficient(f: u32, lo: u32, hi: u32) -> f32 {
    let group = f / gt.group_size;
    if (rng_unit(gt.seed, lo, hi, group * 4u) >= gt.probability) {
        return 0.0;
    }
    let key = (gt.n_features + f) * 4u;
    if (gt.group_size > 1u && rng_unit(gt.seed, lo, hi, key) >= gt.coherence) {
        return 0.0;
    }
    let u = rng_unit(gt.seed, lo, hi, key + 1u);
    switch gt.magnitude {
        case 0u: {
            return gt.a + (gt.b - gt.a) * u;
        }
        case 1u: {
            return abs(gt.a + gt.b * rng_normal(gt.seed ^ 0x77u, lo ^ key, hi));
        }
        default: {
            return gt.a;
        }
    }
}

@compute @workgroup_size(256)
fn ground_truth(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    // Uniform across the workgroup, so every invocation reaches the barriers or none does.
    let r = group_index(wid, nwg);
    if (r >= gt.rows) {
        return;
    }
    let lo = gt.lo + r;
    let hi = gt.hi + select(0u, 1u, lo < gt.lo);
    let row = r * gt.d;
    for (var j = lid; j < gt.d; j += 256u) {
        out[row + j] = 0.0;
    }
    for (var f0 = 0u; f0 < gt.n_features; f0 += 256u) {
        let f = f0 + lid;
        var m = 0.0;
        if (f < gt.n_features) {
            m = coefficient(f, lo, hi);
        }
        // A magnitude of exactly 0 adds nothing, so it is left out like an inactive feature.
        let on = m != 0.0;
        let at = scan256(lid, select(0u, 1u, on), false);
        if (on) {
            active_feature[at - 1u] = f;
            active_magnitude[at - 1u] = m;
        }
        let n = scan_buf[255];
        workgroupBarrier();
        if (n > 0u) {
            for (var j = lid; j < gt.d; j += 256u) {
                var acc = out[row + j];
                for (var k = 0u; k < n; k++) {
                    acc = acc + active_magnitude[k] * features[active_feature[k] * gt.d + j];
                }
                out[row + j] = acc;
            }
        }
        // The next chunk's scan overwrites the lists.
        workgroupBarrier();
    }
}
