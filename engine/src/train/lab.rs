//! The contract a lab keeps with the loops that run it (the page's worker, the CLI, the
//! benchmarks): its config, with the link codec, the field table and the checks
//! ([`LinkConfig`]); its trainer over the CPU reference and the GPU path ([`Trainer`]); how a
//! run of it opens on either; and whether "auto" prefers the CPU reference on a software
//! adapter. A loop asks the lab ([`Lab::open`], [`Lab::request`]) instead of matching on CPU or
//! GPU itself, so each of these is decided once, in the lab's folder:
//! [`crate::models::toy::ToyLab`], [`crate::models::sae::SaeLab`],
//! [`crate::models::transformer::LmLab`].

use super::engine::{EngineChoice, Request};
use super::trainer::Trainer;
use crate::error::Result;
use crate::experiment::link::LinkConfig;
use crate::gpu::Gpu;

/// One lab, as the loops that run it see it.
// The futures are driven on one thread (the browser's, or pollster natively).
#[allow(async_fn_in_trait)]
pub trait Lab {
    /// Its config: the link codec, fields and checks.
    type Config: LinkConfig + Clone;
    /// What a run needs besides its config (the language model's tokens); `()` for labs that
    /// make their own data.
    type Data;
    /// Its trainer, over the CPU reference and the GPU path.
    type Trainer: Trainer;
    /// Its presets: named experiments for the page's menu and the CLI's `--preset`.
    type Preset: crate::experiment::preset::LabPreset;

    /// Whether "auto" trains on the CPU reference on a software adapter (lavapipe,
    /// SwiftShader) when the config is small enough: the lab measured it faster there.
    const CPU_FASTER_ON_SOFTWARE: bool;

    /// Opens a fresh run of `cfg` on `gpu`, or on the CPU reference when there is none.
    async fn open(gpu: Option<&Gpu>, cfg: &Self::Config, data: Self::Data)
        -> Result<Self::Trainer>;

    /// What [`super::engine::place`] settles for a run of this lab: the user's `choice`, why
    /// the CPU reference cannot take the config (if it cannot), and what the GPU is called in
    /// messages.
    fn request(
        choice: EngineChoice,
        cpu_too_large: Option<String>,
        gpu_name: &'static str,
    ) -> Request {
        Request {
            choice,
            cpu_too_large,
            cpu_faster_on_software: Self::CPU_FASTER_ON_SOFTWARE,
            gpu_name,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::text::TokenizerKind;
    use crate::models::sae::config::{SaeConfig, SaePreset, SourceConfig};
    use crate::models::sae::SaeLab;
    use crate::models::toy::config::{Axis, Preset};
    use crate::models::toy::ToyLab;
    use crate::models::transformer::lm::tests as lm_tests;
    use crate::models::transformer::lm::{LmConfig, TokenizedCorpus};
    use crate::models::transformer::LmLab;

    /// Opens `cfg` through the lab on the CPU reference and on `gpu`, trains three steps on
    /// each, and returns each side's per-step losses (`losses` reads them from a report).
    async fn both_sides<L: Lab>(
        gpu: &Gpu,
        cfg: &L::Config,
        data: impl Fn() -> L::Data,
        losses: impl Fn(&<L::Trainer as Trainer>::Report) -> Vec<f32>,
    ) -> [Vec<f32>; 2] {
        let mut out = [vec![], vec![]];
        for (side, on) in out.iter_mut().zip([None, Some(gpu)]) {
            let mut t = L::open(on, cfg, data()).await.unwrap();
            assert_eq!(t.step(), 0);
            let report = t.run_steps(3).await.unwrap();
            assert_eq!(t.step(), 3);
            *side = losses(&report);
        }
        out
    }

    /// Same config, same initialisation, same data: the two sides' losses agree step for step
    /// (to 1e-4 relative; the trainers' own comparison tests are the strict ones), so `open`
    /// gives both the config it was handed. Learning rates are large enough that a config
    /// changed on one side (twice the rate) shows by the third step.
    fn agree(lab: &str, [cpu, gpu]: [Vec<f32>; 2]) {
        assert!(
            !cpu.is_empty() && cpu.len() == gpu.len(),
            "{lab}: {cpu:?} vs {gpu:?}"
        );
        for (c, g) in cpu.iter().zip(&gpu) {
            assert!(
                c.is_finite() && (c - g).abs() <= 1e-4 * c.abs().max(1.0),
                "{lab}: {cpu:?} vs {gpu:?}"
            );
        }
    }

    async fn every_lab_opens_the_same_run_on_either_device(gpu: &Gpu) {
        let toy = crate::models::toy::config::SuperpositionConfig {
            n_features: 5,
            n_hidden: 2,
            batch_size: 7,
            feature_probability: Axis::List(vec![0.7, 0.1]),
            steps: 10,
            learning_rate: 0.1,
            ..Preset::Intro.config()
        };
        agree(
            "toy",
            both_sides::<ToyLab>(gpu, &toy, || (), |r| r.clone()).await,
        );

        let mut sae = SaePreset::GroundTruth.config();
        if let SourceConfig::GroundTruth { d, n_features, .. } = &mut sae.source {
            (*d, *n_features) = (8, 24);
        }
        let sae = SaeConfig {
            d_sae: 32,
            batch_size: 64,
            steps: 10,
            learning_rate: 0.05,
            lr_warmup_steps: 0,
            ..sae
        };
        let sae_losses = |r: &Vec<crate::models::sae::train::StepReport>| {
            r.iter().map(|s| s.loss.total()).collect()
        };
        agree(
            "sae",
            both_sides::<SaeLab>(gpu, &sae, || (), sae_losses).await,
        );

        let corpus = lm_tests::small_corpus();
        let lm = LmConfig {
            steps: 10,
            learning_rate: 0.05,
            warmup_steps: 0,
            ..lm_tests::tiny()
        };
        let data = || TokenizedCorpus::new(&corpus, TokenizerKind::Char).unwrap();
        let lm_losses =
            |r: &Vec<crate::models::transformer::lm::LmStep>| r.iter().map(|s| s.loss).collect();
        agree("lm", both_sides::<LmLab>(gpu, &lm, data, lm_losses).await);
    }
    crate::gpu_test!(
        gpu_every_lab_opens_the_same_run_on_either_device,
        every_lab_opens_the_same_run_on_either_device
    );
}
