//! Rate-limited logging: at most one line per interval for a kind of event (a flood of bad records
//! must not flood the logs), with how many of them went unlogged since the last line.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// At most one log line per `every`.
#[derive(Debug)]
pub(crate) struct LogLimit {
    every: Duration,
    /// When a line was last logged, and the running total of events then.
    last: Mutex<Option<(Instant, u64)>>,
}

impl LogLimit {
    /// A limit of one line per `every`.
    pub(crate) const fn new(every: Duration) -> Self {
        Self {
            every,
            last: Mutex::new(None),
        }
    }

    /// Whether the event numbered `total` (a running count, this one included) is logged: then
    /// `Some` of how many came since the last logged one and were not.
    pub(crate) fn admit(&self, total: u64) -> Option<u64> {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if last.is_some_and(|(at, _)| at.elapsed() < self.every) {
            return None;
        }
        let since = last.map_or(0, |(_, count)| total.saturating_sub(count + 1));
        *last = Some((Instant::now(), total));
        Some(since)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_counting_the_silent_ones() {
        let limit = LogLimit::new(Duration::from_secs(3600));
        assert_eq!(limit.admit(1), Some(0));
        assert_eq!(limit.admit(2), None);
        assert_eq!(limit.admit(3), None);
        let open = LogLimit::new(Duration::ZERO);
        assert_eq!(open.admit(1), Some(0));
        assert_eq!(open.admit(4), Some(2), "2 and 3 went unlogged");
    }
}
