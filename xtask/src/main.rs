//! mechlab's build glue. `cargo xtask serve | test | bench | oracle | ci`: everything that
//! installs tools, builds the app or runs suites lives here and nowhere else.

mod bench;
mod bench_dispatch;
mod bench_lm;
mod bench_sae;
mod oracle;
mod suites;
mod tools;

use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask <command>
  serve            install what is missing, build the app (release) and serve it on http://127.0.0.1:8080
  test             install what is missing, then run every suite (native, GPU, browser, end-to-end)
  bench [NAME]     benchmarks (NAME: superposition, sae, dispatch, lm); results are appended to bench/RESULTS.md
                   (lm-profile: one Transformer step, each kernel timed alone, printed only)
  oracle           every hand-written gradient against burn's autodiff (builds the burn peer)
  ci               what CI runs: fmt --check, clippy -D warnings, then test";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("serve") => serve(),
        Some("test") => suites::run_all(),
        Some("bench") => bench::run(args.get(1).map(String::as_str)),
        Some("oracle") => oracle::run(),
        Some("ci") => ci(),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve() -> Result<(), String> {
    tools::ensure_web_build_tools()?;
    println!("building and serving the app on http://127.0.0.1:8080 (Ctrl-C stops)");
    tools::run(
        tools::cmd(
            "trunk",
            &[
                "serve",
                "--release",
                "--address",
                "127.0.0.1",
                "--port",
                "8080",
            ],
        )
        .current_dir(tools::root().join("app")),
    )
}

fn ci() -> Result<(), String> {
    tools::run(&mut tools::cmd("cargo", &["fmt", "--all", "--check"]))?;
    tools::run(&mut tools::cmd(
        "cargo",
        // Default members natively; the app is linted for the target it ships on, below.
        &["clippy", "--all-targets", "--", "-D", "warnings"],
    ))?;
    tools::ensure_web_build_tools()?;
    tools::run(&mut tools::cmd(
        "cargo",
        &[
            "clippy",
            "-p",
            "mechlab-app",
            "-p",
            "mechlab-engine",
            "--target",
            "wasm32-unknown-unknown",
            "--",
            "-D",
            "warnings",
        ],
    ))?;
    suites::run_all()
}
