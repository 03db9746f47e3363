//! The SAE page's live charts: the loss by term, L0, the evaluation metrics, the firing-density
//! histogram and the MSE-vs-L0 frontier of a sweep, each with its data export.

use super::view::SaeRun;
use crate::charts::canvas::{axes, fmt, series, Plot, Scale, INK, SMALL};
use crate::charts::lines::{lines, styled_lines, Axis, Line, YAxis};
use crate::charts::{CSV, EMPTY, JSON};
use crate::components::chart_panel::ChartSpec;
use mechlab_engine::models::sae::config::ARCHITECTURE_NAMES;
use web_sys::HtmlCanvasElement;

/// Every chart on the SAE page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaeChart {
    /// Training loss by term.
    Loss,
    /// Active latents per input.
    L0,
    /// NMSE, explained variance, dead and dense fractions, MMCS, recovered.
    Quality,
    /// The log10 firing-density histogram.
    Density,
    /// Normalised MSE against L0 over a sweep.
    Frontier,
}

const HEIGHT: f64 = 280.0;

impl SaeChart {
    /// In page order.
    pub const ALL: [SaeChart; 5] = [
        SaeChart::Frontier,
        SaeChart::Loss,
        SaeChart::Quality,
        SaeChart::L0,
        SaeChart::Density,
    ];

    /// The chart's panel names.
    pub fn spec(self) -> ChartSpec {
        let (slug, id, title, caption, data) = match self {
            SaeChart::Loss => (
                "sae-loss",
                "sae-loss-chart",
                "Loss",
                "Training loss by term, mean per chunk (log scale): reconstruction ‖x − x̂‖², the sparsity penalty, the auxiliary loss (AuxK or Gated's).",
                CSV,
            ),
            SaeChart::L0 => (
                "sae-l0",
                "sae-l0-chart",
                "L0",
                "Mean active latents per input in the training batches.",
                CSV,
            ),
            SaeChart::Quality => (
                "sae-quality",
                "sae-quality-chart",
                "Evaluation",
                "On fresh inputs: normalised MSE, explained variance, dead and dense latents; for planted features, MMCS and the fraction recovered (cosine ≥ 0.9).",
                CSV,
            ),
            SaeChart::Density => (
                "sae-density",
                "sae-density-chart",
                "Firing density",
                "Latents per log10 firing-density bin at the latest evaluation; the grey bar at the left counts latents that never fired.",
                JSON,
            ),
            SaeChart::Frontier => (
                "sae-frontier",
                "sae-frontier-chart",
                "Frontier: MSE against L0",
                "One point per finished run of the sweep; lower and further left is better.",
                JSON,
            ),
        };
        ChartSpec {
            slug,
            id,
            title,
            caption,
            data,
        }
    }

    /// Whether the chart means anything for this job.
    pub fn applies(self, run: Option<&SaeRun>, sweep: bool) -> bool {
        match self {
            SaeChart::Frontier => run.map_or(sweep, SaeRun::is_sweep),
            _ => true,
        }
    }

    /// Redraws the chart.
    pub fn draw(self, canvas: &HtmlCanvasElement, run: Option<&SaeRun>) {
        let Some(p) = Plot::begin(canvas, HEIGHT) else {
            return;
        };
        let Some(run) = run.filter(|r| !r.curve.steps.is_empty() || !r.points.is_empty()) else {
            p.message(EMPTY);
            return;
        };
        let steps = run.current().map_or(1, |c| c.steps) as f64;
        let curve = |f: fn(&super::view::CurvePoint) -> f32| -> Vec<(f64, f64)> {
            run.curve
                .steps
                .iter()
                .zip(&run.curve.points)
                .map(|(&s, c)| (s as f64, f(c) as f64))
                .collect()
        };
        match self {
            SaeChart::Loss => {
                // The total is drawn last and dashed: where the other terms are zero (TopK
                // without AuxK) it lies exactly on the reconstruction and must still show.
                let terms = [
                    ("reconstruction", curve(|c| c.loss.reconstruction)),
                    ("sparsity", curve(|c| c.loss.sparsity)),
                    ("auxiliary", curve(|c| c.loss.auxiliary)),
                    ("total", curve(|c| c.loss.total())),
                ];
                let styled: Vec<Line> = terms
                    .into_iter()
                    .enumerate()
                    .map(|(i, (name, pts))| Line {
                        name,
                        pts,
                        color: series(i, 4),
                        dashed: name == "total",
                        labels: vec![],
                    })
                    .collect();
                styled_lines(
                    &p,
                    &styled,
                    Axis::linear(0.0, steps, "step"),
                    YAxis::Log("loss"),
                )
            }
            SaeChart::L0 => lines(
                &p,
                &[("L0", curve(|c| c.l0))],
                Axis::linear(0.0, steps, "step"),
                YAxis::FromZero("active latents"),
            ),
            SaeChart::Quality => {
                let evals = |f: fn(&super::view::EvalPoint) -> Option<f32>| -> Vec<(f64, f64)> {
                    run.evals
                        .steps
                        .iter()
                        .zip(&run.evals.points)
                        .filter_map(|(&s, e)| f(e).map(|v| (s as f64, v as f64)))
                        .collect()
                };
                if run.evals.steps.is_empty() {
                    p.message("The first evaluation comes after a second or so of training.");
                    return;
                }
                lines(
                    &p,
                    &[
                        ("normalised MSE", evals(|e| Some(e.normalized_mse))),
                        ("explained variance", evals(|e| Some(e.explained_variance))),
                        ("dead", evals(|e| Some(e.fraction_dead))),
                        ("dense", evals(|e| Some(e.fraction_dense))),
                        ("MMCS", evals(|e| e.mmcs)),
                        ("recovered", evals(|e| e.recovered)),
                    ],
                    Axis::linear(0.0, steps, "step"),
                    YAxis::Fixed(0.0, 1.0, "fraction"),
                );
            }
            SaeChart::Density => density(&p, run),
            SaeChart::Frontier => frontier(&p, run),
        }
    }

    /// The chart's data, as its export file holds it; `None` before there is any.
    pub fn export(self, run: Option<&SaeRun>) -> Option<String> {
        let run = run?;
        match self {
            SaeChart::L0 => {
                let mut out = String::from("step,l0\n");
                for (s, c) in run.curve.steps.iter().zip(&run.curve.points) {
                    out += &format!("{s},{}\n", c.l0);
                }
                Some(out)
            }
            SaeChart::Loss => {
                let mut out = String::from("step,total,reconstruction,sparsity,auxiliary\n");
                for (s, c) in run.curve.steps.iter().zip(&run.curve.points) {
                    let l = &c.loss;
                    out += &format!(
                        "{s},{},{},{},{}\n",
                        l.total(),
                        l.reconstruction,
                        l.sparsity,
                        l.auxiliary
                    );
                }
                Some(out)
            }
            SaeChart::Quality => {
                let opt = |v: Option<f32>| v.map_or(String::new(), |v| v.to_string());
                let mut out = String::from(
                    "step,normalized_mse,explained_variance,fraction_dead,fraction_dense,mmcs,recovered\n",
                );
                for (s, e) in run.evals.steps.iter().zip(&run.evals.points) {
                    out += &format!(
                        "{s},{},{},{},{},{},{}\n",
                        e.normalized_mse,
                        e.explained_variance,
                        e.fraction_dead,
                        e.fraction_dense,
                        opt(e.mmcs),
                        opt(e.recovered)
                    );
                }
                Some(out)
            }
            SaeChart::Density => {
                let e = run.latest.as_ref()?;
                crate::download::json_text(&serde_json::json!({
                    "chart": "density",
                    "step": run.run_step,
                    "histogram": e.metrics.density_histogram,
                }))
            }
            SaeChart::Frontier => crate::download::json_text(&serde_json::json!({
                "chart": "frontier",
                "points": run.points,
            })),
        }
    }
}

fn density(p: &Plot, run: &SaeRun) {
    let Some(e) = run.latest.as_ref() else {
        p.message("The first evaluation comes after a second or so of training.");
        return;
    };
    let h = &e.metrics.density_histogram;
    let top_count = h
        .counts
        .iter()
        .copied()
        .chain([h.never_fired])
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let (left, right, top, bottom) = (64.0, p.w - 16.0, 14.0, p.h - 44.0);
    // One bin's width of room on the left for the never-fired bar.
    let lo = h.low as f64 - 1.5 * h.bin as f64;
    let xs = Scale {
        lo,
        hi: 0.0,
        p0: left,
        p1: right,
        log: false,
    };
    let ys = Scale {
        lo: 0.0,
        hi: top_count * 1.1,
        p0: bottom,
        p1: top,
        log: false,
    };
    axes(p, &xs, &ys, "log10 firing density", "latents");
    let bar = |x0: f64, x1: f64, count: u32, color: &str, what: String| {
        let (a, b) = (xs.at(x0), xs.at(x1));
        let y = ys.at(count as f64);
        p.rect(a + 0.5, y, (b - a - 1.0).max(1.0), bottom - y, color);
        p.hit((a + b) / 2.0, y, format!("{what}: {count} latents"));
    };
    for (i, &c) in h.counts.iter().enumerate() {
        let x0 = h.low as f64 + i as f64 * h.bin as f64;
        let what = format!("log10 density {} to {}", fmt(x0), fmt(x0 + h.bin as f64));
        bar(x0, x0 + h.bin as f64, c, "#1f77b4", what);
    }
    bar(
        lo,
        lo + h.bin as f64,
        h.never_fired,
        "#999",
        "never fired".into(),
    );
    p.text(
        &format!("never fired: {}", h.never_fired),
        left + 8.0,
        top + 4.0,
        "left",
        INK,
        SMALL,
    );
}

fn frontier(p: &Plot, run: &SaeRun) {
    if run.points.is_empty() {
        p.message("Points appear as the sweep's runs finish.");
        return;
    }
    // Each point says its run's setting (k for the TopK family, λ otherwise), so the frontier
    // reads without the sweep's table.
    let n = ARCHITECTURE_NAMES.len();
    let data: Vec<Line> = ARCHITECTURE_NAMES
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let mut pts: Vec<(f64, f64, String)> = run
                .points
                .iter()
                .filter(|q| q.architecture == *name && q.l0 > 0.0)
                .map(|q| {
                    (
                        q.l0 as f64,
                        q.normalized_mse as f64,
                        knob_label(name, q.sparsity),
                    )
                })
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            Line {
                name: label(name),
                pts: pts.iter().map(|q| (q.0, q.1)).collect(),
                color: series(i, n.max(4)),
                dashed: false,
                labels: pts.into_iter().map(|q| q.2).collect(),
            }
        })
        .collect();
    let l0s = || data.iter().flat_map(|l| l.pts.iter().map(|q| q.0));
    let lo = l0s().fold(f64::INFINITY, f64::min);
    let hi = l0s().fold(0.0f64, f64::max);
    if !lo.is_finite() {
        p.message("No run has active latents yet.");
        return;
    }
    let (lo, hi) = if hi / lo < 4.0 {
        let mid = (hi * lo).sqrt();
        (mid / 2.0, mid * 2.0)
    } else {
        (lo / 1.3, hi * 1.3)
    };
    styled_lines(
        p,
        &data,
        Axis {
            lo,
            hi,
            log: true,
            title: "L0 (active latents per input)",
        },
        YAxis::Log("normalised MSE"),
    );
}

/// A frontier point's setting as its label: `k 16` for the TopK family, `λ 0.003` otherwise.
pub fn knob_label(architecture: &str, value: f32) -> String {
    let is_k = mechlab_engine::models::sae::config::Architecture::by_name(architecture)
        .is_ok_and(|a| a.k().is_some());
    if is_k {
        format!("k {value}")
    } else {
        format!("λ {}", crate::charts::canvas::fmt(value as f64))
    }
}

/// An architecture's display name.
fn label(name: &str) -> &'static str {
    mechlab_engine::models::sae::config::Architecture::by_name(name).map_or("?", |a| a.label())
}
