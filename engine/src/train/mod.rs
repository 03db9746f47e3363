//! What every lab's training shares: Adam ([`adam`]), global-norm clipping ([`clip`]),
//! learning-rate schedules ([`schedule`]), where a run trains ([`engine`]) and the trainer
//! interface the loops drive ([`trainer`]).

pub mod adam;
pub mod clip;
pub mod engine;
pub mod schedule;
pub mod trainer;
