//! The worker's one GPU: opened on first use, shared by every run, named for the page (browsers
//! keep the adapter's name from wgpu, so it asks `navigator.gpu` for what it does share).

use mechlab_engine::gpu::Gpu;
use mechlab_engine::EngineError;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use super::{post, with_state};
use crate::protocol::FromWorker;
use crate::sleep_ms;

pub(super) enum GpuState {
    Unknown,
    Probing,
    /// The device and the name the page shows for it.
    Ready(Box<Gpu>, String),
    Missing(String),
}

/// The worker's one GPU and its name, opened on first use; the error is why there is none.
/// The first call tells the page which backend runs train on.
pub(super) async fn gpu() -> Result<(Gpu, String), String> {
    loop {
        let state = with_state(|s| match &s.gpu {
            GpuState::Unknown => {
                s.gpu = GpuState::Probing;
                None
            }
            GpuState::Probing => Some(None),
            GpuState::Ready(g, name) => Some(Some(Ok((Gpu::clone(g), name.clone())))),
            GpuState::Missing(why) => Some(Some(Err(why.clone()))),
        });
        match state {
            Some(Some(done)) => return done,
            Some(None) => sleep_ms(20).await,
            None => break,
        }
    }
    let (state, out, msg) = match Gpu::new().await {
        Ok(g) => {
            let name = adapter_label(&g).await;
            let msg = FromWorker::Backend {
                description: format!("WebGPU: {name}"),
                webgpu: true,
            };
            (
                GpuState::Ready(Box::new(g.clone()), name.clone()),
                Ok((g, name)),
                msg,
            )
        }
        Err(e) => {
            let why = match e {
                // wgpu's message lists every native backend it was built without; the
                // browser case has one simple cause.
                EngineError::NoAdapter(_) if !has_navigator_gpu() => {
                    "this browser has no WebGPU".to_string()
                }
                EngineError::NoAdapter(_) => "the browser offered no WebGPU adapter".to_string(),
                e => e.to_string(),
            };
            let msg = FromWorker::Backend {
                description: format!("CPU (no WebGPU: {why})"),
                webgpu: false,
            };
            (GpuState::Missing(why.clone()), Err(why), msg)
        }
    };
    with_state(|s| s.gpu = state);
    post(&msg);
    out
}

/// The adapter's name. Browsers leave wgpu's `name` (the adapter's `description`) empty for
/// privacy, so then the worker asks `navigator.gpu` itself for the vendor and architecture it
/// does share.
async fn adapter_label(gpu: &Gpu) -> String {
    if !gpu.info.name.trim().is_empty() {
        return gpu.info.name.clone();
    }
    let kind = if gpu.info.device_type == wgpu::DeviceType::Cpu {
        "software adapter"
    } else {
        "adapter"
    };
    match browser_adapter_info().await {
        Some(info) => format!("{info} ({kind})"),
        None => format!("unnamed {kind}"),
    }
}

/// `navigator.gpu` of this global (a window's or a worker's), when there is one.
fn navigator_gpu() -> Option<JsValue> {
    let nav = js_sys::Reflect::get(&js_sys::global(), &"navigator".into()).ok()?;
    js_sys::Reflect::get(&nav, &"gpu".into())
        .ok()
        .filter(|g| !g.is_undefined() && !g.is_null())
}

fn has_navigator_gpu() -> bool {
    navigator_gpu().is_some()
}

/// `vendor architecture` from a fresh `navigator.gpu.requestAdapter()`, when the browser says.
async fn browser_adapter_info() -> Option<String> {
    use js_sys::Reflect;
    let gpu = navigator_gpu()?;
    let request: js_sys::Function = Reflect::get(&gpu, &"requestAdapter".into())
        .ok()?
        .dyn_into()
        .ok()?;
    let options = js_sys::Object::new();
    // The engine asks for the high-performance adapter; ask for the same one.
    Reflect::set(
        &options,
        &"powerPreference".into(),
        &"high-performance".into(),
    )
    .ok()?;
    let promise: js_sys::Promise = request.call1(&gpu, &options).ok()?.dyn_into().ok()?;
    let adapter = wasm_bindgen_futures::JsFuture::from(promise).await.ok()?;
    if adapter.is_null() || adapter.is_undefined() {
        return None;
    }
    let info = Reflect::get(&adapter, &"info".into()).ok()?;
    let field = |k: &str| {
        Reflect::get(&info, &k.into())
            .ok()
            .and_then(|v| v.as_string())
            .filter(|s| !s.is_empty())
    };
    let parts: Vec<String> = ["vendor", "architecture", "description"]
        .into_iter()
        .filter_map(field)
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}
