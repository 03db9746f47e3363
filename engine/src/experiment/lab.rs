//! A link's experiment, whichever lab it is for: decoded by the codec of the lab its `lab=`
//! names (a link that names none is the Superposition lab's, the first format), so the page,
//! the worker and the CLI read one link the same way. The page sends the worker the link, not a
//! typed config, and the worker decodes it here.
//!
//! Each lab's experiment type implements [`LabExperiment`] in the lab's own folder; [`LABS`]
//! lists their codecs, and nothing else here names a lab. [`Experiment`] holds any of them, and
//! a lab's page and worker take their own type back out with [`Experiment::get`].

use super::link::{self, LinkConfig};
use crate::error::{EngineError, Result};
use crate::models::sae::link::SaeExperiment;
use crate::models::toy::config::SuperpositionConfig;
use crate::models::transformer::link::LmExperiment;
use std::any::Any;
use std::fmt;
use std::sync::Arc;

/// Every lab's link codec, the first being the one a link without `lab=` opens (links made
/// before there were labs). Adding a lab adds its line here.
pub const LABS: [LinkCodec; 3] = [
    LinkCodec::of::<SuperpositionConfig>(),
    LinkCodec::of::<SaeExperiment>(),
    LinkCodec::of::<LmExperiment>(),
];

/// What a lab's link describes: a config, a sweep of it, a pair. Implemented in the lab's own
/// folder, next to its config.
pub trait LabExperiment: fmt::Debug + PartialEq + Send + Sync + Sized + 'static {
    /// The config whose codec the link is read with: it names the lab (`lab=`).
    type Config: LinkConfig;

    /// Decodes a whole URL, a fragment or a query string with the lab's strict decoder.
    fn decode(text: &str) -> Result<Self>;

    /// The link fragment (without `#`) that [`LabExperiment::decode`] reads back as this.
    fn encode(&self) -> String;

    /// Steps the whole experiment trains: its runs one after another (a frontier), or side by
    /// side (a pair of language models, every toy instance).
    fn total_steps(&self) -> u32;
}

/// A lab's decoder, as [`LABS`] lists it.
#[derive(Clone, Copy)]
pub struct LinkCodec {
    /// The lab's name, as links spell it in `lab=`.
    pub lab: &'static str,
    decode: fn(&str) -> Result<Experiment>,
}

impl LinkCodec {
    /// The codec of `E`'s lab.
    pub const fn of<E: LabExperiment>() -> Self {
        Self {
            lab: <E::Config as LinkConfig>::LAB,
            decode: |text| E::decode(text).map(Experiment::new),
        }
    }
}

/// The names of every lab, as links spell them.
pub fn lab_names() -> Vec<&'static str> {
    LABS.iter().map(|c| c.lab).collect()
}

/// The one face of every lab's experiment that [`Experiment`] holds.
trait AnyExperiment: fmt::Debug + Send + Sync {
    fn lab(&self) -> &'static str;
    fn encode(&self) -> String;
    fn total_steps(&self) -> u32;
    fn as_any(&self) -> &dyn Any;
}

impl<E: LabExperiment> AnyExperiment for E {
    fn lab(&self) -> &'static str {
        <E::Config as LinkConfig>::LAB
    }

    fn encode(&self) -> String {
        LabExperiment::encode(self)
    }

    fn total_steps(&self) -> u32 {
        LabExperiment::total_steps(self)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// An experiment of any lab, as its link describes it. Cheap to clone.
#[derive(Clone)]
pub struct Experiment(Arc<dyn AnyExperiment>);

impl Experiment {
    /// Holds a lab's experiment.
    pub fn new<E: LabExperiment>(e: E) -> Self {
        Self(Arc::new(e))
    }

    /// The lab's own experiment, when it is `E`'s lab's.
    pub fn get<E: LabExperiment>(&self) -> Option<&E> {
        self.0.as_any().downcast_ref()
    }

    /// The lab's own experiment, or an error naming both labs (a lab's worker handed another
    /// lab's job).
    pub fn expect<E: LabExperiment>(&self) -> Result<&E> {
        self.get().ok_or_else(|| {
            EngineError::BadLink(format!(
                "this link is for the {} lab, not the {} lab",
                self.lab(),
                <E::Config as LinkConfig>::TITLE
            ))
        })
    }

    /// The lab's name, as links spell it in `lab=`.
    pub fn lab(&self) -> &'static str {
        self.0.lab()
    }

    /// Decodes a whole URL, a fragment or a query string with the strict decoder of the lab
    /// its `lab=` names (the first of [`LABS`] when it names none, or one that does not exist,
    /// which the codec refuses by name).
    pub fn decode(text: &str) -> Result<Self> {
        let pairs = link::fragment_pairs(text)?;
        let named = link::lab_of(&pairs);
        let codec = LABS.iter().find(|c| Some(c.lab) == named);
        (codec.unwrap_or(&LABS[0]).decode)(text)
    }

    /// The link fragment (without `#`) that [`Experiment::decode`] reads back as this.
    pub fn encode(&self) -> String {
        self.0.encode()
    }

    /// Steps the whole experiment trains.
    pub fn total_steps(&self) -> u32 {
        self.0.total_steps()
    }
}

impl fmt::Debug for Experiment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Two experiments are the same when they are one lab's and their links are the same.
impl PartialEq for Experiment {
    fn eq(&self, other: &Self) -> bool {
        self.lab() == other.lab() && self.encode() == other.encode()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::preset::LabPreset;
    use crate::models::sae::config::SaePreset;
    use crate::models::sae::link::Sweep;
    use crate::models::toy::config::Preset;
    use crate::models::transformer::lm::LmPreset;

    fn sae(sweep: &str) -> SaeExperiment {
        SaeExperiment {
            config: SaePreset::GroundTruth.config(),
            sweep: Sweep::decode(sweep).unwrap(),
        }
    }

    #[test]
    fn every_lab_s_link_decodes_to_its_experiment_and_back() {
        let mut cases: Vec<Experiment> = Preset::ALL
            .iter()
            .map(|p| Experiment::new(p.config()))
            .collect();
        cases.extend(SaePreset::ALL.iter().map(|p| {
            Experiment::new(SaeExperiment {
                config: p.config(),
                sweep: Sweep::Single,
            })
        }));
        cases.push(Experiment::new(sae("frontier:topk,relu_l1")));
        cases.push(Experiment::new(sae("a.k:8,32")));
        cases.extend(
            LmPreset::ALL
                .iter()
                .map(|p| Experiment::new(LmExperiment::preset(*p))),
        );
        for e in cases {
            let link = e.encode();
            let back = Experiment::decode(&format!("https://example.org/#{link}")).unwrap();
            assert_eq!(back, e, "{link}");
            assert_eq!(back.encode(), link);
            assert_eq!(back.lab(), e.lab());
        }
        // A frontier trains its runs one after another; a pair side by side.
        let f = Experiment::decode(&Experiment::new(sae("frontier:topk")).encode()).unwrap();
        let runs = f.expect::<SaeExperiment>().unwrap().runs().unwrap();
        assert!(runs.len() > 1);
        assert_eq!(f.total_steps(), runs.iter().map(|c| c.steps).sum::<u32>());
        let pair = Experiment::new(LmExperiment::preset(LmPreset::SoluVsGelu));
        assert_eq!(pair.total_steps(), LmPreset::SoluVsGelu.runs()[0].steps);
        // Each lab takes back its own type, and only its own.
        assert!(pair.get::<LmExperiment>().is_some());
        assert!(pair.get::<SaeExperiment>().is_none());
        let e = pair
            .expect::<SuperpositionConfig>()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("for the lm lab, not the Superposition lab"),
            "{e}"
        );
        // Two labs' experiments are never equal.
        assert_ne!(Experiment::new(SuperpositionConfig::default()), pair);
    }

    #[test]
    fn a_bad_link_names_its_problem() {
        let e = Experiment::decode("v=1&lab=nope").unwrap_err().to_string();
        assert!(e.contains("there is no such lab"), "{e}");
        let e = Experiment::decode("v=1&lab=sae&d_sae=x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("d_sae"), "{e}");
        assert!(Experiment::decode("garbage").is_err());
    }

    #[test]
    fn the_labs_are_listed_once_each_the_first_opening_links_without_a_lab() {
        assert_eq!(lab_names(), ["superposition", "sae", "lm"]);
        let toy = Experiment::decode(&SuperpositionConfig::default().to_link()).unwrap();
        assert_eq!(toy.lab(), LABS[0].lab);
    }
}
