//! When a live run evaluates: by training time rather than by step count, so a fast device is
//! not slowed by evaluations it does not need and a slow one still draws a curve. The page's
//! worker feeds it each chunk's milliseconds (the engine keeps no clock: the browser's and the
//! native one differ) and what each evaluation cost; [`train_evaluating`](super::trainer::train_evaluating)
//! is the step-counted loop the CLI uses.

/// How many times its last cost training must take before work comes at a tenth of a run (so
/// such work takes at most about a fifth of the run's time).
pub const TENTHS_COST_RATIO: f64 = 4.0;

/// The timing of one kind of periodic work (validation losses, samples, an SAE's metrics).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cadence {
    /// Training time between two of them.
    pub every_ms: f64,
    /// They also come at each tenth of a run (so a run shorter than `every_ms` still draws a
    /// curve) once training since the last took this many times what the last cost, which
    /// bounds their share of the run's time; `None`: by time alone.
    pub tenths_at_cost_ratio: Option<f64>,
    since_ms: f64,
    last_cost_ms: f64,
}

impl Cadence {
    /// Every `every_ms` of training, and at each tenth of a run when training since the last
    /// took `cost_ratio` times its cost.
    pub fn new(every_ms: f64, tenths_at_cost_ratio: Option<f64>) -> Self {
        Self {
            every_ms,
            tenths_at_cost_ratio,
            since_ms: 0.0,
            last_cost_ms: 0.0,
        }
    }

    /// A chunk of `trained` steps took `chunk_ms`, ending at `step` of a `steps`-step run:
    /// whether the work is due now. A caller that does it says so with [`Cadence::done`].
    pub fn due(&mut self, chunk_ms: f64, (step, steps): (u32, u32), trained: u32) -> bool {
        self.since_ms += chunk_ms;
        self.since_ms >= self.every_ms
            || self.tenths_at_cost_ratio.is_some_and(|ratio| {
                crossed_tenth(steps, step, trained) && self.since_ms >= ratio * self.last_cost_ms
            })
    }

    /// The work was done, at a cost of `cost_ms`: the clock starts again.
    pub fn done(&mut self, cost_ms: f64) {
        self.last_cost_ms = cost_ms;
        self.since_ms = 0.0;
    }

    /// A new run starts: nothing trained since, nothing measured.
    pub fn reset(&mut self) {
        self.since_ms = 0.0;
        self.last_cost_ms = 0.0;
    }

    /// The share of a run's time this work takes when it costs `cost_ms` and chunks take
    /// `chunk_ms` (after every chunk, when it costs more than `every_ms` takes to train).
    pub fn share(&self, cost_ms: f64, chunk_ms: f64) -> f64 {
        cost_ms / self.every_ms.max(cost_ms + chunk_ms)
    }
}

/// Whether the last `trained` steps, ending at `step`, crossed a tenth of a `steps`-step run.
pub fn crossed_tenth(steps: u32, step: u32, trained: u32) -> bool {
    let tenth = (steps / 10).max(1);
    step / tenth > step.saturating_sub(trained) / tenth
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenths_are_crossed_once_each() {
        // 1000 steps in chunks of 7: one crossing per tenth, the last at the end.
        let (mut step, mut crossings) = (0, 0);
        while step < 1000 {
            let n = 7.min(1000 - step);
            step += n;
            crossings += crossed_tenth(1000, step, n) as u32;
        }
        assert_eq!(crossings, 10);
        // Runs shorter than ten steps cross at every step.
        assert!(crossed_tenth(5, 1, 1) && crossed_tenth(5, 2, 1));
        assert!(!crossed_tenth(1000, 150, 40));
    }

    #[test]
    fn work_comes_by_training_time_and_at_tenths_it_can_afford() {
        let mut c = Cadence::new(1500.0, Some(4.0));
        // 100 ms chunks of 10 steps of a 1000-step run: due at the first tenth (nothing
        // measured yet), and by time at the 15th chunk (its caller never said it was done).
        let due: Vec<u32> = (1..=15)
            .filter(|&s| c.due(100.0, (10 * s, 1000), 10))
            .collect();
        assert_eq!(due, vec![10, 15]);
        // After a 300 ms evaluation, the tenth at step 200 comes 500 ms later: less than four
        // times its cost, so not yet; after a 100 ms one, it is due.
        c.done(300.0);
        let due: Vec<u32> = (16..=20)
            .filter(|&s| c.due(100.0, (10 * s, 1000), 10))
            .collect();
        assert!(due.is_empty(), "{due:?}");
        let mut c = Cadence::new(1500.0, Some(4.0));
        c.done(100.0);
        let due: Vec<u32> = (16..=20)
            .filter(|&s| c.due(100.0, (10 * s, 1000), 10))
            .collect();
        assert_eq!(due, vec![20]);
        // By time alone, tenths do not count.
        let mut t = Cadence::new(1500.0, None);
        assert!(!t.due(1000.0, (100, 1000), 100));
        assert!(t.due(500.0, (200, 1000), 100));
        // A ten-step run at 50 ms a step, 60 ms an evaluation: every tenth it can afford,
        // 250 ms of training (≥ 4 × 60) after each.
        let mut s = Cadence::new(1500.0, Some(4.0));
        s.done(60.0);
        let mut at = vec![];
        for i in 1..=10 {
            if s.due(50.0, (i, 10), 1) {
                s.done(60.0);
                at.push(i);
            }
        }
        assert_eq!(at, vec![5, 10]);
        // After a reset nothing has been measured: the first tenth is due.
        s.reset();
        assert!(s.due(1.0, (1, 10), 1));
        // The share of time: a 300 ms evaluation every 1500 ms of 100 ms chunks is a fifth;
        // one costlier than the period runs after every chunk.
        assert!((c.share(300.0, 100.0) - 0.2).abs() < 1e-9);
        assert!((c.share(2000.0, 100.0) - 2000.0 / 2100.0).abs() < 1e-9);
    }
}
