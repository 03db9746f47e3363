// Host: engine/src/data/superposition.rs (CPU reference: SuperpositionSource::next_batch there).
// A frozen toy model's hidden layer on the device, h = W x, one invocation per element of the
// batch: row r is sample number (lo, hi) + r, whose x is drawn as the toy model was trained on
// (rng.wgsl, prepended by the host), and each element sums over the features in the host's
// order.

// The first six words are every device-drawn source's (engine/src/data/device.rs).
struct SuperpositionParams {
    rows: u32,
    n_hidden: u32,
    n_features: u32,
    seed: u32,
    // The first row's sample number, low and high words.
    lo: u32,
    hi: u32,
    probability: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> sp: SuperpositionParams;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

// Matches sample_feature in engine/src/models/toy/mod.rs (instance 0).
fn toy_feature(step: u32, sample: u32, f: u32) -> f32 {
    let idx = (sample * sp.n_features + f) * 2u;
    if (rng_unit(sp.seed, 0u, step, idx) < sp.probability) {
        return rng_unit(sp.seed, 0u, step, idx + 1u);
    }
    return 0.0;
}

@compute @workgroup_size(256)
fn superposition(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let e = group_index(wid, nwg) * 256u + lid;
    if (e >= sp.rows * sp.n_hidden) {
        return;
    }
    let r = e / sp.n_hidden;
    let k = e % sp.n_hidden;
    let lo = sp.lo + r;
    let hi = sp.hi + select(0u, 1u, lo < sp.lo);
    // The 64-bit sample counter splits into the toy RNG's (step, sample) coordinates.
    let step = (hi << 12u) | (lo >> 20u);
    let sample = lo & 0xfffffu;
    var acc = 0.0;
    for (var i = 0u; i < sp.n_features; i++) {
        acc = acc + w[k * sp.n_features + i] * toy_feature(step, sample, i);
    }
    out[e] = acc;
}
