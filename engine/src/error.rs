//! The engine's one error type. Every message names the problem and the value that caused it,
//! because the UI and the CLI show these strings to people as they are.

use thiserror::Error;

/// Everything the engine can refuse or fail at.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum EngineError {
    /// No GPU adapter could be found (no WebGPU in the browser, no Vulkan/Metal/DX12 natively).
    #[error("no GPU adapter available: {0}")]
    NoAdapter(String),
    /// The adapter refused to create a device with the limits we asked for.
    #[error("could not create a GPU device: {0}")]
    DeviceRequest(String),
    /// A request would exceed one of the device's limits; names the limit and both values.
    #[error("{what} needs {limit} = {requested}, but this device allows at most {allowed}")]
    LimitExceeded {
        what: String,
        limit: &'static str,
        requested: u64,
        allowed: u64,
    },
    /// A config field is out of its valid range.
    #[error("invalid config: {field} = {value}: {reason}")]
    InvalidConfig {
        field: &'static str,
        value: String,
        reason: String,
    },
    /// A share link could not be decoded.
    #[error("bad link: {0}")]
    BadLink(String),
    /// A config written by hand (a JSON config file, or the page's controls) could not be read
    /// as a config; the message names the field, and the caller, which knows where the text
    /// came from, says so.
    #[error("{0}")]
    BadConfig(String),
    /// Training produced a non-finite loss.
    #[error("training diverged at step {step} (instance {instance}): the loss became {value}; lower the learning rate")]
    Diverged {
        step: u32,
        instance: u32,
        value: String,
    },
    /// The GPU reported a validation or out-of-memory error.
    #[error("GPU error: {0}")]
    Gpu(String),
    /// Reading a buffer back from the GPU failed.
    #[error("GPU readback failed: {0}")]
    Readback(String),
    /// An SAE in SAELens's layout could not be read; names the file, tensor or key at fault.
    #[error("cannot import SAE: {0}")]
    BadImport(String),
    /// A transformer checkpoint could not be read; names the file, tensor or key at fault.
    #[error("cannot load model: {0}")]
    BadModel(String),
    /// Text to train on could not be used (not UTF-8, empty, too large, too little for the
    /// vocabulary); the message names the file and the problem.
    #[error("{0}")]
    BadText(String),
    /// A hook to capture or replace does not exist in the model, cannot be replaced, or the
    /// replacement does not fit it; the message names the hook and the problem.
    #[error("hook {hook}: {reason}")]
    BadHook { hook: String, reason: String },
    /// A tensor handed to a kernel has a shape the kernel cannot take (a bug in the caller,
    /// named so it can be found).
    #[error("tensor {tensor}: {reason}")]
    Tensor { tensor: String, reason: String },
}

/// Result with the engine's error.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

impl EngineError {
    /// Shorthand for [`EngineError::InvalidConfig`].
    pub fn invalid(field: &'static str, value: impl ToString, reason: impl Into<String>) -> Self {
        EngineError::InvalidConfig {
            field,
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}
