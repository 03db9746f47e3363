// Host: engine/src/models/toy/gpu.rs (CPU reference: engine/src/models/toy/cpu.rs).
// Shared by the toy-model kernels. The host prepends the constants F (features), H (hidden),
// P = H*F + F (parameters per instance) and RELU, then rng.wgsl, then this file.

struct ToyParams {
    n_instances: u32,
    batch: u32,
    step0: u32,
    n_steps: u32,
    seed: u32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

const NOT_DIVERGED: u32 = 0xffffffffu;

// Matches sample_feature in engine/src/models/toy/mod.rs.
fn toy_sample(seed: u32, instance: u32, step: u32, sample: u32, f: u32, p: f32) -> f32 {
    let idx = (sample * F + f) * 2u;
    if (rng_unit(seed, instance, step, idx) < p) {
        return rng_unit(seed, instance, step, idx + 1u);
    }
    return 0.0;
}

fn toy_activation(pre: f32) -> f32 {
    if (RELU) {
        return max(pre, 0.0);
    }
    return pre;
}

fn toy_active(pre: f32) -> bool {
    return !RELU || pre > 0.0;
}

fn is_finite(v: f32) -> bool {
    // NaN fails v == v; infinities exceed the largest finite f32.
    return v == v && abs(v) <= 3.4028234e38;
}

// One Adam step on one parameter (adam_update.wgsl, prepended by the host); returns the new
// value and updates m, v in place.
fn adam(w: f32, g: f32, m: ptr<function, f32>, v: ptr<function, f32>, t: u32, params: ToyParams) -> f32 {
    let c1 = 1.0 - pow(params.beta1, f32(t));
    let c2 = 1.0 - pow(params.beta2, f32(t));
    return adam_update(w, g, m, v, params.lr, c1, c2, params.beta1, params.beta2, params.eps, 0.0);
}
