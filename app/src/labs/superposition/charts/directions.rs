//! With two hidden dimensions, each feature's column of W is an arrow in the plane: the paper's
//! pictures of antipodal pairs and pentagons. Darker arrows are more important features.

use super::{label, per_instance_json, ChartInput};
use crate::charts::canvas::{
    css, fmt, grid, legend_height, pick, subset_note, viridis, Plot, FAINT, INK, SMALL,
};
use crate::charts::EMPTY;
use crate::labs::superposition::Snapshot;
use serde_json::{json, Value};

const MAX_CELLS: usize = 32;
const GAP: f64 = 16.0;
const LABEL_H: f64 = 16.0;

/// Importance (relative to the instance's largest) to colour: dark purple for the most important,
/// stopping short of viridis's pale yellow, which vanishes on white.
fn importance_color(rel: f32) -> [u8; 3] {
    viridis((1.0 - rel) * 0.85)
}

/// Redraws the directions chart.
pub fn draw(canvas: &web_sys::HtmlCanvasElement, input: &ChartInput) {
    let Some(snap) = input.snap.filter(|s| s.cfg.n_hidden == 2) else {
        if let Some(p) = Plot::begin(canvas, 120.0) {
            p.message(EMPTY);
        }
        return;
    };
    let f = snap.cfg.n_features as usize;
    let shown = pick(snap.weights.len(), MAX_CELLS);
    let width = super::canvas::css_width(canvas);
    let (cols, cell) = grid(shown.len(), width - 8.0, 110.0, 190.0, GAP);
    let row_h = LABEL_H + cell + GAP;
    let rows = shown.len().div_ceil(cols);
    let legend_h = legend_height(shown.len(), snap.weights.len());
    let Some(p) = Plot::begin(canvas, legend_h + rows as f64 * row_h) else {
        return;
    };
    // Left to right from least to most important, in the arrows' own colours.
    p.colorbar(
        importance_color,
        0.0,
        1.0,
        60.0,
        8.0,
        100.0,
        ("least", "most"),
    );
    p.text(
        "important · circle: norm 1",
        200.0,
        13.0,
        "left",
        INK,
        SMALL,
    );
    subset_note(&p, shown.len(), snap.weights.len());
    for (k, &i) in shown.iter().enumerate() {
        let (c, r) = (k % cols, k / cols);
        let x0 = 4.0 + c as f64 * (cell + GAP);
        let y0 = legend_h + r as f64 * row_h;
        let spec = &snap.specs[i];
        p.text(&label(spec), x0, y0 + LABEL_H / 2.0, "left", INK, SMALL);
        let w = &snap.weights[i].w;
        let norms = &snap.metrics[i].norms;
        let reach = norms.iter().copied().fold(1.0f32, f32::max) as f64;
        let (cx, cy) = (x0 + cell / 2.0, y0 + LABEL_H + cell / 2.0);
        let radius = cell / 2.0 - 6.0;
        let unit = radius / reach;
        p.frame(x0, y0 + LABEL_H, cell, cell, "#e4e4e4");
        p.line(&[(x0 + 4.0, cy), (x0 + cell - 4.0, cy)], FAINT, 1.0, None);
        p.line(
            &[(cx, y0 + LABEL_H + 4.0), (cx, y0 + LABEL_H + cell - 4.0)],
            FAINT,
            1.0,
            None,
        );
        p.ctx.set_stroke_style_str("#c8c8c8");
        p.ctx.begin_path();
        let _ = p.ctx.arc(cx, cy, unit, 0.0, std::f64::consts::TAU);
        p.ctx.stroke();
        let top_imp = spec
            .importance
            .iter()
            .copied()
            .fold(f32::MIN_POSITIVE, f32::max);
        // Least important first, so the important arrows sit on top.
        let mut order: Vec<usize> = (0..f).collect();
        order.sort_by(|&a, &b| spec.importance[a].total_cmp(&spec.importance[b]));
        for j in order {
            let (px, py) = (cx + w[0][j] as f64 * unit, cy - w[1][j] as f64 * unit);
            let color = css(importance_color(spec.importance[j] / top_imp));
            p.line(&[(cx, cy), (px, py)], &color, 2.0, None);
            p.dot(px, py, 3.0, &color);
            p.hit(
                px,
                py,
                format!(
                    "{}: feature {j} at ({}, {}), importance {}",
                    label(spec),
                    fmt(w[0][j] as f64),
                    fmt(w[1][j] as f64),
                    fmt(spec.importance[j] as f64)
                ),
            );
        }
    }
}

/// Each feature's 2-D direction and importance, per instance.
pub fn json(snap: &Snapshot) -> Value {
    per_instance_json(snap, "directions", &[], |spec, _, w, o| {
        let feats: Vec<Value> = (0..spec.importance.len())
            .map(|j| {
                json!({
                    "x": w.w.first().map_or(0.0, |r| r[j]),
                    "y": w.w.get(1).map_or(0.0, |r| r[j]),
                    "importance": spec.importance[j],
                })
            })
            .collect();
        o.insert("features".into(), Value::Array(feats));
    })
}
