//! Test support: one test body, run natively (on lavapipe or any adapter) and in the browser
//! (wasm-bindgen-test on WebGPU). GPU tests are named `gpu_*` so the harness can tell them apart;
//! a missing adapter fails them, it never skips them.

use crate::gpu::Gpu;

/// Opens a device or fails the test with the reason.
pub async fn gpu() -> Gpu {
    match Gpu::new().await {
        Ok(g) => g,
        Err(e) => {
            panic!("GPU tests need an adapter (lavapipe natively, WebGPU in the browser): {e}")
        }
    }
}

/// Declares an async GPU test taking `&Gpu`, for native and browser alike.
#[macro_export]
macro_rules! gpu_test {
    ($name:ident, $body:path) => {
        #[cfg(not(target_arch = "wasm32"))]
        #[test]
        fn $name() {
            pollster::block_on(async { $body(&$crate::testing::gpu().await).await })
        }
        #[cfg(target_arch = "wasm32")]
        #[wasm_bindgen_test::wasm_bindgen_test]
        async fn $name() {
            $body(&$crate::testing::gpu().await).await
        }
    };
}

/// As [`gpu_test!`], the body run once for each variant of the row kernels (see
/// `Gpu::row_lanes`): a row one invocation's loop, as software adapters take it, and a row
/// over 32 invocations and a tree, as GPUs do, so both are tested on any adapter.
#[macro_export]
macro_rules! gpu_rows_test {
    ($name:ident, $body:path) => {
        #[cfg(not(target_arch = "wasm32"))]
        #[test]
        fn $name() {
            pollster::block_on(async {
                let gpu = $crate::testing::gpu().await;
                for lanes in [1, 32] {
                    eprintln!("row kernels with {lanes} invocation(s) a row");
                    $body(&gpu.with_row_lanes(lanes)).await
                }
            })
        }
        #[cfg(target_arch = "wasm32")]
        #[wasm_bindgen_test::wasm_bindgen_test]
        async fn $name() {
            let gpu = $crate::testing::gpu().await;
            for lanes in [1, 32] {
                $body(&gpu.with_row_lanes(lanes)).await
            }
        }
    };
}

/// Lets the browser's event loop run (a zero-delay timer) so a long CPU test on the page's main
/// thread does not starve ChromeDriver, which gives up on a renderer silent for 30 s; does
/// nothing natively.
pub async fn yield_now() {
    #[cfg(target_arch = "wasm32")]
    {
        let promise = js_sys::Promise::new(&mut |resolve, _| {
            let global = js_sys::global();
            let set_timeout = js_sys::Reflect::get(&global, &"setTimeout".into())
                .ok()
                .and_then(|f| wasm_bindgen::JsCast::dyn_into::<js_sys::Function>(f).ok());
            match set_timeout {
                Some(f) => {
                    let _ = f.call2(&global, &resolve, &0.into());
                }
                None => {
                    let _ = resolve.call0(&wasm_bindgen::JsValue::UNDEFINED);
                }
            }
        });
        let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
    }
}

/// Declares an async test without a GPU, for native (`pollster`) and browser alike.
#[macro_export]
macro_rules! cpu_test {
    ($name:ident, $body:path) => {
        #[cfg(not(target_arch = "wasm32"))]
        #[test]
        fn $name() {
            pollster::block_on($body())
        }
        #[cfg(target_arch = "wasm32")]
        #[wasm_bindgen_test::wasm_bindgen_test]
        async fn $name() {
            $body().await
        }
    };
}

/// Asserts `|a - b| <= atol + rtol |b|` elementwise, naming the first index that fails.
pub fn assert_close(what: &str, a: &[f32], b: &[f32], atol: f32, rtol: f32) {
    assert_eq!(a.len(), b.len(), "{what}: lengths differ");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= atol + rtol * y.abs(),
            "{what}[{i}]: {x} vs reference {y} (atol {atol}, rtol {rtol})"
        );
    }
}
