//! Interop with an independent CDR implementation: rosbag2 recordings written by the Python
//! `rosbags` package (`tests/interop/make_bags.py`) must dump, through the real `rmf-dash` binary,
//! to exactly the JSON the Python side expects, from MCAP and sqlite3 storage, with and without
//! embedded message definitions (Humble `.db3` files carry none), and `trace info` must report
//! the RMF layout and the per-topic counts.
//!
//! The Python environment and the bags are made once per test binary (see [`fixture`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_rmf-dash");
const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// Topics, types and message counts that `make_bags.py` writes (both distros).
const TOPICS: &[(&str, &str, u64)] = &[
    ("/door_states", "rmf_door_msgs/msg/DoorState", 3),
    ("/lift_states", "rmf_lift_msgs/msg/LiftState", 2),
    (
        "/dispenser_states",
        "rmf_dispenser_msgs/msg/DispenserState",
        2,
    ),
    ("/fleet_states", "rmf_fleet_msgs/msg/FleetState", 3),
    ("/map", "rmf_building_map_msgs/msg/BuildingMap", 1),
    ("/fleet_state_update", "std_msgs/msg/String", 1),
];

struct Fixture {
    /// Holds `jazzy_mcap/`, `kilted_mcap/`, `jazzy_db3/`, `kilted_db3/`, the expected files and
    /// `{jazzy,kilted}_db3_nodefs/` (copies of the db3 bags without message definitions).
    dir: PathBuf,
}

/// The generated bags, made once per process. The directory lives under Cargo's per-target temp
/// directory and is kept for the whole process (a `static` is never dropped).
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Result<Fixture, String>> = OnceLock::new();
    match FIXTURE.get_or_init(make_fixture) {
        Ok(f) => f,
        Err(e) => panic!("interop fixture could not be made: {e}"),
    }
}

fn make_fixture() -> Result<Fixture, String> {
    let env = Command::new(Path::new(REPO).join("scripts/python-env.sh"))
        .current_dir(REPO)
        .output()
        .map_err(|e| format!("cannot run scripts/python-env.sh: {e}"))?;
    if !env.status.success() {
        return Err(format!(
            "scripts/python-env.sh failed ({}):\nstdout:\n{}\nstderr:\n{}",
            env.status,
            String::from_utf8_lossy(&env.stdout),
            String::from_utf8_lossy(&env.stderr)
        ));
    }
    remove_stale_fixtures();
    let tmp = tempfile::Builder::new()
        .prefix("interop-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .map_err(|e| format!("cannot create a temp dir: {e}"))?;
    let dir = tmp.keep();
    let python = Path::new(REPO).join(".venv/bin/python");
    let make = Command::new(&python)
        .arg(Path::new(REPO).join("tests/interop/make_bags.py"))
        .arg(&dir)
        .current_dir(REPO)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if !make.status.success() {
        return Err(format!(
            "make_bags.py failed ({}):\nstdout:\n{}\nstderr:\n{}",
            make.status,
            String::from_utf8_lossy(&make.stdout),
            String::from_utf8_lossy(&make.stderr)
        ));
    }
    for distro in ["jazzy", "kilted"] {
        copy_without_definitions(
            &dir.join(format!("{distro}_db3")),
            &dir.join(format!("{distro}_db3_nodefs")),
        )?;
    }
    Ok(Fixture { dir })
}

/// Fixture directories of earlier runs (a kept directory outlives its process): removes those
/// older than an hour, so that concurrent runs keep theirs.
fn remove_stale_fixtures() {
    let Ok(entries) = std::fs::read_dir(env!("CARGO_TARGET_TMPDIR")) else {
        return;
    };
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age.as_secs() > 3600);
        if old && entry.file_name().to_string_lossy().starts_with("interop-") {
            std::fs::remove_dir_all(entry.path()).ok();
        }
    }
}

/// Copies a rosbag2 sqlite3 folder and empties the copy's `message_definitions` table, which is
/// what a Humble recording looks like to the reader (no definitions stored).
fn copy_without_definitions(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::create_dir_all(to).map_err(|e| format!("{}: {e}", to.display()))?;
    let mut db3 = None;
    for entry in std::fs::read_dir(from).map_err(|e| format!("{}: {e}", from.display()))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        let name = path.file_name().unwrap_or_default();
        std::fs::copy(&path, to.join(name)).map_err(|e| format!("{}: {e}", path.display()))?;
        if path.extension().is_some_and(|e| e == "db3") {
            db3 = Some(to.join(name));
        }
    }
    let db3 = db3.ok_or_else(|| format!("{}: no .db3 file", from.display()))?;
    let conn = rusqlite::Connection::open(&db3).map_err(|e| format!("{}: {e}", db3.display()))?;
    let deleted = conn
        .execute("DELETE FROM message_definitions", [])
        .map_err(|e| format!("{}: {e}", db3.display()))?;
    if deleted == 0 {
        return Err(format!(
            "{}: message_definitions was already empty",
            db3.display()
        ));
    }
    Ok(())
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        // The tests say which release they want; a developer's environment must not.
        .env_remove("RMF_DASH_RMF_RELEASE")
        .env_remove("RMF_DASH_LOG")
        .env("NO_COLOR", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {BIN}: {e}"))
}

fn bag(name: &str) -> String {
    fixture().dir.join(name).display().to_string()
}

fn expected(distro: &str) -> Vec<Value> {
    let path = fixture().dir.join(format!("expected_{distro}.jsonl"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    parse_lines(&text, &path.display().to_string())
}

fn parse_lines(text: &str, what: &str) -> Vec<Value> {
    text.lines()
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{what}: line {}: not JSON ({e}): {l}", i + 1))
        })
        .collect()
}

/// Where two JSON values differ, with the f32 bits of both sides when a float differs.
fn differences(path: &str, got: &Value, want: &Value, out: &mut Vec<String>) {
    match (got, want) {
        (Value::Object(g), Value::Object(w)) => {
            let gk: Vec<&String> = g.keys().collect();
            let wk: Vec<&String> = w.keys().collect();
            if gk != wk {
                out.push(format!("{path}: keys {gk:?}, expected {wk:?}"));
            }
            for (k, wv) in w {
                if let Some(gv) = g.get(k) {
                    differences(&format!("{path}.{k}"), gv, wv, out);
                }
            }
        }
        (Value::Array(g), Value::Array(w)) => {
            if g.len() != w.len() {
                out.push(format!(
                    "{path}: {} elements, expected {}",
                    g.len(),
                    w.len()
                ));
            }
            for (i, (gv, wv)) in g.iter().zip(w).enumerate() {
                differences(&format!("{path}[{i}]"), gv, wv, out);
            }
        }
        (Value::Number(g), Value::Number(w)) if g != w => match (g.as_f64(), w.as_f64()) {
            (Some(gf), Some(wf)) if g.is_f64() || w.is_f64() => {
                let (gb, wb) = ((gf as f32).to_bits(), (wf as f32).to_bits());
                out.push(format!(
                    "{path}: {g} (f32 bits {gb:#010x}), expected {w} (f32 bits {wb:#010x}): {}",
                    if gb == wb {
                        "same float32, different decimal (not the shortest float32 form?)"
                    } else {
                        "different float32 values"
                    }
                ));
            }
            _ => out.push(format!("{path}: {g}, expected {w}")),
        },
        (g, w) if g != w => out.push(format!("{path}: {g}, expected {w}")),
        _ => {}
    }
}

/// Runs `trace dump <bag> --full-bytes [extra]` and lists how its output differs from
/// `expected_<distro>.jsonl` (empty when equal). Panics when the command fails.
fn dump_differences(bag_name: &str, distro: &str, extra: &[&str]) -> Vec<String> {
    let path = bag(bag_name);
    let mut args = vec!["trace", "dump", path.as_str(), "--full-bytes"];
    args.extend_from_slice(extra);
    let out = run(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{args:?} failed ({}):\n{stderr}",
        out.status
    );
    assert!(
        stderr.trim().is_empty(),
        "{args:?} wrote to stderr:\n{stderr}"
    );
    let stdout = String::from_utf8(out.stdout).expect("dump output is UTF-8");
    let got = parse_lines(&stdout, &format!("{args:?} output"));
    let want = expected(distro);
    let mut report = Vec::new();
    if got.len() != want.len() {
        report.push(format!("{} lines, expected {}", got.len(), want.len()));
    }
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        if g != w {
            let mut diffs = Vec::new();
            differences("", g, w, &mut diffs);
            report.push(format!("line {}: {}", i + 1, diffs.join("; ")));
        }
    }
    report
}

/// `trace dump <bag> --full-bytes [extra]` must print exactly the expected lines.
fn assert_dump(bag_name: &str, distro: &str, extra: &[&str]) {
    let report = dump_differences(bag_name, distro, extra);
    assert!(
        report.is_empty(),
        "dump of {bag_name} {extra:?} differs from expected_{distro}.jsonl:\n{}",
        report.join("\n")
    );
}

/// The comparison is not vacuous: the two distros differ exactly in `performing_action`.
#[test]
fn comparison_detects_the_other_distro() {
    let report = dump_differences("jazzy_mcap", "kilted", &[]);
    let fleet_lines = ["line 7:", "line 10:"];
    assert_eq!(report.len(), fleet_lines.len(), "{report:#?}");
    for (r, line) in report.iter().zip(fleet_lines) {
        assert!(r.starts_with(line) && r.contains(".mode: keys"), "{r}");
    }
}

#[test]
fn dump_jazzy_mcap() {
    assert_dump("jazzy_mcap", "jazzy", &[]);
}

#[test]
fn dump_kilted_mcap() {
    assert_dump("kilted_mcap", "kilted", &[]);
}

#[test]
fn dump_jazzy_db3() {
    assert_dump("jazzy_db3", "jazzy", &[]);
}

#[test]
fn dump_kilted_db3() {
    assert_dump("kilted_db3", "kilted", &[]);
}

/// The schema in an MCAP file wins over the configured release.
#[test]
fn dump_mcap_ignores_the_configured_release() {
    assert_dump("jazzy_mcap", "jazzy", &["--rmf-release", "kilted"]);
    assert_dump("kilted_mcap", "kilted", &["--rmf-release", "jazzy"]);
}

/// A single `.db3` file (not its folder) opens too.
#[test]
fn dump_db3_file_directly() {
    assert_dump("jazzy_db3/jazzy_db3.db3", "jazzy", &[]);
    assert_dump("kilted_db3_nodefs/kilted_db3.db3", "kilted", &[]);
}

#[test]
fn dump_jazzy_db3_without_definitions() {
    assert_dump("jazzy_db3_nodefs", "jazzy", &["--rmf-release", "jazzy"]);
}

/// Detection must pick jazzy from the payloads even when kilted is preferred.
#[test]
fn dump_jazzy_db3_without_definitions_preferring_kilted() {
    assert_dump("jazzy_db3_nodefs", "jazzy", &["--rmf-release", "kilted"]);
}

#[test]
fn dump_kilted_db3_without_definitions_default_release() {
    assert_dump("kilted_db3_nodefs", "kilted", &[]);
}

/// Kilted FleetState payloads with robots only fit the kilted layout: detection must pick it even
/// when jazzy is configured.
#[test]
fn dump_kilted_db3_without_definitions_preferring_jazzy() {
    assert_dump("kilted_db3_nodefs", "kilted", &["--rmf-release", "jazzy"]);
}

#[test]
fn dump_kilted_db3_without_definitions_preferring_kilted() {
    assert_dump("kilted_db3_nodefs", "kilted", &["--rmf-release", "kilted"]);
}

/// `trace info <bag> --json`: storage, layout and where it came from, exact per-topic counts.
fn assert_info(bag_name: &str, storage: &str, layout: &str, from_schema: bool) {
    let path = bag(bag_name);
    let out = run(&["trace", "info", &path, "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "trace info {path} failed ({}):\n{stderr}",
        out.status
    );
    let info: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "trace info --json is not JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    assert_eq!(info["storage"], storage, "{info:#}");
    assert_eq!(info["layout"], layout, "{info:#}");
    let how = if from_schema {
        "(schema)"
    } else {
        "(payloads)"
    };
    assert_eq!(
        info["layout_source"],
        format!("/fleet_states {how}"),
        "{info:#}"
    );

    let distro = if bag_name.starts_with("kilted") {
        "kilted"
    } else {
        "jazzy"
    };
    let want_lines = expected(distro);
    let total: u64 = TOPICS.iter().map(|t| t.2).sum();
    assert_eq!(info["messages"], total, "{info:#}");
    assert_eq!(
        want_lines.len() as u64,
        total,
        "expected_{distro}.jsonl and TOPICS disagree"
    );
    assert_eq!(info["start_ns"], want_lines[0]["log_time"], "{info:#}");
    assert_eq!(
        info["end_ns"],
        want_lines[want_lines.len() - 1]["log_time"],
        "{info:#}"
    );

    let mut got: BTreeMap<String, (String, u64, bool)> = BTreeMap::new();
    for t in info["topics"].as_array().expect("topics is an array") {
        let topic = t["topic"].as_str().expect("topic").to_string();
        let entry = (
            t["type"].as_str().expect("type").to_string(),
            t["count"].as_u64().expect("count"),
            t["has_schema"].as_bool().expect("has_schema"),
        );
        assert!(
            got.insert(topic.clone(), entry).is_none(),
            "{topic} listed twice: {info:#}"
        );
    }
    let want: BTreeMap<String, (String, u64, bool)> = TOPICS
        .iter()
        .map(|(topic, ty, n)| (topic.to_string(), (ty.to_string(), *n, from_schema)))
        .collect();
    assert_eq!(got, want, "{info:#}");
    // The counts also agree with the expected file.
    for (topic, _, n) in TOPICS {
        let lines = want_lines.iter().filter(|l| l["topic"] == *topic).count() as u64;
        assert_eq!(lines, *n, "{topic} in expected_{distro}.jsonl");
    }
}

#[test]
fn info_jazzy_mcap() {
    assert_info("jazzy_mcap", "mcap", "jazzy", true);
}

#[test]
fn info_kilted_mcap() {
    assert_info("kilted_mcap", "mcap", "kilted", true);
}

#[test]
fn info_jazzy_db3() {
    assert_info("jazzy_db3", "sqlite3", "jazzy", true);
}

#[test]
fn info_kilted_db3() {
    assert_info("kilted_db3", "sqlite3", "kilted", true);
}

#[test]
fn info_jazzy_db3_without_definitions() {
    assert_info("jazzy_db3_nodefs", "sqlite3", "jazzy", false);
}

#[test]
fn info_kilted_db3_without_definitions() {
    assert_info("kilted_db3_nodefs", "sqlite3", "kilted", false);
}
