//! A buffer pool keyed by size and usage. Runs that restart with the same shapes (reset, a sweep
//! cell after another) reuse buffers instead of allocating again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Free buffers of one device, by (size, usage), and what the device has been asked for: every
/// buffer mechlab creates but the recorders' small parameter blocks comes from here, so
/// benchmarks report GPU memory from these counts.
#[derive(Default)]
pub struct BufferPool {
    free: Mutex<HashMap<(u64, u32), Vec<wgpu::Buffer>>>,
    created_bytes: AtomicU64,
    largest_bytes: AtomicU64,
}

impl BufferPool {
    /// A buffer of exactly `size` bytes and `usage`, from the pool when one is free.
    pub fn acquire(
        &self,
        device: &wgpu::Device,
        label: &str,
        size: u64,
        usage: wgpu::BufferUsages,
    ) -> wgpu::Buffer {
        let size = super::round_up(size, 4);
        let key = (size, usage.bits());
        if let Some(b) = self
            .free
            .lock()
            .expect("buffer pool poisoned")
            .get_mut(&key)
            .and_then(Vec::pop)
        {
            return b;
        }
        self.created_bytes.fetch_add(size, Ordering::Relaxed);
        self.largest_bytes.fetch_max(size, Ordering::Relaxed);
        device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage,
            mapped_at_creation: false,
        })
    }

    /// Gives a buffer back for reuse.
    pub fn release(&self, buffer: wgpu::Buffer) {
        let key = (buffer.size(), buffer.usage().bits());
        self.free
            .lock()
            .expect("buffer pool poisoned")
            .entry(key)
            .or_default()
            .push(buffer);
    }

    /// Bytes of every buffer created so far (reused ones count once): an upper bound on the GPU
    /// memory mechlab holds, since buffers are freed only with their owners.
    pub fn created_bytes(&self) -> u64 {
        self.created_bytes.load(Ordering::Relaxed)
    }

    /// The largest buffer created so far, in bytes (one binding is at most this).
    pub fn largest_bytes(&self) -> u64 {
        self.largest_bytes.load(Ordering::Relaxed)
    }

    /// Buffers waiting for reuse.
    pub fn free_count(&self) -> usize {
        self.free
            .lock()
            .expect("buffer pool poisoned")
            .values()
            .map(Vec::len)
            .sum()
    }
}
