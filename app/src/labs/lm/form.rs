//! The Transformer lab's controls as text, and their home in the URL hash.
//!
//! The form holds the experiment as the share link spells it (`model.act_fn`,
//! `tokenizer.vocab_size`, `vs`, …): one control per field of the config, headings and hints
//! from the engine's field table, and [`LmForm::parse`] is the link's own decoder and
//! validation ([`LmExperiment::from_fields`]).

use crate::components::controls::{Input, TextForm};
use crate::components::link_sync::{read_link, FromHash};
use mechlab_engine::experiment::fields;
use mechlab_engine::experiment::link;
use mechlab_engine::experiment::preset::LabPreset;
use mechlab_engine::models::transformer::config::ACTIVATION_CHOICES;
use mechlab_engine::models::transformer::fields::LM_FIELDS;
use mechlab_engine::models::transformer::link::LmExperiment;
use mechlab_engine::models::transformer::lm::{LmConfig, LmPreset};
use mechlab_engine::models::transformer::TransformerConfig;
use mechlab_engine::EngineError;

/// How `key`'s control shows it, given its current text: as the field table says, and `vs`
/// (not a config field) as a menu of the activations a twin may have.
pub fn input(key: &str, value: &str) -> Input {
    if key != "vs" {
        return Input::of(fields::find(LM_FIELDS, key), value);
    }
    let twins = ACTIVATION_CHOICES
        .iter()
        .map(|&(v, l)| (v, format!("a {l} twin")));
    Input::Menu(
        std::iter::once(("none", "nothing: one model".to_string()))
            .chain(twins)
            .collect(),
    )
}

/// The heading and hint of `key`.
pub fn info(key: &str) -> (&'static str, &'static str) {
    if key == "vs" {
        return (
            "Train beside it",
            "a second model identical but for the MLP's activation, on the same batches",
        );
    }
    fields::find(LM_FIELDS, key).map_or(("", ""), |f| (f.label, f.hint))
}

/// Every control's text.
#[derive(Debug, Clone, PartialEq)]
pub struct LmForm {
    /// `(key, text)` per field: `vs` first, then [`LM_FIELDS`] order.
    pub fields: Vec<(String, String)>,
}

impl LmForm {
    /// The controls for an experiment.
    pub fn new(e: &LmExperiment) -> Self {
        let mut fields = vec![(
            "vs".to_string(),
            e.vs.map_or("none", |a| a.name()).to_string(),
        )];
        fields.extend(link::pairs(&e.run));
        Self {
            fields: ordered(fields),
        }
    }

    /// The experiment the controls describe, validated; the error names the first bad field.
    pub fn parse(&self) -> Result<LmExperiment, EngineError> {
        LmExperiment::from_fields(&self.pairs())
    }

    /// The controls with the model's shape set to `model`'s (an opened checkpoint's).
    pub fn with_model(&self, model: &TransformerConfig) -> Self {
        let run = LmConfig {
            model: TransformerConfig {
                d_vocab: 0,
                ..model.clone()
            },
            ..LmConfig::default()
        };
        let mut out = self.clone();
        for (k, v) in link::pairs(&run) {
            if k.starts_with("model.") {
                out.set_text(&k, v);
            }
        }
        out
    }
}

/// `vs` first, then fields in [`LM_FIELDS`] order (unknown ones last, as they came). The
/// vocabulary size is the tokenizer's to set, so it has no control.
fn ordered(mut fields: Vec<(String, String)>) -> Vec<(String, String)> {
    fields.retain(|(k, _)| k != "model.d_vocab");
    let rank = |k: &str| {
        if k == "vs" {
            return 0;
        }
        1 + LM_FIELDS
            .iter()
            .position(|f| f.key == k)
            .unwrap_or(LM_FIELDS.len())
    };
    fields.sort_by_key(|(k, _)| rank(k));
    fields
}

/// The preset an experiment is exactly, or `"custom"`.
pub fn preset_name(parsed: Option<&LmExperiment>) -> &'static str {
    let Some(e) = parsed else {
        return "custom";
    };
    LmPreset::name_where(|p| LmExperiment::preset(p) == *e)
}

/// The experiment in a hash: `solu-vs-gelu` when there is none; a link's bad fields replaced
/// and named ([`read_link`]).
pub fn from_hash(hash: &str) -> FromHash<LmExperiment> {
    let pairs = link::fragment_pairs(hash).unwrap_or_default();
    // Only the lab's name: the lab's default experiment.
    if pairs.iter().all(|(k, _)| *k == "v" || *k == "lab") {
        return FromHash {
            value: Some(LmExperiment::preset(LmPreset::SoluVsGelu)),
            note: None,
        };
    }
    read_link::<LmConfig, _>(hash, LmExperiment::decode, LmExperiment::encode)
}

impl TextForm for LmForm {
    type Config = LmConfig;

    fn fields(&self) -> &[(String, String)] {
        &self.fields
    }

    fn fields_mut(&mut self) -> &mut Vec<(String, String)> {
        &mut self.fields
    }

    fn reorder(&mut self) {
        self.fields = ordered(std::mem::take(&mut self.fields));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mechlab_engine::models::transformer::link::DEFAULT_BPE_VOCAB;
    use mechlab_engine::models::transformer::Activation;

    #[test]
    fn presets_round_trip_through_the_form_and_every_field_has_a_heading() {
        for &p in LmPreset::ALL {
            let e = LmExperiment::preset(p);
            let form = LmForm::new(&e);
            assert_eq!(form.parse().unwrap(), e, "{}", p.name());
            assert_eq!(preset_name(Some(&e)), p.name());
            for (k, _) in &form.fields {
                assert!(!info(k).0.is_empty(), "{k} has no heading");
            }
            assert_eq!(form.fields[0].0, "vs");
        }
    }

    #[test]
    fn the_tokenizer_kind_brings_its_vocabulary_and_bad_text_is_named() {
        let mut form = LmForm::new(&LmExperiment::default());
        assert!(form.text("tokenizer.vocab_size").is_none());
        form.set_text("tokenizer.kind", "bpe".into());
        assert_eq!(
            form.text("tokenizer.vocab_size"),
            Some(DEFAULT_BPE_VOCAB.to_string().as_str())
        );
        assert!(form.parse().is_ok());
        form.set_text("tokenizer.kind", "char".into());
        assert!(form.text("tokenizer.vocab_size").is_none());
        form.set_text("model.d_model", "abc".into());
        let err = form.parse().unwrap_err().to_string();
        assert!(err.contains("`model.d_model=abc`"), "{err}");
        form.set_text("model.d_model", "64".into());
        form.set_text("vs", "solu_ln".into());
        let err = form.parse().unwrap_err().to_string();
        assert!(err.contains("must differ"), "{err}");
        form.set_text("vs", "gelu".into());
        assert_eq!(form.parse().unwrap().vs, Some(Activation::Gelu));
    }

    #[test]
    fn an_opened_model_sets_the_shape_and_links_fall_back_with_a_message() {
        let form = LmForm::new(&LmExperiment::default());
        let model = TransformerConfig {
            n_layers: 2,
            d_model: 32,
            n_heads: 2,
            d_head: 16,
            d_mlp: 128,
            n_ctx: 32,
            d_vocab: 70,
            act_fn: Activation::Gelu,
            ..TransformerConfig::default()
        };
        let e = form.with_model(&model).parse().unwrap();
        assert_eq!(
            e.run.model,
            TransformerConfig {
                d_vocab: 0,
                ..model
            }
        );
        let h = from_hash("#v=1&lab=lm");
        assert_eq!(h.value, Some(LmExperiment::preset(LmPreset::SoluVsGelu)));
        assert_eq!(h.note, None);
        let h = from_hash("#v=1&lab=lm&model.n_layers=x&seed=3");
        assert!(h.note.unwrap().contains("`model.n_layers=x` was replaced"));
        assert_eq!(h.value.unwrap().run.seed, 3);
    }
}
