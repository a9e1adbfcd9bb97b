//! Recorded traces: rosbag2 recordings (MCAP files, sqlite3 `.db3` files, or a bag folder with
//! `metadata.yaml` and possibly several split files), read as one stream of raw messages in
//! log-time order.

mod mcap_file;
mod sqlite_file;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

use mcap_file::McapFile;
use sqlite_file::SqliteFile;

#[derive(Debug, Error)]
pub enum BagError {
    #[error("{path}: no such file or directory")]
    NotFound { path: String },
    #[error("{path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: MCAP: {message}")]
    Mcap { path: String, message: String },
    #[error("{path}: sqlite3: {message}")]
    Sqlite { path: String, message: String },
    #[error("{path}: {message}")]
    Bag { path: String, message: String },
}

/// A topic of a recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelInfo {
    /// As recorded (usually absolute, `/door_states`).
    pub topic: String,
    /// `pkg/msg/Type`.
    pub type_name: String,
    /// Message encoding (`cdr`).
    pub encoding: String,
    /// The `ros2msg` schema text, when the recording carries one.
    pub schema: Option<String>,
    /// rosbag2's `offered_qos_profiles` (YAML text), when recorded.
    pub qos: Option<String>,
}

/// One serialized message; `channel` indexes [`Recording::channels`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMessage {
    /// Receive time in ns.
    pub log_time: u64,
    pub channel: usize,
    pub data: Vec<u8>,
}

enum File {
    Mcap(Box<McapFile>),
    Sqlite(Box<SqliteFile>),
}

impl File {
    fn open(path: &Path) -> Result<Self, BagError> {
        let is_db3 = path.extension().is_some_and(|e| e == "db3");
        if is_db3 {
            return Ok(File::Sqlite(Box::new(SqliteFile::open(path)?)));
        }
        let mut magic = [0u8; 16];
        let n = {
            use std::io::Read;
            let mut f = std::fs::File::open(path).map_err(|source| BagError::Io {
                path: path.display().to_string(),
                source,
            })?;
            f.read(&mut magic).unwrap_or(0)
        };
        if magic[..n].starts_with(b"SQLite format 3") {
            Ok(File::Sqlite(Box::new(SqliteFile::open(path)?)))
        } else {
            Ok(File::Mcap(Box::new(McapFile::open(path)?)))
        }
    }

    fn channels(&self) -> &[ChannelInfo] {
        match self {
            File::Mcap(f) => &f.channels,
            File::Sqlite(f) => &f.channels,
        }
    }

    fn counts(&self) -> Option<Vec<u64>> {
        match self {
            File::Mcap(f) => f.counts.clone(),
            File::Sqlite(f) => Some(f.counts.clone()),
        }
    }

    fn next_message(&mut self) -> Option<Result<RawMessage, BagError>> {
        match self {
            File::Mcap(f) => f.next_message(),
            File::Sqlite(f) => f.next_message(),
        }
    }
}

#[derive(Deserialize)]
struct Metadata {
    rosbag2_bagfile_information: BagInfo,
}

#[derive(Deserialize)]
struct BagInfo {
    #[serde(default)]
    relative_file_paths: Vec<String>,
    #[serde(default)]
    compression_mode: String,
    #[serde(default)]
    compression_format: String,
}

/// A whole recording, read in log-time order across its files.
pub struct Recording {
    pub path: String,
    /// Storage of the files (`mcap` or `sqlite3`; `mixed` if a folder holds both).
    pub storage: &'static str,
    pub channels: Vec<ChannelInfo>,
    /// Message count per channel, when the files say so without a scan.
    pub counts: Option<Vec<u64>>,
    /// MCAP metadata records (name, key/values).
    pub metadata: Vec<(String, BTreeMap<String, String>)>,
    files: Vec<(File, Vec<usize>)>,
    /// The next message of each file, ordered by (log_time, file).
    heads: BinaryHeap<Reverse<(u64, usize)>>,
    pending: Vec<Option<RawMessage>>,
    started: bool,
}

impl Recording {
    /// Opens an `.mcap` file, a `.db3` file, or a rosbag2 folder.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, BagError> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        if !path.exists() {
            return Err(BagError::NotFound { path: shown });
        }
        let paths = if path.is_dir() {
            folder_files(path)?
        } else {
            vec![path.to_path_buf()]
        };
        let mut rec = Recording {
            path: shown,
            storage: "mcap",
            channels: Vec::new(),
            counts: Some(Vec::new()),
            metadata: Vec::new(),
            files: Vec::new(),
            heads: BinaryHeap::new(),
            pending: Vec::new(),
            started: false,
        };
        let mut kinds = Vec::new();
        for p in paths {
            let file = File::open(&p)?;
            kinds.push(matches!(file, File::Sqlite(_)));
            if let File::Mcap(m) = &file {
                rec.metadata.extend(m.metadata.iter().cloned());
            }
            let file_counts = file.counts();
            let mut map = Vec::new();
            for (i, ch) in file.channels().iter().enumerate() {
                let global = match rec
                    .channels
                    .iter()
                    .position(|c| c.topic == ch.topic && c.type_name == ch.type_name)
                {
                    Some(g) => g,
                    None => {
                        rec.channels.push(ch.clone());
                        if let Some(c) = &mut rec.counts {
                            c.push(0);
                        }
                        rec.channels.len() - 1
                    }
                };
                if let (Some(total), Some(fc)) = (&mut rec.counts, &file_counts) {
                    total[global] += fc.get(i).copied().unwrap_or(0);
                }
                map.push(global);
            }
            if file_counts.is_none() {
                rec.counts = None;
            }
            rec.files.push((file, map));
        }
        rec.storage = match (kinds.iter().all(|k| *k), kinds.iter().any(|k| *k)) {
            (true, _) => "sqlite3",
            (false, true) => "mixed",
            _ => "mcap",
        };
        rec.pending = (0..rec.files.len()).map(|_| None).collect();
        Ok(rec)
    }

    fn pull(&mut self, file: usize) -> Result<(), BagError> {
        let (f, map) = &mut self.files[file];
        if let Some(m) = f.next_message() {
            let mut m = m?;
            m.channel = map.get(m.channel).copied().unwrap_or(m.channel);
            self.heads.push(Reverse((m.log_time, file)));
            self.pending[file] = Some(m);
        }
        Ok(())
    }
}

impl Iterator for Recording {
    type Item = Result<RawMessage, BagError>;

    fn next(&mut self) -> Option<Self::Item> {
        if !self.started {
            self.started = true;
            for i in 0..self.files.len() {
                if let Err(e) = self.pull(i) {
                    return Some(Err(e));
                }
            }
        }
        let Reverse((_, file)) = self.heads.pop()?;
        let m = self.pending[file].take()?;
        if let Err(e) = self.pull(file) {
            return Some(Err(e));
        }
        Some(Ok(m))
    }
}

/// The files of a rosbag2 folder: from `metadata.yaml` when present, else every `.mcap`/`.db3`.
fn folder_files(dir: &Path) -> Result<Vec<PathBuf>, BagError> {
    let shown = dir.display().to_string();
    let meta = dir.join("metadata.yaml");
    let files: Vec<PathBuf> = if meta.exists() {
        let text = std::fs::read_to_string(&meta).map_err(|source| BagError::Io {
            path: meta.display().to_string(),
            source,
        })?;
        let m: Metadata = serde_yaml::from_str(&text).map_err(|e| BagError::Bag {
            path: meta.display().to_string(),
            message: format!("not a rosbag2 metadata file: {e}"),
        })?;
        let info = m.rosbag2_bagfile_information;
        if !info.compression_mode.is_empty() && info.compression_mode != "NONE" {
            return Err(BagError::Bag {
                path: shown,
                message: format!(
                    "compressed bags ({} {}) are not supported; decompress with `ros2 bag convert` or record to MCAP with chunk compression",
                    info.compression_mode, info.compression_format
                ),
            });
        }
        info.relative_file_paths
            .iter()
            .map(|p| dir.join(p))
            .collect()
    } else {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|source| BagError::Io {
                path: shown.clone(),
                source,
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "mcap" || e == "db3"))
            .collect();
        v.sort();
        v
    };
    if files.is_empty() {
        return Err(BagError::Bag {
            path: shown,
            message: "folder holds no .mcap or .db3 file".into(),
        });
    }
    for f in &files {
        if !f.exists() {
            return Err(BagError::NotFound {
                path: f.display().to_string(),
            });
        }
    }
    Ok(files)
}
