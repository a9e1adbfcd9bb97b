//! `rmf-dash trace dump`: every message of a recording, decoded, as one JSON object per line:
//! `{"log_time": <ns>, "topic": "<as recorded>", "type": "<pkg/msg/Type>", "message": {...}}`.
//! `message` has the `.msg` field names (generic decoding, so any type works); byte arrays longer
//! than 64 elements are summarised as `{"len": N, "crc32": "<hex>"}` unless `--full-bytes`.
//! This format is a contract other tools read.

use std::collections::BTreeSet;
use std::io::Write;

use serde::Serialize;

use super::TraceError;
use crate::ingest::bag::Recording;
use crate::ingest::cdr::generic::Bytes;
use crate::ingest::decode::{ReleasePolicy, TopicDecoder};

#[derive(Debug, Clone)]
pub struct DumpOptions {
    /// Only these topics (as recorded, or without the leading `/`); all when empty.
    pub topics: Vec<String>,
    /// Stop after this many messages.
    pub limit: Option<u64>,
    pub full_bytes: bool,
    pub policy: ReleasePolicy,
}

#[derive(Serialize)]
struct Line<'a> {
    log_time: u64,
    topic: &'a str,
    #[serde(rename = "type")]
    type_name: &'a str,
    message: serde_json::Value,
}

/// Outcome of a dump: how many lines were written and how many messages failed to decode.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct DumpSummary {
    pub written: u64,
    pub failed: u64,
}

pub fn run(
    path: &str,
    opts: &DumpOptions,
    out: &mut impl Write,
) -> Result<DumpSummary, TraceError> {
    let mut rec = Recording::open(path)?;
    let wanted: BTreeSet<&str> = opts
        .topics
        .iter()
        .map(|t| t.trim_start_matches('/'))
        .collect();
    let selected: Vec<bool> = rec
        .channels
        .iter()
        .map(|c| wanted.is_empty() || wanted.contains(c.topic.trim_start_matches('/')))
        .collect();
    if !wanted.is_empty() && !selected.iter().any(|s| *s) {
        let known: Vec<&str> = rec.channels.iter().map(|c| c.topic.as_str()).collect();
        return Err(TraceError::Usage(format!(
            "no topic {:?} in {path}; topics: {}",
            opts.topics,
            known.join(", ")
        )));
    }
    let mut decoders: Vec<Option<Result<TopicDecoder, String>>> =
        rec.channels.iter().map(|_| None).collect();
    let mut reported = vec![false; rec.channels.len()];
    let bytes = if opts.full_bytes {
        Bytes::Array
    } else {
        Bytes::Summary
    };
    let mut summary = DumpSummary::default();
    let channels = rec.channels.clone();
    for m in &mut rec {
        let m = m?;
        if !selected[m.channel] {
            continue;
        }
        if opts.limit.is_some_and(|l| summary.written >= l) {
            break;
        }
        let info = &channels[m.channel];
        let decoder = decoders[m.channel].get_or_insert_with(|| {
            TopicDecoder::new(
                &info.topic,
                &info.type_name,
                &info.encoding,
                info.schema.as_deref(),
                opts.policy,
            )
            .map_err(|e| e.to_string())
        });
        let value = match decoder {
            Ok(d) => d.value(&m.data, bytes).map_err(|e| e.to_string()),
            // Reported with the topic's first message; later ones are only counted.
            Err(e) if !reported[m.channel] => {
                reported[m.channel] = true;
                Err(e.clone())
            }
            Err(_) => {
                summary.failed += 1;
                continue;
            }
        };
        match value {
            Ok(message) => {
                let line = Line {
                    log_time: m.log_time,
                    topic: &info.topic,
                    type_name: &info.type_name,
                    message,
                };
                serde_json::to_writer(&mut *out, &line).map_err(std::io::Error::from)?;
                out.write_all(b"\n")?;
                summary.written += 1;
            }
            Err(e) => {
                summary.failed += 1;
                tracing::warn!(log_time = m.log_time, "dropped: {e}");
            }
        }
    }
    out.flush()?;
    Ok(summary)
}
