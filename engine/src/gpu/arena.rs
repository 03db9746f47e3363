//! Named parameters in one arena (llm.c's single allocation, with candle's hierarchical names
//! such as `blocks.0.mlp.W_in`): an [`ArenaLayout`] packs a model's tensors, in order, into as
//! few buffers as the device's binding limit allows, each tensor starting at the device's
//! storage-offset alignment so a kernel can bind it as a [`View`]. Gradients and Adam's moments
//! are [`Arena::mirror`]s with the same layout, so one optimiser dispatch per buffer updates
//! every tensor in it ([`Arena::adam_tensors`]), and checkpoints and exports read tensors by
//! name ([`Arena::read`], [`Arena::read_all`]).
//!
//! The gaps that alignment leaves hold zeros in every mirror, so Adam leaves them at zero.

use super::{Gpu, Tensor, View};
use crate::error::{EngineError, Result};
use crate::kernels::adam::AdamTensor;
use std::sync::Arc;

/// Where one named tensor lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its name (`blocks.0.attn.W_Q`).
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// The buffer holding it.
    pub buffer: usize,
    /// Its first element in that buffer.
    pub offset: usize,
    /// Its number of elements.
    pub len: usize,
}

/// The arena's layout: every tensor's buffer and offset, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArenaLayout {
    entries: Vec<Entry>,
    /// Elements of each buffer.
    buffers: Vec<usize>,
}

impl ArenaLayout {
    /// Packs `tensors` in order into buffers of at most `max_bytes`, each tensor starting at a
    /// multiple of `align_bytes`. A tensor larger than one buffer, a repeated name or an empty
    /// shape is refused by name.
    pub fn new(tensors: &[(&str, &[usize])], max_bytes: u64, align_bytes: u64) -> Result<Self> {
        let groups: Vec<&[(&str, &[usize])]> = tensors.chunks(1).collect();
        Self::grouped(&groups, max_bytes, align_bytes)
    }

    /// As [`ArenaLayout::new`], with the tensors of each group packed back to back (no
    /// alignment gap) in one buffer, so a kernel can bind a group as one view and index its
    /// tensors at a fixed stride ([`Arena::span`]): an SAE's per-latent tensors, or a layer's
    /// W_Q, W_K, W_V for one fused product. Groups start at the alignment.
    pub fn grouped(
        groups: &[&[(&str, &[usize])]],
        max_bytes: u64,
        align_bytes: u64,
    ) -> Result<Self> {
        let align = (align_bytes.max(4) / 4) as usize;
        let max = (max_bytes / 4) as usize;
        let mut entries: Vec<Entry> = Vec::new();
        let mut buffers: Vec<usize> = Vec::new();
        for group in groups {
            let mut total = 0usize;
            for &(name, shape) in group.iter() {
                if entries.iter().any(|e| e.name == name)
                    || group.iter().filter(|(n, _)| *n == name).count() > 1
                {
                    return Err(EngineError::invalid("tensor", name, "is named twice"));
                }
                let len: usize = shape.iter().product();
                if len == 0 {
                    return Err(EngineError::invalid(
                        "tensor",
                        format!("{name} {shape:?}"),
                        "has no elements",
                    ));
                }
                total += len;
            }
            if total > max {
                let names: Vec<&str> = group.iter().map(|(n, _)| *n).collect();
                let shapes: Vec<&[usize]> = group.iter().map(|(_, s)| *s).collect();
                return Err(EngineError::LimitExceeded {
                    what: if names.len() == 1 {
                        format!("tensor {} {:?}", names[0], shapes[0])
                    } else {
                        format!("tensors {} (packed together)", names.join(", "))
                    },
                    limit: "maxStorageBufferBindingSize",
                    requested: total as u64 * 4,
                    allowed: max as u64 * 4,
                });
            }
            let start = buffers.last().map(|&used| used.div_ceil(align) * align);
            let (buffer, mut offset) = match start {
                Some(at) if at + total <= max => (buffers.len() - 1, at),
                _ => {
                    buffers.push(0);
                    (buffers.len() - 1, 0)
                }
            };
            for &(name, shape) in group.iter() {
                let len: usize = shape.iter().product();
                entries.push(Entry {
                    name: name.to_string(),
                    shape: shape.to_vec(),
                    buffer,
                    offset,
                    len,
                });
                offset += len;
            }
            buffers[buffer] = offset;
        }
        Ok(Self { entries, buffers })
    }

    /// [`ArenaLayout::new`] with this device's binding limit (at most 256 MiB, the common
    /// browser limit) and storage-offset alignment.
    pub fn for_device(gpu: &Gpu, tensors: &[(&str, &[usize])]) -> Result<Self> {
        let groups: Vec<&[(&str, &[usize])]> = tensors.chunks(1).collect();
        Self::for_device_grouped(gpu, &groups)
    }

    /// [`ArenaLayout::grouped`] with this device's limits, as [`ArenaLayout::for_device`].
    pub fn for_device_grouped(gpu: &Gpu, groups: &[&[(&str, &[usize])]]) -> Result<Self> {
        let max = gpu
            .limits
            .max_storage_buffer_binding_size
            .min(gpu.limits.max_buffer_size)
            .min(256 << 20);
        let align = gpu.limits.min_storage_buffer_offset_alignment as u64;
        Self::grouped(groups, max, align)
    }

    /// The tensor called `name`; the error names it.
    pub fn entry(&self, name: &str) -> Result<&Entry> {
        self.entries
            .iter()
            .find(|e| e.name == name)
            .ok_or_else(|| EngineError::invalid("tensor", name, "is not in the model"))
    }

    /// Every tensor, in order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Elements of each buffer.
    pub fn buffer_lens(&self) -> &[usize] {
        &self.buffers
    }

    /// The tensors whose names match `pattern`, where `*` stands for one dotted part
    /// (`blocks.*.mlp.W_in`).
    pub fn matching(&self, pattern: &str) -> Vec<&Entry> {
        let want: Vec<&str> = pattern.split('.').collect();
        self.entries
            .iter()
            .filter(|e| {
                let parts: Vec<&str> = e.name.split('.').collect();
                parts.len() == want.len()
                    && parts.iter().zip(&want).all(|(p, w)| *w == "*" || p == w)
            })
            .collect()
    }
}

/// A model's tensors on the device, laid out by an [`ArenaLayout`].
pub struct Arena {
    layout: Arc<ArenaLayout>,
    buffers: Vec<wgpu::Buffer>,
}

impl Arena {
    /// Zeroed buffers for `layout`, checked against the device's limits.
    pub fn zeroed(gpu: &Gpu, label: &str, layout: Arc<ArenaLayout>) -> Result<Self> {
        let buffers = layout
            .buffers
            .iter()
            .map(|&n| gpu.storage_zeroed::<f32>(label, n))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { layout, buffers })
    }

    /// Another arena with the same layout, zeroed (gradients, Adam's moments).
    pub fn mirror(&self, gpu: &Gpu, label: &str) -> Result<Self> {
        Self::zeroed(gpu, label, self.layout.clone())
    }

    /// The layout.
    pub fn layout(&self) -> &Arc<ArenaLayout> {
        &self.layout
    }

    /// The buffers, in layout order.
    pub fn buffers(&self) -> &[wgpu::Buffer] {
        &self.buffers
    }

    /// Bytes held on the device.
    pub fn bytes(&self) -> u64 {
        self.buffers.iter().map(wgpu::Buffer::size).sum()
    }

    /// The tensor called `name`, to bind.
    pub fn view(&self, name: &str) -> Result<View<'_>> {
        Ok(self.view_of(self.layout.entry(name)?))
    }

    /// The tensor called `name` with its shape, to bind.
    pub fn tensor(&self, name: &str) -> Result<Tensor<'_>> {
        let e = self.layout.entry(name)?;
        Tensor::of(&e.name, self.view_of(e), &e.shape)
    }

    fn view_of(&self, e: &Entry) -> View<'_> {
        View {
            buffer: &self.buffers[e.buffer],
            offset: e.offset as u64 * 4,
            len: e.len,
        }
    }

    /// The tensors `first` to `last` (in layout order, packed back to back by
    /// [`ArenaLayout::grouped`]) as one view; tensors with gaps between them are refused.
    pub fn span(&self, first: &str, last: &str) -> Result<View<'_>> {
        let entries = self.layout.entries();
        let at = |name: &str| {
            entries
                .iter()
                .position(|e| e.name == name)
                .ok_or_else(|| EngineError::invalid("tensor", name, "is not in the model"))
        };
        let (i, j) = (at(first)?, at(last)?);
        if j < i {
            return Err(EngineError::invalid(
                "span",
                last,
                format!("comes before {first}"),
            ));
        }
        for pair in entries[i..=j].windows(2) {
            if pair[1].buffer != pair[0].buffer || pair[1].offset != pair[0].offset + pair[0].len {
                return Err(EngineError::invalid(
                    "span",
                    format!("{first}..{last}"),
                    format!("{} does not follow {} directly", pair[1].name, pair[0].name),
                ));
            }
        }
        Ok(View {
            len: entries[i..=j].iter().map(|e| e.len).sum(),
            ..self.view_of(&entries[i])
        })
    }

    /// Writes `values` into the tensor called `name` (queued before the next submit).
    pub fn write(&self, gpu: &Gpu, name: &str, values: &[f32]) -> Result<()> {
        let e = self.layout.entry(name)?;
        if values.len() != e.len {
            return Err(EngineError::invalid(
                "tensor",
                format!("{name} with {} values", values.len()),
                format!("has shape {:?} ({} values)", e.shape, e.len),
            ));
        }
        gpu.queue.write_buffer(
            &self.buffers[e.buffer],
            e.offset as u64 * 4,
            bytemuck::cast_slice(values),
        );
        Ok(())
    }

    /// The values of the tensor called `name`.
    pub async fn read(&self, gpu: &Gpu, name: &str) -> Result<Vec<f32>> {
        let v = self.view(name)?;
        gpu.read_at(v.buffer, v.offset, v.len).await
    }

    /// Every tensor by name with its shape, in layout order (one readback per buffer), as
    /// checkpoints and exports write them.
    pub async fn read_all(&self, gpu: &Gpu) -> Result<Vec<(String, Vec<usize>, Vec<f32>)>> {
        let mut whole = Vec::with_capacity(self.buffers.len());
        for (b, &n) in self.buffers.iter().zip(&self.layout.buffers) {
            whole.push(gpu.read::<f32>(b, n).await?);
        }
        Ok(self
            .layout
            .entries
            .iter()
            .map(|e| {
                let data = whole[e.buffer][e.offset..e.offset + e.len].to_vec();
                (e.name.clone(), e.shape.clone(), data)
            })
            .collect())
    }

    /// One Adam tensor per buffer of this arena (the parameters) with its gradient and moments
    /// `grads`, `m`, `v` (mirrors of it). Each `(name, scale)` in `scales` trains that tensor at
    /// `lr · scale`; it must be the last tensor in its buffer (the kernel scales a suffix), and
    /// at most one per buffer.
    pub fn adam_tensors<'a>(
        &'a self,
        grads: &'a Arena,
        m: &'a Arena,
        v: &'a Arena,
        scales: &[(&str, f32)],
    ) -> Result<Vec<AdamTensor<'a>>> {
        for other in [grads, m, v] {
            if other.layout != self.layout {
                return Err(EngineError::invalid(
                    "arena",
                    "a gradient or moment arena",
                    "must mirror the parameters' layout",
                ));
            }
        }
        let mut out = (0..self.buffers.len())
            .map(|b| {
                let len = self.layout.buffers[b];
                let t = |name, arena: &'a Arena| {
                    let view = View {
                        buffer: &arena.buffers[b],
                        offset: 0,
                        len,
                    };
                    Tensor::of(name, view, &[len])
                };
                Ok(AdamTensor::new(
                    t("parameters", self)?,
                    t("gradient", grads)?,
                    t("first moment", m)?,
                    t("second moment", v)?,
                ))
            })
            .collect::<Result<Vec<AdamTensor<'a>>>>()?;
        for &(name, scale) in scales {
            let e = self.layout.entry(name)?;
            let t = &mut out[e.buffer];
            if e.offset + e.len != self.layout.buffers[e.buffer] || t.scaled_from != usize::MAX {
                return Err(EngineError::invalid(
                    "tensor",
                    name,
                    "a tensor with its own learning rate must come last in its buffer, one per buffer",
                ));
            }
            t.scaled_from = e.offset;
            t.lr_scale = scale;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::{ProgramSpec, Recorder};
    use crate::gpu_test;
    use crate::kernels::adam::{adam, adam_ref, adam_scratch_words, AdamRefTensor, AdamStep};
    use crate::testing::assert_close;
    use crate::train::adam::AdamConfig;

    #[test]
    fn tensors_pack_in_order_aligned_and_split_at_the_limit() {
        // 64-byte alignment (16 elements), buffers of at most 100 elements.
        let tensors: [(&str, &[usize]); 5] = [
            ("embed.W_E", &[5, 4]),
            ("blocks.0.mlp.W_in", &[3, 3]),
            ("blocks.1.mlp.W_in", &[3, 3]),
            ("blocks.0.mlp.b_in", &[60]),
            ("unembed.W_U", &[100]),
        ];
        let l = ArenaLayout::new(&tensors, 400, 64).unwrap();
        let at = |n: &str| {
            let e = l.entry(n).unwrap();
            (e.buffer, e.offset, e.len)
        };
        assert_eq!(at("embed.W_E"), (0, 0, 20));
        assert_eq!(at("blocks.0.mlp.W_in"), (0, 32, 9));
        assert_eq!(at("blocks.1.mlp.W_in"), (0, 48, 9));
        // 64 + 60 > 100: a new buffer.
        assert_eq!(at("blocks.0.mlp.b_in"), (1, 0, 60));
        assert_eq!(at("unembed.W_U"), (2, 0, 100));
        assert_eq!(l.buffer_lens(), &[57, 60, 100]);
        let names: Vec<&str> = l
            .matching("blocks.*.mlp.W_in")
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        assert_eq!(names, ["blocks.0.mlp.W_in", "blocks.1.mlp.W_in"]);
        assert!(l
            .entry("blocks.2.mlp.W_in")
            .unwrap_err()
            .to_string()
            .contains("blocks.2"));
        let too_big = ArenaLayout::new(&[("x", &[101])], 400, 64)
            .unwrap_err()
            .to_string();
        assert!(too_big.contains("tensor x") && too_big.contains("maxStorageBufferBindingSize"));
        assert!(ArenaLayout::new(&[("x", &[1]), ("x", &[2])], 400, 64).is_err());
        // A group packs back to back and moves to a new buffer whole.
        let w: [(&str, &[usize]); 1] = [("w", &[70])];
        let lat: [(&str, &[usize]); 3] = [("b", &[5]), ("r", &[5]), ("t", &[5])];
        let g = ArenaLayout::grouped(&[&w, &lat], 400, 64).unwrap();
        let at = |n: &str| {
            let e = g.entry(n).unwrap();
            (e.buffer, e.offset)
        };
        assert_eq!((at("b"), at("r"), at("t")), ((0, 80), (0, 85), (0, 90)));
        let g = ArenaLayout::grouped(&[&w, &lat, &lat[..0]], 320, 64).unwrap();
        assert_eq!((at_of(&g, "b"), at_of(&g, "t")), ((1, 0), (1, 10)));
        let too_big = ArenaLayout::grouped(&[&lat], 56, 64)
            .unwrap_err()
            .to_string();
        assert!(too_big.contains("b, r, t"), "{too_big}");
        assert!(ArenaLayout::new(&[("x", &[0, 3])], 400, 64).is_err());
    }

    fn at_of(l: &ArenaLayout, name: &str) -> (usize, usize) {
        let e = l.entry(name).unwrap();
        (e.buffer, e.offset)
    }

    /// Doubles a view in place: a dispatch that binds a tensor at its offset.
    const DOUBLE: &str = "
struct P { n: u32, _a: u32, _b: u32, _c: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@compute @workgroup_size(64)
fn double(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x < p.n) { x[id.x] = 2.0 * x[id.x]; }
}
";

    async fn names_views_and_adam(gpu: &Gpu) {
        let tensors: [(&str, &[usize]); 3] = [("w", &[7, 3]), ("b", &[5]), ("log_theta", &[4])];
        let layout = Arc::new(ArenaLayout::for_device(gpu, &tensors).unwrap());
        let params = Arena::zeroed(gpu, "params", layout.clone()).unwrap();
        let host: Vec<Vec<f32>> = tensors
            .iter()
            .enumerate()
            .map(|(i, (_, s))| {
                let n: usize = s.iter().product();
                (0..n).map(|j| (i * 10 + j) as f32 * 0.1 - 0.7).collect()
            })
            .collect();
        for ((name, _), h) in tensors.iter().zip(&host) {
            params.write(gpu, name, h).unwrap();
        }
        assert!(params.write(gpu, "b", &[1.0]).is_err());
        // Separately aligned tensors are no span; one tensor is.
        let err = params.span("b", "log_theta").unwrap_err().to_string();
        assert!(err.contains("does not follow"), "{err}");
        assert_eq!(params.span("b", "b").unwrap().len, 5);
        // A kernel bound to the middle tensor at its offset touches it alone.
        let program = gpu
            .program(&ProgramSpec {
                label: "arena test double",
                variant: "",
                body: &[DOUBLE],
                uniform_bytes: 16,
                storage: 1,
            })
            .await
            .unwrap();
        let mut recorder = Recorder::new(gpu);
        let mut rec = recorder.begin();
        let b = params.view("b").unwrap();
        rec.dispatch_views(&program, "double", &[5u32, 0, 0, 0], &[b], 1)
            .await
            .unwrap();
        rec.submit();
        let all = params.read_all(gpu).await.unwrap();
        assert_eq!(all[0], ("w".to_string(), vec![7, 3], host[0].clone()));
        let doubled: Vec<f32> = host[1].iter().map(|v| 2.0 * v).collect();
        assert_eq!(all[1].2, doubled);
        assert_eq!(params.read(gpu, "log_theta").await.unwrap(), host[2]);
        // Adam over the arena's buffers, log θ at three times the rate, against the reference.
        let grads = params.mirror(gpu, "grads").unwrap();
        let (m, v) = (
            params.mirror(gpu, "m").unwrap(),
            params.mirror(gpu, "v").unwrap(),
        );
        let g_host: Vec<Vec<f32>> = host
            .iter()
            .map(|h| h.iter().map(|x| 0.3 - x * x).collect())
            .collect();
        for ((name, _), g) in tensors.iter().zip(&g_host) {
            grads.write(gpu, name, g).unwrap();
        }
        let adam_t = params
            .adam_tensors(&grads, &m, &v, &[("log_theta", 3.0)])
            .unwrap();
        let lens: Vec<usize> = adam_t.iter().map(|t| t.len()).collect();
        let scratch = gpu
            .storage_zeroed::<f32>("scratch", adam_scratch_words(&lens))
            .unwrap();
        let step = AdamStep {
            cfg: AdamConfig::DEFAULT,
            lr: 0.01,
            t: 1,
            max_norm: 1.0,
        };
        let mut rec = recorder.begin();
        adam(
            &mut rec,
            &adam_t,
            Tensor::all("scratch", (&scratch).into()).unwrap(),
            &step,
        )
        .await
        .unwrap();
        rec.submit();
        let mut want = vec![host[0].clone(), doubled, host[2].clone()];
        let (mut mm, mut vv): (Vec<Vec<f32>>, Vec<Vec<f32>>) = want
            .iter()
            .map(|w| (vec![0.0; w.len()], vec![0.0; w.len()]))
            .unzip();
        let mut refs: Vec<AdamRefTensor> = want
            .iter_mut()
            .zip(&g_host)
            .zip(mm.iter_mut().zip(vv.iter_mut()))
            .enumerate()
            .map(|(i, ((p, g), (m, v)))| AdamRefTensor {
                param: p,
                grad: g,
                m,
                v,
                scaled_from: if i == 2 { 0 } else { usize::MAX },
                lr_scale: 3.0,
            })
            .collect();
        adam_ref(&mut refs, &step);
        for ((name, _), w) in tensors.iter().zip(&want) {
            let got = params.read(gpu, name).await.unwrap();
            assert_close(name, &got, w, 1e-6, 2e-5);
        }
        // A scaled tensor must come last in its buffer.
        assert!(params.adam_tensors(&grads, &m, &v, &[("w", 2.0)]).is_err());
    }
    gpu_test!(gpu_arena_names_views_and_adam, names_views_and_adam);
}
