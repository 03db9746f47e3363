//! The estimate before a run: how fast a job trains on this device, measured without keeping
//! anything ([`crate::protocol::ToWorker::Calibrate`]).

use super::work::open;
use super::{with_state, TARGET_CHUNK_MS};
use crate::protocol::{Job, Speed};
use crate::sleep_ms;

/// Marks a measurement as going on ([`super::State`]'s `measuring`) until it is dropped, on
/// whichever path the measurement ends.
struct Measuring;

impl Measuring {
    fn start() -> Self {
        with_state(|s| s.measuring = true);
        Measuring
    }
}

impl Drop for Measuring {
    fn drop(&mut self) {
        with_state(|s| s.measuring = false);
    }
}

/// Real chunks' worth of time an estimate times.
const TIMED_CHUNKS: f64 = 3.0;

/// Times `job` as [`ToWorker::Calibrate`] says; `None` when the measurement went stale (a
/// run started, or a newer measurement was asked for), which nobody waits for.
pub(super) async fn calibrate(id: u32, job: &Job) -> Option<Result<Speed, String>> {
    let stale = move || with_state(|s| s.live || s.calibration != id);
    // Let a Start posted right behind this message through first.
    sleep_ms(0).await;
    // One measurement at a time: a newer one waits for an older one to see it is stale.
    while with_state(|s| s.measuring) {
        sleep_ms(5).await;
    }
    if stale() {
        return None;
    }
    let _measuring = Measuring::start();
    let mut s = match open(0, job).await {
        Ok(s) => s,
        Err(e) => return (!stale()).then_some(Err(e)),
    };
    let total = s.total;
    // One step pays for compiling the kernels; then chunks double until one takes about as
    // long as a real run's chunk, and chunks of that size are timed until they add up to a
    // few (one alone on a busy machine can be a fifth off); their rate is the speed (a real
    // run pays the same per-chunk costs).
    let mut n = 1u32;
    let mut first = true;
    let (mut timed_steps, mut timed_ms) = (0u32, 0.0);
    loop {
        if stale() {
            return None;
        }
        let left = total.saturating_sub(s.step);
        let n_now = n.min(left).max(1);
        let t0 = js_sys::Date::now();
        // No time passes between chunks as far as the work knows, so it spends none of the
        // measured chunk on its periodic evaluations and samples.
        let trained = s.work.advance(n_now, 0.0, total).await;
        let dt = (js_sys::Date::now() - t0).max(1.0);
        let k = match trained {
            Ok((k, _)) => k.max(1),
            Err(e) => return (!stale()).then_some(Err(e.to_string())),
        };
        s.step += k;
        let max_chunk = s.max_chunk.max(1.0) as u32;
        let settled = !first && (dt >= TARGET_CHUNK_MS || n_now >= max_chunk);
        if settled {
            timed_steps += k;
            timed_ms += dt;
        }
        // A one-step job's only step included compiling: that is its time.
        let done = s.step >= total;
        if done || timed_ms >= TIMED_CHUNKS * TARGET_CHUNK_MS {
            let (k, dt) = if timed_steps > 0 {
                (timed_steps, timed_ms)
            } else {
                (k, dt)
            };
            // The run also pays for its evaluations and samples: their share of its time, and
            // the last ones at its end, folded into the rate over the whole job.
            let (share, end_ms) = match s.work.overhead(dt / k as f64 * n_now as f64).await {
                Ok(o) => o,
                Err(e) => return (!stale()).then_some(Err(e.to_string())),
            };
            let training_ms = total as f64 * dt / k as f64 / (1.0 - share);
            return (!stale()).then_some(Ok(Speed {
                steps_per_sec: total as f64 * 1000.0 / (training_ms + end_ms),
                measured_steps: k,
            }));
        }
        if !first && !settled {
            let grow = (TARGET_CHUNK_MS / dt).clamp(2.0, 16.0);
            n = ((n as f64 * grow).ceil() as u32).min(max_chunk);
        }
        first = false;
        sleep_ms(0).await;
    }
}
