//! Ordering: which messages may run at the same time. Messages of one lane run one at a time, in
//! the order they were fetched; different lanes run in parallel.

use std::collections::VecDeque;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};

use crate::fast_map::FastMap;

/// How messages are ordered (the `ordering` config key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Ordering {
    /// One at a time per message key; different keys in parallel even within one partition. A
    /// message without a key is ordered within its partition.
    #[default]
    Key,
    /// One at a time per partition; partitions in parallel.
    Partition,
    /// No ordering: any message may run beside any other.
    Unordered,
}

impl Ordering {
    /// The config spellings, for errors.
    pub const ACCEPTED: &'static str = "`key`, `partition` or `unordered`";

    /// Parses a config value.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "key" => Some(Self::Key),
            "partition" => Some(Self::Partition),
            "unordered" => Some(Self::Unordered),
            _ => None,
        }
    }

    /// The lane of a message, or `None` when it may run beside anything.
    pub fn lane(self, topic: &str, partition: i32, key: Option<&[u8]>) -> Option<Lane> {
        match (self, key) {
            (Self::Unordered, _) => None,
            (Self::Key, Some(key)) => Some(Lane::Key(topic.to_owned(), key.to_vec())),
            (Self::Key | Self::Partition, _) => Some(Lane::Partition(topic.to_owned(), partition)),
        }
    }
}

/// A sequence of messages that must run one at a time.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Lane {
    /// Messages with this key in this topic.
    Key(String, Vec<u8>),
    /// Messages of this partition.
    Partition(String, i32),
}

/// Runs jobs lane by lane: the first job of an idle lane starts a task, which then runs the lane's
/// queued jobs in order until the lane is empty. Jobs without a lane run at once.
///
/// Lanes drive themselves: nothing outside them has to poll for the next job, so the consumer may
/// block (in a rebalance callback) while lanes keep draining.
pub struct Lanes<L, J> {
    queued: Mutex<FastMap<L, VecDeque<J>>>,
}

impl<L: Eq + Hash + Clone + Send + 'static, J: Send + 'static> Lanes<L, J> {
    /// No lanes yet.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            queued: Mutex::new(FastMap::default()),
        })
    }

    /// Runs `job` now (no lane, or an idle lane) or after the jobs queued in its lane.
    pub fn submit<F, Fut>(self: &Arc<Self>, lane: Option<L>, job: J, run: F)
    where
        F: Fn(J) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let Some(lane) = lane else {
            tokio::spawn(run(job));
            return;
        };
        {
            let mut queued = self.lock();
            if let Some(queue) = queued.get_mut(&lane) {
                queue.push_back(job);
                return;
            }
            queued.insert(lane.clone(), VecDeque::new());
        }
        let lanes = Arc::clone(self);
        tokio::spawn(async move {
            let mut next = Some(job);
            while let Some(job) = next {
                run(job).await;
                let mut queued = lanes.lock();
                next = queued.get_mut(&lane).and_then(VecDeque::pop_front);
                if next.is_none() {
                    queued.remove(&lane);
                }
            }
        });
    }

    /// Jobs waiting behind a running job of their lane.
    pub fn waiting(&self) -> usize {
        self.lock().values().map(VecDeque::len).sum()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FastMap<L, VecDeque<J>>> {
        self.queued.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
    use std::time::Duration;

    #[test]
    fn lanes_follow_the_mode() {
        let key = Some(&b"k"[..]);
        assert_eq!(Ordering::Unordered.lane("t", 1, key), None);
        assert_eq!(
            Ordering::Key.lane("t", 1, key),
            Some(Lane::Key("t".into(), b"k".to_vec()))
        );
        assert_eq!(
            Ordering::Key.lane("t", 1, None),
            Some(Lane::Partition("t".into(), 1))
        );
        assert_eq!(
            Ordering::Partition.lane("t", 1, key),
            Some(Lane::Partition("t".into(), 1))
        );
        assert_eq!(Ordering::parse("key"), Some(Ordering::Key));
        assert_eq!(Ordering::parse("keys"), None);
    }

    /// Jobs of one lane run in submission order, never two at once; lanes run in parallel.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn one_at_a_time_per_lane_in_order_and_lanes_in_parallel() {
        let lanes: Arc<Lanes<u8, (u8, u32)>> = Lanes::new();
        let seen = Arc::new(Mutex::new(std::collections::HashMap::<u8, Vec<u32>>::new()));
        let running = Arc::new([(); 4].map(|()| AtomicUsize::new(0)));
        let total_running = Arc::new(AtomicUsize::new(0));
        let peak_total = Arc::new(AtomicUsize::new(0));
        let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
        let run = {
            let (seen, running, total_running, peak_total) = (
                seen.clone(),
                running.clone(),
                total_running.clone(),
                peak_total.clone(),
            );
            move |(lane, seq): (u8, u32)| {
                let (seen, running, total_running, peak_total, done_tx) = (
                    seen.clone(),
                    running.clone(),
                    total_running.clone(),
                    peak_total.clone(),
                    done_tx.clone(),
                );
                async move {
                    let now = running[usize::from(lane)].fetch_add(1, AtomicOrdering::SeqCst);
                    assert_eq!(now, 0, "two jobs of lane {lane} ran at once");
                    let total = total_running.fetch_add(1, AtomicOrdering::SeqCst) + 1;
                    peak_total.fetch_max(total, AtomicOrdering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(u64::from(seq % 3))).await;
                    seen.lock().unwrap().entry(lane).or_default().push(seq);
                    total_running.fetch_sub(1, AtomicOrdering::SeqCst);
                    running[usize::from(lane)].fetch_sub(1, AtomicOrdering::SeqCst);
                    let _ = done_tx.send(());
                }
            }
        };
        let run = Arc::new(run);
        for seq in 0..50_u32 {
            for lane in 0..4_u8 {
                let run = run.clone();
                lanes.submit(Some(lane), (lane, seq), move |job| run(job));
            }
        }
        for _ in 0..200 {
            done_rx.recv().await.unwrap();
        }
        let seen = seen.lock().unwrap();
        for lane in 0..4 {
            assert_eq!(seen[&lane], (0..50).collect::<Vec<_>>(), "lane {lane}");
        }
        assert!(
            peak_total.load(AtomicOrdering::SeqCst) > 1,
            "lanes never ran in parallel"
        );
        assert_eq!(lanes.waiting(), 0);
    }
}
