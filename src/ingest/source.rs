//! The `Source` interface every RMF input implements (recorded replays now, the `/_internal`
//! websocket and live ROS 2 later), and the replay of a recording as a source with pacing.
//!
//! A source is pulled from a dedicated thread: `next_sample` may block (pacing, network). It
//! yields samples `(log_time, topic, record)`; a message that cannot be decoded is an error item
//! the consumer counts and logs before it goes on (DESIGN.md invariant 7), while a broken
//! recording ends the stream with an error.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use thiserror::Error;

use rmf_dash_dataflows::model::Record;

use super::bag::{BagError, Recording};
use super::decode::{DecodeError, ReleasePolicy, TopicDecoder};

/// One decoded input.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Receive time in ns (recording: `log_time`; live: the ingest clock).
    pub log_time: u64,
    /// As received.
    pub topic: Arc<str>,
    pub record: Record,
}

#[derive(Debug, Error)]
pub enum SourceError {
    /// The source cannot go on.
    #[error(transparent)]
    Bag(#[from] BagError),
    /// One message was dropped; the source goes on.
    #[error("log_time {log_time}")]
    Decode {
        log_time: u64,
        #[source]
        error: DecodeError,
    },
}

impl SourceError {
    /// Whether the source can go on after this error.
    pub fn is_recoverable(&self) -> bool {
        matches!(self, SourceError::Decode { .. })
    }
}

/// An RMF input.
pub trait Source: Send {
    /// The next sample, blocking as long as needed; `None` at the end.
    fn next_sample(&mut self) -> Option<Result<Sample, SourceError>>;
}

/// How fast a recording is replayed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pacing {
    /// As fast as possible.
    Max,
    /// Real time multiplied by the factor (1 = real time).
    Speed(f64),
}

impl std::str::FromStr for Pacing {
    type Err = String;

    /// `max`, or a positive factor such as `1`, `2.5` or `10x`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("max") {
            return Ok(Pacing::Max);
        }
        let x = s.trim_end_matches(['x', 'X']);
        match x.parse::<f64>() {
            Ok(v) if v.is_finite() && v > 0.0 => Ok(Pacing::Speed(v)),
            _ => Err(format!(
                "invalid speed {s:?}: expected `max` or a positive factor like 1, 2.5, 10x"
            )),
        }
    }
}

/// Counters of a replay.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayStats {
    pub messages: u64,
    pub bytes: u64,
    pub decoded: u64,
    /// Dropped messages per topic.
    pub dropped: BTreeMap<String, u64>,
}

enum Channel {
    /// Not yet used.
    New,
    Ready(Box<TopicDecoder>),
    /// The decoder could not be built; the error was reported once, later messages are dropped.
    Failed,
}

/// A recording replayed as a [`Source`].
pub struct Replay {
    recording: Recording,
    channels: Vec<Channel>,
    topics: Vec<Arc<str>>,
    policy: ReleasePolicy,
    pacing: Pacing,
    /// Wall-clock instant and log time of the first message.
    origin: Option<(Instant, u64)>,
    pub stats: ReplayStats,
}

impl Replay {
    pub fn new(recording: Recording, policy: ReleasePolicy, pacing: Pacing) -> Self {
        let topics = recording
            .channels
            .iter()
            .map(|c| Arc::from(c.topic.as_str()))
            .collect();
        let channels = recording.channels.iter().map(|_| Channel::New).collect();
        Replay {
            recording,
            channels,
            topics,
            policy,
            pacing,
            origin: None,
            stats: ReplayStats::default(),
        }
    }

    pub fn recording(&self) -> &Recording {
        &self.recording
    }

    fn wait_until(&mut self, log_time: u64) {
        let Pacing::Speed(speed) = self.pacing else {
            return;
        };
        let (start, first) = *self.origin.get_or_insert((Instant::now(), log_time));
        let due = Duration::from_secs_f64(log_time.saturating_sub(first) as f64 / 1e9 / speed);
        let elapsed = start.elapsed();
        if due > elapsed {
            std::thread::sleep(due - elapsed);
        }
    }

    fn drop_one(&mut self, channel: usize) {
        let topic = self.recording.channels[channel].topic.clone();
        *self.stats.dropped.entry(topic).or_default() += 1;
    }
}

impl Source for Replay {
    fn next_sample(&mut self) -> Option<Result<Sample, SourceError>> {
        loop {
            let m = match self.recording.next()? {
                Ok(m) => m,
                Err(e) => return Some(Err(e.into())),
            };
            self.stats.messages += 1;
            self.stats.bytes += m.data.len() as u64;
            self.wait_until(m.log_time);
            let c = m.channel;
            if let Channel::New = self.channels[c] {
                let info = &self.recording.channels[c];
                match TopicDecoder::new(
                    &info.topic,
                    &info.type_name,
                    &info.encoding,
                    info.schema.as_deref(),
                    self.policy,
                ) {
                    Ok(d) => self.channels[c] = Channel::Ready(Box::new(d)),
                    Err(error) => {
                        self.channels[c] = Channel::Failed;
                        self.drop_one(c);
                        return Some(Err(SourceError::Decode {
                            log_time: m.log_time,
                            error,
                        }));
                    }
                }
            }
            let result = match &mut self.channels[c] {
                Channel::Ready(d) => d.record(&m.data),
                // Reported when the channel failed; counted from then on.
                Channel::Failed | Channel::New => {
                    self.drop_one(c);
                    continue;
                }
            };
            return Some(match result {
                Ok(record) => {
                    self.stats.decoded += 1;
                    Ok(Sample {
                        log_time: m.log_time,
                        topic: self.topics[c].clone(),
                        record,
                    })
                }
                Err(error) => {
                    self.drop_one(c);
                    Err(SourceError::Decode {
                        log_time: m.log_time,
                        error,
                    })
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacing_parses() {
        assert_eq!("max".parse::<Pacing>(), Ok(Pacing::Max));
        assert_eq!("1".parse::<Pacing>(), Ok(Pacing::Speed(1.0)));
        assert_eq!("10x".parse::<Pacing>(), Ok(Pacing::Speed(10.0)));
        assert!("0".parse::<Pacing>().is_err());
        assert!("fast".parse::<Pacing>().is_err());
    }
}
