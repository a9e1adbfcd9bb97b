//! The `/_internal` fleet-adapter websocket against the real binary (`serve --no-auth`, no
//! replay): websocket clients send the frames of a generated recording's `.ws.jsonl` (split in
//! two connections at the simulated reconnect) and a socket.io client checks that the rooms end
//! with exactly the last state of every fleet and task and that the task logs re-sent after the
//! reconnect add no entry. Also: every kind of malformed frame is counted and logged and the
//! connection stays open; a message over the size limit closes only its connection (1009); a
//! flooding adapter is rate limited without delaying another; the optional token.
//!
//! The socket.io client here is a minimal Engine.IO v4 / Socket.IO v5 websocket client (connect,
//! `subscribe` with acknowledgement, events, ping): enough to observe rooms with arrival times
//! from inside the test. Real socket.io clients are tested in `tests/socketio.rs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

mod common;
use common::{Proc, bin, stdout_of};

const MAX_FRAME: usize = 4 << 20;
const RATE: u64 = 2000;
const BURST: u64 = 4000;

/// A running `rmf-dash serve`, killed on drop; its log goes to a file.
struct Server {
    _proc: Proc,
    port: u16,
    log: PathBuf,
}

impl Server {
    async fn start(dir: &Path, extra: &[&str]) -> Server {
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let n = STARTED.fetch_add(1, Ordering::Relaxed);
        let log = dir.join(format!("server-{n}.log"));
        let stderr = std::fs::File::create(&log).expect("log file");
        let (proc, port) = common::Server::serve()
            .args(["--no-auth", "--no-db"])
            .args(extra)
            .with(|cmd| {
                cmd.env("RMF_DASH_LOG", "info").stderr(stderr);
            })
            .start();
        let server = Server {
            _proc: proc,
            port,
            log,
        };
        let start = Instant::now();
        loop {
            if let Some((200, _)) = server.try_get("/health").await {
                return server;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "server did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A plain HTTP/1.1 GET: (status, body).
    async fn try_get(&self, path: &str) -> Option<(u16, String)> {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .ok()?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.ok()?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.ok()?;
        let text = String::from_utf8_lossy(&out);
        let (head, body) = text.split_once("\r\n\r\n")?;
        let status = head.split(' ').nth(1)?.parse().ok()?;
        Some((status, body.to_string()))
    }

    async fn get(&self, path: &str) -> (u16, String) {
        self.try_get(path)
            .await
            .unwrap_or_else(|| panic!("GET {path} failed"))
    }

    /// `engine.input_time_ms` of `/health`.
    async fn input_time(&self) -> u64 {
        let (status, body) = self.get("/health").await;
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).expect("health JSON");
        v["engine"]["input_time_ms"]
            .as_u64()
            .expect("input_time_ms")
    }

    /// Every sample of `/metrics`, as `name{labels}` -> value.
    async fn metrics(&self) -> BTreeMap<String, u64> {
        let (status, body) = self.get("/metrics").await;
        assert_eq!(status, 200);
        body.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.rsplit_once(' '))
            .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
            .collect()
    }

    /// `(ok, invalid, oversized, rate_limited, connections)` of `/_internal`.
    async fn internal(&self) -> [u64; 5] {
        let m = self.metrics().await;
        let frames = |r: &str| m[&format!("rmf_dash_internal_frames_total{{result=\"{r}\"}}")];
        [
            frames("ok"),
            frames("invalid"),
            frames("oversized"),
            frames("rate_limited"),
            m["rmf_dash_internal_connections"],
        ]
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).expect("server log")
    }

    fn url(&self, query: &str) -> String {
        format!("ws://127.0.0.1:{}/_internal{query}", self.port)
    }
}

type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// A fleet adapter's connection.
async fn adapter(server: &Server) -> Ws {
    connect_async(server.url(""))
        .await
        .expect("connect /_internal")
        .0
}

async fn send_all(ws: &mut Ws, frames: &[String]) {
    for f in frames {
        ws.feed(Message::text(f.as_str())).await.expect("send");
    }
    ws.flush().await.expect("flush");
}

/// Closes an adapter connection with the close handshake.
async fn close(mut ws: Ws) {
    ws.close(None).await.expect("close");
    while let Some(Ok(_)) = ws.next().await {}
}

/// One room event seen by the socket.io client.
#[derive(Debug)]
struct Event {
    room: String,
    value: Value,
    seq: u64,
    at: Instant,
}

/// The next Engine.IO packet, pings answered.
async fn next_text(ws: &mut Ws) -> String {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) if t.as_str() == "2" => {
                ws.send(Message::text("3")).await.expect("pong");
            }
            Ok(Some(Ok(Message::Text(t)))) => return t.to_string(),
            Ok(Some(Ok(_))) => {}
            other => panic!("socket.io: {other:?}"),
        }
    }
}

fn parse_event(packet: &str, at: Instant) -> Option<Event> {
    let v: Value = serde_json::from_str(packet.strip_prefix("42")?).ok()?;
    Some(Event {
        room: v[0].as_str()?.to_string(),
        value: v[1].clone(),
        seq: v[2]["seq"].as_u64()?,
        at,
    })
}

/// A socket.io client subscribed to `rooms` (every subscription acknowledged on return); its
/// events come out of the channel with their arrival time.
async fn socketio(server: &Server, rooms: &[String]) -> mpsc::UnboundedReceiver<Event> {
    let url = format!(
        "ws://127.0.0.1:{}/socket.io/?EIO=4&transport=websocket",
        server.port
    );
    let (mut ws, _) = connect_async(url).await.expect("socket.io connect");
    let open = next_text(&mut ws).await;
    assert!(open.starts_with('0'), "{open}");
    ws.send(Message::text("40")).await.expect("connect packet");
    let connected = next_text(&mut ws).await;
    assert!(connected.starts_with("40"), "{connected}");
    for (i, room) in rooms.iter().enumerate() {
        let packet = format!("42{i}{}", json!(["subscribe", {"room": room}]));
        ws.send(Message::text(packet)).await.expect("subscribe");
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let mut acks = 0;
    while acks < rooms.len() {
        let packet = next_text(&mut ws).await;
        if packet.starts_with("43") {
            assert!(!packet.contains("error"), "{packet}");
            acks += 1;
        } else if let Some(e) = parse_event(&packet, Instant::now()) {
            let _ = tx.send(e);
        }
    }
    tokio::spawn(async move {
        while let Some(Ok(m)) = ws.next().await {
            let Message::Text(t) = m else { continue };
            if t.as_str() == "2" {
                let _ = ws.send(Message::text("3")).await;
            } else if let Some(e) = parse_event(t.as_str(), Instant::now()) {
                let _ = tx.send(e);
            }
        }
    });
    rx
}

/// Receives events until `done` says so (panics after `limit`).
async fn until(
    events: &mut mpsc::UnboundedReceiver<Event>,
    seen: &mut Vec<Event>,
    limit: Duration,
    mut done: impl FnMut(&[Event]) -> bool,
) {
    let deadline = tokio::time::Instant::now() + limit;
    while !done(seen) {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(e)) => seen.push(e),
            Ok(None) => panic!("socket.io client ended"),
            Err(_) => panic!(
                "timed out; last events: {:?}",
                seen.iter().rev().take(5).collect::<Vec<_>>()
            ),
        }
    }
}

/// Everything received within `quiet` (to see what should not come).
async fn drain(
    events: &mut mpsc::UnboundedReceiver<Event>,
    seen: &mut Vec<Event>,
    quiet: Duration,
) {
    while let Ok(Some(e)) = tokio::time::timeout(quiet, events.recv()).await {
        seen.push(e);
    }
}

/// The latest value of each room among `events` (by seq).
fn latest(events: &[Event]) -> BTreeMap<String, Value> {
    let mut out: BTreeMap<String, (u64, Value)> = BTreeMap::new();
    for e in events {
        if out.get(&e.room).is_none_or(|(s, _)| *s < e.seq) {
            out.insert(e.room.clone(), (e.seq, e.value.clone()));
        }
    }
    out.into_iter().map(|(k, (_, v))| (k, v)).collect()
}

/// A log entry: (stream, seq, text). Streams: `""` the task's log, `p` a phase's, `p/e` an
/// event's; a fleet log's stream is the robot.
type Entry = (String, u64, String);

fn entry(stream: &str, e: &Value) -> Entry {
    (
        stream.to_string(),
        e["seq"].as_u64().expect("seq"),
        e["text"].as_str().expect("text").to_string(),
    )
}

fn entries_of(list: &Value, stream: &str, out: &mut Vec<Entry>) {
    for e in list.as_array().into_iter().flatten() {
        out.push(entry(stream, e));
    }
}

/// The entries of a task_log (frame data or `/tasks/{id}/log` event).
fn task_log_entries(data: &Value) -> Vec<Entry> {
    let mut out = Vec::new();
    entries_of(&data["log"], "", &mut out);
    for (p, phase) in data["phases"].as_object().into_iter().flatten() {
        entries_of(&phase["log"], p, &mut out);
        for (e, list) in phase["events"].as_object().into_iter().flatten() {
            entries_of(list, &format!("{p}/{e}"), &mut out);
        }
    }
    out
}

/// The entries of a fleet_log (frame data or `/fleets/{name}/log` event).
fn fleet_log_entries(data: &Value) -> Vec<Entry> {
    let mut out = Vec::new();
    for (robot, list) in data["robots"].as_object().into_iter().flatten() {
        entries_of(list, robot, &mut out);
    }
    out
}

/// The log room of a log frame and its entries.
fn log_of(frame: &Value) -> Option<(String, Vec<Entry>)> {
    let data = &frame["data"];
    match frame["type"].as_str()? {
        "task_log_update" => Some((
            format!("/tasks/{}/log", data["task_id"].as_str()?),
            task_log_entries(data),
        )),
        "fleet_log_update" => Some((
            format!("/fleets/{}/log", data["name"].as_str()?),
            fleet_log_entries(data),
        )),
        _ => None,
    }
}

/// A fleet state update carrying `marker` in a field of rmf-web's model that rmf-dash keeps as
/// it is (a robot's `mutex_groups.locked`): fields outside the model are dropped, as rmf-web
/// does.
fn fleet_frame(name: &str, marker: Value) -> String {
    let robot = json!({"name": "m", "mutex_groups": {"locked": [marker], "requesting": []}});
    json!({"type": "fleet_state_update", "data": {"name": name, "robots": {"m": robot}}})
        .to_string()
}

/// What the rooms show of the last states sent (`room -> data`): rmf-web's documents, a
/// fleet's robots naming only tasks that have a state (DESIGN.md invariant 9).
fn shown(sent: BTreeMap<String, Value>) -> BTreeMap<String, Value> {
    use rmf_dash_dataflows::model::shape;
    let known: Vec<String> = sent
        .keys()
        .filter_map(|r| {
            Some(
                r.strip_prefix("/tasks/")?
                    .strip_suffix("/state")?
                    .to_string(),
            )
        })
        .collect();
    sent.into_iter()
        .map(|(room, data)| {
            let text = data.to_string();
            let mut v: Value = if room.starts_with("/tasks/") {
                serde_json::from_str(&shape::task_state(&text).expect("task state"))
            } else {
                serde_json::from_str(&shape::fleet_state(&text).expect("fleet state"))
            }
            .expect("json");
            let robots = v.get_mut("robots").and_then(Value::as_object_mut);
            for robot in robots.into_iter().flat_map(|r| r.values_mut()) {
                let task = robot["task_id"].as_str().unwrap_or_default().to_string();
                if !task.is_empty() && !known.contains(&task) {
                    robot["task_id"] = json!("");
                }
            }
            (room, v)
        })
        .collect()
}

/// The marker of a fleet state sent by [`fleet_frame`].
fn marker_of(state: &Value) -> &Value {
    &state["robots"]["m"]["mutex_groups"]["locked"][0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_recording_sent_by_adapters_becomes_the_rooms_and_resent_logs_add_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let recording = dir.path().join("airport.mcap");
    stdout_of(
        bin()
            .args(["trace", "gen", "--preset", "airport", "--duration", "60s"])
            .args(["--ws-reconnect-at", "30s", "-o"])
            .arg(&recording),
    );
    let text = std::fs::read_to_string(recording.with_extension("ws.jsonl")).expect("frames");
    let frames: Vec<String> = text.lines().map(str::to_string).collect();
    let parsed: Vec<Value> = frames
        .iter()
        .map(|f| serde_json::from_str(f).expect("frame JSON"))
        .collect();

    // What the rooms must end with: the last state of each fleet and task, and each log entry
    // once. The reconnect is where a task log starts re-sending entries already sent.
    let mut expected: BTreeMap<String, Value> = BTreeMap::new();
    let mut logs: BTreeMap<String, Vec<Entry>> = BTreeMap::new();
    let mut reconnect = None;
    for (i, f) in parsed.iter().enumerate() {
        let data = &f["data"];
        match f["type"].as_str().expect("type") {
            "fleet_state_update" => {
                let room = format!("/fleets/{}/state", data["name"].as_str().expect("name"));
                expected.insert(room, data.clone());
            }
            "task_state_update" => {
                let id = data["booking"]["id"].as_str().expect("booking.id");
                expected.insert(format!("/tasks/{id}/state"), data.clone());
            }
            _ => {
                let (room, entries) = log_of(f).expect("log frame");
                let known = logs.entry(room).or_default();
                if entries.iter().any(|e| known.contains(e)) {
                    reconnect.get_or_insert(i);
                }
                for e in entries {
                    if !known.contains(&e) {
                        known.push(e);
                    }
                }
            }
        }
    }
    let split = reconnect.expect("the frames re-send task logs after the reconnect");
    let expected = shown(expected);
    let resent = parsed[split..]
        .iter()
        .take_while(|f| f["type"] == "task_log_update")
        .count();
    let tasks_before = logs.keys().filter(|r| r.starts_with("/tasks/")).count();
    assert!(resent >= 5, "{resent} task logs re-sent");
    assert!(expected.keys().any(|r| r.starts_with("/fleets/")));
    assert!(tasks_before >= 5, "{tasks_before} task logs");
    let mut rooms: Vec<String> = expected.keys().chain(logs.keys()).cloned().collect();
    rooms.sort();

    let server = Server::start(dir.path(), &[]).await;
    assert_eq!(server.input_time().await, 0, "no input yet");
    let mut events = socketio(&server, &rooms).await;
    let mut seen = Vec::new();
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;

    // Before the reconnect: one connection.
    let mut first = adapter(&server).await;
    send_all(&mut first, &frames[..split]).await;
    close(first).await;
    let before: BTreeMap<String, Value> = parsed[..split]
        .iter()
        .filter_map(|f| {
            let data = &f["data"];
            match f["type"].as_str()? {
                "fleet_state_update" => Some((
                    format!("/fleets/{}/state", data["name"].as_str()?),
                    data.clone(),
                )),
                "task_state_update" => Some((
                    format!("/tasks/{}/state", data["booking"]["id"].as_str()?),
                    data.clone(),
                )),
                _ => None,
            }
        })
        .collect();
    let before = shown(before);
    until(&mut events, &mut seen, Duration::from_secs(10), |s| {
        let now = latest(s);
        before.iter().all(|(r, v)| now.get(r) == Some(v))
    })
    .await;
    let time_a = server.input_time().await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    assert!(
        (t0..=now + 10).contains(&time_a),
        "input time {time_a} not in [{t0}, {now}]"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;

    // The reconnect: a new connection re-sends every task log, then goes on.
    let mut second = adapter(&server).await;
    send_all(&mut second, &frames[split..]).await;
    close(second).await;
    until(&mut events, &mut seen, Duration::from_secs(10), |s| {
        let now = latest(s);
        expected.iter().all(|(r, v)| now.get(r) == Some(v))
    })
    .await;
    drain(&mut events, &mut seen, Duration::from_millis(500)).await;
    let time_b = server.input_time().await;
    assert!(
        time_b >= time_a + 100,
        "input time moved from {time_a} to {time_b}"
    );

    // Every state room ends with the last state sent; every log entry came exactly once.
    assert_eq!(
        latest(&seen)
            .into_iter()
            .filter(|(r, _)| expected.contains_key(r))
            .collect::<BTreeMap<_, _>>(),
        expected
    );
    for (room, want) in &logs {
        let mut got: Vec<Entry> = seen
            .iter()
            .filter(|e| &e.room == room)
            .flat_map(|e| {
                if room.starts_with("/tasks/") {
                    task_log_entries(&e.value)
                } else {
                    fleet_log_entries(&e.value)
                }
            })
            .collect();
        let mut want = want.clone();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{room}");
    }
    let n = frames.len() as u64;
    assert_eq!(server.internal().await, [n, 0, 0, 0, 0]);
    let m = server.metrics().await;
    assert_eq!(m["rmf_dash_ingest_records_total{source=\"internal\"}"], n);
    assert_eq!(m["rmf_dash_ingest_invalid_total{source=\"internal\"}"], 0);

    // A client that comes now gets the same values, sticky.
    let states: Vec<String> = expected.keys().cloned().collect();
    let mut fresh = socketio(&server, &states).await;
    let mut sticky = Vec::new();
    until(&mut fresh, &mut sticky, Duration::from_secs(5), |s| {
        s.len() >= states.len()
    })
    .await;
    assert_eq!(latest(&sticky), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_frames_are_counted_and_logged_and_the_connection_stays_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]).await;
    let mut events = socketio(&server, &["/fleets/after_bad/state".to_string()]).await;
    let mut ws = adapter(&server).await;
    // Each bad frame carries a marker that must never reach the log.
    let marker = "SECRET-PAYLOAD-7f3a";
    let bad = [
        (
            format!(r#"{{"type":"fleet_state_update","data":{{"name":"{marker}"#),
            "not JSON: EOF while parsing",
        ),
        (format!("{marker} is not json"), "not JSON: expected value"),
        (
            format!(r#"["fleet_state_update",{{"name":"{marker}"}}]"#),
            "not a JSON object",
        ),
        (
            format!(r#"{{"data":{{"name":"{marker}","robots":{{}}}}}}"#),
            "missing `type`",
        ),
        (
            format!(r#"{{"type":"door_state_update","data":{{"name":"{marker}"}}}}"#),
            "unknown type `door_state_update`",
        ),
        (
            format!(r#"{{"type":"fleet_state_update","name":"{marker}"}}"#),
            "missing `data`",
        ),
        (
            format!(r#"{{"type":"task_state_update","data":["{marker}"]}}"#),
            "`data` is not a JSON object",
        ),
        (
            format!(r#"{{"type":"task_state_update","data":{{"category":"{marker}"}}}}"#),
            "invalid task_state_update: missing field `booking`",
        ),
        (
            format!(r#"{{"type":"fleet_log_update","data":{{"name":"","note":"{marker}"}}}}"#),
            "invalid fleet_log_update: empty name",
        ),
    ];
    for (frame, _) in &bad {
        ws.send(Message::text(frame.as_str())).await.expect("send");
    }
    let binary = fleet_frame("after_bad", json!(marker));
    ws.send(Message::binary(binary.into_bytes()))
        .await
        .expect("send binary");
    // Then a good frame on the same connection.
    let good = json!({"name": "after_bad", "robots": {}});
    ws.send(Message::text(
        json!({"type": "fleet_state_update", "data": good}).to_string(),
    ))
    .await
    .expect("send good");
    let mut seen = Vec::new();
    until(&mut events, &mut seen, Duration::from_secs(5), |s| {
        !s.is_empty()
    })
    .await;
    assert_eq!(seen[0].room, "/fleets/after_bad/state");
    assert_eq!(seen[0].value, good);
    // One connection, still open.
    let invalid = bad.len() as u64 + 1;
    assert_eq!(server.internal().await, [1, invalid, 0, 0, 1]);
    let m = server.metrics().await;
    assert_eq!(m["rmf_dash_ingest_records_total{source=\"internal\"}"], 1);
    assert_eq!(m["rmf_dash_ingest_invalid_total{source=\"internal\"}"], 0);

    let log = server.log_text();
    for (_, reason) in &bad {
        assert!(log.contains(reason), "no `{reason}` in the log:\n{log}");
    }
    assert!(log.contains("binary frame ("), "{log}");
    assert_eq!(
        log.matches("invalid frame dropped").count(),
        bad.len() + 1,
        "{log}"
    );
    assert!(!log.contains(marker), "a frame reached the log:\n{log}");

    close(ws).await;
    let start = Instant::now();
    while server.internal().await[4] != 0 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "connection not counted closed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_message_over_the_limit_closes_only_its_connection_with_1009() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]).await;
    let rooms = [
        "/fleets/at_limit/state".to_string(),
        "/fleets/still_open/state".to_string(),
    ];
    let mut events = socketio(&server, &rooms).await;
    let mut other = adapter(&server).await;
    let mut big = adapter(&server).await;

    // Exactly the limit is accepted.
    let frame = |name: &str, size: usize| {
        let empty = fleet_frame(name, json!(""));
        let pad = size - empty.len();
        fleet_frame(name, json!("x".repeat(pad)))
    };
    let at_limit = frame("at_limit", MAX_FRAME);
    assert_eq!(at_limit.len(), MAX_FRAME);
    big.send(Message::text(at_limit.as_str()))
        .await
        .expect("send");
    let mut seen = Vec::new();
    until(&mut events, &mut seen, Duration::from_secs(10), |s| {
        !s.is_empty()
    })
    .await;
    assert_eq!(seen[0].room, "/fleets/at_limit/state");
    let sent = serde_json::from_str::<Value>(&at_limit).expect("json");
    assert_eq!(marker_of(&seen[0].value), marker_of(&sent["data"]));
    // The rest as rmf-web's FleetState document.
    let shaped = rmf_dash_dataflows::model::shape::fleet_state(&sent["data"].to_string());
    let shaped: Value = serde_json::from_str(&shaped.expect("shaped")).expect("json");
    assert_eq!(seen[0].value, shaped);

    // 5 MiB: the connection is closed with 1009.
    big.send(Message::text(frame("too_big", 5 << 20)))
        .await
        .expect("send");
    let reply = tokio::time::timeout(Duration::from_secs(5), big.next())
        .await
        .expect("reply");
    match reply {
        Some(Ok(Message::Close(Some(c)))) => {
            assert_eq!(u16::from(c.code), 1009);
            assert_eq!(
                c.reason.as_str(),
                format!("message larger than {MAX_FRAME} bytes")
            );
        }
        other => panic!("expected a close frame 1009, got {other:?}"),
    }
    assert!(
        matches!(
            tokio::time::timeout(Duration::from_secs(5), big.next()).await,
            Ok(None | Some(Err(_)))
        ),
        "the connection ended"
    );

    // The other adapter is still connected and heard.
    let still = json!({"name": "still_open", "robots": {}});
    other
        .send(Message::text(
            json!({"type": "fleet_state_update", "data": still}).to_string(),
        ))
        .await
        .expect("send");
    until(&mut events, &mut seen, Duration::from_secs(5), |s| {
        s.len() >= 2
    })
    .await;
    assert_eq!(seen[1].room, "/fleets/still_open/state");
    assert_eq!(seen[1].value, still);
    assert_eq!(server.internal().await, [2, 0, 1, 0, 1]);
    assert!(server.log_text().contains("message over the size limit"));
    close(other).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flooding_adapter_is_rate_limited_and_does_not_delay_another() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]).await;
    // The flood goes out in chunks; after each of the first NORMAL chunks the normal adapter
    // sends one task state, so every normal frame travels while the flood goes on.
    const CHUNK: usize = 1000;
    const FLOOD: usize = 50 * CHUNK;
    const NORMAL: usize = 40;
    let rooms: Vec<String> = (0..NORMAL)
        .map(|i| format!("/tasks/normal-{i}/state"))
        .collect();
    let mut events = socketio(&server, &rooms).await;
    let start = Instant::now();
    let mut flood = adapter(&server).await;
    let mut normal = adapter(&server).await;

    let (chunk_sent, mut chunks) = mpsc::unbounded_channel();
    let flooding = tokio::spawn(async move {
        let robots: serde_json::Map<String, Value> = (0..5)
            .map(|r| {
                let name = format!("flood_bot{r}");
                let state = json!({"name": name, "status": "working", "task_id": "",
                    "battery": 0.5, "location": {"map": "L1", "x": 1.0, "y": 2.0, "yaw": 0.0},
                    "issues": []});
                (name, state)
            })
            .collect();
        let began = Instant::now();
        for i in 0..FLOOD {
            let data = json!({"name": "flood", "robots": robots, "n": i});
            let frame = json!({"type": "fleet_state_update", "data": data}).to_string();
            flood.feed(Message::text(frame)).await.expect("flood");
            if (i + 1) % CHUNK == 0 {
                flood.flush().await.expect("flush");
                let _ = chunk_sent.send(i / CHUNK);
            }
        }
        let took = began.elapsed();
        close(flood).await;
        took
    });
    let mut sent = Vec::new();
    while let Some(i) = chunks.recv().await {
        if i >= NORMAL {
            continue;
        }
        let state = json!({"booking": {"id": format!("normal-{i}")}, "status": "queued"});
        normal
            .send(Message::text(
                json!({"type": "task_state_update", "data": state}).to_string(),
            ))
            .await
            .expect("send");
        sent.push(Instant::now());
    }
    let mut seen = Vec::new();
    until(&mut events, &mut seen, Duration::from_secs(30), |s| {
        s.len() >= NORMAL
    })
    .await;
    let flood_took = flooding.await.expect("flood task");
    let worst = seen
        .iter()
        .map(|e| {
            let i: usize = e.room["/tasks/normal-".len()..]
                .trim_end_matches("/state")
                .parse()
                .expect("index");
            e.at.duration_since(sent[i])
        })
        .max()
        .expect("events");
    // Latency is reported, not asserted (timings on a shared machine are noise): what is
    // asserted is that every frame of the normal adapter got through while the flood was cut to
    // its budget (below), so the flood could not fill the feeder's shared queue.
    eprintln!("flood of {FLOOD} frames sent in {flood_took:?}; worst normal latency {worst:?}");
    assert_eq!(seen.len(), NORMAL, "every normal frame arrives");

    // Every frame is counted once: the flood beyond its burst and rate is dropped.
    let total = (FLOOD + NORMAL) as u64;
    let mut counts = server.internal().await;
    while counts[0] + counts[3] < total {
        assert!(start.elapsed() < Duration::from_secs(30), "{counts:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
        counts = server.internal().await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let [ok, invalid, oversized, limited, _] = counts;
    assert_eq!((invalid, oversized), (0, 0));
    assert_eq!(ok + limited, total);
    let flood_ok = ok - NORMAL as u64;
    let most = BURST + (RATE as f64 * elapsed).ceil() as u64;
    assert!(
        (BURST..=most).contains(&flood_ok),
        "{flood_ok} flood frames taken in {elapsed:.2} s (burst {BURST}, at most {most})"
    );
    // The warnings about it are limited too.
    let log = server.log_text();
    let warned = log.matches("over the rate limit").count() as f64;
    assert!(
        warned <= 10.0 + elapsed + 1.0,
        "{warned} warnings in {elapsed:.2} s"
    );
    close(normal).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_configured_token_is_required_by_query_or_bearer_header() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token = "s3cret/x y";
    let server = Server::start(dir.path(), &["--internal-token", token]).await;
    let rooms = [
        "/fleets/by_query/state".to_string(),
        "/fleets/by_header/state".to_string(),
    ];
    let mut events = socketio(&server, &rooms).await;

    let refused = |r: Result<_, tokio_tungstenite::tungstenite::Error>| match r {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let body: Value = serde_json::from_slice(resp.body().as_deref().unwrap_or_default())
                .expect("JSON body");
            (
                resp.status().as_u16(),
                body["detail"].as_str().unwrap_or_default().to_string(),
            )
        }
        Ok(_) => panic!("connected without the token"),
        Err(e) => panic!("{e}"),
    };
    let (status, detail) = refused(connect_async(server.url("")).await);
    assert_eq!(status, 401);
    assert!(detail.starts_with("/_internal: no token"), "{detail}");
    let (status, detail) = refused(connect_async(server.url("?token=s3cret")).await);
    assert_eq!(
        (status, detail.starts_with("/_internal: wrong token")),
        (401, true),
        "{detail}"
    );
    let mut req = server.url("").into_client_request().expect("request");
    req.headers_mut()
        .insert("Authorization", "Bearer nope".parse().expect("header"));
    assert_eq!(refused(connect_async(req).await).0, 401);
    // Not even a plain request gets past the token.
    assert_eq!(server.get("/_internal").await.0, 401);

    let (mut by_query, _) = connect_async(server.url("?token=s3cret%2Fx%20y"))
        .await
        .expect("by query");
    let mut req = server.url("").into_client_request().expect("request");
    req.headers_mut().insert(
        "Authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    let (mut by_header, _) = connect_async(req).await.expect("by header");
    by_query
        .send(Message::text(fleet_frame("by_query", json!(1))))
        .await
        .expect("send");
    by_header
        .send(Message::text(fleet_frame("by_header", json!(2))))
        .await
        .expect("send");
    let mut seen = Vec::new();
    until(&mut events, &mut seen, Duration::from_secs(5), |s| {
        s.len() >= 2
    })
    .await;
    let got = latest(&seen);
    assert_eq!(*marker_of(&got["/fleets/by_query/state"]), 1);
    assert_eq!(*marker_of(&got["/fleets/by_header/state"]), 2);
    assert_eq!(server.internal().await, [2, 0, 0, 0, 2]);
    close(by_query).await;
    close(by_header).await;
}
