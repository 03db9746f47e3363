//! Files other tools read and write: safetensors with named tensors and dtypes
//! ([`safetensors`]), and SAELens's folder layout ([`saelens`]).

pub mod saelens;
pub mod safetensors;
