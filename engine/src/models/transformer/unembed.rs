//! The unembedding and the loss on the GPU, taken a chunk of positions at a time: a large
//! vocabulary's logits for every position of a batch would pass a binding's limit (solu-1l's
//! 48262 tokens make 198 MB a 1024-token window, over WebGPU's default 128 MiB), and a training
//! step needs only the loss and its gradient from them. Each chunk's logits are made, turned
//! into that chunk's losses and gradient, and folded into `W_U`'s and `b_U`'s gradients and
//! `ln_final`'s, before the next chunk reuses their buffers.

use crate::error::Result;
use crate::gpu::{Arena, Gpu, Recording, Tensor, TensorBuf};
use crate::kernels::cross_entropy::{cross_entropy_rows, cross_entropy_total, CrossEntropy};
use crate::kernels::linear::{linear, linear_backward};
use crate::kernels::matmul::MAX_TILE_ROWS;

/// The largest chunk of logits (and of their gradient) by default: big enough that a chunk's
/// products keep a fast GPU busy, small enough for WebGPU's default binding limit with room.
pub const LOGIT_CHUNK_BYTES: u64 = 64 << 20;

/// Positions a chunk takes: all of them when their logits fit in `cap` bytes (and one binding),
/// else as many as fit, in whole output tiles where at least one fits, always in steps that keep
/// each chunk's rows of a `[rows, d_model]` tensor at a bindable offset.
pub fn chunk_rows(gpu: &Gpu, rows: usize, d_model: usize, vocab: usize, cap: u64) -> usize {
    let limit = cap
        .min(gpu.limits.max_storage_buffer_binding_size)
        .min(gpu.limits.max_buffer_size);
    let fit = (limit / (vocab as u64 * 4)) as usize;
    if rows <= fit {
        return rows;
    }
    let align = gpu.limits.min_storage_buffer_offset_alignment as usize;
    let step = align / gcd(align, 4 * d_model);
    // Whole output tiles where they fit: solu-1l's 347-row chunks (64 MiB of a 48262-token
    // vocabulary) padded each product's rows by a tenth; 256-row chunks pad none.
    let tiles = step / gcd(step, MAX_TILE_ROWS) * MAX_TILE_ROWS;
    if fit >= tiles {
        return fit / tiles * tiles;
    }
    // At least one step: a vocabulary too large for even that is refused by name when its
    // buffer is made.
    (fit / step * step).max(step)
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The loss of a batch from its final LayerNorm's output, and with `grads` its gradient.
pub struct UnembedLoss<'a> {
    /// `ln_final`'s output `[rows, d_model]`.
    pub xf: Tensor<'a>,
    /// The tokens `[rows]`.
    pub tokens: Tensor<'a>,
    /// The gradient at `xf` (written) and the gradient arena, for a training step.
    pub backward: Option<(Tensor<'a>, &'a Arena)>,
    /// Positions a row of the batch.
    pub pos: usize,
    /// The largest chunk of logits in bytes ([`LOGIT_CHUNK_BYTES`] but in tests).
    pub chunk_bytes: u64,
}

/// Records the loss into a new one-element buffer (the first returned); the rest are scratch
/// to give back to the pool once the recording is submitted.
pub async fn unembed_loss(
    rec: &mut Recording<'_>,
    params: &Arena,
    t: &UnembedLoss<'_>,
) -> Result<(wgpu::Buffer, Vec<wgpu::Buffer>)> {
    let gpu = rec.gpu().clone();
    let (rows, d) = t.xf.matrix();
    let (rows, d) = (rows as usize, d as usize);
    let v = params.tensor("unembed.W_U")?.matrix().1 as usize;
    let chunk = chunk_rows(&gpu, rows, d, v, t.chunk_bytes);
    let logits = TensorBuf::dirty(&gpu, "logits", &[chunk, v])?;
    let dlogits = TensorBuf::dirty(&gpu, "dlogits", &[chunk, v])?;
    let row_loss = TensorBuf::dirty(&gpu, "row loss", &[rows])?;
    let loss = TensorBuf::dirty(&gpu, "loss", &[1])?;
    {
        // Every chunk binds the whole batch's tokens and losses and its own rows of logits.
        let whole = CrossEntropy {
            logits: logits.t()?,
            tokens: t.tokens,
            dlogits: dlogits.t()?,
            row_loss: row_loss.t()?,
            loss: loss.t()?,
            pos: t.pos,
        };
        let mut first = 0;
        while first < rows {
            let n = chunk.min(rows - first) as u32;
            let ce = CrossEntropy {
                logits: whole.logits.rows(0, n)?,
                dlogits: whole.dlogits.rows(0, n)?,
                ..whole
            };
            let xf = t.xf.rows(first as u32, n)?;
            linear(rec, params, ("unembed.W_U", "unembed.b_U"), xf, ce.logits).await?;
            cross_entropy_rows(rec, &ce, first).await?;
            if let Some((dxf, grads)) = t.backward {
                // The chunks' shares of W_U's and b_U's gradients add up; each chunk writes
                // its own rows of dxf.
                linear_backward(
                    rec,
                    grads,
                    params,
                    ("unembed.W_U", "unembed.b_U"),
                    xf,
                    ce.dlogits,
                    dxf.rows(first as u32, n)?,
                    first > 0,
                )
                .await?;
            }
            first += n as usize;
        }
        cross_entropy_total(rec, &whole).await?;
    }
    let scratch = [logits, dlogits, row_loss].map(|b| b.buffer).to_vec();
    Ok((loss.buffer, scratch))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Chunks are whole 128-row tiles where one fits (solu-1l's 64 MiB chunks: 256 of 1024
    /// positions, not 347), else as many rows as fit; every chunk starts at a bindable offset.
    async fn chunks_fit_tiles_and_offsets(gpu: &Gpu) {
        let align = gpu.limits.min_storage_buffer_offset_alignment as usize;
        assert_eq!(chunk_rows(gpu, 1024, 512, 48262, LOGIT_CHUNK_BYTES), 256);
        assert_eq!(chunk_rows(gpu, 100, 512, 48262, LOGIT_CHUNK_BYTES), 100);
        // d_model 3 makes rows of 12 bytes: an aligned chunk is a multiple of align / 4 rows.
        // WebGPU's offset alignment is at most 256 bytes, so 300 rows of 12 bytes hold a tile.
        for (rows, d, vocab, cap, tiles) in [
            (1024, 512, 48262, LOGIT_CHUNK_BYTES, true),
            (5000, 3, 1000, 300 * 4000, true),
            (5000, 3, 1000, 100 * 4000, false),
            (5000, 64, 1000, 7 * 4000, false),
        ] {
            let chunk = chunk_rows(gpu, rows, d, vocab, cap);
            let what = format!("{rows} rows of {d} into {cap} bytes of {vocab}: {chunk}");
            let fit = cap as usize / (vocab * 4);
            assert!(chunk < rows && chunk <= fit, "{what}");
            assert_eq!(chunk * 4 * d % align, 0, "{what}: offset");
            assert_eq!(
                chunk.is_multiple_of(MAX_TILE_ROWS),
                tiles,
                "{what}: whole tiles"
            );
            assert!(chunk + MAX_TILE_ROWS.max(align) > fit, "{what}: too small");
        }
    }
    crate::gpu_test!(
        gpu_chunk_rows_tiles_and_offsets,
        chunks_fit_tiles_and_offsets
    );
}
