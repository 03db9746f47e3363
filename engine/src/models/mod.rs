//! Models: each with its CPU reference and GPU trainers.

pub mod toy;
