//! The original requests of the tasks dispatched through rmf-dash (rmf-web's `TaskRequest`,
//! served by `GET /tasks/requests` and `GET /tasks/{task_id}/request`): in the store's
//! `task_requests` table (`migrations/0005_task_requests.sql`), or, without a store, in memory for
//! the life of the process (the latest [`MEMORY_LIMIT`], the oldest forgotten first).
//!
//! A request is kept by the dispatch handler before it answers and before the task's state is
//! fed to the engine: any room or route that names the task after that can be followed by a read
//! of its request (DESIGN.md invariant 9).

use std::collections::{HashMap, VecDeque};

use serde_json::value::RawValue;

use super::{SharedClient, StoreError};

/// Requests kept in memory without a store.
pub const MEMORY_LIMIT: usize = 100_000;

/// Where the requests live.
pub enum TaskRequests {
    Store(SharedClient),
    Memory(parking_lot::Mutex<Recent>),
}

/// The latest requests, by task id, in the order they came.
#[derive(Default)]
pub struct Recent {
    by_id: HashMap<String, Box<RawValue>>,
    order: VecDeque<String>,
}

impl TaskRequests {
    pub fn memory() -> Self {
        TaskRequests::Memory(parking_lot::Mutex::new(Recent::default()))
    }

    /// Keeps `request` (JSON text) as the request of `task_id` (replacing an earlier one).
    pub async fn put(
        &self,
        task_id: &str,
        request: &RawValue,
        requester: &str,
        unix_ms: i64,
    ) -> Result<(), StoreError> {
        match self {
            TaskRequests::Store(db) => {
                db.get()
                    .await?
                    .execute(
                        "INSERT INTO task_requests \
                         (task_id, request, requester, unix_millis_request_time) \
                         VALUES ($1, $2::text::json, $3, $4) \
                         ON CONFLICT (task_id) DO UPDATE SET request = EXCLUDED.request, \
                         requester = EXCLUDED.requester, \
                         unix_millis_request_time = EXCLUDED.unix_millis_request_time",
                        &[&task_id, &request.get(), &requester, &unix_ms],
                    )
                    .await?;
            }
            TaskRequests::Memory(recent) => recent.lock().put(task_id, request),
        }
        Ok(())
    }

    /// The requests of `task_ids` that are known, in the order of `task_ids` (each once).
    pub async fn get(&self, task_ids: &[String]) -> Result<Vec<Box<RawValue>>, StoreError> {
        let found: HashMap<String, Box<RawValue>> = match self {
            TaskRequests::Store(db) => {
                let rows = db
                    .get()
                    .await?
                    .query(
                        "SELECT task_id, request::text FROM task_requests \
                         WHERE task_id = ANY($1)",
                        &[&task_ids],
                    )
                    .await?;
                rows.iter()
                    .filter_map(|r| {
                        let text: String = r.get(1);
                        Some((r.get(0), RawValue::from_string(text).ok()?))
                    })
                    .collect()
            }
            TaskRequests::Memory(recent) => {
                let recent = recent.lock();
                task_ids
                    .iter()
                    .filter_map(|id| Some((id.clone(), recent.by_id.get(id)?.clone())))
                    .collect()
            }
        };
        let mut seen = std::collections::HashSet::new();
        Ok(task_ids
            .iter()
            .filter(|id| seen.insert(id.as_str()))
            .filter_map(|id| found.get(id).cloned())
            .collect())
    }
}

impl Recent {
    fn put(&mut self, task_id: &str, request: &RawValue) {
        if self
            .by_id
            .insert(task_id.to_string(), request.to_owned())
            .is_none()
        {
            self.order.push_back(task_id.to_string());
        }
        while self.order.len() > MEMORY_LIMIT {
            if let Some(old) = self.order.pop_front() {
                self.by_id.remove(&old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_string()).unwrap_or_else(|_| unreachable!("test JSON"))
    }

    #[tokio::test]
    async fn memory_keeps_requests_in_the_order_asked() {
        let r = TaskRequests::memory();
        r.put("a", &raw(r#"{"category":"patrol","z":1,"a":2}"#), "u", 1)
            .await
            .unwrap_or_default();
        r.put("b", &raw(r#"{"category":"clean"}"#), "u", 2)
            .await
            .unwrap_or_default();
        let got = r
            .get(&["b".into(), "x".into(), "a".into(), "b".into()])
            .await
            .unwrap_or_default();
        let got: Vec<&str> = got.iter().map(|v| v.get()).collect();
        assert_eq!(
            got,
            [
                r#"{"category":"clean"}"#,
                r#"{"category":"patrol","z":1,"a":2}"#
            ]
        );
    }

    #[test]
    fn memory_forgets_the_oldest_beyond_its_limit() {
        let mut recent = Recent::default();
        for i in 0..MEMORY_LIMIT + 3 {
            recent.put(&format!("t{i}"), &raw("{}"));
        }
        assert_eq!(recent.by_id.len(), MEMORY_LIMIT);
        assert!(!recent.by_id.contains_key("t2"));
        assert!(recent.by_id.contains_key("t3"));
    }
}
