//! The share-link codec: a config and its seed as a short, readable, versioned fragment,
//! `v=1&nf=5&nh=2&act=relu&imp=0.9&p=1,0.3,0.1&bs=1024&steps=10000&lr=0.001&seed=0`.
//! Decoding validates everything and names the first problem it finds.

use super::superposition::{Axis, SuperpositionConfig};
use crate::error::{EngineError, Result};

/// The link format this build writes and reads.
pub const LINK_VERSION: u32 = 1;

fn axis_to_str(a: &Axis) -> String {
    match a {
        Axis::List(v) => v.iter().map(f32::to_string).collect::<Vec<_>>().join(","),
        Axis::Range {
            from,
            to,
            count,
            log,
        } => {
            format!("{}:{from}:{to}:{count}", if *log { "log" } else { "lin" })
        }
    }
}

fn axis_from_str(key: &str, s: &str) -> Result<Axis> {
    let bad = |why: &str| EngineError::BadLink(format!("`{key}={s}`: {why}"));
    let parts: Vec<&str> = s.split(':').collect();
    match parts.as_slice() {
        [kind @ ("log" | "lin"), from, to, count] => Ok(Axis::Range {
            from: from.parse().map_err(|_| bad("the start is not a number"))?,
            to: to.parse().map_err(|_| bad("the end is not a number"))?,
            count: count
                .parse()
                .map_err(|_| bad("the count is not a whole number"))?,
            log: *kind == "log",
        }),
        [list] => list
            .split(',')
            .filter(|v| !v.is_empty())
            .map(|v| {
                v.parse::<f32>()
                    .map_err(|_| bad(&format!("`{v}` is not a number")))
            })
            .collect::<Result<Vec<_>>>()
            .map(Axis::List),
        _ => Err(bad("expected a comma-separated list or log:FROM:TO:COUNT")),
    }
}

/// Encodes a config as a link fragment (without the leading `#`).
pub fn encode(c: &SuperpositionConfig) -> String {
    let mut s = format!(
        "v={LINK_VERSION}&nf={}&nh={}&act={}&imp={}&p={}",
        c.n_features,
        c.n_hidden,
        if c.relu { "relu" } else { "linear" },
        c.importance_decay,
        axis_to_str(&c.feature_probability)
    );
    if let Some(r) = &c.relative_importance {
        s += &format!("&ri={}", axis_to_str(r));
    }
    s += &format!(
        "&bs={}&steps={}&lr={}&seed={}",
        c.batch_size, c.steps, c.learning_rate, c.seed
    );
    s
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

/// Decodes a whole URL, a fragment or a query string into a validated config. Fields the link
/// leaves out take their defaults.
pub fn decode(link: &str) -> Result<SuperpositionConfig> {
    let mut c = SuperpositionConfig::default();
    let mut version = None;
    for (k, v) in fragment_pairs(link)? {
        let num = |what: &str| EngineError::BadLink(format!("`{k}={v}`: {what}"));
        match k {
            "v" => {
                version = Some(
                    v.parse::<u32>()
                        .map_err(|_| num("the version is not a whole number"))?,
                )
            }
            "nf" => c.n_features = v.parse().map_err(|_| num("not a whole number"))?,
            "nh" => c.n_hidden = v.parse().map_err(|_| num("not a whole number"))?,
            "act" => {
                c.relu = match v {
                    "relu" => true,
                    "linear" => false,
                    _ => return Err(num("the activation must be relu or linear")),
                }
            }
            "imp" => c.importance_decay = v.parse().map_err(|_| num("not a number"))?,
            "p" => c.feature_probability = axis_from_str(k, v)?,
            "ri" => c.relative_importance = Some(axis_from_str(k, v)?),
            "bs" => c.batch_size = v.parse().map_err(|_| num("not a whole number"))?,
            "steps" => c.steps = v.parse().map_err(|_| num("not a whole number"))?,
            "lr" => c.learning_rate = v.parse().map_err(|_| num("not a number"))?,
            "seed" => c.seed = v.parse().map_err(|_| num("not a whole number"))?,
            _ => return Err(EngineError::BadLink(format!("unknown field `{k}`"))),
        }
    }
    match version {
        None => return Err(EngineError::BadLink("no version (`v=`): this is not a mechlab link".into())),
        Some(v) if v > LINK_VERSION => {
            return Err(EngineError::BadLink(format!(
                "the link was made by a newer mechlab (format {v}); this one reads format {LINK_VERSION}"
            )))
        }
        Some(0) => return Err(EngineError::BadLink("format version 0 does not exist".into())),
        Some(_) => {}
    }
    c.validate()
        .map_err(|e| EngineError::BadLink(format!("the link's experiment is invalid: {e}")))?;
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::superposition::Preset;

    #[test]
    fn every_preset_round_trips() {
        for p in Preset::ALL {
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
        ];
        for (link, want) in cases {
            let err = decode(link).unwrap_err().to_string();
            assert!(err.contains(want), "{link:?} gave {err:?}, wanted {want:?}");
            assert!(err.starts_with("bad link"), "{err}");
        }
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
