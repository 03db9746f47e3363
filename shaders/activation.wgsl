// Host: engine/src/kernels/activation.rs (CPU reference: activation_ref and
// activation_backward_ref there).
// The MLP's activations, forward and backward, as TransformerLens computes them:
//   gelu      x Φ(x), Φ from erf (Abramowitz and Stegun 7.1.26, |error| < 1.5e-7)
//   gelu_new  x (1 + tanh(√(2/π) (x + 0.044715 x³))) / 2
//   solu      x · softmax(x) over each row of `width` (TransformerLens's hook_mid; its
//             LayerNorm is the layernorm kernel's)
// Elementwise entries take one invocation an element; solu one 256-invocation workgroup a row
// with fixed-order sums. Backward entries read the forward's input `pre` and the gradient at the
// output `grad`, and write the gradient at the input into `out`.

struct ActParams {
    n: u32,
    width: u32,
    _a: u32,
    _b: u32,
}

@group(0) @binding(0) var<uniform> ap: ActParams;
@group(0) @binding(1) var<storage, read> pre: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

const SQRT_2_OVER_PI: f32 = 0.7978845608028654;
const INV_SQRT_2: f32 = 0.7071067811865476;
const INV_SQRT_2PI: f32 = 0.3989422804014327;

fn erf_approx(x: f32) -> f32 {
    let t = 1.0 / (1.0 + 0.3275911 * abs(x));
    let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    let e = 1.0 - poly * exp(-x * x);
    return select(-e, e, x >= 0.0);
}

// tanh without the overflow of exp(2u) for large |u|.
fn safe_tanh(u: f32) -> f32 {
    let e = exp(-2.0 * abs(u));
    let t = (1.0 - e) / (1.0 + e);
    return select(-t, t, u >= 0.0);
}

fn element(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return group_index(wid, nwg) * 256u + lid;
}

@compute @workgroup_size(256)
fn gelu_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i >= ap.n) { return; }
    let x = pre[i];
    out[i] = 0.5 * x * (1.0 + erf_approx(x * INV_SQRT_2));
}

@compute @workgroup_size(256)
fn gelu_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i >= ap.n) { return; }
    let x = pre[i];
    let cdf = 0.5 * (1.0 + erf_approx(x * INV_SQRT_2));
    out[i] = grad[i] * (cdf + x * INV_SQRT_2PI * exp(-0.5 * x * x));
}

@compute @workgroup_size(256)
fn gelu_new_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i >= ap.n) { return; }
    let x = pre[i];
    out[i] = 0.5 * x * (1.0 + safe_tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)));
}

@compute @workgroup_size(256)
fn gelu_new_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i >= ap.n) { return; }
    let x = pre[i];
    let t = safe_tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x));
    let du = SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044715 * x * x);
    out[i] = grad[i] * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du);
}

// The max and softmax denominator of the row at `at` (`width` 0 for a row past the end), over
// its segment (common.wgsl).
fn softmax_stats(at: u32, width: u32, lid: u32) -> vec2<f32> {
    let lane = lid % SEG;
    var m = -3.4e38;
    for (var j = lane; j < width; j += SEG) {
        m = max(m, pre[at + j]);
    }
    let row_max = segment_reduce(lid, m, true);
    var s = 0.0;
    for (var j = lane; j < width; j += SEG) {
        s += exp(pre[at + j] - row_max);
    }
    return vec2<f32>(row_max, segment_reduce(lid, s, false));
}

// SEG invocations a row, SEG_ROWS rows a workgroup.
@compute @workgroup_size(256)
fn solu_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = group_index(wid, nwg) * SEG_ROWS + lid / SEG;
    let lane = lid % SEG;
    let width = select(0u, ap.width, row * ap.width < ap.n);
    let at = row * ap.width;
    let st = softmax_stats(at, width, lid);
    for (var j = lane; j < width; j += SEG) {
        let x = pre[at + j];
        out[at + j] = x * (exp(x - st.x) / st.y);
    }
}

// dx_j = s_j (g_j (1 + x_j) − Σ_i g_i x_i s_i), s = softmax(x), g the gradient at x·s.
@compute @workgroup_size(256)
fn solu_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = group_index(wid, nwg) * SEG_ROWS + lid / SEG;
    let lane = lid % SEG;
    let width = select(0u, ap.width, row * ap.width < ap.n);
    let at = row * ap.width;
    let st = softmax_stats(at, width, lid);
    var d = 0.0;
    for (var j = lane; j < width; j += SEG) {
        let x = pre[at + j];
        d += grad[at + j] * x * (exp(x - st.x) / st.y);
    }
    let dot = segment_reduce(lid, d, false);
    for (var j = lane; j < width; j += SEG) {
        let x = pre[at + j];
        let s = exp(x - st.x) / st.y;
        out[at + j] = s * (grad[at + j] * (1.0 + x) - dot);
    }
}
