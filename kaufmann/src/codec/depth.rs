//! The nesting limit of every decoder: the process-wide maximum (`max_nesting_depth`) and the
//! levels a generated reader is in on this thread.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::AvroError;

/// The nesting depth a value may reach when nothing else is configured (`max_nesting_depth`).
pub const DEFAULT_MAX_DEPTH: usize = 64;

/// The deepest nesting `max_nesting_depth` accepts: beyond it, apache-avro's recursion could
/// overflow a thread's stack in a debug build.
pub const MAX_DEPTH_LIMIT: usize = 256;

static MAX_DEPTH: AtomicUsize = AtomicUsize::new(DEFAULT_MAX_DEPTH);

/// The nesting limit in force in this process.
pub fn max_depth() -> usize {
    MAX_DEPTH.load(Ordering::Relaxed)
}

/// Sets the nesting limit for every decoder of this process (a service sets it from its
/// `max_nesting_depth` at start); clamped to `1..=MAX_DEPTH_LIMIT`.
pub fn set_max_depth(depth: usize) {
    MAX_DEPTH.store(depth.clamp(1, MAX_DEPTH_LIMIT), Ordering::Relaxed);
}

thread_local! {
    static DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// One level of nesting in a generated reader (a `Box`, an array or a map): [`Nesting::enter`]
/// refuses to go deeper than [`max_depth`]; the level is left when the value is dropped.
#[derive(Debug)]
pub struct Nesting(());

impl Nesting {
    /// Enters one level.
    ///
    /// # Errors
    /// When the value is already [`max_depth`] levels deep.
    pub fn enter() -> Result<Self, AvroError> {
        let limit = max_depth();
        DEPTH.with(|depth| {
            let now = depth.get();
            if now >= limit {
                return Err(AvroError::new(format!(
                    "nesting deeper than {limit} levels (max_nesting_depth)"
                )));
            }
            depth.set(now + 1);
            Ok(Self(()))
        })
    }
}

impl Drop for Nesting {
    fn drop(&mut self) {
        DEPTH.with(|depth| depth.set(depth.get().saturating_sub(1)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The generated readers' levels: refused past the limit, left again on drop.
    #[test]
    fn nesting_levels_are_counted_and_left() {
        let limit = max_depth();
        let mut levels = Vec::new();
        for _ in 0..limit {
            levels.push(Nesting::enter().unwrap());
        }
        assert!(Nesting::enter().is_err());
        levels.clear();
        assert!(Nesting::enter().is_ok());
    }
}
