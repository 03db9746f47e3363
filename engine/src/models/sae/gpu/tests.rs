//! The GPU trainer against the CPU reference trainer: same source, same initialisation, same
//! schedule, so after a few steps the parameters agree to float rounding.

use super::GpuSaeTrainer;
use crate::gpu::Gpu;
use crate::gpu_test;
use crate::models::sae::config::{Architecture, Magnitude, SaeConfig, SourceConfig};
use crate::models::sae::params::SaeParams;
use crate::models::sae::train::CpuSaeTrainer;
use crate::testing::assert_close;

fn cfg(d: u32, n_true: u32, d_sae: u32, batch: u32, k: u32, dead_tokens: u32) -> SaeConfig {
    SaeConfig {
        source: SourceConfig::GroundTruth {
            d,
            n_features: n_true,
            probability: 0.1,
            magnitude: Magnitude::Uniform {
                low: 0.5,
                high: 1.5,
            },
            group_size: 1,
            group_coherence: 1.0,
        },
        architecture: Architecture::TopK {
            k,
            k_aux: 0,
            aux_coefficient: 0.25,
            dead_tokens,
        },
        d_sae,
        batch_size: batch,
        shuffle_batches: 0,
        steps: 100,
        learning_rate: 1e-2,
        lr_warmup_steps: 3,
        lr_decay_fraction: 0.2,
        max_grad_norm: 0.5,
        normalize_activations: true,
        b_dec_geometric_median: true,
        seed: 5,
    }
}

/// `cfg` with BatchTopK in place of its TopK, keeping k and the AuxK settings.
fn batch_topk(mut cfg: SaeConfig) -> SaeConfig {
    if let Architecture::TopK {
        k,
        k_aux,
        aux_coefficient,
        dead_tokens,
    } = cfg.architecture
    {
        cfg.architecture = Architecture::BatchTopK {
            k,
            k_aux,
            aux_coefficient,
            dead_tokens,
        };
    }
    cfg
}

/// `cfg` drawing its batches from a shuffle pool of `batches` batches.
fn shuffled(cfg: SaeConfig, batches: u32) -> SaeConfig {
    SaeConfig {
        shuffle_batches: batches,
        ..cfg
    }
}

/// Trains `steps` steps on both trainers from the same perturbed start and compares the losses
/// and parameters; returns the GPU trainer's parameters.
async fn compare(gpu: &Gpu, cfg: SaeConfig, steps: u32) -> SaeParams {
    let mut cpu = CpuSaeTrainer::new(&cfg).unwrap();
    let mut gpu_t = GpuSaeTrainer::new(gpu, &cfg).await.unwrap();
    // Start the per-latent tensors away from their zero initialisation so every term of their
    // gradients (exp(r_mag), b_mag, θ) matters.
    let mut start = cpu.params().clone();
    for (i, v) in start.r_mag.iter_mut().enumerate() {
        *v = 0.4 * (i as f32 * 0.7).sin();
    }
    for (i, v) in start.b_mag.iter_mut().enumerate() {
        *v = 0.2 * (i as f32 * 1.3).cos();
    }
    for (i, v) in start.log_threshold.iter_mut().enumerate() {
        *v += 0.3 * (i as f32 * 0.9).sin();
    }
    // Carried through set_params and params by every trainer; BatchTopK's estimate moves on
    // from it.
    start.batch_threshold = 0.05;
    cpu.set_params(start.clone()).unwrap();
    gpu_t.set_params(&start).await.unwrap();
    let cr = cpu.run_steps(steps).unwrap();
    let gr = gpu_t.run_steps(steps).await.unwrap();
    assert_eq!(gr.len(), steps as usize);
    for (c, g) in cr.iter().zip(&gr) {
        let (a, b) = (g.loss.reconstruction, c.loss.reconstruction);
        assert!(
            (a - b).abs() <= 1e-4 + 1e-3 * b.abs(),
            "step {}: loss {a} vs {b}",
            c.step
        );
        let (a, b) = (g.loss.sparsity, c.loss.sparsity);
        assert!(
            (a - b).abs() <= 1e-4 + 1e-3 * b.abs(),
            "step {}: sparsity {a} vs {b}",
            c.step
        );
        let (a, b) = (g.loss.auxiliary, c.loss.auxiliary);
        assert!(
            (a - b).abs() <= 1e-4 + 1e-3 * b.abs(),
            "step {}: aux {a} vs {b}",
            c.step
        );
    }
    let p = gpu_t.params().await.unwrap();
    let q = cpu.params();
    // Twelve Adam steps amplify float-order differences near zero gradients; 2e-4 + 1e-3 rel.
    assert_close("w_enc", &p.w_enc, &q.w_enc, 2e-4, 1e-3);
    assert_close("b_enc", &p.b_enc, &q.b_enc, 2e-4, 1e-3);
    assert_close("w_dec", &p.w_dec, &q.w_dec, 2e-4, 1e-3);
    assert_close("b_dec", &p.b_dec, &q.b_dec, 2e-4, 1e-3);
    assert_close(
        "log_threshold",
        &p.log_threshold,
        &q.log_threshold,
        2e-4,
        1e-3,
    );
    assert_close(
        "batch_threshold",
        &[p.batch_threshold],
        &[q.batch_threshold],
        2e-4,
        1e-3,
    );
    p
}

async fn topk_matches_the_cpu_reference(gpu: &Gpu) {
    // Awkward shapes; dead_tokens so small that AuxK engages after the first steps.
    let plain = compare(gpu, cfg(7, 20, 37, 13, 3, 20), 12).await;
    compare(gpu, cfg(5, 9, 11, 4, 1, 0), 8).await;
    // Drawn from a pool of three batches, both trainers take the same slots; the pool changes
    // what is trained on.
    let mixed = compare(gpu, shuffled(cfg(7, 20, 37, 13, 3, 20), 3), 12).await;
    assert_ne!(plain.w_enc, mixed.w_enc);
    compare(gpu, shuffled(cfg(5, 9, 11, 4, 1, 0), 2), 8).await;
}
gpu_test!(
    gpu_sae_topk_training_matches_cpu_reference,
    topk_matches_the_cpu_reference
);

async fn batch_topk_matches_the_cpu_reference(gpu: &Gpu) {
    // As for TopK; the k · batch winners spread unevenly over the rows, and the inference
    // threshold follows the CPU trainer's estimate.
    for (c, steps) in [
        (cfg(7, 20, 37, 13, 3, 20), 12),
        (cfg(5, 9, 11, 4, 1, 0), 8),
        (shuffled(cfg(7, 20, 37, 13, 3, 20), 3), 12),
    ] {
        let p = compare(gpu, batch_topk(c), steps).await;
        assert!(p.batch_threshold > 0.0 && p.batch_threshold != 0.05);
    }
}
gpu_test!(
    gpu_sae_batch_topk_training_matches_cpu_reference,
    batch_topk_matches_the_cpu_reference
);

async fn training_chunks_rows_when_pre_activations_exceed_a_binding(gpu: &Gpu) {
    // Allow 7 rows of pre-activations (148 bytes each) per chunk, for a batch of 50: TopK reuses
    // one chunk, BatchTopK selects across all eight, the dense architectures sum their
    // gradients and statistics over them.
    let dense = dense_architectures().map(|arch| SaeConfig {
        architecture: arch,
        ..cfg(7, 20, 37, 50, 3, 20)
    });
    for cfg in [
        cfg(7, 20, 37, 50, 3, 20),
        batch_topk(cfg(7, 20, 37, 50, 3, 20)),
    ]
    .into_iter()
    .chain(dense)
    {
        let what = cfg.architecture.name();
        let source = crate::data::build(&cfg.source, cfg.seed).unwrap();
        let mut g = GpuSaeTrainer::build(gpu, &cfg, source, 7 * 148 + 100)
            .await
            .unwrap();
        assert_eq!(g.rows_per_chunk(), 7);
        let mut cpu = CpuSaeTrainer::new(&cfg).unwrap();
        let cr = cpu.run_steps(6).unwrap();
        let gr = g.run_steps(6).await.unwrap();
        for (c, g) in cr.iter().zip(&gr) {
            let close = |a: f32, b: f32| (a - b).abs() <= 1e-4 + 1e-3 * b.abs();
            let (a, b) = (&g.loss, &c.loss);
            assert!(
                close(a.reconstruction, b.reconstruction)
                    && close(a.sparsity, b.sparsity)
                    && close(a.auxiliary, b.auxiliary),
                "{what} step {}: {a:?} vs {b:?}",
                c.step
            );
        }
        // The GPU reports L0 over the steps read back together; one latent crossing its
        // threshold differently moves it by 1/300.
        let cpu_l0 = cr.iter().map(|r| r.l0).sum::<f32>() / cr.len() as f32;
        let gpu_l0 = gr[0].l0;
        assert!(
            (gpu_l0 - cpu_l0).abs() <= 0.05,
            "{what} L0 {gpu_l0} vs {cpu_l0}"
        );
        let p = g.params().await.unwrap();
        let q = cpu.params();
        assert_close(&format!("{what} w_enc"), &p.w_enc, &q.w_enc, 2e-4, 1e-3);
        assert_close(&format!("{what} w_dec"), &p.w_dec, &q.w_dec, 2e-4, 1e-3);
        // Starts at 0, so the first batch's value is taken as is, then averaged.
        let (a, b) = ([p.batch_threshold], [q.batch_threshold]);
        assert_close(&format!("{what} batch_threshold"), &a, &b, 2e-4, 1e-3);
    }
}
gpu_test!(
    gpu_sae_training_runs_in_row_chunks,
    training_chunks_rows_when_pre_activations_exceed_a_binding
);

/// ReLU + L1, JumpReLU and Gated with warm-ups, as the dense-path tests train them.
fn dense_architectures() -> [Architecture; 3] {
    let relu = Architecture::ReluL1 {
        l1_coefficient: 0.7,
        l1_warmup_steps: 4,
    };
    // A wide kernel puts many pre-activations near θ, so its estimator is exercised.
    let jump = Architecture::JumpRelu {
        l0_coefficient: 0.3,
        bandwidth: 0.5,
        initial_threshold: 0.2,
        l0_warmup_steps: 3,
        threshold_lr_scale: 10.0,
    };
    let gated = Architecture::Gated {
        l1_coefficient: 0.4,
        l1_warmup_steps: 2,
    };
    [relu, jump, gated]
}

async fn dense_architectures_match_the_cpu_reference(gpu: &Gpu) {
    for arch in dense_architectures() {
        let mut c = cfg(7, 20, 37, 13, 3, 20);
        c.architecture = arch;
        compare(gpu, c.clone(), 10).await;
        compare(gpu, shuffled(c.clone(), 3), 10).await;
        c.d_sae = 5;
        c.batch_size = 1;
        compare(gpu, c, 6).await;
    }
}
gpu_test!(
    gpu_sae_dense_training_matches_cpu_reference,
    dense_architectures_match_the_cpu_reference
);

/// One step's gradient, GPU against the CPU reference's backward at the same parameters and
/// batch. Adam is nearly invariant to a per-coordinate scale, so comparing trained parameters
/// alone would miss a gradient wrong by a per-latent factor; this catches it.
async fn gradients_match_the_cpu_reference(gpu: &Gpu) {
    use crate::models::sae::arch::{self, Ctx};
    use crate::models::sae::params::TRAINED_TENSORS;
    use crate::models::sae::train::{
        initial_params, project_decoder_gradient, sparsity_coefficient,
    };
    let archs = [
        Architecture::ReluL1 {
            l1_coefficient: 0.7,
            l1_warmup_steps: 0,
        },
        Architecture::JumpRelu {
            l0_coefficient: 0.3,
            bandwidth: 0.5,
            initial_threshold: 0.2,
            l0_warmup_steps: 0,
            threshold_lr_scale: 10.0,
        },
        Architecture::Gated {
            l1_coefficient: 0.4,
            l1_warmup_steps: 0,
        },
        Architecture::TopK {
            k: 3,
            k_aux: 0,
            aux_coefficient: 0.25,
            dead_tokens: 20,
        },
        Architecture::BatchTopK {
            k: 3,
            k_aux: 0,
            aux_coefficient: 0.25,
            dead_tokens: 20,
        },
    ];
    for arch in archs {
        let mut c = cfg(7, 20, 37, 13, 3, 20);
        c.architecture = arch.clone();
        let mut source = crate::data::build(&c.source, c.seed).unwrap();
        let mut start = initial_params(&c, source.as_mut()).unwrap();
        for (i, v) in start.r_mag.iter_mut().enumerate() {
            *v = 0.4 * (i as f32 * 0.7).sin();
        }
        for (i, v) in start.b_mag.iter_mut().enumerate() {
            *v = 0.2 * (i as f32 * 1.3).cos();
        }
        for (i, v) in start.log_threshold.iter_mut().enumerate() {
            *v += 0.3 * (i as f32 * 0.9).sin();
        }
        let mut x = vec![0f32; 13 * 7];
        source.next_batch(&mut x);
        x.iter_mut().for_each(|v| *v *= start.input_scale);
        let ctx = Ctx {
            x: &x,
            batch: 13,
            coefficient: sparsity_coefficient(&arch, 0),
            dead: &[],
            k_aux: c.k_aux() as usize,
        };
        let mut want = crate::models::sae::params::SaeParams::zeros(7, 37, &arch);
        arch::train_loss(&arch, &start, &start, &ctx, Some(&mut want));
        if arch.unit_norm_decoder() {
            project_decoder_gradient(&start, &mut want);
        }
        // The whole batch in one chunk, and in chunks of 4, 4, 4 and 1 rows.
        for rows in [13, 4] {
            let source = crate::data::build(&c.source, c.seed).unwrap();
            let mut g = GpuSaeTrainer::build(gpu, &c, source, rows * 37 * 4)
                .await
                .unwrap();
            assert_eq!(g.rows_per_chunk(), rows as usize);
            g.set_params(&start).await.unwrap();
            g.run_steps(1).await.unwrap();
            let got = g.last_gradient().await.unwrap();
            for ((name, a), b) in TRAINED_TENSORS
                .iter()
                .zip(got.tensors())
                .zip(want.tensors())
            {
                let what = format!("{} ({rows}-row chunks) d/d{name}", arch.name());
                assert_close(&what, a, b, 1e-4, 1e-3);
            }
        }
    }
}
gpu_test!(
    gpu_sae_gradients_match_cpu_reference,
    gradients_match_the_cpu_reference
);
