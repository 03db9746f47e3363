//! One sweep syntax over any link key: `sweep=KEY:V1,V2,…` trains the experiment once per
//! value with `KEY` set to it (`sweep=a.k:8,16,32`, `sweep=model.act_fn:solu_ln,gelu`). Each
//! value is checked as the link would check it, and the error names the value. A lab says
//! how its runs go (the SAE lab one after another; the Transformer lab a pair side by side,
//! over `model.act_fn`); a lab's own named sweeps (the SAE frontier, `sweep=frontier:…`) and
//! older spellings (`vs=gelu`, the Superposition lab's `p=log:…` axes) still open as before.

use super::fields;
use super::link::{self, LinkConfig};
use crate::error::{EngineError, Result};

/// A sweep over one link key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySweep {
    /// The link key it sets (`a.k`).
    pub key: String,
    /// The values, as links spell them, in run order.
    pub values: Vec<String>,
}

impl KeySweep {
    /// Reads `KEY:V1,V2,…` (the text of `sweep=`) for lab `C`: the key must be one of its
    /// fields (not a `…kind`, whose fields differ between values), with at least two distinct
    /// values.
    pub fn parse<C: LinkConfig>(text: &str) -> Result<Self> {
        let bad = |why: String| EngineError::BadLink(format!("`sweep={text}`: {why}"));
        let (key, list) = text
            .split_once(':')
            .ok_or_else(|| bad("write it as KEY:VALUE,VALUE,…".into()))?;
        let key = key.trim();
        if fields::find(C::FIELDS, key).is_none() {
            let keys: Vec<&str> = C::FIELDS.iter().map(|f| f.key).collect();
            return Err(bad(format!(
                "`{key}` is not a field of the {} lab; its fields are {}",
                C::TITLE,
                keys.join(", ")
            )));
        }
        if key.ends_with("kind") {
            return Err(bad(format!(
                "`{key}` changes which fields there are, so it cannot be swept"
            )));
        }
        let values: Vec<String> = list
            .split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(String::from)
            .collect();
        if values.len() < 2 {
            return Err(bad("a sweep needs at least two values".into()));
        }
        if let Some(v) = values
            .iter()
            .enumerate()
            .find_map(|(i, v)| values[..i].contains(v).then_some(v))
        {
            return Err(bad(format!("`{v}` is given twice")));
        }
        Ok(Self {
            key: key.to_string(),
            values,
        })
    }

    /// The text of `sweep=`.
    pub fn encode(&self) -> String {
        format!("{}:{}", self.key, self.values.join(","))
    }

    /// `base` with the key set to each value in turn, each checked as a link's field; the error
    /// names the value.
    pub fn configs<C: LinkConfig>(&self, base: &C) -> Result<Vec<C>> {
        let mut pairs = link::pairs(base);
        let at = match pairs.iter().position(|(k, _)| *k == self.key) {
            Some(i) => i,
            None => {
                pairs.push((self.key.clone(), String::new()));
                pairs.len() - 1
            }
        };
        self.values
            .iter()
            .map(|v| {
                pairs[at].1 = v.clone();
                let borrowed: Vec<(&str, &str)> = pairs
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                link::from_pairs::<C>(&borrowed).map_err(|e| {
                    EngineError::BadLink(format!("`sweep={}`: at `{v}`: {e}", self.encode()))
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::sae::config::{Architecture, SaeConfig, SaePreset};

    #[test]
    fn a_key_sweep_sets_the_key_to_each_value_and_names_a_bad_one() {
        let base = SaePreset::GroundTruth.config();
        let s = KeySweep::parse::<SaeConfig>("a.k:8, 32").unwrap();
        assert_eq!(s.encode(), "a.k:8,32");
        let runs = s.configs(&base).unwrap();
        let ks: Vec<u32> = runs
            .iter()
            .map(|c| match c.architecture {
                Architecture::TopK { k, .. } => k,
                _ => unreachable!("the preset is TopK"),
            })
            .collect();
        assert_eq!(ks, [8, 32]);
        // Everything else is the base's.
        assert_eq!(
            SaeConfig {
                architecture: base.architecture.clone(),
                ..runs[1].clone()
            },
            base
        );
        let sweep = KeySweep::parse::<SaeConfig>("learning_rate:1e-3,3e-4").unwrap();
        let lrs: Vec<f32> = sweep
            .configs(&base)
            .unwrap()
            .iter()
            .map(|c| c.learning_rate)
            .collect();
        assert_eq!(lrs, [1e-3, 3e-4]);

        let err = |text: &str| KeySweep::parse::<SaeConfig>(text).unwrap_err().to_string();
        assert!(err("a.k").contains("KEY:VALUE"));
        assert!(err("nope:1,2").contains("`nope` is not a field of the"));
        assert!(err("a.kind:topk,gated").contains("cannot be swept"));
        assert!(err("a.k:8").contains("at least two values"));
        assert!(err("a.k:8,8").contains("`8` is given twice"));
        let bad = KeySweep::parse::<SaeConfig>("a.k:8,0").unwrap();
        let e = bad.configs(&base).unwrap_err().to_string();
        assert!(e.contains("at `0`") && e.contains("k"), "{e}");
    }
}
