//! The Transformer page's charts: every model's training and validation loss on one chart, and
//! the attention pattern of a chosen layer and head for the prompt, one heatmap per model.

use super::view::{LmRun, Replies};
use crate::charts::canvas::{inferno, series, Plot, INK, SMALL};
use crate::charts::lines::{styled_lines, Axis, Line, YAxis};
use crate::charts::{CSV, EMPTY, JSON};
use crate::components::chart_panel::ChartSpec;
use web_sys::HtmlCanvasElement;

/// The loss chart's spec.
pub const LOSS: ChartSpec = ChartSpec {
    slug: "lm-loss",
    id: "lm-loss-chart",
    title: "Loss",
    caption: "Nats per token: training loss (mean per chunk, solid) and loss on the held-out text (dashed), one colour per model.",
    data: CSV,
};

/// The attention chart's spec.
pub const ATTENTION: ChartSpec = ChartSpec {
    slug: "lm-attention",
    id: "lm-attention-chart",
    title: "Attention pattern",
    caption: "blocks.L.attn.hook_pattern for the prompt: row = the token attending (query), column = the token attended to (key); brighter is more attention.",
    data: JSON,
};

const HEIGHT: f64 = 300.0;

/// Draws every model's curves.
pub fn draw_loss(canvas: &HtmlCanvasElement, run: Option<&LmRun>) {
    let Some(p) = Plot::begin(canvas, HEIGHT) else {
        return;
    };
    let Some(run) = run.filter(|r| r.models.iter().any(|m| !m.train.steps.is_empty())) else {
        p.message(EMPTY);
        return;
    };
    let names = run.names();
    let n = names.len().max(4);
    let labels: Vec<(String, String)> = names
        .iter()
        .map(|a| (format!("{a} train"), format!("{a} validation")))
        .collect();
    let mut lines = vec![];
    for (i, m) in run.models.iter().enumerate() {
        let pts = |h: &crate::run_controller::History<f32>| -> Vec<(f64, f64)> {
            h.steps
                .iter()
                .zip(&h.points)
                .map(|(&s, &v)| (s as f64, v as f64))
                .collect()
        };
        let color = series(i, n);
        lines.push(Line {
            name: &labels[i].0,
            pts: pts(&m.train),
            color: color.clone(),
            dashed: false,
            labels: vec![],
        });
        lines.push(Line {
            name: &labels[i].1,
            pts: pts(&m.validation),
            color,
            dashed: true,
            labels: vec![],
        });
    }
    let steps = run.runs.first().map_or(1, |r| r.steps).max(1) as f64;
    styled_lines(
        &p,
        &lines,
        Axis::linear(0.0, steps, "step"),
        YAxis::Log("loss (nats/token)"),
    );
}

/// The loss curves as CSV: one row per model and chunk.
pub fn export_loss(run: Option<&LmRun>) -> Option<String> {
    let run = run?;
    let mut out = String::from("model,step,train_loss,validation_loss\n");
    for (name, m) in run.names().iter().zip(&run.models) {
        for (s, v) in m.train.steps.iter().zip(&m.train.points) {
            let val = m
                .validation
                .steps
                .iter()
                .position(|x| x == s)
                .map_or(String::new(), |i| m.validation.points[i].to_string());
            out += &format!("{name},{s},{v},{val}\n");
        }
    }
    Some(out)
}

/// How a token shows in a heatmap's margin: whitespace made visible, long tokens cut.
pub fn token_label(t: &str) -> String {
    let shown: String = t
        .chars()
        .map(|c| match c {
            '\n' => '⏎',
            ' ' => '·',
            '\t' => '⇥',
            c if c.is_control() => '�',
            c => c,
        })
        .collect();
    if shown.chars().count() > 8 {
        shown.chars().take(7).chain(['…']).collect()
    } else {
        shown
    }
}

/// Draws the chosen layer and head's pattern for each model, side by side.
pub fn draw_attention(
    canvas: &HtmlCanvasElement,
    names: &[&str],
    replies: &Replies,
    layer: usize,
    head: usize,
) {
    let Some(p) = Plot::begin(canvas, HEIGHT + 40.0) else {
        return;
    };
    let views = match &replies.inspection {
        None => {
            p.message("Write a prompt and press Look inside.");
            return;
        }
        Some(Err(e)) => {
            p.message(e);
            return;
        }
        Some(Ok(v)) => v,
    };
    let per = p.w / views.len().max(1) as f64;
    for (i, v) in views.iter().enumerate() {
        let ins = &v.inspection;
        let n = ins.tokens.len();
        let heads = ins.n_heads as usize;
        let Some(pattern) = ins.patterns.get(layer) else {
            continue;
        };
        let h = head.min(heads.saturating_sub(1));
        let cells = &pattern[h * n * n..(h + 1) * n * n];
        let labels = n <= 48;
        let margin = if labels { 56.0 } else { 8.0 };
        let size = (per - margin - 16.0).min(HEIGHT - margin).max(40.0);
        let (x0, y0) = (i as f64 * per + margin, 24.0 + margin);
        let rgb: Vec<[u8; 3]> = cells.iter().map(|&a| inferno(a.clamp(0.0, 1.0))).collect();
        p.image(&rgb, (n as u32, n as u32), (x0, y0, size, size));
        let name = names.get(i).copied().unwrap_or("model");
        // Hover: each query's attention to each earlier key, with both tokens' text.
        let step = size / n as f64;
        let at: Vec<(usize, usize)> = (0..n).flat_map(|q| (0..=q).map(move |k| (q, k))).collect();
        let points: Vec<(f64, f64)> = at
            .iter()
            .map(|&(q, k)| (x0 + (k as f64 + 0.5) * step, y0 + (q as f64 + 0.5) * step))
            .collect();
        let (tokens, cells, who) = (ins.tokens.clone(), cells.to_vec(), name.to_string());
        p.hits(&points, move |j| {
            let (q, k) = at[j];
            format!(
                "{who}: {:?} → {:?}: {}",
                tokens[q],
                tokens[k],
                crate::charts::canvas::fmt(cells[q * n + k] as f64)
            )
        });
        p.text(
            &format!("{name} · layer {layer} · head {h}"),
            x0 + size / 2.0,
            12.0,
            "center",
            INK,
            SMALL,
        );
        if labels {
            let cell = size / n as f64;
            for (t, tok) in ins.tokens.iter().enumerate() {
                let label = token_label(tok);
                let c = y0 + (t as f64 + 0.5) * cell;
                p.text(&label, x0 - 4.0, c, "right", INK, SMALL);
                // Key labels read upwards from the matrix's top edge.
                p.ctx.save();
                let _ = p.ctx.translate(x0 + (t as f64 + 0.5) * cell, y0 - 4.0);
                let _ = p.ctx.rotate(-std::f64::consts::FRAC_PI_2);
                p.text(&label, 0.0, 0.0, "left", INK, SMALL);
                p.ctx.restore();
            }
        }
    }
}

/// The inspection as JSON (tokens, every layer's patterns, next tokens, sample) per model.
pub fn export_attention(names: &[&str], replies: &Replies) -> Option<String> {
    let views = replies.inspection.as_ref()?.as_ref().ok()?;
    let models: Vec<serde_json::Value> = views
        .iter()
        .enumerate()
        .map(|(i, v)| {
            serde_json::json!({
                "model": names.get(i).copied().unwrap_or("model"),
                "tokens": v.inspection.tokens,
                "n_heads": v.inspection.n_heads,
                "hook_pattern": v.inspection.patterns,
                "next_tokens": v.inspection.next,
                "sample": v.sample,
            })
        })
        .collect();
    crate::download::json_text(&models)
}
