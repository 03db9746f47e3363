//! The Transformer lab's language model written with burn 0.22 as a framework user would write
//! it: TransformerLens's architecture (pre-LayerNorm, learned positions, causal attention,
//! `gelu`, `gelu_new` or `solu_ln` MLPs, or attention only) from burn tensor ops, with burn's
//! autodiff for the backward pass. It serves twice: `cargo xtask oracle` has burn differentiate
//! the next-token loss of a case mechlab's CPU reference also differentiates by hand
//! ([`grad`]), and `cargo xtask bench lm` times burn training it with AdamW beside mechlab
//! ([`bench`]).
//!
//! Parameters follow TransformerLens's names and shapes (`blocks.0.attn.W_Q`
//! `[n_heads, d_model, d_head]`, …), the loss its `lm_cross_entropy_loss` (every position but
//! the last of each row predicts the next token; the mean over those), LayerNorm its ε of 1e-5
//! on the biased variance, attention its scale of 1/√d_head. Nothing here is shared with the
//! engine.

use crate::{tensor, values};
use burn::module::{Param, ParamId};
use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::activation::{gelu_approximate, log_softmax, softmax};
use burn::tensor::{Distribution, Int};
use serde_json::{json, Map, Value};

/// TransformerLens's LayerNorm ε.
const LN_EPS: f32 = 1e-5;

/// A model's shape (HookedTransformerConfig's fields that matter here).
#[derive(Debug, Clone)]
pub struct Shape {
    pub n_layers: usize,
    pub d_model: usize,
    pub n_heads: usize,
    pub d_head: usize,
    pub d_mlp: usize,
    pub n_ctx: usize,
    pub d_vocab: usize,
    /// `gelu`, `gelu_new` or `solu_ln`.
    pub act_fn: String,
    pub attn_only: bool,
}

impl Shape {
    fn from_json(v: &Value) -> Result<Self, String> {
        let n = |k: &str| {
            v[k].as_u64()
                .map(|x| x as usize)
                .ok_or_else(|| format!("the config lacks the count `{k}`"))
        };
        let act_fn = v["act_fn"].as_str().ok_or("the config lacks `act_fn`")?;
        if !["gelu", "gelu_new", "solu_ln"].contains(&act_fn) {
            return Err(format!("act_fn {act_fn} is not gelu, gelu_new or solu_ln"));
        }
        Ok(Self {
            n_layers: n("n_layers")?,
            d_model: n("d_model")?,
            n_heads: n("n_heads")?,
            d_head: n("d_head")?,
            d_mlp: n("d_mlp")?,
            n_ctx: n("n_ctx")?,
            d_vocab: n("d_vocab")?,
            act_fn: act_fn.to_string(),
            attn_only: v["attn_only"].as_bool().unwrap_or(false),
        })
    }

    /// Every parameter's TransformerLens name and shape.
    fn parameters(&self) -> Vec<(String, Vec<usize>)> {
        let (d, h, e, m) = (self.d_model, self.n_heads, self.d_head, self.d_mlp);
        let mut out = vec![
            ("embed.W_E".into(), vec![self.d_vocab, d]),
            ("pos_embed.W_pos".into(), vec![self.n_ctx, d]),
        ];
        for l in 0..self.n_layers {
            let b = |n: &str| format!("blocks.{l}.{n}");
            out.push((b("ln1.w"), vec![d]));
            out.push((b("ln1.b"), vec![d]));
            for w in ["W_Q", "W_K", "W_V"] {
                out.push((b(&format!("attn.{w}")), vec![h, d, e]));
            }
            out.push((b("attn.W_O"), vec![h, e, d]));
            for w in ["b_Q", "b_K", "b_V"] {
                out.push((b(&format!("attn.{w}")), vec![h, e]));
            }
            out.push((b("attn.b_O"), vec![d]));
            if !self.attn_only {
                out.push((b("ln2.w"), vec![d]));
                out.push((b("ln2.b"), vec![d]));
                out.push((b("mlp.W_in"), vec![d, m]));
                out.push((b("mlp.b_in"), vec![m]));
                out.push((b("mlp.W_out"), vec![m, d]));
                out.push((b("mlp.b_out"), vec![d]));
                if self.act_fn == "solu_ln" {
                    out.push((b("mlp.ln.w"), vec![m]));
                    out.push((b("mlp.ln.b"), vec![m]));
                }
            }
        }
        out.push(("ln_final.w".into(), vec![d]));
        out.push(("ln_final.b".into(), vec![d]));
        out.push(("unembed.W_U".into(), vec![d, self.d_vocab]));
        out.push(("unembed.b_U".into(), vec![self.d_vocab]));
        out
    }
}

/// A LayerNorm's weight and bias.
#[derive(Module, Debug)]
struct Norm {
    w: Param<Tensor<1>>,
    b: Param<Tensor<1>>,
}

/// An MLP: its LayerNorm (ln2), weights, and SoLU's own LayerNorm (none for GeLU).
#[derive(Module, Debug)]
struct Mlp {
    ln2: Norm,
    w_in: Param<Tensor<2>>,
    b_in: Param<Tensor<1>>,
    w_out: Param<Tensor<2>>,
    b_out: Param<Tensor<1>>,
    ln: Vec<Norm>,
}

/// A block: ln1, attention, and its MLP (none when attention only).
#[derive(Module, Debug)]
struct Block {
    ln1: Norm,
    w_q: Param<Tensor<3>>,
    w_k: Param<Tensor<3>>,
    w_v: Param<Tensor<3>>,
    w_o: Param<Tensor<3>>,
    b_q: Param<Tensor<2>>,
    b_k: Param<Tensor<2>>,
    b_v: Param<Tensor<2>>,
    b_o: Param<Tensor<1>>,
    mlp: Vec<Mlp>,
}

/// The whole model.
#[derive(Module, Debug)]
pub struct Lm {
    w_e: Param<Tensor<2>>,
    w_pos: Param<Tensor<2>>,
    blocks: Vec<Block>,
    ln_final: Norm,
    w_u: Param<Tensor<2>>,
    b_u: Param<Tensor<1>>,
}

/// Where parameter values come from: a name and shape give row-major values.
type Source<'a> = dyn FnMut(&str, &[usize]) -> Result<Vec<f32>, String> + 'a;

fn param<const D: usize>(
    src: &mut Source<'_>,
    name: &str,
    shape: [usize; D],
    device: &Device,
) -> Result<Param<Tensor<D>>, String> {
    Ok(Param::from_tensor(tensor(src(name, &shape)?, shape, device)))
}

fn norm(src: &mut Source<'_>, prefix: &str, width: usize, device: &Device) -> Result<Norm, String> {
    Ok(Norm {
        w: param(src, &format!("{prefix}.w"), [width], device)?,
        b: param(src, &format!("{prefix}.b"), [width], device)?,
    })
}

impl Lm {
    /// The model with every parameter from `src`.
    fn new(s: &Shape, src: &mut Source<'_>, device: &Device) -> Result<Self, String> {
        let (d, h, e, m) = (s.d_model, s.n_heads, s.d_head, s.d_mlp);
        let mut blocks = Vec::new();
        for l in 0..s.n_layers {
            let b = |n: &str| format!("blocks.{l}.{n}");
            let mut mlp = Vec::new();
            if !s.attn_only {
                let ln = if s.act_fn == "solu_ln" {
                    vec![norm(src, &b("mlp.ln"), m, device)?]
                } else {
                    vec![]
                };
                mlp.push(Mlp {
                    ln2: norm(src, &b("ln2"), d, device)?,
                    w_in: param(src, &b("mlp.W_in"), [d, m], device)?,
                    b_in: param(src, &b("mlp.b_in"), [m], device)?,
                    w_out: param(src, &b("mlp.W_out"), [m, d], device)?,
                    b_out: param(src, &b("mlp.b_out"), [d], device)?,
                    ln,
                });
            }
            blocks.push(Block {
                ln1: norm(src, &b("ln1"), d, device)?,
                w_q: param(src, &b("attn.W_Q"), [h, d, e], device)?,
                w_k: param(src, &b("attn.W_K"), [h, d, e], device)?,
                w_v: param(src, &b("attn.W_V"), [h, d, e], device)?,
                w_o: param(src, &b("attn.W_O"), [h, e, d], device)?,
                b_q: param(src, &b("attn.b_Q"), [h, e], device)?,
                b_k: param(src, &b("attn.b_K"), [h, e], device)?,
                b_v: param(src, &b("attn.b_V"), [h, e], device)?,
                b_o: param(src, &b("attn.b_O"), [d], device)?,
                mlp,
            });
        }
        Ok(Self {
            w_e: param(src, "embed.W_E", [s.d_vocab, d], device)?,
            w_pos: param(src, "pos_embed.W_pos", [s.n_ctx, d], device)?,
            blocks,
            ln_final: norm(src, "ln_final", d, device)?,
            w_u: param(src, "unembed.W_U", [d, s.d_vocab], device)?,
            b_u: param(src, "unembed.b_U", [s.d_vocab], device)?,
        })
    }

    /// Every parameter's TransformerLens name with its id and rank, in [`Shape::parameters`]
    /// order.
    fn named(&self) -> Vec<(String, ParamId, usize)> {
        let mut out = vec![
            ("embed.W_E".to_string(), self.w_e.id, 2),
            ("pos_embed.W_pos".to_string(), self.w_pos.id, 2),
        ];
        for (l, blk) in self.blocks.iter().enumerate() {
            let b = |n: &str| format!("blocks.{l}.{n}");
            out.push((b("ln1.w"), blk.ln1.w.id, 1));
            out.push((b("ln1.b"), blk.ln1.b.id, 1));
            out.push((b("attn.W_Q"), blk.w_q.id, 3));
            out.push((b("attn.W_K"), blk.w_k.id, 3));
            out.push((b("attn.W_V"), blk.w_v.id, 3));
            out.push((b("attn.W_O"), blk.w_o.id, 3));
            out.push((b("attn.b_Q"), blk.b_q.id, 2));
            out.push((b("attn.b_K"), blk.b_k.id, 2));
            out.push((b("attn.b_V"), blk.b_v.id, 2));
            out.push((b("attn.b_O"), blk.b_o.id, 1));
            for mlp in &blk.mlp {
                out.push((b("ln2.w"), mlp.ln2.w.id, 1));
                out.push((b("ln2.b"), mlp.ln2.b.id, 1));
                out.push((b("mlp.W_in"), mlp.w_in.id, 2));
                out.push((b("mlp.b_in"), mlp.b_in.id, 1));
                out.push((b("mlp.W_out"), mlp.w_out.id, 2));
                out.push((b("mlp.b_out"), mlp.b_out.id, 1));
                for ln in &mlp.ln {
                    out.push((b("mlp.ln.w"), ln.w.id, 1));
                    out.push((b("mlp.ln.b"), ln.b.id, 1));
                }
            }
        }
        out.push(("ln_final.w".to_string(), self.ln_final.w.id, 1));
        out.push(("ln_final.b".to_string(), self.ln_final.b.id, 1));
        out.push(("unembed.W_U".to_string(), self.w_u.id, 2));
        out.push(("unembed.b_U".to_string(), self.b_u.id, 1));
        out
    }

    /// The mean next-token loss on `tokens` `[batch, pos]`.
    fn loss(&self, s: &Shape, tokens: Tensor<2, Int>) -> Tensor<1> {
        let [batch, pos] = tokens.dims();
        let (d, rows) = (s.d_model, batch * pos);
        let flat = tokens.clone().reshape([rows]);
        let embed = self.w_e.val().select(0, flat).reshape([batch, pos, d]);
        let pos_embed = self.w_pos.val().narrow(0, 0, pos).unsqueeze_dim::<3>(0);
        let mut resid = embed + pos_embed.expand([batch, pos, d]);
        for blk in &self.blocks {
            let x = layer_norm(resid.clone().reshape([rows, d]), &blk.ln1);
            resid = resid + attention(s, blk, x, batch, pos).reshape([batch, pos, d]);
            for mlp in &blk.mlp {
                let x = layer_norm(resid.clone().reshape([rows, d]), &mlp.ln2);
                resid = resid + mlp_out(s, mlp, x).reshape([batch, pos, d]);
            }
        }
        let x = layer_norm(resid.reshape([rows, d]), &self.ln_final);
        let logits = x.matmul(self.w_u.val()) + self.b_u.val().unsqueeze_dim(0);
        // Position p predicts token p + 1; each row's last position predicts nothing.
        let device = logits.device();
        let next = tokens.clone().narrow(1, 1, pos - 1);
        let pad = Tensor::<2, Int>::zeros([batch, 1], &device);
        let targets = Tensor::cat(vec![next, pad], 1).reshape([rows, 1]);
        let weight: Vec<f32> = (0..rows)
            .map(|r| if r % pos == pos - 1 { 0.0 } else { 1.0 })
            .collect();
        let weight = tensor(weight, [rows, 1], &device);
        let picked = log_softmax(logits, 1).gather(1, targets) * weight;
        picked.sum().neg().div_scalar((batch * (pos - 1)) as f32)
    }
}

/// LayerNorm over the last dimension of `x` `[rows, width]`.
fn layer_norm(x: Tensor<2>, n: &Norm) -> Tensor<2> {
    let (var, mean) = x.clone().var_mean_bias(1);
    let y = (x - mean) / var.add_scalar(LN_EPS).sqrt();
    y * n.w.val().unsqueeze_dim(0) + n.b.val().unsqueeze_dim(0)
}

/// Causal multi-head attention on `x` `[batch · pos, d_model]`; its output, same shape.
fn attention(s: &Shape, blk: &Block, x: Tensor<2>, batch: usize, pos: usize) -> Tensor<2> {
    let (d, h, e) = (s.d_model, s.n_heads, s.d_head);
    // [rows, d] · [d, h·e] → [batch, h, pos, e]
    let project = |w: &Param<Tensor<3>>, b: &Param<Tensor<2>>| {
        let w = w.val().swap_dims(0, 1).reshape([d, h * e]);
        (x.clone().matmul(w) + b.val().reshape([1, h * e]))
            .reshape([batch, pos, h, e])
            .swap_dims(1, 2)
    };
    let q = project(&blk.w_q, &blk.b_q);
    let k = project(&blk.w_k, &blk.b_k);
    let v = project(&blk.w_v, &blk.b_v);
    let scores = q.matmul(k.swap_dims(2, 3)).div_scalar((e as f32).sqrt());
    let future = Tensor::<4, Bool>::tril_mask([batch, h, pos, pos], 0, &scores.device());
    let pattern = softmax(scores.mask_fill(future, -1e30), 3);
    let z = pattern.matmul(v).swap_dims(1, 2).reshape([batch * pos, h * e]);
    z.matmul(blk.w_o.val().reshape([h * e, d])) + blk.b_o.val().unsqueeze_dim(0)
}

/// The MLP on `x` `[rows, d_model]`.
fn mlp_out(s: &Shape, mlp: &Mlp, x: Tensor<2>) -> Tensor<2> {
    let pre = x.matmul(mlp.w_in.val()) + mlp.b_in.val().unsqueeze_dim(0);
    let post = match s.act_fn.as_str() {
        // burn's own `gelu` differentiates as if it were the tanh form (its `gelu_backward`
        // says so), about 1e-3 off the exact one; composed from `erf`, autodiff is exact.
        "gelu" => pre.clone() * (pre.div_scalar(std::f32::consts::SQRT_2).erf() + 1.0) * 0.5,
        "gelu_new" => gelu_approximate(pre),
        _ => {
            let mid = pre.clone() * softmax(pre, 1);
            layer_norm(mid, &mlp.ln[0])
        }
    };
    post.matmul(mlp.w_out.val()) + mlp.b_out.val().unsqueeze_dim(0)
}

fn grad_values(g: &GradientsParams, id: ParamId, rank: usize) -> Option<Vec<f32>> {
    match rank {
        1 => g.get::<1>(id).map(values),
        2 => g.get::<2>(id).map(values),
        _ => g.get::<3>(id).map(values),
    }
}

/// The loss and every parameter's gradient for a transformer case of the oracle: `config`
/// (the shape), `batch`, `tokens` (`batch` rows), and `params` (name → row-major values).
pub fn grad(case: &Value, device: &Device) -> Result<(Value, Value), String> {
    let s = Shape::from_json(&case["config"])?;
    let batch = case["batch"].as_u64().ok_or("no `batch`")? as usize;
    let tokens: Vec<i64> = case["tokens"]
        .as_array()
        .ok_or("no `tokens`")?
        .iter()
        .map(|t| t.as_i64().ok_or("a token is not an integer"))
        .collect::<Result<_, _>>()?;
    if batch == 0 || tokens.len() % batch != 0 || tokens.len() / batch < 2 {
        return Err(format!("{} tokens are not {batch} rows of two or more", tokens.len()));
    }
    let pos = tokens.len() / batch;
    let params = case["params"].as_object().ok_or("no `params` object")?;
    let expected = s.parameters();
    if let Some(extra) = params.keys().find(|k| !expected.iter().any(|(n, _)| n == *k)) {
        return Err(format!("{extra} is not a parameter of this config"));
    }
    let mut src = |name: &str, shape: &[usize]| -> Result<Vec<f32>, String> {
        let v: Vec<f32> = params
            .get(name)
            .and_then(Value::as_array)
            .ok_or_else(|| format!("the case lacks {name}"))?
            .iter()
            .map(|x| x.as_f64().map(|x| x as f32))
            .collect::<Option<_>>()
            .ok_or_else(|| format!("{name} holds a non-number"))?;
        let want: usize = shape.iter().product();
        if v.len() != want {
            return Err(format!("{name} has {} values, not {want}", v.len()));
        }
        Ok(v)
    };
    let model = Lm::new(&s, &mut src, device)?;
    let tokens = Tensor::<2, Int>::from_data(TensorData::new(tokens, [batch, pos]), device);
    let loss = model.loss(&s, tokens);
    let g = GradientsParams::from_grads(loss.backward(), &model);
    let mut grads = Map::new();
    for (name, id, rank) in model.named() {
        let v = grad_values(&g, id, rank).ok_or_else(|| format!("no gradient for {name}"))?;
        grads.insert(name, json!(v));
    }
    Ok((json!({ "loss": values(loss.detach())[0] }), Value::Object(grads)))
}

/// `cargo xtask bench lm`'s peer: trains the model of a config JSON (the shape, and `batch`)
/// with AdamW on the first wgpu adapter, on four batches of random tokens generated on the
/// device once and replayed, and prints one JSON line:
/// `{"tokens_per_second", "final_loss", "steps"}`.
pub fn bench(args: &[String]) -> Result<(), String> {
    let [json_text] = args else {
        return Err("arguments: lm CONFIG_JSON".into());
    };
    let v: Value = serde_json::from_str(json_text).map_err(|e| format!("the config: {e}"))?;
    let s = Shape::from_json(&v)?;
    let batch = v["batch"].as_u64().ok_or("the config lacks `batch`")? as usize;
    let device = Device::wgpu(Default::default()).autodiff();
    // TransformerLens's initialisation: weights N(0, (0.8/√d_model)²), LayerNorm weights 1,
    // biases 0.
    let std = 0.8 / (s.d_model as f64).sqrt();
    let mut src = |name: &str, shape: &[usize]| -> Result<Vec<f32>, String> {
        let n: usize = shape.iter().product();
        let leaf = name.rsplit('.').next().unwrap_or_default();
        Ok(if leaf.starts_with('W') {
            let t = Tensor::<1>::random([n], Distribution::Normal(0.0, std), &device);
            values(t)
        } else if leaf == "w" {
            vec![1.0; n]
        } else {
            vec![0.0; n]
        })
    };
    let model = Lm::new(&s, &mut src, &device)?;
    let data: Vec<Tensor<2, Int>> = (0..4)
        .map(|_| {
            Tensor::<2, Int>::random(
                [batch, s.n_ctx],
                Distribution::Uniform(0.0, s.d_vocab as f64),
                &device,
            )
        })
        .collect();
    let mut optim = AdamWConfig::new()
        .with_beta_2(0.99)
        .with_weight_decay(0.01)
        .init();
    let mut t = 0usize;
    let step = |model: Lm| -> (Lm, Tensor<1>) {
        let tokens = data[t % data.len()].clone();
        t += 1;
        let loss = model.loss(&s, tokens);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        (optim.step(1e-3, model, grads), loss.detach())
    };
    let timing = crate::time_steps(model, 3, 1, step);
    println!(
        "{}",
        json!({
            "tokens_per_second": (timing.steps * batch * s.n_ctx) as f64 / timing.seconds,
            "final_loss": timing.loss,
            "steps": timing.steps,
        })
    );
    Ok(())
}
