//! Who may stop the store, against the real binary over loopback, each test with its own data
//! directory or throwaway cluster under a temporary directory:
//!
//! - The private cluster of `--data-dir` has one owner (an OS lock in the directory): `store
//!   dump` beside a running `serve` reads the live store as a client and leaves it running, and
//!   `serve` stays active and goes on writing; a second `serve` on the same directory is a
//!   standby client whose exit does not stop the cluster; a client refuses, naming the directory
//!   and the owner's pid, when the owner's cluster does not accept connections.
//! - One site per store: a `serve` of another `--site-name` is refused at start with a clear
//!   error and status 2, before it takes a lock or a term; the first stays active and writes.
//!   A process fenced off by a newer term logs who holds it, then exits 75.
//!
//! Inputs are fleet states sent to `/_internal` (a fleet name each); "written" means that `store
//! dump` shows the fleet's room.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite;

mod common;
use common::{bin, cluster};

/// Conditions are waited for this long at most (never a timed assertion).
const DEADLINE: Duration = Duration::from_secs(60);

/// A running `rmf-dash serve` (killed on drop) on the port it chose, its log in a file.
struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// `rmf-dash serve --no-auth --rmf-link none --listen 127.0.0.1:0 ARGS`; returns once it
    /// says where it listens.
    fn start(dir: &Path, name: &str, args: &[&str]) -> Server {
        let log = dir.join(format!("{name}.log"));
        let child = bin()
            .args(["serve", "--no-auth", "--rmf-link", "none"])
            .args(["--listen", "127.0.0.1:0", "--leader-retry-ms", "100"])
            .args(args)
            .env("RMF_DASH_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start rmf-dash serve");
        let mut server = Server {
            child,
            port: 0,
            log,
        };
        server.port = wait_for(&format!("{name} listening"), || {
            let text = server.log_text();
            text.lines()
                .filter(|l| l.contains("listening"))
                .find_map(|l| l.split("addr=127.0.0.1:").nth(1))
                .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|p| p.parse::<u16>().ok())
        });
        server
    }

    /// Starts a server and waits until it is the active one of its site.
    fn active(dir: &Path, name: &str, args: &[&str]) -> Server {
        let server = Server::start(dir, name, args);
        wait_for(&format!("{name} active"), || {
            (server.health().1["role"] == "active").then_some(())
        });
        server
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `GET /health`: (status, JSON body).
    fn health(&self) -> (u16, Value) {
        match common::try_http(self.port, "GET", "/health", None, None) {
            Ok(r) => (r.status, r.value()),
            Err(_) => (0, Value::Null),
        }
    }

    /// Every sample of `/metrics`, as `name{labels}` -> value.
    fn metrics(&self) -> BTreeMap<String, f64> {
        let r = common::http(self.port, "GET", "/metrics", None, None);
        assert_eq!(r.status, 200);
        r.text()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.rsplit_once(' '))
            .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
            .collect()
    }

    /// Sends the state of fleet `name` as a fleet adapter does.
    fn send_fleet(&self, name: &str) {
        let url = format!("ws://127.0.0.1:{}/_internal", self.port);
        let (mut ws, _) = tungstenite::connect(url).expect("connect /_internal");
        let robot = json!({"name": "r1", "mutex_groups": {"locked": [], "requesting": []}});
        let frame =
            json!({"type": "fleet_state_update", "data": {"name": name, "robots": {"r1": robot}}});
        ws.send(tungstenite::Message::text(frame.to_string()))
            .expect("send");
        ws.close(None).expect("close");
        while ws.read().is_ok() {}
    }

    /// Asserts that the server is the active one of its site, term 1, and its store is up.
    fn assert_active(&self) {
        let (status, health) = self.health();
        assert_eq!(status, 200, "{health}\n{}", self.log_text());
        assert_eq!(health["role"], "active", "{health}");
        assert_eq!(health["leader"]["term"], 1, "{health}");
        assert_eq!(health["store"]["status"], "ok", "{health}");
    }

    /// SIGTERM, then its exit status.
    fn terminate(&mut self) -> ExitStatus {
        // SAFETY: a signal to our own child process.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.wait_exit()
    }

    fn wait_exit(&mut self) -> ExitStatus {
        let child = &mut self.child;
        wait_for("exit", || child.try_wait().ok().flatten())
    }
}

/// Polls `f` every 100 ms until it gives a value (at most [`DEADLINE`]).
fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < DEADLINE, "no {what} in {DEADLINE:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `rmf-dash store dump ARGS`.
fn dump(args: &[&str]) -> Output {
    bin()
        .args(["store", "dump"])
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("rmf-dash store dump")
}

/// Dumps (each dump must succeed) until the state of fleet `name` is in the store; the last
/// dump's (stdout, stderr).
fn dump_until_fleet(args: &[&str], name: &str) -> (String, String) {
    let room = format!("\"/fleets/{name}/state\"");
    wait_for(&format!("fleet {name} in the store"), || {
        let out = dump(args);
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        assert!(out.status.success(), "store dump failed: {stderr}");
        stdout.contains(&room).then_some((stdout, stderr))
    })
}

/// A dump read beside a writer is one snapshot: a checkpoint, and no input or output after it.
fn assert_exact_prefix(dump: &str) {
    let lines: Vec<Value> = dump
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let checkpoint = lines
        .iter()
        .find(|l| l["table"] == "checkpoint")
        .and_then(|l| l["time_ms"].as_i64())
        .unwrap_or_else(|| panic!("no checkpoint in the dump:\n{dump}"));
    let written = lines
        .iter()
        .filter(|l| {
            ["input_log", "output_history", "room_state"]
                .contains(&l["table"].as_str().unwrap_or_default())
        })
        .filter_map(|l| l["time_ms"].as_i64());
    for time in written {
        assert!(time <= checkpoint, "a row after the checkpoint:\n{dump}");
    }
}

/// A temporary directory and, in it, the data directory of a private cluster (canonical: the
/// binary names it so).
fn data_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().canonicalize().expect("canonical").join("data");
    (dir, data)
}

/// Whether the cluster of `data` runs (its postmaster's pid file is there).
fn cluster_runs(data: &Path) -> bool {
    data.join("postgresql/postmaster.pid").is_file()
}

const CLIENT_LINE: &str = "the private PostgreSQL belongs to another process (it holds the owner \
                           lock): connecting as a client; it keeps running when this process exits";

#[test]
fn store_dump_beside_serve_reads_the_live_store_and_leaves_serve_active() {
    let (dir, data) = data_dir();
    let d = data.to_str().expect("utf-8 path");
    let mut serve = Server::active(dir.path(), "serve", &["--data-dir", d]);
    assert_eq!(serve.metrics()["rmf_dash_store_private_cluster_owner"], 1.0);
    serve.send_fleet("before-dump");
    let (stdout, stderr) = dump_until_fleet(&["--data-dir", d], "before-dump");
    assert_exact_prefix(&stdout);
    assert!(stderr.contains(CLIENT_LINE), "{stderr}");
    assert!(
        stderr.contains(&format!("owner_pid={}", serve.child.id())),
        "{stderr}"
    );
    // The dump has exited: the cluster still runs and serve is still active, writing.
    assert!(cluster_runs(&data), "the dump stopped the cluster");
    serve.assert_active();
    serve.send_fleet("after-dump");
    dump_until_fleet(&["--data-dir", d], "after-dump");
    serve.assert_active();
    assert_eq!(
        serve.health().1["store"]["dropped_rows"],
        0,
        "{}",
        serve.log_text()
    );
    // The owner stops the cluster when it exits.
    assert!(serve.terminate().success(), "{}", serve.log_text());
    assert!(!cluster_runs(&data), "the owner left the cluster running");
    let lock = std::fs::read_to_string(data.join("owner.lock")).expect("owner.lock");
    assert_eq!(
        lock.split_whitespace().collect::<Vec<_>>(),
        [serve.child.id().to_string().as_str(), "stopped"]
    );
}

#[test]
fn a_second_serve_on_the_data_dir_is_a_client_and_does_not_stop_the_cluster() {
    let (dir, data) = data_dir();
    let d = data.to_str().expect("utf-8 path");
    let first = Server::active(dir.path(), "first", &["--data-dir", d]);
    let mut second = Server::start(dir.path(), "second", &["--data-dir", d]);
    wait_for("a standby second serve", || {
        let (status, health) = second.health();
        (status == 503 && health["role"] == "standby").then_some(())
    });
    assert!(
        second.log_text().contains(CLIENT_LINE),
        "{}",
        second.log_text()
    );
    assert!(second.terminate().success(), "{}", second.log_text());
    assert!(
        !second.log_text().contains("private PostgreSQL stopped"),
        "{}",
        second.log_text()
    );
    assert!(cluster_runs(&data), "the second serve stopped the cluster");
    first.assert_active();
    first.send_fleet("after-second");
    dump_until_fleet(&["--data-dir", d], "after-second");
    first.assert_active();
}

#[test]
fn a_client_refuses_a_cluster_its_owner_stopped_naming_the_dir_and_the_owner() {
    let (_dir, data) = data_dir();
    let d = data.to_str().expect("utf-8 path");
    // This test process owns the cluster, then stops it (an outage) and keeps the lock.
    let pg = rmf_dash::store::LocalPg::start(&data, Default::default()).expect("private cluster");
    assert!(pg.is_owner());
    pg.stop_server().expect("stop");
    let out = dump(&["--data-dir", d]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = format!(
        "error: local PostgreSQL in {d}/postgresql: it belongs to process {} (the holder of \
         {d}/owner.lock) and does not accept connections (its owner stopped it): only that \
         process starts or stops it; wait for it, stop it, or give --database-url",
        std::process::id()
    );
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(
        !cluster_runs(&data),
        "the refused client started the cluster"
    );
}

#[test]
fn a_second_site_on_one_database_is_refused_and_the_first_stays_active() {
    let (dir, _) = data_dir();
    let c = cluster();
    let url = c.url();
    let hotel = Server::active(
        dir.path(),
        "hotel",
        &["--database-url", url, "--site-name", "hotel"],
    );
    hotel.send_fleet("hotel-before");
    dump_until_fleet(&["--database-url", url], "hotel-before");
    let writer = hotel.health().1["leader"]["writer"]
        .as_str()
        .expect("writer")
        .to_string();

    let mut clinic = Server::start(
        dir.path(),
        "clinic",
        &["--database-url", url, "--site-name", "clinic"],
    );
    assert_eq!(clinic.wait_exit().code(), Some(2), "{}", clinic.log_text());
    let expected = format!(
        "error: this store belongs to site \"hotel\" (first claimed by {writer}), not to this \
         process's site \"clinic\" (--site-name): one site per database; use another database \
         or schema for site \"clinic\""
    );
    assert!(
        clinic.log_text().contains(&expected),
        "{}",
        clinic.log_text()
    );
    // Refused before any lock or term.
    assert!(
        !clinic.log_text().contains("leadership"),
        "{}",
        clinic.log_text()
    );
    let (terms, site) = c.sql(async |db| {
        let terms: Vec<(i64, String)> = db
            .query("SELECT term, site FROM leader_terms ORDER BY term", &[])
            .await
            .expect("leader_terms")
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let site: String = db
            .query_one("SELECT name FROM site", &[])
            .await
            .expect("site")
            .get(0);
        (terms, site)
    });
    assert_eq!(terms, [(1, "hotel".to_string())]);
    assert_eq!(site, "hotel");

    hotel.assert_active();
    hotel.send_fleet("hotel-after");
    dump_until_fleet(&["--database-url", url], "hotel-after");
    hotel.assert_active();
}

#[test]
fn a_fenced_process_logs_who_holds_the_newer_term_and_exits_75() {
    let (dir, _) = data_dir();
    let c = cluster();
    let mut hotel = Server::active(
        dir.path(),
        "hotel",
        &["--database-url", c.url(), "--site-name", "hotel"],
    );
    // Another process's term, as a takeover records it (without its lock: the fence alone
    // must stop this writer).
    c.sql(async |db| {
        db.batch_execute(
            "BEGIN;
             UPDATE leader SET term = 2;
             INSERT INTO leader_terms (term, writer, site, acquired_at)
                 VALUES (2, 'intruder[1]', 'hotel', now());
             COMMIT",
        )
        .await
        .expect("a newer term")
    });
    hotel.send_fleet("after-takeover");
    assert_eq!(hotel.wait_exit().code(), Some(75), "{}", hotel.log_text());
    let log = hotel.log_text();
    for line in [
        "fenced: the store's latest term belongs to another main process; this one writes \
         nothing more term=1 current=2 holder=intruder[1] holder_site=hotel",
        "stepped down (the store's term is 2, this process's 1: another main process is active); \
         exiting with status 75",
    ] {
        assert!(log.contains(line), "no {line:?} in:\n{log}");
    }
}
