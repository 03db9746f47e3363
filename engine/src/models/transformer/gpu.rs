//! The forward pass on the GPU: the parameters in one arena under their TransformerLens names,
//! every layer's activations in device buffers, one recording and one submit for the whole
//! pass. Captured hooks are read back by name afterwards, with the CPU reference's names and
//! shapes; nothing else is read back but the logits.

use super::config::Activation;
use super::cpu::{check_tokens, normalized, Hooks};
use super::hooks::{check_edits, CheckedEdit, Edit, HookEdit};
use super::params::TransformerParams;
use super::unembed::{self, unembed_loss, UnembedLoss};
use crate::error::Result;
use crate::gpu::{Arena, ArenaLayout, Gpu, Recorder, View};
use crate::kernels::activation::{activation, Act};
use crate::kernels::add::add;
use crate::kernels::attention::{
    attention, attention_backward, Attention, AttentionBackward, AttnShape,
};
use crate::kernels::cross_entropy::CeShape;
use crate::kernels::embedding::{
    embedding, embedding_backward, token_lists, Embedding, EmbeddingBackward,
};
use crate::kernels::heads::{heads, heads_backward, Heads, HeadsBackward};
use crate::kernels::hook_edit::{hook_edit, EditOp};
use crate::kernels::layernorm::{layernorm, layernorm_backward, LayerNorm, LayerNormBackward};
use crate::kernels::matmul::{matmul, Matmul};
use crate::kernels::sum_rows::sum_rows;
use std::sync::Arc;

/// A transformer's parameters on the device, ready to run.
pub struct GpuTransformer {
    gpu: Gpu,
    params: TransformerParams,
    arena: Arena,
    recorder: Recorder,
    /// The largest chunk of logits a loss makes at once ([`unembed::LOGIT_CHUNK_BYTES`]).
    chunk_bytes: u64,
}

/// What a pass gives back.
#[derive(Clone, Copy)]
enum Want<'g> {
    /// Every position's logits (and the hooks asked for).
    Logits,
    /// The mean loss, the logits made a chunk of positions at a time and never kept.
    Loss,
    /// The loss, every parameter's gradient written into this mirror of the arena.
    Grads(&'g Arena),
}

/// An activation buffer with its hook name and shape. A LayerNorm's output (`{prefix}.out`,
/// what the next layer reads) and statistics (`{prefix}.stats`) are not hooks: its
/// `hook_scale` and `hook_normalized` are made from its statistics and input when captured.
struct Buf {
    name: String,
    shape: Vec<usize>,
    buf: wgpu::Buffer,
}

/// Whether an activation buffer holds a hook's value (or the logits).
fn is_hook(name: &str) -> bool {
    !(name.ends_with(".out") || name.ends_with(".stats"))
}

impl GpuTransformer {
    /// Uploads `params` into an arena laid out for this device.
    pub fn new(gpu: &Gpu, params: &TransformerParams) -> Result<Self> {
        params.cfg.validate()?;
        let shapes: Vec<(&str, &[usize])> = params
            .tensors
            .iter()
            .map(|t| (t.name.as_str(), t.shape.as_slice()))
            .collect();
        let layout = Arc::new(ArenaLayout::for_device(gpu, &shapes)?);
        let arena = Arena::zeroed(gpu, "transformer params", layout)?;
        for t in &params.tensors {
            arena.write(gpu, &t.name, &t.values)?;
        }
        Ok(Self {
            gpu: gpu.clone(),
            params: params.clone(),
            arena,
            recorder: Recorder::new(gpu),
            chunk_bytes: unembed::LOGIT_CHUNK_BYTES,
        })
    }

    /// Caps the logits a loss makes at once at `bytes` (tests take small vocabularies in
    /// several chunks this way).
    pub fn set_logit_chunk_bytes(&mut self, bytes: u64) {
        self.chunk_bytes = bytes;
    }

    /// The logits `[batch, pos, d_vocab]` for `tokens` and the hooks `capture` accepts, as
    /// [`super::cpu::forward`] gives them.
    pub async fn forward(
        &mut self,
        tokens: &[u32],
        batch: usize,
        capture: &dyn Fn(&str) -> bool,
    ) -> Result<(Vec<f32>, Hooks)> {
        self.forward_with(tokens, batch, capture, &[]).await
    }

    /// [`GpuTransformer::forward`] with `edits` replacing hooks' values on the way, on the
    /// device, as [`super::cpu::forward_with`] does: the pass goes on from each edited value,
    /// and a captured hook holds its value after its edits.
    pub async fn forward_with(
        &mut self,
        tokens: &[u32],
        batch: usize,
        capture: &dyn Fn(&str) -> bool,
        edits: &[HookEdit],
    ) -> Result<(Vec<f32>, Hooks)> {
        let (logits, hooks, _) = self
            .run(tokens, batch, capture, edits, Want::Logits)
            .await?;
        Ok((logits, hooks))
    }

    /// The mean language-modelling loss with `edits` replacing hooks' values (the loss of an
    /// ablated, steered or patched model; with an SAE's reconstruction, CE loss recovered).
    pub async fn loss_with(
        &mut self,
        tokens: &[u32],
        batch: usize,
        edits: &[HookEdit],
    ) -> Result<f32> {
        let (_, _, loss) = self
            .run(tokens, batch, &|_| false, edits, Want::Loss)
            .await?;
        Ok(loss.expect("a loss pass reads the loss"))
    }

    /// The parameters on the device (their gradients are its [`Arena::mirror`]s).
    pub fn arena(&self) -> &Arena {
        &self.arena
    }

    /// The language-modelling loss on `tokens` (rows of `batch`), with every parameter's
    /// gradient written into `grads` (a mirror of [`GpuTransformer::arena`]), in the same
    /// recording as the forward pass.
    pub async fn loss_and_grad(
        &mut self,
        tokens: &[u32],
        batch: usize,
        grads: &Arena,
    ) -> Result<f32> {
        let (_, _, loss) = self
            .run(tokens, batch, &|_| false, &[], Want::Grads(grads))
            .await?;
        Ok(loss.expect("the backward pass reads the loss"))
    }

    /// The mean language-modelling loss on `tokens` (rows of `batch`), its logits made a chunk
    /// of positions at a time so that no vocabulary's are too large to bind.
    pub async fn loss(&mut self, tokens: &[u32], batch: usize) -> Result<f32> {
        self.loss_with(tokens, batch, &[]).await
    }

    async fn run(
        &mut self,
        tokens: &[u32],
        batch: usize,
        capture: &dyn Fn(&str) -> bool,
        edits: &[HookEdit],
        want: Want<'_>,
    ) -> Result<(Vec<f32>, Hooks, Option<f32>)> {
        let cfg = self.params.cfg.clone();
        let pos = check_tokens(&cfg, tokens, batch)?;
        let edits = check_edits(&cfg, edits, batch, pos)?;
        let (d, h, dh, m, v) = (
            cfg.d_model as usize,
            cfg.n_heads as usize,
            cfg.d_head as usize,
            cfg.d_mlp as usize,
            cfg.d_vocab as usize,
        );
        let rows = batch * pos;
        let gpu = self.gpu.clone();
        let mut acts: Vec<Buf> = vec![];
        let mut new = |name: String, shape: Vec<usize>| -> Result<usize> {
            let n: usize = shape.iter().product();
            // Zeroed at the start of the recording, not by a submit each.
            let buf = gpu.storage_dirty::<f32>(&name, n.max(1))?;
            acts.push(Buf { name, shape, buf });
            Ok(acts.len() - 1)
        };
        let resid_shape = vec![batch, pos, d];
        let tok = gpu.storage_from("tokens", tokens)?;
        let embed = new("hook_embed".into(), resid_shape.clone())?;
        let pos_embed = new("hook_pos_embed".into(), resid_shape.clone())?;
        let mut plan: Vec<Step> = vec![Step::Embed {
            embed,
            pos_embed,
            resid: 0,
        }];
        let mut resid = new("blocks.0.hook_resid_pre".into(), resid_shape.clone())?;
        if let Step::Embed { resid: r, .. } = &mut plan[0] {
            *r = resid;
        }
        for l in 0..cfg.n_layers as usize {
            let name = |n: &str| format!("blocks.{l}.{n}");
            if l > 0 {
                // The previous block's resid_post is this one's resid_pre (TransformerLens
                // caches both).
                let pre = new(name("hook_resid_pre"), resid_shape.clone())?;
                plan.push(Step::Copy {
                    from: resid,
                    to: pre,
                });
                resid = pre;
            }
            let x1 = new(name("ln1.out"), resid_shape.clone())?;
            let s1 = new(name("ln1.stats"), vec![2, rows])?;
            plan.push(Step::Ln {
                prefix: name("ln1"),
                x: resid,
                y: x1,
                stats: s1,
                width: d,
            });
            let qkv = vec![batch, pos, h, dh];
            let q = new(name("attn.hook_q"), qkv.clone())?;
            let k = new(name("attn.hook_k"), qkv.clone())?;
            let vv = new(name("attn.hook_v"), qkv.clone())?;
            for (w, out) in [("Q", q), ("K", k), ("V", vv)] {
                plan.push(Step::Heads {
                    layer: l,
                    which: w,
                    x: x1,
                    out,
                });
            }
            let sp = vec![batch, h, pos, pos];
            let scores = new(name("attn.hook_attn_scores"), sp.clone())?;
            let pattern = new(name("attn.hook_pattern"), sp)?;
            let z = new(name("attn.hook_z"), qkv)?;
            plan.push(Step::Attn {
                q,
                k,
                v: vv,
                scores,
                pattern,
                z,
            });
            let attn_out = new(name("hook_attn_out"), resid_shape.clone())?;
            plan.push(Step::Linear {
                w: name("attn.W_O"),
                b: name("attn.b_O"),
                x: z,
                out: attn_out,
                k: h * dh,
                n: d,
            });
            let after = if cfg.attn_only {
                name("hook_resid_post")
            } else {
                name("hook_resid_mid")
            };
            let mid = new(after, resid_shape.clone())?;
            plan.push(Step::Add {
                a: resid,
                b: attn_out,
                out: mid,
            });
            resid = mid;
            if !cfg.attn_only {
                let x2 = new(name("ln2.out"), resid_shape.clone())?;
                let s2 = new(name("ln2.stats"), vec![2, rows])?;
                plan.push(Step::Ln {
                    prefix: name("ln2"),
                    x: resid,
                    y: x2,
                    stats: s2,
                    width: d,
                });
                let ms = vec![batch, pos, m];
                let pre = new(name("mlp.hook_pre"), ms.clone())?;
                plan.push(Step::Linear {
                    w: name("mlp.W_in"),
                    b: name("mlp.b_in"),
                    x: x2,
                    out: pre,
                    k: d,
                    n: m,
                });
                let post = new(name("mlp.hook_post"), ms.clone())?;
                match cfg.act_fn {
                    Activation::Gelu | Activation::GeluNew => {
                        let act = if cfg.act_fn == Activation::Gelu {
                            Act::Gelu
                        } else {
                            Act::GeluNew
                        };
                        plan.push(Step::Act {
                            act,
                            x: pre,
                            out: post,
                            width: m,
                        });
                    }
                    Activation::SoluLn => {
                        let midb = new(name("mlp.hook_mid"), ms.clone())?;
                        plan.push(Step::Act {
                            act: Act::Solu,
                            x: pre,
                            out: midb,
                            width: m,
                        });
                        let s3 = new(name("mlp.ln.stats"), vec![2, rows])?;
                        plan.push(Step::Ln {
                            prefix: name("mlp.ln"),
                            x: midb,
                            y: post,
                            stats: s3,
                            width: m,
                        });
                    }
                }
                let mlp_out = new(name("hook_mlp_out"), resid_shape.clone())?;
                plan.push(Step::Linear {
                    w: name("mlp.W_out"),
                    b: name("mlp.b_out"),
                    x: post,
                    out: mlp_out,
                    k: m,
                    n: d,
                });
                let post_resid = new(name("hook_resid_post"), resid_shape.clone())?;
                plan.push(Step::Add {
                    a: resid,
                    b: mlp_out,
                    out: post_resid,
                });
                resid = post_resid;
            }
        }
        let xf = new("unembed.hook_in".into(), resid_shape.clone())?;
        let sf = new("ln_final.stats".into(), vec![2, rows])?;
        plan.push(Step::Ln {
            prefix: "ln_final".into(),
            x: resid,
            y: xf,
            stats: sf,
            width: d,
        });
        if let Want::Logits = want {
            let logits = new("logits".into(), vec![batch, pos, v])?;
            plan.push(Step::Linear {
                w: "unembed.W_U".into(),
                b: "unembed.b_U".into(),
                x: xf,
                out: logits,
                k: d,
                n: v,
            });
        }
        let plan = with_edits(plan, &acts, &edits);
        // The edits' operands, uploaded before the recording that reads them.
        let operands = edit_operands(&gpu, &edits)?;
        // Record the whole pass.
        let arena = &self.arena;
        let mut rec = self.recorder.begin();
        for a in &acts {
            rec.clear(&a.buf, 0, None);
        }
        let buf = |i: usize| View::from(&acts[i].buf);
        let shape = AttnShape {
            batch,
            pos,
            heads: h,
            d_head: dh,
        };
        for step in &plan {
            match step {
                Step::Embed {
                    embed,
                    pos_embed,
                    resid,
                } => {
                    let t = Embedding {
                        tokens: (&tok).into(),
                        w_e: arena.view("embed.W_E")?,
                        w_pos: arena.view("pos_embed.W_pos")?,
                        embed: buf(*embed),
                        pos_embed: buf(*pos_embed),
                        resid: buf(*resid),
                    };
                    embedding(&mut rec, &t, (rows, pos, d, v, cfg.n_ctx as usize)).await?;
                }
                Step::Copy { from, to } => {
                    rec.copy(
                        &acts[*from].buf,
                        0,
                        &acts[*to].buf,
                        0,
                        (rows * d * 4) as u64,
                    );
                }
                Step::Ln {
                    prefix,
                    x,
                    y,
                    stats,
                    width,
                } => {
                    let t = LayerNorm {
                        x: buf(*x),
                        w: arena.view(&format!("{prefix}.w"))?,
                        b: arena.view(&format!("{prefix}.b"))?,
                        y: buf(*y),
                        stats: buf(*stats),
                        rows,
                        width: *width,
                    };
                    layernorm(&mut rec, &t).await?;
                }
                Step::Heads {
                    layer,
                    which,
                    x,
                    out,
                } => {
                    let t = Heads {
                        x: buf(*x),
                        w: arena.view(&format!("blocks.{layer}.attn.W_{which}"))?,
                        bias: arena.view(&format!("blocks.{layer}.attn.b_{which}"))?,
                        out: buf(*out),
                        rows,
                        d_in: d,
                        heads: h,
                        d_head: dh,
                    };
                    heads(&mut rec, &t).await?;
                }
                Step::Attn {
                    q,
                    k,
                    v,
                    scores,
                    pattern,
                    z,
                } => {
                    let t = Attention {
                        q: buf(*q),
                        k: buf(*k),
                        v: buf(*v),
                        scores: buf(*scores),
                        pattern: buf(*pattern),
                        z: buf(*z),
                    };
                    attention(&mut rec, shape, &t).await?;
                }
                Step::Linear { w, b, x, out, k, n } => {
                    let mm = Matmul {
                        a: buf(*x),
                        b: arena.view(w)?,
                        c: buf(*out),
                        m: rows,
                        n: *n,
                        k: *k,
                        trans_a: false,
                        trans_b: false,
                        bias: Some(arena.view(b)?),
                        centre: None,
                        accumulate: false,
                    };
                    matmul(&mut rec, &mm).await?;
                }
                Step::Add { a, b, out } => {
                    add(&mut rec, buf(*a), buf(*b), buf(*out), rows * d).await?;
                }
                Step::Act { act, x, out, width } => {
                    activation(&mut rec, *act, buf(*x), None, buf(*out), rows, *width).await?;
                }
                Step::Edit { x, edit } => {
                    let e = &edits[*edit];
                    let (a, b) = &operands[*edit];
                    let op = match &e.edit.edit {
                        Edit::Zero => EditOp::Zero,
                        Edit::ZeroIndex(i) => EditOp::ZeroIndex(*i),
                        Edit::Steer { scale, .. } => EditOp::Steer {
                            vector: a.as_ref().expect("uploaded").into(),
                            scale: *scale,
                        },
                        Edit::Patch { .. } => EditOp::Patch {
                            source: a.as_ref().expect("uploaded").into(),
                            mask: b.as_ref().expect("uploaded").into(),
                        },
                    };
                    hook_edit(&mut rec, buf(*x), e.shape, op).await?;
                }
            }
        }
        let grads = match want {
            Want::Grads(ga) => Some(ga),
            _ => None,
        };
        // The gradient at ln_final's output: every chunk of the loss writes its rows.
        let dxf = match grads {
            Some(_) => Some(gpu.storage_dirty::<f32>("d ln_final", rows * d)?),
            None => None,
        };
        let loss_buf = match want {
            Want::Logits => None,
            Want::Loss | Want::Grads(_) => {
                let t = UnembedLoss {
                    xf: View::from(&acts[xf].buf),
                    tokens: (&tok).into(),
                    backward: dxf.as_ref().zip(grads).map(|(b, g)| (b.into(), g)),
                    shape: CeShape {
                        rows,
                        pos,
                        vocab: v,
                    },
                    d_model: d,
                    chunk_bytes: self.chunk_bytes,
                };
                Some(unembed_loss(&mut rec, arena, &t).await?)
            }
        };
        let grad_keep = match (grads, dxf) {
            (Some(ga), Some(dxf)) => {
                let find = |name: &str| {
                    acts.iter()
                        .position(|a| a.name == name)
                        .expect("the forward pass made every buffer the backward reads")
                };
                let b = |name: &str| View::from(&acts[find(name)].buf);
                // Gradient buffers are zeroed in this recording, not by a submit each.
                let z = |rec: &mut crate::gpu::Recording<'_>, what: &str, n: usize| {
                    let b = gpu.storage_dirty::<f32>(what, n.max(1))?;
                    rec.clear(&b, 0, None);
                    Ok::<_, crate::EngineError>(b)
                };
                let mut keep: Vec<wgpu::Buffer> = vec![];
                // The final LayerNorm.
                let mut dresid = z(&mut rec, "d resid", rows * d)?;
                let last = format!("blocks.{}.hook_resid_post", cfg.n_layers - 1);
                ln_backward(
                    &mut rec,
                    ga,
                    arena,
                    "ln_final",
                    b(&last),
                    (&dxf).into(),
                    b("ln_final.stats"),
                    (&dresid).into(),
                    (rows, d),
                )
                .await?;
                for l in (0..cfg.n_layers as usize).rev() {
                    let name = |n: &str| format!("blocks.{l}.{n}");
                    if !cfg.attn_only {
                        let dpost = z(&mut rec, "d post", rows * m)?;
                        linear_backward(
                            &mut rec,
                            ga,
                            arena,
                            (&name("mlp.W_out"), &name("mlp.b_out")),
                            b(&name("mlp.hook_post")),
                            (&dresid).into(),
                            (&dpost).into(),
                            (rows, m, d),
                            false,
                        )
                        .await?;
                        let dpre = z(&mut rec, "d pre", rows * m)?;
                        let pre = b(&name("mlp.hook_pre"));
                        match cfg.act_fn {
                            Activation::Gelu | Activation::GeluNew => {
                                let act = if cfg.act_fn == Activation::Gelu {
                                    Act::Gelu
                                } else {
                                    Act::GeluNew
                                };
                                activation(
                                    &mut rec,
                                    act,
                                    pre,
                                    Some((&dpost).into()),
                                    (&dpre).into(),
                                    rows,
                                    m,
                                )
                                .await?;
                            }
                            Activation::SoluLn => {
                                let dmid = z(&mut rec, "d mid", rows * m)?;
                                ln_backward(
                                    &mut rec,
                                    ga,
                                    arena,
                                    &name("mlp.ln"),
                                    b(&name("mlp.hook_mid")),
                                    (&dpost).into(),
                                    b(&name("mlp.ln.stats")),
                                    (&dmid).into(),
                                    (rows, m),
                                )
                                .await?;
                                activation(
                                    &mut rec,
                                    Act::Solu,
                                    pre,
                                    Some((&dmid).into()),
                                    (&dpre).into(),
                                    rows,
                                    m,
                                )
                                .await?;
                                keep.push(dmid);
                            }
                        }
                        let dx2 = z(&mut rec, "d ln2", rows * d)?;
                        linear_backward(
                            &mut rec,
                            ga,
                            arena,
                            (&name("mlp.W_in"), &name("mlp.b_in")),
                            b(&name("ln2.out")),
                            (&dpre).into(),
                            (&dx2).into(),
                            (rows, d, m),
                            false,
                        )
                        .await?;
                        let dln = z(&mut rec, "d resid_mid", rows * d)?;
                        ln_backward(
                            &mut rec,
                            ga,
                            arena,
                            &name("ln2"),
                            b(&name("hook_resid_mid")),
                            (&dx2).into(),
                            b(&name("ln2.stats")),
                            (&dln).into(),
                            (rows, d),
                        )
                        .await?;
                        let sum = z(&mut rec, "d resid", rows * d)?;
                        add(
                            &mut rec,
                            (&dresid).into(),
                            (&dln).into(),
                            (&sum).into(),
                            rows * d,
                        )
                        .await?;
                        keep.extend([dpost, dpre, dx2, dln, std::mem::replace(&mut dresid, sum)]);
                    }
                    // Attention.
                    let n = rows * h * dh;
                    let dz = z(&mut rec, "d z", n)?;
                    linear_backward(
                        &mut rec,
                        ga,
                        arena,
                        (&name("attn.W_O"), &name("attn.b_O")),
                        b(&name("attn.hook_z")),
                        (&dresid).into(),
                        (&dz).into(),
                        (rows, h * dh, d),
                        false,
                    )
                    .await?;
                    let ds = z(&mut rec, "d scores", batch * h * pos * pos)?;
                    let dq = z(&mut rec, "d q", n)?;
                    let dkv = z(&mut rec, "d k v", 2 * n)?;
                    attention_backward(
                        &mut rec,
                        shape,
                        &AttentionBackward {
                            q: b(&name("attn.hook_q")),
                            k: b(&name("attn.hook_k")),
                            v: b(&name("attn.hook_v")),
                            pattern: b(&name("attn.hook_pattern")),
                            dz: (&dz).into(),
                            ds: (&ds).into(),
                            dq: (&dq).into(),
                            dkv: (&dkv).into(),
                        },
                    )
                    .await?;
                    // k's and v's gradients as buffers of their own (the second half of dkv need
                    // not start at a bindable offset).
                    let (dk, dv) = (z(&mut rec, "d k", n)?, z(&mut rec, "d v", n)?);
                    rec.copy(&dkv, 0, &dk, 0, (n * 4) as u64);
                    rec.copy(&dkv, (n * 4) as u64, &dv, 0, (n * 4) as u64);
                    let dx1 = z(&mut rec, "d ln1", rows * d)?;
                    for (i, (which, g)) in
                        [("Q", &dq), ("K", &dk), ("V", &dv)].into_iter().enumerate()
                    {
                        heads_backward(
                            &mut rec,
                            &HeadsBackward {
                                x: b(&name("ln1.out")),
                                w: arena.view(&name(&format!("attn.W_{which}")))?,
                                dout: g.into(),
                                dx: (&dx1).into(),
                                dw: ga.view(&name(&format!("attn.W_{which}")))?,
                                dbias: ga.view(&name(&format!("attn.b_{which}")))?,
                                rows,
                                d_in: d,
                                heads: h,
                                d_head: dh,
                                accumulate: i > 0,
                            },
                        )
                        .await?;
                    }
                    let dln = z(&mut rec, "d resid_pre", rows * d)?;
                    ln_backward(
                        &mut rec,
                        ga,
                        arena,
                        &name("ln1"),
                        b(&name("hook_resid_pre")),
                        (&dx1).into(),
                        b(&name("ln1.stats")),
                        (&dln).into(),
                        (rows, d),
                    )
                    .await?;
                    let sum = z(&mut rec, "d resid", rows * d)?;
                    add(
                        &mut rec,
                        (&dresid).into(),
                        (&dln).into(),
                        (&sum).into(),
                        rows * d,
                    )
                    .await?;
                    keep.extend([
                        dz,
                        ds,
                        dq,
                        dkv,
                        dk,
                        dv,
                        dx1,
                        dln,
                        std::mem::replace(&mut dresid, sum),
                    ]);
                }
                let (offsets, list) = token_lists(tokens, v)?;
                let bo = gpu.storage_from("token offsets", &offsets)?;
                let bl = gpu.storage_from("token rows", &list)?;
                embedding_backward(
                    &mut rec,
                    &EmbeddingBackward {
                        offsets: (&bo).into(),
                        list: (&bl).into(),
                        g: (&dresid).into(),
                        dw_e: ga.view("embed.W_E")?,
                        dw_pos: ga.view("pos_embed.W_pos")?,
                    },
                    (rows, pos, d, v, cfg.n_ctx as usize),
                )
                .await?;
                keep.extend([dxf, dresid, bo, bl]);
                keep
            }
            _ => vec![],
        };
        rec.submit_scoped().await?;
        let loss = match &loss_buf {
            Some((l, _)) => Some(gpu.read::<f32>(l, 1).await?[0]),
            None => None,
        };
        let mut hooks = Hooks::default();
        let mut logits_out = vec![];
        for a in &acts {
            let n: usize = a.shape.iter().product();
            if a.name == "logits" {
                logits_out = gpu.read(&a.buf, n).await?;
                hooks.put(
                    capture,
                    "unembed.hook_out".into(),
                    a.shape.clone(),
                    &logits_out,
                );
            } else if is_hook(&a.name) && capture(&a.name) {
                let values: Vec<f32> = gpu.read(&a.buf, n).await?;
                hooks.put(capture, a.name.clone(), a.shape.clone(), &values);
            }
        }
        for step in &plan {
            if let Step::Ln {
                prefix,
                x,
                stats,
                width,
                ..
            } = step
            {
                let (scale, norm) = (
                    format!("{prefix}.hook_scale"),
                    format!("{prefix}.hook_normalized"),
                );
                if !capture(&scale) && !capture(&norm) {
                    continue;
                }
                let st: Vec<f32> = gpu.read(&acts[*stats].buf, 2 * rows).await?;
                hooks.put(capture, scale, vec![batch, pos, 1], &st[..rows]);
                if capture(&norm) {
                    let xv: Vec<f32> = gpu.read(&acts[*x].buf, rows * width).await?;
                    let shape = vec![batch, pos, *width];
                    hooks.put(capture, norm, shape, &normalized(&xv, &st, *width));
                }
            }
        }
        // Every buffer goes back to the pool: the next step asks for the same sizes, and
        // creating them afresh each step costs allocations a fast GPU notices (and grows the
        // memory the device holds until wgpu frees the dropped ones).
        for a in acts {
            gpu.recycle(a.buf);
        }
        gpu.recycle(tok);
        if let Some((l, keep)) = loss_buf {
            gpu.recycle(l);
            keep.into_iter().for_each(|b| gpu.recycle(b));
        }
        grad_keep.into_iter().for_each(|b| gpu.recycle(b));
        for b in operands
            .into_iter()
            .flat_map(|(a, b)| a.into_iter().chain(b))
        {
            gpu.recycle(b);
        }
        Ok((logits_out, hooks, loss))
    }
}

/// A linear layer's backward (`y = x · W + b`, `x` `[rows, k]`, `W` `[k, n]`): W's gradient
/// `xᵀ · dy` and b's (column sums) into the gradient arena (added to what is there with
/// `accumulate`: a layer taken a chunk of rows at a time), and the input's `dy · Wᵀ` into `dx`.
#[allow(clippy::too_many_arguments)]
pub(super) async fn linear_backward(
    rec: &mut crate::gpu::Recording<'_>,
    grads: &Arena,
    params: &Arena,
    (w, b): (&str, &str),
    x: View<'_>,
    dy: View<'_>,
    dx: View<'_>,
    (rows, k, n): (usize, usize, usize),
    accumulate: bool,
) -> Result<()> {
    let dw = Matmul {
        a: x,
        b: dy,
        c: grads.view(w)?,
        m: k,
        n,
        k: rows,
        trans_a: true,
        trans_b: false,
        bias: None,
        centre: None,
        accumulate,
    };
    matmul(rec, &dw).await?;
    sum_rows(rec, dy, grads.view(b)?, (rows, n), accumulate).await?;
    let din = Matmul {
        a: dy,
        b: params.view(w)?,
        c: dx,
        m: rows,
        n: k,
        k: n,
        trans_a: false,
        trans_b: true,
        bias: None,
        centre: None,
        accumulate: false,
    };
    matmul(rec, &din).await
}

/// A LayerNorm's backward, its weight's and bias's gradients into the gradient arena.
#[allow(clippy::too_many_arguments)]
async fn ln_backward(
    rec: &mut crate::gpu::Recording<'_>,
    grads: &Arena,
    params: &Arena,
    prefix: &str,
    x: View<'_>,
    dy: View<'_>,
    stats: View<'_>,
    dx: View<'_>,
    (rows, width): (usize, usize),
) -> Result<()> {
    let t = LayerNormBackward {
        x,
        w: params.view(&format!("{prefix}.w"))?,
        dy,
        stats,
        dx,
        dw: grads.view(&format!("{prefix}.w"))?,
        db: grads.view(&format!("{prefix}.b"))?,
        rows,
        width,
        accumulate: false,
    };
    layernorm_backward(rec, &t).await
}

/// One dispatch of the pass, on activation buffers by index.
enum Step {
    Embed {
        embed: usize,
        pos_embed: usize,
        resid: usize,
    },
    Copy {
        from: usize,
        to: usize,
    },
    Ln {
        prefix: String,
        x: usize,
        y: usize,
        stats: usize,
        width: usize,
    },
    Heads {
        layer: usize,
        which: &'static str,
        x: usize,
        out: usize,
    },
    Attn {
        q: usize,
        k: usize,
        v: usize,
        scores: usize,
        pattern: usize,
        z: usize,
    },
    Linear {
        w: String,
        b: String,
        x: usize,
        out: usize,
        k: usize,
        n: usize,
    },
    Add {
        a: usize,
        b: usize,
        out: usize,
    },
    Act {
        act: Act,
        x: usize,
        out: usize,
        width: usize,
    },
    /// Edit `edit` (an index into the checked edits) of the hook in buffer `x`, in place.
    Edit {
        x: usize,
        edit: usize,
    },
}

impl Step {
    /// The activation buffers the step writes that an edit may replace.
    fn outputs(&self) -> Vec<usize> {
        match *self {
            Step::Embed {
                embed,
                pos_embed,
                resid,
            } => vec![embed, pos_embed, resid],
            Step::Copy { to, .. } => vec![to],
            Step::Ln { y, .. } => vec![y],
            Step::Heads { out, .. }
            | Step::Linear { out, .. }
            | Step::Add { out, .. }
            | Step::Act { out, .. } => vec![out],
            Step::Attn { z, .. } => vec![z],
            Step::Edit { .. } => vec![],
        }
    }
}

/// `plan` with each edit recorded right after the step that writes its hook, so every later
/// step reads the edited value. An edited embedding makes the residual stream again from the
/// edited `hook_embed` and `hook_pos_embed` before `blocks.0.hook_resid_pre`'s own edits.
fn with_edits(plan: Vec<Step>, acts: &[Buf], edits: &[CheckedEdit<'_>]) -> Vec<Step> {
    let edits_of = |buf: usize| -> Vec<Step> {
        (0..edits.len())
            .filter(|&e| edits[e].edit.hook == acts[buf].name)
            .map(|edit| Step::Edit { x: buf, edit })
            .collect()
    };
    let mut out = vec![];
    for step in plan {
        let outputs = step.outputs();
        let embed = match step {
            Step::Embed {
                embed,
                pos_embed,
                resid,
            } => Some((embed, pos_embed, resid)),
            _ => None,
        };
        out.push(step);
        match embed {
            Some((embed, pos_embed, resid)) => {
                let first: Vec<Step> = [embed, pos_embed].into_iter().flat_map(edits_of).collect();
                if !first.is_empty() {
                    out.extend(first);
                    out.push(Step::Add {
                        a: embed,
                        b: pos_embed,
                        out: resid,
                    });
                }
                out.extend(edits_of(resid));
            }
            None => out.extend(outputs.into_iter().flat_map(edits_of)),
        }
    }
    out
}

/// Each edit's operands on the device: a steering vector, or a patch's source and position
/// flags.
fn edit_operands(
    gpu: &Gpu,
    edits: &[CheckedEdit<'_>],
) -> Result<Vec<(Option<wgpu::Buffer>, Option<wgpu::Buffer>)>> {
    edits
        .iter()
        .map(|e| {
            Ok(match &e.edit.edit {
                Edit::Zero | Edit::ZeroIndex(_) => (None, None),
                Edit::Steer { vector, .. } => {
                    (Some(gpu.storage_from("steering vector", vector)?), None)
                }
                Edit::Patch { source, .. } => {
                    let flags: Vec<u32> = e.mask.iter().map(|&m| u32::from(m)).collect();
                    (
                        Some(gpu.storage_from("patch source", source)?),
                        Some(gpu.storage_from("patch positions", &flags)?),
                    )
                }
            })
        })
        .collect()
}

/// Trains a language model on the GPU: the same run as [`super::lm::CpuLmTrainer`] (the same
/// initialisation, batches, AdamW, clipping and schedule), each step one recording for the
/// forward and backward passes and one for the optimiser.
pub struct GpuLmTrainer {
    cfg: super::lm::LmConfig,
    data: super::lm::TokenizedCorpus,
    model: GpuTransformer,
    grads: Arena,
    m: Arena,
    v: Arena,
    scratch: wgpu::Buffer,
    windows: crate::data::text::Windows,
    step: u32,
}

impl GpuLmTrainer {
    /// A fresh run on `corpus`, initialised as the CPU trainer initialises it.
    pub fn new(
        gpu: &Gpu,
        cfg: &super::lm::LmConfig,
        corpus: &crate::data::text::Corpus,
    ) -> Result<Self> {
        // The CPU trainer's tokenizer, tokens and initialisation, built once.
        let (cfg, data, params) = super::lm::CpuLmTrainer::new(cfg, corpus)?.into_parts();
        Self::resume(gpu, &cfg, data, params, None)
    }

    /// A run continued from `params` and `state` (a checkpoint), or started from `params` when
    /// `state` is `None`: as [`super::lm::CpuLmTrainer::resume`], on the GPU.
    pub fn resume(
        gpu: &Gpu,
        cfg: &super::lm::LmConfig,
        data: super::lm::TokenizedCorpus,
        params: TransformerParams,
        state: Option<super::lm::OptimizerState>,
    ) -> Result<Self> {
        // The CPU trainer checks the config against the model and the data and skips the
        // batches already trained; its state is the GPU's starting point.
        let cpu = super::lm::CpuLmTrainer::resume(cfg, data, params, state)?;
        let state = cpu.optimizer_state().clone();
        let (cfg, data, params, windows) = cpu.into_run();
        let model = GpuTransformer::new(gpu, &params)?;
        let grads = model.arena.mirror(gpu, "grads")?;
        let m = model.arena.mirror(gpu, "adam m")?;
        let v = model.arena.mirror(gpu, "adam v")?;
        for (i, t) in params.tensors.iter().enumerate() {
            m.write(gpu, &t.name, &state.m[i])?;
            v.write(gpu, &t.name, &state.v[i])?;
        }
        let words = crate::kernels::adam::adam_scratch_words(model.arena.layout().buffer_lens());
        let scratch = gpu.storage_zeroed::<f32>("adam scratch", words)?;
        Ok(Self {
            cfg,
            data,
            model,
            grads,
            m,
            v,
            scratch,
            windows,
            step: state.step,
        })
    }

    /// Times each kernel of the steps that follow on its own (natively; see
    /// [`Recorder::profile`]), or stops with `false`.
    pub fn profile(&mut self, on: bool) {
        self.model.recorder.profile(on);
    }

    /// What profiling has measured.
    pub fn profiled(&self) -> Option<&crate::gpu::recorder::Profile> {
        self.model.recorder.profiled()
    }

    /// The run's config, with the model's d_vocab set.
    pub fn config(&self) -> &super::lm::LmConfig {
        &self.cfg
    }

    /// Steps done.
    pub fn step(&self) -> u32 {
        self.step
    }

    /// The tokenizer and tokens.
    pub fn data(&self) -> &super::lm::TokenizedCorpus {
        &self.data
    }

    /// The parameters, read back by name.
    pub async fn params(&self) -> Result<TransformerParams> {
        let mut p = self.model.params.clone();
        for t in &mut p.tensors {
            t.values = self.model.arena.read(&self.model.gpu, &t.name).await?;
        }
        Ok(p)
    }

    /// Adam's moments and the step, read back by name (a checkpoint's optimiser state).
    pub async fn optimizer_state(&self) -> Result<super::lm::OptimizerState> {
        let gpu = &self.model.gpu;
        let mut m = vec![];
        let mut v = vec![];
        for t in &self.model.params.tensors {
            m.push(self.m.read(gpu, &t.name).await?);
            v.push(self.v.read(gpu, &t.name).await?);
        }
        Ok(super::lm::OptimizerState {
            step: self.step,
            m,
            v,
        })
    }

    /// The mean loss on the validation windows (the same windows as the CPU trainer's), run on
    /// the GPU in one batch.
    pub async fn validation_loss(&mut self) -> Result<f32> {
        let n_ctx = self.cfg.model.n_ctx as usize;
        let windows = self.cfg.eval_windows as usize;
        let mut w = crate::data::text::Windows::new(self.data.validation.len(), n_ctx, 0)?;
        let tokens: Vec<u32> = (0..windows)
            .flat_map(|_| w.next_batch(&self.data.validation, 1))
            .collect();
        self.model.loss(&tokens, windows).await
    }

    /// Trains one step; reads back the loss and the gradient's norm.
    pub async fn train_step(&mut self) -> Result<super::lm::LmStep> {
        let batch = self.cfg.batch_size as usize;
        let tokens = self.windows.next_batch(&self.data.train, batch);
        let loss = self
            .model
            .loss_and_grad(&tokens, batch, &self.grads)
            .await?;
        if !loss.is_finite() {
            return Err(crate::EngineError::Diverged {
                step: self.step,
                instance: 0,
                value: loss.to_string(),
            });
        }
        let lr = self.cfg.schedule().rate(self.step);
        let tensors = self
            .model
            .arena
            .adam_tensors(&self.grads, &self.m, &self.v, &[])?;
        let step = crate::kernels::adam::AdamStep {
            cfg: self.cfg.adam(),
            lr,
            t: self.step + 1,
            max_norm: self.cfg.max_grad_norm,
        };
        let mut rec = self.model.recorder.begin();
        crate::kernels::adam::adam(&mut rec, &tensors, &self.scratch, &step).await?;
        rec.submit_scoped().await?;
        let words =
            crate::kernels::adam::adam_scratch_words(self.model.arena.layout().buffer_lens());
        let norm2: Vec<f32> = self.model.gpu.read(&self.scratch, words).await?;
        self.step += 1;
        Ok(super::lm::LmStep {
            step: self.step,
            loss,
            lr,
            grad_norm: norm2[words - 1].sqrt(),
        })
    }
}
