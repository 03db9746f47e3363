//! A TopK SAE trained with burn 0.22 as a framework user would write it: dense encoder with
//! ReLU, each row's k-th largest activation from burn's `topk` (or a sort where `topk` is wrong
//! at this size; see `use_topk`) masking the rest, dense decoder, MSE, autodiff backward, Adam,
//! and decoder rows renormalised to unit norm after each step.
//! `cargo xtask bench sae` runs it beside mechlab's TopK training step.
//!
//! Left out (each only makes burn's step cheaper): AuxK and dead-latent tracking, projecting
//! the decoder gradient onto the unit sphere's tangent, and a data source (four batches of
//! Gaussian activations are generated on the device once and replayed).
//!
//! Arguments: D_IN D_SAE K BATCH. Prints one JSON line:
//! {"tokens_per_second": ..., "final_loss": ..., "steps": ..., "selection": "topk" | "sort"}.

use burn::module::Param;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::activation::relu;
use burn::tensor::Distribution;

#[derive(Module, Debug)]
struct TopKSae {
    /// [d_in, d_sae]
    w_enc: Param<Tensor<2>>,
    /// [d_sae]
    b_enc: Param<Tensor<1>>,
    /// [d_sae, d_in]
    w_dec: Param<Tensor<2>>,
    /// [d_in]
    b_dec: Param<Tensor<1>>,
}

/// Rows scaled to unit norm.
fn unit_rows(w: Tensor<2>) -> Tensor<2> {
    let norms = w.clone().powf_scalar(2.0).sum_dim(1).sqrt();
    w / norms
}

pub fn run(args: &[String]) -> Result<(), String> {
    let parse = |s: &String| s.parse::<usize>().map_err(|e| format!("{s}: {e}"));
    let [d, n, k, batch] = args else {
        return Err("arguments: sae-topk D_IN D_SAE K BATCH".into());
    };
    let (d, n, k, batch) = (parse(d)?, parse(n)?, parse(k)?, parse(batch)?);
    let device = Device::wgpu(Default::default()).autodiff();

    // Tied initialisation, as the anchors do it: unit decoder rows, W_enc = W_decᵀ.
    let w_dec = unit_rows(Tensor::random(
        [n, d],
        Distribution::Normal(0.0, 1.0),
        &device,
    ));
    let model = TopKSae {
        w_enc: Param::from_tensor(w_dec.clone().transpose().detach()),
        b_enc: Param::from_tensor(Tensor::zeros([n], &device)),
        w_dec: Param::from_tensor(w_dec.detach()),
        b_dec: Param::from_tensor(Tensor::zeros([d], &device)),
    };
    let data: Vec<Tensor<2>> = (0..4)
        .map(|_| Tensor::random([batch, d], Distribution::Normal(0.0, 1.0), &device))
        .collect();
    // burn 0.22's wgpu `topk` returns −f32::MAX in place of the tail of its answer once k is
    // large for the shape (k 33 of rows of 32768, k 50 of 512 rows of 4096 on lavapipe): use it when it agrees with a sort
    // on this size, and the sort otherwise (reported, as `selection`).
    let use_topk = {
        let probe = Tensor::<2>::random([batch, n], Distribution::Default, &device);
        let top = crate::values(probe.clone().topk(k, 1));
        top == crate::values(probe.sort_descending(1).narrow(1, 0, k))
    };
    let mut optim = AdamConfig::new().init();
    let mut t = 0usize;

    let step = |model: TopKSae| -> (TopKSae, Tensor<1>) {
        let x = data[t % data.len()].clone();
        t += 1;
        let xc = x.clone() - model.b_dec.val().unsqueeze_dim(0);
        let act = relu(xc.matmul(model.w_enc.val()) + model.b_enc.val().unsqueeze_dim(0));
        // Each row's k-th largest activation; everything below it is zeroed.
        let kth = if use_topk {
            act.clone().detach().topk(k, 1).narrow(1, k - 1, 1)
        } else {
            act.clone().detach().sort_descending(1).narrow(1, k - 1, 1)
        };
        let keep = act.clone().detach().greater_equal(kth.expand([batch, n]));
        let f = act * keep.float();
        let x_hat = f.matmul(model.w_dec.val()) + model.b_dec.val().unsqueeze_dim(0);
        let loss = (x_hat - x).powf_scalar(2.0).sum_dim(1).mean();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let mut model = optim.step(1e-4, model, grads);
        model.w_dec = model
            .w_dec
            .map(|w| unit_rows(w.detach()).detach().require_grad());
        (model, loss.detach())
    };

    let t = crate::time_steps(model, 3, 1, step);
    println!(
        "{}",
        serde_json::json!({
            "tokens_per_second": (t.steps * batch) as f64 / t.seconds,
            "final_loss": t.loss,
            "steps": t.steps,
            "selection": if use_topk { "topk" } else { "sort" },
        })
    );
    Ok(())
}
