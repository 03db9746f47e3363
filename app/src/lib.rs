//! The app, shared by the page (`src/main.rs`) and its training worker
//! (`src/bin/mechlab-worker.rs`): the labs (`labs/<lab>/`: page, form, charts, and what its
//! runs do in the worker), what the labs share (`components`, `charts`, `url`, the page's
//! `run_controller`), the message protocol between page and worker, and the worker itself.
//!
//! trunk builds both binaries from this crate (see `index.html`): the page as the main module,
//! the worker with wasm-bindgen's no-modules target, started by the page from
//! `mechlab-worker-loader.js`.

pub mod charts;
pub mod components;
pub mod download;
pub mod labs;
pub mod protocol;
pub mod run_controller;
pub mod url;
pub mod worker;

use wasm_bindgen::JsCast;

/// Resolves after `ms` milliseconds via `setTimeout`, letting the event loop handle events; works
/// on the page and in a worker alike.
pub async fn sleep_ms(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        let global = js_sys::global();
        let set_timeout = js_sys::Reflect::get(&global, &"setTimeout".into())
            .ok()
            .and_then(|f| f.dyn_into::<js_sys::Function>().ok());
        match set_timeout {
            Some(f) => {
                let _ = f.call2(&global, &resolve, &ms.into());
            }
            None => {
                let _ = resolve.call0(&wasm_bindgen::JsValue::UNDEFINED);
            }
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}
