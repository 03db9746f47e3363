// Host: engine/src/kernels/matmul.rs (CPU reference: matmul_ref there).
// Dense products: C[M, N] = op(A)[M, K] · op(B)[K, N], plus bias[n] with BIAS, plus
// the old C with ACCUMULATE; with CENTRE, A's elements less centre[k] (the encoder's x - b_dec).
// op(A)(m, k) is A[m, k], or A[k, m] with TRANS_A (likewise B), so transposed operands are read
// in place. The host prepends TRANS_A, TRANS_B, CENTRE, BIAS and ACCUMULATE, and declares
// `bias` and `centre` (bindings after c when given, one-element private stubs otherwise).
//
// An 8×8 workgroup computes a 64×64 tile of C, each invocation an 8×8 block strided by 8 so
// that neighbouring invocations write neighbouring columns: 64 products per four vec4 loads
// from workgroup memory, where those loads, not the arithmetic, bound software adapters. K
// advances 16 at a time through workgroup memory. matmul_wide, at the end, is the variant for
// software adapters. Every element sums its products in increasing k, one chain per element,
// so results do not depend on the grid.
//
// With SPLIT_A (likewise B, C) an operand is not a dense matrix: its element at (outer, inner),
// inner being the index stored contiguously, lies at outer · ld + (inner / block) · stride +
// inner % block. That reads TransformerLens's per-head weights [n_heads, d_model, d_head] as
// one [d_model, n_heads · d_head] matrix in place (heads.rs), so all heads are one product.
//
// With BATCHED the grid holds `batches` products of the same shape, tiles of one after another
// (attention's per-(batch, head) products, attention.rs): product t reads each operand from
// base + (t / group) · outer + (t % group) · inner elements on.

struct MatmulParams {
    m: u32,
    n: u32,
    k: u32,
    tiles_n: u32,
    tiles: u32,
    // Split layouts (ld, block, stride) of a, b and c; unused without SPLIT_*. Scalars,
    // since vec3s would pad the block past its 64 bytes.
    a_ld: u32,
    a_block: u32,
    a_stride: u32,
    b_ld: u32,
    b_block: u32,
    b_stride: u32,
    c_ld: u32,
    c_block: u32,
    c_stride: u32,
    // Batched products (BATCHED): how many, the group size, then (base, outer, inner) of a, b, c.
    batches: u32,
    group: u32,
    a_base: u32,
    a_outer: u32,
    a_inner: u32,
    b_base: u32,
    b_outer: u32,
    b_inner: u32,
    c_base: u32,
    c_outer: u32,
    c_inner: u32,
}

// Where the current product's operands start (0 without BATCHED).
var<private> a_off: u32;
var<private> b_off: u32;
var<private> c_off: u32;

// Picks the product of a batched grid's tile index and sets the operands' offsets; returns the
// tile within the product, or mp.tiles when the index is past the grid.
fn enter_product(index: u32) -> u32 {
    if (!BATCHED) {
        return select(mp.tiles, index, index < mp.tiles);
    }
    let t = index / mp.tiles;
    if (t >= mp.batches) {
        return mp.tiles;
    }
    let g = t / mp.group;
    let i = t % mp.group;
    a_off = mp.a_base + g * mp.a_outer + i * mp.a_inner;
    b_off = mp.b_base + g * mp.b_outer + i * mp.b_inner;
    c_off = mp.c_base + g * mp.c_outer + i * mp.c_inner;
    return index % mp.tiles;
}

@group(0) @binding(0) var<uniform> mp: MatmulParams;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

const TILE: u32 = 64u;
const TK: u32 = 16u;

// [TK][16] vec4s: slot kk * 16 + 2 y + h holds, at k-row kk, the rows (or columns)
// y + 32 h + 8 c for c < 4, so each invocation reads its eight rows (or columns) at one k with
// two adjacent loads.
var<workgroup> a_tile: array<vec4<f32>, 256>;
var<workgroup> b_tile: array<vec4<f32>, 256>;

// Where (outer, inner) of a split operand lies (see the head of the file).
fn split_at(outer: u32, inner: u32, ld: u32, block: u32, stride: u32) -> u32 {
    return outer * ld + (inner / block) * stride + inner % block;
}

fn load_a(m: u32, k: u32) -> f32 {
    if (m >= mp.m || k >= mp.k) {
        return 0.0;
    }
    var v: f32;
    if (SPLIT_A) {
        if (TRANS_A) {
            v = a[a_off + split_at(k, m, mp.a_ld, mp.a_block, mp.a_stride)];
        } else {
            v = a[a_off + split_at(m, k, mp.a_ld, mp.a_block, mp.a_stride)];
        }
    } else if (TRANS_A) {
        v = a[a_off + k * mp.m + m];
    } else {
        v = a[a_off + m * mp.k + k];
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
    if (SPLIT_B) {
        if (TRANS_B) {
            return b[b_off + split_at(n, k, mp.b_ld, mp.b_block, mp.b_stride)];
        }
        return b[b_off + split_at(k, n, mp.b_ld, mp.b_block, mp.b_stride)];
    }
    if (TRANS_B) {
        return b[b_off + n * mp.k + k];
    }
    return b[b_off + k * mp.n + n];
}

// Tiles in workgroup memory hold vec4s: with `per_k` slots per k-row, slot s holds k-row
// s / per_k and the rows (or columns) o + 8c for c < 4, o = (s % per_k) / g + 32 (s % g) with
// g = per_k / 8. This returns (k-row, o).
fn slot_origin(s: u32, per_k: u32) -> vec2<u32> {
    let g = per_k / 8u;
    return vec2(s / per_k, (s % per_k) / g + 32u * (s % g));
}

// The slots of A's and B's tiles that the tile's e-th fill goes to (256 slots a tile), dealt
// out so that neighbouring invocations read neighbouring addresses of each operand as stored:
// along k where the operand is stored k-minor, along rows (or columns) otherwise. Whole vec4
// stores, since a dynamic component store costs a read-modify-write on some compilers.
fn fill_slots(e: u32, per_k: u32) -> vec2<u32> {
    return vec2(deal(e, per_k, 256u, TRANS_A), deal(e, per_k, 256u, !TRANS_B));
}

// The slot of a tile of `slots` that fill e goes to: e itself where the operand is stored along
// its rows (or columns), else dealt along k.
fn deal(e: u32, per_k: u32, slots: u32, along_rows: bool) -> u32 {
    let k_rows = slots / per_k;
    let across = (e % k_rows) * per_k + e / k_rows;
    return select(across, e, along_rows);
}

// A's four values of slot s of the tile at (m0, k0).
fn a_slot(s: u32, per_k: u32, m0: u32, k0: u32) -> vec4<f32> {
    let o = slot_origin(s, per_k);
    let k = k0 + o.x;
    let m = m0 + o.y;
    return vec4(load_a(m, k), load_a(m + 8u, k), load_a(m + 16u, k), load_a(m + 24u, k));
}

// B's four values of slot s of the tile at (k0, n0).
fn b_slot(s: u32, per_k: u32, k0: u32, n0: u32) -> vec4<f32> {
    let o = slot_origin(s, per_k);
    let k = k0 + o.x;
    let n = n0 + o.y;
    return vec4(load_b(k, n), load_b(k, n + 8u), load_b(k, n + 16u), load_b(k, n + 24u));
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
        var at = c_off + m * mp.n + col;
        if (SPLIT_C) {
            at = c_off + split_at(m, col, mp.c_ld, mp.c_block, mp.c_stride);
        }
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
    let tile = enter_product(group_index(wid, nwg));
    if (tile >= mp.tiles) {
        return;
    }
    let m0 = (tile / mp.tiles_n) * TILE;
    let n0 = (tile % mp.tiles_n) * TILE;
    var acc: array<vec4<f32>, 16>;
    for (var k0 = 0u; k0 < mp.k; k0 += TK) {
        for (var r = 0u; r < 4u; r++) {
            let sl = fill_slots(li + r * 64u, 16u);
            a_tile[sl.x] = a_slot(sl.x, 16u, m0, k0);
            b_tile[sl.y] = b_slot(sl.y, 16u, k0, n0);
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

// ---- matmul_wide: software adapters ----
//
// The same product for adapters that run invocations as SIMD lanes on a CPU, where every
// load from workgroup memory costs a loop over the lanes and arithmetic is cheap: each of 8×8
// invocations computes a 16×16 block of a 128×128 tile, 64 products per vec4 load (four times
// matmul's), K advancing 16 at a time (each barrier switches between all of a workgroup's SIMD
// batches; 16 KiB of tiles, WebGPU's default limit). 256 accumulators an invocation would
// spill on a GPU, hence two kernels. Same sums in the same order as matmul.

const WIDE: u32 = 128u;
const WIDE_K: u32 = 16u;
// Slots of a 128-row (or column) tile: WIDE_K rows of 32 vec4s.
const WIDE_SLOTS: u32 = WIDE_K * 32u;

// [WIDE_K][32] vec4s: slot kk * 32 + 4 y + h holds, at k-row kk, the rows (or columns)
// y + 32 h + 8 c for c < 4.
var<workgroup> a_wide: array<vec4<f32>, WIDE_SLOTS>;
var<workgroup> b_wide: array<vec4<f32>, WIDE_SLOTS>;

// Fills the tiles at k0: A's 128 rows from m0, and B's columns from n0, b_per_k slots (of four
// columns) a k-row: 32 for matmul_wide, 8 for matmul_narrow.
fn fill_wide(li: u32, m0: u32, n0: u32, k0: u32, b_per_k: u32) {
    for (var e = li; e < WIDE_SLOTS; e += 64u) {
        let sa = deal(e, 32u, WIDE_SLOTS, TRANS_A);
        a_wide[sa] = a_slot(sa, 32u, m0, k0);
    }
    let b_slots = WIDE_K * b_per_k;
    for (var e = li; e < b_slots; e += 64u) {
        let sb = deal(e, b_per_k, b_slots, !TRANS_B);
        b_wide[sb] = b_slot(sb, b_per_k, k0, n0);
    }
}

@compute @workgroup_size(8, 8)
fn matmul_wide(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let tile = enter_product(group_index(wid, nwg));
    if (tile >= mp.tiles) {
        return;
    }
    let m0 = (tile / mp.tiles_n) * WIDE;
    let n0 = (tile % mp.tiles_n) * WIDE;
    var acc: array<vec4<f32>, 64>;
    for (var k0 = 0u; k0 < mp.k; k0 += WIDE_K) {
        fill_wide(li, m0, n0, k0, 32u);
        workgroupBarrier();
        for (var kk = 0u; kk < WIDE_K; kk++) {
            let ab = kk * 32u + lid.y * 4u;
            let bb = kk * 32u + lid.x * 4u;
            let a0 = a_wide[ab + 0u];
            let a1 = a_wide[ab + 1u];
            let a2 = a_wide[ab + 2u];
            let a3 = a_wide[ab + 3u];
            let b0 = b_wide[bb + 0u];
            let b1 = b_wide[bb + 1u];
            let b2 = b_wide[bb + 2u];
            let b3 = b_wide[bb + 3u];
            acc[0] += a0.x * b0; acc[1] += a0.x * b1; acc[2] += a0.x * b2; acc[3] += a0.x * b3;
            acc[4] += a0.y * b0; acc[5] += a0.y * b1; acc[6] += a0.y * b2; acc[7] += a0.y * b3;
            acc[8] += a0.z * b0; acc[9] += a0.z * b1; acc[10] += a0.z * b2; acc[11] += a0.z * b3;
            acc[12] += a0.w * b0; acc[13] += a0.w * b1; acc[14] += a0.w * b2; acc[15] += a0.w * b3;
            acc[16] += a1.x * b0; acc[17] += a1.x * b1; acc[18] += a1.x * b2; acc[19] += a1.x * b3;
            acc[20] += a1.y * b0; acc[21] += a1.y * b1; acc[22] += a1.y * b2; acc[23] += a1.y * b3;
            acc[24] += a1.z * b0; acc[25] += a1.z * b1; acc[26] += a1.z * b2; acc[27] += a1.z * b3;
            acc[28] += a1.w * b0; acc[29] += a1.w * b1; acc[30] += a1.w * b2; acc[31] += a1.w * b3;
            acc[32] += a2.x * b0; acc[33] += a2.x * b1; acc[34] += a2.x * b2; acc[35] += a2.x * b3;
            acc[36] += a2.y * b0; acc[37] += a2.y * b1; acc[38] += a2.y * b2; acc[39] += a2.y * b3;
            acc[40] += a2.z * b0; acc[41] += a2.z * b1; acc[42] += a2.z * b2; acc[43] += a2.z * b3;
            acc[44] += a2.w * b0; acc[45] += a2.w * b1; acc[46] += a2.w * b2; acc[47] += a2.w * b3;
            acc[48] += a3.x * b0; acc[49] += a3.x * b1; acc[50] += a3.x * b2; acc[51] += a3.x * b3;
            acc[52] += a3.y * b0; acc[53] += a3.y * b1; acc[54] += a3.y * b2; acc[55] += a3.y * b3;
            acc[56] += a3.z * b0; acc[57] += a3.z * b1; acc[58] += a3.z * b2; acc[59] += a3.z * b3;
            acc[60] += a3.w * b0; acc[61] += a3.w * b1; acc[62] += a3.w * b2; acc[63] += a3.w * b3;
        }
        workgroupBarrier();
    }
    let r0 = m0 + lid.y;
    let c0 = n0 + lid.x;
    store4(r0 + 0u, c0 + 0u, acc[0]); store4(r0 + 0u, c0 + 32u, acc[1]); store4(r0 + 0u, c0 + 64u, acc[2]); store4(r0 + 0u, c0 + 96u, acc[3]);
    store4(r0 + 8u, c0 + 0u, acc[4]); store4(r0 + 8u, c0 + 32u, acc[5]); store4(r0 + 8u, c0 + 64u, acc[6]); store4(r0 + 8u, c0 + 96u, acc[7]);
    store4(r0 + 16u, c0 + 0u, acc[8]); store4(r0 + 16u, c0 + 32u, acc[9]); store4(r0 + 16u, c0 + 64u, acc[10]); store4(r0 + 16u, c0 + 96u, acc[11]);
    store4(r0 + 24u, c0 + 0u, acc[12]); store4(r0 + 24u, c0 + 32u, acc[13]); store4(r0 + 24u, c0 + 64u, acc[14]); store4(r0 + 24u, c0 + 96u, acc[15]);
    store4(r0 + 32u, c0 + 0u, acc[16]); store4(r0 + 32u, c0 + 32u, acc[17]); store4(r0 + 32u, c0 + 64u, acc[18]); store4(r0 + 32u, c0 + 96u, acc[19]);
    store4(r0 + 40u, c0 + 0u, acc[20]); store4(r0 + 40u, c0 + 32u, acc[21]); store4(r0 + 40u, c0 + 64u, acc[22]); store4(r0 + 40u, c0 + 96u, acc[23]);
    store4(r0 + 48u, c0 + 0u, acc[24]); store4(r0 + 48u, c0 + 32u, acc[25]); store4(r0 + 48u, c0 + 64u, acc[26]); store4(r0 + 48u, c0 + 96u, acc[27]);
    store4(r0 + 56u, c0 + 0u, acc[28]); store4(r0 + 56u, c0 + 32u, acc[29]); store4(r0 + 56u, c0 + 64u, acc[30]); store4(r0 + 56u, c0 + 96u, acc[31]);
    store4(r0 + 64u, c0 + 0u, acc[32]); store4(r0 + 64u, c0 + 32u, acc[33]); store4(r0 + 64u, c0 + 64u, acc[34]); store4(r0 + 64u, c0 + 96u, acc[35]);
    store4(r0 + 72u, c0 + 0u, acc[36]); store4(r0 + 72u, c0 + 32u, acc[37]); store4(r0 + 72u, c0 + 64u, acc[38]); store4(r0 + 72u, c0 + 96u, acc[39]);
    store4(r0 + 80u, c0 + 0u, acc[40]); store4(r0 + 80u, c0 + 32u, acc[41]); store4(r0 + 80u, c0 + 64u, acc[42]); store4(r0 + 80u, c0 + 96u, acc[43]);
    store4(r0 + 88u, c0 + 0u, acc[44]); store4(r0 + 88u, c0 + 32u, acc[45]); store4(r0 + 88u, c0 + 64u, acc[46]); store4(r0 + 88u, c0 + 96u, acc[47]);
    store4(r0 + 96u, c0 + 0u, acc[48]); store4(r0 + 96u, c0 + 32u, acc[49]); store4(r0 + 96u, c0 + 64u, acc[50]); store4(r0 + 96u, c0 + 96u, acc[51]);
    store4(r0 + 104u, c0 + 0u, acc[52]); store4(r0 + 104u, c0 + 32u, acc[53]); store4(r0 + 104u, c0 + 64u, acc[54]); store4(r0 + 104u, c0 + 96u, acc[55]);
    store4(r0 + 112u, c0 + 0u, acc[56]); store4(r0 + 112u, c0 + 32u, acc[57]); store4(r0 + 112u, c0 + 64u, acc[58]); store4(r0 + 112u, c0 + 96u, acc[59]);
    store4(r0 + 120u, c0 + 0u, acc[60]); store4(r0 + 120u, c0 + 32u, acc[61]); store4(r0 + 120u, c0 + 64u, acc[62]); store4(r0 + 120u, c0 + 96u, acc[63]);
}

// ---- matmul_narrow: software adapters, outputs at most 32 wide ----
//
// Attention's per-head products are d_head (32) wide: on 64×64 tiles half of every tile would
// be padding. Here each of 8×8 invocations computes 16 rows × 4 columns of a 128×32 tile, 64
// products per five vec4 loads, K advancing as in matmul_wide (whose workgroup arrays it
// shares: A fills all its slots, B a quarter). Same sums in the same order.

const NARROW: u32 = 32u;

@compute @workgroup_size(8, 8)
fn matmul_narrow(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let tile = enter_product(group_index(wid, nwg));
    if (tile >= mp.tiles) {
        return;
    }
    let m0 = (tile / mp.tiles_n) * WIDE;
    let n0 = (tile % mp.tiles_n) * NARROW;
    var acc: array<vec4<f32>, 16>;
    for (var k0 = 0u; k0 < mp.k; k0 += WIDE_K) {
        fill_wide(li, m0, n0, k0, 8u);
        workgroupBarrier();
        for (var kk = 0u; kk < WIDE_K; kk++) {
            let ab = kk * 32u + lid.y * 4u;
            let a0 = a_wide[ab + 0u];
            let a1 = a_wide[ab + 1u];
            let a2 = a_wide[ab + 2u];
            let a3 = a_wide[ab + 3u];
            let b0 = b_wide[kk * 8u + lid.x];
            acc[0] += a0.x * b0; acc[1] += a0.y * b0; acc[2] += a0.z * b0; acc[3] += a0.w * b0;
            acc[4] += a1.x * b0; acc[5] += a1.y * b0; acc[6] += a1.z * b0; acc[7] += a1.w * b0;
            acc[8] += a2.x * b0; acc[9] += a2.y * b0; acc[10] += a2.z * b0; acc[11] += a2.w * b0;
            acc[12] += a3.x * b0; acc[13] += a3.y * b0; acc[14] += a3.z * b0; acc[15] += a3.w * b0;
        }
        workgroupBarrier();
    }
    // Slot h of a row group holds rows y + 32 h + 8 c (c its component).
    let r0 = m0 + lid.y;
    let c0 = n0 + lid.x;
    store4(r0 + 0u, c0, acc[0]); store4(r0 + 8u, c0, acc[1]); store4(r0 + 16u, c0, acc[2]); store4(r0 + 24u, c0, acc[3]);
    store4(r0 + 32u, c0, acc[4]); store4(r0 + 40u, c0, acc[5]); store4(r0 + 48u, c0, acc[6]); store4(r0 + 56u, c0, acc[7]);
    store4(r0 + 64u, c0, acc[8]); store4(r0 + 72u, c0, acc[9]); store4(r0 + 80u, c0, acc[10]); store4(r0 + 88u, c0, acc[11]);
    store4(r0 + 96u, c0, acc[12]); store4(r0 + 104u, c0, acc[13]); store4(r0 + 112u, c0, acc[14]); store4(r0 + 120u, c0, acc[15]);
}
