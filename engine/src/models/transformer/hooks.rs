//! Hook points by TransformerLens name: which a model has and their shapes ([`hook_shapes`]),
//! the values a pass captured ([`Hooks`]), and the edits that replace a hook's value before the
//! pass goes on from it ([`HookEdit`]), as TransformerLens's `run_with_hooks` does: zero
//! ablation, one neuron zeroed, steering, activation patching, or any computation of the value
//! ([`HookMap`]: an SAE's encode→decode spliced in). The CPU reference applies them with
//! [`hook_edit_ref`] (or the map's own reference), the GPU pass with the same kernel's WGSL (or
//! what the map records), and the fixed edits are tested against fixtures made with
//! `run_with_hooks`.

use super::config::{Activation, TransformerConfig};
use crate::data::LocalFuture;
use crate::error::{EngineError, Result};
use crate::gpu::{Recording, Tensor};
use crate::kernels::hook_edit::{hook_edit_ref, EditRef, EditShape};
use std::rc::Rc;

/// Captured activations by hook name, in the order the forward pass reaches them.
#[derive(Debug, Clone, Default)]
pub struct Hooks {
    entries: Vec<(String, Vec<usize>, Vec<f32>)>,
}

impl Hooks {
    /// The activation at `name` with its shape, when it was captured.
    pub fn get(&self, name: &str) -> Option<(&[usize], &[f32])> {
        self.entries
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, s, v)| (s.as_slice(), v.as_slice()))
    }

    /// Every captured hook's name, in forward order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(n, _, _)| n.as_str())
    }

    pub(crate) fn put(
        &mut self,
        want: &dyn Fn(&str) -> bool,
        name: String,
        shape: Vec<usize>,
        v: &[f32],
    ) {
        if want(&name) {
            self.entries.push((name, shape, v.to_vec()));
        }
    }
}

/// Whether a hook name matches a pattern where `*` stands for one dotted part
/// (`blocks.*.mlp.hook_mid`), or is the name itself.
pub fn hook_matches(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<&str>, Vec<&str>) = (pattern.split('.').collect(), name.split('.').collect());
    p.len() == n.len() && p.iter().zip(&n).all(|(a, b)| *a == "*" || a == b)
}

/// Every hook point of a model of `cfg` on `batch` rows of `pos` tokens, with its shape, in
/// forward order (TransformerLens's names and shapes).
pub fn hook_shapes(cfg: &TransformerConfig, batch: usize, pos: usize) -> Vec<(String, Vec<usize>)> {
    let (d, h, dh, m) = (
        cfg.d_model as usize,
        cfg.n_heads as usize,
        cfg.d_head as usize,
        cfg.d_mlp as usize,
    );
    let resid = vec![batch, pos, d];
    let scale = vec![batch, pos, 1];
    let qkv = vec![batch, pos, h, dh];
    let scores = vec![batch, h, pos, pos];
    let mut out: Vec<(String, Vec<usize>)> = vec![
        ("hook_embed".into(), resid.clone()),
        ("hook_pos_embed".into(), resid.clone()),
    ];
    let ln = |out: &mut Vec<(String, Vec<usize>)>, prefix: &str, width: Vec<usize>| {
        out.push((format!("{prefix}.hook_scale"), scale.clone()));
        out.push((format!("{prefix}.hook_normalized"), width));
    };
    for l in 0..cfg.n_layers as usize {
        let name = |n: &str| format!("blocks.{l}.{n}");
        out.push((name("hook_resid_pre"), resid.clone()));
        ln(&mut out, &name("ln1"), resid.clone());
        for (n, s) in [
            ("attn.hook_q", &qkv),
            ("attn.hook_k", &qkv),
            ("attn.hook_v", &qkv),
            ("attn.hook_attn_scores", &scores),
            ("attn.hook_pattern", &scores),
            ("attn.hook_z", &qkv),
            ("hook_attn_out", &resid),
        ] {
            out.push((name(n), s.clone()));
        }
        if !cfg.attn_only {
            out.push((name("hook_resid_mid"), resid.clone()));
            ln(&mut out, &name("ln2"), resid.clone());
            let mlp = vec![batch, pos, m];
            out.push((name("mlp.hook_pre"), mlp.clone()));
            if cfg.act_fn == Activation::SoluLn {
                out.push((name("mlp.hook_mid"), mlp.clone()));
                ln(&mut out, &name("mlp.ln"), mlp.clone());
            }
            out.push((name("mlp.hook_post"), mlp));
            out.push((name("hook_mlp_out"), resid.clone()));
        }
        out.push((name("hook_resid_post"), resid.clone()));
    }
    ln(&mut out, "ln_final", resid.clone());
    out.push(("unembed.hook_in".into(), resid));
    out.push((
        "unembed.hook_out".into(),
        vec![batch, pos, cfg.d_vocab as usize],
    ));
    out
}

/// A computation that replaces a hook's value position by position (each position's `width`
/// values; a head's hook flattened over its heads): recorded into the GPU pass, with the same
/// arithmetic on the CPU reference. An SAE spliced in at a hook is one
/// ([`crate::models::sae::splice::SaeSplice`]).
pub trait HookMap: std::fmt::Debug {
    /// The values of one position it reads and writes; the hook's must be as many.
    fn width(&self) -> usize;

    /// The CPU reference: `x` (rows of [`HookMap::width`]) replaced in place.
    fn apply(&self, x: &mut [f32]);

    /// Records, into the pass's recording, `out` = the replacement of `x` (both `[rows,
    /// width]`, different buffers); the pass then goes on from `out`'s values. Returns the
    /// scratch buffers it made, which the pass keeps until its recording is submitted.
    fn record<'a, 'r: 'a>(
        &'a self,
        rec: &'a mut Recording<'r>,
        x: Tensor<'a>,
        out: Tensor<'a>,
    ) -> LocalFuture<'a, Result<Vec<wgpu::Buffer>>>;
}

/// What a replaced hook's value becomes.
#[derive(Debug, Clone)]
pub enum Edit {
    /// Zero ablation: every value 0.
    Zero,
    /// One index of the hook's last axis zeroed at every position: a neuron of
    /// `mlp.hook_post`, a residual direction, a `d_head` index of every head of `attn.hook_q`.
    ZeroIndex(usize),
    /// `value + scale · vector` at every position (steering); `vector` has the width of one
    /// position of the hook (`d_model` for the residual stream).
    Steer {
        /// One position's direction.
        vector: Vec<f32>,
        /// Its multiple.
        scale: f32,
    },
    /// Activation patching: at `positions` (every position when `None`), every batch row takes
    /// `source`'s values, the same hook's value from another run (the same shape).
    Patch {
        /// The other run's value of the hook.
        source: Vec<f32>,
        /// The positions patched.
        positions: Option<Vec<usize>>,
    },
    /// The value computed from itself by a [`HookMap`] (an SAE's reconstruction).
    Map(Rc<dyn HookMap>),
}

impl PartialEq for Edit {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Edit::Zero, Edit::Zero) => true,
            (Edit::ZeroIndex(a), Edit::ZeroIndex(b)) => a == b,
            (
                Edit::Steer { vector, scale },
                Edit::Steer {
                    vector: v2,
                    scale: s2,
                },
            ) => vector == v2 && scale == s2,
            (
                Edit::Patch { source, positions },
                Edit::Patch {
                    source: s2,
                    positions: p2,
                },
            ) => source == s2 && positions == p2,
            // A map is itself: two maps are equal when they are one.
            (Edit::Map(a), Edit::Map(b)) => Rc::ptr_eq(a, b),
            _ => false,
        }
    }
}

/// An edit at a hook: the hook's value is replaced, and the pass goes on from the new value.
/// Several edits apply in order; a captured hook holds its value after its edits.
#[derive(Debug, Clone, PartialEq)]
pub struct HookEdit {
    /// The hook's TransformerLens name.
    pub hook: String,
    /// What its value becomes.
    pub edit: Edit,
}

impl HookEdit {
    /// An edit of `hook`.
    pub fn new(hook: impl Into<String>, edit: Edit) -> Self {
        Self {
            hook: hook.into(),
            edit,
        }
    }
}

/// An edit checked against the model: its hook's layout and the patch's position flags.
#[derive(Debug, Clone)]
pub(crate) struct CheckedEdit<'a> {
    pub edit: &'a HookEdit,
    pub shape: EditShape,
    pub mask: Vec<bool>,
}

impl CheckedEdit<'_> {
    /// The edit as the CPU reference applies it to `x`, the hook's value.
    pub fn apply(&self, x: &mut [f32]) {
        let op = match &self.edit.edit {
            Edit::Zero => EditRef::Zero,
            Edit::ZeroIndex(i) => EditRef::ZeroIndex(*i),
            Edit::Steer { vector, scale } => EditRef::Steer {
                vector,
                scale: *scale,
            },
            Edit::Patch { source, .. } => EditRef::Patch {
                source,
                mask: &self.mask,
            },
            Edit::Map(m) => return m.apply(x),
        };
        hook_edit_ref(x, self.shape, &op);
    }
}

/// Why a hook cannot be replaced yet, for those whose value is made inside one kernel with what
/// follows it (a LayerNorm's scale and normalised value, attention's scores and pattern).
fn not_replaceable(hook: &str) -> Option<&'static str> {
    let last = hook.rsplit('.').next().unwrap_or(hook);
    match last {
        "hook_scale" | "hook_normalized" => Some(
            "a LayerNorm's scale and normalised value can be captured but not replaced; \
             replace its input (hook_resid_pre, hook_resid_mid, …) or what it feeds",
        ),
        "hook_out" if hook == "unembed.hook_out" => {
            Some("the logits can be captured but not replaced; replace unembed.hook_in")
        }
        "hook_attn_scores" | "hook_pattern" => Some(
            "attention's scores and pattern can be captured but not replaced; replace \
             hook_q, hook_k, hook_v or hook_z",
        ),
        _ => None,
    }
}

/// The three hook names nearest to `name` (by edit distance), for a message.
pub fn nearest_hooks(cfg: &TransformerConfig, name: &str) -> Vec<String> {
    let mut all: Vec<(usize, String)> = hook_shapes(cfg, 1, 1)
        .into_iter()
        .map(|(n, _)| (edit_distance(&n, name), n))
        .collect();
    all.sort();
    all.into_iter().take(3).map(|(_, n)| n).collect()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// Checks `edits` against a model of `cfg` on `batch` rows of `pos` tokens: each hook exists
/// and can be replaced, an index is inside the last axis, a vector has the hook's width, a
/// patch's source the hook's size and its positions are below `pos`. Errors name the hook.
pub(crate) fn check_edits<'a>(
    cfg: &TransformerConfig,
    edits: &'a [HookEdit],
    batch: usize,
    pos: usize,
) -> Result<Vec<CheckedEdit<'a>>> {
    let shapes = hook_shapes(cfg, batch, pos);
    edits
        .iter()
        .map(|e| {
            let bad = |reason: String| EngineError::BadHook {
                hook: e.hook.clone(),
                reason,
            };
            let Some((_, shape)) = shapes.iter().find(|(n, _)| *n == e.hook) else {
                return Err(bad(format!(
                    "this model has no such hook; the nearest are {}",
                    nearest_hooks(cfg, &e.hook).join(", ")
                )));
            };
            if let Some(why) = not_replaceable(&e.hook) {
                return Err(bad(why.into()));
            }
            let width: usize = shape[2..].iter().product();
            let last = *shape.last().expect("hooks have three or four axes");
            let s = EditShape {
                rows: batch * pos,
                pos,
                width,
                last,
            };
            let mut mask = vec![false; pos];
            match &e.edit {
                Edit::Zero => {}
                Edit::ZeroIndex(i) => {
                    if *i >= last {
                        return Err(bad(format!(
                            "index {i} is outside its last axis of {last} values"
                        )));
                    }
                }
                Edit::Steer { vector, scale } => {
                    if vector.len() != width {
                        return Err(bad(format!(
                            "a steering vector of {} values, but a position of the hook has {width}",
                            vector.len()
                        )));
                    }
                    if !scale.is_finite() || vector.iter().any(|v| !v.is_finite()) {
                        return Err(bad("the steering vector or its scale is not finite".into()));
                    }
                }
                Edit::Map(m) => {
                    if m.width() != width {
                        return Err(bad(format!(
                            "the map reads {} values a position, but a position of the hook \
                             has {width}",
                            m.width()
                        )));
                    }
                }
                Edit::Patch { source, positions } => {
                    if source.len() != s.len() {
                        return Err(bad(format!(
                            "a patch source of {} values, but the hook holds {} ({shape:?})",
                            source.len(),
                            s.len()
                        )));
                    }
                    match positions {
                        None => mask.fill(true),
                        Some(ps) => {
                            for &p in ps {
                                if p >= pos {
                                    return Err(bad(format!(
                                        "patch position {p} is past the {pos} positions of a row"
                                    )));
                                }
                                mask[p] = true;
                            }
                        }
                    }
                }
            }
            Ok(CheckedEdit {
                edit: e,
                shape: s,
                mask,
            })
        })
        .collect()
}

/// Refuses a `stop_at_layer` past the model's blocks.
pub(crate) fn check_stop(cfg: &TransformerConfig, stop_at_layer: usize) -> Result<()> {
    let n = cfg.n_layers as usize;
    if stop_at_layer > n {
        return Err(EngineError::invalid(
            "stop_at_layer",
            stop_at_layer,
            format!("the model has {n} blocks"),
        ));
    }
    Ok(())
}

/// A CPU pass's hooks: captures what `capture` accepts, after applying the edits at each hook.
pub(crate) struct Tap<'a> {
    capture: &'a dyn Fn(&str) -> bool,
    edits: Vec<CheckedEdit<'a>>,
    /// What was captured.
    pub hooks: Hooks,
}

impl<'a> Tap<'a> {
    pub fn new(capture: &'a dyn Fn(&str) -> bool, edits: Vec<CheckedEdit<'a>>) -> Self {
        Self {
            capture,
            edits,
            hooks: Hooks::default(),
        }
    }

    /// The pass reached hook `name` with value `v`: edits it in place, then captures it.
    pub fn at(&mut self, name: String, shape: Vec<usize>, v: &mut [f32]) {
        self.edit(&name, v);
        self.hooks.put(self.capture, name, shape, v);
    }

    /// Edits `v` as the edits at `name` say; whether any did.
    pub fn edit(&self, name: &str, v: &mut [f32]) -> bool {
        let mut any = false;
        for e in self.edits.iter().filter(|e| e.edit.hook == name) {
            e.apply(v);
            any = true;
        }
        any
    }

    /// Captures a hook that cannot be edited.
    pub fn see(&mut self, name: String, shape: Vec<usize>, v: &[f32]) {
        self.hooks.put(self.capture, name, shape, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_patterns_match_one_part_per_star() {
        assert!(hook_matches(
            "blocks.*.mlp.hook_mid",
            "blocks.3.mlp.hook_mid"
        ));
        assert!(!hook_matches(
            "blocks.*.mlp.hook_mid",
            "blocks.3.mlp.ln.hook_scale"
        ));
        assert!(hook_matches("hook_embed", "hook_embed"));
    }

    #[test]
    fn edits_that_do_not_fit_are_refused_naming_the_hook() {
        let cfg = TransformerConfig::default();
        let d = cfg.d_model as usize;
        let err = |e: HookEdit| check_edits(&cfg, &[e], 2, 5).unwrap_err().to_string();
        let e = err(HookEdit::new("blocks.0.mlp.hook_psot", Edit::Zero));
        assert!(
            e.contains("blocks.0.mlp.hook_psot") && e.contains("blocks.0.mlp.hook_post"),
            "{e}"
        );
        let e = err(HookEdit::new("blocks.0.attn.hook_pattern", Edit::Zero));
        assert!(e.contains("captured but not replaced"), "{e}");
        let e = err(HookEdit::new("blocks.0.ln1.hook_normalized", Edit::Zero));
        assert!(e.contains("captured but not replaced"), "{e}");
        let e = err(HookEdit::new("hook_embed", Edit::ZeroIndex(d)));
        assert!(e.contains(&format!("index {d}")), "{e}");
        let steer = Edit::Steer {
            vector: vec![1.0; d - 1],
            scale: 1.0,
        };
        let e = err(HookEdit::new("blocks.0.hook_resid_pre", steer));
        assert!(e.contains(&format!("{} values", d - 1)), "{e}");
        let nan = Edit::Steer {
            vector: vec![1.0; d],
            scale: f32::NAN,
        };
        let e = err(HookEdit::new("blocks.0.hook_resid_pre", nan));
        assert!(e.contains("not finite"), "{e}");
        let patch = Edit::Patch {
            source: vec![0.0; 2 * 5 * d],
            positions: Some(vec![5]),
        };
        let e = err(HookEdit::new("blocks.0.hook_resid_pre", patch));
        assert!(e.contains("position 5"), "{e}");
        let short = Edit::Patch {
            source: vec![0.0; 3],
            positions: None,
        };
        let e = err(HookEdit::new("blocks.0.hook_resid_pre", short));
        assert!(e.contains("source of 3 values"), "{e}");
    }

    #[test]
    fn every_hook_has_a_shape_with_batch_first() {
        let cfg = TransformerConfig::default();
        let shapes = hook_shapes(&cfg, 3, 4);
        assert!(shapes.iter().all(|(_, s)| s[0] == 3));
        let names: Vec<&str> = shapes.iter().map(|(n, _)| n.as_str()).collect();
        assert!(names.contains(&"blocks.0.attn.hook_z"), "{names:?}");
        assert!(names.contains(&"ln_final.hook_normalized"), "{names:?}");
    }
}
