//! The SAE lab's share link: every config field as a readable `key=value` pair, nested fields
//! dotted (`a.` for the architecture, `s.` for the source), versioned with `v=`:
//! `v=1&lab=sae&a.kind=topk&a.k=16&…&s.kind=ground_truth&s.d=64&…&d_sae=1024&seed=0`.
//!
//! Fields a link leaves out take the defaults of the architecture or source kind it names, so
//! a short hand-written link works; a field this build does not know is refused by name.

use crate::error::{EngineError, Result};
use crate::models::sae::config::{
    Architecture, Magnitude, SaeConfig, SaePreset, SourceConfig, ARCHITECTURE_NAMES,
};
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
        // Configs hold f32s, which serde widens to f64 (0.02 becomes 0.019999999552965164);
        // the f32's own shortest spelling reads back to the same value.
        Value::Number(n) if n.is_f64() => {
            let v = n.as_f64().unwrap_or(f64::NAN);
            let short = v as f32;
            let text = if short as f64 == v {
                short.to_string()
            } else {
                v.to_string()
            };
            out.push((prefix.to_string(), text))
        }
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

/// Encodes a config as a link fragment (without the leading `#`).
pub fn encode(cfg: &SaeConfig) -> String {
    let body: Vec<String> = pairs(cfg).iter().map(|(k, v)| format!("{k}={v}")).collect();
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
    let unknown = || EngineError::BadLink(format!("unknown field `{key}`"));
    let parts: Vec<&str> = key.split('.').collect();
    let mut node = root;
    for (i, part) in parts.iter().enumerate() {
        let part = match (i, *part) {
            (0, "a") => "architecture",
            (0, "s") => "source",
            (_, p) => p,
        };
        let obj = node.as_object_mut().ok_or_else(unknown)?;
        if i + 1 == parts.len() {
            let old = obj.get(part).ok_or_else(unknown)?;
            check_type(key, old, &value)?;
            obj.insert(part.to_string(), value);
            return Ok(());
        }
        node = obj.get_mut(part).ok_or_else(unknown)?;
    }
    Ok(())
}

/// Refuses a value of another type than the field's default holds, naming the field (serde's
/// own message would not say which field it was).
fn check_type(key: &str, old: &Value, new: &Value) -> Result<()> {
    let why = match old {
        Value::Number(n) if n.is_u64() && !new.is_u64() => "must be a whole number",
        Value::Number(_) if !new.is_number() => "must be a number",
        Value::Bool(_) if !new.is_boolean() => "must be true or false",
        _ => return Ok(()),
    };
    let shown = match new {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    Err(EngineError::BadLink(format!("`{key}={shown}`: {why}")))
}

/// What a link trains: one SAE, or the MSE-vs-L0 frontier over the sparsity sweeps of some
/// architectures.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Sweep {
    /// One run of the config.
    #[default]
    Single,
    /// The frontier of these architectures (names from [`ARCHITECTURE_NAMES`], in that order).
    Frontier(Vec<&'static str>),
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
        }
    }

    /// Reads [`Sweep::encode`]'s spelling (`single` too).
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
            _ => Err(bad("expected single, frontier or frontier:NAME,NAME".into())),
        }
    }
}

/// Encodes a config and its sweep as a link fragment (without the leading `#`).
pub fn encode_experiment(cfg: &SaeConfig, sweep: &Sweep) -> String {
    match sweep.encode() {
        Some(s) => format!("{}&sweep={s}", encode(cfg)),
        None => encode(cfg),
    }
}

/// Decodes a whole URL, a fragment or a query string into a validated config and its sweep.
pub fn decode(link: &str) -> Result<(SaeConfig, Sweep)> {
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
    let body: Vec<(&str, &str)> = pairs
        .iter()
        .copied()
        .filter(|(k, _)| *k != "v" && *k != "lab")
        .collect();
    from_pairs(&body).map_err(|e| match e {
        EngineError::BadLink(_) => e,
        other => EngineError::BadLink(other.to_string()),
    })
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
    for &(k, v) in pairs {
        if k == "sweep" || k.ends_with("kind") {
            continue;
        }
        set_path(&mut root, k, typed(v.trim()))?;
    }
    let cfg: SaeConfig = serde_json::from_value(root)
        .map_err(|e| EngineError::BadLink(format!("a field has the wrong type: {e}")))?;
    cfg.validate()?;
    Ok((cfg, sweep))
}

/// A config from JSON (a config file): as a link, fields left out take the defaults of the
/// architecture, source and magnitude kinds it names, and errors name the field.
pub fn from_json(v: &Value) -> Result<SaeConfig> {
    if !v.is_object() {
        return Err(EngineError::BadConfigFile(
            "a config must be a JSON object".into(),
        ));
    }
    let mut pairs = vec![];
    flatten("", v, &mut pairs);
    let borrowed: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    if borrowed.iter().any(|(k, _)| *k == "sweep") {
        return Err(EngineError::BadConfigFile(
            "unknown field `sweep`: a config file holds one SAE; use a link or the frontier preset for sweeps".into(),
        ));
    }
    // The pairs go through the link decoder, whose errors say "bad link"; here the file is
    // what is bad.
    from_pairs(&borrowed)
        .map(|(cfg, _)| cfg)
        .map_err(|e| match e {
            EngineError::BadLink(m) => EngineError::BadConfigFile(m),
            other => other,
        })
}

/// A config's fields as `(key, value)` pairs in the link's spelling and order: what the page's
/// controls edit.
pub fn pairs(cfg: &SaeConfig) -> Vec<(String, String)> {
    let mut out = vec![];
    flatten(
        "",
        &serde_json::to_value(cfg).expect("configs serialise"),
        &mut out,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::sae::config::{ARCHITECTURE_NAMES, SAE_PRESETS};

    #[test]
    fn every_preset_and_architecture_round_trips() {
        for p in SAE_PRESETS {
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
}
