//! Every configuration key, written once: its name (the environment variable is `KAUFMANN_<KEY>`)
//! beside the code that reads its value into the field it sets. The sources (a TOML file, the
//! environment) are read into raw values, then applied in the table's order; an unknown key or an
//! invalid value is an error naming the key and what it accepts.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::config::{
    Config, ErrorPolicy, EventRoute, GroupProtocol, KafkaSecurity, LogFormat, Ordering, Processing,
    PublishConfirm, Unhandled, WireFormat,
};
use crate::error::ConfigError;
use crate::registry::SubjectStrategy;
use crate::secrets::shown_value;

/// What a key sets.
#[derive(Clone, Copy)]
enum Set {
    /// A field of the config.
    Config(fn(&mut Config, &Raw) -> Result<(), ConfigError>),
    /// A field of an error policy: the service's at the top level, an event's in its
    /// `[events."<name>"]` table.
    Policy(fn(&mut ErrorPolicy, &Raw) -> Result<(), ConfigError>),
    /// A field of an event's route (in its table only).
    Route(fn(&mut EventRoute, &Raw) -> Result<(), ConfigError>),
}

/// An optional text: empty is none.
fn text(raw: &Raw) -> Result<Option<String>, ConfigError> {
    Ok(Some(string(raw)?).filter(|v| !v.is_empty()))
}

/// The top-level keys, in the order they are applied.
const KEYS: &[(&str, Set)] = &[
    (
        "brokers",
        Set::Config(|c, raw| {
            c.brokers = text(raw)?;
            Ok(())
        }),
    ),
    (
        "security_protocol",
        Set::Config(|c, raw| {
            let protocol = string(raw)?.to_ascii_lowercase();
            c.security.protocol = Some(one_of(raw, protocol, &KafkaSecurity::PROTOCOLS)?);
            Ok(())
        }),
    ),
    (
        "sasl_mechanism",
        Set::Config(|c, raw| {
            let mechanism = string(raw)?.to_ascii_uppercase();
            c.security.sasl_mechanism = Some(one_of(raw, mechanism, &KafkaSecurity::MECHANISMS)?);
            Ok(())
        }),
    ),
    (
        "sasl_username",
        Set::Config(|c, raw| {
            c.security.sasl_username = text(raw)?;
            Ok(())
        }),
    ),
    (
        "sasl_password",
        Set::Config(|c, raw| {
            c.security.sasl_password = text(raw)?;
            Ok(())
        }),
    ),
    (
        "ssl_ca_location",
        Set::Config(|c, raw| {
            c.security.ssl_ca_location = text(raw)?;
            Ok(())
        }),
    ),
    // Read before the others: the default group id is the service's name.
    (
        "service_name",
        Set::Config(|c, raw| {
            c.service_name = string(raw)?;
            Ok(())
        }),
    ),
    (
        "group_id",
        Set::Config(|c, raw| {
            c.group_id = string(raw)?;
            Ok(())
        }),
    ),
    (
        "topics",
        Set::Config(|c, raw| {
            c.topics = list(raw)?;
            Ok(())
        }),
    ),
    // Without it, the first of `topics`.
    (
        "default_topic",
        Set::Config(|c, raw| {
            c.default_topic = string(raw)?;
            Ok(())
        }),
    ),
    (
        "demand",
        Set::Config(|c, raw| {
            c.demand = usize::try_from(number(raw, 1, MAX_DEMAND)?).unwrap_or(usize::MAX);
            Ok(())
        }),
    ),
    (
        "consumers",
        Set::Config(|c, raw| {
            c.consumers = usize::try_from(number(raw, 1, MAX_CONSUMERS)?).unwrap_or(usize::MAX);
            Ok(())
        }),
    ),
    (
        "batch_max",
        Set::Config(|c, raw| {
            c.batch_max = usize::try_from(number(raw, 1, MAX_BATCH)?).unwrap_or(usize::MAX);
            Ok(())
        }),
    ),
    (
        "batch_linger_ms",
        Set::Config(|c, raw| {
            c.batch_linger = millis(raw, MINUTE_MS)?;
            Ok(())
        }),
    ),
    (
        "max_message_bytes",
        Set::Config(|c, raw| {
            let bytes = number(raw, MESSAGE_BYTES.0, MESSAGE_BYTES.1)?;
            c.max_message_bytes = usize::try_from(bytes).unwrap_or(usize::MAX);
            Ok(())
        }),
    ),
    (
        "max_nesting_depth",
        Set::Config(|c, raw| {
            let most = u64::try_from(crate::codec::depth::MAX_DEPTH_LIMIT).unwrap_or(u64::MAX);
            c.max_nesting_depth = usize::try_from(number(raw, 1, most)?).unwrap_or(usize::MAX);
            Ok(())
        }),
    ),
    (
        "ordering",
        Set::Config(|c, raw| {
            c.ordering = Ordering::parse(&string(raw)?)
                .ok_or_else(|| invalid(&raw.origin, &display(raw), Ordering::ACCEPTED))?;
            Ok(())
        }),
    ),
    (
        "commit_interval_ms",
        Set::Config(|c, raw| {
            c.commit_interval = millis(raw, HOUR_MS)?;
            Ok(())
        }),
    ),
    (
        "processing",
        Set::Config(|c, raw| {
            c.processing = Processing::parse(&string(raw)?)
                .ok_or_else(|| invalid(&raw.origin, &display(raw), Processing::ACCEPTED))?;
            Ok(())
        }),
    ),
    (
        "publish_confirm",
        Set::Config(|c, raw| {
            c.publish_confirm = PublishConfirm::parse(&string(raw)?)
                .ok_or_else(|| invalid(&raw.origin, &display(raw), PublishConfirm::ACCEPTED))?;
            Ok(())
        }),
    ),
    (
        "transaction_interval_ms",
        Set::Config(|c, raw| {
            c.transaction_interval = millis(raw, MINUTE_MS)?;
            Ok(())
        }),
    ),
    (
        "transaction_max_messages",
        Set::Config(|c, raw| {
            c.transaction_max_messages =
                usize::try_from(number(raw, 1, MAX_TRANSACTION_MESSAGES)?).unwrap_or(usize::MAX);
            Ok(())
        }),
    ),
    (
        "instance_id",
        Set::Config(|c, raw| {
            c.instance_id = instance_id(raw)?;
            Ok(())
        }),
    ),
    (
        "shutdown_timeout_ms",
        Set::Config(|c, raw| {
            c.shutdown_timeout = millis(raw, HOUR_MS)?;
            Ok(())
        }),
    ),
    (
        "handler_timeout_ms",
        Set::Policy(|p, raw| {
            p.handler_timeout = millis(raw, DAY_MS)?;
            Ok(())
        }),
    ),
    (
        "max_retries",
        Set::Policy(|p, raw| {
            p.retry.max_retries = u32::try_from(number(raw, 0, MAX_RETRIES)?).unwrap_or(u32::MAX);
            Ok(())
        }),
    ),
    (
        "retry_backoff_ms",
        Set::Policy(|p, raw| {
            p.retry.initial_backoff = millis(raw, HOUR_MS)?;
            Ok(())
        }),
    ),
    (
        "retry_backoff_max_ms",
        Set::Policy(|p, raw| {
            p.retry.max_backoff = millis(raw, HOUR_MS)?;
            Ok(())
        }),
    ),
    (
        "dead_letter_topic",
        Set::Policy(|p, raw| {
            p.dead_letter_topic = text(raw)?;
            Ok(())
        }),
    ),
    (
        "retry_topics",
        Set::Policy(|p, raw| {
            p.retry_topics = delays(raw)?;
            Ok(())
        }),
    ),
    (
        "unhandled",
        Set::Config(|c, raw| {
            c.unhandled = match string(raw)?.as_str() {
                "commit" => Unhandled::Commit,
                "dead_letter" => Unhandled::DeadLetter,
                _ => {
                    return Err(invalid(
                        &raw.origin,
                        &display(raw),
                        "`commit` or `dead_letter`",
                    ))
                }
            };
            Ok(())
        }),
    ),
    (
        "group_protocol",
        Set::Config(|c, raw| {
            c.group_protocol = GroupProtocol::parse(&string(raw)?)
                .ok_or_else(|| invalid(&raw.origin, &display(raw), GroupProtocol::ACCEPTED))?;
            Ok(())
        }),
    ),
    (
        "registry_url",
        Set::Config(|c, raw| {
            c.registry_url = string(raw)?;
            Ok(())
        }),
    ),
    (
        "registry_bearer_token",
        Set::Config(|c, raw| {
            c.registry_bearer_token = text(raw)?;
            Ok(())
        }),
    ),
    (
        "registry_timeout_ms",
        Set::Config(|c, raw| {
            c.registry_timeout = millis(raw, 10 * MINUTE_MS)?;
            Ok(())
        }),
    ),
    (
        "registry_ca_location",
        Set::Config(|c, raw| {
            c.registry_tls.ca_location = text(raw)?;
            Ok(())
        }),
    ),
    (
        "registry_certificate_location",
        Set::Config(|c, raw| {
            c.registry_tls.certificate_location = text(raw)?;
            Ok(())
        }),
    ),
    (
        "registry_key_location",
        Set::Config(|c, raw| {
            c.registry_tls.key_location = text(raw)?;
            Ok(())
        }),
    ),
    (
        "subject_strategy",
        Set::Config(|c, raw| {
            c.subject_strategy = SubjectStrategy::parse(&string(raw)?).ok_or_else(|| {
                invalid(
                    &raw.origin,
                    &display(raw),
                    "`event`, `topic`, `record` or `topic_record`",
                )
            })?;
            Ok(())
        }),
    ),
    (
        "wire_format",
        Set::Config(|c, raw| {
            c.wire_format = match string(raw)?.as_str() {
                "confluent" => WireFormat::Confluent,
                "kaufmann_ex" => WireFormat::KaufmannEx,
                "json" => WireFormat::Json,
                _ => {
                    return Err(invalid(
                        &raw.origin,
                        &display(raw),
                        "`confluent`, `kaufmann_ex` or `json`",
                    ))
                }
            };
            Ok(())
        }),
    ),
    (
        "error_events",
        Set::Policy(|p, raw| {
            p.error_events = boolean(raw)?;
            Ok(())
        }),
    ),
    (
        "metrics_addr",
        Set::Config(|c, raw| {
            c.metrics_addr = text(raw)?;
            Ok(())
        }),
    ),
    (
        "log_format",
        Set::Config(|c, raw| {
            c.log_format = match string(raw)?.as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => return Err(invalid(&raw.origin, &display(raw), "`text` or `json`")),
            };
            Ok(())
        }),
    ),
];

/// The keys only an `[events."<name>"]` table has (beside the error-policy keys).
const ROUTE_KEYS: &[(&str, Set)] = &[
    (
        "topic",
        Set::Route(|r, raw| {
            r.topic = Some(string(raw)?);
            Ok(())
        }),
    ),
    (
        "key_field",
        Set::Route(|r, raw| {
            r.key_field = Some(string(raw)?);
            Ok(())
        }),
    ),
];

/// The keys an `[events."<name>"]` table accepts.
fn event_keys() -> impl Iterator<Item = &'static str> {
    let policy = KEYS.iter().filter(|(_, set)| matches!(set, Set::Policy(_)));
    policy.chain(ROUTE_KEYS).map(|(k, _)| *k)
}

/// Applies the keys of `table` found in `raw` to the config, the error policy and the route.
fn apply(
    table: &[(&str, Set)],
    raw: &BTreeMap<String, Raw>,
    config: Option<&mut Config>,
    policy: &mut ErrorPolicy,
    route: &mut EventRoute,
) -> Result<(), ConfigError> {
    let mut config = config;
    for (key, set) in table {
        let Some(raw) = raw.get(*key) else {
            continue;
        };
        match (set, config.as_deref_mut()) {
            (Set::Config(set), Some(config)) => set(config, raw)?,
            (Set::Config(_), None) => {}
            (Set::Policy(set), _) => set(policy, raw)?,
            (Set::Route(set), _) => set(route, raw)?,
        }
    }
    Ok(())
}

/// A raw value and where it came from (for error messages).
#[derive(Debug, Clone)]
struct Raw {
    value: toml::Value,
    origin: String,
}

#[derive(Debug, Default)]
pub(crate) struct Values {
    top: BTreeMap<String, Raw>,
    events: BTreeMap<String, BTreeMap<String, Raw>>,
    librdkafka: BTreeMap<String, String>,
}

impl Values {
    /// Reads the keys of a TOML file.
    pub(crate) fn read_toml(&mut self, path: &str, text: &str) -> Result<(), ConfigError> {
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::File {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
        for (key, value) in table {
            match (key.as_str(), value) {
                ("librdkafka", toml::Value::Table(props)) => {
                    for (prop, value) in props {
                        let value = match value {
                            toml::Value::String(s) => s,
                            other => other.to_string(),
                        };
                        self.librdkafka.insert(prop, value);
                    }
                }
                ("events", toml::Value::Table(events)) => {
                    for (event, table) in events {
                        let origin = format!("[events.\"{event}\"] in {path}");
                        let toml::Value::Table(table) = table else {
                            return Err(invalid(
                                &origin,
                                &table.to_string(),
                                "a table of error-policy keys",
                            ));
                        };
                        let entry = self.events.entry(event.clone()).or_default();
                        for (key, value) in table {
                            if !event_keys().any(|k| k == key) {
                                let accepted: Vec<&str> = event_keys().collect();
                                return Err(unknown(&format!("{key}` in `{origin}"), &accepted));
                            }
                            entry.insert(
                                key,
                                Raw {
                                    value,
                                    origin: origin.clone(),
                                },
                            );
                        }
                    }
                }
                (key, value) if KEYS.iter().any(|(k, _)| *k == key) => {
                    let origin = format!("{key}` in `{path}");
                    self.top.insert(key.to_owned(), Raw { value, origin });
                }
                (key, _) => {
                    let accepted: Vec<&str> = KEYS.iter().map(|(k, _)| *k).collect();
                    return Err(unknown(&format!("{key}` in `{path}"), &accepted));
                }
            }
        }
        Ok(())
    }

    /// Reads the `KAUFMANN_*` variables of `env`.
    pub(crate) fn read_env(&mut self, env: &[(String, String)]) -> Result<(), ConfigError> {
        for (name, value) in env {
            let Some(rest) = name.strip_prefix("KAUFMANN_") else {
                continue;
            };
            if rest == "CONFIG" {
                continue;
            }
            if let Some(prop) = rest.strip_prefix("LIBRDKAFKA_") {
                self.librdkafka
                    .insert(prop.to_lowercase().replace('_', "."), value.clone());
                continue;
            }
            let key = rest.to_lowercase();
            if !KEYS.iter().any(|(k, _)| *k == key) {
                let accepted: Vec<String> = KEYS
                    .iter()
                    .map(|(k, _)| format!("KAUFMANN_{}", k.to_uppercase()))
                    .collect();
                let accepted: Vec<&str> = accepted.iter().map(String::as_str).collect();
                return Err(unknown(name, &accepted));
            }
            let raw = Raw {
                value: toml::Value::String(value.trim().to_owned()),
                origin: name.clone(),
            };
            self.top.insert(key, raw);
        }
        Ok(())
    }

    /// The config the values make: the defaults, then every key found, in the table's order.
    pub(crate) fn build(self) -> Result<Config, ConfigError> {
        let top = &self.top;
        let service_name = match top.get("service_name") {
            Some(raw) => string(raw)?,
            None => executable_name(),
        };
        let mut c = Config::new(service_name);
        let mut errors = ErrorPolicy::default();
        apply(
            KEYS,
            top,
            Some(&mut c),
            &mut errors,
            &mut EventRoute::default(),
        )?;
        if !top.contains_key("default_topic") {
            c.default_topic = c.topics[0].clone();
        }
        // Each consumer takes an equal share of the pool's slots, at least one.
        if let Some(raw) = top.get("consumers").filter(|_| c.consumers > c.demand) {
            return Err(invalid(
                &raw.origin,
                &display(raw),
                &format!(
                    "at most `demand` ({}): each consumer needs a slot",
                    c.demand
                ),
            ));
        }
        c.errors = errors;
        for (event, keys) in &self.events {
            let mut policy = c.errors.clone();
            let mut route = EventRoute::default();
            apply(KEYS, keys, None, &mut policy, &mut route)?;
            apply(ROUTE_KEYS, keys, None, &mut policy, &mut route)?;
            c.event_errors.insert(event.clone(), policy);
            if route != EventRoute::default() {
                c.event_routes.insert(event.clone(), route);
            }
        }
        c.librdkafka = self.librdkafka;
        Ok(c)
    }
}

/// `value` (read from `raw`) when it is one of `accepted`; the error lists them
/// (`` `a`, `b` or `c` ``).
fn one_of(raw: &Raw, value: String, accepted: &[&str]) -> Result<String, ConfigError> {
    if accepted.contains(&value.as_str()) {
        return Ok(value);
    }
    let quoted: Vec<String> = accepted.iter().map(|a| format!("`{a}`")).collect();
    let listed = match quoted.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    };
    Err(invalid(&raw.origin, &display(raw), &listed))
}

/// An instance id: 1 to [`MAX_INSTANCE_ID`] letters, digits, `.`, `_` or `-` (it becomes part
/// of a transactional id, and of log lines).
fn instance_id(raw: &Raw) -> Result<String, ConfigError> {
    let id = string(raw)?;
    let fine = (1..=MAX_INSTANCE_ID).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if fine {
        Ok(id)
    } else {
        Err(invalid(
            &raw.origin,
            &display(raw),
            "1 to 200 letters, digits, `.`, `_` or `-`",
        ))
    }
}

fn display(raw: &Raw) -> String {
    match &raw.value {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn boolean(raw: &Raw) -> Result<bool, ConfigError> {
    match &raw.value {
        toml::Value::Boolean(b) => Ok(*b),
        toml::Value::String(s) if s.trim() == "true" => Ok(true),
        toml::Value::String(s) if s.trim() == "false" => Ok(false),
        _ => Err(invalid(&raw.origin, &display(raw), "`true` or `false`")),
    }
}

fn string(raw: &Raw) -> Result<String, ConfigError> {
    match &raw.value {
        toml::Value::String(s) => Ok(s.trim().to_owned()),
        other => Err(invalid(&raw.origin, &other.to_string(), "a string")),
    }
}

/// The items of a list (a TOML array of strings, or a comma-separated string in the
/// environment), trimmed, without empty ones; `expected` says what else the key takes.
fn items(raw: &Raw, expected: &str) -> Result<Vec<String>, ConfigError> {
    let items: Vec<String> = match &raw.value {
        toml::Value::String(s) => s.split(',').map(|s| s.trim().to_owned()).collect(),
        toml::Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().map(|s| s.trim().to_owned()))
            .collect::<Option<_>>()
            .ok_or_else(|| invalid(&raw.origin, &display(raw), expected))?,
        _ => return Err(invalid(&raw.origin, &display(raw), expected)),
    };
    Ok(items.into_iter().filter(|s| !s.is_empty()).collect())
}

fn list(raw: &Raw) -> Result<Vec<String>, ConfigError> {
    const EXPECTED: &str = "a list of topic names (comma-separated in the environment)";
    let items = items(raw, EXPECTED)?;
    if items.is_empty() {
        return Err(invalid(&raw.origin, &display(raw), EXPECTED));
    }
    Ok(items)
}

/// The most messages `batch_max` accepts.
const MAX_BATCH: u64 = 10_000;
/// The most messages one transaction of `exactly_once` processing admits.
const MAX_TRANSACTION_MESSAGES: u64 = 100_000;
/// The longest instance id.
const MAX_INSTANCE_ID: usize = 200;
/// The most retry topics `retry_topics` accepts.
const MAX_RETRY_TOPICS: usize = 10;

/// A list of delays (`["1s", "30s", "5m"]`; comma-separated in the environment), each a whole
/// number of `ms`, `s`, `m` or `h` from 10 ms to a day; empty: none.
fn delays(raw: &Raw) -> Result<Vec<Duration>, ConfigError> {
    let expected = "a list of at most 10 delays such as [\"1s\", \"30s\", \"5m\"] (`ms`, `s`, \
                    `m` or `h`, from 10ms to 24h; comma-separated in the environment; empty: no \
                    retry topics)";
    let items = items(raw, expected)?;
    if items.len() > MAX_RETRY_TOPICS {
        return Err(invalid(&raw.origin, &display(raw), expected));
    }
    items
        .iter()
        .map(|item| {
            let split = item
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(item.len());
            let (digits, unit) = item.split_at(split);
            let per: u64 = match unit {
                "ms" => 1,
                "s" => 1_000,
                "m" => MINUTE_MS,
                "h" => HOUR_MS,
                _ => 0,
            };
            digits
                .parse::<u64>()
                .ok()
                .and_then(|n| n.checked_mul(per))
                .filter(|ms| (10..=DAY_MS).contains(ms))
                .map(Duration::from_millis)
                .ok_or_else(|| invalid(&raw.origin, &display(raw), expected))
        })
        .collect()
}

/// The most messages in flight `demand` accepts.
pub const MAX_DEMAND: u64 = 100_000;
/// The most consumers `consumers` accepts (each is a member of the group with a thread's worth of
/// polling; more than the partitions leaves some idle).
pub const MAX_CONSUMERS: u64 = 64;
/// The most retries `max_retries` accepts.
const MAX_RETRIES: u64 = 1_000;
const MINUTE_MS: u64 = 60_000;
const HOUR_MS: u64 = 60 * MINUTE_MS;
const DAY_MS: u64 = 24 * HOUR_MS;
/// The range `max_message_bytes` accepts: 1 KiB to 1 GiB.
const MESSAGE_BYTES: (u64, u64) = (1024, 1 << 30);

/// A whole number from `min` to `max`; the error names the key and the range.
fn number(raw: &Raw, min: u64, max: u64) -> Result<u64, ConfigError> {
    let parsed = match &raw.value {
        toml::Value::Integer(n) => u64::try_from(*n).ok(),
        toml::Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    parsed.filter(|n| (min..=max).contains(n)).ok_or_else(|| {
        invalid(
            &raw.origin,
            &display(raw),
            &format!("a whole number from {min} to {max}"),
        )
    })
}

/// Milliseconds from 1 to `max`.
fn millis(raw: &Raw, max: u64) -> Result<Duration, ConfigError> {
    number(raw, 1, max).map(Duration::from_millis)
}

fn executable_name() -> String {
    std::env::current_exe()
        .ok()
        .as_deref()
        .and_then(Path::file_stem)
        .map_or_else(
            || "kaufmann-service".to_owned(),
            |s| s.to_string_lossy().into_owned(),
        )
}

fn invalid(key: &str, value: &str, expected: &str) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        value: shown_value(key, value).to_owned(),
        expected: expected.to_owned(),
    }
}

fn unknown(key: &str, accepted: &[&str]) -> ConfigError {
    ConfigError::Unknown {
        key: key.to_owned(),
        accepted: accepted.join(", "),
    }
}
