//! Proxies (`rmf-dash proxy`) against the real binary on loopback: a main process replaying a
//! hotel scenario recording, proxy A behind it and proxy B behind A, real socket.io clients
//! (node socket.io-client 4.x) on all three.
//!
//! - Every client, wherever connected, ends with the engine's final value of every room with the
//!   same sequence numbers, and sees no gap, duplicate or older value.
//! - REST through a proxy: reads and ★ commands reach the main process with the client's token;
//!   `/_replicate` and socket.io refuse bad tokens; a proxy with a bad upstream token is not
//!   ready.
//! - Restarts: killing (-9) and restarting a proxy makes its clients reconnect and resync;
//!   killing the main process and restarting it on another recording makes the proxies resync:
//!   their clients end with the new main's values (never an older seq).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

mod common;
use common::{Proc, Server, bearer, final_values, node_dir, same_json, trace_gen};

const SECRET: &str = "proxy-test-secret";

fn token(user: &str) -> String {
    common::token(SECRET, user)
}

/// One request with `token` as bearer: (status, JSON body, Null when empty, a string when not
/// JSON).
fn http(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> (u16, Value) {
    let reply = common::http(port, method, path, token.map(bearer).as_deref(), body);
    (reply.status, reply.value())
}

/// `rmf-dash serve` of `recording` at `speed`, on `port` (0: a free one); its port.
fn serve(port: u16, recording: &Path, speed: &str) -> (Proc, u16) {
    Server::serve()
        .args(["--no-db", "--jwt-secret", SECRET, "--speed", speed])
        .arg("--replay")
        .arg(recording)
        .on_port(port)
        .start()
}

/// A proxy of `upstream` on `port` (0: a free one); `batch_ms` is its `--batch-ms` (deliveries
/// gathered over a window).
fn proxy(port: u16, upstream: u16, upstream_token: &str, batch_ms: u32) -> (Proc, u16) {
    Server::proxy()
        .args(["--jwt-secret", SECRET])
        .arg(format!("--batch-ms={batch_ms}"))
        .arg("--upstream")
        .arg(format!("http://127.0.0.1:{upstream}"))
        .arg("--upstream-token")
        .arg(upstream_token)
        .on_port(port)
        .start()
}

/// A hotel recording: 300 s with every scenario, or `short`: 100 s without scenarios.
fn generate(dir: &Path, seed: u32, short: bool) -> PathBuf {
    let seed = seed.to_string();
    let length: &[&str] = if short {
        &["--duration", "100s"]
    } else {
        &["--duration", "300s", "--scenario", "all"]
    };
    let args = [&["--preset", "hotel", "--seed", seed.as_str()][..], length].concat();
    trace_gen(&dir.join(format!("hotel{seed}.mcap")), &args)
}

fn is_stream(room: &str) -> bool {
    room.starts_with("/alerts/") || room.ends_with("/log") || room == "/beacons"
}

/// The state rooms of the recording (no tasks), condition rooms of every door, lift and robot,
/// and a room whose entity never exists.
fn state_rooms(values: &BTreeMap<String, Value>) -> Vec<String> {
    let mut rooms: Vec<String> = values
        .keys()
        .filter(|r| !r.starts_with("/tasks/") && !is_stream(r))
        .cloned()
        .collect();
    let mut more = vec!["/doors/not_yet_there/state".to_string()];
    for r in &rooms {
        if let Some(door) = r
            .strip_prefix("/doors/")
            .and_then(|d| d.strip_suffix("/state"))
        {
            more.push(format!("/doors/{door}/held_open"));
        }
        if let Some(robot) = r
            .strip_prefix("/robots/")
            .and_then(|d| d.strip_suffix("/health"))
        {
            more.push(format!("/robots/{robot}/battery_low"));
            more.push(format!("/robots/{robot}/stuck"));
        }
    }
    rooms.extend(more);
    rooms.sort();
    rooms.dedup();
    rooms.truncate(100);
    rooms
}

/// Starts `node SCRIPT URL TOKEN CLIENTS ROOMS_FILE SECONDS`.
fn clients(
    script: &str,
    port: u16,
    token: &str,
    n: usize,
    rooms: &[String],
    seconds: u64,
    file: PathBuf,
) -> Child {
    std::fs::File::create(&file)
        .and_then(|mut f| f.write_all(rooms.join("\n").as_bytes()))
        .expect("rooms file");
    Command::new("node")
        .arg(node_dir().join(script))
        .arg(format!("http://127.0.0.1:{port}"))
        .arg(token)
        .arg(n.to_string())
        .arg(&file)
        .arg(seconds.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node")
}

fn summary(child: Child) -> Value {
    let out = child.wait_with_output().expect("node output");
    assert!(out.status.success(), "node clients failed");
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("summary: {e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// A summary without its per-room maps (for messages).
fn brief(s: &Value) -> Value {
    let mut s = s.clone();
    if let Some(o) = s.as_object_mut() {
        o.remove("last");
        o.remove("lastValues");
    }
    s
}

/// Asserts that the clients ended with `expected` (the engine's final values) in every room.
fn assert_final_values(who: &str, s: &Value, rooms: &[String], expected: &BTreeMap<String, Value>) {
    for room in rooms {
        let got = s["lastValues"][room]
            .as_str()
            .map(|v| serde_json::from_str::<Value>(v).expect("value"));
        match (got, expected.get(room)) {
            (Some(g), Some(w)) => assert!(
                same_json(&g, w),
                "{who} {room}: clients ended with {g}, the engine with {w}"
            ),
            (None, None) | (Some(Value::Null), None) => {}
            (g, w) => panic!("{who} {room}: clients ended with {g:?}, the engine with {w:?}"),
        }
    }
}

/// A counter or gauge of `/metrics`.
fn metric(port: u16, name: &str) -> u64 {
    let (status, text) = http(port, "GET", "/metrics", None, None);
    assert_eq!(status, 200);
    text.as_str()
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

/// The HTTP status a websocket upgrade to `/_replicate` gets.
fn replicate_status(port: u16, token: Option<&str>) -> u16 {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let mut req = format!("ws://127.0.0.1:{port}/_replicate")
            .into_client_request()
            .expect("request");
        if let Some(t) = token {
            req.headers_mut().insert(
                "authorization",
                format!("Bearer {t}").parse().expect("header"),
            );
        }
        match tokio_tungstenite::connect_async(req).await {
            Ok((_, resp)) => resp.status().as_u16(),
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16(),
            Err(e) => panic!("{e}"),
        }
    })
}

#[test]
fn chained_proxies_give_every_client_the_same_values_and_seqs_without_gaps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let recording = generate(dir.path(), 5, false);
    let expected = final_values(&recording);
    let mut rooms = state_rooms(&expected);
    assert!(rooms.len() >= 50, "{rooms:?}");
    // Stream rooms too: events pass through the proxies with the main process's seqs.
    rooms.push("/alerts/requests".into());
    rooms.push("/fleets/tinyRobot/log".into());
    // 300 s of hotel at 20x: 15 s of changes while the clients listen, then a quiet margin.
    let (_main, pm) = serve(0, &recording, "20");
    let (_a, pa) = proxy(0, pm, &token("proxy-a"), 0);
    // The chained proxy gathers what it delivers over 30 ms windows.
    let (_b, pb) = proxy(0, pa, &token("proxy-b"), 30);
    let good = token("operator");
    let runs: Vec<(&str, Child)> = [("main", pm), ("a", pa), ("b", pb)]
        .into_iter()
        .map(|(name, port)| {
            (
                name,
                clients(
                    "clients.mjs",
                    port,
                    &good,
                    40,
                    &rooms,
                    25,
                    dir.path().join(format!("{name}.rooms")),
                ),
            )
        })
        .collect();
    // While the clients follow the building map, B answers its REST read from its own hub.
    std::thread::sleep(Duration::from_secs(6));
    let (status, map_b) = http(pb, "GET", "/building_map", None, Some(&good));
    assert_eq!(status, 200);
    // The same map, its image URLs under each server's own address.
    let map_main = http(pm, "GET", "/building_map", None, Some(&good)).1;
    assert!(same_json(&map_b, &map_main), "{map_b} vs {map_main}");
    assert_ne!(map_b, map_main, "the proxy's image URLs are its own");
    assert!(map_b["levels"].is_array(), "{map_b}");
    assert_eq!(http(pb, "GET", "/building_map", None, None).0, 401);
    assert_eq!(metric(pb, "rmf_dash_proxy_rest_cached_total"), 1);
    let summaries: Vec<(&str, Value)> = runs.into_iter().map(|(n, c)| (n, summary(c))).collect();
    for (who, s) in &summaries {
        assert_eq!(s["connected"], 40, "{who}: {}", brief(s));
        assert_eq!(
            s["subscribeErrors"].as_array().map(Vec::len),
            Some(0),
            "{who}"
        );
        assert_eq!(s["duplicates"], 0, "{who}");
        assert_eq!(s["gaps"], 0, "{who}");
        assert_eq!(s["backwards"], 0, "{who}");
        assert_eq!(
            s["disagree"], 0,
            "{who}: every client ends with the same values"
        );
        assert!(
            s["events"].as_u64().unwrap_or(0) > 10_000,
            "{who}: {}",
            s["events"]
        );
        assert_final_values(who, s, &rooms, &expected);
        eprintln!(
            "{who}: {} events, latency from main to client {}",
            s["events"], s["latency"]
        );
    }
    // Same seqs everywhere: the proxies forward the main process's sequence numbers.
    let main_last = &summaries[0].1["last"];
    for (who, s) in &summaries[1..] {
        assert_eq!(&s["last"], main_last, "{who}: seqs differ from main's");
    }
    // The proxies forgot the rooms nobody follows any more.
    let (_, metrics) = http(pb, "GET", "/metrics", None, None);
    let metrics = metrics.as_str().unwrap_or_default().to_string();
    assert!(
        metrics.contains("rmf_dash_proxy_upstream_rooms 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("rmf_dash_proxy_frames_invalid_total 0"),
        "{metrics}"
    );

    // REST through B: reads are upstream's answers, commands reach the main process.
    let (status, doors_b) = http(pb, "GET", "/doors", None, Some(&good));
    assert_eq!(status, 200, "{doors_b}");
    assert_eq!(doors_b, http(pm, "GET", "/doors", None, Some(&good)).1);
    assert_eq!(http(pb, "GET", "/doors", None, None).0, 401);
    let door = r#"{"mode": 2}"#;
    assert_eq!(
        http(pb, "POST", "/doors/L1_door_01/request", Some(door), None).0,
        401,
        "a command without token stops at the proxy"
    );
    assert_eq!(
        http(
            pb,
            "POST",
            "/doors/L1_door_01/request",
            Some(door),
            Some(&good)
        ),
        (200, Value::Null)
    );
    let (status, bad) = http(
        pb,
        "POST",
        "/doors/L1_door_01/request",
        Some(r#"{"mode": "x"}"#),
        Some(&good),
    );
    assert_eq!(status, 422, "upstream's validation answer: {bad}");
    // Every user's commands: the admin's to read.
    let admin = token("admin");
    let (status, published) = http(pm, "GET", "/_loopback/published", None, Some(&admin));
    assert_eq!(status, 200, "{published}");
    let published = published.as_array().cloned().unwrap_or_default();
    assert_eq!(published.len(), 1, "{published:?}");
    assert_eq!(published[0]["message"]["door_name"], "L1_door_01");
    assert_eq!(
        published[0]["message"]["requested_mode"],
        json!({"value": 2})
    );
    assert_eq!(http(pb, "POST", "/_internal", None, Some(&good)).0, 404);

    // Authentication of every entry point.
    assert_eq!(replicate_status(pm, None), 401);
    assert_eq!(replicate_status(pa, Some("not-a-jwt")), 401);
    assert_eq!(replicate_status(pa, Some(&good)), 101);
    let bad = summary(clients(
        "clients.mjs",
        pb,
        "not-a-jwt",
        1,
        &rooms[..1],
        1,
        dir.path().join("bad.rooms"),
    ));
    assert_eq!(bad["connected"], 0, "{bad}");
    // A proxy whose upstream token is refused is not ready.
    let (_c, pc) = proxy(0, pm, "not-a-jwt", 0);
    std::thread::sleep(Duration::from_millis(500));
    let (status, health) = http(pc, "GET", "/health", None, None);
    assert_eq!(status, 503, "{health}");
    assert_eq!(health["upstream"]["connected"], false);
    let (status, health) = http(pb, "GET", "/health", None, None);
    assert_eq!(
        (status, &health["role"]),
        (200, &json!("proxy")),
        "{health}"
    );
}

#[test]
fn proxies_resync_after_a_proxy_and_the_main_process_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = generate(dir.path(), 5, false);
    // Shorter: its rooms end with lower seqs than the first recording's, so a proxy comparing
    // seqs across the restart would keep the old values.
    let second = generate(dir.path(), 6, true);
    let expected = final_values(&second);
    let before = final_values(&first);
    let mut both = before.clone();
    both.extend(expected.clone());
    let rooms = state_rooms(&both);
    // The second recording ends elsewhere: a proxy serving stale values would be seen.
    let differ = rooms
        .iter()
        .filter(|r| match (before.get(*r), expected.get(*r)) {
            (Some(a), Some(b)) => !same_json(a, b),
            (a, b) => a.is_some() != b.is_some(),
        })
        .count();
    assert!(
        differ >= 10,
        "only {differ} rooms differ between the recordings"
    );
    let (mut main, pm) = serve(0, &first, "20");
    let (mut a, pa) = proxy(0, pm, &token("proxy-a"), 0);
    let (mut b, pb) = proxy(0, pa, &token("proxy-b"), 30);
    let good = token("operator");
    let on_a = clients(
        "resync.mjs",
        pa,
        &good,
        20,
        &rooms,
        50,
        dir.path().join("a.rooms"),
    );
    let on_b = clients(
        "resync.mjs",
        pb,
        &good,
        20,
        &rooms,
        50,
        dir.path().join("b.rooms"),
    );
    std::thread::sleep(Duration::from_secs(4));
    // Proxy B dies and comes back: its clients reconnect to the new B.
    b.kill();
    std::thread::sleep(Duration::from_secs(1));
    b = proxy(pb, pa, &token("proxy-b"), 30).0;
    // The first replay ends (15 s at 20x).
    std::thread::sleep(Duration::from_secs(13));
    // The main process dies and comes back on the second recording.
    main.kill();
    std::thread::sleep(Duration::from_secs(1));
    main = serve(pm, &second, "20").0;
    std::thread::sleep(Duration::from_secs(4));
    // Proxy A (B's upstream) dies and comes back while the main process replays.
    a.kill();
    std::thread::sleep(Duration::from_secs(1));
    a = proxy(pa, pm, &token("proxy-a"), 0).0;
    let (sa, sb) = (summary(on_a), summary(on_b));
    for (who, s) in [("a", &sa), ("b", &sb)] {
        let brief = brief(s);
        // Each client connected twice: at the start and after its own proxy restarted; the
        // restarts upstream of its proxy did not disconnect it.
        assert_eq!(s["connects"], 40, "{who}: {brief}");
        // Within a connection, across the upstream restarts: never an older value.
        assert_eq!(
            s["backwards"], 0,
            "{who}: an older value after a newer one: {brief}"
        );
        assert_eq!(s["duplicates"], 0, "{who}: {brief}");
        assert_eq!(s["disagree"], 0, "{who}: {brief}");
        assert_eq!(
            s["subscribeErrors"].as_array().map(Vec::len),
            Some(0),
            "{who}"
        );
        assert_final_values(who, s, &rooms, &expected);
    }
    // Fresh clients everywhere see the new main's values.
    for (who, port) in [("main", pm), ("a", pa), ("b", pb)] {
        let s = summary(clients(
            "clients.mjs",
            port,
            &good,
            2,
            &rooms,
            2,
            dir.path().join(format!("{who}.rooms")),
        ));
        assert_eq!(s["connected"], 2, "{who}");
        assert_final_values(who, &s, &rooms, &expected);
    }
    let (_, health) = http(pb, "GET", "/health", None, None);
    assert_eq!(health["upstream"]["connected"], true, "{health}");
    drop((main, a, b));
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_message(ws: &mut Ws) -> tokio_tungstenite::tungstenite::Message {
    use futures_util::StreamExt;
    tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("a message in time")
        .expect("open")
        .expect("message")
}

#[test]
fn the_replication_stream_answers_each_subscription_with_the_present_state() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};
    let dir = tempfile::tempdir().expect("tempdir");
    let recording = generate(dir.path(), 5, true);
    let (_main, pm) = serve(0, &recording, "max");
    let good = token("proxy");
    // The replay is over once the building map's REST answer is there and stable.
    std::thread::sleep(Duration::from_secs(3));
    let (status, map) = http(pm, "GET", "/building_map", None, Some(&good));
    assert_eq!(status, 200);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let mut req = format!("ws://127.0.0.1:{pm}/_replicate")
            .into_client_request()
            .expect("request");
        req.headers_mut().insert(
            "authorization",
            format!("Bearer {good}").parse().expect("header"),
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(req)
            .await
            .expect("connect");
        let hello: Value = match next_message(&mut ws).await {
            Message::Text(t) => serde_json::from_str(t.as_str()).expect("hello"),
            other => panic!("{other:?}"),
        };
        assert_eq!(hello["protocol"], "rmf-dash-replicate");
        assert_eq!(hello["version"], 1);
        assert_eq!(hello["epoch"].as_str().map(str::len), Some(36), "{hello}");
        let sub = |room: &str| Message::Text(json!({"op": "sub", "room": room}).to_string().into());
        ws.send(sub("/nope")).await.expect("send");
        match next_message(&mut ws).await {
            Message::Text(t) => {
                let v: Value = serde_json::from_str(t.as_str()).expect("json");
                assert_eq!(v, json!({"error": "unknown room", "room": "/nope"}));
            }
            other => panic!("{other:?}"),
        }
        // A room never seen: seq 0, no value.
        ws.send(sub("/doors/not_yet_there/state"))
            .await
            .expect("send");
        let frame = match next_message(&mut ws).await {
            Message::Binary(b) => b.to_vec(),
            other => panic!("{other:?}"),
        };
        let room = "/doors/not_yet_there/state";
        assert_eq!(frame[0], 0, "no value");
        assert_eq!(&frame[1..9], &0u64.to_be_bytes(), "seq 0");
        assert_eq!(frame.len(), 27 + room.len());
        assert_eq!(&frame[27..], room.as_bytes());
        // The building map: its bytes exactly as the hub holds them (the REST answer).
        ws.send(sub("/building_map")).await.expect("send");
        let frame = match next_message(&mut ws).await {
            Message::Binary(b) => b.to_vec(),
            other => panic!("{other:?}"),
        };
        let room = "/building_map";
        assert_eq!(frame[0], 1, "a value");
        assert_eq!(&frame[1..9], &1u64.to_be_bytes(), "seq 1");
        assert_eq!(&frame[27..27 + room.len()], room.as_bytes());
        let payload: Value = serde_json::from_slice(&frame[27 + room.len()..]).expect("json");
        assert_eq!(payload, map);
        ws.send(Message::Text("{\"op\":\"drop\"}".into()))
            .await
            .expect("send");
        match next_message(&mut ws).await {
            Message::Text(t) => assert!(t.as_str().contains("bad request"), "{t}"),
            other => panic!("{other:?}"),
        }
    });
}
