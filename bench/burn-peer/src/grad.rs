//! The gradient oracle: each case's loss written with burn tensor ops, differentiated by burn's
//! autodiff, so `cargo xtask oracle` can check mechlab's hand-written backward passes against an
//! implementation that shares no code with them.
//!
//! Arguments: CASES.json, an object `{"cases": [...]}`. A case is either an SAE
//! (`"model": "sae"`) with `architecture` (relu_l1, topk, batch_topk, gated, jumprelu), `d_in`,
//! `d_sae`, `batch`, `k`, `k_aux`, `aux_coefficient`, `coefficient` (the sparsity coefficient
//! in force), `bandwidth` (JumpReLU's ε), `dead` (one 0/1 per latent), `x` `[batch, d_in]` and
//! the parameters in mechlab's layout (`w_enc` and `w_dec` `[d_sae, d_in]`, `b_enc`, `b_dec`,
//! `r_mag`, `b_mag`, `log_threshold`); or the toy model of superposition (`"model": "toy"`)
//! with `n_features`, `n_hidden`, `batch`, `relu`, `importance`, `x` `[batch, n_features]`, `w`
//! `[n_hidden, n_features]` and `b`; or the Transformer lab's language model
//! (`"model": "transformer"`, see `transformer.rs`) with `config`, `batch`, `tokens` and
//! `params` by TransformerLens name.
//!
//! Prints one JSON line `{"results": [{"name", "loss": {...}, "grads": {tensor: [...]}}]}`.
//!
//! The losses follow the definitions in engine/src/models/sae/arch/*.rs and engine/src/models/toy/cpu.rs.
//! Selections (TopK, BatchTopK, AuxK, Gated's gate, JumpReLU's step) are masks computed here from
//! detached values (k-th largest values from burn's sort); the only hand-made derivatives are
//! JumpReLU's straight-through estimators for θ, written with the detach trick `(θ − sg(θ)) · c`,
//! which is zero forward and has derivative `c` in θ.

use crate::{tensor, values};
use burn::prelude::*;
use burn::tensor::activation::relu;
use serde_json::{json, Map, Value};

pub fn run(args: &[String]) -> Result<(), String> {
    let [path] = args else {
        return Err("arguments: grad CASES.json".into());
    };
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading {path}: {e}"))?;
    let input: Value = serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
    let device = Device::wgpu(Default::default()).autodiff();
    let cases = input["cases"].as_array().ok_or("no `cases` array")?;
    let mut results = Vec::new();
    for case in cases {
        let out = match case["model"].as_str() {
            Some("sae") => sae(case, &device)?,
            Some("toy") => toy(case, &device)?,
            Some("transformer") => crate::transformer::grad(case, &device)?,
            other => return Err(format!("unknown model {other:?}")),
        };
        results.push(json!({ "name": case["name"], "loss": out.0, "grads": out.1 }));
    }
    println!("{}", json!({ "results": results }));
    Ok(())
}

fn num(case: &Value, key: &str) -> Result<f64, String> {
    case[key]
        .as_f64()
        .ok_or_else(|| format!("case lacks the number `{key}`"))
}

fn count(case: &Value, key: &str) -> Result<usize, String> {
    Ok(num(case, key)? as usize)
}

fn floats(case: &Value, key: &str, len: usize) -> Result<Vec<f32>, String> {
    let v: Vec<f32> = case[key]
        .as_array()
        .ok_or_else(|| format!("case lacks the array `{key}`"))?
        .iter()
        .map(|v| v.as_f64().map(|v| v as f32))
        .collect::<Option<_>>()
        .ok_or_else(|| format!("`{key}` holds a non-number"))?;
    if v.len() != len {
        return Err(format!("`{key}` has {} values, not {len}", v.len()));
    }
    Ok(v)
}

/// A trained tensor: a leaf whose gradient burn keeps.
fn leaf<const D: usize>(
    case: &Value,
    key: &str,
    shape: [usize; D],
    device: &Device,
) -> Result<Tensor<D>, String> {
    let len = shape.iter().product();
    Ok(tensor(floats(case, key, len)?, shape, device).require_grad())
}

/// `t ⊙ t`.
fn square(t: Tensor<2>) -> Tensor<2> {
    t.clone() * t
}

/// `Σ (a − b)²` over everything, divided by `batch`: the reconstruction loss's form.
fn squared_error(a: Tensor<2>, b: Tensor<2>, batch: usize) -> Tensor<1> {
    square(a - b).sum().div_scalar(batch as f32)
}

/// The `k`-th largest value along `dim` (that dimension kept, of length 1). From a descending
/// sort rather than `topk`: burn 0.22's wgpu `topk` returns −f32::MAX in place of the tail of
/// the answer once k is large for the length (k 165 of 2310 on lavapipe), and BatchTopK's k ·
/// batch is large.
fn kth_largest<const D: usize>(t: Tensor<D>, k: usize, dim: usize) -> Tensor<D> {
    t.sort_descending(dim).narrow(dim, k - 1, 1)
}

/// Keeps, per row, the `k` largest values of `keyed` (a detached `[rows, n]`): true where a value
/// is at least the row's k-th largest.
fn row_top_k(keyed: Tensor<2>, k: usize) -> Tensor<2, Bool> {
    let [rows, n] = keyed.dims();
    let kth = kth_largest(keyed.clone(), k, 1);
    keyed.greater_equal(kth.expand([rows, n]))
}

/// Loss terms and gradients of the SAE case.
fn sae(case: &Value, device: &Device) -> Result<(Value, Value), String> {
    let arch = case["architecture"].as_str().ok_or("no architecture")?;
    let (d, n, b) = (
        count(case, "d_in")?,
        count(case, "d_sae")?,
        count(case, "batch")?,
    );
    let coefficient = num(case, "coefficient")? as f32;
    let x = tensor(floats(case, "x", b * d)?, [b, d], device);
    let w_enc = leaf(case, "w_enc", [n, d], device)?;
    let b_enc = leaf(case, "b_enc", [n], device)?;
    let w_dec = leaf(case, "w_dec", [n, d], device)?;
    let b_dec = leaf(case, "b_dec", [d], device)?;
    let mut extra: Vec<(&str, Tensor<1>)> = Vec::new();

    // The shared skeleton: centre on b_dec, encode, and (below) decode.
    let bias_row = |t: &Tensor<1>| t.clone().unsqueeze_dim::<2>(0);
    let xc = x.clone() - bias_row(&b_dec);
    let wx = xc.matmul(w_enc.clone().transpose());
    let pre = wx.clone() + bias_row(&b_enc);
    let decode = |f: Tensor<2>| f.matmul(w_dec.clone()) + bias_row(&b_dec);
    // ‖W_dec,ⱼ‖ as a row [1, d_sae].
    let norms = || square(w_dec.clone()).sum_dim(1).sqrt().reshape([1, n]);
    let zero = || Tensor::<1>::zeros([1], device);

    let (recon, sparsity, auxiliary) = match arch {
        "relu_l1" => {
            let f = relu(pre);
            let x_hat = decode(f.clone());
            let penalty = (f * norms()).sum().mul_scalar(coefficient / b as f32);
            (squared_error(x, x_hat, b), penalty, zero())
        }
        "topk" | "batch_topk" => {
            let k = count(case, "k")?;
            let act = relu(pre.clone());
            let keyed = act.clone().detach();
            let keep = if arch == "topk" {
                row_top_k(keyed, k)
            } else {
                // The k · batch largest over the whole batch.
                let all = keyed.clone().reshape([b * n]);
                let kb = (k * b).min(b * n);
                let min_kept = kth_largest(all, kb, 0).reshape([1, 1]);
                keyed.greater_equal(min_kept.expand([b, n]))
            };
            let f = act.clone() * keep.float();
            let x_hat = decode(f);
            let aux = aux_k(case, &x, &x_hat, act, &w_dec, device)?;
            (squared_error(x, x_hat, b), zero(), aux)
        }
        "gated" => {
            let r_mag = leaf(case, "r_mag", [n], device)?;
            let b_mag = leaf(case, "b_mag", [n], device)?;
            // π_gate = pre; π_mag = exp(r_mag) ⊙ (W_gate xc) + b_mag.
            let mag = wx * bias_row(&r_mag.clone().exp()) + bias_row(&b_mag);
            let open = pre.clone().detach().greater_elem(0.0).float();
            let f = open * relu(mag);
            let x_hat = decode(f);
            let gate = relu(pre);
            let penalty = (gate.clone() * norms())
                .sum()
                .mul_scalar(coefficient / b as f32);
            // The gate's reconstruction through a frozen copy of the decoder.
            let x_frozen = gate.matmul(w_dec.clone().detach()) + bias_row(&b_dec.clone().detach());
            let aux = squared_error(x.clone(), x_frozen, b);
            extra.push(("r_mag", r_mag));
            extra.push(("b_mag", b_mag));
            (squared_error(x, x_hat, b), penalty, aux)
        }
        "jumprelu" => {
            let eps = num(case, "bandwidth")? as f32;
            let log_threshold = leaf(case, "log_threshold", [n], device)?;
            let theta = bias_row(&log_threshold.clone().exp()); // [1, d_sae]
            let theta_sg = theta.clone().detach();
            let pre_sg = pre.clone().detach();
            let step = pre_sg
                .clone()
                .greater(theta_sg.clone().expand([b, n]))
                .float();
            // K((pre − θ)/ε)/ε with the rectangle kernel K(u) = 1[|u| < ½].
            let kernel = (pre_sg - theta_sg.clone())
                .div_scalar(eps)
                .abs()
                .lower_elem(0.5)
                .float()
                .div_scalar(eps);
            // Zero forward; derivative in θ: ∂f/∂θ = −(θ/ε)K and ∂H/∂θ = −(1/ε)K.
            let nudge = (theta - theta_sg.clone()).expand([b, n]);
            let f = pre * step.clone() + nudge.clone() * (kernel.clone() * theta_sg).neg();
            let h = step + nudge * kernel.neg();
            let x_hat = decode(f);
            let penalty = h.sum().mul_scalar(coefficient / b as f32);
            extra.push(("log_threshold", log_threshold));
            (squared_error(x, x_hat, b), penalty, zero())
        }
        other => return Err(format!("unknown architecture {other}")),
    };
    let total = recon.clone() + sparsity.clone() + auxiliary.clone();
    let grads = total.backward();
    let mut out = Map::new();
    let grad_of = |t: &Tensor<1>| {
        t.grad(&grads)
            .map(values)
            .unwrap_or_else(|| vec![0.0; t.dims()[0]])
    };
    let grad_of2 = |t: &Tensor<2>| {
        let [r, c] = t.dims();
        t.grad(&grads)
            .map(values)
            .unwrap_or_else(|| vec![0.0; r * c])
    };
    out.insert("w_enc".into(), json!(grad_of2(&w_enc)));
    out.insert("b_enc".into(), json!(grad_of(&b_enc)));
    out.insert("w_dec".into(), json!(grad_of2(&w_dec)));
    out.insert("b_dec".into(), json!(grad_of(&b_dec)));
    for (name, t) in &extra {
        out.insert((*name).into(), json!(grad_of(t)));
    }
    let scalar = |t: Tensor<1>| values(t.detach())[0];
    let loss = json!({
        "reconstruction": scalar(recon),
        "sparsity": scalar(sparsity),
        "auxiliary": scalar(auxiliary),
    });
    Ok((loss, Value::Object(out)))
}

/// AuxK (Gao et al.), as engine/src/models/sae/arch/mod.rs defines it: the top `k_aux` dead latents of
/// `ReLU(pre)` per row reconstruct the detached residual `x − x̂` through `W_dec` without
/// `b_dec`, scaled by `aux_coefficient · min(n_dead / k_aux, 1)`.
fn aux_k(
    case: &Value,
    x: &Tensor<2>,
    x_hat: &Tensor<2>,
    act: Tensor<2>,
    w_dec: &Tensor<2>,
    device: &Device,
) -> Result<Tensor<1>, String> {
    let [b, n] = act.dims();
    let dead = floats(case, "dead", n)?;
    let n_dead = dead.iter().filter(|&&v| v != 0.0).count();
    let (k_aux, coefficient) = (count(case, "k_aux")?, num(case, "aux_coefficient")? as f32);
    if n_dead == 0 || k_aux == 0 || coefficient == 0.0 {
        return Ok(Tensor::zeros([1], device));
    }
    let scale = coefficient * (n_dead as f32 / k_aux as f32).min(1.0);
    // Live latents get −1, below every dead latent's ReLU, so the row's top-k picks dead ones.
    let dead = tensor(dead, [1, n], device).expand([b, n]);
    let keyed = act.clone().detach() * dead.clone() + dead.sub_scalar(1.0);
    let keep = row_top_k(keyed, k_aux.min(n_dead));
    let e_hat = (act * keep.float()).matmul(w_dec.clone());
    let residual = (x.clone() - x_hat.clone()).detach();
    Ok(squared_error(residual, e_hat, b).mul_scalar(scale))
}

/// Loss and gradients of the toy model of superposition:
/// `Σ_f I_f (x_f − x'_f)²` averaged over the batch, `x' = act(Wᵀ W x + b)`.
fn toy(case: &Value, device: &Device) -> Result<(Value, Value), String> {
    let (f, h, b) = (
        count(case, "n_features")?,
        count(case, "n_hidden")?,
        count(case, "batch")?,
    );
    let x = tensor(floats(case, "x", b * f)?, [b, f], device);
    let importance = tensor(floats(case, "importance", f)?, [1, f], device);
    let w = leaf(case, "w", [h, f], device)?;
    let bias = leaf(case, "b", [f], device)?;
    let hidden = x.clone().matmul(w.clone().transpose());
    let mut out = hidden.matmul(w.clone()) + bias.clone().unsqueeze_dim::<2>(0);
    if case["relu"].as_bool().ok_or("no `relu`")? {
        out = relu(out);
    }
    let loss = (square(x - out) * importance.expand([b, f]))
        .sum()
        .div_scalar(b as f32);
    let grads = loss.backward();
    let gw = values(w.grad(&grads).ok_or("no gradient for w")?);
    let gb = values(bias.grad(&grads).ok_or("no gradient for b")?);
    Ok((
        json!({ "reconstruction": values(loss.detach())[0] }),
        json!({ "w": gw, "b": gb }),
    ))
}
