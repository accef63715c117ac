//! librdkafka's log lines, logged as rdkafka logs them (target `librdkafka`), but for the
//! warnings that a property belongs to the other kind of client. The `[librdkafka]` table goes to
//! the consumer and to the producers alike, so the consumer warns about each producer property
//! (`linger.ms`) and each producer about each consumer property (`fetch.wait.max.ms`), although
//! each takes effect in the client it belongs to: those lines are logged at `debug`.

use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::producer::FutureProducer;

/// The producers' client context: rdkafka's default, but for its log lines (see the module).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ProducerLogging;

impl ClientContext for ProducerLogging {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        log(level, fac, message);
    }
}

/// A producer of the service (the publisher's, the transactional one).
pub(crate) type KafkaProducer = FutureProducer<ProducerLogging>;

/// Logs one of librdkafka's lines (see the module).
pub(crate) fn log(level: RDKafkaLogLevel, fac: &str, message: &str) {
    if quieted(level, message) {
        tracing::debug!(target: "librdkafka", "librdkafka: {fac} {message}");
        return;
    }
    DefaultClientContext.log(level, fac, message);
}

/// Whether a line is a warning that a property is the other kind of client's.
fn quieted(level: RDKafkaLogLevel, message: &str) -> bool {
    matches!(level, RDKafkaLogLevel::Warning)
        && (message
            .contains("is a producer property and will be ignored by this consumer instance")
            || message
                .contains("is a consumer property and will be ignored by this producer instance"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The warnings librdkafka 2.x writes when one table goes to both kinds of client are told
    /// apart from its other lines (the producer's polling thread and the consumer's poll call
    /// [`log`] with them; `cargo run --example user_service` with
    /// `KAUFMANN_LIBRDKAFKA_LINGER_MS=2 KAUFMANN_LIBRDKAFKA_FETCH_WAIT_MAX_MS=10` shows none at
    /// `warn`).
    #[test]
    fn only_warnings_about_the_other_clients_properties_are_quieted() {
        let consumer = "[thrd:app]: Configuration property linger.ms is a producer property and \
                        will be ignored by this consumer instance";
        let producer = "[thrd:app]: Configuration property fetch.wait.max.ms is a consumer \
                        property and will be ignored by this producer instance";
        assert!(quieted(RDKafkaLogLevel::Warning, consumer));
        assert!(quieted(RDKafkaLogLevel::Warning, producer));
        assert!(!quieted(
            RDKafkaLogLevel::Warning,
            "[thrd:app]: Configuration property queue.buffering.max.ms is deprecated"
        ));
        assert!(!quieted(RDKafkaLogLevel::Error, consumer));
    }
}
