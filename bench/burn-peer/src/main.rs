//! mechlab's peer written with burn 0.22 (wgpu backend, autodiff, Adam), as a framework user
//! would write it: the benchmarks' reference point and an independent gradient oracle. Kept out
//! of the workspace so no default build pays burn's compile time.
//!
//! Usage:
//!   mechlab-burn-peer N_FEATURES N_HIDDEN BATCH IMPORTANCE_DECAY P1,P2,... [R1,R2,...]
//!       train the toy model of superposition and print instance-steps/s (`superposition.rs`)
//!   mechlab-burn-peer sae-topk D_IN D_SAE K BATCH
//!       train a TopK SAE and print tokens/s (`sae_topk.rs`)
//!   mechlab-burn-peer lm CONFIG_JSON
//!       train the Transformer lab's language model and print tokens/s (`transformer.rs`)
//!   mechlab-burn-peer grad CASES.json
//!       print burn autodiff's loss terms and gradients for each case (`grad.rs`)

mod grad;
mod sae_topk;
mod superposition;
mod transformer;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("grad") => grad::run(&args[1..]),
        Some("sae-topk") => sae_topk::run(&args[1..]),
        Some("lm") => transformer::bench(&args[1..]),
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

/// One timed measurement of training steps.
pub(crate) struct Timing {
    /// Steps timed.
    pub steps: usize,
    /// Seconds they took.
    pub seconds: f64,
    /// The last step's loss.
    pub loss: f32,
}

/// Runs `warmup` steps (kernel compilation, autotuning), then doubles the step count from
/// `first` until one measurement lasts 1.5 s (or reaches 2^16 steps). Reading a loss back
/// synchronises with the device, so it ends the warm-up and each measurement.
pub(crate) fn time_steps<M>(
    mut model: M,
    warmup: usize,
    first: usize,
    mut step: impl FnMut(M) -> (M, burn::prelude::Tensor<1>),
) -> Timing {
    let mut last = None;
    for _ in 0..warmup {
        let (m, l) = step(model);
        model = m;
        last = Some(l);
    }
    if let Some(l) = last {
        let _ = l.into_scalar::<f32>();
    }
    let mut steps = first.max(1);
    loop {
        let start = std::time::Instant::now();
        let mut last = None;
        for _ in 0..steps {
            let (m, l) = step(model);
            model = m;
            last = Some(l);
        }
        let loss: f32 = last.expect("at least one step").into_scalar::<f32>();
        let seconds = start.elapsed().as_secs_f64();
        if seconds >= 1.5 || steps >= 1 << 16 {
            return Timing {
                steps,
                seconds,
                loss,
            };
        }
        steps *= 2;
    }
}
