//! Counter-based random numbers shared with `shaders/rng.wgsl` (keep the two bit-identical).
//! A value is a pure function of its coordinates, so any thread on any device can draw it.

/// The PCG output hash (O'Neill's RXS-M-XS on one 32-bit state).
pub fn pcg_hash(v: u32) -> u32 {
    let state = v.wrapping_mul(747796405).wrapping_add(2891336453);
    let word = ((state >> ((state >> 28) + 4)) ^ state).wrapping_mul(277803737);
    (word >> 22) ^ word
}

/// A 32-bit draw at coordinates (a, b, c) of the stream `seed`.
pub fn rng_u32(seed: u32, a: u32, b: u32, c: u32) -> u32 {
    pcg_hash(seed ^ pcg_hash(a ^ pcg_hash(b ^ pcg_hash(c))))
}

/// Uniform in [0, 1) with 24 bits of precision, as the shader computes it.
pub fn rng_unit(seed: u32, a: u32, b: u32, c: u32) -> f32 {
    (rng_u32(seed, a, b, c) >> 8) as f32 * (1.0 / 16777216.0)
}

/// A standard normal (Box-Muller) at coordinates (a, b); used host-side for initialisation.
pub fn rng_normal(seed: u32, a: u32, b: u32) -> f32 {
    let u1 = rng_unit(seed, a, b, 0).max(1e-7);
    let u2 = rng_unit(seed, a, b, 1);
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

/// Folds a 64-bit user seed into the 32-bit key the kernels use.
pub fn fold_seed(seed: u64) -> u32 {
    pcg_hash(seed as u32) ^ pcg_hash((seed >> 32) as u32 ^ 0x9e37_79b9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_draws_are_uniform_enough() {
        let n = 100_000;
        let mut mean = 0.0f64;
        let mut below_tenth = 0;
        for i in 0..n {
            let u = rng_unit(7, i, 3, 1);
            assert!((0.0..1.0).contains(&u));
            mean += u as f64;
            if u < 0.1 {
                below_tenth += 1;
            }
        }
        mean /= n as f64;
        assert!((mean - 0.5).abs() < 0.01, "mean {mean}");
        let frac = below_tenth as f64 / n as f64;
        assert!((frac - 0.1).abs() < 0.01, "P(u<0.1) = {frac}");
    }

    #[test]
    fn coordinates_give_different_streams() {
        assert_ne!(rng_u32(1, 2, 3, 4), rng_u32(1, 2, 4, 3));
        assert_ne!(rng_u32(1, 2, 3, 4), rng_u32(2, 2, 3, 4));
        assert_ne!(fold_seed(0), fold_seed(1 << 32));
    }
}
