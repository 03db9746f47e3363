//! The language-modelling loss and its gradient at the logits (host of
//! `shaders/cross_entropy.wgsl`): TransformerLens's `lm_cross_entropy_loss`, each position
//! predicting the next token of its row, averaged over every position but the last of each
//! row. [`cross_entropy_ref`] is its CPU reference, which the CPU trainer uses.

use super::{params, Kernel};
use crate::error::{EngineError, Result};
use crate::gpu::{Recording, Tensor};

const CE_WGSL: &str = include_str!("../../../shaders/cross_entropy.wgsl");

/// The tensors of [`cross_entropy`]: the logits of `chunk` positions (all of them, or a
/// chunk's in [`cross_entropy_rows`]) among the batch's `rows`.
#[derive(Clone, Copy)]
pub struct CrossEntropy<'a> {
    /// Logits `[chunk, vocab]`.
    pub logits: Tensor<'a>,
    /// The tokens `[rows]` (u32).
    pub tokens: Tensor<'a>,
    /// The gradient at the logits (written), shaped as `logits`.
    pub dlogits: Tensor<'a>,
    /// Scratch `[rows]`: each position's loss.
    pub row_loss: Tensor<'a>,
    /// The mean loss `[1]` (written).
    pub loss: Tensor<'a>,
    /// Positions a row (a window) of the batch.
    pub pos: usize,
}

impl CrossEntropy<'_> {
    /// The batch's positions, with `row_loss` and `loss` checked against them.
    fn rows(&self) -> Result<u32> {
        let [r] = self.tokens.shape()?;
        self.row_loss.expect(&[r])?;
        self.loss.expect(&[1])?;
        if self.pos < 2 || !(r as usize).is_multiple_of(self.pos) {
            return Err(EngineError::invalid(
                "pos",
                self.pos,
                "rows of at least 2 positions must divide the tokens (a position predicts the next)",
            ));
        }
        Ok(r)
    }

    /// The positions that predict a token: all but the last of each row.
    fn count(&self, rows: u32) -> f32 {
        (rows as usize / self.pos * (self.pos - 1)) as f32
    }
}

/// Records the loss and its gradient for every position at once.
pub async fn cross_entropy(rec: &mut Recording<'_>, t: &CrossEntropy<'_>) -> Result<()> {
    cross_entropy_rows(rec, t, 0).await?;
    cross_entropy_total(rec, t).await
}

/// Records the losses and the gradient of the positions from `first` on that `t.logits` and
/// `t.dlogits` hold (a chunk's rows alone: a large vocabulary's logits for every position
/// would pass a binding's limit). [`cross_entropy_total`] then gives the mean.
pub async fn cross_entropy_rows(
    rec: &mut Recording<'_>,
    t: &CrossEntropy<'_>,
    first: usize,
) -> Result<()> {
    let gpu = &rec.gpu().clone();
    let r = t.rows()?;
    let (c, v) = t.logits.matrix();
    t.dlogits.expect(t.logits.dims())?;
    let chunk = c as usize;
    if first + chunk > r as usize {
        return Err(EngineError::invalid(
            "chunk",
            format!("positions {first}..{}", first + chunk),
            format!("must be a range of the batch's {r} positions"),
        ));
    }
    let kern = kernel(gpu, t).await?;
    let prm = params(&[c, t.pos as u32, v, t.count(r).to_bits(), first as u32]);
    let groups = (c as u64).div_ceil(super::seg_rows(gpu));
    kern.dispatch(rec, "ce_rows", prm, groups).await
}

/// Records the mean of the positions' losses (every chunk's) into `t.loss`.
pub async fn cross_entropy_total(rec: &mut Recording<'_>, t: &CrossEntropy<'_>) -> Result<()> {
    let gpu = &rec.gpu().clone();
    let r = t.rows()?;
    let kern = kernel(gpu, t).await?;
    let prm = params(&[r, t.pos as u32, 0, t.count(r).to_bits(), 0]);
    kern.dispatch(rec, "ce_sum", prm, 1).await
}

async fn kernel<'a>(gpu: &crate::gpu::Gpu, t: &CrossEntropy<'a>) -> Result<Kernel<'a>> {
    let storage = [t.logits, t.tokens, t.dlogits, t.row_loss, t.loss]
        .map(|t| t.view)
        .to_vec();
    Kernel::new(gpu, "cross_entropy", "", CE_WGSL, storage, &[]).await
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
    use super::super::test_data::{record, t, values};
    use super::*;
    use crate::gpu::Gpu;
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
                let ce = CrossEntropy {
                    logits: t(&bl, "logits", &[rows, vocab]),
                    tokens: t(&bt, "tokens", &[rows]),
                    dlogits: t(&dl, "dlogits", &[rows, vocab]),
                    row_loss: t(&rl, "row_loss", &[rows]),
                    loss: t(&loss, "loss", &[1]),
                    pos,
                };
                cross_entropy(rec, &ce).await
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
    crate::gpu_rows_test!(gpu_cross_entropy_matches_reference, matches_reference);

    /// Positions taken in chunks of awkward sizes (a window split across two) give the loss and
    /// gradient of all at once.
    async fn chunks_match_reference(gpu: &Gpu) {
        let (batch, pos, vocab) = (3, 5, 301);
        let rows = batch * pos;
        let logits: Vec<f32> = values(2, rows * vocab).iter().map(|v| 3.0 * v).collect();
        let tokens: Vec<u32> = (0..rows).map(|i| (i * 7 % vocab) as u32).collect();
        let bt = gpu.storage_from("tokens", &tokens).unwrap();
        let rl = gpu.storage_zeroed::<f32>("row_loss", rows).unwrap();
        let loss = gpu.storage_zeroed::<f32>("loss", 1).unwrap();
        let chunks = [(0, 4), (4, 7), (11, 4)];
        let mut parts = vec![];
        for &(first, n) in &chunks {
            let l = &logits[first * vocab..(first + n) * vocab];
            let bl = gpu.storage_from("logits", l).unwrap();
            let dl = gpu.storage_zeroed::<f32>("dlogits", n * vocab).unwrap();
            parts.push((bl, dl));
        }
        let ce: Vec<CrossEntropy> = parts
            .iter()
            .zip(&chunks)
            .map(|((bl, dl), &(_, n))| CrossEntropy {
                logits: t(bl, "logits", &[n, vocab]),
                tokens: t(&bt, "tokens", &[rows]),
                dlogits: t(dl, "dlogits", &[n, vocab]),
                row_loss: t(&rl, "row_loss", &[rows]),
                loss: t(&loss, "loss", &[1]),
                pos,
            })
            .collect();
        record(gpu, async |rec: &mut Recording<'_>| {
            for (&(first, _), ce) in chunks.iter().zip(&ce) {
                cross_entropy_rows(rec, ce, first).await?;
            }
            cross_entropy_total(rec, &ce[0]).await
        })
        .await;
        let (want_loss, want_grad) = cross_entropy_ref(&logits, &tokens, pos, vocab);
        let got: Vec<f32> = gpu.read(&loss, 1).await.unwrap();
        assert_close("chunked loss", &got, &[want_loss], 1e-5, 1e-5);
        let mut grad = vec![];
        for (&(_, n), (_, dl)) in chunks.iter().zip(&parts) {
            grad.extend(gpu.read::<f32>(dl, n * vocab).await.unwrap());
        }
        assert_close("chunked gradient", &grad, &want_grad, 1e-6, 1e-4);
        // A chunk past the batch is refused by name.
        let mut recorder = crate::gpu::Recorder::new(gpu);
        let mut rec = recorder.begin();
        let err = cross_entropy_rows(&mut rec, &ce[0], 12).await.unwrap_err();
        assert!(err.to_string().contains("chunk"), "{err}");
    }
    crate::gpu_rows_test!(
        gpu_cross_entropy_chunks_match_reference,
        chunks_match_reference
    );
}
