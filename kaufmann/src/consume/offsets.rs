//! Offset tracking, as pure logic: which offset each partition may commit.
//!
//! Messages of one partition are fetched in offset order and may finish in any order. A partition's
//! commit position is its lowest unfinished offset, or one past the last fetched offset when nothing
//! is unfinished: never past a message that is still being handled.

use std::collections::VecDeque;

use crate::fast_map::FastMap;

/// A topic and partition.
pub type TopicPartition = (String, i32);

#[derive(Debug, Default)]
struct PartitionState {
    /// Fetched offsets in ascending order with whether each is finished, from the lowest
    /// unfinished one on: offsets arrive in order, so fetching appends, and finishing marks one
    /// and drops the finished ones from the front.
    window: VecDeque<(i64, bool)>,
    /// How many offsets in `window` are unfinished.
    unfinished: usize,
    next_after_fetched: Option<i64>,
    committed: Option<i64>,
}

impl PartitionState {
    fn position(&self) -> Option<i64> {
        self.window
            .front()
            .map(|(offset, _)| *offset)
            .or(self.next_after_fetched)
    }

    fn fetched(&mut self, offset: i64) {
        match self.window.back() {
            Some((last, _)) if *last >= offset => {
                // Out of order (a seek back): keep the window sorted, once per offset.
                if let Err(at) = self.window.binary_search_by_key(&offset, |(o, _)| *o) {
                    self.window.insert(at, (offset, false));
                    self.unfinished += 1;
                }
            }
            _ => {
                self.window.push_back((offset, false));
                self.unfinished += 1;
            }
        }
        self.next_after_fetched = Some(
            self.next_after_fetched
                .map_or(offset + 1, |n| n.max(offset + 1)),
        );
    }

    fn finished(&mut self, offset: i64) {
        let Ok(at) = self.window.binary_search_by_key(&offset, |(o, _)| *o) else {
            return;
        };
        if let Some((_, done)) = self.window.get_mut(at) {
            if !*done {
                *done = true;
                self.unfinished -= 1;
            }
        }
        while self.window.front().is_some_and(|(_, done)| *done) {
            self.window.pop_front();
        }
    }
}

/// Tracks fetched and finished offsets per partition.
#[derive(Debug, Default)]
pub struct OffsetTracker {
    // By topic, then by partition number (Kafka numbers a topic's partitions from 0): one search
    // per message, borrowing the topic name instead of allocating a key.
    partitions: FastMap<String, Vec<Option<PartitionState>>>,
}

impl OffsetTracker {
    /// Records that `offset` of a partition was fetched and is now in flight.
    pub fn fetched(&mut self, topic: &str, partition: i32, offset: i64) {
        // (A consumed message always has a partition number of 0 or more.)
        let Ok(at) = usize::try_from(partition) else {
            return;
        };
        // One search for a known topic (every message but the topic's first).
        let parts = match self.partitions.get_mut(topic) {
            Some(parts) => parts,
            None => self.partitions.entry(topic.to_owned()).or_default(),
        };
        if parts.len() <= at {
            parts.resize_with(at + 1, || None);
        }
        parts[at]
            .get_or_insert_with(PartitionState::default)
            .fetched(offset);
    }

    /// Records that `offset` of a partition is finished (handled, or handed to the error policy).
    pub fn finished(&mut self, topic: &str, partition: i32, offset: i64) {
        if let Some(state) = self.state_mut(topic, partition) {
            state.finished(offset);
        }
    }

    fn state(&self, topic: &str, partition: i32) -> Option<&PartitionState> {
        let parts = self.partitions.get(topic)?;
        parts.get(usize::try_from(partition).ok()?)?.as_ref()
    }

    fn state_mut(&mut self, topic: &str, partition: i32) -> Option<&mut PartitionState> {
        let parts = self.partitions.get_mut(topic)?;
        parts.get_mut(usize::try_from(partition).ok()?)?.as_mut()
    }

    fn states(&self) -> impl Iterator<Item = ((&str, i32), &PartitionState)> {
        self.partitions.iter().flat_map(|(topic, parts)| {
            parts.iter().enumerate().filter_map(move |(p, state)| {
                Some(((topic.as_str(), i32::try_from(p).ok()?), state.as_ref()?))
            })
        })
    }

    /// Every partition with fetched offsets.
    pub fn partitions(&self) -> impl Iterator<Item = (&str, i32)> {
        self.states().map(|(tp, _)| tp)
    }

    /// The number of fetched offsets of one partition not yet finished.
    pub fn unfinished_in(&self, topic: &str, partition: i32) -> usize {
        self.state(topic, partition).map_or(0, |s| s.unfinished)
    }

    /// The number of fetched offsets not yet finished, over all partitions.
    #[cfg(test)]
    pub fn in_flight(&self) -> usize {
        self.states().map(|(_, s)| s.unfinished).sum()
    }

    /// The commit position of every partition whose position moved since it was last committed.
    pub fn committable(&self) -> Vec<(TopicPartition, i64)> {
        let mut out: Vec<_> = self
            .states()
            .filter_map(|((topic, partition), state)| {
                let position = state.position()?;
                (state.committed != Some(position))
                    .then(|| ((topic.to_owned(), partition), position))
            })
            .collect();
        out.sort();
        out
    }

    /// Records that these positions were committed.
    pub fn committed(&mut self, positions: &[(TopicPartition, i64)]) {
        for ((topic, partition), position) in positions {
            if let Some(state) = self.state_mut(topic, *partition) {
                state.committed = Some(*position);
            }
        }
    }

    /// Forgets a partition (after it was revoked and its position committed).
    pub fn forget(&mut self, topic: &str, partition: i32) {
        let slot = usize::try_from(partition)
            .ok()
            .and_then(|at| self.partitions.get_mut(topic)?.get_mut(at));
        if let Some(slot) = slot {
            *slot = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn positions(tracker: &OffsetTracker) -> Vec<(String, i32, i64)> {
        tracker
            .committable()
            .into_iter()
            .map(|((t, p), o)| (t, p, o))
            .collect()
    }

    #[test]
    fn never_commits_past_an_unfinished_offset() {
        let mut t = OffsetTracker::default();
        for o in 10..15 {
            t.fetched("a", 0, o);
        }
        t.finished("a", 0, 11);
        t.finished("a", 0, 12);
        assert_eq!(positions(&t), [("a".into(), 0, 10)]);
        t.finished("a", 0, 10);
        assert_eq!(positions(&t), [("a".into(), 0, 13)]);
        t.finished("a", 0, 14);
        t.finished("a", 0, 13);
        assert_eq!(positions(&t), [("a".into(), 0, 15)]);
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn reports_only_moved_positions() {
        let mut t = OffsetTracker::default();
        t.fetched("a", 0, 0);
        t.fetched("a", 1, 0);
        t.finished("a", 0, 0);
        let first = t.committable();
        assert_eq!(first.len(), 2);
        t.committed(&first);
        assert!(t.committable().is_empty());
        t.finished("a", 1, 0);
        assert_eq!(positions(&t), [("a".into(), 1, 1)]);
        t.finished("a", 1, 0);
        assert_eq!(t.in_flight(), 0, "finishing twice counts once");
        t.forget("a", 1);
        assert!(t.committable().is_empty());
    }

    /// Offsets fetched again after a seek back (or out of order) keep the window sorted.
    #[test]
    fn offsets_fetched_out_of_order_stay_sorted() {
        let mut t = OffsetTracker::default();
        for o in [5, 6, 7, 3, 6, 4] {
            t.fetched("s", 0, o);
        }
        assert_eq!(t.in_flight(), 5);
        assert_eq!(positions(&t), [("s".into(), 0, 3)]);
        for o in [3, 4, 5] {
            t.finished("s", 0, o);
        }
        assert_eq!(positions(&t), [("s".into(), 0, 6)]);
        t.finished("s", 0, 7);
        t.finished("s", 0, 6);
        assert_eq!(positions(&t), [("s".into(), 0, 8)]);
        assert_eq!(t.unfinished_in("s", 0), 0);
    }

    /// Every completion order of a window keeps the position at the lowest unfinished offset.
    #[test]
    fn any_completion_order_is_safe() {
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        for _round in 0..200 {
            let mut t = OffsetTracker::default();
            let n = 40_i64;
            for o in 0..n {
                t.fetched("p", 3, o);
            }
            let mut order: Vec<i64> = (0..n).collect();
            for i in (1..order.len()).rev() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let j = usize::try_from(seed % (i as u64 + 1)).unwrap();
                order.swap(i, j);
            }
            let mut done = std::collections::BTreeSet::new();
            for o in order {
                t.finished("p", 3, o);
                done.insert(o);
                let lowest_unfinished = (0..n).find(|x| !done.contains(x)).unwrap_or(n);
                assert_eq!(positions(&t), [("p".into(), 3, lowest_unfinished)]);
            }
        }
    }
}
