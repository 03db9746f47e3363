//! Import: an SAE in SAELens's layout (its inference configs, and its training checkpoints of
//! `batchtopk`) read into the engine's parameterisation, refusing what it cannot hold by name.

use super::*;
use crate::io::safetensors::{index_in, to_f32};
use crate::models::sae::params::SaeParams;
use safetensors::SafeTensors;
use serde_json::{Map, Value};

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
    if let Some((name, i, _)) = p.first_non_finite() {
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
