//! `rmf-dash trace gen` end to end: the real binary writes a 1,000-robot site, `trace info` shows
//! the exact topic counts the simulation guarantees, a seed reproduces the bytes exactly, and
//! bad options are refused with a clear message.

use serde_json::Value;

mod common;
use common::bin;

fn generate(args: &[&str], out: &std::path::Path) -> std::process::Output {
    let o = bin()
        .args(["trace", "gen"])
        .args(args)
        .arg("-o")
        .arg(out)
        .output()
        .expect("run rmf-dash");
    assert!(
        o.status.success(),
        "trace gen failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn info(path: &std::path::Path) -> Value {
    let o = bin()
        .args(["trace", "info", "--json"])
        .arg(path)
        .output()
        .expect("run rmf-dash");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).expect("json")
}

fn count(info: &Value, topic: &str) -> u64 {
    info["topics"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["topic"] == topic))
        .and_then(|t| t["count"].as_u64())
        .unwrap_or_else(|| panic!("no topic {topic}"))
}

#[test]
fn thousand_robot_site_has_exact_counts_and_is_reproducible() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = dir.path().join("a.mcap");
    let b = dir.path().join("b.mcap");
    let args = ["--preset", "site", "--duration", "60s", "--seed", "42"];
    let out = generate(&args, &a);
    // The progress display ends with a summary line on stderr.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("generating site (1000 robots, 60 s)"),
        "{stderr}"
    );
    let i = info(&a);
    assert_eq!(i["layout"], "jazzy");
    // 50 fleets at 10 Hz, 200 doors at 1 Hz, one JSON fleet state per fleet per second.
    assert_eq!(count(&i, "/fleet_states"), 50 * 10 * 60);
    assert_eq!(count(&i, "/door_states"), 200 * 60);
    assert_eq!(count(&i, "/fleet_state_update"), 50 * 60);
    assert_eq!(count(&i, "/map"), 1);
    // 10 lifts at 1 Hz plus one message per change.
    assert!(count(&i, "/lift_states") >= 10 * 60);
    assert!(count(&i, "/task_state_update") > 0);
    assert_eq!(i["metadata"]["rmf_dash.site"]["robots"], "1000");

    generate(&args, &b);
    let (fa, fb) = (std::fs::read(&a).expect("a"), std::fs::read(&b).expect("b"));
    assert!(fa == fb, "same seed, different MCAP bytes");
    let (wa, wb) = (
        std::fs::read(a.with_extension("ws.jsonl")).expect("ws a"),
        std::fs::read(b.with_extension("ws.jsonl")).expect("ws b"),
    );
    assert!(wa == wb, "same seed, different websocket frames");
    assert!(!wa.is_empty());

    generate(
        &["--preset", "site", "--duration", "60s", "--seed", "43"],
        &b,
    );
    assert!(
        std::fs::read(&b).expect("b") != fa,
        "another seed gave the same bytes"
    );
}

#[test]
fn kilted_layout_is_detected_and_presets_have_their_sizes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("hotel.mcap");
    generate(
        &[
            "--preset",
            "hotel",
            "--duration",
            "20s",
            "--layout",
            "kilted",
            "--no-ws",
        ],
        &p,
    );
    let i = info(&p);
    assert_eq!(i["layout"], "kilted");
    let site = &i["metadata"]["rmf_dash.site"];
    assert_eq!(
        (
            site["robots"].as_str(),
            site["doors"].as_str(),
            site["lifts"].as_str(),
            site["levels"].as_str()
        ),
        (Some("4"), Some("19"), Some("2"), Some("3"))
    );
    assert_eq!(count(&i, "/fleet_states"), 2 * 10 * 20);
    assert!(!p.with_extension("ws.jsonl").exists());
}

#[test]
fn every_generated_message_decodes_and_frames_match_the_topics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("airport.mcap");
    generate(
        &[
            "--preset",
            "airport",
            "--duration",
            "30s",
            "--ws-reconnect-at",
            "20s",
        ],
        &p,
    );
    let o = bin()
        .args(["trace", "dump"])
        .arg(&p)
        .output()
        .expect("dump");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let lines: Vec<Value> = o
        .stdout
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).expect("json line"))
        .collect();
    // Every JSON topic message is a websocket frame, in the same order.
    let ros_frames: Vec<String> = lines
        .iter()
        .filter(|l| l["type"] == "std_msgs/msg/String")
        .map(|l| l["message"]["data"].as_str().expect("data").to_string())
        .collect();
    let ws = std::fs::read_to_string(p.with_extension("ws.jsonl")).expect("ws file");
    let ws_frames: Vec<&str> = ws.lines().collect();
    // The same frames in the same order, plus the task logs re-sent after the reconnect at 20 s
    // (websocket file only).
    let mut next = 0;
    let mut resent = 0;
    for f in &ws_frames {
        if ros_frames.get(next).is_some_and(|r| r == f) {
            next += 1;
        } else {
            assert!(
                f.starts_with(r#"{"type":"task_log_update""#),
                "unexpected frame {f}"
            );
            resent += 1;
        }
    }
    assert_eq!(next, ros_frames.len(), "frames differ from the JSON topics");
    assert!(resent > 0, "no task logs were re-sent after the reconnect");
    for f in &ws_frames {
        let v: Value = serde_json::from_str(f).expect("frame is JSON");
        assert!(v["data"].is_object(), "frame without data: {f}");
    }
}

#[test]
fn bad_options_are_refused_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("x.mcap");
    let run = |args: &[&str]| {
        let o = bin()
            .args(["trace", "gen"])
            .args(args)
            .arg("-o")
            .arg(&p)
            .output()
            .expect("run");
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, err) = run(&[
        "--preset",
        "office",
        "--scenario",
        "lift-fire",
        "--duration",
        "5m",
    ]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("scenario lift-fire needs a lift; the site has none"),
        "{err}"
    );
    let (code, err) = run(&[
        "--preset",
        "office",
        "--scenario",
        "robot-stuck",
        "--duration",
        "60s",
    ]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("the trace must last at least 165 s, but --duration is 60 s"),
        "{err}"
    );
    let (code, err) = run(&["--scenario", "melting"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("unknown scenario \"melting\""), "{err}");
    let (code, err) = run(&["--duration", "soon"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--duration"), "{err}");
}
