//! Scheduled tasks against the real binary and a real throwaway PostgreSQL cluster, with the
//! fake clock test hook (`--test-clock start=...,origin=...,rate=...`: a function of the wall
//! clock, so it goes on across restarts):
//!
//! - the routes of rmf-web (create, list, get, except date, update, delete, 404/422/403);
//! - occurrences fire at the right local times of `--timezone Europe/Berlin` across the spring
//!   daylight-saving change (a daily 02:30 that does not exist that night, hourly steps through
//!   the skipped hour, a weekday), and not on an except date: the exact occurrences dispatched,
//!   each once, seen at the loopback RMF link;
//! - both again with `--no-db` (the tasks in memory, dispatched from there; nothing enforced),
//!   and the in-memory bound (507);
//! - exactly once across `kill -9` of the main process: killed between two occurrences, killed
//!   with an occurrence claimed but not sent (pause test hook), killed with an occurrence sent
//!   and answered but not recorded (pause test hook); every occurrence reaches "RMF" (the
//!   loopback journal test hook, which survives the kill) exactly once.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;
use common::{Proc, cluster};

const SECRET: &str = "scheduled-test-secret";

fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

fn ms(s: &str) -> i64 {
    rmf_dash::scheduled::parse_datetime(s).expect("datetime")
}

fn rfc(t: i64) -> String {
    rmf_dash::scheduled::rfc3339(t)
}

/// A server process, SIGKILLed when dropped.
struct Server {
    port: u16,
    proc: Proc,
}

impl Server {
    /// `kill -9`.
    fn kill9(mut self) {
        self.proc.kill();
    }

    fn call(&self, method: &str, path: &str, user: &str, body: Option<Value>) -> (u16, Value) {
        common::call_as(SECRET, self.port, method, path, Some(user), body)
    }
}

/// A fake clock: `start` at wall time `origin`, `rate` times faster.
#[derive(Clone, Copy)]
struct FakeClock {
    start: i64,
    origin: i64,
    rate: f64,
}

impl FakeClock {
    fn spec(&self) -> String {
        format!(
            "start={},origin={},rate={}",
            rfc(self.start),
            self.origin,
            self.rate
        )
    }

    fn now(&self) -> i64 {
        self.start + ((wall_ms() - self.origin) as f64 * self.rate) as i64
    }

    /// Sleeps until the fake clock reads `t`.
    fn sleep_until(&self, t: i64) {
        let left = t - self.now();
        if left > 0 {
            std::thread::sleep(Duration::from_millis((left as f64 / self.rate) as u64 + 1));
        }
    }
}

/// `rmf-dash serve` on the store at `url`, or with `--no-db` (none).
fn serve(url: Option<&str>, clock: &FakeClock, extra: &[&str], env: &[(&str, &str)]) -> Server {
    let server = common::Server::serve().args(["--jwt-secret", SECRET]);
    let server = match url {
        Some(url) => server.args(["--database-url", url]),
        None => server.arg("--no-db"),
    };
    let (proc, port) = server
        .args(["--test-clock", &clock.spec()])
        .args(extra)
        .with(|cmd| {
            cmd.env_remove("RMF_DASH_TEST_SCHEDULE_PAUSE")
                .env_remove("RMF_DASH_LOOPBACK_JOURNAL")
                .envs(env.iter().copied());
        })
        .start();
    Server { port, proc }
}

/// Polls `f` until it gives `Some`, for at most `secs` seconds.
fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn task_request(labels: &[&str]) -> Value {
    let mut r = json!({"category": "patrol", "description": {"places": ["pantry"], "rounds": 1}});
    if !labels.is_empty() {
        r["labels"] = json!(labels);
    }
    r
}

/// The runs of scheduled task `id`: (occurrence, status) in order.
fn runs(s: &Server, id: i64) -> Vec<(String, String)> {
    let (status, runs) = s.call("GET", &format!("/scheduled_tasks/{id}/runs"), "admin", None);
    assert_eq!(status, 200, "{runs}");
    runs.as_array()
        .expect("runs")
        .iter()
        .map(|r| {
            (
                rfc(r["occurrence"].as_i64().expect("occurrence")),
                r["status"].as_str().expect("status").to_string(),
            )
        })
        .collect()
}

/// The scheduled-task labels of the dispatch requests in a list of loopback publications, in
/// order, with their request ids.
fn dispatched_labels(published: &[Value]) -> Vec<(String, String)> {
    published
        .iter()
        .filter(|p| p["topic"] == "task_api_requests")
        .filter_map(|p| {
            let msg: Value = serde_json::from_str(p["message"]["json_msg"].as_str()?).ok()?;
            if msg["type"] != "dispatch_task_request" {
                return None;
            }
            let label = msg["request"]["labels"]
                .as_array()?
                .iter()
                .filter_map(Value::as_str)
                .find(|l| l.starts_with("scheduled_task="))?
                .to_string();
            Some((label, p["message"]["request_id"].as_str()?.to_string()))
        })
        .collect()
}

#[test]
fn routes_create_list_get_update_except_delete() {
    let pg = cluster();
    routes(Some(pg.url()));
}

#[test]
fn routes_answer_the_same_from_memory_without_a_store() {
    routes(None);
}

/// The routes, on the store at `url` or in memory (none: `--no-db`, nothing enforced).
fn routes(url: Option<&str>) {
    let clock = FakeClock {
        start: ms("2124-02-10T00:00:00Z"),
        origin: wall_ms(),
        rate: 1.0,
    };
    let s = serve(url, &clock, &["--timezone", "Asia/Singapore"], &[]);
    let body = json!({
        "task_request": task_request(&[]),
        "schedules": [{"period": "day", "at": "08:00"}, {"period": "monday", "at": "00:00"}],
        "start_from": "2124-02-10T08:00:00+08:00",
        "until": 5_000_000_000i64,
    });
    let (status, created) = s.call("POST", "/scheduled_tasks", "admin", Some(body.clone()));
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_i64().expect("id");
    assert_eq!(
        created,
        json!({
            "id": id,
            // rmf-web's TaskRequest document: every field, null when absent.
            "task_request": {"unix_millis_earliest_start_time": null,
                "unix_millis_request_time": null, "priority": null, "category": "patrol",
                "description": {"places": ["pantry"], "rounds": 1}, "labels": null,
                "requester": null, "fleet_name": null},
            "created_by": "admin",
            "schedules": [{"every": null, "period": "day", "at": "08:00"},
                          {"every": null, "period": "monday", "at": "00:00"}],
            "last_ran": null,
            "start_from": "2124-02-10T00:00:00Z",
            "until": rfc(5_000_000_000_000),
            "except_dates": [],
        })
    );
    assert_eq!(
        s.call("GET", &format!("/scheduled_tasks/{id}"), "bob", None),
        (200, created.clone())
    );
    // Except dates are the server zone's date of the instant given (rmf-web's test).
    for given in [
        "2124-02-10T23:59:00+00:00",
        "2124-02-12T07:59:00+08:00",
        "2124-02-12T08:00:00+08:00",
    ] {
        assert_eq!(
            s.call(
                "POST",
                &format!("/scheduled_tasks/{id}/except_date"),
                "admin",
                Some(json!({"except_date": given}))
            ),
            (201, Value::Null)
        );
    }
    let (_, got) = s.call("GET", &format!("/scheduled_tasks/{id}"), "admin", None);
    assert_eq!(got["except_dates"], json!(["2124-02-11", "2124-02-12"]));
    // The list: starting before `start_before`, ending after `until_after`.
    let list = |q: &str| {
        let (status, v) = s.call("GET", &format!("/scheduled_tasks?{q}"), "admin", None);
        assert_eq!(status, 200, "{v}");
        v.as_array()
            .expect("list")
            .iter()
            .map(|t| t["id"].as_i64().expect("id"))
            .collect::<Vec<_>>()
    };
    let (_, second) = s.call(
        "POST",
        "/scheduled_tasks",
        "admin",
        Some(json!({"task_request": task_request(&[]), "schedules": [{"period": "hour", "at": ":30"}]})),
    );
    let id2 = second["id"].as_i64().expect("id");
    assert_eq!(list("start_before=5000000000&until_after=0"), [id, id2]);
    assert_eq!(list("start_before=1000&until_after=0"), [id2]);
    assert_eq!(
        list("start_before=5000000000&until_after=5000000001"),
        [id2]
    );
    assert_eq!(
        list("start_before=5000000000&until_after=0&order_by=-id"),
        [id2, id]
    );
    assert_eq!(
        list("start_before=5000000000&until_after=0&limit=1&offset=1"),
        [id2]
    );
    assert_eq!(
        s.call("GET", "/scheduled_tasks?until_after=0", "admin", None),
        (
            422,
            json!({"detail": [{"type": "missing", "loc": ["query", "start_before"], "msg": "Field required"}]})
        )
    );
    // Update replaces the request, schedules and bounds.
    let (status, updated) = s.call(
        "POST",
        &format!("/scheduled_tasks/{id}/update"),
        "admin",
        Some(json!({"task_request": task_request(&["zone=a"]),
            "schedules": [{"every": 2, "period": "minute", "at": ":15"}]})),
    );
    assert_eq!(status, 200, "{updated}");
    assert_eq!(
        updated["schedules"],
        json!([{"every": 2, "period": "minute", "at": ":15"}])
    );
    assert_eq!(updated["task_request"]["labels"], json!(["zone=a"]));
    assert_eq!(updated["start_from"], Value::Null);
    // Refusals: never runs, bad schedules, unknown ids, no permission.
    assert_eq!(
        s.call(
            "POST",
            "/scheduled_tasks",
            "admin",
            Some(json!({"task_request": task_request(&[]), "schedules": [{"period": "day", "at": "00:00"}],
                "start_from": 0, "until": 0}))
        ),
        (422, json!({"detail": "Task is never going to run"}))
    );
    let (status, v) = s.call(
        "POST",
        "/scheduled_tasks",
        "admin",
        Some(json!({"task_request": task_request(&[]), "schedules": [{"period": "day", "at": "25:00"}]})),
    );
    assert_eq!(status, 422, "{v}");
    let (status, v) = s.call(
        "POST",
        "/scheduled_tasks",
        "admin",
        Some(json!({"task_request": task_request(&[]), "schedules": [{"period": "fortnight", "at": ""}]})),
    );
    assert_eq!(
        (status, &v["detail"][0]["loc"]),
        (422, &json!(["body", "schedules", 0, "period"]))
    );
    assert_eq!(
        s.call("GET", "/scheduled_tasks/999", "admin", None),
        (404, json!({"detail": "Not Found"}))
    );
    assert_eq!(s.call("GET", "/scheduled_tasks/x", "admin", None).0, 422);
    if url.is_some() {
        assert_eq!(
            s.call("POST", "/scheduled_tasks", "mallory", Some(body)),
            (
                403,
                json!({"detail": "user mallory may not do this: it needs the permission {authz_grp: \"\", action: \"task_submit\"} through one of its roles"})
            )
        );
        assert_eq!(
            s.call("DELETE", &format!("/scheduled_tasks/{id}"), "mallory", None)
                .0,
            403
        );
    } else {
        // Users in memory are not enforced: anyone with a token schedules (as they dispatch).
        let (status, theirs) = s.call("POST", "/scheduled_tasks", "mallory", Some(body));
        assert_eq!((status, &theirs["created_by"]), (201, &json!("mallory")));
        let theirs = theirs["id"].as_i64().expect("id");
        assert_eq!(
            s.call(
                "DELETE",
                &format!("/scheduled_tasks/{theirs}"),
                "mallory",
                None
            ),
            (200, Value::Null)
        );
    }
    assert_eq!(
        common::call_as(SECRET, s.port, "GET", "/scheduled_tasks/1", None, None).0,
        401
    );
    assert_eq!(
        s.call("DELETE", &format!("/scheduled_tasks/{id}"), "admin", None),
        (200, Value::Null)
    );
    assert_eq!(
        s.call("GET", &format!("/scheduled_tasks/{id}"), "admin", None)
            .0,
        404
    );
    assert_eq!(list("start_before=5000000000&until_after=0"), [id2]);
}

#[test]
fn occurrences_fire_at_local_times_across_daylight_saving_and_not_on_except_dates() {
    let pg = cluster();
    occurrences_fire(Some(pg.url()));
}

#[test]
fn occurrences_fire_from_memory_without_a_store() {
    occurrences_fire(None);
}

/// Occurrences across the spring change, dispatched from the store at `url` or from memory.
fn occurrences_fire(url: Option<&str>) {
    // 2026-03-29 in Europe/Berlin: 02:00 CET becomes 03:00 CEST. 60,000 fake seconds a
    // second: the three days take about 4 s; the clock reaches the start 8 s from now.
    let rate = 60_000.0;
    let clock = FakeClock {
        start: ms("2026-03-28T00:00:00Z"),
        origin: wall_ms() + 8000,
        rate,
    };
    let s = serve(
        url,
        &clock,
        &[
            "--timezone",
            "Europe/Berlin",
            "--schedule-catch-up",
            "1000days",
            "--schedule-resend-after",
            "0s",
        ],
        &[],
    );
    assert!(
        clock.now() < clock.start,
        "the server started too slowly for this test"
    );
    let create = |schedules: Value, start: &str, until: &str| {
        let (status, v) = s.call(
            "POST",
            "/scheduled_tasks",
            "admin",
            Some(
                json!({"task_request": task_request(&["zone=a"]), "schedules": schedules,
                "start_from": start, "until": until}),
            ),
        );
        assert_eq!(status, 201, "{v}");
        v["id"].as_i64().expect("id")
    };
    let daily = create(
        json!([{"period": "day", "at": "02:30"}]),
        "2026-03-28T00:00:00Z",
        "2026-04-01T00:00:00Z",
    );
    let hourly = create(
        json!([{"every": 1, "period": "hour", "at": ":00"}]),
        "2026-03-29T00:00:00Z",
        "2026-03-29T03:00:00Z",
    );
    let sunday = create(
        json!([{"period": "sunday", "at": "09:00"}]),
        "2026-03-28T00:00:00Z",
        "2026-04-01T00:00:00Z",
    );
    // No daily occurrence on Monday the 30th (given as an instant of that local date).
    assert_eq!(
        s.call(
            "POST",
            &format!("/scheduled_tasks/{daily}/except_date"),
            "admin",
            Some(json!({"except_date": "2026-03-30T12:00:00+02:00"}))
        ),
        (201, Value::Null)
    );
    clock.sleep_until(ms("2026-04-01T00:00:00Z"));
    let expected: [(i64, &[&str]); 3] = [
        (
            daily,
            &[
                "2026-03-28T01:30:00Z", // 02:30 CET
                "2026-03-29T01:30:00Z", // 02:30 does not exist: 03:30 CEST
                "2026-03-31T00:30:00Z", // 02:30 CEST (the 30th excepted)
            ],
        ),
        (
            hourly,
            &[
                "2026-03-29T00:00:00Z", // 01:00 CET
                "2026-03-29T01:00:00Z", // 03:00 CEST: one hour later
                "2026-03-29T02:00:00Z",
                "2026-03-29T03:00:00Z",
            ],
        ),
        (sunday, &["2026-03-29T07:00:00Z"]), // 09:00 CEST
    ];
    for (id, occurrences) in expected {
        let want: Vec<(String, String)> = occurrences
            .iter()
            .map(|o| (o.to_string(), "dispatched".to_string()))
            .collect();
        let got = wait_for(30, "the runs to be answered", || {
            let r = runs(&s, id);
            (r.len() >= want.len() && r.iter().all(|(_, st)| st != "claimed")).then_some(r)
        });
        assert_eq!(got, want, "scheduled task {id}");
    }
    // What the loopback RMF link received: each occurrence once, with its label and the
    // requester, and the dispatched tasks are in the task list with their labels.
    let (status, published) = s.call("GET", "/_loopback/published", "admin", None);
    assert_eq!(status, 200);
    let mut labels: Vec<String> = dispatched_labels(published.as_array().expect("published"))
        .into_iter()
        .map(|(l, _)| l)
        .collect();
    labels.sort();
    let mut want: Vec<String> = expected
        .iter()
        .flat_map(|(id, occ)| occ.iter().map(move |o| format!("scheduled_task={id}@{o}")))
        .collect();
    want.sort();
    assert_eq!(labels, want);
    let (_, published) = s.call("GET", "/_loopback/published", "admin", None);
    let first: Value = serde_json::from_str(
        published[0]["message"]["json_msg"]
            .as_str()
            .expect("json_msg"),
    )
    .expect("json");
    assert_eq!(first["request"]["requester"], "admin");
    assert_eq!(first["request"]["category"], "patrol");
    assert_eq!(first["request"]["labels"][0], "zone=a");
    let (_, task) = s.call("GET", &format!("/scheduled_tasks/{daily}"), "admin", None);
    assert!(task["last_ran"].is_string(), "{task}");
}

#[test]
fn memory_keeps_a_bounded_number_of_scheduled_tasks() {
    let clock = FakeClock {
        start: ms("2124-02-10T00:00:00Z"),
        origin: wall_ms(),
        rate: 1.0,
    };
    let s = serve(None, &clock, &[], &[]);
    let body =
        json!({"task_request": task_request(&[]), "schedules": [{"period": "day", "at": "08:00"}]});
    let max = rmf_dash::scheduled::memory::MAX_TASKS;
    for _ in 0..max {
        let (status, v) = s.call("POST", "/scheduled_tasks", "admin", Some(body.clone()));
        assert_eq!(status, 201, "{v}");
    }
    assert_eq!(
        s.call("POST", "/scheduled_tasks", "admin", Some(body.clone())),
        (
            507,
            json!({"detail": format!("at most {max} scheduled tasks are kept in memory (this server runs with --no-db)")})
        )
    );
    assert_eq!(
        s.call("DELETE", "/scheduled_tasks/1", "admin", None),
        (200, Value::Null)
    );
    let (status, v) = s.call("POST", "/scheduled_tasks", "admin", Some(body));
    assert_eq!((status, &v["id"]), (201, &json!(max + 1)));
}

/// Counts, in the loopback journal, the dispatch requests of each occurrence label.
fn journal_counts(path: &std::path::Path) -> std::collections::BTreeMap<String, Vec<String>> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let published: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let mut counts = std::collections::BTreeMap::<String, Vec<String>>::new();
    for (label, request_id) in dispatched_labels(&published) {
        counts.entry(label).or_default().push(request_id);
    }
    counts
}

/// The stored task states (PostgreSQL) with a label starting with `prefix`.
fn stored_states_with_prefix(url: &str, prefix: &str) -> i64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let c = rmf_dash::store::connect(url).await.expect("connect");
        c.query_one(
            "SELECT count(*) FROM task_state \
             WHERE EXISTS (SELECT 1 FROM unnest(labels) l WHERE starts_with(l, $1))",
            &[&prefix],
        )
        .await
        .expect("query")
        .get(0)
    })
}

fn stored_states_with_label(url: &str, label: &str) -> i64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let c = rmf_dash::store::connect(url).await.expect("connect");
        c.query_one(
            "SELECT count(*) FROM task_state WHERE labels @> ARRAY[$1::text]",
            &[&label],
        )
        .await
        .expect("query")
        .get(0)
    })
}

#[test]
fn each_occurrence_is_dispatched_exactly_once_across_kill_9() {
    let pg = cluster();
    let dir = tempfile::tempdir().expect("temp dir");
    let journal = dir.path().join("loopback.jsonl");
    let journal_env = journal.to_str().expect("path").to_string();
    // Every 5 fake minutes from 08:00 to 09:30 (19 occurrences); 100 fake seconds a second:
    // 3 s between occurrences.
    let clock = FakeClock {
        start: ms("2026-01-10T08:00:00Z"),
        origin: wall_ms() + 6000,
        rate: 100.0,
    };
    let flags = [
        "--timezone",
        "America/Chicago",
        "--schedule-catch-up",
        "30m",
        "--schedule-resend-after",
        "1s",
    ];
    let start = |pause: Option<&str>| {
        let mut env = vec![("RMF_DASH_LOOPBACK_JOURNAL", journal_env.as_str())];
        if let Some(p) = pause {
            env.push(("RMF_DASH_TEST_SCHEDULE_PAUSE", p));
        }
        let s = serve(Some(pg.url()), &clock, &flags, &env);
        // Right after a `kill -9` the killed process's session may still hold the site's lock
        // for a moment: the new one answers as a standby (503) until it takes over.
        wait_for(30, "the restarted process to be active", || {
            let (_, health) = s.call("GET", "/health", "admin", None);
            (health["role"] == "active").then_some(())
        });
        s
    };
    let s = start(None);
    let (status, v) = s.call(
        "POST",
        "/scheduled_tasks",
        "admin",
        Some(json!({"task_request": task_request(&[]),
            "schedules": [{"every": 5, "period": "minute", "at": ":00"}],
            "start_from": "2026-01-10T08:00:00Z", "until": "2026-01-10T09:30:00Z"})),
    );
    assert_eq!(status, 201, "{v}");
    let id = v["id"].as_i64().expect("id");
    let label = |t: &str| format!("scheduled_task={id}@{t}");
    let occurrences: Vec<String> = (0..19)
        .map(|i| rfc(ms("2026-01-10T08:00:00Z") + i * 300_000))
        .collect();
    // Kills happen between occurrences: 1 to 3.5 fake minutes after one (1.8 s of margin
    // before the next), once everything claimed so far is answered and recorded, and the task
    // states of the answers are in the store.
    let prefix = format!("scheduled_task={id}@");
    let kill_between = |s: Server, min_dispatched: usize| {
        wait_for(60, "a quiet moment between occurrences", || {
            let r = runs(&s, id);
            let settled = r.len() >= min_dispatched
                && r.iter().all(|(_, st)| st == "dispatched")
                && stored_states_with_prefix(pg.url(), &prefix) == r.len() as i64;
            let into = (clock.now() - ms("2026-01-10T08:00:00Z")).rem_euclid(300_000);
            (settled && (60_000..210_000).contains(&into)).then_some(())
        });
        s.kill9();
    };

    // 1. Killed in the middle of an interval, after two occurrences.
    kill_between(s, 2);

    // 2. Killed with an occurrence claimed and not sent: it is sent after the restart.
    let s = start(Some("after_claim"));
    let claimed = wait_for(60, "a claimed occurrence", || {
        runs(&s, id)
            .into_iter()
            .filter(|(_, st)| st == "claimed")
            .map(|(o, _)| o)
            .next_back()
    });
    s.kill9();
    assert!(
        !journal_counts(&journal).contains_key(&label(&claimed)),
        "{claimed} was sent before the kill"
    );
    let s = start(None);
    wait_for(60, "the claimed occurrence to be sent again", || {
        runs(&s, id)
            .contains(&(claimed.clone(), "dispatched".into()))
            .then_some(())
    });
    kill_between(s, 0);

    // 3. Killed with an occurrence sent, answered and its task state stored, but its answer
    //    not recorded: it is not sent again.
    let s = start(Some("after_answer"));
    let answered = wait_for(60, "an answered, unrecorded occurrence", || {
        let claimed: Vec<String> = runs(&s, id)
            .into_iter()
            .filter(|(_, st)| st == "claimed")
            .map(|(o, _)| o)
            .collect();
        let all_stored = !claimed.is_empty()
            && claimed
                .iter()
                .all(|o| stored_states_with_label(pg.url(), &label(o)) == 1);
        // Between occurrences, so that no other claim is in flight.
        let into = (clock.now() - ms("2026-01-10T08:00:00Z")).rem_euclid(300_000);
        (all_stored && (60_000..210_000).contains(&into)).then(|| claimed[0].clone())
    });
    s.kill9();
    assert_eq!(journal_counts(&journal)[&label(&answered)].len(), 1);

    // 4. Runs to the end.
    let s = start(None);
    clock.sleep_until(ms("2026-01-10T09:31:00Z"));
    let final_runs = wait_for(60, "every occurrence to be answered", || {
        let r = runs(&s, id);
        (r.len() == 19 && r.iter().all(|(_, st)| st != "claimed")).then_some(r)
    });
    assert_eq!(
        final_runs,
        occurrences
            .iter()
            .map(|o| (o.clone(), "dispatched".to_string()))
            .collect::<Vec<_>>()
    );
    // The claim left unsent was sent again (a second attempt, same request id); the one left
    // unrecorded was confirmed from its stored task state, not sent again.
    let (_, full) = s.call("GET", &format!("/scheduled_tasks/{id}/runs"), "admin", None);
    let run_of = |o: &str| {
        full.as_array()
            .expect("runs")
            .iter()
            .find(|r| r["occurrence"].as_i64() == Some(ms(o)))
            .cloned()
            .expect("run")
    };
    assert_eq!(run_of(&claimed)["attempts"], 2);
    assert_eq!(run_of(&claimed)["detail"], Value::Null);
    assert_eq!(run_of(&answered)["attempts"], 2);
    assert_eq!(
        run_of(&answered)["detail"],
        "confirmed after a restart from the stored task state"
    );
    let resettled = full
        .as_array()
        .expect("runs")
        .iter()
        .filter(|r| r["attempts"] != 1)
        .count();
    assert!(resettled >= 2, "{full}");
    // One task (state) per occurrence in the store.
    wait_for(30, "19 stored task states", || {
        (stored_states_with_prefix(pg.url(), &prefix) >= 19).then_some(())
    });
    assert_eq!(stored_states_with_prefix(pg.url(), &prefix), 19);
    drop(s);
    // What "RMF" received: each occurrence exactly once, under the claim's request id.
    let counts = journal_counts(&journal);
    assert_eq!(
        counts.keys().cloned().collect::<Vec<_>>(),
        occurrences.iter().map(|o| label(o)).collect::<Vec<_>>()
    );
    for (l, ids) in &counts {
        assert_eq!(ids.len(), 1, "{l} was dispatched {} times", ids.len());
    }
    // The request id is derived from the occurrence: the re-sent one kept it.
    assert_eq!(
        counts[&label(&claimed)],
        vec![rmf_dash::scheduled::store::request_id(id, ms(&claimed))]
    );
}
