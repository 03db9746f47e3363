// Host: engine/src/models/toy/gpu.rs (CPU reference: engine/src/models/toy/cpu.rs).
// The general toy-model path, for models too large for workgroup memory: one step is four
// dispatches over global scratch, recorded back to back in one pass.
//   fwd_bwd      one invocation per (instance, sample): x, h, g = dL/dpre, gh = W g, the loss
//   reduce_loss  one invocation per instance: batch loss, divergence check
//   update       one invocation per (instance, parameter): sum over the batch, Adam
//   advance      one invocation: step += 1
// The host prepends F, H, P, RELU and WG.

@group(0) @binding(0) var<uniform> params: ToyParams;
@group(0) @binding(1) var<storage, read_write> table: array<f32>;    // [I, 1 + F]
@group(0) @binding(2) var<storage, read_write> weights: array<f32>;  // [I, P]
@group(0) @binding(3) var<storage, read_write> moments: array<f32>;  // [I, 2P]
@group(0) @binding(4) var<storage, read_write> loss_out: array<f32>; // [I, 2]: loss sum, steps
@group(0) @binding(5) var<storage, read_write> diverged: array<u32>; // [I]
@group(0) @binding(6) var<storage, read_write> state: array<u32>;    // [1]: current step
@group(0) @binding(7) var<storage, read_write> xg: array<f32>;       // [I, B, 2F]: x then g
@group(0) @binding(8) var<storage, read_write> hh: array<f32>;       // [I, B, 2H]: h then gh
@group(0) @binding(9) var<storage, read_write> sample_loss: array<f32>; // [I, B]

fn flat_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

@compute @workgroup_size(WG)
fn fwd_bwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = flat_id(gid, nwg);
    let b = params.batch;
    if (id >= params.n_instances * b) {
        return;
    }
    let inst = id / b;
    let sample = id % b;
    if (diverged[inst] != NOT_DIVERGED) {
        return;
    }
    let step = state[0];
    let wb = inst * P;
    let tb = inst * (1u + F);
    let xb = id * 2u * F;
    let hb = id * 2u * H;
    let prob = table[tb];
    for (var k = 0u; k < H; k++) {
        hh[hb + k] = 0.0;
        hh[hb + H + k] = 0.0;
    }
    for (var f = 0u; f < F; f++) {
        let x = toy_sample(params.seed, inst, step, sample, f, prob);
        xg[xb + f] = x;
        for (var k = 0u; k < H; k++) {
            hh[hb + k] += weights[wb + k * F + f] * x;
        }
    }
    var loss = 0.0;
    for (var f = 0u; f < F; f++) {
        var pre = weights[wb + H * F + f];
        for (var k = 0u; k < H; k++) {
            pre += weights[wb + k * F + f] * hh[hb + k];
        }
        let imp = table[tb + 1u + f];
        let r = toy_activation(pre) - xg[xb + f];
        loss += imp * r * r;
        let g = select(0.0, 2.0 * imp * r / f32(b), toy_active(pre));
        xg[xb + F + f] = g;
        for (var k = 0u; k < H; k++) {
            hh[hb + H + k] += weights[wb + k * F + f] * g;
        }
    }
    sample_loss[id] = loss;
}

@compute @workgroup_size(WG)
fn reduce_loss(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let inst = flat_id(gid, nwg);
    if (inst >= params.n_instances || diverged[inst] != NOT_DIVERGED) {
        return;
    }
    var total = 0.0;
    for (var s = 0u; s < params.batch; s++) {
        total += sample_loss[inst * params.batch + s];
    }
    let loss = total / f32(params.batch);
    if (is_finite(loss)) {
        loss_out[inst * 2u] += loss;
        loss_out[inst * 2u + 1u] += 1.0;
    } else {
        diverged[inst] = state[0];
    }
}

@compute @workgroup_size(WG)
fn update(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = flat_id(gid, nwg);
    if (id >= params.n_instances * P) {
        return;
    }
    let inst = id / P;
    let p = id % P;
    if (diverged[inst] != NOT_DIVERGED) {
        return;
    }
    let b = params.batch;
    var g = 0.0;
    if (p < H * F) {
        let k = p / F;
        let f = p % F;
        for (var s = 0u; s < b; s++) {
            let xb = (inst * b + s) * 2u * F;
            let hb = (inst * b + s) * 2u * H;
            g += xg[xb + F + f] * hh[hb + k] + hh[hb + H + k] * xg[xb + f];
        }
    } else {
        let f = p - H * F;
        for (var s = 0u; s < b; s++) {
            g += xg[(inst * b + s) * 2u * F + F + f];
        }
    }
    var m = moments[inst * 2u * P + p];
    var v = moments[inst * 2u * P + P + p];
    weights[id] = adam(weights[id], g, &m, &v, state[0] + 1u, params);
    moments[inst * 2u * P + p] = m;
    moments[inst * 2u * P + P + p] = v;
}

@compute @workgroup_size(1)
fn advance() {
    state[0] += 1u;
}
