//! Reading one rosbag2 sqlite3 (`.db3`) file in log-time order.
//!
//! Tables: `topics(id, name, type, serialization_format, offered_qos_profiles, ...)` and
//! `messages(id, topic_id, timestamp, data)`. Humble stores no message definitions; newer
//! versions may have `message_definitions(topic_type, encoding, encoded_message_definition)`,
//! which is used when it holds `ros2msg` text. Messages are read in pages keyed by
//! `(timestamp, id)`, so memory stays bounded and the `timestamp` index is used.

use std::collections::{HashMap, VecDeque};
use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::{BagError, ChannelInfo, RawMessage};

const PAGE: i64 = 4096;

pub struct SqliteFile {
    path: String,
    conn: Connection,
    pub channels: Vec<ChannelInfo>,
    /// topic id -> index in `channels`.
    ids: HashMap<i64, usize>,
    page: VecDeque<(i64, i64, RawMessage)>,
    /// `(timestamp, id)` of the last message read.
    cursor: Option<(i64, i64)>,
    done: bool,
    pub counts: Vec<u64>,
}

impl SqliteFile {
    pub fn open(path: &Path) -> Result<Self, BagError> {
        let p = path.display().to_string();
        let err = |e: rusqlite::Error| BagError::Sqlite {
            path: p.clone(),
            message: e.to_string(),
        };
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(err)?;
        let has_table = |name: &str| -> Result<bool, rusqlite::Error> {
            conn.query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [name],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n > 0)
        };
        if !has_table("topics").map_err(err)? || !has_table("messages").map_err(err)? {
            return Err(BagError::Sqlite {
                path: p,
                message: "not a rosbag2 sqlite3 file (no topics/messages tables)".into(),
            });
        }
        let mut definitions: HashMap<String, String> = HashMap::new();
        if has_table("message_definitions").map_err(err)? {
            let mut st = conn
                .prepare("SELECT topic_type, encoding, encoded_message_definition FROM message_definitions")
                .map_err(err)?;
            let rows = st
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                })
                .map_err(err)?;
            for row in rows {
                let (ty, enc, def) = row.map_err(err)?;
                if enc == "ros2msg" && !def.trim().is_empty() {
                    definitions.insert(ty, def);
                }
            }
        }
        let qos_column = conn
            .prepare("SELECT offered_qos_profiles FROM topics LIMIT 0")
            .is_ok();
        let sql = if qos_column {
            "SELECT id, name, type, serialization_format, offered_qos_profiles FROM topics ORDER BY id"
        } else {
            "SELECT id, name, type, serialization_format, NULL FROM topics ORDER BY id"
        };
        let mut channels = Vec::new();
        let mut ids = HashMap::new();
        {
            let mut st = conn.prepare(sql).map_err(err)?;
            let rows = st
                .query_map([], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, Option<String>>(4)?,
                    ))
                })
                .map_err(err)?;
            for row in rows {
                let (id, topic, type_name, encoding, qos) = row.map_err(err)?;
                ids.insert(id, channels.len());
                channels.push(ChannelInfo {
                    schema: definitions.get(&type_name).cloned(),
                    topic,
                    type_name,
                    encoding,
                    qos,
                });
            }
        }
        let mut counts = vec![0u64; channels.len()];
        {
            let mut st = conn
                .prepare("SELECT topic_id, count(*) FROM messages GROUP BY topic_id")
                .map_err(err)?;
            let rows = st
                .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
                .map_err(err)?;
            for row in rows {
                let (id, n) = row.map_err(err)?;
                if let Some(&i) = ids.get(&id) {
                    counts[i] = n.max(0) as u64;
                }
            }
        }
        Ok(SqliteFile {
            path: p,
            conn,
            channels,
            ids,
            page: VecDeque::new(),
            cursor: None,
            done: false,
            counts,
        })
    }

    fn fill(&mut self) -> Result<(), BagError> {
        let err = |e: rusqlite::Error| BagError::Sqlite {
            path: self.path.clone(),
            message: e.to_string(),
        };
        let (ts, id) = self.cursor.unwrap_or((i64::MIN, i64::MIN));
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT timestamp, id, topic_id, data FROM messages \
                 WHERE (timestamp, id) > (?1, ?2) ORDER BY timestamp, id LIMIT ?3",
            )
            .map_err(err)?;
        let rows = st
            .query_map([ts, id, PAGE], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                ))
            })
            .map_err(err)?;
        let mut n = 0;
        for row in rows {
            let (ts, id, topic_id, data) = row.map_err(err)?;
            n += 1;
            let Some(&channel) = self.ids.get(&topic_id) else {
                return Err(BagError::Sqlite {
                    path: self.path.clone(),
                    message: format!("message {id} refers to unknown topic id {topic_id}"),
                });
            };
            self.page.push_back((
                ts,
                id,
                RawMessage {
                    log_time: ts.max(0) as u64,
                    channel,
                    data,
                },
            ));
        }
        if n < PAGE {
            self.done = true;
        }
        Ok(())
    }

    pub fn next_message(&mut self) -> Option<Result<RawMessage, BagError>> {
        if self.page.is_empty() && !self.done {
            if let Err(e) = self.fill() {
                self.done = true;
                return Some(Err(e));
            }
        }
        let (ts, id, m) = self.page.pop_front()?;
        self.cursor = Some((ts, id));
        Some(Ok(m))
    }
}
