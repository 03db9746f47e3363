//! The worker's Transformer lab: one language model, or two identical but for the MLP
//! activation trained side by side on the same batches (each chunk trains both the same number
//! of steps), on WebGPU or the CPU reference. Each chunk reports every model's mean loss; the
//! validation loss follows every second or so of training and at the end, a sample every few
//! seconds. The page's requests (look inside a prompt, save a checkpoint) are served between
//! chunks and while paused.

use mechlab_engine::data::text::{Corpus, TextTokenizer, TokenizerKind};
use mechlab_engine::io::transformer_lens::{from_zip, to_zip, Checkpoint};
use mechlab_engine::models::transformer::inspect::inspect;
use mechlab_engine::models::transformer::lm::{sample, LmConfig, SampleOptions, TokenizedCorpus};
use mechlab_engine::models::transformer::trainer::LmTrainer;
use mechlab_engine::models::transformer::LmLab;
use mechlab_engine::models::transformer::TransformerConfig;
use mechlab_engine::train::cadence::{Cadence, TENTHS_COST_RATIO};
use mechlab_engine::train::engine::{place, Adapter};
use mechlab_engine::train::lab::Lab;
use mechlab_engine::EngineError;
use std::cell::RefCell;

use super::update::{LmModelUpdate, LmUpdate};
use crate::protocol::{FromWorker, Job, ModelView, SampleRequest, ToWorker, Update};
use crate::worker::work::{LabJob, LabWork, Opened};
use mechlab_engine::data::LocalFuture;
use mechlab_engine::models::transformer::link::LmExperiment;

/// Largest training FLOPs a step the CPU fallback takes on: a second or so a step in wasm.
pub const CPU_FALLBACK_FLOPS: f64 = 1.5e9;
/// Training time between validation measurements.
const EVAL_EVERY_MS: f64 = 1500.0;
/// Training time between samples.
const SAMPLE_EVERY_MS: f64 = 5000.0;
/// Tokens a live sample adds (the page's own request says how many for its samples).
const LIVE_SAMPLE_TOKENS: u32 = 80;
/// Next tokens an inspection lists.
const NEXT_TOKENS: usize = 10;

thread_local! {
    /// The last text made into tokens from scratch: the text, the tokenizer's kind, its tokens
    /// and how long they took. The estimate opens a job each time the controls settle and Run
    /// opens it again, and a BPE vocabulary takes seconds to train in a tab: one trained on the
    /// same text serves them all.
    static TOKENS: RefCell<Option<(Corpus, TokenizerKind, TokenizedCorpus, f64)>> =
        const { RefCell::new(None) };
}

/// `corpus` made into tokens by a new tokenizer of `kind`, or the same tokens as last time;
/// with the milliseconds making them took, and whether they were kept from before.
fn tokenize(
    corpus: &Corpus,
    kind: TokenizerKind,
) -> Result<(TokenizedCorpus, f64, bool), EngineError> {
    let kept = TOKENS.with_borrow(|c| {
        c.as_ref()
            .filter(|(text, k, _, _)| *k == kind && text == corpus)
            .map(|(_, _, data, ms)| (data.clone(), *ms))
    });
    if let Some((data, ms)) = kept {
        return Ok((data, ms, true));
    }
    // The old entry goes first: two texts' tokens need not be held at once.
    TOKENS.set(None);
    let t0 = js_sys::Date::now();
    let data = TokenizedCorpus::new(corpus, kind)?;
    let ms = js_sys::Date::now() - t0;
    TOKENS.set(Some((corpus.clone(), kind, data.clone(), ms)));
    Ok((data, ms, false))
}

/// A run's models and the bookkeeping of its evaluations and samples.
pub struct LmWork {
    trainers: Vec<LmTrainer>,
    sample: SampleRequest,
    /// How the text became tokens, said in the first update.
    data_note: Option<String>,
    /// Validation losses: by training time, and at tenths of the run they can afford.
    eval: Cadence,
    /// Live samples: by training time.
    samples: Cadence,
}

/// The tokenizer a checkpoint's models read text with: the first model's, which every model
/// without its own shares; each one there must read. The page checks a checkpoint with this
/// before it drops what it has open, and opening checks again.
pub fn checkpoint_tokenizer(cks: &[(String, Checkpoint)]) -> Result<TextTokenizer, String> {
    let Some((_, first)) = cks.first() else {
        return Err("the archive holds no checkpoint".into());
    };
    let json = first.tokenizer.as_ref().ok_or_else(|| {
        "the checkpoint has no tokenizer.json: mechlab needs the model's tokenizer to read text"
            .to_string()
    })?;
    for (folder, ck) in &cks[1..] {
        // A model with a tokenizer of its own (opening reads it as well).
        if let Some(other) = ck.tokenizer.as_ref().filter(|t| *t != json) {
            TextTokenizer::from_json(other).map_err(|e| format!("{folder}: {e}"))?;
        }
    }
    TextTokenizer::from_json(json).map_err(|e| e.to_string())
}

/// Reads the text, makes the tokens (once, shared by a pair), settles where the models train
/// and opens their trainers, fresh or from the job's checkpoint.
pub async fn open(runs: &[LmConfig], job: &Job, gpu: Adapter) -> Result<Opened<LmWork>, String> {
    let err = |e: EngineError| e.to_string();
    if runs.is_empty() || runs.len() > 2 {
        return Err(format!(
            "a run trains one or two models, not {}",
            runs.len()
        ));
    }
    for cfg in runs {
        cfg.validate().map_err(err)?;
    }
    let corpus = match &job.corpus {
        None => Corpus::shakespeare().map_err(err)?,
        Some(f) => Corpus::from_file(&f.name, &f.bytes).map_err(err)?,
    };
    let checkpoints = match &job.checkpoint {
        None => None,
        Some(f) => Some(from_zip(&f.bytes).map_err(|e| format!("{}: {e}", f.name))?),
    };
    let (data, tokenize_ms, kept) = match &checkpoints {
        None => tokenize(&corpus, runs[0].tokenizer).map_err(err)?,
        Some(cks) => {
            if cks.len() != runs.len() {
                return Err(format!(
                    "the checkpoint holds {} model(s) and the run trains {}",
                    cks.len(),
                    runs.len()
                ));
            }
            let tok = checkpoint_tokenizer(cks)?;
            let data = TokenizedCorpus::with_tokenizer(&corpus, tok).map_err(err)?;
            (data, 0.0, false)
        }
    };
    let vocab = data.tokenizer.vocab_size();
    let mut data_note = format!(
        "{}: {} training and {} validation tokens, a {}-token {} vocabulary ({})",
        corpus.name,
        data.train.len(),
        data.validation.len(),
        vocab,
        match data.tokenizer.kind() {
            mechlab_engine::data::text::TokenizerKind::Char => "character",
            mechlab_engine::data::text::TokenizerKind::Bpe { .. } => "BPE",
        },
        if checkpoints.is_some() {
            "the checkpoint's tokenizer".to_string()
        } else if kept {
            format!("reused, made earlier in {:.1} s", tokenize_ms / 1000.0)
        } else {
            format!("made in {:.1} s", tokenize_ms / 1000.0)
        }
    );
    if let Some(why) = checkpoints
        .as_ref()
        .and_then(|cks| cks[0].1.other_text(&corpus.name))
    {
        data_note.push_str(&format!(". Note: {why}"));
    }
    let with_vocab = |cfg: &LmConfig| LmConfig {
        model: TransformerConfig {
            d_vocab: vocab,
            ..cfg.model.clone()
        },
        ..cfg.clone()
    };
    let flops_per_step: f64 = runs
        .iter()
        .map(|c| {
            let c = with_vocab(c);
            c.training_flops_per_token() * (c.batch_size * c.model.n_ctx) as f64
        })
        .sum();
    let cpu_too_large = (flops_per_step > CPU_FALLBACK_FLOPS).then(|| {
        format!(
            "this run needs WebGPU: a step is {flops_per_step:.2e} training FLOPs, more than the \
             CPU reference's {CPU_FALLBACK_FLOPS:.1e} in a browser tab; shrink the model, the \
             batch or n_ctx"
        )
    });
    let placement = place(&LmLab::request(job.engine, cpu_too_large, "WebGPU"), &gpu)?;
    let on = placement.chosen(&gpu);
    let mut trainers = vec![];
    let mut start = 0;
    for (i, cfg) in runs.iter().enumerate() {
        let t = match &checkpoints {
            None => LmLab::open(on, cfg, data.clone()).await,
            Some(cks) => {
                let (folder, ck) = &cks[i];
                let state = ck.run.as_ref().map(|(_, s)| s.clone());
                start = state.as_ref().map_or(0, |s| s.step);
                let data = match &ck.tokenizer {
                    Some(json) if i > 0 && Some(json) != cks[0].1.tokenizer.as_ref() => {
                        let tok = TextTokenizer::from_json(json).map_err(err)?;
                        TokenizedCorpus::with_tokenizer(&corpus, tok).map_err(err)?
                    }
                    _ => data.clone(),
                };
                LmTrainer::resume(on, cfg, data, ck.params.clone(), state).map_err(|e| {
                    EngineError::BadModel(if folder.is_empty() {
                        e.to_string()
                    } else {
                        format!("{folder}: {e}")
                    })
                })
            }
        }
        .map_err(err)?;
        trainers.push(t);
    }
    let steps: Vec<u32> = trainers.iter().map(LmTrainer::step).collect();
    if steps.iter().any(|&s| s != start) {
        return Err(format!(
            "the checkpoint's models stopped at different steps ({steps:?})"
        ));
    }
    // A step is a few matmuls of the model's FLOPs; the loop corrects the guess at once.
    let per_sec = if on.is_some() { 2e10 } else { 5e8 };
    let chunk = (per_sec * 0.1 / flops_per_step.max(1.0)).clamp(1.0, 20.0);
    Ok(Opened {
        work: LmWork {
            trainers,
            sample: job.sample.clone().unwrap_or_default(),
            data_note: Some(data_note),
            eval: Cadence::new(EVAL_EVERY_MS, Some(TENTHS_COST_RATIO)),
            samples: Cadence::new(SAMPLE_EVERY_MS, None),
        },
        adapter: placement.runs_on,
        chunk,
        max_chunk: 500.0,
        start,
    })
}

impl LabJob for LmWork {
    type Experiment = LmExperiment;

    async fn open(e: &LmExperiment, job: &Job, gpu: Adapter) -> Result<Opened<Self>, String> {
        open(&e.runs(), job, gpu).await
    }
}

impl LabWork for LmWork {
    fn advance(
        &mut self,
        n: u32,
        chunk_ms: f64,
        total: u32,
    ) -> LocalFuture<'_, Result<(u32, Update), EngineError>> {
        Box::pin(self.chunk(n, chunk_ms, total))
    }

    fn overhead(&mut self, chunk_ms: f64) -> LocalFuture<'_, Result<(f64, f64), EngineError>> {
        Box::pin(self.measure_overhead(chunk_ms))
    }

    /// Looks inside the models for a prompt, or saves them as a checkpoint archive.
    fn serve(&mut self, run: u32, step: u32, req: ToWorker) -> LocalFuture<'_, FromWorker> {
        Box::pin(async move {
            match req {
                ToWorker::Inspect(r) => FromWorker::Inspection {
                    run,
                    models: self.inspect(r).await.map_err(|e| e.to_string()),
                },
                _ => FromWorker::Checkpoint {
                    run,
                    step,
                    archive: self
                        .save()
                        .await
                        .map(serde_bytes::ByteBuf::from)
                        .map_err(|e| e.to_string()),
                },
            }
        })
    }
}

impl LmWork {
    /// What a run pays besides training, measured once: the share of its time its periodic
    /// validation passes and samples take (each runs after a chunk once enough training time
    /// has passed, or after every chunk when it takes longer than that), and the last ones'
    /// milliseconds at the end of the run.
    async fn measure_overhead(&mut self, chunk_ms: f64) -> Result<(f64, f64), EngineError> {
        let t0 = js_sys::Date::now();
        self.validation_losses().await?;
        let eval = js_sys::Date::now() - t0;
        let t1 = js_sys::Date::now();
        self.live_samples().await?;
        let sample = js_sys::Date::now() - t1;
        let share = self.eval.share(eval, chunk_ms) + self.samples.share(sample, chunk_ms);
        Ok((share.min(0.9), eval + sample))
    }

    /// Every model's validation loss.
    async fn validation_losses(&mut self) -> Result<Vec<f32>, EngineError> {
        let mut losses = vec![];
        for t in &mut self.trainers {
            losses.push(t.validation_loss().await?);
        }
        Ok(losses)
    }

    /// A short live sample from every model.
    async fn live_samples(&self) -> Result<Vec<String>, EngineError> {
        let opts = SampleOptions {
            tokens: LIVE_SAMPLE_TOKENS.min(self.sample.options.tokens.max(1)),
            ..self.sample.options
        };
        let mut texts = vec![];
        for t in &self.trainers {
            // A prompt the tokenizer cannot read is the page's to report (Look inside says
            // why); the live sample then simply starts from a new line.
            let text = match t.sample(&self.sample.prompt, &opts).await {
                Ok(s) => s,
                Err(_) => t.sample("\n", &opts).await?,
            };
            texts.push(text);
        }
        Ok(texts)
    }

    /// Trains every model `n` steps; returns `n` and the chunk's update.
    async fn chunk(
        &mut self,
        n: u32,
        chunk_ms: f64,
        total: u32,
    ) -> Result<(u32, Update), EngineError> {
        let mut models = vec![];
        let step_before = self.trainers[0].step();
        for t in &mut self.trainers {
            let mut sum = 0.0;
            let mut last = None;
            for _ in 0..n {
                let s = t.train_step().await?;
                sum += s.loss;
                last = Some(s);
            }
            let last = last.expect("n ≥ 1");
            models.push(LmModelUpdate {
                loss: sum / n as f32,
                grad_norm: last.grad_norm,
                lr: last.lr,
                validation: None,
                sample: None,
            });
        }
        let step = self.trainers[0].step();
        let done = step >= total;
        let at = (step, self.trainers[0].config().steps);
        let eval_due = self.eval.due(chunk_ms, at, step - step_before);
        let sample_due = self.samples.due(chunk_ms, at, step - step_before);
        if done || eval_due {
            let t0 = js_sys::Date::now();
            for (loss, m) in self.validation_losses().await?.into_iter().zip(&mut models) {
                m.validation = Some(loss);
            }
            self.eval.done(js_sys::Date::now() - t0);
        }
        if done || sample_due || step_before == 0 {
            let t0 = js_sys::Date::now();
            for (text, m) in self.live_samples().await?.into_iter().zip(&mut models) {
                m.sample = Some(text);
            }
            self.samples.done(js_sys::Date::now() - t0);
        }
        let c = self.trainers.iter().map(|t| t.config());
        let tokens_per_step = c
            .clone()
            .map(|c| (c.batch_size * c.model.n_ctx) as f64)
            .sum();
        let flops_per_step = c
            .map(|c| c.training_flops_per_token() * (c.batch_size * c.model.n_ctx) as f64)
            .sum();
        Ok((
            n,
            Update::new(&LmUpdate {
                models,
                data: self.data_note.take(),
                tokens_per_step,
                flops_per_step,
            })?,
        ))
    }

    /// Every model seen through `req.prompt` (and the prompt kept for live samples).
    pub async fn inspect(&mut self, req: SampleRequest) -> Result<Vec<ModelView>, EngineError> {
        self.sample = req.clone();
        let mut out = vec![];
        for t in &self.trainers {
            let params = t.params().await?;
            let tok = &t.data().tokenizer;
            out.push(ModelView {
                inspection: inspect(&params, tok, &req.prompt, NEXT_TOKENS)?,
                sample: sample(&params, tok, &req.prompt, &req.options)?,
            });
        }
        Ok(out)
    }

    /// The models as one checkpoint archive, a folder per model named by its activation.
    pub async fn save(&self) -> Result<Vec<u8>, EngineError> {
        let mut cks = vec![];
        for t in &self.trainers {
            cks.push((
                t.config().model.act_fn.name(),
                Checkpoint {
                    params: t.params().await?,
                    tokenizer: Some(t.data().tokenizer.to_json()?),
                    run: Some((t.config().clone(), t.optimizer_state().await?)),
                    corpus: Some(t.data().corpus.clone()),
                },
            ));
        }
        let refs: Vec<(&str, &Checkpoint)> = cks.iter().map(|(n, c)| (*n, c)).collect();
        to_zip(&refs)
    }
}
