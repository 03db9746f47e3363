//! mechlab's peer written with burn 0.22 (wgpu backend, autodiff, Adam), as a framework user
//! would write it: the benchmarks' reference point and an independent gradient oracle. Kept out
//! of the workspace so no default build pays burn's compile time.
//!
//! Usage:
//!   mechlab-burn-peer N_FEATURES N_HIDDEN BATCH IMPORTANCE_DECAY P1,P2,... [R1,R2,...]
//!       train the toy model of superposition and print instance-steps/s (`superposition.rs`)
//!   mechlab-burn-peer sae-topk D_IN D_SAE K BATCH
//!       train a TopK SAE and print tokens/s (`sae_topk.rs`)
//!   mechlab-burn-peer grad CASES.json
//!       print burn autodiff's loss terms and gradients for each case (`grad.rs`)

mod grad;
mod sae_topk;
mod superposition;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("grad") => grad::run(&args[1..]),
        Some("sae-topk") => sae_topk::run(&args[1..]),
        _ => superposition::run(&args),
    };
    if let Err(e) = result {
        eprintln!("mechlab-burn-peer: {e}");
        std::process::exit(2);
    }
}

/// A float tensor of `shape` from a flat row-major vector.
pub(crate) fn tensor<const D: usize>(
    values: Vec<f32>,
    shape: [usize; D],
    device: &burn::prelude::Device,
) -> burn::prelude::Tensor<D> {
    burn::prelude::Tensor::from_data(burn::tensor::TensorData::new(values, shape), device)
}

/// A tensor's values, flat and row-major (reading them back waits for the device).
pub(crate) fn values<const D: usize>(t: burn::prelude::Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().expect("an f32 tensor")
}
