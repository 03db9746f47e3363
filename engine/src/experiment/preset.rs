//! A lab's presets, in one shape for every lab: named experiments in menu order, each with one
//! line on what it should show. The page's preset menu, the CLI's `--preset` and `--help`, and
//! the lookup by name (with an error that lists the names) read them through [`LabPreset`].

use crate::error::{EngineError, Result};

/// One lab's presets.
pub trait LabPreset: Copy + PartialEq + Sized + 'static {
    /// Every preset, in menu order.
    const ALL: &'static [Self];

    /// Its name, as links and the CLI spell it.
    fn name(self) -> &'static str;

    /// One line on what it should show, for the page and `--help`.
    fn shows(self) -> &'static str;

    /// The preset called `name`; the error lists them all.
    fn from_name(name: &str) -> Result<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|p| p.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|p| p.name()).collect();
                let list = match names.split_last() {
                    Some((last, rest)) if !rest.is_empty() => {
                        format!("{} or {last}", rest.join(", "))
                    }
                    _ => names.join(""),
                };
                EngineError::invalid("preset", name, format!("unknown preset; choose {list}"))
            })
    }

    /// The name of the first preset `is` accepts (the one the current experiment is
    /// exactly), or `"custom"`.
    fn name_where(is: impl Fn(Self) -> bool) -> &'static str {
        Self::ALL
            .iter()
            .copied()
            .find(|&p| is(p))
            .map_or("custom", LabPreset::name)
    }

    /// The menu's entries: each preset's name and what it shows.
    fn menu() -> Vec<(&'static str, &'static str)> {
        Self::ALL.iter().map(|p| (p.name(), p.shows())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::sae::config::SaePreset;
    use crate::models::toy::config::Preset;
    use crate::models::transformer::lm::LmPreset;

    fn names_round_trip<P: LabPreset + std::fmt::Debug>() {
        assert!(!P::ALL.is_empty());
        for &p in P::ALL {
            assert_eq!(P::from_name(p.name()).unwrap(), p);
            assert!(p.shows().len() > 20, "{p:?} says what it shows");
        }
        let e = P::from_name("nope").unwrap_err().to_string();
        assert!(
            e.contains("unknown preset") && e.contains(P::ALL[0].name()),
            "{e}"
        );
        assert_eq!(P::menu().len(), P::ALL.len());
    }

    #[test]
    fn every_lab_s_presets_are_found_by_name_and_listed_when_not() {
        names_round_trip::<Preset>();
        names_round_trip::<SaePreset>();
        names_round_trip::<LmPreset>();
    }
}
