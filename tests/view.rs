//! The live view in a real browser: `rmf-dash serve` (JWT auth on) replays a generated hotel
//! recording with every scenario over loopback, and `tests/node/view.mjs` drives headless
//! Chromium (Debian's `chromium`, installed by `scripts/test`) with playwright-core. The page
//! must ask for a token and refuse a bad one, connect with the token of the URL fragment, show
//! every robot, door and lift of the recording, keep updating after a dropped connection, show
//! the held-open door going through the recording's states, and answer an alert through the
//! REST route. A screenshot is saved as `target/view-test/live-view.png`.
//!
//! The page's static files are also checked over plain HTTP (public, with their content types,
//! also behind a URL prefix).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;
use common::{Proc, bin, emitted, hotel_recording, node_dir};

const SECRET: &str = "view-test-secret";

fn token(user: &str) -> String {
    common::token(SECRET, user)
}

/// A plain HTTP/1.1 GET: (status, headers in lower case, body).
fn http_get(port: u16, path: &str) -> (u16, String, String) {
    let reply = common::http(port, "GET", path, None, None);
    (reply.status, reply.head.to_ascii_lowercase(), reply.text())
}
const CHROMIUM: &str = "/usr/bin/chromium";

struct Server(Proc);

impl Drop for Server {
    /// SIGTERM first: a server stops its private PostgreSQL on the way out (then `Proc` kills
    /// what is left).
    fn drop(&mut self) {
        let child = &mut self.0.0;
        // SAFETY: kill(2) on the pid of a child this test started and has not reaped.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn serve(recording: &Path, speed: &str, extra: &[&str]) -> (Server, u16) {
    let (proc, port) = common::Server::serve()
        .args(["--no-db", "--jwt-secret", SECRET, "--speed", speed])
        .args(extra)
        .arg("--replay")
        .arg(recording)
        .start();
    let server = Server(proc);
    (server, port)
}

/// Every output change of the recording (`replay --emit jsonl`).
fn changes(recording: &Path) -> Vec<Value> {
    emitted(recording)
        .lines()
        .map(|l| serde_json::from_str(l).expect("jsonl line"))
        .collect()
}

/// What the page must show, from the recording's outputs: robots, doors and lifts counted, and
/// the door held open with its states (consecutive duplicates removed) up to its first
/// `closed` after the held-open condition ended.
fn expected(changes: &[Value]) -> (Value, Value) {
    let inserted = |c: &&Value| c["diff"] == 1;
    let map = changes
        .iter()
        .filter(inserted)
        .find(|c| c["room"] == "/building_map")
        .expect("a building map")["value"]
        .clone();
    let doors: usize = map["levels"]
        .as_array()
        .expect("levels")
        .iter()
        .map(|l| l["doors"].as_array().map_or(0, Vec::len))
        .sum();
    let lifts = map["lifts"].as_array().map_or(0, Vec::len);
    let mut robots = BTreeSet::new();
    for c in changes.iter().filter(inserted) {
        let room = c["room"].as_str().unwrap_or_default();
        if room.starts_with("/fleets/") && room.ends_with("/state") {
            for name in c["value"]["robots"].as_object().expect("robots").keys() {
                robots.insert(format!("{}/{name}", c["value"]["name"]));
            }
        }
    }
    // The held-open door: inserted, then retracted with nothing in its place.
    let held = changes
        .iter()
        .filter(inserted)
        .find(|c| {
            c["room"]
                .as_str()
                .unwrap_or_default()
                .ends_with("/held_open")
        })
        .expect("a held-open door (scenario door-held-open)");
    let door = held["value"]["door_name"]
        .as_str()
        .expect("door_name")
        .to_string();
    let held_room = format!("/doors/{door}/held_open");
    let ended = changes
        .iter()
        .filter(|c| c["room"] == held_room.as_str() && c["diff"] == -1)
        .map(|c| c["time"].as_u64().expect("time"))
        .find(|t| {
            !changes
                .iter()
                .any(|c| c["room"] == held_room.as_str() && c["diff"] == 1 && c["time"] == *t)
        })
        .expect("the held-open condition ends");
    let state_room = format!("/doors/{door}/state");
    let mut modes: Vec<u64> = Vec::new();
    for c in changes
        .iter()
        .filter(inserted)
        .filter(|c| c["room"] == state_room.as_str())
    {
        let mode = c["value"]["current_mode"]["value"].as_u64().expect("mode");
        if modes.last() != Some(&mode) {
            modes.push(mode);
        }
        if c["time"].as_u64().expect("time") > ended && mode == 0 {
            break;
        }
    }
    assert_eq!(modes.last(), Some(&0), "the door closes after being held");
    (
        json!({"robots": robots.len(), "doors": doors, "lifts": lifts}),
        json!({"name": door, "modes": modes}),
    )
}

#[test]
fn view_files_are_public_with_their_types() {
    let (_server, port) = serve(hotel_recording(), "1", &[]);
    for (path, kind) in [
        ("/", "text/html"),
        ("/view/view.js", "text/javascript"),
        ("/view/view.css", "text/css"),
        ("/view/socket.io.min.js", "text/javascript"),
        ("/view/socket.io-client.LICENSE", "text/plain"),
        ("/view/config.json", "application/json"),
    ] {
        let (status, head, body) = http_get(port, path);
        assert_eq!(status, 200, "{path}");
        assert!(
            head.contains(&format!("content-type: {kind}")),
            "{path}: {head}"
        );
        assert!(!body.is_empty(), "{path}");
    }
    let (_, head, body) = http_get(port, "/");
    assert!(head.contains("content-security-policy: default-src 'self'"));
    assert!(body.contains("<canvas id=\"map\""));
    let (_, _, config) = http_get(port, "/view/config.json");
    assert_eq!(
        serde_json::from_str::<Value>(&config).expect("json"),
        json!({"auth": true})
    );
    assert_eq!(http_get(port, "/view/nope.js").0, 404);
    assert_eq!(http_get(port, "/view/..%2FCargo.toml").0, 404);
    // The data itself still needs the token.
    assert_eq!(http_get(port, "/fleets").0, 401);

    // Behind a URL prefix the page is at the prefix, based there.
    let (_prefixed, port) = serve(hotel_recording(), "1", &["--prefix", "/api", "--no-auth"]);
    let (status, _, body) = http_get(port, "/api");
    assert_eq!(status, 200);
    assert!(body.contains("<base href=\"/api/\">"), "{body}");
    assert_eq!(http_get(port, "/api/view/view.js").0, 200);
    assert_eq!(http_get(port, "/api/view/config.json").0, 200);
    assert_eq!(http_get(port, "/view/view.js").0, 404);
    let (_, _, config) = http_get(port, "/api/view/config.json");
    assert_eq!(
        serde_json::from_str::<Value>(&config).expect("json"),
        json!({"auth": false})
    );
}

/// `rmf-dash` alone (what `cargo run --release` runs): generates the demo recording, serves it
/// without authentication and prints the view's URL.
#[test]
fn demo_starts_with_no_arguments() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = bin()
        .env("RMF_DASH_DEMO_DIR", dir.path())
        .env("RMF_DASH_LISTEN", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start rmf-dash");
    let stdout = child.stdout.take().expect("stdout");
    let _server = Server(Proc(child));
    // The port it chose, from the line that announces the view.
    let want = "open http://127.0.0.1:";
    let port: u16 = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.split_once(want)?.1.strip_suffix('/')?.parse().ok())
        .unwrap_or_else(|| panic!("the demo did not print `{want}PORT/`"));
    assert!(dir.path().join("demo.mcap").exists());
    assert!(!dir.path().join("demo.partial.mcap").exists());
    let (status, _, body) = http_get(port, "/");
    assert_eq!(status, 200);
    assert!(body.contains("<canvas id=\"map\""));
    let (_, _, config) = http_get(port, "/view/config.json");
    assert_eq!(
        serde_json::from_str::<Value>(&config).expect("json"),
        json!({"auth": false})
    );
    // Serving the recording: the building map is there without a token.
    let start = Instant::now();
    loop {
        let (status, _, body) = http_get(port, "/building_map");
        if status == 200 {
            let map: Value = serde_json::from_str(&body).expect("map json");
            assert_eq!(map["name"], "hotel");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no building map: {status} {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn live_view_in_headless_chromium() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: scripts/test installs it (apt-get install chromium)"
    );
    let node = node_dir();
    let recording = hotel_recording();
    let (counts, door) = expected(&changes(recording));
    // The hotel preset, as the generator describes it.
    assert_eq!(counts, json!({"robots": 4, "doors": 19, "lifts": 2}));
    let (_server, port) = serve(recording, "3", &[]);
    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("view-test");
    std::fs::create_dir_all(&artifacts).expect("artifact dir");
    let screenshot = artifacts.join("live-view.png");
    let _ = std::fs::remove_file(&screenshot);
    let args = json!({
        "url": format!("http://127.0.0.1:{port}/"),
        "token": token("operator"),
        "expect": counts,
        "door": door,
        "screenshot": screenshot,
        "timeoutMs": 90_000,
    });
    let out = Command::new("node")
        .arg("view.mjs")
        .arg(args.to_string())
        .current_dir(&node)
        .output()
        .expect("node view.mjs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "view.mjs failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Value = serde_json::from_str(stdout.trim()).expect("results json");
    println!("{results:#}");
    assert_eq!(results["bad_token_refused"], true);
    assert_eq!(results["sign_in_form"], true);
    assert_eq!(results["reconnected"], true);
    assert_eq!(
        results["rows"],
        json!({"robots": 4, "doors": 19, "lifts": 2, "levels": 3})
    );
    assert_eq!(results["door"]["name"], door["name"]);
    assert_eq!(results["alert"]["response"], "acknowledge");
    let png = std::fs::read(&screenshot).expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "the screenshot is a PNG");
}
