// The SAE's dense products: C[M, N] = op(A)[M, K] · op(B)[K, N], plus bias[n] with BIAS, plus
// the old C with ACCUMULATE; with CENTRE, A's elements less centre[k] (the encoder's x - b_dec).
// op(A)(m, k) is A[m, k], or A[k, m] with TRANS_A (likewise B), so transposed operands are read
// in place. The host prepends TRANS_A, TRANS_B, CENTRE, BIAS and ACCUMULATE, and declares
// `bias` and `centre` (bindings after c when given, one-element private stubs otherwise).
//
// An 8×8 workgroup computes a 64×64 tile of C, each invocation an 8×8 block strided by 8 so
// that neighbouring invocations write neighbouring columns: 64 products per four vec4 loads
// from workgroup memory, where those loads, not the arithmetic, bound software adapters. K
// advances 16 at a time through workgroup memory. Every element sums its products in increasing k, one chain per element,
// so results do not depend on the grid.

struct MatmulParams {
    m: u32,
    n: u32,
    k: u32,
    tiles_n: u32,
    tiles: u32,
}

@group(0) @binding(0) var<uniform> mp: MatmulParams;
@group(0) @binding(1) var<storage, read_write> a: array<f32>;
@group(0) @binding(2) var<storage, read_write> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

const TILE: u32 = 64u;
const TK: u32 = 16u;

// [TK][16] vec4s: slot kk * 16 + 2 y + h holds, at k-row kk, the rows (or columns)
// y + 32 h + 8 c for c < 4, so each invocation reads its eight rows (or columns) at one k with
// two adjacent loads.
var<workgroup> a_tile: array<vec4<f32>, 256>;
var<workgroup> b_tile: array<vec4<f32>, 256>;

fn load_a(m: u32, k: u32) -> f32 {
    if (m >= mp.m || k >= mp.k) {
        return 0.0;
    }
    var v: f32;
    if (TRANS_A) {
        v = a[k * mp.m + m];
    } else {
        v = a[m * mp.k + k];
    }
    if (CENTRE) {
        v -= centre[k];
    }
    return v;
}

fn load_b(k: u32, n: u32) -> f32 {
    if (k >= mp.k || n >= mp.n) {
        return 0.0;
    }
    if (TRANS_B) {
        return b[n * mp.k + k];
    }
    return b[k * mp.n + n];
}

// Writes v to row m, columns n, n + 8, n + 16, n + 24 of C (those inside it), with the bias
// and the old C when asked.
fn store4(m: u32, n: u32, v: vec4<f32>) {
    if (m >= mp.m) {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        let col = n + 8u * j;
        if (col >= mp.n) {
            return;
        }
        var x = v[j];
        if (BIAS) {
            x += bias[col];
        }
        let at = m * mp.n + col;
        if (ACCUMULATE) {
            x = c[at] + x;
        }
        c[at] = x;
    }
}

@compute @workgroup_size(8, 8)
fn matmul(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let tile = group_index(wid, nwg);
    if (tile >= mp.tiles) {
        return;
    }
    let m0 = (tile / mp.tiles_n) * TILE;
    let n0 = (tile % mp.tiles_n) * TILE;
    var acc: array<vec4<f32>, 16>;
    for (var k0 = 0u; k0 < mp.k; k0 += TK) {
        // Each invocation fills four slots of each tile with whole vec4s (a dynamic
        // component store costs a read-modify-write on some compilers). Slot s holds k-row
        // s / 16 and rows (or columns) base + 8c, c < 4, with base = (s % 16) / 2 + 32 (s % 2);
        // the slots are dealt out so that neighbouring invocations read neighbouring addresses
        // of the operand as stored.
        for (var r = 0u; r < 4u; r++) {
            let e = li + r * 64u;
            let across = (e % 16u) * 16u + e / 16u;
            var sa = across;
            if (TRANS_A) {
                sa = e;
            }
            let ka = k0 + sa / 16u;
            let ma = m0 + (sa % 16u) / 2u + 32u * (sa % 2u);
            a_tile[sa] = vec4(load_a(ma, ka), load_a(ma + 8u, ka), load_a(ma + 16u, ka), load_a(ma + 24u, ka));
            var sb = e;
            if (TRANS_B) {
                sb = across;
            }
            let kb = k0 + sb / 16u;
            let nb = n0 + (sb % 16u) / 2u + 32u * (sb % 2u);
            b_tile[sb] = vec4(load_b(kb, nb), load_b(kb, nb + 8u), load_b(kb, nb + 16u), load_b(kb, nb + 24u));
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            let a0 = a_tile[kk * 16u + lid.y * 2u];
            let a1 = a_tile[kk * 16u + lid.y * 2u + 1u];
            let b0 = b_tile[kk * 16u + lid.x * 2u];
            let b1 = b_tile[kk * 16u + lid.x * 2u + 1u];
            acc[0] += a0.x * b0;
            acc[1] += a0.x * b1;
            acc[2] += a0.y * b0;
            acc[3] += a0.y * b1;
            acc[4] += a0.z * b0;
            acc[5] += a0.z * b1;
            acc[6] += a0.w * b0;
            acc[7] += a0.w * b1;
            acc[8] += a1.x * b0;
            acc[9] += a1.x * b1;
            acc[10] += a1.y * b0;
            acc[11] += a1.y * b1;
            acc[12] += a1.z * b0;
            acc[13] += a1.z * b1;
            acc[14] += a1.w * b0;
            acc[15] += a1.w * b1;
        }
        workgroupBarrier();
    }
    // Constant indices only: an accumulator array indexed dynamically stays in memory on
    // some compilers (llvmpipe's among them), and every FMA above would load and store it.
    let r0 = m0 + lid.y;
    let c0 = n0 + lid.x;
    store4(r0, c0, acc[0]);
    store4(r0, c0 + 32u, acc[1]);
    store4(r0 + 8u, c0, acc[2]);
    store4(r0 + 8u, c0 + 32u, acc[3]);
    store4(r0 + 16u, c0, acc[4]);
    store4(r0 + 16u, c0 + 32u, acc[5]);
    store4(r0 + 24u, c0, acc[6]);
    store4(r0 + 24u, c0 + 32u, acc[7]);
    store4(r0 + 32u, c0, acc[8]);
    store4(r0 + 32u, c0 + 32u, acc[9]);
    store4(r0 + 40u, c0, acc[10]);
    store4(r0 + 40u, c0 + 32u, acc[11]);
    store4(r0 + 48u, c0, acc[12]);
    store4(r0 + 48u, c0 + 32u, acc[13]);
    store4(r0 + 56u, c0, acc[14]);
    store4(r0 + 56u, c0 + 32u, acc[15]);
}
