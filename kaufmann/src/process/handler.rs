//! Handler registration (through `inventory`) and the typed view of an incoming message.

use std::sync::Arc;

use crate::codec::schema::{decode_resolved, EventSchema};
use crate::envelope::{Event, Metadata, Origin};
use crate::error::{CodecError, Error, Result};
use crate::fast_map::FastMap;
use crate::future::BoxFuture;
use crate::process::state::{StateNeed, States};
use crate::publish::context::Context;
use crate::registry::RegisteredSchema;

/// The function `#[given_event]` generates around a user's handler: the message, its context and
/// the service's state, from which it takes the handler's arguments.
pub type HandlerFn = fn(Incoming, Context, &States) -> BoxFuture<'static, Result<()>>;

/// The function `#[given_events]` generates around a user's batch handler.
pub type BatchFn = fn(Vec<Incoming>, Context, &States) -> BatchRun;

/// How a handler is called: one message at a time, or a batch.
#[derive(Debug, Clone, Copy)]
pub enum Call {
    /// `#[given_event]`: one message.
    One(HandlerFn),
    /// `#[given_events]`: a batch of messages.
    Batch(BatchFn),
}

/// A batch on its way into its handler: the messages that did not decode (by their index in the
/// batch), and the handler's run over the others (none when none decoded). The run's
/// [`Error::BatchFailed`] indexes the whole batch.
pub struct BatchRun {
    pub(crate) rejected: Vec<(usize, Error)>,
    pub(crate) run: Option<BoxFuture<'static, Result<()>>>,
}

impl BatchRun {
    /// A batch that fails as a whole before its handler runs (a missing state).
    pub fn failed(error: Error) -> Self {
        Self {
            rejected: Vec::new(),
            run: Some(Box::pin(std::future::ready(Err(error)))),
        }
    }
}

/// Decodes a batch into `T` and runs `call` over the events that decoded; the entry point
/// `#[given_events]` generates calls it.
pub fn batch_entry<T, F, Fut>(incoming: Vec<Incoming>, call: F) -> BatchRun
where
    T: EventSchema,
    F: FnOnce(Vec<Event<T>>) -> Fut,
    Fut: std::future::Future<Output = Result<()>> + Send + 'static,
{
    let mut events = Vec::with_capacity(incoming.len());
    // The index in the batch of each event the handler gets.
    let mut kept = Vec::with_capacity(incoming.len());
    let mut rejected = Vec::new();
    for (index, message) in incoming.into_iter().enumerate() {
        match message.decode::<T>() {
            Ok(event) => {
                kept.push(index);
                events.push(event);
            }
            Err(error) => rejected.push((index, error)),
        }
    }
    if events.is_empty() {
        return BatchRun {
            rejected,
            run: None,
        };
    }
    let running = call(events);
    BatchRun {
        rejected,
        run: Some(Box::pin(async move {
            match running.await {
                Err(Error::BatchFailed(failures)) => Err(Error::BatchFailed(
                    failures
                        .into_iter()
                        .filter_map(|(index, error)| Some((*kept.get(index)?, error)))
                        .collect(),
                )),
                other => other,
            }
        })),
    }
}

/// A handler registered by `#[given_event]`: its event, name, source location and entry point.
#[derive(Debug)]
pub struct HandlerRegistration {
    /// The event name the handler answers.
    pub event: &'static str,
    /// The handler function's name.
    pub name: &'static str,
    /// The source file of the handler.
    pub file: &'static str,
    /// The source line of the handler.
    pub line: u32,
    /// The generated entry point.
    pub call: Call,
    /// The parsing canonical form of the handler's payload schema.
    pub reader_canonical: fn() -> &'static str,
    /// The state type each of the handler's arguments after the event asks for (`None`: the
    /// context).
    pub needs: &'static [Option<StateNeed>],
    /// The events the handler declares it publishes (`publishes = [..]`), checked at compile
    /// time against its schemas folder.
    pub publishes: &'static [&'static str],
}

impl HandlerRegistration {
    /// Records a handler: its event, function name, `file!()` and `line!()`; `#[given_event]`
    /// calls this.
    pub const fn new(
        (event, name, file, line): (&'static str, &'static str, &'static str, u32),
        call: HandlerFn,
        reader_canonical: fn() -> &'static str,
        needs: &'static [Option<StateNeed>],
        publishes: &'static [&'static str],
    ) -> Self {
        Self::of(
            (event, name, file, line),
            Call::One(call),
            reader_canonical,
            (needs, publishes),
        )
    }

    /// Records a batch handler, as [`new`](Self::new) records a handler; `#[given_events]` calls
    /// this.
    pub const fn batch(
        (event, name, file, line): (&'static str, &'static str, &'static str, u32),
        call: BatchFn,
        reader_canonical: fn() -> &'static str,
        needs: &'static [Option<StateNeed>],
        publishes: &'static [&'static str],
    ) -> Self {
        Self::of(
            (event, name, file, line),
            Call::Batch(call),
            reader_canonical,
            (needs, publishes),
        )
    }

    const fn of(
        (event, name, file, line): (&'static str, &'static str, &'static str, u32),
        call: Call,
        reader_canonical: fn() -> &'static str,
        (needs, publishes): (&'static [Option<StateNeed>], &'static [&'static str]),
    ) -> Self {
        Self {
            event,
            name,
            file,
            line,
            call,
            reader_canonical,
            needs,
            publishes,
        }
    }

    /// Whether the handler takes batches.
    pub fn is_batch(&self) -> bool {
        matches!(self.call, Call::Batch(_))
    }

    /// Whether data written with a schema of this canonical form decodes into the handler's type
    /// without Avro schema resolution (the two schemas are the same).
    pub fn reads_as_written(&self, writer_canonical: &str) -> bool {
        (self.reader_canonical)() == writer_canonical
    }

    /// What the handler takes as `State<T>` and `states` does not hold, as sentences.
    pub(crate) fn missing_states(&self, states: &States) -> Vec<String> {
        self.needs
            .iter()
            .flatten()
            .filter(|need| !states.has(need))
            .map(|need| {
                let name = (need.name)();
                format!(
                    "handler {} takes `State<{name}>`, but the service was given no `{name}`",
                    self.describe(),
                )
            })
            .collect()
    }

    /// `name (file:line)`, for logs and errors.
    pub fn describe(&self) -> String {
        format!("{} ({}:{})", self.name, self.file, self.line)
    }
}

inventory::collect!(HandlerRegistration);

/// The handlers of this binary, by event name.
#[derive(Debug, Clone)]
pub struct HandlerTable {
    by_event: FastMap<&'static str, &'static HandlerRegistration>,
}

impl HandlerTable {
    /// Collects every handler registered in this binary; two handlers for one event are an error
    /// naming both.
    pub fn collect() -> Result<Self> {
        Self::from_registrations(inventory::iter::<HandlerRegistration>)
    }

    fn from_registrations(
        registrations: impl IntoIterator<Item = &'static HandlerRegistration>,
    ) -> Result<Self> {
        let mut by_event: FastMap<&'static str, &'static HandlerRegistration> = FastMap::default();
        for registration in registrations {
            if let Some(first) = by_event.insert(registration.event, registration) {
                let (first, second) = ordered(first, registration);
                return Err(Error::DuplicateHandler {
                    event: registration.event.to_owned(),
                    first: first.describe(),
                    second: second.describe(),
                });
            }
        }
        Ok(Self { by_event })
    }

    /// Why a service with these handlers cannot start with `states`: a value given twice, or a
    /// handler asking for a type it was not given (each such handler, with its source location).
    pub(crate) fn check_states(&self, states: &States) -> Result<()> {
        if let Some(why) = states.refused() {
            return Err(Error::Startup(why.to_owned()));
        }
        let missing: Vec<String> = self
            .iter()
            .flat_map(|handler| handler.missing_states(states))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(Error::Startup(format!(
            "{}; give the service each value it needs: `kaufmann::run!(state = <value>)` or \
             `Service::builder(config).state(<value>)`",
            missing.join("; ")
        )))
    }

    /// The events batch handlers serve.
    pub(crate) fn batch_events(&self) -> Vec<&'static str> {
        self.by_event
            .values()
            .filter(|h| h.is_batch())
            .map(|h| h.event)
            .collect()
    }

    /// The handler for an event name, if there is one.
    pub fn get(&self, event: &str) -> Option<&'static HandlerRegistration> {
        self.by_event.get(event).copied()
    }

    /// Every handler, sorted by event name.
    pub fn iter(&self) -> impl Iterator<Item = &'static HandlerRegistration> {
        let mut all: Vec<_> = self.by_event.values().copied().collect();
        all.sort_by_key(|r| r.event);
        all.into_iter()
    }

    /// The number of handlers.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.by_event.len()
    }

    /// Whether there are no handlers.
    pub fn is_empty(&self) -> bool {
        self.by_event.is_empty()
    }
}

fn ordered<'a>(
    a: &'a HandlerRegistration,
    b: &'a HandlerRegistration,
) -> (&'a HandlerRegistration, &'a HandlerRegistration) {
    if (a.file, a.line) <= (b.file, b.line) {
        (a, b)
    } else {
        (b, a)
    }
}

/// A consumed message whose writer schema is known, before it is decoded into a handler's type.
#[derive(Debug)]
pub struct Incoming {
    pub(crate) writer: Arc<RegisteredSchema>,
    pub(crate) resolve: bool,
    pub(crate) schema_id: u32,
    pub(crate) value: Arc<[u8]>,
    /// The payload, already decoded (`kaufmann_ex`, where it arrives inside the envelope).
    pub(crate) payload: Option<apache_avro::types::Value>,
    pub(crate) meta: Metadata,
    pub(crate) origin: Origin,
}

impl Incoming {
    /// Decodes the payload (written with the writer's schema) into `T`, resolving to `T`'s schema.
    pub fn decode<T: EventSchema>(self) -> Result<Event<T>> {
        let payload = if let Some(value) = self.payload {
            T::from_avro(value).map_err(CodecError::shape("decode", T::EVENT_NAME, None))?
        } else {
            let body = &self.value[crate::codec::schema::wire::HEADER_LEN..];
            decode_resolved::<T>(
                &self.writer.schema,
                self.resolve,
                || self.writer.plain_decoder().map(|p| &**p),
                Some(self.schema_id),
                body,
            )?
        };
        Ok(Event {
            payload,
            meta: self.meta,
            origin: self.origin,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noop(_: Incoming, _: Context, _: &States) -> BoxFuture<'static, Result<()>> {
        Box::pin(async { Ok(()) })
    }

    fn reader() -> &'static str {
        r#"{"name":"r","type":"record","fields":[]}"#
    }

    static A: HandlerRegistration =
        HandlerRegistration::new(("e.one", "a", "src/a.rs", 3), noop, reader, &[], &[]);
    static B: HandlerRegistration =
        HandlerRegistration::new(("e.two", "b", "src/b.rs", 9), noop, reader, &[], &[]);
    static C: HandlerRegistration =
        HandlerRegistration::new(("e.one", "c", "src/c.rs", 1), noop, reader, &[], &[]);

    #[test]
    fn a_duplicate_event_names_both_handlers() {
        let err = HandlerTable::from_registrations([&C, &B, &A])
            .unwrap_err()
            .to_string();
        assert!(err.contains("`e.one`"), "{err}");
        assert!(
            err.contains("a (src/a.rs:3)") && err.contains("c (src/c.rs:1)"),
            "{err}"
        );
    }

    #[test]
    fn distinct_events_are_collected() {
        let table = HandlerTable::from_registrations([&A, &B]).unwrap();
        assert_eq!(table.len(), 2);
        assert_eq!(table.get("e.two").map(|r| r.name), Some("b"));
        assert!(table.get("e.three").is_none());
        assert_eq!(
            table.iter().map(|r| r.event).collect::<Vec<_>>(),
            ["e.one", "e.two"]
        );
    }
}
