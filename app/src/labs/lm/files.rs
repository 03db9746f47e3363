//! Files the user gives the Transformer page, by picker or by dropping them on the page: a text
//! to train on (`.txt`), or a checkpoint (a `.zip` of checkpoint folders, or a folder's files:
//! `config.json`, `model.safetensors`, `tokenizer.json`, …). Everything is checked on the page
//! before a run uses it, so a bad file is named at once and nothing else changes.

use crate::protocol::UserFile;
use mechlab_engine::data::text::Corpus;
use mechlab_engine::io::transformer_lens::{from_zip, to_zip, Checkpoint};
use serde_bytes::ByteBuf;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

/// What the user gave.
pub enum Given {
    /// A text to train on, checked: its name, size in characters, and bytes.
    Text(UserFile, usize),
    /// A checkpoint archive (a folder's loose files are archived on the page), with the
    /// checkpoints it holds.
    Checkpoint(UserFile, Vec<(String, Checkpoint)>),
}

/// The bytes of a browser `File`.
async fn read(file: &web_sys::File) -> Result<Vec<u8>, String> {
    let buf = JsFuture::from(file.array_buffer())
        .await
        .map_err(|_| format!("{}: the browser could not read the file", file.name()))?;
    Ok(js_sys::Uint8Array::new(&buf).to_vec())
}

/// The files of a list (a drop's).
pub fn of_list(files: &web_sys::FileList) -> Vec<web_sys::File> {
    (0..files.length()).filter_map(|i| files.get(i)).collect()
}

/// The files of a picker or a drop, as a text or a checkpoint; the error names what is wrong.
pub async fn take(files: Vec<web_sys::File>) -> Result<Given, String> {
    let Some(first) = files.first() else {
        return Err("no file was given".into());
    };
    let lower = |f: &web_sys::File| f.name().to_lowercase();
    if files.len() == 1
        && !lower(first).ends_with(".zip")
        && !lower(first).ends_with(".json")
        && !lower(first).ends_with(".safetensors")
    {
        let name = first.name();
        // Refused before reading, so a huge file costs nothing.
        if first.size() > mechlab_engine::data::text::corpus::MAX_TEXT_BYTES as f64 {
            return Err(format!(
                "{name}: {:.0} MiB is more text than a browser tab trains on (at most {} MiB)",
                first.size() / (1 << 20) as f64,
                mechlab_engine::data::text::corpus::MAX_TEXT_BYTES >> 20
            ));
        }
        let bytes = read(first).await?;
        let corpus = Corpus::from_file(&name, &bytes).map_err(|e| e.to_string())?;
        return Ok(Given::Text(
            UserFile {
                name,
                bytes: ByteBuf::from(bytes),
            },
            corpus.chars(),
        ));
    }
    if let Some(zip) = files.iter().find(|f| lower(f).ends_with(".zip")) {
        let name = zip.name();
        let bytes = read(zip).await?;
        let cks = from_zip(&bytes).map_err(|e| format!("{name}: {e}"))?;
        return Ok(Given::Checkpoint(
            UserFile {
                name,
                bytes: ByteBuf::from(bytes),
            },
            cks,
        ));
    }
    // A checkpoint folder's loose files.
    let mut named = vec![];
    for f in &files {
        named.push((f.name(), read(f).await?));
    }
    let ck = Checkpoint::read(&|n| {
        named
            .iter()
            .find(|(name, _)| name == n)
            .map(|(_, b)| b.clone())
    })
    .map_err(|e| format!("the files given: {e}"))?;
    let folder = ck.params.cfg.act_fn.name();
    let bytes = to_zip(&[(folder, &ck)]).map_err(|e| e.to_string())?;
    Ok(Given::Checkpoint(
        UserFile {
            name: "the files given".into(),
            bytes: ByteBuf::from(bytes),
        },
        vec![(folder.to_string(), ck)],
    ))
}

/// The files of a file input's change event. The input is emptied once they are taken, so
/// picking the same file again (to reopen it) is a change too.
pub fn of_input(ev: &web_sys::Event) -> Option<Vec<web_sys::File>> {
    let input = ev.target()?.dyn_into::<web_sys::HtmlInputElement>().ok()?;
    let files = of_list(&input.files()?);
    input.set_value("");
    Some(files)
}
