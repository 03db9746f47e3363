//! Opening a link with a bad field or two: every valid field is kept, each field that had to be
//! replaced is named with what replaced it, and only a link with no usable structure (empty,
//! without a version, for another lab) falls back to the lab's defaults as a whole.
//!
//! Decoding stays strict ([`super::link::decode`] refuses the whole link at its first bad
//! field, as the CLI wants); this wraps any lab's strict decoder. It drops the pair each error
//! blames, one at a time, until the rest decodes. An error blames the pair whose key it spells
//! (`` `lr=-0.01` ``, `` unknown field `zz` ``) or whose field it names (validation's
//! `n_features`, through [`LinkConfig::FIELDS`]); when none is named, the first pair whose
//! removal alone lets the link decode.

use super::link::{fragment_pairs, LinkConfig};
use crate::error::{EngineError, Result};

/// A field a link held that could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replaced {
    /// Its key, as the link spells it.
    pub key: String,
    /// The value the link gave it.
    pub given: String,
    /// Why it was refused (the strict decoder's message).
    pub why: String,
}

/// What a link decodes to once its bad fields are dropped.
#[derive(Debug)]
pub struct Repaired<T> {
    /// The decoded experiment.
    pub value: T,
    /// The fields that were dropped, in the link's order; empty when the link was sound.
    pub replaced: Vec<Replaced>,
}

/// Decodes `link` with the strict `decode`, dropping the fields it refuses (see the module's
/// doc). Fails with the strict error when the link has no usable structure: what remains
/// without any of its fields (`v=` and `lab=` alone) does not decode.
pub fn repair<C: LinkConfig, T>(
    link: &str,
    decode: impl Fn(&str) -> Result<T>,
) -> Result<Repaired<T>> {
    let first = match decode(link) {
        Ok(value) => {
            return Ok(Repaired {
                value,
                replaced: vec![],
            })
        }
        Err(e) => e,
    };
    let all = fragment_pairs(link).map_err(|_| first.clone())?;
    let (head, mut body): (Vec<_>, Vec<_>) =
        all.into_iter().partition(|(k, _)| *k == "v" || *k == "lab");
    let join = |pairs: &[(&str, &str)]| {
        head.iter()
            .chain(pairs)
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    };
    if decode(&join(&[])).is_err() {
        return Err(first);
    }
    let mut replaced = Vec::new();
    let mut err = first;
    loop {
        if body.is_empty() {
            return Err(err);
        }
        let i = blamed::<C>(&err, &body)
            .or_else(|| (0..body.len()).find(|&i| decode(&join(&without(&body, i))).is_ok()))
            // Nothing singled out: drop from the end until what is left decodes.
            .unwrap_or(body.len() - 1);
        let (key, given) = body.remove(i);
        replaced.push(Replaced {
            key: key.to_string(),
            given: given.to_string(),
            why: reason(&err, key, given),
        });
        match decode(&join(&body)) {
            Ok(value) => return Ok(Repaired { value, replaced }),
            Err(e) => err = e,
        }
    }
}

fn without<'a>(pairs: &[(&'a str, &'a str)], i: usize) -> Vec<(&'a str, &'a str)> {
    let mut out = pairs.to_vec();
    out.remove(i);
    out
}

/// The error's text without the "bad link: " every link error starts with.
fn message(e: &EngineError) -> String {
    match e {
        EngineError::BadLink(m) => m.clone(),
        other => other.to_string(),
    }
}

/// Why `key=given` could not be used, without repeating the pair (the sentence names it):
/// "learning_rate must be positive" rather than "`lr=-0.01` (learning_rate): must be
/// positive".
fn reason(e: &EngineError, key: &str, given: &str) -> String {
    if let EngineError::InvalidConfig { field, reason, .. } = e {
        return format!("{field} {reason}");
    }
    let text = message(e);
    // Validation's error as the link decoder wraps it: "… invalid config: field = value: why".
    if let Some((field, rest)) = text
        .strip_prefix("the link's experiment is invalid: invalid config: ")
        .and_then(|r| r.split_once(" = "))
    {
        if let Some((_, why)) = rest.split_once(": ") {
            return format!("{field} {why}");
        }
    }
    if text == format!("unknown field `{key}`") {
        return "this lab has no such field".into();
    }
    let Some(rest) = text.strip_prefix(&format!("`{key}={given}`")) else {
        return text;
    };
    let rest = rest.trim_start();
    // "(field): why", as a link names a shortened key's field.
    if let Some((field, why)) = rest.strip_prefix('(').and_then(|r| r.split_once("): ")) {
        return format!("{field} {why}");
    }
    rest.trim_start_matches(':').trim_start().to_string()
}

/// The pair an error names: by its key as the link spells it, or by the field validation names.
fn blamed<C: LinkConfig>(e: &EngineError, pairs: &[(&str, &str)]) -> Option<usize> {
    if let EngineError::InvalidConfig { field, .. } = e {
        let by_name = pairs.iter().position(|(k, _)| {
            *k == *field || C::FIELDS.iter().any(|f| f.name == *field && f.key == *k)
        });
        if by_name.is_some() {
            return by_name;
        }
    }
    let text = message(e);
    pairs
        .iter()
        .position(|(k, _)| text.contains(&format!("`{k}=")) || text.contains(&format!("`{k}`")))
}

/// One sentence for the page: which fields were replaced, why, and by what (`now` gives a
/// key's value in the decoded experiment, as the link spells it).
pub fn describe(replaced: &[Replaced], now: impl Fn(&str) -> Option<String>) -> String {
    let parts: Vec<String> = replaced
        .iter()
        .map(|r| {
            let used = now(&r.key).map_or("the default".to_string(), |v| format!("`{v}`"));
            format!("`{}={}` was replaced by {used}: {}", r.key, r.given, r.why)
        })
        .collect();
    format!(
        "this link had {} that could not be used, and kept the rest: {}",
        if replaced.len() == 1 {
            "a field".to_string()
        } else {
            format!("{} fields", replaced.len())
        },
        parts.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::toy::config::SuperpositionConfig;

    fn open(link: &str) -> Result<Repaired<SuperpositionConfig>> {
        repair::<SuperpositionConfig, _>(link, SuperpositionConfig::from_link)
    }

    #[test]
    fn valid_fields_are_kept_and_each_bad_one_is_named() {
        let r = open("#v=1&nf=7&nh=3&lr=-0.01&seed=5").unwrap();
        assert_eq!(
            (r.value.n_features, r.value.n_hidden, r.value.seed),
            (7, 3, 5)
        );
        assert_eq!(
            r.value.learning_rate,
            SuperpositionConfig::default().learning_rate
        );
        assert_eq!(r.replaced.len(), 1);
        assert_eq!(
            (r.replaced[0].key.as_str(), r.replaced[0].given.as_str()),
            ("lr", "-0.01")
        );

        let r = open("#v=1&nf=7&zz=3&nh=x&seed=5").unwrap();
        let keys: Vec<&str> = r.replaced.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["zz", "nh"]);
        assert_eq!((r.value.n_features, r.value.seed), (7, 5));
        let text = describe(&r.replaced, |k| (k == "nh").then(|| "2".to_string()));
        assert!(text.contains("2 fields"), "{text}");
        assert!(text.contains("`nh=x` was replaced by `2`"), "{text}");
        assert!(
            text.contains("`zz=3` was replaced by the default: this lab has no such field"),
            "{text}"
        );
        // A field given twice keeps the later value and says so.
        let r = open("#v=1&nf=5&nh=2&nf=7").unwrap();
        assert_eq!((r.value.n_features, r.value.n_hidden), (7, 2));
        let text = describe(&r.replaced, |_| Some("7".into()));
        assert!(
            text.contains("`nf=5` was replaced by `7`: `nf` is given again later"),
            "{text}"
        );
        // Each reason says what is wrong once, without repeating the pair.
        let r = open("#v=1&nf=7&lr=-0.01").unwrap();
        let text = describe(&r.replaced, |_| Some("0.001".into()));
        assert_eq!(text.matches("lr=").count(), 1, "{text}");
        assert!(
            text.ends_with("was replaced by `0.001`: learning_rate must be a positive number"),
            "{text}"
        );
    }

    #[test]
    fn sound_links_replace_nothing_and_broken_ones_still_fail() {
        assert!(open("#v=1&nf=6").unwrap().replaced.is_empty());
        for bad in [
            "#",
            "#nf=5",
            "#v=9&nf=5",
            "#v=1&lab=sae&nf=5",
            "#v=1&lab=nonsense",
        ] {
            assert!(open(bad).is_err(), "{bad}");
        }
    }
}
