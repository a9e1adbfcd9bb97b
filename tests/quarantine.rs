//! A poison input never crash-loops (issue 17): the real binary, with the test-only fault
//! injection `RMF_DASH_FAULT_PANIC_ON=poison` (an engine operator panics on the fleet state of
//! fleet `poison`), fed by a fleet adapter over `/_internal` that sends the poison among 40 other
//! fleet states, in the same frames burst, and sends them all again as adapters do.
//!
//! The test is the site's supervisor too: a server that exits is started again (as systemd's
//! `Restart=always` would), and the restarts are counted. Before the quarantine, every arrival
//! of the poison stopped the process (exit 70): a crash loop. Now the engine is rebuilt in place,
//! the poison is quarantined (once), skipped on every later arrival and on restore, and every
//! other input is processed and stored.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

mod common;
use common::{Cluster, Proc, Server, bin, cluster, hotel_recording};

const POISON: &str = "poison";
/// Normal fleets sent with the poison (half before it, half after it).
const FLEETS: usize = 40;
/// How often the adapter sends its fleet states.
const ROUNDS: usize = 4;
/// Restarts the test-supervisor allows itself before it gives up (a crash loop).
const MAX_RESTARTS: usize = 3;

/// Where the server keeps its state.
#[derive(Clone, Copy)]
enum Store<'a> {
    Db(&'a str),
    None,
}

/// `rmf-dash serve` with the fault injection, restarted when it exits (at most
/// [`MAX_RESTARTS`] times); every incarnation logs to its own file.
struct Supervised<'a> {
    store: Store<'a>,
    args: &'a [&'a str],
    dir: PathBuf,
    port: u16,
    child: Proc,
    log: PathBuf,
    incarnation: usize,
    /// How each previous incarnation ended (its exit code).
    exits: Vec<Option<i32>>,
}

impl<'a> Supervised<'a> {
    fn start(dir: &Path, store: Store<'a>, args: &'a [&'a str]) -> Supervised<'a> {
        let (child, port, log) = spawn(dir, store, args, 0, 0);
        let mut s = Supervised {
            store,
            args,
            dir: dir.to_path_buf(),
            port,
            child,
            log,
            incarnation: 0,
            exits: Vec::new(),
        };
        s.wait_active();
        s
    }

    /// Restarts the server if it has exited (the supervisor's job); whether it had.
    fn check(&mut self) -> bool {
        let Ok(Some(status)) = self.child.0.try_wait() else {
            return false;
        };
        self.exits.push(status.code());
        if self.exits.len() <= MAX_RESTARTS {
            self.incarnation += 1;
            let (child, _, log) = spawn(
                &self.dir,
                self.store,
                self.args,
                self.port,
                self.incarnation,
            );
            self.child = child;
            self.log = log;
            self.wait_active();
        }
        true
    }

    fn running(&mut self) -> bool {
        matches!(self.child.0.try_wait(), Ok(None))
    }

    /// Waits (at most 60 s) until `/health` answers 200 as the active process.
    fn wait_active(&mut self) {
        let start = Instant::now();
        loop {
            if let Some((200, body)) = get(self.port, "/health")
                && body["role"] == "active"
            {
                return;
            }
            if !self.running() {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "not active: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn health(&self) -> Value {
        get(self.port, "/health")
            .map(|(_, v)| v)
            .unwrap_or_default()
    }

    /// Every sample of `/metrics` named `rmf_dash_*`, as `name{labels}` -> value.
    fn metrics(&self) -> BTreeMap<String, f64> {
        let text = http_text(self.port, "/metrics").unwrap_or_default();
        text.lines()
            .filter(|l| l.starts_with("rmf_dash_"))
            .filter_map(|l| l.rsplit_once(' '))
            .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
            .collect()
    }

    /// The names of the fleets `GET /fleets` lists.
    fn fleets(&self) -> Vec<String> {
        let Some((200, v)) = get(self.port, "/fleets") else {
            return Vec::new();
        };
        let mut names: Vec<String> = v
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f["name"].as_str().map(str::to_string))
            .collect();
        names.sort();
        names
    }

    /// Waits (at most 60 s, restarting the server if it exits) until `done`; whether it came.
    fn wait_for(&mut self, mut done: impl FnMut(&Self) -> bool) -> bool {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            self.check();
            if self.running() && done(self) {
                return true;
            }
            if self.exits.len() > MAX_RESTARTS {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// SIGTERM, then waits for a clean exit.
    fn stop(mut self) {
        // SAFETY: a signal to our own child process.
        unsafe { libc::kill(self.child.0.id() as i32, libc::SIGTERM) };
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.0.try_wait() {
                assert!(status.success(), "{status}: {}", self.log_text());
                return;
            }
            assert!(start.elapsed() < Duration::from_secs(60), "did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// `serve` with the fault injection and `args`, on the loopback `port` (0: a free one); its
/// port and log.
fn spawn(
    dir: &Path,
    store: Store<'_>,
    args: &[&str],
    port: u16,
    incarnation: usize,
) -> (Proc, u16, PathBuf) {
    let log = dir.join(format!("server-{incarnation}.log"));
    let stderr = std::fs::File::create(&log).expect("log file");
    let server = Server::serve()
        .args(["--no-auth", "--rmf-link", "none"])
        .args(args);
    let server = match store {
        Store::Db(url) => server.args(["--database-url", url]),
        Store::None => server.arg("--no-db"),
    };
    let (child, port) = server
        .with(|cmd| {
            cmd.env("RMF_DASH_FAULT_PANIC_ON", POISON)
                .env("RMF_DASH_LOG", "info")
                .stderr(stderr);
        })
        .on_port(port)
        .start();
    (child, port, log)
}

/// One GET on a fresh connection: the status and the body as JSON (`Null` if it is not).
fn get(port: u16, path: &str) -> Option<(u16, Value)> {
    let (status, body) = http(port, path)?;
    Some((status, serde_json::from_str(&body).unwrap_or(Value::Null)))
}

fn http_text(port: u16, path: &str) -> Option<String> {
    http(port, path).map(|(_, body)| body)
}

fn http(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.get(9..12)?.parse().ok()?;
    let (_, body) = text.split_once("\r\n\r\n")?;
    Some((status, body.to_string()))
}

/// A fleet state with one robot (a poison fleet has none: its state is its only input).
fn fleet_frame(name: &str) -> String {
    let robots = if name == POISON {
        json!({})
    } else {
        json!({"r": {"name": "r", "battery": 0.5, "location": {"map": "L1", "x": 1.0, "y": 2.0, "yaw": 0.0}}})
    };
    json!({"type": "fleet_state_update", "data": {"name": name, "robots": robots}}).to_string()
}

fn normal(i: usize) -> String {
    format!("f{i:02}")
}

/// Half the normal fleets, the poison, the other half: one burst (inputs of one tick share an
/// engine command with the poison).
fn burst() -> Vec<String> {
    let mut frames: Vec<String> = (0..FLEETS / 2).map(|i| fleet_frame(&normal(i))).collect();
    frames.push(fleet_frame(POISON));
    frames.extend((FLEETS / 2..FLEETS).map(|i| fleet_frame(&normal(i))));
    frames
}

/// Sends `frames` on one adapter connection; whether it could (the server may be down).
fn send(port: u16, frames: &[String]) -> bool {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(send_frames(port, frames))
}

async fn send_frames(port: u16, frames: &[String]) -> bool {
    let Ok((mut ws, _)) = connect_async(format!("ws://127.0.0.1:{port}/_internal")).await else {
        return false;
    };
    for f in frames {
        if ws.feed(Message::text(f.as_str())).await.is_err() {
            return false;
        }
    }
    let sent = ws.flush().await.is_ok();
    let _ = ws.close(None).await;
    sent
}

fn quarantined(s: &Supervised) -> Option<u64> {
    s.health()["engine"]["quarantined"].as_u64()
}

fn metric(s: &Supervised, name: &str) -> f64 {
    s.metrics().get(name).copied().unwrap_or(-1.0)
}

fn names(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(normal).collect()
}

/// The adapter's first burst, then its re-sends, each after the previous one is handled; the
/// supervisor restarts the server whenever it exits. Returns once the fleets are all shown.
fn adapter_rounds(s: &mut Supervised<'_>) {
    for round in 0..ROUNDS {
        let sent = send(s.port, &burst());
        // Handled: the quarantine has its entry, the re-sent poison is skipped (or the process
        // has exited and restarted).
        let handled = s.wait_for(|s| {
            quarantined(s) == Some(1)
                && metric(s, "rmf_dash_quarantine_skipped_inputs_total") >= round as f64
                && s.fleets() == names(0..FLEETS)
        });
        eprintln!(
            "round {round}: sent {sent}, handled {handled}, exits so far {:?}",
            s.exits
        );
        if s.exits.len() > MAX_RESTARTS {
            break;
        }
    }
}

fn assert_no_crash_loop(s: &Supervised) {
    // What the server said of the panic, for the record.
    for line in s.log_text().lines() {
        if ["panick", "quarantin", "rebuil"]
            .iter()
            .any(|w| line.contains(w))
        {
            eprintln!("server: {line}");
        }
    }
    assert!(
        s.exits.is_empty(),
        "the server exited {} times (exit codes {:?}) with the poison input: a crash loop; last log:\n{}",
        s.exits.len(),
        s.exits,
        s.log_text()
    );
}

/// The quarantine's exact figures on `/health` and `/metrics`.
fn assert_quarantine(s: &Supervised, panics: f64, skipped: f64) {
    let health = s.health();
    let engine = &health["engine"];
    assert_eq!(engine["quarantined"], 1, "{health}");
    let last = &engine["last_quarantined"];
    assert_eq!(
        (&last["kind"], &last["key"]),
        (&json!("Fleet"), &json!(POISON))
    );
    assert_eq!(last["digest"].as_str().map(str::len), Some(64), "{last}");
    // A description, never the payload.
    assert!(!last.to_string().contains("robots"), "{last}");
    assert_eq!(metric(s, "rmf_dash_quarantined_inputs_total"), 1.0);
    assert_eq!(metric(s, "rmf_dash_engine_panics_total"), panics);
    assert_eq!(
        metric(s, "rmf_dash_quarantine_skipped_inputs_total"),
        skipped
    );
}

/// No periodic snapshot during the test: a restart feeds the whole input log, poison included,
/// and an in-place rebuild starts from the empty engine.
const NO_SNAPSHOT: [&str; 2] = ["--snapshot-every", "3600"];

#[test]
fn a_poison_input_is_quarantined_and_skipped_on_arrival_and_restore() {
    let pg: Cluster = cluster();
    let dir = tempfile::tempdir().expect("temp dir");
    let args = [NO_SNAPSHOT.as_slice(), &["--workers", "2"]].concat();
    let mut s = Supervised::start(dir.path(), Store::Db(pg.url()), &args);
    adapter_rounds(&mut s);
    assert_no_crash_loop(&s);
    // One panic (the first arrival); the three re-sends were skipped before the engine.
    assert_quarantine(&s, 1.0, (ROUNDS - 1) as f64);
    assert_eq!(s.fleets(), names(0..FLEETS));
    assert_eq!(get(s.port, "/fleets/poison/state").map(|r| r.0), Some(404));
    // Stored: everything up to the output frontier, then the exact rows.
    let frontier = s.health()["engine"]["output_frontier_ms"]
        .as_u64()
        .expect("frontier");
    assert!(s.wait_for(|s| s.health()["store"]["checkpoint_ms"].as_u64() >= Some(frontier)));
    let rows = pg.sql(async |c| {
        let q = c
            .query(
                "SELECT kind, key, length(digest), source FROM quarantine",
                &[],
            )
            .await
            .expect("quarantine rows");
        let quarantine: Vec<(String, String, i32, String)> = q
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect();
        let rooms: i64 = c
            .query_one(
                "SELECT count(*) FROM room_state WHERE room LIKE '/fleets/%/state'",
                &[],
            )
            .await
            .expect("rooms")
            .get(0);
        (quarantine, rooms)
    });
    let (quarantine, rooms) = rows;
    // The fleet inputs of the input log, counted by key (its blocks, decoded by the dump).
    let mut counts = std::collections::BTreeMap::<String, i64>::new();
    for line in pg.dump().lines() {
        let v: Value = serde_json::from_str(line).expect("dump line");
        if v["table"] == "input_log" && v["kind"] == "Fleet" {
            *counts
                .entry(v["key"].as_str().unwrap_or_default().into())
                .or_default() += 1;
        }
    }
    let logged: Vec<(String, i64)> = counts.into_iter().collect();
    assert_eq!(
        quarantine,
        vec![("Fleet".into(), POISON.into(), 64, "live".into())]
    );
    assert_eq!(rooms, FLEETS as i64);
    // The input log keeps what arrived (the poison too, for the record); restore skips it.
    let mut want: Vec<(String, i64)> = names(0..FLEETS)
        .into_iter()
        .map(|n| (n, ROUNDS as i64))
        .collect();
    want.push((POISON.into(), ROUNDS as i64));
    want.sort();
    assert_eq!(logged, want);
    s.stop();

    // A restart restores the whole input log without panicking: the quarantine comes from the
    // store, the poison is skipped on restore and on a new arrival, and a new fleet is taken.
    let mut s = Supervised::start(dir.path(), Store::Db(pg.url()), &args);
    assert!(s.wait_for(|s| s.fleets() == names(0..FLEETS)));
    assert!(send(
        s.port,
        &[fleet_frame(POISON), fleet_frame(&normal(FLEETS))]
    ));
    assert!(s.wait_for(|s| s.fleets() == names(0..FLEETS + 1)));
    assert_no_crash_loop(&s);
    // Skipped: the poison's arrivals in the input log, then the new one.
    assert_quarantine(&s, 0.0, (ROUNDS + 1) as f64);
    let log = s.log_text();
    assert!(!log.contains("panicked"), "{log}");
    assert!(
        log.contains(&format!("quarantined={ROUNDS}")),
        "restore skipped the poison {ROUNDS} times: {log}"
    );
    s.stop();
}

#[test]
fn without_a_store_the_quarantine_is_kept_in_memory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut s = Supervised::start(dir.path(), Store::None, &NO_SNAPSHOT);
    adapter_rounds(&mut s);
    assert_no_crash_loop(&s);
    assert_quarantine(&s, 1.0, (ROUNDS - 1) as f64);
    assert_eq!(s.fleets(), names(0..FLEETS));
    s.stop();
}

/// The dump of the hotel recording replayed into a fresh store (no poison).
fn reference_dump() -> String {
    let c = cluster();
    let out = bin()
        .args(["replay", "--database-url", c.url()])
        .arg(hotel_recording())
        .output()
        .expect("replay");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    c.dump()
}

/// Determinism through a rebuild (DESIGN.md invariants 2 and 6): the recording replayed by
/// `serve` (2 workers, a snapshot every 10 s of logical time: the rebuild starts from the latest
/// one, in memory), the poison sent in the middle; the store then holds exactly what a replay
/// without the poison stores, but the poison's arrival in the input log.
#[test]
fn a_rebuild_mid_replay_stores_exactly_what_a_run_without_the_poison_stores() {
    let reference = reference_dump();
    let pg = cluster();
    let dir = tempfile::tempdir().expect("temp dir");
    let recording = hotel_recording().to_str().expect("utf-8 path").to_string();
    let args = [
        "--workers",
        "2",
        "--speed",
        "30",
        "--replay",
        recording.as_str(),
    ];
    let mut s = Supervised::start(dir.path(), Store::Db(pg.url()), &args);
    // 60 s of the recording in (several snapshots taken), then the poison.
    let input_time = |s: &Supervised| s.health()["engine"]["input_time_ms"].as_u64();
    let mut first = None;
    assert!(s.wait_for(|s| {
        let now = input_time(s).filter(|t| *t > 0);
        first = first.or(now);
        now.zip(first)
            .is_some_and(|(now, first)| now >= first + 60_000)
    }));
    assert!(send(s.port, &[fleet_frame(POISON)]));
    assert!(s.wait_for(|s| quarantined(s) == Some(1)));
    let finished = |s: &Supervised| s.log_text().contains("replay finished");
    assert!(s.wait_for(finished));
    let last: u64 = reference
        .lines()
        .find(|l| l.contains(r#""table":"checkpoint""#))
        .and_then(|l| serde_json::from_str::<Value>(l).ok())
        .and_then(|v| v["time_ms"].as_u64())
        .expect("reference checkpoint");
    assert!(s.wait_for(|s| s.health()["store"]["checkpoint_ms"].as_u64() >= Some(last)));
    assert_no_crash_loop(&s);
    assert_quarantine(&s, 1.0, 0.0);
    assert!(s.log_text().contains("engine rebuilt in place"));
    s.stop();
    let dump = pg.dump();
    let (poison, rest): (Vec<&str>, Vec<&str>) = dump
        .lines()
        .partition(|l| l.contains(&format!(r#""key":"{POISON}""#)));
    assert_eq!(poison.len(), 1, "the poison's arrival in the input log");
    assert!(
        poison[0].contains(r#""table":"input_log""#),
        "{}",
        poison[0]
    );
    let want: Vec<&str> = reference.lines().collect();
    assert_eq!(rest.len(), want.len());
    let differ: Vec<_> = rest
        .iter()
        .zip(&want)
        .filter(|(a, b)| a != b)
        .take(3)
        .collect();
    assert!(differ.is_empty(), "first differences: {differ:?}");
}

/// Without a recovery point (no snapshots, and a tail bound of 10 inputs soon past: only the
/// inputs in flight are kept), the poison, alone in flight, is quarantined in the store and the
/// process exits (70) once; restarted, it skips the poison the adapter sends again.
#[test]
fn without_a_recovery_point_the_process_restarts_once() {
    let pg = cluster();
    let dir = tempfile::tempdir().expect("temp dir");
    let args = ["--snapshot-every", "0", "--recovery-inputs", "10"];
    let mut s = Supervised::start(dir.path(), Store::Db(pg.url()), &args);
    let fleets: Vec<String> = (0..FLEETS).map(|i| fleet_frame(&normal(i))).collect();
    assert!(send(s.port, &fleets));
    assert!(s.wait_for(|s| s.fleets() == names(0..FLEETS)));
    let frontier = s.health()["engine"]["output_frontier_ms"].as_u64();
    assert!(s.wait_for(|s| s.health()["store"]["checkpoint_ms"].as_u64() >= frontier));
    assert!(send(s.port, &[fleet_frame(POISON)]));
    assert!(s.wait_for(|s| !s.exits.is_empty()));
    // The adapter sends its state again to the restarted server.
    assert!(send(s.port, &burst()));
    assert!(s.wait_for(|s| {
        metric(s, "rmf_dash_quarantine_skipped_inputs_total") >= 1.0
            && s.fleets() == names(0..FLEETS)
    }));
    assert_eq!(s.exits, vec![Some(70)], "{}", s.log_text());
    assert_quarantine(&s, 0.0, 1.0);
    let rows = pg.sql(async |c| {
        c.query("SELECT kind, key, source FROM quarantine", &[])
            .await
            .expect("quarantine rows")
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect::<Vec<(String, String, String)>>()
    });
    assert_eq!(rows, vec![("Fleet".into(), POISON.into(), "live".into())]);
    s.stop();
}
