//! How the Transformer lab's run is spelled in links and config files: dotted keys for the
//! model and the tokenizer (`model.act_fn=gelu`, `tokenizer.kind=bpe&tokenizer.vocab_size=2048`),
//! the rest by name, through the one link codec ([`super::link`]).

use super::link::LinkConfig;
use crate::data::text::TokenizerKind;
use crate::error::{EngineError, Result};
use crate::models::transformer::fields::LM_FIELDS;
use crate::models::transformer::lm::LmConfig;
use crate::models::transformer::Activation;

/// A BPE vocabulary's size when a link names BPE without one.
pub const DEFAULT_BPE_VOCAB: u32 = 1024;

impl LinkConfig for LmConfig {
    const LAB: &'static str = "lm";
    const TITLE: &'static str = "Transformer";
    const WRITES_LAB: bool = true;
    const FIELDS: &'static [crate::experiment::fields::Field] = LM_FIELDS;

    fn decode_field(key: &str, text: &str) -> Option<Result<serde_json::Value>> {
        (key == "model.act_fn").then(|| {
            Activation::by_name(text)
                .map(|a| serde_json::Value::String(a.name().into()))
                .map_err(|_| {
                    EngineError::BadLink(format!(
                        "`{key}={text}`: the activation must be gelu, gelu_new or solu_ln"
                    ))
                })
        })
    }

    fn set_kind(&mut self, key: &str, kind: &str) -> Result<()> {
        match (key, kind) {
            ("tokenizer.kind", "char") => self.tokenizer = TokenizerKind::Char,
            ("tokenizer.kind", "bpe") => {
                self.tokenizer = TokenizerKind::Bpe {
                    vocab_size: DEFAULT_BPE_VOCAB,
                }
            }
            ("tokenizer.kind", other) => {
                return Err(EngineError::BadLink(format!(
                    "`tokenizer.kind={other}`: the tokenizer must be char or bpe"
                )))
            }
            _ => return Err(EngineError::BadLink(format!("unknown field `{key}`"))),
        }
        Ok(())
    }

    fn validate(&self) -> Result<()> {
        LmConfig::validate(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::link::{decode, from_json, LinkConfig};

    #[test]
    fn runs_round_trip_through_links_and_json() {
        let mut c = LmConfig::default();
        c.model.act_fn = Activation::Gelu;
        c.tokenizer = TokenizerKind::Bpe { vocab_size: 2048 };
        c.learning_rate = 0.0012;
        let link = c.to_link();
        assert!(link.starts_with("v=1&lab=lm&"), "{link}");
        assert!(
            link.contains("model.act_fn=gelu") && link.contains("tokenizer.kind=bpe"),
            "{link}"
        );
        assert_eq!(LmConfig::from_link(&link).unwrap(), c);
        let short = decode::<LmConfig>("v=1&lab=lm&tokenizer.kind=bpe&steps=7")
            .unwrap()
            .config;
        assert_eq!(
            short.tokenizer,
            TokenizerKind::Bpe {
                vocab_size: DEFAULT_BPE_VOCAB
            }
        );
        assert_eq!(short.steps, 7);
        let json = serde_json::json!({"model": {"act_fn": "gelu_new", "n_layers": 2}});
        let from_file: LmConfig = from_json(&json).unwrap();
        assert_eq!(from_file.model.n_layers, 2);
        assert_eq!(from_file.model.act_fn, Activation::GeluNew);
        let err = LmConfig::from_link("v=1&lab=lm&tokenizer.kind=words")
            .unwrap_err()
            .to_string();
        assert!(err.contains("char or bpe"), "{err}");
        let err = LmConfig::from_link("v=1&lab=lm&model.act_fn=relu")
            .unwrap_err()
            .to_string();
        assert!(err.contains("act_fn"), "{err}");
        let err = LmConfig::from_link("v=1&lab=lm&beta2=1")
            .unwrap_err()
            .to_string();
        assert!(err.contains("beta2"), "{err}");
    }
}
