//! Helpers shared by the integration tests (each test file is its own crate and takes what it
//! needs with `mod common;`): the binary under test, its servers on ports of their own choosing
//! ([`Server`]), processes killed on drop, JWTs, one HTTP/1.1 request, recordings and the
//! engine's final values, JSON compared as JavaScript prints it, throwaway PostgreSQL clusters,
//! the project's python and node clients, and an in-process engine run (with snapshots, or
//! restored from one).

#![allow(dead_code)] // every test crate uses its own share of these

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use rmf_dash::store::LocalPg;
use rmf_dash::store::local_pg::LocalOptions;

/// The `rmf-dash` binary of this build.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rmf-dash"))
}

/// The repository's root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// An `rmf-dash serve` or `proxy` to start on a loopback port of its own choosing
/// (`--listen 127.0.0.1:0`, the port read back from `--listen-file`): no port is freed first and
/// then taken, so no other process can take it in between. Output goes nowhere unless set.
pub struct Server {
    cmd: Command,
    port: u16,
}

impl Server {
    pub fn serve() -> Server {
        Server::of(bin(), "serve")
    }

    pub fn proxy() -> Server {
        Server::of(bin(), "proxy")
    }

    /// `rmf-dash serve` of another build (`RMF_DASH_BIN`, to show a test failing on it).
    pub fn serve_of(program: Option<std::ffi::OsString>) -> Server {
        Server::of(program.map_or_else(bin, Command::new), "serve")
    }

    fn of(mut cmd: Command, subcommand: &str) -> Server {
        cmd.arg(subcommand)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        Server { cmd, port: 0 }
    }

    pub fn arg(mut self, arg: impl AsRef<std::ffi::OsStr>) -> Server {
        self.cmd.arg(arg);
        self
    }

    pub fn args<S: AsRef<std::ffi::OsStr>>(mut self, args: impl IntoIterator<Item = S>) -> Server {
        self.cmd.args(args);
        self
    }

    /// Anything else of the command (environment, output).
    pub fn with(mut self, f: impl FnOnce(&mut Command)) -> Server {
        f(&mut self.cmd);
        self
    }

    /// This port rather than a free one: a process restarted where its clients expect it.
    pub fn on_port(mut self, port: u16) -> Server {
        self.port = port;
        self
    }

    /// Starts it and waits (at most 60 s) until it listens; its port.
    pub fn start(mut self) -> (Proc, u16) {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("listening");
        self.cmd
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--listen-file")
            .arg(&file);
        let mut child = Proc(self.cmd.spawn().expect("rmf-dash"));
        let start = Instant::now();
        loop {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            if let Some(port) = text
                .trim()
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse().ok())
            {
                return (child, port);
            }
            if let Some(status) = child.0.try_wait().expect("wait") {
                panic!("rmf-dash ended before it listened: {status}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "rmf-dash did not listen within 60 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A process killed (-9) when dropped.
pub struct Proc(pub Child);

impl Proc {
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A JWT as rmf-web's dashboard sends it (audience `rmf_api_server`, valid for an hour),
/// signed with the HS256 `secret`.
pub fn token(secret: &str, user: &str) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 3600;
    let claims =
        serde_json::json!({"aud": "rmf_api_server", "exp": exp, "preferred_username": user});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("token")
}

/// The answer to one HTTP/1.1 request.
pub struct Reply {
    pub status: u16,
    /// The status line and headers, as received.
    pub head: String,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl Reply {
    /// The value of the header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<String> {
        self.head
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON: `Null` when empty, a JSON string of the text when it is not JSON.
    pub fn value(&self) -> Value {
        let text = self.text();
        if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        }
    }

    /// The body as JSON (panics when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// One request on a fresh connection to the loopback `port` (`Connection: close`), with
/// `Authorization: {authorization}` when given and `body` as `application/json`.
pub fn try_http(
    port: u16,
    method: &str,
    path: &str,
    authorization: Option<&str>,
    body: Option<&str>,
) -> std::io::Result<Reply> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    let body = body.unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let rest = raw.get(split + 4..).unwrap_or_default();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut reply = Reply {
        status,
        head,
        body: Vec::new(),
    };
    let chunked = reply
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    reply.body = if chunked {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    Ok(reply)
}

/// [`try_http`], panicking when the connection fails.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    authorization: Option<&str>,
    body: Option<&str>,
) -> Reply {
    try_http(port, method, path, authorization, body)
        .unwrap_or_else(|e| panic!("{method} {path} on port {port}: {e}"))
}

/// One request as `user` (none: no token) with a token signed by `secret`, and `body`:
/// (status, JSON body or `Null`).
pub fn call_as(
    secret: &str,
    port: u16,
    method: &str,
    path: &str,
    user: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let auth = user.map(|u| bearer(&token(secret, u)));
    let body = body.map(|b| b.to_string());
    let reply = http(port, method, path, auth.as_deref(), body.as_deref());
    (
        reply.status,
        serde_json::from_slice(&reply.body).unwrap_or(Value::Null),
    )
}

/// `Bearer {token}`, for [`http`]'s `authorization`.
pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// A chunked body's data (what is cut short is dropped).
fn dechunk(mut s: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = s.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&s[..end]);
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        let data = &s[end + 2..];
        if n == 0 || data.len() < n {
            break;
        }
        out.extend_from_slice(&data[..n]);
        s = data[n..].strip_prefix(b"\r\n").unwrap_or(&data[n..]);
    }
    out
}

/// Runs `cmd`, which must succeed (its stderr is the failure's message); its stdout.
pub fn stdout_of(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{:?}: {e}", cmd.get_program()));
    assert!(
        out.status.success(),
        "{:?}: {}",
        cmd.get_args().collect::<Vec<_>>(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// `rmf-dash trace gen ARGS --no-ws -o PATH`, which must succeed; PATH.
pub fn trace_gen(path: &Path, args: &[&str]) -> PathBuf {
    stdout_of(
        bin()
            .args(["trace", "gen"])
            .args(args)
            .args(["--no-ws", "-o"])
            .arg(path),
    );
    path.to_path_buf()
}

/// The hotel recording with every scenario (300 s), generated once per test crate.
pub fn hotel_recording() -> &'static Path {
    static REC: OnceLock<(PathBuf, tempfile::TempDir)> = OnceLock::new();
    &REC.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("hotel.mcap");
        let args = [
            "--preset",
            "hotel",
            "--duration",
            "300s",
            "--scenario",
            "all",
        ];
        (trace_gen(&path, &args), dir)
    })
    .0
}

/// [`emitted`] of [`hotel_recording`], computed once per test crate.
pub fn hotel_emitted() -> &'static str {
    static OUT: OnceLock<String> = OnceLock::new();
    OUT.get_or_init(|| emitted(hotel_recording()))
}

/// `rmf-dash replay RECORDING --no-db --emit jsonl`: every output change, one JSON per line.
pub fn emitted(recording: &Path) -> String {
    stdout_of(
        bin()
            .arg("replay")
            .arg(recording)
            .args(["--no-db", "--emit", "jsonl"]),
    )
}

/// The engine's final value of every room that has one at the end of the recording.
pub fn final_values(recording: &Path) -> BTreeMap<String, Value> {
    let mut last: BTreeMap<String, Option<Value>> = BTreeMap::new();
    for line in emitted(recording).lines() {
        let v: Value = serde_json::from_str(line).expect("line");
        let room = v["room"].as_str().unwrap_or_default().to_string();
        // Within a time retractions come first, so a value retracted and not replaced is gone.
        if v["diff"] == 1 {
            last.insert(room, Some(v["value"].clone()));
        } else {
            last.insert(room, None);
        }
    }
    last.into_iter()
        .filter_map(|(r, v)| v.map(|v| (r, v)))
        .collect()
}

/// JSON equality with numbers compared as numbers (JavaScript prints 4.0 as 4), and the building
/// map's image URLs by their path (each server makes them absolute under its own public URL).
pub fn same_json(a: &Value, b: &Value) -> bool {
    const IMAGES: &str = "/building_map/images/";
    match (a, b) {
        (Value::String(x), Value::String(y)) if x.contains(IMAGES) && y.contains(IMAGES) => {
            x.find(IMAGES).map(|i| &x[i..]) == y.find(IMAGES).map(|i| &y[i..])
        }
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

/// rmf-web's document of a fleet adapter's `task_state` (what every interface sends of it).
pub fn rmf_web_task_state(data: &Value) -> Value {
    let text = rmf_dash_dataflows::model::shape::task_state(&data.to_string());
    serde_json::from_str(&text.expect("a task state")).expect("json")
}

/// rmf-web's document of a fleet adapter's `fleet_state`.
pub fn rmf_web_fleet_state(data: &Value) -> Value {
    let text = rmf_dash_dataflows::model::shape::fleet_state(&data.to_string());
    serde_json::from_str(&text.expect("a fleet state")).expect("json")
}

/// A throwaway PostgreSQL cluster (stopped, then its directory removed, on drop).
pub struct Cluster {
    pub pg: LocalPg,
    _dir: tempfile::TempDir,
}

pub fn cluster() -> Cluster {
    let dir = tempfile::tempdir().expect("temp dir");
    let pg =
        LocalPg::start(dir.path(), LocalOptions { unsafe_fast: true }).expect("local PostgreSQL");
    Cluster { pg, _dir: dir }
}

impl Cluster {
    pub fn url(&self) -> &str {
        self.pg.url()
    }

    /// Runs `f` with a connection to the cluster.
    pub fn sql<T>(&self, f: impl AsyncFnOnce(&tokio_postgres::Client) -> T) -> T {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let client = rmf_dash::store::connect(self.url()).await.expect("connect");
            f(&client).await
        })
    }

    /// `rmf-dash store dump` of the cluster.
    pub fn dump(&self) -> String {
        stdout_of(bin().args(["store", "dump", "--database-url", self.url()]))
    }
}

/// The project's python (with python-socketio and websocket-client: scripts/python-env.sh).
/// The environment is checked once per test crate.
pub fn python() -> Command {
    static READY: OnceLock<()> = OnceLock::new();
    READY.get_or_init(|| {
        let st = Command::new(repo().join("scripts/python-env.sh"))
            .status()
            .expect("python env");
        assert!(st.success(), "scripts/python-env.sh failed");
    });
    Command::new(repo().join(".venv/bin/python"))
}

/// What a real python-socketio client (`tests/python/sticky.py`) holds right after it subscribed
/// to `rooms` on the server at `port` with `token`: `{room: {"value", "seq", ...}}`.
pub fn sticky(port: u16, token: &str, rooms: &[&str]) -> Value {
    let out = python()
        .arg(repo().join("tests/python/sticky.py"))
        .arg(format!("http://127.0.0.1:{port}"))
        .arg(token)
        .args(rooms)
        .output()
        .expect("run tests/python/sticky.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON from tests/python/sticky.py")
}

/// `tests/node` with its packages installed (`npm ci` when one is missing).
pub fn node_dir() -> PathBuf {
    let dir = repo().join("tests/node");
    let installed = ["socket.io-client", "playwright-core"]
        .iter()
        .all(|p| dir.join("node_modules").join(p).exists());
    if !installed {
        let st = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--silent"])
            .current_dir(&dir)
            .status()
            .expect("npm");
        assert!(st.success(), "npm ci failed in tests/node");
    }
    dir
}

/// Runs the engine on `batches` (from `snapshot` when given); its outputs and snapshots.
pub fn run_engine(
    config: &rmf_dash::engine::EngineConfig,
    snapshot: Option<rmf_dash_dataflows::ops::snapshot::Snapshot>,
    batches: &[(u64, Vec<rmf_dash_dataflows::model::input::Input>)],
    last: u64,
) -> (
    Vec<rmf_dash::engine::Batch>,
    Vec<rmf_dash_dataflows::ops::snapshot::Snapshot>,
) {
    use rmf_dash::engine::Engine;
    let mut engine = match snapshot {
        Some(s) => Engine::start_restored(config.clone(), s).expect("the snapshot fits"),
        None => Engine::start(config.clone()).expect("engine"),
    };
    let mut outputs = engine.take_outputs().expect("outputs");
    let mut snapshots = engine.take_snapshots().expect("snapshots");
    let drain = std::thread::spawn(move || {
        let mut all = Vec::new();
        while let Some(b) = outputs.blocking_recv() {
            all.push(b);
        }
        all
    });
    for (t, batch) in batches {
        engine.input(*t, batch.clone()).expect("input");
    }
    engine.finish(last).expect("finish");
    let batches = drain.join().expect("drain");
    let mut taken = Vec::new();
    while let Ok(s) = snapshots.try_recv() {
        taken.push(s);
    }
    (batches, taken)
}
