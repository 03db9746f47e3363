//! The toy model of superposition trained with burn 0.22 (wgpu backend, autodiff, Adam), batched
//! over instances as a framework user would write it. `cargo xtask bench superposition` runs it
//! beside mechlab's own kernels on the same adapter and prints the ratio.
//!
//! Arguments: N_FEATURES N_HIDDEN BATCH IMPORTANCE_DECAY P1,P2,... [R1,R2,...]
//! Prints one JSON line: {"instance_steps_per_second": ..., "final_loss": ..., "instances": ...}.

use burn::module::Param;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::activation::relu;
use burn::tensor::Distribution;

#[derive(Module, Debug)]
struct Toy {
    /// [instances, hidden, features]
    w: Param<Tensor<3>>,
    /// [instances, features]
    b: Param<Tensor<2>>,
}

fn parse_list(s: &str) -> Vec<f32> {
    s.split(',')
        .filter(|v| !v.is_empty())
        .map(|v| v.parse().expect("a number"))
        .collect()
}

/// Trains and prints the rate; `args` as in the module documentation.
pub fn run(args: &[String]) -> Result<(), String> {
    let [nf, nh, batch, decay, probs, rest @ ..] = args else {
        return Err(
            "arguments: N_FEATURES N_HIDDEN BATCH IMPORTANCE_DECAY P1,P2,... [R1,R2,...]".into(),
        );
    };
    let (f, h, bsz): (usize, usize, usize) = (
        nf.parse().unwrap(),
        nh.parse().unwrap(),
        batch.parse().unwrap(),
    );
    let decay: f32 = decay.parse().unwrap();
    let probs = parse_list(probs);
    let rel = rest
        .first()
        .map(|r| parse_list(r))
        .unwrap_or_else(|| vec![1.0]);
    // Instances: probability-major, as mechlab's config orders them.
    let mut prob_rows = Vec::new();
    let mut imp_rows = Vec::new();
    for &p in &probs {
        for &r in &rel {
            prob_rows.push(p);
            imp_rows
                .extend((0..f).map(|i| decay.powi(i as i32) * if i == f - 1 { r } else { 1.0 }));
        }
    }
    let n = prob_rows.len();

    let device = Device::wgpu(Default::default()).autodiff();
    let std = (2.0 / (f + h) as f64).sqrt();
    let model = Toy {
        w: Param::from_tensor(Tensor::random(
            [n, h, f],
            Distribution::Normal(0.0, std),
            &device,
        )),
        b: Param::from_tensor(Tensor::zeros([n, f], &device)),
    };
    let prob = Tensor::<1>::from_floats(prob_rows.as_slice(), &device)
        .reshape([n, 1, 1])
        .expand([n, bsz, f]);
    let imp = Tensor::<1>::from_floats(imp_rows.as_slice(), &device).reshape([n, 1, f]);
    let mut optim = AdamConfig::new().init();

    let step = |model: Toy| -> (Toy, Tensor<1>) {
        let keep =
            Tensor::<3>::random([n, bsz, f], Distribution::Default, &device).lower(prob.clone());
        let x = Tensor::<3>::random([n, bsz, f], Distribution::Default, &device) * keep.float();
        let w = model.w.val();
        let hidden = x.clone().matmul(w.clone().swap_dims(1, 2));
        let out = relu(hidden.matmul(w) + model.b.val().unsqueeze_dim(1));
        let err = (x - out).powf_scalar(2.0) * imp.clone();
        let loss = err.sum_dim(2).mean_dim(1).sum();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let model = optim.step(1e-3, model, grads);
        (model, loss.detach())
    };

    let t = crate::time_steps(model, 5, 10, step);
    println!(
        "{}",
        serde_json::json!({
            "instance_steps_per_second": (t.steps * n) as f64 / t.seconds,
            "final_loss": t.loss / n as f32,
            "instances": n,
        })
    );
    Ok(())
}
