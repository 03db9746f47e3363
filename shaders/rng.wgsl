// Host: engine/src/rng.rs (its CPU twin), prepended by engine/src/models/toy/gpu.rs.
// Counter-based random numbers, bit-identical to engine/src/rng.rs: data is a pure function of
// (seed, instance, step, sample, feature, stream), so GPU and CPU runs draw the same batches.

fn pcg_hash(v: u32) -> u32 {
    let state = v * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

fn rng_u32(seed: u32, a: u32, b: u32, c: u32) -> u32 {
    return pcg_hash(seed ^ pcg_hash(a ^ pcg_hash(b ^ pcg_hash(c))));
}

// Uniform in [0, 1) with 24 bits.
fn rng_unit(seed: u32, a: u32, b: u32, c: u32) -> f32 {
    return f32(rng_u32(seed, a, b, c) >> 8u) * (1.0 / 16777216.0);
}

// A standard normal (Box-Muller) at coordinates (a, b), as rng_normal in engine/src/rng.rs
// computes it. Not bit-identical: WGSL's log and cos are as precise as the device makes them
// (WGSL bounds cos only to 2^-11 absolute, and only over [-pi, pi], where the angle is brought
// here), so values agree to about 1e-6 on some devices and 1e-3 on others.
fn rng_normal(seed: u32, a: u32, b: u32) -> f32 {
    let u1 = max(rng_unit(seed, a, b, 0u), 1e-7);
    let u2 = rng_unit(seed, a, b, 1u);
    // cos(2 pi u2) = cos(2 pi (u2 - 1)) for the upper half of the turn.
    let turn = select(u2, u2 - 1.0, u2 >= 0.5);
    return sqrt(-2.0 * log(u1)) * cos(6.2831855 * turn);
}
