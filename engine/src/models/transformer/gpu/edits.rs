//! A GPU pass's hook edits: checked against the model ([`super::super::hooks::check_edits`]),
//! their operands (steering vectors, patch sources and position flags) uploaded before the
//! recording that reads them, and recorded where the pass writes each hook (a map's output
//! into a scratch tensor, then copied over the hook's value).

use super::super::hooks::{CheckedEdit, Edit};
use crate::error::Result;
use crate::gpu::{Gpu, Recording, Tensor, TensorBuf};
use crate::kernels::hook_edit::{hook_edit, EditOp, EditShape};
use std::cell::RefCell;

/// The edits of one pass, with their operands on the device.
pub(super) struct Edits<'a> {
    checked: Vec<CheckedEdit<'a>>,
    /// Per edit: a steering vector or a patch's source, and a patch's position flags.
    operands: Vec<(Option<wgpu::Buffer>, Option<wgpu::Buffer>)>,
    /// Maps' outputs, kept until the recording that writes them is submitted.
    scratch: RefCell<Vec<wgpu::Buffer>>,
}

impl<'a> Edits<'a> {
    /// Uploads the operands of `checked`.
    pub fn new(gpu: &Gpu, checked: Vec<CheckedEdit<'a>>) -> Result<Self> {
        let operands = checked
            .iter()
            .map(|e| {
                Ok(match &e.edit.edit {
                    Edit::Zero | Edit::ZeroIndex(_) | Edit::Map(_) => (None, None),
                    Edit::Steer { vector, .. } => {
                        (Some(gpu.storage_from("steering vector", vector)?), None)
                    }
                    Edit::Patch { source, .. } => {
                        let flags: Vec<u32> = e.mask.iter().map(|&m| u32::from(m)).collect();
                        (
                            Some(gpu.storage_from("patch source", source)?),
                            Some(gpu.storage_from("patch positions", &flags)?),
                        )
                    }
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            checked,
            operands,
            scratch: RefCell::new(vec![]),
        })
    }

    /// Whether any edit is at `hook`.
    pub fn any_at(&self, hook: &str) -> bool {
        self.checked.iter().any(|e| e.edit.hook == hook)
    }

    /// Records the edits at `hook` on its value `x`, in order.
    pub async fn at(&self, rec: &mut Recording<'_>, hook: &str, x: &TensorBuf) -> Result<()> {
        for (e, (a, b)) in self.checked.iter().zip(&self.operands) {
            if e.edit.hook != hook {
                continue;
            }
            let s = e.shape;
            let op = match &e.edit.edit {
                Edit::Map(map) => {
                    let out = TensorBuf::dirty(rec.gpu(), "hook map output", x.dims())?;
                    let (xt, ot) = (x.t()?.reshaped(&dims(s))?, out.t()?.reshaped(&dims(s))?);
                    let made = map.record(rec, xt, ot).await?;
                    let bytes = x.len() as u64 * 4;
                    rec.copy(&out.buffer, 0, &x.buffer, 0, bytes);
                    let mut keep = self.scratch.borrow_mut();
                    keep.extend(made);
                    keep.push(out.buffer);
                    continue;
                }
                Edit::Zero => EditOp::Zero,
                Edit::ZeroIndex(i) => EditOp::ZeroIndex(*i),
                Edit::Steer { scale, .. } => EditOp::Steer {
                    vector: operand(a, "steering vector", &[s.width])?,
                    scale: *scale,
                },
                Edit::Patch { .. } => EditOp::Patch {
                    source: operand(a, "patch source", &[s.rows, s.width])?,
                    mask: operand(b, "patch positions", &[s.pos])?,
                },
            };
            hook_edit(rec, x.t()?, s, op).await?;
        }
        Ok(())
    }

    /// Gives the operands back to the pool (once the recording that read them is submitted).
    pub fn recycle(self, gpu: &Gpu) {
        self.into_buffers().into_iter().for_each(|b| gpu.recycle(b));
    }

    /// The operands' buffers, for a caller that submits the recording later.
    pub fn into_buffers(self) -> Vec<wgpu::Buffer> {
        self.operands
            .into_iter()
            .flat_map(|(a, b)| a.into_iter().chain(b))
            .chain(self.scratch.into_inner())
            .collect()
    }
}

/// An edit's operand uploaded by [`Edits::new`], as a tensor of `dims`.
fn operand<'b>(
    buf: &'b Option<wgpu::Buffer>,
    name: &'static str,
    dims: &[usize],
) -> Result<Tensor<'b>> {
    let buf = buf.as_ref().expect("uploaded in new");
    Tensor::of(name, buf.into(), dims)
}

/// A hook's value as a map reads it: `[rows, width]`.
fn dims(s: EditShape) -> [u32; 2] {
    [s.rows as u32, s.width as u32]
}
