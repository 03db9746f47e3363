//! Checks made before any dispatch, so a request too large for the device is refused with the
//! name of the limit instead of a lost device.

use crate::error::{EngineError, Result};

/// Borrowed device limits with one check per kind of request.
pub struct LimitCheck<'a> {
    limits: &'a wgpu::Limits,
}

impl<'a> LimitCheck<'a> {
    /// Checks against `limits`.
    pub fn new(limits: &'a wgpu::Limits) -> Self {
        Self { limits }
    }

    fn at_most(what: &str, limit: &'static str, requested: u64, allowed: u64) -> Result<()> {
        if requested > allowed {
            return Err(EngineError::LimitExceeded {
                what: what.to_string(),
                limit,
                requested,
                allowed,
            });
        }
        Ok(())
    }

    /// A buffer bound as storage: both the buffer size and the binding size limits apply.
    pub fn storage_buffer(&self, what: &str, bytes: u64) -> Result<()> {
        Self::at_most(what, "maxBufferSize", bytes, self.limits.max_buffer_size)?;
        Self::at_most(
            what,
            "maxStorageBufferBindingSize",
            bytes,
            self.limits.max_storage_buffer_binding_size,
        )
    }

    /// Workgroup (shared) memory of one kernel.
    pub fn workgroup_storage(&self, what: &str, bytes: u64) -> Result<()> {
        Self::at_most(
            what,
            "maxComputeWorkgroupStorageSize",
            bytes,
            self.limits.max_compute_workgroup_storage_size as u64,
        )
    }

    /// Invocations in one workgroup.
    pub fn workgroup_size(&self, what: &str, invocations: u64) -> Result<()> {
        Self::at_most(
            what,
            "maxComputeInvocationsPerWorkgroup",
            invocations,
            self.limits.max_compute_invocations_per_workgroup as u64,
        )?;
        Self::at_most(
            what,
            "maxComputeWorkgroupSizeX",
            invocations,
            self.limits.max_compute_workgroup_size_x as u64,
        )
    }

    /// Workgroups along one dispatch dimension.
    pub fn workgroups(&self, what: &str, count: u64) -> Result<()> {
        Self::at_most(
            what,
            "maxComputeWorkgroupsPerDimension",
            count,
            self.limits.max_compute_workgroups_per_dimension as u64,
        )
    }

    /// The maximum workgroup memory in bytes.
    pub fn max_workgroup_storage(&self) -> u64 {
        self.limits.max_compute_workgroup_storage_size as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_names_limit_and_values() {
        let limits = wgpu::Limits::downlevel_defaults();
        let err = LimitCheck::new(&limits)
            .storage_buffer("weights", 1 << 40)
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("maxBufferSize"), "{msg}");
        assert!(msg.contains(&(1u64 << 40).to_string()), "{msg}");
        assert!(msg.contains("weights"), "{msg}");
        assert!(LimitCheck::new(&limits).storage_buffer("w", 1024).is_ok());
        let err = LimitCheck::new(&limits)
            .workgroup_storage("toy", 1 << 20)
            .unwrap_err();
        assert!(err.to_string().contains("maxComputeWorkgroupStorageSize"));
    }
}
