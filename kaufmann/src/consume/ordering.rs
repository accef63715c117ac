//! Ordering: which messages may run at the same time. Messages of one lane run one at a time, in
//! the order they were fetched; different lanes run in parallel.

use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Waker};

use crate::config::Ordering;
use crate::fast_map::{FastMap, Quick};
use crate::future::BoxFuture;

/// A sequence of messages that must run one at a time: a 64-bit hash of the topic and the key (or
/// the partition), so that finding a message's lane allocates nothing. Two keys whose hashes meet
/// share a lane and run one after the other: each key keeps its order, they only lose parallelism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Lane(u64);

impl Lane {
    /// The lane of a message, or `None` when it may run beside anything.
    pub(crate) fn of_message(
        ordering: Ordering,
        topic: &str,
        partition: i32,
        key: Option<&[u8]>,
    ) -> Option<Self> {
        match (ordering, key) {
            (Ordering::Unordered, _) => None,
            (Ordering::Key, Some(key)) => Some(Self::of(b'k', topic, key)),
            (Ordering::Key | Ordering::Partition, _) => {
                Some(Self::of(b'p', topic, &partition.to_le_bytes()))
            }
        }
    }

    /// The lane of the messages of batch handlers from one partition: batches are collected
    /// per partition (which keeps every key's order too), apart from the other messages.
    pub(crate) fn of_batch(topic: &str, partition: i32) -> Self {
        Self::of(b'b', topic, &partition.to_le_bytes())
    }

    fn of(kind: u8, topic: &str, id: &[u8]) -> Self {
        let mut hasher = Quick::default();
        hasher.write(&[kind]);
        hasher.write(topic.as_bytes());
        // The topic's length keeps ("ab", "c") apart from ("a", "bc").
        hasher.write(&topic.len().to_le_bytes());
        hasher.write(id);
        Self(hasher.finish())
    }
}

/// Runs jobs lane by lane. A job whose lane is idle (or that has no lane) starts at once; a job
/// whose lane is running waits in the lane's queue. A lane is running from the moment a job of it
/// could not finish at once until its queue is empty, and the task that runs it takes the queued
/// jobs in order, so lanes drive themselves and the consumer may block (in a rebalance callback)
/// while they drain.
pub struct Lanes<L, J> {
    queued: Mutex<FastMap<L, VecDeque<J>>>,
}

impl<L: Eq + Hash, J> Default for Lanes<L, J> {
    fn default() -> Self {
        Self {
            queued: Mutex::new(FastMap::default()),
        }
    }
}

impl<L: Eq + Hash, J> Lanes<L, J> {
    /// Runs `job` now (no lane, or an idle lane) or after the jobs queued in its lane.
    ///
    /// With `inline`, a job that may start now is first polled right here, on the caller's task:
    /// a job that finishes without waiting (a quick handler) then costs no task, no wake-up and no
    /// thread switch. A job that has to wait goes on in a task of its own, which then runs its
    /// lane's queued jobs. Futures are polled again by that task, with its waker, before anything
    /// else (as the `Future` contract expects of a moved future).
    ///
    /// One task submits (the engine's poll loop): a lane is marked running only after its inline
    /// job went pending.
    pub fn submit<F>(self: &Arc<Self>, lane: Option<L>, job: J, inline: bool, run: F)
    where
        L: Clone + Send + 'static,
        J: Send + 'static,
        F: Fn(J) -> BoxFuture<'static, ()> + Send + 'static,
    {
        let job = match &lane {
            Some(lane) => match self.queue_or_give_back(lane, job) {
                Some(job) => job,
                None => return,
            },
            None => job,
        };
        let mut first = run(job);
        if inline
            && first
                .as_mut()
                .poll(&mut Context::from_waker(Waker::noop()))
                .is_ready()
        {
            return;
        }
        if let Some(lane) = &lane {
            self.start(lane.clone());
        }
        let lanes = Arc::clone(self);
        tokio::spawn(async move {
            first.await;
            if let Some(lane) = lane {
                while let Some(job) = lanes.next(&lane) {
                    run(job).await;
                }
            }
        });
    }

    /// Queues `job` behind the running jobs of `lane`; gives it back when the lane is idle, for
    /// the caller to run at once.
    fn queue_or_give_back(&self, lane: &L, job: J) -> Option<J> {
        match self.lock().get_mut(lane) {
            Some(queue) => {
                queue.push_back(job);
                None
            }
            None => Some(job),
        }
    }

    /// Marks `lane` as running (its job given back by `queue_or_give_back` is still going): jobs
    /// submitted to it from now on wait.
    fn start(&self, lane: L) {
        self.lock().entry(lane).or_default();
    }

    /// The next job of a running lane, or `None` (and the lane idle again) when its queue is
    /// empty.
    fn next(&self, lane: &L) -> Option<J> {
        let mut queued = self.lock();
        let next = queued.get_mut(lane).and_then(VecDeque::pop_front);
        if next.is_none() {
            queued.remove(lane);
        }
        next
    }

    /// Jobs waiting behind a running job of their lane.
    #[cfg(test)]
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
        assert_eq!(Lane::of_message(Ordering::Unordered, "t", 1, key), None);
        let by_key = Lane::of_message(Ordering::Key, "t", 1, key);
        assert_eq!(
            by_key,
            Lane::of_message(Ordering::Key, "t", 2, key),
            "a key's lane spans partitions"
        );
        assert_ne!(by_key, Lane::of_message(Ordering::Key, "t", 1, Some(b"j")));
        assert_ne!(by_key, Lane::of_message(Ordering::Key, "u", 1, key));
        assert_ne!(
            Lane::of_message(Ordering::Key, "ab", 1, Some(b"c")),
            Lane::of_message(Ordering::Key, "a", 1, Some(b"bc"))
        );
        let by_partition = Lane::of_message(Ordering::Partition, "t", 1, key);
        assert_eq!(Lane::of_message(Ordering::Key, "t", 1, None), by_partition);
        assert_eq!(
            Lane::of_message(Ordering::Partition, "t", 1, Some(b"j")),
            by_partition
        );
        assert_ne!(
            Lane::of_message(Ordering::Partition, "t", 2, key),
            by_partition
        );
        assert_ne!(by_partition, by_key);
        assert_eq!(Ordering::parse("key"), Some(Ordering::Key));
        assert_eq!(Ordering::parse("keys"), None);
    }

    /// Jobs of one lane run in submission order, never two at once; lanes run in parallel.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn one_at_a_time_per_lane_in_order_and_lanes_in_parallel() {
        let lanes: Arc<Lanes<u8, (u8, u32)>> = Arc::default();
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
            move |(lane, seq): (u8, u32)| -> BoxFuture<'static, ()> {
                let (seen, running, total_running, peak_total, done_tx) = (
                    seen.clone(),
                    running.clone(),
                    total_running.clone(),
                    peak_total.clone(),
                    done_tx.clone(),
                );
                Box::pin(async move {
                    let now = running[usize::from(lane)].fetch_add(1, AtomicOrdering::SeqCst);
                    assert_eq!(now, 0, "two jobs of lane {lane} ran at once");
                    let total = total_running.fetch_add(1, AtomicOrdering::SeqCst) + 1;
                    peak_total.fetch_max(total, AtomicOrdering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(u64::from(seq % 3))).await;
                    seen.lock().unwrap().entry(lane).or_default().push(seq);
                    total_running.fetch_sub(1, AtomicOrdering::SeqCst);
                    running[usize::from(lane)].fetch_sub(1, AtomicOrdering::SeqCst);
                    let _ = done_tx.send(());
                })
            }
        };
        let run = Arc::new(run);
        for seq in 0..50_u32 {
            for lane in 0..4_u8 {
                let run = run.clone();
                // Jobs that sleep 0 ms may finish inline; the others go on in lane tasks.
                lanes.submit(Some(lane), (lane, seq), seq % 2 == 0, move |job| run(job));
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

    /// A job that finishes at its first poll runs inline (before `submit` returns), and its lane
    /// stays idle; a job that waits holds its lane, and the lane's next job runs after it.
    #[tokio::test]
    async fn quick_jobs_run_inline_and_waiting_jobs_hold_their_lane() {
        let lanes: Arc<Lanes<u8, u32>> = Arc::default();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
        let release = Arc::new(Mutex::new(Some(release_rx)));
        let run = {
            let log = log.clone();
            move |seq: u32| -> BoxFuture<'static, ()> {
                let (log, release) = (log.clone(), release.clone());
                Box::pin(async move {
                    if seq == 2 {
                        let wait = release.lock().unwrap().take().unwrap();
                        wait.await.unwrap();
                    }
                    log.lock().unwrap().push(seq);
                })
            }
        };
        let run = Arc::new(run);
        let submit = |seq: u32| {
            let run = run.clone();
            lanes.submit(Some(7), seq, true, move |job| run(job));
        };
        submit(1);
        assert_eq!(*log.lock().unwrap(), [1], "job 1 ran inline");
        assert_eq!(lanes.lock().len(), 0, "an inline job leaves its lane idle");
        submit(2);
        submit(3);
        assert_eq!(*log.lock().unwrap(), [1], "job 3 waits behind job 2");
        assert_eq!(lanes.waiting(), 1);
        release_tx.send(()).unwrap();
        for _ in 0..100 {
            if log.lock().unwrap().len() == 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(*log.lock().unwrap(), [1, 2, 3]);
        assert_eq!(lanes.lock().len(), 0, "the lane is idle again");
    }
}
