//! The transformer on the GPU: the parameters in one arena under their TransformerLens names,
//! a pass's activations in device buffers kept while the shape stays the same ([`acts`]), the
//! forward and backward written a block at a time ([`block`]), and one recording and one
//! submit for a whole pass. Hooks can be replaced on the way ([`edits`]; TransformerLens's
//! `run_with_hooks`), a pass can stop after the blocks it needs (`stop_at_layer`), and captured
//! hooks are read back by name afterwards with the CPU reference's names and shapes; nothing
//! else is read back but the logits or the loss.

mod acts;
mod block;
mod edits;
mod lm_trainer;

pub use lm_trainer::GpuLmTrainer;

use super::config::{Activation, TransformerConfig};
use super::cpu::{check_tokens, normalized, Hooks};
use super::hooks::{check_edits, check_stop, hook_shapes, HookEdit};
use super::params::TransformerParams;
use super::unembed::{self, unembed_loss, UnembedLoss};
use crate::error::Result;
use crate::gpu::{Arena, ArenaLayout, Gpu, Recorder, Recording, Tensor, TensorBuf};
use crate::kernels::activation::Act;
use crate::kernels::add::add;
use crate::kernels::embedding::{
    embedding, embedding_backward, token_lists, Embedding, EmbeddingBackward,
};
use crate::kernels::linear::linear;
use acts::{Activations, HookBuf};
use block::{ln_backward, ln_forward, Scratch, Shape};
use edits::Edits;
use std::sync::Arc;

/// A transformer's parameters on the device, ready to run.
pub struct GpuTransformer {
    gpu: Gpu,
    params: TransformerParams,
    arena: Arena,
    recorder: Recorder,
    /// The largest chunk of logits a loss makes at once ([`unembed::LOGIT_CHUNK_BYTES`]).
    chunk_bytes: u64,
    /// The last pass's activations, kept for the next pass of the same shape.
    acts: Option<Activations>,
    /// What a pass recorded into a caller's recording reads (its tokens, the edits'
    /// operands), kept until the next pass.
    kept: Vec<wgpu::Buffer>,
}

/// What a pass gives back.
#[derive(Clone, Copy)]
enum Want<'g> {
    /// Every position's logits (and the hooks asked for).
    Logits,
    /// The hooks asked for, from the first `n` blocks alone.
    Hooks(usize),
    /// The mean loss, the logits made a chunk of positions at a time and never kept.
    Loss,
    /// The loss, every parameter's gradient written into this mirror of the arena.
    Grads(&'g Arena),
}

impl GpuTransformer {
    /// Uploads `params` into an arena laid out for this device.
    pub fn new(gpu: &Gpu, params: &TransformerParams) -> Result<Self> {
        params.cfg.validate()?;
        let shapes: Vec<(&str, &[usize])> = params
            .tensors
            .iter()
            .map(|t| (t.name.as_str(), t.shape.as_slice()))
            .collect();
        let layout = Arc::new(ArenaLayout::for_device(gpu, &shapes)?);
        let arena = Arena::zeroed(gpu, "transformer params", layout)?;
        for t in &params.tensors {
            arena.write(gpu, &t.name, &t.values)?;
        }
        Ok(Self {
            gpu: gpu.clone(),
            params: params.clone(),
            arena,
            recorder: Recorder::new(gpu),
            chunk_bytes: unembed::LOGIT_CHUNK_BYTES,
            acts: None,
            kept: vec![],
        })
    }

    /// Caps the logits a loss makes at once at `bytes` (tests take small vocabularies in
    /// several chunks this way).
    pub fn set_logit_chunk_bytes(&mut self, bytes: u64) {
        self.chunk_bytes = bytes;
    }

    /// The logits `[batch, pos, d_vocab]` for `tokens` and the hooks `capture` accepts, as
    /// [`super::cpu::forward`] gives them.
    pub async fn forward(
        &mut self,
        tokens: &[u32],
        batch: usize,
        capture: &dyn Fn(&str) -> bool,
    ) -> Result<(Vec<f32>, Hooks)> {
        self.forward_with(tokens, batch, capture, &[]).await
    }

    /// [`GpuTransformer::forward`] with `edits` replacing hooks' values on the way, on the
    /// device, as [`super::cpu::forward_with`] does: the pass goes on from each edited value,
    /// and a captured hook holds its value after its edits.
    pub async fn forward_with(
        &mut self,
        tokens: &[u32],
        batch: usize,
        capture: &dyn Fn(&str) -> bool,
        edits: &[HookEdit],
    ) -> Result<(Vec<f32>, Hooks)> {
        let (logits, hooks, _) = self
            .run(tokens, batch, capture, edits, Want::Logits)
            .await?;
        Ok((logits, hooks))
    }

    /// The hooks `capture` accepts from a pass that runs only the first `stop_at_layer` blocks
    /// (TransformerLens's `stop_at_layer`; all of them, without the unembedding, when it is
    /// n_layers): an SAE on `blocks.0.mlp.hook_post` pays for neither the later blocks nor the
    /// vocabulary. Hooks past the stop are not captured.
    pub async fn forward_until(
        &mut self,
        tokens: &[u32],
        batch: usize,
        capture: &dyn Fn(&str) -> bool,
        edits: &[HookEdit],
        stop_at_layer: usize,
    ) -> Result<Hooks> {
        check_stop(&self.params.cfg, stop_at_layer)?;
        let want = Want::Hooks(stop_at_layer);
        let (_, hooks, _) = self.run(tokens, batch, capture, edits, want).await?;
        Ok(hooks)
    }

    /// The parameters on the device (their gradients are its [`Arena::mirror`]s).
    pub fn arena(&self) -> &Arena {
        &self.arena
    }

    /// The language-modelling loss on `tokens` (rows of `batch`), with every parameter's
    /// gradient written into `grads` (a mirror of [`GpuTransformer::arena`]), in the same
    /// recording as the forward pass.
    pub async fn loss_and_grad(
        &mut self,
        tokens: &[u32],
        batch: usize,
        grads: &Arena,
    ) -> Result<f32> {
        let (_, _, loss) = self
            .run(tokens, batch, &|_| false, &[], Want::Grads(grads))
            .await?;
        Ok(loss.expect("the backward pass reads the loss"))
    }

    /// The mean language-modelling loss on `tokens` (rows of `batch`), its logits made a chunk
    /// of positions at a time so that no vocabulary's are too large to bind.
    pub async fn loss(&mut self, tokens: &[u32], batch: usize) -> Result<f32> {
        self.loss_with(tokens, batch, &[]).await
    }

    /// The mean language-modelling loss with `edits` replacing hooks' values (the loss of an
    /// ablated, steered or patched model; with an SAE's reconstruction, CE loss recovered).
    pub async fn loss_with(
        &mut self,
        tokens: &[u32],
        batch: usize,
        edits: &[HookEdit],
    ) -> Result<f32> {
        let (_, _, loss) = self
            .run(tokens, batch, &|_| false, edits, Want::Loss)
            .await?;
        Ok(loss.expect("a loss pass reads the loss"))
    }

    /// Records a forward pass of `tokens` (rows of `batch`) through the first `stop_at_layer`
    /// blocks into the caller's recording, with `edits` on the way, so that a consumer on the
    /// device (an SAE trainer's input, an explorer's accumulators) reads the hooks it needs with
    /// [`GpuTransformer::hook_view`] in the same recording: nothing is read back. The pass's
    /// buffers stay valid until the next pass.
    pub async fn record_forward(
        &mut self,
        rec: &mut Recording<'_>,
        tokens: &[u32],
        batch: usize,
        edits: &[HookEdit],
        stop_at_layer: usize,
    ) -> Result<()> {
        let cfg = self.params.cfg.clone();
        check_stop(&cfg, stop_at_layer)?;
        let pos = check_tokens(&cfg, tokens, batch)?;
        let checked = check_edits(&cfg, edits, batch, pos)?;
        self.prepare((batch, pos), stop_at_layer, false)?;
        let gpu = self.gpu.clone();
        let edits = Edits::new(&gpu, checked)?;
        let tok = gpu.storage_from("tokens", tokens)?;
        let acts = self.acts.as_ref().expect("prepared above");
        let tokens = Tensor::of("tokens", (&tok).into(), &[tokens.len()])?;
        let scratch = record_forward(rec, &self.arena, &cfg, acts, tokens, &edits).await?;
        // Kept until the caller has submitted the recording that reads them.
        self.kept
            .extend(edits.into_buffers().into_iter().chain([tok]).chain(scratch));
        Ok(())
    }

    /// Hook `name` from the last pass as a device tensor of its TransformerLens shape, when
    /// that pass made it and it is a buffer of its own (a LayerNorm's `hook_scale` and
    /// `hook_normalized` are made from its statistics when read back, and have none).
    pub fn hook_view(&self, name: &str) -> Option<Tensor<'_>> {
        match self.acts.as_ref()?.hook(name)? {
            HookBuf::Value(b) => b.t().ok(),
            HookBuf::Ln { .. } => None,
        }
    }

    /// Makes (or keeps) the activations for a pass of this shape, and gives back the buffers
    /// the last recorded pass kept.
    fn prepare(&mut self, shape: (usize, usize), layers: usize, logits: bool) -> Result<()> {
        for b in self.kept.drain(..) {
            self.gpu.recycle(b);
        }
        if !self
            .acts
            .as_ref()
            .is_some_and(|a| a.fits(shape, layers, logits))
        {
            if let Some(old) = self.acts.take() {
                old.recycle(&self.gpu);
            }
            let cfg = &self.params.cfg;
            self.acts = Some(Activations::new(&self.gpu, cfg, shape, layers, logits)?);
        }
        Ok(())
    }

    async fn run(
        &mut self,
        tokens: &[u32],
        batch: usize,
        capture: &dyn Fn(&str) -> bool,
        edits: &[HookEdit],
        want: Want<'_>,
    ) -> Result<(Vec<f32>, Hooks, Option<f32>)> {
        let cfg = self.params.cfg.clone();
        let pos = check_tokens(&cfg, tokens, batch)?;
        let checked = check_edits(&cfg, edits, batch, pos)?;
        let v = cfg.d_vocab as usize;
        let gpu = self.gpu.clone();
        let layers = match want {
            Want::Hooks(n) => n,
            _ => cfg.n_layers as usize,
        };
        self.prepare((batch, pos), layers, matches!(want, Want::Logits))?;
        let acts = self.acts.as_ref().expect("made above");
        let edits = Edits::new(&gpu, checked)?;
        let tok = gpu.storage_from("tokens", tokens)?;
        let tok_t = Tensor::of("tokens", (&tok).into(), &[tokens.len()])?;
        let shape = |layer| block_shape(&cfg, layer);
        let arena = &self.arena;
        let mut rec = self.recorder.begin();
        let scratch_resid = record_forward(&mut rec, arena, &cfg, acts, tok_t, &edits).await?;
        let grads = match want {
            Want::Grads(ga) => Some(ga),
            _ => None,
        };
        let mut scratch = Scratch::new(&gpu);
        // The gradient at ln_final's output: every chunk of the loss writes its rows.
        let dxf = match (grads, &acts.ln_final) {
            (Some(_), Some(lnf)) => Some(TensorBuf::dirty(&gpu, "d ln_final", lnf.out.dims())?),
            _ => None,
        };
        let loss_buf = match (want, &acts.ln_final) {
            (Want::Loss | Want::Grads(_), Some(lnf)) => {
                let backward = match (&dxf, grads) {
                    (Some(b), Some(g)) => Some((b.t()?, g)),
                    _ => None,
                };
                let t = UnembedLoss {
                    xf: lnf.out.t()?,
                    tokens: tok_t,
                    backward,
                    pos,
                    chunk_bytes: self.chunk_bytes,
                };
                Some(unembed_loss(&mut rec, arena, &t).await?)
            }
            _ => None,
        };
        let mut token_bufs = vec![];
        if let (Some(ga), Some(dxf), Some(lnf)) = (grads, &dxf, &acts.ln_final) {
            let last = acts.blocks.last().expect("a model has a block");
            let mut dresid = scratch.zeroed(&mut rec, "d resid", last.resid_post().dims())?;
            let pa = (arena, ga);
            let x = (last.resid_post().t()?, lnf.stats.t()?);
            let dr = scratch.t(dresid)?;
            ln_backward(&mut rec, pa, "ln_final", x, dxf.t()?, dr).await?;
            for (l, b) in acts.blocks.iter().enumerate().rev() {
                dresid = block::backward(&mut rec, pa, shape(l), b, &mut scratch, dresid).await?;
            }
            let (offsets, list) = token_lists(tokens, v)?;
            let bo = gpu.storage_from("token offsets", &offsets)?;
            let bl = gpu.storage_from("token rows", &list)?;
            embedding_backward(
                &mut rec,
                &EmbeddingBackward {
                    offsets: Tensor::of("token offsets", (&bo).into(), &[offsets.len()])?,
                    list: Tensor::of("token rows", (&bl).into(), &[list.len()])?,
                    g: scratch.t(dresid)?,
                    dw_e: ga.tensor("embed.W_E")?,
                    dw_pos: ga.tensor("pos_embed.W_pos")?,
                    pos,
                },
            )
            .await?;
            token_bufs.extend([bo, bl]);
        }
        rec.submit_scoped().await?;
        let loss = match &loss_buf {
            Some((l, _)) => Some(gpu.read::<f32>(l, 1).await?[0]),
            None => None,
        };
        let (logits, hooks) = read_hooks(&gpu, &cfg, acts, capture).await?;
        // Scratch goes back to the pool: the next step asks for the same sizes, and creating
        // buffers afresh each step costs allocations a fast GPU notices.
        let scratch = scratch.keep.into_iter().map(|b| b.buffer);
        let loss_bufs = loss_buf
            .into_iter()
            .flat_map(|(l, keep)| keep.into_iter().chain([l]));
        for b in [tok]
            .into_iter()
            .chain(scratch_resid)
            .chain(dxf.map(|b| b.buffer))
            .chain(token_bufs)
        {
            gpu.recycle(b);
        }
        scratch.chain(loss_bufs).for_each(|b| gpu.recycle(b));
        edits.recycle(&gpu);
        Ok((logits, hooks, loss))
    }
}

/// Block `layer`, the MLP's activation resolved once (SoLU's LayerNorm is the block's, after
/// `solu`).
fn block_shape(cfg: &TransformerConfig, layer: usize) -> Shape {
    Shape {
        layer,
        act: match cfg.act_fn {
            Activation::Gelu => Act::Gelu,
            Activation::GeluNew => Act::GeluNew,
            Activation::SoluLn => Act::Solu,
        },
    }
}

/// Records a forward pass of the tokens in `tok` through `acts`' blocks (then the final
/// LayerNorm and the logits, where `acts` has them), each edit recorded where its hook is
/// written. Returns the residual buffer made when no block runs, to keep until the recording
/// is submitted.
async fn record_forward(
    rec: &mut Recording<'_>,
    arena: &Arena,
    cfg: &TransformerConfig,
    acts: &Activations,
    tokens: Tensor<'_>,
    edits: &Edits<'_>,
) -> Result<Option<wgpu::Buffer>> {
    let gpu = rec.gpu().clone();
    // Zeroed at the start of the recording, not by a submit each.
    for b in acts.buffers() {
        rec.clear(&b.buffer, 0, None);
    }
    // The embeddings and the residual stream they start.
    let resid0 = acts.blocks.first().map(|b| &b.resid_pre);
    let scratch_resid = match resid0 {
        Some(_) => None,
        None => Some(TensorBuf::dirty(&gpu, "resid", acts.embed.dims())?),
    };
    let resid0 = resid0.or(scratch_resid.as_ref()).expect("one of the two");
    let t = Embedding {
        tokens,
        w_e: arena.tensor("embed.W_E")?,
        w_pos: arena.tensor("pos_embed.W_pos")?,
        embed: acts.embed.t()?,
        pos_embed: acts.pos_embed.t()?,
        resid: resid0.t()?,
        pos: acts.pos,
    };
    embedding(rec, &t).await?;
    if edits.any_at("hook_embed") || edits.any_at("hook_pos_embed") {
        edits.at(rec, "hook_embed", &acts.embed).await?;
        edits.at(rec, "hook_pos_embed", &acts.pos_embed).await?;
        add(rec, acts.embed.t()?, acts.pos_embed.t()?, resid0.t()?).await?;
    }
    // The blocks; the previous block's resid_post is the next one's resid_pre
    // (TransformerLens caches, and edits, both).
    for (l, b) in acts.blocks.iter().enumerate() {
        if l > 0 {
            let prev = acts.blocks[l - 1].resid_post();
            let bytes = b.resid_pre.len() as u64 * 4;
            rec.copy(&prev.buffer, 0, &b.resid_pre.buffer, 0, bytes);
        }
        let pre = format!("blocks.{l}.hook_resid_pre");
        edits.at(rec, &pre, &b.resid_pre).await?;
        block::forward(rec, arena, block_shape(cfg, l), b, edits).await?;
    }
    // The final LayerNorm and the unembedding.
    if let (Some(lnf), Some(last)) = (&acts.ln_final, acts.blocks.last()) {
        ln_forward(rec, arena, "ln_final", last.resid_post().t()?, lnf.pair()).await?;
        edits.at(rec, "unembed.hook_in", &lnf.out).await?;
        if let Some(logits) = &acts.logits {
            let u = ("unembed.W_U", "unembed.b_U");
            linear(rec, arena, u, lnf.out.t()?, logits.t()?).await?;
        }
    }
    Ok(scratch_resid.map(|b| b.buffer))
}

/// The logits (empty unless the pass kept them) and the hooks `capture` accepts, read back in
/// forward order; a LayerNorm's `hook_scale` and `hook_normalized` made from its statistics and
/// input.
async fn read_hooks(
    gpu: &Gpu,
    cfg: &super::TransformerConfig,
    acts: &Activations,
    capture: &dyn Fn(&str) -> bool,
) -> Result<(Vec<f32>, Hooks)> {
    let (batch, pos) = (acts.batch, acts.pos);
    let rows = batch * pos;
    let logits = match &acts.logits {
        Some(b) => gpu.read(&b.buffer, rows * cfg.d_vocab as usize).await?,
        None => vec![],
    };
    let mut hooks = Hooks::default();
    for (name, shape) in hook_shapes(cfg, batch, pos) {
        if !capture(&name) {
            continue;
        }
        if name == "unembed.hook_out" {
            if acts.logits.is_some() {
                hooks.put(capture, name, shape, &logits);
            }
            continue;
        }
        match acts.hook(&name) {
            None => {}
            Some(HookBuf::Value(b)) => {
                let n: usize = shape.iter().product();
                let values: Vec<f32> = gpu.read(&b.buffer, n).await?;
                hooks.put(capture, name, shape, &values);
            }
            Some(HookBuf::Ln {
                x,
                stats,
                width,
                normalized: n,
            }) => {
                let st: Vec<f32> = gpu.read(&stats.buffer, 2 * rows).await?;
                if n {
                    let xv: Vec<f32> = gpu.read(&x.buffer, rows * width).await?;
                    hooks.put(capture, name, shape, &normalized(&xv, &st, width));
                } else {
                    hooks.put(capture, name, shape, &st[..rows]);
                }
            }
        }
    }
    Ok((logits, hooks))
}
