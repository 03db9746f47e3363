//! A hook's value replaced in place (host of `shaders/hook_edit.wgsl`): zeroed, one index of its
//! last axis zeroed, a scaled direction added at every position, or rows patched from another
//! run's value at chosen positions. These are the edits TransformerLens users make with
//! `run_with_hooks` (ablation, steering, activation patching); the forward pass that recorded the
//! hook goes on from the edited buffer. [`hook_edit_ref`] is the CPU reference: the same
//! arithmetic an element at a time (steering is one multiply and one add, as in the kernel).

use super::{dim, params, Kernel, Optional};
use crate::error::{EngineError, Result};
use crate::gpu::{Recording, Tensor};

const HOOK_EDIT_WGSL: &str = include_str!("../../../shaders/hook_edit.wgsl");

/// A hook's layout as an edit sees it: `rows` rows (batch-major, `pos` positions a batch row)
/// of `width` values (the product of the hook's axes after the position).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EditShape {
    /// Batch rows times positions.
    pub rows: usize,
    /// Positions per batch row.
    pub pos: usize,
    /// Values per position.
    pub width: usize,
    /// The last axis's length (the index an index-zeroing edit counts in).
    pub last: usize,
}

impl EditShape {
    /// Values in the hook.
    pub fn len(&self) -> usize {
        self.rows * self.width
    }

    /// Whether the hook holds no value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One edit on the GPU, its operands on the device.
#[derive(Clone, Copy)]
pub enum EditOp<'a> {
    /// Every value becomes 0.
    Zero,
    /// Index `i` of the last axis becomes 0 at every position (and every head, for a hook with
    /// one: `hook_q`'s `[batch, pos, head, d_head]`).
    ZeroIndex(usize),
    /// `x + scale · vector` at every position; `vector` is one position's `width` values.
    Steer {
        /// One position's direction `[width]`.
        vector: Tensor<'a>,
        /// Its multiple.
        scale: f32,
    },
    /// Rows whose position is marked (`mask[p] != 0`, `pos` flags) take `source`'s values
    /// (another run's value of the same hook, the same shape).
    Patch {
        /// The other run's value.
        source: Tensor<'a>,
        /// `[pos]` flags (u32).
        mask: Tensor<'a>,
    },
}

/// Records `op` on `x`, a hook's value laid out as `s` says.
pub async fn hook_edit(
    rec: &mut Recording<'_>,
    x: Tensor<'_>,
    s: EditShape,
    op: EditOp<'_>,
) -> Result<()> {
    let gpu = &rec.gpu().clone();
    let (width, pos) = (dim("width", s.width)?, dim("pos", s.pos)?);
    x.expect_matrix(dim("rows", s.rows)?, width)?;
    let n = x.len;
    let (mode, index, scale, src, mask) = match op {
        EditOp::Zero => (0, 0, 0.0, None, None),
        EditOp::ZeroIndex(i) => {
            if i >= s.last {
                return Err(EngineError::invalid(
                    "index",
                    i,
                    format!("the last axis has {} values", s.last),
                ));
            }
            (1, i, 0.0, None, None)
        }
        EditOp::Steer { vector, scale } => {
            vector.expect(&[width])?;
            (2, 0, scale, Some(vector.view), None)
        }
        EditOp::Patch { source, mask } => {
            source.expect_matrix(s.rows as u32, width)?;
            mask.expect(&[pos])?;
            (3, 0, 0.0, Some(source.view), Some(mask.view))
        }
    };
    let optional = [
        Optional {
            name: "src",
            elem: "f32",
            buffer: src,
            writes: false,
        },
        Optional {
            name: "mask",
            elem: "u32",
            buffer: mask,
            writes: false,
        },
    ];
    let kern = Kernel::new(
        gpu,
        "hook edit",
        "",
        HOOK_EDIT_WGSL,
        vec![x.view],
        &optional,
    )
    .await?;
    let last = dim("last", s.last)?;
    let p = params(&[
        n as u32,
        width,
        pos,
        mode,
        index as u32,
        scale.to_bits(),
        last,
    ]);
    kern.dispatch(rec, "hook_edit", p, n.div_ceil(256)).await
}

/// One edit on the CPU, its operands in host memory.
#[derive(Debug, Clone, PartialEq)]
pub enum EditRef<'a> {
    /// See [`EditOp::Zero`].
    Zero,
    /// See [`EditOp::ZeroIndex`].
    ZeroIndex(usize),
    /// See [`EditOp::Steer`].
    Steer {
        /// One position's direction.
        vector: &'a [f32],
        /// Its multiple.
        scale: f32,
    },
    /// See [`EditOp::Patch`]; `mask` holds a flag a position.
    Patch {
        /// The other run's value.
        source: &'a [f32],
        /// `pos` flags.
        mask: &'a [bool],
    },
}

/// CPU reference of [`hook_edit`]: `x` (`s.len()` values) edited in place.
pub fn hook_edit_ref(x: &mut [f32], s: EditShape, op: &EditRef<'_>) {
    for (r, row) in x[..s.len()].chunks_exact_mut(s.width).enumerate() {
        for (c, v) in row.iter_mut().enumerate() {
            match op {
                EditRef::Zero => *v = 0.0,
                EditRef::ZeroIndex(i) => {
                    if c % s.last == *i {
                        *v = 0.0
                    }
                }
                EditRef::Steer { vector, scale } => *v += scale * vector[c],
                EditRef::Patch { source, mask } => {
                    if mask[r % s.pos] {
                        *v = source[r * s.width + c]
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_data::{record, t, values};
    use super::*;
    use crate::gpu::Gpu;
    use crate::gpu_test;

    /// Every edit on awkward shapes (a width past one workgroup, rows not a multiple of
    /// anything, a last axis shorter than the row as `hook_q`'s heads make it) against the CPU
    /// reference, exactly: each element is at most one multiply and one add.
    async fn edits_match_the_reference(gpu: &Gpu) {
        let shapes = [
            EditShape {
                rows: 2 * 7,
                pos: 7,
                width: 13,
                last: 13,
            },
            EditShape {
                rows: 3 * 5,
                pos: 5,
                width: 3 * 4,
                last: 4,
            },
            EditShape {
                rows: 3,
                pos: 3,
                width: 300,
                last: 300,
            },
        ];
        for s in shapes {
            let x = values(7, s.len());
            let vector = values(8, s.width);
            let source = values(9, s.len());
            let flags: Vec<bool> = (0..s.pos).map(|p| p % 2 == 1).collect();
            let mask: Vec<u32> = flags.iter().map(|&f| f as u32).collect();
            let bv = gpu.storage_from("vector", &vector).unwrap();
            let bs = gpu.storage_from("source", &source).unwrap();
            let bm = gpu.storage_from("mask", &mask).unwrap();
            let index = s.last - 1;
            let cases: [(EditOp, EditRef); 4] = [
                (EditOp::Zero, EditRef::Zero),
                (EditOp::ZeroIndex(index), EditRef::ZeroIndex(index)),
                (
                    EditOp::Steer {
                        vector: t(&bv, "vector", &[s.width]),
                        scale: -2.5,
                    },
                    EditRef::Steer {
                        vector: &vector,
                        scale: -2.5,
                    },
                ),
                (
                    EditOp::Patch {
                        source: t(&bs, "source", &[s.rows, s.width]),
                        mask: t(&bm, "mask", &[s.pos]),
                    },
                    EditRef::Patch {
                        source: &source,
                        mask: &flags,
                    },
                ),
            ];
            for (op, op_ref) in cases {
                let bx = gpu.storage_from("x", &x).unwrap();
                record(gpu, async |rec: &mut Recording<'_>| {
                    hook_edit(rec, t(&bx, "x", &[s.rows, s.width]), s, op).await
                })
                .await;
                let mut want = x.clone();
                hook_edit_ref(&mut want, s, &op_ref);
                assert_ne!(want, x, "{op_ref:?} on {s:?} changes nothing");
                let got = gpu.read::<f32>(&bx, s.len()).await.unwrap();
                assert_eq!(got, want, "{op_ref:?} on {s:?}");
            }
        }
    }
    gpu_test!(
        gpu_hook_edits_match_the_reference,
        edits_match_the_reference
    );

    async fn edits_that_do_not_fit_are_refused(gpu: &Gpu) {
        let s = EditShape {
            rows: 4,
            pos: 2,
            width: 6,
            last: 3,
        };
        let bx = gpu.storage_zeroed::<f32>("x", s.len()).unwrap();
        let short = gpu.storage_zeroed::<f32>("vector", 5).unwrap();
        let mut recorder = crate::gpu::Recorder::new(gpu);
        let mut rec = recorder.begin();
        let x = t(&bx, "x", &[s.rows, s.width]);
        let e = hook_edit(&mut rec, x, s, EditOp::ZeroIndex(3))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("index = 3") && e.contains("3 values"), "{e}");
        let op = EditOp::Steer {
            vector: t(&short, "vector", &[5]),
            scale: 1.0,
        };
        let e = hook_edit(&mut rec, x, s, op).await.unwrap_err().to_string();
        assert!(e.contains("vector"), "{e}");
    }
    gpu_test!(
        gpu_hook_edits_that_do_not_fit_are_refused,
        edits_that_do_not_fit_are_refused
    );
}
