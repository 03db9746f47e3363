//! Zip archives of folders, as the page saves them (a browser downloads one file, not a
//! folder): TransformerLens checkpoints and SAELens SAEs both go through here.

/// One archive holding each `(path, bytes)` entry, uncompressed (f32 weights barely compress,
/// and storing keeps saving instant); errors are the zip crate's message.
pub fn write_stored<'a>(
    entries: impl IntoIterator<Item = (String, &'a [u8])>,
) -> Result<Vec<u8>, String> {
    use std::io::Write;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(false);
    for (path, bytes) in entries {
        w.start_file(path, options).map_err(|e| e.to_string())?;
        w.write_all(bytes).map_err(|e| e.to_string())?;
    }
    Ok(w.finish().map_err(|e| e.to_string())?.into_inner())
}
