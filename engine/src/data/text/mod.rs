//! Text for the language models: the shipped Shakespeare corpus or a user's own `.txt`, split
//! into training and validation text ([`corpus`]), tokenizers that turn it into token ids
//! ([`tokenizer`]), and windows of n_ctx tokens drawn for training ([`windows`]).

pub mod corpus;
pub mod tokenizer;
pub mod windows;

pub use corpus::{Corpus, Split, Work};
pub use tokenizer::{TextTokenizer, TokenizerKind, TOKENIZER_CHOICES};
pub use windows::Windows;
