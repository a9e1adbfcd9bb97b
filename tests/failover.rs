//! Failover of the main process against the real binaries, a real throwaway PostgreSQL cluster
//! and real socket.io clients on loopback: two `rmf-dash serve` of one site replaying a hotel
//! scenario recording into one store (one active, one standby) and a proxy following both.
//!
//! - `kill -9` of the active main: the standby takes over (the time is printed); the clients on
//!   the proxy stay connected, every value they get is the uninterrupted run's value of that
//!   room at that sequence number, no seq or logical time goes backwards, they end with the
//!   uninterrupted run's final values, and the store dump equals an uninterrupted run's.
//! - Network fault (`pg_terminate_backend` of every session of the active main): it stops
//!   writing and exits with status 75, the standby takes over; the store shows that the two
//!   never wrote at the same time (`leader_terms`), and its dump equals an uninterrupted run's.
//! - `takeover_time_over_ten_kills` (ignored: a measurement): p50 and max of 10 takeovers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::{
    Cluster, Proc, Server, bin, cluster, hotel_emitted, hotel_recording, node_dir, same_json,
    stdout_of,
};

/// The terms of `leader_terms`, in order.
fn terms(c: &Cluster) -> Vec<Term> {
    c.sql(async |db| {
        db.query(
            "SELECT term, writer, from_checkpoint_ms, last_checkpoint_ms, transactions,
                    extract(epoch FROM acquired_at)::float8,
                    extract(epoch FROM first_write_at)::float8,
                    extract(epoch FROM last_write_at)::float8
                 FROM leader_terms ORDER BY term",
            &[],
        )
        .await
        .expect("leader_terms")
        .iter()
        .map(|r| Term {
            term: r.get(0),
            writer: r.get(1),
            from: r.get(2),
            last: r.get(3),
            transactions: r.get(4),
            acquired: r.get(5),
            first_write: r.get(6),
            last_write: r.get(7),
        })
        .collect()
    })
}

#[derive(Debug)]
#[allow(dead_code)]
struct Term {
    term: i64,
    writer: String,
    from: Option<i64>,
    last: Option<i64>,
    transactions: i64,
    acquired: f64,
    first_write: Option<f64>,
    last_write: Option<f64>,
}

/// Successive terms never overlap: each starts from the checkpoint the previous one ended at,
/// and writes only after the previous one's last write.
fn assert_terms_never_overlap(terms: &[Term]) {
    for pair in terms.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        assert_eq!(b.term, a.term + 1, "{terms:?}");
        if a.transactions > 0 {
            assert_eq!(
                b.from, a.last,
                "term {} starts where {} ended",
                b.term, a.term
            );
            let last = a.last_write.expect("a wrote");
            assert!(b.acquired > last, "{terms:?}");
            if let Some(first) = b.first_write {
                assert!(first > last, "{terms:?}");
            }
        }
    }
}

/// The dump of an uninterrupted replay into a fresh store.
fn reference_dump() -> &'static str {
    static DUMP: OnceLock<String> = OnceLock::new();
    DUMP.get_or_init(|| {
        let c = cluster();
        stdout_of(
            bin()
                .args(["replay", "--database-url", c.url()])
                .arg(hotel_recording()),
        );
        c.dump()
    })
}

fn checkpoint_of(dump: &str) -> u64 {
    let line = dump
        .lines()
        .find(|l| l.starts_with("{\"table\":\"checkpoint\""))
        .expect("a checkpoint");
    serde_json::from_str::<Value>(line).expect("json")["time_ms"]
        .as_u64()
        .expect("time")
}

fn is_stream(room: &str) -> bool {
    room.starts_with("/alerts/") || room.ends_with("/log") || room == "/beacons"
}

/// Per room, the value of every sequence number in the uninterrupted run (as the hub numbers
/// them: one per time a state room changes, one per event of a stream room; `Null` when a
/// state room's value went away).
fn reference_seqs() -> &'static BTreeMap<String, BTreeMap<u64, Value>> {
    static SEQS: OnceLock<BTreeMap<String, BTreeMap<u64, Value>>> = OnceLock::new();
    SEQS.get_or_init(|| {
        let mut seqs: BTreeMap<String, BTreeMap<u64, Value>> = BTreeMap::new();
        let mut at: BTreeMap<String, (u64, u64, Value)> = BTreeMap::new();
        for line in hotel_emitted().lines() {
            let v: Value = serde_json::from_str(line).expect("json");
            let room = v["room"].as_str().expect("room").to_string();
            let t = v["time"].as_u64().expect("time");
            let e = at.entry(room.clone()).or_insert((0, u64::MAX, Value::Null));
            if is_stream(&room) {
                if v["diff"] == 1 {
                    e.0 += 1;
                    seqs.entry(room)
                        .or_default()
                        .insert(e.0, v["value"].clone());
                }
                continue;
            }
            if e.1 != t {
                e.0 += 1;
                e.1 = t;
            }
            if v["diff"] == 1 {
                e.2 = v["value"].clone();
            } else if e.2 == v["value"] {
                e.2 = Value::Null;
            }
            seqs.entry(room).or_default().insert(e.0, e.2.clone());
        }
        seqs
    })
}

/// The rooms the clients follow: state rooms of the recording (no tasks), and two streams.
fn rooms() -> Vec<String> {
    let mut rooms: Vec<String> = reference_seqs()
        .keys()
        .filter(|r| !r.starts_with("/tasks/") && !is_stream(r))
        .cloned()
        .collect();
    rooms.truncate(100);
    rooms.push("/alerts/requests".into());
    rooms.push("/fleets/tinyRobot/log".into());
    rooms
}

/// `GET path` on `port`: (status code, body); (0, "") when the connection fails.
fn get(port: u16, path: &str) -> (u16, String) {
    common::try_http(port, "GET", path, None, None)
        .map(|r| (r.status, r.text()))
        .unwrap_or_default()
}

fn health(port: u16) -> (u16, Value) {
    let (code, body) = get(port, "/health");
    (code, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// A main process (killed on drop).
struct Main {
    proc: Proc,
    port: u16,
    log: PathBuf,
}

fn main_process(url: &str, speed: &str, log: &Path) -> Main {
    main_process_with(url, speed, log, &[])
}

fn main_process_with(url: &str, speed: &str, log: &Path, extra: &[&str]) -> Main {
    let stderr = std::fs::File::create(log).expect("log file");
    let (proc, port) = Server::serve()
        .args([
            "--no-auth",
            "--rmf-link",
            "none",
            "--speed",
            speed,
            "--database-url",
            url,
            "--site-name",
            "hotel",
        ])
        .arg("--replay")
        .arg(hotel_recording())
        .args(extra)
        .with(|cmd| {
            cmd.stderr(stderr);
        })
        .start();
    let m = Main {
        proc,
        port,
        log: log.to_path_buf(),
    };
    m.wait_for(|code, _| code != 0, Duration::from_secs(30), "listening");
    m
}

impl Main {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn health(&self) -> (u16, Value) {
        health(self.port)
    }

    fn pid(&self) -> u32 {
        self.proc.0.id()
    }

    /// Polls `/health` until `done(code, body)`.
    fn wait_for(&self, done: impl Fn(u16, &Value) -> bool, limit: Duration, what: &str) {
        let start = Instant::now();
        loop {
            let (code, h) = self.health();
            if done(code, &h) {
                return;
            }
            assert!(
                start.elapsed() < limit,
                "{what}: /health {code} {h}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_active(&self) {
        self.wait_for(|c, _| c == 200, Duration::from_secs(60), "active");
    }

    fn wait_standby(&self) {
        self.wait_for(
            |c, h| c == 503 && h["status"] == "standby",
            Duration::from_secs(30),
            "standby",
        );
    }

    fn wait_log(&self, what: &str, limit: Duration) {
        let start = Instant::now();
        while !self.log().contains(what) {
            assert!(start.elapsed() < limit, "no {what:?} in:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait_checkpoint(&self, t: u64) {
        self.wait_for(
            |_, h| h["store"]["checkpoint_ms"].as_u64() >= Some(t),
            Duration::from_secs(120),
            "final checkpoint",
        );
    }

    /// SIGTERM, then waits for a clean exit (the writer writes what is left first).
    fn stop(mut self) {
        // SAFETY: a signal to our own child process.
        unsafe { libc::kill(self.proc.0.id() as i32, libc::SIGTERM) };
        let status = self.wait_exit(Duration::from_secs(60));
        assert!(status.success(), "{}", self.log());
    }

    fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.proc.0.try_wait() {
                return status;
            }
            assert!(
                start.elapsed() < limit,
                "serve did not exit:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A proxy following both main processes (killed on drop).
struct Proxy {
    _proc: Proc,
    port: u16,
}

fn proxy(upstreams: &[u16], log: &Path) -> Proxy {
    let urls: Vec<String> = upstreams
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();
    let stderr = std::fs::File::create(log).expect("log file");
    let (proc, port) = Server::proxy()
        .args(["--no-auth", "--upstream"])
        .arg(urls.join(","))
        .with(|cmd| {
            cmd.stderr(stderr);
        })
        .start();
    let start = Instant::now();
    while health(port).0 != 200 {
        assert!(start.elapsed() < Duration::from_secs(30), "proxy not ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    Proxy { _proc: proc, port }
}

/// Node socket.io clients following `rooms` on `port` until [`Clients::finish`].
struct Clients(Option<Child>, Option<ChildStdin>);

fn clients(port: u16, n: usize, rooms: &[String], file: &Path) -> Clients {
    let dir = node_dir();
    std::fs::write(file, rooms.join("\n")).expect("rooms file");
    let mut child = Command::new("node")
        .arg(dir.join("follow.mjs"))
        .arg(format!("http://127.0.0.1:{port}"))
        .arg("-")
        .arg(n.to_string())
        .arg(file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node");
    let stdin = child.stdin.take();
    Clients(Some(child), stdin)
}

impl Clients {
    fn finish(mut self) -> Value {
        drop(self.1.take());
        let out = self
            .0
            .take()
            .expect("running")
            .wait_with_output()
            .expect("node output");
        assert!(out.status.success(), "node clients failed");
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("summary: {e}: {}", String::from_utf8_lossy(&out.stdout)))
    }
}

impl Drop for Clients {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn the_standby_takes_over_a_killed_active_main_with_the_same_state() {
    let expected_dump = reference_dump();
    let final_time = checkpoint_of(expected_dump);
    let seqs = reference_seqs();
    let c = cluster();
    let logs = tempfile::tempdir().expect("temp dir");
    let a = main_process(c.url(), "10", &logs.path().join("a.log"));
    a.wait_active();
    let b = main_process(c.url(), "10", &logs.path().join("b.log"));
    b.wait_standby();
    // The standby serves nothing that writes or reads state.
    assert_eq!(get(b.port, "/doors").0, 503);
    let (code, body) = get(b.port, "/_internal");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("standby"), "{body}");
    assert!(
        get(b.port, "/metrics").1.contains("\nrmf_dash_leader 0"),
        "leader gauge"
    );
    assert!(get(a.port, "/metrics").1.contains("\nrmf_dash_leader 1"));
    let p = proxy(&[a.port, b.port], &logs.path().join("proxy.log"));
    let rooms = rooms();
    let on_proxy = clients(p.port, 5, &rooms, &logs.path().join("rooms"));
    // A has written a part of the run; then it dies.
    a.wait_for(
        |_, h| h["store"]["checkpoint_ms"].as_u64() > Some(0),
        Duration::from_secs(30),
        "something stored",
    );
    std::thread::sleep(Duration::from_secs(6));
    let mut a = a;
    a.proc.0.kill().expect("SIGKILL");
    let killed = Instant::now();
    let killed_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    a.proc.0.wait().expect("wait");
    b.wait_active();
    let takeover = killed.elapsed();
    eprintln!(
        "takeover after kill -9: {} ms (standby /health 200)",
        takeover.as_millis()
    );
    let (_, h) = b.health();
    assert_eq!(h["role"], "active", "{h}");
    assert_eq!(h["leader"]["term"], 2, "{h}");
    b.wait_log("replay finished", Duration::from_secs(120));
    b.wait_checkpoint(final_time);
    std::thread::sleep(Duration::from_secs(2));
    let s = on_proxy.finish();
    let mut brief = s.clone();
    if let Some(o) = brief.as_object_mut() {
        o.remove("log");
        o.remove("lastValues");
    }
    eprintln!(
        "clients on the proxy: {} events, longest pause {} ms, ending {} ms after the kill",
        s["events"],
        s["pauseMs"],
        s["pauseAt"].as_i64().unwrap_or(0) - killed_ms
    );
    // The proxy stayed up: one connection per client, a pause and nothing else.
    assert_eq!(s["connects"], 5, "{brief}");
    assert_eq!(s["disconnects"], 0, "{brief}");
    assert_eq!(s["subscribeErrors"].as_array().map(Vec::len), Some(0));
    assert_eq!(s["backwards"], 0, "{brief}");
    assert_eq!(s["duplicates"], 0, "{brief}");
    assert_eq!(s["timeBackwards"], 0, "{brief}");
    assert_eq!(s["disagree"], 0, "{brief}");
    // Every value seen is the uninterrupted run's value of that room at that seq.
    let mut checked = 0;
    let log = s["log"].as_object().expect("log");
    for (room, events) in log {
        let want = seqs
            .get(room)
            .unwrap_or_else(|| panic!("{room} not in the run"));
        for e in events.as_array().expect("events") {
            let seq = e[0].as_u64().expect("seq");
            let got: Value = serde_json::from_str(e[2].as_str().expect("value")).expect("json");
            let w = want
                .get(&seq)
                .unwrap_or_else(|| panic!("{room}: seq {seq} is not in the uninterrupted run"));
            if !same_json(&got, w) {
                let around: Vec<String> = events
                    .as_array()
                    .expect("events")
                    .iter()
                    .map(|e| format!("{}@{}", e[0], e[1]))
                    .collect();
                let terms = terms(&c);
                panic!(
                    "{room} seq {seq}: got {got}, the uninterrupted run has {w}\nclient: {around:?}\nterms: {terms:?}\nkilled at {killed_ms}\nproxy log: {}",
                    std::fs::read_to_string(logs.path().join("proxy.log")).unwrap_or_default()
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 1000, "{checked} events checked");
    // ... and they end with the run's final values.
    for room in &rooms {
        if is_stream(room) {
            continue;
        }
        let last = seqs[room].last_key_value().expect("values").1;
        let got: Value =
            serde_json::from_str(s["lastValues"][room].as_str().unwrap_or("null")).expect("json");
        assert!(
            same_json(&got, last),
            "{room}: ended with {got}, the run with {last}"
        );
    }
    let (_, ph) = health(p.port);
    assert_eq!(ph["upstream"]["connected"], true, "{ph}");
    assert_eq!(
        ph["upstream"]["url"],
        format!("http://127.0.0.1:{}", b.port),
        "{ph}"
    );
    assert!(b.log().contains("leadership acquired"), "{}", b.log());
    b.stop();
    assert_eq!(
        c.dump(),
        expected_dump,
        "the store equals an uninterrupted run's"
    );
    let terms = terms(&c);
    assert_eq!(terms.len(), 2, "{terms:?}");
    assert!(
        terms[0].writer.ends_with(&format!("[{}]", a.pid())),
        "{terms:?}"
    );
    assert!(
        terms[0].transactions > 0 && terms[1].transactions > 0,
        "{terms:?}"
    );
    assert_terms_never_overlap(&terms);
}

#[test]
fn an_active_main_that_loses_its_database_sessions_steps_down() {
    let expected_dump = reference_dump();
    let final_time = checkpoint_of(expected_dump);
    let c = cluster();
    let logs = tempfile::tempdir().expect("temp dir");
    // A tries the lock again only 6 s after losing it (2 x its retry period), so that B (every
    // 500 ms) takes over first even on a loaded machine: A must then step down. (Had nobody
    // taken over, A would carry on with its unchanged term, as after a database restart.)
    let mut a = main_process_with(
        c.url(),
        "10",
        &logs.path().join("a.log"),
        &["--leader-retry-ms", "3000"],
    );
    a.wait_active();
    let b = main_process(c.url(), "10", &logs.path().join("b.log"));
    b.wait_standby();
    a.wait_for(
        |_, h| h["store"]["checkpoint_ms"].as_u64() > Some(0),
        Duration::from_secs(30),
        "something stored",
    );
    std::thread::sleep(Duration::from_secs(4));
    // A network fault as PostgreSQL sees it: every session of A ends.
    let name = format!("rmf-dash[{}]", a.pid());
    // The cut is the moment the sessions have ended: `pg_terminate_backend(pid, timeout)` waits
    // until each backend is gone (a commit already under way when the signal lands still counts
    // as written before the cut).
    let (terminated, before, at) = c.sql(async |db| {
        let now = "SELECT extract(epoch FROM clock_timestamp())::float8";
        let before: f64 = db.query_one(now, &[]).await.expect("now").get(0);
        let rows = db
            .query(
                "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity \
                 WHERE application_name = $1",
                &[&name],
            )
            .await
            .expect("terminate");
        assert!(
            rows.iter().all(|r| r.get::<_, bool>(0)),
            "every session of {name} ended"
        );
        let at: f64 = db.query_one(now, &[]).await.expect("now").get(0);
        (rows.len(), before, at)
    });
    let cut = Instant::now();
    assert!(terminated >= 2, "{terminated} sessions of {name}");
    // A stops writing and steps down: exit status 75, for its supervisor to restart it.
    let status = a.wait_exit(Duration::from_secs(30));
    let exited = cut.elapsed();
    assert_eq!(status.code(), Some(75), "{}", a.log());
    let log = a.log();
    assert!(log.contains("lost the leadership lock"), "{log}");
    assert!(log.contains("stepped down"), "{log}");
    b.wait_active();
    eprintln!(
        "sessions terminated: A exited after {} ms, B active after {} ms",
        exited.as_millis(),
        cut.elapsed().as_millis()
    );
    // A restarted by its supervisor comes back as a standby.
    let a2 = main_process(c.url(), "10", &logs.path().join("a2.log"));
    a2.wait_standby();
    // Writing into the store is refused while the site has an active main process.
    let out = bin()
        .args(["replay", "--site-name", "hotel", "--database-url", c.url()])
        .arg(hotel_recording())
        .output()
        .expect("replay");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("holds the leadership lock"), "{err}");
    b.wait_log("replay finished", Duration::from_secs(120));
    b.wait_checkpoint(final_time);
    b.stop();
    // The restarted A takes over in turn (nothing is left to replay), then stops.
    a2.wait_active();
    a2.stop();
    assert_eq!(
        c.dump(),
        expected_dump,
        "the store equals an uninterrupted run's"
    );
    let terms = terms(&c);
    assert_eq!(terms.len(), 3, "{terms:?}");
    // A wrote nothing after its sessions ended; B wrote only after the fault began (and after
    // A's last write: `assert_terms_never_overlap`).
    let a_last = terms[0].last_write.expect("A wrote");
    assert!(a_last < at, "A's last write {a_last} after the cut {at}");
    assert!(terms[1].first_write.expect("B wrote") > before, "{terms:?}");
    assert_terms_never_overlap(&terms);
}

/// Takeover time over 10 kills (a measurement, printed): `cargo test --release --test failover
/// -- --ignored --nocapture`.
#[test]
#[ignore]
fn takeover_time_over_ten_kills() {
    let c = cluster();
    let logs = tempfile::tempdir().expect("temp dir");
    let mut mains: Vec<Main> = (0..2)
        .map(|i| main_process(c.url(), "1", &logs.path().join(format!("m{i}-0.log"))))
        .collect();
    mains[0].wait_active();
    mains[1].wait_standby();
    let mut times = Vec::new();
    // Kills land anywhere in the standby's retry period: 2 s plus a pseudo-random part.
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .subsec_nanos() as u64;
    for kill in 0..10 {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        std::thread::sleep(Duration::from_millis(2000 + (seed >> 33) % 1000));
        let active = if mains[0].health().0 == 200 { 0 } else { 1 };
        let standby = 1 - active;
        mains[active].proc.0.kill().expect("SIGKILL");
        let killed = Instant::now();
        mains[active].proc.0.wait().expect("wait");
        mains[standby].wait_active();
        let t = killed.elapsed();
        eprintln!("kill {kill}: takeover in {} ms", t.as_millis());
        times.push(t.as_millis() as u64);
        // Its supervisor restarts it: a standby.
        mains[active] = main_process(
            c.url(),
            "1",
            &logs.path().join(format!("m{active}-{}.log", kill + 1)),
        );
        mains[active].wait_standby();
    }
    times.sort_unstable();
    eprintln!(
        "takeover over {} kills: p50 {} ms, max {} ms ({times:?})",
        times.len(),
        times[times.len() / 2],
        times[times.len() - 1]
    );
}
