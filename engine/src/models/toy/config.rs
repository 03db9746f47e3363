//! The superposition experiment's config: one type shared by the UI, the CLI and the share link,
//! with the paper's presets and the validation every entry point runs before training.

use crate::error::{EngineError, Result};
use crate::experiment::link::LinkConfig;
use crate::experiment::preset::LabPreset;
use serde::{Deserialize, Serialize};

/// A swept quantity: an explicit list, or `count` points spaced evenly (in log space if `log`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Axis {
    /// These exact values.
    List(Vec<f32>),
    /// `count` points from `from` to `to` inclusive.
    Range {
        /// First value.
        from: f32,
        /// Last value.
        to: f32,
        /// Number of points (1 gives `from`).
        count: u32,
        /// Space the points evenly in log space.
        log: bool,
    },
}

impl Axis {
    /// Number of points.
    pub fn len(&self) -> usize {
        match self {
            Axis::List(v) => v.len(),
            Axis::Range { count, .. } => *count as usize,
        }
    }

    /// True when the axis has no points.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The points, in order.
    pub fn values(&self) -> Vec<f32> {
        match self {
            Axis::List(v) => v.clone(),
            Axis::Range {
                from,
                to,
                count,
                log,
            } => {
                let n = *count as usize;
                (0..n)
                    .map(|i| {
                        let t = if n == 1 {
                            0.0
                        } else {
                            i as f64 / (n - 1) as f64
                        };
                        if *log {
                            let (a, b) = ((*from as f64).ln(), (*to as f64).ln());
                            (a + t * (b - a)).exp() as f32
                        } else {
                            (*from as f64 + t * (*to as f64 - *from as f64)) as f32
                        }
                    })
                    .collect()
            }
        }
    }
}

/// Toy Models of Superposition (Elhage et al. 2022): `h = W x`, `x' = ReLU(Wᵀ h + b)`.
///
/// Instances are the grid `feature_probability × relative_importance`; each trains its own `W`, `b`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SuperpositionConfig {
    /// Number of input features (n).
    pub n_features: u32,
    /// Hidden dimensions (m), fewer than features for superposition.
    pub n_hidden: u32,
    /// ReLU on the output (the paper's model); false gives the linear model.
    pub relu: bool,
    /// Importance of feature i is `importance_decay^i`.
    pub importance_decay: f32,
    /// Probability that a feature is non-zero (1 − sparsity), one instance per value.
    pub feature_probability: Axis,
    /// When set, the last feature's importance is multiplied by each value (the phase diagram's
    /// relative importance), crossing with `feature_probability`.
    pub relative_importance: Option<Axis>,
    /// Samples per step.
    pub batch_size: u32,
    /// Training steps per instance.
    pub steps: u32,
    /// Adam learning rate.
    pub learning_rate: f32,
    /// Seed for data and initialisation.
    pub seed: u64,
}

impl Default for SuperpositionConfig {
    fn default() -> Self {
        Preset::Intro.config()
    }
}

/// One trained instance's fixed settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceSpec {
    /// Probability that each feature is non-zero.
    pub feature_probability: f32,
    /// Importance of each feature.
    pub importance: Vec<f32>,
    /// The relative importance of the last feature, for phase-diagram instances.
    pub relative_importance: Option<f32>,
}

impl crate::experiment::link::LinkConfig for SuperpositionConfig {
    const LAB: &'static str = "superposition";
    const TITLE: &'static str = "Superposition";
    const WRITES_LAB: bool = false;
    const FIELDS: &'static [crate::experiment::fields::Field] = fields::ALL;
    const LINK_IN_FIELD_ORDER: bool = true;

    // The short link keys (`nf`, `lr`) are the field table's keys.
    fn short_key(field: &str) -> Option<&'static str> {
        fields::ALL.iter().find(|f| f.name == field).map(|f| f.key)
    }

    fn field_of(key: &str) -> Option<&'static str> {
        fields::ALL.iter().find(|f| f.key == key).map(|f| f.name)
    }

    fn encode_field(key: &str, value: &serde_json::Value) -> Option<String> {
        match key {
            "act" => Some(if value.as_bool()? { "relu" } else { "linear" }.into()),
            "p" | "ri" => serde_json::from_value::<Axis>(value.clone())
                .ok()
                .map(|a| a.link_text()),
            _ => None,
        }
    }

    fn decode_field(key: &str, text: &str) -> Option<Result<serde_json::Value>> {
        let bad = |why: &str| EngineError::BadLink(format!("`{key}={text}`: {why}"));
        match key {
            "act" => Some(match text {
                "relu" => Ok(true.into()),
                "linear" => Ok(false.into()),
                _ => Err(bad("the activation must be relu or linear")),
            }),
            "p" | "ri" => Some(
                Axis::from_link_text(key, text)
                    .map(|a| serde_json::to_value(a).expect("axes serialise")),
            ),
            _ => None,
        }
    }

    fn validate(&self) -> Result<()> {
        SuperpositionConfig::validate(self)
    }
}

impl Axis {
    /// The link's spelling: `1,0.3,0.1`, or `log:FROM:TO:COUNT` (`lin:` for even spacing).
    pub fn link_text(&self) -> String {
        match self {
            Axis::List(v) => v.iter().map(f32::to_string).collect::<Vec<_>>().join(","),
            Axis::Range {
                from,
                to,
                count,
                log,
            } => format!("{}:{from}:{to}:{count}", if *log { "log" } else { "lin" }),
        }
    }

    /// Reads [`Axis::link_text`]'s spelling; errors name `key`.
    pub fn from_link_text(key: &str, s: &str) -> Result<Axis> {
        let bad = |why: &str| EngineError::BadLink(format!("`{key}={s}`: {why}"));
        // Spaces around parts are allowed: people type `1, 0.3, 0.1` into the page's controls.
        let parts: Vec<&str> = s.split(':').map(str::trim).collect();
        match parts.as_slice() {
            [kind @ ("log" | "lin"), from, to, count] => Ok(Axis::Range {
                from: from.parse().map_err(|_| bad("the start is not a number"))?,
                to: to.parse().map_err(|_| bad("the end is not a number"))?,
                count: count
                    .parse()
                    .map_err(|_| bad("the count is not a whole number"))?,
                log: *kind == "log",
            }),
            [list] => list
                .split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(|v| {
                    v.parse::<f32>()
                        .map_err(|_| bad(&format!("`{v}` is not a number")))
                })
                .collect::<Result<Vec<_>>>()
                .map(Axis::List),
            _ => Err(bad("expected a comma-separated list or log:FROM:TO:COUNT")),
        }
    }
}

/// Upper bounds that keep a config meaningful before any device limit is consulted.
pub const MAX_FEATURES: u32 = 16_384;
/// The largest hidden size accepted.
pub const MAX_HIDDEN: u32 = 4_096;
/// The most instances in one run.
pub const MAX_INSTANCES: usize = 65_535;

/// The fields: link key, the name errors use, label, hint and range, in the page's order.
pub mod fields {
    use super::{MAX_FEATURES, MAX_HIDDEN};
    use crate::experiment::fields::{Field, Range};

    /// `nf`.
    pub const N_FEATURES: Field = Field {
        key: "nf",
        name: "n_features",
        label: "Features",
        hint: "n, the inputs to compress",
        range: Range::Whole {
            min: 1,
            max: MAX_FEATURES as u64,
        },
    };
    /// `nh`.
    pub const N_HIDDEN: Field = Field {
        key: "nh",
        name: "n_hidden",
        label: "Hidden dims",
        hint: "m, fewer than n for superposition",
        range: Range::Whole {
            min: 1,
            max: MAX_HIDDEN as u64,
        },
    };
    /// `act`.
    pub const RELU: Field = Field {
        key: "act",
        name: "relu",
        label: "Output",
        hint: "ReLU(Wᵀ W x + b), or the linear model",
        range: Range::Choice(&[("relu", "ReLU"), ("linear", "linear")]),
    };
    /// `imp`.
    pub const IMPORTANCE_DECAY: Field = Field {
        key: "imp",
        name: "importance_decay",
        label: "Importance decay",
        hint: "feature i has importance decayⁱ",
        range: Range::Positive,
    };
    /// `p`.
    pub const FEATURE_PROBABILITY: Field = Field {
        key: "p",
        name: "feature_probability",
        label: "Feature probability",
        hint: "1 − sparsity: 1,0.3,0.1 or log:1:0.001:7",
        range: Range::Text("a list or lin:FROM:TO:COUNT / log:FROM:TO:COUNT, each value in (0, 1]"),
    };
    /// `ri`.
    pub const RELATIVE_IMPORTANCE: Field = Field {
        key: "ri",
        name: "relative_importance",
        label: "Relative importance",
        hint: "of the last feature, swept: e.g. log:0.1:10:20; empty for none",
        range: Range::Text(
            "a list or lin:FROM:TO:COUNT / log:FROM:TO:COUNT, each value in (0, 1000000]",
        ),
    };
    /// `bs`.
    pub const BATCH_SIZE: Field = Field {
        key: "bs",
        name: "batch_size",
        label: "Batch size",
        hint: "samples per step",
        range: Range::Whole {
            min: 1,
            max: 65_536,
        },
    };
    /// `steps`.
    pub const STEPS: Field = Field {
        key: "steps",
        name: "steps",
        label: "Steps",
        hint: "training steps",
        range: Range::Whole {
            min: 1,
            max: 10_000_000,
        },
    };
    /// `lr`.
    pub const LEARNING_RATE: Field = Field {
        key: "lr",
        name: "learning_rate",
        label: "Learning rate",
        hint: "Adam",
        range: Range::Positive,
    };
    /// `seed`.
    pub const SEED: Field = Field {
        key: "seed",
        name: "seed",
        label: "Seed",
        hint: "data and initialisation",
        range: Range::Whole {
            min: 0,
            max: u64::MAX,
        },
    };

    /// Every field, in the page's order.
    pub const ALL: &[Field] = &[
        N_FEATURES,
        N_HIDDEN,
        RELU,
        IMPORTANCE_DECAY,
        FEATURE_PROBABILITY,
        RELATIVE_IMPORTANCE,
        BATCH_SIZE,
        STEPS,
        LEARNING_RATE,
        SEED,
    ];
}

/// The lab's experiment is the config itself: every instance side by side.
impl crate::experiment::lab::LabExperiment for SuperpositionConfig {
    type Config = Self;

    fn decode(text: &str) -> Result<Self> {
        Self::from_link(text)
    }

    fn encode(&self) -> String {
        self.to_link()
    }

    fn total_steps(&self) -> u32 {
        self.steps
    }
}

impl SuperpositionConfig {
    /// The instances this config trains, probability-major.
    pub fn instances(&self) -> Vec<InstanceSpec> {
        let base: Vec<f32> = (0..self.n_features)
            .map(|i| self.importance_decay.powi(i as i32))
            .collect();
        let rel = self.relative_importance.as_ref().map(Axis::values);
        let mut out = Vec::new();
        for &p in &self.feature_probability.values() {
            match &rel {
                None => out.push(InstanceSpec {
                    feature_probability: p,
                    importance: base.clone(),
                    relative_importance: None,
                }),
                Some(rs) => {
                    for &r in rs {
                        let mut imp = base.clone();
                        if let Some(last) = imp.last_mut() {
                            *last *= r;
                        }
                        out.push(InstanceSpec {
                            feature_probability: p,
                            importance: imp,
                            relative_importance: Some(r),
                        });
                    }
                }
            }
        }
        out
    }

    /// Number of instances without building them.
    pub fn n_instances(&self) -> usize {
        self.feature_probability.len() * self.relative_importance.as_ref().map_or(1, Axis::len)
    }

    /// Checks every field; the error names the field, its value and the valid range.
    pub fn validate(&self) -> Result<()> {
        fields::N_FEATURES.check_whole(self.n_features as u64)?;
        fields::N_HIDDEN.check_whole(self.n_hidden as u64)?;
        fields::IMPORTANCE_DECAY.check_real(self.importance_decay)?;
        check_axis("feature_probability", &self.feature_probability, 0.0, 1.0)?;
        if let Some(r) = &self.relative_importance {
            check_axis("relative_importance", r, 0.0, 1e6)?;
        }
        let n = self.n_instances();
        if n == 0 {
            return Err(EngineError::invalid(
                "instances",
                0,
                "the sweep has no points: give at least one feature probability",
            ));
        }
        if n > MAX_INSTANCES {
            return Err(EngineError::invalid(
                "instances",
                n,
                format!("at most {MAX_INSTANCES} instances per run"),
            ));
        }
        fields::BATCH_SIZE.check_whole(self.batch_size as u64)?;
        fields::STEPS.check_whole(self.steps as u64)?;
        fields::LEARNING_RATE.check_real(self.learning_rate)?;
        Ok(())
    }

    /// Parameters per instance: `W` (n_hidden × n_features) and `b` (n_features).
    pub fn params_per_instance(&self) -> usize {
        (self.n_hidden as usize + 1) * self.n_features as usize
    }
}

fn check_axis(field: &'static str, axis: &Axis, lo_excl: f32, hi: f32) -> Result<()> {
    if let Axis::Range { count, .. } = axis {
        if *count > MAX_INSTANCES as u32 {
            return Err(EngineError::invalid(
                field,
                count,
                format!("at most {MAX_INSTANCES} points"),
            ));
        }
    }
    for v in axis.values() {
        if !(v.is_finite() && v > lo_excl && v <= hi) {
            return Err(EngineError::invalid(
                field,
                v,
                format!("every value must be in ({lo_excl}, {hi}]"),
            ));
        }
    }
    Ok(())
}

/// The paper's figures, each reproducible from one name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// 5 features in 2 dimensions: from two orthogonal features to a pentagon.
    Intro,
    /// 20 features in 5 dimensions over sparsity: more features represented as sparsity rises.
    SparsitySweep,
    /// 200 features in 20 dimensions: dimensions per feature sticking to fractions.
    Dimensionality,
    /// 2 features in 1 dimension over relative importance × density: the three phases.
    PhaseDiagram,
}

impl LabPreset for Preset {
    const ALL: &'static [Preset] = &[
        Preset::Intro,
        Preset::SparsitySweep,
        Preset::Dimensionality,
        Preset::PhaseDiagram,
    ];

    fn name(self) -> &'static str {
        match self {
            Preset::Intro => "intro",
            Preset::SparsitySweep => "sparsity-sweep",
            Preset::Dimensionality => "dimensionality",
            Preset::PhaseDiagram => "phase-diagram",
        }
    }

    fn shows(self) -> &'static str {
        match self {
            Preset::Intro => {
                "The paper's first figure: 5 features in 2 dimensions. Dense features (p = 1) \
                 keep the two most important and drop the rest; as p drops, the model packs \
                 more features in, until the sparsest instances hold all five in a pentagon."
            }
            Preset::SparsitySweep => {
                "20 features in 5 dimensions over seven sparsities: watch the WᵀW grid go \
                 from a clean diagonal (one feature a dimension) to off-diagonal interference \
                 as sparser features are superposed."
            }
            Preset::Dimensionality => {
                "200 equally important features in 20 dimensions: the dimensions each feature \
                 gets stick at fractions like 1/2 and 2/5 (antipodal pairs, pentagons), the \
                 paper's 'sticky' geometry."
            }
            Preset::PhaseDiagram => {
                "One dimension, two features, over sparsity and relative importance: three \
                 phases (the second feature dropped, stored alone, or superposed as an \
                 antipodal pair), as in the paper's phase diagram."
            }
        }
    }
}

impl Preset {
    /// The preset's config.
    pub fn config(self) -> SuperpositionConfig {
        match self {
            Preset::Intro => SuperpositionConfig {
                n_features: 5,
                n_hidden: 2,
                relu: true,
                importance_decay: 0.9,
                feature_probability: Axis::List(vec![1.0, 0.3, 0.1, 0.03, 0.01]),
                relative_importance: None,
                batch_size: 1024,
                steps: 10_000,
                learning_rate: 1e-3,
                seed: 0,
            },
            Preset::SparsitySweep => SuperpositionConfig {
                n_features: 20,
                n_hidden: 5,
                relu: true,
                importance_decay: 0.7,
                feature_probability: Axis::Range {
                    from: 1.0,
                    to: 0.001,
                    count: 7,
                    log: true,
                },
                relative_importance: None,
                batch_size: 1024,
                steps: 10_000,
                learning_rate: 1e-3,
                seed: 0,
            },
            Preset::Dimensionality => SuperpositionConfig {
                n_features: 200,
                n_hidden: 20,
                relu: true,
                importance_decay: 1.0,
                feature_probability: Axis::Range {
                    from: 1.0,
                    to: 0.01,
                    count: 16,
                    log: true,
                },
                relative_importance: None,
                batch_size: 1024,
                steps: 10_000,
                learning_rate: 1e-3,
                seed: 0,
            },
            Preset::PhaseDiagram => SuperpositionConfig {
                n_features: 2,
                n_hidden: 1,
                relu: true,
                importance_decay: 1.0,
                feature_probability: Axis::Range {
                    from: 1.0,
                    to: 0.01,
                    count: 40,
                    log: true,
                },
                relative_importance: Some(Axis::Range {
                    from: 0.1,
                    to: 10.0,
                    count: 40,
                    log: true,
                }),
                batch_size: 1024,
                steps: 10_000,
                learning_rate: 1e-3,
                seed: 0,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_validate_and_count_instances() {
        for &p in Preset::ALL {
            p.config().validate().unwrap();
            assert_eq!(Preset::from_name(p.name()).unwrap(), p);
        }
        assert_eq!(Preset::PhaseDiagram.config().n_instances(), 1600);
        assert_eq!(Preset::Intro.config().instances().len(), 5);
    }

    #[test]
    fn log_axis_hits_both_ends() {
        let v = Axis::Range {
            from: 1.0,
            to: 0.001,
            count: 4,
            log: true,
        }
        .values();
        let want = [1.0, 0.1, 0.01, 0.001];
        for (a, b) in v.iter().zip(want) {
            assert!((a / b - 1.0).abs() < 1e-5, "{v:?}");
        }
    }

    #[test]
    fn phase_diagram_scales_last_feature() {
        let mut c = Preset::PhaseDiagram.config();
        c.feature_probability = Axis::List(vec![0.5]);
        c.relative_importance = Some(Axis::List(vec![0.1, 10.0]));
        let inst = c.instances();
        assert_eq!(inst[0].importance, vec![1.0, 0.1]);
        assert_eq!(inst[1].importance, vec![1.0, 10.0]);
    }

    #[test]
    fn bad_configs_name_the_field() {
        let d = SuperpositionConfig::default;
        let cases = [
            (
                SuperpositionConfig {
                    n_features: 100_000_000,
                    ..d()
                },
                "n_features",
            ),
            (
                SuperpositionConfig {
                    learning_rate: -0.1,
                    ..d()
                },
                "learning_rate",
            ),
            (
                SuperpositionConfig {
                    learning_rate: f32::NAN,
                    ..d()
                },
                "learning_rate",
            ),
            (
                SuperpositionConfig {
                    feature_probability: Axis::List(vec![]),
                    ..d()
                },
                "no points",
            ),
            (
                SuperpositionConfig {
                    feature_probability: Axis::List(vec![1.5]),
                    ..d()
                },
                "feature_probability",
            ),
            (
                SuperpositionConfig {
                    batch_size: 0,
                    ..d()
                },
                "batch_size",
            ),
            (SuperpositionConfig { n_hidden: 0, ..d() }, "n_hidden"),
        ];
        for (c, want) in cases {
            let msg = c.validate().unwrap_err().to_string();
            assert!(msg.contains(want), "{msg} lacks {want}");
        }
    }
}
