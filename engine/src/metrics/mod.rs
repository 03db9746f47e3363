//! Measures computed from trained models, per lab.

mod ce_loss_recovered;
pub mod sae;
pub mod superposition;

pub use ce_loss_recovered::CeLossRecovered;
