//! JSON depth and size at every door of `rmf-dash serve` (issue 17), against the real binary
//! with real clients (websockets, HTTP/1.1, python-socketio) and a real PostgreSQL store:
//!
//! - `/_internal`: frames nested 100,000 levels deep and one level over `--max-json-depth` are
//!   dropped and counted, never stored nor relayed, and so are numbers out of range and lone
//!   surrogates (which serde skips but refuses to read); the adapter's connection goes on and its
//!   next frame is taken; a task state one level under the bound (`data` 63 deep, its frame 64)
//!   is accepted, relayed to python-socketio and readable from `GET /tasks` and the store;
//!   an invalid-UTF-8 text frame closes its connection with 1007, a message over
//!   `--internal-max-frame` with 1009, both counted; every refusal is logged with the peer;
//! - REST: bodies over the depth bound (422, FastAPI's item naming the flag), over
//!   `--max-json-bytes` (413, with or without `Content-Length`), not UTF-8 or not JSON (422)
//!   are counted; a body at the bound is stored and read back whole;
//! - socket.io: event payloads over the bounds are refused with the acknowledgement and
//!   counted (python-socketio, and a raw Engine.IO client for 100,000 levels, which no real
//!   client can encode), the client goes on;
//! - `/_replicate`: a request over the depth bound is refused and counted.
//!
//! Each test starts its own server and expects exact counts of
//! `rmf_dash_json_refused_total{door,reason}` (every other door and reason stays 0). A bounded
//! property test (stable toolchain) runs the parsers' pure cores with the properties of the
//! fuzz targets (`fuzz/`), their seeds included.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use proptest::prelude::*;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{Frame, FrameHeader};

mod common;
use common::{Proc, bin, python, repo};

/// The binary under test: this build's, or the one `RMF_DASH_BIN` names (to show these tests
/// failing on an older build).
fn binary() -> std::process::Command {
    match std::env::var_os("RMF_DASH_BIN") {
        Some(path) => std::process::Command::new(path),
        None => bin(),
    }
}

const DEPTH: usize = 64;
const BYTES: usize = 1 << 20;
const MAX_FRAME: usize = 4 << 20;

/// A running `rmf-dash serve` (killed on drop) on the port it chose, its log in a file.
struct Server {
    _proc: Proc,
    port: u16,
    log: PathBuf,
}

impl Server {
    /// `rmf-dash serve --no-auth ARGS --listen 127.0.0.1:0`, once it answers `/health`.
    fn start(dir: &Path, args: &[&str]) -> Server {
        let log = dir.join("server.log");
        let child = binary()
            .args(["serve", "--no-auth", "--listen", "127.0.0.1:0"])
            .args(args)
            .env("RMF_DASH_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start rmf-dash");
        let proc = Proc(child);
        let port = wait_for("the server to listen", || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            text.lines()
                .filter(|l| l.contains("listening"))
                .find_map(|l| l.split("addr=127.0.0.1:").nth(1))
                .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|p| p.parse::<u16>().ok())
        });
        let server = Server {
            _proc: proc,
            port,
            log,
        };
        wait_for("/health", || (server.get("/health").0 == 200).then_some(()));
        server
    }

    fn get(&self, path: &str) -> (u16, Value) {
        match common::try_http(self.port, "GET", path, None, None) {
            Ok(r) => (r.status, r.value()),
            Err(_) => (0, Value::Null),
        }
    }

    fn post(&self, path: &str, body: &str) -> (u16, Value) {
        let r = common::http(self.port, "POST", path, None, Some(body));
        (r.status, r.value())
    }

    /// Every sample of `/metrics`, as `name{labels}` -> value.
    fn metrics(&self) -> BTreeMap<String, u64> {
        let r = common::http(self.port, "GET", "/metrics", None, None);
        assert_eq!(r.status, 200);
        r.text()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.rsplit_once(' '))
            .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
            .collect()
    }

    /// `rmf_dash_json_refused_total` of `door`: `{reason: count}` for every reason.
    fn refused(&self, door: &str) -> BTreeMap<&'static str, u64> {
        let m = self.metrics();
        ["depth", "bytes", "syntax", "utf8"]
            .into_iter()
            .map(|reason| {
                let key =
                    format!("rmf_dash_json_refused_total{{door=\"{door}\",reason=\"{reason}\"}}");
                let n = *m
                    .get(&key)
                    .unwrap_or_else(|| panic!("no {key} on /metrics"));
                (reason, n)
            })
            .collect()
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).expect("server log")
    }
}

/// Polls `f` (every 50 ms, at most 60 s) until it gives a value.
fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "waited 60 s for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `{reason: n}` with the given counts, zero for the others.
fn counts(pairs: &[(&'static str, u64)]) -> BTreeMap<&'static str, u64> {
    let mut m: BTreeMap<_, _> = ["depth", "bytes", "syntax", "utf8"]
        .into_iter()
        .map(|r| (r, 0))
        .collect();
    for (r, n) in pairs {
        m.insert(r, *n);
    }
    m
}

/// `inner` inside `depth` arrays.
fn nest(depth: usize, inner: &str) -> String {
    format!("{}{inner}{}", "[".repeat(depth), "]".repeat(depth))
}

/// The `detail` of [`task_frame`]'s state.
fn detail(frame_depth: usize) -> Value {
    serde_json::from_str(&nest(frame_depth - 2, "\"x\"")).expect("detail")
}

/// A task state update of task `id` whose frame is `depth` levels deep (at least 3): its
/// `data` one less.
fn task_frame(id: &str, depth: usize) -> String {
    format!(
        r#"{{"type":"task_state_update","data":{{"booking":{{"id":"{id}"}},"status":"queued","detail":{}}}}}"#,
        nest(depth - 2, "\"x\"")
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A websocket to `path` of the server.
async fn websocket(port: u16, path: &str) -> Ws {
    let url = format!("ws://127.0.0.1:{port}{path}");
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(None)
        .max_frame_size(None);
    let (ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), false)
        .await
        .expect("websocket");
    ws
}

/// The close frame the server ends `ws` with (after anything else it sends).
async fn close_of(ws: &mut Ws) -> Option<CloseFrame> {
    let read = async {
        while let Some(m) = ws.next().await {
            match m {
                Ok(Message::Close(c)) => return c,
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
        None
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("no close within 30 s")
}

/// A python-socketio client following `rooms` (tests/python/follow_values.py).
struct Follower {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Follower {
    /// Connected and subscribed (every acknowledgement received).
    fn start(port: u16, rooms: &[&str]) -> Follower {
        let mut child = python()
            .arg(repo().join("tests/python/follow_values.py"))
            .arg(format!("http://127.0.0.1:{port}"))
            .arg("-")
            .args(rooms)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python");
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read");
        assert_eq!(line.trim(), "ready", "follower did not start");
        Follower {
            child,
            stdin,
            stdout,
        }
    }

    /// Stops it: `{acks, values: {room: [value...]}, errors}`.
    fn finish(mut self) -> Value {
        drop(self.stdin.take());
        let mut out = String::new();
        self.stdout.read_to_string(&mut out).expect("read");
        let _ = self.child.wait();
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("follower said {out:?}: {e}"))
    }
}

#[test]
fn internal_frames_over_the_bounds_are_dropped_counted_and_never_stored_nor_relayed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pg = common::cluster();
    let s = Server::start(dir.path(), &["--database-url", pg.url()]);
    let rooms = [
        "/tasks/deep-100k/state",
        "/tasks/over-limit/state",
        "/tasks/at-limit/state",
        "/tasks/after/state",
    ];
    let follower = Follower::start(s.port, &rooms);

    // One adapter connection: the refused frames, then valid ones on the same connection.
    runtime().block_on(async {
        let mut ws = websocket(s.port, "/_internal").await;
        for frame in [
            task_frame("deep-100k", 100_000),
            task_frame("over-limit", DEPTH + 1),
            r#"{"type":"task_state_update","data":{"booking":"#.to_string(),
            // Kept as text by serde when skipped, refused by serde when read: they would be
            // accepted, then lose their shape and vanish from `GET /tasks` (as before).
            r#"{"type":"task_state_update","data":{"booking":{"id":"big-number"},"detail":[1e400]}}"#.to_string(),
            r#"{"type":"task_state_update","data":{"booking":{"id":"lone-surrogate"},"detail":"\ud800"}}"#.to_string(),
            task_frame("at-limit", DEPTH),
            task_frame("after", 3),
        ] {
            ws.send(Message::text(frame)).await.expect("send");
        }
        ws.close(None).await.expect("close");
    });
    wait_for("the last task", || {
        (s.get("/tasks/after/state").0 == 200).then_some(())
    });

    // Nothing over the bound reached the engine, the hub or the store ...
    assert_eq!(s.get("/tasks/deep-100k/state").0, 404);
    assert_eq!(s.get("/tasks/over-limit/state").0, 404);
    assert_eq!(s.get("/tasks/big-number/state").0, 404);
    assert_eq!(s.get("/tasks/lone-surrogate/state").0, 404);
    // ... and what is one level under it is whole everywhere.
    let (status, at_limit) = s.get("/tasks/at-limit/state");
    assert_eq!(status, 200);
    assert_eq!(at_limit["detail"], detail(DEPTH));
    let stored = wait_for("the store", || {
        let rows: Vec<(String, String)> = pg.sql(async |c| {
            c.query(
                "SELECT task_id, state FROM task_state ORDER BY task_id",
                &[],
            )
            .await
            .expect("query")
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
        });
        (rows.len() == 2).then_some(rows)
    });
    assert_eq!(
        stored.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(),
        ["after", "at-limit"]
    );
    let state: Value = serde_json::from_str(&stored[1].1).expect("stored state reads back");
    assert_eq!(state["detail"], detail(DEPTH));
    let (status, list) = s.get("/tasks");
    assert_eq!(status, 200);
    let mut ids: Vec<&str> = list
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|t| t["booking"]["id"].as_str())
        .collect();
    ids.sort();
    assert_eq!(ids, ["after", "at-limit"]);
    let relayed = follower.finish();
    assert_eq!(relayed["errors"], json!([]));
    let values = &relayed["values"];
    assert_eq!(values["/tasks/deep-100k/state"], json!([]));
    assert_eq!(values["/tasks/over-limit/state"], json!([]));
    assert_eq!(values["/tasks/at-limit/state"][0]["detail"], detail(DEPTH));
    assert_eq!(values["/tasks/after/state"][0]["booking"]["id"], "after");

    // Counted exactly, logged with the peer.
    assert_eq!(
        s.refused("internal"),
        counts(&[("depth", 2), ("syntax", 3)])
    );
    let m = s.metrics();
    assert_eq!(m["rmf_dash_internal_frames_total{result=\"ok\"}"], 2);
    assert_eq!(m["rmf_dash_internal_frames_total{result=\"invalid\"}"], 5);
    let log = s.log_text();
    let warning = log
        .lines()
        .find(|l| l.contains("invalid frame dropped: JSON nested deeper than 64 levels"))
        .expect("a warning for the deep frames");
    assert!(
        warning.contains("WARN") && warning.contains("peer=127.0.0.1:"),
        "{warning}"
    );
    assert!(!log.contains("[[[[[[[["), "a frame's text was logged");
}

#[test]
fn internal_text_frames_not_utf8_or_too_large_close_their_connection_counted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let s = Server::start(dir.path(), &["--no-db"]);
    runtime().block_on(async {
        // A text frame whose payload is not UTF-8 (sent raw: a client library would refuse).
        let mut ws = websocket(s.port, "/_internal").await;
        let header = FrameHeader {
            opcode: OpCode::Data(Data::Text),
            ..FrameHeader::default()
        };
        let payload = b"{\"type\":\"fleet_state_update\",\"data\":{\"name\":\"\xff\"}}".to_vec();
        ws.send(Message::Frame(Frame::from_payload(header, payload.into())))
            .await
            .expect("send");
        let close = close_of(&mut ws).await.expect("a close frame");
        assert_eq!(u16::from(close.code), 1007);
        assert_eq!(close.reason.as_str(), "text frame not UTF-8");

        // A message over --internal-max-frame.
        let mut ws = websocket(s.port, "/_internal").await;
        let big = format!(
            r#"{{"type":"x","data":{{"a":"{}"}}}}"#,
            "a".repeat(MAX_FRAME)
        );
        let _ = ws.send(Message::text(big)).await;
        let close = close_of(&mut ws).await.expect("a close frame");
        assert_eq!(u16::from(close.code), 1009);

        // The next adapter is served.
        let mut ws = websocket(s.port, "/_internal").await;
        let fleet = json!({"type": "fleet_state_update", "data": {"name": "f1", "robots": {}}});
        ws.send(Message::text(fleet.to_string()))
            .await
            .expect("send");
        ws.close(None).await.expect("close");
    });
    wait_for("the fleet", || {
        (s.get("/fleets/f1/state").0 == 200).then_some(())
    });
    assert_eq!(s.refused("internal"), counts(&[("utf8", 1), ("bytes", 1)]));
    let m = s.metrics();
    assert_eq!(m["rmf_dash_internal_frames_total{result=\"invalid\"}"], 1);
    assert_eq!(m["rmf_dash_internal_frames_total{result=\"oversized\"}"], 1);
    let log = s.log_text();
    for what in [
        "text frame not UTF-8, closing the connection (1007)",
        "over the size limit",
    ] {
        let line = log
            .lines()
            .find(|l| l.contains(what))
            .unwrap_or_else(|| panic!("no warning {what:?}"));
        assert!(
            line.contains("WARN") && line.contains("peer=127.0.0.1:"),
            "{line}"
        );
    }
}

/// A request with a raw body (no `Content-Length` when `chunked`): the status and JSON body
/// answered. A body over the bound with a declared length is not sent: the answer comes from
/// the length alone (and the server then has nothing unread to reset the connection for).
fn raw_post(port: u16, path: &str, body: &[u8], chunked: bool) -> (u16, Value) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let length = if chunked {
        "Transfer-Encoding: chunked".to_string()
    } else {
        format!("Content-Length: {}", body.len())
    };
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{length}\r\n\r\n"
    )
    .expect("write");
    if chunked {
        // Without the last chunk: the server answers once the bound is passed.
        for chunk in body.chunks(64 << 10) {
            write!(s, "{:x}\r\n", chunk.len()).expect("write");
            s.write_all(chunk).expect("write");
            s.write_all(b"\r\n").expect("write");
        }
    } else if body.len() <= BYTES {
        s.write_all(body).expect("write");
    }
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("answer");
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .expect("status");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[test]
fn rest_bodies_over_the_bounds_are_refused_counted_and_the_rest_is_kept_whole() {
    let dir = tempfile::tempdir().expect("temp dir");
    let s = Server::start(dir.path(), &["--no-db"]);
    let favorite = |depth: usize| {
        // The body's own object, then `description`'s nesting.
        format!(
            r#"{{"id":"","name":"deep","unix_millis_earliest_start_time":0,"priority":null,"category":"patrol","user":"","task_definition_id":"patrol","description":{}}}"#,
            nest(depth - 1, "1")
        )
    };
    let too_deep = json!({"detail": [{"type": "json_invalid", "loc": ["body"],
        "msg": "JSON nested deeper than 64 levels (--max-json-depth)"}]});
    assert_eq!(
        s.post("/favorite_tasks", &favorite(DEPTH + 1)),
        (422, too_deep.clone())
    );
    assert_eq!(
        s.post("/favorite_tasks", &favorite(100_000)),
        (422, too_deep)
    );
    let (status, kept) = s.post("/favorite_tasks", &favorite(DEPTH));
    assert_eq!(status, 200, "{kept}");
    let want: Value = serde_json::from_str(&nest(DEPTH - 1, "1")).expect("json");
    assert_eq!(kept["description"], want);
    let (status, list) = s.get("/favorite_tasks");
    assert_eq!(status, 200);
    assert_eq!(list[0]["description"], want, "read back whole");

    // Over --max-json-bytes: 413 from the declared length, or once the bound is passed.
    let cancel = |pad: usize| {
        format!(
            r#"{{"type":"cancel_task_request","task_id":"{}"}}"#,
            "a".repeat(pad)
        )
    };
    let over = cancel(BYTES);
    let too_large = json!({"detail": "request body over 1048576 bytes (--max-json-bytes)"});
    assert_eq!(
        raw_post(s.port, "/tasks/cancel_task", over.as_bytes(), false),
        (413, too_large.clone())
    );
    assert_eq!(
        raw_post(s.port, "/tasks/cancel_task", over.as_bytes(), true),
        (413, too_large)
    );
    // Not UTF-8, not JSON: 422.
    let not_utf8 = b"{\"task_id\":\"\xff\"}";
    assert_eq!(
        raw_post(s.port, "/tasks/cancel_task", not_utf8, false),
        (
            422,
            json!({"detail": [{"type": "json_invalid", "loc": ["body", 12],
                "msg": "JSON decode error: not UTF-8 (invalid byte at offset 12)"}]})
        )
    );
    let (status, body) = s.post("/tasks/cancel_task", "{\"type\":");
    assert_eq!(status, 422);
    assert_eq!(body["detail"][0]["type"], "json_invalid");
    // A body at the bound is taken (the loopback RMF link answers).
    let (status, body) = s.post("/tasks/cancel_task", &cancel(BYTES - 100));
    assert_eq!(status, 200, "{body}");

    assert_eq!(
        s.refused("rest"),
        counts(&[("depth", 2), ("bytes", 2), ("syntax", 1), ("utf8", 1)])
    );
    let log = s.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("body of POST /favorite_tasks refused"))
        .expect("a warning");
    assert!(
        line.contains("WARN") && line.contains("peer=127.0.0.1:"),
        "{line}"
    );
}

/// A raw Engine.IO 4 / Socket.IO 5 websocket client: the acknowledgement of `subscribe` with
/// the event text `args` (`["subscribe", ...]`), sent as it is.
async fn raw_subscribe(port: u16, args: &str) -> Value {
    let mut ws = websocket(port, "/socket.io/?EIO=4&transport=websocket").await;
    let next_text = async |ws: &mut Ws| loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.as_str() == "2" => {
                ws.send(Message::text("3")).await.expect("pong");
            }
            Some(Ok(Message::Text(t))) => return t.to_string(),
            Some(Ok(_)) => continue,
            other => panic!("socket.io closed: {other:?}"),
        }
    };
    assert!(next_text(&mut ws).await.starts_with('0'));
    ws.send(Message::text("40")).await.expect("connect");
    assert!(next_text(&mut ws).await.starts_with("40"));
    ws.send(Message::text(format!("421{args}")))
        .await
        .expect("event");
    let ack = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let packet = next_text(&mut ws).await;
            if let Some(ack) = packet.strip_prefix("431") {
                return ack.to_string();
            }
        }
    })
    .await
    .expect("an acknowledgement within 30 s");
    serde_json::from_str::<Value>(&ack).expect("ack JSON")[0].take()
}

#[test]
fn socketio_payloads_over_the_bounds_are_refused_with_the_acknowledgement_and_counted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let s = Server::start(dir.path(), &["--no-db"]);
    // python-socketio: one payload per line, each sent with `call("subscribe", payload)`.
    let payloads = dir.path().join("payloads.jsonl");
    let deep = |depth: usize| {
        // The event is `["subscribe", payload]`: one level more than the payload.
        format!(
            r#"{{"room":"/doors/d1/state","x":{}}}"#,
            nest(depth - 1, "1")
        )
    };
    let big = json!({"room": "/doors/d1/state", "x": "a".repeat(BYTES)}).to_string();
    let lines = [
        deep(DEPTH),
        deep(DEPTH - 1),
        big,
        r#"{"room":"/doors/d1/state"}"#.into(),
    ];
    std::fs::write(&payloads, lines.join("\n")).expect("write");
    let out = python()
        .arg("-c")
        .arg(
            "import json, sys, socketio\n\
             sio = socketio.Client()\n\
             sio.connect(sys.argv[1], transports=['websocket'])\n\
             for line in open(sys.argv[2]):\n\
             \x20   print(json.dumps(sio.call('subscribe', json.loads(line), timeout=30)), flush=True)\n\
             sio.disconnect()\n",
        )
        .arg(format!("http://127.0.0.1:{}", s.port))
        .arg(&payloads)
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let acks: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("ack"))
        .collect();
    let refused = |why: &str| json!({"room": null, "error": format!("expected {{\"room\": \"<room>\"}}: {why}")});
    assert_eq!(acks[0], refused("JSON nested deeper than 64 levels"));
    assert_eq!(acks[1], json!({"room": "/doors/d1/state"}));
    let error = acks[2]["error"].as_str().expect("refused");
    assert!(
        error.contains("bytes is over the limit of 1048576 bytes"),
        "{error}"
    );
    assert_eq!(acks[3], json!({"room": "/doors/d1/state"}));

    // 100,000 levels (no client library encodes that: a raw Engine.IO client does).
    let args = format!(r#"["subscribe",{}]"#, nest(100_000, "1"));
    let ack = runtime().block_on(raw_subscribe(s.port, &args));
    assert_eq!(ack, refused("JSON nested deeper than 64 levels"));

    assert_eq!(s.refused("socketio"), counts(&[("depth", 2), ("bytes", 1)]));
    let log = s.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("socket.io event refused: JSON nested deeper"))
        .expect("a warning");
    assert!(
        line.contains("WARN") && line.contains("peer=127.0.0.1:"),
        "{line}"
    );
}

#[test]
fn replicate_requests_over_the_depth_bound_are_refused_and_counted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let s = Server::start(dir.path(), &["--no-db"]);
    let answers = runtime().block_on(async {
        let mut ws = websocket(s.port, "/_replicate").await;
        let hello = ws.next().await.expect("hello").expect("hello");
        assert!(matches!(hello, Message::Text(_)));
        let deep = format!(
            r#"{{"op":"sub","room":"/doors/d1/state","x":{}}}"#,
            nest(DEPTH, "1")
        );
        let mut answers = Vec::new();
        for request in [deep.as_str(), r#"{"op":"sub","room":"/nowhere"}"#] {
            ws.send(Message::text(request)).await.expect("send");
            match ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    answers.push(serde_json::from_str::<Value>(t.as_str()).expect("json"))
                }
                other => panic!("{other:?}"),
            }
        }
        answers
    });
    assert_eq!(
        answers,
        [
            json!({"error": "bad request: JSON nested deeper than 64 levels", "room": null}),
            json!({"error": "unknown room", "room": "/nowhere"}),
        ]
    );
    assert_eq!(s.refused("replicate"), counts(&[("depth", 1)]));
}

// ---------------------------------------------------------------------------------------------
// The fuzz targets' properties, bounded, on the stable toolchain.

mod properties {
    use super::*;
    use rmf_dash::api::body::{BodyError, decode};
    use rmf_dash::ingest::internal::parse_frame;
    use rmf_dash::json_limits::{Limits, MAX_DEPTH_CEILING, depth_of};
    use rmf_dash::proxy::frame;
    use rmf_dash_dataflows::model::Record;

    fn limits(first: u8) -> Limits {
        Limits {
            max_depth: 1 + usize::from(first) % MAX_DEPTH_CEILING,
            max_bytes: 1 << 16,
        }
    }

    /// `/_internal` (as `fuzz_targets/internal_frame.rs`).
    fn internal_frame(data: &[u8]) {
        let Some((&first, frame)) = data.split_first() else {
            return;
        };
        let limits = limits(first);
        let Ok(text) = std::str::from_utf8(frame) else {
            return;
        };
        if let Ok(Record::Json { data, .. }) = parse_frame(text, &limits) {
            assert!(depth_of(data.as_bytes()) < limits.max_depth);
            serde_json::from_str::<Value>(&data).expect("accepted data reads back");
        }
    }

    /// `/_replicate` (as `fuzz_targets/replicate_frame.rs`).
    fn replicate_frame(data: &[u8]) {
        let Some((&first, bytes)) = data.split_first() else {
            return;
        };
        let limits = limits(first);
        if let Ok(change) = frame::decode(bytes)
            && let Ok(value) = frame::value_of(&change, &limits)
        {
            if let Some(v) = &value {
                assert!(depth_of(v.get().as_bytes()) <= limits.max_depth);
                // Valid JSON (`IgnoredAny`: serde_json's `Value` refuses its private `RawValue`
                // token as a first key, seed `raw_value_token`).
                serde_json::from_str::<serde::de::IgnoredAny>(v.get()).expect("value reads back");
            }
            let again = frame::encode(change.room, value.as_deref(), change.meta);
            let decoded = frame::decode(&again).expect("re-encoded change decodes");
            assert_eq!((decoded.room, decoded.meta), (change.room, change.meta));
        }
        if let Ok(text) = std::str::from_utf8(bytes)
            && let Ok(request) = frame::parse_request(text, &limits)
        {
            let text = serde_json::to_string(&request).expect("encodes");
            assert_eq!(frame::parse_request(&text, &limits), Ok(request));
        }
    }

    /// REST bodies (as `fuzz_targets/rest_body.rs`).
    fn rest_body(data: &[u8]) {
        let Some((&first, body)) = data.split_first() else {
            return;
        };
        let limits = limits(first);
        match decode::<Value>(body, &limits) {
            Ok(v) => {
                let text = v.to_string();
                assert!(depth_of(text.as_bytes()) <= limits.max_depth);
                serde_json::from_str::<Value>(&text).expect("accepted body reads back");
            }
            Err(BodyError::TooLarge { .. }) => {}
            Err(e) => assert!(e.detail()[0]["loc"][0] == "body", "{e}"),
        }
    }

    /// JSON-like text: valid documents of any depth, with the values serde reads differently
    /// from how it skips them, and with a byte changed now and then.
    fn jsonish() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just("1".to_string()),
            Just("1e400".to_string()),
            Just(r#""\ud800""#.to_string()),
            Just(r#""a\"[{""#.to_string()),
            "[a-z]{0,3}".prop_map(|s| format!("\"{s}\"")),
        ];
        let doc = leaf.prop_recursive(12, 64, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                // Keys differ (serde keeps the last of equal keys).
                prop::collection::vec(inner, 0..3).prop_map(|values| {
                    let fields: Vec<String> = values
                        .iter()
                        .enumerate()
                        .map(|(i, v)| format!("\"k{i}\":{v}"))
                        .collect();
                    format!("{{{}}}", fields.join(","))
                }),
            ]
        });
        (doc, 0usize..200, any::<u8>(), any::<bool>()).prop_map(|(doc, at, byte, edit)| {
            let mut bytes = doc.into_bytes();
            if edit && !bytes.is_empty() {
                let at = at % bytes.len();
                bytes[at] = byte;
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 512,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn internal_frames(first in any::<u8>(), detail in jsonish(), raw in any::<bool>()) {
            let frame = if raw {
                detail
            } else {
                format!(r#"{{"type":"task_state_update","data":{{"booking":{{"id":"t"}},"detail":{detail}}}}}"#)
            };
            internal_frame(&[&[first], frame.as_bytes()].concat());
        }

        #[test]
        fn replicate_frames(first in any::<u8>(), value in jsonish(), bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let meta = rmf_dash::hub::Meta { seq: 1, t: 2, sent_ms: 3 };
            let mut encoded = frame::encode("/r", None, meta);
            encoded[0] = 1;
            encoded.extend_from_slice(value.as_bytes());
            replicate_frame(&[&[first], &encoded[..]].concat());
            replicate_frame(&[&[first], &bytes[..]].concat());
            let request = format!(r#"{{"op":"sub","room":"/r","since":{value}}}"#);
            replicate_frame(&[&[first], request.as_bytes()].concat());
        }

        #[test]
        fn rest_bodies(first in any::<u8>(), body in jsonish()) {
            rest_body(&[&[first], body.as_bytes()].concat());
        }

        #[test]
        fn the_depth_scan_agrees_with_serde(doc in jsonish()) {
            fn depth(v: &Value) -> usize {
                match v {
                    Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
                    Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
                    _ => 0,
                }
            }
            if let Ok(v) = serde_json::from_str::<Value>(&doc) {
                prop_assert_eq!(depth_of(doc.as_bytes()), depth(&v));
            }
        }
    }

    /// The fuzz targets' seeds, and what the fuzzer found, as fixed cases.
    #[test]
    fn the_fuzz_seeds_pass() {
        for (target, check) in [
            ("internal_frame", internal_frame as fn(&[u8])),
            ("replicate_frame", replicate_frame),
            ("rest_body", rest_body),
        ] {
            let dir = repo().join("fuzz/seeds").join(target);
            let mut n = 0;
            for entry in std::fs::read_dir(&dir).expect("seeds") {
                check(&std::fs::read(entry.expect("seed").path()).expect("read"));
                n += 1;
            }
            assert!(n > 0, "no seeds in {}", dir.display());
        }
    }
}
