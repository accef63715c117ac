//! The embedded broker: librdkafka's in-process mock cluster, for `cargo run` with no broker.

use std::sync::mpsc;
use std::thread::JoinHandle;

use rdkafka::mocking::MockCluster;

use crate::error::{Error, Result};

/// Partitions of every topic the embedded broker creates.
const PARTITIONS: i32 = 3;

/// An in-process mock cluster that lives until this value is dropped.
///
/// librdkafka's mock cluster handle cannot move between threads, so one thread owns it and the
/// rest of the service only sees its bootstrap address.
#[derive(Debug)]
pub struct EmbeddedBroker {
    servers: String,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl EmbeddedBroker {
    /// Starts a one-broker mock cluster with `topics` created.
    pub fn start(topics: &[String]) -> Result<Self> {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let topics = topics.to_vec();
        let thread = std::thread::Builder::new()
            .name("kaufmann-embedded-broker".to_owned())
            .spawn(move || {
                let cluster = match MockCluster::new(1) {
                    Ok(cluster) => cluster,
                    Err(err) => {
                        let _ = ready_tx
                            .send(Err(Error::kafka("starting the embedded mock cluster", err)));
                        return;
                    }
                };
                for topic in &topics {
                    if let Err(err) = cluster.create_topic(topic, PARTITIONS, 1) {
                        let action =
                            format!("creating topic `{topic}` on the embedded mock cluster");
                        let _ = ready_tx.send(Err(Error::kafka(action, err)));
                        return;
                    }
                }
                let _ = ready_tx.send(Ok(cluster.bootstrap_servers()));
                // Keep the cluster alive until the handle is dropped (or the sender disappears).
                let _ = stop_rx.recv();
            })
            .map_err(|err| Error::Startup(format!("no thread for the embedded broker: {err}")))?;
        let servers = ready_rx.recv().map_err(|_| {
            Error::Startup("the embedded broker thread stopped while starting".to_owned())
        })??;
        Ok(Self {
            servers,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// The bootstrap servers of the mock cluster.
    pub fn bootstrap_servers(&self) -> &str {
        &self.servers
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
