//! The one share-link codec every lab's config goes through: a versioned, readable fragment of
//! `key=value` pairs, nested fields dotted, a lab's short names for its top-level fields, and
//! fields left out taking the defaults of the kinds the link names:
//!
//! - Superposition: `v=1&nf=5&nh=2&act=relu&imp=0.9&p=1,0.3,0.1&bs=1024&steps=10000&lr=0.001&seed=0`
//!   (its links predate `lab=` and still carry none);
//! - SAE: `v=1&lab=sae&a.kind=topk&a.k=16&…&s.kind=ground_truth&s.d=64&…&d_sae=1024&seed=0`.
//!
//! A lab describes its spelling once ([`LinkConfig`]); encoding walks the config's serde form,
//! decoding starts from the defaults (and those of each `…kind` the link names), sets each field
//! with its type checked, then validates. Errors name the field as the link spells it. The same
//! path reads JSON config files ([`from_json`]), so `--config` means the same for every lab.

use super::fields::Field;
use crate::error::{EngineError, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// The link format this build writes and reads.
pub const LINK_VERSION: u32 = 1;

/// How a lab's config is spelled in a link.
pub trait LinkConfig: Serialize + DeserializeOwned + Default {
    /// The lab's name in `lab=`.
    const LAB: &'static str;
    /// Its name in messages.
    const TITLE: &'static str;
    /// Whether links carry `lab=` (the Superposition lab's never did).
    const WRITES_LAB: bool;
    /// Short link keys for top-level fields, `(field, key)`.
    const ALIASES: &'static [(&'static str, &'static str)] = &[];
    /// Link keys that are not config fields; the lab reads them itself (such as `sweep`).
    const EXTRA_KEYS: &'static [&'static str] = &[];
    /// Every field's key, error name, label, hint and range, in the page's order.
    const FIELDS: &'static [Field];
    /// Whether links list top-level fields in [`LinkConfig::FIELDS`] order (by field name), as
    /// a lab's links did before this codec; otherwise in name order, as the config's serde form
    /// has them.
    const LINK_IN_FIELD_ORDER: bool = false;

    /// The link key of a top-level field, when the lab shortens it ([`LinkConfig::ALIASES`]).
    fn short_key(field: &str) -> Option<&'static str> {
        Self::ALIASES
            .iter()
            .find(|(long, _)| *long == field)
            .map(|(_, short)| *short)
    }

    /// The top-level field a shortened link key names.
    fn field_of(key: &str) -> Option<&'static str> {
        Self::ALIASES
            .iter()
            .find(|(_, short)| *short == key)
            .map(|(long, _)| *long)
    }

    /// The spelling of a field that has its own (by link key), from its serde form.
    fn encode_field(_key: &str, _value: &Value) -> Option<String> {
        None
    }

    /// The serde form of a field that has its own spelling, or `None` for the plain ones.
    fn decode_field(_key: &str, _text: &str) -> Option<Result<Value>> {
        None
    }

    /// Replaces the part of the config that a `…kind` key names with that kind's defaults.
    fn set_kind(&mut self, key: &str, kind: &str) -> Result<()> {
        let _ = kind;
        Err(unknown_field(key))
    }

    /// Every check the lab runs before training.
    fn validate(&self) -> Result<()>;

    /// The config as a link fragment ([`encode`] with no extra pairs).
    fn to_link(&self) -> String
    where
        Self: Sized,
    {
        encode(self, &[])
    }

    /// The config a link holds ([`decode`], ignoring the lab's extra pairs).
    fn from_link(link: &str) -> Result<Self>
    where
        Self: Sized,
    {
        decode(link).map(|d| d.config)
    }
}

fn unknown_field(key: &str) -> EngineError {
    EngineError::BadLink(format!("unknown field `{key}`"))
}

/// The `key=value` pairs of a whole URL, its fragment or a query string (every lab's links
/// share this shape), refusing an empty link and a part that is not a pair.
pub fn fragment_pairs(link: &str) -> Result<Vec<(&str, &str)>> {
    let link = link.trim();
    let body = match (link.find('#'), link.find('?')) {
        (Some(i), _) => &link[i + 1..],
        (None, Some(i)) => &link[i + 1..],
        (None, None) => link,
    };
    if body.is_empty() {
        return Err(EngineError::BadLink(
            "the link is empty: it carries no settings after `#`".into(),
        ));
    }
    body.split('&')
        .filter(|p| !p.is_empty())
        .map(|part| {
            part.split_once('=')
                .ok_or_else(|| EngineError::BadLink(format!("`{part}` is not a key=value pair")))
        })
        .collect()
}

/// Refuses a key given twice, naming the first (a link's fields are a set: which one a reader
/// takes is not something to leave to chance).
fn check_repeats(pairs: &[(&str, &str)]) -> Result<()> {
    for (i, (k, first)) in pairs.iter().enumerate() {
        if let Some((_, again)) = pairs[i + 1..].iter().find(|(k2, _)| k2 == k) {
            return Err(EngineError::BadLink(format!(
                "`{k}={first}`: `{k}` is given again later (`{k}={again}`); a link gives each \
                 field once"
            )));
        }
    }
    Ok(())
}

/// The lab a link's `lab=` names, `None` when it names none.
pub fn lab_of<'a>(pairs: &[(&str, &'a str)]) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| *k == "lab").map(|(_, v)| *v)
}

/// Refuses a link without a version or from a newer format.
fn check_version(pairs: &[(&str, &str)]) -> Result<()> {
    let Some((_, v)) = pairs.iter().find(|(k, _)| *k == "v") else {
        return Err(EngineError::BadLink(
            "no version (`v=`): the link is truncated, or is not a mechlab link".into(),
        ));
    };
    match v.parse::<u32>() {
        Ok(n) if n > LINK_VERSION => Err(EngineError::BadLink(format!(
            "the link was made by a newer mechlab (format {n}); this one reads format \
             {LINK_VERSION}: update mechlab"
        ))),
        Ok(n) if n >= 1 => Ok(()),
        _ => Err(EngineError::BadLink(format!(
            "`v={v}` is not a link format (this mechlab reads format {LINK_VERSION})"
        ))),
    }
}

/// Encodes a config as a link fragment (without the leading `#`), with the lab's `extra`
/// pairs (a sweep, say) at the end.
pub fn encode<C: LinkConfig>(cfg: &C, extra: &[(&str, String)]) -> String {
    let mut out = format!("v={LINK_VERSION}");
    if C::WRITES_LAB {
        out += &format!("&lab={}", C::LAB);
    }
    for (k, v) in pairs(cfg) {
        out += &format!("&{k}={v}");
    }
    for (k, v) in extra {
        out += &format!("&{k}={v}");
    }
    out
}

/// A config's fields as `(key, value)` pairs in the link's spelling and order: what links hold
/// and what the page's controls edit. Fields that are `None` are left out.
pub fn pairs<C: LinkConfig>(cfg: &C) -> Vec<(String, String)> {
    let mut out = vec![];
    flatten::<C>(
        "",
        &serde_json::to_value(cfg).expect("configs serialise"),
        &mut out,
    );
    out
}

fn flatten<C: LinkConfig>(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    if let Some(text) = C::encode_field(prefix, v) {
        out.push((prefix.to_string(), text));
        return;
    }
    match v {
        Value::Object(m) => {
            let mut fields: Vec<(&String, &Value)> = m.iter().collect();
            if prefix.is_empty() && C::LINK_IN_FIELD_ORDER {
                let rank = |k: &str| C::FIELDS.iter().position(|f| f.name == k);
                fields.sort_by_key(|(k, _)| rank(k).unwrap_or(usize::MAX));
            }
            for (k, v) in fields {
                let key = if prefix.is_empty() {
                    C::short_key(k).map_or(k.clone(), str::to_string)
                } else {
                    format!("{prefix}.{k}")
                };
                flatten::<C>(&key, v, out);
            }
        }
        Value::Null => {}
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

/// A value's JSON type from its text: whole numbers, then numbers (read as f32, as every
/// config's real fields are), then true and false, then text.
fn typed(s: &str) -> Value {
    if let Ok(u) = s.parse::<u64>() {
        return u.into();
    }
    if let Ok(i) = s.parse::<i64>() {
        return i.into();
    }
    if let Ok(f) = s.parse::<f32>() {
        if let Some(n) = serde_json::Number::from_f64(f as f64) {
            return Value::Number(n);
        }
    }
    match s {
        "true" => true.into(),
        "false" => false.into(),
        _ => Value::String(s.to_string()),
    }
}

fn set_path<C: LinkConfig>(root: &mut Value, key: &str, value: Value, checked: bool) -> Result<()> {
    let parts: Vec<&str> = key.split('.').collect();
    let mut node = root;
    for (i, part) in parts.iter().enumerate() {
        let part = if i == 0 {
            C::field_of(part).unwrap_or(part)
        } else {
            part
        };
        let obj = node.as_object_mut().ok_or_else(|| unknown_field(key))?;
        if i + 1 == parts.len() {
            let old = obj.get(part).ok_or_else(|| unknown_field(key))?;
            if checked {
                if let Some(why) = type_error(old, &value) {
                    let shown = match &value {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    // A shortened top-level key also names its field, as the page's controls do.
                    let field = match parts.as_slice() {
                        [top] => C::field_of(top).map_or(String::new(), |f| format!(" ({f})")),
                        _ => String::new(),
                    };
                    return Err(EngineError::BadLink(format!(
                        "`{key}={shown}`{field}: {why}"
                    )));
                }
            }
            obj.insert(part.to_string(), value);
            return Ok(());
        }
        node = obj.get_mut(part).ok_or_else(|| unknown_field(key))?;
    }
    Ok(())
}

/// Why a value of another type than the field's default holds is refused (the caller names the
/// field; serde's own message would not say which field it was).
fn type_error(old: &Value, new: &Value) -> Option<&'static str> {
    match old {
        Value::Number(n) if n.is_u64() && !new.is_u64() => Some("must be a whole number"),
        Value::Number(_) if !new.is_number() => Some("must be a number"),
        Value::Bool(_) if !new.is_boolean() => Some("must be true or false"),
        _ => None,
    }
}

/// The config that `key=value` pairs in the link's spelling describe (without `v` and `lab`):
/// it starts from the defaults, and from those of each `…kind` named (shallowest first), then
/// sets every other field, type-checked; the lab's extra keys are skipped. Errors from
/// validation come back as they are, so the page can mark the field they name.
pub fn from_pairs<C: LinkConfig>(pairs: &[(&str, &str)]) -> Result<C> {
    let mut cfg = C::default();
    let mut kinds: Vec<(&str, &str)> = pairs
        .iter()
        .copied()
        .filter(|(k, _)| *k == "kind" || k.ends_with(".kind"))
        .collect();
    kinds.sort_by_key(|(k, _)| k.matches('.').count());
    for (k, v) in kinds {
        cfg.set_kind(k, v.trim())?;
    }
    let mut root = serde_json::to_value(&cfg).expect("configs serialise");
    for &(k, v) in pairs {
        if C::EXTRA_KEYS.contains(&k) || k == "kind" || k.ends_with(".kind") {
            continue;
        }
        match C::decode_field(k, v.trim()) {
            Some(value) => set_path::<C>(&mut root, k, value?, false)?,
            None => set_path::<C>(&mut root, k, typed(v.trim()), true)?,
        }
    }
    let cfg: C = serde_json::from_value(root)
        .map_err(|e| EngineError::BadLink(format!("a field has the wrong type: {e}")))?;
    cfg.validate()?;
    Ok(cfg)
}

/// A decoded link: the config and the pairs the lab reads itself.
#[derive(Debug)]
pub struct Decoded<'a, C> {
    /// The validated config.
    pub config: C,
    /// The lab's [`LinkConfig::EXTRA_KEYS`] pairs, as the link holds them.
    pub extra: Vec<(&'a str, &'a str)>,
}

/// Decodes a whole URL, a fragment or a query string into a validated config. Fields the link
/// leaves out take their defaults; a link for another lab, without a version or from a newer
/// mechlab is refused, and every error reads "bad link: …".
pub fn decode<C: LinkConfig>(link: &str) -> Result<Decoded<'_, C>> {
    let pairs = fragment_pairs(link)?;
    check_version(&pairs)?;
    check_repeats(&pairs)?;
    if let Some(lab) = lab_of(&pairs) {
        let labs = super::lab::lab_names();
        if !labs.contains(&lab) {
            return Err(EngineError::BadLink(format!(
                "`lab={lab}`: there is no such lab; mechlab's labs are {}",
                labs.join(", ")
            )));
        }
        if lab != C::LAB {
            return Err(EngineError::BadLink(format!(
                "this link is for the {lab} lab, not the {} lab",
                C::TITLE
            )));
        }
    }
    let body: Vec<(&str, &str)> = pairs
        .iter()
        .copied()
        .filter(|(k, _)| *k != "v" && *k != "lab")
        .collect();
    let config = from_pairs::<C>(&body).map_err(|e| match e {
        EngineError::BadLink(_) => e,
        other => EngineError::BadLink(format!("the link's experiment is invalid: {other}")),
    })?;
    let extra = body
        .into_iter()
        .filter(|(k, _)| C::EXTRA_KEYS.contains(k))
        .collect();
    Ok(Decoded { config, extra })
}

/// A config from JSON (a config file), read as a link is: fields left out take the defaults of
/// the kinds it names, and errors name the field (as the link spells it) without saying "link".
pub fn from_json<C: LinkConfig>(v: &Value) -> Result<C> {
    if !v.is_object() {
        return Err(EngineError::BadConfig(
            "a config must be a JSON object".into(),
        ));
    }
    let mut pairs = vec![];
    flatten::<C>("", v, &mut pairs);
    let borrowed: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    if let Some((k, _)) = borrowed.iter().find(|(k, _)| C::EXTRA_KEYS.contains(k)) {
        return Err(EngineError::BadConfig(format!(
            "unknown field `{k}`: a config file holds one run; use a link or a preset for sweeps"
        )));
    }
    from_fields::<C>(&borrowed)
}

/// The config that text written by hand describes, as `(link key, text)` pairs (a config file's
/// fields, or the page's controls): [`from_pairs`], with the messages naming a field as they
/// are, not as a bad link.
pub fn from_fields<C: LinkConfig>(pairs: &[(&str, &str)]) -> Result<C> {
    from_pairs::<C>(pairs).map_err(|e| match e {
        EngineError::BadLink(m) => EngineError::BadConfig(m),
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::preset::LabPreset;
    use crate::models::toy::config::{Preset, SuperpositionConfig};

    // The Superposition lab's links, as the codec written for them alone read them.
    fn encode(c: &SuperpositionConfig) -> String {
        super::encode(c, &[])
    }

    fn decode(link: &str) -> Result<SuperpositionConfig> {
        super::decode(link).map(|d| d.config)
    }

    #[test]
    fn every_preset_round_trips() {
        for &p in Preset::ALL {
            let mut c = p.config();
            c.seed = 12345678901;
            c.learning_rate = 0.0123;
            let link = format!("https://example.org/superposition#{}", encode(&c));
            assert_eq!(decode(&link).unwrap(), c, "{link}");
        }
    }

    #[test]
    fn bad_links_say_what_is_wrong() {
        let cases = [
            ("", "empty"),
            ("#", "empty"),
            ("#garbage", "key=value"),
            ("#v=1&nf=abc", "nf=abc"),
            ("#v=1&zz=3", "unknown field `zz`"),
            ("#nf=5", "no version"),
            ("#v=99&nf=5", "newer mechlab"),
            ("#v=1&lr=-1", "learning_rate"),
            ("#v=1&p=", "no points"),
            ("#v=1&p=log:1:0.1", "log:FROM:TO:COUNT"),
            ("#v=1&nf=100000000", "n_features"),
            ("#v=1&act=tanh", "relu or linear"),
            (
                "#v=1&nf=5&nh=2&nf=7",
                "`nf=5`: `nf` is given again later (`nf=7`)",
            ),
        ];
        for (link, want) in cases {
            let err = decode(link).unwrap_err().to_string();
            assert!(err.contains(want), "{link:?} gave {err:?}, wanted {want:?}");
            assert!(err.starts_with("bad link"), "{err}");
        }
    }

    #[test]
    fn links_saved_before_the_shared_codec_open_as_they_did() {
        // Written by the Superposition lab's own codec (commit 015629d) and by the SAE lab's.
        let old = "v=1&nf=20&nh=5&act=relu&imp=1&p=log:1:0.01:12&ri=lin:0.1:10:5&bs=1024&steps=5000&lr=0.001&seed=3";
        let c = decode(old).unwrap();
        assert_eq!((c.n_features, c.n_hidden, c.relu, c.seed), (20, 5, true, 3));
        assert_eq!(c.learning_rate, 0.001);
        assert_eq!(
            c.feature_probability,
            crate::models::toy::config::Axis::Range {
                from: 1.0,
                to: 0.01,
                count: 12,
                log: true
            }
        );
        assert_eq!(encode(&c), old, "the same link is written back");
        // The phase-diagram preset as the old codec wrote it.
        let phase = "v=1&nf=2&nh=1&act=relu&imp=1&p=log:1:0.01:40&ri=log:0.1:10:40&bs=1024&steps=10000&lr=0.001&seed=0";
        assert_eq!(decode(phase).unwrap(), Preset::PhaseDiagram.config());
        assert_eq!(encode(&Preset::PhaseDiagram.config()), phase);
        let linear = decode("#v=1&nf=3&nh=2&act=linear&p=0.5,0.25").unwrap();
        assert!(!linear.relu);
        assert_eq!(linear.relative_importance, None);
        assert!(
            !encode(&linear).contains("ri="),
            "no relative importance, no `ri`"
        );
        // A lab name that is no lab, and the SAE lab's links, are named as such.
        let err = decode("#v=1&lab=nonsense").unwrap_err().to_string();
        assert!(
            err.contains("`lab=nonsense`: there is no such lab"),
            "{err}"
        );
        assert!(!err.contains("unknown field"), "{err}");
        let err = decode("#v=1&lab=sae&d_sae=4").unwrap_err().to_string();
        assert!(err.contains("sae lab"), "{err}");
    }

    #[test]
    fn truncated_links_fail_or_decode_valid_configs() {
        let full = encode(&Preset::PhaseDiagram.config());
        for cut in 0..full.len() {
            if let Ok(c) = decode(&full[..cut]) {
                c.validate().unwrap();
            }
        }
    }
}
