//! The GPU trainer against the CPU reference trainer: same source, same initialisation, same
//! schedule, so after a few steps the parameters agree to float rounding.

use super::GpuSaeTrainer;
use crate::gpu::Gpu;
use crate::gpu_test;
use crate::sae::config::{Architecture, Magnitude, SaeConfig, SourceConfig};
use crate::sae::train::CpuSaeTrainer;
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

async fn compare(gpu: &Gpu, cfg: SaeConfig, steps: u32) {
    let mut cpu = CpuSaeTrainer::new(&cfg).unwrap();
    let mut gpu_t = GpuSaeTrainer::new(gpu, &cfg).await.unwrap();
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
}

async fn topk_matches_the_cpu_reference(gpu: &Gpu) {
    // Awkward shapes; dead_tokens so small that AuxK engages after the first steps.
    compare(gpu, cfg(7, 20, 37, 13, 3, 20), 12).await;
    compare(gpu, cfg(5, 9, 11, 4, 1, 0), 8).await;
}
gpu_test!(
    gpu_sae_topk_training_matches_cpu_reference,
    topk_matches_the_cpu_reference
);

async fn topk_chunks_rows_when_pre_activations_exceed_a_binding(gpu: &Gpu) {
    // Allow 7 rows of pre-activations (148 bytes each) per chunk, for a batch of 50.
    let cfg = cfg(7, 20, 37, 50, 3, 20);
    let source = crate::sae::source::build(&cfg.source, cfg.seed).unwrap();
    let mut g = GpuSaeTrainer::build(gpu, &cfg, source, 7 * 148 + 100)
        .await
        .unwrap();
    assert_eq!(g.rows_per_chunk(), 7);
    let mut cpu = CpuSaeTrainer::new(&cfg).unwrap();
    cpu.run_steps(6).unwrap();
    g.run_steps(6).await.unwrap();
    let p = g.params().await.unwrap();
    assert_close("w_enc", &p.w_enc, &cpu.params().w_enc, 2e-4, 1e-3);
    assert_close("w_dec", &p.w_dec, &cpu.params().w_dec, 2e-4, 1e-3);
}
gpu_test!(
    gpu_sae_topk_trains_in_row_chunks,
    topk_chunks_rows_when_pre_activations_exceed_a_binding
);

async fn dense_architectures_match_the_cpu_reference(gpu: &Gpu) {
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
    };
    for arch in [relu, jump] {
        let mut c = cfg(7, 20, 37, 13, 3, 20);
        c.architecture = arch;
        compare(gpu, c.clone(), 10).await;
        c.d_sae = 5;
        c.batch_size = 1;
        compare(gpu, c, 6).await;
    }
}
gpu_test!(
    gpu_sae_dense_training_matches_cpu_reference,
    dense_architectures_match_the_cpu_reference
);

async fn other_architectures_are_refused_with_a_reason(gpu: &Gpu) {
    let mut c = cfg(7, 20, 37, 13, 3, 20);
    c.architecture = Architecture::by_name("gated").unwrap();
    let err = GpuSaeTrainer::new(gpu, &c).await.err().unwrap().to_string();
    assert!(err.contains("CPU engine"), "{err}");
}
gpu_test!(
    gpu_sae_unsupported_architecture_is_refused,
    other_architectures_are_refused_with_a_reason
);
