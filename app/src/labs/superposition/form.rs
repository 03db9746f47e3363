//! The Superposition config as the controls edit it, and its home in the URL hash.
//!
//! The controls hold text, not numbers, so that a half-typed or wrong value stays on screen with a
//! message instead of snapping back; [`Form::parse`] turns the text into a validated config.

pub use crate::components::controls::{Input, TextForm};
use crate::components::link_sync::{read_link, FromHash};
use crate::url;
use mechlab_engine::experiment::fields as table;
use mechlab_engine::experiment::link::{self, LinkConfig};
use mechlab_engine::experiment::preset::LabPreset;
use mechlab_engine::models::toy::config::{fields, Preset, SuperpositionConfig};
use mechlab_engine::EngineError;

/// Every control's text, by link key, in the page's order ([`fields::ALL`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Form {
    /// `(key, text)` per field; relative importance's text is empty for none.
    pub fields: Vec<(String, String)>,
}

impl Form {
    /// The controls' text for a config, spelled exactly as the share link spells it.
    pub fn from_config(c: &SuperpositionConfig) -> Self {
        // The link codec owns every field's spelling (the axis syntax above all); a field the
        // link leaves out (no relative importance) has an empty control.
        let pairs = link::pairs(c);
        let fields = fields::ALL
            .iter()
            .map(|f| {
                let text = pairs
                    .iter()
                    .find(|(k, _)| k == f.key)
                    .map(|(_, v)| v.clone());
                (f.key.to_string(), text.unwrap_or_default())
            })
            .collect();
        Self { fields }
    }

    /// The config the controls describe, read by the link codec as a link's fields are, and
    /// validated; the error names the first bad field.
    pub fn parse(&self) -> Result<SuperpositionConfig, EngineError> {
        // No relative importance is the field left out, as links leave it out.
        let pairs: Vec<(&str, &str)> = self
            .pairs()
            .into_iter()
            .filter(|(k, v)| *k != fields::RELATIVE_IMPORTANCE.key || !v.trim().is_empty())
            .collect();
        link::from_fields(&pairs)
    }
}

impl TextForm for Form {
    type Config = SuperpositionConfig;

    fn fields(&self) -> &[(String, String)] {
        &self.fields
    }

    fn fields_mut(&mut self) -> &mut Vec<(String, String)> {
        &mut self.fields
    }

    /// This lab's short link keys (`lr`) name their fields in full in errors
    /// (`learning_rate`).
    fn error_name(key: &str) -> String {
        table::find(fields::ALL, key)
            .map_or(key, |f| f.name)
            .to_string()
    }
}

/// The heading and hint of `key` (the engine's field table).
pub fn info(key: &str) -> (&'static str, &'static str) {
    table::find(fields::ALL, key).map_or(("", ""), |f| (f.label, f.hint))
}

/// How `key`'s control shows it, given its current text: as the field table says.
pub fn input(key: &str, value: &str) -> Input {
    Input::of(table::find(fields::ALL, key), value)
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
        f.set_text("lr", "-1".into());
        assert!(f.parse().unwrap_err().to_string().contains("learning_rate"));
        f.set_text("lr", "abc".into());
        let err = f.parse().unwrap_err().to_string();
        assert!(err.contains("`lr=abc` (learning_rate)"), "{err}");
        assert!(!err.contains("bad link"), "{err}");
        f.set_text("lr", "0.01".into());
        f.set_text("p", "1,x".into());
        assert!(f
            .parse()
            .unwrap_err()
            .to_string()
            .contains("`x` is not a number"));
        f.set_text("p", "log:1:0.01:4".into());
        assert_eq!(f.parse().unwrap().n_instances(), 4);
        f.set_text("p", " 1, 0.3 ,0.1 ".into());
        assert_eq!(f.parse().unwrap().n_instances(), 3);
        // No relative importance unless the control has one.
        let phase = Preset::ALL
            .iter()
            .map(|p| p.config())
            .find(|c| c.relative_importance.is_some())
            .unwrap();
        let mut f = Form::from_config(&phase);
        assert!(!f.text("ri").unwrap().is_empty());
        f.set_text("ri", " ".into());
        assert_eq!(f.parse().unwrap().relative_importance, None);
        // Every field has a control with a heading, the one without a value included.
        let f = Form::from_config(&Preset::Intro.config());
        assert_eq!(f.fields.len(), fields::ALL.len());
        assert!(f.fields.iter().all(|(k, _)| !info(k).0.is_empty()));
        assert_eq!(f.text("ri"), Some(""));
        assert_eq!(
            input("act", "relu"),
            Input::Menu(vec![("relu", "ReLU".into()), ("linear", "linear".into())])
        );
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
