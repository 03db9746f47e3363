//! The unembedding and the loss on the GPU, taken a chunk of positions at a time: a large
//! vocabulary's logits for every position of a batch would pass a binding's limit (solu-1l's
//! 48262 tokens make 198 MB a 1024-token window, over WebGPU's default 128 MiB), and a training
//! step needs only the loss and its gradient from them. Each chunk's logits are made, turned
//! into that chunk's losses and gradient, and folded into `W_U`'s and `b_U`'s gradients and
//! `ln_final`'s, before the next chunk reuses their buffers.

use crate::error::Result;
use crate::gpu::{Arena, Gpu, Recording, View};
use crate::kernels::cross_entropy::{
    cross_entropy_rows, cross_entropy_total, CeShape, CrossEntropy,
};
use crate::kernels::linear::linear_backward;
use crate::kernels::matmul::{matmul, Matmul, MAX_TILE_ROWS};

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
    /// `ln_final.hook_normalized` `[rows, d_model]`.
    pub xf: View<'a>,
    /// The tokens `[rows]`.
    pub tokens: View<'a>,
    /// The gradient at `xf` (written) and the gradient arena, for a training step.
    pub backward: Option<(View<'a>, &'a Arena)>,
    /// The positions: rows of `pos`, the vocabulary.
    pub shape: CeShape,
    /// The model's width.
    pub d_model: usize,
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
    let CeShape { rows, vocab: v, .. } = t.shape;
    let d = t.d_model;
    let chunk = chunk_rows(&gpu, rows, d, v, t.chunk_bytes);
    let logits = gpu.storage_dirty::<f32>("logits", chunk * v)?;
    let dlogits = gpu.storage_dirty::<f32>("dlogits", chunk * v)?;
    let row_loss = gpu.storage_dirty::<f32>("row loss", rows)?;
    let loss = gpu.storage_dirty::<f32>("loss", 1)?;
    let w_u = params.view("unembed.W_U")?;
    // Every chunk binds the whole batch's tokens and losses and its own rows of logits.
    let whole = CrossEntropy {
        logits: (&logits).into(),
        tokens: t.tokens,
        dlogits: (&dlogits).into(),
        row_loss: (&row_loss).into(),
        loss: (&loss).into(),
    };
    let mut first = 0;
    while first < rows {
        let n = chunk.min(rows - first);
        let ce = CrossEntropy {
            logits: rows_of(whole.logits, 0, n, v),
            dlogits: rows_of(whole.dlogits, 0, n, v),
            ..whole
        };
        let xf = rows_of(t.xf, first, n, d);
        matmul(
            rec,
            &Matmul {
                bias: Some(params.view("unembed.b_U")?),
                ..Matmul::new(xf, w_u, ce.logits, (n, v, d))
            },
        )
        .await?;
        cross_entropy_rows(rec, &ce, t.shape, first, n).await?;
        if let Some((dxf, grads)) = t.backward {
            // The chunks' shares of W_U's and b_U's gradients add up; each chunk writes its
            // own rows of dxf.
            linear_backward(
                rec,
                grads,
                params,
                ("unembed.W_U", "unembed.b_U"),
                xf,
                ce.dlogits,
                rows_of(dxf, first, n, d),
                (n, d, v),
                first > 0,
            )
            .await?;
        }
        first += n;
    }
    cross_entropy_total(rec, &whole, t.shape).await?;
    Ok((loss, vec![logits, dlogits, row_loss]))
}

/// Rows `first .. first + n` of `x`, a `[rows, width]` tensor.
fn rows_of(x: View<'_>, first: usize, n: usize, width: usize) -> View<'_> {
    View {
        buffer: x.buffer,
        offset: x.offset + (first * width * 4) as u64,
        len: n * width,
    }
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
