//! What a handler gets beside its event: [`Context`], publishing correlated with the event being
//! handled (its key, its trace, replies to its callback topic).

use std::sync::Arc;

use crate::codec::schema::EventSchema;
use crate::envelope::{CallbackTopic, Metadata};
use crate::error::{Error, Result};
use crate::publish::publisher::{PublishOptions, Publisher, Route};
use crate::publish::trace::TraceParent;

/// What a handler gets beside its event: publishing, correlated with the event being handled.
#[derive(Debug, Clone)]
pub struct Context {
    publisher: Publisher,
    message_id: String,
    /// The name of the event being handled (its handler's, so no copy per message).
    event: &'static str,
    /// The Kafka key of the event being handled (what it publishes inherits it), shared with the
    /// consumed message's job.
    key: Option<Arc<[u8]>>,
    callback_topic: Option<CallbackTopic>,
    trace: Option<TraceParent>,
}

impl Context {
    pub(crate) fn new(
        publisher: Publisher,
        event: &'static str,
        meta: &Metadata,
        key: Option<Arc<[u8]>>,
        trace: Option<TraceParent>,
    ) -> Self {
        Self {
            publisher,
            message_id: meta.message_id.clone(),
            event,
            key,
            callback_topic: meta.callback_topic.clone(),
            trace,
        }
    }

    fn route(&self) -> Route<'_> {
        Route {
            inherited_key: self.key.as_deref(),
            // (A batch handler's context is no one event's: no callback id.)
            callback_id: (!self.message_id.is_empty()).then(|| self.message_id.clone()),
            trace: Some(self.trace.map_or_else(TraceParent::new_root, |t| t.child())),
            ..Route::default()
        }
    }

    /// Publishes `value` to the default topic, keyed like the event being handled and carrying its
    /// `message_id` as `callback_id`. By default (`publish_confirm = "before_commit"`) this
    /// returns once the event is encoded: it goes to the broker when the handler returns `Ok`,
    /// and the message's offset waits for the acknowledgement. With `"in_handler"` it returns once
    /// the broker has it.
    pub async fn publish<T: EventSchema>(&self, value: T) -> Result<()> {
        self.publisher
            .publish_typed(&value, self.route())
            .await
            .map(drop)
    }

    /// Publishes `value` to `topic` with the Kafka key `key` (none: the format's default),
    /// carrying the handled event's `message_id` as `callback_id`.
    pub async fn publish_to<T: EventSchema>(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: T,
    ) -> Result<()> {
        let route = Route {
            topic: Some(topic),
            key,
            ..self.route()
        };
        self.publisher.publish_typed(&value, route).await.map(drop)
    }

    /// Publishes `value` with `options`, carrying the handled event's `message_id` as
    /// `callback_id` (and keyed like it unless `options` names a key).
    pub async fn publish_with<T: EventSchema>(
        &self,
        value: T,
        options: PublishOptions,
    ) -> Result<()> {
        let base = self.route();
        let given = options.route();
        let route = Route {
            inherited_key: base.inherited_key,
            callback_id: base.callback_id,
            trace: base.trace,
            ..given
        };
        self.publisher.publish_typed(&value, route).await.map(drop)
    }

    /// Answers the event being handled: publishes `value` to the callback topic (and partition)
    /// its emitter named, carrying its `message_id` as `callback_id`. An event without a callback
    /// topic is [`Error::NoCallbackTopic`].
    pub async fn reply<T: EventSchema>(&self, value: T) -> Result<()> {
        let Some(CallbackTopic {
            topic: Some(topic),
            partition,
        }) = &self.callback_topic
        else {
            return Err(Error::NoCallbackTopic {
                event: self.event.to_owned(),
                message_id: self.message_id.clone(),
            });
        };
        let route = Route {
            topic: Some(topic),
            partition: *partition,
            ..self.route()
        };
        self.publisher.publish_typed(&value, route).await.map(drop)
    }

    /// Where the emitter of the event being handled wants answers, if it said.
    pub fn callback_topic(&self) -> Option<&CallbackTopic> {
        self.callback_topic.as_ref()
    }

    /// The trace context of the event being handled (its `traceparent` header), if it had one.
    /// Events published through this context continue it, or start a new trace without one.
    pub fn trace(&self) -> Option<TraceParent> {
        self.trace
    }

    /// The publisher, for events that are not correlated with the event being handled.
    pub fn publisher(&self) -> &Publisher {
        &self.publisher
    }
}
