//! mechlab's engine: the GPU core, kernels, models and training loops, built for wasm32 (WebGPU)
//! and natively (Vulkan, Metal, DX12). See the README's architecture section.

pub mod data;
pub mod error;
pub mod experiment;
pub mod gpu;
pub mod io;
pub mod kernels;
pub mod metrics;
pub mod models;
pub mod rng;
#[cfg(test)]
pub mod testing;
pub mod train;

pub use error::{EngineError, Result};
