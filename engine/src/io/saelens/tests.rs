//! Round trips, SAELens's own files and refusals of the SAELens import and export.

use super::*;
use crate::io::safetensors::f32_bytes;
use crate::models::sae::arch;
use crate::models::sae::config::SaeConfig;
use crate::models::sae::config::{SourceConfig, ARCHITECTURE_NAMES};
use crate::models::sae::params::SaeParams;
use safetensors::tensor::TensorView;
use safetensors::Dtype;
use safetensors::SafeTensors;
use serde_json::{Map, Value};

const D_IN: usize = 5;
const D_SAE: usize = 7;

fn config(name: &str) -> SaeConfig {
    let mut cfg = SaeConfig {
        architecture: Architecture::by_name(name).unwrap(),
        d_sae: D_SAE as u32,
        ..SaeConfig::default()
    };
    if let SourceConfig::GroundTruth { d, .. } = &mut cfg.source {
        *d = D_IN as u32;
    }
    if let Architecture::TopK { k, .. } | Architecture::BatchTopK { k, .. } = &mut cfg.architecture
    {
        *k = 3;
    }
    assert_eq!(cfg.d_in() as usize, D_IN);
    cfg
}

/// Distinct, irregular values, so a transposed or shuffled tensor cannot pass.
fn wavy(len: usize, seed: f32) -> Vec<f32> {
    (0..len)
        .map(|i| ((i as f32 + 1.0) * 0.731 + seed).sin() * (1.0 + 0.1 * i as f32))
        .collect()
}

fn params(name: &str, input_scale: f32) -> SaeParams {
    let cfg = config(name);
    let mut p = SaeParams::zeros(D_IN, D_SAE, &cfg.architecture);
    p.w_enc = wavy(D_SAE * D_IN, 0.1);
    p.w_dec = wavy(D_SAE * D_IN, 1.7);
    p.b_enc = wavy(D_SAE, 2.3).iter().map(|v| v * 0.2).collect();
    p.b_dec = wavy(D_IN, 3.1);
    if name == "gated" {
        p.r_mag = wavy(D_SAE, 4.2).iter().map(|v| v * 0.3).collect();
        p.b_mag = wavy(D_SAE, 5.3).iter().map(|v| v * 0.2).collect();
    }
    if name == "jumprelu" {
        // Logs near 0 (thresholds near 1) and far from it.
        p.log_threshold = vec![-2.3, 0.7, -5.1, 2.5, -0.05, -3.0, 0.001];
    }
    if name == "batch_topk" {
        p.batch_threshold = 0.37;
    }
    p.input_scale = input_scale;
    p
}

fn export(name: &str, p: &SaeParams) -> SaeLensFiles {
    to_saelens(p, &config(name), "blocks.0.hook_resid_pre").unwrap()
}

fn import(files: &SaeLensFiles) -> Result<(SaeParams, ImportedCfg)> {
    from_saelens(&files.cfg_json, &files.weights)
}

fn import_err(cfg_json: &str, weights: &[u8]) -> String {
    from_saelens(cfg_json, weights).unwrap_err().to_string()
}

type Tensors = Vec<(String, Dtype, Vec<usize>, Vec<u8>)>;

fn tensors_of(weights: &[u8]) -> Tensors {
    let st = SafeTensors::deserialize(weights).unwrap();
    let mut t: Tensors = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
        .collect();
    t.sort_by(|a, b| a.0.cmp(&b.0));
    t
}

fn to_bytes(tensors: &Tensors) -> Vec<u8> {
    let views: Vec<_> = tensors
        .iter()
        .map(|(n, dt, s, b)| (n.clone(), TensorView::new(*dt, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize(views, None).unwrap()
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

fn edit_cfg(cfg_json: &str, f: impl FnOnce(&mut Map<String, Value>)) -> String {
    let mut v: Value = serde_json::from_str(cfg_json).unwrap();
    f(v.as_object_mut().unwrap());
    v.to_string()
}

/// SAELens's inference forward pass read off the format (not its code): encode then decode
/// from the file's tensors and cfg.json, for inputs `[batch, d_in]`.
fn saelens_forward(cfg_json: &str, weights: &[u8], x: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let cfg: Value = serde_json::from_str(cfg_json).unwrap();
    let t: std::collections::HashMap<String, Vec<f32>> = tensors_of(weights)
        .into_iter()
        .map(|(n, dt, _, b)| {
            let v = match dt {
                Dtype::F64 => b
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32)
                    .collect(),
                _ => f32s(&b),
            };
            (n, v)
        })
        .collect();
    let arch = cfg["architecture"].as_str().unwrap();
    let (d, n) = (
        cfg["d_in"].as_u64().unwrap() as usize,
        cfg["d_sae"].as_u64().unwrap() as usize,
    );
    let apply = cfg["apply_b_dec_to_input"].as_bool().unwrap_or(true);
    let rescale = cfg["rescale_acts_by_decoder_norm"]
        .as_bool()
        .unwrap_or(arch == "batchtopk");
    let (w_enc, w_dec, b_dec) = (&t["W_enc"], &t["W_dec"], &t["b_dec"]);
    let norms: Vec<f32> = (0..n)
        .map(|j| {
            w_dec[j * d..(j + 1) * d]
                .iter()
                .map(|w| w * w)
                .sum::<f32>()
                .sqrt()
        })
        .collect();
    let batch = x.len() / d;
    let mut f = vec![0f32; batch * n];
    let mut out = vec![0f32; batch * d];
    for b in 0..batch {
        let sae_in: Vec<f32> = (0..d)
            .map(|i| x[b * d + i] - if apply { b_dec[i] } else { 0.0 })
            .collect();
        let xw = |j: usize| (0..d).map(|i| sae_in[i] * w_enc[i * n + j]).sum::<f32>();
        let fr = &mut f[b * n..(b + 1) * n];
        match arch {
            "standard" => (0..n).for_each(|j| fr[j] = (xw(j) + t["b_enc"][j]).max(0.0)),
            "topk" => {
                let k = cfg["k"].as_u64().unwrap() as usize;
                let mut h: Vec<(usize, f32)> = (0..n)
                    .map(|j| {
                        let v = xw(j) + t["b_enc"][j];
                        (j, if rescale { v * norms[j] } else { v })
                    })
                    .collect();
                h.sort_by(|a, b| b.1.total_cmp(&a.1));
                h.iter().take(k).for_each(|&(j, v)| fr[j] = v.max(0.0));
            }
            "gated" => (0..n).for_each(|j| {
                let gate = xw(j) + t["b_gate"][j] > 0.0;
                let mag = xw(j) * t["r_mag"][j].exp() + t["b_mag"][j];
                fr[j] = if gate { mag.max(0.0) } else { 0.0 };
            }),
            "jumprelu" | "batchtopk" => (0..n).for_each(|j| {
                let mut h = xw(j) + t["b_enc"][j];
                if rescale {
                    h *= norms[j];
                }
                let theta = if arch == "jumprelu" {
                    t["threshold"][j]
                } else {
                    t["topk_threshold"][0]
                };
                fr[j] = if h > theta { h.max(0.0) } else { 0.0 };
            }),
            other => panic!("{other}"),
        }
        for i in 0..d {
            out[b * d + i] = b_dec[i]
                + (0..n)
                    .map(|j| {
                        let a = if rescale { fr[j] / norms[j] } else { fr[j] };
                        a * w_dec[j * d + i]
                    })
                    .sum::<f32>();
        }
    }
    (f, out)
}

fn inputs(batch: usize) -> Vec<f32> {
    (0..batch * D_IN)
        .map(|i| ((i as f32) * 1.37).cos() * 1.5 + 0.2)
        .collect()
}

fn assert_close(a: &[f32], b: &[f32], tol: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol * (1.0 + x.abs().max(y.abs())),
            "{what}[{i}]: {x} vs {y}"
        );
    }
}

#[test]
fn a_zip_holds_the_folder_saelens_loads() {
    use std::io::Read;
    let files = export("topk", &params("topk", 1.0));
    let bytes = files.to_zip("mechlab-sae-topk").unwrap();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let names: Vec<String> = zip.file_names().map(|n| n.unwrap().to_string()).collect();
    assert_eq!(
        names,
        [
            "mechlab-sae-topk/cfg.json",
            "mechlab-sae-topk/sae_weights.safetensors"
        ]
    );
    let mut cfg = String::new();
    zip.by_name("mechlab-sae-topk/cfg.json")
        .unwrap()
        .read_to_string(&mut cfg)
        .unwrap();
    let mut weights = vec![];
    zip.by_name("mechlab-sae-topk/sae_weights.safetensors")
        .unwrap()
        .read_to_end(&mut weights)
        .unwrap();
    assert_eq!(
        SaeLensFiles {
            cfg_json: cfg,
            weights
        },
        files
    );
}

#[test]
fn every_architecture_round_trips() {
    for name in ARCHITECTURE_NAMES {
        let p = params(name, 1.0);
        let files = export(name, &p);
        let (q, cfg) = import(&files).unwrap();
        assert_eq!(cfg.architecture, name);
        assert_eq!((cfg.d_in, cfg.d_sae), (D_IN, D_SAE));
        assert_eq!(cfg.hook_name.as_deref(), Some("blocks.0.hook_resid_pre"));
        assert_eq!(cfg.normalize_activations, "none");
        assert_eq!(cfg.sae_lens_version.as_deref(), Some(SAELENS_VERSION));
        assert_eq!(cfg.k, config(name).architecture.k(), "{name}");
        assert_eq!(cfg.to_architecture().unwrap().k(), cfg.k);
        assert!(cfg.notes.is_empty(), "{name}: {:?}", cfg.notes);
        if name == "jumprelu" {
            // The threshold inference uses is identical; the logs are, far from 0.
            for (a, b) in p.log_threshold.iter().zip(&q.log_threshold) {
                assert_eq!(a.exp().to_bits(), b.exp().to_bits(), "{a} vs {b}");
                if a.abs() >= 2.0 {
                    assert_eq!(a.to_bits(), b.to_bits());
                }
            }
            let mut q2 = q.clone();
            q2.log_threshold = p.log_threshold.clone();
            assert_eq!(q2, p);
        } else {
            assert_eq!(q, p, "{name}");
        }
        // Export after import writes the same file.
        let again = export(name, &q);
        assert_eq!(again, files, "{name}");
    }
}

#[test]
fn exported_files_compute_what_the_engine_computes() {
    // With an input scale, so the folding is checked too: the engine sees `s x`, SAELens
    // the raw `x`, and SAELens's reconstruction is the engine's divided by s.
    let s = 1.7f32;
    let batch = 6;
    let x = inputs(batch);
    let xs: Vec<f32> = x.iter().map(|v| v * s).collect();
    for name in ARCHITECTURE_NAMES {
        let p = params(name, s);
        let a = config(name).architecture;
        let files = export(name, &p);
        let (f_ref, out_ref) = saelens_forward(&files.cfg_json, &files.weights, &x);
        let f = arch::encode(&a, &p, &xs, batch);
        let out: Vec<f32> = arch::decode(&p, &f, batch).iter().map(|v| v / s).collect();
        assert_close(&f, &f_ref, 1e-5, name);
        assert_close(&out, &out_ref, 1e-5, name);
        assert!(f.iter().any(|&v| v > 0.0), "{name}: nothing fired");
        assert!(f.contains(&0.0), "{name}: nothing was cut");
        // Imported, the parameters are the folded ones, exactly.
        let (q, cfg) = import(&files).unwrap();
        let mut want = p.folded();
        if name == "jumprelu" {
            want.log_threshold = q.log_threshold.clone();
        }
        assert_eq!(q, want, "{name}");
        let v: Value = serde_json::from_str(&files.cfg_json).unwrap();
        assert_eq!(v["normalize_activations"], "none");
        assert_eq!(v["metadata"]["mechlab_folded_input_scale"], s as f64);
        assert_eq!(cfg.normalize_activations, "none");
    }
}

#[test]
fn the_files_follow_saelens_names_and_shapes() {
    let expect: [(&str, &str, &[&str]); 5] = [
        ("relu_l1", "standard", &["W_dec", "W_enc", "b_dec", "b_enc"]),
        ("topk", "topk", &["W_dec", "W_enc", "b_dec", "b_enc"]),
        (
            "batch_topk",
            "jumprelu",
            &["W_dec", "W_enc", "b_dec", "b_enc", "threshold"],
        ),
        (
            "gated",
            "gated",
            &["W_dec", "W_enc", "b_dec", "b_gate", "b_mag", "r_mag"],
        ),
        (
            "jumprelu",
            "jumprelu",
            &["W_dec", "W_enc", "b_dec", "b_enc", "threshold"],
        ),
    ];
    for (name, saelens, names) in expect {
        let p = params(name, 1.0);
        let files = export(name, &p);
        let t = tensors_of(&files.weights);
        let got: Vec<&str> = t.iter().map(|t| t.0.as_str()).collect();
        assert_eq!(got, names, "{name}");
        for (n, dt, shape, bytes) in &t {
            assert_eq!(*dt, Dtype::F32);
            let want = match n.as_str() {
                "W_enc" => vec![D_IN, D_SAE],
                "W_dec" => vec![D_SAE, D_IN],
                "b_dec" => vec![D_IN],
                _ => vec![D_SAE],
            };
            assert_eq!(*shape, want, "{name} {n}");
            if n == "W_enc" {
                // [d_in, d_sae]: element (i, j) is latent j's weight on input i.
                let w = f32s(bytes);
                assert_eq!(w[2 * D_SAE + 6], p.w_enc[6 * D_IN + 2]);
            }
            if n == "threshold" && name == "batch_topk" {
                assert_eq!(f32s(bytes), vec![0.37; D_SAE]);
            }
            if n == "threshold" && name == "jumprelu" {
                assert_eq!(f32s(bytes)[1], 0.7f32.exp());
            }
        }
        let v: Value = serde_json::from_str(&files.cfg_json).unwrap();
        assert_eq!(v["architecture"], saelens);
        assert_eq!(v["d_in"], D_IN);
        assert_eq!(v["d_sae"], D_SAE);
        assert_eq!(v["dtype"], "float32");
        assert_eq!(v["device"], "cpu");
        assert_eq!(v["apply_b_dec_to_input"], true);
        assert_eq!(v["reshape_activations"], "none");
        assert_eq!(v["metadata"]["sae_lens_version"], SAELENS_VERSION);
        assert_eq!(v["metadata"]["hook_name"], "blocks.0.hook_resid_pre");
        assert_eq!(v["metadata"]["mechlab_architecture"], name);
        match name {
            "topk" => {
                assert_eq!(v["k"], 3);
                assert_eq!(v["rescale_acts_by_decoder_norm"], false);
            }
            "batch_topk" => assert_eq!(v["metadata"]["mechlab_k"], 3),
            _ => assert!(v.get("k").is_none()),
        }
    }
}

#[test]
fn a_jumprelu_from_elsewhere_stays_jumprelu() {
    // A uniform threshold without mechlab's note is what SAELens writes for a trained
    // BatchTopK; it is imported as the JumpReLU it is.
    let files = export("batch_topk", &params("batch_topk", 1.0));
    let cfg = edit_cfg(&files.cfg_json, |o| {
        o["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("mechlab_architecture");
    });
    let (q, c) = from_saelens(&cfg, &files.weights).unwrap();
    assert_eq!(c.architecture, "jumprelu");
    assert_eq!(c.saelens_architecture, "jumprelu");
    assert_eq!(c.k, None);
    assert!(q.log_threshold.iter().all(|l| l.exp() == 0.37));
    // Thresholds of 0 are plain ReLU: they come in near the smallest positive normal f32.
    let mut t = tensors_of(&files.weights);
    let th = t.iter_mut().find(|t| t.0 == "threshold").unwrap();
    th.3 = f32_bytes(&[0.0; D_SAE]);
    let (q, c) = from_saelens(&cfg, &to_bytes(&t)).unwrap();
    for l in &q.log_threshold {
        assert!((l.exp() / f32::MIN_POSITIVE - 1.0).abs() < 1e-4, "{l}");
    }
    assert!(c.notes[0].contains("at or below 0"), "{:?}", c.notes);
}

#[test]
fn saelens_training_batchtopk_checkpoints_import() {
    // SAELens's BatchTopK training checkpoint: architecture "batchtopk", a 0-d f64
    // `topk_threshold`, decoder norms not yet folded (rescale_acts_by_decoder_norm defaults
    // to true there).
    let p = params("topk", 1.0);
    let files = export("topk", &p);
    let mut t = tensors_of(&files.weights);
    t.push((
        "topk_threshold".into(),
        Dtype::F64,
        vec![],
        0.21f64.to_le_bytes().to_vec(),
    ));
    let weights = to_bytes(&t);
    let cfg = edit_cfg(&files.cfg_json, |o| {
        o.insert("architecture".into(), "batchtopk".into());
        o.insert("k".into(), Value::from(2.6));
        o.remove("rescale_acts_by_decoder_norm");
    });
    let (q, c) = from_saelens(&cfg, &weights).unwrap();
    assert_eq!(c.architecture, "batch_topk");
    assert_eq!(c.k, Some(3));
    assert_eq!(q.batch_threshold, 0.21);
    assert!(c.notes.iter().any(|n| n.contains("decoder norms")));
    for j in 0..D_SAE {
        assert!((q.decoder_norm(j) - 1.0).abs() < 1e-5);
    }
    let x = inputs(6);
    let (f_ref, out_ref) = saelens_forward(&cfg, &weights, &x);
    let a = c.to_architecture().unwrap();
    let f = arch::encode(&a, &q, &x, 6);
    assert_close(&f, &f_ref, 1e-5, "f");
    assert_close(&arch::decode(&q, &f, 6), &out_ref, 1e-5, "x_hat");
}

#[test]
fn topk_with_decoder_norm_rescaling_keeps_its_function() {
    let p = params("topk", 1.0);
    let files = export("topk", &p);
    let cfg = edit_cfg(&files.cfg_json, |o| {
        o.insert("rescale_acts_by_decoder_norm".into(), true.into());
    });
    let (q, c) = from_saelens(&cfg, &files.weights).unwrap();
    assert_eq!(c.k, Some(3));
    let x = inputs(8);
    let (f_ref, out_ref) = saelens_forward(&cfg, &files.weights, &x);
    let f = arch::encode(&c.to_architecture().unwrap(), &q, &x, 8);
    assert_close(&f, &f_ref, 1e-5, "f");
    assert_close(&arch::decode(&q, &f, 8), &out_ref, 1e-5, "x_hat");
}

#[test]
fn without_b_dec_on_the_input_the_encoder_biases_absorb_it() {
    for name in ["relu_l1", "gated", "jumprelu"] {
        let files = export(name, &params(name, 1.0));
        let cfg = edit_cfg(&files.cfg_json, |o| {
            o.insert("apply_b_dec_to_input".into(), false.into());
        });
        let (q, c) = from_saelens(&cfg, &files.weights).unwrap();
        assert!(c.notes.iter().any(|n| n.contains("apply_b_dec_to_input")));
        let x = inputs(6);
        let (f_ref, out_ref) = saelens_forward(&cfg, &files.weights, &x);
        let f = arch::encode(&c.to_architecture().unwrap(), &q, &x, 6);
        assert_close(&f, &f_ref, 1e-5, name);
        assert_close(&arch::decode(&q, &f, 6), &out_ref, 1e-5, name);
    }
}

#[test]
fn half_precision_weights_are_widened() {
    let files = export("gated", &params("gated", 1.0));
    let mut t = tensors_of(&files.weights);
    let mut want = Vec::new();
    for (i, (name, dt, _, bytes)) in t.iter_mut().enumerate() {
        let narrow: Vec<f32> = f32s(bytes);
        let (new, widened): (Vec<u8>, Vec<f32>) = if i % 2 == 0 {
            *dt = Dtype::F16;
            let h: Vec<half::f16> = narrow.iter().map(|&v| half::f16::from_f32(v)).collect();
            (
                h.iter().flat_map(|v| v.to_bits().to_le_bytes()).collect(),
                h.iter().map(|v| v.to_f32()).collect(),
            )
        } else {
            *dt = Dtype::BF16;
            let h: Vec<half::bf16> = narrow.iter().map(|&v| half::bf16::from_f32(v)).collect();
            (
                h.iter().flat_map(|v| v.to_bits().to_le_bytes()).collect(),
                h.iter().map(|v| v.to_f32()).collect(),
            )
        };
        *bytes = new;
        want.push((name.clone(), widened));
    }
    let cfg = edit_cfg(&files.cfg_json, |o| {
        o.insert("dtype".into(), "bfloat16".into());
    });
    let (q, _) = from_saelens(&cfg, &to_bytes(&t)).unwrap();
    for (name, w) in want {
        let got = match name.as_str() {
            "W_enc" => transpose(&q.w_enc, D_SAE, D_IN),
            "W_dec" => q.w_dec.clone(),
            "b_dec" => q.b_dec.clone(),
            "b_gate" => q.b_enc.clone(),
            "r_mag" => q.r_mag.clone(),
            "b_mag" => q.b_mag.clone(),
            other => panic!("{other}"),
        };
        assert_eq!(got, w, "{name}");
    }
}

#[test]
fn ground_truth_features_are_written_as_one_tensor() {
    let f = wavy(12, 0.5);
    let bytes = ground_truth_safetensors(&f, 4, 3).unwrap();
    let t = tensors_of(&bytes);
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].0, "features");
    assert_eq!(t[0].1, Dtype::F32);
    assert_eq!(t[0].2, vec![4, 3]);
    assert_eq!(f32s(&t[0].3), f);
    let e = ground_truth_safetensors(&f, 5, 3).unwrap_err().to_string();
    assert!(e.contains("12 values") && e.contains("5 × 3"), "{e}");
}

#[test]
fn export_refuses_what_saelens_cannot_hold() {
    let mut p = params("relu_l1", 1.0);
    p.w_dec[3] = f32::NAN;
    let e = to_saelens(&p, &config("relu_l1"), "")
        .unwrap_err()
        .to_string();
    assert!(e.contains("W_dec[3] = NaN"), "{e}");

    let mut p = params("batch_topk", 1.0);
    p.batch_threshold = -0.5;
    let e = to_saelens(&p, &config("batch_topk"), "")
        .unwrap_err()
        .to_string();
    assert!(e.contains("batch_threshold = -0.5"), "{e}");

    let p = params("relu_l1", 1.0);
    let e = to_saelens(&p, &config("gated"), "")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("r_mag = 0 values") && e.contains("needs 7"),
        "{e}"
    );

    let e = to_saelens(
        &params("topk", 1.0),
        &SaeConfig {
            d_sae: 9,
            ..config("topk")
        },
        "",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("[9, 5]"), "{e}");

    // No hook name is written as null, not "".
    let files = to_saelens(&params("topk", 1.0), &config("topk"), "").unwrap();
    let (_, c) = import(&files).unwrap();
    assert_eq!(c.hook_name, None);
}

#[cfg(not(target_arch = "wasm32"))]
fn scratch_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("mechlab-saelens-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[cfg(not(target_arch = "wasm32"))]
#[test]
fn directories_round_trip_and_missing_files_are_named() {
    let dir = scratch_dir("dir");
    let files = export("jumprelu", &params("jumprelu", 1.0));
    write_dir(&dir.join("sae"), &files).unwrap();
    assert_eq!(read_dir(&dir.join("sae")).unwrap(), files);

    std::fs::remove_file(dir.join("sae").join(WEIGHTS_FILENAME)).unwrap();
    let e = read_dir(&dir.join("sae")).unwrap_err().to_string();
    assert!(
        e.starts_with("cannot import SAE: ")
            && e.contains("sae_weights.safetensors does not exist"),
        "{e}"
    );
    let e = read_dir(&dir.join("nowhere")).unwrap_err().to_string();
    assert!(e.contains("cfg.json does not exist"), "{e}");

    std::fs::write(dir.join("sae").join(CFG_FILENAME), [0xff, 0xfe, 0x00]).unwrap();
    let e = read_dir(&dir.join("sae")).unwrap_err().to_string();
    assert!(e.contains("cfg.json is not UTF-8"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn malformed_cfg_json_is_named() {
    let files = export("topk", &params("topk", 1.0));
    let w = &files.weights;
    let e = import_err("{\"architecture\": \"topk\",", w);
    assert!(e.contains("cfg.json is not valid JSON"), "{e}");
    assert!(import_err("[1, 2]", w).contains("not a JSON object"));

    let no_d_in = edit_cfg(&files.cfg_json, |o| {
        o.remove("d_in");
    });
    assert!(import_err(&no_d_in, w).contains("cfg.json has no \"d_in\""));
    let text_d_sae = edit_cfg(&files.cfg_json, |o| {
        o.insert("d_sae".into(), "seven".into());
    });
    let e = import_err(&text_d_sae, w);
    assert!(
        e.contains("d_sae = \"seven\" is not a positive whole number"),
        "{e}"
    );
    let big_k = edit_cfg(&files.cfg_json, |o| {
        o.insert("k".into(), 8.into());
    });
    let e = import_err(&big_k, w);
    assert!(e.contains("k = 8 must be between 1 and d_sae = 7"), "{e}");
    let bad_dtype = edit_cfg(&files.cfg_json, |o| {
        o.insert("dtype".into(), "int8".into());
    });
    assert!(import_err(&bad_dtype, w).contains("dtype \"int8\""));
    let layer_norm = edit_cfg(&files.cfg_json, |o| {
        o.insert("normalize_activations".into(), "layer_norm".into());
    });
    let e = import_err(&layer_norm, w);
    assert!(e.contains("normalize_activations = \"layer_norm\""), "{e}");
    let no_arch = edit_cfg(&files.cfg_json, |o| {
        o.remove("architecture");
    });
    assert!(import_err(&no_arch, w).contains("cfg.json has no \"architecture\""));
}

#[test]
fn older_configs_use_saelens_defaults() {
    // A 5.x topk config: no version, no architecture, k under activation_fn_kwargs,
    // hook_point, a boolean normalize_activations.
    let files = export("topk", &params("topk", 1.0));
    let cfg = edit_cfg(&files.cfg_json, |o| {
        o.remove("architecture");
        o.remove("metadata");
        o.remove("k");
        o.insert("activation_fn".into(), "topk".into());
        o.insert("activation_fn_kwargs".into(), serde_json::json!({ "k": 2 }));
        o.insert("hook_point".into(), "blocks.3.hook_resid_post".into());
        o.insert("normalize_activations".into(), true.into());
    });
    let (_, c) = from_saelens(&cfg, &files.weights).unwrap();
    assert_eq!(c.architecture, "topk");
    assert_eq!(c.k, Some(2));
    assert_eq!(c.hook_name.as_deref(), Some("blocks.3.hook_resid_post"));
    assert_eq!(c.normalize_activations, "expected_average_only_in");
    assert_eq!(c.sae_lens_version, None);
}

#[test]
fn unknown_architectures_are_named() {
    let files = export("relu_l1", &params("relu_l1", 1.0));
    let cfg = edit_cfg(&files.cfg_json, |o| {
        o.insert("architecture".into(), "matryoshka_batchtopk".into());
    });
    let e = import_err(&cfg, &files.weights);
    assert!(
        e.contains("unknown architecture \"matryoshka_batchtopk\"")
            && e.contains("standard, topk, gated, jumprelu"),
        "{e}"
    );
}

#[test]
fn missing_and_unexpected_tensors_are_named() {
    let files = export("gated", &params("gated", 1.0));
    let mut t = tensors_of(&files.weights);
    t.retain(|t| t.0 != "r_mag");
    let e = import_err(&files.cfg_json, &to_bytes(&t));
    assert!(
        e.contains("has no tensor \"r_mag\"") && e.contains("a gated SAE has"),
        "{e}"
    );
    // A gated SAE has no b_enc: SAELens would refuse it too.
    let mut t = tensors_of(&files.weights);
    t.push((
        "b_enc".into(),
        Dtype::F32,
        vec![D_SAE],
        f32_bytes(&[0.0; D_SAE]),
    ));
    let e = import_err(&files.cfg_json, &to_bytes(&t));
    assert!(e.contains("unexpected tensor \"b_enc\""), "{e}");
    // A unit scaling factor is dropped, as SAELens drops it; another is refused.
    for (scale, ok) in [(1.0f32, true), (2.0, false)] {
        let mut t = tensors_of(&files.weights);
        t.push((
            "scaling_factor".into(),
            Dtype::F32,
            vec![D_SAE],
            f32_bytes(&[scale; D_SAE]),
        ));
        let r = from_saelens(&files.cfg_json, &to_bytes(&t));
        assert_eq!(r.is_ok(), ok, "{r:?}");
    }
}

#[test]
fn mis_shaped_tensors_are_named_with_both_shapes() {
    // The engine's own [d_sae, d_in] layout for W_enc is the likely mistake.
    let files = export("relu_l1", &params("relu_l1", 1.0));
    let mut t = tensors_of(&files.weights);
    t.iter_mut().find(|t| t.0 == "W_enc").unwrap().2 = vec![D_SAE, D_IN];
    let e = import_err(&files.cfg_json, &to_bytes(&t));
    assert!(
        e.contains("tensor \"W_enc\" has shape [7, 5], expected [5, 7] ([d_in, d_sae])"),
        "{e}"
    );
    let mut t = tensors_of(&files.weights);
    let b = t.iter_mut().find(|t| t.0 == "b_dec").unwrap();
    b.2 = vec![4];
    b.3.truncate(16);
    let e = import_err(&files.cfg_json, &to_bytes(&t));
    assert!(e.contains("\"b_dec\" has shape [4], expected [5]"), "{e}");
}

#[test]
fn unreadable_dtypes_are_refused_by_name() {
    let files = export("relu_l1", &params("relu_l1", 1.0));
    let mut t = tensors_of(&files.weights);
    t.iter_mut().find(|t| t.0 == "W_dec").unwrap().1 = Dtype::I32;
    let e = import_err(&files.cfg_json, &to_bytes(&t));
    assert!(
        e.contains("tensor \"W_dec\" has dtype I32") && e.contains("F32, F16, BF16 and F64"),
        "{e}"
    );
    let mut t = tensors_of(&files.weights);
    let b = t.iter_mut().find(|t| t.0 == "b_dec").unwrap();
    b.1 = Dtype::F64;
    b.3 = [1.0f64, 2.0, 1e300, 0.0, 0.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let e = import_err(&files.cfg_json, &to_bytes(&t));
    assert!(
        e.contains("\"b_dec\" holds 1e300 at index 2, beyond the range of f32"),
        "{e}"
    );
}

#[test]
fn corrupt_safetensors_are_refused_not_panicked_on() {
    let files = export("jumprelu", &params("jumprelu", 1.0));
    for cut in 0..files.weights.len() {
        let e = import_err(&files.cfg_json, &files.weights[..cut]);
        assert!(
            e.contains("sae_weights.safetensors is not a valid safetensors file"),
            "cut at {cut}: {e}"
        );
    }
    let mut w = files.weights.clone();
    w[9] = b'#';
    let e = import_err(&files.cfg_json, &w);
    assert!(e.contains("not a valid safetensors file"), "{e}");
}

#[test]
fn non_finite_values_are_located() {
    let files = export("topk", &params("topk", 1.0));
    for (name, at, value, want) in [
        (
            "b_dec",
            3,
            f32::NAN,
            "\"b_dec\" holds a non-finite value (NaN) at index 3",
        ),
        (
            "W_enc",
            2 * D_SAE + 4,
            f32::INFINITY,
            "\"W_enc\" holds a non-finite value (inf) at index [2, 4]",
        ),
    ] {
        let mut t = tensors_of(&files.weights);
        let b = t.iter_mut().find(|t| t.0 == name).unwrap();
        b.3[at * 4..at * 4 + 4].copy_from_slice(&value.to_le_bytes());
        let e = import_err(&files.cfg_json, &to_bytes(&t));
        assert!(e.contains(want), "{e}");
    }
}
