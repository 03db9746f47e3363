//! The SAE's directory on disk (native only: the browser hands the engine bytes, not paths).

use super::*;
use crate::error::EngineError;

/// Writes `cfg.json` and `sae_weights.safetensors` into `dir`, creating it if needed.
#[cfg(not(target_arch = "wasm32"))]
pub fn write_dir(dir: &std::path::Path, files: &SaeLensFiles) -> Result<()> {
    let fail = |what: &str, e: std::io::Error| {
        EngineError::invalid(
            "export directory",
            dir.display(),
            format!("cannot write {what}: {e}"),
        )
    };
    std::fs::create_dir_all(dir).map_err(|e| fail("the directory", e))?;
    std::fs::write(dir.join(CFG_FILENAME), &files.cfg_json).map_err(|e| fail(CFG_FILENAME, e))?;
    std::fs::write(dir.join(WEIGHTS_FILENAME), &files.weights)
        .map_err(|e| fail(WEIGHTS_FILENAME, e))?;
    Ok(())
}

/// Reads an SAELens SAE directory's two files (pass them to [`from_saelens`]).
#[cfg(not(target_arch = "wasm32"))]
pub fn read_dir(dir: &std::path::Path) -> Result<SaeLensFiles> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => bad(format!(
                "{} does not exist (an SAELens SAE directory holds {CFG_FILENAME} and \
                 {WEIGHTS_FILENAME})",
                path.display()
            )),
            _ => bad(format!("cannot read {}: {e}", path.display())),
        })
    };
    let cfg_json = String::from_utf8(read(CFG_FILENAME)?)
        .map_err(|e| bad(format!("{CFG_FILENAME} is not UTF-8 text: {e}")))?;
    let weights = read(WEIGHTS_FILENAME)?;
    Ok(SaeLensFiles { cfg_json, weights })
}
