//! Scheduled tasks: rmf-web's `/scheduled_tasks` (a task request dispatched at the times of its
//! schedules), kept in the store (`scheduled_tasks`, `scheduled_task_runs` of
//! `migrations/0003_scheduled_tasks.sql`), or in memory with `--no-db` (for the life of the
//! process), and dispatched by the active main process only.
//!
//! - This file: the model (rmf-web's `ScheduledTask` and `ScheduledTaskSchedule` shapes) and the
//!   occurrences of a schedule, a pure function of the stored task, the configured time zone and
//!   an instant (see [`Occurrences`]).
//! - [`storage`]: the handle the routes and the loop use, over [`store`] (the tables; the claim
//!   of due occurrences in one transaction) or [`memory`] (the same in memory, bounded).
//! - [`routes`]: the HTTP routes.
//! - [`dispatch`]: the loop that claims and dispatches due occurrences (behind an "am I active"
//!   seam), and re-sends the claims a dead process left unconfirmed.
//! - [`clock`]: the wall clock, or a fake one for tests.

pub mod clock;
pub mod dispatch;
pub mod memory;
pub mod routes;
pub mod storage;
pub mod store;

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ScheduleError {
    #[error("{0}")]
    Invalid(String),
    #[error("PostgreSQL")]
    Pg(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("scheduled task {0} does not exist")]
    NotFound(i64),
    /// A bound of the in-memory backend (`--no-db`) is reached.
    #[error("{0}")]
    Full(String),
}

/// Most schedules one scheduled task may have.
pub const MAX_SCHEDULES: usize = 32;
/// Most except dates one scheduled task may have.
pub const MAX_EXCEPT_DATES: usize = 1000;
/// Largest task request stored (bytes of JSON).
pub const MAX_TASK_REQUEST: usize = 64 * 1024;
/// Largest `every`.
pub const MAX_EVERY: u32 = 10_000;

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 3_600_000;

/// rmf-web's `ScheduledTaskSchedule.Period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
    Day,
    Hour,
    Minute,
}

impl Period {
    fn weekday(self) -> Option<Weekday> {
        Some(match self {
            Period::Monday => Weekday::Mon,
            Period::Tuesday => Weekday::Tue,
            Period::Wednesday => Weekday::Wed,
            Period::Thursday => Weekday::Thu,
            Period::Friday => Weekday::Fri,
            Period::Saturday => Weekday::Sat,
            Period::Sunday => Weekday::Sun,
            Period::Day | Period::Hour | Period::Minute => return None,
        })
    }
}

/// One schedule of a scheduled task, as rmf-web stores it: `every` (default 1) periods, `at` a
/// time within the period (`:SS` for minutes, `MM:SS` or `:MM` for hours, `HH:MM[:SS]` for days
/// and weekdays, as the `schedule` library rmf-web uses; empty: the start of the period).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    #[serde(default)]
    pub every: Option<u32>,
    pub period: Period,
    #[serde(default)]
    pub at: String,
}

/// What a schedule means, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// Every `step_ms`, from the anchor's minute or hour (local) plus `offset_ms`.
    Fixed {
        unit_ms: i64,
        step_ms: i64,
        offset_ms: i64,
    },
    /// Every `step_days` local dates (from the anchor's date, or the first `weekday` on or after
    /// it), at local time `at`.
    Calendar {
        step_days: i64,
        weekday: Option<Weekday>,
        at: NaiveTime,
    },
}

fn number(s: &str, max: u32, what: &str) -> Result<u32, ScheduleError> {
    if s.len() != 2 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ScheduleError::Invalid(format!(
            "invalid `at`: {what} must be two digits"
        )));
    }
    let n: u32 = s
        .parse()
        .map_err(|_| ScheduleError::Invalid(format!("invalid `at`: bad {what}")))?;
    if n > max {
        return Err(ScheduleError::Invalid(format!(
            "invalid `at`: {what} {n} is over {max}"
        )));
    }
    Ok(n)
}

impl Schedule {
    fn rule(&self) -> Result<Rule, ScheduleError> {
        let every = self.every.unwrap_or(1);
        if every == 0 || every > MAX_EVERY {
            return Err(ScheduleError::Invalid(format!(
                "`every` must be 1 to {MAX_EVERY}"
            )));
        }
        let at = self.at.trim();
        let parts: Vec<&str> = at.split(':').collect();
        match self.period {
            Period::Minute => {
                let sec = match parts.as_slice() {
                    [""] => 0,
                    ["", s] => number(s, 59, "second")?,
                    _ => {
                        return Err(ScheduleError::Invalid(
                            "invalid `at` for a minute period: expected `:SS`".into(),
                        ));
                    }
                };
                Ok(Rule::Fixed {
                    unit_ms: MINUTE_MS,
                    step_ms: MINUTE_MS * i64::from(every),
                    offset_ms: i64::from(sec) * 1000,
                })
            }
            Period::Hour => {
                let (min, sec) = match parts.as_slice() {
                    [""] => (0, 0),
                    ["", m] => (number(m, 59, "minute")?, 0),
                    [m, s] => (number(m, 59, "minute")?, number(s, 59, "second")?),
                    _ => {
                        return Err(ScheduleError::Invalid(
                            "invalid `at` for an hour period: expected `MM:SS` or `:MM`".into(),
                        ));
                    }
                };
                Ok(Rule::Fixed {
                    unit_ms: HOUR_MS,
                    step_ms: HOUR_MS * i64::from(every),
                    offset_ms: i64::from(min) * MINUTE_MS + i64::from(sec) * 1000,
                })
            }
            p => {
                let (h, m, s) = match parts.as_slice() {
                    [""] => (0, 0, 0),
                    [h, m] => (number(h, 23, "hour")?, number(m, 59, "minute")?, 0),
                    [h, m, s] => (
                        number(h, 23, "hour")?,
                        number(m, 59, "minute")?,
                        number(s, 59, "second")?,
                    ),
                    _ => {
                        return Err(ScheduleError::Invalid(
                            "invalid `at` for a day or weekday period: expected `HH:MM` or \
                             `HH:MM:SS`"
                                .into(),
                        ));
                    }
                };
                let at = NaiveTime::from_hms_opt(h, m, s)
                    .ok_or_else(|| ScheduleError::Invalid("invalid `at`".into()))?;
                let weekday = p.weekday();
                let step_days = i64::from(every) * if weekday.is_some() { 7 } else { 1 };
                Ok(Rule::Calendar {
                    step_days,
                    weekday,
                    at,
                })
            }
        }
    }
}

/// rmf-web's `ScheduledTask` as answered (times as RFC 3339 in UTC, except dates as
/// `YYYY-MM-DD` in the configured zone).
#[derive(Debug, Clone, Serialize)]
pub struct ScheduledTask {
    pub id: i64,
    pub task_request: serde_json::Value,
    pub created_by: String,
    pub schedules: Vec<Schedule>,
    pub last_ran: Option<String>,
    pub start_from: Option<String>,
    pub until: Option<String>,
    pub except_dates: Vec<String>,
}

/// What the occurrences of a scheduled task depend on.
#[derive(Debug, Clone)]
pub struct Plan {
    pub schedules: Vec<Schedule>,
    /// Unix ms; occurrences are never before it.
    pub start_from: Option<i64>,
    /// Unix ms; occurrences are never after it.
    pub until: Option<i64>,
    /// Local dates (`YYYY-MM-DD`) without occurrences.
    pub except_dates: Vec<String>,
    /// When the task was created (unix ms): the anchor without `start_from`.
    pub created: i64,
}

/// The occurrences of a [`Plan`] in a time zone.
///
/// - The anchor is `start_from`, or the creation time. `minute` and `hour` schedules step in
///   absolute time from the anchor's local minute or hour (plus `at`): every N minutes or hours
///   of elapsed time, whatever the daylight-saving changes. `day` and weekday schedules step by
///   local dates from the anchor's date (weekdays: the first such weekday on or after it; every
///   N weeks) at the local time `at`.
/// - A local time that does not exist (the hour skipped when clocks go forward) fires at the
///   same offset as before the change, i.e. shifted forward by the gap (02:30 becomes 03:30); a
///   local time that exists twice (clocks go back) fires once, at its first instant.
/// - An occurrence whose local date is an except date does not exist; nor one before
///   `start_from` (or the anchor) or after `until`. Two schedules giving the same instant give
///   one occurrence.
pub struct Occurrences {
    rules: Vec<Rule>,
    anchor: i64,
    until: Option<i64>,
    except: std::collections::HashSet<NaiveDate>,
    tz: Tz,
}

/// The local date and time of an instant.
fn local(tz: Tz, ms: i64) -> Option<NaiveDateTime> {
    chrono::DateTime::from_timestamp_millis(ms).map(|t| t.with_timezone(&tz).naive_local())
}

/// The instant of a local date and time (see [`Occurrences`] for gaps and folds).
fn instant(tz: Tz, at: NaiveDateTime) -> Option<i64> {
    match tz.from_local_datetime(&at) {
        chrono::LocalResult::Single(t) => Some(t.timestamp_millis()),
        chrono::LocalResult::Ambiguous(first, _) => Some(first.timestamp_millis()),
        chrono::LocalResult::None => {
            // In a gap: the offset of a day before (the one before the change).
            let before = tz
                .offset_from_utc_datetime(&(at - chrono::Duration::days(1)))
                .fix();
            Some((at - before).and_utc().timestamp_millis())
        }
    }
}

/// Parses an except date given as `YYYY-MM-DD`.
pub fn parse_date(s: &str) -> Result<NaiveDate, ScheduleError> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| ScheduleError::Invalid(format!("invalid date {s:?}: expected YYYY-MM-DD")))
}

impl Occurrences {
    pub fn new(plan: &Plan, tz: Tz) -> Result<Occurrences, ScheduleError> {
        if plan.schedules.is_empty() {
            return Err(ScheduleError::Invalid(
                "a scheduled task needs at least one schedule".into(),
            ));
        }
        if plan.schedules.len() > MAX_SCHEDULES {
            return Err(ScheduleError::Invalid(format!(
                "at most {MAX_SCHEDULES} schedules"
            )));
        }
        if plan.except_dates.len() > MAX_EXCEPT_DATES {
            return Err(ScheduleError::Invalid(format!(
                "at most {MAX_EXCEPT_DATES} except dates"
            )));
        }
        let rules = plan
            .schedules
            .iter()
            .map(Schedule::rule)
            .collect::<Result<Vec<_>, _>>()?;
        let except = plan
            .except_dates
            .iter()
            .map(|d| parse_date(d))
            .collect::<Result<_, _>>()?;
        Ok(Occurrences {
            rules,
            anchor: plan.start_from.unwrap_or(plan.created),
            until: plan.until,
            except,
            tz,
        })
    }

    /// The first instant of `rule` after `after` (ignoring except dates and `until`).
    fn rule_next(&self, rule: Rule, after: i64) -> Option<i64> {
        let from = after.checked_add(1)?.max(self.anchor);
        match rule {
            Rule::Fixed {
                unit_ms,
                step_ms,
                offset_ms,
            } => {
                let anchor_local = local(self.tz, self.anchor)?;
                let offset = (anchor_local.and_utc().timestamp_millis() - self.anchor) as i128;
                let floored = (i128::from(self.anchor) + offset).div_euclid(i128::from(unit_ms))
                    * i128::from(unit_ms)
                    - offset;
                let base = floored + i128::from(offset_ms);
                let from = i128::from(from);
                let k = if from <= base {
                    0
                } else {
                    (from - base + i128::from(step_ms) - 1) / i128::from(step_ms)
                };
                i64::try_from(base + k * i128::from(step_ms)).ok()
            }
            Rule::Calendar {
                step_days,
                weekday,
                at,
            } => {
                let mut first = local(self.tz, self.anchor)?.date();
                if let Some(w) = weekday {
                    let ahead = (i64::from(w.num_days_from_monday())
                        - i64::from(first.weekday().num_days_from_monday()))
                    .rem_euclid(7);
                    first = first.checked_add_days(chrono::Days::new(ahead as u64))?;
                }
                let target = local(self.tz, from)?.date();
                let days = (target - first).num_days();
                // Start a step before the target's date: a gap or fold can move an instant
                // across midnight by at most a few hours.
                let k0 = if days <= 0 {
                    0
                } else {
                    (days / step_days - 1).max(0)
                };
                for k in k0..k0 + 8 {
                    let date = first.checked_add_days(chrono::Days::new((k * step_days) as u64))?;
                    let t = instant(self.tz, date.and_time(at))?;
                    if t >= from {
                        return Some(t);
                    }
                }
                None
            }
        }
    }

    /// The first occurrence after `after`, or `None` when there is none (past `until`).
    pub fn next_after(&self, after: i64) -> Option<i64> {
        let mut after = after;
        // Each excepted date is skipped once; bounded by the number of except dates.
        for _ in 0..=MAX_EXCEPT_DATES + 1 {
            let t = self
                .rules
                .iter()
                .filter_map(|r| self.rule_next(*r, after))
                .min()?;
            if self.until.is_some_and(|u| t > u) {
                return None;
            }
            let date = local(self.tz, t)?.date();
            if !self.except.contains(&date) {
                return Some(t);
            }
            after = t;
        }
        None
    }

    /// The occurrences in `(after, upto]`, at most `limit`.
    pub fn between(&self, after: i64, upto: i64, limit: usize) -> Vec<i64> {
        let mut out = Vec::new();
        let mut t = after;
        while out.len() < limit {
            match self.next_after(t) {
                Some(next) if next <= upto => {
                    out.push(next);
                    t = next;
                }
                _ => break,
            }
        }
        out
    }
}

/// The local date (`YYYY-MM-DD`) of an instant: how an except date given as a date-time is
/// stored (rmf-web's `format_except_date`).
pub fn local_date(tz: Tz, ms: i64) -> Option<String> {
    local(tz, ms).map(|t| t.date().format("%Y-%m-%d").to_string())
}

/// An instant as RFC 3339 in UTC (`2026-03-29T01:30:00Z`, milliseconds when not whole).
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .unwrap_or_default()
}

/// Parses a date-time as FastAPI does: RFC 3339 / ISO 8601 (with an offset, or without: UTC),
/// a date alone (midnight UTC), or unix seconds (milliseconds when over 2e10, as pydantic).
pub fn parse_datetime(s: &str) -> Result<i64, ScheduleError> {
    let s = s.trim();
    let bad = || ScheduleError::Invalid(format!("invalid datetime {s:?}"));
    if let Ok(n) = s.parse::<f64>() {
        if !n.is_finite() {
            return Err(bad());
        }
        let ms = if n.abs() > 2e10 { n } else { n * 1000.0 };
        if ms.abs() > 1e16 {
            return Err(bad());
        }
        return Ok(ms.round() as i64);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S%.f",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Ok(t.and_utc().timestamp_millis());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_time(NaiveTime::MIN).and_utc().timestamp_millis());
    }
    Err(bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        parse_datetime(s).unwrap()
    }

    fn plan(schedules: Vec<Schedule>, start: &str) -> Plan {
        Plan {
            schedules,
            start_from: Some(ms(start)),
            until: None,
            except_dates: Vec::new(),
            created: 0,
        }
    }

    fn sched(every: Option<u32>, period: Period, at: &str) -> Schedule {
        Schedule {
            every,
            period,
            at: at.into(),
        }
    }

    fn all(o: &Occurrences, from: &str, to: &str) -> Vec<String> {
        o.between(ms(from) - 1, ms(to), 1000)
            .into_iter()
            .map(rfc3339)
            .collect()
    }

    #[test]
    fn daily_across_spring_forward_in_berlin() {
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        let o = Occurrences::new(
            &plan(
                vec![sched(None, Period::Day, "02:30")],
                "2026-03-27T00:00:00Z",
            ),
            tz,
        )
        .unwrap();
        assert_eq!(
            all(&o, "2026-03-27T00:00:00Z", "2026-03-31T00:00:00Z"),
            [
                "2026-03-27T01:30:00Z", // 02:30 CET
                "2026-03-28T01:30:00Z", // 02:30 CET
                "2026-03-29T01:30:00Z", // 02:30 does not exist: 03:30 CEST
                "2026-03-30T00:30:00Z", // 02:30 CEST
            ]
        );
    }

    #[test]
    fn daily_across_fall_back_fires_once() {
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        let o = Occurrences::new(
            &plan(
                vec![sched(None, Period::Day, "02:30")],
                "2026-10-24T00:00:00Z",
            ),
            tz,
        )
        .unwrap();
        assert_eq!(
            all(&o, "2026-10-24T00:00:00Z", "2026-10-27T00:00:00Z"),
            [
                "2026-10-24T00:30:00Z", // CEST
                "2026-10-25T00:30:00Z", // the first 02:30 (CEST)
                "2026-10-26T01:30:00Z", // CET
            ]
        );
    }

    #[test]
    fn hourly_steps_in_elapsed_time_across_the_change() {
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        let o = Occurrences::new(
            &plan(
                vec![sched(Some(1), Period::Hour, ":15")],
                "2026-03-29T00:00:00Z",
            ),
            tz,
        )
        .unwrap();
        assert_eq!(
            all(&o, "2026-03-29T00:00:00Z", "2026-03-29T02:30:00Z"),
            [
                "2026-03-29T00:15:00Z", // 01:15 CET
                "2026-03-29T01:15:00Z", // 03:15 CEST
                "2026-03-29T02:15:00Z", // 04:15 CEST
            ]
        );
    }

    #[test]
    fn every_n_minutes_from_the_anchor_minute() {
        let tz: Tz = "UTC".parse().unwrap();
        let o = Occurrences::new(
            &plan(
                vec![sched(Some(10), Period::Minute, ":30")],
                "2026-01-01T08:03:40Z",
            ),
            tz,
        )
        .unwrap();
        assert_eq!(
            all(&o, "2026-01-01T08:00:00Z", "2026-01-01T08:35:00Z"),
            [
                "2026-01-01T08:13:30Z",
                "2026-01-01T08:23:30Z",
                "2026-01-01T08:33:30Z"
            ]
        );
        // The first occurrence is the anchor minute's when not before the anchor.
        let o = Occurrences::new(
            &plan(
                vec![sched(Some(10), Period::Minute, ":30")],
                "2026-01-01T08:03:10Z",
            ),
            tz,
        )
        .unwrap();
        assert_eq!(o.next_after(0), Some(ms("2026-01-01T08:03:30Z")));
    }

    #[test]
    fn weekdays_every_two_weeks_and_except_dates_and_until() {
        let tz: Tz = "America/New_York".parse().unwrap();
        let mut p = plan(
            vec![
                sched(Some(2), Period::Wednesday, "13:15"),
                sched(None, Period::Friday, "08:00"),
            ],
            "2026-01-01T12:00:00Z", // a Thursday, 07:00 in New York
        );
        p.except_dates = vec!["2026-01-09".into()];
        p.until = Some(ms("2026-01-23T13:00:00Z"));
        let o = Occurrences::new(&p, tz).unwrap();
        assert_eq!(
            all(&o, "2026-01-01T00:00:00Z", "2026-02-28T00:00:00Z"),
            [
                "2026-01-02T13:00:00Z", // Fri 08:00 EST
                "2026-01-07T18:15:00Z", // Wed 13:15
                // Fri 9th is an except date
                "2026-01-16T13:00:00Z",
                "2026-01-21T18:15:00Z",
                "2026-01-23T13:00:00Z", // == until
            ]
        );
    }

    #[test]
    fn invalid_schedules_are_refused() {
        for (period, at, every) in [
            (Period::Day, "25:00", None),
            (Period::Day, "8:00", None),
            (Period::Minute, "10:00", None),
            (Period::Hour, "61:00", None),
            (Period::Monday, "x", None),
            (Period::Day, "", Some(0)),
        ] {
            assert!(sched(every, period, at).rule().is_err(), "{period:?} {at}");
        }
        assert!(sched(None, Period::Hour, "").rule().is_ok());
    }

    #[test]
    fn datetimes_parse_as_fastapi() {
        assert_eq!(ms("2000"), 2_000_000);
        assert_eq!(ms("2124-02-10T08:00:00+08:00"), ms("2124-02-10T00:00:00Z"));
        assert_eq!(ms("2124-02-10T00:00:00"), ms("2124-02-10T00:00:00Z"));
        assert_eq!(ms("2124-02-10"), ms("2124-02-10T00:00:00Z"));
        assert!(parse_datetime("soon").is_err());
        let tz: Tz = "Asia/Singapore".parse().unwrap();
        assert_eq!(
            local_date(tz, ms("2124-02-10T23:59:00+00:00")).as_deref(),
            Some("2124-02-11")
        );
    }
}
