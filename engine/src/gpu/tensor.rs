//! Tensors as kernels bind them: a [`View`] (a whole storage buffer, or a tensor inside one such
//! as an arena's parameter) with a name (for errors) and a shape, checked once when the
//! [`Tensor`] is made, so kernel wrappers state shapes instead of repeating the checks.
//! Elements are 4 bytes (f32, or u32 for indices), row-major, from the view's offset.

use super::Gpu;
use crate::error::{EngineError, Result};

/// A dimension as the kernels index it: at least 1 and within u32.
pub fn dim(field: &'static str, value: usize) -> Result<u32> {
    if value == 0 {
        return Err(EngineError::invalid(field, value, "must be at least 1"));
    }
    u32::try_from(value).map_err(|_| EngineError::invalid(field, value, "must fit in 32 bits"))
}

/// Elements of a tensor of the given dimensions; kernels index them with u32.
pub fn elements(field: &'static str, dims: &[u32]) -> Result<u64> {
    let n = dims.iter().map(|&d| d as u64).product::<u64>();
    if n >= u32::MAX as u64 {
        return Err(EngineError::invalid(
            field,
            n,
            "too many elements for 32-bit indices",
        ));
    }
    Ok(n)
}

/// Checks that `buffer` holds at least `words` 4-byte elements and can be bound as storage.
pub fn check_buffer(
    gpu: &Gpu,
    field: &'static str,
    buffer: &wgpu::Buffer,
    words: u64,
) -> Result<()> {
    let need = words * 4;
    if buffer.size() < need {
        return Err(EngineError::invalid(
            field,
            format!("a buffer of {} bytes", buffer.size()),
            format!("needs at least {need} bytes ({words} elements)"),
        ));
    }
    if !buffer.usage().contains(wgpu::BufferUsages::STORAGE) {
        return Err(EngineError::invalid(
            field,
            format!("{:?}", buffer.usage()),
            "must be a storage buffer",
        ));
    }
    gpu.check().storage_buffer(field, buffer.size())
}

/// A tensor inside a buffer, as a kernel binds it: a whole buffer, or a range of one (an
/// arena's tensor) starting at a multiple of the device's storage-offset alignment.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    /// The buffer.
    pub buffer: &'a wgpu::Buffer,
    /// Where the tensor starts, in bytes.
    pub offset: u64,
    /// Its elements.
    pub len: usize,
}

impl<'a> View<'a> {
    /// The whole buffer as a view of its 4-byte elements.
    pub fn whole(buffer: &'a wgpu::Buffer) -> Self {
        Self {
            buffer,
            offset: 0,
            len: (buffer.size() / 4) as usize,
        }
    }

    /// Its bytes.
    pub fn bytes(&self) -> u64 {
        self.len as u64 * 4
    }

    /// True when it is its whole buffer (bound without an offset or size).
    pub fn is_whole(&self) -> bool {
        self.offset == 0 && self.bytes() == self.buffer.size()
    }
}

impl<'a> From<&'a wgpu::Buffer> for View<'a> {
    fn from(buffer: &'a wgpu::Buffer) -> Self {
        Self::whole(buffer)
    }
}

/// Checks that `view` can be bound as storage: its buffer a storage buffer, the range inside it
/// at a multiple of the storage-offset alignment, and no larger than one binding may be.
pub fn check_view(gpu: &Gpu, field: &'static str, view: &View<'_>, words: u64) -> Result<()> {
    check_buffer(gpu, field, view.buffer, 0)?;
    let align = gpu.limits.min_storage_buffer_offset_alignment as u64;
    if !view.offset.is_multiple_of(align) || view.offset + view.bytes() > view.buffer.size() {
        return Err(EngineError::invalid(
            field,
            format!("{} bytes at offset {}", view.bytes(), view.offset),
            format!(
                "must lie in its buffer of {} bytes at a multiple of {align}",
                view.buffer.size()
            ),
        ));
    }
    if (view.len as u64) < words {
        return Err(EngineError::invalid(
            field,
            format!("a view of {} elements", view.len),
            format!("needs at least {words} elements"),
        ));
    }
    gpu.check().storage_buffer(field, view.bytes())
}

/// A checked view of a storage buffer as a tensor of 4-byte elements.
#[derive(Clone, Copy, Debug)]
pub struct Tensor<'a> {
    /// Where it lives.
    pub view: View<'a>,
    /// Its name in error messages.
    pub name: &'static str,
    /// Elements it holds (the product of its dimensions).
    pub len: u64,
}

impl<'a> Tensor<'a> {
    /// Views `at` (a buffer or a [`View`]) as a tensor of `dims` (checked by [`dim`] where they
    /// came from the caller): the element count within 32-bit indices, and the view bindable
    /// as storage and large enough to hold it. Errors name the tensor.
    pub fn new(
        gpu: &Gpu,
        name: &'static str,
        at: impl Into<View<'a>>,
        dims: &[u32],
    ) -> Result<Self> {
        let len = elements(name, dims)?;
        Self::flat(gpu, name, at, len)
    }

    /// Views `at` as `len` elements whose shape the kernel does not need (scratch space), with
    /// the same checks.
    pub fn flat(gpu: &Gpu, name: &'static str, at: impl Into<View<'a>>, len: u64) -> Result<Self> {
        let view = at.into();
        if view.is_whole() {
            check_buffer(gpu, name, view.buffer, len)?;
        } else {
            check_view(gpu, name, &view, len)?;
        }
        Ok(Self { view, name, len })
    }
}
