// Host: engine/src/models/sae/kernels/shuffle.rs (CPU reference: gather_scatter in engine/src/data/shuffle.rs).
// One step of the shuffle pool, one invocation per element of the batch:
//   x[i, c] = pool[slots[i], c] · scale, then pool[slots[i], c] = fresh[i, c]
// The slots of one step are distinct, so each pool element is read, then overwritten, by one
// invocation only: the batch leaves the pool before the fresh rows take its place.

struct ShuffleParams {
    batch: u32,
    d: u32,
    pool_rows: u32,
    scale: f32,
}

@group(0) @binding(0) var<uniform> sh: ShuffleParams;
@group(0) @binding(1) var<storage, read_write> slots: array<u32>;
@group(0) @binding(2) var<storage, read_write> fresh: array<f32>;
@group(0) @binding(3) var<storage, read_write> pool: array<f32>;
@group(0) @binding(4) var<storage, read_write> x: array<f32>;

@compute @workgroup_size(256)
fn gather_scatter(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let e = group_index(wid, nwg) * 256u + lid;
    if (e >= sh.batch * sh.d) {
        return;
    }
    let i = e / sh.d;
    let slot = slots[i];
    if (slot >= sh.pool_rows) {
        return;
    }
    let at = slot * sh.d + (e - i * sh.d);
    x[e] = pool[at] * sh.scale;
    pool[at] = fresh[e];
}
