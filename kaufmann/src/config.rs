//! Service configuration: one struct, defaults overridden by `KAUFMANN_*` environment variables.

use std::time::Duration;

use crate::error::ConfigError;

/// Everything a Kaufmann service is configured with.
///
/// | key (environment variable)   | default                                   |
/// |------------------------------|-------------------------------------------|
/// | `KAUFMANN_BROKERS`           | unset: the embedded in-process mock cluster |
/// | `KAUFMANN_SERVICE_NAME`      | the executable's name                     |
/// | `KAUFMANN_GROUP_ID`          | the service name                          |
/// | `KAUFMANN_TOPICS`            | `rapids` (comma-separated list)           |
/// | `KAUFMANN_DEFAULT_TOPIC`     | the first of `KAUFMANN_TOPICS`            |
/// | `KAUFMANN_DEMAND`            | `50`                                      |
/// | `KAUFMANN_COMMIT_INTERVAL_MS`| `1000`                                    |
/// | `KAUFMANN_SHUTDOWN_TIMEOUT_MS`| `30000`                                  |
/// | `KAUFMANN_REGISTRY_URL`      | `mock://kaufmann`                         |
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Kafka bootstrap servers (`host:port,...`); `None` starts the embedded mock cluster.
    pub brokers: Option<String>,
    /// The name this service gives itself in published metadata.
    pub service_name: String,
    /// The consumer group id.
    pub group_id: String,
    /// The topics to consume.
    pub topics: Vec<String>,
    /// The topic events are published to.
    pub default_topic: String,
    /// The most messages in flight (fetched but not finished) at any time.
    pub demand: usize,
    /// How often finished offsets are committed.
    pub commit_interval: Duration,
    /// How long shutdown waits for in-flight messages.
    pub shutdown_timeout: Duration,
    /// The schema registry: `mock://<scope>` for the in-memory registry.
    pub registry_url: String,
}

impl Config {
    /// The defaults, for a service called `service_name`.
    pub fn new(service_name: impl Into<String>) -> Self {
        let service_name = service_name.into();
        Self {
            brokers: None,
            group_id: service_name.clone(),
            service_name,
            topics: vec!["rapids".to_owned()],
            default_topic: "rapids".to_owned(),
            demand: 50,
            commit_interval: Duration::from_secs(1),
            shutdown_timeout: Duration::from_secs(30),
            registry_url: "mock://kaufmann".to_owned(),
        }
    }

    /// The defaults overridden by the `KAUFMANN_*` environment variables.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// The defaults overridden by the `KAUFMANN_*` values `lookup` returns (for tests and embedding).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |key: &str| {
            lookup(key)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let service_name = get("KAUFMANN_SERVICE_NAME").unwrap_or_else(executable_name);
        let mut config = Self::new(service_name);
        config.brokers = get("KAUFMANN_BROKERS");
        if let Some(group) = get("KAUFMANN_GROUP_ID") {
            config.group_id = group;
        }
        if let Some(topics) = get("KAUFMANN_TOPICS") {
            config.topics = parse_list("KAUFMANN_TOPICS", &topics)?;
        }
        config.default_topic = match get("KAUFMANN_DEFAULT_TOPIC") {
            Some(topic) => topic,
            None => config.topics[0].clone(),
        };
        if let Some(demand) = get("KAUFMANN_DEMAND") {
            config.demand = parse_positive("KAUFMANN_DEMAND", &demand)?;
        }
        if let Some(ms) = get("KAUFMANN_COMMIT_INTERVAL_MS") {
            config.commit_interval = parse_millis("KAUFMANN_COMMIT_INTERVAL_MS", &ms)?;
        }
        if let Some(ms) = get("KAUFMANN_SHUTDOWN_TIMEOUT_MS") {
            config.shutdown_timeout = parse_millis("KAUFMANN_SHUTDOWN_TIMEOUT_MS", &ms)?;
        }
        if let Some(url) = get("KAUFMANN_REGISTRY_URL") {
            config.registry_url = url;
        }
        Ok(config)
    }
}

fn executable_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "kaufmann-service".to_owned())
}

fn parse_list(key: &str, value: &str) -> Result<Vec<String>, ConfigError> {
    let items: Vec<String> = value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if items.is_empty() {
        return Err(invalid(key, value, "a comma-separated list of topic names"));
    }
    Ok(items)
}

fn parse_positive(key: &str, value: &str) -> Result<usize, ConfigError> {
    match value.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(invalid(key, value, "a whole number of at least 1")),
    }
}

fn parse_millis(key: &str, value: &str) -> Result<Duration, ConfigError> {
    parse_positive(key, value)
        .map(|ms| Duration::from_millis(ms as u64))
        .map_err(|_| invalid(key, value, "a whole number of milliseconds, at least 1"))
}

fn invalid(key: &str, value: &str, expected: &str) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        value: value.to_owned(),
        expected: expected.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_apply_without_variables() {
        let config = from(&[("KAUFMANN_SERVICE_NAME", "users")]).unwrap();
        assert_eq!(config, Config::new("users"));
        assert_eq!(config.demand, 50);
        assert_eq!(config.group_id, "users");
        assert_eq!(config.brokers, None);
    }

    #[test]
    fn variables_override_defaults() {
        let config = from(&[
            ("KAUFMANN_SERVICE_NAME", "users"),
            ("KAUFMANN_BROKERS", "127.0.0.1:9092"),
            ("KAUFMANN_TOPICS", "in, other"),
            ("KAUFMANN_DEMAND", "7"),
            ("KAUFMANN_COMMIT_INTERVAL_MS", "250"),
        ])
        .unwrap();
        assert_eq!(config.brokers.as_deref(), Some("127.0.0.1:9092"));
        assert_eq!(config.topics, ["in", "other"]);
        assert_eq!(config.default_topic, "in");
        assert_eq!(config.demand, 7);
        assert_eq!(config.commit_interval, Duration::from_millis(250));
    }

    #[test]
    fn invalid_values_name_the_key() {
        let err = from(&[("KAUFMANN_DEMAND", "0")]).unwrap_err().to_string();
        assert!(
            err.contains("KAUFMANN_DEMAND") && err.contains("at least 1"),
            "{err}"
        );
        let err = from(&[("KAUFMANN_TOPICS", " , ")]).unwrap_err().to_string();
        assert!(err.contains("KAUFMANN_TOPICS"), "{err}");
    }
}
