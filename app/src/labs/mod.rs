//! The labs, one folder each with its page, form, controls, charts and view; what they share
//! lives in `components/`, `charts/` and `url.rs`.

pub mod lm;
pub mod sae;
pub mod superposition;
