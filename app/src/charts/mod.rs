//! What every lab's charts share: the canvas drawing tools ([`canvas`]), the export formats and
//! the empty-chart text. Each lab's own charts live in its folder (`labs/<lab>/charts`).

pub mod canvas;
pub mod lines;

/// A CSV data export: button label, extension, MIME type.
pub const CSV: (&str, &str, &str) = ("CSV", "csv", "text/csv");
/// A JSON data export.
pub const JSON: (&str, &str, &str) = ("JSON", "json", "application/json");

/// The text drawn when a chart has no data yet.
pub const EMPTY: &str = "Press Run to train; this chart fills in as it learns.";
