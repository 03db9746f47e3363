//! How the Transformer lab's run is spelled in links and config files: dotted keys for the
//! model and the tokenizer (`model.act_fn=gelu`, `tokenizer.kind=bpe&tokenizer.vocab_size=2048`),
//! the rest by name, through the one link codec ([`crate::experiment::link`]). `vs=gelu` (or the one sweep
//! syntax, `sweep=model.act_fn:solu_ln,gelu`) trains a second model beside the first,
//! identical but for its MLP activation (the `solu-vs-gelu` preset).

use crate::data::text::{TokenizerKind, TOKENIZER_CHOICES};
use crate::error::{EngineError, Result};
use crate::experiment::link::{self, LinkConfig};
use crate::experiment::sweep::KeySweep;
use crate::models::transformer::fields::LM_FIELDS;
use crate::models::transformer::lm::{LmConfig, LmPreset};
use crate::models::transformer::Activation;

/// A BPE vocabulary's size when a link names BPE without one.
pub const DEFAULT_BPE_VOCAB: u32 = 1024;

impl LinkConfig for LmConfig {
    const LAB: &'static str = "lm";
    const TITLE: &'static str = "Transformer";
    const WRITES_LAB: bool = true;
    const EXTRA_KEYS: &'static [&'static str] = &["vs", "sweep"];
    const FIELDS: &'static [crate::experiment::fields::Field] = LM_FIELDS;

    fn decode_field(key: &str, text: &str) -> Option<Result<serde_json::Value>> {
        (key == "model.act_fn").then(|| {
            Activation::by_name(text)
                .map(|a| serde_json::Value::String(a.name().into()))
                .map_err(|_| {
                    EngineError::BadLink(format!(
                        "`{key}={text}`: the activation must be {}",
                        crate::models::transformer::config::names()
                    ))
                })
        })
    }

    fn set_kind(&mut self, key: &str, kind: &str) -> Result<()> {
        match (key, kind) {
            ("tokenizer.kind", "char") => self.tokenizer = TokenizerKind::Char,
            ("tokenizer.kind", "bpe") => {
                self.tokenizer = TokenizerKind::Bpe {
                    vocab_size: DEFAULT_BPE_VOCAB,
                }
            }
            ("tokenizer.kind", other) => {
                return Err(EngineError::BadLink(format!(
                    "`tokenizer.kind={other}`: the tokenizer must be {}",
                    crate::experiment::fields::one_of(TOKENIZER_CHOICES)
                )))
            }
            _ => return Err(EngineError::BadLink(format!("unknown field `{key}`"))),
        }
        Ok(())
    }

    fn validate(&self) -> Result<()> {
        LmConfig::validate(self)
    }
}

/// An experiment: the run, and the activation of a second model trained beside it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LmExperiment {
    /// The run (the first model).
    pub run: LmConfig,
    /// A second model, identical but for this MLP activation, trained side by side on the same
    /// batches.
    pub vs: Option<Activation>,
}

impl crate::experiment::lab::LabExperiment for LmExperiment {
    type Config = LmConfig;

    fn decode(text: &str) -> Result<Self> {
        LmExperiment::decode(text)
    }

    fn encode(&self) -> String {
        LmExperiment::encode(self)
    }

    /// A pair trains side by side: the run's steps.
    fn total_steps(&self) -> u32 {
        self.run.steps
    }
}

impl LmExperiment {
    /// The runs it trains: one, or the pair (the first model's activation first).
    pub fn runs(&self) -> Vec<LmConfig> {
        let mut runs = vec![self.run.clone()];
        if let Some(act_fn) = self.vs {
            let mut other = self.run.clone();
            other.model.act_fn = act_fn;
            runs.push(other);
        }
        runs
    }

    /// The experiment a preset trains.
    pub fn preset(p: LmPreset) -> Self {
        let mut runs = p.runs().into_iter();
        let run = runs.next().unwrap_or_default();
        Self {
            vs: runs.next().map(|r| r.model.act_fn),
            run,
        }
    }

    /// The link fragment (without `#`).
    pub fn encode(&self) -> String {
        match self.vs {
            Some(a) => link::encode(&self.run, &[("vs", a.name().to_string())]),
            None => link::encode(&self.run, &[]),
        }
    }

    /// Decodes a whole URL, a fragment or a query string. A pair is `vs=ACT` (what links
    /// write) or the one sweep syntax over its key, `sweep=model.act_fn:ACT,ACT`.
    pub fn decode(text: &str) -> Result<Self> {
        let d = link::decode::<LmConfig>(text)?;
        let extra = |key: &str| d.extra.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
        let vs = extra("vs").map(vs_activation).transpose()?;
        let e = match (extra("sweep"), vs) {
            (Some(_), Some(_)) => {
                return Err(EngineError::BadLink(
                    "`vs` and `sweep` both ask for a second model: keep one".into(),
                ))
            }
            (Some(s), None) => {
                let sweep = KeySweep::parse::<LmConfig>(s)?;
                if sweep.key != "model.act_fn" || sweep.values.len() != 2 {
                    return Err(EngineError::BadLink(format!(
                        "`sweep={s}`: the Transformer lab trains one model, or a pair identical \
                         but for the MLP's activation, side by side: sweep=model.act_fn:ACT,ACT"
                    )));
                }
                let mut runs = sweep.configs(&d.config)?.into_iter();
                let (run, twin) = (runs.next(), runs.next());
                Self {
                    run: run.expect("two values"),
                    vs: twin.map(|t| t.model.act_fn),
                }
            }
            (None, vs) => Self { run: d.config, vs },
        };
        e.check()?;
        Ok(e)
    }

    /// The experiment that hand-written `(key, text)` pairs describe (the page's controls,
    /// `vs` among them).
    pub fn from_fields(pairs: &[(&str, &str)]) -> Result<Self> {
        let vs = pairs
            .iter()
            .find(|(k, _)| *k == "vs")
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty() && *v != "none")
            .map(vs_activation)
            .transpose()
            .map_err(|e| match e {
                EngineError::BadLink(m) => EngineError::BadConfig(m),
                other => other,
            })?;
        let e = Self {
            run: link::from_fields(pairs)?,
            vs,
        };
        e.check()?;
        Ok(e)
    }

    fn check(&self) -> Result<()> {
        if self.vs == Some(self.run.model.act_fn) {
            return Err(EngineError::BadConfig(format!(
                "`vs={}`: the second model's activation must differ from the first's",
                self.run.model.act_fn.name()
            )));
        }
        Ok(())
    }
}

fn vs_activation(text: &str) -> Result<Activation> {
    Activation::by_name(text).map_err(|_| {
        EngineError::BadLink(format!(
            "`vs={text}`: the second model's activation must be {}",
            crate::models::transformer::config::names()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::link::{decode, from_json, LinkConfig};
    use crate::experiment::preset::LabPreset;

    #[test]
    fn runs_round_trip_through_links_and_json() {
        let mut c = LmConfig::default();
        c.model.act_fn = Activation::Gelu;
        c.tokenizer = TokenizerKind::Bpe { vocab_size: 2048 };
        c.learning_rate = 0.0012;
        let link = c.to_link();
        assert!(link.starts_with("v=1&lab=lm&"), "{link}");
        assert!(
            link.contains("model.act_fn=gelu") && link.contains("tokenizer.kind=bpe"),
            "{link}"
        );
        assert_eq!(LmConfig::from_link(&link).unwrap(), c);
        let short = decode::<LmConfig>("v=1&lab=lm&tokenizer.kind=bpe&steps=7")
            .unwrap()
            .config;
        assert_eq!(
            short.tokenizer,
            TokenizerKind::Bpe {
                vocab_size: DEFAULT_BPE_VOCAB
            }
        );
        assert_eq!(short.steps, 7);
        let json = serde_json::json!({"model": {"act_fn": "gelu_new", "n_layers": 2}});
        let from_file: LmConfig = from_json(&json).unwrap();
        assert_eq!(from_file.model.n_layers, 2);
        assert_eq!(from_file.model.act_fn, Activation::GeluNew);
        let err = LmConfig::from_link("v=1&lab=lm&tokenizer.kind=words")
            .unwrap_err()
            .to_string();
        assert!(err.contains("char or bpe"), "{err}");
        let err = LmConfig::from_link("v=1&lab=lm&model.act_fn=relu")
            .unwrap_err()
            .to_string();
        assert!(err.contains("act_fn"), "{err}");
        let err = LmConfig::from_link("v=1&lab=lm&beta2=1")
            .unwrap_err()
            .to_string();
        assert!(err.contains("beta2"), "{err}");
    }

    #[test]
    fn a_pair_round_trips_and_bad_pairs_are_named() {
        for &p in LmPreset::ALL {
            let e = LmExperiment::preset(p);
            assert_eq!(e.runs(), p.runs(), "{}", p.name());
            assert_eq!(LmExperiment::decode(&e.encode()).unwrap(), e);
        }
        let pair = LmExperiment::preset(LmPreset::SoluVsGelu);
        assert!(pair.encode().contains("vs=gelu"), "{}", pair.encode());
        let err = LmExperiment::decode("v=1&lab=lm&vs=relu")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`vs=relu`"), "{err}");
        let err = LmExperiment::decode("v=1&lab=lm&model.act_fn=gelu&vs=gelu")
            .unwrap_err()
            .to_string();
        assert!(err.contains("must differ"), "{err}");
        let e = LmExperiment::from_fields(&[("steps", "9"), ("vs", "none")]).unwrap();
        assert_eq!((e.run.steps, e.vs), (9, None));
    }

    #[test]
    fn a_pair_is_also_a_sweep_over_the_activation() {
        let pair = LmExperiment::preset(LmPreset::SoluVsGelu);
        let swept = pair.encode().replace(
            "model.act_fn=solu_ln",
            "model.act_fn=gelu_new&sweep=model.act_fn:solu_ln,gelu",
        );
        let swept = swept.replace("&vs=gelu", "");
        assert!(
            swept.contains("sweep=") && !swept.contains("vs="),
            "{swept}"
        );
        assert_eq!(LmExperiment::decode(&swept).unwrap(), pair);
        let err = |link: &str| LmExperiment::decode(link).unwrap_err().to_string();
        assert!(err("v=1&lab=lm&sweep=steps:10,20").contains("a pair identical"));
        assert!(err("v=1&lab=lm&sweep=model.act_fn:gelu,solu_ln,gelu_new").contains("a pair"));
        assert!(err("v=1&lab=lm&sweep=model.act_fn:gelu,relu").contains("at `relu`"));
        assert!(err("v=1&lab=lm&sweep=model.act_fn:gelu,solu_ln&vs=gelu").contains("keep one"));
    }
}
