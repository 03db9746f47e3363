//! The forward pass on the GPU: the parameters in one arena under their TransformerLens names,
//! every layer's activations in device buffers, one recording and one submit for the whole
//! pass. Captured hooks are read back by name afterwards, with the CPU reference's names and
//! shapes; nothing else is read back but the logits.

use super::config::Activation;
use super::cpu::{check_tokens, Hooks};
use super::params::TransformerParams;
use crate::error::Result;
use crate::gpu::{Arena, ArenaLayout, Gpu, Recorder, View};
use crate::kernels::activation::{activation, Act};
use crate::kernels::add::add;
use crate::kernels::attention::{attention, Attention, AttnShape};
use crate::kernels::embedding::{embedding, Embedding};
use crate::kernels::heads::{heads, Heads};
use crate::kernels::layernorm::{layernorm, LayerNorm};
use crate::kernels::matmul::{matmul, Matmul};
use std::sync::Arc;

/// A transformer's parameters on the device, ready to run.
pub struct GpuTransformer {
    gpu: Gpu,
    params: TransformerParams,
    arena: Arena,
    recorder: Recorder,
}

/// An activation buffer with its hook name and shape.
struct Buf {
    name: String,
    /// A second hook with the same values (SoLU's `mlp.ln.hook_normalized` is `mlp.hook_post`).
    also: Option<String>,
    shape: Vec<usize>,
    buf: wgpu::Buffer,
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
        })
    }

    /// The logits `[batch, pos, d_vocab]` for `tokens` and the hooks `capture` accepts, as
    /// [`super::cpu::forward`] gives them.
    pub async fn forward(
        &mut self,
        tokens: &[u32],
        batch: usize,
        capture: &dyn Fn(&str) -> bool,
    ) -> Result<(Vec<f32>, Hooks)> {
        let cfg = self.params.cfg.clone();
        let pos = check_tokens(&cfg, tokens, batch)?;
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
        let mut aliases: Vec<(usize, String)> = vec![];
        let mut new = |name: String, shape: Vec<usize>| -> Result<usize> {
            let n: usize = shape.iter().product();
            let buf = gpu.storage_zeroed::<f32>(&name, n.max(1))?;
            acts.push(Buf {
                name,
                also: None,
                shape,
                buf,
            });
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
            let x1 = new(name("ln1.hook_normalized"), resid_shape.clone())?;
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
                let x2 = new(name("ln2.hook_normalized"), resid_shape.clone())?;
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
                        aliases.push((post, name("mlp.ln.hook_normalized")));
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
        let xf = new("ln_final.hook_normalized".into(), resid_shape.clone())?;
        let sf = new("ln_final.stats".into(), vec![2, rows])?;
        plan.push(Step::Ln {
            prefix: "ln_final".into(),
            x: resid,
            y: xf,
            stats: sf,
            width: d,
        });
        let logits = new("logits".into(), vec![batch, pos, v])?;
        plan.push(Step::Linear {
            w: "unembed.W_U".into(),
            b: "unembed.b_U".into(),
            x: xf,
            out: logits,
            k: d,
            n: v,
        });
        for (i, name) in aliases {
            acts[i].also = Some(name);
        }
        // Record the whole pass.
        let arena = &self.arena;
        let mut rec = self.recorder.begin();
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
            }
        }
        rec.submit_scoped().await?;
        let mut hooks = Hooks::default();
        let mut logits_out = vec![];
        for a in &acts {
            let n: usize = a.shape.iter().product();
            if a.name == "logits" {
                logits_out = gpu.read(&a.buf, n).await?;
            } else if let Some(prefix) = a.name.strip_suffix(".stats") {
                let name = format!("{prefix}.hook_scale");
                if capture(&name) {
                    let scale: Vec<f32> = gpu.read(&a.buf, rows).await?;
                    hooks.put(capture, name, vec![batch, pos, 1], &scale);
                }
            } else {
                let names: Vec<&String> = std::iter::once(&a.name).chain(&a.also).collect();
                if names.iter().any(|n| capture(n)) {
                    let values: Vec<f32> = gpu.read(&a.buf, n).await?;
                    for n in names {
                        hooks.put(capture, n.clone(), a.shape.clone(), &values);
                    }
                }
            }
        }
        Ok((logits_out, hooks))
    }
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
}
