//! Loss curves: one line per instance on a log-scale y axis, with a legend naming each by its
//! feature probability (and relative importance when swept).

use super::{label, ChartInput};
use crate::charts::canvas::{axes, fmt, pick, series, Plot, Scale, INK, SMALL};
use crate::charts::EMPTY;

/// Lines drawn at most; past this a spread-out subset stands for the sweep.
const MAX_LINES: usize = 64;
/// Instances named one by one in the legend at most.
const MAX_LEGEND: usize = 12;
const HEIGHT: f64 = 300.0;

/// Redraws the loss chart.
pub fn draw(canvas: &web_sys::HtmlCanvasElement, input: &ChartInput) {
    let Some(p) = Plot::begin(canvas, HEIGHT) else {
        return;
    };
    let hist = input.history;
    let n = hist.points.first().map_or(0, Vec::len);
    if hist.steps.is_empty() || n == 0 {
        p.message(EMPTY);
        return;
    }
    let specs = input.cfg.instances();
    let shown = pick(n, MAX_LINES);
    let (mut lo, mut hi) = (f64::INFINITY, 0.0f64);
    for row in &hist.points {
        for &i in &shown {
            let v = row[i] as f64;
            if v.is_finite() && v > 0.0 {
                lo = lo.min(v);
                hi = hi.max(v);
            }
        }
    }
    if !lo.is_finite() {
        p.message("No positive loss values to plot yet.");
        return;
    }
    if hi / lo < 4.0 {
        let mid = (hi * lo).sqrt();
        (lo, hi) = (mid / 2.0, mid * 2.0);
    }
    let legend_w = if n <= MAX_LEGEND { 130.0 } else { 0.0 };
    // Many instances get a one-line note above the plot instead of a legend beside it.
    let top = if n <= MAX_LEGEND { 14.0 } else { 26.0 };
    let (left, right, bottom) = (64.0, p.w - 16.0 - legend_w, p.h - 44.0);
    let x = Scale {
        lo: 0.0,
        hi: input.cfg.steps as f64,
        p0: left,
        p1: right,
        log: false,
    };
    let y = Scale {
        lo: lo / 1.2,
        hi: hi * 1.2,
        p0: bottom,
        p1: top,
        log: true,
    };
    axes(&p, &x, &y, "step", "loss");
    let name = |i: usize| specs.get(i).map(label).unwrap_or_else(|| format!("#{i}"));
    for (k, &i) in shown.iter().enumerate() {
        let kept: Vec<(u32, f32)> = hist
            .steps
            .iter()
            .zip(&hist.points)
            .filter(|(_, row)| row[i].is_finite() && row[i] > 0.0)
            .map(|(&s, row)| (s, row[i]))
            .collect();
        let pts: Vec<(f64, f64)> = kept
            .iter()
            .map(|&(s, v)| (x.at(s as f64), y.at(v as f64)))
            .collect();
        p.line(&pts, &series(k, shown.len()), 1.6, None);
        let who = name(i);
        p.hits(&pts, move |j| {
            let (s, v) = kept[j];
            format!("{who}: loss {} at step {s}", fmt(v as f64))
        });
    }
    if let (Some(&step), Some(row)) = (hist.steps.last(), hist.points.last()) {
        let latest: Vec<String> = shown
            .iter()
            .take(MAX_LEGEND)
            .map(|&i| format!("{} {}", name(i), fmt(row[i] as f64)))
            .collect();
        p.describe(&format!(
            "Loss against step, one line per instance ({n}). Latest, at step {step}: {}{}.",
            latest.join("; "),
            if shown.len() > MAX_LEGEND {
                "; …"
            } else {
                ""
            }
        ));
    }
    if n <= MAX_LEGEND {
        let lx = right + 14.0;
        for i in 0..n {
            let ly = top + 8.0 + i as f64 * 18.0;
            p.line(&[(lx, ly), (lx + 18.0, ly)], &series(i, n), 3.0, None);
            p.text(&name(i), lx + 24.0, ly, "left", INK, SMALL);
        }
    } else {
        let first = specs.first().map(label).unwrap_or_default();
        let last = specs.last().map(label).unwrap_or_default();
        let note = format!(
            "{} of {n} instances, coloured from {first} (purple) to {last} (yellow)",
            shown.len()
        );
        p.text(&note, right, 10.0, "right", INK, SMALL);
    }
}

/// The loss curves as CSV: a `step` column and one column per instance.
pub fn csv(input: &ChartInput) -> Option<String> {
    let hist = input.history;
    if hist.steps.is_empty() {
        return None;
    }
    let specs = input.cfg.instances();
    let mut out = String::from("step");
    for s in &specs {
        out.push(',');
        out.push_str(&label(s));
    }
    out.push('\n');
    for (step, row) in hist.steps.iter().zip(&hist.points) {
        out.push_str(&step.to_string());
        for v in row {
            out.push(',');
            out.push_str(&v.to_string());
        }
        out.push('\n');
    }
    Some(out)
}
