//! Export: an SAE in SAELens's layout, the input scale folded into its weights.

use super::*;
use crate::io::safetensors::{f32_bytes, serialize_f32};
use crate::models::sae::config::{Architecture, SaeConfig};
use crate::models::sae::params::SaeParams;
use serde_json::{Map, Value};

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
