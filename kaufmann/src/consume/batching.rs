//! Batches for batch handlers: the messages of one lane collected into batches of up to
//! `batch_max`, each waiting at most `batch_linger` after its first message for more; the batches
//! of a lane run one after another, in order, so the lane's order holds inside and across them.

use std::collections::VecDeque;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;

use crate::fast_map::FastMap;
use crate::future::BoxFuture;

/// A lane's waiting messages, and the signal that they fill a batch.
type Queue<J> = (VecDeque<J>, Arc<Notify>);

/// Collects jobs into batches, lane by lane.
pub(crate) struct Batches<L, J> {
    queued: Mutex<FastMap<L, Queue<J>>>,
    max: usize,
    linger: Duration,
}

impl<L, J> Batches<L, J>
where
    L: Eq + Hash + Clone + Send + 'static,
    J: Send + 'static,
{
    /// Batches of at most `max` jobs, waiting at most `linger` for more after the first.
    pub(crate) fn new(max: usize, linger: Duration) -> Self {
        Self {
            queued: Mutex::new(FastMap::default()),
            max: max.max(1),
            linger,
        }
    }

    /// Adds `job` to its lane: to the batch being collected, or the next one while a batch of
    /// the lane runs. The first job of an idle lane starts the lane's task, which runs `run`
    /// over each batch in turn until the lane has nothing left.
    pub(crate) fn submit<F>(self: &Arc<Self>, lane: L, job: J, run: F)
    where
        F: Fn(Vec<J>) -> BoxFuture<'static, ()> + Send + 'static,
    {
        let mut queued = self.lock();
        if let Some((queue, full)) = queued.get_mut(&lane) {
            queue.push_back(job);
            if queue.len() >= self.max {
                full.notify_one();
            }
            return;
        }
        let full = Arc::new(Notify::new());
        if self.max == 1 {
            full.notify_one();
        }
        queued.insert(lane.clone(), (VecDeque::from([job]), Arc::clone(&full)));
        drop(queued);
        let batches = Arc::clone(self);
        tokio::spawn(async move {
            // The first batch waits for more; the next ones hold messages that waited already
            // (behind the batch before them).
            tokio::select! {
                () = tokio::time::sleep(batches.linger) => {}
                () = full.notified() => {}
            }
            while let Some(batch) = batches.next(&lane) {
                run(batch).await;
            }
        });
    }

    /// The next batch of `lane`, or `None` (and the lane idle again) when it has nothing left.
    fn next(&self, lane: &L) -> Option<Vec<J>> {
        let mut queued = self.lock();
        let (queue, _) = queued.get_mut(lane)?;
        if queue.is_empty() {
            queued.remove(lane);
            return None;
        }
        let take = queue.len().min(self.max);
        Some(queue.drain(..take).collect())
    }

    fn lock(&self) -> MutexGuard<'_, FastMap<L, Queue<J>>> {
        self.queued.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Jobs of one lane come in batches of at most `max`, in order; a lane's batches run one at a
    /// time; a lone job runs after the linger.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lane_runs_its_jobs_in_ordered_batches_of_at_most_max() {
        let batches: Arc<Batches<u8, u32>> = Arc::new(Batches::new(4, Duration::from_millis(20)));
        let seen: Arc<Mutex<Vec<Vec<u32>>>> = Arc::default();
        let running = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let run = {
            let (seen, running) = (Arc::clone(&seen), Arc::clone(&running));
            move |batch: Vec<u32>| -> BoxFuture<'static, ()> {
                let (seen, running) = (Arc::clone(&seen), Arc::clone(&running));
                Box::pin(async move {
                    assert!(!running.swap(true, std::sync::atomic::Ordering::SeqCst));
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    seen.lock().unwrap().push(batch);
                    running.store(false, std::sync::atomic::Ordering::SeqCst);
                })
            }
        };
        for job in 0..10 {
            batches.submit(1, job, run.clone());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        batches.submit(1, 10, run.clone());
        tokio::time::sleep(Duration::from_millis(100)).await;
        let seen = seen.lock().unwrap().clone();
        assert_eq!(
            seen,
            [vec![0, 1, 2, 3], vec![4, 5, 6, 7], vec![8, 9], vec![10]]
        );
    }
}
