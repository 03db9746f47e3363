//! The page's address: reading its hash, writing a lab's link into it without a reload, and the
//! address to share. Every lab keeps its state here.

/// The page address's hash, with its `#` (empty when there is none).
pub fn location_hash() -> String {
    web_sys::window()
        .and_then(|w| w.location().hash().ok())
        .unwrap_or_default()
}

/// Writes a link fragment into the hash without a reload or a history entry.
pub fn write_fragment(fragment: &str) {
    let Some(window) = web_sys::window() else {
        return;
    };
    let url = format!("#{fragment}");
    if window.location().hash().ok().as_deref() == Some(url.as_str()) {
        return;
    }
    if let Ok(history) = window.history() {
        // Replace, not push: every keystroke is a change, and Back should leave the page.
        let _ = history.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&url));
    }
}

/// The page's address with `fragment` as the hash (the address as it is when `None`).
pub fn share_url_for(fragment: Option<&str>) -> String {
    let Some(loc) = web_sys::window().map(|w| w.location()) else {
        return String::new();
    };
    match fragment {
        Some(f) => {
            let base = format!(
                "{}{}{}",
                loc.origin().unwrap_or_default(),
                loc.pathname().unwrap_or_default(),
                loc.search().unwrap_or_default()
            );
            format!("{base}#{f}")
        }
        None => loc.href().unwrap_or_default(),
    }
}
