//! How an attempt at a message fails: transient (retried), permanent (the last resort at once) or
//! an outage of the registry or the broker (the message waits without spending a retry).

use std::time::Duration;

use crate::error::{Error, RegistryError};
use crate::observe::health::Dependency;
use crate::observe::metrics::Metrics;

/// A failure retrying cannot help.
pub(crate) fn permanent(kind: &'static str, error: &dyn std::fmt::Display) -> Failure {
    Failure::Permanent {
        kind,
        error: error.to_string(),
    }
}

/// How one attempt ended, when it did not succeed.
#[derive(Debug, Clone)]
pub(crate) enum Failure {
    /// Worth retrying: the handler failed, panicked or timed out.
    Transient { kind: &'static str, error: String },
    /// Retrying cannot help: the bytes are not a Kaufmann message, or no handler exists.
    Permanent { kind: &'static str, error: String },
    /// Not the message's fault: the registry or the broker is down. The message waits for it
    /// and tries again, without spending a retry.
    Outage { of: Outage },
}

impl Failure {
    /// An outage of `of`, reported to the health state.
    pub(crate) fn outage(of: Outage, error: &dyn std::fmt::Display, metrics: &Metrics) -> Self {
        of.dependency(metrics).set_down(&error.to_string());
        Self::Outage { of }
    }
}

/// A dependency that can be down.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Outage {
    Registry,
    Broker,
}

impl Outage {
    pub(crate) fn dependency(self, metrics: &Metrics) -> &Dependency {
        match self {
            Self::Registry => &metrics.health.registry,
            Self::Broker => &metrics.health.broker,
        }
    }
}

/// The longest wait between two tries of a message during an outage (a dependency that comes
/// back wakes the waiting messages at once).
pub(crate) const OUTAGE_MAX_WAIT: Duration = Duration::from_secs(5);

/// Whether `error` says a dependency is down, rather than anything about the message: the
/// registry unreachable, answering 5xx or 429, or refusing the credentials; a broker error of
/// the cluster (no broker, timeouts, no leader), or any error while the broker is known to be down.
pub(crate) fn outage_of(error: &Error, metrics: &Metrics) -> Option<Outage> {
    use rdkafka::types::RDKafkaErrorCode as Code;
    match error {
        Error::Registry(RegistryError::Unreachable { .. } | RegistryError::Unauthorized { .. }) => {
            Some(Outage::Registry)
        }
        Error::Registry(RegistryError::Server { status, .. })
            if *status >= 500 || *status == 429 =>
        {
            Some(Outage::Registry)
        }
        Error::Kafka { source, .. } => match source.rdkafka_error_code() {
            Some(
                Code::AllBrokersDown
                | Code::BrokerTransportFailure
                | Code::MessageTimedOut
                | Code::RequestTimedOut
                | Code::NetworkException
                | Code::LeaderNotAvailable
                | Code::NotLeaderForPartition
                | Code::NotEnoughReplicas
                | Code::NotEnoughReplicasAfterAppend
                | Code::QueueFull,
            ) => Some(Outage::Broker),
            _ => None,
        },
        _ => None,
    }
    .or_else(|| (!metrics.health.broker.is_up()).then_some(Outage::Broker))
}
