//! `mechlab lm` as a user runs it: training writes a TransformerLens checkpoint folder that
//! samples, caches hooks and resumes exactly; bad input exits non-zero with the reason.

mod common;

use common::{mechlab, stderr};
use std::path::{Path, PathBuf};

fn tmp(name: &str) -> PathBuf {
    common::tmp("lm-cli", name)
}

/// A tiny model, so the debug build trains it in moments.
const TINY: &str = "v=1&lab=lm&model.d_model=16&model.n_heads=2&model.d_head=8&model.d_mlp=32\
                    &model.n_ctx=16&batch_size=2&eval_windows=2&steps=8";

fn text_file() -> PathBuf {
    let path = tmp("verse.txt");
    let text: String = (0..120)
        .map(|i| format!("Shall I compare thee to a summer's day {}?\n", i % 9))
        .collect();
    std::fs::write(&path, text).unwrap();
    path
}

fn train(out: &Path, steps: &str, extra: &[&str]) -> std::process::Output {
    let corpus = text_file();
    let mut args = vec![
        "lm",
        "train",
        "--link",
        TINY,
        "--steps",
        steps,
        "--eval-every",
        "2",
        "--corpus",
        corpus.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    mechlab(&args)
}

fn losses(dir: &Path) -> Vec<f64> {
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("metrics.json")).unwrap()).unwrap();
    m["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["loss"].as_f64().unwrap())
        .collect()
}

#[test]
fn training_writes_a_checkpoint_that_samples_caches_and_resumes() {
    let whole = tmp("whole");
    let o = train(&whole, "8", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "mechlab.json",
        "optimizer.safetensors",
        "metrics.json",
    ] {
        assert!(whole.join(f).exists(), "{f} missing");
    }
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(whole.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["act_fn"], "solu_ln");
    assert_eq!(config["d_model"], 16);
    // Six steps, then two more from the checkpoint: the same losses as eight at once.
    let first = tmp("first");
    assert!(train(&first, "6", &[]).status.success());
    let rest = tmp("rest");
    let o = train(&rest, "8", &["--resume", first.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(losses(&rest), losses(&whole)[6..]);
    assert!(!stderr(&o).contains("note:"), "{}", stderr(&o));
    // Resumed on other text it still trains, and says it will not follow the original run.
    let other = tmp("other.txt");
    std::fs::write(&other, "Shall I compare thee?\n".repeat(60)).unwrap();
    let elsewhere = tmp("elsewhere");
    let o = mechlab(&[
        "lm",
        "train",
        "--link",
        TINY,
        "--resume",
        first.to_str().unwrap(),
        "--steps",
        "7",
        "--corpus",
        other.to_str().unwrap(),
        "--out",
        elsewhere.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(
            "note: this checkpoint trained on the text `verse`, and this run continues it on `other`"
        ),
        "{err}"
    );
    let sample = || {
        let o = mechlab(&[
            "lm",
            "sample",
            whole.to_str().unwrap(),
            "--prompt",
            "Shall I",
            "--tokens",
            "10",
            "--temperature",
            "0",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        String::from_utf8(o.stdout).unwrap()
    };
    // The prompt, then text the model wrote; greedy, so the same twice.
    let text = sample();
    let written = text
        .strip_prefix("Shall I")
        .unwrap_or_else(|| panic!("{text}"));
    assert!(!written.trim().is_empty(), "nothing sampled: {text:?}");
    assert_eq!(sample(), text, "greedy sampling is deterministic");
    let cache = tmp("cache.safetensors");
    let o = mechlab(&[
        "lm",
        "cache",
        whole.to_str().unwrap(),
        "--hook",
        "blocks.*.mlp.hook_mid",
        "--hook",
        "hook_embed",
        "--text",
        text_file().to_str().unwrap(),
        "--out",
        cache.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let bytes = std::fs::read(&cache).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&bytes[8..8 + header_len]).unwrap();
    assert!(
        header.contains("blocks.0.mlp.hook_mid") && header.contains("hook_embed"),
        "{header}"
    );
    edits_change_what_cache_writes(&whole);
}

/// A tensor of a safetensors file `mechlab lm cache` wrote.
fn tensor(path: &Path, name: &str) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor(name).unwrap();
    t.data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

/// `mechlab lm cache` with `--ablate` and `--steer` (TransformerLens's run_with_hooks from the
/// command line): the hooks and logits written are those after the edits, the GPU agrees with
/// the CPU reference, and edits that do not fit exit non-zero naming the hook.
fn edits_change_what_cache_writes(model: &Path) {
    let text = text_file();
    let cache = |name: &str, extra: &[&str]| {
        let out = tmp(name);
        let mut args = vec![
            "lm",
            "cache",
            model.to_str().unwrap(),
            "--hook",
            "blocks.0.mlp.hook_post",
            "--logits",
            "--text",
            text.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        (mechlab(&args), out)
    };
    let (o, clean) = cache("clean.safetensors", &["--engine", "cpu"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let clean_logits = tensor(&clean, "logits");
    let post = "blocks.0.mlp.hook_post";
    let (o, ablated) = cache(
        "ablated.safetensors",
        &["--engine", "cpu", "--ablate", post],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("after 1 edit"));
    assert!(tensor(&ablated, post).iter().all(|&v| v == 0.0));
    let ablated_logits = tensor(&ablated, "logits");
    assert!(ablated_logits
        .iter()
        .zip(&clean_logits)
        .any(|(a, b)| (a - b).abs() > 1e-3));
    // One neuron: only its column is zero.
    let one = format!("{post}:3");
    let (o, neuron) = cache("neuron.safetensors", &["--engine", "cpu", "--ablate", &one]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (values, clean_values) = (tensor(&neuron, post), tensor(&clean, post));
    for (i, (v, c)) in values.iter().zip(&clean_values).enumerate() {
        assert_eq!(*v, if i % 32 == 3 { 0.0 } else { *c }, "{post}[{i}]");
    }
    // The same ablation on the GPU.
    let (o, on_gpu) = cache(
        "ablated-gpu.safetensors",
        &["--engine", "gpu", "--ablate", post],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    for (g, c) in tensor(&on_gpu, "logits").iter().zip(&ablated_logits) {
        assert!((g - c).abs() <= 1e-4 + 1e-4 * c.abs(), "GPU {g} vs CPU {c}");
    }
    // Steering the residual stream by a vector from a file: scale 0 changes nothing.
    let vector: Vec<u8> = (0..16)
        .flat_map(|i| (i as f32 - 7.5).to_le_bytes())
        .collect();
    let file = tmp("direction.safetensors");
    let bytes =
        mechlab_engine::io::safetensors::serialize_f32(&[("direction", vec![16], vector)]).unwrap();
    std::fs::write(&file, bytes).unwrap();
    let steer = |scale: &str| format!("blocks.0.hook_resid_pre={}:{scale}", file.display());
    let (o, zero) = cache(
        "steer0.safetensors",
        &["--engine", "cpu", "--steer", &steer("0")],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(tensor(&zero, "logits"), clean_logits);
    let (o, steered) = cache(
        "steer3.safetensors",
        &["--engine", "cpu", "--steer", &steer("3")],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(tensor(&steered, "logits")
        .iter()
        .zip(&clean_logits)
        .any(|(a, b)| (a - b).abs() > 1e-3));
    // Patching hook_post from the ablated run's cache gives the ablated run's logits; patching
    // position 0 only zeroes that position's neurons and leaves the others clean.
    let patch = format!("{post}={}", ablated.display());
    let (o, patched) = cache(
        "patched.safetensors",
        &["--engine", "cpu", "--patch", &patch],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(tensor(&patched, "logits"), ablated_logits);
    let (o, first) = cache(
        "patched0.safetensors",
        &["--engine", "cpu", "--patch", &format!("{patch}:0")],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let n_ctx = {
        let bytes = std::fs::read(&clean).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        st.tensor("tokens").unwrap().shape()[1]
    };
    for (i, (v, c)) in tensor(&first, post).iter().zip(&clean_values).enumerate() {
        let at_0 = (i / 32) % n_ctx == 0;
        assert_eq!(*v, if at_0 { 0.0 } else { *c }, "{post}[{i}]");
    }
    let (o, on_gpu) = cache(
        "patched0-gpu.safetensors",
        &["--engine", "gpu", "--patch", &format!("{patch}:0")],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    for (g, c) in tensor(&on_gpu, "logits")
        .iter()
        .zip(&tensor(&first, "logits"))
    {
        assert!((g - c).abs() <= 1e-4 + 1e-4 * c.abs(), "GPU {g} vs CPU {c}");
    }
    // A source of another shape, and a position past the row.
    let wrong = format!("{post}={}", file.display());
    let (o, _) = cache("bad.safetensors", &["--patch", &wrong]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("a patch source of 16 values"),
        "{}",
        stderr(&o)
    );
    let (o, _) = cache("bad.safetensors", &["--patch", &format!("{patch}:0,4096")]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("patch position 4096"), "{}", stderr(&o));
    // Edits that do not fit.
    let (o, _) = cache("bad.safetensors", &["--ablate", "blocks.0.mlp.hook_psot"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("nearest are blocks.0.mlp.hook_post"),
        "{}",
        stderr(&o)
    );
    let (o, _) = cache("bad.safetensors", &["--ablate", "hook_embed:16"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("index 16 is outside"), "{}", stderr(&o));
    let (o, _) = cache("bad.safetensors", &["--ablate", "hook_embed:x"]);
    assert!(stderr(&o).contains("`x` is not an index"), "{}", stderr(&o));
    let (o, _) = cache(
        "bad.safetensors",
        &["--steer", "blocks.0.hook_resid_pre=/no/such.safetensors"],
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("/no/such.safetensors"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn gpu_training_follows_the_cpu_reference() {
    let (cpu, gpu) = (tmp("on-cpu"), tmp("on-gpu"));
    assert!(train(&cpu, "4", &["--engine", "cpu"]).status.success());
    let o = train(&gpu, "4", &["--engine", "gpu"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // "training … with <the adapter>": not the CPU reference.
    let said = stderr(&o);
    assert!(
        said.contains("training ") && !said.contains("with the CPU reference"),
        "{said}"
    );
    for (a, b) in losses(&cpu).iter().zip(losses(&gpu)) {
        assert!((a - b).abs() < 1e-3 * a, "{a} vs {b}");
    }
    assert!(gpu.join("optimizer.safetensors").exists());
    // Four steps on the GPU, then two more from its checkpoint: the same losses as six at once.
    let whole = tmp("gpu-whole");
    assert!(train(&whole, "6", &["--engine", "gpu"]).status.success());
    let rest = tmp("gpu-rest");
    let o = train(
        &rest,
        "6",
        &["--engine", "gpu", "--resume", gpu.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(losses(&rest), losses(&whole)[4..]);
}

#[test]
fn bad_input_exits_nonzero_with_the_reason() {
    let out = tmp("bad");
    let bad_text = tmp("latin1.txt");
    std::fs::write(&bad_text, b"caf\xe9\n").unwrap();
    let o = mechlab(&[
        "lm",
        "train",
        "--preset",
        "tiny",
        "--corpus",
        bad_text.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("not UTF-8") && stderr(&o).contains("line 1, column 4"),
        "{}",
        stderr(&o)
    );
    let o = mechlab(&[
        "lm",
        "train",
        "--link",
        "v=1&lab=lm&model.act_fn=relu",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("model.act_fn=relu"), "{}", stderr(&o));
    let o = mechlab(&[
        "lm",
        "train",
        "--preset",
        "huge",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("tiny, solu-vs-gelu or small"),
        "{}",
        stderr(&o)
    );
    let o = mechlab(&["lm", "sample", out.to_str().unwrap(), "--prompt", "x"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("not a folder") || stderr(&o).contains("config.json"),
        "{}",
        stderr(&o)
    );
    let empty = tmp("empty-ck");
    std::fs::create_dir_all(&empty).unwrap();
    let o = mechlab(&["lm", "sample", empty.to_str().unwrap(), "--prompt", "x"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no config.json"), "{}", stderr(&o));
}
