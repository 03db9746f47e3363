//! Learning-rate schedules: a linear warm-up, then a constant rate, then a decay (linear to 0,
//! or cosine to a floor) over the last part of the run. Every lab's trainer asks this module
//! for the rate of each step, on the CPU and the GPU alike.

use serde::{Deserialize, Serialize};

/// How the rate falls over the decay phase.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Decay {
    /// Linearly to 0 at the end of the run.
    Linear,
    /// Half a cosine, from the base rate to `final_fraction` of it at the end of the run.
    Cosine {
        /// The rate at the end as a fraction of the base rate.
        final_fraction: f32,
    },
}

/// A schedule over a run of `total_steps`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// The rate between warm-up and decay.
    pub base: f32,
    /// Steps of linear warm-up from `base / warmup_steps` (0: none).
    pub warmup_steps: u32,
    /// Steps in the run.
    pub total_steps: u32,
    /// The fraction of the run, at its end, over which the rate decays (0: no decay).
    pub decay_fraction: f32,
    /// The decay's shape.
    pub decay: Decay,
}

/// The linear warm-up factor at `step`: `(step + 1) / warmup_steps`, at most 1.
pub fn warmup(step: u32, warmup_steps: u32) -> f32 {
    if warmup_steps > 0 {
        ((step + 1) as f32 / warmup_steps as f32).min(1.0)
    } else {
        1.0
    }
}

impl Schedule {
    /// The rate at 0-based `step`.
    pub fn rate(&self, step: u32) -> f32 {
        let warm = warmup(step, self.warmup_steps);
        let decay_steps = (self.total_steps as f32 * self.decay_fraction).round();
        let decay_start = self.total_steps as f32 - decay_steps;
        let decay = if decay_steps > 0.0 && step as f32 >= decay_start {
            match self.decay {
                Decay::Linear => {
                    (self.total_steps.saturating_sub(step) as f32 / decay_steps).clamp(0.0, 1.0)
                }
                Decay::Cosine { final_fraction } => {
                    let progress = ((step as f32 - decay_start) / decay_steps).clamp(0.0, 1.0);
                    let cos = 0.5 * (1.0 + (std::f32::consts::PI * progress).cos());
                    final_fraction + (1.0 - final_fraction) * cos
                }
            }
        } else {
            1.0
        };
        self.base * warm * decay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(decay: Decay) -> Schedule {
        Schedule {
            base: 1.0,
            warmup_steps: 4,
            total_steps: 100,
            decay_fraction: 0.2,
            decay,
        }
    }

    #[test]
    fn warm_up_then_constant_then_linear_decay_to_zero() {
        let s = schedule(Decay::Linear);
        assert_eq!(s.rate(0), 0.25);
        assert_eq!(s.rate(3), 1.0);
        assert_eq!(s.rate(79), 1.0);
        assert_eq!(s.rate(80), 1.0);
        assert_eq!(s.rate(90), 0.5);
        assert_eq!(s.rate(99), 0.05);
        assert_eq!(s.rate(100), 0.0);
    }

    #[test]
    fn cosine_decay_falls_to_its_floor() {
        let s = schedule(Decay::Cosine {
            final_fraction: 0.1,
        });
        assert_eq!(s.rate(50), 1.0);
        assert!((s.rate(80) - 1.0).abs() < 1e-6);
        assert!((s.rate(90) - 0.55).abs() < 1e-6, "{}", s.rate(90));
        assert!((s.rate(100) - 0.1).abs() < 1e-6);
        // Monotone over the decay phase.
        assert!((80..100).all(|t| s.rate(t + 1) <= s.rate(t)));
    }
}
