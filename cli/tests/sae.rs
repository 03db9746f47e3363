//! `mechlab sae` and `mechlab sae-inspect` as a user runs them: a run writes a SAELens folder,
//! metrics and the ground truth that reads back; bad input exits non-zero with the reason.

mod common;

use common::{mechlab, stderr};
use std::path::PathBuf;

fn tmp(name: &str) -> PathBuf {
    common::tmp("sae-cli", name)
}

#[test]
fn gpu_preset_run_writes_a_saelens_folder_that_reads_back() {
    for arch in ["topk", "jumprelu", "batch_topk"] {
        let out = tmp(arch);
        // Each asks for the GPU (lavapipe here), which auto would pass over for the CPU.
        let o = mechlab(&[
            "sae",
            "--preset",
            "ground-truth",
            "--architecture",
            arch,
            "--steps",
            "5",
            "--engine",
            "gpu",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{arch}: {}", stderr(&o));
        for f in [
            "cfg.json",
            "sae_weights.safetensors",
            "metrics.json",
            "ground_truth.safetensors",
        ] {
            assert!(out.join(f).exists(), "{arch}: {f} missing");
        }
        let m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap();
        let metrics = &m["metrics"];
        for key in [
            "mse",
            "normalized_mse",
            "explained_variance",
            "l0",
            "l1",
            "fraction_dead",
            "fraction_dense",
        ] {
            assert!(metrics[key].is_number(), "{arch}: metrics.{key} missing");
        }
        assert_eq!(metrics["ground_truth"]["n_true"], 512);
        // The MMCS the run printed is the one it wrote, and a cosine.
        let mmcs = metrics["ground_truth"]["mmcs"].as_f64().unwrap();
        assert!(mmcs > 0.0 && mmcs <= 1.0, "{arch}: MMCS {mmcs}");
        assert_eq!(m["source"]["n_features"], 512);
        let engine_used = m["engine"].as_str().unwrap();
        assert_ne!(engine_used, "CPU reference", "{arch}");
        let printed = format!("MMCS {mmcs:.3}");
        assert!(
            stderr(&o).contains(&printed),
            "{arch}: {printed} not in {}",
            stderr(&o)
        );

        let i = mechlab(&["sae-inspect", out.to_str().unwrap()]);
        assert!(i.status.success(), "{}", stderr(&i));
        let v: serde_json::Value = serde_json::from_slice(&i.stdout).unwrap();
        assert_eq!(v["d_in"], 64);
        assert_eq!(v["d_sae"], 1024);
    }
}

#[test]
fn bad_input_exits_nonzero_with_reason() {
    let out = tmp("never");
    let o = out.to_str().unwrap();
    let binary = tmp("binary.json");
    std::fs::write(&binary, [0xff, 0xfe, 0x00, 0x80]).unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--link", "#v=1&a.kind=topk&a.k=5000"], "k = 5000"),
        (
            vec!["--link", "#v=1&a.kind=relu_l1&a.l1_coefficient=-1"],
            "l1_coefficient = -1",
        ),
        (vec!["--link", "#v=3"], "newer"),
        (vec!["--preset", "nope"], "preset"),
        (vec!["--preset", "ground-truth", "--architecture", "resnet"], "architecture"),
        (vec!["--config", binary.to_str().unwrap()], "not UTF-8"),
        (vec!["--config", "/does/not/exist.json"], "cannot read"),
        (
            vec![
                "--link",
                "#v=1&a.kind=relu_l1&learning_rate=1e30&max_grad_norm=0&s.d=8&s.n_features=16&d_sae=16&batch_size=16&steps=200",
            ],
            "diverged at step",
        ),
    ];
    for (args, want) in cases {
        let mut full = vec!["sae"];
        full.extend(&args);
        full.extend(["--out", o]);
        let r = mechlab(&full);
        assert!(!r.status.success(), "{args:?} should fail");
        let e = stderr(&r);
        assert!(e.contains(want), "{args:?}: stderr {e:?} lacks {want:?}");
    }
    assert!(!out.exists(), "a failed run must not write a folder");

    // Import problems name the file or tensor.
    let empty = tmp("empty-import");
    std::fs::create_dir_all(&empty).unwrap();
    let r = mechlab(&["sae-inspect", empty.to_str().unwrap()]);
    assert!(!r.status.success());
    assert!(stderr(&r).contains("cfg.json"), "{}", stderr(&r));
}

/// `mechlab sae --link LINK --engine cpu --out OUT`.
fn train_link(link: &str, out: &std::path::Path) -> std::process::Output {
    mechlab(&[
        "sae",
        "--link",
        link,
        "--engine",
        "cpu",
        "--out",
        out.to_str().unwrap(),
    ])
}

/// A JSON file the run wrote.
fn json(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn a_sweep_link_trains_the_frontier_of_the_architectures_it_names() {
    let out = tmp("sweep");
    let link = "http://127.0.0.1:8080/#v=1&lab=sae&a.kind=topk&a.k=4&s.kind=ground_truth&s.d=16\
                &s.n_features=40&d_sae=64&batch_size=128&steps=20&sweep=frontier:topk,relu_l1";
    let o = train_link(link, &out);
    assert!(o.status.success(), "{}", stderr(&o));
    let f = json(&out.join("frontier.json"));
    assert_eq!(f["architectures"], serde_json::json!(["relu_l1", "topk"]));
    let points = f["points"].as_array().unwrap();
    assert_eq!(points.len(), 10);
    let ks: Vec<f64> = points
        .iter()
        .filter(|p| p["architecture"] == "topk")
        .map(|p| p["sparsity"].as_f64().unwrap())
        .collect();
    assert_eq!(ks, [2.0, 4.0, 8.0, 16.0, 32.0]);
    for p in points {
        // Each point was measured: a finite error, latents firing, TopK at most k a row (20
        // steps are too few to beat the mean, so the error is not bounded by 1).
        let nmse = p["normalized_mse"].as_f64().unwrap();
        let l0 = p["l0"].as_f64().unwrap();
        assert!(nmse.is_finite() && nmse > 0.0, "{p}");
        assert!(l0 > 0.0, "{p}");
        if p["architecture"] == "topk" {
            assert!(l0 <= p["sparsity"].as_f64().unwrap(), "{p}");
        }
        assert!(out
            .join(p["dir"].as_str().unwrap())
            .join("cfg.json")
            .exists());
    }
}

#[test]
fn a_sweep_over_a_field_trains_each_value_in_its_own_folder() {
    let out = tmp("key-sweep");
    let link = "v=1&lab=sae&a.kind=topk&a.k=4&s.kind=ground_truth&s.d=16&s.n_features=40\
                &d_sae=64&batch_size=128&steps=10&sweep=a.k:2,8";
    let o = train_link(link, &out);
    assert!(o.status.success(), "{}", stderr(&o));
    let f = json(&out.join("frontier.json"));
    assert_eq!(f["sweep"], "a.k:2,8");
    let points = f["points"].as_array().unwrap();
    let dirs: Vec<&str> = points.iter().map(|p| p["dir"].as_str().unwrap()).collect();
    assert_eq!(dirs, ["a.k-2", "a.k-8"]);
    let ks: Vec<f64> = points
        .iter()
        .map(|p| p["sparsity"].as_f64().unwrap())
        .collect();
    assert_eq!(ks, [2.0, 8.0]);
    for d in dirs {
        let cfg = json(&out.join(d).join("cfg.json"));
        assert_eq!(
            cfg["k"].as_f64(),
            Some(if d.ends_with('2') { 2.0 } else { 8.0 }),
            "{cfg}"
        );
    }
    // A value the config cannot take is named before anything trains.
    let bad = link.replace("a.k:2,8", "a.k:2,500");
    let o = train_link(&bad, &tmp("bad-sweep"));
    assert!(!o.status.success());
    assert!(stderr(&o).contains("at `500`"), "{}", stderr(&o));
}

#[test]
fn a_short_config_file_takes_its_architectures_defaults() {
    let dir = tmp("config");
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("short.json");
    std::fs::write(
        &cfg,
        r#"{"architecture": {"kind": "gated"}, "source": {"kind": "ground_truth", "d": 8, "n_features": 20},
            "d_sae": 32, "batch_size": 64, "steps": 3}"#,
    )
    .unwrap();
    let out = dir.join("run");
    let o = mechlab(&[
        "sae",
        "--config",
        cfg.to_str().unwrap(),
        "--engine",
        "cpu",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(m["config"]["architecture"]["kind"], "gated");
    assert_eq!(m["config"]["architecture"]["l1_coefficient"], 5.0);

    std::fs::write(&cfg, r#"{"architecture": {"kind": "topk", "k": "many"}}"#).unwrap();
    let o = mechlab(&[
        "sae",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("is not a valid SAE config: `a.k=many`: must be a whole number"),
        "{err}"
    );
}
