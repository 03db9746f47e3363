//! Running the `mechlab` binary as a user would, shared by the CLI test files.

use std::path::PathBuf;
use std::process::{Command, Output};

/// Runs `mechlab` with `args`.
pub fn mechlab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mechlab"))
        .args(args)
        .output()
        .expect("the binary runs")
}

/// A path under this test process's own temporary folder (`group` keeps test files apart).
pub fn tmp(group: &str, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mechlab-{group}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// The process's stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
