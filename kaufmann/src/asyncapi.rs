//! The service as an AsyncAPI 3.0 document, built from the binary's handler table: a channel per
//! topic, a `receive` operation per handler and consumed topic, a `send` operation per event the
//! handlers declare they publish (`publishes = [..]`), per error event and per dead-letter topic,
//! and each event's Avro schema as its message's payload. A service made with `run!()` prints it when started with `--asyncapi`.
//!
//! ```no_run
//! let config = kaufmann::Config::from_env()?;
//! println!("{}", kaufmann::asyncapi::document(&config, env!("CARGO_PKG_VERSION"))?);
//! # Ok::<(), kaufmann::Error>(())
//! ```

use std::collections::BTreeMap;
use std::io::Write;

use serde_json::{json, Map, Value};

use crate::codec::error_event;
use crate::codec::format::WireFormat;
pub use crate::codec::schema::KnownEvent;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::process::handler::{HandlerRegistration, HandlerTable};

/// The flag that makes a `run!()` service print its AsyncAPI document and exit.
pub const FLAG: &str = "--asyncapi";

/// The Avro schema format AsyncAPI names (the Avro specification's version).
const AVRO_FORMAT: &str = "application/vnd.apache.avro+json;version=1.9.0";

/// The version of AsyncAPI's Kafka bindings used.
const KAFKA_BINDING: &str = "0.5.0";

/// The AsyncAPI 3.0 document (pretty JSON) of the handlers of this binary, configured by
/// `config` (topics, group, routes, wire format), with `version` as the API's version.
pub fn document(config: &Config, version: &str) -> Result<String> {
    let handlers = HandlerTable::collect()?;
    let schemas: BTreeMap<&str, &str> = inventory::iter::<KnownEvent>
        .into_iter()
        .map(|known| (known.event, known.schema_json))
        .collect();
    let value = build(
        config,
        version,
        &handlers.iter().collect::<Vec<_>>(),
        &schemas,
    )?;
    serde_json::to_string_pretty(&value)
        .map_err(|e| Error::Startup(format!("the AsyncAPI document did not serialize: {e}")))
}

/// Prints the AsyncAPI document to standard output when the process was started with [`FLAG`]
/// (`None` when it was not). `run!()` calls this before it starts the service.
pub fn print_if_asked(config: &Config, version: &str) -> Option<Result<()>> {
    if std::env::args().nth(1).as_deref() != Some(FLAG) {
        return None;
    }
    Some(document(config, version).and_then(|text| {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{text}")
            .and_then(|()| out.flush())
            .map_err(|e| Error::Startup(format!("cannot write the AsyncAPI document: {e}")))
    }))
}

/// The channels of the document, by topic (a channel's id is its topic: topic names are
/// letters, digits, `.`, `_` and `-`): the messages of each, by event.
#[derive(Default)]
struct Channels(BTreeMap<String, BTreeMap<String, Value>>);

impl Channels {
    /// The channel of `topic` (its id), holding `event`'s message.
    fn carry(&mut self, topic: &str, event: &str) -> String {
        self.0.entry(topic.to_owned()).or_default().insert(
            event.to_owned(),
            json!({ "$ref": format!("#/components/messages/{event}") }),
        );
        topic.to_owned()
    }

    fn into_value(self) -> Value {
        let channels: Map<String, Value> = self
            .0
            .into_iter()
            .map(|(topic, messages)| {
                let messages: Map<String, Value> = messages.into_iter().collect();
                let channel = json!({ "address": topic, "messages": messages });
                (topic, channel)
            })
            .collect();
        Value::Object(channels)
    }
}

/// A reference to `event`'s message in `channel`.
fn message_ref(channel: &str, event: &str) -> Value {
    json!({ "$ref": format!("#/channels/{channel}/messages/{event}") })
}

fn build(
    config: &Config,
    version: &str,
    handlers: &[&'static HandlerRegistration],
    schemas: &BTreeMap<&str, &str>,
) -> Result<Value> {
    let mut channels = Channels::default();
    let mut operations = Map::new();
    let mut messages = Map::new();
    let mut publishers: BTreeMap<&str, Vec<&HandlerRegistration>> = BTreeMap::new();
    for handler in handlers {
        let schema = schemas
            .get(handler.event)
            .copied()
            .unwrap_or_else(|| (handler.reader_canonical)());
        messages.insert(
            handler.event.to_owned(),
            message(config, handler.event, schema)?,
        );
        for topic in &config.topics {
            let channel = channels.carry(topic, handler.event);
            let id = operation_id(config, "receive", handler.event, topic);
            let kind = if handler.is_batch() {
                "batch handler"
            } else {
                "handler"
            };
            operations.insert(
                id,
                json!({
                    "action": "receive",
                    "channel": { "$ref": format!("#/channels/{channel}") },
                    "summary": format!("{kind} {}", handler.describe()),
                    "messages": [message_ref(&channel, handler.event)],
                    "bindings": { "kafka": {
                        "groupId": { "type": "string", "enum": [config.group_id] },
                        "bindingVersion": KAFKA_BINDING,
                    } },
                }),
            );
        }
        for published in handler.publishes {
            publishers.entry(published).or_default().push(handler);
        }
        failures(
            config,
            handler,
            &mut channels,
            &mut operations,
            &mut messages,
        )?;
    }
    for (event, by) in publishers {
        let schema = schemas.get(event).ok_or_else(|| {
            Error::Startup(format!(
                "no schema of `{event}` (published by {}) is linked into this binary: call \
                 `schemas!` on its folder in a crate the binary uses",
                by[0].describe()
            ))
        })?;
        if !messages.contains_key(event) {
            messages.insert(event.to_owned(), message(config, event, schema)?);
        }
        let topic = config
            .event_routes
            .get(event)
            .and_then(|route| route.topic.as_deref())
            .unwrap_or(&config.default_topic);
        let channel = channels.carry(topic, event);
        let names: Vec<String> = by.iter().map(|h| h.describe()).collect();
        operations.insert(
            format!("send.{event}"),
            json!({
                "action": "send",
                "channel": { "$ref": format!("#/channels/{channel}") },
                "summary": format!("published by {}", names.join(", ")),
                "messages": [message_ref(&channel, event)],
            }),
        );
    }
    Ok(json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": config.service_name,
            "version": version,
            "description": format!(
                "Built by Kaufmann from the service's handler table: the events it receives on \
                 the topics it consumes (consumer group `{}`) and those its handlers declare they \
                 publish. Messages are Avro records in the {} wire format.",
                config.group_id,
                wire_name(config.wire_format)
            ),
        },
        "defaultContentType": content_type(config.wire_format),
        "channels": channels.into_value(),
        "operations": operations,
        "components": { "messages": messages },
    }))
}

/// The id of the `kind` operation of `event` on a consumed `topic`: `<kind>.<event>`, with
/// `.from.<topic>` when the service consumes more than one topic.
fn operation_id(config: &Config, kind: &str, event: &str, topic: &str) -> String {
    if config.topics.len() == 1 {
        format!("{kind}.{event}")
    } else {
        format!("{kind}.{event}.from.{topic}")
    }
}

/// What the service sends when `handler` fails for good: its error event (to the default topic)
/// and the message itself, unchanged, to each consumed topic's dead-letter topic, as the
/// handler's event's error policy says.
fn failures(
    config: &Config,
    handler: &HandlerRegistration,
    channels: &mut Channels,
    operations: &mut Map<String, Value>,
    messages: &mut Map<String, Value>,
) -> Result<()> {
    let policy = config.error_policy(handler.event);
    if policy.error_events {
        let error_event = error_event::name(handler.event);
        let (_, error_schema) = config.wire_format.codec().error_event_schema();
        messages.insert(
            error_event.clone(),
            message(config, &error_event, error_schema)?,
        );
        let channel = channels.carry(&config.default_topic, &error_event);
        operations.insert(
            format!("send.{error_event}"),
            json!({
                "action": "send",
                "channel": { "$ref": format!("#/channels/{channel}") },
                "summary": format!(
                    "when {} fails for good (after its retries); also to the event's callback \
                     topic",
                    handler.describe()
                ),
                "messages": [message_ref(&channel, &error_event)],
            }),
        );
    }
    for topic in &config.topics {
        let Some(dead) = policy.dead_letter_for(topic) else {
            continue;
        };
        let channel = channels.carry(&dead, handler.event);
        let id = operation_id(config, "dead-letter", handler.event, topic);
        // The consumed event's own message: a dead letter is the record as it was read.
        operations.insert(
            id,
            json!({
                "action": "send",
                "channel": { "$ref": format!("#/channels/{channel}") },
                "summary": format!(
                    "the `{}` record as read from `{topic}`, with error headers, when {} fails \
                     for good",
                    handler.event,
                    handler.describe()
                ),
                "messages": [message_ref(&channel, handler.event)],
            }),
        );
    }
    Ok(())
}

fn wire_name(format: WireFormat) -> &'static str {
    match format {
        WireFormat::Confluent => {
            "Confluent (magic byte, schema id, Avro body; metadata in headers)"
        }
        WireFormat::KaufmannEx => "KaufmannEx",
        WireFormat::Json => "json (`{\"meta\": .., \"payload\": ..}`, the payload the JSON mapping of its Avro schema)",
    }
}

/// The content type of messages in `format`.
fn content_type(format: WireFormat) -> &'static str {
    match format {
        WireFormat::Json => "application/json",
        _ => "avro/binary",
    }
}

/// The message of `event`, its payload the Avro schema `schema_json`.
fn message(config: &Config, event: &str, schema_json: &str) -> Result<Value> {
    let mut schema: Value = serde_json::from_str(schema_json)
        .map_err(|e| Error::Startup(format!("the schema of `{event}` is not JSON: {e}")))?;
    split_names(&mut schema);
    let mut message = json!({
        "name": event,
        "title": event,
        "contentType": content_type(config.wire_format),
        "payload": { "schemaFormat": AVRO_FORMAT, "schema": schema },
    });
    if config.wire_format == WireFormat::Confluent {
        message["bindings"] = json!({ "kafka": {
            "schemaIdLocation": "payload",
            "schemaIdPayloadEncoding": "confluent",
            "bindingVersion": KAFKA_BINDING,
        } });
    }
    Ok(message)
}

/// Writes each dotted name of a named type (`"name": "command.user.create"`) as a name and a
/// namespace (`"name": "create", "namespace": "command.user"`): the same full name in Avro, and
/// the form AsyncAPI's Avro schema accepts (its `name` has no dots).
fn split_names(schema: &mut Value) {
    match schema {
        Value::Array(union) => union.iter_mut().for_each(split_names),
        Value::Object(object) => {
            let named = matches!(
                object.get("type").and_then(Value::as_str),
                Some("record" | "error" | "enum" | "fixed")
            );
            let dotted = object
                .get("name")
                .and_then(Value::as_str)
                .and_then(|name| name.rsplit_once('.'))
                .map(|(namespace, name)| (namespace.to_owned(), name.to_owned()));
            if let (true, Some((namespace, name))) = (named, dotted) {
                object.insert("name".to_owned(), Value::String(name));
                object.insert("namespace".to_owned(), Value::String(namespace));
            }
            if let Some(Value::Array(fields)) = object.get_mut("fields") {
                for field in fields {
                    if let Some(ty) = field.get_mut("type") {
                        split_names(ty);
                    }
                }
            }
            for key in ["type", "items", "values"] {
                if let Some(inner) = object.get_mut(key) {
                    if inner.is_object() || inner.is_array() {
                        split_names(inner);
                    }
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_names_become_a_name_and_a_namespace_at_every_depth() {
        let mut schema = json!({
            "type": "record", "name": "event.user.created", "fields": [
                {"name": "address", "type": {"type": "record", "name": "geo.Address", "fields": []}},
                {"name": "kind", "type": ["null", {"type": "enum", "name": "a.b.Kind", "symbols": ["X"]}]},
                {"name": "ids", "type": {"type": "array", "items": {"type": "fixed", "name": "x.Id", "size": 4}}},
                {"name": "tags", "type": {"type": "map", "values": {"type": "record", "name": "Tag", "fields": []}}},
                {"name": "ref", "type": "geo.Address"}
            ]
        });
        split_names(&mut schema);
        assert_eq!(
            (&schema["name"], &schema["namespace"]),
            (&json!("created"), &json!("event.user"))
        );
        let fields = &schema["fields"];
        assert_eq!(
            (&fields[0]["type"]["name"], &fields[0]["type"]["namespace"]),
            (&json!("Address"), &json!("geo"))
        );
        assert_eq!(
            (
                &fields[1]["type"][1]["name"],
                &fields[1]["type"][1]["namespace"]
            ),
            (&json!("Kind"), &json!("a.b"))
        );
        assert_eq!(fields[2]["type"]["items"]["name"], "Id");
        assert_eq!(fields[3]["type"]["values"]["name"], "Tag");
        assert!(
            fields[3]["type"]["values"].get("namespace").is_none(),
            "an undotted name keeps the enclosing namespace"
        );
        assert_eq!(
            fields[4]["type"], "geo.Address",
            "references keep the full name"
        );
        // Still the same schema for Avro.
        let parsed = apache_avro::Schema::parse(&schema).unwrap();
        assert_eq!(
            parsed.name().map(|n| n.fullname(None)),
            Some("event.user.created".to_owned())
        );
    }
}
