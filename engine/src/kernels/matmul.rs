//! Dense products (host of `shaders/matmul.wgsl`): `C = op(A) · op(B)` with either operand
//! read transposed in place, an optional bias per column, an optional centre subtracted from
//! A's rows, and optional accumulation into C; [`matmul_ref`] is its CPU reference.

use super::{bool_consts, dim, params, Kernel, Optional};
use crate::error::Result;
use crate::gpu::{Gpu, Recording, Tensor, View};

const MATMUL_WGSL: &str = include_str!("../../../shaders/matmul.wgsl");
const REDUCE_WGSL: &str = include_str!("../../../shaders/matmul_reduce.wgsl");
const TILE: u64 = 64;
/// The most rows any kernel's output tile has: a product whose rows are a multiple of it
/// computes no padding rows on any adapter.
pub const MAX_TILE_ROWS: usize = 2 * TILE as usize;
/// The columns of a `matmul_narrow` tile.
const NARROW: u64 = 32;

/// Workgroups a product should keep busy before its k is split: a GPU has a hundred-odd
/// compute units to fill, a software adapter a thread a core.
const GPU_GROUPS: u64 = 128;
const SOFTWARE_GROUPS: u64 = 8;
/// The shortest slice of k a split gives a workgroup (shorter ones spend more on the slabs
/// than they save).
const MIN_PART_K: usize = 256;

/// `c[M, N] = op(a) · op(b) (+ bias[n]) (+ old c)`, with `op(a)` `[M, K]` and `op(b)` `[K, N]`.
/// A transposed operand is stored the other way round (`a` as `[K, M]`, `b` as `[N, K]`) and
/// read in place.
#[derive(Clone, Copy)]
pub struct Matmul<'a> {
    /// Left operand: `[M, K]`, or `[K, M]` with `trans_a`.
    pub a: View<'a>,
    /// Right operand: `[K, N]`, or `[N, K]` with `trans_b`.
    pub b: View<'a>,
    /// Output `[M, N]`.
    pub c: View<'a>,
    /// Rows of the output.
    pub m: usize,
    /// Columns of the output.
    pub n: usize,
    /// The summed dimension.
    pub k: usize,
    /// `a` is stored transposed.
    pub trans_a: bool,
    /// `b` is stored transposed.
    pub trans_b: bool,
    /// Added to every row of the product, `[N]`.
    pub bias: Option<View<'a>>,
    /// Subtracted from `op(a)`'s every row before the product, `[K]`.
    pub centre: Option<View<'a>>,
    /// Add to `c` instead of overwriting it.
    pub accumulate: bool,
}

impl<'a> Matmul<'a> {
    /// The plain product `c = a · b` of an `[m, k]` and a `[k, n]` matrix (`dims` is
    /// `(m, n, k)`): no transposes, bias, centring or accumulation, which callers set by field.
    pub fn new(a: View<'a>, b: View<'a>, c: View<'a>, (m, n, k): (usize, usize, usize)) -> Self {
        Self {
            a,
            b,
            c,
            m,
            n,
            k,
            trans_a: false,
            trans_b: false,
            bias: None,
            centre: None,
            accumulate: false,
        }
    }
}

/// Where an operand finds its elements when it is not one dense matrix (see
/// `shaders/matmul.wgsl`): a strided view. Element (outer, inner) of product `t` (inner being
/// the index stored contiguously: k for a plain `a`, m for a transposed one; `t` the product of
/// a batch, see [`Layout`]) lies at
/// `base + (t / group) · group_stride + (t % group) · item_stride + outer · ld + (inner / block) · block_stride + inner % block`.
/// TransformerLens's per-head weights `[n_heads, d_model, d_head]` are one `[d_model, n_heads ·
/// d_head]` matrix this way (`ld` d_head, `block` d_head, `block_stride` d_model · d_head), so
/// the heads are one product; attention's per-(batch, head) matrices of a `[batch, pos, head,
/// d_head]` tensor are a batch of them (`ld` head · d_head, `item_stride` d_head, `group_stride`
/// pos · head · d_head). An output laid out this way must not map two elements to one place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Strided {
    /// Distance between consecutive outer indices.
    pub ld: usize,
    /// Inner indices in one contiguous run.
    pub block: usize,
    /// Distance between consecutive runs.
    pub block_stride: usize,
    /// Offset of the first product's operand.
    pub base: usize,
    /// Distance between groups of a batch's products.
    pub group_stride: usize,
    /// Distance between products within a group.
    pub item_stride: usize,
}

impl Strided {
    /// Rows `ld` apart, each one contiguous run, the same for every product.
    pub const fn rows(ld: usize) -> Self {
        Self {
            ld,
            block: ld,
            block_stride: 0,
            base: 0,
            group_stride: 0,
            item_stride: 0,
        }
    }

    /// Runs of `block` inner indices `block_stride` apart, outer indices `ld` apart.
    pub const fn split(ld: usize, block: usize, block_stride: usize) -> Self {
        Self {
            block,
            block_stride,
            ..Self::rows(ld)
        }
    }

    /// Where (outer, inner) of the first product lies.
    pub fn at(&self, outer: usize, inner: usize) -> usize {
        self.base + self.within(outer, inner)
    }

    /// Where (outer, inner) lies from the start of its product.
    fn within(&self, outer: usize, inner: usize) -> usize {
        outer * self.ld + (inner / self.block) * self.block_stride + inner % self.block
    }

    /// Where product `t` of a batch in groups of `group` starts.
    fn product(&self, t: usize, group: usize) -> usize {
        (t / group) * self.group_stride + (t % group) * self.item_stride
    }

    /// True when an `[outer, inner]` operand so laid out is a dense matrix within each product
    /// (the shader then indexes it plainly).
    fn dense(&self, inner: usize) -> bool {
        self.ld == inner && self.block >= inner
    }

    /// Elements past `base` a view must hold for one product's `outer × inner` indices.
    fn extent(&self, outer: usize, inner: usize) -> usize {
        if outer == 0 || inner == 0 {
            return 0;
        }
        let last = self.within(outer - 1, inner - 1);
        // The end of the last full run can lie past the last index when runs are spaced
        // closer than they are long; take whichever is further.
        let full = inner / self.block;
        let end_of_run = if full > 0 {
            self.within(outer - 1, full * self.block - 1)
        } else {
            0
        };
        last.max(end_of_run) + 1
    }
}

/// How a [`Matmul`]'s operands lie when they are not dense matrices (see [`Strided`]; `None`
/// is dense, the same for every product), and how many products one dispatch computes: `count`
/// in groups of `group` (attention's per-(batch, head) products, grouped by batch). The
/// default is one product of dense operands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The left operand's layout.
    pub a: Option<Strided>,
    /// The right operand's layout.
    pub b: Option<Strided>,
    /// The output's layout.
    pub c: Option<Strided>,
    /// Products.
    pub count: usize,
    /// Products in a group (the inner of a two-level index).
    pub group: usize,
}

impl Default for Layout {
    fn default() -> Self {
        Self {
            a: None,
            b: None,
            c: None,
            count: 1,
            group: 1,
        }
    }
}

impl Layout {
    /// More than one product, or operands that do not start where their views do.
    fn batched(&self) -> bool {
        self.count > 1
            || [self.a, self.b, self.c]
                .iter()
                .flatten()
                .any(|s| s.base > 0)
    }
}

/// Names of a product's buffers in error messages: a, b, c, bias, centre.
pub(crate) type Names = [&'static str; 5];

/// The shader's two kernels: 64×64 output tiles of 8×8 blocks for GPUs, 128×128 tiles of
/// 16×16 blocks for software adapters (fewer loads per product where each load loops over the
/// SIMD lanes; too many accumulators for a GPU's registers).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Tiling {
    Gpu,
    Wide,
    /// 128×32 tiles for software adapters, for outputs at most 32 wide.
    Narrow,
}

impl Tiling {
    /// The entry point and its output tiles' rows and columns.
    fn entry_and_tile(self) -> (&'static str, u64, u64) {
        match self {
            Tiling::Gpu => ("matmul", TILE, TILE),
            Tiling::Wide => ("matmul_wide", 2 * TILE, 2 * TILE),
            Tiling::Narrow => ("matmul_narrow", 2 * TILE, NARROW),
        }
    }

    /// Output tiles of an `m × n` product.
    fn tiles(self, m: u64, n: u64) -> (u64, u64) {
        let (_, tm, tn) = self.entry_and_tile();
        (m.div_ceil(tm), n.div_ceil(tn))
    }

    /// On software adapters the wide tiles, or the narrow ones for outputs at most 32 wide
    /// (attention's per-head products, d_head wide), where most of a wide tile would be
    /// padding; the GPU tiles where the output is at most one of them across either way.
    fn for_device(gpu: &Gpu, m: usize, n: usize) -> Self {
        let narrow = m.min(n) as u64 <= TILE;
        if !gpu.is_software() {
            Tiling::Gpu
        } else if n as u64 <= NARROW && m as u64 > NARROW {
            Tiling::Narrow
        } else if narrow {
            Tiling::Gpu
        } else {
            Tiling::Wide
        }
    }
}

/// Records one tiled product (output tiles of 64×64, or 128×128 on software adapters, a 2-D
/// grid when there are many). Each output element is the sum over k in increasing order, then
/// the bias, then the old value.
pub async fn matmul(rec: &mut Recording<'_>, mm: &Matmul<'_>) -> Result<()> {
    matmul_named(rec, mm, ["a", "b", "c", "bias", "centre"]).await
}

pub(crate) async fn matmul_named(
    rec: &mut Recording<'_>,
    mm: &Matmul<'_>,
    names: Names,
) -> Result<()> {
    let tiling = Tiling::for_device(rec.gpu(), mm.m, mm.n);
    matmul_tiled(rec, mm, names, tiling, &Layout::default()).await
}

/// As [`matmul`], with operands laid out as `layout` says.
pub async fn matmul_laid_out(
    rec: &mut Recording<'_>,
    mm: &Matmul<'_>,
    layout: &Layout,
) -> Result<()> {
    let tiling = Tiling::for_device(rec.gpu(), mm.m, mm.n);
    matmul_tiled(rec, mm, ["a", "b", "c", "bias", "centre"], tiling, layout).await
}

/// Checks that `view` holds a `[outer, inner]` operand laid out as `strided` says (dense
/// without one) for every product of the batch.
fn check_operand(
    gpu: &Gpu,
    name: &'static str,
    view: View<'_>,
    (outer, inner): (u32, u32),
    strided: Option<Strided>,
    (count, group): (usize, usize),
) -> Result<()> {
    let Some(s) = strided else {
        return Tensor::new(gpu, name, view, &[outer, inner]).map(|_| ());
    };
    if s.block == 0 {
        return Err(crate::EngineError::invalid(
            name,
            "a split layout with runs of 0",
            "runs must hold at least one element",
        ));
    }
    // The furthest product is the last, or the last of the group before its group (when the
    // last group is short).
    let start_of_last_group = (count - 1) / group * group;
    let far = s.product(count - 1, group);
    let last = match start_of_last_group.checked_sub(1) {
        Some(t) => far.max(s.product(t, group)),
        None => far,
    };
    let one = s.extent(outer as usize, inner as usize);
    Tensor::flat(gpu, name, view, (s.base + last + one) as u64).map(|_| ())
}

/// Into how many slices of k to split a product with only `tiles` output tiles (`None`: do
/// not): enough to fill the device, each at least [`MIN_PART_K`] long and all of one length.
/// Only dense inputs split (a slice is then a batch of plain products).
fn k_parts(gpu: &Gpu, mm: &Matmul<'_>, layout: &Layout, tiles: u64) -> Option<usize> {
    // An output laid out otherwise (heads' weight gradients) is the reduction's to write;
    // laid-out or batched inputs would need a second level of layout.
    if layout.a.is_some() || layout.b.is_some() || layout.batched() {
        return None;
    }
    if mm.centre.is_some() {
        return None;
    }
    let target = if gpu.is_software() {
        SOFTWARE_GROUPS
    } else {
        GPU_GROUPS
    };
    if tiles >= target {
        return None;
    }
    let want = target.div_ceil(tiles) as usize;
    (2..=want)
        .rev()
        .find(|&s| mm.k.is_multiple_of(s) && mm.k / s >= MIN_PART_K)
}

async fn matmul_tiled(
    rec: &mut Recording<'_>,
    mm: &Matmul<'_>,
    names: Names,
    tiling: Tiling,
    layout: &Layout,
) -> Result<()> {
    let gpu = rec.gpu().clone();
    let (tiles_m, tiles_n) = tiling.tiles(mm.m as u64, mm.n as u64);
    let tiles = tiles_m * tiles_n;
    let Some(parts) = k_parts(&gpu, mm, layout, tiles) else {
        return dispatch_tiled(rec, mm, names, tiling, layout).await;
    };
    // Check the operands as given before recording anything.
    check_product(&gpu, mm, names, layout)?;
    let (m, n, k) = (mm.m, mm.n, mm.k);
    let kp = k / parts;
    let partial = gpu.storage_dirty::<f32>("matmul slabs", parts * m * n)?;
    // Slice s of k: A's columns (or, transposed, rows) and B's rows (or columns) from s · kp,
    // each slice's product written to its own slab.
    let columns = Strided {
        item_stride: kp,
        ..Strided::split(k, kp, 0)
    };
    let rows = |ld: usize| Strided {
        item_stride: kp * ld,
        ..Strided::rows(ld)
    };
    let sliced = Layout {
        a: Some(if mm.trans_a { rows(m) } else { columns }),
        b: Some(if mm.trans_b { columns } else { rows(n) }),
        c: Some(Strided {
            item_stride: m * n,
            ..Strided::rows(n)
        }),
        count: parts,
        group: parts,
    };
    let part = Matmul {
        c: (&partial).into(),
        k: kp,
        bias: None,
        accumulate: false,
        ..*mm
    };
    dispatch_tiled(rec, &part, names, tiling, &sliced).await?;
    let consts = bool_consts(&[
        ("BIAS", mm.bias.is_some()),
        ("ACCUMULATE", mm.accumulate),
        ("SPLIT_C", layout.c.is_some()),
    ]);
    let optional = [Optional {
        name: "bias",
        elem: "f32",
        buffer: mm.bias,
        writes: false,
    }];
    let storage = vec![View::from(&partial), mm.c];
    let kern = Kernel::new(
        &gpu,
        "matmul_reduce",
        &consts,
        REDUCE_WGSL,
        storage,
        &optional,
    )
    .await?;
    let c = layout.c.unwrap_or(Strided::rows(n));
    let words = layout_words(&[m, n, parts, c.ld, c.block, c.block_stride])?;
    let elems = (m * n) as u64;
    kern.dispatch(rec, "matmul_reduce", params(&words), elems.div_ceil(256))
        .await?;
    rec.recycle_after(partial);
    Ok(())
}

/// Layout sizes and offsets as uniform words, refused when one passes 32 bits.
fn layout_words(values: &[usize]) -> Result<Vec<u32>> {
    values
        .iter()
        .map(|&v| {
            u32::try_from(v).map_err(|_| {
                crate::EngineError::invalid("matmul layout", v.to_string(), "must fit in 32 bits")
            })
        })
        .collect()
}

/// The stored `(outer, inner)` shape of each operand: a, b, c.
fn stored(mm: &Matmul<'_>) -> Result<[(u32, u32); 3]> {
    let (m, n, k) = (dim("m", mm.m)?, dim("n", mm.n)?, dim("k", mm.k)?);
    let st = |t: bool, rows: u32, cols: u32| if t { (cols, rows) } else { (rows, cols) };
    Ok([st(mm.trans_a, m, k), st(mm.trans_b, k, n), (m, n)])
}

/// Checks a product's operands against its shape and layout (named as `names` says), before
/// anything is recorded.
fn check_product(gpu: &Gpu, mm: &Matmul<'_>, names: Names, layout: &Layout) -> Result<()> {
    if layout.count == 0 || layout.group == 0 {
        return Err(crate::EngineError::invalid(
            "matmul batch",
            format!("{} products in groups of {}", layout.count, layout.group),
            "must hold at least one product",
        ));
    }
    let batch = (layout.count, layout.group);
    let operands = [(mm.a, layout.a), (mm.b, layout.b), (mm.c, layout.c)];
    for (((view, strided), shape), name) in operands.into_iter().zip(stored(mm)?).zip(names) {
        check_operand(gpu, name, view, shape, strided, batch)?;
    }
    if let Some(bias) = mm.bias {
        Tensor::new(gpu, names[3], bias, &[mm.n as u32])?;
    }
    if let Some(centre) = mm.centre {
        Tensor::new(gpu, names[4], centre, &[mm.k as u32])?;
    }
    Ok(())
}

/// Records one tiled product (a batch of them when `layout` says so).
async fn dispatch_tiled(
    rec: &mut Recording<'_>,
    mm: &Matmul<'_>,
    names: Names,
    tiling: Tiling,
    layout: &Layout,
) -> Result<()> {
    let gpu = &rec.gpu().clone();
    check_product(gpu, mm, names, layout)?;
    let (m, n, k) = (dim("m", mm.m)?, dim("n", mm.n)?, dim("k", mm.k)?);
    let (entry, _, _) = tiling.entry_and_tile();
    let (tiles_m, tiles_n) = tiling.tiles(m as u64, n as u64);
    let tiles = tiles_m * tiles_n;
    let operands = [layout.a, layout.b, layout.c];
    // An operand the shader must index through its layout: one that is not dense within its
    // product.
    let split: Vec<bool> = operands
        .iter()
        .zip(stored(mm)?)
        .map(|(s, (_, inner))| s.is_some_and(|s| !s.dense(inner as usize)))
        .collect();
    let batched = layout.batched();
    let consts = bool_consts(&[
        ("TRANS_A", mm.trans_a),
        ("TRANS_B", mm.trans_b),
        ("CENTRE", mm.centre.is_some()),
        ("BIAS", mm.bias.is_some()),
        ("ACCUMULATE", mm.accumulate),
        ("SPLIT_A", split[0]),
        ("SPLIT_B", split[1]),
        ("SPLIT_C", split[2]),
        ("BATCHED", batched),
    ]);
    let optional = [
        Optional {
            name: "bias",
            elem: "f32",
            buffer: mm.bias,
            writes: false,
        },
        Optional {
            name: "centre",
            elem: "f32",
            buffer: mm.centre,
            writes: false,
        },
    ];
    let storage = vec![mm.a, mm.b, mm.c];
    let kern = Kernel::new(gpu, "matmul", &consts, MATMUL_WGSL, storage, &optional).await?;
    let mut words = vec![m, n, k, tiles_n as u32, tiles as u32];
    let none = Strided::split(0, 1, 0);
    let mut wide = vec![];
    for s in operands {
        let s = s.unwrap_or(none);
        wide.extend([s.ld, s.block, s.block_stride]);
    }
    wide.extend([layout.count, layout.group]);
    for s in operands {
        let s = s.unwrap_or(none);
        wide.extend([s.base, s.group_stride, s.item_stride]);
    }
    words.extend(layout_words(&wide)?);
    let groups = tiles * layout.count as u64;
    kern.dispatch(rec, entry, params(&words), groups).await?;
    Ok(())
}

/// CPU reference of the plain product `op(a) · op(b)` (see [`Matmul`] for the layouts), each
/// element summed in increasing k like the kernel.
pub fn matmul_ref(
    a: &[f32],
    b: &[f32],
    (m, n, k): (usize, usize, usize),
    trans_a: bool,
    trans_b: bool,
) -> Vec<f32> {
    let mut c = vec![0f32; m * n];
    for r in 0..m {
        for col in 0..n {
            let mut s = 0f32;
            for i in 0..k {
                let av = if trans_a { a[i * m + r] } else { a[r * k + i] };
                let bv = if trans_b {
                    b[col * k + i]
                } else {
                    b[i * n + col]
                };
                s += av * bv;
            }
            c[r * n + col] = s;
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::super::test_data::{record, values};
    use super::*;
    use crate::gpu::{Gpu, Recording};
    use crate::gpu_test;
    use crate::testing::assert_close;

    /// Tolerance of products summing a few hundred terms of magnitude ≤ 1 in f32, in another
    /// association (fused multiply-adds) than the reference: 2e-5 absolute + 1e-4 relative.
    const ATOL: f32 = 2e-5;
    const RTOL: f32 = 1e-4;

    async fn all_transposes(gpu: &Gpu) {
        // Past one tile of either kernel in m and n, k not a multiple of either's K step.
        let (m, n, k) = (131, 140, 33);
        let a = values(11, m * k);
        let b = values(12, k * n);
        let ba = gpu.storage_from("a", &a).unwrap();
        let bb = gpu.storage_from("b", &b).unwrap();
        // Both kernels, whichever this adapter uses for the other tests.
        let cases = [(false, false), (true, false), (false, true), (true, true)]
            .into_iter()
            .flat_map(|t| [(t, Tiling::Gpu), (t, Tiling::Wide), (t, Tiling::Narrow)]);
        for ((ta, tb), tiling) in cases {
            let c = gpu.storage_zeroed::<f32>("c", m * n).unwrap();
            record(gpu, async |rec: &mut Recording<'_>| {
                let mm = Matmul {
                    a: (&ba).into(),
                    b: (&bb).into(),
                    c: (&c).into(),
                    m,
                    n,
                    k,
                    trans_a: ta,
                    trans_b: tb,
                    bias: None,
                    centre: None,
                    accumulate: false,
                };
                let names = ["a", "b", "c", "bias", "centre"];
                matmul_tiled(rec, &mm, names, tiling, &Layout::default()).await
            })
            .await;
            let got: Vec<f32> = gpu.read(&c, m * n).await.unwrap();
            let want = matmul_ref(&a, &b, (m, n, k), ta, tb);
            let what = format!("{tiling:?} trans {ta} {tb}");
            assert_close(&what, &got, &want, ATOL, RTOL);
        }
    }
    gpu_test!(gpu_matmul_all_transposes_match_reference, all_transposes);

    /// Split operands (per-head weights read in place) on both kernels, against the dense
    /// product of the same elements gathered on the CPU: a split right operand, plain and
    /// transposed, and a split output, at sizes past one tile of either kernel with runs that
    /// are not a multiple of the tile.
    async fn split_layouts(gpu: &Gpu) {
        let (rows, d, heads, e) = (131, 70, 5, 27);
        let width = heads * e;
        let split = Strided::split(e, e, d * e);
        // w[h, m, e] as a dense [d, width] matrix.
        let w = values(31, heads * d * e);
        let dense_w: Vec<f32> = (0..d)
            .flat_map(|m| (0..width).map(move |n| (m, n)))
            .map(|(m, n)| w[split.at(m, n)])
            .collect();
        let x = values(32, rows * d);
        let g = values(33, rows * width);
        let up = |n: &str, v: &[f32]| gpu.storage_from(n, v).unwrap();
        let (bx, bw, bg) = (up("x", &x), up("w", &w), up("g", &g));
        for tiling in [Tiling::Gpu, Tiling::Wide, Tiling::Narrow] {
            // x · W: B split.
            let out = gpu.storage_zeroed::<f32>("out", rows * width).unwrap();
            // g · Wᵀ: B split and transposed.
            let dx = gpu.storage_zeroed::<f32>("dx", rows * d).unwrap();
            // xᵀ · g into W's layout: C split.
            let dw = gpu.storage_zeroed::<f32>("dw", heads * d * e).unwrap();
            record(gpu, async |rec: &mut Recording<'_>| {
                let plain = |a, b, c, (m, n, k), trans_a, trans_b| Matmul {
                    a,
                    b,
                    c,
                    m,
                    n,
                    k,
                    trans_a,
                    trans_b,
                    bias: None,
                    centre: None,
                    accumulate: false,
                };
                let names = ["a", "b", "c", "bias", "centre"];
                let on_b = Layout {
                    b: Some(split),
                    ..Layout::default()
                };
                let on_c = Layout {
                    c: Some(split),
                    ..Layout::default()
                };
                let mm = plain(
                    (&bx).into(),
                    (&bw).into(),
                    (&out).into(),
                    (rows, width, d),
                    false,
                    false,
                );
                matmul_tiled(rec, &mm, names, tiling, &on_b).await?;
                let mm = plain(
                    (&bg).into(),
                    (&bw).into(),
                    (&dx).into(),
                    (rows, d, width),
                    false,
                    true,
                );
                matmul_tiled(rec, &mm, names, tiling, &on_b).await?;
                let mm = plain(
                    (&bx).into(),
                    (&bg).into(),
                    (&dw).into(),
                    (d, width, rows),
                    true,
                    false,
                );
                matmul_tiled(rec, &mm, names, tiling, &on_c).await
            })
            .await;
            let what = |n: &str| format!("{tiling:?} {n}");
            let got: Vec<f32> = gpu.read(&out, rows * width).await.unwrap();
            let want = matmul_ref(&x, &dense_w, (rows, width, d), false, false);
            assert_close(&what("x·W"), &got, &want, ATOL, RTOL);
            let got: Vec<f32> = gpu.read(&dx, rows * d).await.unwrap();
            let want = matmul_ref(&g, &dense_w, (rows, d, width), false, true);
            assert_close(&what("g·Wᵀ"), &got, &want, ATOL, RTOL);
            let got: Vec<f32> = gpu.read(&dw, heads * d * e).await.unwrap();
            let dense = matmul_ref(&x, &g, (d, width, rows), true, false);
            let mut want = vec![f32::NAN; heads * d * e];
            for m in 0..d {
                for n in 0..width {
                    want[split.at(m, n)] = dense[m * width + n];
                }
            }
            assert_close(&what("xᵀ·g"), &got, &want, ATOL, RTOL);
        }
        // A view too short for its split layout is named before anything is recorded.
        let short = gpu
            .storage_zeroed::<f32>("short", heads * d * e - 1)
            .unwrap();
        let out = gpu.storage_zeroed::<f32>("out", rows * width).unwrap();
        let mut recorder = crate::gpu::Recorder::new(gpu);
        let mut rec = recorder.begin();
        let mm = Matmul::new(
            (&bx).into(),
            (&short).into(),
            (&out).into(),
            (rows, width, d),
        );
        let on_b = Layout {
            b: Some(split),
            ..Layout::default()
        };
        let err = matmul_laid_out(&mut rec, &mm, &on_b)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid config: b = "), "{err}");
        assert_eq!(rec.dispatches(), 0);
    }
    gpu_test!(gpu_matmul_split_layouts_match_reference, split_layouts);

    /// A product with one output tile and a long k (a weight's gradient over a batch of rows)
    /// splits k into slices summed by a second dispatch: every transpose, with a bias and
    /// accumulation, and into a split output, on both kernels, against the reference.
    async fn long_k_splits(gpu: &Gpu) {
        let (m, n, k) = (70, 37, 1024);
        let a = values(41, m * k);
        let b = values(42, k * n);
        let bias = values(43, n);
        let old = values(44, m * n);
        let up = |name: &str, v: &[f32]| gpu.storage_from(name, v).unwrap();
        let (ba, bb, bbias) = (up("a", &a), up("b", &b), up("bias", &bias));
        let cases = [(false, false), (true, false), (false, true), (true, true)]
            .into_iter()
            .flat_map(|t| [(t, Tiling::Gpu), (t, Tiling::Wide), (t, Tiling::Narrow)]);
        let names = ["a", "b", "c", "bias", "centre"];
        for ((ta, tb), tiling) in cases {
            let c = up("c", &old);
            let mut recorder = crate::gpu::Recorder::new(gpu);
            let mut rec = recorder.begin();
            let mm = Matmul {
                a: (&ba).into(),
                b: (&bb).into(),
                c: (&c).into(),
                m,
                n,
                k,
                trans_a: ta,
                trans_b: tb,
                bias: Some((&bbias).into()),
                centre: None,
                accumulate: true,
            };
            matmul_tiled(&mut rec, &mm, names, tiling, &Layout::default())
                .await
                .unwrap();
            assert_eq!(rec.dispatches(), 2, "slices, then their sum");
            // A buffer of the slabs' size taken from the pool while the recording is open is
            // written at once; it must not be the slabs, which the recording writes later.
            let slabs = 4 * m * n;
            let marker: Vec<f32> = (0..slabs).map(|i| i as f32).collect();
            let fresh = up("marker", &marker);
            let seen = gpu.storage_zeroed::<f32>("seen", slabs).unwrap();
            rec.copy(&fresh, 0, &seen, 0, (slabs * 4) as u64);
            rec.submit_scoped().await.unwrap();
            let copied: Vec<f32> = gpu.read(&seen, slabs).await.unwrap();
            assert!(
                copied == marker,
                "the slabs were handed out before the recording ran"
            );
            let got: Vec<f32> = gpu.read(&c, m * n).await.unwrap();
            let want: Vec<f32> = matmul_ref(&a, &b, (m, n, k), ta, tb)
                .iter()
                .enumerate()
                .map(|(i, v)| old[i] + (v + bias[i % n]))
                .collect();
            let what = format!("{tiling:?} trans {ta} {tb}, k in slices");
            assert_close(&what, &got, &want, 1e-4, RTOL);
        }
        // Into a split output: W's gradient in the per-head layout.
        let (heads, e) = (5, 7);
        let split = Strided::split(e, e, m * e);
        let g = values(45, k * heads * e);
        let bg = up("g", &g);
        for tiling in [Tiling::Gpu, Tiling::Wide, Tiling::Narrow] {
            let dw = gpu.storage_zeroed::<f32>("dw", heads * m * e).unwrap();
            record(gpu, async |rec: &mut Recording<'_>| {
                let mm = Matmul {
                    a: (&ba).into(),
                    b: (&bg).into(),
                    c: (&dw).into(),
                    m,
                    n: heads * e,
                    k,
                    trans_a: true,
                    trans_b: false,
                    bias: None,
                    centre: None,
                    accumulate: false,
                };
                let on_c = Layout {
                    c: Some(split),
                    ..Layout::default()
                };
                matmul_tiled(rec, &mm, names, tiling, &on_c).await
            })
            .await;
            // a read as [k, m] (transposed): the same values as a [m, k] matrix's transpose.
            let dense = matmul_ref(&a, &g, (m, heads * e, k), true, false);
            let mut want = vec![f32::NAN; heads * m * e];
            for r in 0..m {
                for col in 0..heads * e {
                    want[split.at(r, col)] = dense[r * heads * e + col];
                }
            }
            let got: Vec<f32> = gpu.read(&dw, heads * m * e).await.unwrap();
            assert_close(&format!("{tiling:?} split output"), &got, &want, 1e-4, RTOL);
        }
    }
    gpu_test!(gpu_matmul_long_k_splits_into_slices, long_k_splits);

    /// A linear layer as the transformer binds it: the weight and its bias are two tensors of
    /// one arena buffer, bound as two views in the same dispatch, at sizes that leave alignment
    /// gaps between them. Then one tensor bound twice (W·Wᵀ), which only read-only inputs
    /// allow: Chromium refuses overlapping bindings when one is writable.
    async fn weight_and_bias_from_one_arena(gpu: &Gpu) {
        use crate::gpu::{Arena, ArenaLayout};
        use std::sync::Arc;
        let (m, n, k) = (37, 70, 19);
        let tensors: [(&str, &[usize]); 3] = [("W_in", &[k, n]), ("b_in", &[n]), ("W_out", &[3])];
        let layout = Arc::new(ArenaLayout::for_device(gpu, &tensors).unwrap());
        assert_eq!(layout.buffer_lens().len(), 1, "one buffer holds both");
        let arena = Arena::zeroed(gpu, "params", layout).unwrap();
        let (w, bias) = (values(21, k * n), values(22, n));
        arena.write(gpu, "W_in", &w).unwrap();
        arena.write(gpu, "b_in", &bias).unwrap();
        let x = values(23, m * k);
        let bx = gpu.storage_from("x", &x).unwrap();
        let c = gpu.storage_zeroed::<f32>("c", m * n).unwrap();
        record(gpu, async |rec: &mut Recording<'_>| {
            let mm = Matmul {
                a: (&bx).into(),
                b: arena.view("W_in")?,
                c: (&c).into(),
                m,
                n,
                k,
                trans_a: false,
                trans_b: false,
                bias: Some(arena.view("b_in")?),
                centre: None,
                accumulate: false,
            };
            matmul(rec, &mm).await
        })
        .await;
        let got: Vec<f32> = gpu.read(&c, m * n).await.unwrap();
        let mut want = matmul_ref(&x, &w, (m, n, k), false, false);
        for (i, v) in want.iter_mut().enumerate() {
            *v += bias[i % n];
        }
        assert_close("x·W_in + b_in", &got, &want, ATOL, RTOL);
        let gram = gpu.storage_zeroed::<f32>("gram", k * k).unwrap();
        record(gpu, async |rec: &mut Recording<'_>| {
            let w_in = arena.view("W_in")?;
            let mm = Matmul {
                trans_b: true,
                ..Matmul::new(w_in, w_in, (&gram).into(), (k, k, n))
            };
            matmul(rec, &mm).await
        })
        .await;
        let got: Vec<f32> = gpu.read(&gram, k * k).await.unwrap();
        let want = matmul_ref(&w, &w, (k, k, n), false, true);
        assert_close("W_in·W_inᵀ", &got, &want, ATOL, RTOL);
        // A view too small for its shape is refused with its name before anything is recorded.
        let mut recorder = crate::gpu::Recorder::new(gpu);
        let mut rec = recorder.begin();
        let mm = Matmul {
            a: (&bx).into(),
            b: arena.view("b_in").unwrap(),
            c: (&c).into(),
            m,
            n,
            k,
            trans_a: false,
            trans_b: false,
            bias: None,
            centre: None,
            accumulate: false,
        };
        let err = matmul(&mut rec, &mm).await.unwrap_err().to_string();
        assert!(err.contains("invalid config: b = "), "{err}");
        assert_eq!(rec.dispatches(), 0);
    }
    gpu_test!(
        gpu_matmul_weight_and_bias_from_one_arena,
        weight_and_bias_from_one_arena
    );
}
