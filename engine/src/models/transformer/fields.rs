//! The Transformer lab's config fields: link key, the name errors use, label, hint and range,
//! in the order the page shows them (see [`crate::experiment::fields`]).

use super::config::ACTIVATION_CHOICES;
use super::config::{MAX_CTX, MAX_D_MODEL, MAX_LAYERS};
use crate::data::text::tokenizer::BPE_VOCAB;
use crate::data::text::TOKENIZER_CHOICES;
use crate::experiment::fields::{Field, Range};

const fn whole(
    key: &'static str,
    name: &'static str,
    label: &'static str,
    hint: &'static str,
    min: u64,
    max: u64,
) -> Field {
    Field {
        key,
        name,
        label,
        hint,
        range: Range::Whole { min, max },
    }
}

const fn real(
    key: &'static str,
    name: &'static str,
    label: &'static str,
    hint: &'static str,
    range: Range,
) -> Field {
    Field {
        key,
        name,
        label,
        hint,
        range,
    }
}

/// Every field, in the page's order.
pub const LM_FIELDS: &[Field] = &[
    real(
        "tokenizer.kind",
        "kind",
        "Tokenizer",
        "how text becomes tokens",
        Range::Choice(TOKENIZER_CHOICES),
    ),
    whole(
        "tokenizer.vocab_size",
        "vocab_size",
        "Vocabulary",
        "BPE tokens, learned on the training text",
        BPE_VOCAB.0 as u64,
        BPE_VOCAB.1 as u64,
    ),
    whole(
        "model.n_layers",
        "n_layers",
        "Layers",
        "transformer blocks",
        1,
        MAX_LAYERS as u64,
    ),
    whole(
        "model.d_model",
        "d_model",
        "d_model",
        "width of the residual stream",
        1,
        MAX_D_MODEL as u64,
    ),
    whole(
        "model.n_heads",
        "n_heads",
        "Heads",
        "attention heads per layer",
        1,
        MAX_D_MODEL as u64,
    ),
    whole(
        "model.d_head",
        "d_head",
        "d_head",
        "width of each head",
        1,
        MAX_D_MODEL as u64,
    ),
    whole(
        "model.d_mlp",
        "d_mlp",
        "d_mlp",
        "neurons per MLP",
        1,
        16 * MAX_D_MODEL as u64,
    ),
    whole(
        "model.n_ctx",
        "n_ctx",
        "Context",
        "tokens per window",
        1,
        MAX_CTX as u64,
    ),
    real(
        "model.act_fn",
        "act_fn",
        "Activation",
        "the MLP's nonlinearity",
        Range::Choice(ACTIVATION_CHOICES),
    ),
    real(
        "model.attn_only",
        "attn_only",
        "Attention only",
        "blocks without MLPs",
        Range::Bool,
    ),
    whole(
        "batch_size",
        "batch_size",
        "Batch",
        "windows per step",
        1,
        u32::MAX as u64,
    ),
    whole(
        "steps",
        "steps",
        "Steps",
        "optimiser steps",
        1,
        u32::MAX as u64,
    ),
    real(
        "learning_rate",
        "learning_rate",
        "Learning rate",
        "peak rate after warm-up",
        Range::Positive,
    ),
    real(
        "weight_decay",
        "weight_decay",
        "Weight decay",
        "AdamW's decoupled decay",
        Range::Fraction,
    ),
    real(
        "beta1",
        "beta1",
        "β₁",
        "Adam's first-moment decay",
        Range::Fraction,
    ),
    real(
        "beta2",
        "beta2",
        "β₂",
        "Adam's second-moment decay",
        Range::Fraction,
    ),
    whole(
        "warmup_steps",
        "warmup_steps",
        "Warm-up",
        "steps of linear warm-up",
        0,
        u32::MAX as u64,
    ),
    real(
        "final_lr_fraction",
        "final_lr_fraction",
        "Final rate",
        "the cosine decay's floor, as a fraction of the peak",
        Range::Fraction,
    ),
    real(
        "max_grad_norm",
        "max_grad_norm",
        "Clip norm",
        "global gradient-norm limit (0: none)",
        Range::NonNegative,
    ),
    whole(
        "eval_windows",
        "eval_windows",
        "Eval windows",
        "held-out windows per validation loss",
        1,
        u32::MAX as u64,
    ),
    whole(
        "seed",
        "seed",
        "Seed",
        "initialisation and batch order",
        0,
        u64::MAX,
    ),
];
