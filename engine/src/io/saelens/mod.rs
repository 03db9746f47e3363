//! Export and import of an SAE in SAELens's on-disk layout: a directory holding `cfg.json` and
//! `sae_weights.safetensors`, what `SAE.load_from_disk` reads and `SAE.save_model` writes.
//!
//! The format followed is SAELens 6.18.0 (jbloomAus/SAELens at commit 91ca16c, October 2025:
//! `sae_lens/constants.py`, `saes/sae.py`, `saes/{standard,topk,gated,jumprelu,batchtopk}_sae.py`
//! and `loading/pretrained_sae_loaders.py`). Only the format is matched; no code is shared.
//!
//! `cfg.json` (an inference config, `SAEConfig.to_dict()`): `architecture`, `d_in`, `d_sae`,
//! `dtype`, `device`, `apply_b_dec_to_input`, `normalize_activations`, `reshape_activations`,
//! `metadata` (free-form; `sae_lens_version` decides whether SAELens treats the file as a 6.x
//! config, `hook_name` names the hook point), and per architecture `k` and
//! `rescale_acts_by_decoder_norm` for `topk`.
//!
//! Tensors, SAELens's layout (`W_enc` is `[d_in, d_sae]`; the engine's is `[d_sae, d_in]`):
//!
//! | engine       | SAELens      | tensors                                                   |
//! |--------------|--------------|-----------------------------------------------------------|
//! | `relu_l1`    | `standard`   | `W_enc`, `b_enc`, `W_dec`, `b_dec`                        |
//! | `topk`       | `topk`       | `W_enc`, `b_enc`, `W_dec`, `b_dec` (+ `k` in cfg.json)    |
//! | `gated`      | `gated`      | `W_enc` (the shared `W_gate`), `b_gate`, `r_mag`, `b_mag`, `W_dec`, `b_dec` (no `b_enc`) |
//! | `jumprelu`   | `jumprelu`   | `W_enc`, `b_enc`, `W_dec`, `b_dec`, `threshold` (θ itself, not its log) |
//! | `batch_topk` | `jumprelu`   | as JumpReLU, `threshold` = the batch threshold for every latent |
//!
//! BatchTopK goes out as SAELens itself saves a trained BatchTopK for inference: a JumpReLU
//! whose per-latent threshold is the learned global one. SAELens's JumpReLU computes
//! `ReLU(pre) · 1[pre > θ]`, the engine's BatchTopK inference `pre · 1[pre > θ]`: the same for
//! the θ ≥ 0 that training produces (export refuses a negative one). SAELens has no place for k
//! in that config, so it goes into `metadata.mechlab_k`, with `metadata.mechlab_architecture`;
//! import reads them back, so the engine's own files come back as BatchTopK, while a JumpReLU
//! from elsewhere stays a JumpReLU. Import also reads SAELens's training checkpoints of
//! architecture `batchtopk` (`topk_threshold`, a scalar), folding decoder norms as SAELens does
//! when it saves one for inference.
//!
//! Round trips give back the same parameters bit for bit, except JumpReLU's log thresholds:
//! SAELens stores `θ = exp(log θ)` in f32, which loses the low bits of a log threshold near 0.
//! Import picks the log whose `exp` is exactly the stored θ, so the threshold the engine uses at
//! inference is unchanged, logs of magnitude ≥ 2 come back exactly, and export after import
//! writes the same file again.

use crate::error::{EngineError, Result};
use crate::models::sae::config::Architecture;

/// SAELens's name for the config file.
pub const CFG_FILENAME: &str = "cfg.json";
/// SAELens's name for the weights file.
pub const WEIGHTS_FILENAME: &str = "sae_weights.safetensors";
/// The SAELens version whose format this module writes (and records in `metadata`, which
/// SAELens reads to tell 6.x configs from older ones).
pub const SAELENS_VERSION: &str = "6.18.0";
/// The SAELens architectures import understands.
pub const SAELENS_ARCHITECTURES: [&str; 5] = ["standard", "topk", "gated", "jumprelu", "batchtopk"];

/// SAELens's default k when a `topk` config has none (`TopKSAEConfig.k`).
const SAELENS_DEFAULT_K: u64 = 100;

/// The hook name written into cfg.json for sources that are not inside a language model.
pub const SOURCE_HOOK_NAME: &str = "mechlab.source";

/// An SAE in SAELens's layout, in memory: the two files of its directory.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SaeLensFiles {
    /// The text of `cfg.json`.
    pub cfg_json: String,
    /// The bytes of `sae_weights.safetensors`.
    pub weights: Vec<u8>,
}

impl SaeLensFiles {
    /// The SAE's directory as one zip archive, `folder/cfg.json` and
    /// `folder/sae_weights.safetensors`: unzipped, `folder` is what SAELens's
    /// `SAE.load_from_disk` opens.
    pub fn to_zip(&self, folder: &str) -> Result<Vec<u8>> {
        super::archive::write_stored([
            (format!("{folder}/{CFG_FILENAME}"), self.cfg_json.as_bytes()),
            (
                format!("{folder}/{WEIGHTS_FILENAME}"),
                self.weights.as_slice(),
            ),
        ])
        .map_err(|e| bad(format!("cannot write the archive: {e}")))
    }
}

/// What import learned from `cfg.json`, besides the parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedCfg {
    /// The engine's architecture name (one of [`super::config::ARCHITECTURE_NAMES`]).
    pub architecture: String,
    /// The architecture as the file named it.
    pub saelens_architecture: String,
    /// k, for the TopK family.
    pub k: Option<u32>,
    /// Input dimension.
    pub d_in: usize,
    /// Number of latents.
    pub d_sae: usize,
    /// The hook point the SAE was trained on, when the file names one.
    pub hook_name: Option<String>,
    /// The file's `normalize_activations`: `none`, or `expected_average_only_in`, which SAELens
    /// does not apply at inference either, so inputs are expected already scaled.
    pub normalize_activations: String,
    /// The SAELens version that wrote the file, when it says.
    pub sae_lens_version: Option<String>,
    /// Transformations import made to fit the engine's parameterisation, for the UI to show.
    pub notes: Vec<String>,
}

impl ImportedCfg {
    /// The engine architecture with its default hyper-parameters and the imported k.
    pub fn to_architecture(&self) -> Result<Architecture> {
        let mut a = Architecture::by_name(&self.architecture)?;
        if let (Some(k_in), Architecture::TopK { k, .. } | Architecture::BatchTopK { k, .. }) =
            (self.k, &mut a)
        {
            *k = k_in;
        }
        Ok(a)
    }
}

fn bad(msg: impl Into<String>) -> EngineError {
    EngineError::BadImport(msg.into())
}

/// `[rows, cols]` row-major to `[cols, rows]` row-major.
pub(crate) fn transpose(a: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0f32; a.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = a[r * cols + c];
        }
    }
    t
}

mod export;
#[cfg(not(target_arch = "wasm32"))]
mod files;
mod import;
#[cfg(test)]
mod tests;

pub use export::{ground_truth_safetensors, to_saelens};
#[cfg(not(target_arch = "wasm32"))]
pub use files::{read_dir, write_dir};
pub use import::from_saelens;
