//! The residual stream's start (host of `shaders/embedding.wgsl`): token and position
//! embeddings, `resid = W_E[tokens] + W_pos[position]`, with both terms kept apart as
//! TransformerLens's hook_embed and hook_pos_embed. [`embedding_ref`] is its CPU reference.

use super::{dim, elements, params, Kernel};
use crate::error::{EngineError, Result};
use crate::gpu::{Recording, Tensor, View};

const EMBEDDING_WGSL: &str = include_str!("../../../shaders/embedding.wgsl");

/// The tensors of [`embedding`].
#[derive(Clone, Copy)]
pub struct Embedding<'a> {
    /// Token ids `[rows]` (u32), rows of `pos` positions.
    pub tokens: View<'a>,
    /// `[d_vocab, d_model]`.
    pub w_e: View<'a>,
    /// `[n_ctx, d_model]`.
    pub w_pos: View<'a>,
    /// The token term `[rows, d_model]` (written).
    pub embed: View<'a>,
    /// The position term `[rows, d_model]` (written).
    pub pos_embed: View<'a>,
    /// Their sum `[rows, d_model]` (written).
    pub resid: View<'a>,
}

/// Records the embedding of `rows` tokens in rows of `pos` positions.
pub async fn embedding(
    rec: &mut Recording<'_>,
    t: &Embedding<'_>,
    (rows, pos, d_model, d_vocab, n_ctx): (usize, usize, usize, usize, usize),
) -> Result<()> {
    let gpu = &rec.gpu().clone();
    let (r, p, d, v, c) = (
        dim("rows", rows)?,
        dim("pos", pos)?,
        dim("d_model", d_model)?,
        dim("d_vocab", d_vocab)?,
        dim("n_ctx", n_ctx)?,
    );
    if p > c || !rows.is_multiple_of(pos) {
        return Err(EngineError::invalid(
            "pos",
            pos,
            format!("rows of at most n_ctx = {c} positions must divide the {r} tokens"),
        ));
    }
    Tensor::new(gpu, "tokens", t.tokens, &[r])?;
    Tensor::new(gpu, "W_E", t.w_e, &[v, d])?;
    Tensor::new(gpu, "W_pos", t.w_pos, &[c, d])?;
    for (name, view) in [
        ("embed", t.embed),
        ("pos_embed", t.pos_embed),
        ("resid", t.resid),
    ] {
        Tensor::new(gpu, name, view, &[r, d])?;
    }
    let n = elements("resid", &[r, d])?;
    let storage = vec![t.tokens, t.w_e, t.w_pos, t.embed, t.pos_embed, t.resid];
    let kern = Kernel::new(gpu, "embedding", "", EMBEDDING_WGSL, storage, &[]).await?;
    kern.dispatch(rec, "embed_forward", params(&[r, p, d, v]), n.div_ceil(256))
        .await
}

/// CPU reference of [`embedding`]: `(embed, pos_embed, resid)`.
pub fn embedding_ref(
    tokens: &[u32],
    pos: usize,
    w_e: &[f32],
    w_pos: &[f32],
    d: usize,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut embed = vec![0f32; tokens.len() * d];
    let mut pos_embed = vec![0f32; tokens.len() * d];
    for (r, &t) in tokens.iter().enumerate() {
        let p = r % pos;
        embed[r * d..(r + 1) * d].copy_from_slice(&w_e[t as usize * d..(t as usize + 1) * d]);
        pos_embed[r * d..(r + 1) * d].copy_from_slice(&w_pos[p * d..(p + 1) * d]);
    }
    let resid = embed.iter().zip(&pos_embed).map(|(a, b)| a + b).collect();
    (embed, pos_embed, resid)
}

#[cfg(test)]
mod tests {
    use super::super::test_data::{record, values};
    use super::*;
    use crate::gpu::Gpu;
    use crate::gpu_test;

    async fn matches_reference(gpu: &Gpu) {
        let (v, c, d, pos, batch) = (11, 8, 5, 6, 3);
        let tokens: Vec<u32> = (0..batch * pos).map(|i| (i * 7 % v) as u32).collect();
        let (w_e, w_pos) = (values(1, v * d), values(2, c * d));
        let bt = gpu.storage_from("tokens", &tokens).unwrap();
        let be = gpu.storage_from("W_E", &w_e).unwrap();
        let bp = gpu.storage_from("W_pos", &w_pos).unwrap();
        let z = |n: &str| gpu.storage_zeroed::<f32>(n, batch * pos * d).unwrap();
        let (e, p, r) = (z("embed"), z("pos_embed"), z("resid"));
        record(gpu, async |rec: &mut Recording<'_>| {
            let t = Embedding {
                tokens: (&bt).into(),
                w_e: (&be).into(),
                w_pos: (&bp).into(),
                embed: (&e).into(),
                pos_embed: (&p).into(),
                resid: (&r).into(),
            };
            embedding(rec, &t, (batch * pos, pos, d, v, c)).await
        })
        .await;
        let (we, wp, wr) = embedding_ref(&tokens, pos, &w_e, &w_pos, d);
        let n = batch * pos * d;
        assert_eq!(gpu.read::<f32>(&e, n).await.unwrap(), we);
        assert_eq!(gpu.read::<f32>(&p, n).await.unwrap(), wp);
        assert_eq!(gpu.read::<f32>(&r, n).await.unwrap(), wr);
    }
    gpu_test!(gpu_embedding_matches_reference, matches_reference);
}
