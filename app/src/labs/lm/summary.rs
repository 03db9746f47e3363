//! What the Transformer page writes of a run in words, and the summary file it exports: plain
//! functions of the run's record, tested natively.

use super::view::LmRun;
use mechlab_engine::experiment::link::LinkConfig;

impl LmRun {
    /// Each model's latest training and validation loss, then the speed and the device.
    pub fn summary(&self) -> String {
        let mut parts: Vec<String> = self
            .names()
            .iter()
            .zip(&self.models)
            .map(|(n, m)| {
                let loss = m
                    .train
                    .points
                    .last()
                    .map_or(String::new(), |l| format!(" loss {l:.3}"));
                let val = m
                    .validation
                    .points
                    .last()
                    .map_or(String::new(), |v| format!(", validation {v:.3}"));
                format!("{n}:{loss}{val}")
            })
            .collect();
        parts.push(format!(
            "{:.0} tokens/s, {:.2} GFLOP/s on {}",
            self.tokens_per_sec,
            self.flops_per_sec / 1e9,
            self.adapter
        ));
        parts.join(" · ")
    }

    /// A pair's held-out losses side by side, once both have one.
    pub fn comparison(&self) -> Option<String> {
        let names = self.names();
        let vals = self.last_validation();
        match (names.as_slice(), vals.as_slice()) {
            ([a, b], [Some(x), Some(y)]) => Some(format!(
                "Held-out loss at step {}: {a} {x:.4} · {b} {y:.4} · {a} − {b} = {:+.4} nats per token",
                self.step,
                x - y
            )),
            _ => None,
        }
    }

    /// The run as the page exports it: the link, the device, the data, and per model its
    /// config, link, curves and latest sample.
    pub fn export(&self, link: Option<String>) -> serde_json::Value {
        let models: Vec<serde_json::Value> = self
            .names()
            .iter()
            .zip(&self.models)
            .zip(&self.runs)
            .map(|((name, m), cfg)| {
                serde_json::json!({
                    "act_fn": name,
                    "config": cfg,
                    "link": cfg.to_link(),
                    "train": {"steps": m.train.steps, "loss": m.train.points},
                    "validation": {"steps": m.validation.steps, "loss": m.validation.points},
                    "sample": m.sample,
                })
            })
            .collect();
        serde_json::json!({
            "link": link,
            "adapter": self.adapter,
            "data": self.data,
            "step": self.step,
            "models": models,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::view::ModelRecord;
    use super::*;
    use mechlab_engine::models::transformer::lm::LmPreset;

    fn pair() -> LmRun {
        let mut models = vec![ModelRecord::default(), ModelRecord::default()];
        for (i, m) in models.iter_mut().enumerate() {
            m.train.push(10, 3.0 + i as f32);
            m.validation.push(10, 2.5 + i as f32 / 2.0);
            m.sample = Some(format!("sample {i}"));
        }
        LmRun {
            runs: LmPreset::SoluVsGelu.runs(),
            models,
            step: 10,
            adapter: "lavapipe".into(),
            tokens_per_sec: 1234.4,
            flops_per_sec: 5.5e9,
            data: Some("characters".into()),
        }
    }

    #[test]
    fn a_pair_is_summarised_compared_and_exported() {
        let r = pair();
        assert_eq!(
            r.summary(),
            "solu_ln: loss 3.000, validation 2.500 · gelu: loss 4.000, validation 3.000 · \
             1234 tokens/s, 5.50 GFLOP/s on lavapipe"
        );
        assert_eq!(
            r.comparison().unwrap(),
            "Held-out loss at step 10: solu_ln 2.5000 · gelu 3.0000 · solu_ln − gelu = -0.5000 \
             nats per token"
        );
        let e = r.export(Some("v=1&lab=lm".into()));
        assert_eq!(e["link"], "v=1&lab=lm");
        assert_eq!(e["models"][1]["act_fn"], "gelu");
        assert_eq!(e["models"][0]["validation"]["loss"][0], 2.5);
        assert_eq!(e["models"][1]["sample"], "sample 1");
        // One model has nothing to compare with.
        let one = LmRun {
            runs: LmPreset::Tiny.runs(),
            models: vec![ModelRecord::default()],
            ..pair()
        };
        assert!(one.comparison().is_none());
        assert!(
            one.summary().starts_with("solu_ln: · "),
            "{}",
            one.summary()
        );
    }
}
