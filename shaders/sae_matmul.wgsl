// The SAE's dense products: C[M, N] = op(A)[M, K] · op(B)[K, N], plus bias[n] with BIAS, plus
// the old C with ACCUMULATE; with CENTRE, A's elements less centre[k] (the encoder's x - b_dec).
// op(A)(m, k) is A[m, k], or A[k, m] with TRANS_A (likewise B), so transposed operands are read
// in place. The host prepends TRANS_A, TRANS_B, CENTRE, BIAS and ACCUMULATE, and declares
// `bias` and `centre` (bindings after c when given, one-element private stubs otherwise).
//
// A 16×16 workgroup computes a 64×64 tile of C, each invocation a 4×4 block strided by 16 so
// that neighbouring invocations write neighbouring columns. K advances 16 at a time through
// workgroup memory. Every element sums its products in increasing k, one chain per element,
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

// [TK][16] vec4s: element (kk, m) of a tile at a_tile[kk * 16 + m % 16][m / 16], so each
// invocation reads its four rows (or columns) at one k with one load.
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

@compute @workgroup_size(16, 16)
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
    var acc: array<vec4<f32>, 4>;
    for (var k0 = 0u; k0 < mp.k; k0 += TK) {
        for (var r = 0u; r < 4u; r++) {
            let e = li + r * 256u;
            // Consecutive invocations read consecutive addresses of each operand as stored.
            var mm: u32;
            var kk: u32;
            if (TRANS_A) {
                kk = e / TILE;
                mm = e % TILE;
            } else {
                mm = e / TK;
                kk = e % TK;
            }
            a_tile[kk * 16u + mm % 16u][mm / 16u] = load_a(m0 + mm, k0 + kk);
            var nn: u32;
            if (TRANS_B) {
                nn = e / TK;
                kk = e % TK;
            } else {
                kk = e / TILE;
                nn = e % TILE;
            }
            b_tile[kk * 16u + nn % 16u][nn / 16u] = load_b(k0 + kk, n0 + nn);
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            let av = a_tile[kk * 16u + lid.y];
            let bv = b_tile[kk * 16u + lid.x];
            acc[0] += av.x * bv;
            acc[1] += av.y * bv;
            acc[2] += av.z * bv;
            acc[3] += av.w * bv;
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let m = m0 + lid.y + 16u * i;
        if (m >= mp.m) {
            continue;
        }
        for (var j = 0u; j < 4u; j++) {
            let n = n0 + lid.x + 16u * j;
            if (n >= mp.n) {
                continue;
            }
            var v = acc[i][j];
            if (BIAS) {
                v += bias[n];
            }
            let at = m * mp.n + n;
            if (ACCUMULATE) {
                v = c[at] + v;
            }
            c[at] = v;
        }
    }
}
