//! Line charts over training: named series on a linear or log x axis and a y axis ranged to
//! the data, with a legend. Every lab's curves draw through here.

use super::canvas::{axes, fmt, series, Plot, Scale, INK, SMALL};

/// A chart's x axis.
pub struct Axis {
    /// Lowest value.
    pub lo: f64,
    /// Highest value.
    pub hi: f64,
    /// Log scale.
    pub log: bool,
    /// Title.
    pub title: &'static str,
}

impl Axis {
    /// A linear axis.
    pub fn linear(lo: f64, hi: f64, title: &'static str) -> Self {
        Self {
            lo,
            hi,
            log: false,
            title,
        }
    }
}

/// How a chart's y axis is ranged.
pub enum YAxis {
    /// Log scale over the data.
    Log(&'static str),
    /// Linear from 0 to the data's top.
    FromZero(&'static str),
    /// Linear over a fixed range.
    Fixed(f64, f64, &'static str),
}

/// A named series of `(x, y)` points.
pub type Series<'a> = (&'a str, Vec<(f64, f64)>);

/// Lines (with dots when `x` is log, for sparse sweeps) for named series, with a legend; each
/// series takes the next colour.
pub fn lines(p: &Plot, data: &[Series], x: Axis, y: YAxis) {
    let n = data.len().max(4);
    let styled: Vec<Line> = data
        .iter()
        .enumerate()
        .map(|(i, (name, pts))| Line {
            name,
            pts: pts.clone(),
            color: series(i, n),
            dashed: false,
            labels: vec![],
        })
        .collect();
    styled_lines(p, &styled, x, y);
}

/// A series with its own colour and dash.
pub struct Line<'a> {
    /// The legend's name.
    pub name: &'a str,
    /// `(x, y)` points.
    pub pts: Vec<(f64, f64)>,
    /// CSS colour.
    pub color: String,
    /// Drawn dashed (a second measure of the same thing, such as validation loss).
    pub dashed: bool,
    /// A label beside each point (a sweep's setting), in `pts`' order; empty for none.
    pub labels: Vec<String>,
}

/// Lines with their own colours and dashes, with a legend.
pub fn styled_lines(p: &Plot, data: &[Line], x: Axis, y: YAxis) {
    let shown: Vec<&Line> = data
        .iter()
        .filter(|Line { pts, .. }| {
            pts.iter()
                .any(|&(_, v)| v.is_finite() && (!matches!(y, YAxis::Log(_)) || v > 0.0))
        })
        .collect();
    let values = shown
        .iter()
        .flat_map(|l| l.pts.iter().map(|&(_, v)| v))
        .filter(|v| v.is_finite());
    let (lo, hi, log, title) = match y {
        YAxis::Log(t) => {
            let (mut lo, mut hi) = values
                .filter(|&v| v > 0.0)
                .fold((f64::INFINITY, 0.0f64), |(a, b), v| (a.min(v), b.max(v)));
            if !lo.is_finite() {
                p.message("No positive values to plot yet.");
                return;
            }
            if hi / lo < 4.0 {
                let mid = (hi * lo).sqrt();
                (lo, hi) = (mid / 2.0, mid * 2.0);
            }
            (lo / 1.2, hi * 1.2, true, t)
        }
        YAxis::FromZero(t) => {
            let hi = values.fold(0.0f64, f64::max);
            (0.0, if hi > 0.0 { hi * 1.1 } else { 1.0 }, false, t)
        }
        YAxis::Fixed(lo, hi, t) => (lo, hi, false, t),
    };
    let legend_w = 130.0;
    let (left, right, top, bottom) = (64.0, p.w - 16.0 - legend_w, 14.0, p.h - 44.0);
    let xs = Scale {
        lo: x.lo,
        hi: x.hi,
        p0: left,
        p1: right,
        log: x.log,
    };
    let ys = Scale {
        lo,
        hi,
        p0: bottom,
        p1: top,
        log,
    };
    axes(p, &xs, &ys, x.title, title);
    p.describe(&describe(&shown, x.title, title));
    for (k, line) in shown.iter().enumerate() {
        let color = &line.color;
        let dash: Option<&[f64]> = line.dashed.then_some(&[6.0, 4.0]);
        // The points drawn: their index in `pts` and where they are on the canvas.
        let drawn: Vec<(usize, (f64, f64))> = line
            .pts
            .iter()
            .enumerate()
            .filter(|(_, &(_, v))| v.is_finite() && (!log || v > 0.0))
            .map(|(i, &(a, v))| (i, (xs.at(a), ys.at(v.clamp(lo, hi)))))
            .collect();
        let px: Vec<(f64, f64)> = drawn.iter().map(|&(_, q)| q).collect();
        p.line(&px, color, 1.6, dash);
        if x.log || px.len() == 1 || !line.labels.is_empty() {
            for &(a, b) in &px {
                p.dot(a, b, 3.0, color);
            }
        }
        for &(i, (a, b)) in &drawn {
            if let Some(label) = line.labels.get(i) {
                p.text(label, a + 5.0, b - 8.0, "left", color, SMALL);
            }
        }
        let (name, x_title) = (line.name.to_string(), x.title);
        let pts: Vec<(f64, f64)> = drawn.iter().map(|&(i, _)| line.pts[i]).collect();
        let labels: Vec<Option<String>> = drawn
            .iter()
            .map(|&(i, _)| line.labels.get(i).cloned())
            .collect();
        p.hits(&px, move |j| {
            let (xv, v) = pts[j];
            let setting = labels[j]
                .as_ref()
                .map_or(String::new(), |s| format!(" · {s}"));
            format!("{name}: {} at {x_title} {}{setting}", fmt(v), fmt(xv))
        });
        let ly = top + 8.0 + k as f64 * 18.0;
        let lx = right + 14.0;
        p.line(&[(lx, ly), (lx + 18.0, ly)], color, 3.0, dash);
        p.text(line.name, lx + 24.0, ly, "left", INK, SMALL);
    }
}

/// The lines' text alternative: what is plotted against what, and each line's latest value.
fn describe(lines: &[&Line], x_title: &str, y_title: &str) -> String {
    let latest: Vec<String> = lines
        .iter()
        .filter_map(|l| {
            let i = l.pts.iter().rposition(|(_, y)| y.is_finite())?;
            let (x, y) = l.pts[i];
            let dash = if l.dashed { ", dashed" } else { "" };
            let setting = l.labels.get(i).map_or(String::new(), |s| format!(" ({s})"));
            Some(format!(
                "{}{dash} {} at {x_title} {}{setting}",
                l.name,
                fmt(y),
                fmt(x)
            ))
        })
        .collect();
    format!(
        "{y_title} against {x_title}. Latest: {}.",
        if latest.is_empty() {
            "none yet".to_string()
        } else {
            latest.join("; ")
        }
    )
}
