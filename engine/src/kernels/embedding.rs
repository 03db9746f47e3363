//! The residual stream's start (host of `shaders/embedding.wgsl`): token and position
//! embeddings, `resid = W_E[tokens] + W_pos[position]`, with both terms kept apart as
//! TransformerLens's hook_embed and hook_pos_embed, and their gradients
//! (`shaders/embedding_backward.wgsl`). [`embedding_ref`] and [`embedding_backward_ref`] are the
//! CPU references.

use super::{params, Kernel};
use crate::error::{EngineError, Result};
use crate::gpu::{Recording, Tensor};

const EMBEDDING_WGSL: &str = include_str!("../../../shaders/embedding.wgsl");
const BACKWARD_WGSL: &str = include_str!("../../../shaders/embedding_backward.wgsl");

/// The tensors of [`embedding`].
#[derive(Clone, Copy)]
pub struct Embedding<'a> {
    /// Token ids `[rows]` (u32), rows of `pos` positions.
    pub tokens: Tensor<'a>,
    /// `[d_vocab, d_model]`.
    pub w_e: Tensor<'a>,
    /// `[n_ctx, d_model]`.
    pub w_pos: Tensor<'a>,
    /// The token term `[rows, d_model]` (written).
    pub embed: Tensor<'a>,
    /// The position term `[rows, d_model]` (written).
    pub pos_embed: Tensor<'a>,
    /// Their sum `[rows, d_model]` (written).
    pub resid: Tensor<'a>,
    /// Positions a row of the batch.
    pub pos: usize,
}

/// The sizes `[rows, pos, d_model, d_vocab, n_ctx]` of tokens in rows of `pos` with the
/// embeddings `w_e` and `w_pos` (or their gradients), and `acts` (the residual terms, or the
/// gradient at them) `[rows, d_model]`.
fn sizes(
    tokens: u32,
    pos: usize,
    (w_e, w_pos): (&Tensor<'_>, &Tensor<'_>),
    acts: &[Tensor<'_>],
) -> Result<[u32; 5]> {
    let [v, d] = w_e.shape()?;
    let [c, _] = w_pos.shape()?;
    w_pos.expect(&[c, d])?;
    for a in acts {
        a.expect_matrix(tokens, d)?;
    }
    let p = pos as u32;
    if pos == 0 || p > c || !tokens.is_multiple_of(p) {
        return Err(EngineError::invalid(
            "pos",
            pos,
            format!("rows of 1 to n_ctx = {c} positions must divide the {tokens} tokens"),
        ));
    }
    Ok([tokens, p, d, v, c])
}

/// Records the embedding of the tokens in rows of `pos` positions.
pub async fn embedding(rec: &mut Recording<'_>, t: &Embedding<'_>) -> Result<()> {
    let gpu = &rec.gpu().clone();
    let [r] = t.tokens.shape()?;
    let acts = [t.embed, t.pos_embed, t.resid];
    let [r, p, d, v, _] = sizes(r, t.pos, (&t.w_e, &t.w_pos), &acts)?;
    let storage = [t.tokens, t.w_e, t.w_pos, t.embed, t.pos_embed, t.resid]
        .map(|t| t.view)
        .to_vec();
    let kern = Kernel::new(gpu, "embedding", "", EMBEDDING_WGSL, storage, &[]).await?;
    let n = t.resid.len;
    kern.dispatch(rec, "embed_forward", params(&[r, p, d, v]), n.div_ceil(256))
        .await
}

/// Each token's rows, in increasing order, as lists: `offsets` `[d_vocab + 1]` into `rows`
/// (a counting sort on the host, which holds the tokens anyway). Tokens past the vocabulary
/// are refused.
pub fn token_lists(tokens: &[u32], d_vocab: usize) -> Result<(Vec<u32>, Vec<u32>)> {
    let mut offsets = vec![0u32; d_vocab + 1];
    for &t in tokens {
        let t = t as usize;
        if t >= d_vocab {
            return Err(EngineError::invalid(
                "tokens",
                t,
                format!("a token id must be below d_vocab = {d_vocab}"),
            ));
        }
        offsets[t + 1] += 1;
    }
    for i in 0..d_vocab {
        offsets[i + 1] += offsets[i];
    }
    let mut next = offsets.clone();
    let mut rows = vec![0u32; tokens.len()];
    for (r, &t) in tokens.iter().enumerate() {
        rows[next[t as usize] as usize] = r as u32;
        next[t as usize] += 1;
    }
    Ok((offsets, rows))
}

/// The tensors of [`embedding_backward`].
#[derive(Clone, Copy)]
pub struct EmbeddingBackward<'a> {
    /// [`token_lists`]' offsets `[d_vocab + 1]` (u32).
    pub offsets: Tensor<'a>,
    /// [`token_lists`]' rows `[rows]` (u32).
    pub list: Tensor<'a>,
    /// The gradient at the residual stream's start `[rows, d_model]`.
    pub g: Tensor<'a>,
    /// W_E's gradient `[d_vocab, d_model]` (written).
    pub dw_e: Tensor<'a>,
    /// W_pos's gradient `[n_ctx, d_model]` (written; zero past `pos`).
    pub dw_pos: Tensor<'a>,
    /// Positions a row of the batch.
    pub pos: usize,
}

/// Records the embeddings' gradients for the tokens in rows of `pos` positions.
pub async fn embedding_backward(rec: &mut Recording<'_>, t: &EmbeddingBackward<'_>) -> Result<()> {
    let gpu = &rec.gpu().clone();
    let [r] = t.list.shape()?;
    let [r, p, d, v, c] = sizes(r, t.pos, (&t.dw_e, &t.dw_pos), &[t.g])?;
    t.offsets.expect(&[v + 1])?;
    let storage = [t.offsets, t.list, t.g, t.dw_e, t.dw_pos]
        .map(|t| t.view)
        .to_vec();
    let kern = Kernel::new(gpu, "embedding_backward", "", BACKWARD_WGSL, storage, &[]).await?;
    let prm = params(&[r, p, d, v, c]);
    kern.dispatch(rec, "embed_backward_tokens", prm, t.dw_e.len.div_ceil(256))
        .await?;
    kern.dispatch(rec, "embed_backward_pos", prm, t.dw_pos.len.div_ceil(256))
        .await
}

/// CPU reference of [`embedding_backward`]: `(dW_E, dW_pos)`.
pub fn embedding_backward_ref(
    tokens: &[u32],
    pos: usize,
    g: &[f32],
    d: usize,
    (d_vocab, n_ctx): (usize, usize),
) -> (Vec<f32>, Vec<f32>) {
    let mut dw_e = vec![0f32; d_vocab * d];
    let mut dw_pos = vec![0f32; n_ctx * d];
    for (r, &t) in tokens.iter().enumerate() {
        let p = r % pos;
        for c in 0..d {
            dw_e[t as usize * d + c] += g[r * d + c];
            dw_pos[p * d + c] += g[r * d + c];
        }
    }
    (dw_e, dw_pos)
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
    use super::super::test_data::{record, t, values};
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
            let acts = [batch * pos, d];
            let e = Embedding {
                tokens: t(&bt, "tokens", &[batch * pos]),
                w_e: t(&be, "W_E", &[v, d]),
                w_pos: t(&bp, "W_pos", &[c, d]),
                embed: t(&e, "embed", &acts),
                pos_embed: t(&p, "pos_embed", &acts),
                resid: t(&r, "resid", &acts),
                pos,
            };
            embedding(rec, &e).await
        })
        .await;
        let (we, wp, wr) = embedding_ref(&tokens, pos, &w_e, &w_pos, d);
        let n = batch * pos * d;
        assert_eq!(gpu.read::<f32>(&e, n).await.unwrap(), we);
        assert_eq!(gpu.read::<f32>(&p, n).await.unwrap(), wp);
        assert_eq!(gpu.read::<f32>(&r, n).await.unwrap(), wr);
    }
    gpu_test!(gpu_embedding_matches_reference, matches_reference);

    async fn backward_matches_reference(gpu: &Gpu) {
        // Tokens repeated, some never used; rows shorter than n_ctx.
        let (v, c, d, pos, batch) = (11, 8, 5, 6, 3);
        let tokens: Vec<u32> = (0..batch * pos).map(|i| (i * i % 7) as u32).collect();
        let g = values(3, batch * pos * d);
        let (offsets, list) = token_lists(&tokens, v).unwrap();
        let bo = gpu.storage_from("offsets", &offsets).unwrap();
        let bl = gpu.storage_from("list", &list).unwrap();
        let bg = gpu.storage_from("g", &g).unwrap();
        let dwe = gpu.storage_zeroed::<f32>("dW_E", v * d).unwrap();
        let dwp = gpu.storage_from("dW_pos", &vec![7f32; c * d]).unwrap();
        record(gpu, async |rec: &mut Recording<'_>| {
            let b = EmbeddingBackward {
                offsets: t(&bo, "offsets", &[v + 1]),
                list: t(&bl, "list", &[batch * pos]),
                g: t(&bg, "g", &[batch * pos, d]),
                dw_e: t(&dwe, "dW_E", &[v, d]),
                dw_pos: t(&dwp, "dW_pos", &[c, d]),
                pos,
            };
            embedding_backward(rec, &b).await
        })
        .await;
        let (we, wp) = embedding_backward_ref(&tokens, pos, &g, d, (v, c));
        // The same adds in the same order as the reference: equal to the bit.
        assert_eq!(gpu.read::<f32>(&dwe, v * d).await.unwrap(), we);
        assert_eq!(gpu.read::<f32>(&dwp, c * d).await.unwrap(), wp);
        assert!(token_lists(&[3, 11], 11).is_err());
    }
    gpu_test!(
        gpu_embedding_backward_matches_reference,
        backward_matches_reference
    );
}
