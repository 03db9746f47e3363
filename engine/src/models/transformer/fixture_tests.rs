//! The CPU and GPU passes against TransformerLens itself: tiny random models of each activation
//! (and an attention-only one), every parameter moved off its initial value, with their logits
//! and every hook's activation, the loss and every parameter's gradient from torch's autograd,
//! and the logits and loss of `run_with_hooks` with hooks replaced (zero ablation, one neuron
//! or head dimension zeroed, steering, activation patching), made by
//! `tools/fixtures/make_transformer_lens.py` with the TransformerLens 3.x that SAELens 6
//! installs. Every hook TransformerLens caches must be captured under the same name and shape
//! and agree to 1e-4; no hook may be captured that TransformerLens does not have.

use super::{forward, forward_with, Edit, HookEdit, TransformerConfig, TransformerParams};
use crate::io::safetensors::to_f32;
use safetensors::SafeTensors;

struct Fixture {
    name: &'static str,
    config: &'static str,
    model: &'static [u8],
    activations: &'static [u8],
    loss_and_grads: &'static [u8],
    edits: &'static str,
    edited: &'static [u8],
}

macro_rules! fixture {
    ($name:literal) => {{
        // One of the fixture's files, read at compile time by `$read`.
        macro_rules! at {
            ($read:ident, $file:literal) => {
                $read!(concat!(
                    "../../../tests/fixtures/transformer_lens/",
                    $name,
                    "/",
                    $file
                ))
            };
        }
        Fixture {
            name: $name,
            config: at!(include_str, "config.json"),
            model: at!(include_bytes, "model.safetensors"),
            activations: at!(include_bytes, "activations.safetensors"),
            loss_and_grads: at!(include_bytes, "loss_and_grads.safetensors"),
            edits: at!(include_str, "interventions.json"),
            edited: at!(include_bytes, "interventions.safetensors"),
        }
    }};
}

const FIXTURES: [Fixture; 4] = [
    fixture!("solu_ln"),
    fixture!("gelu"),
    fixture!("gelu_new"),
    fixture!("attn_only"),
];

/// Absolute and relative tolerance: f32 sums over at most 24 terms of order one, in another
/// order than PyTorch's.
const TOL: f32 = 1e-4;

fn close(a: f32, b: f32) -> bool {
    a == b || (a - b).abs() <= TOL + TOL * b.abs()
}

/// The fixture's model and token rows.
fn load(f: &Fixture) -> (TransformerParams, Vec<Vec<u32>>) {
    let meta: serde_json::Value = serde_json::from_str(f.config).unwrap();
    let cfg: TransformerConfig = serde_json::from_value(meta.clone()).unwrap();
    let rows: Vec<Vec<u32>> = serde_json::from_value(meta["tokens"].clone()).unwrap();
    (
        TransformerParams::from_safetensors(&cfg, f.model).unwrap(),
        rows,
    )
}

fn check(f: &Fixture) {
    let (params, rows) = load(f);
    let (logits, hooks) = forward(&params, &rows.concat(), rows.len(), &|_| true).unwrap();
    compare(f, &params.cfg, &rows, &logits, &hooks);
}

/// Every hook and the logits against TransformerLens's.
fn compare(
    f: &Fixture,
    cfg: &TransformerConfig,
    rows: &[Vec<u32>],
    logits: &[f32],
    hooks: &super::Hooks,
) {
    let acts = SafeTensors::deserialize(f.activations).unwrap();
    let bad = |m: String| crate::EngineError::BadModel(m);
    let mut expected: Vec<String> = vec![];
    for (name, view) in acts.tensors() {
        let want = to_f32(&view, &name, bad).unwrap();
        let (shape, got): (Vec<usize>, Vec<f32>) = if name == "logits" {
            (
                vec![rows.len(), rows[0].len(), cfg.d_vocab as usize],
                logits.to_vec(),
            )
        } else {
            expected.push(name.clone());
            let (s, v) = hooks
                .get(&name)
                .unwrap_or_else(|| panic!("{}: hook {name} was not captured", f.name));
            (s.to_vec(), v.to_vec())
        };
        assert_eq!(shape, view.shape(), "{}: {name}'s shape", f.name);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                close(*g, *w),
                "{}: {name}[{i}] = {g}, TransformerLens has {w}",
                f.name
            );
        }
    }
    let mut ours: Vec<String> = hooks.names().map(str::to_string).collect();
    ours.sort();
    expected.sort();
    assert_eq!(ours, expected, "{}: the captured hooks", f.name);
}

#[test]
fn solu_ln_forward_matches_transformer_lens() {
    check(&FIXTURES[0]);
}

#[test]
fn gelu_forward_matches_transformer_lens() {
    check(&FIXTURES[1]);
}

#[test]
fn gelu_new_forward_matches_transformer_lens() {
    check(&FIXTURES[2]);
}

#[test]
fn attention_only_forward_matches_transformer_lens() {
    check(&FIXTURES[3]);
}

/// The GPU forward pass against the same fixtures, every model in one test.
async fn gpu_forward_matches(gpu: &crate::gpu::Gpu) {
    for f in &FIXTURES {
        let (params, rows) = load(f);
        let mut model = super::gpu::GpuTransformer::new(gpu, &params).unwrap();
        let (logits, hooks) = model
            .forward(&rows.concat(), rows.len(), &|_| true)
            .await
            .unwrap();
        compare(f, &params.cfg, &rows, &logits, &hooks);
    }
}
crate::gpu_test!(gpu_forward_matches_transformer_lens, gpu_forward_matches);

/// The GPU backward pass against the CPU reference's (checked against finite differences) on
/// the fixtures' models and tokens: the loss to 1e-5 and every parameter's gradient to 1e-4
/// absolute plus 1e-3 relative (sums in other orders). Each model twice: its logits at once,
/// and a few positions at a time (as a large vocabulary takes them), which must agree.
async fn gpu_gradients_match(gpu: &crate::gpu::Gpu) {
    for f in &FIXTURES {
        let (params, rows) = load(f);
        let tokens = rows.concat();
        let (want_loss, want) = super::grad::loss_and_grad(&params, &tokens, rows.len()).unwrap();
        let (d, v) = (params.cfg.d_model as usize, params.cfg.d_vocab as usize);
        for per_chunk in [tokens.len(), 3] {
            let chunk_bytes = (per_chunk * v * 4) as u64;
            let chunk = super::unembed::chunk_rows(gpu, tokens.len(), d, v, chunk_bytes);
            let what = format!("{} in chunks of {chunk} positions", f.name);
            if per_chunk < tokens.len() {
                assert!(chunk < tokens.len(), "{what}: one chunk");
            }
            let mut model = super::gpu::GpuTransformer::new(gpu, &params).unwrap();
            model.set_logit_chunk_bytes(chunk_bytes);
            let grads = model.arena().mirror(gpu, "grads").unwrap();
            let loss = model
                .loss_and_grad(&tokens, rows.len(), &grads)
                .await
                .unwrap();
            let near = |loss: f32| (loss - want_loss).abs() < 1e-5 * want_loss.abs().max(1.0);
            assert!(near(loss), "{what}: loss {loss} vs {want_loss}");
            let alone = model.loss(&tokens, rows.len()).await.unwrap();
            assert!(near(alone), "{what}: loss alone {alone} vs {want_loss}");
            for (t, w) in params.tensors.iter().zip(&want) {
                let got = grads.read(gpu, &t.name).await.unwrap();
                crate::testing::assert_close(
                    &format!("{what}: d loss / d {}", t.name),
                    &got,
                    w,
                    1e-4,
                    1e-3,
                );
            }
        }
    }
}
crate::gpu_test!(gpu_gradients_match_the_cpu_reference, gpu_gradients_match);

/// A tensor of a fixture's safetensors file, as f32.
fn tensor(bytes: &[u8], name: &str) -> Vec<f32> {
    let st = SafeTensors::deserialize(bytes).unwrap();
    let view = st
        .tensor(name)
        .unwrap_or_else(|e| panic!("fixture tensor {name}: {e}"));
    to_f32(&view, name, crate::EngineError::BadModel).unwrap()
}

/// The CPU reference's loss and every parameter's gradient against torch's autograd through
/// TransformerLens's own forward: the loss to 1e-5 relative, the gradients to 1e-4 absolute plus
/// 1e-3 relative (f32 sums in other orders, through a softmax and three LayerNorms a layer).
#[test]
fn cpu_loss_and_gradients_match_torch_autograd() {
    for f in &FIXTURES {
        let (params, rows) = load(f);
        let (loss, grads) =
            super::grad::loss_and_grad(&params, &rows.concat(), rows.len()).unwrap();
        let want = tensor(f.loss_and_grads, "loss")[0];
        assert!(
            (loss - want).abs() <= 1e-5 * want.abs(),
            "{}: loss {loss}, TransformerLens {want}",
            f.name
        );
        for (t, g) in params.tensors.iter().zip(&grads) {
            let want = tensor(f.loss_and_grads, &format!("grad.{}", t.name));
            crate::testing::assert_close(
                &format!("{}: d loss / d {}", f.name, t.name),
                g,
                &want,
                1e-4,
                1e-3,
            );
        }
    }
}

/// One `run_with_hooks` case of a fixture: its name, the edit, and the logits and loss
/// TransformerLens gave.
struct EditCase {
    name: String,
    edit: HookEdit,
    logits: Vec<f32>,
    loss: f32,
}

/// A fixture's `run_with_hooks` cases; a patch's source is the hook's value on the source
/// prompt, from `source_hook` (the CPU or GPU pass under test, checked above against
/// TransformerLens's own cache).
fn edit_cases(f: &Fixture, source_hook: &mut dyn FnMut(&[u32], &str) -> Vec<f32>) -> Vec<EditCase> {
    let meta: serde_json::Value = serde_json::from_str(f.edits).unwrap();
    let source: Vec<Vec<u32>> = serde_json::from_value(meta["source_tokens"].clone()).unwrap();
    let cases = meta["interventions"].as_array().unwrap();
    assert!(
        cases.len() >= 4,
        "{}: {} interventions",
        f.name,
        cases.len()
    );
    cases
        .iter()
        .map(|c| {
            let name = c["name"].as_str().unwrap().to_string();
            let hook = c["hook"].as_str().unwrap().to_string();
            let edit = match c["kind"].as_str().unwrap() {
                "zero" => Edit::Zero,
                "zero_index" => Edit::ZeroIndex(c["index"].as_u64().unwrap() as usize),
                "steer" => Edit::Steer {
                    vector: tensor(f.edited, &format!("{name}.vector")),
                    scale: c["scale"].as_f64().unwrap() as f32,
                },
                "patch" => Edit::Patch {
                    source: source_hook(&source.concat(), &hook),
                    positions: Some(serde_json::from_value(c["positions"].clone()).unwrap()),
                },
                k => panic!("{}: unknown intervention kind {k}", f.name),
            };
            EditCase {
                logits: tensor(f.edited, &format!("{name}.logits")),
                loss: tensor(f.edited, &format!("{name}.loss"))[0],
                edit: HookEdit::new(hook, edit),
                name,
            }
        })
        .collect()
}

/// The edited pass's logits (to 1e-4) and loss (to 1e-5 relative) against TransformerLens's.
fn check_edited(what: &str, case: &EditCase, logits: &[f32], loss: f32) {
    assert_eq!(logits.len(), case.logits.len(), "{what}: logits");
    for (i, (g, w)) in logits.iter().zip(&case.logits).enumerate() {
        assert!(
            close(*g, *w),
            "{what}: logits[{i}] = {g}, TransformerLens has {w}"
        );
    }
    assert!(
        (loss - case.loss).abs() <= 1e-5 * case.loss.abs().max(1.0),
        "{what}: loss {loss}, TransformerLens {}",
        case.loss
    );
}

/// `forward_with` on the CPU against `run_with_hooks`: the pass goes on from each replaced
/// value exactly as TransformerLens's does.
#[test]
fn cpu_edited_forward_matches_run_with_hooks() {
    for f in &FIXTURES {
        let (params, rows) = load(f);
        let tokens = rows.concat();
        let mut source = |t: &[u32], hook: &str| {
            let (_, h) = forward(&params, t, rows.len(), &|n| n == hook).unwrap();
            h.get(hook).unwrap().1.to_vec()
        };
        for case in edit_cases(f, &mut source) {
            let edits = [case.edit.clone()];
            let (logits, hooks) = forward_with(
                &params,
                &tokens,
                rows.len(),
                &|n| n == case.edit.hook,
                &edits,
            )
            .unwrap();
            let v = params.cfg.d_vocab as usize;
            let (loss, _) = super::grad::lm_loss(&logits, &tokens, rows.len(), v);
            check_edited(&format!("{} {}", f.name, case.name), &case, &logits, loss);
            assert!(
                hooks.get(&case.edit.hook).is_some(),
                "the edited hook is captured"
            );
        }
    }
}

/// The same edits recorded on the GPU (`hook_edit.wgsl`), against `run_with_hooks`, with the
/// loss of the edited model computed on the device.
async fn gpu_edited_forward_matches(gpu: &crate::gpu::Gpu) {
    for f in &FIXTURES {
        let (params, rows) = load(f);
        let tokens = rows.concat();
        let mut model = super::gpu::GpuTransformer::new(gpu, &params).unwrap();
        let mut sources = vec![];
        let meta: serde_json::Value = serde_json::from_str(f.edits).unwrap();
        let src: Vec<Vec<u32>> = serde_json::from_value(meta["source_tokens"].clone()).unwrap();
        for c in meta["interventions"].as_array().unwrap() {
            let hook = c["hook"].as_str().unwrap().to_string();
            let (_, h) = model
                .forward(&src.concat(), rows.len(), &|n| n == hook)
                .await
                .unwrap();
            sources.push((hook.clone(), h.get(&hook).unwrap().1.to_vec()));
        }
        let mut source =
            |_: &[u32], hook: &str| sources.iter().find(|(h, _)| h == hook).unwrap().1.clone();
        for case in edit_cases(f, &mut source) {
            let edits = [case.edit.clone()];
            let (logits, _) = model
                .forward_with(&tokens, rows.len(), &|_| false, &edits)
                .await
                .unwrap();
            let loss = model.loss_with(&tokens, rows.len(), &edits).await.unwrap();
            check_edited(
                &format!("{} {} on the GPU", f.name, case.name),
                &case,
                &logits,
                loss,
            );
        }
    }
}
crate::gpu_test!(
    gpu_edited_forward_matches_run_with_hooks,
    gpu_edited_forward_matches
);

#[test]
fn a_state_dict_for_another_model_is_refused_by_name() {
    let meta: serde_json::Value = serde_json::from_str(FIXTURES[1].config).unwrap();
    let gelu: TransformerConfig = serde_json::from_value(meta).unwrap();
    // The SoLU model's file has mlp.ln tensors the GeLU model lacks.
    let err = TransformerParams::from_safetensors(&gelu, FIXTURES[0].model)
        .unwrap_err()
        .to_string();
    assert!(err.contains("mlp.ln"), "{err}");
    let one_layer = TransformerConfig {
        n_layers: 1,
        ..gelu.clone()
    };
    let err = TransformerParams::from_safetensors(&one_layer, FIXTURES[1].model)
        .unwrap_err()
        .to_string();
    assert!(err.contains("blocks.1"), "{err}");
    let wider = TransformerConfig { d_mlp: 32, ..gelu };
    let err = TransformerParams::from_safetensors(&wider, FIXTURES[1].model)
        .unwrap_err()
        .to_string();
    assert!(err.contains("shape"), "{err}");
    assert!(TransformerParams::from_safetensors(&wider, b"not safetensors").is_err());
}

/// A steering edit at every hook that can be replaced (the embeddings, each block's hooks, the
/// unembedding's input), on the GPU against the CPU reference: every place the GPU pass
/// records an edit is where the CPU reference applies it. Each edit must move the logits,
/// but at `hook_k`, where a direction added to every key shifts each query's scores equally
/// and the softmax takes it away.
async fn gpu_edits_everywhere_match(gpu: &crate::gpu::Gpu) {
    for f in &FIXTURES {
        let (params, rows) = load(f);
        let (tokens, batch) = (rows.concat(), rows.len());
        let pos = tokens.len() / batch;
        let (clean, _) = forward(&params, &tokens, batch, &|_| false).unwrap();
        let mut model = super::gpu::GpuTransformer::new(gpu, &params).unwrap();
        let mut edited = 0;
        for (hook, shape) in super::hooks::hook_shapes(&params.cfg, batch, pos) {
            let width: usize = shape[2..].iter().product();
            let vector = (0..width).map(|i| (i % 5) as f32 * 0.3 - 0.6).collect();
            let edits = [HookEdit::new(&hook, Edit::Steer { vector, scale: 1.5 })];
            if super::hooks::check_edits(&params.cfg, &edits, batch, pos).is_err() {
                continue;
            }
            edited += 1;
            let what = format!("{}: steering {hook}", f.name);
            let (want, _) = forward_with(&params, &tokens, batch, &|_| false, &edits).unwrap();
            let (got, _) = model
                .forward_with(&tokens, batch, &|_| false, &edits)
                .await
                .unwrap();
            crate::testing::assert_close(&what, &got, &want, 1e-4, 1e-4);
            let moved = want.iter().zip(&clean).any(|(a, b)| (a - b).abs() > 1e-3);
            assert_eq!(
                moved,
                !hook.ends_with("attn.hook_k"),
                "{what} moves the logits"
            );
        }
        assert!(edited >= 10, "{}: {edited} hooks edited", f.name);
    }
}
crate::gpu_test!(
    gpu_edits_at_every_hook_match_the_cpu,
    gpu_edits_everywhere_match
);

/// A pass that stops after the first block (TransformerLens's `stop_at_layer`), on the GPU and
/// on the CPU, captures that block's hooks as the whole pass does and nothing past it; a stop
/// past the last block is refused.
async fn gpu_stops_at_a_layer(gpu: &crate::gpu::Gpu) {
    let f = &FIXTURES[1];
    let (params, rows) = load(f);
    let (tokens, batch) = (rows.concat(), rows.len());
    let mut model = super::gpu::GpuTransformer::new(gpu, &params).unwrap();
    let edits = [HookEdit::new("blocks.0.mlp.hook_post", Edit::ZeroIndex(2))];
    let hooks = model
        .forward_until(&tokens, batch, &|_| true, &edits, 1)
        .await
        .unwrap();
    let names: Vec<&str> = hooks.names().collect();
    assert!(names.contains(&"blocks.0.hook_resid_post"), "{names:?}");
    assert!(names.contains(&"hook_embed"), "{names:?}");
    assert!(
        names
            .iter()
            .all(|n| n.starts_with("blocks.0.") || n.starts_with("hook_")),
        "{names:?}"
    );
    let (_, edited) = forward_with(&params, &tokens, batch, &|_| true, &edits).unwrap();
    // The CPU reference stops at the same place.
    let cpu = super::cpu::forward_until(&params, &tokens, batch, &|_| true, &edits, 1).unwrap();
    assert_eq!(cpu.names().collect::<Vec<_>>(), names, "the CPU's hooks");
    let err = super::cpu::forward_until(&params, &tokens, batch, &|_| true, &[], 3);
    assert!(err.unwrap_err().to_string().contains("stop_at_layer = 3"));
    for n in names {
        let (got, want) = (hooks.get(n).unwrap().1, edited.get(n).unwrap().1);
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                close(*g, *w),
                "{} stopped after block 0: {n}[{i}] = {g}, CPU {w}",
                f.name
            );
        }
    }
    let err = model
        .forward_until(&tokens, batch, &|_| true, &[], 3)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("stop_at_layer = 3") && err.contains("2 blocks"),
        "{err}"
    );
}
crate::gpu_test!(gpu_a_pass_stops_at_a_layer, gpu_stops_at_a_layer);

/// A forward pass recorded into another recorder's recording (as an SAE trainer records the
/// model's pass before its own step) leaves each hook on the device: a copy of its view in the
/// same recording holds what the CPU reference captures, edits included, and nothing is read
/// back until the caller submits.
async fn gpu_hooks_stay_on_the_device(gpu: &crate::gpu::Gpu) {
    let f = &FIXTURES[0];
    let (params, rows) = load(f);
    let (tokens, batch) = (rows.concat(), rows.len());
    let edits = [HookEdit::new("blocks.0.mlp.hook_mid", Edit::ZeroIndex(5))];
    let (_, want) = forward_with(&params, &tokens, batch, &|_| true, &edits).unwrap();
    let mut model = super::gpu::GpuTransformer::new(gpu, &params).unwrap();
    let mut recorder = crate::gpu::Recorder::new(gpu);
    for (hook, stop) in [
        ("blocks.0.mlp.hook_post", 1),
        ("blocks.1.hook_resid_mid", 2),
    ] {
        let mut rec = recorder.begin();
        model
            .record_forward(&mut rec, &tokens, batch, &edits, stop)
            .await
            .unwrap();
        let t = model.hook_view(hook).expect("the pass made the hook");
        let (view, shape) = (
            t.view,
            t.dims().iter().map(|&d| d as usize).collect::<Vec<_>>(),
        );
        let n: usize = shape.iter().product();
        assert_eq!(view.len, n, "{hook}'s view");
        let out = gpu.storage_zeroed::<f32>("consumer", n).unwrap();
        rec.copy(view.buffer, view.offset, &out, 0, (n * 4) as u64);
        rec.submit();
        let got: Vec<f32> = gpu.read(&out, n).await.unwrap();
        let (want_shape, want) = want.get(hook).unwrap();
        assert_eq!(shape, want_shape, "{hook}'s shape");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(close(*g, *w), "{hook}[{i}] on the device = {g}, CPU {w}");
        }
    }
    assert!(model.hook_view("blocks.0.ln1.hook_normalized").is_none());
    let mut rec = recorder.begin();
    let err = model
        .record_forward(&mut rec, &tokens, batch, &[], 3)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("stop_at_layer = 3"), "{err}");
}
crate::gpu_test!(
    gpu_hooks_stay_on_the_device_for_a_consumer,
    gpu_hooks_stay_on_the_device
);

/// An SAE spliced in at a hook (the `HookMap` edit behind CE loss recovered): an SAE that
/// reconstructs exactly (`W_enc = W_dec = [I; −I]`, no biases: ReLU of `x` and of `−x` add back
/// to `x`) leaves the logits as they were and recovers all of the loss; a lossy one (Gated, at
/// another input scale) changes them, and the GPU pass with the SAE recorded into it agrees
/// with the CPU reference's logits and CE loss recovered.
async fn sae_splices_match_the_cpu(gpu: &crate::gpu::Gpu) {
    use crate::metrics::CeLossRecovered;
    use crate::models::sae::config::Architecture;
    use crate::models::sae::params::SaeParams;
    use crate::models::sae::splice::SaeSplice;
    use std::rc::Rc;
    let f = &FIXTURES[1];
    let (params, rows) = load(f);
    let (tokens, batch) = (rows.concat(), rows.len());
    let d = params.cfg.d_model as usize;
    let hook = "blocks.1.hook_resid_pre";
    let mut model = super::gpu::GpuTransformer::new(gpu, &params).unwrap();
    let (clean, _) = forward(&params, &tokens, batch, &|_| false).unwrap();
    let exact = |arch: Architecture| {
        let mut p = SaeParams::zeros(d, 2 * d, &arch);
        for i in 0..d {
            for (j, sign) in [(i, 1.0), (d + i, -1.0)] {
                p.w_enc[j * d + i] = sign;
                p.w_dec[j * d + i] = sign;
            }
        }
        p.input_scale = 1.0;
        Rc::new(SaeSplice::new(arch, p).unwrap())
    };
    let topk = crate::models::sae::splice::tests::arch("topk", d as u32);
    for arch in [Architecture::by_name("relu_l1").unwrap(), topk] {
        let map = exact(arch);
        let edits = [HookEdit::new(hook, Edit::Map(map.clone()))];
        let (logits, _) = forward_with(&params, &tokens, batch, &|_| false, &edits).unwrap();
        for (i, (a, b)) in logits.iter().zip(&clean).enumerate() {
            assert!(
                close(*a, *b),
                "exact splice, CPU logit {i}: {a} vs clean {b}"
            );
        }
        let (logits, _) = model
            .forward_with(&tokens, batch, &|_| false, &edits)
            .await
            .unwrap();
        for (i, (a, b)) in logits.iter().zip(&clean).enumerate() {
            assert!(
                close(*a, *b),
                "exact splice, GPU logit {i}: {a} vs clean {b}"
            );
        }
        let ce = CeLossRecovered::on_gpu(&mut model, &tokens, batch, hook, map)
            .await
            .unwrap();
        assert!(ce.zero_ablated > ce.clean + 1e-3, "{ce:?}");
        assert!((ce.fraction() - 1.0).abs() < 1e-3, "{ce:?}");
    }
    let gated = Architecture::by_name("gated").unwrap();
    let mut p = SaeParams::random_for_checks(&gated, d, 24, 7);
    p.input_scale = 0.5;
    let map: Rc<SaeSplice> = Rc::new(SaeSplice::new(gated, p).unwrap());
    let edits = [HookEdit::new(hook, Edit::Map(map.clone()))];
    let (want, _) = forward_with(&params, &tokens, batch, &|_| false, &edits).unwrap();
    assert!(want.iter().zip(&clean).any(|(a, b)| (a - b).abs() > 1e-2));
    let (got, _) = model
        .forward_with(&tokens, batch, &|_| false, &edits)
        .await
        .unwrap();
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(close(*g, *w), "Gated splice, logit {i}: GPU {g} vs CPU {w}");
    }
    let on_cpu = CeLossRecovered::on_cpu(&params, &tokens, batch, hook, map.clone()).unwrap();
    let on_gpu = CeLossRecovered::on_gpu(&mut model, &tokens, batch, hook, map.clone())
        .await
        .unwrap();
    for (c, g) in [
        (on_cpu.clean, on_gpu.clean),
        (on_cpu.reconstructed, on_gpu.reconstructed),
        (on_cpu.zero_ablated, on_gpu.zero_ablated),
    ] {
        assert!(close(g, c), "{on_gpu:?} vs {on_cpu:?}");
    }
    assert!(on_cpu.fraction() < 0.999, "{on_cpu:?}");
    // A map of another width is refused by name.
    let narrow = exact(Architecture::by_name("relu_l1").unwrap());
    let edits = [HookEdit::new("blocks.0.mlp.hook_post", Edit::Map(narrow))];
    let e = forward_with(&params, &tokens, batch, &|_| false, &edits)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("blocks.0.mlp.hook_post") && e.contains("map reads"),
        "{e}"
    );
}
crate::gpu_test!(gpu_sae_splices_match_the_cpu, sae_splices_match_the_cpu);
