//! A cache of compute pipelines keyed by label, full shader source and entry point. Kernels are
//! specialised by text (constants baked into the source), so the source is the honest key.

use crate::error::{EngineError, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Compiled pipelines of one device.
#[derive(Default)]
pub struct PipelineCache {
    map: Mutex<HashMap<(String, String), Arc<wgpu::ComputePipeline>>>,
}

impl PipelineCache {
    /// Returns the pipeline for `source`/`entry`, compiling it on first use. Shader errors come
    /// back as [`EngineError::Gpu`] with the compiler's message.
    pub async fn get(
        &self,
        gpu: &super::Gpu,
        label: &str,
        source: &str,
        entry: &str,
        layout: &wgpu::PipelineLayout,
    ) -> Result<Arc<wgpu::ComputePipeline>> {
        let key = (format!("{label}\n{source}"), entry.to_string());
        if let Some(p) = self.map.lock().expect("pipeline cache poisoned").get(&key) {
            return Ok(p.clone());
        }
        let pipeline = gpu
            .scoped(|| {
                let module = gpu
                    .device
                    .create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some(label),
                        source: wgpu::ShaderSource::Wgsl(source.into()),
                    });
                gpu.device
                    .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                        label: Some(label),
                        layout: Some(layout),
                        module: &module,
                        entry_point: Some(entry),
                        compilation_options: Default::default(),
                        cache: None,
                    })
            })
            .await
            .map_err(|e| EngineError::Gpu(format!("compiling {label}::{entry}: {e}")))?;
        let pipeline = Arc::new(pipeline);
        self.map
            .lock()
            .expect("pipeline cache poisoned")
            .insert(key, pipeline.clone());
        Ok(pipeline)
    }

    /// Number of compiled pipelines (for tests of the cache).
    pub fn len(&self) -> usize {
        self.map.lock().expect("pipeline cache poisoned").len()
    }

    /// True when nothing has been compiled yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
