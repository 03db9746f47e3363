//! `mechlab lm`: the Transformer lab natively. `train` trains from a preset, a JSON config or a
//! share link on Shakespeare or a text file and writes a TransformerLens checkpoint folder
//! (`solu-vs-gelu` writes one per model and compares them); `sample` continues a prompt from a
//! checkpoint; `cache` writes a checkpoint's activations at the hooks a pattern names, and its
//! logits, after any hooks were ablated, steered or patched (`--ablate`, `--steer`, `--patch`).

use crate::common::{
    adapter, bar, engine_choice, forward_placement, placement, read_config, ConfigArgs,
};
use mechlab_engine::data::text::{Corpus, TextTokenizer};
use mechlab_engine::experiment::link::LinkConfig;
use mechlab_engine::experiment::preset::LabPreset;
use mechlab_engine::io::safetensors::{f32_bytes, serialize_f32};
use mechlab_engine::io::transformer_lens::Checkpoint;
use mechlab_engine::models::transformer::cpu::{forward_with, hook_matches};
use mechlab_engine::models::transformer::gpu::GpuTransformer;
use mechlab_engine::models::transformer::link::LmExperiment;
use mechlab_engine::models::transformer::lm::{
    LmConfig, LmPreset, LmStep, SampleOptions, TokenizedCorpus,
};
use mechlab_engine::models::transformer::trainer::LmTrainer;
use mechlab_engine::models::transformer::{Edit, HookEdit, LmLab};
use mechlab_engine::train::engine::EngineChoice;
use mechlab_engine::train::lab::Lab;
use mechlab_engine::train::trainer::train_evaluating;
use serde_json::json;
use std::path::{Path, PathBuf};

/// What `mechlab lm` does.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Train a language model and write a TransformerLens checkpoint folder.
    Train(TrainArgs),
    /// Continue a prompt with a checkpoint.
    Sample(SampleArgs),
    /// Write a checkpoint's activations at hook points (TransformerLens names) and its logits
    /// as safetensors, after zeroing, steering or patching hooks if asked (TransformerLens's
    /// run_with_hooks).
    Cache(CacheArgs),
}

/// `mechlab lm train`.
#[derive(clap::Args)]
pub struct TrainArgs {
    /// The run (presets: tiny, solu-vs-gelu, small), overrides and engine.
    #[command(flatten)]
    common: ConfigArgs,
    /// Train on this UTF-8 text file instead of Shakespeare (its last tenth of lines is held
    /// out for validation).
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// Continue the run in this checkpoint folder (its config, tokenizer and optimiser state)
    /// for the config's steps in all.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Measure the validation loss every this many steps.
    #[arg(long, default_value_t = 100)]
    eval_every: u32,
    /// The folder to write (created if missing).
    #[arg(long)]
    out: PathBuf,
}

/// `mechlab lm sample`.
#[derive(clap::Args)]
pub struct SampleArgs {
    /// The checkpoint folder.
    dir: PathBuf,
    /// The text to continue.
    #[arg(long)]
    prompt: String,
    /// Tokens to add.
    #[arg(long, default_value_t = 200)]
    tokens: u32,
    /// Softmax temperature (0: the most likely token each time).
    #[arg(long, default_value_t = 0.8)]
    temperature: f32,
    /// Sample among the k most likely tokens (0: all).
    #[arg(long, default_value_t = 20)]
    top_k: u32,
    /// Seed of the draws.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// `mechlab lm cache`.
#[derive(clap::Args)]
pub struct CacheArgs {
    /// The checkpoint folder.
    dir: PathBuf,
    /// Hook names or patterns, `*` standing for one dotted part (`blocks.*.mlp.hook_mid`);
    /// repeat for several.
    #[arg(long)]
    hook: Vec<String>,
    /// Zero a hook's value before the pass goes on from it (`HOOK`), or one index of its last
    /// axis (`HOOK:INDEX`: a neuron of `blocks.0.mlp.hook_post`); repeat for several.
    #[arg(long, value_name = "HOOK[:INDEX]")]
    ablate: Vec<String>,
    /// Add a vector of one position's width, times SCALE (1 if left out), to a hook at every
    /// position (`HOOK=FILE.safetensors[:SCALE]`; the file holds one tensor, or one named
    /// after the hook); repeat for several.
    #[arg(long, value_name = "HOOK=FILE[:SCALE]")]
    steer: Vec<String>,
    /// Activation patching: replace a hook's value by the same hook's value from another run
    /// (`HOOK=FILE.safetensors`, a file `mechlab lm cache --hook HOOK` wrote for a text of as
    /// many windows), at every position or only at `:POS,POS,…`; repeat for several.
    #[arg(long, value_name = "HOOK=FILE[:POS,…]")]
    patch: Vec<String>,
    /// Also write the logits `[windows, n_ctx, d_vocab]` (after the edits), as `logits`.
    #[arg(long)]
    logits: bool,
    /// Where it runs: auto (the GPU when an adapter opens, else the CPU reference), gpu or cpu.
    #[arg(long, value_parser = engine_choice, default_value = "auto")]
    engine: EngineChoice,
    /// The UTF-8 text to run, cut into windows of n_ctx tokens (one batch row each).
    #[arg(long)]
    text: PathBuf,
    /// The safetensors file to write: each hook `[windows, n_ctx, …]`, and `tokens`.
    #[arg(long)]
    out: PathBuf,
}

/// Runs `mechlab lm …`.
pub fn run(command: Command) -> Result<(), String> {
    match command {
        Command::Train(a) => pollster::block_on(train(a)),
        Command::Sample(a) => sample(a),
        Command::Cache(a) => pollster::block_on(cache(a)),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn corpus(path: Option<&Path>) -> Result<Corpus, String> {
    match path {
        None => Corpus::shakespeare().map_err(|e| e.to_string()),
        Some(p) => {
            let name = p
                .file_name()
                .map_or("text".into(), |n| n.to_string_lossy().to_string());
            Corpus::from_file(&name, &read(p)?).map_err(|e| e.to_string())
        }
    }
}

fn load_checkpoint(dir: &Path) -> Result<Checkpoint, String> {
    if !dir.is_dir() {
        return Err(format!("{} is not a folder", dir.display()));
    }
    Checkpoint::read(&|name| std::fs::read(dir.join(name)).ok())
        .map_err(|e| format!("{}: {e}", dir.display()))
}

async fn write_checkpoint(dir: &Path, t: &LmTrainer) -> Result<(), String> {
    let ck = Checkpoint {
        params: t.params().await.map_err(|e| e.to_string())?,
        tokenizer: Some(t.data().tokenizer.to_json().map_err(|e| e.to_string())?),
        run: Some((
            t.config().clone(),
            t.optimizer_state().await.map_err(|e| e.to_string())?,
        )),
        corpus: Some(t.data().corpus.clone()),
    };
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for (name, bytes) in ck.files().map_err(|e| e.to_string())? {
        let path = dir.join(name);
        std::fs::write(&path, bytes)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

/// The runs the arguments ask for, with their overrides.
fn runs(args: &TrainArgs) -> Result<Vec<LmConfig>, String> {
    let c = &args.common;
    let mut runs = if let Some(name) = &c.preset {
        LmPreset::from_name(name).map_err(|e| e.to_string())?.runs()
    } else if let Some(path) = &c.config {
        vec![read_config::<LmConfig>(path)?]
    } else if let Some(l) = &c.link {
        LmExperiment::decode(l).map_err(|e| e.to_string())?.runs()
    } else {
        unreachable!("clap requires one of --preset, --config, --link")
    };
    for r in &mut runs {
        if let Some(s) = c.steps {
            r.steps = s;
        }
        if let Some(s) = c.seed {
            r.seed = s;
        }
        r.validate().map_err(|e| e.to_string())?;
    }
    Ok(runs)
}

async fn train(args: TrainArgs) -> Result<(), String> {
    let corpus = corpus(args.corpus.as_deref())?;
    let runs = runs(&args)?;
    let mut cache = None;
    let mut summary = vec![];
    for cfg in &runs {
        let out = if runs.len() > 1 {
            args.out.join(cfg.model.act_fn.name())
        } else {
            args.out.clone()
        };
        let adapter = adapter(args.common.engine, &mut cache).await;
        let place = placement::<LmLab>(args.common.engine, adapter)?;
        let on_gpu = place.chosen(adapter);
        let mut t = match &args.resume {
            None => {
                let data =
                    TokenizedCorpus::new(&corpus, cfg.tokenizer).map_err(|e| e.to_string())?;
                LmLab::open(on_gpu, cfg, data)
                    .await
                    .map_err(|e| e.to_string())?
            }
            Some(dir) => {
                let ck = load_checkpoint(dir)?;
                if let Some(why) = ck.other_text(&corpus.name) {
                    eprintln!("note: {why}");
                }
                let tok = ck.tokenizer.ok_or_else(|| {
                    format!("{}: the folder has no tokenizer.json", dir.display())
                })?;
                let tok = TextTokenizer::from_json(&tok).map_err(|e| e.to_string())?;
                let data =
                    TokenizedCorpus::with_tokenizer(&corpus, tok).map_err(|e| e.to_string())?;
                let (run, state) = ck.run.ok_or_else(|| {
                    format!(
                        "{}: the folder holds no run to resume (mechlab.json)",
                        dir.display()
                    )
                })?;
                let run = LmConfig {
                    steps: cfg.steps.max(run.steps),
                    ..run
                };
                LmTrainer::resume(on_gpu, &run, data, ck.params, Some(state))
                    .map_err(|e| e.to_string())?
            }
        };
        let runs_on = if matches!(t, LmTrainer::Gpu(_)) {
            place.runs_on.clone()
        } else {
            "the CPU reference".to_string()
        };
        let total = t.config().steps;
        eprintln!(
            "training {} layer(s), d_model {}, act_fn {}, d_vocab {} ({} parameters) on {} \
             with {runs_on}",
            t.config().model.n_layers,
            t.config().model.d_model,
            t.config().model.act_fn.name(),
            t.config().model.d_vocab,
            t.config().model.parameter_count(),
            corpus.name,
        );
        let pb = bar(total as u64);
        pb.set_position(t.step() as u64);
        let mut steps: Vec<LmStep> = vec![];
        let mut validation: Vec<(u32, f32)> = vec![];
        let last_validation = std::cell::Cell::new(None::<f32>);
        let started = std::time::Instant::now();
        let tokens_per_step = (t.config().batch_size * t.config().model.n_ctx) as f64;
        train_evaluating(
            &mut t,
            1,
            args.eval_every,
            |t, report| {
                steps.extend(report.iter().cloned());
                let rate = steps.len() as f64 * tokens_per_step / started.elapsed().as_secs_f64();
                let val = last_validation
                    .get()
                    .map_or(String::new(), |v| format!(", val {v:.3}"));
                if let Some(s) = report.last() {
                    pb.set_message(format!("loss {:.3}{val}, {rate:.0} tokens/s", s.loss));
                }
                pb.set_position(t.step() as u64);
            },
            async |t| {
                let v = t.validation_loss().await?;
                validation.push((t.step(), v));
                last_validation.set(Some(v));
                Ok(())
            },
        )
        .await
        .map_err(|e| e.to_string())?;
        pb.finish();
        write_checkpoint(&out, &t).await?;
        let text = match t.sample("ROMEO.\n", &SampleOptions::default()).await {
            Ok(text) => text,
            Err(_) => t
                .sample("\n", &SampleOptions::default())
                .await
                .map_err(|e| e.to_string())?,
        };
        let final_val = validation.last().map(|(_, v)| *v);
        let metrics = json!({
            "config": serde_json::to_value(t.config()).expect("json"),
            "link": t.config().to_link(),
            "corpus": corpus.name,
            "steps": steps,
            "validation": validation,
            "final_validation_loss": final_val,
            "sample": text,
        });
        let path = out.join("metrics.json");
        std::fs::write(&path, serde_json::to_vec_pretty(&metrics).expect("json"))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!(
            "{}: validation loss {:.4} after {} steps; checkpoint in {}",
            t.config().model.act_fn.name(),
            final_val.unwrap_or(f32::NAN),
            t.step(),
            out.display()
        );
        summary.push((t.config().model.act_fn.name(), final_val));
    }
    if summary.len() == 2 {
        let (a, b) = (summary[0], summary[1]);
        if let (Some(x), Some(y)) = (a.1, b.1) {
            println!(
                "{} − {}: {:+.4} nats per token on held-out text",
                a.0,
                b.0,
                x - y
            );
        }
    }
    Ok(())
}

fn sample(args: SampleArgs) -> Result<(), String> {
    let ck = load_checkpoint(&args.dir)?;
    let tok = ck
        .tokenizer
        .ok_or_else(|| format!("{}: the folder has no tokenizer.json", args.dir.display()))?;
    let tok = TextTokenizer::from_json(&tok).map_err(|e| e.to_string())?;
    let opts = SampleOptions {
        tokens: args.tokens,
        temperature: args.temperature,
        top_k: args.top_k,
        seed: args.seed,
    };
    let text =
        mechlab_engine::models::transformer::lm::sample(&ck.params, &tok, &args.prompt, &opts)
            .map_err(|e| e.to_string())?;
    println!("{}{text}", args.prompt);
    Ok(())
}

async fn cache(args: CacheArgs) -> Result<(), String> {
    let ck = load_checkpoint(&args.dir)?;
    let tok = ck
        .tokenizer
        .ok_or_else(|| format!("{}: the folder has no tokenizer.json", args.dir.display()))?;
    let tok = TextTokenizer::from_json(&tok).map_err(|e| e.to_string())?;
    let text = Corpus::from_file(&args.text.display().to_string(), &read(&args.text)?)
        .map_err(|e| e.to_string())?;
    let ids = tok.encode(&text.works[0].text).map_err(|e| e.to_string())?;
    let n_ctx = (ck.params.cfg.n_ctx as usize).min(ids.len());
    let windows = ids.len() / n_ctx;
    let tokens = &ids[..windows * n_ctx];
    if args.hook.is_empty() && !args.logits {
        return Err("nothing to write: name hooks with --hook, or ask for --logits".into());
    }
    let mut edits = vec![];
    for a in &args.ablate {
        edits.push(ablation(a)?);
    }
    for s in &args.steer {
        edits.push(steering(s)?);
    }
    for p in &args.patch {
        edits.push(patching(p)?);
    }
    let patterns = args.hook.clone();
    let want = move |name: &str| patterns.iter().any(|p| hook_matches(p, name));
    let mut opened = None;
    let adapter = adapter(args.engine, &mut opened).await;
    let placed = forward_placement(args.engine, adapter)?;
    let (logits, hooks) = match placed.chosen(adapter) {
        Some(gpu) => {
            let mut model = GpuTransformer::new(gpu, &ck.params).map_err(|e| e.to_string())?;
            model.forward_with(tokens, windows, &want, &edits).await
        }
        None => forward_with(&ck.params, tokens, windows, &want, &edits),
    }
    .map_err(|e| e.to_string())?;
    let mut out: Vec<(String, Vec<usize>, Vec<u8>)> = hooks
        .names()
        .map(|n| {
            let (shape, v) = hooks.get(n).expect("listed");
            (n.to_string(), shape.to_vec(), f32_bytes(v))
        })
        .collect();
    if out.is_empty() && !args.hook.is_empty() {
        return Err(format!(
            "no hook matches {}; hooks are named as in TransformerLens (hook_embed, \
             blocks.0.hook_resid_pre, blocks.0.attn.hook_pattern, blocks.0.mlp.hook_post, …)",
            args.hook.join(", ")
        ));
    }
    let hook_count = out.len();
    if args.logits {
        let v = ck.params.cfg.d_vocab as usize;
        out.push(("logits".into(), vec![windows, n_ctx, v], f32_bytes(&logits)));
    }
    let as_f32: Vec<f32> = tokens.iter().map(|&t| t as f32).collect();
    out.push(("tokens".into(), vec![windows, n_ctx], f32_bytes(&as_f32)));
    let bytes = serialize_f32(&out).map_err(|e| e.to_string())?;
    std::fs::write(&args.out, bytes)
        .map_err(|e| format!("cannot write {}: {e}", args.out.display()))?;
    let edited = match edits.len() {
        0 => String::new(),
        n => format!(" after {n} edit{}", if n == 1 { "" } else { "s" }),
    };
    println!(
        "{hook_count} hooks{} over {windows} windows of {n_ctx} tokens{edited} written to {} ({})",
        if args.logits { " and the logits" } else { "" },
        args.out.display(),
        placed.runs_on,
    );
    Ok(())
}

/// `--ablate HOOK[:INDEX]`.
fn ablation(arg: &str) -> Result<HookEdit, String> {
    match arg.rsplit_once(':') {
        Some((hook, index)) => {
            let i = index.parse::<usize>().map_err(|_| {
                format!("--ablate {arg}: `{index}` is not an index (HOOK or HOOK:INDEX)")
            })?;
            Ok(HookEdit::new(hook, Edit::ZeroIndex(i)))
        }
        None => Ok(HookEdit::new(arg, Edit::Zero)),
    }
}

/// `--steer HOOK=FILE.safetensors[:SCALE]`: the file's one tensor (or the one named after the
/// hook), flattened.
fn steering(arg: &str) -> Result<HookEdit, String> {
    let (hook, rest) = arg
        .split_once('=')
        .ok_or_else(|| format!("--steer {arg}: expected HOOK=FILE.safetensors[:SCALE]"))?;
    let (file, scale) = match rest.rsplit_once(':') {
        Some((file, scale)) if scale.parse::<f32>().is_ok() => (file, scale.parse().unwrap()),
        _ => (rest, 1.0),
    };
    let vector = hook_tensor("--steer", arg, hook, file)?;
    Ok(HookEdit::new(hook, Edit::Steer { vector, scale }))
}

/// `--patch HOOK=FILE.safetensors[:POS,POS,…]`: the hook's value from another run's cache.
fn patching(arg: &str) -> Result<HookEdit, String> {
    let (hook, rest) = arg
        .split_once('=')
        .ok_or_else(|| format!("--patch {arg}: expected HOOK=FILE.safetensors[:POS,POS,…]"))?;
    let parse_positions = |list: &str| -> Option<Vec<usize>> {
        list.split(',').map(|p| p.trim().parse().ok()).collect()
    };
    let (file, positions) = match rest.rsplit_once(':') {
        Some((file, list)) if parse_positions(list).is_some() => (file, parse_positions(list)),
        _ => (rest, None),
    };
    let source = hook_tensor("--patch", arg, hook, file)?;
    Ok(HookEdit::new(hook, Edit::Patch { source, positions }))
}

/// The tensor of `file` (a safetensors file) named after `hook`, or its only tensor, flattened;
/// errors name the flag and its argument.
fn hook_tensor(flag: &str, arg: &str, hook: &str, file: &str) -> Result<Vec<f32>, String> {
    let bytes = read(Path::new(file)).map_err(|e| format!("{flag} {arg}: {e}"))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| format!("{flag} {arg}: {file} is not a safetensors file: {e}"))?;
    let names = st.names();
    let name = if names.contains(&hook) {
        hook.to_string()
    } else if let [one] = names.as_slice() {
        one.to_string()
    } else {
        return Err(format!(
            "{flag} {arg}: {file} holds {} tensors, none named {hook}; give it one, or one \
             named after the hook",
            names.len()
        ));
    };
    let view = st.tensor(&name).map_err(|e| format!("{file}: {e}"))?;
    let bad = |m: String| mechlab_engine::EngineError::BadModel(m);
    mechlab_engine::io::safetensors::to_f32(&view, &name, bad)
        .map_err(|e| format!("{flag} {arg}: {e}"))
}
