//! `rmf-dash trace info`: what a recording holds: storage, duration, topics with their types,
//! message counts and rates, the RMF layout (from the schema, or detected from the payloads), and
//! the generator's metadata (scenario injections) when present.

use std::collections::BTreeMap;

use serde::Serialize;

use super::TraceError;
use crate::ingest::bag::Recording;
use crate::ingest::builtin;
use crate::ingest::decode::{ReleasePolicy, TopicDecoder};
use crate::ingest::ros2msg::normalize_type_name;
use crate::progress::Progress;

#[derive(Debug, Serialize, PartialEq)]
pub struct TopicInfo {
    pub topic: String,
    #[serde(rename = "type")]
    pub type_name: String,
    pub count: u64,
    /// Messages per second over the recording's duration.
    pub rate: f64,
    pub bytes: u64,
    pub has_schema: bool,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Info {
    pub path: String,
    pub storage: String,
    pub messages: u64,
    pub bytes: u64,
    pub start_ns: Option<u64>,
    pub end_ns: Option<u64>,
    pub duration_s: f64,
    /// `jazzy` or `kilted` when a release-dependent topic says which; `ambiguous` when its
    /// payloads fit both; absent when there is no such topic.
    pub layout: Option<String>,
    pub layout_source: Option<String>,
    pub topics: Vec<TopicInfo>,
    pub metadata: BTreeMap<String, BTreeMap<String, String>>,
}

pub fn run(path: &str) -> Result<Info, TraceError> {
    let mut rec = Recording::open(path)?;
    let channels = rec.channels.clone();
    let mut counts = vec![0u64; channels.len()];
    let mut bytes = vec![0u64; channels.len()];
    let (mut start, mut end) = (None::<u64>, None::<u64>);
    // Release-dependent topics without a schema: detect from the payloads.
    let mut detect: Vec<Option<TopicDecoder>> = channels
        .iter()
        .map(|c| {
            let t = normalize_type_name(&c.type_name).ok()?;
            builtin::depends_on_release(&t).then(|| {
                TopicDecoder::new(
                    &c.topic,
                    &c.type_name,
                    &c.encoding,
                    c.schema.as_deref(),
                    ReleasePolicy::default(),
                )
                .ok()
            })?
        })
        .collect();
    let mut progress = Progress::new(
        format!("scanning {path}"),
        rec.counts.as_ref().map(|c| c.iter().sum()),
    );
    for m in &mut rec {
        let m = m?;
        counts[m.channel] += 1;
        bytes[m.channel] += m.data.len() as u64;
        start = Some(start.map_or(m.log_time, |s| s.min(m.log_time)));
        end = Some(end.map_or(m.log_time, |e| e.max(m.log_time)));
        if let Some(d) = &mut detect[m.channel]
            && d.release().is_none()
        {
            // Errors show in `trace dump`; here only the layout matters.
            let _ = d.record(&m.data);
        }
        progress.inc(1);
    }
    progress.clear();
    let duration_s = match (start, end) {
        (Some(s), Some(e)) => (e - s) as f64 / 1e9,
        _ => 0.0,
    };
    let mut layout = None;
    let mut layout_source = None;
    for (i, d) in detect.iter().enumerate() {
        let Some(d) = d else { continue };
        let c = &channels[i];
        let how = if c.schema.is_some() {
            "schema"
        } else {
            "payloads"
        };
        match d.release() {
            Some(r) => {
                layout = Some(r.to_string());
                layout_source = Some(format!("{} ({how})", c.topic));
                break;
            }
            None if counts[i] > 0 => {
                layout = Some("ambiguous".to_string());
                layout_source = Some(format!("{} (payloads fit both layouts)", c.topic));
            }
            None => {}
        }
    }
    let rate = |n: u64| {
        if duration_s > 0.0 {
            n as f64 / duration_s
        } else {
            0.0
        }
    };
    let topics = channels
        .iter()
        .enumerate()
        .map(|(i, c)| TopicInfo {
            topic: c.topic.clone(),
            type_name: c.type_name.clone(),
            count: counts[i],
            rate: (rate(counts[i]) * 1000.0).round() / 1000.0,
            bytes: bytes[i],
            has_schema: c.schema.is_some(),
        })
        .collect();
    Ok(Info {
        path: rec.path.clone(),
        storage: rec.storage.to_string(),
        messages: counts.iter().sum(),
        bytes: bytes.iter().sum(),
        start_ns: start,
        end_ns: end,
        duration_s,
        layout,
        layout_source,
        topics,
        metadata: rec.metadata.iter().cloned().collect(),
    })
}

impl std::fmt::Display for Info {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "recording: {} ({})", self.path, self.storage)?;
        writeln!(
            f,
            "messages:  {} ({:.1} MB of payload) over {:.3} s",
            self.messages,
            self.bytes as f64 / 1e6,
            self.duration_s
        )?;
        if let (Some(s), Some(e)) = (self.start_ns, self.end_ns) {
            writeln!(f, "log time:  {s} .. {e} ns")?;
        }
        match (&self.layout, &self.layout_source) {
            (Some(l), Some(s)) => writeln!(f, "layout:    {l} (from {s})")?,
            _ => writeln!(f, "layout:    n/a (no release-dependent topic)")?,
        }
        let w = self
            .topics
            .iter()
            .map(|t| t.topic.len())
            .max()
            .unwrap_or(5)
            .max(5);
        let tw = self
            .topics
            .iter()
            .map(|t| t.type_name.len())
            .max()
            .unwrap_or(4)
            .max(4);
        writeln!(
            f,
            "{:<w$}  {:<tw$}  {:>10}  {:>10}  {:>12}",
            "topic", "type", "count", "rate/s", "bytes"
        )?;
        for t in &self.topics {
            writeln!(
                f,
                "{:<w$}  {:<tw$}  {:>10}  {:>10.2}  {:>12}",
                t.topic, t.type_name, t.count, t.rate, t.bytes
            )?;
        }
        for (name, kv) in &self.metadata {
            writeln!(f, "metadata {name}:")?;
            for (k, v) in kv {
                match v.lines().count() {
                    0 | 1 => writeln!(f, "  {k}: {v}")?,
                    n => writeln!(f, "  {k}: ({n} lines; see --json)")?,
                }
            }
        }
        Ok(())
    }
}
