// Host: engine/src/kernels/hook_edit.rs (CPU reference: hook_edit_ref).
// A hook's value replaced in place, an invocation an element, so that the forward pass goes on
// from the new value (TransformerLens's run_with_hooks): zeroed whole, one index of its last
// axis zeroed (a neuron, a latent), a scaled direction added to every row (steering), or the
// rows at marked positions copied from another run's value (activation patching). A row is one
// position's `width` values; rows run batch-major, so a row's position is `row % pos`.

struct EditParams {
    n: u32,
    width: u32,
    pos: u32,
    mode: u32,
    index: u32,
    scale: u32,
    last: u32,
    _b: u32,
}

@group(0) @binding(0) var<uniform> ep: EditParams;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;

@compute @workgroup_size(256)
fn hook_edit(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = group_index(wid, nwg) * 256u + lid;
    if (i >= ep.n) {
        return;
    }
    let col = i % ep.width;
    switch ep.mode {
        case 0u: {
            x[i] = 0.0;
        }
        case 1u: {
            if (col % ep.last == ep.index) {
                x[i] = 0.0;
            }
        }
        case 2u: {
            x[i] = x[i] + bitcast<f32>(ep.scale) * src[col];
        }
        default: {
            if (mask[(i / ep.width) % ep.pos] != 0u) {
                x[i] = src[i];
            }
        }
    }
}
