//! What every lab's training shares: Adam ([`adam`]), global-norm clipping ([`clip`]) and
//! learning-rate schedules ([`schedule`]).

pub mod adam;
pub mod clip;
pub mod schedule;
