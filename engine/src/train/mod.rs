//! What every lab's training shares: Adam ([`adam`]), global-norm clipping ([`clip`]),
//! learning-rate schedules ([`schedule`]) and where a run trains ([`engine`]).

pub mod adam;
pub mod clip;
pub mod engine;
pub mod schedule;
