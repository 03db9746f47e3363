//! File downloads from the page: text as a Blob, canvases as PNG, both through a temporary
//! `<a download>` so the browser saves instead of navigating.

use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{Blob, BlobPropertyBag, HtmlAnchorElement, HtmlCanvasElement, Url};

fn save_blob(blob: &Blob, filename: &str) {
    let Some(doc) = web_sys::window().and_then(|w| w.document()) else {
        return;
    };
    let Ok(url) = Url::create_object_url_with_blob(blob) else {
        return;
    };
    if let Some(a) = doc
        .create_element("a")
        .ok()
        .and_then(|e| e.dyn_into::<HtmlAnchorElement>().ok())
    {
        a.set_href(&url);
        a.set_download(filename);
        if let Some(body) = doc.body() {
            let _ = body.append_child(&a);
            a.click();
            let _ = body.remove_child(&a);
        }
    }
    // Revoking at once can cancel the download in some browsers; give it a while first.
    let revoke = Closure::once_into_js(move || {
        let _ = Url::revoke_object_url(&url);
    });
    if let Some(w) = web_sys::window() {
        let _ =
            w.set_timeout_with_callback_and_timeout_and_arguments_0(revoke.unchecked_ref(), 30_000);
    }
}

/// Saves `text` as a file named `filename` of type `mime`.
pub fn text(filename: &str, mime: &str, text: &str) {
    let parts = js_sys::Array::of1(&JsValue::from_str(text));
    let opts = BlobPropertyBag::new();
    opts.set_type(mime);
    if let Ok(blob) = Blob::new_with_str_sequence_and_options(&parts, &opts) {
        save_blob(&blob, filename);
    }
}

/// Saves the canvas as a PNG named `filename`.
pub fn canvas_png(canvas: &HtmlCanvasElement, filename: &str) {
    let name = filename.to_string();
    let done = Closure::once_into_js(move |blob: JsValue| {
        if let Ok(blob) = blob.dyn_into::<Blob>() {
            save_blob(&blob, &name);
        }
    });
    let _ = canvas.to_blob(done.unchecked_ref());
}

/// Saves `bytes` as a file named `filename` of type `mime`.
pub fn bytes(filename: &str, mime: &str, bytes: &[u8]) {
    let array = js_sys::Uint8Array::from(bytes);
    let parts = js_sys::Array::of1(&array);
    let opts = BlobPropertyBag::new();
    opts.set_type(mime);
    if let Ok(blob) = Blob::new_with_u8_array_sequence_and_options(&parts, &opts) {
        save_blob(&blob, filename);
    }
}

/// `value` as pretty JSON for an export file, each number that is exactly an `f32` written as
/// the shortest decimal that reads back as that `f32` (`0.001`, not the `0.0010000000474974513`
/// serde_json writes once an `f32` has passed through a `serde_json::Value`). The engine's
/// numbers are `f32`, so their shortest `f32` form is the honest one.
pub fn json_text<T: serde::Serialize>(value: &T) -> Option<String> {
    let mut v = serde_json::to_value(value).ok()?;
    shortest_f32(&mut v);
    serde_json::to_string_pretty(&v).ok()
}

fn shortest_f32(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Number(n) if n.is_f64() => {
            let Some(f) = n.as_f64() else { return };
            let single = f as f32;
            if single as f64 == f {
                if let Some(m) = single
                    .to_string()
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                {
                    *n = m;
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(shortest_f32),
        Value::Object(fields) => fields.values_mut().for_each(shortest_f32),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::json_text;

    #[test]
    fn f32s_are_written_as_their_shortest_decimal() {
        #[derive(serde::Serialize)]
        struct Run {
            lr: f32,
            loss: f64,
            steps: u32,
        }
        let text = json_text(&serde_json::json!({
            "run": Run { lr: 0.001, loss: 1.0 / 3.0, steps: 7 },
            "points": [0.1f32, -2.5e-7f32],
        }))
        .unwrap();
        assert!(text.contains("\"lr\": 0.001,"), "{text}");
        // A number no f32 equals keeps every digit.
        assert!(text.contains("0.3333333333333333"), "{text}");
        assert!(text.contains("\"steps\": 7"), "{text}");
        assert!(text.contains("0.1,") && text.contains("-2.5e-7"), "{text}");
    }
}
