//! Asynchronous readback: copy into a mappable staging buffer, `map_async`, await the callback.
//! In the browser the callback fires from the event loop; natively we poll the device here.

use super::Gpu;
use crate::error::{EngineError, Result};

/// Reads `len` elements of `T` from byte `offset` of `src` (a multiple of 4).
pub(super) async fn read<T: bytemuck::Pod>(
    gpu: &Gpu,
    src: &wgpu::Buffer,
    offset: u64,
    len: usize,
) -> Result<Vec<T>> {
    let bytes = (len * std::mem::size_of::<T>()) as u64;
    if bytes == 0 {
        return Ok(Vec::new());
    }
    if !offset.is_multiple_of(4) || offset + bytes > src.size() {
        return Err(EngineError::Readback(format!(
            "asked for {bytes} bytes at offset {offset} from a buffer of {}",
            src.size()
        )));
    }
    let staging = gpu.pool().acquire(
        &gpu.device,
        "readback",
        bytes,
        wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
    );
    let mut enc = gpu.device.create_command_encoder(&Default::default());
    enc.copy_buffer_to_buffer(src, offset, &staging, 0, super::round_up(bytes, 4));
    gpu.queue.submit([enc.finish()]);

    let (tx, rx) = futures_channel::oneshot::channel();
    staging.map_async(wgpu::MapMode::Read, .., move |r| {
        let _ = tx.send(r);
    });
    #[cfg(not(target_arch = "wasm32"))]
    gpu.device
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(|e| EngineError::Readback(e.to_string()))?;
    rx.await
        .map_err(|_| EngineError::Readback("the device was lost before the map finished".into()))?
        .map_err(|e| EngineError::Readback(e.to_string()))?;
    let out = {
        let view = staging
            .get_mapped_range(..)
            .map_err(|e| EngineError::Readback(e.to_string()))?;
        bytemuck::cast_slice::<u8, T>(&view[..bytes as usize]).to_vec()
    };
    staging.unmap();
    gpu.pool().release(staging);
    Ok(out)
}
