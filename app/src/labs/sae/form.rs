//! The SAE lab's controls as text, and their home in the URL hash.
//!
//! The form holds the config as the share link spells it (`a.k`, `s.magnitude.low`, …): the
//! controls are made from the config's own fields, so every field has one and none can drift
//! from the link, their headings and hints come from the engine's field table, and
//! [`SaeForm::parse`] is the link's own decoder and validation. Choosing
//! another architecture, source or magnitude kind swaps that group's fields for the new kind's
//! defaults.

use crate::components::link_sync::{read_link, FromHash};
use mechlab_engine::experiment::fields;
use mechlab_engine::experiment::preset::LabPreset;
use mechlab_engine::experiment::sweep::KeySweep;
use mechlab_engine::models::sae::config::{SaeConfig, SaePreset, ARCHITECTURE_NAMES};
use mechlab_engine::models::sae::fields::SAE_FIELDS;
use mechlab_engine::models::sae::link::{self as link, Sweep};
use mechlab_engine::EngineError;

pub use crate::components::controls::{Input, TextForm};

/// What Run trains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SweepChoice {
    /// The config once.
    Single,
    /// The frontier of the chosen architecture.
    ThisArchitecture,
    /// The frontier of all five.
    All,
    /// The frontier of the architectures a link named.
    Some(Vec<&'static str>),
    /// The sweep over one field a link named (`sweep=a.k:8,16,32`).
    Key(KeySweep),
}

impl SweepChoice {
    fn of(sweep: &Sweep, cfg: &SaeConfig) -> Self {
        match sweep {
            Sweep::Single => SweepChoice::Single,
            Sweep::Frontier(a) if a.len() == ARCHITECTURE_NAMES.len() => SweepChoice::All,
            Sweep::Frontier(a) if a.as_slice() == [cfg.architecture.name()] => {
                SweepChoice::ThisArchitecture
            }
            Sweep::Frontier(a) => SweepChoice::Some(a.clone()),
            Sweep::Key(k) => SweepChoice::Key(k.clone()),
        }
    }

    fn sweep(&self, cfg: &SaeConfig) -> Sweep {
        match self {
            SweepChoice::Single => Sweep::Single,
            SweepChoice::ThisArchitecture => Sweep::Frontier(vec![cfg.architecture.name()]),
            SweepChoice::All => Sweep::all(),
            SweepChoice::Some(a) => Sweep::Frontier(a.clone()),
            SweepChoice::Key(k) => Sweep::Key(k.clone()),
        }
    }

    /// The sweep menu's value.
    pub fn value(&self) -> String {
        match self {
            SweepChoice::Single => "single".into(),
            SweepChoice::ThisArchitecture => "this".into(),
            SweepChoice::All => "all".into(),
            SweepChoice::Some(a) => format!("some:{}", a.join(",")),
            SweepChoice::Key(k) => format!("key:{}", k.encode()),
        }
    }

    /// The choice a sweep menu value stands for.
    pub fn from_value(v: &str) -> Self {
        match v {
            "this" => SweepChoice::ThisArchitecture,
            "all" => SweepChoice::All,
            v => match (v.strip_prefix("some:"), v.strip_prefix("key:")) {
                (Some(list), _) => SweepChoice::Some(
                    ARCHITECTURE_NAMES
                        .into_iter()
                        .filter(|n| list.split(',').any(|x| x == *n))
                        .collect(),
                ),
                (_, Some(k)) => {
                    KeySweep::parse::<SaeConfig>(k).map_or(SweepChoice::Single, SweepChoice::Key)
                }
                _ => SweepChoice::Single,
            },
        }
    }
}

/// How `key`'s control shows it, given its current text: as the field table says.
pub fn input(key: &str, value: &str) -> Input {
    Input::of(fields::find(SAE_FIELDS, key), value)
}

/// Every control's text.
#[derive(Debug, Clone, PartialEq)]
pub struct SaeForm {
    /// `(key, text)` per field, in [`SAE_FIELDS`] order.
    pub fields: Vec<(String, String)>,
    /// What Run trains.
    pub sweep: SweepChoice,
}

impl SaeForm {
    /// The controls for a config and sweep.
    pub fn new(cfg: &SaeConfig, sweep: &Sweep) -> Self {
        Self {
            fields: ordered(link::pairs(cfg)),
            sweep: SweepChoice::of(sweep, cfg),
        }
    }

    /// The config and sweep the controls describe, validated; the error names the first bad
    /// field.
    pub fn parse(&self) -> Result<(SaeConfig, Sweep), EngineError> {
        let cfg: SaeConfig = mechlab_engine::experiment::link::from_fields(&self.pairs())?;
        let sweep = self.sweep.sweep(&cfg);
        // Every run of the sweep must be valid too (k = 32 needs d_sae ≥ 32).
        sweep.runs(&cfg)?;
        Ok((cfg, sweep))
    }
}

/// Fields in [`SAE_FIELDS`] order (unknown ones last, as they came).
fn ordered(mut fields: Vec<(String, String)>) -> Vec<(String, String)> {
    let rank = |k: &str| {
        SAE_FIELDS
            .iter()
            .position(|f| f.key == k)
            .unwrap_or(SAE_FIELDS.len())
    };
    fields.sort_by_key(|(k, _)| rank(k));
    fields
}

/// The heading and hint of `key` (the engine's field table).
pub fn info(key: &str) -> (&'static str, &'static str) {
    fields::find(SAE_FIELDS, key).map_or(("", ""), |f| (f.label, f.hint))
}

/// The preset a config and sweep are exactly, or `"custom"`.
pub fn preset_name(parsed: Option<&(SaeConfig, Sweep)>) -> &'static str {
    let Some((cfg, sweep)) = parsed else {
        return "custom";
    };
    SaePreset::name_where(|p| p.config() == *cfg && preset_sweep(p) == *sweep)
}

/// The sweep a preset runs: the frontier preset sweeps every architecture.
pub fn preset_sweep(p: SaePreset) -> Sweep {
    match p {
        SaePreset::Frontier => Sweep::all(),
        _ => Sweep::Single,
    }
}

/// The config and sweep in a hash, a link's bad fields replaced and named ([`read_link`]).
pub fn from_hash(hash: &str) -> FromHash<(SaeConfig, Sweep)> {
    read_link::<SaeConfig, _>(hash, link::decode, |(c, s)| link::encode_experiment(c, s))
}

impl TextForm for SaeForm {
    type Config = SaeConfig;

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
    use mechlab_engine::experiment::preset::LabPreset;

    #[test]
    fn presets_round_trip_through_the_form() {
        for &p in SaePreset::ALL {
            let (cfg, sweep) = (p.config(), preset_sweep(p));
            let form = SaeForm::new(&cfg, &sweep);
            assert_eq!(form.parse().unwrap(), (cfg.clone(), sweep.clone()));
            assert_eq!(preset_name(Some(&(cfg, sweep))), p.name());
        }
    }

    #[test]
    fn every_field_has_a_heading_and_kinds_swap_their_group() {
        let mut form = SaeForm::new(&SaeConfig::default(), &Sweep::Single);
        for kind in ARCHITECTURE_NAMES {
            form.set_text("a.kind", kind.into());
            assert_eq!(form.parse().unwrap().0.architecture.name(), kind);
            for (k, _) in &form.fields {
                assert!(!info(k).0.is_empty(), "{k} has no heading");
            }
        }
        form.set_text("s.kind", "superposition".into());
        assert!(form.text("s.n_hidden").is_some() && form.text("s.d").is_none());
        form.set_text("s.kind", "ground_truth".into());
        form.set_text("s.magnitude.kind", "constant".into());
        assert_eq!(form.text("s.magnitude.value"), Some("1"));
        assert!(form.text("s.magnitude.low").is_none());
        assert!(form.parse().is_ok());
    }

    #[test]
    fn bad_text_names_the_field_and_sweeps_are_checked() {
        let mut form = SaeForm::new(&SaeConfig::default(), &Sweep::Single);
        form.set_text("a.k", "0".into());
        assert!(form
            .parse()
            .unwrap_err()
            .to_string()
            .contains("config: k = 0"));
        form.set_text("a.k", "x".into());
        assert!(form.parse().unwrap_err().to_string().contains("`a.k=x`"));
        form.set_text("a.k", "8".into());
        form.set_text("d_sae", "16".into());
        assert!(form.parse().is_ok());
        form.sweep = SweepChoice::ThisArchitecture;
        assert!(form.parse().unwrap_err().to_string().contains("k = 32"));
        assert_eq!(SweepChoice::from_value(&form.sweep.value()), form.sweep);
    }
}
