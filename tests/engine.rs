//! The engine end to end through `rmf-dash replay --no-db --emit jsonl`: the output of a
//! generated scenario recording is byte-identical across runs, worker counts, replay speeds and a
//! two-process timely cluster on loopback.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;

mod common;
use common::{bin, run_engine, trace_gen};

/// A hotel recording with every scenario injected, generated once per test process.
fn recording() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("rmf-dash-engine-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let args = [
            "--preset",
            "hotel",
            "--duration",
            "300s",
            "--seed",
            "3",
            "--scenario",
            "all",
        ];
        trace_gen(&dir.join("hotel.mcap"), &args)
    })
}

fn replay(extra: &[&str]) -> Vec<u8> {
    let out = bin()
        .arg("replay")
        .arg(recording())
        .args(["--no-db", "--emit", "jsonl"])
        .args(extra)
        .output()
        .expect("run replay");
    assert!(
        out.status.success(),
        "replay {extra:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn first_difference(a: &[u8], b: &[u8]) -> String {
    let (a, b) = (String::from_utf8_lossy(a), String::from_utf8_lossy(b));
    for (i, (x, y)) in a.lines().zip(b.lines()).enumerate() {
        if x != y {
            let cut = |s: &str| s.chars().take(300).collect::<String>();
            return format!("line {}:\n  {}\n  {}", i + 1, cut(x), cut(y));
        }
    }
    format!(
        "lengths {} and {} lines",
        a.lines().count(),
        b.lines().count()
    )
}

#[test]
fn output_is_identical_across_runs_workers_and_speeds() {
    let base = replay(&[]);
    assert!(base.len() > 10_000, "suspiciously little output");
    // Every line is the contract's shape, ordered by time then room.
    let mut last = (0u64, String::new());
    for line in String::from_utf8_lossy(&base).lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("json line");
        let t = v["time"].as_u64().expect("time");
        let room = v["room"].as_str().expect("room").to_string();
        assert!(matches!(v["diff"].as_i64(), Some(1 | -1)), "{line}");
        assert!(v["value"].is_object() || v["value"].is_array(), "{line}");
        assert!((t, room.clone()) >= last, "out of order at {line}");
        last = (t, room);
    }
    for extra in [
        &[][..],
        &["--workers", "2"],
        &["--workers", "4"],
        &["--speed", "100"],
    ] {
        let other = replay(extra);
        assert!(
            other == base,
            "{extra:?} differs: {}",
            first_difference(&base, &other)
        );
    }
}

#[test]
fn two_process_cluster_gives_the_output_of_one_process() {
    let ports: Vec<u16> = (0..2)
        .map(|_| {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        })
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let hosts = dir.path().join("hosts.txt");
    std::fs::write(
        &hosts,
        format!(
            "# two processes on loopback\n127.0.0.1:{}\n127.0.0.1:{}\n",
            ports[0], ports[1]
        ),
    )
    .expect("hosts file");
    let hosts = hosts.to_str().expect("utf-8 path");
    let mut second = bin()
        .arg("replay")
        .arg(recording())
        .args([
            "--no-db",
            "--workers",
            "2",
            "--process",
            "1",
            "--hosts",
            hosts,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn process 1");
    let first = replay(&["--workers", "2", "--process", "0", "--hosts", hosts]);
    let status = second.wait().expect("process 1");
    assert!(status.success(), "process 1 failed");
    let single = replay(&[]);
    assert!(
        first == single,
        "cluster output differs: {}",
        first_difference(&single, &first)
    );
}

#[test]
fn bad_cluster_options_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hosts = dir.path().join("hosts.txt");
    std::fs::write(&hosts, "localhost\n").expect("hosts");
    let out = bin()
        .args(["replay", "x.mcap", "--no-db", "--process", "0", "--hosts"])
        .arg(&hosts)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"localhost\" is not host:port"));
    let out = bin().args(["replay", "x.mcap"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    // Without --no-db a replay goes into the store: a missing recording is refused first.
    assert!(String::from_utf8_lossy(&out.stderr).contains("x.mcap: no such file or directory"));
}

/// The whole state after a time is in a snapshot: an engine started from it and fed only the
/// later inputs gives exactly the outputs of the run that never stopped, on 1 and 2 workers,
/// from snapshots all along the recording (heartbeats, debounces, windows, joins mid-way).
#[test]
fn a_restored_snapshot_gives_the_outputs_of_an_uninterrupted_run() {
    let path = recording().to_str().expect("utf-8 path");
    let prepared = rmf_dash::bench::engine::prepare(path, 10).expect("prepare");
    let last = prepared.batches.last().expect("inputs").0;
    for workers in [1, 2] {
        let config = rmf_dash::engine::EngineConfig {
            workers,
            snapshot_every_ms: Some(20_000),
            ..Default::default()
        };
        let (whole, snapshots) = run_engine(&config, None, &prepared.batches, last);
        // 300 s of recording, a snapshot every 20 s.
        assert!(snapshots.len() >= 14, "{} snapshots", snapshots.len());
        let after = |batches: &[rmf_dash::engine::Batch], s: u64| -> Vec<rmf_dash::engine::Batch> {
            batches.iter().filter(|b| b.time > s).cloned().collect()
        };
        for snapshot in snapshots.iter().skip(1).step_by(4) {
            let s = snapshot.time;
            let tail: Vec<_> = prepared
                .batches
                .iter()
                .filter(|(t, _)| *t > s)
                .cloned()
                .collect();
            let want = after(&whole, s);
            assert!(want.len() > 100, "outputs after {s}: {}", want.len());
            let (restored, _) = run_engine(&config, Some(snapshot.clone()), &tail, last);
            eprintln!(
                "{workers} workers, snapshot at {s}: {} parts, {} bytes; {} batches after",
                snapshot.parts.len(),
                snapshot.parts.iter().map(|p| p.state.len()).sum::<usize>() + snapshot.inputs.len(),
                want.len()
            );
            assert!(
                after(&restored, s) == want,
                "{workers} workers: the outputs after the snapshot at {s} differ"
            );
            // Without the snapshot, the same tail gives other outputs: the test can fail.
            let (fresh, _) = run_engine(&config, None, &tail, last);
            assert!(after(&fresh, s) != want, "the tail alone after {s}");
        }
    }
}

/// A snapshot is only loaded by an engine of the same configuration.
#[test]
fn a_snapshot_of_another_configuration_is_refused() {
    let path = recording().to_str().expect("utf-8 path");
    let prepared = rmf_dash::bench::engine::prepare(path, 10).expect("prepare");
    let last = prepared.batches.last().expect("inputs").0;
    let config = rmf_dash::engine::EngineConfig {
        snapshot_every_ms: Some(60_000),
        ..Default::default()
    };
    let (_, snapshots) = run_engine(&config, None, &prepared.batches[..200], last);
    let snapshot = snapshots.into_iter().next().expect("a snapshot");
    let two = rmf_dash::engine::EngineConfig {
        workers: 2,
        ..config.clone()
    };
    match rmf_dash::engine::Engine::start_restored(two, snapshot.clone()) {
        Err(rmf_dash::engine::EngineError::Restore(why)) => {
            assert!(why.contains("another build or configuration"), "{why}")
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a 1-worker snapshot loaded by 2 workers"),
    }
    // A part that does not decode is refused too, and the workers stop.
    let mut broken = snapshot;
    broken.parts[0].state.truncate(1);
    match rmf_dash::engine::Engine::start_restored(config, broken) {
        Err(rmf_dash::engine::EngineError::Restore(why)) => {
            assert!(why.contains("problems"), "{why}")
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a broken part loaded"),
    }
}
