//! The Superposition config as the controls edit it, and its home in the URL hash.
//!
//! The controls hold text, not numbers, so that a half-typed or wrong value stays on screen with a
//! message instead of snapping back; [`Form::parse`] turns the text into a validated config.

use crate::components::link_sync::{read_link, FromHash};
use crate::url;
use mechlab_engine::experiment::fields::Field;
use mechlab_engine::experiment::link::{self, LinkConfig};
use mechlab_engine::experiment::preset::LabPreset;
use mechlab_engine::models::toy::config::{fields, Preset, SuperpositionConfig};
use mechlab_engine::EngineError;

/// Every control's current text (and the one checkbox).
#[derive(Debug, Clone, PartialEq)]
pub struct Form {
    /// `n_features`.
    pub n_features: String,
    /// `n_hidden`.
    pub n_hidden: String,
    /// ReLU output (unchecked: the linear model).
    pub relu: bool,
    /// `importance_decay`.
    pub importance_decay: String,
    /// `feature_probability` in the link's axis syntax.
    pub feature_probability: String,
    /// `relative_importance` in the link's axis syntax; empty for none.
    pub relative_importance: String,
    /// `batch_size`.
    pub batch_size: String,
    /// `steps`.
    pub steps: String,
    /// `learning_rate`.
    pub learning_rate: String,
    /// `seed`.
    pub seed: String,
}

impl Form {
    /// The controls' text for a config, spelled exactly as the share link spells it.
    pub fn from_config(c: &SuperpositionConfig) -> Self {
        // The link codec owns every field's spelling (the axis syntax above all).
        let pairs = link::pairs(c);
        let text = |f: Field| {
            pairs
                .iter()
                .find(|(k, _)| k == f.key)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        Self {
            n_features: text(fields::N_FEATURES),
            n_hidden: text(fields::N_HIDDEN),
            relu: c.relu,
            importance_decay: text(fields::IMPORTANCE_DECAY),
            feature_probability: text(fields::FEATURE_PROBABILITY),
            relative_importance: text(fields::RELATIVE_IMPORTANCE),
            batch_size: text(fields::BATCH_SIZE),
            steps: text(fields::STEPS),
            learning_rate: text(fields::LEARNING_RATE),
            seed: text(fields::SEED),
        }
    }

    /// The config the controls describe, read by the link codec as a link's fields are, and
    /// validated; the error names the first bad field.
    pub fn parse(&self) -> Result<SuperpositionConfig, EngineError> {
        let act = if self.relu { "relu" } else { "linear" };
        let mut pairs = vec![
            (fields::N_FEATURES.key, self.n_features.as_str()),
            (fields::N_HIDDEN.key, self.n_hidden.as_str()),
            (fields::RELU.key, act),
            (fields::IMPORTANCE_DECAY.key, self.importance_decay.as_str()),
            (
                fields::FEATURE_PROBABILITY.key,
                self.feature_probability.as_str(),
            ),
            (fields::BATCH_SIZE.key, self.batch_size.as_str()),
            (fields::STEPS.key, self.steps.as_str()),
            (fields::LEARNING_RATE.key, self.learning_rate.as_str()),
            (fields::SEED.key, self.seed.as_str()),
        ];
        // No relative importance is the field left out, as links leave it out.
        if !self.relative_importance.trim().is_empty() {
            pairs.push((
                fields::RELATIVE_IMPORTANCE.key,
                self.relative_importance.as_str(),
            ));
        }
        link::from_fields(&pairs)
    }
}

/// The preset a config is exactly equal to, or `"custom"`.
pub fn preset_name(cfg: Option<&SuperpositionConfig>) -> &'static str {
    Preset::name_where(|p| cfg.is_some_and(|c| p.config() == *c))
}

/// The config in a hash: the intro preset when there is none; a link's bad fields replaced
/// and named ([`read_link`]).
pub fn from_hash(hash: &str) -> FromHash<SuperpositionConfig> {
    if hash.trim_start_matches('#').trim().is_empty() {
        return FromHash {
            value: Some(Preset::Intro.config()),
            note: None,
        };
    }
    read_link::<SuperpositionConfig, _>(hash, SuperpositionConfig::from_link, |c| c.to_link())
}

/// The page's address with the config's link as the hash.
pub fn share_url(cfg: Option<&SuperpositionConfig>) -> String {
    url::share_url_for(cfg.map(LinkConfig::to_link).as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_round_trip_through_the_form() {
        for &p in Preset::ALL {
            let c = p.config();
            assert_eq!(Form::from_config(&c).parse().unwrap(), c);
            assert_eq!(preset_name(Some(&c)), p.name());
        }
    }

    #[test]
    fn bad_text_names_the_field() {
        let mut f = Form::from_config(&Preset::Intro.config());
        f.learning_rate = "-1".into();
        assert!(f.parse().unwrap_err().to_string().contains("learning_rate"));
        f.learning_rate = "abc".into();
        let err = f.parse().unwrap_err().to_string();
        assert!(err.contains("`lr=abc` (learning_rate)"), "{err}");
        assert!(!err.contains("bad link"), "{err}");
        f.learning_rate = "0.01".into();
        f.feature_probability = "1,x".into();
        assert!(f
            .parse()
            .unwrap_err()
            .to_string()
            .contains("`x` is not a number"));
        f.feature_probability = "log:1:0.01:4".into();
        assert_eq!(f.parse().unwrap().n_instances(), 4);
        f.feature_probability = " 1, 0.3 ,0.1 ".into();
        assert_eq!(f.parse().unwrap().n_instances(), 3);
        // No relative importance unless the control has one.
        let phase = Preset::ALL
            .iter()
            .map(|p| p.config())
            .find(|c| c.relative_importance.is_some())
            .unwrap();
        let mut f = Form::from_config(&phase);
        assert!(!f.relative_importance.is_empty());
        f.relative_importance = " ".into();
        assert_eq!(f.parse().unwrap().relative_importance, None);
    }

    #[test]
    fn empty_hash_is_the_intro_and_bad_hash_keeps_working() {
        assert_eq!(from_hash("").value, Some(Preset::Intro.config()));
        let h = from_hash("#v=1&nf=abc&seed=4");
        let c = h.value.unwrap();
        assert_eq!(
            (c.n_features, c.seed),
            (SuperpositionConfig::default().n_features, 4)
        );
        let note = h.note.unwrap();
        assert!(note.starts_with("bad link"), "{note}");
        assert!(note.contains("`nf=abc` was replaced by `5`"), "{note}");
        let h = from_hash("#v=1&lab=nonsense");
        assert!(h.value.is_none());
        assert!(h
            .note
            .unwrap()
            .contains("`lab=nonsense`: there is no such lab"));
    }
}
