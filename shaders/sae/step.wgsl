// Host: engine/src/models/sae/gpu/step.rs (CPU reference: engine/src/models/sae/train.rs and arch/).
// The SAE training step's own kernels: everything between the shared building blocks
// (encode, top-k, sparse decode and backward, the row ops of rows.wgsl, and the optimiser of
// adam.wgsl): the
// reconstruction gradient, the TopK family's per-entry gradients and AuxK, firing and
// dead-latent bookkeeping, the decoder projection, the dense path's activations and penalties,
// and BatchTopK's threshold estimate. Every entry point shares one bind group layout: five f32
// slots, two u32 slots and one atomic counter array, bound per dispatch and named per entry
// point (below). The host prepends WG (invocations per workgroup) and THRESHOLD_RATE.

struct TrainParams {
    batch: u32,
    d_in: u32,
    d_sae: u32,
    count: u32,        // elements of the generic kernels
    out_index: u32,    // where reduce_sum writes
    dead_tokens: u32,
    flags: u32,        // bit 0: bdec_grad adds its column term (the last chunk)
    aux_coefficient: f32,
    k_aux: f32,
    coefficient: f32,  // the sparsity coefficient λ in force this step
    bandwidth: f32,    // JumpReLU's ε
    arch: u32,         // dense path: 0 ReLU + L1, 1 JumpReLU, 2 Gated
    rows: u32,         // rows this dispatch walks (a chunk of the batch on the dense path)
    row0: u32,         // the first of them in the batch, for per-row outputs
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: TrainParams;
// Every entry point binds the same eight storage slots; each names the slots it uses with
// variables of its own (a slot may have several names, one per role, never two in one entry
// point). The host's `step::Kernel` lists each entry point's buffers in slot order.
//
// Slot 1: x, g_val, val, w_dec, pre, g_chunk
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> g_val: array<f32>;
@group(0) @binding(1) var<storage, read_write> val: array<f32>;
@group(0) @binding(1) var<storage, read_write> w_dec: array<f32>;
@group(0) @binding(1) var<storage, read_write> pre: array<f32>;
@group(0) @binding(1) var<storage, read_write> g_chunk: array<f32>;
// Slot 2: b_dec, x_hat, sums, code_val, threshold, w_dec_grad, f, w_enc
@group(0) @binding(2) var<storage, read_write> b_dec: array<f32>;
@group(0) @binding(2) var<storage, read_write> x_hat: array<f32>;
@group(0) @binding(2) var<storage, read_write> sums: array<f32>;
@group(0) @binding(2) var<storage, read_write> code_val: array<f32>;
@group(0) @binding(2) var<storage, read_write> threshold: array<f32>;
@group(0) @binding(2) var<storage, read_write> w_dec_grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> f: array<f32>;
@group(0) @binding(2) var<storage, read_write> w_enc: array<f32>;
// Slot 3: g_x_hat, g_pre, e_hat, gate, gf, b_dec_grad
@group(0) @binding(3) var<storage, read_write> g_x_hat: array<f32>;
@group(0) @binding(3) var<storage, read_write> g_pre: array<f32>;
@group(0) @binding(3) var<storage, read_write> e_hat: array<f32>;
@group(0) @binding(3) var<storage, read_write> gate: array<f32>;
@group(0) @binding(3) var<storage, read_write> gf: array<f32>;
@group(0) @binding(3) var<storage, read_write> b_dec_grad: array<f32>;
// Slot 4: row_loss, lat (the per-latent parameters, sections below)
@group(0) @binding(4) var<storage, read_write> row_loss: array<f32>;
@group(0) @binding(4) var<storage, read_write> lat: array<f32>;
// Slot 5: glat (lat's gradient), g_aux_gate, col_sums
@group(0) @binding(5) var<storage, read_write> glat: array<f32>;
@group(0) @binding(5) var<storage, read_write> g_aux_gate: array<f32>;
@group(0) @binding(5) var<storage, read_write> col_sums: array<f32>;
// Slot 6: idx, since; slot 7: mask_window, lat_scratch; slot 8: counters
@group(0) @binding(6) var<storage, read_write> idx: array<u32>;
@group(0) @binding(6) var<storage, read_write> since: array<u32>;
@group(0) @binding(7) var<storage, read_write> mask_window: array<u32>;
@group(0) @binding(7) var<storage, read_write> lat_scratch: array<f32>;
@group(0) @binding(8) var<storage, read_write> counters: array<atomic<u32>>;

const NONE: u32 = 0xffffffffu;

// The reductions' per-invocation partial results (one workgroup each).
var<workgroup> partial: array<f32, WG>;

fn flat_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

// g_x_hat = 2 (x̂ − x) / B, row_loss[row0 + row] = ‖x̂ − x‖² (one invocation per row of the
// `rows` in x, x_hat and g_x_hat; B is the whole batch).
@compute @workgroup_size(WG)
fn recon_grad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = flat_id(gid, nwg);
    if (row >= p.rows) { return; }
    var s = 0.0;
    let scale = 2.0 / f32(p.batch);
    for (var i = 0u; i < p.d_in; i++) {
        let j = row * p.d_in + i;
        let err = x_hat[j] - x[j];
        s += err * err;
        g_x_hat[j] = scale * err;
    }
    row_loss[p.row0 + row] = s;
}

// Per-entry gradient of the TopK family: g_pre = g_val [n], zero where the latent did not fire
// (code_val ≤ 0: ReLU's derivative) and at padding entries (idx = NONE).
@compute @workgroup_size(WG)
fn entry_gpre(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = flat_id(gid, nwg);
    if (id >= p.count) { return; }
    g_pre[id] = select(0.0, g_val[id], code_val[id] > 0.0 && idx[id] != NONE);
}

// Counts firings: one invocation per entry, counters[idx] += 1 where val > 0.
@compute @workgroup_size(WG)
fn fire_count(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = flat_id(gid, nwg);
    if (id >= p.count) { return; }
    let j = idx[id];
    if (j != NONE && val[id] > 0.0) {
        atomicAdd(&counters[j], 1u);
    }
}

// One invocation per latent: since = tokens since fired, mask_window = [dead mask (d_sae) |
// window firings (d_sae)], counters = [firings this step (d_sae) | dead count (1)]. Saturates instead of
// wrapping so a latent dead for billions of tokens stays dead.
@compute @workgroup_size(WG)
fn dead_update(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let j = flat_id(gid, nwg);
    if (j >= p.d_sae) { return; }
    let fired = atomicExchange(&counters[j], 0u);
    var tokens = since[j];
    if (fired > 0u) {
        tokens = 0u;
    } else {
        tokens = select(tokens + p.batch, NONE, tokens > NONE - p.batch);
    }
    since[j] = tokens;
    mask_window[p.d_sae + j] += fired;
    let dead = tokens > p.dead_tokens;
    mask_window[j] = select(0u, 1u, dead);
    if (dead) {
        atomicAdd(&counters[p.d_sae], 1u);
    }
}

// AuxK's gradient at the residual, one invocation per row: x, x_hat (main), e_hat (the aux
// reconstruction, no b_dec) → e_hat becomes g_aux = s · 2 (ê − e) / B with e = x − x̂ and
// s = coefficient · min(n_dead / k_aux, 1); row_loss[row] = s · ‖ê − e‖². counters[d_sae] =
// n_dead.
@compute @workgroup_size(WG)
fn aux_grad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = flat_id(gid, nwg);
    if (row >= p.batch) { return; }
    let n_dead = f32(atomicLoad(&counters[p.d_sae]));
    let s = p.aux_coefficient * min(n_dead / p.k_aux, 1.0);
    var sum = 0.0;
    for (var i = 0u; i < p.d_in; i++) {
        let j = row * p.d_in + i;
        let err = e_hat[j] - (x[j] - x_hat[j]);
        sum += err * err;
        e_hat[j] = s * 2.0 * err / f32(p.batch);
    }
    row_loss[row] = s * sum;
}

// BatchTopK's inference threshold, one workgroup: m = the smallest positive of val[0..count]
// (the kept activations), then threshold[0] = (1 − r) threshold[0] + r m, or m while it is
// still 0. A batch with
// nothing positive leaves it alone. 0 stands for "none yet" in the reduction, since every
// candidate is positive.
@compute @workgroup_size(WG)
fn threshold_ema(@builtin(local_invocation_id) lid: vec3<u32>) {
    var m = 0.0;
    for (var i = lid.x; i < p.count; i += WG) {
        let v = val[i];
        if (v > 0.0 && (m == 0.0 || v < m)) {
            m = v;
        }
    }
    partial[lid.x] = m;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
        if (lid.x < stride) {
            let o = partial[lid.x + stride];
            if (o > 0.0 && (partial[lid.x] == 0.0 || o < partial[lid.x])) {
                partial[lid.x] = o;
            }
        }
        workgroupBarrier();
    }
    if (lid.x == 0u && partial[0] > 0.0) {
        let t = threshold[0];
        let r = THRESHOLD_RATE;
        threshold[0] = select(partial[0], (1.0 - r) * t + r * partial[0], t > 0.0);
    }
}

// Removes each decoder row's gradient component along the (unit) row; one invocation per row.
@compute @workgroup_size(WG)
fn project_decoder(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let j = flat_id(gid, nwg);
    if (j >= p.d_sae) { return; }
    var along = 0.0;
    for (var i = 0u; i < p.d_in; i++) {
        along += w_dec[j * p.d_in + i] * w_dec_grad[j * p.d_in + i];
    }
    for (var i = 0u; i < p.d_in; i++) {
        w_dec_grad[j * p.d_in + i] -= along * w_dec[j * p.d_in + i];
    }
}

// ---- The dense path (ReLU + L1, JumpReLU, Gated). The per-latent parameters are one view
// `lat` [4, d_sae] of the parameter arena (packed back to back): b_enc (b_gate), r_mag, b_mag,
// log θ; their gradient `glat` has the same layout. `lat_scratch` [6, d_sae] holds what the
// step gathers per latent: decoder norms, the penalty's column statistic, Gated's per-latent
// gradient sums (b_gate, b_mag, r_mag) and its column sums of the gradient at W_gate xc.

const ARCH_RELU: u32 = 0u;
const ARCH_JUMP: u32 = 1u;
const ARCH_GATED: u32 = 2u;

// f from pre-activations, one invocation per element of a chunk of `rows` rows. Gated also
// writes its gate activations ReLU(π_gate) to gate.
@compute @workgroup_size(WG)
fn act_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = flat_id(gid, nwg);
    if (id >= p.rows * p.d_sae) { return; }
    let j = id % p.d_sae;
    let n = p.d_sae;
    let v = pre[id];
    if (p.arch == ARCH_GATED) {
        let mag = exp(lat[n + j]) * (v - lat[j]) + lat[2u * n + j];
        f[id] = select(0.0, max(mag, 0.0), v > 0.0);
        gate[id] = max(v, 0.0);
    } else if (p.arch == ARCH_JUMP) {
        f[id] = select(0.0, v, v > exp(lat[3u * p.d_sae + j]));
    } else {
        f[id] = max(v, 0.0);
    }
}

// The activation's backward over a chunk of `rows` rows, one invocation per latent walking down
// its column (adjacent invocations read adjacent words): pre, f, gf → g_pre in gf's place.
// Adds Σ g_pre to b_enc's gradient and, for JumpReLU, θ's straight-through gradient in log
// space; adds to lat_scratch's section 1 (zeroed at the step's start) the column statistic the
// penalty needs (Σ f for ReLU + L1, the firing count for JumpReLU), and counts firings for the
// dead-latent tracker. Everything it leaves is a sum over rows, so
// chunks add up to the batch.
@compute @workgroup_size(WG)
fn dense_col_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let j = flat_id(gid, nwg);
    if (j >= p.d_sae) { return; }
    let n = p.d_sae;
    let scale = p.coefficient / f32(p.batch);
    let norm = lat_scratch[j];
    let theta = exp(lat[3u * n + j]);
    var g_bias = 0.0;
    var g_theta = 0.0;
    var stat = 0.0;
    var fired = 0u;
    for (var row = 0u; row < p.rows; row++) {
        let i = row * n + j;
        let fi = f[i];
        var g = gf[i];
        if (p.arch == ARCH_JUMP) {
            let u = (pre[i] - theta) / p.bandwidth;
            if (abs(u) < 0.5) {
                let k = 1.0 / p.bandwidth;
                g_theta += theta * (-theta * k * g - k * scale);
            }
            if (fi != 0.0) {
                stat += 1.0;
            } else {
                g = 0.0;
            }
        } else {
            if (fi > 0.0) {
                g += scale * norm;
                stat += fi;
            } else {
                g = 0.0;
            }
        }
        if (fi != 0.0) {
            fired += 1u;
        }
        gf[i] = g;
        g_bias += g;
    }
    glat[j] += g_bias;
    glat[3u * n + j] += g_theta;
    lat_scratch[n + j] += stat;
    atomicAdd(&counters[j], fired);
}

// ReLU + L1's penalty gradient on the decoder, λ/B · (Σ_b f_j) · W_dec,j / ‖W_dec,j‖, one
// invocation per weight.
@compute @workgroup_size(WG)
fn penalty_decoder_grad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = flat_id(gid, nwg);
    if (id >= p.d_sae * p.d_in) { return; }
    let j = id / p.d_in;
    let norm = lat_scratch[j];
    if (norm > 0.0) {
        w_dec_grad[id] += p.coefficient / f32(p.batch) * lat_scratch[p.d_sae + j] * w_dec[id] / norm;
    }
}

// Gated's backward, one invocation per latent column: pre = π_gate, f, gf = the gradient at f
// → the gradient at W_gate xc (in place), g_aux_gate = the aux path's gradient at ReLU(π_gate).
// The magnitude path gets gf where f fires; the gate gets the penalty λ/B ‖W_dec,j‖ and the aux
// gradient where π_gate > 0. Per-latent sums over the chunk's `rows` rows are added to
// lat_scratch's sections 1–5 (zeroed at the step's start).
@compute @workgroup_size(WG)
fn gated_col_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let j = flat_id(gid, nwg);
    if (j >= p.d_sae) { return; }
    let n = p.d_sae;
    let scale = p.coefficient / f32(p.batch);
    let norm = lat_scratch[j];
    let b_gate = lat[j];
    let e_r = exp(lat[n + j]);
    var stat = 0.0;
    var g_gate = 0.0;
    var g_bmag = 0.0;
    var g_rmag = 0.0;
    var g_col = 0.0;
    var fired = 0u;
    for (var row = 0u; row < p.rows; row++) {
        let i = row * n + j;
        let pi = pre[i];
        var g = 0.0;
        if (f[i] > 0.0) {
            let gm = gf[i];
            g_bmag += gm;
            g_rmag += gm * e_r * (pi - b_gate);
            g += gm * e_r;
            fired += 1u;
        }
        if (pi > 0.0) {
            let ga = scale * norm + g_aux_gate[i];
            g_gate += ga;
            g += ga;
            stat += pi;
        }
        gf[i] = g;
        g_col += g;
    }
    lat_scratch[n + j] += stat;
    lat_scratch[2u * n + j] += g_gate;
    lat_scratch[3u * n + j] += g_bmag;
    lat_scratch[4u * n + j] += g_rmag;
    lat_scratch[5u * n + j] += g_col;
    atomicAdd(&counters[j], fired);
}

// Adds Gated's per-latent sums (lat's scratch) into the gradient glat.
@compute @workgroup_size(WG)
fn gated_lat_grads(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let j = flat_id(gid, nwg);
    if (j >= p.d_sae) { return; }
    let n = p.d_sae;
    glat[j] += lat_scratch[2u * n + j];
    glat[2u * n + j] += lat_scratch[3u * n + j];
    glat[n + j] += lat_scratch[4u * n + j];
}

// The sparsity penalty's value into sums[out_index]: λ/B Σ_j stat_j · (‖W_dec,j‖ for ReLU + L1,
// 1 for JumpReLU). One workgroup.
@compute @workgroup_size(WG)
fn penalty_value(@builtin(local_invocation_id) lid: vec3<u32>) {
    let n = p.d_sae;
    var s = 0.0;
    for (var j = lid.x; j < n; j += WG) {
        let w = select(lat_scratch[j], 1.0, p.arch == ARCH_JUMP);
        s += lat_scratch[n + j] * w;
    }
    partial[lid.x] = s;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
        if (lid.x < stride) {
            partial[lid.x] += partial[lid.x + stride];
        }
        workgroupBarrier();
    }
    if (lid.x == 0u) {
        sums[p.out_index] = p.coefficient * partial[0] / f32(p.batch);
    }
}

// b_dec's gradient, one invocation per input dimension:
// b_dec_grad[i] += Σ_(row < rows) g_chunk[row, i] − (when flags bit 0)
// Σ_j col_sums[out_index + j] · w_enc[j, i], with g_chunk a chunk's g and col_sums holding the
// batch's column sums of the gradient at W_enc xc from out_index: b_enc's gradient for the
// TopK family (main and AuxK entries), glat's first section for ReLU + L1 and JumpReLU, where
// it is exactly that, lat_scratch's section 5 for Gated.
// Each chunk adds its rows; the last also adds the column term.
@compute @workgroup_size(WG)
fn bdec_grad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.d_in) { return; }
    var s = 0.0;
    for (var row = 0u; row < p.rows; row++) {
        s += g_chunk[row * p.d_in + i];
    }
    if ((p.flags & 1u) != 0u) {
        for (var j = 0u; j < p.d_sae; j++) {
            s -= col_sums[p.out_index + j] * w_enc[j * p.d_in + i];
        }
    }
    b_dec_grad[i] += s;
}
