//! A lab's experiment and the address kept in step, the same way on every page: a link opens
//! with its bad fields replaced and named (the rest kept), every valid change to the controls
//! goes into the address, a link typed into the address loads, and the address always holds
//! what "Copy link" would give.

use crate::url;
use leptos::prelude::*;
use mechlab_engine::error::Result;
use mechlab_engine::experiment::link::{fragment_pairs, LinkConfig};
use mechlab_engine::experiment::repair::{describe, repair};

/// What a hash holds, as a lab reads it.
pub struct FromHash<T> {
    /// The experiment, bad fields replaced; `None` when the link is unusable as a whole (empty,
    /// without a version, for another lab), so the page keeps what it has or its defaults.
    pub value: Option<T>,
    /// What was wrong with the link, for the page's message.
    pub note: Option<String>,
}

/// Reads a link with the lab's strict `decode`, replacing the fields it refuses; `encode`
/// spells an experiment as a link, to say what replaced each field.
pub fn read_link<C: LinkConfig, T>(
    hash: &str,
    decode: impl Fn(&str) -> Result<T>,
    encode: impl Fn(&T) -> String,
) -> FromHash<T> {
    match repair::<C, T>(hash, decode) {
        Ok(r) if r.replaced.is_empty() => FromHash {
            value: Some(r.value),
            note: None,
        },
        Ok(r) => {
            let link = encode(&r.value);
            let pairs = fragment_pairs(&link).unwrap_or_default();
            let now = |key: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, v)| v.to_string())
            };
            FromHash {
                note: Some(format!("bad link: {}", describe(&r.replaced, now))),
                value: Some(r.value),
            }
        }
        Err(e) => FromHash {
            value: None,
            note: Some(e.to_string()),
        },
    }
}

/// Keeps the page's experiment and the address in step (see the module's doc). `parsed` is the
/// controls' experiment; `opened_as_is` says the address on load already holds the page's
/// link (a sound link, as the user wrote it), otherwise it is rewritten at once; `read` is the
/// lab's [`read_link`]; `load` sets the controls to an experiment.
pub fn sync_link<T>(
    hash: ReadSignal<String>,
    parsed: Memo<std::result::Result<T, String>>,
    link_error: RwSignal<Option<String>>,
    opened_as_is: bool,
    read: impl Fn(&str) -> FromHash<T> + 'static,
    encode: impl Fn(&T) -> String + Copy + 'static,
    load: impl Fn(&T) + 'static,
) where
    T: PartialEq + Clone + Send + Sync + 'static,
{
    // Set when a link loads with a message, so the change it makes to the controls does not
    // clear the message as a user's edit would.
    let keep_note = RwSignal::new(false);
    Effect::new(move |ran: Option<()>| {
        let Ok(v) = parsed.get() else { return };
        if ran.is_some() || !opened_as_is {
            url::write_fragment(&encode(&v));
        }
        if ran.is_some() && !keep_note.get_untracked() {
            link_error.set(None);
        }
        keep_note.set(false);
    });
    Effect::new(move |first: Option<()>| {
        let h = hash.get();
        if first.is_none() {
            return;
        }
        let FromHash { value, note } = read(&h);
        match value {
            Some(v) if parsed.with_untracked(|p| p.as_ref().ok() != Some(&v)) => {
                keep_note.set(note.is_some());
                load(&v);
            }
            // The same experiment, or a link with nothing usable: the controls stay, and the
            // address shows them again.
            _ => {
                if let Ok(v) = parsed.get_untracked() {
                    url::write_fragment(&encode(&v));
                }
            }
        }
        link_error.set(note);
    });
}
