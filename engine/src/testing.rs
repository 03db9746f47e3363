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
