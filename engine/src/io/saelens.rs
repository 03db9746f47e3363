//! Export and import of an SAE in SAELens's on-disk layout: a directory holding `cfg.json` and
//! `sae_weights.safetensors`, what `SAE.load_from_disk` reads and `SAE.save_model` writes.
//!
//! The format followed is SAELens 6.18.0 (jbloomAus/SAELens at commit 91ca16c, October 2025:
//! `sae_lens/constants.py`, `saes/sae.py`, `saes/{standard,topk,gated,jumprelu,batchtopk}_sae.py`
//! and `loading/pretrained_sae_loaders.py`). Only the format is matched; no code is shared.
//!
//! `cfg.json` (an inference config, `SAEConfig.to_dict()`): `architecture`, `d_in`, `d_sae`,
//! `dtype`, `device`, `apply_b_dec_to_input`, `normalize_activations`, `reshape_activations`,
//! `metadata` (free-form; `sae_lens_version` decides whether SAELens treats the file as a 6.x
//! config, `hook_name` names the hook point), and per architecture `k` and
//! `rescale_acts_by_decoder_norm` for `topk`.
//!
//! Tensors, SAELens's layout (`W_enc` is `[d_in, d_sae]`; the engine's is `[d_sae, d_in]`):
//!
//! | engine       | SAELens      | tensors                                                   |
//! |--------------|--------------|-----------------------------------------------------------|
//! | `relu_l1`    | `standard`   | `W_enc`, `b_enc`, `W_dec`, `b_dec`                        |
//! | `topk`       | `topk`       | `W_enc`, `b_enc`, `W_dec`, `b_dec` (+ `k` in cfg.json)    |
//! | `gated`      | `gated`      | `W_enc` (the shared `W_gate`), `b_gate`, `r_mag`, `b_mag`, `W_dec`, `b_dec` (no `b_enc`) |
//! | `jumprelu`   | `jumprelu`   | `W_enc`, `b_enc`, `W_dec`, `b_dec`, `threshold` (θ itself, not its log) |
//! | `batch_topk` | `jumprelu`   | as JumpReLU, `threshold` = the batch threshold for every latent |
//!
//! BatchTopK goes out as SAELens itself saves a trained BatchTopK for inference: a JumpReLU
//! whose per-latent threshold is the learned global one. SAELens's JumpReLU computes
//! `ReLU(pre) · 1[pre > θ]`, the engine's BatchTopK inference `pre · 1[pre > θ]`: the same for
//! the θ ≥ 0 that training produces (export refuses a negative one). SAELens has no place for k
//! in that config, so it goes into `metadata.mechlab_k`, with `metadata.mechlab_architecture`;
//! import reads them back, so the engine's own files come back as BatchTopK, while a JumpReLU
//! from elsewhere stays a JumpReLU. Import also reads SAELens's training checkpoints of
//! architecture `batchtopk` (`topk_threshold`, a scalar), folding decoder norms as SAELens does
//! when it saves one for inference.
//!
//! Round trips give back the same parameters bit for bit, except JumpReLU's log thresholds:
//! SAELens stores `θ = exp(log θ)` in f32, which loses the low bits of a log threshold near 0.
//! Import picks the log whose `exp` is exactly the stored θ, so the threshold the engine uses at
//! inference is unchanged, logs of magnitude ≥ 2 come back exactly, and export after import
//! writes the same file again.

use super::safetensors::{f32_bytes, index_in, serialize_f32, to_f32};
use crate::error::{EngineError, Result};
use crate::models::sae::config::{Architecture, SaeConfig};
use crate::models::sae::params::SaeParams;
use safetensors::SafeTensors;
use serde_json::{Map, Value};

/// SAELens's name for the config file.
pub const CFG_FILENAME: &str = "cfg.json";
/// SAELens's name for the weights file.
pub const WEIGHTS_FILENAME: &str = "sae_weights.safetensors";
/// The SAELens version whose format this module writes (and records in `metadata`, which
/// SAELens reads to tell 6.x configs from older ones).
pub const SAELENS_VERSION: &str = "6.18.0";
/// The SAELens architectures import understands.
pub const SAELENS_ARCHITECTURES: [&str; 5] = ["standard", "topk", "gated", "jumprelu", "batchtopk"];

/// SAELens's default k when a `topk` config has none (`TopKSAEConfig.k`).
const SAELENS_DEFAULT_K: u64 = 100;

/// The hook name written into cfg.json for sources that are not inside a language model.
pub const SOURCE_HOOK_NAME: &str = "mechlab.source";

/// An SAE in SAELens's layout, in memory: the two files of its directory.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SaeLensFiles {
    /// The text of `cfg.json`.
    pub cfg_json: String,
    /// The bytes of `sae_weights.safetensors`.
    pub weights: Vec<u8>,
}

impl SaeLensFiles {
    /// The SAE's directory as one zip archive, `folder/cfg.json` and
    /// `folder/sae_weights.safetensors`: unzipped, `folder` is what SAELens's
    /// `SAE.load_from_disk` opens.
    pub fn to_zip(&self, folder: &str) -> Result<Vec<u8>> {
        super::archive::write_stored([
            (format!("{folder}/{CFG_FILENAME}"), self.cfg_json.as_bytes()),
            (
                format!("{folder}/{WEIGHTS_FILENAME}"),
                self.weights.as_slice(),
            ),
        ])
        .map_err(|e| bad(format!("cannot write the archive: {e}")))
    }
}

/// What import learned from `cfg.json`, besides the parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedCfg {
    /// The engine's architecture name (one of [`super::config::ARCHITECTURE_NAMES`]).
    pub architecture: String,
    /// The architecture as the file named it.
    pub saelens_architecture: String,
    /// k, for the TopK family.
    pub k: Option<u32>,
    /// Input dimension.
    pub d_in: usize,
    /// Number of latents.
    pub d_sae: usize,
    /// The hook point the SAE was trained on, when the file names one.
    pub hook_name: Option<String>,
    /// The file's `normalize_activations`: `none`, or `expected_average_only_in`, which SAELens
    /// does not apply at inference either, so inputs are expected already scaled.
    pub normalize_activations: String,
    /// The SAELens version that wrote the file, when it says.
    pub sae_lens_version: Option<String>,
    /// Transformations import made to fit the engine's parameterisation, for the UI to show.
    pub notes: Vec<String>,
}

impl ImportedCfg {
    /// The engine architecture with its default hyper-parameters and the imported k.
    pub fn to_architecture(&self) -> Result<Architecture> {
        let mut a = Architecture::by_name(&self.architecture)?;
        if let (Some(k_in), Architecture::TopK { k, .. } | Architecture::BatchTopK { k, .. }) =
            (self.k, &mut a)
        {
            *k = k_in;
        }
        Ok(a)
    }
}

fn bad(msg: impl Into<String>) -> EngineError {
    EngineError::BadImport(msg.into())
}

// ---------------------------------------------------------------------------------------------
// Export

/// The SAE in SAELens's layout, with the input scale folded into the weights (`normalize_
/// activations` is then `"none"`: SAELens applies no scale at inference, so an SAE trained on
/// scaled inputs must carry the scale in its weights to read raw activations). Weights are f32.
pub fn to_saelens(params: &SaeParams, cfg: &SaeConfig, hook_name: &str) -> Result<SaeLensFiles> {
    let arch = &cfg.architecture;
    if cfg.d_sae as usize != params.d_sae || cfg.d_in() as usize != params.d_in {
        return Err(EngineError::invalid(
            "params",
            format!("[d_sae, d_in] = [{}, {}]", params.d_sae, params.d_in),
            format!(
                "the config says [d_sae, d_in] = [{}, {}]",
                cfg.d_sae,
                cfg.d_in()
            ),
        ));
    }
    check_export_shapes(params, arch)?;
    if !(params.input_scale.is_finite() && params.input_scale > 0.0) {
        return Err(EngineError::invalid(
            "input_scale",
            params.input_scale,
            "must be a positive number to fold into the weights",
        ));
    }
    let p = params.folded();
    let (d_in, d_sae) = (p.d_in, p.d_sae);

    let mut tensors: Vec<(&str, Vec<usize>, Vec<f32>)> = vec![
        ("W_enc", vec![d_in, d_sae], transpose(&p.w_enc, d_sae, d_in)),
        ("W_dec", vec![d_sae, d_in], p.w_dec.clone()),
        ("b_dec", vec![d_in], p.b_dec.clone()),
    ];
    let mut top = Map::new();
    let mut metadata = Map::new();
    let saelens_arch = match arch {
        Architecture::ReluL1 { .. } => {
            tensors.push(("b_enc", vec![d_sae], p.b_enc.clone()));
            "standard"
        }
        Architecture::TopK { k, .. } => {
            tensors.push(("b_enc", vec![d_sae], p.b_enc.clone()));
            top.insert("k".into(), (*k).into());
            // The engine's TopK ranks raw pre-activations.
            top.insert("rescale_acts_by_decoder_norm".into(), false.into());
            "topk"
        }
        Architecture::BatchTopK { k, .. } => {
            let t = p.batch_threshold;
            if !(t.is_finite() && t >= 0.0) {
                return Err(EngineError::invalid(
                    "batch_threshold",
                    t,
                    "must be zero or positive: SAELens's JumpReLU zeroes negative activations, \
                     which the engine's BatchTopK would keep",
                ));
            }
            tensors.push(("b_enc", vec![d_sae], p.b_enc.clone()));
            tensors.push(("threshold", vec![d_sae], vec![t; d_sae]));
            metadata.insert("mechlab_k".into(), (*k).into());
            "jumprelu"
        }
        Architecture::Gated { .. } => {
            tensors.push(("b_gate", vec![d_sae], p.b_enc.clone()));
            tensors.push(("r_mag", vec![d_sae], p.r_mag.clone()));
            tensors.push(("b_mag", vec![d_sae], p.b_mag.clone()));
            "gated"
        }
        Architecture::JumpRelu { .. } => {
            tensors.push(("b_enc", vec![d_sae], p.b_enc.clone()));
            // f32 `exp`, as the engine's inference computes θ, so the file holds the very θ
            // the engine compares against.
            let theta = p.log_threshold.iter().map(|l| l.exp()).collect();
            tensors.push(("threshold", vec![d_sae], theta));
            "jumprelu"
        }
    };
    for (name, _, values) in &tensors {
        if let Some((i, v)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(EngineError::invalid(
                "params",
                format!("{name}[{i}] = {v}"),
                "an SAE with non-finite weights cannot be exported",
            ));
        }
    }

    top.insert("architecture".into(), saelens_arch.into());
    top.insert("d_in".into(), d_in.into());
    top.insert("d_sae".into(), d_sae.into());
    top.insert("dtype".into(), "float32".into());
    top.insert("device".into(), "cpu".into());
    top.insert("apply_b_dec_to_input".into(), true.into());
    top.insert("normalize_activations".into(), "none".into());
    top.insert("reshape_activations".into(), "none".into());
    metadata.insert("sae_lens_version".into(), SAELENS_VERSION.into());
    // Not trained by SAELens; SAELens only logs this.
    metadata.insert("sae_lens_training_version".into(), Value::Null);
    metadata.insert(
        "hook_name".into(),
        if hook_name.is_empty() {
            Value::Null
        } else {
            hook_name.into()
        },
    );
    metadata.insert("mechlab_architecture".into(), arch.name().into());
    metadata.insert(
        "mechlab_folded_input_scale".into(),
        Value::from(params.input_scale as f64),
    );
    top.insert("metadata".into(), Value::Object(metadata));
    let cfg_json = serde_json::to_string_pretty(&Value::Object(top))
        .map_err(|e| EngineError::invalid("cfg.json", "", e.to_string()))?;

    let bytes: Vec<(&str, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(name, shape, values)| (name, shape, f32_bytes(&values)))
        .collect();
    let weights = serialize_f32(&bytes)?;
    Ok(SaeLensFiles { cfg_json, weights })
}

/// A safetensors file holding planted ground-truth features as tensor `features`, `[n, d]`
/// f32, to compare an exported SAE's decoder against outside the engine.
pub fn ground_truth_safetensors(features: &[f32], n: usize, d: usize) -> Result<Vec<u8>> {
    if n.checked_mul(d) != Some(features.len()) {
        return Err(EngineError::invalid(
            "features",
            format!("{} values", features.len()),
            format!("expected n × d = {n} × {d}"),
        ));
    }
    serialize_f32(&[("features", vec![n, d], f32_bytes(features))])
}

fn check_export_shapes(p: &SaeParams, arch: &Architecture) -> Result<()> {
    let (d_in, d_sae) = (p.d_in, p.d_sae);
    let n = d_in
        .checked_mul(d_sae)
        .ok_or_else(|| EngineError::invalid("params", d_sae, "d_sae × d_in overflows"))?;
    let gated = matches!(arch, Architecture::Gated { .. });
    let jump = matches!(arch, Architecture::JumpRelu { .. });
    let want = |on: bool, len: usize| if on { len } else { 0 };
    let checks: [(&'static str, usize, usize); 7] = [
        ("w_enc", p.w_enc.len(), n),
        ("b_enc", p.b_enc.len(), d_sae),
        ("w_dec", p.w_dec.len(), n),
        ("b_dec", p.b_dec.len(), d_in),
        ("r_mag", p.r_mag.len(), want(gated, d_sae)),
        ("b_mag", p.b_mag.len(), want(gated, d_sae)),
        ("log_threshold", p.log_threshold.len(), want(jump, d_sae)),
    ];
    for (field, len, expected) in checks {
        // Tensors the architecture does not use may be empty or not; only used ones must fit.
        let used = expected > 0 || !matches!(field, "r_mag" | "b_mag" | "log_threshold");
        if used && len != expected {
            return Err(EngineError::invalid(
                field,
                format!("{len} values"),
                format!(
                    "a {} SAE with d_in = {d_in}, d_sae = {d_sae} needs {expected}",
                    arch.name()
                ),
            ));
        }
    }
    Ok(())
}

/// `[rows, cols]` row-major to `[cols, rows]` row-major.
fn transpose(a: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0f32; a.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = a[r * cols + c];
        }
    }
    t
}

// ---------------------------------------------------------------------------------------------
// Import

/// cfg.json, read the way SAELens reads it (with its defaults), before the weights are seen.
struct ParsedCfg {
    saelens_arch: String,
    d_in: usize,
    d_sae: usize,
    k: Option<u32>,
    apply_b_dec_to_input: bool,
    normalize_activations: String,
    rescale_acts_by_decoder_norm: bool,
    hook_name: Option<String>,
    sae_lens_version: Option<String>,
    mechlab_architecture: Option<String>,
    mechlab_k: Option<u32>,
}

/// The parameters and config of an SAE in SAELens's layout. The result's `input_scale` is 1:
/// SAELens SAEs read raw activations (see [`ImportedCfg::normalize_activations`]).
pub fn from_saelens(cfg_json: &str, weights: &[u8]) -> Result<(SaeParams, ImportedCfg)> {
    let cfg = parse_cfg(cfg_json)?;
    let st = SafeTensors::deserialize(weights).map_err(|e| {
        bad(format!(
            "{WEIGHTS_FILENAME} is not a valid safetensors file: {e}"
        ))
    })?;
    let (d_in, d_sae) = (cfg.d_in, cfg.d_sae);
    let arch = cfg.saelens_arch.as_str();

    let vector = vec![d_sae];
    let needed: Vec<(&str, Vec<usize>, &str)> = {
        let mut t = vec![
            ("W_enc", vec![d_in, d_sae], "[d_in, d_sae]"),
            ("W_dec", vec![d_sae, d_in], "[d_sae, d_in]"),
            ("b_dec", vec![d_in], "[d_in]"),
        ];
        match arch {
            "gated" => {
                t.push(("b_gate", vector.clone(), "[d_sae]"));
                t.push(("r_mag", vector.clone(), "[d_sae]"));
                t.push(("b_mag", vector.clone(), "[d_sae]"));
            }
            "jumprelu" => {
                t.push(("b_enc", vector.clone(), "[d_sae]"));
                t.push(("threshold", vector.clone(), "[d_sae]"));
            }
            "batchtopk" => {
                t.push(("b_enc", vector.clone(), "[d_sae]"));
                t.push(("topk_threshold", vec![], "[] (a scalar)"));
            }
            _ => t.push(("b_enc", vector.clone(), "[d_sae]")),
        }
        t
    };
    let listing = needed.iter().map(|t| t.0).collect::<Vec<_>>().join(", ");
    let mut names = st.names();
    // The header is a map; sorting makes the first complaint the same on every run.
    names.sort_unstable();
    for &name in &names {
        if !needed.iter().any(|t| t.0 == name) && name != "scaling_factor" {
            return Err(bad(format!(
                "unexpected tensor \"{name}\" in {WEIGHTS_FILENAME}: a {arch} SAE has {listing}"
            )));
        }
    }
    let read = |name: &str| -> Result<Vec<f32>> {
        let (_, shape, dims) = needed
            .iter()
            .find(|t| t.0 == name)
            .ok_or_else(|| bad(format!("internal: no shape for \"{name}\"")))?;
        read_tensor(&st, name, shape, dims, arch, &listing)
    };

    // A fine-tuning scale SAELens drops when it is all ones and otherwise cannot load into a
    // 6.x SAE either.
    if names.contains(&"scaling_factor") {
        let t = st
            .tensor("scaling_factor")
            .map_err(|e| bad(format!("tensor \"scaling_factor\": {e}")))?;
        let values = to_f32(&t, "scaling_factor", bad)?;
        if values.iter().any(|&v| v != 1.0) {
            return Err(bad(
                "tensor \"scaling_factor\" is not all ones: a fine-tuning scale the engine has \
                 no place for",
            ));
        }
    }

    let w_enc_file = read("W_enc")?;
    let w_dec = read("W_dec")?;
    let b_dec = read("b_dec")?;
    let mut p = SaeParams {
        d_in,
        d_sae,
        w_enc: transpose(&w_enc_file, d_in, d_sae),
        b_enc: vec![],
        w_dec,
        b_dec,
        r_mag: vec![],
        b_mag: vec![],
        log_threshold: vec![],
        batch_threshold: 0.0,
        input_scale: 1.0,
    };
    let mut notes = Vec::new();
    let (architecture, k) = match arch {
        "standard" => {
            p.b_enc = read("b_enc")?;
            ("relu_l1", None)
        }
        "topk" => {
            p.b_enc = read("b_enc")?;
            ("topk", cfg.k)
        }
        "gated" => {
            p.b_enc = read("b_gate")?;
            p.r_mag = read("r_mag")?;
            p.b_mag = read("b_mag")?;
            ("gated", None)
        }
        "jumprelu" => {
            p.b_enc = read("b_enc")?;
            let theta = read("threshold")?;
            let uniform = theta.iter().all(|t| t.to_bits() == theta[0].to_bits());
            if cfg.mechlab_architecture.as_deref() == Some("batch_topk")
                && uniform
                && theta.first().is_some_and(|&t| t >= 0.0)
            {
                p.batch_threshold = theta[0];
                ("batch_topk", cfg.mechlab_k)
            } else {
                if theta.iter().any(|&t| t <= 0.0) {
                    notes.push(format!(
                        "thresholds at or below 0 (all ReLU) became about {:e}, near the \
                         smallest positive normal f32, since the engine stores log thresholds",
                        f32::MIN_POSITIVE
                    ));
                }
                p.log_threshold = theta.iter().map(|&t| log_of_threshold(t)).collect();
                ("jumprelu", None)
            }
        }
        "batchtopk" => {
            p.b_enc = read("b_enc")?;
            let t = read("topk_threshold")?;
            p.batch_threshold = t.first().copied().unwrap_or(0.0);
            ("batch_topk", cfg.k)
        }
        other => return Err(unknown_architecture(other)),
    };

    if !cfg.apply_b_dec_to_input {
        fold_b_dec_into_encoder(&mut p);
        notes.push(
            "apply_b_dec_to_input was false: W_enc·b_dec was folded into the encoder biases".into(),
        );
    }
    if cfg.rescale_acts_by_decoder_norm {
        fold_decoder_norms(&mut p);
        notes.push(
            "rescale_acts_by_decoder_norm was true: decoder norms were folded into the encoder"
                .into(),
        );
    }
    if let Some((name, i)) = first_non_finite(&p) {
        return Err(bad(format!(
            "{name}[{i}] became non-finite while fitting the SAE to the engine's \
             parameterisation"
        )));
    }

    let imported = ImportedCfg {
        architecture: architecture.into(),
        saelens_architecture: cfg.saelens_arch.clone(),
        k,
        d_in,
        d_sae,
        hook_name: cfg.hook_name,
        normalize_activations: cfg.normalize_activations,
        sae_lens_version: cfg.sae_lens_version,
        notes,
    };
    Ok((p, imported))
}

fn unknown_architecture(name: &str) -> EngineError {
    bad(format!(
        "unknown architecture \"{name}\" in {CFG_FILENAME}; expected one of {}",
        SAELENS_ARCHITECTURES.join(", ")
    ))
}

fn parse_cfg(text: &str) -> Result<ParsedCfg> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| bad(format!("{CFG_FILENAME} is not valid JSON: {e}")))?;
    let obj = value
        .as_object()
        .ok_or_else(|| bad(format!("{CFG_FILENAME} is not a JSON object")))?;
    let metadata = match obj.get("metadata") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(m),
        Some(other) => {
            return Err(bad(format!(
                "{CFG_FILENAME}: \"metadata\" must be an object, found {other}"
            )))
        }
    };
    let meta = |key: &str| metadata.and_then(|m| m.get(key)).filter(|v| !v.is_null());
    let top = |key: &str| obj.get(key).filter(|v| !v.is_null());

    let sae_lens_version = meta("sae_lens_version")
        .or_else(|| top("sae_lens_version"))
        .and_then(Value::as_str)
        .map(str::to_string);
    // SAELens treats a config without a 6.x version as an older one and defaults what 6.x
    // requires; so does this.
    let v6 = sae_lens_version
        .as_deref()
        .and_then(|v| v.split(['.', '-']).next()?.parse::<u32>().ok())
        .is_some_and(|major| major >= 6);
    let activation_fn = top("activation_fn")
        .or_else(|| top("activation_fn_str"))
        .and_then(Value::as_str);

    let saelens_arch = match top("architecture") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(bad(format!(
                "{CFG_FILENAME}: \"architecture\" must be a string, found {other}"
            )))
        }
        None if v6 => return Err(bad(format!("{CFG_FILENAME} has no \"architecture\""))),
        None if activation_fn == Some("topk") => "topk".into(),
        None => "standard".into(),
    };
    if !SAELENS_ARCHITECTURES.contains(&saelens_arch.as_str()) {
        return Err(unknown_architecture(&saelens_arch));
    }

    let d_in = positive_int(obj, "d_in")?;
    let d_sae = positive_int(obj, "d_sae")?;
    if d_in
        .checked_mul(d_sae)
        .is_none_or(|n| n > isize::MAX as usize / 8)
    {
        return Err(bad(format!(
            "{CFG_FILENAME}: d_in × d_sae = {d_in} × {d_sae} is too large"
        )));
    }

    if let Some(dtype) = top("dtype") {
        let known = [
            "float32",
            "float64",
            "float16",
            "bfloat16",
            "torch.float32",
            "torch.float64",
            "torch.float16",
            "torch.bfloat16",
        ];
        match dtype.as_str() {
            Some(s) if known.contains(&s) => {}
            _ => {
                return Err(bad(format!(
                    "{CFG_FILENAME}: dtype {dtype} is not one of float32, float64, float16, \
                     bfloat16"
                )))
            }
        }
    }

    let apply_b_dec_to_input = match top("apply_b_dec_to_input") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(bad(format!(
                "{CFG_FILENAME}: \"apply_b_dec_to_input\" must be true or false, found {other}"
            )))
        }
    };

    let normalize_activations = match top("normalize_activations") {
        None | Some(Value::Bool(false)) => "none".to_string(),
        Some(Value::Bool(true)) => "expected_average_only_in".to_string(),
        Some(Value::String(s)) if s == "none" || s == "expected_average_only_in" => s.clone(),
        Some(Value::String(s)) if s == "constant_norm_rescale" || s == "layer_norm" => {
            return Err(bad(format!(
                "normalize_activations = \"{s}\" normalises each input at run time, which the \
                 engine's SAEs do not do; only \"none\" and \"expected_average_only_in\" can be \
                 imported"
            )))
        }
        Some(other) => {
            return Err(bad(format!(
                "{CFG_FILENAME}: normalize_activations {other} is not one of \"none\", \
                 \"expected_average_only_in\", \"constant_norm_rescale\", \"layer_norm\""
            )))
        }
    };

    let rescale_acts_by_decoder_norm = match top("rescale_acts_by_decoder_norm") {
        Some(Value::Bool(b)) if matches!(saelens_arch.as_str(), "topk" | "batchtopk") => *b,
        Some(Value::Bool(_)) => false,
        Some(other) => {
            return Err(bad(format!(
                "{CFG_FILENAME}: \"rescale_acts_by_decoder_norm\" must be true or false, found \
                 {other}"
            )))
        }
        // SAELens's defaults: false for the inference TopK, true for the training BatchTopK.
        None => saelens_arch == "batchtopk",
    };

    let k = match saelens_arch.as_str() {
        "topk" => {
            let raw = top("k").or_else(|| {
                top("activation_fn_kwargs")
                    .and_then(|kw| kw.get("k"))
                    .filter(|v| !v.is_null())
            });
            let k = match raw {
                None => SAELENS_DEFAULT_K,
                Some(v) => v.as_u64().ok_or_else(|| {
                    bad(format!(
                        "{CFG_FILENAME}: k = {v} is not a whole number of latents"
                    ))
                })?,
            };
            if k == 0 || k > d_sae as u64 {
                return Err(bad(format!(
                    "{CFG_FILENAME}: k = {k} must be between 1 and d_sae = {d_sae}"
                )));
            }
            Some(
                u32::try_from(k)
                    .map_err(|_| bad(format!("{CFG_FILENAME}: k = {k} is too large")))?,
            )
        }
        "batchtopk" => {
            // SAELens's BatchTopK k is a mean per row and may be fractional; the engine's is
            // whole, and at inference the threshold decides, so it is rounded.
            let k = match top("k") {
                None => SAELENS_DEFAULT_K as f64,
                Some(v) => v
                    .as_f64()
                    .filter(|k| k.is_finite() && *k > 0.0)
                    .ok_or_else(|| {
                        bad(format!("{CFG_FILENAME}: k = {v} is not a positive number"))
                    })?,
            };
            Some(k.round().clamp(1.0, d_sae as f64) as u32)
        }
        _ => None,
    };

    let hook_name = meta("hook_name")
        .or_else(|| top("hook_name"))
        .or_else(|| top("hook_point"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let mechlab_architecture = meta("mechlab_architecture")
        .and_then(Value::as_str)
        .map(str::to_string);
    let mechlab_k = meta("mechlab_k")
        .and_then(Value::as_u64)
        .and_then(|k| u32::try_from(k).ok());

    Ok(ParsedCfg {
        saelens_arch,
        d_in,
        d_sae,
        k,
        apply_b_dec_to_input,
        normalize_activations,
        rescale_acts_by_decoder_norm,
        hook_name,
        sae_lens_version,
        mechlab_architecture,
        mechlab_k,
    })
}

fn positive_int(obj: &Map<String, Value>, key: &str) -> Result<usize> {
    match obj.get(key) {
        None | Some(Value::Null) => Err(bad(format!("{CFG_FILENAME} has no \"{key}\""))),
        Some(v) => v
            .as_u64()
            .filter(|&n| n > 0)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| {
                bad(format!(
                    "{CFG_FILENAME}: {key} = {v} is not a positive whole number"
                ))
            }),
    }
}

fn read_tensor(
    st: &SafeTensors,
    name: &str,
    shape: &[usize],
    dims: &str,
    arch: &str,
    listing: &str,
) -> Result<Vec<f32>> {
    let t = st.tensor(name).map_err(|_| {
        bad(format!(
            "{WEIGHTS_FILENAME} has no tensor \"{name}\" (a {arch} SAE has {listing})"
        ))
    })?;
    // SAELens keeps its BatchTopK threshold as a 0-d tensor; a 1-element one means the same.
    let scalar_ok = shape.is_empty() && t.shape() == [1];
    if t.shape() != shape && !scalar_ok {
        return Err(bad(format!(
            "tensor \"{name}\" has shape {:?}, expected {:?} ({dims})",
            t.shape(),
            shape
        )));
    }
    let values = to_f32(&t, name, bad)?;
    if let Some((i, v)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(bad(format!(
            "tensor \"{name}\" holds a non-finite value ({v}) at {}",
            index_in(t.shape(), i)
        )));
    }
    Ok(values)
}

/// The log threshold whose f32 `exp` (what the engine's inference computes) is exactly `t`,
/// where one exists near `ln t` (for a θ the engine exported, its own log does). Thresholds at
/// or below 0 all mean plain ReLU in SAELens; `ln` of the smallest positive normal f32 stands
/// in for them, a θ of about 1.2e-38 that differs only for pre-activations below it.
fn log_of_threshold(t: f32) -> f32 {
    let t = t.max(f32::MIN_POSITIVE);
    let x = t.ln();
    [x, x.next_up(), x.next_down()]
        .into_iter()
        .find(|c| c.exp() == t)
        .unwrap_or(x)
}

/// SAELens without `apply_b_dec_to_input` computes `W_enc x + b`; the engine always centres on
/// `b_dec`, so `W_enc b_dec` moves into the biases (for Gated, through both paths).
fn fold_b_dec_into_encoder(p: &mut SaeParams) {
    let d = p.d_in;
    for j in 0..p.d_sae {
        let wb: f64 = p.w_enc[j * d..(j + 1) * d]
            .iter()
            .zip(&p.b_dec)
            .map(|(w, b)| *w as f64 * *b as f64)
            .sum();
        p.b_enc[j] = (p.b_enc[j] as f64 + wb) as f32;
        if !p.b_mag.is_empty() {
            p.b_mag[j] = (p.b_mag[j] as f64 + (p.r_mag[j] as f64).exp() * wb) as f32;
        }
    }
}

/// SAELens's TopK with `rescale_acts_by_decoder_norm` ranks `pre · ‖W_dec,j‖` and decodes
/// `f / ‖W_dec,j‖`: the same function as scaling encoder row j by the norm and unit-normalising
/// decoder row j, which is how SAELens itself saves such an SAE for inference.
fn fold_decoder_norms(p: &mut SaeParams) {
    let d = p.d_in;
    for j in 0..p.d_sae {
        let norm = p.decoder_norm(j);
        let enc = &mut p.w_enc[j * d..(j + 1) * d];
        if norm > 0.0 {
            enc.iter_mut().for_each(|w| *w *= norm);
            p.b_enc[j] *= norm;
            p.w_dec[j * d..(j + 1) * d]
                .iter_mut()
                .for_each(|w| *w /= norm);
        } else {
            // A zero decoder row makes the rescaled pre-activation 0 whatever the input.
            enc.fill(0.0);
            p.b_enc[j] = 0.0;
        }
    }
}

fn first_non_finite(p: &SaeParams) -> Option<(&'static str, usize)> {
    let names = crate::models::sae::params::TRAINED_TENSORS;
    for (name, t) in names.iter().zip(p.tensors()) {
        if let Some(i) = t.iter().position(|v| !v.is_finite()) {
            return Some((name, i));
        }
    }
    (!p.batch_threshold.is_finite()).then_some(("batch_threshold", 0))
}

// ---------------------------------------------------------------------------------------------
// Files (native only: the browser hands the engine bytes, not paths)

/// Writes `cfg.json` and `sae_weights.safetensors` into `dir`, creating it if needed.
#[cfg(not(target_arch = "wasm32"))]
pub fn write_dir(dir: &std::path::Path, files: &SaeLensFiles) -> Result<()> {
    let fail = |what: &str, e: std::io::Error| {
        EngineError::invalid(
            "export directory",
            dir.display(),
            format!("cannot write {what}: {e}"),
        )
    };
    std::fs::create_dir_all(dir).map_err(|e| fail("the directory", e))?;
    std::fs::write(dir.join(CFG_FILENAME), &files.cfg_json).map_err(|e| fail(CFG_FILENAME, e))?;
    std::fs::write(dir.join(WEIGHTS_FILENAME), &files.weights)
        .map_err(|e| fail(WEIGHTS_FILENAME, e))?;
    Ok(())
}

/// Reads an SAELens SAE directory's two files (pass them to [`from_saelens`]).
#[cfg(not(target_arch = "wasm32"))]
pub fn read_dir(dir: &std::path::Path) -> Result<SaeLensFiles> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => bad(format!(
                "{} does not exist (an SAELens SAE directory holds {CFG_FILENAME} and \
                 {WEIGHTS_FILENAME})",
                path.display()
            )),
            _ => bad(format!("cannot read {}: {e}", path.display())),
        })
    };
    let cfg_json = String::from_utf8(read(CFG_FILENAME)?)
        .map_err(|e| bad(format!("{CFG_FILENAME} is not UTF-8 text: {e}")))?;
    let weights = read(WEIGHTS_FILENAME)?;
    Ok(SaeLensFiles { cfg_json, weights })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::sae::arch;
    use crate::models::sae::config::{SourceConfig, ARCHITECTURE_NAMES};
    use safetensors::tensor::TensorView;
    use safetensors::Dtype;

    const D_IN: usize = 5;
    const D_SAE: usize = 7;

    fn config(name: &str) -> SaeConfig {
        let mut cfg = SaeConfig {
            architecture: Architecture::by_name(name).unwrap(),
            d_sae: D_SAE as u32,
            ..SaeConfig::default()
        };
        if let SourceConfig::GroundTruth { d, .. } = &mut cfg.source {
            *d = D_IN as u32;
        }
        if let Architecture::TopK { k, .. } | Architecture::BatchTopK { k, .. } =
            &mut cfg.architecture
        {
            *k = 3;
        }
        assert_eq!(cfg.d_in() as usize, D_IN);
        cfg
    }

    /// Distinct, irregular values, so a transposed or shuffled tensor cannot pass.
    fn wavy(len: usize, seed: f32) -> Vec<f32> {
        (0..len)
            .map(|i| ((i as f32 + 1.0) * 0.731 + seed).sin() * (1.0 + 0.1 * i as f32))
            .collect()
    }

    fn params(name: &str, input_scale: f32) -> SaeParams {
        let cfg = config(name);
        let mut p = SaeParams::zeros(D_IN, D_SAE, &cfg.architecture);
        p.w_enc = wavy(D_SAE * D_IN, 0.1);
        p.w_dec = wavy(D_SAE * D_IN, 1.7);
        p.b_enc = wavy(D_SAE, 2.3).iter().map(|v| v * 0.2).collect();
        p.b_dec = wavy(D_IN, 3.1);
        if name == "gated" {
            p.r_mag = wavy(D_SAE, 4.2).iter().map(|v| v * 0.3).collect();
            p.b_mag = wavy(D_SAE, 5.3).iter().map(|v| v * 0.2).collect();
        }
        if name == "jumprelu" {
            // Logs near 0 (thresholds near 1) and far from it.
            p.log_threshold = vec![-2.3, 0.7, -5.1, 2.5, -0.05, -3.0, 0.001];
        }
        if name == "batch_topk" {
            p.batch_threshold = 0.37;
        }
        p.input_scale = input_scale;
        p
    }

    fn export(name: &str, p: &SaeParams) -> SaeLensFiles {
        to_saelens(p, &config(name), "blocks.0.hook_resid_pre").unwrap()
    }

    fn import(files: &SaeLensFiles) -> Result<(SaeParams, ImportedCfg)> {
        from_saelens(&files.cfg_json, &files.weights)
    }

    fn import_err(cfg_json: &str, weights: &[u8]) -> String {
        from_saelens(cfg_json, weights).unwrap_err().to_string()
    }

    type Tensors = Vec<(String, Dtype, Vec<usize>, Vec<u8>)>;

    fn tensors_of(weights: &[u8]) -> Tensors {
        let st = SafeTensors::deserialize(weights).unwrap();
        let mut t: Tensors = st
            .tensors()
            .into_iter()
            .map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
            .collect();
        t.sort_by(|a, b| a.0.cmp(&b.0));
        t
    }

    fn to_bytes(tensors: &Tensors) -> Vec<u8> {
        let views: Vec<_> = tensors
            .iter()
            .map(|(n, dt, s, b)| (n.clone(), TensorView::new(*dt, s.clone(), b).unwrap()))
            .collect();
        safetensors::serialize(views, None).unwrap()
    }

    fn f32s(bytes: &[u8]) -> Vec<f32> {
        bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect()
    }

    fn edit_cfg(cfg_json: &str, f: impl FnOnce(&mut Map<String, Value>)) -> String {
        let mut v: Value = serde_json::from_str(cfg_json).unwrap();
        f(v.as_object_mut().unwrap());
        v.to_string()
    }

    /// SAELens's inference forward pass read off the format (not its code): encode then decode
    /// from the file's tensors and cfg.json, for inputs `[batch, d_in]`.
    fn saelens_forward(cfg_json: &str, weights: &[u8], x: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let cfg: Value = serde_json::from_str(cfg_json).unwrap();
        let t: std::collections::HashMap<String, Vec<f32>> = tensors_of(weights)
            .into_iter()
            .map(|(n, dt, _, b)| {
                let v = match dt {
                    Dtype::F64 => b
                        .chunks_exact(8)
                        .map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32)
                        .collect(),
                    _ => f32s(&b),
                };
                (n, v)
            })
            .collect();
        let arch = cfg["architecture"].as_str().unwrap();
        let (d, n) = (
            cfg["d_in"].as_u64().unwrap() as usize,
            cfg["d_sae"].as_u64().unwrap() as usize,
        );
        let apply = cfg["apply_b_dec_to_input"].as_bool().unwrap_or(true);
        let rescale = cfg["rescale_acts_by_decoder_norm"]
            .as_bool()
            .unwrap_or(arch == "batchtopk");
        let (w_enc, w_dec, b_dec) = (&t["W_enc"], &t["W_dec"], &t["b_dec"]);
        let norms: Vec<f32> = (0..n)
            .map(|j| {
                w_dec[j * d..(j + 1) * d]
                    .iter()
                    .map(|w| w * w)
                    .sum::<f32>()
                    .sqrt()
            })
            .collect();
        let batch = x.len() / d;
        let mut f = vec![0f32; batch * n];
        let mut out = vec![0f32; batch * d];
        for b in 0..batch {
            let sae_in: Vec<f32> = (0..d)
                .map(|i| x[b * d + i] - if apply { b_dec[i] } else { 0.0 })
                .collect();
            let xw = |j: usize| (0..d).map(|i| sae_in[i] * w_enc[i * n + j]).sum::<f32>();
            let fr = &mut f[b * n..(b + 1) * n];
            match arch {
                "standard" => (0..n).for_each(|j| fr[j] = (xw(j) + t["b_enc"][j]).max(0.0)),
                "topk" => {
                    let k = cfg["k"].as_u64().unwrap() as usize;
                    let mut h: Vec<(usize, f32)> = (0..n)
                        .map(|j| {
                            let v = xw(j) + t["b_enc"][j];
                            (j, if rescale { v * norms[j] } else { v })
                        })
                        .collect();
                    h.sort_by(|a, b| b.1.total_cmp(&a.1));
                    h.iter().take(k).for_each(|&(j, v)| fr[j] = v.max(0.0));
                }
                "gated" => (0..n).for_each(|j| {
                    let gate = xw(j) + t["b_gate"][j] > 0.0;
                    let mag = xw(j) * t["r_mag"][j].exp() + t["b_mag"][j];
                    fr[j] = if gate { mag.max(0.0) } else { 0.0 };
                }),
                "jumprelu" | "batchtopk" => (0..n).for_each(|j| {
                    let mut h = xw(j) + t["b_enc"][j];
                    if rescale {
                        h *= norms[j];
                    }
                    let theta = if arch == "jumprelu" {
                        t["threshold"][j]
                    } else {
                        t["topk_threshold"][0]
                    };
                    fr[j] = if h > theta { h.max(0.0) } else { 0.0 };
                }),
                other => panic!("{other}"),
            }
            for i in 0..d {
                out[b * d + i] = b_dec[i]
                    + (0..n)
                        .map(|j| {
                            let a = if rescale { fr[j] / norms[j] } else { fr[j] };
                            a * w_dec[j * d + i]
                        })
                        .sum::<f32>();
            }
        }
        (f, out)
    }

    fn inputs(batch: usize) -> Vec<f32> {
        (0..batch * D_IN)
            .map(|i| ((i as f32) * 1.37).cos() * 1.5 + 0.2)
            .collect()
    }

    fn assert_close(a: &[f32], b: &[f32], tol: f32, what: &str) {
        assert_eq!(a.len(), b.len(), "{what}");
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= tol * (1.0 + x.abs().max(y.abs())),
                "{what}[{i}]: {x} vs {y}"
            );
        }
    }

    #[test]
    fn a_zip_holds_the_folder_saelens_loads() {
        use std::io::Read;
        let files = export("topk", &params("topk", 1.0));
        let bytes = files.to_zip("mechlab-sae-topk").unwrap();
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        let names: Vec<String> = zip.file_names().map(|n| n.unwrap().to_string()).collect();
        assert_eq!(
            names,
            [
                "mechlab-sae-topk/cfg.json",
                "mechlab-sae-topk/sae_weights.safetensors"
            ]
        );
        let mut cfg = String::new();
        zip.by_name("mechlab-sae-topk/cfg.json")
            .unwrap()
            .read_to_string(&mut cfg)
            .unwrap();
        let mut weights = vec![];
        zip.by_name("mechlab-sae-topk/sae_weights.safetensors")
            .unwrap()
            .read_to_end(&mut weights)
            .unwrap();
        assert_eq!(
            SaeLensFiles {
                cfg_json: cfg,
                weights
            },
            files
        );
    }

    #[test]
    fn every_architecture_round_trips() {
        for name in ARCHITECTURE_NAMES {
            let p = params(name, 1.0);
            let files = export(name, &p);
            let (q, cfg) = import(&files).unwrap();
            assert_eq!(cfg.architecture, name);
            assert_eq!((cfg.d_in, cfg.d_sae), (D_IN, D_SAE));
            assert_eq!(cfg.hook_name.as_deref(), Some("blocks.0.hook_resid_pre"));
            assert_eq!(cfg.normalize_activations, "none");
            assert_eq!(cfg.sae_lens_version.as_deref(), Some(SAELENS_VERSION));
            assert_eq!(cfg.k, config(name).architecture.k(), "{name}");
            assert_eq!(cfg.to_architecture().unwrap().k(), cfg.k);
            assert!(cfg.notes.is_empty(), "{name}: {:?}", cfg.notes);
            if name == "jumprelu" {
                // The threshold inference uses is identical; the logs are, far from 0.
                for (a, b) in p.log_threshold.iter().zip(&q.log_threshold) {
                    assert_eq!(a.exp().to_bits(), b.exp().to_bits(), "{a} vs {b}");
                    if a.abs() >= 2.0 {
                        assert_eq!(a.to_bits(), b.to_bits());
                    }
                }
                let mut q2 = q.clone();
                q2.log_threshold = p.log_threshold.clone();
                assert_eq!(q2, p);
            } else {
                assert_eq!(q, p, "{name}");
            }
            // Export after import writes the same file.
            let again = export(name, &q);
            assert_eq!(again, files, "{name}");
        }
    }

    #[test]
    fn exported_files_compute_what_the_engine_computes() {
        // With an input scale, so the folding is checked too: the engine sees `s x`, SAELens
        // the raw `x`, and SAELens's reconstruction is the engine's divided by s.
        let s = 1.7f32;
        let batch = 6;
        let x = inputs(batch);
        let xs: Vec<f32> = x.iter().map(|v| v * s).collect();
        for name in ARCHITECTURE_NAMES {
            let p = params(name, s);
            let a = config(name).architecture;
            let files = export(name, &p);
            let (f_ref, out_ref) = saelens_forward(&files.cfg_json, &files.weights, &x);
            let f = arch::encode(&a, &p, &xs, batch);
            let out: Vec<f32> = arch::decode(&p, &f, batch).iter().map(|v| v / s).collect();
            assert_close(&f, &f_ref, 1e-5, name);
            assert_close(&out, &out_ref, 1e-5, name);
            assert!(f.iter().any(|&v| v > 0.0), "{name}: nothing fired");
            assert!(f.contains(&0.0), "{name}: nothing was cut");
            // Imported, the parameters are the folded ones, exactly.
            let (q, cfg) = import(&files).unwrap();
            let mut want = p.folded();
            if name == "jumprelu" {
                want.log_threshold = q.log_threshold.clone();
            }
            assert_eq!(q, want, "{name}");
            let v: Value = serde_json::from_str(&files.cfg_json).unwrap();
            assert_eq!(v["normalize_activations"], "none");
            assert_eq!(v["metadata"]["mechlab_folded_input_scale"], s as f64);
            assert_eq!(cfg.normalize_activations, "none");
        }
    }

    #[test]
    fn the_files_follow_saelens_names_and_shapes() {
        let expect: [(&str, &str, &[&str]); 5] = [
            ("relu_l1", "standard", &["W_dec", "W_enc", "b_dec", "b_enc"]),
            ("topk", "topk", &["W_dec", "W_enc", "b_dec", "b_enc"]),
            (
                "batch_topk",
                "jumprelu",
                &["W_dec", "W_enc", "b_dec", "b_enc", "threshold"],
            ),
            (
                "gated",
                "gated",
                &["W_dec", "W_enc", "b_dec", "b_gate", "b_mag", "r_mag"],
            ),
            (
                "jumprelu",
                "jumprelu",
                &["W_dec", "W_enc", "b_dec", "b_enc", "threshold"],
            ),
        ];
        for (name, saelens, names) in expect {
            let p = params(name, 1.0);
            let files = export(name, &p);
            let t = tensors_of(&files.weights);
            let got: Vec<&str> = t.iter().map(|t| t.0.as_str()).collect();
            assert_eq!(got, names, "{name}");
            for (n, dt, shape, bytes) in &t {
                assert_eq!(*dt, Dtype::F32);
                let want = match n.as_str() {
                    "W_enc" => vec![D_IN, D_SAE],
                    "W_dec" => vec![D_SAE, D_IN],
                    "b_dec" => vec![D_IN],
                    _ => vec![D_SAE],
                };
                assert_eq!(*shape, want, "{name} {n}");
                if n == "W_enc" {
                    // [d_in, d_sae]: element (i, j) is latent j's weight on input i.
                    let w = f32s(bytes);
                    assert_eq!(w[2 * D_SAE + 6], p.w_enc[6 * D_IN + 2]);
                }
                if n == "threshold" && name == "batch_topk" {
                    assert_eq!(f32s(bytes), vec![0.37; D_SAE]);
                }
                if n == "threshold" && name == "jumprelu" {
                    assert_eq!(f32s(bytes)[1], 0.7f32.exp());
                }
            }
            let v: Value = serde_json::from_str(&files.cfg_json).unwrap();
            assert_eq!(v["architecture"], saelens);
            assert_eq!(v["d_in"], D_IN);
            assert_eq!(v["d_sae"], D_SAE);
            assert_eq!(v["dtype"], "float32");
            assert_eq!(v["device"], "cpu");
            assert_eq!(v["apply_b_dec_to_input"], true);
            assert_eq!(v["reshape_activations"], "none");
            assert_eq!(v["metadata"]["sae_lens_version"], SAELENS_VERSION);
            assert_eq!(v["metadata"]["hook_name"], "blocks.0.hook_resid_pre");
            assert_eq!(v["metadata"]["mechlab_architecture"], name);
            match name {
                "topk" => {
                    assert_eq!(v["k"], 3);
                    assert_eq!(v["rescale_acts_by_decoder_norm"], false);
                }
                "batch_topk" => assert_eq!(v["metadata"]["mechlab_k"], 3),
                _ => assert!(v.get("k").is_none()),
            }
        }
    }

    #[test]
    fn a_jumprelu_from_elsewhere_stays_jumprelu() {
        // A uniform threshold without mechlab's note is what SAELens writes for a trained
        // BatchTopK; it is imported as the JumpReLU it is.
        let files = export("batch_topk", &params("batch_topk", 1.0));
        let cfg = edit_cfg(&files.cfg_json, |o| {
            o["metadata"]
                .as_object_mut()
                .unwrap()
                .remove("mechlab_architecture");
        });
        let (q, c) = from_saelens(&cfg, &files.weights).unwrap();
        assert_eq!(c.architecture, "jumprelu");
        assert_eq!(c.saelens_architecture, "jumprelu");
        assert_eq!(c.k, None);
        assert!(q.log_threshold.iter().all(|l| l.exp() == 0.37));
        // Thresholds of 0 are plain ReLU: they come in near the smallest positive normal f32.
        let mut t = tensors_of(&files.weights);
        let th = t.iter_mut().find(|t| t.0 == "threshold").unwrap();
        th.3 = f32_bytes(&[0.0; D_SAE]);
        let (q, c) = from_saelens(&cfg, &to_bytes(&t)).unwrap();
        for l in &q.log_threshold {
            assert!((l.exp() / f32::MIN_POSITIVE - 1.0).abs() < 1e-4, "{l}");
        }
        assert!(c.notes[0].contains("at or below 0"), "{:?}", c.notes);
    }

    #[test]
    fn saelens_training_batchtopk_checkpoints_import() {
        // SAELens's BatchTopK training checkpoint: architecture "batchtopk", a 0-d f64
        // `topk_threshold`, decoder norms not yet folded (rescale_acts_by_decoder_norm defaults
        // to true there).
        let p = params("topk", 1.0);
        let files = export("topk", &p);
        let mut t = tensors_of(&files.weights);
        t.push((
            "topk_threshold".into(),
            Dtype::F64,
            vec![],
            0.21f64.to_le_bytes().to_vec(),
        ));
        let weights = to_bytes(&t);
        let cfg = edit_cfg(&files.cfg_json, |o| {
            o.insert("architecture".into(), "batchtopk".into());
            o.insert("k".into(), Value::from(2.6));
            o.remove("rescale_acts_by_decoder_norm");
        });
        let (q, c) = from_saelens(&cfg, &weights).unwrap();
        assert_eq!(c.architecture, "batch_topk");
        assert_eq!(c.k, Some(3));
        assert_eq!(q.batch_threshold, 0.21);
        assert!(c.notes.iter().any(|n| n.contains("decoder norms")));
        for j in 0..D_SAE {
            assert!((q.decoder_norm(j) - 1.0).abs() < 1e-5);
        }
        let x = inputs(6);
        let (f_ref, out_ref) = saelens_forward(&cfg, &weights, &x);
        let a = c.to_architecture().unwrap();
        let f = arch::encode(&a, &q, &x, 6);
        assert_close(&f, &f_ref, 1e-5, "f");
        assert_close(&arch::decode(&q, &f, 6), &out_ref, 1e-5, "x_hat");
    }

    #[test]
    fn topk_with_decoder_norm_rescaling_keeps_its_function() {
        let p = params("topk", 1.0);
        let files = export("topk", &p);
        let cfg = edit_cfg(&files.cfg_json, |o| {
            o.insert("rescale_acts_by_decoder_norm".into(), true.into());
        });
        let (q, c) = from_saelens(&cfg, &files.weights).unwrap();
        assert_eq!(c.k, Some(3));
        let x = inputs(8);
        let (f_ref, out_ref) = saelens_forward(&cfg, &files.weights, &x);
        let f = arch::encode(&c.to_architecture().unwrap(), &q, &x, 8);
        assert_close(&f, &f_ref, 1e-5, "f");
        assert_close(&arch::decode(&q, &f, 8), &out_ref, 1e-5, "x_hat");
    }

    #[test]
    fn without_b_dec_on_the_input_the_encoder_biases_absorb_it() {
        for name in ["relu_l1", "gated", "jumprelu"] {
            let files = export(name, &params(name, 1.0));
            let cfg = edit_cfg(&files.cfg_json, |o| {
                o.insert("apply_b_dec_to_input".into(), false.into());
            });
            let (q, c) = from_saelens(&cfg, &files.weights).unwrap();
            assert!(c.notes.iter().any(|n| n.contains("apply_b_dec_to_input")));
            let x = inputs(6);
            let (f_ref, out_ref) = saelens_forward(&cfg, &files.weights, &x);
            let f = arch::encode(&c.to_architecture().unwrap(), &q, &x, 6);
            assert_close(&f, &f_ref, 1e-5, name);
            assert_close(&arch::decode(&q, &f, 6), &out_ref, 1e-5, name);
        }
    }

    #[test]
    fn half_precision_weights_are_widened() {
        let files = export("gated", &params("gated", 1.0));
        let mut t = tensors_of(&files.weights);
        let mut want = Vec::new();
        for (i, (name, dt, _, bytes)) in t.iter_mut().enumerate() {
            let narrow: Vec<f32> = f32s(bytes);
            let (new, widened): (Vec<u8>, Vec<f32>) = if i % 2 == 0 {
                *dt = Dtype::F16;
                let h: Vec<half::f16> = narrow.iter().map(|&v| half::f16::from_f32(v)).collect();
                (
                    h.iter().flat_map(|v| v.to_bits().to_le_bytes()).collect(),
                    h.iter().map(|v| v.to_f32()).collect(),
                )
            } else {
                *dt = Dtype::BF16;
                let h: Vec<half::bf16> = narrow.iter().map(|&v| half::bf16::from_f32(v)).collect();
                (
                    h.iter().flat_map(|v| v.to_bits().to_le_bytes()).collect(),
                    h.iter().map(|v| v.to_f32()).collect(),
                )
            };
            *bytes = new;
            want.push((name.clone(), widened));
        }
        let cfg = edit_cfg(&files.cfg_json, |o| {
            o.insert("dtype".into(), "bfloat16".into());
        });
        let (q, _) = from_saelens(&cfg, &to_bytes(&t)).unwrap();
        for (name, w) in want {
            let got = match name.as_str() {
                "W_enc" => transpose(&q.w_enc, D_SAE, D_IN),
                "W_dec" => q.w_dec.clone(),
                "b_dec" => q.b_dec.clone(),
                "b_gate" => q.b_enc.clone(),
                "r_mag" => q.r_mag.clone(),
                "b_mag" => q.b_mag.clone(),
                other => panic!("{other}"),
            };
            assert_eq!(got, w, "{name}");
        }
    }

    #[test]
    fn ground_truth_features_are_written_as_one_tensor() {
        let f = wavy(12, 0.5);
        let bytes = ground_truth_safetensors(&f, 4, 3).unwrap();
        let t = tensors_of(&bytes);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].0, "features");
        assert_eq!(t[0].1, Dtype::F32);
        assert_eq!(t[0].2, vec![4, 3]);
        assert_eq!(f32s(&t[0].3), f);
        let e = ground_truth_safetensors(&f, 5, 3).unwrap_err().to_string();
        assert!(e.contains("12 values") && e.contains("5 × 3"), "{e}");
    }

    #[test]
    fn export_refuses_what_saelens_cannot_hold() {
        let mut p = params("relu_l1", 1.0);
        p.w_dec[3] = f32::NAN;
        let e = to_saelens(&p, &config("relu_l1"), "")
            .unwrap_err()
            .to_string();
        assert!(e.contains("W_dec[3] = NaN"), "{e}");

        let mut p = params("batch_topk", 1.0);
        p.batch_threshold = -0.5;
        let e = to_saelens(&p, &config("batch_topk"), "")
            .unwrap_err()
            .to_string();
        assert!(e.contains("batch_threshold = -0.5"), "{e}");

        let p = params("relu_l1", 1.0);
        let e = to_saelens(&p, &config("gated"), "")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("r_mag = 0 values") && e.contains("needs 7"),
            "{e}"
        );

        let e = to_saelens(
            &params("topk", 1.0),
            &SaeConfig {
                d_sae: 9,
                ..config("topk")
            },
            "",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("[9, 5]"), "{e}");

        // No hook name is written as null, not "".
        let files = to_saelens(&params("topk", 1.0), &config("topk"), "").unwrap();
        let (_, c) = import(&files).unwrap();
        assert_eq!(c.hook_name, None);
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn scratch_dir(tag: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("mechlab-saelens-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn directories_round_trip_and_missing_files_are_named() {
        let dir = scratch_dir("dir");
        let files = export("jumprelu", &params("jumprelu", 1.0));
        write_dir(&dir.join("sae"), &files).unwrap();
        assert_eq!(read_dir(&dir.join("sae")).unwrap(), files);

        std::fs::remove_file(dir.join("sae").join(WEIGHTS_FILENAME)).unwrap();
        let e = read_dir(&dir.join("sae")).unwrap_err().to_string();
        assert!(
            e.starts_with("cannot import SAE: ")
                && e.contains("sae_weights.safetensors does not exist"),
            "{e}"
        );
        let e = read_dir(&dir.join("nowhere")).unwrap_err().to_string();
        assert!(e.contains("cfg.json does not exist"), "{e}");

        std::fs::write(dir.join("sae").join(CFG_FILENAME), [0xff, 0xfe, 0x00]).unwrap();
        let e = read_dir(&dir.join("sae")).unwrap_err().to_string();
        assert!(e.contains("cfg.json is not UTF-8"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn malformed_cfg_json_is_named() {
        let files = export("topk", &params("topk", 1.0));
        let w = &files.weights;
        let e = import_err("{\"architecture\": \"topk\",", w);
        assert!(e.contains("cfg.json is not valid JSON"), "{e}");
        assert!(import_err("[1, 2]", w).contains("not a JSON object"));

        let no_d_in = edit_cfg(&files.cfg_json, |o| {
            o.remove("d_in");
        });
        assert!(import_err(&no_d_in, w).contains("cfg.json has no \"d_in\""));
        let text_d_sae = edit_cfg(&files.cfg_json, |o| {
            o.insert("d_sae".into(), "seven".into());
        });
        let e = import_err(&text_d_sae, w);
        assert!(
            e.contains("d_sae = \"seven\" is not a positive whole number"),
            "{e}"
        );
        let big_k = edit_cfg(&files.cfg_json, |o| {
            o.insert("k".into(), 8.into());
        });
        let e = import_err(&big_k, w);
        assert!(e.contains("k = 8 must be between 1 and d_sae = 7"), "{e}");
        let bad_dtype = edit_cfg(&files.cfg_json, |o| {
            o.insert("dtype".into(), "int8".into());
        });
        assert!(import_err(&bad_dtype, w).contains("dtype \"int8\""));
        let layer_norm = edit_cfg(&files.cfg_json, |o| {
            o.insert("normalize_activations".into(), "layer_norm".into());
        });
        let e = import_err(&layer_norm, w);
        assert!(e.contains("normalize_activations = \"layer_norm\""), "{e}");
        let no_arch = edit_cfg(&files.cfg_json, |o| {
            o.remove("architecture");
        });
        assert!(import_err(&no_arch, w).contains("cfg.json has no \"architecture\""));
    }

    #[test]
    fn older_configs_use_saelens_defaults() {
        // A 5.x topk config: no version, no architecture, k under activation_fn_kwargs,
        // hook_point, a boolean normalize_activations.
        let files = export("topk", &params("topk", 1.0));
        let cfg = edit_cfg(&files.cfg_json, |o| {
            o.remove("architecture");
            o.remove("metadata");
            o.remove("k");
            o.insert("activation_fn".into(), "topk".into());
            o.insert("activation_fn_kwargs".into(), serde_json::json!({ "k": 2 }));
            o.insert("hook_point".into(), "blocks.3.hook_resid_post".into());
            o.insert("normalize_activations".into(), true.into());
        });
        let (_, c) = from_saelens(&cfg, &files.weights).unwrap();
        assert_eq!(c.architecture, "topk");
        assert_eq!(c.k, Some(2));
        assert_eq!(c.hook_name.as_deref(), Some("blocks.3.hook_resid_post"));
        assert_eq!(c.normalize_activations, "expected_average_only_in");
        assert_eq!(c.sae_lens_version, None);
    }

    #[test]
    fn unknown_architectures_are_named() {
        let files = export("relu_l1", &params("relu_l1", 1.0));
        let cfg = edit_cfg(&files.cfg_json, |o| {
            o.insert("architecture".into(), "matryoshka_batchtopk".into());
        });
        let e = import_err(&cfg, &files.weights);
        assert!(
            e.contains("unknown architecture \"matryoshka_batchtopk\"")
                && e.contains("standard, topk, gated, jumprelu"),
            "{e}"
        );
    }

    #[test]
    fn missing_and_unexpected_tensors_are_named() {
        let files = export("gated", &params("gated", 1.0));
        let mut t = tensors_of(&files.weights);
        t.retain(|t| t.0 != "r_mag");
        let e = import_err(&files.cfg_json, &to_bytes(&t));
        assert!(
            e.contains("has no tensor \"r_mag\"") && e.contains("a gated SAE has"),
            "{e}"
        );
        // A gated SAE has no b_enc: SAELens would refuse it too.
        let mut t = tensors_of(&files.weights);
        t.push((
            "b_enc".into(),
            Dtype::F32,
            vec![D_SAE],
            f32_bytes(&[0.0; D_SAE]),
        ));
        let e = import_err(&files.cfg_json, &to_bytes(&t));
        assert!(e.contains("unexpected tensor \"b_enc\""), "{e}");
        // A unit scaling factor is dropped, as SAELens drops it; another is refused.
        for (scale, ok) in [(1.0f32, true), (2.0, false)] {
            let mut t = tensors_of(&files.weights);
            t.push((
                "scaling_factor".into(),
                Dtype::F32,
                vec![D_SAE],
                f32_bytes(&[scale; D_SAE]),
            ));
            let r = from_saelens(&files.cfg_json, &to_bytes(&t));
            assert_eq!(r.is_ok(), ok, "{r:?}");
        }
    }

    #[test]
    fn mis_shaped_tensors_are_named_with_both_shapes() {
        // The engine's own [d_sae, d_in] layout for W_enc is the likely mistake.
        let files = export("relu_l1", &params("relu_l1", 1.0));
        let mut t = tensors_of(&files.weights);
        t.iter_mut().find(|t| t.0 == "W_enc").unwrap().2 = vec![D_SAE, D_IN];
        let e = import_err(&files.cfg_json, &to_bytes(&t));
        assert!(
            e.contains("tensor \"W_enc\" has shape [7, 5], expected [5, 7] ([d_in, d_sae])"),
            "{e}"
        );
        let mut t = tensors_of(&files.weights);
        let b = t.iter_mut().find(|t| t.0 == "b_dec").unwrap();
        b.2 = vec![4];
        b.3.truncate(16);
        let e = import_err(&files.cfg_json, &to_bytes(&t));
        assert!(e.contains("\"b_dec\" has shape [4], expected [5]"), "{e}");
    }

    #[test]
    fn unreadable_dtypes_are_refused_by_name() {
        let files = export("relu_l1", &params("relu_l1", 1.0));
        let mut t = tensors_of(&files.weights);
        t.iter_mut().find(|t| t.0 == "W_dec").unwrap().1 = Dtype::I32;
        let e = import_err(&files.cfg_json, &to_bytes(&t));
        assert!(
            e.contains("tensor \"W_dec\" has dtype I32") && e.contains("F32, F16, BF16 and F64"),
            "{e}"
        );
        let mut t = tensors_of(&files.weights);
        let b = t.iter_mut().find(|t| t.0 == "b_dec").unwrap();
        b.1 = Dtype::F64;
        b.3 = [1.0f64, 2.0, 1e300, 0.0, 0.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let e = import_err(&files.cfg_json, &to_bytes(&t));
        assert!(
            e.contains("\"b_dec\" holds 1e300 at index 2, beyond the range of f32"),
            "{e}"
        );
    }

    #[test]
    fn corrupt_safetensors_are_refused_not_panicked_on() {
        let files = export("jumprelu", &params("jumprelu", 1.0));
        for cut in 0..files.weights.len() {
            let e = import_err(&files.cfg_json, &files.weights[..cut]);
            assert!(
                e.contains("sae_weights.safetensors is not a valid safetensors file"),
                "cut at {cut}: {e}"
            );
        }
        let mut w = files.weights.clone();
        w[9] = b'#';
        let e = import_err(&files.cfg_json, &w);
        assert!(e.contains("not a valid safetensors file"), "{e}");
    }

    #[test]
    fn non_finite_values_are_located() {
        let files = export("topk", &params("topk", 1.0));
        for (name, at, value, want) in [
            (
                "b_dec",
                3,
                f32::NAN,
                "\"b_dec\" holds a non-finite value (NaN) at index 3",
            ),
            (
                "W_enc",
                2 * D_SAE + 4,
                f32::INFINITY,
                "\"W_enc\" holds a non-finite value (inf) at index [2, 4]",
            ),
        ] {
            let mut t = tensors_of(&files.weights);
            let b = t.iter_mut().find(|t| t.0 == name).unwrap();
            b.3[at * 4..at * 4 + 4].copy_from_slice(&value.to_le_bytes());
            let e = import_err(&files.cfg_json, &to_bytes(&t));
            assert!(e.contains(want), "{e}");
        }
    }
}
