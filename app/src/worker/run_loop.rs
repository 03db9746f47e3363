//! A run's loop in the worker: chunks sized to a target time, progress posted after each, the
//! page's requests answered between them, and the session parked when paused or done.

use super::work::Work;
use super::{is_current, post, with_state, TARGET_CHUNK_MS};
use crate::protocol::{FromWorker, Progress};
use crate::sleep_ms;

/// A trainer and the loop's bookkeeping, parked here while paused.
pub(super) struct Session {
    pub(super) run: u32,
    pub(super) work: Work,
    /// Steps the whole job trains.
    pub(super) total: u32,
    pub(super) adapter: String,
    pub(super) step: u32,
    /// Steps per chunk, kept fractional so small corrections add up instead of rounding away.
    pub(super) chunk: f64,
    pub(super) max_chunk: f64,
    /// Smoothed steps per second, for the ETA.
    pub(super) rate: Option<f64>,
    /// Milliseconds spent training (pauses excluded).
    pub(super) elapsed_ms: f64,
    /// How long the last chunk took.
    pub(super) last_chunk_ms: f64,
}

/// Answers the requests waiting for the session's run.
pub(super) async fn serve_requests(s: &mut Session) {
    loop {
        let Some(req) = with_state(|st| {
            (st.run == s.run && !st.requests.is_empty()).then(|| st.requests.remove(0))
        }) else {
            return;
        };
        let reply = s.work.serve(s.run, s.step, req).await;
        if is_current(s.run) {
            post(&reply);
        }
    }
}

pub(super) async fn run_loop(mut s: Session) {
    let run = s.run;
    loop {
        if !is_current(run) {
            return;
        }
        serve_requests(&mut s).await;
        if !is_current(run) {
            return;
        }
        if s.step >= s.total {
            let (step, elapsed_ms) = (s.step, s.elapsed_ms);
            // Kept, so the page can still look inside the models and save them.
            with_state(|st| {
                st.live = false;
                st.parked = Some(s);
            });
            post(&FromWorker::Done {
                run,
                step,
                elapsed_ms,
            });
            return;
        }
        if with_state(|st| st.pause) {
            let step = s.step;
            with_state(|st| {
                st.live = false;
                st.parked = Some(s);
            });
            post(&FromWorker::Paused { run, step });
            return;
        }
        let n = (s.chunk.round() as u32).max(1).min(s.total - s.step);
        let t0 = js_sys::Date::now();
        let trained = s.work.advance(n, s.last_chunk_ms, s.total).await;
        if !is_current(run) {
            return;
        }
        let (n, update) = match trained {
            Ok(t) => t,
            Err(e) => {
                with_state(|st| st.live = false);
                post(&FromWorker::Error {
                    run,
                    message: e.to_string(),
                });
                return;
            }
        };
        let dt = (js_sys::Date::now() - t0).max(1.0);
        s.last_chunk_ms = dt;
        s.step += n;
        s.elapsed_ms += dt;
        let rate = n.max(1) as f64 * 1000.0 / dt;
        let rate = s.rate.map_or(rate, |r| 0.7 * r + 0.3 * rate);
        s.rate = Some(rate);
        // Steer the chunk towards the target time, at most 4× at once. Multiplying the
        // fractional size (rather than rescaling the rounded one) still converges when a fixed
        // per-chunk cost (readback, metrics) dominates small chunks.
        let factor = (TARGET_CHUNK_MS / dt).clamp(0.25, 4.0);
        s.chunk = (s.chunk * factor).clamp(1.0, s.max_chunk);
        post(&FromWorker::Progress(Box::new(Progress {
            run,
            step: s.step,
            adapter: s.adapter.clone(),
            steps_per_sec: rate,
            update,
        })));
        sleep_ms(0).await;
    }
}
