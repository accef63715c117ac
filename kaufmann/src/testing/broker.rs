//! Tests against a real broker: [`BrokerTest`] starts the service in-process on a unique topic and
//! group, produces typed events to it and reads back what it published.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use crate::codec::schema::{wire, EventSchema};
use crate::config::Config;
use crate::envelope::Metadata;
use crate::process::state::States;
use crate::registry::{MemoryRegistry, SchemaRegistry};
use crate::testing::Published;

/// Tests against a real broker (tier 2): a unique topic (and its dead-letter topic) and consumer
/// group, the service started in-process on it with an in-memory registry, typed events produced
/// to it and read back from it; [`stop`](Self::stop) shuts the service down and deletes the
/// topics.
pub struct BrokerTest {
    brokers: String,
    topic: String,
    registry: Arc<MemoryRegistry>,
    service: crate::service::RunningService,
    reader: rdkafka::consumer::StreamConsumer,
    timeout: Duration,
}

impl Debug for BrokerTest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerTest")
            .field("brokers", &self.brokers)
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl BrokerTest {
    /// Starts a service on `brokers` with a fresh topic of `partitions` partitions; `configure`
    /// adjusts the config first (its topics, group and registry are set by the helper).
    pub async fn start(
        brokers: &str,
        partitions: i32,
        configure: impl FnOnce(&mut Config),
    ) -> crate::Result<Self> {
        Self::start_with(brokers, partitions, States::new(), configure).await
    }

    /// [`BrokerTest::start`] for handlers that take application state: the service is given
    /// `states`.
    pub async fn start_with(
        brokers: &str,
        partitions: i32,
        states: States,
        configure: impl FnOnce(&mut Config),
    ) -> crate::Result<Self> {
        use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
        use rdkafka::consumer::Consumer;
        let unique = uuid::Uuid::new_v4().simple().to_string();
        let topic = format!("test-{unique}");
        let dead = format!("{topic}.DLT");
        let admin: AdminClient<rdkafka::client::DefaultClientContext> =
            rdkafka::ClientConfig::new()
                .set("bootstrap.servers", brokers)
                .create()
                .map_err(|e| crate::Error::kafka("creating the admin client", e))?;
        let topics = [
            NewTopic::new(&topic, partitions, TopicReplication::Fixed(1)),
            NewTopic::new(&dead, 1, TopicReplication::Fixed(1)),
        ];
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        for result in admin
            .create_topics(&topics, &options)
            .await
            .map_err(|e| crate::Error::kafka("creating the test topics", e))?
        {
            result.map_err(|(name, code)| {
                crate::Error::Startup(format!("creating test topic `{name}` failed: {code}"))
            })?;
        }
        let registry_url = format!("mock://broker-test-{unique}");
        let mut config = Config::new("broker-test");
        configure(&mut config);
        config.brokers = Some(brokers.to_owned());
        config.group_id = format!("group-{unique}");
        config.topics = vec![topic.clone()];
        config.default_topic.clone_from(&topic);
        config.registry_url.clone_from(&registry_url);
        let service = crate::service::Service::builder(config)
            .states(states)
            .start()
            .await?;
        let reader: rdkafka::consumer::StreamConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", format!("reader-{unique}"))
            .set("enable.auto.commit", "false")
            .create()
            .map_err(|e| crate::Error::kafka("creating the test reader", e))?;
        let mut assignment = rdkafka::TopicPartitionList::new();
        for partition in 0..partitions {
            assignment
                .add_partition_offset(&topic, partition, rdkafka::Offset::Beginning)
                .map_err(|e| crate::Error::kafka("assigning the test reader", e))?;
        }
        reader
            .assign(&assignment)
            .map_err(|e| crate::Error::kafka("assigning the test reader", e))?;
        let registry = crate::registry::memory_scope(&registry_url)?;
        Ok(Self {
            brokers: brokers.to_owned(),
            topic,
            registry,
            service,
            reader,
            timeout: Duration::from_secs(60),
        })
    }

    /// The test's topic (consumed by the service, and its default topic).
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The running service.
    pub fn service(&self) -> &crate::service::RunningService {
        &self.service
    }

    /// Produces `value` to the test's topic, as a Kaufmann service publishes it.
    pub async fn produce<T: EventSchema>(&self, value: T) -> crate::Result<Metadata> {
        self.service.publisher().publish(value).await
    }

    /// The next `T` on the test's topic (skipping other events), within 60 s; panics otherwise.
    pub async fn next_event<T: EventSchema>(&self) -> Published<T> {
        use rdkafka::message::Message;
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let message = tokio::time::timeout_at(deadline, self.reader.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "no `{}` on `{}` within {:?}",
                        T::EVENT_NAME,
                        self.topic,
                        self.timeout
                    )
                })
                .unwrap_or_else(|e| panic!("reading `{}`: {e}", self.topic));
            let meta = Metadata::from_headers(message.headers());
            if meta.message_name != T::EVENT_NAME {
                continue;
            }
            let bytes = message.payload().unwrap_or_default();
            let (id, body) = wire::split(bytes).unwrap_or_else(|e| panic!("{e}"));
            let writer = self
                .registry
                .schema_by_id(id)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let payload = crate::codec::schema::decode_body::<T>(&writer.schema, Some(id), body)
                .unwrap_or_else(|e| panic!("{e}"));
            return Published {
                payload,
                meta,
                topic: message.topic().to_owned(),
                key: message.key().map(<[u8]>::to_vec),
            };
        }
    }

    /// Stops the service (finishing in-flight work) and deletes the test's topics.
    pub async fn stop(self) -> crate::Result<()> {
        use rdkafka::admin::{AdminClient, AdminOptions};
        self.service.shutdown().await?;
        let admin: AdminClient<rdkafka::client::DefaultClientContext> =
            rdkafka::ClientConfig::new()
                .set("bootstrap.servers", &self.brokers)
                .create()
                .map_err(|e| crate::Error::kafka("creating the admin client", e))?;
        let dead = format!("{}.DLT", self.topic);
        if let Err(err) = admin
            .delete_topics(&[&self.topic, &dead], &AdminOptions::new())
            .await
        {
            tracing::warn!("deleting the test topics failed: {err}");
        }
        Ok(())
    }
}
