//! The `mechlab` binary as a user runs it: good runs write the documented JSON, bad input exits
//! non-zero with the reason on stderr.

mod common;

use common::{mechlab, stderr};
use std::path::PathBuf;

fn tmp(name: &str) -> PathBuf {
    common::tmp("cli", name)
}

/// Checks a results bundle: `steps` steps trained, on the GPU or the CPU reference, and
/// `instances` models of the given shape.
fn check_bundle(
    path: &PathBuf,
    (steps, on_gpu): (u64, bool),
    instances: usize,
    n_hidden: usize,
    n_features: usize,
) {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    assert_eq!(v["config"]["n_features"], n_features);
    assert_eq!(v["steps"], steps, "steps trained");
    // The adapter's name, or "CPU reference" for a run that trained (or fell back) there.
    let on = v["adapter"].as_str().unwrap();
    assert_eq!(on != "CPU reference", on_gpu, "trained on {on}");
    let inst = v["instances"].as_array().unwrap();
    assert_eq!(inst.len(), instances);
    for i in inst {
        assert!(i["feature_probability"].is_number());
        assert_eq!(i["importance"].as_array().unwrap().len(), n_features);
        let w = i["W"].as_array().unwrap();
        assert_eq!(w.len(), n_hidden);
        assert!(w
            .iter()
            .all(|row| row.as_array().unwrap().len() == n_features));
        assert_eq!(i["b"].as_array().unwrap().len(), n_features);
        assert!(i["loss"].as_f64().unwrap().is_finite());
    }
}

#[test]
fn gpu_preset_run_writes_results() {
    let out = tmp("intro.json");
    let o = mechlab(&[
        "superposition",
        "--preset",
        "intro",
        "--steps",
        "60",
        "--engine",
        "gpu",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    check_bundle(&out, (60, true), 5, 2, 5);
}

#[test]
fn gpu_link_run_reproduces_config() {
    let out = tmp("link.json");
    let link = "https://mechlab.example/superposition#v=1&nf=3&nh=2&act=linear&imp=1&p=1,0.5&bs=32&steps=20&lr=0.01&seed=4";
    let o = mechlab(&[
        "superposition",
        "--link",
        link,
        "--engine",
        "gpu",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    check_bundle(&out, (20, true), 2, 2, 3);
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(v["config"]["seed"], 4);
    assert_eq!(v["config"]["relu"], false);
}

#[test]
fn cpu_engine_runs_without_a_gpu() {
    let out = tmp("cpu.json");
    let o = mechlab(&[
        "superposition",
        "--preset",
        "intro",
        "--steps",
        "5",
        "--engine",
        "cpu",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    check_bundle(&out, (5, false), 5, 2, 5);
}

#[test]
fn bad_input_exits_nonzero_with_reason() {
    let out = tmp("never.json");
    let o = out.to_str().unwrap();
    let bad_cfg = tmp("huge.json");
    std::fs::write(&bad_cfg, r#"{"n_features": 100000000}"#).unwrap();
    let binary = tmp("binary.json");
    std::fs::write(&binary, [0xff, 0xfe, 0x00, 0x80]).unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--link", "garbage"], "bad link"),
        (vec!["--link", ""], "empty"),
        (vec!["--link", "#v=7&nf=2"], "newer mechlab"),
        (vec!["--link", "#v=1&lr=-0.5"], "learning_rate"),
        (vec!["--link", "#v=1&p="], "no points"),
        (vec!["--preset", "nope"], "unknown preset"),
        (vec!["--config", bad_cfg.to_str().unwrap()], "n_features"),
        (vec!["--config", binary.to_str().unwrap()], "not UTF-8"),
        (vec!["--config", "/does/not/exist.json"], "cannot read"),
        (
            vec!["--link", "#v=1&lr=1e30&bs=16&steps=50", "--engine", "cpu"],
            "diverged at step",
        ),
    ];
    for (args, want) in cases {
        let mut full = vec!["superposition"];
        full.extend(&args);
        full.extend(["--out", o]);
        let r = mechlab(&full);
        assert!(!r.status.success(), "{args:?} should fail");
        let e = stderr(&r);
        assert!(e.contains(want), "{args:?}: stderr {e:?} lacks {want:?}");
    }
    assert!(!out.exists(), "a failed run must not write results");
}
