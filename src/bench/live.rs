//! Benchmarks against a live `rmf-dash serve` (in this process, over loopback): the sustained
//! `/_internal` ingest rate of `fleet_state_update` frames (vs raw websocket reception of the same
//! frames), and the fan-out of a site's fleet-adapter stream to many socket.io clients at real
//! time (deliveries/s, server CPU per delivery, server memory per idle client, end-to-end latency
//! from the adapter's send to the client's receipt), against a plain websocket server writing the
//! same packets to the same clients.
//!
//! The adapter runs on its own runtime thread in this process and the clients in a load process
//! of their own ([`super::load`]), speaking the wire protocols directly (websocket frames;
//! Engine.IO 4 / Socket.IO 5 packets), so the server measured is the real one and its CPU and
//! memory are its own (the load still shares the machine's cores, noted in every figure). The
//! adapter writes its wall-clock send time into each fleet state (`bench_sent_us`, kept in the
//! room payload since fleet-adapter JSON is passed on as received), which makes the latency
//! exact: receive time minus send time on the same clock.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use super::load::{LoadConfig, LoadProcess, LoadReport, Mode};
use super::{BenchError, Figure};
use crate::ingest::bag::Recording;
use crate::ingest::cdr::{RmfRelease, typed};
use crate::serve::{self, ServeConfig};
use rmf_dash_dataflows::model::ros::StdString;

/// A fleet-adapter frame of the recording and when it was logged (ns).
struct Frame {
    log_ns: u64,
    kind: &'static str,
    data: String,
}

/// The fleet-adapter JSON updates of a recording (its `std_msgs/String` topics), in log order,
/// up to `limit_ms` of recording.
fn frames(path: &str, limit_ms: u64) -> Result<Vec<Frame>, BenchError> {
    let rec = Recording::open(path)?;
    let kinds: Vec<Option<&'static str>> = rec
        .channels
        .iter()
        .map(|c| match c.topic.as_str() {
            "/fleet_state_update" => Some("fleet_state_update"),
            "/fleet_log_update" => Some("fleet_log_update"),
            "/task_state_update" => Some("task_state_update"),
            "/task_log_update" => Some("task_log_update"),
            _ => None,
        })
        .collect();
    let mut out = Vec::new();
    let mut first = None;
    for m in rec {
        let m = m?;
        let Some(kind) = kinds.get(m.channel).copied().flatten() else {
            continue;
        };
        let start = *first.get_or_insert(m.log_time);
        if m.log_time.saturating_sub(start) > limit_ms * 1_000_000 {
            break;
        }
        if let Ok(s) = typed::decode::<StdString>(&m.data, RmfRelease::Jazzy) {
            out.push(Frame {
                log_ns: m.log_time,
                kind,
                data: s.data,
            });
        }
    }
    Ok(out)
}

fn wall_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// The frame text (the topic carries the whole `{"type","data"}` frame), with the send time
/// written into a fleet state.
fn frame_text(f: &Frame, stamp: bool) -> String {
    const DATA: &str = "\"data\":{";
    match f.data.split_once(DATA) {
        Some((head, rest)) if stamp && f.kind == "fleet_state_update" => {
            format!("{head}{DATA}\"bench_sent_us\":{},{rest}", wall_us())
        }
        _ => f.data.clone(),
    }
}

/// The fleet name of a fleet state frame.
fn fleet_name(frame: &str) -> Option<String> {
    serde_json::from_str::<serde_json::Value>(frame)
        .ok()?
        .get("data")?
        .get("name")?
        .as_str()
        .map(str::to_string)
}

fn runtime(threads: usize, name: &str) -> Result<tokio::runtime::Runtime, BenchError> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name(name)
        .enable_all()
        .build()?)
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn load_error(e: impl std::fmt::Display) -> BenchError {
    BenchError::Io(std::io::Error::other(format!("load client: {e}")))
}

/// Sustained `/_internal` ingest: `fleet_state_update` frames sent as fast as one adapter
/// connection can, counted when the feeder has handed them to the engine; baseline: a websocket
/// endpoint on the same kind of runtime that only receives the same frames.
pub fn ingest(path: &str, quick: bool, figures: &mut Vec<Figure>) -> Result<(), BenchError> {
    let fleet: Vec<Frame> = frames(path, u64::MAX)?
        .into_iter()
        .filter(|f| f.kind == "fleet_state_update")
        .collect();
    if fleet.is_empty() {
        return Ok(());
    }
    let total = if quick { 20_000 } else { 200_000 };
    let texts: Vec<String> = fleet
        .iter()
        .cycle()
        .take(total)
        .map(|f| frame_text(f, false))
        .collect();
    let bytes: usize = texts.iter().map(String::len).sum();
    let mut progress = crate::progress::Progress::new(
        "ingest: /_internal fleet_state_update frames",
        Some(2 * total as u64),
    );
    let load = runtime(1, "bench-load")?;
    // The server: one tokio worker (the engine has its own thread).
    let server_rt = runtime(1, "bench-server")?;
    let running = server_rt.block_on(serve::start(ServeConfig::local(loopback())))?;
    let url = format!("ws://{}/_internal", running.addr);
    let app = running.app.clone();
    // Fed to the engine, or refused (a refused frame would otherwise never be counted).
    let fed = move || {
        app.feed_metrics.records[1].load(Ordering::Relaxed)
            + app.internal.metrics.invalid.load(Ordering::Relaxed)
    };
    let server_d = load.block_on(send_all(&url, &texts, &fed, &mut progress))?;
    // The server stops once the last handle of its app is gone.
    drop(fed);
    server_rt.block_on(running.stop())?;
    // The baseline: receive and drop.
    let received = Arc::new(AtomicU64::new(0));
    let (addr, stop) = server_rt.block_on(raw_sink(received.clone()))?;
    let url = format!("ws://{addr}/raw");
    let count = move || received.load(Ordering::Relaxed);
    let raw_d = load.block_on(send_all(&url, &texts, &count, &mut progress))?;
    let _ = stop.send(true);
    progress.finish(&format!("{total} frames twice"));
    let note = format!(
        "{total} frames of {:.0} B (one adapter connection, server on 1 tokio worker + 1 engine \
         worker; the sender shares the machine); counted when fed to the engine",
        bytes as f64 / total as f64
    );
    figures.push(super::rate(
        "/_internal fleet_state_update ingest",
        "ingest",
        total as f64,
        server_d,
        "frames/s",
        Some(("websocket receive only", total as f64, raw_d)),
        &note,
    ));
    Ok(())
}

/// Sends every text on one websocket and returns when `done()` counts them all.
async fn send_all(
    url: &str,
    texts: &[String],
    done: &(dyn Fn() -> u64 + Sync),
    progress: &mut crate::progress::Progress,
) -> Result<Duration, BenchError> {
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .map_err(load_error)?;
    let before = done();
    let start = Instant::now();
    for chunk in texts.chunks(1000) {
        for t in chunk {
            ws.feed(Message::text(t.as_str()))
                .await
                .map_err(load_error)?;
        }
        ws.flush().await.map_err(load_error)?;
        progress.inc(chunk.len() as u64);
    }
    let want = before + texts.len() as u64;
    let deadline = Instant::now() + Duration::from_secs(120);
    while done() < want {
        if Instant::now() > deadline {
            return Err(load_error(format!(
                "{} of {} frames arrived",
                done() - before,
                texts.len()
            )));
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    let d = start.elapsed();
    let _ = ws.close(None).await;
    Ok(d)
}

/// A websocket endpoint that counts and drops text frames (the ingest baseline).
async fn raw_sink(
    received: Arc<AtomicU64>,
) -> Result<(SocketAddr, tokio::sync::watch::Sender<bool>), BenchError> {
    use axum::extract::ws::{Message as AxMessage, WebSocketUpgrade};
    let route = axum::routing::get(move |ws: WebSocketUpgrade| {
        let received = received.clone();
        async move {
            ws.on_upgrade(move |mut socket| async move {
                while let Some(Ok(m)) = socket.recv().await {
                    if let AxMessage::Text(t) = m {
                        std::hint::black_box(t.len());
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        }
    });
    let router = axum::Router::new().route("/raw", route);
    let listener = tokio::net::TcpListener::bind(loopback()).await?;
    let addr = listener.local_addr()?;
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = stopped.changed().await;
            })
            .await;
    });
    Ok((addr, stop))
}

/// One fan-out run as the server process saw it.
struct Run {
    report: LoadReport,
    elapsed: Duration,
    /// CPU time of this process (server and adapter; the clients run in the load process).
    cpu: Duration,
    /// Resident memory the subscribed idle clients added to this process.
    rss_per_client: f64,
}

/// CPU time (user + system) of this process.
fn cpu_time() -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// Resident memory of this process (bytes), from `/proc/self/statm`.
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// Plays `frames` at their recorded pace with `send` (called with each frame), `seconds` at
/// most, showing progress.
async fn pace(frames: &[Frame], label: &str, mut send: impl AsyncFnMut(&Frame)) {
    let mut progress = crate::progress::Progress::new(label.to_string(), Some(frames.len() as u64));
    let started = tokio::time::Instant::now();
    let first = frames.first().map_or(0, |f| f.log_ns);
    for f in frames {
        tokio::time::sleep_until(started + Duration::from_nanos(f.log_ns - first)).await;
        send(f).await;
        progress.inc(1);
    }
    // The last deliveries.
    tokio::time::sleep(Duration::from_millis(500)).await;
    progress.finish(&format!("{} frames", frames.len()));
}

/// The fan-out at real time: the recording's fleet-adapter frames sent to `/_internal` on their
/// recorded schedule for `seconds`, `clients` socket.io clients (in a load process of their own)
/// each subscribed to `rooms_per_client` fleet state rooms (spread evenly). Baseline: a plain
/// websocket server writing the same packets to the same clients (no ingest, engine, hub).
pub fn fanout(
    path: &str,
    clients: usize,
    rooms_per_client: usize,
    seconds: u64,
    figures: &mut Vec<Figure>,
) -> Result<(), BenchError> {
    let frames = frames(path, seconds * 1000)?;
    let mut fleets: Vec<String> = frames
        .iter()
        .filter(|f| f.kind == "fleet_state_update")
        .filter_map(|f| fleet_name(&f.data))
        .collect();
    fleets.sort();
    fleets.dedup();
    if fleets.is_empty() || clients == 0 {
        return Ok(());
    }
    let per_client = rooms_per_client.min(fleets.len());
    let rooms: Vec<String> = fleets
        .iter()
        .map(|f| format!("/fleets/{f}/state"))
        .collect();
    let config = |addr, mode| LoadConfig {
        addr,
        mode,
        clients,
        rooms: rooms.clone(),
        per_client,
    };
    let ours = socketio_run(&frames, &config(loopback(), Mode::Socketio))?;
    let raw = raw_run(&frames, &config(loopback(), Mode::Raw))?;
    let note = format!(
        "{clients} websocket clients (a load process of their own) x {per_client} of {} fleet \
         state rooms, {} adapter frames over {seconds} s at real time; server on 1 tokio \
         worker + 1 engine worker; baseline: a plain websocket server writing the same packets \
         to the same clients",
        fleets.len(),
        frames.len()
    );
    figures.push(super::rate(
        "socket.io deliveries",
        "fanout",
        ours.report.deliveries as f64,
        ours.elapsed,
        "deliveries/s",
        Some((
            "raw websocket writes",
            raw.report.deliveries as f64,
            raw.elapsed,
        )),
        &note,
    ));
    let per_delivery = |r: &Run| r.cpu.as_secs_f64() * 1e6 / r.report.deliveries.max(1) as f64;
    let lower =
        |name: String, value: f64, unit: &'static str, baseline: f64, note: String| Figure {
            section: "fanout",
            name,
            value,
            unit,
            ratio: Some(value / baseline.max(1e-9)),
            baseline: Some(super::Baseline {
                name: "raw websocket writes".into(),
                value: baseline,
            }),
            better: "lower",
            note,
        };
    figures.push(lower(
        "server CPU per delivery".into(),
        per_delivery(&ours),
        "us",
        per_delivery(&raw),
        "CPU time of the server process (ingest, engine, hub, socket.io; and the adapter) / \
         deliveries"
            .into(),
    ));
    figures.push(lower(
        "server memory per idle client".into(),
        ours.rss_per_client / 1024.0,
        "KiB",
        raw.rss_per_client / 1024.0,
        "resident memory added to the server process by the subscribed clients / clients".into(),
    ));
    for (name, q) in [("p50", 0.5), ("p99", 0.99), ("p999", 0.999)] {
        figures.push(lower(
            format!("adapter send to client receipt latency {name}"),
            ours.report.quantile(q) as f64,
            "ms",
            raw.report.quantile(q) as f64,
            format!(
                "{} fleet state deliveries, 1 ms resolution",
                ours.report.samples()
            ),
        ));
    }
    Ok(())
}

/// The socket.io run: a real server, the adapter on `/_internal`.
fn socketio_run(frames: &[Frame], load: &LoadConfig) -> Result<Run, BenchError> {
    let server_rt = runtime(1, "bench-server")?;
    let adapter = runtime(1, "bench-adapter")?;
    let running = server_rt.block_on(serve::start(ServeConfig::local(load.addr)))?;
    let addr = running.addr;
    let before = rss_bytes();
    let mut clients = LoadProcess::start(&LoadConfig {
        addr,
        ..load.clone()
    })?;
    let rss_per_client = rss_bytes().saturating_sub(before) as f64 / load.clients.max(1) as f64;
    clients.go()?;
    let (cpu0, started) = (cpu_time(), Instant::now());
    let url = format!("ws://{addr}/_internal");
    adapter.block_on(async {
        let (mut ws, _) = tokio_tungstenite::connect_async(&url)
            .await
            .map_err(load_error)?;
        let mut failed = None;
        pace(
            frames,
            "fan-out: socket.io, the site's adapter stream at real time",
            async |f| {
                if failed.is_none()
                    && let Err(e) = ws.send(Message::text(frame_text(f, true))).await
                {
                    failed = Some(e);
                }
            },
        )
        .await;
        let _ = ws.close(None).await;
        failed.map_or(Ok(()), |e| Err(load_error(e)))
    })?;
    let (elapsed, cpu) = (started.elapsed(), cpu_time().saturating_sub(cpu0));
    let report = clients.stop()?;
    server_rt.block_on(running.stop())?;
    Ok(Run {
        report,
        elapsed,
        cpu,
        rss_per_client,
    })
}

/// Subscribers of the raw baseline server, by room.
type RawRooms = Arc<parking_lot::Mutex<std::collections::HashMap<String, Vec<RawSender>>>>;
type RawSender = tokio::sync::mpsc::Sender<Message>;

/// The baseline run: a plain websocket server, fed the fleet state packets directly.
fn raw_run(frames: &[Frame], load: &LoadConfig) -> Result<Run, BenchError> {
    let server_rt = runtime(1, "bench-raw")?;
    let rooms: RawRooms = Arc::default();
    let listener = server_rt.block_on(tokio::net::TcpListener::bind(load.addr))?;
    let addr = listener.local_addr()?;
    let accept = server_rt.spawn(raw_accept(listener, rooms.clone()));
    let before = rss_bytes();
    let mut clients = LoadProcess::start(&LoadConfig {
        addr,
        ..load.clone()
    })?;
    let rss_per_client = rss_bytes().saturating_sub(before) as f64 / load.clients.max(1) as f64;
    clients.go()?;
    let (cpu0, started) = (cpu_time(), Instant::now());
    let mut seq = 0u64;
    server_rt.block_on(pace(
        frames,
        "fan-out: baseline, raw websocket writes at real time",
        async |f| {
            if f.kind != "fleet_state_update" {
                return;
            }
            let Some(name) = fleet_name(&f.data) else {
                return;
            };
            let text = frame_text(f, true);
            #[derive(serde::Deserialize)]
            struct Data<'a> {
                #[serde(borrow)]
                data: &'a serde_json::value::RawValue,
            }
            let Ok(d) = serde_json::from_str::<Data>(&text) else {
                return;
            };
            seq += 1;
            let room = format!("/fleets/{name}/state");
            let packet = format!(
                "42[\"{room}\",{},{{\"seq\":{seq},\"t\":{},\"sent_ms\":{}}}]",
                d.data.get(),
                f.log_ns / 1_000_000,
                wall_us() / 1000
            );
            let packet = tokio_tungstenite::tungstenite::Utf8Bytes::from(packet);
            for tx in rooms.lock().get(&room).into_iter().flatten() {
                let _ = tx.try_send(Message::Text(packet.clone()));
            }
        },
    ));
    let (elapsed, cpu) = (started.elapsed(), cpu_time().saturating_sub(cpu0));
    let report = clients.stop()?;
    accept.abort();
    Ok(Run {
        report,
        elapsed,
        cpu,
        rss_per_client,
    })
}

/// Accepts raw clients: the first text message is the JSON list of their rooms, answered `ok`;
/// then a writer task sends them what is published to those rooms.
async fn raw_accept(listener: tokio::net::TcpListener, rooms: RawRooms) {
    while let Ok((stream, _)) = listener.accept().await {
        let rooms = rooms.clone();
        tokio::spawn(async move {
            let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
                return;
            };
            let (mut sink, mut stream) = ws.split();
            let Some(Ok(Message::Text(first))) = stream.next().await else {
                return;
            };
            let wanted: Vec<String> = serde_json::from_str(first.as_str()).unwrap_or_default();
            let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
            {
                let mut rooms = rooms.lock();
                for room in wanted {
                    rooms.entry(room).or_default().push(tx.clone());
                }
            }
            if sink.send(Message::text("ok")).await.is_err() {
                return;
            }
            while let Some(m) = rx.recv().await {
                if sink.send(m).await.is_err() {
                    return;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_their_send_time() {
        let f = Frame {
            log_ns: 0,
            kind: "fleet_state_update",
            data: r#"{"type":"fleet_state_update","data":{"name":"f"}}"#.into(),
        };
        let text = frame_text(&f, true);
        assert!(text.starts_with(r#"{"type":"fleet_state_update","data":{"bench_sent_us":"#));
        assert!(text.ends_with(r#","name":"f"}}"#));
        assert_eq!(fleet_name(&text).as_deref(), Some("f"));
        assert_eq!(frame_text(&f, false), f.data);
    }
}
