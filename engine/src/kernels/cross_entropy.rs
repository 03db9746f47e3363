//! The language-modelling loss and its gradient at the logits (host of
//! `shaders/cross_entropy.wgsl`): TransformerLens's `lm_cross_entropy_loss`, each position
//! predicting the next token of its row, averaged over every position but the last of each
//! row. [`cross_entropy_ref`] is its CPU reference, which the CPU trainer uses.

use super::{dim, elements, params, Kernel};
use crate::error::{EngineError, Result};
use crate::gpu::{Recording, Tensor, View};

const CE_WGSL: &str = include_str!("../../../shaders/cross_entropy.wgsl");

/// The tensors of [`cross_entropy`].
#[derive(Clone, Copy)]
pub struct CrossEntropy<'a> {
    /// Logits `[rows, vocab]`.
    pub logits: View<'a>,
    /// The tokens `[rows]` (u32), rows of `pos` positions.
    pub tokens: View<'a>,
    /// The gradient at the logits (written).
    pub dlogits: View<'a>,
    /// Scratch `[rows]`: each position's loss.
    pub row_loss: View<'a>,
    /// The mean loss `[1]` (written).
    pub loss: View<'a>,
}

/// Records the loss and its gradient for `rows` positions in rows of `pos`.
pub async fn cross_entropy(
    rec: &mut Recording<'_>,
    t: &CrossEntropy<'_>,
    rows: usize,
    pos: usize,
    vocab: usize,
) -> Result<()> {
    let gpu = &rec.gpu().clone();
    let (r, p, v) = (dim("rows", rows)?, dim("pos", pos)?, dim("d_vocab", vocab)?);
    if p < 2 || !rows.is_multiple_of(pos) {
        return Err(EngineError::invalid(
            "pos",
            pos,
            "rows of at least 2 positions must divide the tokens (a position predicts the next)",
        ));
    }
    elements("logits", &[r, v])?;
    Tensor::new(gpu, "logits", t.logits, &[r, v])?;
    Tensor::new(gpu, "dlogits", t.dlogits, &[r, v])?;
    Tensor::new(gpu, "tokens", t.tokens, &[r])?;
    Tensor::new(gpu, "row_loss", t.row_loss, &[r])?;
    Tensor::new(gpu, "loss", t.loss, &[1])?;
    let count = (rows / pos * (pos - 1)) as f32;
    let storage = vec![t.logits, t.tokens, t.dlogits, t.row_loss, t.loss];
    let kern = Kernel::new(gpu, "cross_entropy", "", CE_WGSL, storage, &[]).await?;
    let prm = params(&[r, p, v, count.to_bits()]);
    let groups = (r as u64).div_ceil(super::SEG_ROWS);
    kern.dispatch(rec, "ce_rows", prm, groups).await?;
    kern.dispatch(rec, "ce_sum", prm, 1).await
}

/// CPU reference: the mean next-token loss of `logits` `[rows, vocab]` for `tokens` in rows of
/// `pos`, and its gradient at the logits.
pub fn cross_entropy_ref(
    logits: &[f32],
    tokens: &[u32],
    pos: usize,
    vocab: usize,
) -> (f32, Vec<f32>) {
    let rows = tokens.len();
    let n = (rows / pos * (pos - 1)).max(1) as f32;
    let mut loss = 0f64;
    let mut grad = vec![0f32; logits.len()];
    for r in 0..rows {
        if r % pos == pos - 1 {
            continue;
        }
        let row = &logits[r * vocab..(r + 1) * vocab];
        let target = tokens[r + 1] as usize;
        let max = row.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v));
        let sum: f32 = row.iter().map(|v| (v - max).exp()).sum();
        loss += (sum.ln() + max - row[target]) as f64;
        for (g, &v) in grad[r * vocab..(r + 1) * vocab].iter_mut().zip(row) {
            *g = (v - max).exp() / sum / n;
        }
        grad[r * vocab + target] -= 1.0 / n;
    }
    ((loss / n as f64) as f32, grad)
}

#[cfg(test)]
mod tests {
    use super::super::test_data::{record, values};
    use super::*;
    use crate::gpu::Gpu;
    use crate::gpu_test;
    use crate::testing::assert_close;

    #[test]
    fn the_reference_is_next_token_cross_entropy() {
        // Uniform logits: ln(vocab) at every predicted position.
        let (loss, grad) = cross_entropy_ref(&[0.0; 2 * 3 * 4], &[0, 1, 2, 3, 2, 1], 3, 4);
        assert!((loss - 4f32.ln()).abs() < 1e-6);
        // The last position of each row predicts nothing.
        assert!(grad[2 * 4..3 * 4].iter().all(|&g| g == 0.0));
        assert!((grad[1] - (0.25 - 1.0) / 4.0).abs() < 1e-7);
    }

    async fn matches_reference(gpu: &Gpu) {
        for (batch, pos, vocab) in [(1, 2, 1), (2, 9, 23), (3, 5, 700)] {
            let rows = batch * pos;
            let logits: Vec<f32> = values(1, rows * vocab).iter().map(|v| 4.0 * v).collect();
            let tokens: Vec<u32> = (0..rows).map(|i| (i * 5 % vocab) as u32).collect();
            let bl = gpu.storage_from("logits", &logits).unwrap();
            let bt = gpu.storage_from("tokens", &tokens).unwrap();
            let dl = gpu.storage_zeroed::<f32>("dlogits", rows * vocab).unwrap();
            let rl = gpu.storage_zeroed::<f32>("row_loss", rows).unwrap();
            let loss = gpu.storage_zeroed::<f32>("loss", 1).unwrap();
            record(gpu, async |rec: &mut Recording<'_>| {
                let t = CrossEntropy {
                    logits: (&bl).into(),
                    tokens: (&bt).into(),
                    dlogits: (&dl).into(),
                    row_loss: (&rl).into(),
                    loss: (&loss).into(),
                };
                cross_entropy(rec, &t, rows, pos, vocab).await
            })
            .await;
            let (want_loss, want_grad) = cross_entropy_ref(&logits, &tokens, pos, vocab);
            let what = format!("{batch} × {pos}, vocab {vocab}");
            let got: Vec<f32> = gpu.read(&loss, 1).await.unwrap();
            assert_close(&what, &got, &[want_loss], 1e-5, 1e-5);
            let got: Vec<f32> = gpu.read(&dl, rows * vocab).await.unwrap();
            assert_close(&format!("{what} gradient"), &got, &want_grad, 1e-6, 1e-4);
        }
    }
    gpu_test!(gpu_cross_entropy_matches_reference, matches_reference);
}
