//! Benchmarks against a live `rmf-dash serve` (in this process, over loopback): the sustained
//! `/_internal` ingest rate of `fleet_state_update` frames (vs raw websocket reception of the same
//! frames), and the fan-out of a site's fleet-adapter stream to many socket.io clients at real
//! time (deliveries/s, end-to-end latency from the adapter's send to the client's receipt).
//!
//! The load (the adapter and the clients) runs on its own runtime threads, speaking the wire
//! protocols directly (websocket frames; Engine.IO 4 / Socket.IO 5 packets), so the server
//! measured is the real one, but the load shares the machine's cores (noted in every figure).
//! The adapter writes its wall-clock send time into each fleet state (`bench_sent_us`, kept in
//! the room payload since fleet-adapter JSON is passed on as received), which makes the latency
//! exact: receive time minus send time on the same clock.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use super::{BenchError, Figure};
use crate::ingest::bag::Recording;
use crate::ingest::cdr::{RmfRelease, typed};
use crate::serve::{self, ServeConfig};
use rmf_dash_dataflows::model::ros::StdString;

/// Largest latency the histograms tell apart (ms); slower deliveries count in the last bucket.
const HISTOGRAM_MS: usize = 5_000;

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

/// What the fan-out clients saw.
struct Seen {
    deliveries: AtomicU64,
    /// Latency histogram (1 ms buckets) of fleet states carrying their send time.
    histogram: Vec<AtomicU64>,
}

/// The fan-out at real time: the recording's fleet-adapter frames sent to `/_internal` on their
/// recorded schedule for `seconds`, `clients` socket.io clients each subscribed to
/// `rooms_per_client` fleet state rooms (spread evenly).
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
    let server_rt = runtime(1, "bench-server")?;
    let load = runtime(1, "bench-load")?;
    let running = server_rt.block_on(serve::start(ServeConfig::local(loopback())))?;
    let addr = running.addr;
    let seen = Arc::new(Seen {
        deliveries: AtomicU64::new(0),
        histogram: (0..=HISTOGRAM_MS).map(|_| AtomicU64::new(0)).collect(),
    });
    let measuring = Arc::new(AtomicBool::new(false));
    let mut progress = crate::progress::Progress::new(
        format!("fan-out: connecting {clients} socket.io clients"),
        Some(clients as u64),
    );
    let mut tasks = Vec::with_capacity(clients);
    let (ready_tx, mut ready) = tokio::sync::mpsc::unbounded_channel();
    for i in 0..clients {
        let rooms: Vec<String> = (0..per_client)
            .map(|k| {
                format!(
                    "/fleets/{}/state",
                    fleets[(i * per_client + k) % fleets.len()]
                )
            })
            .collect();
        let (seen, measuring, ready) = (seen.clone(), measuring.clone(), ready_tx.clone());
        tasks.push(
            load.spawn(async move { socketio_client(addr, rooms, seen, measuring, ready).await }),
        );
    }
    drop(ready_tx);
    load.block_on(async {
        let mut n = 0;
        while n < clients {
            match tokio::time::timeout(Duration::from_secs(60), ready.recv()).await {
                Ok(Some(())) => {
                    n += 1;
                    progress.set(n as u64);
                }
                _ => return Err(load_error(format!("{n} of {clients} clients connected"))),
            }
        }
        Ok(())
    })?;
    progress.finish(&format!("{clients} clients, {per_client} rooms each"));
    let hub = running.app.hub.clone();
    let coalesced_before = hub.metrics.coalesced.load(Ordering::Relaxed);
    measuring.store(true, Ordering::Relaxed);
    let mut progress = crate::progress::Progress::new(
        format!("fan-out: {seconds} s of the site's adapter stream at real time"),
        Some(frames.len() as u64),
    );
    let url = format!("ws://{addr}/_internal");
    let started = Instant::now();
    load.block_on(async {
        let (mut ws, _) = tokio_tungstenite::connect_async(&url)
            .await
            .map_err(load_error)?;
        let first = frames.first().map_or(0, |f| f.log_ns);
        for f in &frames {
            let due = started + Duration::from_nanos(f.log_ns - first);
            tokio::time::sleep_until(due.into()).await;
            ws.send(Message::text(frame_text(f, true)))
                .await
                .map_err(load_error)?;
            progress.inc(1);
        }
        // The last deliveries.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let _ = ws.close(None).await;
        Ok::<(), BenchError>(())
    })?;
    let elapsed = started.elapsed();
    measuring.store(false, Ordering::Relaxed);
    progress.finish(&format!("{} frames", frames.len()));
    let coalesced = hub.metrics.coalesced.load(Ordering::Relaxed) - coalesced_before;
    for t in tasks {
        t.abort();
    }
    server_rt.block_on(running.stop())?;
    let deliveries = seen.deliveries.load(Ordering::Relaxed);
    let histogram: Vec<u64> = seen
        .histogram
        .iter()
        .map(|b| b.load(Ordering::Relaxed))
        .collect();
    let note = format!(
        "{clients} socket.io clients (websocket) x {per_client} of {} fleet state rooms, \
         {} adapter frames over {seconds} s at real time; server on 1 tokio worker + 1 engine \
         worker, the clients share the machine; {coalesced} deliveries coalesced",
        fleets.len(),
        frames.len()
    );
    figures.push(super::rate(
        "socket.io deliveries",
        "fanout",
        deliveries as f64,
        elapsed,
        "deliveries/s",
        None,
        &note,
    ));
    let samples: u64 = histogram.iter().sum();
    for (name, q) in [("p50", 0.5), ("p99", 0.99), ("p999", 0.999)] {
        figures.push(Figure {
            section: "fanout",
            name: format!("adapter send to client receipt latency {name}"),
            value: quantile(&histogram, q) as f64,
            unit: "ms",
            baseline: None,
            ratio: None,
            better: "lower",
            note: format!("{samples} fleet state deliveries, 1 ms resolution"),
        });
    }
    Ok(())
}

/// The bucket (ms) below which a fraction `q` of the samples lie (upper bound of its bucket).
fn quantile(histogram: &[u64], q: f64) -> usize {
    let total: u64 = histogram.iter().sum();
    let want = (total as f64 * q).ceil() as u64;
    let mut seen = 0;
    for (ms, n) in histogram.iter().enumerate() {
        seen += n;
        if seen >= want.max(1) {
            return ms + 1;
        }
    }
    histogram.len()
}

/// One socket.io client: connects (Engine.IO 4 over websocket), subscribes to `rooms`, then
/// counts deliveries and records the latency of those that carry their send time.
async fn socketio_client(
    addr: SocketAddr,
    rooms: Vec<String>,
    seen: Arc<Seen>,
    measuring: Arc<AtomicBool>,
    ready: tokio::sync::mpsc::UnboundedSender<()>,
) -> Result<(), BenchError> {
    let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .map_err(load_error)?;
    ws.send(Message::text("40")).await.map_err(load_error)?;
    let mut acks = 0;
    let mut subscribed = false;
    while let Some(m) = ws.next().await {
        let Ok(Message::Text(t)) = m else { continue };
        let t = t.as_str();
        if t == "2" {
            ws.send(Message::text("3")).await.map_err(load_error)?;
        } else if t.starts_with("40") && !subscribed {
            subscribed = true;
            for (i, room) in rooms.iter().enumerate() {
                let packet = format!("42{i}{}", serde_json::json!(["subscribe", {"room": room}]));
                ws.send(Message::text(packet)).await.map_err(load_error)?;
            }
        } else if t.starts_with("43") {
            acks += 1;
            if acks == rooms.len() {
                let _ = ready.send(());
            }
        } else if t.starts_with("42") && measuring.load(Ordering::Relaxed) {
            seen.deliveries.fetch_add(1, Ordering::Relaxed);
            if let Some(sent) = sent_us(t) {
                let ms = (wall_us().saturating_sub(sent) / 1000) as usize;
                seen.histogram[ms.min(HISTOGRAM_MS)].fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    Ok(())
}

/// The `bench_sent_us` of an event packet's payload.
fn sent_us(packet: &str) -> Option<u64> {
    const KEY: &str = "\"bench_sent_us\":";
    let at = packet.find(KEY)? + KEY.len();
    let digits: &str = &packet[at..];
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_of_a_histogram() {
        let h = [0, 50, 40, 9, 1];
        assert_eq!(quantile(&h, 0.5), 2);
        assert_eq!(quantile(&h, 0.9), 3);
        assert_eq!(quantile(&h, 0.99), 4);
        assert_eq!(quantile(&h, 0.999), 5);
    }

    #[test]
    fn send_time_is_read_from_the_payload() {
        let p = r#"42["/fleets/f/state",{"bench_sent_us":1234,"name":"f"},{"seq":1}]"#;
        assert_eq!(sent_us(p), Some(1234));
        assert_eq!(sent_us(r#"42["/x",{}]"#), None);
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
