//! What the Transformer page shows of a model for a prompt: its tokens, every layer's attention
//! pattern (`blocks.{l}.attn.hook_pattern`) and the distribution of the next token. Computed by
//! the CPU reference forward pass from the parameters, so it reads the same for a model trained
//! on the GPU, on the CPU or imported from TransformerLens.

use super::cpu::forward;
use super::params::TransformerParams;
use crate::data::text::TextTokenizer;
use crate::error::{EngineError, Result};
use serde::{Deserialize, Serialize};

/// A model's view of a prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inspection {
    /// The text of each token the model saw (the prompt's last n_ctx tokens): data, to be
    /// rendered escaped.
    pub tokens: Vec<String>,
    /// Heads per layer.
    pub n_heads: u32,
    /// Per layer, `hook_pattern` `[n_heads, query, key]` over [`Inspection::tokens`].
    pub patterns: Vec<Vec<f32>>,
    /// The most likely next tokens and their probabilities, most likely first.
    pub next: Vec<(String, f32)>,
}

/// Runs `prompt` through the model: attention patterns of every layer and the `top` most likely
/// next tokens.
pub fn inspect(
    params: &TransformerParams,
    tokenizer: &TextTokenizer,
    prompt: &str,
    top: usize,
) -> Result<Inspection> {
    let ids = tokenizer.encode(prompt)?;
    if ids.is_empty() {
        return Err(EngineError::invalid(
            "prompt",
            "",
            "must hold at least one token",
        ));
    }
    let cfg = &params.cfg;
    let n = ids.len().min(cfg.n_ctx as usize);
    let ids = &ids[ids.len() - n..];
    let wanted = |name: &str| name.ends_with("attn.hook_pattern");
    let (logits, hooks) = forward(params, ids, 1, &wanted)?;
    let patterns = (0..cfg.n_layers)
        .map(|l| {
            let name = format!("blocks.{l}.attn.hook_pattern");
            hooks
                .get(&name)
                .map(|(_, v)| v.to_vec())
                .ok_or_else(|| EngineError::BadModel(format!("{name} was not captured")))
        })
        .collect::<Result<Vec<_>>>()?;
    let v = cfg.d_vocab as usize;
    let last = &logits[(n - 1) * v..n * v];
    let max = last.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f64> = last.iter().map(|&x| ((x - max) as f64).exp()).collect();
    let total: f64 = exp.iter().sum();
    let mut order: Vec<usize> = (0..v).collect();
    order.sort_by(|&a, &b| exp[b].total_cmp(&exp[a]));
    let next = order
        .into_iter()
        .take(top)
        .map(|t| (tokenizer.token_text(t as u32), (exp[t] / total) as f32))
        .collect();
    Ok(Inspection {
        tokens: ids.iter().map(|&t| tokenizer.token_text(t)).collect(),
        n_heads: cfg.n_heads,
        patterns,
        next,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::text::TokenizerKind;
    use crate::models::transformer::TransformerConfig;

    #[test]
    fn patterns_are_causal_rows_of_one_and_the_next_tokens_a_distribution() {
        let tok = TextTokenizer::train(TokenizerKind::Char, "abc <&>\"'").unwrap();
        let cfg = TransformerConfig {
            n_layers: 2,
            d_model: 16,
            n_heads: 2,
            d_head: 8,
            d_mlp: 32,
            n_ctx: 5,
            d_vocab: tok.vocab_size(),
            ..TransformerConfig::default()
        };
        let params = TransformerParams::init(&cfg, 3).unwrap();
        // Longer than n_ctx: the model sees the last five characters.
        let ins = inspect(&params, &tok, "abc<&>'\"", 4).unwrap();
        assert_eq!(ins.tokens, ["c", "<", "&", ">", "'", "\""][1..]);
        assert_eq!(ins.patterns.len(), 2);
        for p in &ins.patterns {
            assert_eq!(p.len(), 2 * 5 * 5);
            for (r, row) in p.chunks(5).enumerate() {
                let q = r % 5;
                assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
                assert!(row[q + 1..].iter().all(|&x| x == 0.0), "row {r}: {row:?}");
            }
        }
        assert_eq!(ins.next.len(), 4);
        assert!(ins.next.windows(2).all(|w| w[0].1 >= w[1].1));
        assert!(ins.next.iter().map(|n| n.1).sum::<f32>() <= 1.0 + 1e-6);
        assert!(inspect(&params, &tok, "", 4).is_err());
    }
}
