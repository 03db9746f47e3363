//! The SAE lab's spelling in the one link codec ([`crate::experiment::link`]): every config
//! field as a readable `key=value` pair, nested fields dotted (`a.` for the architecture, `s.`
//! for the source), and the sweep a link may carry:
//! `v=1&lab=sae&a.kind=topk&a.k=16&…&s.kind=ground_truth&s.d=64&…&d_sae=1024&seed=0`.
//!
//! Fields a link leaves out take the defaults of the architecture or source kind it names, so
//! a short hand-written link works; a field this build does not know is refused by name.

use crate::data::config::{MAGNITUDE_CHOICES, SOURCE_CHOICES};
use crate::error::{EngineError, Result};
use crate::experiment::fields::one_of;
use crate::experiment::link::{self, LinkConfig};
use crate::experiment::sweep::KeySweep;
use crate::models::sae::config::{
    Architecture, Magnitude, SaeConfig, SaePreset, SourceConfig, ARCHITECTURE_NAMES,
};
use serde_json::Value;

/// The link format this build writes and reads.
pub const SAE_LINK_VERSION: u32 = link::LINK_VERSION;

impl LinkConfig for SaeConfig {
    const LAB: &'static str = "sae";
    const TITLE: &'static str = "SAE";
    const WRITES_LAB: bool = true;
    const ALIASES: &'static [(&'static str, &'static str)] =
        &[("architecture", "a"), ("source", "s")];
    const EXTRA_KEYS: &'static [&'static str] = &["sweep"];
    const FIELDS: &'static [crate::experiment::fields::Field] =
        crate::models::sae::fields::SAE_FIELDS;

    fn set_kind(&mut self, key: &str, kind: &str) -> Result<()> {
        match key {
            "a.kind" => {
                self.architecture = Architecture::by_name(kind)
                    .map_err(|e| EngineError::BadLink(format!("`a.kind={kind}`: {e}")))?
            }
            "s.kind" => self.source = default_source(kind)?,
            "s.magnitude.kind" => match &mut self.source {
                SourceConfig::GroundTruth { magnitude, .. } => {
                    *magnitude = default_magnitude(kind)?
                }
                _ => return Err(EngineError::BadLink(format!("unknown field `{key}`"))),
            },
            _ => return Err(EngineError::BadLink(format!("unknown field `{key}`"))),
        }
        Ok(())
    }

    fn validate(&self) -> Result<()> {
        SaeConfig::validate(self)
    }
}

/// Encodes a config as a link fragment (without the leading `#`).
pub fn encode(cfg: &SaeConfig) -> String {
    link::encode(cfg, &[])
}

fn default_source(kind: &str) -> Result<SourceConfig> {
    match kind {
        "ground_truth" => Ok(SaePreset::GroundTruth.config().source),
        "superposition" => Ok(SaePreset::SuperpositionHidden.config().source),
        other => Err(EngineError::BadLink(format!(
            "`s.kind={other}`: expected {}",
            one_of(SOURCE_CHOICES)
        ))),
    }
}

fn default_magnitude(kind: &str) -> Result<Magnitude> {
    match kind {
        "uniform" => Ok(Magnitude::Uniform {
            low: 0.5,
            high: 1.5,
        }),
        "folded_normal" => Ok(Magnitude::FoldedNormal {
            mean: 1.0,
            std: 0.5,
        }),
        "constant" => Ok(Magnitude::Constant { value: 1.0 }),
        other => Err(EngineError::BadLink(format!(
            "`s.magnitude.kind={other}`: expected {}",
            one_of(MAGNITUDE_CHOICES)
        ))),
    }
}

/// What a link trains: one SAE, the MSE-vs-L0 frontier over the sparsity sweeps of some
/// architectures, or a sweep over any one field; a sweep's runs train one after another.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Sweep {
    /// One run of the config.
    #[default]
    Single,
    /// The frontier of these architectures (names from [`ARCHITECTURE_NAMES`], in that order).
    Frontier(Vec<&'static str>),
    /// The config once per value of one field (`sweep=a.k:8,16,32`).
    Key(KeySweep),
}

impl Sweep {
    /// The frontier over all five architectures.
    pub fn all() -> Self {
        Sweep::Frontier(ARCHITECTURE_NAMES.to_vec())
    }

    /// The link's spelling: `frontier` for all architectures, `frontier:topk,gated` for some.
    pub fn encode(&self) -> Option<String> {
        match self {
            Sweep::Single => None,
            Sweep::Frontier(a) if a.len() == ARCHITECTURE_NAMES.len() => Some("frontier".into()),
            Sweep::Frontier(a) => Some(format!("frontier:{}", a.join(","))),
            Sweep::Key(k) => Some(k.encode()),
        }
    }

    /// The runs it trains, one after another, each checked; the error names the run's value.
    pub fn runs(&self, cfg: &SaeConfig) -> Result<Vec<SaeConfig>> {
        match self {
            Sweep::Single => Ok(vec![cfg.clone()]),
            Sweep::Frontier(names) => crate::experiment::frontier::runs(cfg, names),
            Sweep::Key(k) => k.configs(cfg),
        }
    }

    /// Reads [`Sweep::encode`]'s spelling (`single` too); anything but `frontier` before a
    /// colon is a field's key ([`KeySweep`]).
    pub fn decode(s: &str) -> Result<Self> {
        let bad = |why: String| EngineError::BadLink(format!("`sweep={s}`: {why}"));
        match s.split_once(':') {
            None if s == "single" => Ok(Sweep::Single),
            None if s == "frontier" => Ok(Sweep::all()),
            Some(("frontier", list)) => {
                let mut names = Vec::new();
                for n in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                    let known = ARCHITECTURE_NAMES
                        .iter()
                        .find(|k| **k == n)
                        .ok_or_else(|| bad(format!("`{n}` is not an architecture")))?;
                    names.push(*known);
                }
                if names.is_empty() {
                    return Err(bad("name at least one architecture".into()));
                }
                // One run per architecture and value, in menu order.
                let ordered: Vec<&'static str> = ARCHITECTURE_NAMES
                    .into_iter()
                    .filter(|k| names.contains(k))
                    .collect();
                Ok(Sweep::Frontier(ordered))
            }
            Some(_) => Ok(Sweep::Key(KeySweep::parse::<SaeConfig>(s)?)),
            None => Err(bad(
                "expected single, frontier, frontier:NAME,NAME or KEY:VALUE,VALUE (a field)".into(),
            )),
        }
    }
}

/// The SAE lab's experiment: a config and its sweep.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SaeExperiment {
    /// The config (the sweep's base).
    pub config: SaeConfig,
    /// One run, a frontier or a key sweep.
    pub sweep: Sweep,
}

impl SaeExperiment {
    /// The runs it trains, one after another (one, a frontier's or a key sweep's).
    pub fn runs(&self) -> Result<Vec<SaeConfig>> {
        self.sweep.runs(&self.config)
    }
}

impl crate::experiment::lab::LabExperiment for SaeExperiment {
    type Config = SaeConfig;

    fn decode(text: &str) -> Result<Self> {
        let (config, sweep) = decode(text)?;
        Ok(Self { config, sweep })
    }

    fn encode(&self) -> String {
        encode_experiment(&self.config, &self.sweep)
    }

    /// The runs one after another (0 when the sweep's runs do not check).
    fn total_steps(&self) -> u32 {
        self.runs()
            .map_or(0, |runs| runs.iter().map(|c| c.steps).sum())
    }
}

/// Encodes a config and its sweep as a link fragment (without the leading `#`).
pub fn encode_experiment(cfg: &SaeConfig, sweep: &Sweep) -> String {
    match sweep.encode() {
        Some(s) => link::encode(cfg, &[("sweep", s)]),
        None => encode(cfg),
    }
}

/// Decodes a whole URL, a fragment or a query string into a validated config and its sweep.
pub fn decode(link: &str) -> Result<(SaeConfig, Sweep)> {
    let d = link::decode::<SaeConfig>(link)?;
    let sweep = match d.extra.iter().find(|(k, _)| *k == "sweep") {
        Some((_, v)) => Sweep::decode(v)?,
        None => Sweep::Single,
    };
    Ok((d.config, sweep))
}

/// The config and sweep that `key=value` pairs in the link's spelling describe (`a.k`,
/// `s.magnitude.low`, `sweep`, …): fields left out take the defaults of the kinds named, and
/// every value is validated. Errors from validation come back as they are, so the page can mark
/// the field they name.
pub fn from_pairs(pairs: &[(&str, &str)]) -> Result<(SaeConfig, Sweep)> {
    let get = |key: &str| pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
    let sweep = get("sweep")
        .map(Sweep::decode)
        .transpose()?
        .unwrap_or_default();
    Ok((link::from_pairs(pairs)?, sweep))
}

/// A config from JSON (a config file): as a link, fields left out take the defaults of the
/// architecture, source and magnitude kinds it names, and errors name the field.
pub fn from_json(v: &Value) -> Result<SaeConfig> {
    link::from_json(v)
}

/// A config's fields as `(key, value)` pairs in the link's spelling and order: what the page's
/// controls edit.
pub fn pairs(cfg: &SaeConfig) -> Vec<(String, String)> {
    link::pairs(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::preset::LabPreset;
    use crate::models::sae::config::{SaePreset, ARCHITECTURE_NAMES};

    #[test]
    fn every_preset_and_architecture_round_trips() {
        for &p in SaePreset::ALL {
            let cfg = p.config();
            assert_eq!(decode(&encode(&cfg)).unwrap().0, cfg, "{}", p.name());
        }
        for name in ARCHITECTURE_NAMES {
            let mut cfg = SaeConfig {
                architecture: Architecture::by_name(name).unwrap(),
                learning_rate: 3.7e-4,
                shuffle_batches: 3,
                seed: u64::MAX,
                ..SaeConfig::default()
            };
            if let SourceConfig::GroundTruth { magnitude, .. } = &mut cfg.source {
                *magnitude = Magnitude::FoldedNormal {
                    mean: 0.25,
                    std: 0.125,
                };
            }
            let link = format!("https://example.org/sae#{}", encode(&cfg));
            assert_eq!(decode(&link).unwrap(), (cfg, Sweep::Single), "{name}");
        }
    }

    #[test]
    fn short_links_take_the_defaults_of_the_kinds_they_name() {
        let (cfg, _) = decode("v=1&a.kind=jumprelu&a.bandwidth=0.1&d_sae=256").unwrap();
        assert_eq!(cfg.d_sae, 256);
        // Links from before the shuffle pool leave it out: batches straight from the source.
        assert_eq!(cfg.shuffle_batches, 0);
        match cfg.architecture {
            Architecture::JumpRelu { bandwidth, .. } => assert_eq!(bandwidth, 0.1),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_links_are_named() {
        let err = |l: &str| decode(l).unwrap_err().to_string();
        assert!(err("").contains("empty"));
        assert!(err("a.kind=topk").contains("no version"));
        assert!(err("v=9&a.kind=topk").contains("newer"));
        assert!(err("v=1&lab=superposition").contains("superposition lab"));
        assert!(err("v=1&a.kind=resnet").contains("a.kind=resnet"));
        assert!(
            err("v=1&a.kind=topk&a.l1_coefficient=3").contains("unknown field `a.l1_coefficient`")
        );
        assert!(err("v=1&d_sae=many").contains("`d_sae=many`: must be a whole number"));
        assert!(err("v=1&learning_rate=fast").contains("`learning_rate=fast`: must be a number"));
        assert!(err("v=1&normalize_activations=1").contains("must be true or false"));
        assert!(err("v=1&sweep=frontier:resnet").contains("`resnet` is not an architecture"));
        assert!(err("v=1&sweep=all").contains("expected single, frontier"));
        assert!(err("v=1&a.kind=topk&a.k=5000").contains("k = 5000"));
        assert!(err("v=1&a.kind=relu_l1&a.l1_coefficient=-2").contains("l1_coefficient = -2"));
        assert!(err("v=1&d_sae").contains("not a key=value"));
    }

    #[test]
    fn a_sweep_over_any_field_trains_each_value_in_turn() {
        let link = "v=1&lab=sae&a.kind=topk&a.k=4&d_sae=64&sweep=a.k:4,8,16";
        let (cfg, sweep) = decode(link).unwrap();
        assert_eq!(sweep.encode().as_deref(), Some("a.k:4,8,16"));
        assert_eq!(
            decode(&encode_experiment(&cfg, &sweep)).unwrap(),
            (cfg.clone(), sweep.clone())
        );
        let ks: Vec<u32> = sweep
            .runs(&cfg)
            .unwrap()
            .iter()
            .map(|c| match c.architecture {
                Architecture::TopK { k, .. } => k,
                _ => unreachable!("a.kind=topk"),
            })
            .collect();
        assert_eq!(ks, [4, 8, 16]);
        // A value the config cannot take is named when the runs are made.
        let (cfg, sweep) = decode("v=1&lab=sae&a.kind=topk&d_sae=64&sweep=a.k:4,128").unwrap();
        let e = sweep.runs(&cfg).unwrap_err().to_string();
        assert!(e.contains("at `128`"), "{e}");
        assert!(decode("v=1&lab=sae&sweep=seeds:1,2")
            .unwrap_err()
            .to_string()
            .contains("`seeds` is not a field"));
    }

    #[test]
    fn json_configs_take_the_defaults_of_the_kinds_they_name() {
        let v = serde_json::json!({
            "architecture": { "kind": "jumprelu", "bandwidth": 0.1 },
            "source": { "kind": "superposition", "n_hidden": 12 },
            "d_sae": 96
        });
        let cfg = from_json(&v).unwrap();
        assert_eq!(cfg.d_sae, 96);
        assert_eq!(cfg.d_in(), 12);
        match cfg.architecture {
            Architecture::JumpRelu {
                bandwidth,
                l0_coefficient,
                ..
            } => assert_eq!((bandwidth, l0_coefficient), (0.1, 1.0)),
            other => panic!("{other:?}"),
        }
        let full = SaePreset::SuperpositionHidden.config();
        assert_eq!(
            from_json(&serde_json::to_value(&full).unwrap()).unwrap(),
            full
        );
        let bad = serde_json::json!({ "architecture": { "kind": "topk", "k": "many" } });
        let err = from_json(&bad).unwrap_err().to_string();
        assert!(err.contains("`a.k=many`"), "{err}");
        assert!(!err.contains("link"), "{err}");
        assert!(from_json(&serde_json::json!([1])).is_err());
    }

    #[test]
    fn sweeps_round_trip_in_menu_order() {
        let cfg = SaePreset::Frontier.config();
        for sweep in [
            Sweep::Single,
            Sweep::all(),
            Sweep::Frontier(vec!["topk", "gated"]),
        ] {
            assert_eq!(
                decode(&encode_experiment(&cfg, &sweep)).unwrap(),
                (cfg.clone(), sweep)
            );
        }
        let (_, sweep) = decode("v=1&sweep=frontier:jumprelu,relu_l1").unwrap();
        assert_eq!(sweep, Sweep::Frontier(vec!["relu_l1", "jumprelu"]));
    }

    #[test]
    fn pairs_are_what_the_link_holds_and_validation_errors_keep_their_field() {
        let cfg = SaePreset::SuperpositionHidden.config();
        let p = pairs(&cfg);
        let borrowed: Vec<(&str, &str)> = p.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(from_pairs(&borrowed).unwrap().0, cfg);
        assert!(p.iter().any(|(k, v)| k == "a.k" && v == "4"));
        let err = from_pairs(&[("a.kind", "topk"), ("a.k", "0")]).unwrap_err();
        assert!(
            matches!(err, EngineError::InvalidConfig { field: "k", .. }),
            "{err}"
        );
    }

    #[test]
    fn links_saved_before_the_shared_codec_open_and_are_written_again_unchanged() {
        // What the SAE lab's own codec wrote for its presets (commit 015629d).
        let saved = [
            (SaePreset::GroundTruth, "v=1&lab=sae&a.aux_coefficient=0.03125&a.dead_tokens=100000&a.k=16&a.k_aux=0&a.kind=topk&b_dec_geometric_median=true&batch_size=1024&d_sae=1024&learning_rate=0.001&lr_decay_fraction=0.2&lr_warmup_steps=100&max_grad_norm=1&normalize_activations=true&seed=0&shuffle_batches=0&s.d=64&s.group_coherence=1&s.group_size=1&s.kind=ground_truth&s.magnitude.high=1.5&s.magnitude.kind=uniform&s.magnitude.low=0.5&s.n_features=512&s.probability=0.015625&steps=3000"),
            (SaePreset::SuperpositionHidden, "v=1&lab=sae&a.aux_coefficient=0.03125&a.dead_tokens=100000&a.k=4&a.k_aux=0&a.kind=topk&b_dec_geometric_median=true&batch_size=1024&d_sae=80&learning_rate=0.001&lr_decay_fraction=0.2&lr_warmup_steps=100&max_grad_norm=1&normalize_activations=true&seed=0&shuffle_batches=0&s.feature_probability=0.05&s.importance_decay=1&s.kind=superposition&s.n_features=40&s.n_hidden=10&s.toy_steps=4000&steps=2000"),
        ];
        for (preset, link) in saved {
            assert_eq!(decode(link).unwrap(), (preset.config(), Sweep::Single));
            assert_eq!(encode(&preset.config()), link);
        }
    }
}
