//! Under `exactly_once`: the records the broker refused, counted by the message whose handler
//! published them. A refused record dooms its transaction, which aborts, and the rewind reads the
//! message again; a handler that publishes the same record each time would abort every
//! transaction after it, forever. So each refusal is counted, and once a message's refusals
//! reach its event's attempts (`max_retries` + 1), it is given up the next time it is read: its
//! error event and dead letter go into that transaction, with its offset (as a handler that
//! failed every attempt). A message whose records are taken afterwards is forgotten. A batch
//! handler's refused record counts against every message of its batch.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::fast_map::FastMap;
use crate::process::message::Source;

/// At most this many messages are remembered: a full table is emptied (their counts start again),
/// so a flood of refusals cannot grow it.
const MAX_REMEMBERED: usize = 1_000;

/// Where a message was read: topic, partition, offset.
type Position = (Arc<str>, i32, i64);

/// A message's refusals so far and the broker's last error.
#[derive(Debug)]
struct Refused {
    count: u32,
    error: String,
}

/// The refusals of the messages that had records refused, by the message's position.
#[derive(Debug, Default)]
pub(crate) struct Refusals {
    by_message: Mutex<FastMap<Position, Refused>>,
    /// Whether any message is remembered: the per-message checks take no lock while none is.
    any: AtomicBool,
}

impl Refusals {
    fn table(&self) -> MutexGuard<'_, FastMap<Position, Refused>> {
        self.by_message
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether any message is remembered (no lock).
    pub(crate) fn remembers_any(&self) -> bool {
        self.any.load(Ordering::Acquire)
    }

    /// Counts a refusal of a record the message at `origin` published; returns its refusals.
    pub(crate) fn refused(&self, origin: &Source, error: String) -> u32 {
        let mut table = self.table();
        if table.len() >= MAX_REMEMBERED {
            table.clear();
        }
        let refused = table.entry(position(origin)).or_insert(Refused {
            count: 0,
            error: String::new(),
        });
        refused.count = refused.count.saturating_add(1);
        refused.error = error;
        self.any.store(true, Ordering::Release);
        refused.count
    }

    /// When the message at `origin` had `attempts` refusals or more: forgets it and returns them
    /// with the last error, for its dead letter.
    pub(crate) fn spent(&self, origin: &Source, attempts: u32) -> Option<(u32, String)> {
        if !self.remembers_any() {
            return None;
        }
        let mut table = self.table();
        let key = position(origin);
        if table.get(&key)?.count < attempts {
            return None;
        }
        let refused = table.remove(&key)?;
        self.any.store(!table.is_empty(), Ordering::Release);
        Some((refused.count, refused.error))
    }

    /// Forgets the message at `origin`: its records were taken.
    pub(crate) fn taken(&self, origin: &Source) {
        if !self.remembers_any() {
            return;
        }
        let mut table = self.table();
        table.remove(&position(origin));
        self.any.store(!table.is_empty(), Ordering::Release);
    }
}

fn position(origin: &Source) -> Position {
    (Arc::clone(&origin.topic), origin.partition, origin.offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(offset: i64) -> Source {
        Source {
            topic: Arc::from("orders"),
            partition: 1,
            offset,
            key: None,
        }
    }

    /// A message is spent once its refusals reach the attempts, and then forgotten; another
    /// message's count is its own; a message whose records were taken starts again.
    #[test]
    fn a_message_is_spent_after_its_attempts() {
        let refusals = Refusals::default();
        assert_eq!(refusals.spent(&at(7), 1), None);
        assert_eq!(refusals.refused(&at(7), "too large".to_owned()), 1);
        assert_eq!(refusals.refused(&at(8), "other".to_owned()), 1);
        assert_eq!(refusals.spent(&at(7), 2), None);
        assert_eq!(refusals.refused(&at(7), "still too large".to_owned()), 2);
        assert_eq!(
            refusals.spent(&at(7), 2),
            Some((2, "still too large".to_owned()))
        );
        assert_eq!(refusals.spent(&at(7), 1), None, "forgotten once spent");
        refusals.taken(&at(8));
        assert_eq!(refusals.spent(&at(8), 1), None, "forgotten once taken");
        assert!(!refusals.remembers_any());
    }

    /// The table never holds more than its bound.
    #[test]
    fn the_table_is_bounded() {
        let refusals = Refusals::default();
        for offset in 0..=i64::try_from(MAX_REMEMBERED).unwrap_or(i64::MAX) {
            refusals.refused(&at(offset), String::new());
        }
        assert!(refusals.table().len() <= MAX_REMEMBERED);
        assert_eq!(
            refusals.spent(&at(i64::try_from(MAX_REMEMBERED).unwrap_or(0)), 1),
            Some((1, String::new()))
        );
    }
}
