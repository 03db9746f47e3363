//! Installing what the build and the tests need, when it is missing: the wasm32 target, trunk,
//! wasm-bindgen-cli at exactly the version in Cargo.lock, lavapipe, Chromium and ChromeDriver,
//! and the end-to-end tests' npm packages. Everything comes from the package registries.

use std::path::PathBuf;
use std::process::Command;

/// trunk's version: 0.22 needs a newer rustc than this toolchain.
const TRUNK_VERSION: &str = "0.21.14";
/// Debian packages: lavapipe (software Vulkan) for native GPU tests, Chromium for browser tests.
const APT_PACKAGES: &[&str] = &[
    "mesa-vulkan-drivers",
    "libvulkan1",
    "chromium",
    "chromium-driver",
];

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// A command run from the workspace root.
pub fn cmd(program: &str, args: &[&str]) -> Command {
    let mut c = Command::new(program);
    c.args(args).current_dir(root());
    c
}

/// Runs a command with inherited output; a non-zero exit is an error naming the command.
pub fn run(c: &mut Command) -> Result<(), String> {
    let status = c
        .status()
        .map_err(|e| format!("cannot start {:?}: {e}", c.get_program()))?;
    if !status.success() {
        return Err(format!(
            "{:?} {:?} failed ({status})",
            c.get_program(),
            c.get_args().collect::<Vec<_>>()
        ));
    }
    Ok(())
}

/// The standard output of a command, or None when it cannot run or fails.
pub fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = cmd(program, args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// True when running under CI, where anything missing is a failure rather than a skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The wasm-bindgen version Cargo.lock pins; the CLI must match it exactly.
pub fn locked_wasm_bindgen() -> Result<String, String> {
    let lock = std::fs::read_to_string(root().join("Cargo.lock"))
        .map_err(|e| format!("reading Cargo.lock: {e}"))?;
    let mut lines = lock.lines();
    while let Some(l) = lines.next() {
        if l == "name = \"wasm-bindgen\"" {
            if let Some(v) = lines.next().and_then(|v| v.strip_prefix("version = \"")) {
                return Ok(v.trim_end_matches('"').to_string());
            }
        }
    }
    Err("Cargo.lock has no wasm-bindgen entry".into())
}

fn ensure_wasm_target() -> Result<(), String> {
    let installed = output("rustup", &["target", "list", "--installed"]).unwrap_or_default();
    if !installed
        .lines()
        .any(|l| l.trim() == "wasm32-unknown-unknown")
    {
        run(&mut cmd(
            "rustup",
            &["target", "add", "wasm32-unknown-unknown"],
        ))?;
    }
    Ok(())
}

fn ensure_cargo_tool(bin: &str, krate: &str, version: &str, locked: bool) -> Result<(), String> {
    let have = output(bin, &["--version"]).unwrap_or_default();
    if have.split_whitespace().any(|w| w == version) {
        return Ok(());
    }
    println!("installing {krate} {version} (a few minutes, once)");
    let mut args = vec!["install", krate, "--version", version];
    if locked {
        args.push("--locked");
    }
    // A build tool runs for seconds and is built once per machine: without the fat LTO and
    // single codegen unit of trunk's release profile, and at opt-level 1, it builds in about
    // half the time on a 2-core machine (trunk: 13 min against 6, see the README's tests).
    run(cmd("cargo", &args)
        .env("CARGO_PROFILE_RELEASE_LTO", "false")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "16")
        .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "1"))
}

/// The wasm target, wasm-bindgen-cli (also brings wasm-bindgen-test-runner) and trunk.
pub fn ensure_web_build_tools() -> Result<(), String> {
    ensure_wasm_target()?;
    let wb = locked_wasm_bindgen()?;
    // wasm-bindgen-cli's own lock file pins a webpki-roots the registry no longer serves.
    ensure_cargo_tool("wasm-bindgen", "wasm-bindgen-cli", &wb, false)?;
    ensure_cargo_tool("trunk", "trunk", TRUNK_VERSION, true)
}

/// lavapipe, Chromium and ChromeDriver from Debian's packages (needs root; elsewhere the
/// caller decides whether their absence is a skip or a failure).
pub fn ensure_system_packages() -> Result<(), String> {
    let missing: Vec<&str> = APT_PACKAGES
        .iter()
        .copied()
        .filter(|p| {
            !output("dpkg-query", &["-W", "-f=${Status}", p])
                .is_some_and(|s| s.contains("install ok installed"))
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    println!("installing {}", missing.join(" "));
    run(&mut cmd("apt-get", &["update", "-qq"]))?;
    let mut args = vec!["install", "-y", "-qq"];
    args.extend(&missing);
    run(cmd("apt-get", &args).env("DEBIAN_FRONTEND", "noninteractive"))
}

/// The end-to-end tests' npm packages (playwright-core, which drives the system Chromium).
pub fn ensure_e2e_packages() -> Result<(), String> {
    let dir = root().join("tests/e2e");
    if dir.join("node_modules/playwright-core").exists() {
        return Ok(());
    }
    run(cmd("npm", &["ci", "--no-audit", "--no-fund"]).current_dir(dir))
}
