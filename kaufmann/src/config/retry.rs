//! Retry schedules, as pure logic: exponential backoff with a ceiling.

use std::time::Duration;

/// How often and how patiently a failed message is retried in place before the error policy's
/// last resort (the dead-letter topic).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Retries after the first attempt (0: no retry).
    pub max_retries: u32,
    /// The wait before the first retry; each further retry waits twice as long.
    pub initial_backoff: Duration,
    /// The longest wait between two attempts.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 3,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt` (1-based; attempt 1 is the first try and waits nothing),
    /// or `None` when the budget is spent.
    pub fn backoff(&self, attempt: u32) -> Option<Duration> {
        match attempt {
            0 | 1 => Some(Duration::ZERO),
            n if n - 1 > self.max_retries => None,
            n => {
                let doublings = (n - 2).min(31);
                let wait = self.initial_backoff.saturating_mul(1 << doublings);
                Some(wait.min(self.max_backoff))
            }
        }
    }

    /// The total number of attempts this policy allows.
    pub fn attempts(&self) -> u32 {
        self.max_retries.saturating_add(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_ceiling_then_stops() {
        let policy = RetryPolicy {
            max_retries: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(500),
        };
        let waits: Vec<_> = (1..=7).map(|a| policy.backoff(a)).collect();
        let ms = |m| Some(Duration::from_millis(m));
        assert_eq!(
            waits,
            [ms(0), ms(100), ms(200), ms(400), ms(500), ms(500), None]
        );
        assert_eq!(policy.attempts(), 6);
    }

    #[test]
    fn zero_retries_allows_one_attempt() {
        let policy = RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        };
        assert_eq!(policy.backoff(1), Some(Duration::ZERO));
        assert_eq!(policy.backoff(2), None);
    }

    #[test]
    fn huge_attempt_numbers_do_not_overflow() {
        let policy = RetryPolicy {
            max_retries: u32::MAX - 1,
            ..RetryPolicy::default()
        };
        assert_eq!(policy.backoff(u32::MAX), Some(policy.max_backoff));
    }
}
