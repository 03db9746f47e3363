//! Files other tools read and write: safetensors with named tensors and dtypes
//! ([`safetensors`]), SAELens's folder layout ([`saelens`]) and TransformerLens's checkpoints
//! ([`transformer_lens`]).

pub mod saelens;
pub mod safetensors;
pub mod transformer_lens;
