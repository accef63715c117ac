//! One message, start to finish: decode (through the registry cache), route to its handler, run
//! it with the error policy (retries, error event, dead-letter topic). The engine feeds it from the
//! consumer; the test bus (`testing`, behind the `testing` feature) feeds it directly.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use futures::FutureExt;
use rdkafka::message::OwnedHeaders;
use tracing::Instrument;

use crate::codec::error_event;
use crate::codec::format::{WireCodec, WriterRef};
use crate::codec::schema::KnownEvent;
use crate::config::{Config, Processing, PublishConfirm, Unhandled};
use crate::envelope::Metadata;
use crate::error::{CodecError, Error, Result};
use crate::fast_map::FastMap;
use crate::observe::log_limit::LogLimit;
use crate::observe::metrics::{Metrics, Outcome};
use crate::process::dead_letter::dead_letter_headers;
use crate::process::decoder::Decoder;
use crate::process::failure::{outage_of, permanent, Failure, OUTAGE_MAX_WAIT};
use crate::process::handler::{BatchRun, Call, HandlerTable, Incoming};
use crate::process::message::{place, Job};
use crate::process::refusals::Refusals;
use crate::process::retry_topic::{retry_headers, Retried};
use crate::process::state::States;
use crate::publish::context::Context;
use crate::publish::publisher::{Handed, Outgoing, Publisher, Route, Unsent};
use crate::publish::trace::{TraceParent, TRACEPARENT};
use crate::registry::{RegisteredSchema, SchemaRegistry};

/// The least time between two warnings about messages no handler serves.
const UNHANDLED_LOG: Duration = Duration::from_secs(10);

/// The target of each message's span (level `debug`): `RUST_LOG=info,kaufmann::message=debug`
/// puts its fields (event, topic, partition, offset, message id) on the lines a handler logs.
const MESSAGE_SPAN_TARGET: &str = "kaufmann::message";

/// A message's writer schema (under `json`, the handler's own), schema id (0 for `kaufmann_ex` and
/// `json`) and, for `kaufmann_ex` and `json`, its decoded payload.
pub(crate) type Writer = (
    Arc<RegisteredSchema>,
    u32,
    Option<apache_avro::types::Value>,
);

/// A [`TraceParent`] as each message's future holds it: aligned to 8 bytes (its `u128` trace id
/// as two `u64`s) instead of 16. The 16-byte alignment padded that future, with the engine's
/// state, from 1,016 to 1,040 bytes, past the 1,032 that glibc's per-thread cache serves; a larger
/// block takes the allocator's slow path (and `malloc_consolidate`) for every message.
#[derive(Debug, Clone, Copy)]
struct HeldTrace {
    trace_id: [u64; 2],
    span_id: u64,
    flags: u8,
}

impl From<TraceParent> for HeldTrace {
    fn from(trace: TraceParent) -> Self {
        #[allow(clippy::cast_possible_truncation)] // the two halves, on purpose
        let trace_id = [(trace.trace_id >> 64) as u64, trace.trace_id as u64];
        Self {
            trace_id,
            span_id: trace.span_id,
            flags: trace.flags,
        }
    }
}

impl HeldTrace {
    fn parent(self) -> TraceParent {
        TraceParent {
            trace_id: (u128::from(self.trace_id[0]) << 64) | u128::from(self.trace_id[1]),
            span_id: self.span_id,
            flags: self.flags,
        }
    }
}

/// Runs messages through decode, handler and error policy.
pub(crate) struct Processor {
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) handlers: HandlerTable,
    decoder: Decoder,
    pub(crate) publisher: Publisher,
    codec: &'static dyn WireCodec,
    pub(crate) config: Config,
    /// The application state handlers take their `State<T>` arguments from.
    pub(crate) states: States,
    /// The warnings about messages no handler serves.
    unhandled_log: LogLimit,
    /// Under `json` (values that name no writer schema): the schema of each handled event.
    readers: FastMap<&'static str, Arc<RegisteredSchema>>,
    /// Under `exactly_once` or `publish_confirm = "before_commit"`: what a handler attempt
    /// publishes is handed to the producer only when it succeeds (a retried attempt's events are
    /// not published twice), and the message is finished when the broker acknowledged all of it
    /// (see [`Processor::confirm`]); a batch handler's, when it returns (see `run_batch`).
    pub(crate) defers: bool,
    /// Under `exactly_once`: a delivery that fails dooms the open transaction (librdkafka makes
    /// it abortable), which aborts, and the rewind reads the message again.
    pub(crate) transactional: bool,
    /// Under `exactly_once`: each message's refused records, so that one whose records the broker
    /// keeps refusing is given up instead of aborting every transaction.
    pub(crate) refusals: Refusals,
}

/// A message whose handler succeeded, waiting for the acknowledgements of what it published.
pub(crate) struct Unconfirmed {
    handed: Vec<Handed>,
    /// The message's metadata, for the error event if a delivery fails for good.
    meta: Metadata,
    /// The attempts its handler took.
    attempts: u32,
}

impl Processor {
    pub(crate) fn new(
        metrics: Arc<Metrics>,
        handlers: HandlerTable,
        registry: Arc<dyn SchemaRegistry>,
        publisher: Publisher,
        config: Config,
        states: States,
    ) -> Self {
        // The depth limit holds for every decoder of the process, generated readers included.
        crate::codec::depth::set_max_depth(config.max_nesting_depth);
        let codec = config.wire_format.codec();
        let readers = if codec.registers() {
            FastMap::default()
        } else {
            reader_schemas(&handlers)
        };
        Self {
            metrics: metrics.clone(),
            handlers,
            readers,
            decoder: Decoder::new(registry, metrics),
            publisher,
            codec,
            defers: config.processing == Processing::ExactlyOnce
                || config.publish_confirm == PublishConfirm::BeforeCommit,
            transactional: config.processing == Processing::ExactlyOnce,
            refusals: Refusals::default(),
            config,
            states,
            unhandled_log: LogLimit::new(UNHANDLED_LOG),
        }
    }

    /// Adds a state value (the test bus, after it was built).
    #[cfg(feature = "testing")]
    pub(crate) fn states_mut(&mut self) -> &mut States {
        &mut self.states
    }

    /// The application state.
    #[cfg(feature = "testing")]
    pub(crate) fn states(&self) -> &States {
        &self.states
    }

    /// The handlers.
    #[cfg(feature = "testing")]
    pub(crate) fn handlers(&self) -> &HandlerTable {
        &self.handlers
    }

    /// The registry writer schemas come from.
    pub(crate) fn registry(&self) -> &dyn SchemaRegistry {
        self.decoder.registry()
    }

    /// Runs one message through decode and handler with the error policy; never fails. Under
    /// `publish_confirm = "before_commit"` or exactly once, a message whose handler published
    /// events is not finished yet: it is handed back, for [`Processor::confirm`].
    ///
    /// The futures below take their arguments by reference: a future keeps a copy of each
    /// argument it takes by value, and every message's future is allocated once, so it stays
    /// small.
    pub(crate) async fn process(&self, job: &Job) -> Option<Box<Unconfirmed>> {
        // One pass over the headers: the metadata, and the `traceparent` on the way.
        let mut trace: Option<HeldTrace> = None;
        let mut meta =
            Metadata::from_byte_pairs(job.headers.byte_pairs().inspect(|(key, value)| {
                if *key == TRACEPARENT.as_bytes() {
                    trace = value
                        .and_then(|v| std::str::from_utf8(v).ok())
                        .and_then(TraceParent::parse)
                        .map(HeldTrace::from);
                }
            }));
        // The span lives in a block: it ends before the await, so this future does not keep a
        // second place for it beside the one inside `Instrumented` (40 bytes of the per-message
        // future; see `HeldTrace`). At `debug`, under a target of its own: at `run!()`'s default
        // `info` the log layer would make it (a registry slot, its fields formatted into a
        // string) for every message, which nearly doubled the instructions of a message's path.
        // The OpenTelemetry layer takes every level, so exported traces keep it.
        let traced = {
            let span = tracing::debug_span!(
                target: MESSAGE_SPAN_TARGET,
                "message",
                event = %meta.message_name,
                topic = %job.origin.topic,
                partition = job.origin.partition,
                offset = job.origin.offset,
                message_id = %meta.message_id,
                trace_id = tracing::field::Empty,
                attempt = 1_u32,
            );
            if let (Some(trace), false) = (trace.map(HeldTrace::parent), span.is_disabled()) {
                span.record("trace_id", trace.trace_id_hex());
                #[cfg(feature = "otel")]
                crate::observe::otel::adopt(&span, (trace.trace_id, trace.span_id, trace.flags));
            }
            self.process_traced(job, &mut meta, trace.as_ref())
                .instrument(span)
        };
        traced.await
    }

    async fn process_traced(
        &self,
        job: &Job,
        meta: &mut Metadata,
        trace: Option<&HeldTrace>,
    ) -> Option<Box<Unconfirmed>> {
        self.metrics.record(&meta.message_name, Outcome::Consumed);
        if self.refusals.remembers_any() && self.give_up_if_spent(job, meta).await {
            return None;
        }
        let mut attempt = 0_u32;
        let mut outage_wait = Duration::from_millis(200);
        let failure = loop {
            attempt += 1;
            if attempt > 1 {
                // (The span starts at 1: no look-up of the current span for most messages.)
                tracing::Span::current().record("attempt", attempt);
            }
            let policy = self.config.error_policy(&meta.message_name);
            let staging = self.defers.then(|| self.publisher.staging());
            let publisher = staging.as_ref().unwrap_or(&self.publisher);
            let mut outcome = self
                .attempt(job, meta, trace, policy.handler_timeout, publisher)
                .await;
            if let (Ok(()), Some(staging)) = (&outcome, &staging) {
                // Boxed, like the rare paths: every message's future stays small.
                match Box::pin(staging.hand_over()).await {
                    Ok(handed) => return self.unconfirmed(job, meta, attempt, handed),
                    Err(err) => outcome = Err(self.classify(err)),
                }
            }
            if outcome.is_err() {
                self.restore(job, meta);
            }
            match outcome {
                Ok(()) => return None,
                Err(Failure::Permanent { kind, error }) => break (kind, error, false),
                Err(Failure::Outage { of }) => {
                    // Not an attempt: the same one again when the dependency is back.
                    attempt -= 1;
                    tracing::debug!(at = %place(&job.origin), ?of, "waiting for {of:?} (up to {outage_wait:?})");
                    Box::pin(of.dependency(&self.metrics).wait_up(outage_wait)).await;
                    outage_wait = (outage_wait * 2).min(OUTAGE_MAX_WAIT);
                }
                Err(Failure::Transient { kind, error }) => {
                    match policy.retry.backoff(attempt + 1) {
                        Some(wait) => {
                            self.metrics.record(&meta.message_name, Outcome::Retried);
                            tracing::warn!(at = %place(&job.origin), event = %meta.message_name, attempt, "{kind}: {error}; retrying in {wait:?}");
                            // Boxed, like the timer below: every message's future stays small
                            // (under the allocator's fast sizes) for the rare message that waits.
                            Box::pin(tokio::time::sleep(wait)).await;
                        }
                        None => break (kind, error, true),
                    }
                }
            }
        };
        // Boxed: the rare path stays out of every message's future.
        Box::pin(self.give_up(job, meta, attempt, failure)).await;
        None
    }

    /// A message whose handler succeeded after `attempts` and handed `handed` to the producer:
    /// unfinished until they are acknowledged (finished now when there are none).
    fn unconfirmed(
        &self,
        job: &Job,
        meta: &mut Metadata,
        attempts: u32,
        handed: Vec<Handed>,
    ) -> Option<Box<Unconfirmed>> {
        if handed.is_empty() {
            return None;
        }
        self.restore(job, meta);
        Some(Box::new(Unconfirmed {
            handed,
            meta: std::mem::take(meta),
            attempts,
        }))
    }

    /// Waits for the acknowledgements of what a message's handler published. A record the
    /// broker did not take while it is down is produced again when it answers, as often as it
    /// takes; one it refused for another reason (too large, not authorised, no such topic) fails
    /// the message: retry topic, error event and dead-letter topic, as a handler's error does
    /// after its retries. When this returns, the message's offset may be committed. (Exactly
    /// once, a failed delivery is the transaction's instead: see `transactional`.)
    pub(crate) async fn confirm(&self, job: &Job, unconfirmed: Box<Unconfirmed>) {
        let Unconfirmed {
            handed,
            meta,
            attempts,
        } = *unconfirmed;
        let mut failed = None;
        let mut refused = false;
        for handed in handed {
            let Err(mut unsent) = self.publisher.confirm(handed).await else {
                continue;
            };
            if self.transactional {
                refused = true;
                self.refused(job, &meta, &mut unsent);
                continue;
            }
            let mut wait = Duration::from_millis(200);
            while failed.is_none() {
                let error = unsent.take_error();
                let (error, retryable) = match self.classify(error) {
                    Failure::Outage { of } => {
                        tracing::warn!(at = %place(&job.origin), "{}: not taken while the broker is down; producing it again once it answers (up to {wait:?})", unsent.place());
                        of.dependency(&self.metrics).wait_up(wait).await;
                        wait = (wait * 2).min(OUTAGE_MAX_WAIT);
                        match self.publisher.resend(&mut unsent).await {
                            Ok(()) => break,
                            Err(err) => {
                                unsent.set_error(err);
                                continue;
                            }
                        }
                    }
                    Failure::Transient { error, .. } => (error, true),
                    Failure::Permanent { error, .. } => (error, false),
                };
                failed = Some(("publish", error, retryable));
            }
        }
        if let Some(failure) = failed {
            self.give_up(job, &meta, attempts, failure).await;
        } else if !refused {
            self.taken(job);
        }
    }

    /// Under `exactly_once`: a record of `job`'s was not taken, so the transaction aborts and the
    /// rewind reads `job` again. Unless the broker was down, the refusal counts toward giving
    /// `job` up (see [`Refusals`]).
    fn refused(&self, job: &Job, meta: &Metadata, unsent: &mut Unsent) {
        let error = unsent.take_error();
        self.count_refusal([job], &meta.message_name, &unsent.place(), error);
    }

    /// Under `exactly_once`: counts a refusal of a record `jobs` published (event `event`; one
    /// message's, or a batch's), unless the broker was down or the transaction took no records
    /// any more (another record had doomed it: the refusal was not theirs).
    pub(crate) fn count_refusal<'a>(
        &self,
        jobs: impl IntoIterator<Item = &'a Job>,
        event: &str,
        record: &str,
        error: Error,
    ) {
        let doomed = transaction_takes_no_records(&error);
        let refused = match self.classify(error) {
            Failure::Outage { of } => Err(format!("{record}: not taken while {of:?} is down")),
            Failure::Transient { error, .. } | Failure::Permanent { error, .. } if doomed => {
                Err(format!("{record}: {error}"))
            }
            Failure::Transient { error, .. } | Failure::Permanent { error, .. } => Ok(error),
        };
        let attempts = self.config.error_policy(event).retry.attempts();
        for job in jobs {
            let at = place(&job.origin);
            match &refused {
                Err(why) => {
                    tracing::warn!(at = %at, "{why}; the transaction aborts and the message is read again");
                }
                Ok(error) => {
                    let refusals = self.refusals.refused(&job.origin, error.clone());
                    tracing::warn!(at = %at, refusals, attempts, "{error}; the transaction aborts and the message is read again (once its records were refused as often as its event's attempts, it is given up: error event and dead letter)");
                }
            }
        }
    }

    /// Under `exactly_once`: gives `job` up (error event and dead letter, kind `publish`, in the
    /// open transaction) when the broker refused its records as often as its event's attempts;
    /// whether it did.
    pub(crate) async fn give_up_if_spent(&self, job: &Job, meta: &Metadata) -> bool {
        if !self.transactional {
            return false;
        }
        let attempts = self
            .config
            .error_policy(&meta.message_name)
            .retry
            .attempts();
        let Some((refusals, error)) = self.refusals.spent(&job.origin, attempts) else {
            return false;
        };
        // Boxed: the rare path stays out of every message's future.
        Box::pin(self.give_up(job, meta, refusals, ("publish", error, false))).await;
        true
    }

    /// Under `exactly_once`: forgets the refusals of `job`, whose records were taken.
    pub(crate) fn taken(&self, job: &Job) {
        if self.transactional {
            self.refusals.taken(&job.origin);
        }
    }

    /// Reads the metadata again after an attempt gave it to the handler's event (Confluent
    /// format: the event takes it instead of a copy), for the retry, the logs and the error event.
    /// (No registry request: an attempt that reached the handler found the schema in the cache.)
    fn restore(&self, job: &Job, meta: &mut Metadata) {
        if !self.codec.event_takes_metadata() || !meta.message_name.is_empty() {
            return;
        }
        *meta = Metadata::from_byte_pairs(job.headers.byte_pairs());
        let writer = job
            .value
            .as_deref()
            .and_then(|value| self.codec.writer_of(job.origin.key.as_deref(), value).ok())
            .and_then(|writer| match writer {
                WriterRef::Id(id) => self.decoder.cached(id),
                WriterRef::Latest(_) | WriterRef::Reader => None,
            });
        if let Some(writer) = writer {
            route(&writer, &job.origin.topic, &self.handlers, meta);
        }
    }

    /// One attempt: decode and handler, a panic caught, within `limit`. A handler that finishes at
    /// its first poll (most do: they wait for nothing) needs no timer; the limit counts from its
    /// first wait.
    async fn attempt(
        &self,
        job: &Job,
        meta: &mut Metadata,
        trace: Option<&HeldTrace>,
        limit: Duration,
        publisher: &Publisher,
    ) -> Result<(), Failure> {
        let mut run = std::pin::pin!(
            AssertUnwindSafe(self.dispatch(job, meta, trace, publisher)).catch_unwind()
        );
        let first = std::future::poll_fn(|cx| Poll::Ready(run.as_mut().poll(cx))).await;
        let finished = match first {
            Poll::Ready(finished) => finished,
            Poll::Pending => match Box::pin(tokio::time::timeout(limit, run)).await {
                Ok(finished) => finished,
                Err(_) => {
                    return Err(Failure::Transient {
                        kind: "timeout",
                        error: format!("handler did not finish within {limit:?}"),
                    })
                }
            },
        };
        finished.unwrap_or_else(|panic| {
            Err(Failure::Transient {
                kind: "panic",
                error: panic_message(&*panic),
            })
        })
    }

    /// Decodes and runs the handler once. Completes `known` (the metadata from the headers) with
    /// what the message itself says (event name, `kaufmann_ex` metadata).
    async fn dispatch(
        &self,
        job: &Job,
        known: &mut Metadata,
        trace: Option<&HeldTrace>,
        publisher: &Publisher,
    ) -> Result<(), Failure> {
        let value = job
            .value
            .clone()
            .ok_or_else(|| permanent("decode", &CodecError::NoPayload))?;
        if value.len() > self.config.max_message_bytes {
            return Err(permanent(
                "decode",
                &CodecError::TooLarge {
                    len: value.len(),
                    limit: self.config.max_message_bytes,
                },
            ));
        }
        let (writer, schema_id, payload) = self.writer_for(job, &value, known).await?;
        let event = known.message_name.as_str();
        let Some(handler) = self.handlers.get(event) else {
            let total = self.metrics.count_unhandled();
            self.warn_unhandled(job, event, &writer, schema_id, total);
            return match self.config.unhandled {
                Unhandled::Commit => Ok(()),
                Unhandled::DeadLetter => Err(permanent(
                    "unhandled",
                    &format_args!("no handler for event `{event}`"),
                )),
            };
        };
        let started = Instant::now();
        // Built in a block: what the handler takes is not kept in this future while it runs.
        let running = {
            let context = Context::new(
                publisher.clone(),
                handler.event,
                known,
                job.origin.key.clone(),
                trace.copied().map(HeldTrace::parent),
            );
            let incoming = Incoming {
                resolve: !handler.reads_as_written(&writer.canonical),
                writer: Arc::clone(&writer),
                schema_id,
                value,
                payload,
                // Confluent: the event takes the metadata; `restore` reads it again when the
                // attempt fails. `kaufmann_ex` metadata comes from the body: a copy.
                meta: if self.codec.event_takes_metadata() {
                    std::mem::take(known)
                } else {
                    known.clone()
                },
                origin: job.origin.origin(),
            };
            match handler.call {
                Call::One(call) => call(incoming, context, &self.states),
                // A message of a batch handler that came alone: a batch of one.
                Call::Batch(call) => {
                    let BatchRun { mut rejected, run } =
                        call(vec![incoming], context, &self.states);
                    match (rejected.pop(), run) {
                        (Some((_, error)), _) => Box::pin(std::future::ready(Err(error))),
                        (None, Some(run)) => run,
                        (None, None) => Box::pin(std::future::ready(Ok(()))),
                    }
                }
            }
        };
        match running.await {
            Ok(()) => {
                self.metrics
                    .record(handler.event, Outcome::Handled(started.elapsed()));
                Ok(())
            }
            Err(Error::BatchFailed(failures)) if failures.is_empty() => {
                self.metrics
                    .record(handler.event, Outcome::Handled(started.elapsed()));
                Ok(())
            }
            Err(err) => Err(self.classify(err)),
        }
    }

    /// How a handler's error fails its message: permanent (decode, `Error::permanent`, a missing
    /// state), an outage of a dependency, or transient; for a batch that named failed events,
    /// the first one's error.
    pub(crate) fn classify(&self, err: Error) -> Failure {
        match err {
            Error::BatchFailed(mut failures) if !failures.is_empty() => {
                let (_, first) = failures.swap_remove(0);
                self.classify(first)
            }
            err @ Error::Codec(_) => permanent("decode", &err),
            err @ Error::Permanent(_) => permanent("permanent", &err),
            err @ Error::MissingState { .. } => permanent("state", &err),
            err => match outage_of(&err, &self.metrics) {
                Some(of) => Failure::outage(of, &err, &self.metrics),
                None => Failure::Transient {
                    kind: "handler",
                    error: err.to_string(),
                },
            },
        }
    }

    /// A message no handler serves: a warning naming it, at most one per [`UNHANDLED_LOG`] (with
    /// the count of those not logged), whatever the policy then does with it.
    fn warn_unhandled(
        &self,
        job: &Job,
        event: &str,
        writer: &RegisteredSchema,
        schema_id: u32,
        total: u64,
    ) {
        let Some(since) = self.unhandled_log.admit(total) else {
            return;
        };
        let policy = match self.config.unhandled {
            Unhandled::Commit => "committed without handling (unhandled = \"commit\")",
            Unhandled::DeadLetter => "dead-lettered (unhandled = \"dead_letter\")",
        };
        tracing::warn!(
            at = %place(&job.origin),
            event,
            subject = %writer.subject,
            schema_id,
            unhandled_total = total,
            "no handler for event `{event}`: {policy}; {since} more since the last such warning"
        );
    }

    /// The writer schema of a message (and, for `kaufmann_ex`, its decoded payload), completing
    /// `known` with the event name and metadata the message carries.
    pub(crate) async fn writer_for(
        &self,
        job: &Job,
        value: &[u8],
        known: &mut Metadata,
    ) -> Result<Writer, Failure> {
        let key = job.origin.key.as_deref();
        let decode = |e: CodecError| permanent("decode", &e);
        let (writer, schema_id) = match self.codec.writer_of(key, value).map_err(decode)? {
            WriterRef::Id(id) => (self.decoder.writer(id).await?, id),
            WriterRef::Latest(subject) => (self.decoder.latest(subject).await?, 0),
            WriterRef::Reader => return self.unframed(key, value, known),
        };
        // (`writer_of` found the key to be UTF-8 when the format reads it.)
        let key = key
            .and_then(|k| std::str::from_utf8(k).ok())
            .unwrap_or_default();
        let payload = self
            .codec
            .read(key, &writer.schema, value, known)
            .map_err(decode)?;
        route(&writer, &job.origin.topic, &self.handlers, known);
        Ok((writer, schema_id, payload))
    }

    /// A value that names no writer schema (`json`): read with the schema of the event it names,
    /// when a handler serves it.
    fn unframed(
        &self,
        key: Option<&[u8]>,
        value: &[u8],
        known: &mut Metadata,
    ) -> Result<Writer, Failure> {
        let key = key.and_then(|k| std::str::from_utf8(k).ok());
        let schema_of = |event: &str| self.readers.get(event).map(|r| &*r.schema);
        let payload = self
            .codec
            .read_unframed(key, value, known, &schema_of)
            .map_err(|e| permanent("decode", &e))?;
        let writer = match self.readers.get(known.message_name.as_str()) {
            Some(reader) => Arc::clone(reader),
            // No handler serves the event: the writer only names it in the warning.
            None => Arc::new(RegisteredSchema::new(
                0,
                known.message_name.clone(),
                Arc::new(apache_avro::Schema::Null),
            )),
        };
        Ok((writer, 0, payload))
    }

    /// The last resort: the next retry topic, when the failure may pass and the policy names
    /// one; else the error event and the dead-letter topic (each send retried until it
    /// succeeds), or a loud log.
    pub(crate) async fn give_up(
        &self,
        job: &Job,
        meta: &Metadata,
        attempts: u32,
        (kind, error, retryable): (&'static str, String, bool),
    ) {
        let event = meta.message_name.as_str();
        let policy = self.config.error_policy(event);
        // Where it was read first, and the attempts of every topic it went through.
        let first = Retried::of(job);
        let attempts = first.attempts.saturating_add(attempts);
        let place = place(&job.origin);
        if let Some((topic, delay)) = policy
            .retry_topic_for(&first.topic, first.stage)
            .filter(|_| retryable)
        {
            let headers = retry_headers(job, &first, first.stage + 1, delay, attempts, &error);
            if !self.send_until_sent(&topic, job, headers, &place).await {
                return;
            }
            self.metrics.record(event, Outcome::Retried);
            tracing::warn!(at = %place, event, attempts, retry_topic = %topic, "{kind}: {error}; sent to the retry topic, due in {delay:?}");
            return;
        }
        self.metrics.record(event, Outcome::Failed);
        if policy.error_events && !event.is_empty() {
            let failed = error_event::Failed {
                event,
                error: &error,
                kind,
                attempts,
                topic: &first.topic,
                partition: first.partition,
                offset: first.offset,
                original: job.value.as_deref(),
            };
            self.publish_error_event(job, meta, &failed).await;
        }
        let Some(topic) = policy.dead_letter_for(&first.topic) else {
            tracing::error!(at = %place, event, attempts, "{kind}: {error}; no dead-letter topic is configured: logged and committed");
            return;
        };
        let headers = dead_letter_headers(job, &first, event, attempts, kind, &error);
        if !self.send_until_sent(&topic, job, headers, &place).await {
            return;
        }
        self.metrics.record(event, Outcome::DeadLettered);
        tracing::error!(at = %place, event, attempts, dead_letter_topic = %topic, "{kind}: {error}; sent to the dead-letter topic");
    }

    /// Sends the record of `job` (key and value as they are) with `headers` to `topic`, trying
    /// again with backoff until the broker takes it: a failed message is never dropped. Under
    /// `exactly_once`, a producer whose transaction takes no more records (a refused record made
    /// it abortable) ends the tries with `false`: the transaction aborts (the engine waits for
    /// this message first) and the rewind reads the message again.
    async fn send_until_sent(
        &self,
        topic: &str,
        job: &Job,
        headers: OwnedHeaders,
        place: &str,
    ) -> bool {
        let mut wait = Duration::from_millis(100);
        while let Err(err) = self
            .publisher
            .send_raw(
                topic,
                job.origin.key.as_deref(),
                job.value.as_deref(),
                headers.clone(),
            )
            .await
        {
            if self.transactional && transaction_takes_no_records(&err) {
                tracing::warn!(at = %place, "could not write to `{topic}`: {err}; the transaction aborts and the message is read again");
                return false;
            }
            tracing::error!(at = %place, "could not write to `{topic}` (retrying in {wait:?}): {err}");
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(10));
        }
        true
    }

    /// Publishes `event.error.<event>` to the default topic and to the event's callback topic,
    /// when it names one; a failure to publish is logged (the dead-letter topic keeps the record).
    async fn publish_error_event(
        &self,
        job: &Job,
        meta: &Metadata,
        failed: &error_event::Failed<'_>,
    ) {
        let (schema, schema_json) = self.codec.error_event_schema();
        let name = error_event::name(failed.event);
        let callback = meta
            .callback_topic
            .as_ref()
            .and_then(|c| c.topic.as_deref().map(|t| (t, c.partition)));
        let targets = std::iter::once((None, None)).chain(
            callback
                .into_iter()
                .map(|(topic, partition)| (Some(topic), partition)),
        );
        for (topic, partition) in targets {
            let outgoing = Outgoing {
                event: &name,
                schema,
                schema_json,
                value: self.codec.error_event_value(failed),
            };
            let route = Route {
                topic,
                partition,
                key: None,
                inherited_key: job.origin.key.as_deref(),
                callback_id: Some(meta.message_id.clone()),
                callback_topic: None,
                headers: &[],
                trace: None,
            };
            match self.publisher.publish_routed(outgoing, route).await {
                Ok(sent) => {
                    tracing::info!(error_event = %name, message_id = %sent.message_id, topic = ?topic, "error event published");
                }
                Err(err) => {
                    tracing::error!(error_event = %name, "could not publish the error event: {err}");
                }
            }
        }
    }
}

/// Whether a transactional producer refused a record because its transaction takes none
/// (librdkafka's "erroneous state", as in an abortable transaction).
fn transaction_takes_no_records(err: &Error) -> bool {
    matches!(
        err,
        Error::Kafka {
            source: rdkafka::error::KafkaError::MessageProduction(
                rdkafka::types::RDKafkaErrorCode::State
            ),
            ..
        }
    )
}

/// The event of a message whose headers name none (a producer other than Kaufmann), in this order:
/// the writer schema's full record name, when a handler serves that event (an event's record is
/// named for it, which `schemas!` enforces); else the event its subject names under each subject
/// strategy (`<event>-value`, `<record>`, `<topic>-<record>`), when a handler serves that one;
/// else the record's full name (or the subject) as it is, which no handler serves.
/// The schema of each handler's event, from the events `schemas!` generated (the one with the
/// handler's canonical form, when two folders define the event).
fn reader_schemas(handlers: &HandlerTable) -> FastMap<&'static str, Arc<RegisteredSchema>> {
    let mut readers = FastMap::default();
    for known in inventory::iter::<KnownEvent> {
        let Some(handler) = handlers.get(known.event) else {
            continue;
        };
        let Ok(schema) = apache_avro::Schema::parse_str(known.schema_json) else {
            continue;
        };
        let reader = RegisteredSchema::new(0, known.event, Arc::new(schema));
        if handler.reads_as_written(&reader.canonical) || !readers.contains_key(known.event) {
            readers.insert(known.event, Arc::new(reader));
        }
    }
    readers
}

fn route(writer: &RegisteredSchema, topic: &str, handlers: &HandlerTable, meta: &mut Metadata) {
    if !meta.message_name.is_empty() {
        return;
    }
    let record = match &*writer.schema {
        apache_avro::Schema::Record(record) => Some(record.name.fullname(None)),
        _ => None,
    };
    if let Some(record) = record.as_deref().filter(|r| handlers.get(r).is_some()) {
        record.clone_into(&mut meta.message_name);
        return;
    }
    let subject = writer.subject.as_str();
    let named = [
        subject.strip_suffix("-value"),
        Some(subject),
        subject
            .strip_prefix(topic)
            .and_then(|rest| rest.strip_prefix('-')),
    ];
    let found = named
        .into_iter()
        .flatten()
        .find(|e| handlers.get(e).is_some());
    match found.or(record.as_deref()) {
        Some(event) => event.clone_into(&mut meta.message_name),
        None => subject.clone_into(&mut meta.message_name),
    }
}

pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(ToString::to_string)
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .map_or_else(
            || "handler panicked".to_owned(),
            |m| format!("handler panicked: {m}"),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_trace_gives_back_the_trace_parent_it_was_made_from() {
        let trace = TraceParent {
            trace_id: 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210,
            span_id: 0x1122_3344_5566_7788,
            flags: 1,
        };
        assert_eq!(HeldTrace::from(trace).parent(), trace);
        assert_eq!(align_of::<HeldTrace>(), 8);
    }
}
