//! What every kernel's host shares (host of `shaders/common.wgsl`, the helpers every kernel of
//! `kernels/` and a lab's `kernels/` is compiled with): the uniform block, the optional
//! bindings, and [`Kernel`], a shader specialised for one call with the device's row lanes
//! (`SEG`, `SEG_ROWS`) and the call's constants declared before it.

use crate::error::Result;
use crate::gpu::{Gpu, Program, ProgramSpec, Recording, View};
use std::sync::Arc;

const COMMON_WGSL: &str = include_str!("../../../shaders/common.wgsl");

/// Every kernel's uniform block fits in 16 words; each shader declares the prefix it reads.
pub(crate) type Params = [u32; 32];
pub(crate) const PARAMS_BYTES: u64 = 128;

/// Rows a 256-invocation workgroup of the row kernels handles on this device (`SEG_ROWS` in
/// `shaders/common.wgsl`; see [`Gpu::row_lanes`]).
pub(crate) fn seg_rows(gpu: &Gpu) -> u64 {
    256 / gpu.row_lanes() as u64
}

/// Packs the leading words of a uniform block.
pub(crate) fn params(words: &[u32]) -> Params {
    let mut p = [0; 32];
    p[..words.len()].copy_from_slice(words);
    p
}

/// A storage binding that some variants of a kernel go without. Given, it is declared after the
/// fixed bindings (read-only unless the kernel writes it); absent, as a one-element private
/// array that the specialised shader never touches. (Binding some other buffer of the call in
/// its place could alias a writable binding, which WebGPU implementations may refuse.)
pub(crate) struct Optional<'a> {
    pub name: &'static str,
    pub elem: &'static str,
    pub buffer: Option<View<'a>>,
    /// The kernel writes it.
    pub writes: bool,
}

/// A kernel specialised for one call: its program (the common helpers and `body` after
/// `constants` and the optional bindings' declarations) and its storage bindings in order.
pub(crate) struct Kernel<'a> {
    program: Arc<Program>,
    storage: Vec<View<'a>>,
}

impl<'a> Kernel<'a> {
    /// `storage` (buffers or views) are bindings 1.. in order, then the optional ones that are
    /// given.
    pub(crate) async fn new<S: Into<View<'a>>>(
        gpu: &Gpu,
        label: &'static str,
        constants: &str,
        body: &'static str,
        storage: Vec<S>,
        optional: &[Optional<'a>],
    ) -> Result<Self> {
        let mut storage: Vec<View<'a>> = storage.into_iter().map(Into::into).collect();
        let lanes = gpu.row_lanes();
        let mut variant = format!(
            "const SEG: u32 = {lanes}u;\nconst SEG_ROWS: u32 = {}u;\n{constants}",
            256 / lanes
        );
        for o in optional {
            let (name, elem) = (o.name, o.elem);
            let access = if o.writes { "read_write" } else { "read" };
            match o.buffer {
                Some(b) => {
                    storage.push(b);
                    let at = storage.len();
                    variant += &format!(
                        "@group(0) @binding({at}) var<storage, {access}> {name}: array<{elem}>;\n"
                    );
                }
                None => variant += &format!("var<private> {name}: array<{elem}, 1>;\n"),
            }
        }
        let program = gpu
            .program(&ProgramSpec {
                label,
                variant: &variant,
                body: &[COMMON_WGSL, body],
                uniform_bytes: PARAMS_BYTES,
                storage: storage.len() as u32,
            })
            .await?;
        Ok(Self { program, storage })
    }

    /// Adds a dispatch of `entry` over `groups` workgroups.
    pub(crate) async fn dispatch(
        &self,
        rec: &mut Recording<'_>,
        entry: &str,
        p: Params,
        groups: u64,
    ) -> Result<()> {
        rec.dispatch_views(&self.program, entry, &p, &self.storage, groups)
            .await
    }
}

/// WGSL `const` declarations of booleans.
pub(crate) fn bool_consts(items: &[(&str, bool)]) -> String {
    items
        .iter()
        .map(|(name, v)| format!("const {name}: bool = {v};\n"))
        .collect()
}
