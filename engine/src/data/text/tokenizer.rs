//! Tokenizers as Hugging Face's `tokenizers` crate builds them, so what mechlab trains loads in
//! `transformers` and TransformerLens from its `tokenizer.json`: character-level (a WordLevel
//! model over the corpus's characters, each character its own pre-token, fused on decoding)
//! and byte-level BPE (GPT-2's scheme) trained on the corpus with the vocabulary size asked for.
//! Character-level encoding takes a direct path (one map lookup a character) that gives the same
//! ids as the tokenizer it saves.

use crate::error::{EngineError, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::models::wordlevel::WordLevel;
use tokenizers::models::{ModelWrapper, TrainerWrapper};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{DecoderWrapper, PreTokenizerWrapper, SplitDelimiterBehavior, Tokenizer};

/// How text becomes tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TokenizerKind {
    /// One token per character of the corpus.
    Char,
    /// Byte-level BPE with this many tokens (256 bytes and the merges learned on the corpus).
    Bpe {
        /// Tokens in the vocabulary.
        vocab_size: u32,
    },
}

/// Every tokenizer kind as links spell it (`tokenizer.kind`) and as menus label it.
pub const TOKENIZER_CHOICES: &[(&str, &str)] = &[("char", "characters"), ("bpe", "byte-level BPE")];

/// The character-level pre-tokenizer's pattern: one character, whatever it is.
pub const CHAR_PATTERN: &str = r"[\s\S]";

/// The smallest and largest BPE vocabularies accepted.
pub const BPE_VOCAB: (u32, u32) = (257, 65_536);

fn tk_error(what: &str) -> impl Fn(tokenizers::Error) -> EngineError + '_ {
    move |e| EngineError::BadText(format!("{what}: {e}"))
}

/// A trained tokenizer.
#[derive(Clone)]
pub struct TextTokenizer {
    kind: TokenizerKind,
    inner: Tokenizer,
    /// Character-level: each character's id.
    chars: HashMap<char, u32>,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("kind", &self.kind)
            .field("vocab_size", &self.vocab_size())
            .finish()
    }
}

impl TextTokenizer {
    /// Trains a tokenizer of `kind` on `text` (give it the whole corpus for character-level, so
    /// every character of the validation text has a token). A BPE vocabulary the text cannot
    /// fill is refused, saying how many tokens it did reach.
    pub fn train(kind: TokenizerKind, text: &str) -> Result<Self> {
        if text.is_empty() {
            return Err(EngineError::BadText(
                "no text to build a tokenizer from".into(),
            ));
        }
        match kind {
            TokenizerKind::Char => {
                let mut chars: Vec<char> = text.chars().collect();
                chars.sort_unstable();
                chars.dedup();
                let vocab: HashMap<String, u32> = chars
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (c.to_string(), i as u32))
                    .collect();
                let model = WordLevel::builder()
                    .vocab(vocab.into_iter().collect())
                    // Not in the vocabulary: an unknown character is an error, in both paths.
                    .unk_token("[UNK]".into())
                    .build()
                    .map_err(tk_error("character vocabulary"))?;
                let mut inner = Tokenizer::new(ModelWrapper::WordLevel(model));
                // Any one character, newlines included, in a pattern both regex engines take:
                // Python `tokenizers` (Oniguruma) refuses `(?s).`, which this crate's
                // fancy-regex accepts, and a tokenizer.json is for both.
                let split = Split::new(
                    SplitPattern::Regex(CHAR_PATTERN.into()),
                    SplitDelimiterBehavior::Isolated,
                    false,
                )
                .map_err(tk_error("character split"))?;
                inner.with_pre_tokenizer(Some(PreTokenizerWrapper::Split(split)));
                inner.with_decoder(Some(DecoderWrapper::Fuse(Fuse::new())));
                Self::wrap(inner)
            }
            TokenizerKind::Bpe { vocab_size } => {
                if !(BPE_VOCAB.0..=BPE_VOCAB.1).contains(&vocab_size) {
                    return Err(EngineError::invalid(
                        "vocab_size",
                        vocab_size,
                        format!(
                            "a byte-level BPE vocabulary must be between {} and {}",
                            BPE_VOCAB.0, BPE_VOCAB.1
                        ),
                    ));
                }
                let mut inner = Tokenizer::new(ModelWrapper::BPE(BPE::default()));
                inner.with_pre_tokenizer(Some(PreTokenizerWrapper::ByteLevel(ByteLevel::new(
                    false, true, true,
                ))));
                inner.with_decoder(Some(DecoderWrapper::ByteLevel(ByteLevelDecoder::default())));
                let mut trainer = TrainerWrapper::BpeTrainer(
                    BpeTrainerBuilder::new()
                        .vocab_size(vocab_size as usize)
                        .min_frequency(0)
                        .show_progress(false)
                        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
                        .build(),
                );
                inner
                    .train(&mut trainer, text.split_inclusive('\n'))
                    .map_err(tk_error("training BPE"))?;
                let t = Self::wrap(inner)?;
                if t.vocab_size() < vocab_size {
                    return Err(EngineError::BadText(format!(
                        "the text fills a BPE vocabulary of only {} tokens; vocab_size {vocab_size} \
                         needs more text (or a smaller vocabulary)",
                        t.vocab_size()
                    )));
                }
                Ok(t)
            }
        }
    }

    fn wrap(inner: Tokenizer) -> Result<Self> {
        let kind =
            match inner.get_model() {
                ModelWrapper::WordLevel(_) => TokenizerKind::Char,
                ModelWrapper::BPE(_) => TokenizerKind::Bpe {
                    vocab_size: inner.get_vocab_size(true) as u32,
                },
                _ => return Err(EngineError::BadText(
                    "tokenizer.json: mechlab reads character-level (WordLevel) and BPE tokenizers"
                        .into(),
                )),
            };
        let chars = match kind {
            TokenizerKind::Char => inner
                .get_vocab(true)
                .into_iter()
                .filter_map(|(s, id)| {
                    let mut cs = s.chars();
                    match (cs.next(), cs.next()) {
                        (Some(c), None) => Some((c, id)),
                        _ => None,
                    }
                })
                .collect(),
            TokenizerKind::Bpe { .. } => HashMap::new(),
        };
        Ok(Self { kind, inner, chars })
    }

    /// A tokenizer from the `tokenizer.json` of one [`TextTokenizer::to_json`] wrote (or any
    /// WordLevel or BPE tokenizer); a file that is not one is refused with the parser's reason.
    pub fn from_json(json: &str) -> Result<Self> {
        let inner: Tokenizer = json
            .parse()
            .map_err(|e: tokenizers::Error| EngineError::BadText(format!("tokenizer.json: {e}")))?;
        Self::wrap(inner)
    }

    /// The tokenizer as `tokenizer.json`.
    pub fn to_json(&self) -> Result<String> {
        self.inner
            .to_string(true)
            .map_err(tk_error("writing tokenizer.json"))
    }

    /// What kind it is.
    pub fn kind(&self) -> TokenizerKind {
        self.kind
    }

    /// Tokens in the vocabulary (the model's d_vocab).
    pub fn vocab_size(&self) -> u32 {
        self.inner.get_vocab_size(true) as u32
    }

    /// `text` as token ids.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        match self.kind {
            TokenizerKind::Char => text
                .chars()
                .map(|c| {
                    self.chars.get(&c).copied().ok_or_else(|| {
                        EngineError::BadText(format!(
                            "the character {c:?} is not in the tokenizer's vocabulary"
                        ))
                    })
                })
                .collect(),
            TokenizerKind::Bpe { .. } => {
                // Line by line: the byte-level pre-tokenizer never merges across a newline, and
                // short inputs keep the encoder's memory small.
                let mut ids = Vec::with_capacity(text.len() / 3);
                for line in text.split_inclusive('\n') {
                    let enc = self
                        .inner
                        .encode_fast(line, false)
                        .map_err(tk_error("encoding"))?;
                    ids.extend_from_slice(enc.get_ids());
                }
                Ok(ids)
            }
        }
    }

    /// Token ids as text.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, false).map_err(tk_error("decoding"))
    }

    /// One token's own text, for showing it (callers render it as text, never as HTML).
    pub fn token_text(&self, id: u32) -> String {
        self.decode(&[id]).unwrap_or_else(|_| format!("<{id}>"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "To be, or not to be, that is the question:\n\
        Whether 'tis nobler in the mind to suffer\n\
        The slings and arrows of outrageous fortune,\n";

    #[test]
    fn char_level_round_trips_and_saves_as_tokenizer_json() {
        let t = TextTokenizer::train(TokenizerKind::Char, TEXT).unwrap();
        let mut distinct: Vec<char> = TEXT.chars().collect();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(t.vocab_size() as usize, distinct.len());
        let ids = t.encode(TEXT).unwrap();
        assert_eq!(ids.len(), TEXT.chars().count());
        assert_eq!(t.decode(&ids).unwrap(), TEXT);
        // The direct path and Hugging Face's give the same ids.
        let hf: Vec<u32> = t.inner.encode(TEXT, false).unwrap().get_ids().to_vec();
        assert_eq!(hf, ids);
        let back = TextTokenizer::from_json(&t.to_json().unwrap()).unwrap();
        assert_eq!(back.kind(), TokenizerKind::Char);
        assert_eq!(back.encode(TEXT).unwrap(), ids);
        assert!(t.encode("to €").unwrap_err().to_string().contains("'€'"));
        assert!(t.inner.encode("to €", false).is_err());
    }

    /// A fixture made by Python `tokenizers` (`tools/fixtures/make_tokenizer.py`): its
    /// `tokenizer.json` and the ids it gave for a text.
    fn python_fixture(json: &str, expected: &str) -> (TextTokenizer, String, Vec<u32>) {
        let e: serde_json::Value = serde_json::from_str(expected).unwrap();
        let text = e["text"].as_str().unwrap().to_string();
        let ids = serde_json::from_value(e["ids"].clone()).unwrap();
        (TextTokenizer::from_json(json).unwrap(), text, ids)
    }

    /// The character-level tokenizer Python `tokenizers` saved loads here and gives its ids for
    /// text with newlines, tabs and characters outside ASCII; the one mechlab trains on that
    /// text writes the same pre-tokenizer (a pattern Oniguruma accepts) and gives the same ids.
    #[test]
    fn char_level_matches_python_tokenizers() {
        let (theirs, text, want) = python_fixture(
            include_str!("../../../tests/fixtures/tokenizers/char/tokenizer.json"),
            include_str!("../../../tests/fixtures/tokenizers/char/expected.json"),
        );
        assert!(text.contains('\n') && text.contains('\t') && !text.is_ascii());
        assert_eq!(theirs.kind(), TokenizerKind::Char);
        assert_eq!(theirs.encode(&text).unwrap(), want);
        let hf: Vec<u32> = theirs
            .inner
            .encode(text.as_str(), false)
            .unwrap()
            .get_ids()
            .to_vec();
        assert_eq!(hf, want);
        let ours = TextTokenizer::train(TokenizerKind::Char, &text).unwrap();
        assert_eq!(ours.encode(&text).unwrap(), want);
        let pre = |json: &str| -> serde_json::Value {
            serde_json::from_str::<serde_json::Value>(json).unwrap()["pre_tokenizer"].clone()
        };
        let fixture = include_str!("../../../tests/fixtures/tokenizers/char/tokenizer.json");
        assert_eq!(pre(&ours.to_json().unwrap()), pre(fixture));
    }

    /// A byte-level BPE trained and saved by Python `tokenizers` gives its ids here.
    #[test]
    fn bpe_matches_python_tokenizers() {
        let (theirs, text, want) = python_fixture(
            include_str!("../../../tests/fixtures/tokenizers/bpe/tokenizer.json"),
            include_str!("../../../tests/fixtures/tokenizers/bpe/expected.json"),
        );
        assert!(matches!(theirs.kind(), TokenizerKind::Bpe { .. }));
        assert_eq!(theirs.encode(&text).unwrap(), want);
        assert_eq!(theirs.decode(&want).unwrap(), text);
    }

    #[test]
    fn bpe_learns_merges_and_round_trips() {
        let text = TEXT.repeat(20);
        let t = TextTokenizer::train(TokenizerKind::Bpe { vocab_size: 300 }, &text).unwrap();
        assert_eq!(t.vocab_size(), 300);
        let ids = t.encode(TEXT).unwrap();
        assert!(ids.len() < TEXT.len() / 2, "{} tokens", ids.len());
        assert_eq!(t.decode(&ids).unwrap(), TEXT);
        let back = TextTokenizer::from_json(&t.to_json().unwrap()).unwrap();
        assert_eq!(back.kind(), TokenizerKind::Bpe { vocab_size: 300 });
        assert_eq!(back.encode(TEXT).unwrap(), ids);
        // Bytes outside the training text still encode (byte-level).
        let other = "Ünïcödé ✓\n";
        assert_eq!(t.decode(&t.encode(other).unwrap()).unwrap(), other);
    }

    #[test]
    fn bad_vocabularies_and_files_are_named() {
        let err = TextTokenizer::train(TokenizerKind::Bpe { vocab_size: 100 }, TEXT)
            .unwrap_err()
            .to_string();
        assert!(err.contains("vocab_size = 100"), "{err}");
        let err = TextTokenizer::train(TokenizerKind::Bpe { vocab_size: 5000 }, TEXT)
            .unwrap_err()
            .to_string();
        assert!(err.contains("only") && err.contains("5000"), "{err}");
        assert!(TextTokenizer::from_json("{not json").is_err());
        assert!(TextTokenizer::train(TokenizerKind::Char, "").is_err());
    }
}
