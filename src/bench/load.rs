//! The load tool of the fan-out benchmark: N websocket clients in a process of their own
//! (`rmf-dash bench-load`, hidden), so that the server's CPU and memory are measured alone.
//! Clients speak Socket.IO 5 over Engine.IO 4 websockets (`subscribe` to their rooms, acks
//! awaited) or, for the baseline, a raw websocket (their rooms sent as one JSON list). Each
//! client counts the events it receives and records their latency: from the send time in the
//! payload (`bench_sent_us`, same machine clock) when there is one, else from the envelope's
//! `sent_ms` (the main process's output time, ms; COMPAT.md). Socket.IO clients also check
//! every room's sequence numbers (the envelope's `seq`): a jump is a gap (the server coalesced
//! or lost deliveries for a client behind), a repeat a duplicate, a smaller one a step back.
//!
//! Protocol with the parent on stdio: the tool prints `ready` once every client is subscribed,
//! counts from the line `go` on, and at the line `stop` (or the end of stdin) prints one JSON
//! report `{"deliveries": n, "histogram": [[ms, count], ...], "gaps": n, ...}` and exits. At
//! most [`CONNECTING`] clients connect at once (a listen backlog is finite).

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio_tungstenite::tungstenite::Message;

use super::BenchError;

/// Largest latency the histogram tells apart (ms); slower deliveries count in the last bucket.
pub const HISTOGRAM_MS: usize = 5_000;

/// Clients connecting and subscribing at the same time.
pub const CONNECTING: usize = 256;

/// How the clients talk to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    Socketio,
    Raw,
}

/// What the load process is asked to do.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    pub addr: SocketAddr,
    pub mode: Mode,
    pub clients: usize,
    /// Client `i` subscribes to `rooms[(i * per_client + k) % rooms.len()]`, `k < per_client`.
    pub rooms: Vec<String>,
    pub per_client: usize,
}

/// What the load process saw between `go` and `stop`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LoadReport {
    pub deliveries: u64,
    /// `(ms, count)` of the deliveries that carried their send time.
    pub histogram: Vec<(usize, u64)>,
    /// Clients subscribed (all of them: the tool fails otherwise).
    #[serde(default)]
    pub clients: u64,
    /// Sequence jumps, repeats and steps back seen while counting (socket.io mode).
    #[serde(default)]
    pub gaps: u64,
    #[serde(default)]
    pub duplicates: u64,
    #[serde(default)]
    pub backwards: u64,
    /// Clients whose connection ended before `stop`.
    #[serde(default)]
    pub closed: u64,
}

impl LoadReport {
    /// The latency (ms, upper bound of its bucket) below which a fraction `q` of the samples lie.
    pub fn quantile(&self, q: f64) -> usize {
        let total: u64 = self.histogram.iter().map(|(_, n)| n).sum();
        let want = ((total as f64 * q).ceil() as u64).max(1);
        let mut seen = 0;
        for (ms, n) in &self.histogram {
            seen += n;
            if seen >= want {
                return ms + 1;
            }
        }
        HISTOGRAM_MS
    }

    pub fn samples(&self) -> u64 {
        self.histogram.iter().map(|(_, n)| n).sum()
    }
}

struct Seen {
    counting: AtomicBool,
    deliveries: AtomicU64,
    histogram: Vec<AtomicU64>,
    gaps: AtomicU64,
    duplicates: AtomicU64,
    backwards: AtomicU64,
    closed: AtomicU64,
}

impl Seen {
    fn new(counting: bool) -> Self {
        Seen {
            counting: AtomicBool::new(counting),
            deliveries: AtomicU64::new(0),
            histogram: (0..=HISTOGRAM_MS).map(|_| AtomicU64::new(0)).collect(),
            gaps: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            backwards: AtomicU64::new(0),
            closed: AtomicU64::new(0),
        }
    }
}

/// The last sequence number a client received in each of its rooms.
type Seqs = Vec<(Box<str>, u64)>;

fn wall_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn load_error(e: impl std::fmt::Display) -> BenchError {
    BenchError::Io(std::io::Error::other(format!("load client: {e}")))
}

impl Seen {
    /// One event packet; `seqs` is the client's sequence state (socket.io mode).
    fn event(&self, text: &str, seqs: Option<&mut Seqs>) {
        let counting = self.counting.load(Ordering::Relaxed);
        let envelope = envelope(text);
        if let (Some(seqs), Some((room, seq, _))) = (seqs, envelope) {
            match seqs.iter_mut().find(|(r, _)| &**r == room) {
                Some((_, last)) => {
                    if counting {
                        let anomaly = match seq.cmp(&(*last + 1)) {
                            std::cmp::Ordering::Equal => None,
                            std::cmp::Ordering::Greater => Some(&self.gaps),
                            std::cmp::Ordering::Less if seq == *last => Some(&self.duplicates),
                            std::cmp::Ordering::Less => Some(&self.backwards),
                        };
                        if let Some(counter) = anomaly {
                            counter.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    *last = (*last).max(seq);
                }
                // The first value of a room (its present value on subscribing): any seq.
                None => seqs.push((room.into(), seq)),
            }
        }
        if !counting {
            return;
        }
        self.deliveries.fetch_add(1, Ordering::Relaxed);
        let sent = sent_us(text).or(envelope.map(|(_, _, ms)| ms * 1000));
        if let Some(sent) = sent {
            let ms = (wall_us().saturating_sub(sent) / 1000) as usize;
            self.histogram[ms.min(HISTOGRAM_MS)].fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The digits after `key` in `text`.
fn number_after(text: &str, key: &str) -> Option<u64> {
    let digits = &text[text.find(key)? + key.len()..];
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok()
}

/// The room, `seq` and `sent_ms` of a socket.io event packet
/// `42["room",payload,{"seq":..,"t":..,"sent_ms":..}]` (the envelope is the packet's last
/// object, so a payload cannot shadow it).
pub fn envelope(packet: &str) -> Option<(&str, u64, u64)> {
    let rest = packet.strip_prefix("42[\"")?;
    let room = &rest[..rest.find('"')?];
    let meta = &packet[packet.rfind("{\"seq\":")?..];
    Some((
        room,
        number_after(meta, "\"seq\":")?,
        number_after(meta, "\"sent_ms\":")?,
    ))
}

/// The `bench_sent_us` of an event's payload.
pub fn sent_us(packet: &str) -> Option<u64> {
    number_after(packet, "\"bench_sent_us\":")
}

/// Runs the load process (the `bench-load` command): connects, prints `ready`, counts between
/// `go` and `stop`, prints the report.
pub fn run(config: LoadConfig) -> Result<(), BenchError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("bench-load")
        .enable_all()
        .build()?;
    let seen = Arc::new(Seen::new(false));
    let (ready_tx, mut ready) = tokio::sync::mpsc::unbounded_channel();
    let connecting = Arc::new(tokio::sync::Semaphore::new(CONNECTING));
    let n = config.rooms.len().max(1);
    for i in 0..config.clients {
        let rooms: Vec<String> = (0..config.per_client.min(n))
            .filter_map(|k| config.rooms.get((i * config.per_client + k) % n).cloned())
            .collect();
        let (seen, ready, connecting) = (seen.clone(), ready_tx.clone(), connecting.clone());
        let (addr, mode) = (config.addr, config.mode);
        rt.spawn(async move {
            let Ok(permit) = connecting.acquire_owned().await else {
                return;
            };
            let ready = Ready {
                tx: ready,
                permit: Some(permit),
            };
            let out = match mode {
                Mode::Socketio => socketio_client(addr, rooms, &seen, ready).await,
                Mode::Raw => raw_client(addr, rooms, &seen, ready).await,
            };
            seen.closed.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = out {
                eprintln!("{e}");
            }
        });
    }
    drop(ready_tx);
    rt.block_on(async {
        for n in 0..config.clients {
            match tokio::time::timeout(Duration::from_secs(120), ready.recv()).await {
                Ok(Some(())) => {}
                _ => {
                    return Err(load_error(format!(
                        "{n} of {} clients subscribed",
                        config.clients
                    )));
                }
            }
        }
        Ok(())
    })?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "ready")?;
    stdout.flush()?;
    for line in std::io::stdin().lock().lines() {
        match line?.trim() {
            "go" => seen.counting.store(true, Ordering::Relaxed),
            "stop" => break,
            _ => {}
        }
    }
    seen.counting.store(false, Ordering::Relaxed);
    let report = LoadReport {
        clients: config.clients as u64,
        gaps: seen.gaps.load(Ordering::Relaxed),
        duplicates: seen.duplicates.load(Ordering::Relaxed),
        backwards: seen.backwards.load(Ordering::Relaxed),
        closed: seen.closed.load(Ordering::Relaxed),
        deliveries: seen.deliveries.load(Ordering::Relaxed),
        histogram: seen
            .histogram
            .iter()
            .enumerate()
            .map(|(ms, n)| (ms, n.load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect(),
    };
    writeln!(
        stdout,
        "{}",
        serde_json::to_string(&report).map_err(load_error)?
    )?;
    stdout.flush()?;
    rt.shutdown_timeout(Duration::from_millis(100));
    Ok(())
}

/// Tells the parent a client is subscribed, and lets the next one connect.
struct Ready {
    tx: tokio::sync::mpsc::UnboundedSender<()>,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Ready {
    fn send(&mut self) {
        self.permit = None;
        let _ = self.tx.send(());
    }
}

/// One socket.io client: connects, subscribes to `rooms` (acks awaited), then counts events.
async fn socketio_client(
    addr: SocketAddr,
    rooms: Vec<String>,
    seen: &Seen,
    mut ready: Ready,
) -> Result<(), BenchError> {
    let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .map_err(load_error)?;
    ws.send(Message::text("40")).await.map_err(load_error)?;
    let (mut acks, mut subscribed) = (0, false);
    let mut seqs = Seqs::with_capacity(rooms.len());
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
                ready.send();
            }
        } else if t.starts_with("42") {
            seen.event(t, Some(&mut seqs));
        }
    }
    Ok(())
}

/// One raw websocket client: sends its rooms as a JSON list, waits for `ok`, then counts.
async fn raw_client(
    addr: SocketAddr,
    rooms: Vec<String>,
    seen: &Seen,
    mut ready: Ready,
) -> Result<(), BenchError> {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
        .await
        .map_err(load_error)?;
    ws.send(Message::text(
        serde_json::to_string(&rooms).map_err(load_error)?,
    ))
    .await
    .map_err(load_error)?;
    while let Some(m) = ws.next().await {
        let Ok(Message::Text(t)) = m else { continue };
        if t.as_str() == "ok" {
            ready.send();
        } else {
            seen.event(t.as_str(), None);
        }
    }
    Ok(())
}

/// The parent's handle on a load process.
pub struct LoadProcess {
    child: Child,
    stdin: ChildStdin,
    stdout: std::io::BufReader<ChildStdout>,
}

impl LoadProcess {
    /// Starts `rmf-dash bench-load` (this executable) and waits until its clients are
    /// subscribed.
    pub fn start(config: &LoadConfig) -> Result<LoadProcess, BenchError> {
        let exe = std::env::current_exe()?;
        let mode = match config.mode {
            Mode::Socketio => "socketio",
            Mode::Raw => "raw",
        };
        let mut child = Command::new(exe)
            .arg("bench-load")
            .arg("--addr")
            .arg(config.addr.to_string())
            .args(["--mode", mode])
            .arg("--clients")
            .arg(config.clients.to_string())
            .arg("--per-client")
            .arg(config.per_client.to_string())
            .arg("--rooms")
            .arg(config.rooms.join(","))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            return Err(load_error("no stdio of the load process"));
        };
        let mut load = LoadProcess {
            child,
            stdin,
            stdout: std::io::BufReader::new(stdout),
        };
        let line = load.line()?;
        if line.trim() != "ready" {
            return Err(load_error(format!(
                "load process: {line:?} instead of ready"
            )));
        }
        Ok(load)
    }

    fn line(&mut self) -> Result<String, BenchError> {
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        Ok(line)
    }

    /// Counting starts.
    pub fn go(&mut self) -> Result<(), BenchError> {
        writeln!(self.stdin, "go")?;
        Ok(self.stdin.flush()?)
    }

    /// Counting stops; the report.
    pub fn stop(mut self) -> Result<LoadReport, BenchError> {
        writeln!(self.stdin, "stop")?;
        self.stdin.flush()?;
        let line = self.line()?;
        let _ = self.child.wait();
        serde_json::from_str(&line)
            .map_err(|e| load_error(format!("load process report {line:?}: {e}")))
    }
}

impl Drop for LoadProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_of_a_histogram() {
        let r = LoadReport {
            deliveries: 100,
            histogram: vec![(0, 50), (3, 49), (40, 1)],
            ..LoadReport::default()
        };
        assert_eq!(r.quantile(0.5), 1);
        assert_eq!(r.quantile(0.99), 4);
        assert_eq!(r.quantile(0.999), 41);
        assert_eq!(r.samples(), 100);
    }

    #[test]
    fn send_time_is_read_from_the_payload() {
        assert_eq!(
            sent_us(r#"42["/fleets/f/state",{"bench_sent_us":1234,"name":"f"}]"#),
            Some(1234)
        );
        assert_eq!(sent_us(r#"42["x",{}]"#), None);
    }

    #[test]
    fn envelope_is_the_last_object() {
        assert_eq!(
            envelope(r#"42["/doors/d1/state",{"seq":9,"x":1},{"seq":12,"t":5,"sent_ms":1700}]"#),
            Some(("/doors/d1/state", 12, 1700))
        );
        assert_eq!(envelope(r#"42["/doors/d1/state",{}]"#), None);
        assert_eq!(envelope(r#"43["x"]"#), None);
    }

    fn seen() -> Seen {
        Seen::new(true)
    }

    #[test]
    fn sequence_anomalies_are_counted_per_room() {
        let s = seen();
        let mut seqs = Seqs::new();
        let ev = |room: &str, seq: u64| {
            format!(r#"42["{room}",{{}},{{"seq":{seq},"t":1,"sent_ms":1}}]"#)
        };
        for (room, seq) in [
            ("a", 5),
            ("b", 1),
            ("a", 6),
            ("b", 2),
            ("a", 8),
            ("a", 8),
            ("b", 1),
            ("b", 3),
        ] {
            s.event(&ev(room, seq), Some(&mut seqs));
        }
        assert_eq!(s.deliveries.load(Ordering::Relaxed), 8);
        assert_eq!(s.gaps.load(Ordering::Relaxed), 1);
        assert_eq!(s.duplicates.load(Ordering::Relaxed), 1);
        assert_eq!(s.backwards.load(Ordering::Relaxed), 1);
        assert_eq!(
            s.histogram
                .iter()
                .map(|n| n.load(Ordering::Relaxed))
                .sum::<u64>(),
            8
        );
    }
}
