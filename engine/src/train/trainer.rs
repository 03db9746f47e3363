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
