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

/// An operand that is not a dense matrix (see `shaders/matmul.wgsl`): its element at (outer,
/// inner), inner being the index stored contiguously (k for a plain `a`, m for a transposed
/// one), lies at `outer · ld + (inner / block) · stride + inner % block`. TransformerLens's
/// per-head weights `[n_heads, d_model, d_head]` are one `[d_model, n_heads · d_head]` matrix
/// this way (`ld` d_head, `block` d_head, `stride` d_model · d_head), so the heads are one
/// product. An output split this way must not map two elements to one place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Split {
    /// Distance between consecutive outer indices.
    pub ld: usize,
    /// Inner indices in one contiguous run.
    pub block: usize,
    /// Distance between consecutive runs.
    pub stride: usize,
}

impl Split {
    /// The parameter words of an operand that is not split (the shader never reads them).
    const UNUSED: Split = Split {
        ld: 0,
        block: 1,
        stride: 0,
    };

    /// Where (outer, inner) lies.
    pub fn at(&self, outer: usize, inner: usize) -> usize {
        outer * self.ld + (inner / self.block) * self.stride + inner % self.block
    }

    /// Elements a view must hold for `outer × inner` indices.
    fn extent(&self, outer: usize, inner: usize) -> usize {
        if outer == 0 || inner == 0 {
            return 0;
        }
        let last = self.at(outer - 1, inner - 1);
        // The end of the last full run can lie past the last index when runs are spaced
        // closer than they are long; take whichever is further.
        let full = inner / self.block;
        let end_of_run = if full > 0 {
            self.at(outer - 1, full * self.block - 1)
        } else {
            0
        };
        last.max(end_of_run) + 1
    }
}

/// Where the products of a batch find an operand: product `t` reads it from `base + (t /
/// group) · outer + (t % group) · inner` elements into its view (see [`Batch`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Strides {
    /// Offset of the first product's operand.
    pub base: usize,
    /// Distance between groups.
    pub outer: usize,
    /// Distance between products within a group.
    pub inner: usize,
}

impl Strides {
    /// Where product `t` starts.
    pub fn at(&self, t: usize, group: usize) -> usize {
        self.base + (t / group) * self.outer + (t % group) * self.inner
    }
}

/// Many products of one shape in one dispatch: attention's per-(batch, head) products, whose
/// operands lie `[batch, pos, head, d_head]` (group = heads).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Batch {
    /// Products.
    pub count: usize,
    /// Products in a group (the inner of a two-level index).
    pub group: usize,
    /// The left operand's offsets.
    pub a: Strides,
    /// The right operand's offsets.
    pub b: Strides,
    /// The output's offsets.
    pub c: Strides,
}

/// How a [`Matmul`]'s operands lie when they are not dense matrices: split (see [`Split`]),
/// batched (see [`Batch`]), or both; the default is neither.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Splits {
    /// The left operand's layout.
    pub a: Option<Split>,
    /// The right operand's layout.
    pub b: Option<Split>,
    /// The output's layout.
    pub c: Option<Split>,
    /// Many products at once.
    pub batch: Option<Batch>,
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
    matmul_tiled(rec, mm, names, tiling, &Splits::default()).await
}

/// As [`matmul`], with operands laid out as `splits` says.
pub async fn matmul_split(rec: &mut Recording<'_>, mm: &Matmul<'_>, splits: &Splits) -> Result<()> {
    let tiling = Tiling::for_device(rec.gpu(), mm.m, mm.n);
    matmul_tiled(rec, mm, ["a", "b", "c", "bias", "centre"], tiling, splits).await
}

/// Checks that `view` holds a `[outer, inner]` operand, dense or split, for every product of
/// the batch (`strides` and the group size) when there is one.
fn check_operand(
    gpu: &Gpu,
    name: &'static str,
    view: View<'_>,
    (outer, inner): (u32, u32),
    split: Option<Split>,
    batch: Option<(Strides, usize, usize)>,
) -> Result<()> {
    let one = match split {
        None => outer as usize * inner as usize,
        Some(s) => {
            if s.block == 0 {
                return Err(crate::EngineError::invalid(
                    name,
                    "a split layout with runs of 0",
                    "runs must hold at least one element",
                ));
            }
            s.extent(outer as usize, inner as usize)
        }
    };
    let last = match batch {
        None => 0,
        Some((st, count, group)) => {
            // The furthest product is the last, or the last of the group before its group
            // (when the last group is short).
            let start_of_last_group = (count - 1) / group * group;
            let far = st.at(count - 1, group);
            match start_of_last_group.checked_sub(1) {
                Some(t) => far.max(st.at(t, group)),
                None => far,
            }
        }
    };
    match (split, batch) {
        (None, None) => Tensor::new(gpu, name, view, &[outer, inner]).map(|_| ()),
        _ => Tensor::flat(gpu, name, view, (last + one) as u64).map(|_| ()),
    }
}

/// Into how many slices of k to split a product with only `tiles` output tiles (`None`: do
/// not): enough to fill the device, each at least [`MIN_PART_K`] long and all of one length.
/// Only dense operands split (a slice is then a batch of plain products).
fn k_parts(gpu: &Gpu, mm: &Matmul<'_>, splits: &Splits, tiles: u64) -> Option<usize> {
    // An output split (heads' weight gradients) is the reduction's to write; split or batched
    // inputs would need a second level of layout.
    if splits.a.is_some() || splits.b.is_some() || splits.batch.is_some() {
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
    splits: &Splits,
) -> Result<()> {
    let gpu = rec.gpu().clone();
    let (tiles_m, tiles_n) = tiling.tiles(mm.m as u64, mm.n as u64);
    let tiles = tiles_m * tiles_n;
    let Some(parts) = k_parts(&gpu, mm, splits, tiles) else {
        return dispatch_tiled(rec, mm, names, tiling, splits).await;
    };
    // Check the operands as given before recording anything.
    check_product(&gpu, mm, names, splits)?;
    let (m, n, k) = (mm.m, mm.n, mm.k);
    let kp = k / parts;
    let partial = gpu.storage_dirty::<f32>("matmul slabs", parts * m * n)?;
    // Slice s of k: A's columns (or, transposed, rows) and B's rows (or columns) from s · kp.
    let slice = Split {
        ld: k,
        block: kp,
        stride: 0,
    };
    let sliced = Splits {
        a: (!mm.trans_a).then_some(slice),
        b: mm.trans_b.then_some(slice),
        c: None,
        batch: Some(Batch {
            count: parts,
            group: parts,
            a: Strides {
                inner: if mm.trans_a { kp * m } else { kp },
                ..Strides::default()
            },
            b: Strides {
                inner: if mm.trans_b { kp } else { kp * n },
                ..Strides::default()
            },
            c: Strides {
                inner: m * n,
                ..Strides::default()
            },
        }),
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
        ("SPLIT_C", splits.c.is_some()),
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
    let c = splits.c.unwrap_or(Split::UNUSED);
    let words = layout_words(&[m, n, parts, c.ld, c.block, c.stride])?;
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

/// Checks a product's operands against its shape and layout (named as `names` says), before
/// anything is recorded.
fn check_product(gpu: &Gpu, mm: &Matmul<'_>, names: Names, splits: &Splits) -> Result<()> {
    let (m, n, k) = (dim("m", mm.m)?, dim("n", mm.n)?, dim("k", mm.k)?);
    let stored = |t: bool, rows: u32, cols: u32| if t { (cols, rows) } else { (rows, cols) };
    if let Some(b) = splits.batch {
        if b.count == 0 || b.group == 0 {
            return Err(crate::EngineError::invalid(
                "matmul batch",
                format!("{} products in groups of {}", b.count, b.group),
                "must hold at least one product",
            ));
        }
    }
    let of = |f: fn(&Batch) -> Strides| splits.batch.map(|b| (f(&b), b.count, b.group));
    check_operand(
        gpu,
        names[0],
        mm.a,
        stored(mm.trans_a, m, k),
        splits.a,
        of(|b| b.a),
    )?;
    check_operand(
        gpu,
        names[1],
        mm.b,
        stored(mm.trans_b, k, n),
        splits.b,
        of(|b| b.b),
    )?;
    check_operand(gpu, names[2], mm.c, (m, n), splits.c, of(|b| b.c))?;
    if let Some(bias) = mm.bias {
        Tensor::new(gpu, names[3], bias, &[n])?;
    }
    if let Some(centre) = mm.centre {
        Tensor::new(gpu, names[4], centre, &[k])?;
    }
    Ok(())
}

/// Records one tiled product (a batch of them with `splits.batch`).
async fn dispatch_tiled(
    rec: &mut Recording<'_>,
    mm: &Matmul<'_>,
    names: Names,
    tiling: Tiling,
    splits: &Splits,
) -> Result<()> {
    let gpu = &rec.gpu().clone();
    check_product(gpu, mm, names, splits)?;
    let (m, n, k) = (dim("m", mm.m)?, dim("n", mm.n)?, dim("k", mm.k)?);
    let (entry, _, _) = tiling.entry_and_tile();
    let (tiles_m, tiles_n) = tiling.tiles(m as u64, n as u64);
    let tiles = tiles_m * tiles_n;
    let consts = bool_consts(&[
        ("TRANS_A", mm.trans_a),
        ("TRANS_B", mm.trans_b),
        ("CENTRE", mm.centre.is_some()),
        ("BIAS", mm.bias.is_some()),
        ("ACCUMULATE", mm.accumulate),
        ("SPLIT_A", splits.a.is_some()),
        ("SPLIT_B", splits.b.is_some()),
        ("SPLIT_C", splits.c.is_some()),
        ("BATCHED", splits.batch.is_some()),
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
    let mut wide = vec![];
    for s in [splits.a, splits.b, splits.c] {
        let s = s.unwrap_or(Split::UNUSED);
        wide.extend([s.ld, s.block, s.stride]);
    }
    let batch = splits.batch.unwrap_or(Batch {
        count: 1,
        group: 1,
        a: Strides::default(),
        b: Strides::default(),
        c: Strides::default(),
    });
    wide.extend([batch.count, batch.group]);
    for st in [batch.a, batch.b, batch.c] {
        wide.extend([st.base, st.outer, st.inner]);
    }
    words.extend(layout_words(&wide)?);
    let groups = tiles * batch.count as u64;
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
                matmul_tiled(rec, &mm, names, tiling, &Splits::default()).await
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
        let split = Split {
            ld: e,
            block: e,
            stride: d * e,
        };
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
                let on_b = Splits {
                    b: Some(split),
                    ..Splits::default()
                };
                let on_c = Splits {
                    c: Some(split),
                    ..Splits::default()
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
        let on_b = Splits {
            b: Some(split),
            ..Splits::default()
        };
        let err = matmul_split(&mut rec, &mm, &on_b)
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
            matmul_tiled(&mut rec, &mm, names, tiling, &Splits::default())
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
        let split = Split {
            ld: e,
            block: e,
            stride: m * e,
        };
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
                let on_c = Splits {
                    c: Some(split),
                    ..Splits::default()
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
