//! Models, one folder each with its config, CPU reference, GPU trainers and the kernels only it
//! uses: the toy model of superposition ([`toy`]) and sparse autoencoders ([`sae`]).

pub mod sae;
pub mod toy;
pub mod transformer;
