//! Corpora: the public-domain Shakespeare works shipped with mechlab (gzip'd JSON lines, see
//! `engine/data/shakespeare/PROVENANCE.md`), or a user's own text file. Validation text is held
//! out by whole works (or, for a single file, the last tenth of its lines), so no validation
//! sentence is ever seen in training.

use crate::error::{EngineError, Result};
use serde::Deserialize;
use std::io::Read;

const SHAKESPEARE: &[u8] = include_bytes!("../../../data/shakespeare/works.jsonl.gz");

/// The works held out for validation by default: a tragedy, a comedy and the sonnets, about a
/// tenth of the corpus.
pub const SHAKESPEARE_VALIDATION: [&str; 3] = ["hamlet", "tempest", "sonnets"];

/// The largest text file accepted (a browser tab holds the text, its tokens and the model).
pub const MAX_TEXT_BYTES: usize = 64 << 20;

/// One work of a corpus.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Work {
    /// Its short name (the file it came from, without `.txt`).
    pub file: String,
    /// Its title.
    pub title: String,
    /// Its text.
    pub text: String,
}

/// A corpus: works in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Corpus {
    /// What it is, for messages and exports.
    pub name: String,
    /// Its works.
    pub works: Vec<Work>,
}

/// Training and validation text.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// Text to train on.
    pub train: String,
    /// Held-out text to measure on.
    pub validation: String,
}

impl Corpus {
    /// The shipped Shakespeare corpus, 42 works.
    pub fn shakespeare() -> Result<Self> {
        let mut json = String::new();
        flate2::read::GzDecoder::new(SHAKESPEARE)
            .read_to_string(&mut json)
            .map_err(|e| EngineError::BadText(format!("the shipped corpus is corrupt: {e}")))?;
        let works = json
            .lines()
            .map(serde_json::from_str)
            .collect::<std::result::Result<Vec<Work>, _>>()
            .map_err(|e| EngineError::BadText(format!("the shipped corpus is corrupt: {e}")))?;
        Ok(Self {
            name: "shakespeare".into(),
            works,
        })
    }

    /// A user's text file as a one-work corpus, refused with a reason when it is empty, larger
    /// than [`MAX_TEXT_BYTES`] or not UTF-8 (the message gives the line and column of the first
    /// bad byte).
    pub fn from_file(name: &str, bytes: &[u8]) -> Result<Self> {
        if bytes.len() > MAX_TEXT_BYTES {
            return Err(EngineError::BadText(format!(
                "{name} is {:.1} MiB; the most a tab can train on is {} MiB",
                bytes.len() as f64 / (1 << 20) as f64,
                MAX_TEXT_BYTES >> 20
            )));
        }
        let text = std::str::from_utf8(bytes).map_err(|e| {
            let at = e.valid_up_to();
            let before = &bytes[..at];
            let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
            let col = at
                - before
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(0, |p| p + 1)
                + 1;
            EngineError::BadText(format!(
                "{name} is not UTF-8 text: byte 0x{:02x} at line {line}, column {col} (byte {at})",
                bytes[at]
            ))
        })?;
        if text.trim().is_empty() {
            return Err(EngineError::BadText(format!("{name} holds no text")));
        }
        let file = name.trim_end_matches(".txt").to_string();
        Ok(Self {
            name: file.clone(),
            works: vec![Work {
                title: file.clone(),
                file,
                text: text.to_string(),
            }],
        })
    }

    /// Characters in every work.
    pub fn chars(&self) -> usize {
        self.works.iter().map(|w| w.text.chars().count()).sum()
    }

    /// Training and validation text: the works named in `held_out` are validation, the rest
    /// training (works joined in order with a blank line). A one-work corpus holds out the
    /// last tenth of its lines instead. A name that is no work is refused, listing the works.
    pub fn split(&self, held_out: &[&str]) -> Result<Split> {
        if self.works.len() == 1 {
            let text = &self.works[0].text;
            let lines: Vec<&str> = text.split_inclusive('\n').collect();
            let cut = lines.len() - (lines.len() / 10).max(1).min(lines.len() - 1);
            if lines.len() < 2 {
                return Err(EngineError::BadText(format!(
                    "{} is one line; validation needs text held out from training",
                    self.name
                )));
            }
            return Ok(Split {
                train: lines[..cut].concat(),
                validation: lines[cut..].concat(),
            });
        }
        for h in held_out {
            if !self.works.iter().any(|w| w.file == *h) {
                let names: Vec<&str> = self.works.iter().map(|w| w.file.as_str()).collect();
                return Err(EngineError::BadText(format!(
                    "there is no work `{h}` in {}; its works are {}",
                    self.name,
                    names.join(", ")
                )));
            }
        }
        let join = |keep: bool| {
            self.works
                .iter()
                .filter(|w| held_out.contains(&w.file.as_str()) != keep)
                .map(|w| w.text.as_str())
                .collect::<Vec<_>>()
                .join("\n\n")
        };
        let split = Split {
            train: join(true),
            validation: join(false),
        };
        if split.train.is_empty() || split.validation.is_empty() {
            return Err(EngineError::BadText(
                "both training and validation need at least one work".into(),
            ));
        }
        Ok(split)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shakespeare_has_its_works_and_holds_out_whole_ones() {
        let c = Corpus::shakespeare().unwrap();
        assert_eq!(c.works.len(), 42);
        let hamlet = c.works.iter().find(|w| w.file == "hamlet").unwrap();
        assert_eq!(hamlet.title, "HAMLET, PRINCE OF DENMARK");
        assert!(c.chars() > 4_900_000, "{}", c.chars());
        let s = c.split(&SHAKESPEARE_VALIDATION).unwrap();
        assert!(s.validation.contains("To be, or not to be"));
        assert!(!s.train.contains("To be, or not to be"));
        assert!(s.train.contains("Now is the winter of our discontent"));
        let share = s.validation.len() as f64 / (s.train.len() + s.validation.len()) as f64;
        assert!((0.05..0.15).contains(&share), "{share}");
        let err = c.split(&["hamlett"]).unwrap_err().to_string();
        assert!(err.contains("hamlett") && err.contains("hamlet,"), "{err}");
    }

    #[test]
    fn a_users_file_is_checked_and_split_by_lines() {
        let text: String = (0..50).map(|i| format!("line {i}\n")).collect();
        let c = Corpus::from_file("mine.txt", text.as_bytes()).unwrap();
        assert_eq!(c.name, "mine");
        let s = c.split(&[]).unwrap();
        assert_eq!(
            s.validation,
            (45..50).map(|i| format!("line {i}\n")).collect::<String>()
        );
        assert_eq!(s.train.len() + s.validation.len(), text.len());
        let err = Corpus::from_file("bad.txt", b"ok\nab\xffc")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("not UTF-8") && err.contains("line 2, column 3"),
            "{err}"
        );
        let err = Corpus::from_file("e.txt", b" \n ").unwrap_err().to_string();
        assert!(err.contains("holds no text"), "{err}");
        let big = vec![b'a'; MAX_TEXT_BYTES + 1];
        assert!(Corpus::from_file("big.txt", &big)
            .unwrap_err()
            .to_string()
            .contains("MiB"));
        let one = Corpus::from_file("one.txt", b"just one line").unwrap();
        assert!(one.split(&[]).is_err());
    }
}
