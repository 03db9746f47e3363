//! Files other tools read and write: safetensors with named tensors and dtypes
//! ([`safetensors`]), SAELens's folder layout ([`saelens`]) and TransformerLens's checkpoints
//! ([`transformer_lens`]), and the zip archives the page saves them as ([`archive`]).

pub mod archive;
pub mod saelens;
pub mod safetensors;
pub mod transformer_lens;
