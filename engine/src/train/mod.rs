//! What every lab's training shares: Adam ([`adam`]), global-norm clipping ([`clip`]),
//! learning-rate schedules ([`schedule`]), where a run trains ([`engine`]), the trainer
//! interface the loops drive ([`trainer`]), the contract each lab keeps with them ([`lab`]),
//! and when a live run evaluates by training time ([`cadence`]).

pub mod adam;
pub mod cadence;
pub mod clip;
pub mod engine;
pub mod lab;
pub mod schedule;
pub mod trainer;
