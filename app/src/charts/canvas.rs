//! The few canvas-2D drawing tools every chart shares: a sized, cleared surface that counts its
//! redraws, scales, ticks, colour maps and a small-multiples layout.

use wasm_bindgen::{Clamped, JsCast, JsValue};
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement};

/// Default text font for labels.
pub const FONT: &str = "12px system-ui, sans-serif";
/// Smaller font for tick labels and captions inside small multiples.
pub const SMALL: &str = "11px system-ui, sans-serif";
/// Axis and label colour.
pub const INK: &str = "#333";
/// Grid and guide colour.
pub const FAINT: &str = "#d8d8d8";

/// A point of a chart in CSS pixels, with what its hover readout says.
pub type Hit = (f64, f64, String);

/// The text of a series' points by index, written only for the point under the cursor: a
/// chart redrawn every chunk registers thousands of points and reads one.
type Texts = std::rc::Rc<dyn Fn(usize) -> String>;

/// One chart's points: where each is, and its series and index there.
#[derive(Default)]
struct Hits {
    points: Vec<(f64, f64, u32, u32)>,
    texts: Vec<Texts>,
}

thread_local! {
    /// What each chart's hover readout can show, by canvas id, as the chart last drew it.
    static HITS: std::cell::RefCell<std::collections::HashMap<String, Hits>> =
        Default::default();
}

/// The readout for a point over canvas `id` (CSS pixels from its top left): the text of the
/// nearest point the chart registered ([`Plot::hits`]), and where that point is.
pub fn readout_at(id: &str, x: f64, y: f64) -> Option<Hit> {
    HITS.with(|h| {
        let h = h.borrow();
        let hits = h.get(id)?;
        let d = |q: &(f64, f64, u32, u32)| (q.0 - x).powi(2) + (q.1 - y).powi(2);
        let &(px, py, series, i) = hits.points.iter().min_by(|a, b| d(a).total_cmp(&d(b)))?;
        Some((px, py, hits.texts[series as usize](i as usize)))
    })
}

/// A canvas ready to draw on, in CSS pixels.
pub struct Plot {
    /// The canvas, for its text alternative.
    canvas: HtmlCanvasElement,
    /// The 2-D context, scaled so one unit is one CSS pixel.
    pub ctx: CanvasRenderingContext2d,
    /// Width in CSS pixels.
    pub w: f64,
    /// Height in CSS pixels.
    pub h: f64,
}

/// Width a chart is laid out for before it has one of its own (hidden, or not yet laid out).
const FALLBACK_WIDTH: f64 = 560.0;

/// Width the canvas will be drawn at: its laid-out width.
pub fn css_width(canvas: &HtmlCanvasElement) -> f64 {
    let w = canvas.client_width() as f64;
    if w > 0.0 {
        w
    } else {
        FALLBACK_WIDTH
    }
}

impl Plot {
    /// Sizes the canvas to `height` CSS pixels at the device's pixel ratio, clears it, and counts
    /// the redraw in its `data-updates` attribute (tests read it to see charts move).
    pub fn begin(canvas: &HtmlCanvasElement, height: f64) -> Option<Plot> {
        let w = css_width(canvas);
        let dpr = web_sys::window()
            .map_or(1.0, |w| w.device_pixel_ratio())
            .max(1.0);
        let _ = canvas
            .style()
            .set_property("height", &format!("{height}px"));
        canvas.set_width((w * dpr).round() as u32);
        canvas.set_height((height * dpr).round() as u32);
        let ctx: CanvasRenderingContext2d = canvas.get_context("2d").ok()??.dyn_into().ok()?;
        let _ = ctx.set_transform(dpr, 0.0, 0.0, dpr, 0.0, 0.0);
        ctx.set_fill_style_str("#fff");
        ctx.fill_rect(0.0, 0.0, w, height);
        let n: u64 = canvas
            .get_attribute("data-updates")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let _ = canvas.set_attribute("data-updates", &(n + 1).to_string());
        HITS.with(|h| h.borrow_mut().remove(&canvas.id()));
        // A fresh drawing starts from the panel's caption; the chart says more if it can.
        if let Some(caption) = canvas.get_attribute("data-caption") {
            let _ = canvas.set_attribute("aria-label", &caption);
        }
        Some(Plot {
            canvas: canvas.clone(),
            ctx,
            w,
            h: height,
        })
    }

    /// Registers a point of the chart for its hover readout: hovering nearest to `(x, y)` shows
    /// `text`.
    pub fn hit(&self, x: f64, y: f64, text: String) {
        self.hits(&[(x, y)], move |_| text.clone());
    }

    /// Registers a series' points for the hover readout: hovering nearest to `points[i]` shows
    /// `text(i)`, written only then.
    pub fn hits(&self, points: &[(f64, f64)], text: impl Fn(usize) -> String + 'static) {
        HITS.with(|h| {
            let mut h = h.borrow_mut();
            let hits = h.entry(self.canvas.id()).or_default();
            let series = hits.texts.len() as u32;
            hits.texts.push(std::rc::Rc::new(text));
            hits.points.extend(
                points
                    .iter()
                    .enumerate()
                    .map(|(i, &(x, y))| (x, y, series, i as u32)),
            );
        });
    }

    /// Sets the canvas's text alternative (a canvas is a picture to assistive technology: this
    /// is what it reads instead, and the chart panel's caption until a chart says more).
    pub fn describe(&self, text: &str) {
        let _ = self.canvas.set_attribute("aria-label", text);
    }

    /// A centred message, for charts with nothing to show yet; it is the text alternative too.
    pub fn message(&self, text: &str) {
        self.describe(text);
        self.text(text, self.w / 2.0, self.h / 2.0, "center", "#888", FONT);
    }

    /// Text at a point; `align` is the canvas `textAlign`, baseline is the middle.
    pub fn text(&self, s: &str, x: f64, y: f64, align: &str, color: &str, font: &str) {
        self.ctx.set_font(font);
        self.ctx.set_text_align(align);
        self.ctx.set_text_baseline("middle");
        self.ctx.set_fill_style_str(color);
        let _ = self.ctx.fill_text(s, x, y);
    }

    /// Text rotated a quarter turn, for y-axis titles.
    pub fn vtext(&self, s: &str, x: f64, y: f64) {
        self.ctx.save();
        let _ = self.ctx.translate(x, y);
        let _ = self.ctx.rotate(-std::f64::consts::FRAC_PI_2);
        self.text(s, 0.0, 0.0, "center", INK, FONT);
        self.ctx.restore();
    }

    /// A filled rectangle.
    pub fn rect(&self, x: f64, y: f64, w: f64, h: f64, color: &str) {
        self.ctx.set_fill_style_str(color);
        self.ctx.fill_rect(x, y, w, h);
    }

    /// A stroked polyline; `dash` of `None` is solid.
    pub fn line(&self, pts: &[(f64, f64)], color: &str, width: f64, dash: Option<&[f64]>) {
        if pts.len() < 2 {
            return;
        }
        let ctx = &self.ctx;
        ctx.set_stroke_style_str(color);
        ctx.set_line_width(width);
        let pattern = js_sys::Array::new();
        for d in dash.unwrap_or(&[]) {
            pattern.push(&JsValue::from_f64(*d));
        }
        let _ = ctx.set_line_dash(&pattern);
        ctx.begin_path();
        ctx.move_to(pts[0].0, pts[0].1);
        for &(x, y) in &pts[1..] {
            ctx.line_to(x, y);
        }
        ctx.stroke();
        let _ = ctx.set_line_dash(&js_sys::Array::new());
    }

    /// A filled circle.
    pub fn dot(&self, x: f64, y: f64, r: f64, color: &str) {
        self.ctx.set_fill_style_str(color);
        self.ctx.begin_path();
        let _ = self.ctx.arc(x, y, r, 0.0, std::f64::consts::TAU);
        self.ctx.fill();
    }

    /// A stroked rectangle outline.
    pub fn frame(&self, x: f64, y: f64, w: f64, h: f64, color: &str) {
        self.ctx.set_stroke_style_str(color);
        self.ctx.set_line_width(1.0);
        self.ctx.stroke_rect(x + 0.5, y + 0.5, w - 1.0, h - 1.0);
    }

    /// Draws an RGB image of `w × h` cells scaled into a rectangle, without smoothing: heatmaps
    /// of any size cost one draw instead of one rectangle per cell.
    pub fn image(&self, rgb: &[[u8; 3]], (w, h): (u32, u32), (x, y, dw, dh): (f64, f64, f64, f64)) {
        let Some(doc) = web_sys::window().and_then(|w| w.document()) else {
            return;
        };
        let Ok(el) = doc.create_element("canvas") else {
            return;
        };
        let Ok(off) = el.dyn_into::<HtmlCanvasElement>() else {
            return;
        };
        off.set_width(w);
        off.set_height(h);
        let Some(octx) = off
            .get_context("2d")
            .ok()
            .flatten()
            .and_then(|c| c.dyn_into::<CanvasRenderingContext2d>().ok())
        else {
            return;
        };
        let mut rgba = Vec::with_capacity(rgb.len() * 4);
        for p in rgb {
            rgba.extend_from_slice(&[p[0], p[1], p[2], 255]);
        }
        let Ok(img) = web_sys::ImageData::new_with_u8_clamped_array_and_sh(Clamped(&rgba), w, h)
        else {
            return;
        };
        let _ = octx.put_image_data(&img, 0.0, 0.0);
        self.ctx.set_image_smoothing_enabled(false);
        let _ = self
            .ctx
            .draw_image_with_html_canvas_element_and_dw_and_dh(&off, x, y, dw, dh);
        self.ctx.set_image_smoothing_enabled(true);
    }

    /// A horizontal colour bar from `lo` to `hi` with end labels, for legends.
    #[allow(clippy::too_many_arguments)]
    pub fn colorbar(
        &self,
        map: fn(f32) -> [u8; 3],
        lo: f32,
        hi: f32,
        x: f64,
        y: f64,
        w: f64,
        labels: (&str, &str),
    ) {
        let n = 64;
        let cells: Vec<[u8; 3]> = (0..n)
            .map(|i| map(lo + (hi - lo) * i as f32 / (n - 1) as f32))
            .collect();
        self.image(&cells, (n as u32, 1), (x, y, w, 10.0));
        self.frame(x, y, w, 10.0, "#999");
        self.text(labels.0, x - 4.0, y + 5.0, "right", INK, SMALL);
        self.text(labels.1, x + w + 4.0, y + 5.0, "left", INK, SMALL);
    }
}

/// Height of the legend row above small multiples: one line, or two when only a subset of the
/// instances is drawn and a second line has to say so.
pub fn legend_height(shown: usize, total: usize) -> f64 {
    if shown < total {
        44.0
    } else {
        28.0
    }
}

/// Says that a spread-out subset of the instances is drawn, under the legend line.
pub fn subset_note(p: &Plot, shown: usize, total: usize) {
    if shown < total {
        let note = format!("{shown} of {total} instances, spread over the sweep");
        p.text(&note, 4.0, 31.0, "left", "#666", SMALL);
    }
}

/// A map from data to pixels, linear or logarithmic (base 10).
#[derive(Debug, Clone, Copy)]
pub struct Scale {
    /// Data at the start.
    pub lo: f64,
    /// Data at the end.
    pub hi: f64,
    /// Pixel at `lo`.
    pub p0: f64,
    /// Pixel at `hi`.
    pub p1: f64,
    /// Logarithmic.
    pub log: bool,
}

impl Scale {
    /// Pixel for a data value.
    pub fn at(&self, v: f64) -> f64 {
        let (lo, hi, v) = if self.log {
            (self.lo.log10(), self.hi.log10(), v.max(1e-30).log10())
        } else {
            (self.lo, self.hi, v)
        };
        let t = if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
        self.p0 + t * (self.p1 - self.p0)
    }

    /// Tick values: decades (with 2 and 5 when few) for log, round steps for linear.
    pub fn ticks(&self) -> Vec<f64> {
        let (lo, hi) = (self.lo.min(self.hi), self.lo.max(self.hi));
        if self.log {
            let (a, b) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
            let mut t: Vec<f64> = (a..=b).map(|k| 10f64.powi(k)).collect();
            if b - a <= 2 {
                t = (a..=b)
                    .flat_map(|k| [1.0, 2.0, 5.0].map(|m| m * 10f64.powi(k)))
                    .collect();
            }
            t.retain(|v| *v >= lo * 0.999 && *v <= hi * 1.001);
            t
        } else {
            let span = (hi - lo).max(1e-12);
            let raw = span / 5.0;
            let mag = 10f64.powf(raw.log10().floor());
            let step = [1.0, 2.0, 5.0, 10.0]
                .iter()
                .map(|m| m * mag)
                .find(|s| span / s <= 6.0)
                .unwrap_or(10.0 * mag);
            let first = (lo / step).ceil() as i64;
            let last = (hi / step).floor() as i64;
            (first..=last).map(|k| k as f64 * step).collect()
        }
    }
}

/// A compact label for a number: `0.001`, `1e-4`, `2.5k`.
pub fn fmt(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 {
        "0".into()
    } else if a >= 1e4 {
        if a < 1e6 {
            format!("{}k", trim(v / 1e3, 1))
        } else {
            format!("{v:.0e}")
        }
    } else if a >= 1.0 {
        trim(v, 2)
    } else if a >= 1e-3 {
        // Enough digits to tell sweep points apart.
        let digits = (-a.log10()).ceil() as usize + 1;
        trim(v, digits)
    } else {
        format!("{v:.0e}")
    }
}

fn trim(v: f64, digits: usize) -> String {
    let s = format!("{v:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Up to `max` indices spread evenly over `0..n`, always including the first and last.
pub fn pick(n: usize, max: usize) -> Vec<usize> {
    if n <= max {
        return (0..n).collect();
    }
    let mut v: Vec<usize> = (0..max)
        .map(|k| ((k as f64 * (n - 1) as f64 / (max - 1) as f64).round()) as usize)
        .collect();
    v.dedup();
    v
}

/// Small multiples: how many columns fit `n` cells of at least `min_cell` pixels in `width`, and
/// the cell size that fills the row.
pub fn grid(n: usize, width: f64, min_cell: f64, max_cell: f64, gap: f64) -> (usize, f64) {
    let n = n.max(1);
    let cols = (((width + gap) / (min_cell + gap)).floor() as usize).clamp(1, n);
    let cell = ((width + gap) / cols as f64 - gap).min(max_cell);
    (cols, cell)
}

fn lerp_stops(stops: &[[u8; 3]], t: f32) -> [u8; 3] {
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let x = t * (stops.len() - 1) as f32;
    let i = (x.floor() as usize).min(stops.len() - 2);
    let f = x - i as f32;
    let (a, b) = (stops[i], stops[i + 1]);
    [0, 1, 2].map(|k| (a[k] as f32 + f * (b[k] as f32 - a[k] as f32)).round() as u8)
}

/// Diverging map for −1..1: blue for negative, white at 0, red for positive (as in the paper).
pub fn diverging(v: f32) -> [u8; 3] {
    lerp_stops(
        &[
            [33, 102, 172],
            [146, 197, 222],
            [247, 247, 247],
            [244, 165, 130],
            [178, 24, 43],
        ],
        (v + 1.0) / 2.0,
    )
}

/// Black → purple → orange → yellow for 0..1 (an inferno-like map), the paper's superposition
/// colouring.
pub fn inferno(t: f32) -> [u8; 3] {
    lerp_stops(
        &[
            [0, 0, 4],
            [87, 16, 110],
            [188, 55, 84],
            [249, 142, 9],
            [252, 255, 164],
        ],
        t,
    )
}

/// Purple → teal → yellow for 0..1 (a viridis-like map).
pub fn viridis(t: f32) -> [u8; 3] {
    lerp_stops(
        &[
            [68, 1, 84],
            [59, 82, 139],
            [33, 145, 140],
            [94, 201, 98],
            [253, 231, 37],
        ],
        t,
    )
}

/// CSS colour for an RGB triple.
pub fn css([r, g, b]: [u8; 3]) -> String {
    format!("rgb({r},{g},{b})")
}

/// A distinct colour for series `i` of `n`: a categorical palette when few, viridis when many.
pub fn series(i: usize, n: usize) -> String {
    const TAB10: [&str; 10] = [
        "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
        "#bcbd22", "#17becf",
    ];
    if n <= TAB10.len() {
        TAB10[i].to_string()
    } else {
        css(viridis(i as f32 / (n - 1).max(1) as f32 * 0.92))
    }
}

/// Draws x and y axes with ticks and labels around the plot rectangle.
pub fn axes(p: &Plot, x: &Scale, y: &Scale, x_title: &str, y_title: &str) {
    let (top, bottom) = (y.p1.min(y.p0), y.p1.max(y.p0));
    let (left, right) = (x.p0.min(x.p1), x.p0.max(x.p1));
    for t in y.ticks() {
        let py = y.at(t);
        p.line(&[(left, py), (right, py)], FAINT, 1.0, None);
        p.text(&fmt(t), left - 6.0, py, "right", INK, SMALL);
    }
    for t in x.ticks() {
        let px = x.at(t);
        p.line(&[(px, top), (px, bottom)], FAINT, 1.0, None);
        p.text(&fmt(t), px, bottom + 12.0, "center", INK, SMALL);
    }
    p.line(
        &[(left, top), (left, bottom), (right, bottom)],
        INK,
        1.0,
        None,
    );
    p.text(
        x_title,
        (left + right) / 2.0,
        bottom + 30.0,
        "center",
        INK,
        FONT,
    );
    p.vtext(y_title, 14.0, (top + bottom) / 2.0);
}
