// Host: engine/src/kernels/attention.rs (CPU reference: attention_backward_ref there).
// Causal attention's backward from the forward's pattern and the gradient at z (layouts as in
// attention.wgsl):
//   attn_backward_scores  a segment a (batch, head, query) row (common.wgsl): dP = dz · v, then
//                         dS = P (dP − Σ P dP) / √d_head into `ds`
//   attn_backward_q       dq = dS · k, an invocation an element of dq
//   attn_backward_kv      dk = dSᵀ · q and dv = Pᵀ · dz, an invocation an element of dk and dv
// Every output element is one chain of adds over keys or queries in increasing order; nothing
// accumulates with atomics, so the results are the same on every run.

struct AttnParams {
    batch: u32,
    pos: u32,
    heads: u32,
    d_head: u32,
    scale: f32,   // 1 / √d_head
    _a: u32,
    _b: u32,
    _c: u32,
}

@group(0) @binding(0) var<uniform> at: AttnParams;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> pat: array<f32>;
@group(0) @binding(5) var<storage, read> dz: array<f32>;
@group(0) @binding(6) var<storage, read_write> ds: array<f32>;
@group(0) @binding(7) var<storage, read_write> dq: array<f32>;
// dk, then dv: [2, batch, pos, head, d_head].
@group(0) @binding(8) var<storage, read_write> dkv: array<f32>;

// Where head h's vector at (b, p) starts in q, k, v, z and their gradients.
fn vec_at(b: u32, p: u32, h: u32) -> u32 {
    return ((b * at.pos + p) * at.heads + h) * at.d_head;
}

@compute @workgroup_size(256)
fn attn_backward_scores(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = group_index(wid, nwg) * SEG_ROWS + lid / SEG;
    let lane = lid % SEG;
    let live = row < at.batch * at.heads * at.pos;
    let pos = select(0u, at.pos, live);
    let i = row % at.pos;
    let bh = row / at.pos;
    let h = bh % at.heads;
    let b = bh / at.heads;
    let srow = row * at.pos;
    let zi = vec_at(b, i, h);
    // dP_j = dz_i · v_j, kept in ds until dS replaces it.
    var acc = 0.0;
    for (var j = lane; j < pos; j += SEG) {
        var d = 0.0;
        if (j <= i) {
            let vj = vec_at(b, j, h);
            for (var e = 0u; e < at.d_head; e++) {
                d += dz[zi + e] * v[vj + e];
            }
        }
        ds[srow + j] = d;
        acc += pat[srow + j] * d;
    }
    let dot = segment_reduce(lid, acc, false);
    for (var j = lane; j < pos; j += SEG) {
        ds[srow + j] = pat[srow + j] * (ds[srow + j] - dot) * at.scale;
    }
}

@compute @workgroup_size(256)
fn attn_backward_q(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let idx = group_index(wid, nwg) * 256u + lid;
    if (idx >= at.batch * at.pos * at.heads * at.d_head) { return; }
    let e = idx % at.d_head;
    let h = (idx / at.d_head) % at.heads;
    let i = (idx / (at.d_head * at.heads)) % at.pos;
    let b = idx / (at.d_head * at.heads * at.pos);
    let srow = ((b * at.heads + h) * at.pos + i) * at.pos;
    var acc = 0.0;
    for (var j = 0u; j <= i; j++) {
        acc += ds[srow + j] * k[vec_at(b, j, h) + e];
    }
    dq[idx] = acc;
}

@compute @workgroup_size(256)
fn attn_backward_kv(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let n = at.batch * at.pos * at.heads * at.d_head;
    let idx = group_index(wid, nwg) * 256u + lid;
    if (idx >= n) { return; }
    let e = idx % at.d_head;
    let h = (idx / at.d_head) % at.heads;
    let j = (idx / (at.d_head * at.heads)) % at.pos;
    let b = idx / (at.d_head * at.heads * at.pos);
    let base = (b * at.heads + h) * at.pos;
    var gk = 0.0;
    var gv = 0.0;
    for (var i = j; i < at.pos; i++) {
        let s = (base + i) * at.pos + j;
        let vi = vec_at(b, i, h) + e;
        gk += ds[s] * q[vi];
        gv += pat[s] * dz[vi];
    }
    dkv[idx] = gk;
    dkv[n + idx] = gv;
}
