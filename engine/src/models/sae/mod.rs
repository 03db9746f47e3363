//! Sparse autoencoders: five architectures sharing one training loop, on the CPU reference and
//! the GPU. Their activation sources live in [`crate::data`], their metrics in
//! [`crate::metrics::sae`], SAELens import and export in [`crate::io::saelens`]; the lab's
//! spelling in links and its experiment (a config and its sweep) in [`link`], over the shared
//! codec and sweeps of [`crate::experiment`].

pub mod arch;
pub mod config;
pub mod fields;
pub mod gpu;
pub mod kernels;
pub mod link;
pub mod params;
pub mod splice;
pub mod train;
pub mod trainer;
pub use trainer::SaeLab;

#[cfg(test)]
mod recovery_tests;
