//! Feature norms ‖Wᵢ‖ as bars per instance, each bar coloured by how much the feature shares its
//! direction with others (black: a dimension of its own, yellow: superposed), as in the paper.

use super::{label, per_instance_json, ChartInput};
use crate::charts::canvas::{
    grid, inferno, legend_height, pick, subset_note, Plot, Scale, FAINT, INK, SMALL,
};
use crate::charts::EMPTY;
use crate::labs::superposition::Snapshot;
use serde_json::{json, Value};

const MAX_CELLS: usize = 32;
const GAP: f64 = 18.0;
const LABEL_H: f64 = 16.0;

/// Redraws the norms chart.
pub fn draw(canvas: &web_sys::HtmlCanvasElement, input: &ChartInput) {
    let Some(snap) = input.snap else {
        if let Some(p) = Plot::begin(canvas, 120.0) {
            p.message(EMPTY);
        }
        return;
    };
    let f = snap.cfg.n_features as usize;
    let shown = pick(snap.metrics.len(), MAX_CELLS);
    let width = super::canvas::css_width(canvas);
    let (cols, cell_w) = grid(shown.len(), width - 8.0, 120.0, 240.0, GAP);
    // Bars get thinner as features multiply, but the whole column stays a readable height.
    let pitch = (150.0 / f as f64).clamp(1.0, 14.0);
    let cell_h = pitch * f as f64;
    let row_h = LABEL_H + cell_h + 14.0 + GAP;
    let rows = shown.len().div_ceil(cols);
    let legend_h = legend_height(shown.len(), snap.metrics.len());
    let Some(p) = Plot::begin(canvas, legend_h + rows as f64 * row_h) else {
        return;
    };
    p.colorbar(inferno, 0.0, 1.0, 30.0, 8.0, 120.0, ("0", "1+"));
    p.text("superposition · bar: ‖Wᵢ‖", 190.0, 13.0, "left", INK, SMALL);
    subset_note(&p, shown.len(), snap.metrics.len());
    let top_norm = snap
        .metrics
        .iter()
        .flat_map(|m| m.norms.iter().copied())
        .fold(1.0f32, f32::max) as f64;
    for (k, &i) in shown.iter().enumerate() {
        let (c, r) = (k % cols, k / cols);
        let x0 = 4.0 + c as f64 * (cell_w + GAP);
        let y0 = legend_h + r as f64 * row_h;
        p.text(
            &label(&snap.specs[i]),
            x0,
            y0 + LABEL_H / 2.0,
            "left",
            INK,
            SMALL,
        );
        let m = &snap.metrics[i];
        let xs = Scale {
            lo: 0.0,
            hi: top_norm,
            p0: x0,
            p1: x0 + cell_w,
            log: false,
        };
        let by = y0 + LABEL_H;
        p.rect(x0, by, cell_w, cell_h, "#f6f6f6");
        let bar = (pitch * 0.8).max(1.0);
        let name = label(&snap.specs[i]);
        for j in 0..f {
            let len = xs.at(m.norms[j] as f64) - x0;
            let color = super::canvas::css(inferno(m.superposition[j].min(1.0)));
            p.rect(x0, by + j as f64 * pitch, len, bar, &color);
            p.hit(
                x0 + len,
                by + j as f64 * pitch + bar / 2.0,
                format!(
                    "{name}: feature {j} ‖W_{j}‖ = {}, superposition {}",
                    super::canvas::fmt(m.norms[j] as f64),
                    super::canvas::fmt(m.superposition[j] as f64)
                ),
            );
        }
        let one = xs.at(1.0);
        p.line(
            &[(one, by), (one, by + cell_h)],
            FAINT,
            1.0,
            Some(&[3.0, 3.0]),
        );
        p.text("0", x0, by + cell_h + 8.0, "left", "#888", SMALL);
        p.text("1", one, by + cell_h + 8.0, "center", "#888", SMALL);
    }
}

/// Norms and superposition per feature, per instance.
pub fn json(snap: &Snapshot) -> Value {
    per_instance_json(snap, "norms", &[], |_, m, _, o| {
        o.insert("norms".into(), json!(m.norms));
        o.insert("superposition".into(), json!(m.superposition));
    })
}
