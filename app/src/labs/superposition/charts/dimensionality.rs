//! Feature dimensionality Dᵢ against sparsity (1 / feature probability, log x), with the
//! hidden-dimensions-per-feature line and guides at the fractions the paper finds features stick
//! to (1, 3/4, 2/3, 1/2, 2/5, 1/3).

use super::{per_instance_json, ChartInput};
use crate::charts::canvas::{axes, fmt, Plot, Scale, INK, SMALL};
use crate::charts::EMPTY;
use crate::labs::superposition::Snapshot;
use serde_json::{json, Value};

const HEIGHT: f64 = 320.0;
const GUIDES: [(f64, &str); 6] = [
    (1.0, "1"),
    (0.75, "3/4"),
    (2.0 / 3.0, "2/3"),
    (0.5, "1/2"),
    (0.4, "2/5"),
    (1.0 / 3.0, "1/3"),
];
const Y_MAX: f64 = 1.1;

/// Redraws the dimensionality chart.
pub fn draw(canvas: &web_sys::HtmlCanvasElement, input: &ChartInput) {
    let Some(p) = Plot::begin(canvas, HEIGHT) else {
        return;
    };
    let Some(snap) = input.snap else {
        p.message(EMPTY);
        return;
    };
    let xs: Vec<f64> = snap
        .specs
        .iter()
        .map(|s| 1.0 / s.feature_probability as f64)
        .collect();
    let (mut lo, mut hi) = xs
        .iter()
        .fold((f64::INFINITY, 0.0f64), |(a, b), &v| (a.min(v), b.max(v)));
    if hi / lo < 2.0 {
        (lo, hi) = (lo / 1.5, hi * 1.5);
    }
    // The legend's two entries side by side need about 470 px; on a narrow screen the second
    // goes under the first rather than off the canvas.
    let stacked = p.w < 480.0;
    let (left, right, top, bottom) = (
        64.0,
        p.w - 44.0,
        if stacked { 44.0 } else { 30.0 },
        p.h - 44.0,
    );
    let x = Scale {
        lo: lo / 1.15,
        hi: hi * 1.15,
        p0: left,
        p1: right,
        log: true,
    };
    let y = Scale {
        lo: 0.0,
        hi: Y_MAX,
        p0: bottom,
        p1: top,
        log: false,
    };
    axes(&p, &x, &y, "1 / feature probability", "dimensionality");
    for (v, name) in GUIDES {
        let py = y.at(v);
        p.line(&[(left, py), (right, py)], "#999", 1.0, Some(&[4.0, 4.0]));
        p.text(name, right + 6.0, py, "left", INK, SMALL);
    }
    for (m, &xv) in snap.metrics.iter().zip(&xs) {
        let px = x.at(xv);
        for (j, &d) in m.dimensionality.iter().enumerate() {
            let py = y.at((d as f64).min(Y_MAX));
            p.dot(px, py, 2.5, "rgba(31,119,180,0.35)");
            p.hit(
                px,
                py,
                format!(
                    "1/p = {}: feature {j} dimensionality {}",
                    fmt(xv),
                    fmt(d as f64)
                ),
            );
        }
    }
    let mut line: Vec<(f64, f64)> = snap
        .metrics
        .iter()
        .zip(&xs)
        .map(|(m, &xv)| {
            (
                x.at(xv),
                y.at((m.dims_per_feature as f64).clamp(0.0, Y_MAX)),
            )
        })
        .collect();
    line.sort_by(|a, b| a.0.total_cmp(&b.0));
    p.line(&line, "#222", 1.8, None);
    for &(px, py) in &line {
        p.dot(px, py, 3.0, "#222");
    }
    for (m, &xv) in snap.metrics.iter().zip(&xs) {
        p.hit(
            x.at(xv),
            y.at((m.dims_per_feature as f64).clamp(0.0, Y_MAX)),
            format!(
                "1/p = {}: {} hidden dims per embedded feature",
                fmt(xv),
                fmt(m.dims_per_feature as f64)
            ),
        );
    }
    p.dot(left + 10.0, 12.0, 3.0, "rgba(31,119,180,0.8)");
    p.text(
        "feature dimensionality Dᵢ",
        left + 18.0,
        12.0,
        "left",
        INK,
        SMALL,
    );
    let (lx, ly) = if stacked {
        (left, 28.0)
    } else {
        (left + 180.0, 12.0)
    };
    p.line(&[(lx, ly), (lx + 20.0, ly)], "#222", 1.8, None);
    p.text(
        "hidden dims per embedded feature",
        lx + 26.0,
        ly,
        "left",
        INK,
        SMALL,
    );
}

/// Dimensionalities and dims-per-feature per instance.
pub fn json(snap: &Snapshot) -> Value {
    per_instance_json(snap, "dimensionality", &[], |_, m, _, o| {
        o.insert("dimensionality".into(), json!(m.dimensionality));
        // Infinity (nothing embedded) is not JSON; null says the same.
        let dpf = m.dims_per_feature;
        let dpf = if dpf.is_finite() {
            json!(dpf)
        } else {
            Value::Null
        };
        o.insert("dims_per_feature".into(), dpf);
    })
}
