// Host: engine/src/models/sae/splice.rs (CPU reference: models/sae/arch's encode, at inference).
// An SAE's latent activations from its pre-activations, one invocation an element, as the
// architecture `ARCH` (a constant the host declares) computes them at inference: ReLU; JumpReLU
// (pre where it passes exp(log θ)); BatchTopK's learned threshold; Gated's magnitude path where
// the gate is open. `lat` holds the per-latent tensors the architecture reads, `[parts, d_sae]`:
// JumpReLU log θ; Gated r_mag, b_gate, b_mag.

struct SpliceParams {
    n: u32,
    d_sae: u32,
    threshold: f32,
    _a: u32,
}

const ARCH_RELU: u32 = 0u;
const ARCH_JUMP: u32 = 1u;
const ARCH_THRESHOLD: u32 = 2u;
const ARCH_GATED: u32 = 3u;

@group(0) @binding(0) var<uniform> sp: SpliceParams;
@group(0) @binding(1) var<storage, read> pre: array<f32>;
@group(0) @binding(2) var<storage, read> lat: array<f32>;
@group(0) @binding(3) var<storage, read_write> f: array<f32>;

@compute @workgroup_size(256)
fn activate(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = group_index(wid, nwg) * 256u + lid;
    if (i >= sp.n) {
        return;
    }
    let j = i % sp.d_sae;
    let v = pre[i];
    if (ARCH == ARCH_JUMP) {
        f[i] = select(0.0, v, v > exp(lat[j]));
    } else if (ARCH == ARCH_THRESHOLD) {
        f[i] = select(0.0, v, v > sp.threshold);
    } else if (ARCH == ARCH_GATED) {
        let mag = exp(lat[j]) * (v - lat[sp.d_sae + j]) + lat[2u * sp.d_sae + j];
        f[i] = select(0.0, max(mag, 0.0), v > 0.0);
    } else {
        f[i] = max(v, 0.0);
    }
}
