//! A transformer's parameters by their TransformerLens names and shapes (`embed.W_E`
//! [d_vocab, d_model], `blocks.0.attn.W_Q` [n_heads, d_model, d_head], …), in the order
//! TransformerLens's `named_parameters()` lists them, with its initialisation and the loading of
//! a TransformerLens state dict from safetensors.

use super::config::{Activation, TransformerConfig};
use crate::error::{EngineError, Result};
use crate::io::safetensors::to_f32;
use crate::rng::{fold_seed, rng_normal};
use safetensors::SafeTensors;

/// Every parameter's name and shape for `cfg`, in TransformerLens's order.
pub fn shapes(cfg: &TransformerConfig) -> Vec<(String, Vec<usize>)> {
    let (d, h, dh, m) = (
        cfg.d_model as usize,
        cfg.n_heads as usize,
        cfg.d_head as usize,
        cfg.d_mlp as usize,
    );
    let mut out: Vec<(String, Vec<usize>)> = vec![
        ("embed.W_E".into(), vec![cfg.d_vocab as usize, d]),
        ("pos_embed.W_pos".into(), vec![cfg.n_ctx as usize, d]),
    ];
    for l in 0..cfg.n_layers {
        let b = |n: &str| format!("blocks.{l}.{n}");
        out.push((b("ln1.w"), vec![d]));
        out.push((b("ln1.b"), vec![d]));
        if !cfg.attn_only {
            out.push((b("ln2.w"), vec![d]));
            out.push((b("ln2.b"), vec![d]));
        }
        // TransformerLens registers the query and output weights first, then keys and values.
        out.push((b("attn.W_Q"), vec![h, d, dh]));
        out.push((b("attn.W_O"), vec![h, dh, d]));
        out.push((b("attn.b_Q"), vec![h, dh]));
        out.push((b("attn.b_O"), vec![d]));
        out.push((b("attn.W_K"), vec![h, d, dh]));
        out.push((b("attn.W_V"), vec![h, d, dh]));
        out.push((b("attn.b_K"), vec![h, dh]));
        out.push((b("attn.b_V"), vec![h, dh]));
        if !cfg.attn_only {
            out.push((b("mlp.W_in"), vec![d, m]));
            out.push((b("mlp.b_in"), vec![m]));
            out.push((b("mlp.W_out"), vec![m, d]));
            out.push((b("mlp.b_out"), vec![d]));
            if cfg.act_fn == Activation::SoluLn {
                out.push((b("mlp.ln.w"), vec![m]));
                out.push((b("mlp.ln.b"), vec![m]));
            }
        }
    }
    out.push(("ln_final.w".into(), vec![d]));
    out.push(("ln_final.b".into(), vec![d]));
    out.push(("unembed.W_U".into(), vec![d, cfg.d_vocab as usize]));
    out.push(("unembed.b_U".into(), vec![cfg.d_vocab as usize]));
    out
}

/// One named tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Its TransformerLens name.
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its values, row-major.
    pub values: Vec<f32>,
}

/// A model's parameters on the host, in [`shapes`] order.
#[derive(Debug, Clone, PartialEq)]
pub struct TransformerParams {
    /// The config they belong to.
    pub cfg: TransformerConfig,
    /// Every tensor, in [`shapes`] order.
    pub tensors: Vec<Tensor>,
}

/// Buffers TransformerLens keeps in a state dict beside the parameters (the causal mask, the
/// masked score); a loaded state dict may hold them, and they are not parameters.
fn is_buffer(name: &str) -> bool {
    name.ends_with(".mask") || name.ends_with(".IGNORE")
}

impl TransformerParams {
    /// TransformerLens's initialisation (`init_mode="gpt2"`): every weight matrix N(0, σ²) with
    /// σ = 0.8 / √d_model, biases 0, LayerNorm weights 1 and biases 0; drawn from `seed`.
    pub fn init(cfg: &TransformerConfig, seed: u64) -> Result<Self> {
        cfg.validate()?;
        let std = 0.8 / (cfg.d_model as f32).sqrt();
        let seed = fold_seed(seed) ^ 0x7f4a_0001;
        let tensors = shapes(cfg)
            .into_iter()
            .enumerate()
            .map(|(t, (name, shape))| {
                let n: usize = shape.iter().product();
                let last = name.rsplit('.').next().unwrap_or("");
                let values = if last.starts_with("W_") {
                    (0..n)
                        .map(|i| std * rng_normal(seed, t as u32, i as u32))
                        .collect()
                } else if last == "w" {
                    vec![1.0; n]
                } else {
                    vec![0.0; n]
                };
                Tensor {
                    name,
                    shape,
                    values,
                }
            })
            .collect();
        Ok(Self {
            cfg: cfg.clone(),
            tensors,
        })
    }

    /// The tensor called `name`; the error names it.
    pub fn get(&self, name: &str) -> Result<&[f32]> {
        self.tensors
            .iter()
            .find(|t| t.name == name)
            .map(|t| t.values.as_slice())
            .ok_or_else(|| EngineError::invalid("tensor", name, "is not in the model"))
    }

    /// Parameters from a TransformerLens state dict saved as safetensors (`model.safetensors`):
    /// every parameter `cfg` has must be there with its shape, in any float type PyTorch saves;
    /// TransformerLens's buffers are skipped, and any other tensor is refused by name, as is a
    /// missing one or a shape that differs.
    pub fn from_safetensors(cfg: &TransformerConfig, bytes: &[u8]) -> Result<Self> {
        cfg.validate()?;
        let bad = |m: String| EngineError::BadModel(m);
        let st = SafeTensors::deserialize(bytes)
            .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
        let want = shapes(cfg);
        for name in st.names() {
            if !is_buffer(name) && !want.iter().any(|(n, _)| n == name) {
                return Err(bad(format!(
                    "tensor \"{name}\" is not a parameter of this model ({} layers, act_fn {}{})",
                    cfg.n_layers,
                    cfg.act_fn.name(),
                    if cfg.attn_only {
                        ", attention only"
                    } else {
                        ""
                    }
                )));
            }
        }
        let tensors = want
            .into_iter()
            .map(|(name, shape)| {
                let t = st
                    .tensor(&name)
                    .map_err(|_| bad(format!("tensor \"{name}\" is missing")))?;
                if t.shape() != shape.as_slice() {
                    return Err(bad(format!(
                        "tensor \"{name}\" has shape {:?}; this model's is {shape:?}",
                        t.shape()
                    )));
                }
                let values = to_f32(&t, &name, bad)?;
                Ok(Tensor {
                    name,
                    shape,
                    values,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            cfg: cfg.clone(),
            tensors,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_shapes_follow_transformer_lens() {
        let cfg = TransformerConfig {
            n_layers: 2,
            ..TransformerConfig::default()
        };
        let s = shapes(&cfg);
        let find = |n: &str| s.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        assert_eq!(find("embed.W_E"), Some(vec![96, 128]));
        assert_eq!(find("blocks.1.attn.W_Q"), Some(vec![4, 128, 32]));
        assert_eq!(find("blocks.1.attn.W_O"), Some(vec![4, 32, 128]));
        assert_eq!(find("blocks.0.mlp.ln.w"), Some(vec![512]));
        assert_eq!(find("unembed.W_U"), Some(vec![128, 96]));
        let gelu = TransformerConfig {
            act_fn: Activation::Gelu,
            ..cfg.clone()
        };
        assert!(!shapes(&gelu).iter().any(|(n, _)| n.contains("mlp.ln")));
        let attn = TransformerConfig {
            attn_only: true,
            ..cfg
        };
        assert!(!shapes(&attn)
            .iter()
            .any(|(n, _)| n.contains("mlp") || n.contains("ln2")));
    }

    #[test]
    fn init_is_seeded_with_unit_layer_norms() {
        let cfg = TransformerConfig::default();
        let a = TransformerParams::init(&cfg, 1).unwrap();
        assert_eq!(a, TransformerParams::init(&cfg, 1).unwrap());
        assert_ne!(a, TransformerParams::init(&cfg, 2).unwrap());
        assert!(a.get("ln_final.w").unwrap().iter().all(|&w| w == 1.0));
        assert!(a
            .get("blocks.0.attn.b_Q")
            .unwrap()
            .iter()
            .all(|&b| b == 0.0));
        let w = a.get("blocks.0.mlp.W_in").unwrap();
        let var = w.iter().map(|x| x * x).sum::<f32>() / w.len() as f32;
        let want = 0.64 / 128.0;
        assert!((var / want - 1.0).abs() < 0.05, "{var} vs {want}");
        assert_eq!(
            cfg.parameter_count(),
            a.tensors.iter().map(|t| t.values.len() as u64).sum::<u64>()
        );
    }
}
