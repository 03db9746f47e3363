//! The engine inside a dedicated Web Worker: WebGPU must be reachable there and the fused
//! kernel must agree with the CPU reference. Browser only.
#![cfg(target_arch = "wasm32")]

use mechlab_engine::gpu::Gpu;
use mechlab_engine::models::toy::config::{Axis, Preset, SuperpositionConfig};
use mechlab_engine::models::toy::cpu::CpuToyTrainer;
use mechlab_engine::models::toy::gpu::{GpuToyTrainer, ToyPath};
use wasm_bindgen_test::wasm_bindgen_test;

wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_dedicated_worker);

#[wasm_bindgen_test]
async fn gpu_fused_training_in_a_worker_matches_reference() {
    let gpu = Gpu::new().await.expect("WebGPU in a dedicated worker");
    let cfg = SuperpositionConfig {
        n_features: 6,
        n_hidden: 2,
        batch_size: 33,
        feature_probability: Axis::List(vec![1.0, 0.1]),
        learning_rate: 1e-2,
        ..Preset::Intro.config()
    };
    let mut t = GpuToyTrainer::new(&gpu, &cfg, None).await.unwrap();
    assert_eq!(t.path(), ToyPath::Fused);
    let got = t.run_steps(8).await.unwrap();
    let mut cpu = CpuToyTrainer::new(&cfg).unwrap();
    let want = cpu.run_steps(8);
    for (g, w) in got.mean_loss.iter().zip(&want) {
        assert!(
            (g - w).abs() <= 1e-3 * w.abs() + 1e-6,
            "loss {g} vs reference {w}"
        );
    }
    let params = t.params_flat().await.unwrap();
    for (g, w) in params.iter().zip(cpu.params()) {
        assert!(
            (g - w).abs() <= 2e-4 + 1e-3 * w.abs(),
            "param {g} vs reference {w}"
        );
    }
}
