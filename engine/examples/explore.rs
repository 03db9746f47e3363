use mechlab_engine::experiment::superposition::*;
use mechlab_engine::gpu::Gpu;
use mechlab_engine::metrics::superposition::*;
use mechlab_engine::models::toy::{gpu::GpuToyTrainer, unflatten};
fn main() {
    pollster::block_on(async {
        let args: Vec<String> = std::env::args().collect();
        let preset = Preset::from_name(&args[1]).unwrap();
        let mut cfg = preset.config();
        cfg.batch_size = args[2].parse().unwrap();
        cfg.steps = args[3].parse().unwrap();
        cfg.learning_rate = args[4].parse().unwrap();
        cfg.seed = args.get(5).map_or(0, |s| s.parse().unwrap());
        let gpu = Gpu::new().await.unwrap();
        let t0 = std::time::Instant::now();
        let mut t = GpuToyTrainer::new(&gpu, &cfg, None).await.unwrap();
        let r = t.run_steps(cfg.steps).await.unwrap();
        println!("{:?} {:?} in {:?}", t.path(), t.plan(), t.elapsed_since(t0));
        let p = t.params_flat().await.unwrap();
        let pp = cfg.params_per_instance();
        for (i, s) in cfg.instances().iter().enumerate() {
            let w = unflatten(&p[i * pp..(i + 1) * pp], cfg.n_hidden as usize, cfg.n_features as usize);
            let m = superposition_metrics(&w.w);
            println!("p={:.4} r={:?} loss={:.5} dpf={:.3} norms={:?}", s.feature_probability, s.relative_importance, r.mean_loss[i], m.dims_per_feature, m.norms.iter().map(|v| (v * 100.0).round() / 100.0).collect::<Vec<_>>());
        }
    });
}
trait E { fn elapsed_since(&self, t: std::time::Instant) -> std::time::Duration; }
impl E for GpuToyTrainer { fn elapsed_since(&self, t: std::time::Instant) -> std::time::Duration { t.elapsed() } }
