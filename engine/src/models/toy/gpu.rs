//! GPU trainers for the toy model. Host side of `shaders/toy/gpu_fused.wgsl` (one workgroup per
//! instance, many steps per dispatch) and `shaders/toy/gpu_general.wgsl` (four dispatches a step, any
//! size). Both draw the same data as the CPU reference in `cpu.rs` and are tested against it.

use super::{init_params, instance_table, ADAM, NOT_DIVERGED};
use crate::error::{EngineError, Result};
use crate::gpu::{grid, Gpu, Program, ProgramSpec, Recorder, View};
use crate::kernels::adam::ADAM_UPDATE_WGSL;
use crate::models::toy::config::SuperpositionConfig;
use crate::rng::fold_seed;
use std::sync::Arc;

const RNG_WGSL: &str = include_str!("../../../../shaders/rng.wgsl");
const COMMON_WGSL: &str = include_str!("../../../../shaders/toy/gpu.wgsl");
const FUSED_WGSL: &str = include_str!("../../../../shaders/toy/gpu_fused.wgsl");
const GENERAL_WGSL: &str = include_str!("../../../../shaders/toy/gpu_general.wgsl");

/// Uniform block shared by both kernels (matches `ToyParams` in toy/gpu.wgsl).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ToyParams {
    n_instances: u32,
    batch: u32,
    step0: u32,
    n_steps: u32,
    seed: u32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    _pad: [u32; 3],
}

/// Fused dispatches recorded into one submit.
const SLOTS: u32 = 64;
/// The fused kernel keeps at most this many gradients per invocation in registers.
const MAX_PARAMS_PER_INVOCATION: u32 = 64;
/// The fused kernel keeps h and gh (n_hidden each) per invocation.
const MAX_FUSED_HIDDEN: u32 = 64;
/// Work (multiply-adds) of one workgroup in one fused dispatch. Software drivers silently
/// abandon long-running workgroups (lavapipe here: past about 30k intro samples) and browsers
/// have GPU watchdogs, so a dispatch stays short; 64 of them go in one submit.
const WORK_PER_WORKGROUP: u64 = 1 << 18;

/// Which GPU implementation trains the instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToyPath {
    /// One workgroup per instance, parameters in workgroup memory, many steps per dispatch.
    Fused,
    /// Four dispatches per step over global memory; any model size.
    General,
}

/// How the fused kernel is shaped for one config on one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FusedPlan {
    /// Invocations per workgroup.
    pub workgroup: u32,
    /// Samples processed per chunk (between two barriers).
    pub chunk: u32,
    /// Parameters owned by each invocation.
    pub params_per_invocation: u32,
    /// Workgroup memory used, in bytes.
    pub workgroup_bytes: u64,
}

impl FusedPlan {
    /// The fused kernel's shape, or why the model does not fit it.
    pub fn new(cfg: &SuperpositionConfig, limits: &wgpu::Limits) -> Result<Self> {
        let (f, h) = (cfg.n_features as u64, cfg.n_hidden as u64);
        let p = (h + 1) * f;
        let max_inv = limits
            .max_compute_invocations_per_workgroup
            .min(limits.max_compute_workgroup_size_x);
        let workgroup = if p > 1024 { 256 } else { 64 }.min(max_inv);
        let ppt = p.div_ceil(workgroup as u64) as u32;
        if ppt > MAX_PARAMS_PER_INVOCATION || cfg.n_hidden > MAX_FUSED_HIDDEN {
            return Err(EngineError::invalid(
                "n_features",
                cfg.n_features,
                "too many parameters per instance for the fused kernel; use the general path",
            ));
        }
        let limit = limits.max_compute_workgroup_storage_size as u64;
        let bytes = |c: u64| 4 * (p + c * (2 * f + 2 * h) + workgroup as u64 + 1);
        // Prefer staying within 16 KiB (more workgroups resident per core); a model whose
        // weights alone exceed that takes what the device allows.
        let budget = if bytes(1) <= 16 * 1024 {
            16 * 1024
        } else {
            limit
        };
        let mut chunk = (cfg.batch_size as u64)
            .next_power_of_two()
            .clamp(1, 4 * workgroup as u64);
        while chunk > 1 && bytes(chunk) > budget.min(limit) {
            chunk /= 2;
        }
        crate::gpu::LimitCheck::new(limits)
            .workgroup_storage("the fused toy-model kernel", bytes(chunk))?;
        Ok(Self {
            workgroup,
            chunk: chunk as u32,
            params_per_invocation: ppt,
            workgroup_bytes: bytes(chunk),
        })
    }
}

fn constants(cfg: &SuperpositionConfig, workgroup: u32) -> String {
    format!(
        "const F: u32 = {f}u;\nconst H: u32 = {h}u;\nconst P: u32 = {p}u;\nconst RELU: bool = {relu};\nconst WG: u32 = {workgroup}u;\n",
        f = cfg.n_features,
        h = cfg.n_hidden,
        p = cfg.params_per_instance(),
        relu = cfg.relu,
    )
}

/// Per-step losses of a chunk of training, and where training stands.
#[derive(Debug, Clone, PartialEq)]
pub struct StepReport {
    /// Steps completed after this chunk.
    pub step: u32,
    /// Mean loss per instance over the chunk (NaN for an instance that did not run).
    pub mean_loss: Vec<f32>,
}

/// Trains all instances of a config on the GPU.
pub struct GpuToyTrainer {
    gpu: Gpu,
    cfg: SuperpositionConfig,
    path: ToyPath,
    n_instances: u32,
    program: Arc<Program>,
    pipelines: Vec<Arc<wgpu::ComputePipeline>>,
    /// Records every submit; its bind group over `storage` is made once and reused.
    recorder: Recorder,
    storage: Vec<wgpu::Buffer>,
    plan: Option<FusedPlan>,
    step: u32,
}

impl GpuToyTrainer {
    /// Validates the config against the device and uploads the initial state. `path` of `None`
    /// picks the fused kernel when the model fits it.
    pub async fn new(gpu: &Gpu, cfg: &SuperpositionConfig, path: Option<ToyPath>) -> Result<Self> {
        cfg.validate()?;
        let plan = FusedPlan::new(cfg, &gpu.limits);
        let path = match (path, &plan) {
            (Some(ToyPath::Fused), Err(e)) => return Err(e.clone()),
            (Some(p), _) => p,
            (None, Ok(_)) => ToyPath::Fused,
            (None, Err(_)) => ToyPath::General,
        };
        let n = cfg.n_instances() as u32;
        let p = cfg.params_per_instance();
        let (f, h, b) = (
            cfg.n_features as usize,
            cfg.n_hidden as usize,
            cfg.batch_size as usize,
        );
        let check = gpu.check();
        // Checked before anything is allocated on either side.
        check.storage_buffer("the toy models' Adam moments", 2 * n as u64 * p as u64 * 4)?;
        let wg = match path {
            ToyPath::Fused => plan.as_ref().map(|p| p.workgroup).unwrap_or(64),
            ToyPath::General => 64,
        };
        match path {
            ToyPath::Fused => check.workgroups("instances (one workgroup each)", n as u64)?,
            ToyPath::General => {
                let scratch = n as u64 * b as u64 * 2 * f.max(h) as u64 * 4;
                check.storage_buffer("the general toy-model path's batch scratch", scratch)?;
            }
        }

        let table = gpu.storage_from("toy table", &instance_table(&cfg.instances()))?;
        let weights = gpu.storage_from("toy weights", &init_params(cfg))?;
        let moments = gpu.storage_zeroed::<f32>("toy moments", 2 * n as usize * p)?;
        let loss = gpu.storage_zeroed::<f32>("toy loss", 2 * n as usize)?;
        let diverged = gpu.storage_from("toy diverged", &vec![NOT_DIVERGED; n as usize])?;
        let mut storage = vec![table, weights, moments, loss, diverged];
        // The constants vary by config; the bodies are fixed per path.
        let (variant, body, entries): (String, &[&'static str], &[&str]) = match path {
            ToyPath::Fused => {
                let plan = plan.as_ref().map_err(Clone::clone)?;
                let consts = format!(
                    "{}const C: u32 = {}u;\nconst PPT: u32 = {}u;\n",
                    constants(cfg, plan.workgroup),
                    plan.chunk,
                    plan.params_per_invocation
                );
                (
                    consts,
                    &[RNG_WGSL, ADAM_UPDATE_WGSL, COMMON_WGSL, FUSED_WGSL],
                    &["main"],
                )
            }
            ToyPath::General => {
                storage.push(gpu.storage_from("toy step", &[0u32])?);
                storage.push(gpu.storage_zeroed::<f32>("toy xg", n as usize * b * 2 * f)?);
                storage.push(gpu.storage_zeroed::<f32>("toy hh", n as usize * b * 2 * h)?);
                storage.push(gpu.storage_zeroed::<f32>("toy sample loss", n as usize * b)?);
                (
                    constants(cfg, wg),
                    &[RNG_WGSL, ADAM_UPDATE_WGSL, COMMON_WGSL, GENERAL_WGSL],
                    &["fwd_bwd", "reduce_loss", "update", "advance"],
                )
            }
        };
        let program = gpu
            .program(&ProgramSpec {
                label: "toy",
                variant: &variant,
                body,
                uniform_bytes: std::mem::size_of::<ToyParams>() as u64,
                storage: storage.len() as u32,
            })
            .await?;
        let mut pipelines = Vec::new();
        for e in entries {
            pipelines.push(program.pipeline(gpu, e).await?);
        }
        Ok(Self {
            gpu: gpu.clone(),
            cfg: cfg.clone(),
            path,
            n_instances: n,
            program,
            pipelines,
            recorder: Recorder::new(gpu),
            storage,
            plan: plan.ok(),
            step: 0,
        })
    }

    /// The path in use.
    pub fn path(&self) -> ToyPath {
        self.path
    }

    /// The fused kernel's shape, when the model fits it.
    pub fn plan(&self) -> Option<FusedPlan> {
        self.plan
    }

    /// The config it trains.
    pub fn config(&self) -> &SuperpositionConfig {
        &self.cfg
    }

    /// Steps completed.
    pub fn step(&self) -> u32 {
        self.step
    }

    /// Bytes of GPU memory held by this trainer's buffers.
    pub fn gpu_bytes(&self) -> u64 {
        self.storage.iter().map(wgpu::Buffer::size).sum::<u64>() + self.recorder.uniform_bytes()
    }

    fn params(&self, step0: u32, n_steps: u32) -> ToyParams {
        ToyParams {
            n_instances: self.n_instances,
            batch: self.cfg.batch_size,
            step0,
            n_steps,
            seed: fold_seed(self.cfg.seed),
            lr: self.cfg.learning_rate,
            beta1: ADAM.beta1,
            beta2: ADAM.beta2,
            eps: ADAM.eps,
            _pad: [0; 3],
        }
    }

    /// Steps the fused kernel takes per dispatch.
    fn steps_per_dispatch(&self) -> u32 {
        let c = &self.cfg;
        let per_step = c.batch_size as u64 * c.n_features as u64 * c.n_hidden as u64 * 4;
        (WORK_PER_WORKGROUP / per_step.max(1)).clamp(1, 1000) as u32
    }

    /// Records and submits `n` steps, then reads back the per-instance mean loss over them.
    /// Fails with [`EngineError::Diverged`] naming the step where an instance's loss first
    /// became non-finite; the weights before that step are kept.
    pub async fn run_steps(&mut self, n: u32) -> Result<StepReport> {
        let storage: Vec<View> = self.storage.iter().map(View::whole).collect();
        let per = self.steps_per_dispatch();
        let base = self.params(self.step, 1);
        let mut done = 0;
        while done < n {
            let mut rec = self.recorder.begin();
            if done == 0 {
                rec.clear(&self.storage[3], 0, None);
            }
            match self.path {
                ToyPath::Fused => {
                    let mut dispatches = 0;
                    while done < n && dispatches < SLOTS {
                        let k = per.min(n - done);
                        let slot = rec.params(&ToyParams {
                            step0: self.step + done,
                            n_steps: k,
                            ..base
                        });
                        rec.dispatch_at(
                            &self.program,
                            &self.pipelines[0],
                            slot,
                            &storage,
                            (self.n_instances, 1),
                        );
                        done += k;
                        dispatches += 1;
                    }
                }
                ToyPath::General => {
                    // The step counter lives on the device, so every dispatch reads one block.
                    let slot = rec.params(&base);
                    let c = &self.cfg;
                    let items = [
                        self.n_instances as u64 * c.batch_size as u64,
                        self.n_instances as u64,
                        self.n_instances as u64 * c.params_per_instance() as u64,
                    ];
                    let grids: Vec<(u32, u32)> =
                        items.iter().map(|&i| grid(i.div_ceil(64))).collect();
                    for (what, &(_, y)) in ["batch", "instances", "parameters"].iter().zip(&grids) {
                        self.gpu
                            .check()
                            .workgroups(&format!("the general toy path over {what}"), y as u64)?;
                    }
                    // One step is four dispatches; a submit holds up to 256 steps.
                    let mut k = 0;
                    while done < n && k < 256 {
                        for (pipe, &g) in self.pipelines[..3].iter().zip(&grids) {
                            rec.dispatch_at(&self.program, pipe, slot, &storage, g);
                        }
                        rec.dispatch_at(&self.program, &self.pipelines[3], slot, &storage, (1, 1));
                        done += 1;
                        k += 1;
                    }
                }
            }
            rec.submit();
        }
        self.step += n;
        let sums: Vec<f32> = self
            .gpu
            .read(&self.storage[3], 2 * self.n_instances as usize)
            .await?;
        let diverged: Vec<u32> = self
            .gpu
            .read(&self.storage[4], self.n_instances as usize)
            .await?;
        super::diverged_error(&diverged)?;
        if sums.chunks(2).any(|c| c[1] == 0.0) {
            // Some drivers abandon a dispatch that runs too long without reporting an error.
            return Err(EngineError::Gpu(
                "the training kernel did not complete (the driver may have cut a long dispatch short)".into(),
            ));
        }
        Ok(StepReport {
            step: self.step,
            mean_loss: sums
                .chunks(2)
                .map(|c| if c[1] > 0.0 { c[0] / c[1] } else { f32::NAN })
                .collect(),
        })
    }

    /// All parameters, instance-major (`W` then `b` per instance).
    pub async fn params_flat(&self) -> Result<Vec<f32>> {
        self.gpu
            .read(
                &self.storage[1],
                self.n_instances as usize * self.cfg.params_per_instance(),
            )
            .await
    }
}

impl Drop for GpuToyTrainer {
    fn drop(&mut self) {
        for b in self.storage.drain(..) {
            self.gpu.recycle(b);
        }
    }
}

#[cfg(test)]
mod plan_tests {
    use super::*;
    use crate::models::toy::config::Preset;

    fn limits(workgroup_bytes: u32) -> wgpu::Limits {
        wgpu::Limits {
            max_compute_workgroup_storage_size: workgroup_bytes,
            ..wgpu::Limits::default()
        }
    }

    #[test]
    fn small_models_use_a_16k_chunk_plan() {
        let plan = FusedPlan::new(&Preset::Intro.config(), &limits(32768)).unwrap();
        assert_eq!(plan.workgroup, 64);
        assert!(plan.workgroup_bytes <= 16 * 1024, "{plan:?}");
        assert_eq!(plan.chunk, 256);
    }

    #[test]
    fn large_models_take_what_the_device_allows_or_fall_back() {
        let cfg = Preset::Dimensionality.config();
        let plan = FusedPlan::new(&cfg, &limits(32768)).unwrap();
        assert!(plan.workgroup_bytes <= 32768 && plan.chunk >= 4, "{plan:?}");
        let err = FusedPlan::new(&cfg, &limits(16384)).unwrap_err();
        assert!(
            err.to_string().contains("maxComputeWorkgroupStorageSize"),
            "{err}"
        );
    }
}
