//! The Superposition page's live charts: one module per chart, drawn on a canvas after every
//! training chunk, each with its data export. [`Chart`] is the list the page iterates.

pub mod dimensionality;
pub mod directions;
pub mod loss;
pub mod norms;
pub mod phase;
pub mod wtw;

use super::{LossHistory, Snapshot};
use crate::charts::canvas;
use crate::charts::{CSV, JSON};
use crate::components::chart_panel::ChartSpec;
use mechlab_engine::metrics::superposition::SuperpositionMetrics;
use mechlab_engine::models::toy::config::{InstanceSpec, SuperpositionConfig};
use mechlab_engine::models::toy::InstanceWeights;
use web_sys::HtmlCanvasElement;

/// Every chart on the Superposition page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chart {
    /// Loss curves per instance.
    Loss,
    /// WᵀW heatmaps and biases.
    Wtw,
    /// Feature norms coloured by superposition.
    Norms,
    /// Feature directions in 2-D hidden spaces.
    Directions,
    /// Feature dimensionality against sparsity.
    Dimensionality,
    /// The relative-importance × density phase diagram.
    Phase,
}

/// What a chart may draw from: the config it shows, the latest weights, the loss curves.
pub struct ChartInput<'a> {
    /// The config of the run shown (or of the controls before a run).
    pub cfg: &'a SuperpositionConfig,
    /// The latest weights and measures, if a run has produced any.
    pub snap: Option<&'a Snapshot>,
    /// Loss curves so far.
    pub history: &'a LossHistory,
}

impl Chart {
    /// In page order.
    pub const ALL: [Chart; 6] = [
        Chart::Loss,
        Chart::Phase,
        Chart::Wtw,
        Chart::Norms,
        Chart::Directions,
        Chart::Dimensionality,
    ];

    /// Short name, used in file names.
    pub fn slug(self) -> &'static str {
        match self {
            Chart::Loss => "loss",
            Chart::Wtw => "wtw",
            Chart::Norms => "norms",
            Chart::Directions => "directions",
            Chart::Dimensionality => "dimensionality",
            Chart::Phase => "phase",
        }
    }

    /// The canvas's DOM id.
    pub fn id(self) -> &'static str {
        match self {
            Chart::Loss => "loss-chart",
            Chart::Wtw => "wtw-chart",
            Chart::Norms => "norms-chart",
            Chart::Directions => "directions-chart",
            Chart::Dimensionality => "dimensionality-chart",
            Chart::Phase => "phase-chart",
        }
    }

    /// Heading.
    pub fn title(self) -> &'static str {
        match self {
            Chart::Loss => "Loss",
            Chart::Wtw => "WᵀW and bias",
            Chart::Norms => "Feature norms",
            Chart::Directions => "Feature directions",
            Chart::Dimensionality => "Feature dimensionality",
            Chart::Phase => "Phase diagram",
        }
    }

    /// One line on how to read it.
    pub fn caption(self) -> &'static str {
        match self {
            Chart::Loss => "Importance-weighted reconstruction loss per instance (log scale).",
            Chart::Wtw => {
                "How features interfere: WᵀW per instance (red +, blue −), bias b in the strip below."
            }
            Chart::Norms => {
                "‖Wᵢ‖ per feature; colour is Σⱼ≠ᵢ (Ŵᵢ·Wⱼ)²: black = own dimension, yellow = shared."
            }
            Chart::Directions => "Each feature's column of W in the 2-D hidden space; darker = more important.",
            Chart::Dimensionality => {
                "Dᵢ = ‖Wᵢ‖² / Σⱼ (Ŵᵢ·Wⱼ)² per feature against sparsity; the line is hidden dimensions per embedded feature."
            }
            Chart::Phase => "How the last feature is stored, per relative importance and feature density.",
        }
    }

    /// Whether the chart means anything for this config (charts that don't are hidden).
    pub fn applies(self, cfg: &SuperpositionConfig) -> bool {
        match self {
            Chart::Directions => cfg.n_hidden == 2,
            Chart::Dimensionality => cfg.relative_importance.is_none(),
            Chart::Phase => cfg.relative_importance.is_some(),
            Chart::Loss | Chart::Wtw | Chart::Norms => true,
        }
    }

    /// Button label, file extension and MIME type of the data export.
    pub fn data_format(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Chart::Loss => CSV,
            _ => JSON,
        }
    }

    /// The chart's panel names.
    pub fn spec(self) -> ChartSpec {
        ChartSpec {
            slug: self.slug(),
            id: self.id(),
            title: self.title(),
            caption: self.caption(),
            data: self.data_format(),
        }
    }

    /// Redraws the chart.
    pub fn draw(self, canvas: &HtmlCanvasElement, input: &ChartInput) {
        match self {
            Chart::Loss => loss::draw(canvas, input),
            Chart::Wtw => wtw::draw(canvas, input),
            Chart::Norms => norms::draw(canvas, input),
            Chart::Directions => directions::draw(canvas, input),
            Chart::Dimensionality => dimensionality::draw(canvas, input),
            Chart::Phase => phase::draw(canvas, input),
        }
    }

    /// The chart's data, as its export file holds it; `None` before there is any.
    pub fn export(self, input: &ChartInput) -> Option<String> {
        let value = match self {
            Chart::Loss => return loss::csv(input),
            Chart::Wtw => wtw::json(input.snap?),
            Chart::Norms => norms::json(input.snap?),
            Chart::Directions => directions::json(input.snap?),
            Chart::Dimensionality => dimensionality::json(input.snap?),
            Chart::Phase => phase::json(input.snap?),
        };
        crate::download::json_text(&value)
    }
}

/// How legends name an instance: its feature probability, and relative importance when swept.
pub fn label(spec: &InstanceSpec) -> String {
    let p = canvas::fmt(spec.feature_probability as f64);
    match spec.relative_importance {
        Some(r) => format!("p={p} r={}", canvas::fmt(r as f64)),
        None => format!("p={p}"),
    }
}

/// The fields every per-instance JSON record starts with.
pub fn instance_fields(spec: &InstanceSpec) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    m.insert(
        "feature_probability".into(),
        spec.feature_probability.into(),
    );
    if let Some(r) = spec.relative_importance {
        m.insert("relative_importance".into(), r.into());
    }
    m
}

/// The export shape every per-instance chart shares: `{chart, step, ...extra, instances: [..]}`,
/// each instance its sweep coordinates plus what `fields` adds from its metrics and weights.
pub fn per_instance_json(
    snap: &Snapshot,
    chart: &str,
    extra: &[(&str, serde_json::Value)],
    mut fields: impl FnMut(
        &InstanceSpec,
        &SuperpositionMetrics,
        &InstanceWeights,
        &mut serde_json::Map<String, serde_json::Value>,
    ),
) -> serde_json::Value {
    let items: Vec<serde_json::Value> = snap
        .specs
        .iter()
        .zip(&snap.metrics)
        .zip(&snap.weights)
        .map(|((spec, m), w)| {
            let mut o = instance_fields(spec);
            fields(spec, m, w, &mut o);
            serde_json::Value::Object(o)
        })
        .collect();
    let mut out = serde_json::Map::new();
    out.insert("chart".into(), chart.into());
    out.insert("step".into(), snap.step.into());
    for (k, v) in extra {
        out.insert((*k).into(), v.clone());
    }
    out.insert("instances".into(), serde_json::Value::Array(items));
    serde_json::Value::Object(out)
}
