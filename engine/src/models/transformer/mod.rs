//! The Transformer lab's model: a decoder-only, pre-LayerNorm transformer with learned
//! positional embeddings and a GeLU or SoLU MLP, its parameters named and shaped exactly as
//! TransformerLens names them ([`params`]), and a CPU reference forward pass that captures
//! every TransformerLens hook point ([`cpu`]), checked against fixtures TransformerLens made
//! (`tests/fixtures/transformer_lens`, made by `tools/fixtures/transformer_lens.py`).

pub mod config;
pub mod cpu;
pub mod fields;
pub mod gpu;
pub mod grad;
pub mod hooks;
pub mod inspect;
pub mod link;
pub mod lm;
pub mod params;
pub mod trainer;
pub mod unembed;

#[cfg(test)]
mod fixture_tests;

pub use config::{Activation, TransformerConfig};
pub use cpu::{forward, forward_with, Hooks};
pub use hooks::{Edit, HookEdit};
pub use params::TransformerParams;
pub use trainer::LmLab;
