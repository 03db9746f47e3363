//! Compiled shaders and their layouts, cached per device.
//!
//! A [`Program`] is one WGSL source (a kernel's body with the constants and declarations its
//! host prepends) with one bind-group layout: binding 0 a uniform block read at a dynamic
//! offset, bindings 1..=n storage buffers, each read-only or read-write as the source declares
//! it (`var<storage, read>` or `var<storage, read_write>`). Read-only bindings let one buffer
//! be bound several times in a dispatch (two tensors of a parameter arena), which WebGPU
//! refuses for writable bindings. Each entry point's pipeline is compiled on
//! first use. Programs are cached by a short key (the shader's label, the text its host varies,
//! the layout), so a dispatch never formats or hashes the whole source; the source is built only
//! when the key is new.

use super::Gpu;
use crate::error::{EngineError, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The largest uniform block a program may declare: one slot of the recorder's uniform buffer.
pub const MAX_UNIFORM_BYTES: u64 = 256;

/// What identifies a program: the label names the shader body (one body per label), `variant`
/// is everything the host prepends to it (constants, optional bindings), then the layout.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    label: &'static str,
    variant: String,
    uniform_bytes: u64,
    storage: u32,
}

/// How to build a program that is not cached yet.
pub struct ProgramSpec<'a> {
    /// The shader's name (in errors and debuggers); one shader body per label.
    pub label: &'static str,
    /// Text prepended to the body: the constants and declarations that specialise it.
    pub variant: &'a str,
    /// The rest of the source, in order (shared helpers, then the kernel's WGSL).
    pub body: &'a [&'static str],
    /// Size of the uniform block at binding 0.
    pub uniform_bytes: u64,
    /// Storage bindings 1..=storage.
    pub storage: u32,
}

/// One compiled shader module with its layout and the pipelines of its entry points.
pub struct Program {
    label: &'static str,
    module: wgpu::ShaderModule,
    bind_layout: wgpu::BindGroupLayout,
    pipeline_layout: wgpu::PipelineLayout,
    uniform_bytes: u64,
    storage: u32,
    pipelines: Mutex<HashMap<String, Arc<wgpu::ComputePipeline>>>,
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Program")
            .field("label", &self.label)
            .field("storage", &self.storage)
            .finish()
    }
}

impl Program {
    /// The shader's label.
    pub fn label(&self) -> &'static str {
        self.label
    }

    /// Storage bindings a dispatch of this program binds.
    pub fn storage_bindings(&self) -> u32 {
        self.storage
    }

    /// Size of the uniform block at binding 0.
    pub fn uniform_bytes(&self) -> u64 {
        self.uniform_bytes
    }

    /// The bind-group layout every entry point shares.
    pub fn bind_layout(&self) -> &wgpu::BindGroupLayout {
        &self.bind_layout
    }

    /// The entry point whose pipeline `pipeline` is (for profiles; `?` when it is not this
    /// program's).
    pub fn entry_of(&self, pipeline: &Arc<wgpu::ComputePipeline>) -> String {
        let pipelines = self.pipelines.lock().expect("program poisoned");
        pipelines
            .iter()
            .find(|(_, p)| Arc::ptr_eq(p, pipeline))
            .map_or_else(|| "?".into(), |(e, _)| e.clone())
    }

    /// The pipeline of `entry`, compiled on first use. Shader errors come back as
    /// [`EngineError::Gpu`] with the compiler's message.
    pub async fn pipeline(&self, gpu: &Gpu, entry: &str) -> Result<Arc<wgpu::ComputePipeline>> {
        if let Some(p) = self.pipelines.lock().expect("program poisoned").get(entry) {
            return Ok(p.clone());
        }
        let pipeline = gpu
            .scoped(|| {
                gpu.device
                    .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                        label: Some(self.label),
                        layout: Some(&self.pipeline_layout),
                        module: &self.module,
                        entry_point: Some(entry),
                        compilation_options: Default::default(),
                        cache: None,
                    })
            })
            .await
            .map_err(|e| EngineError::Gpu(format!("compiling {}::{entry}: {e}", self.label)))?;
        let pipeline = Arc::new(pipeline);
        self.pipelines
            .lock()
            .expect("program poisoned")
            .insert(entry.to_string(), pipeline.clone());
        Ok(pipeline)
    }
}

/// The programs of one device.
#[derive(Default)]
pub struct ProgramCache {
    map: Mutex<HashMap<Key, Arc<Program>>>,
}

impl ProgramCache {
    /// The program `spec` describes, compiled when its key is new.
    pub async fn get(&self, gpu: &Gpu, spec: &ProgramSpec<'_>) -> Result<Arc<Program>> {
        if spec.uniform_bytes == 0 || spec.uniform_bytes > MAX_UNIFORM_BYTES {
            return Err(EngineError::Gpu(format!(
                "{}: a uniform block of {} bytes (1 to {MAX_UNIFORM_BYTES} allowed)",
                spec.label, spec.uniform_bytes
            )));
        }
        let key = Key {
            label: spec.label,
            variant: spec.variant.to_string(),
            uniform_bytes: spec.uniform_bytes,
            storage: spec.storage,
        };
        if let Some(p) = self.map.lock().expect("program cache poisoned").get(&key) {
            return Ok(p.clone());
        }
        let mut source = String::from(spec.variant);
        for part in spec.body {
            source.push_str(part);
        }
        let read_only = read_only_bindings(spec.label, &source, spec.storage)?;
        let (bind_layout, pipeline_layout) = layouts(
            &gpu.device,
            spec.label,
            spec.uniform_bytes,
            spec.storage,
            read_only,
        );
        let module = gpu
            .scoped(|| {
                gpu.device
                    .create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some(spec.label),
                        source: wgpu::ShaderSource::Wgsl(source.into()),
                    })
            })
            .await
            .map_err(|e| EngineError::Gpu(format!("compiling {}: {e}", spec.label)))?;
        let program = Arc::new(Program {
            label: spec.label,
            module,
            bind_layout,
            pipeline_layout,
            uniform_bytes: spec.uniform_bytes,
            storage: spec.storage,
            pipelines: Mutex::default(),
        });
        self.map
            .lock()
            .expect("program cache poisoned")
            .insert(key, program.clone());
        Ok(program)
    }

    /// Number of compiled programs.
    pub fn len(&self) -> usize {
        self.map.lock().expect("program cache poisoned").len()
    }

    /// True when nothing has been compiled yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The storage bindings (1..=n_storage) that `source` declares `var<storage, read>`, as a bit
/// mask (bit i for binding i). A binding declared by several variables (one per entry point)
/// must have one access mode; a binding outside 1..=n_storage is refused.
pub fn read_only_bindings(label: &str, source: &str, n_storage: u32) -> Result<u64> {
    let bad = |why: String| EngineError::Gpu(format!("{label}: {why}"));
    let (mut read_only, mut read_write) = (0u64, 0u64);
    let mut rest = source;
    while let Some(at) = rest.find("@binding(") {
        rest = &rest[at + "@binding(".len()..];
        let close = rest
            .find(')')
            .ok_or_else(|| bad("unclosed @binding(".into()))?;
        let binding: u32 = rest[..close]
            .trim()
            .parse()
            .map_err(|_| bad(format!("@binding({}) is not a number", &rest[..close])))?;
        let decl: String = rest[close + 1..]
            .split(':')
            .next()
            .unwrap_or("")
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        if !decl.starts_with("var<storage") {
            continue;
        }
        if binding == 0 || binding > n_storage || binding >= 64 {
            return Err(bad(format!(
                "storage @binding({binding}) outside 1..={n_storage}"
            )));
        }
        // `var<storage>` without an access mode is read-only.
        if decl.starts_with("var<storage,read>") || decl.starts_with("var<storage>") {
            read_only |= 1 << binding;
        } else {
            read_write |= 1 << binding;
        }
    }
    if read_only & read_write != 0 {
        return Err(bad(format!(
            "@binding({}) is declared both read-only and read-write",
            (read_only & read_write).trailing_zeros()
        )));
    }
    Ok(read_only)
}

/// The layouts every program has. Binding 0: a uniform with a dynamic offset (one slot per
/// recorded dispatch); bindings 1..=n_storage: storage buffers, read-only where bit `binding`
/// of `read_only` is set.
pub fn layouts(
    device: &wgpu::Device,
    label: &str,
    uniform_bytes: u64,
    n_storage: u32,
    read_only: u64,
) -> (wgpu::BindGroupLayout, wgpu::PipelineLayout) {
    let mut entries = vec![wgpu::BindGroupLayoutEntry {
        binding: 0,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Uniform,
            has_dynamic_offset: true,
            min_binding_size: wgpu::BufferSize::new(uniform_bytes),
        },
        count: None,
    }];
    entries.extend((1..=n_storage).map(|binding| wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Storage {
                read_only: read_only & (1 << binding) != 0,
            },
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    }));
    let bgl = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some(label),
        entries: &entries,
    });
    let pl = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some(label),
        bind_group_layouts: &[Some(&bgl)],
        immediate_size: 0,
    });
    (bgl, pl)
}

#[cfg(test)]
mod tests {
    use super::read_only_bindings;

    #[test]
    fn storage_access_is_read_from_the_declarations() {
        let src = "@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage,read_write> b: array<f32>;
@group(0) @binding( 3 ) var<storage , read> c: array<u32>;
// Another entry point's name for binding 1, with the same access.
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(4) var<storage> d: array<f32>;";
        assert_eq!(read_only_bindings("t", src, 4).unwrap(), 0b11010);
        let both = "@binding(1) var<storage, read> a: array<f32>;\n\
                    @binding(1) var<storage, read_write> b: array<f32>;";
        let err = read_only_bindings("t", both, 1).unwrap_err().to_string();
        assert!(err.contains("@binding(1)") && err.contains("both"), "{err}");
        let outside = "@binding(3) var<storage, read> a: array<f32>;";
        assert!(read_only_bindings("t", outside, 2).is_err());
    }
}
