//! Checkpoints in TransformerLens's layout: a folder that `HookedTransformer` loads.
//!
//! - `config.json`: the fields of `HookedTransformerConfig` (so
//!   `HookedTransformerConfig(**json.load(f))` reads it);
//! - `model.safetensors`: every parameter under its TransformerLens name, f32 (a strict
//!   `load_state_dict` needs only TransformerLens's own `attn.mask` and `attn.IGNORE` buffers
//!   added, which the model already holds: pass `strict=False` or merge them, see the README);
//! - `tokenizer.json`: the Hugging Face tokenizer;
//! - `mechlab.json` and `optimizer.safetensors`: the run's config, the step and Adam's moments
//!   (`m.<name>`, `v.<name>`), for resuming exactly. A folder without them still loads, as a
//!   model to look inside or to train on from its weights.
//!
//! Reading checks that the config is one mechlab can run (LayerNorm, learned positions, the
//! standard attention scale) and that every tensor is there with its shape; each refusal names
//! the key or tensor.

use super::safetensors::{f32_bytes, serialize_f32, to_f32};
use crate::error::{EngineError, Result};
use crate::models::transformer::config::{Activation, TransformerConfig, LN_EPS};
use crate::models::transformer::lm::{LmConfig, OptimizerState};
use crate::models::transformer::params::TransformerParams;
use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The file names of a checkpoint folder.
pub const CONFIG: &str = "config.json";
/// The parameters.
pub const MODEL: &str = "model.safetensors";
/// The tokenizer.
pub const TOKENIZER: &str = "tokenizer.json";
/// The run (mechlab's own).
pub const RUN: &str = "mechlab.json";
/// Adam's moments (mechlab's own).
pub const OPTIMIZER: &str = "optimizer.safetensors";

fn bad(m: String) -> EngineError {
    EngineError::BadModel(m)
}

/// `config.json` for a model: HookedTransformerConfig's fields.
pub fn hooked_config(cfg: &TransformerConfig) -> Value {
    json!({
        "n_layers": cfg.n_layers,
        "d_model": cfg.d_model,
        "n_ctx": cfg.n_ctx,
        "d_head": cfg.d_head,
        "n_heads": cfg.n_heads,
        "d_mlp": if cfg.attn_only { Value::Null } else { cfg.d_mlp.into() },
        "d_vocab": cfg.d_vocab,
        "d_vocab_out": cfg.d_vocab,
        "act_fn": cfg.act_fn.name(),
        "attn_only": cfg.attn_only,
        "normalization_type": "LN",
        "positional_embedding_type": "standard",
        "eps": 1e-5,
        "use_attn_scale": true,
        "attn_scale": (cfg.d_head as f64).sqrt(),
        "default_prepend_bos": false,
        "model_name": "mechlab",
    })
}

/// The model a `config.json` describes, refused when it asks for something mechlab does not
/// compute (RMSNorm, rotary positions, another attention scale …), naming the key.
pub fn read_hooked_config(text: &str) -> Result<TransformerConfig> {
    let v: Value =
        serde_json::from_str(text).map_err(|e| bad(format!("{CONFIG} is not JSON: {e}")))?;
    let whole = |key: &str| -> Result<u32> {
        v.get(key)
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| bad(format!("{CONFIG}: `{key}` must be a whole number")))
    };
    let attn_only = match v.get("attn_only") {
        None | Some(Value::Null) => false,
        Some(b) => b
            .as_bool()
            .ok_or_else(|| bad(format!("{CONFIG}: `attn_only` must be true or false")))?,
    };
    let act_fn = match v.get("act_fn").and_then(Value::as_str) {
        Some(name) => Activation::by_name(name).map_err(|_| {
            bad(format!(
                "{CONFIG}: act_fn `{name}` is not one mechlab computes (gelu, gelu_new, solu_ln)"
            ))
        })?,
        None if attn_only => Activation::Gelu,
        None => return Err(bad(format!("{CONFIG}: `act_fn` is missing"))),
    };
    let expect = |key: &str, want: &str| -> Result<()> {
        match v.get(key) {
            None | Some(Value::Null) => Ok(()),
            Some(Value::String(s)) if s == want => Ok(()),
            Some(other) => Err(bad(format!(
                "{CONFIG}: `{key}` is {other}; mechlab computes only \"{want}\""
            ))),
        }
    };
    expect("normalization_type", "LN")?;
    expect("positional_embedding_type", "standard")?;
    let cfg = TransformerConfig {
        n_layers: whole("n_layers")?,
        d_model: whole("d_model")?,
        n_heads: whole("n_heads")?,
        d_head: whole("d_head")?,
        d_mlp: if attn_only { 0 } else { whole("d_mlp")? },
        n_ctx: whole("n_ctx")?,
        d_vocab: whole("d_vocab")?,
        act_fn,
        attn_only,
    };
    if let Some(out) = v.get("d_vocab_out").and_then(Value::as_i64) {
        if out != -1 && out != cfg.d_vocab as i64 {
            return Err(bad(format!(
                "{CONFIG}: d_vocab_out {out} differs from d_vocab {}",
                cfg.d_vocab
            )));
        }
    }
    if v.get("use_attn_scale").and_then(Value::as_bool) == Some(false) {
        return Err(bad(format!(
            "{CONFIG}: use_attn_scale is false; mechlab divides scores by √d_head"
        )));
    }
    if let Some(s) = v.get("attn_scale").and_then(Value::as_f64) {
        if (s - (cfg.d_head as f64).sqrt()).abs() > 1e-6 {
            return Err(bad(format!(
                "{CONFIG}: attn_scale {s} is not √d_head = {}",
                (cfg.d_head as f64).sqrt()
            )));
        }
    }
    for key in [
        "parallel_attn_mlp",
        "scale_attn_by_inverse_layer_idx",
        "gated_mlp",
    ] {
        if v.get(key).and_then(Value::as_bool) == Some(true) {
            return Err(bad(format!(
                "{CONFIG}: `{key}` is true; mechlab does not compute it"
            )));
        }
    }
    if let Some(eps) = v.get("eps").and_then(Value::as_f64) {
        if (eps - LN_EPS as f64).abs() > 1e-12 {
            return Err(bad(format!(
                "{CONFIG}: eps {eps}; mechlab's LayerNorm uses {LN_EPS}"
            )));
        }
    }
    cfg.validate().map_err(|e| bad(format!("{CONFIG}: {e}")))?;
    Ok(cfg)
}

/// What `mechlab.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RunFile {
    run: LmConfig,
    step: u32,
    /// The text it trained on (absent in checkpoints written before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    corpus: Option<String>,
}

/// A checkpoint in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// The parameters (with their config).
    pub params: TransformerParams,
    /// `tokenizer.json`, when the folder has one.
    pub tokenizer: Option<String>,
    /// The run and Adam's state, when the folder has them.
    pub run: Option<(LmConfig, OptimizerState)>,
    /// The name of the text the run trained on ([`crate::data::text::Corpus::name`]), when the
    /// folder records it.
    pub corpus: Option<String>,
}

impl Checkpoint {
    /// Why resuming this checkpoint on the text named `corpus` would not continue its run
    /// exactly (it trained on other text), or `None` when it would or the checkpoint does not
    /// say.
    pub fn other_text(&self, corpus: &str) -> Option<String> {
        let trained = self.corpus.as_deref()?;
        (trained != corpus).then(|| {
            format!(
                "this checkpoint trained on the text `{trained}`, and this run continues it on \
                 `{corpus}`: its losses will not follow the original run's (give it `{trained}` \
                 to continue it exactly)"
            )
        })
    }

    /// The folder's files, `(name, bytes)`.
    pub fn files(&self) -> Result<Vec<(&'static str, Vec<u8>)>> {
        let p = &self.params;
        let mut out = vec![
            (
                CONFIG,
                serde_json::to_vec_pretty(&hooked_config(&p.cfg)).expect("json"),
            ),
            (
                MODEL,
                named_f32(
                    p.tensors
                        .iter()
                        .map(|t| (t.name.clone(), t.shape.clone(), &t.values)),
                )?,
            ),
        ];
        if let Some(t) = &self.tokenizer {
            out.push((TOKENIZER, t.clone().into_bytes()));
        }
        if let Some((run, state)) = &self.run {
            let file = RunFile {
                run: run.clone(),
                step: state.step,
                corpus: self.corpus.clone(),
            };
            out.push((RUN, serde_json::to_vec_pretty(&file).expect("json")));
            let moments = p.tensors.iter().enumerate().flat_map(|(i, t)| {
                [
                    (format!("m.{}", t.name), t.shape.clone(), &state.m[i]),
                    (format!("v.{}", t.name), t.shape.clone(), &state.v[i]),
                ]
            });
            out.push((OPTIMIZER, named_f32(moments)?));
        }
        Ok(out)
    }

    /// Reads a folder through `file` (a name's bytes, or `None` when the folder lacks it):
    /// `config.json` and `model.safetensors` are required, the tokenizer and the run's state
    /// optional (both run files, or neither).
    pub fn read(file: &dyn Fn(&str) -> Option<Vec<u8>>) -> Result<Self> {
        let need = |name: &str| file(name).ok_or_else(|| bad(format!("the folder has no {name}")));
        let config = String::from_utf8(need(CONFIG)?)
            .map_err(|_| bad(format!("{CONFIG} is not UTF-8 text")))?;
        let cfg = read_hooked_config(&config)?;
        let params = TransformerParams::from_safetensors(&cfg, &need(MODEL)?)?;
        let tokenizer = file(TOKENIZER)
            .map(|b| {
                String::from_utf8(b).map_err(|_| bad(format!("{TOKENIZER} is not UTF-8 text")))
            })
            .transpose()?;
        let mut corpus = None;
        let run = match (file(RUN), file(OPTIMIZER)) {
            (None, None) => None,
            (Some(run), Some(opt)) => {
                let r: RunFile =
                    serde_json::from_slice(&run).map_err(|e| bad(format!("{RUN}: {e}")))?;
                let st = SafeTensors::deserialize(&opt)
                    .map_err(|e| bad(format!("{OPTIMIZER} is not a safetensors file: {e}")))?;
                let mut m = vec![];
                let mut v = vec![];
                for t in &params.tensors {
                    for (prefix, out) in [("m", &mut m), ("v", &mut v)] {
                        let name = format!("{prefix}.{}", t.name);
                        let view = st
                            .tensor(&name)
                            .map_err(|_| bad(format!("{OPTIMIZER} has no tensor \"{name}\"")))?;
                        if view.shape() != t.shape.as_slice() {
                            return Err(bad(format!(
                                "{OPTIMIZER}: \"{name}\" has shape {:?}, the parameter {:?}",
                                view.shape(),
                                t.shape
                            )));
                        }
                        out.push(to_f32(&view, &name, bad)?);
                    }
                }
                corpus = r.corpus;
                Some((r.run, OptimizerState { step: r.step, m, v }))
            }
            _ => {
                return Err(bad(format!(
                    "the folder has one of {RUN} and {OPTIMIZER} without the other"
                )))
            }
        };
        Ok(Self {
            params,
            tokenizer,
            run,
            corpus,
        })
    }
}

/// The most bytes a checkpoint archive may unpack to: more than any model a tab trains, and a
/// bound on what a corrupt or hostile archive can make the page allocate.
pub const MAX_ZIP_BYTES: u64 = 2 << 30;

/// One archive of checkpoint folders: each `(folder, checkpoint)` stored under `folder/`
/// (a pair of models saves as two folders), uncompressed (f32 weights barely compress).
pub fn to_zip(checkpoints: &[(&str, &Checkpoint)]) -> Result<Vec<u8>> {
    let mut entries = vec![];
    for (folder, ck) in checkpoints {
        for (name, bytes) in ck.files()? {
            entries.push((format!("{folder}/{name}"), bytes));
        }
    }
    super::archive::write_stored(entries.iter().map(|(p, b)| (p.clone(), b.as_slice())))
        .map_err(|e| bad(format!("cannot write the archive: {e}")))
}

/// Every checkpoint folder in a zip archive (a folder is any directory holding a
/// `config.json`, the archive's root included), in the archive's order, with the folder's path.
/// Stored and deflated archives both open.
pub fn from_zip(bytes: &[u8]) -> Result<Vec<(String, Checkpoint)>> {
    use std::io::Read;
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| bad(format!("not a zip archive: {e}")))?;
    let mut files: Vec<(String, String, Vec<u8>)> = vec![];
    let mut total = 0u64;
    for i in 0..archive.len() {
        let mut f = archive
            .by_index(i)
            .map_err(|e| bad(format!("the archive's entry {i} is unreadable: {e}")))?;
        if f.is_dir() {
            continue;
        }
        let path = f
            .name()
            .map_err(|e| bad(format!("the archive's entry {i} has a bad name: {e}")))?
            .to_string();
        total += f.size();
        if total > MAX_ZIP_BYTES {
            return Err(bad(format!(
                "the archive unpacks to more than {} GiB",
                MAX_ZIP_BYTES >> 30
            )));
        }
        let mut data = Vec::with_capacity(f.size() as usize);
        f.read_to_end(&mut data)
            .map_err(|e| bad(format!("{path} in the archive is unreadable: {e}")))?;
        let (folder, name) = path.rsplit_once('/').unwrap_or(("", path.as_str()));
        files.push((folder.to_string(), name.to_string(), data));
    }
    let mut folders: Vec<String> = vec![];
    for (folder, name, _) in &files {
        if name == CONFIG && !folders.contains(folder) {
            folders.push(folder.clone());
        }
    }
    if folders.is_empty() {
        return Err(bad(format!("the archive holds no {CONFIG}")));
    }
    folders
        .into_iter()
        .map(|folder| {
            let get = |name: &str| {
                files
                    .iter()
                    .find(|(d, n, _)| *d == folder && n == name)
                    .map(|(_, _, b)| b.clone())
            };
            let ck = Checkpoint::read(&get).map_err(|e| match e {
                EngineError::BadModel(m) if !folder.is_empty() => {
                    EngineError::BadModel(format!("{folder}: {m}"))
                }
                e => e,
            })?;
            Ok((folder, ck))
        })
        .collect()
}

fn named_f32<'a>(
    tensors: impl Iterator<Item = (String, Vec<usize>, &'a Vec<f32>)>,
) -> Result<Vec<u8>> {
    let owned: Vec<(String, Vec<usize>, Vec<u8>)> =
        tensors.map(|(n, s, v)| (n, s, f32_bytes(v))).collect();
    serialize_f32(&owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::text::Corpus;
    use crate::models::transformer::lm::{CpuLmTrainer, TokenizedCorpus};
    use std::collections::HashMap;

    fn corpus() -> Corpus {
        let text: String = (0..100)
            .map(|i| format!("a rose by any name {}\n", i % 5))
            .collect();
        Corpus::from_file("roses.txt", text.as_bytes()).unwrap()
    }

    fn run() -> LmConfig {
        let mut c = LmConfig::default();
        c.model.d_model = 16;
        c.model.n_heads = 2;
        c.model.d_head = 8;
        c.model.d_mlp = 32;
        c.model.n_ctx = 16;
        c.batch_size = 2;
        c.steps = 8;
        c
    }

    #[test]
    fn a_checkpoint_round_trips_and_resumes() {
        let mut t = CpuLmTrainer::new(&run(), &corpus()).unwrap();
        for _ in 0..3 {
            t.train_step().unwrap();
        }
        let ck = Checkpoint {
            params: t.params().clone(),
            tokenizer: Some(t.data().tokenizer.to_json().unwrap()),
            run: Some((t.config().clone(), t.optimizer_state().clone())),
            corpus: Some(t.data().corpus.clone()),
        };
        let files: HashMap<&str, Vec<u8>> = ck.files().unwrap().into_iter().collect();
        let back = Checkpoint::read(&|n| files.get(n).cloned()).unwrap();
        assert_eq!(back, ck);
        // It knows the text it trained on, and says when a run would continue it on another.
        assert_eq!(back.corpus.as_deref(), Some(corpus().name.as_str()));
        assert_eq!(back.other_text(&corpus().name), None);
        let other = back.other_text("poems.txt").unwrap();
        assert!(
            other.contains("poems.txt") && other.contains(&corpus().name),
            "{other}"
        );
        // Checkpoints written before the text was recorded still open, and cannot say.
        let mut old: Value = serde_json::from_slice(&files[RUN]).unwrap();
        old.as_object_mut().unwrap().remove("corpus");
        let old = serde_json::to_vec(&old).unwrap();
        let read = Checkpoint::read(&|n| {
            if n == RUN {
                Some(old.clone())
            } else {
                files.get(n).cloned()
            }
        })
        .unwrap();
        assert_eq!((read.other_text("poems.txt"), read.corpus), (None, None));
        let config: Value = serde_json::from_slice(&files[CONFIG]).unwrap();
        assert_eq!(config["act_fn"], "solu_ln");
        assert_eq!(config["normalization_type"], "LN");
        // Resuming from the files continues as the run does.
        let (cfg, state) = back.run.unwrap();
        let tok = crate::data::text::TextTokenizer::from_json(&back.tokenizer.unwrap()).unwrap();
        let data = TokenizedCorpus::with_tokenizer(&corpus(), tok).unwrap();
        let mut resumed = CpuLmTrainer::resume(&cfg, data, back.params, Some(state)).unwrap();
        assert_eq!(resumed.train_step().unwrap(), t.train_step().unwrap());
        // Without the run files it is still a model.
        let bare =
            Checkpoint::read(&|n| (n == CONFIG || n == MODEL).then(|| files[n].clone())).unwrap();
        assert!(bare.run.is_none() && bare.tokenizer.is_none());
    }

    #[test]
    fn bad_folders_are_named() {
        let t = CpuLmTrainer::new(&run(), &corpus()).unwrap();
        let ck = Checkpoint {
            params: t.params().clone(),
            tokenizer: None,
            run: Some((t.config().clone(), t.optimizer_state().clone())),
            corpus: None,
        };
        let files: HashMap<&str, Vec<u8>> = ck.files().unwrap().into_iter().collect();
        let read_with = |name: &str, bytes: Option<Vec<u8>>| {
            Checkpoint::read(&|n| {
                if n == name {
                    bytes.clone()
                } else {
                    files.get(n).cloned()
                }
            })
            .unwrap_err()
            .to_string()
        };
        assert!(read_with(MODEL, None).contains("no model.safetensors"));
        assert!(read_with(OPTIMIZER, None).contains("without the other"));
        assert!(read_with(CONFIG, Some(b"{".to_vec())).contains("not JSON"));
        let mut cfg: Value = serde_json::from_slice(&files[CONFIG]).unwrap();
        cfg["d_mlp"] = 40.into();
        let err = read_with(CONFIG, Some(serde_json::to_vec(&cfg).unwrap()));
        assert!(
            err.contains("blocks.0.mlp.W_in") && err.contains("shape"),
            "{err}"
        );
        cfg["d_mlp"] = 32.into();
        cfg["normalization_type"] = "RMS".into();
        let err = read_with(CONFIG, Some(serde_json::to_vec(&cfg).unwrap()));
        assert!(err.contains("normalization_type"), "{err}");
        cfg["normalization_type"] = "LN".into();
        cfg["act_fn"] = "relu".into();
        let err = read_with(CONFIG, Some(serde_json::to_vec(&cfg).unwrap()));
        assert!(err.contains("act_fn `relu`"), "{err}");
    }

    #[test]
    fn archives_hold_a_pair_and_bad_archives_are_named() {
        use std::io::Write;
        let t = CpuLmTrainer::new(&run(), &corpus()).unwrap();
        let ck = Checkpoint {
            params: t.params().clone(),
            tokenizer: Some(t.data().tokenizer.to_json().unwrap()),
            run: Some((t.config().clone(), t.optimizer_state().clone())),
            corpus: None,
        };
        let bare = Checkpoint {
            tokenizer: None,
            run: None,
            ..ck.clone()
        };
        let zip = to_zip(&[("solu_ln", &ck), ("gelu", &bare)]).unwrap();
        let back = from_zip(&zip).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!((back[0].0.as_str(), &back[0].1), ("solu_ln", &ck));
        assert_eq!((back[1].0.as_str(), &back[1].1), ("gelu", &bare));
        // A folder zipped by hand, deflated, at the archive's root.
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let deflated = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, bytes) in bare.files().unwrap() {
            w.start_file(name, deflated).unwrap();
            w.write_all(&bytes).unwrap();
        }
        let hand = w.finish().unwrap().into_inner();
        assert_eq!(from_zip(&hand).unwrap(), vec![(String::new(), bare)]);
        let err = from_zip(b"PK not really").unwrap_err().to_string();
        assert!(err.contains("not a zip archive"), "{err}");
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        w.start_file("notes.txt", deflated).unwrap();
        let empty = w.finish().unwrap().into_inner();
        let err = from_zip(&empty).unwrap_err().to_string();
        assert!(err.contains("no config.json"), "{err}");
        // A pair whose second folder lost its weights names that folder.
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, bytes) in ck.files().unwrap() {
            for folder in ["a", "b"] {
                if folder == "b" && name == MODEL {
                    continue;
                }
                w.start_file(format!("{folder}/{name}"), deflated).unwrap();
                w.write_all(&bytes).unwrap();
            }
        }
        let err = from_zip(&w.finish().unwrap().into_inner())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("b: the folder has no model.safetensors"),
            "{err}"
        );
    }
}
