//! The face every lab's trainer shows the loops that drive it (the page's worker, the CLI, the
//! benchmarks): steps in chunks, each chunk's report out. Each lab's trainer is one type over
//! its CPU reference and its GPU path ([`crate::models::toy::ToyTrainer`],
//! [`crate::models::sae::trainer::SaeTrainer`]), so a loop is written once for both.

use crate::error::Result;

/// A lab's trainer.
// The futures are driven on one thread (the browser's, or pollster natively), so no Send
// bound is promised.
#[allow(async_fn_in_trait)]
pub trait Trainer {
    /// What a chunk of steps reports (losses, per-step figures).
    type Report;

    /// Steps trained so far.
    fn step(&self) -> u32;

    /// Steps the run trains in all.
    fn total_steps(&self) -> u32;

    /// Trains up to `n` more steps (fewer at the end of the run) and reports them. A run that
    /// diverges fails with [`crate::EngineError::Diverged`] naming the step.
    async fn run_steps(&mut self, n: u32) -> Result<Self::Report>;

    /// Steps left in the run.
    fn remaining(&self) -> u32 {
        self.total_steps().saturating_sub(self.step())
    }
}

/// Trains to the end in chunks of `chunk` steps, handing each chunk's report to `each`
/// (progress bars, live charts); returns the last report.
pub async fn train_to_end<T: Trainer>(
    t: &mut T,
    chunk: u32,
    mut each: impl FnMut(&T, &T::Report),
) -> Result<Option<T::Report>> {
    let mut last = None;
    while t.remaining() > 0 {
        let r = t.run_steps(chunk.max(1).min(t.remaining())).await?;
        each(t, &r);
        last = Some(r);
    }
    Ok(last)
}

/// Trains to the end in chunks of at most `chunk` steps that also stop at every `every`-th
/// step, handing each chunk's report to `each` (progress, the loss history), and calls
/// `evaluate` at each of those steps and at the last (a validation loss, a checkpoint): the
/// loop of a run whose evaluations come by step count, as the CLI's do.
pub async fn train_evaluating<T: Trainer>(
    t: &mut T,
    chunk: u32,
    every: u32,
    mut each: impl FnMut(&T, &T::Report),
    mut evaluate: impl AsyncFnMut(&mut T) -> Result<()>,
) -> Result<()> {
    let every = every.max(1);
    while t.remaining() > 0 {
        let to_mark = every - t.step() % every;
        let n = chunk.max(1).min(to_mark).min(t.remaining());
        let r = t.run_steps(n).await?;
        each(t, &r);
        if t.step().is_multiple_of(every) || t.remaining() == 0 {
            evaluate(t).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::toy::config::{Axis, Preset, SuperpositionConfig};
    use crate::models::toy::cpu::CpuToyTrainer;
    use crate::models::toy::ToyTrainer;

    /// Chunks stop at every evaluation step, evaluations come there and at the end, and every
    /// step is trained once.
    async fn evaluations_come_every_so_many_steps_and_at_the_end() {
        let cfg = SuperpositionConfig {
            n_features: 3,
            n_hidden: 2,
            batch_size: 4,
            feature_probability: Axis::List(vec![0.5]),
            steps: 23,
            ..Preset::Intro.config()
        };
        let mut t = ToyTrainer::Cpu(Box::new(CpuToyTrainer::new(&cfg).unwrap()));
        let (mut chunks, mut marks) = (vec![], vec![]);
        train_evaluating(
            &mut t,
            7,
            10,
            |t, r| chunks.push((t.step(), r.len())),
            async |t| {
                marks.push(t.step());
                Ok(())
            },
        )
        .await
        .unwrap();
        let ends: Vec<u32> = chunks.iter().map(|c| c.0).collect();
        assert_eq!(ends, [7, 10, 17, 20, 23]);
        assert_eq!(marks, [10, 20, 23]);
        assert_eq!(t.step(), 23);
    }
    crate::cpu_test!(
        evaluations_come_every_so_many_steps_and_at_the_end_test,
        evaluations_come_every_so_many_steps_and_at_the_end
    );
}
