//! WᵀW per instance as small-multiple heatmaps (−1 blue … +1 red), with the bias as a strip
//! under each: the paper's picture of which features interfere and how the bias cancels it.

use super::{label, per_instance_json, ChartInput};
use crate::charts::canvas::{
    diverging, fmt, grid, legend_height, pick, subset_note, Plot, INK, SMALL,
};
use crate::charts::EMPTY;
use crate::labs::superposition::Snapshot;
use serde_json::{json, Value};

/// Instances drawn at most; past this a spread-out subset.
const MAX_CELLS: usize = 32;
const GAP: f64 = 16.0;
const LABEL_H: f64 = 16.0;
/// Models up to this many features get a hover readout per cell.
const HOVER_CELLS: usize = 32;

/// Redraws the WᵀW chart.
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
    let (cols, cell) = grid(shown.len(), width - 8.0, 96.0, 200.0, GAP);
    let strip = (cell / f as f64).clamp(6.0, 14.0);
    let row_h = LABEL_H + cell + 3.0 + strip + GAP;
    let rows = shown.len().div_ceil(cols);
    let legend_h = legend_height(shown.len(), snap.metrics.len());
    let Some(p) = Plot::begin(canvas, legend_h + rows as f64 * row_h) else {
        return;
    };
    p.colorbar(diverging, -1.0, 1.0, 30.0, 8.0, 120.0, ("−1", "+1"));
    p.text(
        "WᵀW (square) and b (strip)",
        190.0,
        13.0,
        "left",
        INK,
        SMALL,
    );
    subset_note(&p, shown.len(), snap.metrics.len());
    for (k, &i) in shown.iter().enumerate() {
        let (c, r) = (k % cols, k / cols);
        let x = 4.0 + c as f64 * (cell + GAP);
        let y = legend_h + r as f64 * row_h;
        p.text(
            &label(&snap.specs[i]),
            x,
            y + LABEL_H / 2.0,
            "left",
            INK,
            SMALL,
        );
        let m = &snap.metrics[i];
        let cells: Vec<[u8; 3]> = m.wtw.iter().map(|&v| diverging(v)).collect();
        p.image(&cells, (f as u32, f as u32), (x, y + LABEL_H, cell, cell));
        p.frame(x, y + LABEL_H, cell, cell, "#bbb");
        let bias: Vec<[u8; 3]> = snap.weights[i].b.iter().map(|&v| diverging(v)).collect();
        let sy = y + LABEL_H + cell + 3.0;
        p.image(&bias, (f as u32, 1), (x, sy, cell, strip));
        p.frame(x, sy, cell, strip, "#bbb");
        // Hover: every cell of small models; of large ones the bias alone (a readout per cell
        // of a 200 × 200 grid would say nothing the colours do not).
        let step = cell / f as f64;
        let name = label(&snap.specs[i]);
        if f <= HOVER_CELLS {
            for a in 0..f {
                for b in 0..f {
                    p.hit(
                        x + (b as f64 + 0.5) * step,
                        y + LABEL_H + (a as f64 + 0.5) * step,
                        format!("{name}: WᵀW[{a}, {b}] = {}", fmt(m.wtw[a * f + b] as f64)),
                    );
                }
            }
        }
        for (j, &v) in snap.weights[i].b.iter().enumerate() {
            p.hit(
                x + (j as f64 + 0.5) * step,
                sy + strip / 2.0,
                format!("{name}: b[{j}] = {}", fmt(v as f64)),
            );
        }
    }
}

/// WᵀW (rows) and b per instance.
pub fn json(snap: &Snapshot) -> Value {
    let f = snap.cfg.n_features as usize;
    per_instance_json(snap, "wtw", &[("n_features", json!(f))], |_, m, w, o| {
        let rows: Vec<&[f32]> = m.wtw.chunks(f).collect();
        o.insert("wtw".into(), json!(rows));
        o.insert("b".into(), json!(w.b));
    })
}
