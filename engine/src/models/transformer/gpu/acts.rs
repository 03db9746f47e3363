//! A pass's activations on the device, one buffer a hook, as fields of a struct a block at a
//! time (no search by name while recording). Made for one shape (batch rows of positions, the
//! blocks a pass runs) and kept by the model while the next pass has the same shape, so the
//! buffers are reused from step to step and a recorded pass's hooks stay readable as device
//! views. A LayerNorm's output (what the next layer reads) and its statistics are not hooks:
//! its `hook_scale` and `hook_normalized` are made from the statistics and its input.

use super::super::config::{Activation, TransformerConfig};
use crate::error::Result;
use crate::gpu::{Gpu, TensorBuf};

/// A LayerNorm's output and its `[scale; mean]` statistics.
pub(super) struct LnActs {
    pub out: TensorBuf,
    pub stats: TensorBuf,
}

impl LnActs {
    /// The output and the statistics, as the LayerNorm writes them.
    pub fn pair(&self) -> (&TensorBuf, &TensorBuf) {
        (&self.out, &self.stats)
    }
}

/// One block's activations.
pub(super) struct BlockActs {
    pub resid_pre: TensorBuf,
    pub ln1: LnActs,
    pub q: TensorBuf,
    pub k: TensorBuf,
    pub v: TensorBuf,
    pub scores: TensorBuf,
    pub pattern: TensorBuf,
    pub z: TensorBuf,
    pub attn_out: TensorBuf,
    /// `hook_resid_mid`, or an attention-only block's `hook_resid_post`.
    pub resid_mid: TensorBuf,
    pub mlp: Option<MlpActs>,
}

/// One block's MLP activations.
pub(super) struct MlpActs {
    pub ln2: LnActs,
    pub pre: TensorBuf,
    /// SoLU's `hook_mid` and its LayerNorm's statistics (its output is `hook_post`).
    pub mid: Option<(TensorBuf, TensorBuf)>,
    pub post: TensorBuf,
    pub out: TensorBuf,
    pub resid_post: TensorBuf,
}

impl BlockActs {
    /// What the block hands the next: `hook_resid_post`.
    pub fn resid_post(&self) -> &TensorBuf {
        self.mlp.as_ref().map_or(&self.resid_mid, |m| &m.resid_post)
    }
}

/// Where a hook's value is.
pub(super) enum HookBuf<'a> {
    /// In this buffer, as it is.
    Value(&'a TensorBuf),
    /// A LayerNorm's hook, made from its input `x` `[rows, width]` and statistics.
    Ln {
        x: &'a TensorBuf,
        stats: &'a TensorBuf,
        width: usize,
        normalized: bool,
    },
}

/// A pass's activations.
pub(super) struct Activations {
    pub batch: usize,
    pub pos: usize,
    /// The residual stream's width and the MLP's (LayerNorm hooks are made at these widths).
    pub d_model: usize,
    pub d_mlp: usize,
    pub embed: TensorBuf,
    pub pos_embed: TensorBuf,
    pub blocks: Vec<BlockActs>,
    /// The final LayerNorm, its output `unembed.hook_in`; `None` when the pass stops early.
    pub ln_final: Option<LnActs>,
    /// Every position's logits, for a pass that keeps them.
    pub logits: Option<TensorBuf>,
}

impl Activations {
    /// Buffers for `batch` rows of `pos` positions through `layers` blocks (all of them, with
    /// the final LayerNorm, and the logits with `logits`).
    pub fn new(
        gpu: &Gpu,
        cfg: &TransformerConfig,
        (batch, pos): (usize, usize),
        layers: usize,
        logits: bool,
    ) -> Result<Self> {
        let (d, h, dh, m) = (
            cfg.d_model as usize,
            cfg.n_heads as usize,
            cfg.d_head as usize,
            cfg.d_mlp as usize,
        );
        let rows = batch * pos;
        let buf = |what: &'static str, dims: &[usize]| TensorBuf::dirty(gpu, what, dims);
        let ln = |what: &'static str, width: usize| -> Result<LnActs> {
            Ok(LnActs {
                out: buf(what, &[batch, pos, width])?,
                stats: buf(what, &[2, rows])?,
            })
        };
        let (resid, qkv) = (&[batch, pos, d][..], &[batch, pos, h, dh][..]);
        let (scores, mlp) = (&[batch, h, pos, pos][..], &[batch, pos, m][..]);
        let mut blocks = vec![];
        for _ in 0..layers {
            let mlp = if cfg.attn_only {
                None
            } else {
                Some(MlpActs {
                    ln2: ln("ln2", d)?,
                    pre: buf("mlp.hook_pre", mlp)?,
                    mid: match cfg.act_fn {
                        Activation::SoluLn => {
                            Some((buf("mlp.hook_mid", mlp)?, buf("mlp.ln", &[2, rows])?))
                        }
                        Activation::Gelu | Activation::GeluNew => None,
                    },
                    post: buf("mlp.hook_post", mlp)?,
                    out: buf("hook_mlp_out", resid)?,
                    resid_post: buf("hook_resid_post", resid)?,
                })
            };
            blocks.push(BlockActs {
                resid_pre: buf("hook_resid_pre", resid)?,
                ln1: ln("ln1", d)?,
                q: buf("attn.hook_q", qkv)?,
                k: buf("attn.hook_k", qkv)?,
                v: buf("attn.hook_v", qkv)?,
                scores: buf("attn.hook_attn_scores", scores)?,
                pattern: buf("attn.hook_pattern", scores)?,
                z: buf("attn.hook_z", qkv)?,
                attn_out: buf("hook_attn_out", resid)?,
                resid_mid: buf("hook_resid_mid", resid)?,
                mlp,
            });
        }
        let all = layers == cfg.n_layers as usize;
        Ok(Self {
            batch,
            pos,
            d_model: d,
            d_mlp: m,
            embed: buf("hook_embed", resid)?,
            pos_embed: buf("hook_pos_embed", resid)?,
            blocks,
            ln_final: if all { Some(ln("ln_final", d)?) } else { None },
            logits: if all && logits {
                Some(buf("logits", &[batch, pos, cfg.d_vocab as usize])?)
            } else {
                None
            },
        })
    }

    /// Whether these buffers serve a pass of this shape.
    pub fn fits(&self, (batch, pos): (usize, usize), layers: usize, logits: bool) -> bool {
        self.batch == batch
            && self.pos == pos
            && self.blocks.len() == layers
            && self.logits.is_some() == logits
    }

    /// Every buffer, for clearing and for giving back to the pool.
    pub fn buffers(&self) -> Vec<&TensorBuf> {
        let mut all = vec![&self.embed, &self.pos_embed];
        for b in &self.blocks {
            all.extend([&b.resid_pre, &b.ln1.out, &b.ln1.stats, &b.q, &b.k, &b.v]);
            all.extend([&b.scores, &b.pattern, &b.z, &b.attn_out, &b.resid_mid]);
            if let Some(m) = &b.mlp {
                all.extend([
                    &m.ln2.out,
                    &m.ln2.stats,
                    &m.pre,
                    &m.post,
                    &m.out,
                    &m.resid_post,
                ]);
                if let Some((mid, stats)) = &m.mid {
                    all.extend([mid, stats]);
                }
            }
        }
        if let Some(ln) = &self.ln_final {
            all.extend([&ln.out, &ln.stats]);
        }
        all.extend(&self.logits);
        all
    }

    /// Gives every buffer back to the pool (handles to the same buffers: one list of them,
    /// [`Activations::buffers`]).
    pub fn recycle(self, gpu: &Gpu) {
        for b in self.buffers() {
            gpu.recycle(b.buffer.clone());
        }
    }

    /// Where the hook `name` (a TransformerLens name) is, when this pass made it. The logits
    /// (`unembed.hook_out`) are [`Activations::logits`].
    pub fn hook(&self, name: &str) -> Option<HookBuf<'_>> {
        fn ln<'b>(
            x: &'b TensorBuf,
            l: &'b LnActs,
            width: usize,
            normalized: bool,
        ) -> Option<HookBuf<'b>> {
            Some(HookBuf::Ln {
                x,
                stats: &l.stats,
                width,
                normalized,
            })
        }
        let v = |b| Some(HookBuf::Value(b));
        let d = self.d_model;
        match name {
            "hook_embed" => return v(&self.embed),
            "hook_pos_embed" => return v(&self.pos_embed),
            "unembed.hook_in" => return self.ln_final.as_ref().and_then(|l| v(&l.out)),
            "ln_final.hook_scale" | "ln_final.hook_normalized" => {
                let (l, last) = (self.ln_final.as_ref()?, self.blocks.last()?);
                return ln(last.resid_post(), l, d, name.ends_with("normalized"));
            }
            _ => {}
        }
        let rest = name.strip_prefix("blocks.")?;
        let (layer, rest) = rest.split_once('.')?;
        let b = self.blocks.get(layer.parse::<usize>().ok()?)?;
        let normalized = rest.ends_with("hook_normalized");
        match (rest, &b.mlp) {
            ("hook_resid_pre", _) => v(&b.resid_pre),
            ("ln1.hook_scale" | "ln1.hook_normalized", _) => {
                ln(&b.resid_pre, &b.ln1, d, normalized)
            }
            ("attn.hook_q", _) => v(&b.q),
            ("attn.hook_k", _) => v(&b.k),
            ("attn.hook_v", _) => v(&b.v),
            ("attn.hook_attn_scores", _) => v(&b.scores),
            ("attn.hook_pattern", _) => v(&b.pattern),
            ("attn.hook_z", _) => v(&b.z),
            ("hook_attn_out", _) => v(&b.attn_out),
            ("hook_resid_post", None) => v(&b.resid_mid),
            (_, None) => None,
            ("hook_resid_mid", Some(_)) => v(&b.resid_mid),
            ("ln2.hook_scale" | "ln2.hook_normalized", Some(m)) => {
                ln(&b.resid_mid, &m.ln2, d, normalized)
            }
            ("mlp.hook_pre", Some(m)) => v(&m.pre),
            ("mlp.hook_mid", Some(m)) => m.mid.as_ref().and_then(|(mid, _)| v(mid)),
            ("mlp.ln.hook_scale" | "mlp.ln.hook_normalized", Some(m)) => {
                let (mid, stats) = m.mid.as_ref()?;
                Some(HookBuf::Ln {
                    x: mid,
                    stats,
                    width: self.d_mlp,
                    normalized,
                })
            }
            ("mlp.hook_post", Some(m)) => v(&m.post),
            ("hook_mlp_out", Some(m)) => v(&m.out),
            ("hook_resid_post", Some(m)) => v(&m.resid_post),
            _ => None,
        }
    }
}
