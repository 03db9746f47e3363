//! The SAE lab's own kernels, built on the general ops of [`crate::kernels`]: the encoder,
//! decoder and their dense gradients as products ([`dense`]), BatchTopK ([`batch_topk`]),
//! products with sparse codes ([`sparse`]), the sparse weight gradients through per-latent
//! lists ([`transpose`]) and the shuffle pool's step ([`shuffle`]). Weights are latent-major as
//! in [`crate::models::sae::params`]; the conventions of [`crate::kernels`] hold here too.

pub mod batch_topk;
pub mod dense;
pub mod shuffle;
pub mod sparse;
pub mod transpose;

pub use crate::kernels::{matmul, topk_rows, topk_scratch_bytes, Matmul, Topk, MAX_K};
pub use batch_topk::{batch_topk, batch_topk_scratch_bytes, BatchTopk};
pub use dense::{
    decode_dense, encode, latent_grad_dense, weight_grad_dense, DecodeDense, Encode,
    LatentGradDense, WeightGradDense,
};
pub use shuffle::{gather_scatter, GatherScatter};
pub use sparse::{decode_sparse, latent_grad_sparse, Code, DecodeSparse, LatentGradSparse};
pub use transpose::{
    weight_grad_sparse, weight_grad_sparse_scratch_bytes, EncoderGrad, WeightGradSparse,
};

pub use crate::kernels::NO_LATENT;

/// Words of the row index of a code with `entries` entries over `batch` rows: the row of each
/// entry, then each row's first entry and the total (`batch + 1` offsets). BatchTopK writes one,
/// since its rows hold different numbers of entries; the sparse kernels given one read rows from
/// it instead of taking `k` entries per row (`entries` is still `batch · k`, k being the mean).
pub fn code_rows_len(batch: usize, entries: usize) -> usize {
    entries + batch + 1
}
