//! rmf-dash as a node of a site's ROS 2 graph (`serve --ros2`, built with `--features ros2`):
//! live RMF topics in, commands to RMF out.
//!
//! - [`node`] (behind the feature) owns the r2r node on one thread: it subscribes with
//!   `subscribe_raw` to [`LIVE_TOPICS`](crate::ingest::live::LIVE_TOPICS), hands the serialized
//!   messages to a [`LiveSource`] (decoded by the project's own decoder, as recordings are), and
//!   publishes the commands of [`Outgoing`](crate::rmf_link::Outgoing), encoded by the project's
//!   own CDR writer, on their topics with RMF's QoS.
//! - [`Ros2Link`] is the [`RmfLink`] of that node: publishing queues the message for the node
//!   thread (never blocks); the task API answers come back through the live source.
//! - [`pump`] feeds the live samples into the engine, stamped with their receive time; a message
//!   that does not decode (a wrong RMF layout) is logged with its topic and counted as invalid,
//!   never fed.
//!
//! Without the feature, [`start`] fails with [`Ros2Error::NotBuilt`], so every other part of
//! rmf-dash builds and runs on machines without ROS.

#[cfg(feature = "ros2")]
pub mod node;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{SyncSender, TrySendError};
use std::time::Duration;

use thiserror::Error;

use crate::ingest::cdr::RmfRelease;
use crate::ingest::feed::{Feed, FeedHandle, FeedMetrics, Source as FeedSource, Stamp};
use crate::ingest::live::LiveSource;
use crate::ingest::source::{Source, SourceError};
use crate::rmf_link::{LinkError, Outgoing, RmfLink, TaskApi};

/// Messages waiting to be published by the node thread; a command beyond this is refused.
pub const OUTGOING_CAPACITY: usize = 1024;
/// Serialized messages taken from the graph, waiting to be decoded.
pub const INCOMING_CAPACITY: usize = 65_536;

#[derive(Debug, Error)]
pub enum Ros2Error {
    #[error(
        "this rmf-dash was built without ROS 2 support: rebuild with `--features ros2` in a ROS 2 environment (README, \"Live ROS 2\")"
    )]
    NotBuilt,
    #[error("ROS 2 node {node}: {message}")]
    Node { node: String, message: String },
    #[error("starting the ROS 2 threads")]
    Thread(#[from] std::io::Error),
}

/// What the node needs.
#[derive(Debug, Clone)]
pub struct Ros2Config {
    pub node_name: String,
    /// The RMF release of the site: its layout is required of every message.
    pub release: RmfRelease,
    pub task_timeout: Duration,
}

/// The [`RmfLink`] of the ROS 2 node.
pub struct Ros2Link {
    node_name: String,
    release: RmfRelease,
    task_api: Arc<TaskApi>,
    outgoing: SyncSender<Outgoing>,
}

impl Ros2Link {
    pub fn new(
        node_name: &str,
        release: RmfRelease,
        task_api: Arc<TaskApi>,
        outgoing: SyncSender<Outgoing>,
    ) -> Self {
        Ros2Link {
            node_name: node_name.into(),
            release,
            task_api,
            outgoing,
        }
    }

    pub fn release(&self) -> RmfRelease {
        self.release
    }
}

impl RmfLink for Ros2Link {
    fn node_name(&self) -> &str {
        &self.node_name
    }

    fn publish(&self, message: Outgoing) -> Result<(), LinkError> {
        let topic = message.topic();
        self.outgoing
            .try_send(message)
            .map_err(|e| LinkError::Publish {
                topic,
                message: match e {
                    TrySendError::Full(_) => {
                        "the ROS 2 node is behind (outgoing queue full)".into()
                    }
                    TrySendError::Disconnected(_) => "the ROS 2 node has stopped".into(),
                },
            })
    }

    fn task_api(&self) -> &TaskApi {
        &self.task_api
    }
}

/// A running ROS 2 node and the thread feeding its samples to the engine.
pub struct Ros2 {
    pub link: Arc<Ros2Link>,
    #[cfg(feature = "ros2")]
    node: node::NodeThread,
    pump: Option<std::thread::JoinHandle<()>>,
}

/// Joins the graph: starts the node (subscriptions and publishers ready when this returns) and
/// the thread feeding `feed`.
pub fn start(
    config: &Ros2Config,
    feed: FeedHandle,
    metrics: Arc<FeedMetrics>,
    replaying: bool,
) -> Result<Ros2, Ros2Error> {
    #[cfg(feature = "ros2")]
    {
        let (node, link, source) = node::NodeThread::start(config)?;
        let pump = std::thread::Builder::new()
            .name("rmf-dash-ros2-pump".into())
            .spawn(move || pump(source, &feed, &metrics, replaying))?;
        tracing::info!(
            node = %config.node_name,
            release = config.release.as_str(),
            "joined the ROS 2 graph"
        );
        Ok(Ros2 {
            link,
            node,
            pump: Some(pump),
        })
    }
    #[cfg(not(feature = "ros2"))]
    {
        let _ = (config, feed, metrics, replaying);
        Err(Ros2Error::NotBuilt)
    }
}

impl Ros2 {
    /// Leaves the graph; the pump ends once the node has.
    pub fn stop(mut self) {
        #[cfg(feature = "ros2")]
        self.node.stop();
        if let Some(p) = self.pump.take() {
            let _ = p.join();
        }
    }
}

/// Feeds every live sample to the engine until the source ends or the feed closes. Decoding
/// errors are counted as invalid inputs of the `ros` source and logged: the first of each topic
/// as a warning, the rest at debug level.
pub fn pump(mut source: LiveSource, feed: &FeedHandle, metrics: &FeedMetrics, replaying: bool) {
    let mut warned = HashSet::new();
    while let Some(item) = source.next_sample() {
        match item {
            Ok(sample) => {
                // While a recording drives the clock, live data takes its current time.
                let stamp = if replaying {
                    Stamp::Live
                } else {
                    Stamp::Recorded(sample.log_time)
                };
                let sent = feed.blocking_send(Feed::Record {
                    record: Box::new(sample.record),
                    stamp,
                    source: FeedSource::Ros,
                });
                if !sent {
                    break;
                }
            }
            Err(e) => {
                metrics.invalid[FeedSource::Ros as usize].fetch_add(1, Ordering::Relaxed);
                // A decoding error reads "topic NAME (TYPE): what".
                let key = match &e {
                    SourceError::Decode { error, .. } => error.to_string(),
                    other => other.to_string(),
                };
                let key = key.split(':').next().unwrap_or_default().to_string();
                if warned.insert(key) {
                    tracing::warn!(error = %crate::error::chain(&e), "ROS 2 message dropped (later ones of this topic are logged at debug level)");
                } else {
                    tracing::debug!(error = %crate::error::chain(&e), "ROS 2 message dropped");
                }
            }
        }
    }
}
