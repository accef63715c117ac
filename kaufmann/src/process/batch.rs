//! A batch of one lane's messages for one batch handler: read them, run the handler over them
//! (a panic caught, within the handler timeout) and put each message's outcome through the error
//! policy, retrying only the messages that failed.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use tracing::Instrument;

use crate::envelope::Metadata;
use crate::error::Error;
use crate::observe::metrics::Outcome;
use crate::process::failure::{permanent, Failure, OUTAGE_MAX_WAIT};
use crate::process::handler::{BatchRun, Call, HandlerRegistration, Incoming};
use crate::process::message::Job;
use crate::process::processor::{Processor, Writer};
use crate::publish::context::Context;
use crate::publish::publisher::Publisher;

/// A message of the batch: its index in the lane's jobs, its metadata, value and writer.
struct Member {
    job: usize,
    meta: Metadata,
    value: Arc<[u8]>,
    writer: Writer,
}

impl Processor {
    /// Runs `jobs` (one lane's, in order) through the batch handler their event names. A message
    /// that cannot join the batch (no value, no writer schema yet, another event) runs alone
    /// after it, through [`Processor::process`].
    pub(crate) async fn process_batch(&self, jobs: &[Job]) {
        let (first, last) = (jobs.first(), jobs.last());
        let span = tracing::info_span!(
            "batch",
            event = tracing::field::Empty,
            size = jobs.len(),
            topic = first.map_or("", |j| &*j.origin.topic),
            partition = first.map_or(0, |j| j.origin.partition),
            first_offset = first.map_or(0, |j| j.origin.offset),
            last_offset = last.map_or(0, |j| j.origin.offset),
        );
        async {
            let mut handler: Option<&'static HandlerRegistration> = None;
            let mut members = Vec::with_capacity(jobs.len());
            let mut alone = Vec::new();
            for (index, job) in jobs.iter().enumerate() {
                if self.refusals.remembers_any() {
                    let meta = Metadata::from_byte_pairs(job.headers.byte_pairs());
                    if self.give_up_if_spent(job, &meta).await {
                        continue;
                    }
                }
                match self.member(index, job, handler).await {
                    Some((found, member)) => {
                        handler = Some(found);
                        members.push(member);
                    }
                    None => alone.push(index),
                }
            }
            if let Some(handler) = handler {
                tracing::Span::current().record("event", handler.event);
                self.run_batch(handler, jobs, members).await;
            }
            for index in alone {
                if let Some(unconfirmed) = self.process(&jobs[index]).await {
                    self.confirm(&jobs[index], unconfirmed).await;
                }
            }
        }
        .instrument(span)
        .await;
    }

    /// `job` as a member of the batch of `handler` (the first member's, when there is one yet).
    async fn member(
        &self,
        index: usize,
        job: &Job,
        handler: Option<&'static HandlerRegistration>,
    ) -> Option<(&'static HandlerRegistration, Member)> {
        let value = job
            .value
            .clone()
            .filter(|v| v.len() <= self.config.max_message_bytes)?;
        let mut meta = Metadata::from_byte_pairs(job.headers.byte_pairs());
        let writer = self.writer_for(job, &value, &mut meta).await.ok()?;
        let found = self.handlers.get(&meta.message_name)?;
        if !found.is_batch() || handler.is_some_and(|h| !std::ptr::eq(h, found)) {
            return None;
        }
        self.metrics.record(found.event, Outcome::Consumed);
        Some((
            found,
            Member {
                job: index,
                meta,
                value,
                writer,
            },
        ))
    }

    /// Runs the batch until every member is done or given up: the members that fail are tried
    /// again as a smaller batch, as the error policy's retries say.
    async fn run_batch(
        &self,
        handler: &'static HandlerRegistration,
        jobs: &[Job],
        mut pending: Vec<Member>,
    ) {
        let Call::Batch(call) = handler.call else {
            return;
        };
        let policy = self.config.error_policy(handler.event);
        let mut attempt = 0_u32;
        let mut outage_wait = Duration::from_millis(200);
        while !pending.is_empty() {
            attempt += 1;
            let started = Instant::now();
            let incoming = pending
                .iter()
                .map(|m| {
                    let (writer, schema_id, payload) = &m.writer;
                    Incoming {
                        resolve: !handler.reads_as_written(&writer.canonical),
                        writer: Arc::clone(writer),
                        schema_id: *schema_id,
                        value: Arc::clone(&m.value),
                        payload: payload.clone(),
                        meta: m.meta.clone(),
                        origin: jobs[m.job].origin.origin(),
                    }
                })
                .collect();
            // Exactly once, or `before_commit`: what the handler publishes is kept until it
            // returns, so a failed attempt leaves nothing behind and the batch waits for one
            // round trip for all its events.
            let staging = self.defers.then(|| self.publisher.staging());
            // A batch's context is no one event's: what it publishes carries no callback id.
            let context = Context::new(
                staging.as_ref().unwrap_or(&self.publisher).clone(),
                handler.event,
                &Metadata::default(),
                None,
                None,
            );
            let BatchRun { rejected, run } = call(incoming, context, &self.states);
            let mut outcomes: Vec<Option<Failure>> = vec![None; pending.len()];
            for (index, error) in rejected {
                if let Some(slot) = outcomes.get_mut(index) {
                    *slot = Some(permanent("decode", &error));
                }
            }
            if let Some(run) = run {
                let mut ran = self.run_guarded(run, policy.handler_timeout).await;
                // Staged events go out when the handler returned: `Ok`, or the failed events
                // it named (what it published is its word for the others).
                let kept = matches!(ran, Ok(Ok(()) | Err(Error::BatchFailed(_))));
                if let (true, Some(staging)) = (kept, &staging) {
                    let members = || pending.iter().map(|m| &jobs[m.job]);
                    match self.release(staging, handler.event, members).await {
                        Some(Err(failure)) => ran = Err(failure),
                        Some(Ok(())) => {}
                        None => return,
                    }
                }
                self.failures_of(ran, &mut outcomes);
            }
            self.metrics.record(
                handler.event,
                Outcome::Batch(pending.len(), started.elapsed()),
            );
            let mut again = Vec::new();
            let mut outage = None;
            for (member, outcome) in pending.into_iter().zip(outcomes) {
                let job = &jobs[member.job];
                match outcome {
                    None => self
                        .metrics
                        .record(handler.event, Outcome::Handled(started.elapsed())),
                    Some(Failure::Outage { of }) => {
                        outage = Some(of);
                        again.push(member);
                    }
                    Some(Failure::Permanent { kind, error }) => {
                        self.give_up(job, &member.meta, attempt, (kind, error, false))
                            .await;
                    }
                    Some(Failure::Transient { kind, error }) => {
                        if policy.retry.backoff(attempt + 1).is_some() {
                            self.metrics.record(handler.event, Outcome::Retried);
                            tracing::warn!(at = %crate::process::message::place(&job.origin), event = handler.event, attempt, "{kind}: {error}; retrying with the batch's other failures");
                            again.push(member);
                        } else {
                            self.give_up(job, &member.meta, attempt, (kind, error, true))
                                .await;
                        }
                    }
                }
            }
            pending = again;
            if pending.is_empty() {
                break;
            }
            if let Some(of) = outage {
                // Not an attempt: the same one again when the dependency is back.
                attempt -= 1;
                Box::pin(of.dependency(&self.metrics).wait_up(outage_wait)).await;
                outage_wait = (outage_wait * 2).min(OUTAGE_MAX_WAIT);
            } else if let Some(wait) = policy.retry.backoff(attempt + 1) {
                tokio::time::sleep(wait).await;
            }
        }
    }

    /// Hands what a batch handler of `event` published (`staging`) to the producer and waits for
    /// the acknowledgements. `None` under `exactly_once` when a record was not taken: the
    /// refusal doomed the transaction, which aborts, and the rewind reads the batch again (no
    /// attempt can succeed before that); which member's record it was is not known, so it counts
    /// against each (see [`Processor::count_refusal`]).
    async fn release<'a, M>(
        &self,
        staging: &Publisher,
        event: &str,
        members: impl Fn() -> M,
    ) -> Option<Result<(), Failure>>
    where
        M: Iterator<Item = &'a Job>,
    {
        match staging.release().await {
            Err(err) if self.transactional => {
                let record = format!("a record of a batch of `{event}`");
                self.count_refusal(members(), event, &record, err);
                None
            }
            Err(err) => Some(Err(self.classify(err))),
            Ok(()) => {
                members().for_each(|job| self.taken(job));
                Some(Ok(()))
            }
        }
    }

    /// Runs a batch handler's future within `limit`, a panic caught.
    async fn run_guarded(
        &self,
        run: crate::future::BoxFuture<'static, crate::Result<()>>,
        limit: Duration,
    ) -> Result<crate::Result<()>, Failure> {
        match tokio::time::timeout(limit, AssertUnwindSafe(run).catch_unwind()).await {
            Err(_) => Err(Failure::Transient {
                kind: "timeout",
                error: format!("batch handler did not finish within {limit:?}"),
            }),
            Ok(Err(panic)) => Err(Failure::Transient {
                kind: "panic",
                error: crate::process::processor::panic_message(&*panic),
            }),
            Ok(Ok(result)) => Ok(result),
        }
    }

    /// Fills `outcomes` (one per member; decode failures already in) from the handler's result:
    /// the members a `BatchFailed` names fail with their own errors, a whole failure fails every
    /// member not failed yet.
    fn failures_of(
        &self,
        ran: Result<crate::Result<()>, Failure>,
        outcomes: &mut [Option<Failure>],
    ) {
        let whole = match ran {
            Ok(Ok(())) => return,
            Ok(Err(Error::BatchFailed(failures))) => {
                for (index, error) in failures {
                    if let Some(slot) = outcomes.get_mut(index) {
                        *slot = Some(self.classify(error));
                    }
                }
                return;
            }
            Ok(Err(error)) => self.classify(error),
            Err(failure) => failure,
        };
        for slot in outcomes.iter_mut().filter(|slot| slot.is_none()) {
            *slot = Some(whole.clone());
        }
    }
}
