//! Scheduled tasks in memory (`--no-db`), for the life of the process, with the semantics of the
//! store's tables ([`super::store`]): ids from 1 up, the same filters, orderings (an absent
//! time sorts after every time, as PostgreSQL's NULLs) and pagination, one run per claimed
//! occurrence, `checked_until_ms` advanced with the claims, except dates bounded the same way.
//!
//! Bounds: at most [`MAX_TASKS`] scheduled tasks ([`ScheduleError::Full`], 507, beyond); the runs
//! of a task are kept up to the last [`RUNS_KEPT`] occurrences, which is all that
//! [`Memory::runs`] answers (as the store's `runs`). No process can die and leave claims here
//! unconfirmed: [`Memory::unconfirmed`] only ever finds claims of this process, and
//! [`Memory::task_with_label`] has no stored task states to look in.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use chrono_tz::Tz;

use super::store::{self, Claim, Claimed, Run, Stored, Write};
use super::{MAX_EXCEPT_DATES, Occurrences, ScheduleError};

/// Most scheduled tasks kept.
pub const MAX_TASKS: usize = 1000;
/// Runs kept per scheduled task (the latest occurrences).
pub const RUNS_KEPT: usize = 1000;

#[derive(Default)]
pub struct Memory {
    tasks: BTreeMap<i64, Stored>,
    /// Task id -> occurrence -> run.
    runs: BTreeMap<i64, BTreeMap<i64, Run>>,
    last_id: i64,
}

/// A sort key of `order_by` (a column of [`store::order_column`]).
#[derive(Clone, Copy)]
enum Key {
    Id,
    CreatedBy,
    StartFrom,
    Until,
    LastRan,
}

impl Key {
    fn of(column: &str) -> Result<Key, ScheduleError> {
        Ok(match column {
            "id" => Key::Id,
            "created_by" => Key::CreatedBy,
            "start_from_ms" => Key::StartFrom,
            "until_ms" => Key::Until,
            "last_ran_ms" => Key::LastRan,
            _ => {
                return Err(ScheduleError::Invalid(format!("cannot sort by {column}")));
            }
        })
    }

    /// Ascending; an absent time after every time (PostgreSQL's `NULLS LAST`, and first when
    /// descending).
    fn compare(self, a: &Stored, b: &Stored) -> Ordering {
        let time = |x: Option<i64>, y: Option<i64>| (x.is_none(), x).cmp(&(y.is_none(), y));
        match self {
            Key::Id => a.id.cmp(&b.id),
            Key::CreatedBy => a.created_by.as_bytes().cmp(b.created_by.as_bytes()),
            Key::StartFrom => time(a.start_from_ms, b.start_from_ms),
            Key::Until => time(a.until_ms, b.until_ms),
            Key::LastRan => time(a.last_ran_ms, b.last_ran_ms),
        }
    }
}

fn count(n: i64, what: &str) -> Result<usize, ScheduleError> {
    usize::try_from(n).map_err(|_| ScheduleError::Invalid(format!("{what} must not be negative")))
}

impl Memory {
    /// Creates a scheduled task at `now` (nothing before `now` is ever dispatched).
    pub fn create(
        &mut self,
        created_by: &str,
        now: i64,
        w: &Write,
    ) -> Result<Stored, ScheduleError> {
        if self.tasks.len() >= MAX_TASKS {
            return Err(ScheduleError::Full(format!(
                "at most {MAX_TASKS} scheduled tasks are kept in memory (this server runs with \
                 --no-db)"
            )));
        }
        self.last_id += 1;
        let task = Stored {
            id: self.last_id,
            created_by: created_by.into(),
            created_ms: now,
            task_request: w.task_request.clone(),
            schedules: w.schedules.clone(),
            start_from_ms: w.start_from_ms,
            until_ms: w.until_ms,
            except_dates: w.except_dates.clone(),
            last_ran_ms: None,
            checked_until_ms: now,
        };
        self.tasks.insert(task.id, task.clone());
        Ok(task)
    }

    pub fn get(&self, id: i64) -> Result<Option<Stored>, ScheduleError> {
        Ok(self.tasks.get(&id).cloned())
    }

    /// As [`store::list`].
    pub fn list(
        &self,
        start_before: i64,
        until_after: i64,
        order_by: &[(String, bool)],
        limit: i64,
        offset: i64,
    ) -> Result<Vec<Stored>, ScheduleError> {
        let keys = order_by
            .iter()
            .map(|(column, desc)| Ok((Key::of(column)?, *desc)))
            .collect::<Result<Vec<_>, ScheduleError>>()?;
        let (limit, offset) = (count(limit, "limit")?, count(offset, "offset")?);
        let mut tasks: Vec<&Stored> = self
            .tasks
            .values()
            .filter(|t| t.start_from_ms.is_none_or(|s| s <= start_before))
            .filter(|t| t.until_ms.is_none_or(|u| u >= until_after))
            .collect();
        tasks.sort_by(|a, b| {
            keys.iter()
                .map(|(key, desc)| {
                    let o = key.compare(a, b);
                    if *desc { o.reverse() } else { o }
                })
                .find(|o| o.is_ne())
                .unwrap_or_else(|| a.id.cmp(&b.id))
        });
        Ok(tasks
            .into_iter()
            .skip(offset)
            .take(limit)
            .cloned()
            .collect())
    }

    /// As [`store::update`].
    pub fn update(&mut self, id: i64, w: &Write) -> Result<Stored, ScheduleError> {
        let task = self.tasks.get_mut(&id).ok_or(ScheduleError::NotFound(id))?;
        task.task_request = w.task_request.clone();
        task.schedules = w.schedules.clone();
        task.start_from_ms = w.start_from_ms;
        task.until_ms = w.until_ms;
        task.except_dates = w.except_dates.clone();
        Ok(task.clone())
    }

    /// Deletes a scheduled task and its runs.
    pub fn delete(&mut self, id: i64) -> Result<(), ScheduleError> {
        self.tasks.remove(&id).ok_or(ScheduleError::NotFound(id))?;
        self.runs.remove(&id);
        Ok(())
    }

    /// As [`store::add_except_date`] (refused when full, even a date already there).
    pub fn add_except_date(&mut self, id: i64, date: &str) -> Result<(), ScheduleError> {
        let task = self.tasks.get_mut(&id).ok_or(ScheduleError::NotFound(id))?;
        if task.except_dates.len() >= MAX_EXCEPT_DATES {
            return Err(ScheduleError::Invalid(format!(
                "at most {MAX_EXCEPT_DATES} except dates"
            )));
        }
        if !task.except_dates.iter().any(|d| d == date) {
            task.except_dates.push(date.into());
        }
        Ok(())
    }

    /// The claimed occurrences of a scheduled task, oldest first (the last [`RUNS_KEPT`]).
    pub fn runs(&self, id: i64) -> Result<Vec<Run>, ScheduleError> {
        let runs = self.runs.get(&id).into_iter().flat_map(|r| r.values());
        let mut last: Vec<Run> = runs.rev().take(RUNS_KEPT).cloned().collect();
        last.reverse();
        Ok(last)
    }

    /// As [`store::claim_due`]: claims the due occurrences of every task due and advances its
    /// `checked_until_ms`, at once (under the caller's lock).
    pub fn claim_due(
        &mut self,
        tz: Tz,
        now: i64,
        catch_up_ms: i64,
    ) -> Result<Claimed, ScheduleError> {
        let mut out = Claimed::default();
        for task in self.tasks.values_mut() {
            if task.checked_until_ms >= now {
                continue;
            }
            if out.claims.len() >= store::MAX_CLAIMS {
                // The rest on the next pass.
                break;
            }
            let room = store::MAX_CLAIMS - out.claims.len();
            let Some(due) = store::due(task, tz, now, catch_up_ms, room) else {
                continue;
            };
            out.missed += due.missed;
            let runs = self.runs.entry(task.id).or_default();
            for occurrence in due.occurrences {
                if runs.contains_key(&occurrence) {
                    out.taken += 1;
                    continue;
                }
                let request_id = store::request_id(task.id, occurrence);
                runs.insert(occurrence, claimed(task.id, occurrence, &request_id, now));
                out.claims.push(Claim {
                    task: task.clone(),
                    occurrence,
                    request_id,
                });
            }
            while runs.len() > RUNS_KEPT {
                runs.pop_first();
            }
            task.checked_until_ms = due.checked;
        }
        Ok(out)
    }

    /// The next occurrence after `now` over every scheduled task.
    pub fn next_occurrence(&self, tz: Tz, now: i64) -> Result<Option<i64>, ScheduleError> {
        Ok(self
            .tasks
            .values()
            .filter_map(|t| Occurrences::new(&t.plan(), tz).ok()?.next_after(now))
            .min())
    }

    /// Records the outcome of a claim (nothing when its task was deleted meanwhile).
    pub fn finish(
        &mut self,
        claim: &Claim,
        status: &str,
        task_id: Option<&str>,
        detail: Option<&str>,
        now: i64,
    ) -> Result<(), ScheduleError> {
        let id = claim.task.id;
        if let Some(run) = self
            .runs
            .get_mut(&id)
            .and_then(|r| r.get_mut(&claim.occurrence))
        {
            run.status = status.into();
            run.task_id = task_id.map(str::to_string);
            run.detail = detail.map(str::to_string);
        }
        if status == "dispatched"
            && let Some(task) = self.tasks.get_mut(&id)
        {
            task.last_ran_ms = Some(task.last_ran_ms.unwrap_or(now).max(now));
        }
        Ok(())
    }

    /// As [`store::unconfirmed`]: the claims still `claimed`, one more attempt counted on each.
    pub fn unconfirmed(&mut self) -> Result<Vec<Claim>, ScheduleError> {
        let mut claims = Vec::new();
        for (id, runs) in &mut self.runs {
            let Some(task) = self.tasks.get(id) else {
                continue;
            };
            for run in runs.values_mut().filter(|r| r.status == "claimed") {
                run.attempts += 1;
                claims.push(Claim {
                    task: task.clone(),
                    occurrence: run.occurrence,
                    request_id: run.request_id.clone(),
                });
            }
        }
        Ok(claims)
    }

    /// No task states are stored without a store: never found.
    pub fn task_with_label(&self, _label: &str) -> Result<Option<String>, ScheduleError> {
        Ok(None)
    }
}

fn claimed(id: i64, occurrence: i64, request_id: &str, now: i64) -> Run {
    Run {
        scheduled_task: id,
        occurrence,
        request_id: request_id.into(),
        status: "claimed".into(),
        task_id: None,
        claimed_ms: now,
        attempts: 1,
        detail: None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Period, Schedule, parse_datetime, rfc3339};
    use super::*;

    fn ms(s: &str) -> i64 {
        parse_datetime(s).unwrap()
    }

    fn write(period: Period, at: &str, start: Option<&str>, until: Option<&str>) -> Write {
        Write {
            task_request: r#"{"category":"patrol"}"#.into(),
            schedules: vec![Schedule {
                every: None,
                period,
                at: at.into(),
            }],
            start_from_ms: start.map(ms),
            until_ms: until.map(ms),
            except_dates: Vec::new(),
        }
    }

    fn ids(tasks: Vec<Stored>) -> Vec<i64> {
        tasks.into_iter().map(|t| t.id).collect()
    }

    #[test]
    fn list_filters_orders_and_pages_as_the_store() {
        let mut m = Memory::default();
        let now = ms("2124-01-01T00:00:00Z");
        let a = write(Period::Day, "08:00", Some("2124-02-01"), Some("2124-03-01"));
        let b = write(Period::Hour, ":30", None, None);
        let c = write(Period::Day, "09:00", Some("2124-01-15"), None);
        assert_eq!(m.create("zed", now, &a).unwrap().id, 1);
        assert_eq!(m.create("amy", now, &b).unwrap().id, 2);
        assert_eq!(m.create("amy", now, &c).unwrap().id, 3);
        let list = |m: &Memory, order: &[(&str, bool)], limit, offset| {
            let order: Vec<(String, bool)> =
                order.iter().map(|(c, d)| (c.to_string(), *d)).collect();
            ids(m.list(i64::MAX, 0, &order, limit, offset).unwrap())
        };
        assert_eq!(list(&m, &[], 100, 0), [1, 2, 3]);
        // Absent times sort last ascending, first descending (PostgreSQL's NULLs).
        assert_eq!(list(&m, &[("start_from_ms", false)], 100, 0), [3, 1, 2]);
        assert_eq!(list(&m, &[("start_from_ms", true)], 100, 0), [2, 1, 3]);
        assert_eq!(list(&m, &[("until_ms", false)], 100, 0), [1, 2, 3]);
        assert_eq!(
            list(&m, &[("created_by", false), ("id", true)], 100, 0),
            [3, 2, 1]
        );
        assert_eq!(list(&m, &[("id", true)], 1, 1), [2]);
        assert!(m.list(0, 0, &[("nope".into(), false)], 1, 0).is_err());
        // Starting before, ending after.
        assert_eq!(
            ids(m.list(ms("2124-01-20"), 0, &[], 100, 0).unwrap()),
            [2, 3]
        );
        assert_eq!(
            ids(m.list(i64::MAX, ms("2124-03-02"), &[], 100, 0).unwrap()),
            [2, 3]
        );
        // Update, except dates, delete.
        let updated = m.update(1, &b).unwrap();
        assert_eq!(
            (updated.start_from_ms, updated.created_by.as_str()),
            (None, "zed")
        );
        assert!(matches!(m.update(9, &b), Err(ScheduleError::NotFound(9))));
        m.add_except_date(2, "2124-01-02").unwrap();
        m.add_except_date(2, "2124-01-02").unwrap();
        assert_eq!(m.get(2).unwrap().unwrap().except_dates, ["2124-01-02"]);
        for d in 1..MAX_EXCEPT_DATES {
            m.add_except_date(2, &format!("{d}")).unwrap();
        }
        assert!(matches!(
            m.add_except_date(2, "2124-01-02"),
            Err(ScheduleError::Invalid(_))
        ));
        m.delete(2).unwrap();
        assert!(matches!(m.delete(2), Err(ScheduleError::NotFound(2))));
        assert_eq!(m.get(2).unwrap().map(|t| t.id), None);
        assert_eq!(m.create("amy", now, &b).unwrap().id, 4);
    }

    #[test]
    fn due_occurrences_are_claimed_once_and_their_outcome_recorded() {
        let tz = Tz::UTC;
        let mut m = Memory::default();
        let created = ms("2124-01-01T00:00:00Z");
        let id = m
            .create("amy", created, &write(Period::Hour, ":00", None, None))
            .unwrap()
            .id;
        assert_eq!(
            m.next_occurrence(tz, created).unwrap(),
            Some(ms("2124-01-01T01:00:00Z"))
        );
        // Five hours later with a two-hour catch-up: 01:00 and 02:00 let pass, 03:00 to 05:00.
        let now = ms("2124-01-01T05:00:00Z");
        let claimed = m.claim_due(tz, now, 2 * 3_600_000).unwrap();
        assert_eq!((claimed.missed, claimed.taken), (2, 0));
        let occurrences: Vec<String> = claimed
            .claims
            .iter()
            .map(|c| rfc3339(c.occurrence))
            .collect();
        assert_eq!(
            occurrences,
            [
                "2124-01-01T03:00:00Z",
                "2124-01-01T04:00:00Z",
                "2124-01-01T05:00:00Z"
            ]
        );
        assert_eq!(
            claimed.claims[0].request_id,
            store::request_id(id, claimed.claims[0].occurrence)
        );
        assert_eq!(m.get(id).unwrap().unwrap().checked_until_ms, now);
        // Nothing again at the same time.
        assert!(
            m.claim_due(tz, now, 2 * 3_600_000)
                .unwrap()
                .claims
                .is_empty()
        );
        m.finish(&claimed.claims[0], "dispatched", Some("t1"), None, now + 5)
            .unwrap();
        m.finish(&claimed.claims[1], "failed", None, Some("no"), now + 6)
            .unwrap();
        let runs = m.runs(id).unwrap();
        let statuses: Vec<&str> = runs.iter().map(|r| r.status.as_str()).collect();
        assert_eq!(statuses, ["dispatched", "failed", "claimed"]);
        assert_eq!(runs[0].task_id.as_deref(), Some("t1"));
        assert_eq!(runs[1].detail.as_deref(), Some("no"));
        assert_eq!(m.get(id).unwrap().unwrap().last_ran_ms, Some(now + 5));
        // The one left claimed is unconfirmed, one more attempt each time it is asked.
        let unconfirmed = m.unconfirmed().unwrap();
        assert_eq!(unconfirmed.len(), 1);
        assert_eq!(unconfirmed[0].occurrence, claimed.claims[2].occurrence);
        assert_eq!(m.runs(id).unwrap()[2].attempts, 2);
        assert_eq!(m.task_with_label("scheduled_task=1@x").unwrap(), None);
        // A deleted task's runs go with it; its outcome is not recorded.
        m.delete(id).unwrap();
        m.finish(&claimed.claims[2], "dispatched", None, None, now)
            .unwrap();
        assert!(m.runs(id).unwrap().is_empty());
        assert!(m.unconfirmed().unwrap().is_empty());
    }

    #[test]
    fn runs_and_tasks_are_bounded() {
        let tz = Tz::UTC;
        let mut m = Memory::default();
        let created = ms("2124-01-01T00:00:00Z");
        let every_minute = write(Period::Minute, "", None, None);
        let id = m.create("amy", created, &every_minute).unwrap().id;
        // 1500 minutes in three passes: the last RUNS_KEPT runs are kept.
        for hours in [10, 20, 25] {
            let now = created + hours * 3_600_000;
            m.claim_due(tz, now, i64::MAX / 2).unwrap();
        }
        let runs = m.runs(id).unwrap();
        assert_eq!(runs.len(), RUNS_KEPT);
        assert_eq!(runs[0].occurrence, created + 501 * 60_000);
        assert_eq!(runs[RUNS_KEPT - 1].occurrence, created + 1500 * 60_000);
        for _ in 1..MAX_TASKS {
            m.create("amy", created, &every_minute).unwrap();
        }
        assert!(matches!(
            m.create("amy", created, &every_minute),
            Err(ScheduleError::Full(_))
        ));
    }
}
