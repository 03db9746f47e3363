// Host: engine/src/kernels/adam.rs, which prepends it to adam.wgsl; engine/src/models/toy/gpu.rs
// prepends it to the toy kernels. CPU reference: update() in engine/src/train/adam.rs, whose
// order of operations this follows.

// One element's Adam (AdamW with weight_decay > 0) update given the step's bias corrections
// c1 = 1 − β₁ᵗ and c2 = 1 − β₂ᵗ: updates the moments in place and returns the new parameter.
fn adam_update(p: f32, g: f32, m: ptr<function, f32>, v: ptr<function, f32>, lr: f32, c1: f32, c2: f32, beta1: f32, beta2: f32, eps: f32, weight_decay: f32) -> f32 {
    *m = beta1 * *m + (1.0 - beta1) * g;
    *v = beta2 * *v + (1.0 - beta2) * g * g;
    var q = p;
    if (weight_decay != 0.0) {
        q = p * (1.0 - lr * weight_decay);
    }
    return q - lr * (*m / c1) / (sqrt(*v / c2) + eps);
}
