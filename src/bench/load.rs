//! The load tool of the fan-out benchmark: N websocket clients in a process of their own
//! (`rmf-dash bench-load`, hidden), so that the server's CPU and memory are measured alone.
//! Clients speak Socket.IO 5 over Engine.IO 4 websockets (`subscribe` to their rooms, acks
//! awaited) or, for the baseline, a raw websocket (their rooms sent as one JSON list). Each
//! client counts the events it receives and records the latency of those carrying a send time
//! (`bench_sent_us` in the payload, same machine clock).
//!
//! Protocol with the parent on stdio: the tool prints `ready` once every client is subscribed,
//! counts from the line `go` on, and at the line `stop` (or the end of stdin) prints one JSON
//! report `{"deliveries": n, "histogram": [[ms, count], ...]}` and exits.

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
}

fn wall_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn load_error(e: impl std::fmt::Display) -> BenchError {
    BenchError::Io(std::io::Error::other(format!("load client: {e}")))
}

impl Seen {
    fn event(&self, text: &str) {
        if !self.counting.load(Ordering::Relaxed) {
            return;
        }
        self.deliveries.fetch_add(1, Ordering::Relaxed);
        if let Some(sent) = sent_us(text) {
            let ms = (wall_us().saturating_sub(sent) / 1000) as usize;
            self.histogram[ms.min(HISTOGRAM_MS)].fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The `bench_sent_us` of an event's payload.
pub fn sent_us(packet: &str) -> Option<u64> {
    const KEY: &str = "\"bench_sent_us\":";
    let at = packet.find(KEY)? + KEY.len();
    let digits: &str = &packet[at..];
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok()
}

/// Runs the load process (the `bench-load` command): connects, prints `ready`, counts between
/// `go` and `stop`, prints the report.
pub fn run(config: LoadConfig) -> Result<(), BenchError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("bench-load")
        .enable_all()
        .build()?;
    let seen = Arc::new(Seen {
        counting: AtomicBool::new(false),
        deliveries: AtomicU64::new(0),
        histogram: (0..=HISTOGRAM_MS).map(|_| AtomicU64::new(0)).collect(),
    });
    let (ready_tx, mut ready) = tokio::sync::mpsc::unbounded_channel();
    let n = config.rooms.len().max(1);
    for i in 0..config.clients {
        let rooms: Vec<String> = (0..config.per_client.min(n))
            .filter_map(|k| config.rooms.get((i * config.per_client + k) % n).cloned())
            .collect();
        let (seen, ready) = (seen.clone(), ready_tx.clone());
        let (addr, mode) = (config.addr, config.mode);
        rt.spawn(async move {
            let out = match mode {
                Mode::Socketio => socketio_client(addr, rooms, &seen, &ready).await,
                Mode::Raw => raw_client(addr, rooms, &seen, &ready).await,
            };
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

/// One socket.io client: connects, subscribes to `rooms` (acks awaited), then counts events.
async fn socketio_client(
    addr: SocketAddr,
    rooms: Vec<String>,
    seen: &Seen,
    ready: &tokio::sync::mpsc::UnboundedSender<()>,
) -> Result<(), BenchError> {
    let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .map_err(load_error)?;
    ws.send(Message::text("40")).await.map_err(load_error)?;
    let (mut acks, mut subscribed) = (0, false);
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
        } else if t.starts_with("42") {
            seen.event(t);
        }
    }
    Ok(())
}

/// One raw websocket client: sends its rooms as a JSON list, waits for `ok`, then counts.
async fn raw_client(
    addr: SocketAddr,
    rooms: Vec<String>,
    seen: &Seen,
    ready: &tokio::sync::mpsc::UnboundedSender<()>,
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
            let _ = ready.send(());
        } else {
            seen.event(t.as_str());
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
}
