//! Rooms of entities that ended leave memory (DESIGN.md invariant 10): the hub's half of the
//! engine's eviction of ended tasks (`--ended-task-retention`, `src/engine/worker.rs`).
//!
//! - A *retiring* room is a state room whose value is only ever replaced while its entity lives:
//!   a task's state (`/tasks/{id}/state`). The engine retracts it alone only when it evicts the
//!   ended task, so such a retraction is not a change: it is not delivered (a dashboard showing
//!   the task keeps its final state) and the room retires: it leaves the hub at once when nobody
//!   follows it, else when its last subscriber leaves. Its companion stream rooms (the task's
//!   log, `/tasks/{id}/log`) leave with it when nobody follows them (their events are in the
//!   store).
//! - A retired room's final value goes to the [`Archive`]: a bounded memory of the last retired
//!   values, oldest out first (`--archived-rooms`), so that a subscriber or a read soon after
//!   still finds it without a store. A room asked for that is neither held nor archived is
//!   recalled from the store by the caller (REST and socket.io, [`super::Hub::revive`]), or
//!   answered as evicted without one.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use futures_util::future::BoxFuture;
use rmf_dash_dataflows::prelude::Time;

use super::Raw;

/// Default of `--archived-rooms`: the final values of retired rooms kept in memory (a task's
/// state is a few KB: about 30 MB).
pub const DEFAULT_ARCHIVED_ROOMS: usize = 10_000;

/// Retiring rooms: (prefix, suffix) of the room, and the suffixes of its companion stream rooms
/// (same entity segment).
const RETIRING: [(&str, &str, &[&str]); 1] = [("/tasks/", "/state", &["/log"])];

/// The companion rooms of `room` when it is a retiring room (`None` otherwise).
pub(super) fn companions(room: &str) -> Option<Vec<String>> {
    RETIRING.iter().find_map(|(prefix, suffix, others)| {
        let entity = room.strip_prefix(prefix)?.strip_suffix(suffix)?;
        (!entity.is_empty() && !entity.contains('/')).then(|| {
            others
                .iter()
                .map(|o| format!("{prefix}{entity}{o}"))
                .collect()
        })
    })
}

/// Where the final values of retired rooms are read back from (the store).
pub trait Recall: Send + Sync {
    /// The last stored value of the retiring room `room` and its logical time; `None` when the
    /// store has none (or cannot answer: said in its log).
    fn recall<'a>(&'a self, room: &'a str) -> BoxFuture<'a, Option<(Time, Raw)>>;
}

/// The task of a task's state room.
pub fn task_of_state_room(room: &str) -> Option<&str> {
    room.strip_prefix("/tasks/")?
        .strip_suffix("/state")
        .filter(|t| !t.is_empty() && !t.contains('/'))
}

/// Whether `room` is a retiring room.
pub fn retiring(room: &str) -> bool {
    companions(room).is_some()
}

/// A retired room's final value.
#[derive(Debug, Clone)]
pub struct Archived {
    pub seq: u64,
    pub t: Time,
    pub value: Raw,
}

/// The final values of the last `max` retired rooms, oldest out first.
#[derive(Debug, Default)]
pub(super) struct Archive {
    max: usize,
    values: HashMap<Arc<str>, Archived>,
    /// Rooms in the order they were archived (an entry whose room was taken back or archived
    /// again since is skipped when it comes out).
    order: VecDeque<(Arc<str>, u64)>,
}

impl Archive {
    pub fn new(max: usize) -> Archive {
        Archive {
            max,
            ..Archive::default()
        }
    }

    pub fn put(&mut self, room: Arc<str>, archived: Archived) {
        if self.max == 0 {
            return;
        }
        self.order.push_back((room.clone(), archived.seq));
        self.values.insert(room, archived);
        while self.values.len() > self.max {
            let Some((room, seq)) = self.order.pop_front() else {
                break;
            };
            if self.values.get(&room).is_some_and(|a| a.seq == seq) {
                self.values.remove(&room);
            }
        }
        // Stale entries (rooms taken back) are dropped when they outnumber the live ones.
        if self.order.len() > 2 * self.max.max(self.values.len()) {
            let values = &self.values;
            self.order
                .retain(|(r, s)| values.get(r).is_some_and(|a| a.seq == *s));
        }
    }

    /// Takes `room`'s archived value (it goes back into the hub).
    pub fn take(&mut self, room: &str) -> Option<Archived> {
        self.values.remove(room)
    }

    pub fn get(&self, room: &str) -> Option<&Archived> {
        self.values.get(room)
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(seq: u64) -> Archived {
        Archived {
            seq,
            t: seq,
            value: super::super::raw("{}"),
        }
    }

    #[test]
    fn task_state_rooms_retire_with_their_log() {
        assert_eq!(
            companions("/tasks/t1/state"),
            Some(vec!["/tasks/t1/log".to_string()])
        );
        assert_eq!(companions("/tasks//state"), None);
        assert_eq!(companions("/tasks/a/b/state"), None);
        assert_eq!(companions("/doors/d/state"), None);
        assert!(!retiring("/tasks/t1/log"));
    }

    #[test]
    fn the_archive_keeps_the_last_max_rooms() {
        let mut archive = Archive::new(2);
        archive.put("/a".into(), a(1));
        archive.put("/b".into(), a(2));
        assert!(archive.take("/a").is_some());
        archive.put("/c".into(), a(3));
        archive.put("/a".into(), a(4));
        assert_eq!(archive.len(), 2);
        assert!(archive.get("/b").is_none(), "the oldest went out");
        assert_eq!(archive.get("/a").map(|x| x.seq), Some(4));
        for i in 0..100 {
            archive.put(format!("/x{i}").into(), a(10 + i));
        }
        assert_eq!(archive.len(), 2);
        assert!(archive.order.len() <= 4);
        assert!(Archive::new(0).get("/a").is_none());
    }
}
