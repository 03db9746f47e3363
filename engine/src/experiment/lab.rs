//! A link's experiment, whichever lab it is for: decoded by the codec of the lab its `lab=`
//! names (a link that names none is the Superposition lab's, the first format), so the page,
//! the worker and the CLI read one link the same way. The page sends the worker the link, not a
//! typed config, and the worker decodes it here.

use super::link::{self, LinkConfig};
use super::lm_link::LmExperiment;
use super::sae_link::{self, Sweep};
use super::superposition::SuperpositionConfig;
use crate::error::Result;
use crate::models::sae::config::SaeConfig;
use crate::models::transformer::lm::LmConfig;

/// An experiment, as one lab's link describes it.
#[derive(Debug, Clone, PartialEq)]
pub enum Experiment {
    /// Toy models of superposition: every instance of the config side by side.
    Superposition(SuperpositionConfig),
    /// Sparse autoencoders: one config, or a frontier sweep of it.
    Sae(SaeConfig, Sweep),
    /// Language models: one, or a pair identical but for the MLP activation.
    Lm(LmExperiment),
}

impl Experiment {
    /// Decodes a whole URL, a fragment or a query string with its lab's strict decoder.
    pub fn decode(text: &str) -> Result<Self> {
        let pairs = link::fragment_pairs(text)?;
        Ok(match link::lab_of(&pairs) {
            Some(lab) if lab == SaeConfig::LAB => {
                let (cfg, sweep) = sae_link::decode(text)?;
                Experiment::Sae(cfg, sweep)
            }
            Some(lab) if lab == LmConfig::LAB => Experiment::Lm(LmExperiment::decode(text)?),
            // `decode` names a lab that does not exist.
            _ => Experiment::Superposition(SuperpositionConfig::from_link(text)?),
        })
    }

    /// The link fragment (without `#`) that [`Experiment::decode`] reads back as this.
    pub fn encode(&self) -> String {
        match self {
            Experiment::Superposition(c) => c.to_link(),
            Experiment::Sae(c, s) => sae_link::encode_experiment(c, s),
            Experiment::Lm(e) => e.encode(),
        }
    }

    /// The SAE runs it trains, one after another (one, a frontier's or a key sweep's). Empty
    /// for other labs.
    pub fn sae_runs(&self) -> Result<Vec<SaeConfig>> {
        match self {
            Experiment::Sae(cfg, sweep) => sweep.runs(cfg),
            _ => Ok(Vec::new()),
        }
    }

    /// Steps the whole experiment trains: the runs one after another (a frontier), or side by
    /// side (a pair of language models, every toy instance).
    pub fn total_steps(&self) -> u32 {
        match self {
            Experiment::Superposition(c) => c.steps,
            Experiment::Sae(..) => self
                .sae_runs()
                .map_or(0, |runs| runs.iter().map(|c| c.steps).sum()),
            Experiment::Lm(e) => e.run.steps,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::lm_link::LmExperiment;
    use crate::experiment::preset::LabPreset;
    use crate::experiment::superposition::Preset;
    use crate::models::sae::config::SaePreset;
    use crate::models::transformer::lm::LmPreset;

    #[test]
    fn every_lab_s_link_decodes_to_its_experiment_and_back() {
        let frontier = Sweep::decode("frontier:topk,relu_l1").unwrap();
        let mut cases: Vec<Experiment> = Preset::ALL
            .iter()
            .map(|p| Experiment::Superposition(p.config()))
            .collect();
        cases.extend(
            SaePreset::ALL
                .iter()
                .map(|p| Experiment::Sae(p.config(), Sweep::Single)),
        );
        cases.push(Experiment::Sae(SaePreset::GroundTruth.config(), frontier));
        let by_k = Sweep::decode("a.k:8,32").unwrap();
        cases.push(Experiment::Sae(SaePreset::GroundTruth.config(), by_k));
        cases.extend(
            LmPreset::ALL
                .iter()
                .map(|p| Experiment::Lm(LmExperiment::preset(*p))),
        );
        for e in cases {
            let link = e.encode();
            let back = Experiment::decode(&format!("https://example.org/#{link}")).unwrap();
            assert_eq!(back, e, "{link}");
            assert_eq!(back.encode(), link);
        }
        // A frontier trains its runs one after another; a pair side by side.
        let f = Experiment::decode(
            &Experiment::Sae(
                SaePreset::GroundTruth.config(),
                Sweep::decode("frontier:topk").unwrap(),
            )
            .encode(),
        )
        .unwrap();
        let runs = f.sae_runs().unwrap();
        assert!(runs.len() > 1);
        assert_eq!(f.total_steps(), runs.iter().map(|c| c.steps).sum::<u32>());
        let pair = Experiment::Lm(LmExperiment::preset(LmPreset::SoluVsGelu));
        assert_eq!(pair.total_steps(), LmPreset::SoluVsGelu.runs()[0].steps);
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
}
