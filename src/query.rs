//! What a read asks for, in rmf-web's terms: a time window, a page and its order, the filters of
//! `GET /tasks`. Plain data: the REST layer parses it from query strings
//! ([`crate::api::query`]), and both the store ([`crate::store::history`], in SQL) and memory
//! ([`crate::api::read`], over the hub's rooms) answer it, so neither has to import the other.

/// Default page size of a paginated list (rmf-web's).
pub const DEFAULT_LIMIT: usize = 100;
/// Largest page size.
pub const MAX_LIMIT: usize = 1000;

/// A closed window of unix milliseconds (both ends included, as rmf-web's `__gte`/`__lte`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub from: u64,
    pub to: u64,
}

impl Window {
    pub fn contains(&self, t: u64) -> bool {
        self.from <= t && t <= self.to
    }
}

/// One `order_by` item: a field, ascending unless prefixed with `-`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderBy {
    pub field: String,
    pub descending: bool,
}

/// A page of a list and its order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pagination {
    pub limit: usize,
    pub offset: usize,
    pub order_by: Vec<OrderBy>,
}

impl Default for Pagination {
    fn default() -> Self {
        Pagination {
            limit: DEFAULT_LIMIT,
            offset: 0,
            order_by: Vec::new(),
        }
    }
}

/// The task statuses of RMF's task_state schema (other values in a `status` filter are ignored,
/// as rmf-web does).
pub const TASK_STATUSES: [&str; 12] = [
    "uninitialized",
    "blocked",
    "error",
    "failed",
    "queued",
    "standby",
    "underway",
    "delayed",
    "skipped",
    "canceled",
    "killed",
    "completed",
];

/// The fields `GET /tasks` sorts by (`id_` is rmf-web's column name for `id`); `label=<key>`
/// sorts by a booking label.
pub const TASK_ORDER_FIELDS: [&str; 9] = [
    "id",
    "id_",
    "category",
    "assigned_to",
    "status",
    "requester",
    "unix_millis_request_time",
    "unix_millis_start_time",
    "unix_millis_finish_time",
];

/// A `GET /tasks` query: every filter given must hold (a list filter holds when the task's
/// value is one of the list; a time window when the task has that time and it is in the
/// window; labels when the task has every `key=value`).
#[derive(Debug, Clone, Default)]
pub struct TaskQuery {
    pub task_id: Option<Vec<String>>,
    pub category: Option<Vec<String>>,
    pub requester: Option<Vec<String>>,
    /// Robot names (`assigned_to.name`).
    pub assigned_to: Option<Vec<String>>,
    /// Known statuses only: an empty list matches no task.
    pub status: Option<Vec<String>>,
    pub labels: Vec<(String, String)>,
    pub request_time: Option<Window>,
    pub start_time: Option<Window>,
    pub finish_time: Option<Window>,
    pub pagination: Pagination,
}

impl TaskQuery {
    /// The same query from its first row to the last one it asks for (offset 0): what a merge
    /// of two sources needs of each before it paginates ([`tasks_with`]).
    pub fn first_pages(&self) -> TaskQuery {
        let mut q = self.clone();
        q.pagination.limit = q.pagination.offset.saturating_add(q.pagination.limit);
        q.pagination.offset = 0;
        q
    }
}
