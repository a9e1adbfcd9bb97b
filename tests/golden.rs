//! The registry's test of every derived event, found by file: each registered event has a fixture
//! `tests/golden/<event>.toml` and its exact expected output `tests/golden/<event>.jsonl` (the
//! lines `replay --emit jsonl` prints for the event's rooms). A new event needs only those two
//! files; no code here names an event.
//!
//! A fixture says which generated recording the event runs on (`gen`: `trace gen` arguments),
//! optionally which of its rooms are compared (`rooms`: prefixes; for the busy latest-state
//! views), and optionally a site configuration (`[derived.<section>]`). For every distinct
//! recording and configuration the engine runs once on 1 worker and once on 2, and is restored
//! from snapshots at several points; then, per event:
//! - its lines equal the expected file exactly (a spurious firing is an extra line);
//! - the 2-worker run and every restored run give the same lines after their start (a stateful
//!   operator the snapshot cannot hold shows here, named by its event).
//!
//! `RMF_DASH_BLESS=1 cargo test --release --test golden` writes the expected files (read the diff).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rmf_dash::engine::{Batch, EngineConfig};
use rmf_dash_dataflows::derived::{self, Descriptor, registry};

mod common;
use common::{run_engine, trace_gen};

/// Logical ms between the snapshots restored from.
const SNAPSHOT_EVERY_MS: u64 = 20_000;
/// How many of them are restored from (spread over the recording).
const RESTORES: usize = 3;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// One event's fixture.
struct Fixture {
    recording: Vec<String>,
    rooms: Vec<String>,
    /// The `[derived]` table, as JSON (`{}` when absent).
    derived: serde_json::Value,
}

fn fixture(name: &str) -> Fixture {
    let path = dir().join(format!("{name}.toml"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{name}: no fixture {} ({e})", path.display()));
    let table: toml::Table =
        toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let strings = |key: &str| -> Vec<String> {
        table
            .get(key)
            .and_then(toml::Value::as_array)
            .into_iter()
            .flatten()
            .map(|v| v.as_str().expect("strings").to_string())
            .collect()
    };
    let derived = table
        .get("derived")
        .map(|d| serde_json::to_value(d).expect("json"))
        .unwrap_or_else(|| serde_json::json!({}));
    assert!(!strings("gen").is_empty(), "{}: no `gen`", path.display());
    Fixture {
        recording: strings("gen"),
        rooms: strings("rooms"),
        derived,
    }
}

/// The outputs of one engine run, as `replay --emit jsonl` lines, with their times.
fn lines(batches: &[Batch]) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    for b in batches {
        let mut text = Vec::new();
        rmf_dash::replay::write_jsonl(b, &mut text).expect("to memory");
        let text = String::from_utf8(text).expect("utf-8");
        out.extend(text.lines().map(|l| (b.time, l.to_string())));
    }
    out
}

/// The lines of `event` (its rooms, within `rooms` prefixes when given) at or after `from`.
fn of(event: &Descriptor, rooms: &[String], all: &[(u64, String)], from: u64) -> Vec<String> {
    all.iter()
        .filter(|(t, _)| *t >= from)
        .filter(|(_, l)| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a jsonl line");
            let room = v["room"].as_str().expect("a room");
            derived::rooms::matches(event.room, room)
                && (rooms.is_empty() || rooms.iter().any(|p| room.starts_with(p.as_str())))
        })
        .map(|(_, l)| l.clone())
        .collect()
}

/// The runs of one recording and configuration: uninterrupted on 1 worker, on 2, and restored
/// from snapshots (their time and outputs).
struct Runs {
    one: Vec<(u64, String)>,
    two: Vec<(u64, String)>,
    restored: Vec<(u64, Vec<(u64, String)>)>,
}

fn runs(recording: &Path, derived_sections: &serde_json::Value) -> Runs {
    let path = recording.to_str().expect("utf-8 path");
    let prepared = rmf_dash::bench::engine::prepare(path, 10).expect("prepare");
    let last = prepared.batches.last().expect("inputs").0;
    let derived = derived::Config::from_sections(derived_sections).expect("a valid fixture config");
    let config = |workers| EngineConfig {
        workers,
        snapshot_every_ms: Some(SNAPSHOT_EVERY_MS),
        derived: derived.clone(),
        ..Default::default()
    };
    let (one, snapshots) = run_engine(&config(1), None, &prepared.batches, last);
    let (two, _) = run_engine(&config(2), None, &prepared.batches, last);
    let step = (snapshots.len() / RESTORES).max(1);
    let restored = snapshots
        .into_iter()
        .skip(1)
        .step_by(step)
        .take(RESTORES)
        .map(|s| {
            let time = s.time;
            let tail: Vec<_> = prepared
                .batches
                .iter()
                .filter(|(t, _)| *t > time)
                .cloned()
                .collect();
            let (out, _) = run_engine(&config(1), Some(s), &tail, last);
            // The restored engine re-emits the present outputs at the snapshot's time.
            (time + 1, lines(&out))
        })
        .collect();
    Runs {
        one: lines(&one),
        two: lines(&two),
        restored,
    }
}

fn first_difference(want: &[String], got: &[String]) -> String {
    for (i, (w, g)) in want.iter().zip(got).enumerate() {
        if w != g {
            return format!("line {}:\n  expected {w}\n  got      {g}", i + 1);
        }
    }
    format!("{} lines expected, {} got", want.len(), got.len())
}

#[test]
fn every_registered_event_gives_its_golden_output_on_any_workers_and_after_a_restore() {
    let bless = std::env::var_os("RMF_DASH_BLESS").is_some();
    let events = registry();
    // Every fixture file is of a registered event, and every event has one.
    let mut names: Vec<&str> = events.iter().map(|d| d.name).collect();
    names.sort_unstable();
    for entry in std::fs::read_dir(dir()).expect("tests/golden") {
        let path = entry.expect("entry").path();
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        assert!(
            names.binary_search(&stem).is_ok(),
            "{}: no registered event {stem}",
            path.display()
        );
    }
    let temp = tempfile::tempdir().expect("tempdir");
    let mut recordings: BTreeMap<Vec<String>, PathBuf> = BTreeMap::new();
    let mut cases: BTreeMap<(Vec<String>, String), Runs> = BTreeMap::new();
    let mut failures = Vec::new();
    for event in &events {
        let f = fixture(event.name);
        let recording = recordings
            .entry(f.recording.clone())
            .or_insert_with(|| {
                let args: Vec<&str> = f.recording.iter().map(String::as_str).collect();
                let file = temp
                    .path()
                    .join(format!("{}.mcap", file_name(&f.recording)));
                trace_gen(&file, &args)
            })
            .clone();
        let key = (f.recording.clone(), f.derived.to_string());
        let runs = cases
            .entry(key)
            .or_insert_with(|| runs(&recording, &f.derived));
        let got = of(event, &f.rooms, &runs.one, 0);
        let expected_path = dir().join(format!("{}.jsonl", event.name));
        if bless {
            let text: String = got.iter().map(|l| format!("{l}\n")).collect();
            std::fs::write(&expected_path, text).expect("write the expected file");
        }
        let expected: Vec<String> = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()))
            .lines()
            .map(str::to_string)
            .collect();
        if got != expected {
            failures.push(format!(
                "{}: not its golden output ({}), {}",
                event.name,
                expected_path.display(),
                first_difference(&expected, &got)
            ));
        }
        if of(event, &f.rooms, &runs.two, 0) != got {
            failures.push(format!("{}: 2 workers give other outputs", event.name));
        }
        for (from, restored) in &runs.restored {
            let want = of(event, &f.rooms, &runs.one, *from);
            let after = of(event, &f.rooms, restored, *from);
            if after != want {
                failures.push(format!(
                    "{}: restored from the snapshot at {}, {}",
                    event.name,
                    from - 1,
                    first_difference(&want, &after)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A short, stable file name for a recording's arguments.
fn file_name(args: &[String]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in args.join(" ").bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}
