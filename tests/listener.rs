//! The bounds of the HTTP listener against the real binary (`serve --no-auth --no-db`): clients
//! that connect and send half a request line, or nothing after a response, are closed by the
//! header and idle timeouts; `/health` still answers while 20,000 of them hang (at
//! `--max-connections` a new connection takes the place of the oldest half-open one; beyond
//! served ones it is closed at once and counted); SIGTERM does not wait for them;
//! a websocket outlives the timeouts.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

mod common;
use common::{Proc, Server, python, repo};

/// A running `rmf-dash serve --no-auth --no-db` with `extra` flags.
fn start(extra: &[&str]) -> (Proc, u16) {
    // This test holds thousands of sockets too.
    rmf_dash::listener::raise_fd_limit();
    let (server, port) = Server::serve()
        .args(["--no-auth", "--no-db"])
        .args(extra)
        .start();
    let start = Instant::now();
    while get(port, "/health").map(|r| r.0) != Some(200) {
        assert!(start.elapsed() < Duration::from_secs(20), "not healthy");
        std::thread::sleep(Duration::from_millis(50));
    }
    (server, port)
}

/// One GET on a fresh connection, with a generous 5 s socket timeout: (status, body).
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    Some((head.split(' ').nth(1)?.parse().ok()?, body.to_string()))
}

/// The sample `name` of `/metrics`.
fn metric(port: u16, name: &str) -> u64 {
    let (status, body) = get(port, "/metrics").expect("/metrics");
    assert_eq!(status, 200);
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} not on /metrics"))
}

/// `n` connections that send half a request line and nothing more.
fn half_open(port: u16, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|i| {
            let mut s = TcpStream::connect(("127.0.0.1", port))
                .unwrap_or_else(|e| panic!("connection {i}: {e}"));
            s.write_all(b"GET /hea").expect("half a request line");
            s
        })
        .collect()
}

/// Whether the server closed `s` (EOF or reset) within `within`.
fn closed_by_server(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).expect("timeout");
    let mut buf = [0u8; 256];
    match s.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => closed_by_server(s, within),
        Err(e) => matches!(
            e.kind(),
            ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
        ),
    }
}

/// 20,000 half-open connections against the default bounds (10,000 connections, 10 s for the
/// headers), held by two client processes (a process may hold 20,000 files here): each new one
/// beyond the bound takes the place of the oldest half-open one (`at_the_bound_...` tests that
/// alone), so `/health` still answers (the time it took is printed; no test asserts on time),
/// and every one of them is closed, evicted or timed out: exactly 20,000 between the two
/// counters.
#[test]
fn health_answers_while_20000_half_open_connections_hang() {
    let (_server, port) = start(&[]);
    let mut holders: Vec<_> = (0..2)
        .map(|_| {
            let mut child = python()
                .arg(repo().join("tests/python/half_open.py"))
                .args([port.to_string(), "10000".into(), "60".into()])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("python half_open.py");
            let out = BufReader::new(child.stdout.take().expect("stdout"));
            (child, out)
        })
        .collect();
    for (_, out) in &mut holders {
        let mut line = String::new();
        out.read_line(&mut line).expect("a line");
        assert_eq!(line.trim(), "open 10000");
    }
    let asked = Instant::now();
    let (status, body) = get(port, "/health").expect("/health answered");
    println!(
        "/health answered in {:?} beside 20,000 half-open connections",
        asked.elapsed()
    );
    assert_eq!(status, 200, "{body}");
    for (child, out) in &mut holders {
        drop(child.stdin.take());
        let mut line = String::new();
        out.read_line(&mut line).expect("a line");
        assert_eq!(line.trim(), "closed 10000");
        assert!(child.wait().expect("wait").success());
    }
    let evicted = metric(port, "rmf_dash_http_connections_evicted_total");
    let timed_out = metric(port, "rmf_dash_http_header_timeouts_total");
    println!("evicted {evicted}, timed out {timed_out}");
    // How many were evicted rather than timed out depends on how fast they were opened; that
    // each was closed by one of the two does not.
    assert_eq!(evicted + timed_out, 20_000);
    // Only the connection asking for the metrics is open now.
    assert_eq!(metric(port, "rmf_dash_http_connections"), 1);
}

#[test]
fn header_timeout_closes_half_open_connections() {
    let (_server, port) = start(&["--header-timeout-ms", "1000"]);
    let mut held = half_open(port, 200);
    // And one that sends nothing at all.
    held.push(TcpStream::connect(("127.0.0.1", port)).expect("connect"));
    let start = Instant::now();
    for (i, s) in held.iter_mut().enumerate() {
        assert!(
            closed_by_server(s, Duration::from_secs(10)),
            "connection {i} still open after {:?}",
            start.elapsed()
        );
    }
    assert!(metric(port, "rmf_dash_http_header_timeouts_total") >= 201);
}

#[test]
fn idle_timeout_closes_keep_alive_connections() {
    let (_server, port) = start(&["--idle-timeout-ms", "1000"]);
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .expect("request");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut first = [0u8; 12];
    s.read_exact(&mut first).expect("an answer");
    assert_eq!(&first, b"HTTP/1.1 200");
    assert!(closed_by_server(&mut s, Duration::from_secs(10)));
    assert!(metric(port, "rmf_dash_http_idle_closed_total") >= 1);
}

/// `n` keep-alive connections that each had one request answered (so none is half-open).
fn served(port: u16, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
            s.write_all(b"GET /time HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                .expect("request");
            s.set_read_timeout(Some(Duration::from_secs(10)))
                .expect("timeout");
            let mut first = [0u8; 12];
            s.read_exact(&mut first).expect("an answer");
            assert_eq!(&first, b"HTTP/1.1 200");
            s
        })
        .collect()
}

/// Whether `s` is still open: what it has to read (a response) read, then no EOF, no reset.
fn still_open(s: &mut TcpStream) -> bool {
    s.set_nonblocking(true).expect("nonblocking");
    let mut buf = [0u8; 4096];
    let open = loop {
        match s.read(&mut buf) {
            Ok(0) => break false,
            Ok(_) => continue,
            Err(e) => break e.kind() == ErrorKind::WouldBlock,
        }
    };
    s.set_nonblocking(false).expect("blocking");
    open
}

#[test]
fn at_the_bound_a_new_connection_takes_the_place_of_the_oldest_half_open_one() {
    let (_server, port) = start(&["--max-connections", "100"]);
    let mut held = half_open(port, 100);
    let mut newer = half_open(port, 1);
    assert!(closed_by_server(&mut held[0], Duration::from_secs(10)));
    assert!(still_open(&mut newer[0]));
    assert!(held[1..].iter_mut().all(still_open));
    drop(held);
    drop(newer);
    let start = Instant::now();
    while get(port, "/health").map(|r| r.0) != Some(200) {
        assert!(start.elapsed() < Duration::from_secs(10), "/health");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(metric(port, "rmf_dash_http_connections_evicted_total") >= 1);
}

#[test]
fn connections_beyond_the_bound_of_served_ones_are_closed_and_counted() {
    let (_server, port) = start(&["--max-connections", "100"]);
    let mut kept = served(port, 100);
    let mut extra = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    assert!(closed_by_server(&mut extra, Duration::from_secs(5)));
    // The 100 served ones are still open: none of them was half-open.
    assert!(kept.iter_mut().all(still_open));
    drop(kept);
    let start = Instant::now();
    let refused = loop {
        if let Some((200, body)) = get(port, "/metrics") {
            break body;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "/metrics");
        std::thread::sleep(Duration::from_millis(50));
    };
    let count = |name: &str| {
        refused
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<u64>().ok())
            .expect("counter")
    };
    assert!(count("rmf_dash_http_connections_refused_total") >= 1);
    assert_eq!(count("rmf_dash_http_connections_evicted_total"), 0);
}

#[test]
fn sigterm_does_not_wait_for_half_open_connections() {
    let (mut server, port) = start(&[]);
    let held = half_open(port, 500);
    // SAFETY: a signal to the child this test started.
    assert_eq!(
        unsafe { libc::kill(server.0.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
    let start = Instant::now();
    let status = loop {
        if let Some(status) = server.0.try_wait().expect("wait") {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "still running 5 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_outlives_the_timeouts() {
    let (_server, port) = tokio::task::block_in_place(|| {
        start(&["--idle-timeout-ms", "300", "--header-timeout-ms", "300"])
    });
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/_internal"))
        .await
        .expect("connect /_internal");
    tokio::time::sleep(Duration::from_secs(2)).await;
    ws.send(Message::Ping(b"still there?".to_vec().into()))
        .await
        .expect("ping");
    let pong = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(m) = ws.next().await {
            if let Message::Pong(p) = m.expect("frame") {
                return p;
            }
        }
        panic!("closed");
    })
    .await
    .expect("a pong within 5 s");
    assert_eq!(&pong[..], b"still there?");
    let open = tokio::task::block_in_place(|| metric(port, "rmf_dash_http_connections"));
    // The websocket and this request.
    assert!(open >= 2, "{open}");
}
