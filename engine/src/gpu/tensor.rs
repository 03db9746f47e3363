//! Tensors as kernels bind them: a storage buffer with a name (for errors) and a shape, checked
//! once when the view is made, so kernel wrappers state shapes instead of repeating the checks.
//! Elements are 4 bytes (f32, or u32 for indices), row-major, from the start of the buffer.

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

/// A checked view of a storage buffer as a tensor of 4-byte elements.
#[derive(Clone, Copy, Debug)]
pub struct Tensor<'a> {
    /// The buffer, bound whole.
    pub buffer: &'a wgpu::Buffer,
    /// Its name in error messages.
    pub name: &'static str,
    /// Elements it holds (the product of its dimensions).
    pub len: u64,
}

impl<'a> Tensor<'a> {
    /// Views `buffer` as a tensor of `dims` (checked by [`dim`] where they came from the
    /// caller): the element count within 32-bit indices, and the buffer a bindable storage
    /// buffer large enough to hold it. Errors name the tensor.
    pub fn new(
        gpu: &Gpu,
        name: &'static str,
        buffer: &'a wgpu::Buffer,
        dims: &[u32],
    ) -> Result<Self> {
        let len = elements(name, dims)?;
        check_buffer(gpu, name, buffer, len)?;
        Ok(Self { buffer, name, len })
    }

    /// Views `buffer` as `len` elements whose shape the kernel does not need (scratch space),
    /// with the same checks.
    pub fn flat(gpu: &Gpu, name: &'static str, buffer: &'a wgpu::Buffer, len: u64) -> Result<Self> {
        check_buffer(gpu, name, buffer, len)?;
        Ok(Self { buffer, name, len })
    }
}
