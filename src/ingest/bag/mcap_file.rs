//! Reading one rosbag2 MCAP file in log-time order.
//!
//! The file is memory-mapped. With a summary section (every completed rosbag2 recording has one)
//! messages are read through the chunk indexes in log-time order, even when chunks overlap; each
//! chunk's `uncompressed_crc` is checked (the indexed reader of the `mcap` crate does not), so a
//! corrupt chunk is an error, never garbage. Without a summary (a recording that was cut off) the
//! file is streamed in file order with CRC checks, and a message out of log-time order is
//! reported once.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use mcap::sans_io::decompressor::{DecompressResult, Decompressor};
use mcap::sans_io::{IndexedReadEvent, IndexedReader};

use super::{BagError, ChannelInfo, RawMessage};

/// Decompresses a whole chunk at once and records the CRC of the output for the caller to check.
struct CrcDecompressor {
    name: &'static str,
    crc: Arc<Mutex<Option<u32>>>,
}

impl Decompressor for CrcDecompressor {
    fn next_read_size(&self) -> usize {
        0
    }

    fn decompress(&mut self, src: &[u8], dst: &mut [u8]) -> mcap::McapResult<DecompressResult> {
        let err =
            |e: String| mcap::McapError::DecompressionError(format!("{} chunk: {e}", self.name));
        let wrote = match self.name {
            "zstd" => zstd::bulk::decompress_to_buffer(src, dst).map_err(|e| err(e.to_string()))?,
            _ => {
                use std::io::Read;
                let mut decoder = lz4::Decoder::new(src).map_err(|e| err(e.to_string()))?;
                let mut n = 0;
                while n < dst.len() {
                    match decoder.read(&mut dst[n..]) {
                        Ok(0) => break,
                        Ok(k) => n += k,
                        Err(e) => return Err(err(e.to_string())),
                    }
                }
                n
            }
        };
        if wrote != dst.len() {
            return Err(err(format!(
                "decompressed to {wrote} bytes, expected {}",
                dst.len()
            )));
        }
        if let Ok(mut c) = self.crc.lock() {
            *c = Some(crc32fast::hash(dst));
        }
        Ok(DecompressResult {
            consumed: src.len(),
            wrote,
        })
    }

    fn reset(&mut self) -> mcap::McapResult<()> {
        Ok(())
    }

    fn name(&self) -> &'static str {
        self.name
    }
}

enum Mode {
    Indexed {
        reader: Box<IndexedReader>,
        /// compressed data offset -> (chunk start offset, saved uncompressed CRC).
        chunks: HashMap<u64, (u64, u32)>,
        crc: Arc<Mutex<Option<u32>>>,
    },
    /// No summary: file order. Holds the messages read so far (the linear reader borrows the map).
    Linear {
        messages: std::vec::IntoIter<Result<RawMessage, BagError>>,
    },
}

/// One MCAP file.
pub struct McapFile {
    path: String,
    map: memmap2::Mmap,
    mode: Mode,
    pub channels: Vec<ChannelInfo>,
    /// MCAP channel id -> index in `channels`.
    ids: HashMap<u16, usize>,
    /// Message counts per channel index, from the summary statistics when present.
    pub counts: Option<Vec<u64>>,
    /// Metadata records (name -> key/value) from the summary.
    pub metadata: Vec<(String, std::collections::BTreeMap<String, String>)>,
}

fn mcap_err(path: &str, e: impl std::fmt::Display) -> BagError {
    BagError::Mcap {
        path: path.to_string(),
        message: e.to_string(),
    }
}

impl McapFile {
    pub fn open(path: &Path) -> Result<Self, BagError> {
        let p = path.display().to_string();
        let file = std::fs::File::open(path).map_err(|source| BagError::Io {
            path: p.clone(),
            source,
        })?;
        // SAFETY: the recording is not modified while it is read; a concurrent truncation by
        // another process would surface as SIGBUS, which rosbag2 tooling also accepts.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|source| BagError::Io {
            path: p.clone(),
            source,
        })?;
        if map.len() < 8 || &map[..8] != mcap::MAGIC {
            return Err(mcap_err(&p, "not an MCAP file (bad magic)"));
        }
        let summary = mcap::Summary::read(&map).map_err(|e| mcap_err(&p, e))?;
        let mut f = McapFile {
            path: p.clone(),
            mode: Mode::Linear {
                messages: Vec::new().into_iter(),
            },
            map,
            channels: Vec::new(),
            ids: HashMap::new(),
            counts: None,
            metadata: Vec::new(),
        };
        match summary {
            Some(summary) if !summary.chunk_indexes.is_empty() || summary.stats.is_some() => {
                let mut ids: Vec<&u16> = summary.channels.keys().collect();
                ids.sort();
                for id in ids {
                    let ch = &summary.channels[id];
                    f.add_channel(*id, ch);
                }
                if let Some(stats) = &summary.stats {
                    let mut counts = vec![0; f.channels.len()];
                    for (id, n) in &stats.channel_message_counts {
                        if let Some(&i) = f.ids.get(id) {
                            counts[i] = *n;
                        }
                    }
                    f.counts = Some(counts);
                }
                for idx in &summary.metadata_indexes {
                    if let Ok(m) = mcap::read::metadata(&f.map, idx) {
                        f.metadata.push((m.name, m.metadata));
                    }
                }
                let mut chunks = HashMap::new();
                for c in &summary.chunk_indexes {
                    let data = c.compressed_data_offset().map_err(|e| mcap_err(&p, e))?;
                    let crc_at = c.chunk_start_offset as usize + 1 + 8 + 8 + 8 + 8;
                    let crc = f
                        .map
                        .get(crc_at..crc_at + 4)
                        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .ok_or_else(|| {
                            mcap_err(&p, "chunk index points past the end of the file")
                        })?;
                    chunks.insert(data, (c.chunk_start_offset, crc));
                }
                let crc = Arc::new(Mutex::new(None));
                let mut reader = IndexedReader::new(&summary).map_err(|e| mcap_err(&p, e))?;
                for name in ["zstd", "lz4"] {
                    reader
                        .add_decompressor(CrcDecompressor {
                            name,
                            crc: crc.clone(),
                        })
                        .map_err(|e| mcap_err(&p, e))?;
                }
                f.mode = Mode::Indexed {
                    reader: Box::new(reader),
                    chunks,
                    crc,
                };
            }
            _ => f.read_linear()?,
        }
        Ok(f)
    }

    fn add_channel(&mut self, id: u16, ch: &mcap::Channel<'_>) -> usize {
        let i = self.channels.len();
        self.channels.push(channel_info(ch));
        self.ids.insert(id, i);
        i
    }

    /// Reads a file without a summary in file order, with chunk CRCs checked.
    fn read_linear(&mut self) -> Result<(), BagError> {
        let (channels, ids, messages) = read_linear(&self.path, &self.map)?;
        self.channels = channels;
        self.ids = ids;
        self.mode = Mode::Linear {
            messages: messages.into_iter(),
        };
        Ok(())
    }

    /// The next message in log-time order.
    pub fn next_message(&mut self) -> Option<Result<RawMessage, BagError>> {
        let path = &self.path;
        match &mut self.mode {
            Mode::Linear { messages } => messages.next(),
            Mode::Indexed {
                reader,
                chunks,
                crc,
            } => loop {
                match reader.next_event()? {
                    Err(e) => return Some(Err(mcap_err(path, e))),
                    Ok(IndexedReadEvent::Message { header, data }) => {
                        let Some(&channel) = self.ids.get(&header.channel_id) else {
                            return Some(Err(mcap_err(
                                path,
                                format!("message on unknown channel {}", header.channel_id),
                            )));
                        };
                        return Some(Ok(RawMessage {
                            log_time: header.log_time,
                            channel,
                            data: data.to_vec(),
                        }));
                    }
                    Ok(IndexedReadEvent::ReadChunkRequest { offset, length }) => {
                        let Some(bytes) = self.map.get(offset as usize..offset as usize + length)
                        else {
                            return Some(Err(mcap_err(
                                path,
                                format!(
                                    "chunk at offset {offset} extends past the end of the file"
                                ),
                            )));
                        };
                        if let Ok(mut c) = crc.lock() {
                            *c = None;
                        }
                        if let Err(e) = reader.insert_chunk_record_data(offset, bytes) {
                            let start = chunks.get(&offset).map_or(offset, |c| c.0);
                            return Some(Err(mcap_err(
                                path,
                                format!("chunk at offset {start}: {e}"),
                            )));
                        }
                        let computed = crc
                            .lock()
                            .ok()
                            .and_then(|c| *c)
                            .unwrap_or_else(|| crc32fast::hash(bytes));
                        if let Some(&(start, saved)) = chunks.get(&offset)
                            && saved != 0
                            && saved != computed
                        {
                            return Some(Err(mcap_err(
                                path,
                                format!(
                                    "chunk at offset {start}: CRC mismatch (saved {saved:08x}, computed {computed:08x}): the file is corrupt"
                                ),
                            )));
                        }
                    }
                }
            },
        }
    }
}

fn channel_info(ch: &mcap::Channel<'_>) -> ChannelInfo {
    let (type_name, schema) = match &ch.schema {
        Some(s) if s.encoding == "ros2msg" => (
            s.name.clone(),
            Some(String::from_utf8_lossy(&s.data).into_owned()),
        ),
        Some(s) => (s.name.clone(), None),
        None => (String::new(), None),
    };
    ChannelInfo {
        topic: ch.topic.clone(),
        type_name,
        encoding: ch.message_encoding.clone(),
        schema,
        qos: ch.metadata.get("offered_qos_profiles").cloned(),
    }
}

type Linear = (
    Vec<ChannelInfo>,
    HashMap<u16, usize>,
    Vec<Result<RawMessage, BagError>>,
);

/// Streams a file in file order (no summary to order it by), keeping what precedes a cut-off end.
fn read_linear(path: &str, map: &[u8]) -> Result<Linear, BagError> {
    let mut channels = Vec::new();
    let mut ids: HashMap<u16, usize> = HashMap::new();
    let mut out = Vec::new();
    let mut warned = false;
    let mut last = 0u64;
    let stream =
        mcap::MessageStream::new_with_options(map, mcap::read::Options::IgnoreEndMagic.into())
            .map_err(|e| mcap_err(path, e))?;
    for m in stream {
        match m {
            Ok(m) => {
                let channel = *ids.entry(m.channel.id).or_insert_with(|| {
                    channels.push(channel_info(&m.channel));
                    channels.len() - 1
                });
                if m.log_time < last && !warned {
                    tracing::warn!(
                        path,
                        "MCAP file has no index and is not in log-time order: replaying in file order"
                    );
                    warned = true;
                }
                last = last.max(m.log_time);
                out.push(Ok(RawMessage {
                    log_time: m.log_time,
                    channel,
                    data: m.data.into_owned(),
                }));
            }
            Err(mcap::McapError::UnexpectedEof | mcap::McapError::UnexpectedEoc) => {
                tracing::warn!(
                    path,
                    "MCAP file ends with a partial record (recording cut off): replaying what precedes it"
                );
                break;
            }
            Err(e) => {
                out.push(Err(mcap_err(path, e)));
                break;
            }
        }
    }
    Ok((channels, ids, out))
}
