//! The SAE lab's share link: every config field as a readable `key=value` pair, nested fields
//! dotted (`a.` for the architecture, `s.` for the source), versioned with `v=`:
//! `v=1&lab=sae&a.kind=topk&a.k=16&…&s.kind=ground_truth&s.d=64&…&d_sae=1024&seed=0`.
//!
//! Fields a link leaves out take the defaults of the architecture or source kind it names, so
//! a short hand-written link works; a field this build does not know is refused by name.

use super::config::{Architecture, Magnitude, SaeConfig, SaePreset, SourceConfig};
use crate::error::{EngineError, Result};
use serde_json::Value;

/// The link format this build writes and reads.
pub const SAE_LINK_VERSION: u32 = 1;

const ALIASES: [(&str, &str); 2] = [("architecture", "a"), ("source", "s")];

fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let k = ALIASES
                    .iter()
                    .find(|(long, _)| prefix.is_empty() && long == k)
                    .map_or(k.as_str(), |(_, short)| short);
                let key = if prefix.is_empty() {
                    k.to_string()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        Value::String(s) => out.push((prefix.to_string(), s.clone())),
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

/// Encodes a config as a link fragment (without the leading `#`).
pub fn encode(cfg: &SaeConfig) -> String {
    let mut pairs = vec![];
    flatten(
        "",
        &serde_json::to_value(cfg).expect("configs serialise"),
        &mut pairs,
    );
    let body: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("v={SAE_LINK_VERSION}&lab=sae&{}", body.join("&"))
}

fn typed(s: &str) -> Value {
    if let Ok(u) = s.parse::<u64>() {
        return u.into();
    }
    if let Ok(i) = s.parse::<i64>() {
        return i.into();
    }
    if let Ok(f) = s.parse::<f64>() {
        if let Some(n) = serde_json::Number::from_f64(f) {
            return Value::Number(n);
        }
    }
    match s {
        "true" => true.into(),
        "false" => false.into(),
        _ => Value::String(s.to_string()),
    }
}

fn default_source(kind: &str) -> Result<SourceConfig> {
    match kind {
        "ground_truth" => Ok(SaePreset::GroundTruth.config().source),
        "superposition" => Ok(SaePreset::SuperpositionHidden.config().source),
        other => Err(EngineError::BadLink(format!(
            "`s.kind={other}`: expected ground_truth or superposition"
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
            "`s.magnitude.kind={other}`: expected uniform, folded_normal or constant"
        ))),
    }
}

fn set_path(root: &mut Value, key: &str, value: Value) -> Result<()> {
    let parts: Vec<&str> = key.split('.').collect();
    let mut node = root;
    for (i, part) in parts.iter().enumerate() {
        let part = match (i, *part) {
            (0, "a") => "architecture",
            (0, "s") => "source",
            (_, p) => p,
        };
        let obj = node
            .as_object_mut()
            .ok_or_else(|| EngineError::BadLink(format!("unknown field `{key}`")))?;
        if i + 1 == parts.len() {
            if !obj.contains_key(part) {
                return Err(EngineError::BadLink(format!("unknown field `{key}`")));
            }
            obj.insert(part.to_string(), value);
            return Ok(());
        }
        node = obj
            .get_mut(part)
            .ok_or_else(|| EngineError::BadLink(format!("unknown field `{key}`")))?;
    }
    Ok(())
}

/// Decodes a whole URL, a fragment or a query string into a validated config.
pub fn decode(link: &str) -> Result<SaeConfig> {
    let pairs = crate::experiment::link::fragment_pairs(link)?;
    let get = |key: &str| pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
    match get("v") {
        None => {
            return Err(EngineError::BadLink(
                "the link has no version (`v=`); it may be truncated".into(),
            ))
        }
        Some(v) => match v.parse::<u32>() {
            Ok(SAE_LINK_VERSION) => {}
            Ok(n) if n > SAE_LINK_VERSION => {
                return Err(EngineError::BadLink(format!(
                    "the link is version {n}, newer than this build reads ({SAE_LINK_VERSION}); update mechlab"
                )))
            }
            _ => return Err(EngineError::BadLink(format!("`v={v}` is not a link version"))),
        },
    }
    if let Some(lab) = get("lab") {
        if lab != "sae" {
            return Err(EngineError::BadLink(format!(
                "this link is for the {lab} lab, not the SAE lab"
            )));
        }
    }
    // Start from the defaults of the kinds the link names, then overlay its fields.
    let mut cfg = SaeConfig::default();
    if let Some(kind) = get("a.kind") {
        cfg.architecture = Architecture::by_name(kind)
            .map_err(|e| EngineError::BadLink(format!("`a.kind={kind}`: {e}")))?;
    }
    if let Some(kind) = get("s.kind") {
        cfg.source = default_source(kind)?;
    }
    if let (Some(kind), SourceConfig::GroundTruth { magnitude, .. }) =
        (get("s.magnitude.kind"), &mut cfg.source)
    {
        *magnitude = default_magnitude(kind)?;
    }
    let mut root = serde_json::to_value(&cfg).expect("configs serialise");
    for &(k, v) in &pairs {
        if k == "v" || k == "lab" || k.ends_with("kind") {
            continue;
        }
        set_path(&mut root, k, typed(v))?;
    }
    let cfg: SaeConfig = serde_json::from_value(root)
        .map_err(|e| EngineError::BadLink(format!("a field has the wrong type: {e}")))?;
    cfg.validate()
        .map_err(|e| EngineError::BadLink(e.to_string()))?;
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sae::config::{ARCHITECTURE_NAMES, SAE_PRESETS};

    #[test]
    fn every_preset_and_architecture_round_trips() {
        for p in SAE_PRESETS {
            let cfg = p.config();
            assert_eq!(decode(&encode(&cfg)).unwrap(), cfg, "{}", p.name());
        }
        for name in ARCHITECTURE_NAMES {
            let mut cfg = SaeConfig {
                architecture: Architecture::by_name(name).unwrap(),
                learning_rate: 3.7e-4,
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
            assert_eq!(decode(&link).unwrap(), cfg, "{name}");
        }
    }

    #[test]
    fn short_links_take_the_defaults_of_the_kinds_they_name() {
        let cfg = decode("v=1&a.kind=jumprelu&a.bandwidth=0.1&d_sae=256").unwrap();
        assert_eq!(cfg.d_sae, 256);
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
        assert!(err("v=1&d_sae=many").contains("wrong type"));
        assert!(err("v=1&a.kind=topk&a.k=5000").contains("k = 5000"));
        assert!(err("v=1&a.kind=relu_l1&a.l1_coefficient=-2").contains("l1_coefficient = -2"));
        assert!(err("v=1&d_sae").contains("not a key=value"));
    }
}
