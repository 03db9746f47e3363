//! The Superposition config as the controls edit it, and its home in the URL hash.
//!
//! The controls hold text, not numbers, so that a half-typed or wrong value stays on screen with a
//! message instead of snapping back; [`Form::parse`] turns the text into a validated config.

use crate::url;
use mechlab_engine::experiment::link::LinkConfig;
use mechlab_engine::experiment::superposition::{Axis, Preset, SuperpositionConfig};
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
        // The link codec owns the axis syntax; borrowing its output keeps the two from drifting.
        let encoded = c.to_link();
        let field = |key: &str| {
            encoded
                .split('&')
                .find_map(|kv| kv.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
                .unwrap_or_default()
                .to_string()
        };
        Self {
            n_features: c.n_features.to_string(),
            n_hidden: c.n_hidden.to_string(),
            relu: c.relu,
            importance_decay: c.importance_decay.to_string(),
            feature_probability: field("p"),
            relative_importance: field("ri"),
            batch_size: c.batch_size.to_string(),
            steps: c.steps.to_string(),
            learning_rate: c.learning_rate.to_string(),
            seed: c.seed.to_string(),
        }
    }

    /// The config the controls describe, validated; the error names the first bad field.
    pub fn parse(&self) -> Result<SuperpositionConfig, EngineError> {
        let rel = self.relative_importance.trim();
        let cfg = SuperpositionConfig {
            n_features: whole("n_features", &self.n_features)?,
            n_hidden: whole("n_hidden", &self.n_hidden)?,
            relu: self.relu,
            importance_decay: number("importance_decay", &self.importance_decay)?,
            feature_probability: parse_axis("feature_probability", &self.feature_probability)?,
            relative_importance: if rel.is_empty() {
                None
            } else {
                Some(parse_axis("relative_importance", rel)?)
            },
            batch_size: whole("batch_size", &self.batch_size)?,
            steps: whole("steps", &self.steps)?,
            learning_rate: number("learning_rate", &self.learning_rate)?,
            seed: whole("seed", &self.seed)?,
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

fn whole<T: std::str::FromStr>(field: &'static str, s: &str) -> Result<T, EngineError> {
    s.trim()
        .parse()
        .map_err(|_| EngineError::invalid(field, s, "must be a whole number"))
}

fn number(field: &'static str, s: &str) -> Result<f32, EngineError> {
    s.trim()
        .parse()
        .map_err(|_| EngineError::invalid(field, s, "must be a number"))
}

/// Reads the link's axis syntax: `1,0.3,0.1` or `log:FROM:TO:COUNT` (or `lin:`).
pub fn parse_axis(field: &'static str, s: &str) -> Result<Axis, EngineError> {
    let s = s.trim();
    let bad = |why: String| EngineError::invalid(field, s, why);
    let parts: Vec<&str> = s.split(':').map(str::trim).collect();
    match parts.as_slice() {
        [kind @ ("log" | "lin"), from, to, count] => Ok(Axis::Range {
            from: from
                .parse()
                .map_err(|_| bad(format!("the start `{from}` is not a number")))?,
            to: to
                .parse()
                .map_err(|_| bad(format!("the end `{to}` is not a number")))?,
            count: count
                .parse()
                .map_err(|_| bad(format!("the count `{count}` is not a whole number")))?,
            log: *kind == "log",
        }),
        [list] => list
            .split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(|v| {
                v.parse::<f32>()
                    .map_err(|_| bad(format!("`{v}` is not a number")))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Axis::List),
        _ => Err(bad(
            "expected a comma-separated list like 1,0.3,0.1 or log:FROM:TO:COUNT".into(),
        )),
    }
}

/// The preset a config is exactly equal to, or `"custom"`.
pub fn preset_name(cfg: Option<&SuperpositionConfig>) -> &'static str {
    cfg.and_then(|c| Preset::ALL.into_iter().find(|p| p.config() == *c))
        .map_or("custom", Preset::name)
}

/// The config in a hash: the intro preset when there is none, and the defaults plus the
/// decoder's message when the link is bad (the page keeps working either way).
pub fn from_hash(hash: &str) -> (SuperpositionConfig, Option<String>) {
    if hash.trim_start_matches('#').trim().is_empty() {
        return (Preset::Intro.config(), None);
    }
    match SuperpositionConfig::from_link(hash) {
        Ok(c) => (c, None),
        Err(e) => (SuperpositionConfig::default(), Some(e.to_string())),
    }
}

/// Writes the config into the hash without a reload or a history entry.
pub fn write_hash(cfg: &SuperpositionConfig) {
    url::write_fragment(&cfg.to_link());
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
        for p in Preset::ALL {
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
        assert!(f
            .parse()
            .unwrap_err()
            .to_string()
            .contains("learning_rate = abc"));
        f.learning_rate = "0.01".into();
        f.feature_probability = "1,x".into();
        assert!(f
            .parse()
            .unwrap_err()
            .to_string()
            .contains("`x` is not a number"));
        f.feature_probability = "log:1:0.01:4".into();
        assert_eq!(f.parse().unwrap().n_instances(), 4);
    }

    #[test]
    fn empty_hash_is_the_intro_and_bad_hash_keeps_working() {
        assert_eq!(from_hash("").0, Preset::Intro.config());
        let (c, err) = from_hash("#v=1&nf=abc");
        assert_eq!(c, SuperpositionConfig::default());
        assert!(err.unwrap().starts_with("bad link"));
    }
}
