//! Sparse autoencoders: five architectures sharing one training loop, activation sources with
//! planted ground truth, the field's metrics, and SAELens-compatible import and export.

pub mod arch;
pub mod config;
pub mod frontier;
pub mod gpu;
pub mod kernels;
pub mod link;
pub mod metrics;
pub mod params;
pub mod saelens;
pub mod source;
pub mod train;
pub mod trainer;

#[cfg(test)]
mod recovery_tests;
