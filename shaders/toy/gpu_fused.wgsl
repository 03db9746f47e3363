// Host: engine/src/models/toy/gpu.rs (CPU reference: engine/src/models/toy/cpu.rs).
// Fused training of toy models: one workgroup per instance runs n_steps full steps (data,
// forward, backward, Adam) with W and b resident in workgroup memory. The host also prepends
// WG (invocations), C (samples per chunk) and PPT (parameters owned per invocation).
//
// Each step walks the batch in chunks of C samples. Phase A, one invocation per sample: draw x,
// h = W x, x' = act(Wᵀh + b), the loss and g = dL/dpre, gh = W g. Phase B, one invocation per
// parameter: dW[k,f] += Σ g_f h_k + gh_k x_f, db[f] += Σ g_f. No atomics, two barriers a chunk.

@group(0) @binding(0) var<uniform> params: ToyParams;
@group(0) @binding(1) var<storage, read_write> table: array<f32>;        // [I, 1 + F]
@group(0) @binding(2) var<storage, read_write> weights: array<f32>; // [I, P]
@group(0) @binding(3) var<storage, read_write> moments: array<f32>; // [I, 2P]: m then v
@group(0) @binding(4) var<storage, read_write> loss_out: array<f32>; // [I, 2]: loss sum, steps
@group(0) @binding(5) var<storage, read_write> diverged: array<u32>; // [I] first bad step

var<workgroup> w_s: array<f32, P>;
var<workgroup> x_s: array<f32, C * F>;
var<workgroup> g_s: array<f32, C * F>;
var<workgroup> h_s: array<f32, C * H>;
var<workgroup> gh_s: array<f32, C * H>;
var<workgroup> red_s: array<f32, WG>;
var<workgroup> stop_s: u32;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let inst = wid.x;
    let wbase = inst * P;
    let tbase = inst * (1u + F);
    let prob = table[tbase];
    for (var p = lid; p < P; p += WG) {
        w_s[p] = weights[wbase + p];
    }
    if (lid == 0u) {
        stop_s = select(0u, 1u, diverged[inst] != NOT_DIVERGED);
    }
    var loss_sum = 0.0;
    var steps_done = 0u;
    let inv_batch = 1.0 / f32(params.batch);
    for (var s = 0u; s < params.n_steps; s++) {
        if (workgroupUniformLoad(&stop_s) != 0u) {
            break;
        }
        let step = params.step0 + s;
        var grad: array<f32, PPT>;
        for (var j = 0u; j < PPT; j++) {
            grad[j] = 0.0;
        }
        var my_loss = 0.0;
        for (var c0 = 0u; c0 < params.batch; c0 += C) {
            for (var ci = lid; ci < C; ci += WG) {
                let sample = c0 + ci;
                var h: array<f32, H>;
                var gh: array<f32, H>;
                for (var k = 0u; k < H; k++) {
                    h[k] = 0.0;
                    gh[k] = 0.0;
                }
                if (sample < params.batch) {
                    for (var f = 0u; f < F; f++) {
                        let x = toy_sample(params.seed, inst, step, sample, f, prob);
                        x_s[ci * F + f] = x;
                        for (var k = 0u; k < H; k++) {
                            h[k] += w_s[k * F + f] * x;
                        }
                    }
                    for (var f = 0u; f < F; f++) {
                        var pre = w_s[H * F + f];
                        for (var k = 0u; k < H; k++) {
                            pre += w_s[k * F + f] * h[k];
                        }
                        let imp = table[tbase + 1u + f];
                        let r = toy_activation(pre) - x_s[ci * F + f];
                        my_loss += imp * r * r;
                        let g = select(0.0, 2.0 * imp * r * inv_batch, toy_active(pre));
                        g_s[ci * F + f] = g;
                        for (var k = 0u; k < H; k++) {
                            gh[k] += w_s[k * F + f] * g;
                        }
                    }
                } else {
                    // Past the end of the batch: contribute nothing to the sums.
                    for (var f = 0u; f < F; f++) {
                        x_s[ci * F + f] = 0.0;
                        g_s[ci * F + f] = 0.0;
                    }
                }
                for (var k = 0u; k < H; k++) {
                    h_s[ci * H + k] = h[k];
                    gh_s[ci * H + k] = gh[k];
                }
            }
            workgroupBarrier();
            for (var j = 0u; j < PPT; j++) {
                let p = lid + j * WG;
                if (p < H * F) {
                    let k = p / F;
                    let f = p % F;
                    var acc = 0.0;
                    for (var ci = 0u; ci < C; ci++) {
                        acc += g_s[ci * F + f] * h_s[ci * H + k] + gh_s[ci * H + k] * x_s[ci * F + f];
                    }
                    grad[j] += acc;
                } else if (p < P) {
                    let f = p - H * F;
                    var acc = 0.0;
                    for (var ci = 0u; ci < C; ci++) {
                        acc += g_s[ci * F + f];
                    }
                    grad[j] += acc;
                }
            }
            workgroupBarrier();
        }
        // Batch loss: tree reduction of the per-invocation sums.
        red_s[lid] = my_loss;
        workgroupBarrier();
        for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
            if (lid < stride) {
                red_s[lid] += red_s[lid + stride];
            }
            workgroupBarrier();
        }
        if (lid == 0u) {
            let loss = red_s[0] * inv_batch;
            if (!is_finite(loss)) {
                diverged[inst] = step;
                stop_s = 1u;
            } else {
                loss_sum += loss;
            }
        }
        // Stop before the update so the last finite weights survive a divergence.
        if (workgroupUniformLoad(&stop_s) != 0u) {
            break;
        }
        for (var j = 0u; j < PPT; j++) {
            let p = lid + j * WG;
            if (p < P) {
                var m = moments[inst * 2u * P + p];
                var v = moments[inst * 2u * P + P + p];
                w_s[p] = adam(w_s[p], grad[j], &m, &v, step + 1u, params);
                moments[inst * 2u * P + p] = m;
                moments[inst * 2u * P + P + p] = v;
            }
        }
        steps_done += 1u;
        workgroupBarrier();
    }
    for (var p = lid; p < P; p += WG) {
        weights[wbase + p] = w_s[p];
    }
    if (lid == 0u) {
        loss_out[inst * 2u] += loss_sum;
        loss_out[inst * 2u + 1u] += f32(steps_done);
    }
}
