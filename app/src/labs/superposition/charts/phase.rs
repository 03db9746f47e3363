//! The phase diagram of the extra feature: a grid over relative importance (x) and feature
//! density (y), each cell coloured by `classify_phase` of its instance's weights once the
//! instance has converged ([`converged`]), so random initial weights never pass for a result
//! and the diagram fills in as training goes.

use super::{per_instance_json, ChartInput};
use crate::charts::canvas::{pick, Plot, FONT, INK, SMALL};
use crate::labs::superposition::{LossHistory, Snapshot};
use mechlab_engine::metrics::superposition::{classify_phase, Phase};
use mechlab_engine::models::toy::config::SuperpositionConfig;
use serde_json::{json, Value};

const UNTRAINED: &str = "#eeeeee";

/// The colour of a phase in the grid and legend.
pub fn phase_color(phase: Phase) -> &'static str {
    match phase {
        Phase::NotRepresented => "#4575b4",
        Phase::Dedicated => "#fdae61",
        Phase::Superposition => "#d73027",
    }
}

/// Rank of each value in ascending order, so rows and columns run low to high whatever order the
/// sweep lists them in.
fn ranks(values: &[f32]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    idx.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut rank = vec![0; values.len()];
    for (r, &i) in idx.iter().enumerate() {
        rank[i] = r;
    }
    rank
}

fn axes_of(cfg: &SuperpositionConfig) -> (Vec<f32>, Vec<f32>) {
    let ps = cfg.feature_probability.values();
    let rs = cfg
        .relative_importance
        .as_ref()
        .map(|a| a.values())
        .unwrap_or_default();
    (ps, rs)
}

/// Steps over which an instance's loss must have stopped falling to count as converged.
const WINDOW: u32 = 1000;
/// The most the loss may still fall over [`WINDOW`] steps, relative to where it was.
const PLATEAU: f32 = 0.01;

/// Whether instance `i` has converged: it has trained at least 2 × [`WINDOW`] steps and its
/// loss (the latest chunk's mean) is less than [`PLATEAU`] below what it was [`WINDOW`] steps
/// before. Why that is enough to trust its phase: the phase is read from W, and W changes
/// phase only by storing or dropping the extra feature, which changes the loss by that
/// feature's importance-weighted share. While the loss still falls the phase may yet change;
/// once it has been flat for a thousand Adam steps, it has settled (and an increase, which is
/// batch noise, counts as flat).
pub fn converged(history: &LossHistory, i: usize) -> bool {
    let (Some(&now), Some(recent)) = (history.steps.last(), history.points.last()) else {
        return false;
    };
    if now < 2 * WINDOW {
        return false;
    }
    let before = history
        .steps
        .iter()
        .rposition(|&s| s <= now - WINDOW)
        .and_then(|k| history.points[k].get(i).copied());
    match (before, recent.get(i).copied()) {
        (Some(before), Some(recent)) if before.is_finite() && recent.is_finite() => {
            before - recent < PLATEAU * before
        }
        _ => false,
    }
}

/// Redraws the phase diagram; a cell stays grey until its instance has converged.
pub fn draw(canvas: &web_sys::HtmlCanvasElement, input: &ChartInput) {
    let cfg = input.snap.map_or(input.cfg, |s| &s.cfg);
    let (ps, rs) = axes_of(cfg);
    let (np, nr) = (ps.len(), rs.len());
    let width = super::canvas::css_width(canvas);
    let (left, top) = (74.0, 34.0);
    let plot_w = (width - left - 16.0).max(40.0);
    let cw = plot_w / nr.max(1) as f64;
    let ch = cw.clamp(6.0, 22.0);
    let Some(p) = Plot::begin(canvas, top + ch * np.max(1) as f64 + 64.0) else {
        return;
    };
    if np == 0 || nr == 0 {
        p.message("The phase diagram needs a relative-importance sweep.");
        return;
    }
    let (pr, rr) = (ranks(&ps), ranks(&rs));
    let bottom = top + ch * np as f64;
    let cell_rect = |pi: usize, ri: usize| {
        let x = left + rr[ri] as f64 * cw;
        let y = bottom - (pr[pi] + 1) as f64 * ch;
        (x, y)
    };
    let mut settled = 0;
    for pi in 0..np {
        for ri in 0..nr {
            let i = pi * nr + ri;
            let color = input
                .snap
                .and_then(|s| s.metrics.get(i))
                .filter(|_| converged(input.history, i))
                .map_or(UNTRAINED, |m| {
                    settled += 1;
                    phase_color(classify_phase(m))
                });
            let (x, y) = cell_rect(pi, ri);
            // A hairline gap keeps neighbouring cells apart when they are large.
            let g = if cw > 8.0 { 1.0 } else { 0.0 };
            p.rect(x, y, cw - g, ch - g, color);
            let phase = match input.snap.and_then(|s| s.metrics.get(i)) {
                Some(m) if color != UNTRAINED => classify_phase(m).label(),
                _ => "not converged yet",
            };
            p.hit(
                x + cw / 2.0,
                y + ch / 2.0,
                format!(
                    "p = {}, relative importance {}: {phase}",
                    super::canvas::fmt(ps[pi] as f64),
                    super::canvas::fmt(rs[ri] as f64)
                ),
            );
        }
    }
    let mut by_rank_r: Vec<usize> = (0..nr).collect();
    by_rank_r.sort_by_key(|&i| rr[i]);
    for k in pick(nr, 6) {
        let i = by_rank_r[k];
        let x = left + (k as f64 + 0.5) * cw;
        p.text(
            &super::canvas::fmt(rs[i] as f64),
            x,
            bottom + 12.0,
            "center",
            INK,
            SMALL,
        );
    }
    let mut by_rank_p: Vec<usize> = (0..np).collect();
    by_rank_p.sort_by_key(|&i| pr[i]);
    for k in pick(np, 6) {
        let i = by_rank_p[k];
        let y = bottom - (k as f64 + 0.5) * ch;
        p.text(
            &super::canvas::fmt(ps[i] as f64),
            left - 6.0,
            y,
            "right",
            INK,
            SMALL,
        );
    }
    p.text(
        "relative importance of the last feature",
        left + plot_w / 2.0,
        bottom + 32.0,
        "center",
        INK,
        FONT,
    );
    p.vtext("feature density", 14.0, (top + bottom) / 2.0);
    let mut lx = left;
    for (color, name) in [
        (
            phase_color(Phase::NotRepresented),
            Phase::NotRepresented.label(),
        ),
        (phase_color(Phase::Dedicated), Phase::Dedicated.label()),
        (
            phase_color(Phase::Superposition),
            Phase::Superposition.label(),
        ),
        (UNTRAINED, "not converged yet"),
    ] {
        p.rect(lx, 8.0, 12.0, 12.0, color);
        p.frame(lx, 8.0, 12.0, 12.0, "#bbb");
        p.text(name, lx + 17.0, 14.0, "left", INK, SMALL);
        lx += 30.0 + name.len() as f64 * 6.0;
    }
    let count = format!("{settled} of {} instances have converged", np * nr);
    p.text(&count, left + plot_w, bottom + 52.0, "right", INK, SMALL);
    p.describe(&format!(
        "Phase of the last feature over relative importance and feature density: {count} \
         (their loss fell less than 1% over the last {WINDOW} steps); the rest are grey."
    ));
}

/// Phase and norms per instance.
pub fn json(snap: &Snapshot) -> Value {
    per_instance_json(snap, "phase", &[], |_, m, _, o| {
        o.insert("phase".into(), json!(classify_phase(m)));
        o.insert("norms".into(), json!(m.norms));
    })
}
