//! What readiness reports, and why: the partition assignment, the schema registry, the broker and
//! the consumer's own errors.
//!
//! An outage is not a message's failure: messages that need a dependency that is down wait for it
//! ([`Dependency::wait_up`]) instead of spending their retries, and readiness answers 503 with the
//! reason until it is back.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// How long after a consumer error, with no message since, readiness stays 503.
pub const CONSUMER_ERROR_WINDOW: Duration = Duration::from_secs(30);

/// Something the service needs that can be down: the schema registry or the broker.
#[derive(Debug)]
pub struct Dependency {
    name: &'static str,
    up: AtomicBool,
    /// Since when it is down, and the last error, while it is down.
    down: Mutex<Option<(Instant, String)>>,
    /// Wakes the messages waiting for it when it is back.
    back: Notify,
}

impl Dependency {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            up: AtomicBool::new(false),
            down: Mutex::new(None),
            back: Notify::new(),
        }
    }

    /// Whether it answered last time it was asked.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::SeqCst)
    }

    /// It answered: up again, and the waiting messages go on.
    pub(crate) fn set_up(&self) {
        if self.up.swap(true, Ordering::SeqCst) {
            return;
        }
        let was_down = self
            .down
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some((since, _)) = was_down {
            tracing::warn!(
                "{} reachable again after {:.1?}",
                self.name,
                since.elapsed()
            );
        }
        self.back.notify_waiters();
    }

    /// It did not answer (`error`: why; shown by readiness and logged once per outage).
    pub(crate) fn set_down(&self, error: &str) {
        let mut down = self.down.lock().unwrap_or_else(PoisonError::into_inner);
        let since = if let Some((since, _)) = down.as_ref() {
            *since
        } else {
            tracing::error!(
                "{} unreachable: {error}; messages that need it wait (their retries are not \
                 spent) and readiness answers 503 until it is back",
                self.name
            );
            Instant::now()
        };
        *down = Some((since, error.to_owned()));
        self.up.store(false, Ordering::SeqCst);
    }

    /// Waits until it is marked up, or `at_most`, whichever comes first.
    pub(crate) async fn wait_up(&self, at_most: Duration) {
        let back = self.back.notified();
        if self.is_up() {
            return;
        }
        let _ = tokio::time::timeout(at_most, back).await;
    }

    /// Why it is down, for readiness: `None` when it is up.
    fn reason(&self) -> Option<String> {
        if self.is_up() {
            return None;
        }
        let down = self.down.lock().unwrap_or_else(PoisonError::into_inner);
        Some(match down.as_ref() {
            Some((since, error)) => format!(
                "{} unreachable for {:.0?}: {error}",
                self.name,
                since.elapsed()
            ),
            None => format!("{} not reached yet", self.name),
        })
    }
}

/// Errors librdkafka reports instead of a message (a record it cannot decompress, a partition it
/// may not read): counted, and readiness answers 503 while they go on with no message between.
#[derive(Debug, Default)]
struct ConsumerErrors {
    total: AtomicU64,
    /// The last one, when no message came after it.
    last: Mutex<Option<(Instant, String)>>,
    /// Set with `last`: the next message clears both (one load per message otherwise).
    pending: AtomicBool,
}

/// The health of a running service.
#[derive(Debug)]
pub struct Health {
    /// The partitions each of the service's consumers holds, by consumer.
    assigned: Mutex<Vec<u64>>,
    /// The schema registry.
    pub registry: Dependency,
    /// The Kafka cluster.
    pub broker: Dependency,
    consumer: ConsumerErrors,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            assigned: Mutex::default(),
            registry: Dependency::new("schema registry"),
            broker: Dependency::new("kafka broker"),
            consumer: ConsumerErrors::default(),
        }
    }
}

impl Health {
    /// Records how many partitions `consumer` (from 0) holds now.
    pub(crate) fn set_assigned(&self, consumer: usize, partitions: usize) {
        let partitions = u64::try_from(partitions).unwrap_or(u64::MAX);
        let mut assigned = self.assigned.lock().unwrap_or_else(PoisonError::into_inner);
        if assigned.len() <= consumer {
            assigned.resize(consumer + 1, 0);
        }
        assigned[consumer] = partitions;
    }

    /// The partitions each consumer holds, by consumer (empty before the first assignment).
    pub(crate) fn assigned(&self) -> Vec<u64> {
        self.assigned
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A consumer error in place of a message.
    pub(crate) fn consumer_error(&self, error: &str) {
        self.consumer.total.fetch_add(1, Ordering::Relaxed);
        *self
            .consumer
            .last
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some((Instant::now(), error.to_owned()));
        self.consumer.pending.store(true, Ordering::SeqCst);
    }

    /// A message arrived: the consumer works.
    pub(crate) fn message_received(&self) {
        if self.consumer.pending.load(Ordering::Relaxed) {
            self.consumer.pending.store(false, Ordering::SeqCst);
            *self
                .consumer
                .last
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = None;
        }
    }

    /// How many consumer errors there were.
    pub fn consumer_errors(&self) -> u64 {
        self.consumer.total.load(Ordering::Relaxed)
    }

    /// Why the service is not ready, one reason a line; empty when it is ready.
    pub fn not_ready(&self) -> String {
        let mut reasons = String::new();
        if self.assigned().iter().all(|&partitions| partitions == 0) {
            reasons.push_str("no partitions assigned to this instance\n");
        }
        for dependency in [&self.registry, &self.broker] {
            if let Some(reason) = dependency.reason() {
                let _ = writeln!(reasons, "{reason}");
            }
        }
        let last = self
            .consumer
            .last
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((at, error)) = last.as_ref() {
            if at.elapsed() < CONSUMER_ERROR_WINDOW {
                let _ = writeln!(
                    reasons,
                    "the consumer reported an error {:.0?} ago and no message since: {error}",
                    at.elapsed()
                );
            }
        }
        reasons
    }

    /// Ready: partitions assigned, the registry and the broker reachable, the consumer working.
    pub fn ready(&self) -> bool {
        self.not_ready().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> Health {
        let health = Health::default();
        health.set_assigned(0, 2);
        health.registry.set_up();
        health.broker.set_up();
        health
    }

    #[test]
    fn ready_needs_an_assignment_the_registry_and_the_broker() {
        let health = Health::default();
        let reasons = health.not_ready();
        for part in [
            "no partitions assigned",
            "schema registry not reached yet",
            "kafka broker not reached yet",
        ] {
            assert!(reasons.contains(part), "{reasons}");
        }
        let health = healthy();
        assert!(health.ready(), "{}", health.not_ready());
        // With two consumers, one holding partitions is enough.
        health.set_assigned(3, 1);
        health.set_assigned(0, 0);
        assert!(health.ready(), "{}", health.not_ready());
        assert_eq!(health.assigned(), [0, 0, 0, 1]);
        health.set_assigned(3, 0);
        assert_eq!(
            health.not_ready(),
            "no partitions assigned to this instance\n"
        );
    }

    #[test]
    fn an_outage_is_reported_with_its_reason_until_it_ends() {
        let health = healthy();
        health.registry.set_down("connection refused");
        health.registry.set_down("connection reset");
        let reasons = health.not_ready();
        assert!(
            reasons.starts_with("schema registry unreachable for ")
                && reasons.ends_with(": connection reset\n"),
            "{reasons}"
        );
        assert!(health.broker.is_up());
        health.registry.set_up();
        assert!(health.ready(), "{}", health.not_ready());
    }

    #[test]
    fn consumer_errors_hold_readiness_until_a_message_arrives() {
        let health = healthy();
        health.consumer_error("Local: Bad compression");
        assert!(health.not_ready().contains("Bad compression"));
        assert_eq!(health.consumer_errors(), 1);
        health.message_received();
        assert!(health.ready());
        assert_eq!(health.consumer_errors(), 1);
    }

    #[tokio::test]
    async fn waiters_go_on_when_the_dependency_is_back() {
        let health = std::sync::Arc::new(healthy());
        health.broker.set_down("all brokers down");
        let waiting = {
            let health = health.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                health.broker.wait_up(Duration::from_secs(60)).await;
                started.elapsed()
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        health.broker.set_up();
        let waited = tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .expect("the waiter was woken")
            .expect("the waiter did not panic");
        assert!(waited < Duration::from_secs(10));
    }
}
