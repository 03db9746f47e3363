//! `cargo xtask oracle`: mechlab's hand-written gradients against burn's autodiff.
//!
//! For each of the five SAE architectures on several awkward shapes, for the toy model of
//! superposition, and for the Transformer lab's language model (each MLP activation and
//! attention only, two layers of awkward sizes, every parameter by TransformerLens name),
//! builds a case with the engine (random parameters away from initialisation's symmetries, a
//! batch, dead latents so AuxK is active), computes the CPU reference's loss terms
//! and gradients, has the burn peer (bench/burn-peer, `grad` mode) compute the same loss with
//! burn tensor ops and differentiate it with burn's autodiff on wgpu, and compares tensor by
//! tensor: a tensor passes when its largest error is within [`REL_TOL`] of its largest reference
//! magnitude plus [`ABS_TOL`]. The attention's `b_K` has a true gradient of zero (softmax
//! ignores a shift shared by a query's scores), so there both sides must be within
//! [`ABS_TOL`] of zero. Prints the table; any mismatch is an error.
//!
//! The selections (top-k, batch top-k, AuxK's dead top-k, Gated's gate, JumpReLU's step) are
//! discontinuous, so every case is drawn until no pre-activation lies within [`MARGIN`] of a
//! kink: f32 rounding on the GPU must not flip a selection. The transformer's loss is smooth.

use crate::tools::root;
use mechlab_engine::models::sae::arch::{self, Ctx};
use mechlab_engine::models::sae::config::Architecture;
use mechlab_engine::models::sae::params::{SaeParams, TRAINED_TENSORS};
use mechlab_engine::models::toy::config::{Axis, Preset, SuperpositionConfig};
use mechlab_engine::models::toy::cpu::CpuToyTrainer;
use mechlab_engine::models::toy::{instance_table, sample_feature};
use mechlab_engine::models::transformer::config::{Activation, TransformerConfig};
use mechlab_engine::models::transformer::grad::loss_and_grad;
use mechlab_engine::models::transformer::params::TransformerParams;
use mechlab_engine::rng::{fold_seed, rng_normal, rng_unit};
use serde_json::{json, Value};
use std::fmt::Write as _;

/// Tolerance relative to each tensor's largest reference magnitude (f32 on both sides, sums in
/// different orders).
const REL_TOL: f32 = 1e-4;
/// Absolute slack, for tensors whose entries are all tiny.
const ABS_TOL: f32 = 1e-6;
/// The least distance from a kink (ReLU at 0, the k-th/(k+1)-th boundary, θ and θ ± ε/2) a case
/// may have: a hundred times the differences between the two sides' f32 pre-activations.
const MARGIN: f32 = 1e-4;

/// An SAE shape: d_in, d_sae, batch, k, k_aux, and which latents are dead.
struct Shape {
    d_in: usize,
    d_sae: usize,
    batch: usize,
    k: u32,
    k_aux: usize,
    dead: fn(usize) -> bool,
}

const SHAPES: [Shape; 3] = [
    // 12 of 37 dead, k_aux 4: AuxK's scale is min(12/4, 1) = 1.
    Shape {
        d_in: 7,
        d_sae: 37,
        batch: 13,
        k: 3,
        k_aux: 4,
        dead: |j| j % 3 == 1,
    },
    // 3 dead, k_aux 6: fewer dead latents than k_aux, scale 1/2.
    Shape {
        d_in: 5,
        d_sae: 19,
        batch: 6,
        k: 2,
        k_aux: 6,
        dead: |j| j == 2 || j == 11 || j == 17,
    },
    Shape {
        d_in: 16,
        d_sae: 70,
        batch: 33,
        k: 5,
        k_aux: 8,
        dead: |j| j % 5 == 0,
    },
];

/// Bandwidth ε of JumpReLU's rectangle kernel in the cases.
const BANDWIDTH: f32 = 0.1;
/// The sparsity coefficient in force (L1 for ReLU and Gated, L0 for JumpReLU).
const COEFFICIENT: f32 = 0.3;

fn architecture(name: &str, k: u32) -> Architecture {
    let mut a = Architecture::by_name(name).expect("a known architecture");
    match &mut a {
        Architecture::TopK {
            k: kk,
            aux_coefficient,
            ..
        }
        | Architecture::BatchTopK {
            k: kk,
            aux_coefficient,
            ..
        } => {
            *kk = k;
            *aux_coefficient = 0.5;
        }
        Architecture::JumpRelu { bandwidth, .. } => *bandwidth = BANDWIDTH,
        _ => {}
    }
    a
}

struct SaeCase {
    name: String,
    arch: Architecture,
    shape: &'static Shape,
    dead: Vec<bool>,
    params: SaeParams,
    x: Vec<f32>,
}

impl SaeCase {
    fn ctx(&self) -> Ctx<'_> {
        Ctx {
            x: &self.x,
            batch: self.shape.batch,
            coefficient: COEFFICIENT,
            dead: &self.dead,
            k_aux: self.shape.k_aux,
        }
    }
}

/// Random parameters as the finite-difference tests draw them.
fn random_params(arch: &Architecture, s: &Shape, seed: u32) -> SaeParams {
    SaeParams::random_for_checks(arch, s.d_in, s.d_sae, seed)
}

/// Sorted descending.
fn descending(mut v: Vec<f32>) -> Vec<f32> {
    v.sort_by(|a, b| b.total_cmp(a));
    v
}

/// The gap between the `keep`-th largest of `v` and the next, when the boundary matters (the
/// `keep`-th is positive and something follows it).
fn boundary_gap(v: Vec<f32>, keep: usize) -> f32 {
    let v = descending(v);
    if keep == 0 || keep >= v.len() || v[keep - 1] <= 0.0 {
        f32::INFINITY
    } else {
        v[keep - 1] - v[keep]
    }
}

/// How far the case is from every kink of its loss, and how many entries exercise the part
/// of the loss that is easy to leave untested (AuxK's selected latents, JumpReLU's kernel).
fn kink_margin(c: &SaeCase) -> (f32, usize) {
    let (s, p) = (c.shape, &c.params);
    let (n, b) = (s.d_sae, s.batch);
    let pre = arch::pre_activations(p, &arch::centre(p, &c.x, b), b);
    let relu = |v: f32| v.max(0.0);
    // ReLU's kink at 0 (JumpReLU has none there: its jump is at θ).
    let mut margin = if matches!(c.arch, Architecture::JumpRelu { .. }) {
        f32::INFINITY
    } else {
        pre.iter().fold(f32::INFINITY, |m, v| m.min(v.abs()))
    };
    let mut exercised = 0;
    let n_dead = c.dead.iter().filter(|&&d| d).count();
    match &c.arch {
        Architecture::TopK { k, .. } | Architecture::BatchTopK { k, .. } => {
            if matches!(c.arch, Architecture::TopK { .. }) {
                for row in pre.chunks_exact(n) {
                    margin = margin.min(boundary_gap(
                        row.iter().map(|&v| relu(v)).collect(),
                        *k as usize,
                    ));
                }
            } else {
                let keep = *k as usize * b;
                margin = margin.min(boundary_gap(pre.iter().map(|&v| relu(v)).collect(), keep));
            }
            let kk = s.k_aux.min(n_dead);
            for row in pre.chunks_exact(n) {
                let dead: Vec<f32> = (0..n)
                    .filter(|&j| c.dead[j])
                    .map(|j| relu(row[j]))
                    .collect();
                exercised += descending(dead.clone())[..kk]
                    .iter()
                    .filter(|&&v| v > 0.0)
                    .count();
                margin = margin.min(boundary_gap(dead, kk));
            }
        }
        Architecture::Gated { .. } => {
            for (i, &g) in pre.iter().enumerate() {
                let j = i % n;
                let mag = p.r_mag[j].exp() * (g - p.b_enc[j]) + p.b_mag[j];
                margin = margin.min(mag.abs());
                exercised += (g > 0.0 && mag > 0.0) as usize;
            }
        }
        Architecture::JumpRelu { bandwidth, .. } => {
            for (i, &v) in pre.iter().enumerate() {
                let u = (v - p.log_threshold[i % n].exp()).abs();
                margin = margin.min(u).min((u - bandwidth / 2.0).abs());
                exercised += (u < bandwidth / 2.0) as usize;
            }
        }
        Architecture::ReluL1 { .. } => exercised = pre.iter().filter(|&&v| v > 0.0).count(),
    }
    (margin, exercised)
}

/// The first seed whose case keeps [`MARGIN`] from every kink and exercises its special part.
fn sae_case(name: &str, s: &'static Shape) -> Result<SaeCase, String> {
    let arch = architecture(name, s.k);
    for seed in 1..500u32 {
        let c = SaeCase {
            name: format!(
                "{name} d_in {} d_sae {} batch {} k {} k_aux {}",
                s.d_in, s.d_sae, s.batch, s.k, s.k_aux
            ),
            params: random_params(&arch, s, seed),
            x: (0..s.batch * s.d_in)
                .map(|i| rng_unit(seed, 99, i as u32, 0) * 1.5 - 0.4)
                .collect(),
            dead: (0..s.d_sae).map(s.dead).collect(),
            arch: arch.clone(),
            shape: s,
        };
        let (margin, exercised) = kink_margin(&c);
        if margin >= MARGIN && exercised > 0 {
            return Ok(c);
        }
    }
    Err(format!("no seed keeps {name} away from its kinks"))
}

fn sae_json(c: &SaeCase) -> Value {
    let (s, p) = (c.shape, &c.params);
    let (k, aux_coefficient) = match &c.arch {
        Architecture::TopK {
            k, aux_coefficient, ..
        }
        | Architecture::BatchTopK {
            k, aux_coefficient, ..
        } => (*k, *aux_coefficient),
        _ => (0, 0.0),
    };
    let mut v = json!({
        "name": c.name,
        "model": "sae",
        "architecture": c.arch.name(),
        "d_in": s.d_in,
        "d_sae": s.d_sae,
        "batch": s.batch,
        "k": k,
        "k_aux": s.k_aux,
        "aux_coefficient": aux_coefficient,
        "coefficient": COEFFICIENT,
        "bandwidth": BANDWIDTH,
        "dead": c.dead.iter().map(|&d| d as u8 as f32).collect::<Vec<_>>(),
        "x": c.x,
    });
    for (name, t) in TRAINED_TENSORS.iter().zip(p.tensors()) {
        v[*name] = json!(t);
    }
    v
}

/// The reference: loss terms and gradients by tensor (the non-empty ones).
type Reference = (Vec<(&'static str, f32)>, Vec<(String, Vec<f32>)>);

fn sae_reference(c: &SaeCase) -> Reference {
    let p = &c.params;
    let mut g = SaeParams::zeros(p.d_in, p.d_sae, &c.arch);
    let (loss, _) = arch::train_loss(&c.arch, p, p, &c.ctx(), Some(&mut g));
    let losses = vec![
        ("reconstruction", loss.reconstruction),
        ("sparsity", loss.sparsity),
        ("auxiliary", loss.auxiliary),
    ];
    let grads = TRAINED_TENSORS
        .iter()
        .zip(g.tensors())
        .filter(|(_, t)| !t.is_empty())
        .map(|(n, t)| (n.to_string(), t.clone()))
        .collect();
    (losses, grads)
}

/// A toy-model case: one instance of `cfg` at `step` with random parameters (not Xavier's).
fn toy_case(
    nf: u32,
    nh: u32,
    batch: u32,
    relu: bool,
) -> Result<(String, Value, Reference), String> {
    let cfg = SuperpositionConfig {
        n_features: nf,
        n_hidden: nh,
        batch_size: batch,
        relu,
        importance_decay: 0.9,
        feature_probability: Axis::List(vec![0.7]),
        relative_importance: None,
        ..Preset::Intro.config()
    };
    let (f, h, b) = (nf as usize, nh as usize, batch as usize);
    let row = instance_table(&cfg.instances());
    let seed = fold_seed(cfg.seed);
    for step in 0..500u32 {
        let params: Vec<f32> = (0..(h + 1) * f)
            .map(|i| 0.4 * rng_normal(7 + step, 0, i as u32))
            .collect();
        let x: Vec<f32> = (0..b * f)
            .map(|i| sample_feature(seed, 0, step, (i / f) as u32, nf, (i % f) as u32, row[0]))
            .collect();
        // Distance of the output pre-activations from ReLU's kink.
        let (w, bias) = params.split_at(h * f);
        let margin = x
            .chunks_exact(f)
            .flat_map(|xr| {
                let hid: Vec<f32> = (0..h)
                    .map(|k| (0..f).map(|i| w[k * f + i] * xr[i]).sum())
                    .collect();
                (0..f).map(move |i| {
                    (bias[i] + (0..h).map(|k| w[k * f + i] * hid[k]).sum::<f32>()).abs()
                })
            })
            .fold(f32::INFINITY, f32::min);
        if relu && margin < MARGIN {
            continue;
        }
        let r = CpuToyTrainer::grad(&cfg, &row[..1 + f], &params, 0, step);
        let name = format!(
            "toy {} n_features {nf} n_hidden {nh} batch {batch}",
            if relu { "relu" } else { "linear" }
        );
        let case = json!({
            "name": name,
            "model": "toy",
            "n_features": f,
            "n_hidden": h,
            "batch": b,
            "relu": relu,
            "importance": row[1..1 + f],
            "x": x,
            "w": w,
            "b": bias,
        });
        let reference = (
            vec![("reconstruction", r.loss)],
            vec![
                ("w".into(), r.grad[..h * f].to_vec()),
                ("b".into(), r.grad[h * f..].to_vec()),
            ],
        );
        return Ok((name, case, reference));
    }
    Err("no toy case keeps away from ReLU's kink".into())
}

/// A language-model case of the Transformer lab: a tiny model of `act_fn` (or attention only)
/// with TransformerLens's initialisation perturbed so no tensor is trivially 0 or 1 (biases and
/// LayerNorm parameters random), a batch of tokens, and the CPU reference's loss and gradients.
fn transformer_case(
    act_fn: Activation,
    attn_only: bool,
) -> Result<(String, Value, Reference), String> {
    // Awkward sizes: nothing a power of two, rows shorter than n_ctx, two layers.
    let cfg = TransformerConfig {
        n_layers: 2,
        d_model: 12,
        n_heads: 3,
        d_head: 5,
        d_mlp: 20,
        n_ctx: 9,
        d_vocab: 11,
        act_fn,
        attn_only,
    };
    let (batch, pos) = (3usize, 7usize);
    let mut params = TransformerParams::init(&cfg, 5).map_err(|e| e.to_string())?;
    for (t_i, t) in params.tensors.iter_mut().enumerate() {
        let leaf = t.name.rsplit('.').next().unwrap_or_default();
        let (offset, scale) = match leaf {
            "w" => (1.0, 0.3),
            _ if leaf.starts_with('b') => (0.0, 0.3),
            // Larger weights than initialisation's, so attention patterns are far from uniform.
            _ => (0.0, 1.5),
        };
        for (i, v) in t.values.iter_mut().enumerate() {
            let noise = rng_normal(11, t_i as u32, i as u32);
            *v = if leaf.starts_with('W') {
                *v * scale + 0.05 * noise
            } else {
                offset + scale * noise
            };
        }
    }
    let tokens: Vec<u32> = (0..batch * pos)
        .map(|i| (rng_unit(13, i as u32, 0, 0) * cfg.d_vocab as f32) as u32 % cfg.d_vocab)
        .collect();
    let (loss, grads) = loss_and_grad(&params, &tokens, batch).map_err(|e| e.to_string())?;
    let name = format!(
        "transformer {} n_layers 2 d_model 12 heads 3×5 d_mlp 20 batch 3×7",
        if attn_only {
            "attn-only"
        } else {
            act_fn.name()
        }
    );
    let case = json!({
        "name": name,
        "model": "transformer",
        "config": {
            "n_layers": cfg.n_layers,
            "d_model": cfg.d_model,
            "n_heads": cfg.n_heads,
            "d_head": cfg.d_head,
            "d_mlp": cfg.d_mlp,
            "n_ctx": cfg.n_ctx,
            "d_vocab": cfg.d_vocab,
            "act_fn": act_fn.name(),
            "attn_only": attn_only,
        },
        "batch": batch,
        "tokens": tokens,
        "params": params
            .tensors
            .iter()
            .map(|t| (t.name.clone(), json!(t.values)))
            .collect::<serde_json::Map<_, _>>(),
    });
    let reference = (
        vec![("loss", loss)],
        params
            .tensors
            .iter()
            .map(|t| t.name.clone())
            .zip(grads)
            .collect(),
    );
    Ok((name, case, reference))
}

/// Largest |a − b| and largest |b|.
fn max_error(got: &[f32], want: &[f32]) -> (f32, f32) {
    got.iter().zip(want).fold((0f32, 0f32), |(e, m), (a, b)| {
        (e.max((a - b).abs()), m.max(b.abs()))
    })
}

fn floats(v: &Value) -> Option<Vec<f32>> {
    v.as_array()?
        .iter()
        .map(|x| x.as_f64().map(|x| x as f32))
        .collect()
}

/// Runs the oracle.
pub fn run() -> Result<(), String> {
    let bin = crate::bench::build_burn_peer()?;
    let mut cases = Vec::new();
    let mut references = Vec::new();
    for s in &SHAPES {
        for name in mechlab_engine::models::sae::config::ARCHITECTURE_NAMES {
            let c = sae_case(name, s)?;
            cases.push(sae_json(&c));
            references.push((c.name.clone(), sae_reference(&c)));
        }
    }
    for (nf, nh, batch, relu) in [(7, 3, 13, true), (20, 5, 37, true), (5, 2, 9, false)] {
        let (name, case, reference) = toy_case(nf, nh, batch, relu)?;
        cases.push(case);
        references.push((name, reference));
    }
    for (act_fn, attn_only) in [
        (Activation::Gelu, false),
        (Activation::GeluNew, false),
        (Activation::SoluLn, false),
        (Activation::Gelu, true),
    ] {
        let (name, case, reference) = transformer_case(act_fn, attn_only)?;
        cases.push(case);
        references.push((name, reference));
    }
    let dir = root().join("target/oracle");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let path = dir.join("cases.json");
    std::fs::write(&path, json!({ "cases": cases }).to_string()).map_err(|e| e.to_string())?;
    println!(
        "{} cases written to {}; running the burn peer",
        cases.len(),
        path.display()
    );
    let got = crate::bench::run_burn_peer(&bin, &[std::ffi::OsStr::new("grad"), path.as_os_str()])?;
    let results = got["results"].as_array().ok_or("no results")?;
    if results.len() != references.len() {
        return Err(format!(
            "{} results for {} cases",
            results.len(),
            references.len()
        ));
    }

    let mut table = String::new();
    let _ = writeln!(
        table,
        "| case | tensor | max abs reference | max abs error | error / max abs reference | ok |"
    );
    let _ = writeln!(table, "|---|---|---:|---:|---:|:-:|");
    let mut failures = Vec::new();
    // The worst error relative to its tensor's scale, per model (the case name's first word).
    let mut worst: Vec<(String, f32)> = Vec::new();
    for ((name, (losses, grads)), r) in references.iter().zip(results) {
        let model = name.split(' ').next().unwrap_or_default().to_string();
        let rows = losses
            .iter()
            .map(|(n, v)| {
                (
                    format!("loss: {n}"),
                    r["loss"][n].as_f64().map(|g| vec![g as f32]),
                    vec![*v],
                )
            })
            .chain(grads.iter().map(|(n, v)| {
                (
                    format!("d/d{n}"),
                    floats(&r["grads"][n.as_str()]),
                    v.clone(),
                )
            }));
        for (what, got, want) in rows {
            let Some(got) = got.filter(|g| g.len() == want.len()) else {
                failures.push(format!("{name} {what}: missing or of the wrong length"));
                continue;
            };
            let (err, scale) = max_error(&got, &want);
            // b_K adds q·b_K to every score in a query's row, a shift softmax ignores, so its
            // true gradient is zero: both sides must be rounding noise, and a relative error
            // of noise against noise says nothing.
            let zero_by_shift = what.ends_with("attn.b_K");
            let ok = if zero_by_shift {
                scale.max(got.iter().fold(0f32, |m, g| m.max(g.abs()))) <= ABS_TOL
            } else {
                err <= REL_TOL * scale + ABS_TOL
            };
            // A gradient that is zero everywhere would pass without testing anything.
            let exercised = scale > 0.0 || what.starts_with("loss") || zero_by_shift;
            if !ok || !exercised {
                failures.push(format!(
                    "{name} {what}: max error {err:.3e} against max {scale:.3e}{}",
                    if exercised {
                        ""
                    } else {
                        " (all zero: not exercised)"
                    }
                ));
            }
            let relative = if scale > 0.0 && !zero_by_shift {
                err / scale
            } else {
                0.0
            };
            match worst.iter_mut().find(|(m, _)| *m == model) {
                Some((_, w)) => *w = w.max(relative),
                None => worst.push((model.clone(), relative)),
            }
            let relative = if zero_by_shift {
                "zero (softmax shift)".to_string()
            } else {
                format!("{relative:.1e}")
            };
            let _ = writeln!(
                table,
                "| {name} | {what} | {scale:.3e} | {err:.3e} | {relative} | {} |",
                if ok && exercised { "✓" } else { "✗" }
            );
        }
    }
    print!("{table}");
    println!("\nworst error / max abs reference, over every shape and tensor:");
    for (model, w) in &worst {
        println!("  {model:<12} {w:.1e}");
    }
    println!(
        "tolerance: max |burn − mechlab| ≤ {REL_TOL:e} · max |mechlab| + {ABS_TOL:e}, per tensor; \
         cases keep {MARGIN:e} from every kink"
    );
    if failures.is_empty() {
        println!("oracle: every gradient matches burn's autodiff");
        Ok(())
    } else {
        Err(format!(
            "{} mismatches:\n  {}",
            failures.len(),
            failures.join("\n  ")
        ))
    }
}
