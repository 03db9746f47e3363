//! `cargo xtask test`: every suite, each ending with one summary line, then a total line.
//! Under CI a missing GPU adapter or browser fails its suite; elsewhere it is counted as skipped.

use crate::tools::{self, cmd, in_ci, root};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// Counts of one suite.
#[derive(Default, Debug, Clone, Copy)]
struct Counts {
    passed: u32,
    failed: u32,
    skipped: u32,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, o: Self) {
        self.passed += o.passed;
        self.failed += o.failed;
        self.skipped += o.skipped;
    }
}

/// Runs a command, echoing its output, and returns (success, output lines).
fn run_capturing(c: &mut Command) -> (bool, Vec<String>) {
    let child = c.stdout(Stdio::piped()).spawn();
    let mut child = match child {
        Ok(ch) => ch,
        Err(e) => {
            return (
                false,
                vec![format!("cannot start {:?}: {e}", c.get_program())],
            )
        }
    };
    let mut lines = Vec::new();
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            println!("{line}");
            lines.push(line);
        }
    }
    let ok = child.wait().map(|s| s.success()).unwrap_or(false);
    (ok, lines)
}

/// Per-test lines of the Rust test harness (`test NAME ... ok|FAILED|ignored`), split by
/// whether the test's name starts with `gpu_`.
fn rust_counts(lines: &[String]) -> (Counts, Counts) {
    let (mut cpu, mut gpu) = (Counts::default(), Counts::default());
    for l in lines {
        let Some(rest) = l.strip_prefix("test ") else {
            continue;
        };
        let Some((name, outcome)) = rest.rsplit_once(" ... ") else {
            continue;
        };
        let short = name.rsplit("::").next().unwrap_or(name);
        let c = if short.starts_with("gpu_") {
            &mut gpu
        } else {
            &mut cpu
        };
        match outcome.trim() {
            "ok" => c.passed += 1,
            "FAILED" => c.failed += 1,
            o if o.starts_with("ignored") => c.skipped += 1,
            _ => {}
        }
    }
    (cpu, gpu)
}

/// node --test's closing lines: `# pass N`, `# fail N`, `# skipped N`.
fn node_counts(lines: &[String]) -> Counts {
    let mut c = Counts::default();
    for l in lines {
        let mut it = l.split_whitespace();
        if it.next() != Some("#") {
            continue;
        }
        let (key, n) = (it.next(), it.next().and_then(|n| n.parse().ok()));
        match (key, n) {
            (Some("pass"), Some(n)) => c.passed = n,
            (Some("fail"), Some(n)) => c.failed = n,
            (Some("skipped"), Some(n)) => c.skipped += n,
            (Some("todo"), Some(n)) => c.skipped += n,
            _ => {}
        }
    }
    c
}

/// `cargo xtask bench smoke`'s lines: `bench NAME (smoke size) ... ok` for each benchmark that
/// ran; those that did not are failed.
fn smoke_counts(lines: &[String]) -> Counts {
    let passed = crate::bench::SMOKE_BENCHMARKS
        .iter()
        .filter(|b| {
            lines
                .iter()
                .any(|l| *l == format!("bench {b} (smoke size) ... ok"))
        })
        .count() as u32;
    Counts {
        passed,
        failed: crate::bench::SMOKE_BENCHMARKS.len() as u32 - passed,
        skipped: 0,
    }
}

struct Report {
    rows: Vec<(String, Counts, String)>,
}

impl Report {
    fn add(&mut self, suite: &str, mut c: Counts, ok: bool, note: &str) {
        if !ok && c.failed == 0 {
            // The runner failed without reporting a failed test (a build error, a crash).
            c.failed += 1;
        }
        self.rows.push((suite.to_string(), c, note.to_string()));
    }

    fn missing(&mut self, suite: &str, why: &str) {
        if in_ci() {
            self.add(suite, Counts::default(), false, &format!("FAILED: {why}"));
        } else {
            let c = Counts {
                skipped: 1,
                ..Default::default()
            };
            self.add(suite, c, true, &format!("skipped: {why}"));
        }
    }
}

fn has_native_adapter() -> bool {
    pollster::block_on(mechlab_engine::gpu::Gpu::new()).is_ok()
}

/// Runs every suite and prints one line per suite and a total.
pub fn run_all() -> Result<(), String> {
    let mut report = Report { rows: Vec::new() };
    let system = tools::ensure_system_packages();
    if let Err(e) = &system {
        println!("could not install system packages: {e}");
    }

    // 1. Native: engine, CLI and xtask unit tests, and the GPU tests on the native adapter.
    let gpu_ok = has_native_adapter();
    let mut args = vec!["test", "--workspace", "--no-fail-fast"];
    if !gpu_ok && !in_ci() {
        args.extend(["--", "--skip", "gpu_"]);
    }
    let (ok, lines) = run_capturing(&mut cmd("cargo", &args));
    let (cpu, gpu) = rust_counts(&lines);
    report.add("native unit", cpu, ok || gpu.failed > 0, "");
    if gpu_ok || in_ci() {
        let note = if gpu_ok { "" } else { "no GPU adapter" };
        report.add("native GPU (lavapipe)", gpu, ok || cpu.failed > 0, note);
    } else {
        report.missing(
            "native GPU (lavapipe)",
            "no GPU adapter (install mesa-vulkan-drivers)",
        );
    }

    // 2. Every benchmark at its smoke size (seconds), so that one that breaks is seen.
    if gpu_ok {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let (ok, lines) = run_capturing(Command::new(exe).args(["bench", "smoke"]));
        report.add("benchmarks (smoke)", smoke_counts(&lines), ok, "");
    } else {
        report.missing("benchmarks (smoke)", "no GPU adapter");
    }

    // 3. The engine's tests inside headless Chromium on WebGPU (SwiftShader).
    let browser = std::path::Path::new("/usr/bin/chromedriver").exists();
    let web_tools = tools::ensure_web_build_tools();
    match (&web_tools, browser) {
        (Err(e), _) => report.missing("browser engine (wasm)", e),
        (_, false) => report.missing(
            "browser engine (wasm)",
            "no ChromeDriver (apt-get install chromium-driver)",
        ),
        (Ok(()), true) => {
            let (ok, lines) = run_capturing(
                cmd(
                    "cargo",
                    &[
                        "test",
                        "-p",
                        "mechlab-engine",
                        "--target",
                        "wasm32-unknown-unknown",
                    ],
                )
                .env("CHROMEDRIVER", "/usr/bin/chromedriver")
                .env(
                    "WASM_BINDGEN_TEST_WEBDRIVER_JSON",
                    root().join("engine/webdriver.json"),
                )
                .env("WASM_BINDGEN_TEST_TIMEOUT", "600"),
            );
            let (cpu, gpu) = rust_counts(&lines);
            let mut all = cpu;
            all += gpu;
            report.add("browser engine (wasm)", all, ok, "");
        }
    }

    // 4. End to end: the built app in headless Chromium, driven by Playwright.
    match (&web_tools, browser) {
        (Err(e), _) => report.missing("browser app (e2e)", e),
        (_, false) => report.missing("browser app (e2e)", "no Chromium"),
        (Ok(()), true) => match tools::ensure_e2e_packages().and_then(|()| build_app()) {
            Err(e) => report.add("browser app (e2e)", Counts::default(), false, &e),
            Ok(()) => {
                let (ok, lines) = run_capturing(
                    cmd("node", &["--test", "--test-concurrency=1", "tests/e2e/"])
                        .env("MECHLAB_DIST", root().join("app/dist")),
                );
                report.add("browser app (e2e)", node_counts(&lines), ok, "");
            }
        },
    }

    println!("\n== summary ==");
    let mut total = Counts::default();
    for (suite, c, note) in &report.rows {
        println!(
            "{suite}: {} passed, {} failed, {} skipped{}",
            c.passed,
            c.failed,
            c.skipped,
            if note.is_empty() {
                String::new()
            } else {
                format!(" ({note})")
            }
        );
        total += *c;
    }
    println!(
        "{} passed, {} failed, {} skipped",
        total.passed, total.failed, total.skipped
    );
    if total.failed > 0 {
        return Err(format!("{} failed", total.failed));
    }
    Ok(())
}

/// Builds the app as `cargo xtask serve` does (trunk, release) into app/dist.
pub fn build_app() -> Result<(), String> {
    tools::run(cmd("trunk", &["build", "--release"]).current_dir(root().join("app")))
}
