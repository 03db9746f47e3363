//! CE loss recovered, as SAELens defines it: the share of a language model's loss that an SAE
//! spliced in at a hook keeps. Measured on the GPU with three loss passes over the model's own
//! arena (clean, the hook zeroed, the hook replaced by the SAE's reconstruction recorded in the
//! pass), nothing but the three losses read back; and on the CPU reference the same way.

use crate::error::Result;
use crate::kernels::cross_entropy::cross_entropy_ref;
use crate::models::transformer::gpu::GpuTransformer;
use crate::models::transformer::hooks::HookMap;
use crate::models::transformer::{forward_with, Edit, HookEdit, TransformerParams};
use std::rc::Rc;

/// Cross-entropy loss recovered: how much of a language model's loss the SAE's reconstruction
/// keeps, `(CE_zero_ablated − CE_reconstructed) / (CE_zero_ablated − CE_clean)`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CeLossRecovered {
    /// The model's loss with its own activations.
    pub clean: f32,
    /// The loss with the activations replaced by the SAE's reconstruction.
    pub reconstructed: f32,
    /// The loss with the activations zeroed.
    pub zero_ablated: f32,
}

/// The three passes' edits: none (clean), `map` spliced in at `hook`, and `hook` zeroed.
fn passes(hook: &str, map: Rc<dyn HookMap>) -> [Vec<HookEdit>; 3] {
    [
        vec![],
        vec![HookEdit::new(hook, Edit::Map(map))],
        vec![HookEdit::new(hook, Edit::Zero)],
    ]
}

impl CeLossRecovered {
    /// From the three passes' losses, in [`passes`]' order.
    fn from_losses([clean, reconstructed, zero_ablated]: [f32; 3]) -> Self {
        Self {
            clean,
            reconstructed,
            zero_ablated,
        }
    }

    /// Measured on the GPU: `model`'s mean next-token loss on `tokens` (rows of `batch`)
    /// clean, with `map` (an SAE) spliced in at `hook`, and with `hook` zero-ablated.
    pub async fn on_gpu(
        model: &mut GpuTransformer,
        tokens: &[u32],
        batch: usize,
        hook: &str,
        map: Rc<dyn HookMap>,
    ) -> Result<Self> {
        let mut losses = [0f32; 3];
        for (l, edits) in losses.iter_mut().zip(passes(hook, map)) {
            *l = model.loss_with(tokens, batch, &edits).await?;
        }
        Ok(Self::from_losses(losses))
    }

    /// [`CeLossRecovered::on_gpu`] on the CPU reference.
    pub fn on_cpu(
        params: &TransformerParams,
        tokens: &[u32],
        batch: usize,
        hook: &str,
        map: Rc<dyn HookMap>,
    ) -> Result<Self> {
        let mut losses = [0f32; 3];
        for (l, edits) in losses.iter_mut().zip(passes(hook, map)) {
            let (logits, _) = forward_with(params, tokens, batch, &|_| false, &edits)?;
            let pos = tokens.len() / batch;
            *l = cross_entropy_ref(&logits, tokens, pos, params.cfg.d_vocab as usize).0;
        }
        Ok(Self::from_losses(losses))
    }

    /// The recovered fraction (1 is perfect, 0 is no better than zeros).
    pub fn fraction(&self) -> f32 {
        (self.zero_ablated - self.reconstructed) / (self.zero_ablated - self.clean)
    }
}
