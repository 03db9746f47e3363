//! A transformer's shape and activation, with the names and defaults of TransformerLens's
//! `HookedTransformerConfig` (`n_layers`, `d_model`, `n_heads`, `d_head`, `d_mlp`, `n_ctx`,
//! `d_vocab`, `act_fn`, `attn_only`), validated before anything is allocated.

use crate::error::{EngineError, Result};
use serde::{Deserialize, Serialize};

/// The MLP's activation, as TransformerLens spells `act_fn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// `x · Φ(x)` with the exact normal CDF (erf), PyTorch's `F.gelu`.
    Gelu,
    /// GPT-2's tanh approximation, `0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))`.
    GeluNew,
    /// SoLU followed by a LayerNorm over d_mlp (Elhage et al. 2022): `hook_mid` = `x ·
    /// softmax(x)`, `hook_post` = LN(`hook_mid`) with its own weight and bias.
    SoluLn,
}

/// Every activation as TransformerLens names it (`act_fn`) and as menus label it, in
/// [`Activation::ALL`]'s order: the one list the field table, the page's menus and every
/// message take them from.
pub const ACTIVATION_CHOICES: &[(&str, &str)] = &[
    ("gelu", "GeLU (exact)"),
    ("gelu_new", "GeLU (tanh)"),
    ("solu_ln", "SoLU + LayerNorm"),
];

impl Activation {
    /// Every activation, in the order menus list them.
    pub const ALL: [Activation; 3] = [Activation::Gelu, Activation::GeluNew, Activation::SoluLn];

    /// The name TransformerLens gives it (`act_fn`).
    pub fn name(self) -> &'static str {
        ACTIVATION_CHOICES[self as usize].0
    }

    /// The activation called `name`; the error lists those there are.
    pub fn by_name(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.name() == name)
            .ok_or_else(|| EngineError::invalid("act_fn", name, format!("must be {}", names())))
    }
}

/// The activations' names as a sentence lists them.
pub fn names() -> String {
    crate::experiment::fields::one_of(ACTIVATION_CHOICES)
}

/// The largest sizes a config may ask for before any device limit is consulted.
pub const MAX_LAYERS: u32 = 48;
/// The widest residual stream accepted.
pub const MAX_D_MODEL: u32 = 4096;
/// The longest context accepted.
pub const MAX_CTX: u32 = 4096;
/// The largest vocabulary accepted.
pub const MAX_VOCAB: u32 = 262_144;

/// LayerNorm's ε, TransformerLens's default `eps`.
pub use crate::kernels::layernorm::LN_EPS;

/// A transformer's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TransformerConfig {
    /// Blocks.
    pub n_layers: u32,
    /// Width of the residual stream.
    pub d_model: u32,
    /// Attention heads per layer.
    pub n_heads: u32,
    /// Width of each head's queries, keys and values.
    pub d_head: u32,
    /// Neurons per MLP.
    pub d_mlp: u32,
    /// Positions in the context.
    pub n_ctx: u32,
    /// Tokens in the vocabulary.
    pub d_vocab: u32,
    /// The MLP's activation.
    pub act_fn: Activation,
    /// Attention only: blocks without an MLP (and without ln2).
    pub attn_only: bool,
}

impl Default for TransformerConfig {
    /// A one-layer SoLU model small enough to train in a tab in a minute.
    fn default() -> Self {
        Self {
            n_layers: 1,
            d_model: 128,
            n_heads: 4,
            d_head: 32,
            d_mlp: 512,
            n_ctx: 128,
            d_vocab: 96,
            act_fn: Activation::SoluLn,
            attn_only: false,
        }
    }
}

impl TransformerConfig {
    /// Every check before anything is allocated; errors name the field.
    pub fn validate(&self) -> Result<()> {
        let within = |field: &'static str, v: u32, max: u32| {
            if v == 0 || v > max {
                Err(EngineError::invalid(
                    field,
                    v,
                    format!("must be between 1 and {max}"),
                ))
            } else {
                Ok(())
            }
        };
        within("n_layers", self.n_layers, MAX_LAYERS)?;
        within("d_model", self.d_model, MAX_D_MODEL)?;
        within("n_heads", self.n_heads, MAX_D_MODEL)?;
        within("d_head", self.d_head, MAX_D_MODEL)?;
        within("n_ctx", self.n_ctx, MAX_CTX)?;
        within("d_vocab", self.d_vocab, MAX_VOCAB)?;
        if !self.attn_only {
            within("d_mlp", self.d_mlp, 16 * MAX_D_MODEL)?;
        }
        Ok(())
    }

    /// Parameters the model has (the count TransformerLens reports as `n_params` plus
    /// embeddings, biases and LayerNorms).
    pub fn parameter_count(&self) -> u64 {
        super::params::shapes(self)
            .iter()
            .map(|(_, s)| s.iter().product::<usize>() as u64)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activations_have_transformer_lens_names() {
        for a in Activation::ALL {
            assert_eq!(Activation::by_name(a.name()).unwrap(), a);
            let json = serde_json::to_string(&a).unwrap();
            assert_eq!(json, format!("\"{}\"", a.name()));
        }
        let err = Activation::by_name("relu").unwrap_err().to_string();
        assert!(err.contains("act_fn = relu"), "{err}");
        assert!(err.contains("must be gelu, gelu_new or solu_ln"), "{err}");
    }

    #[test]
    fn bad_sizes_are_named() {
        let mut c = TransformerConfig::default();
        assert!(c.validate().is_ok());
        c.n_heads = 0;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("n_heads = 0"));
        c.n_heads = 4;
        c.d_mlp = 0;
        assert!(c.validate().unwrap_err().to_string().contains("d_mlp = 0"));
        c.attn_only = true;
        assert!(c.validate().is_ok());
    }
}
