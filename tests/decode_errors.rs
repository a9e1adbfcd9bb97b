//! Bad input gets a clear error and nothing else: malformed payloads, wrong encapsulation,
//! broken schemas, payloads of the other RMF layout, corrupt MCAP chunks, missing and foreign
//! files. Each case checks the exact error (topic, type, payload offset and field where they
//! apply) through the library API and/or the real `rmf-dash trace dump` binary (stderr, exit code,
//! never a panic).
//!
//! Recordings are built here: MCAP files with the `mcap` crate (schema encoding `ros2msg`,
//! message encoding `cdr`, built-in schema texts) and Humble-style `.db3` files (no
//! `message_definitions` table) with `rusqlite`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rmf_dash::ingest::bag::Recording;
use rmf_dash::ingest::builtin;
use rmf_dash::ingest::cdr::generic::Bytes;
use rmf_dash::ingest::cdr::{CdrError, RmfRelease, typed};
use rmf_dash::ingest::decode::{DecodeError, ReleasePolicy, TopicDecoder};
use rmf_dash_dataflows::model::ros::*;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_rmf-dash");
const DOOR_TYPE: &str = "rmf_door_msgs/msg/DoorState";
const FLEET_TYPE: &str = "rmf_fleet_msgs/msg/FleetState";
const T0: u64 = 1_700_000_000_000_000_000;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("RMF_DASH_RMF_RELEASE")
        .env_remove("RMF_DASH_LOG")
        .env("NO_COLOR", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {BIN}: {e}"))
}

/// Runs `rmf-dash trace dump <path> [extra]`: (exit code, stdout, stderr without ANSI escapes).
/// A panic (exit code 101) or a death by signal fails the test.
fn dump(path: &Path, extra: &[&str]) -> (i32, String, String) {
    let p = path.display().to_string();
    let mut args = vec!["trace", "dump", p.as_str()];
    args.extend_from_slice(extra);
    let out = run(&args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = strip_ansi(&String::from_utf8_lossy(&out.stderr));
    let code = out.status.code().unwrap_or_else(|| {
        panic!(
            "{args:?} was killed by a signal ({}):\n{stderr}",
            out.status
        )
    });
    assert_ne!(code, 101, "{args:?} panicked:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{args:?} panicked:\n{stderr}");
    (code, stdout, stderr)
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn assert_contains(haystack: &str, needles: &[&str]) {
    for n in needles {
        assert!(haystack.contains(n), "expected {n:?} in:\n{haystack}");
    }
}

fn schema(type_name: &str, release: RmfRelease) -> String {
    builtin::schema_text(type_name, release).unwrap_or_else(|| panic!("no built-in {type_name}"))
}

/// One MCAP channel: topic, type, schema text.
struct Chan {
    topic: &'static str,
    type_name: &'static str,
    schema: String,
}

fn chan(topic: &'static str, type_name: &'static str, schema: String) -> Chan {
    Chan {
        topic,
        type_name,
        schema,
    }
}

/// Writes a rosbag2-style MCAP file: `messages` are (channel index, log_time, payload).
fn write_mcap(
    path: &Path,
    compression: Option<mcap::Compression>,
    channels: &[Chan],
    messages: &[(usize, u64, Vec<u8>)],
) {
    let file = std::fs::File::create(path).unwrap();
    let mut w = mcap::WriteOptions::new()
        .profile("ros2")
        .compression(compression)
        .create(std::io::BufWriter::new(file))
        .unwrap();
    let mut ids = Vec::new();
    for c in channels {
        let schema_id = w
            .add_schema(c.type_name, "ros2msg", c.schema.as_bytes())
            .unwrap();
        ids.push(
            w.add_channel(schema_id, c.topic, "cdr", &BTreeMap::new())
                .unwrap(),
        );
    }
    for (seq, (c, log_time, data)) in messages.iter().enumerate() {
        let header = mcap::records::MessageHeader {
            channel_id: ids[*c],
            sequence: seq as u32,
            log_time: *log_time,
            publish_time: *log_time,
        };
        w.write_to_known_channel(&header, data).unwrap();
    }
    w.finish().unwrap();
}

/// Writes a Humble-style rosbag2 sqlite3 file: no `message_definitions` table.
fn write_db3(path: &Path, topics: &[(&str, &str)], messages: &[(usize, u64, Vec<u8>)]) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(
        "CREATE TABLE topics(id INTEGER PRIMARY KEY, name TEXT NOT NULL, type TEXT NOT NULL, \
             serialization_format TEXT NOT NULL, offered_qos_profiles TEXT NOT NULL);
         CREATE TABLE messages(id INTEGER PRIMARY KEY, topic_id INTEGER NOT NULL, \
             timestamp INTEGER NOT NULL, data BLOB NOT NULL);
         CREATE INDEX timestamp_idx ON messages (timestamp ASC);",
    )
    .unwrap();
    for (i, (name, ty)) in topics.iter().enumerate() {
        conn.execute(
            "INSERT INTO topics VALUES (?1, ?2, ?3, 'cdr', '')",
            rusqlite::params![i as i64 + 1, name, ty],
        )
        .unwrap();
    }
    for (t, log_time, data) in messages {
        conn.execute(
            "INSERT INTO messages (topic_id, timestamp, data) VALUES (?1, ?2, ?3)",
            rusqlite::params![*t as i64 + 1, *log_time as i64, data],
        )
        .unwrap();
    }
}

fn door(name: &str, mode: u32) -> DoorState {
    DoorState {
        door_time: Time {
            sec: 1_700_000_000,
            nanosec: 5,
        },
        door_name: name.into(),
        current_mode: DoorMode { value: mode },
    }
}

fn location(i: u32) -> Location {
    Location {
        t: Time {
            sec: 1_700_000_000 + i as i32,
            nanosec: 250_000_000,
        },
        x: 0.5 * i as f32,
        y: -1.25 * i as f32,
        yaw: 0.1,
        obey_approach_speed_limit: i % 2 == 0,
        approach_speed_limit: 0.5,
        level_name: "L1".into(),
        index: u64::from(i),
    }
}

/// A fleet with `n` robots; `action` is the kilted `performing_action` (`None` for jazzy).
fn fleet(n: u32, action: Option<&str>, battery: f32) -> FleetState {
    FleetState {
        name: "tinyRobot".into(),
        robots: (0..n)
            .map(|i| RobotState {
                name: format!("robot_{i}").into(),
                model: "TinyRobot".into(),
                task_id: if i == 0 {
                    "".into()
                } else {
                    format!("task#{i}").into()
                },
                seq: u64::from(i) * 7,
                mode: RobotMode {
                    mode: 2,
                    mode_request_id: u64::from(i),
                    performing_action: action.map(Into::into),
                },
                battery_percent: battery,
                location: location(i),
                path: (0..i).map(location).collect(),
            })
            .collect(),
    }
}

fn policy(preferred: RmfRelease) -> ReleasePolicy {
    ReleasePolicy {
        preferred,
        strict: false,
    }
}

fn decoder(topic: &str, type_name: &str, schema: Option<&str>, p: ReleasePolicy) -> TopicDecoder {
    TopicDecoder::new(topic, type_name, "cdr", schema, p).unwrap_or_else(|e| panic!("{e}"))
}

/// Both decoding entry points fail, with the same error text; returns it.
fn both_fail(d: &mut TopicDecoder, payload: &[u8]) -> String {
    let v = d.value(payload, Bytes::Array).map(|v| v.to_string());
    let r = d.record(payload).map(|r| format!("{r:?}"));
    match (v, r) {
        (Err(a), Err(b)) => {
            assert_eq!(
                a.to_string(),
                b.to_string(),
                "value() and record() disagree"
            );
            a.to_string()
        }
        (v, r) => panic!("expected errors, got value {v:?} / record {r:?}"),
    }
}

/// The truncated DoorState used by several tests: `main_door` cut after 4 of its 10 bytes.
/// Layout: header 0..4, door_time 4..12, door_name length at 12, its bytes from 16.
fn truncated_door() -> Vec<u8> {
    let full = typed::encode(&door("main_door", 2), RmfRelease::Jazzy);
    full[..20].to_vec()
}

const TRUNCATED_DOOR_ERROR: &str = "topic /door_states (rmf_door_msgs/msg/DoorState): at door_name: \
     offset 16: string needs 10 bytes, only 4 left";

// ---------------------------------------------------------------------------------------------
// Payload errors (library)
// ---------------------------------------------------------------------------------------------

#[test]
fn truncated_payload_names_topic_type_offset_and_field() {
    let payload = truncated_door();
    for schema in [Some(schema(DOOR_TYPE, RmfRelease::Jazzy)), None] {
        let mut d = decoder(
            "/door_states",
            DOOR_TYPE,
            schema.as_deref(),
            ReleasePolicy::default(),
        );
        assert_eq!(
            both_fail(&mut d, &payload),
            TRUNCATED_DOOR_ERROR,
            "schema: {}",
            schema.is_some()
        );
    }
    let err = typed::decode::<DoorState>(&payload, RmfRelease::Jazzy).unwrap_err();
    assert_eq!(
        err,
        CdrError::Truncated {
            offset: 16,
            what: "string",
            need: 10,
            available: 4
        }
    );
}

#[test]
fn wrong_encapsulation_byte() {
    let mut payload = typed::encode(&door("main_door", 2), RmfRelease::Jazzy);
    payload[1] = 0x03;
    let mut d = decoder(
        "/door_states",
        DOOR_TYPE,
        Some(&schema(DOOR_TYPE, RmfRelease::Jazzy)),
        ReleasePolicy::default(),
    );
    assert_eq!(
        both_fail(&mut d, &payload),
        "topic /door_states (rmf_door_msgs/msg/DoorState): unsupported encapsulation \
         representation 0x00 0x03 (expected CDR: 0x00 0x01 or 0x00 0x00)"
    );
    // Too short for a header at all.
    assert_eq!(
        both_fail(&mut d, &[0, 1]),
        "topic /door_states (rmf_door_msgs/msg/DoorState): payload of 2 bytes is too short for \
         the 4-byte encapsulation header"
    );
}

#[test]
fn unparsable_schema_names_the_line() {
    let text = "builtin_interfaces/Time door_time\nuint32[ broken\nDoorMode current_mode\n";
    let err = TopicDecoder::new(
        "/door_states",
        DOOR_TYPE,
        "cdr",
        Some(text),
        ReleasePolicy::default(),
    )
    .unwrap_err();
    assert!(matches!(err, DecodeError::Schema { .. }), "{err:?}");
    let msg = err.to_string();
    assert_contains(
        &msg,
        &[
            "topic /door_states (rmf_door_msgs/msg/DoorState): bad schema: ",
            "line 2:",
        ],
    );
    // A broken dependency section: the line counts in the whole text.
    let mut text = schema(DOOR_TYPE, RmfRelease::Jazzy);
    text.push_str("================================================================================\nMSG: p/Broken\nuint32[ broken\n");
    let line = text.lines().count();
    let msg = TopicDecoder::new(
        "/door_states",
        DOOR_TYPE,
        "cdr",
        Some(&text),
        ReleasePolicy::default(),
    )
    .unwrap_err()
    .to_string();
    assert_contains(&msg, &["/door_states", DOOR_TYPE, &format!("line {line}:")]);
}

/// A payload of one layout on a channel whose schema is the other layout: an error naming the
/// topic, type, field and offset, never a successful misdecode.
#[test]
fn fleet_payload_of_the_other_layout_than_the_schema() {
    for schema_release in RmfRelease::ALL {
        let payload_release = schema_release.other();
        let text = schema(FLEET_TYPE, schema_release);
        for n in 1..=3 {
            for battery in [0.0, 1.0, 55.5, 100.0] {
                for action in ["", "a", "cleaning", "delivery Tür-Ω ✓"] {
                    let f = fleet(
                        n,
                        (payload_release == RmfRelease::Kilted).then_some(action),
                        battery,
                    );
                    let payload = typed::encode(&f, payload_release);
                    for preferred in RmfRelease::ALL {
                        let mut d =
                            decoder("/fleet_states", FLEET_TYPE, Some(&text), policy(preferred));
                        assert_eq!(d.release(), Some(schema_release));
                        let msg = both_fail(&mut d, &payload);
                        // The payload is recognised as the other layout, not misdecoded.
                        assert_eq!(
                            msg,
                            format!(
                                "topic /fleet_states (rmf_fleet_msgs/msg/FleetState): the message \
                                 has the {payload_release} layout, but this topic uses the \
                                 {schema_release} layout (configured, from its schema, or \
                                 detected from its earlier messages)"
                            )
                        );
                    }
                    assert!(typed::decode::<FleetState>(&payload, schema_release).is_err());
                }
            }
        }
    }
}

/// Schema-less (sqlite3 / live): the topic's layout is detected from the payloads; once detected
/// as one layout, a payload of the other is a ReleaseMismatch.
#[test]
fn schema_less_detected_layout_then_other_payload_is_release_mismatch() {
    for detected in RmfRelease::ALL {
        let other = detected.other();
        let first = typed::encode(
            &fleet(
                2,
                (detected == RmfRelease::Kilted).then_some("cleaning"),
                55.5,
            ),
            detected,
        );
        let second = typed::encode(
            &fleet(2, (other == RmfRelease::Kilted).then_some("cleaning"), 55.5),
            other,
        );
        for preferred in RmfRelease::ALL {
            let mut d = decoder("/fleet_states", FLEET_TYPE, None, policy(preferred));
            assert_eq!(d.release(), None);
            // An empty fleet fits both layouts and decides nothing.
            d.record(&typed::encode(&FleetState::default(), RmfRelease::Jazzy))
                .unwrap();
            assert_eq!(d.release(), None);
            d.record(&first).unwrap();
            assert_eq!(d.release(), Some(detected));
            let err = d.record(&second).unwrap_err();
            assert!(
                matches!(
                    err,
                    DecodeError::ReleaseMismatch { found, configured, .. } if found == other && configured == detected
                ),
                "{err:?}"
            );
            assert_eq!(
                err.to_string(),
                format!(
                    "topic /fleet_states (rmf_fleet_msgs/msg/FleetState): the message has the \
                     {other} layout, but this topic uses the {detected} layout (configured, from its schema, or detected from its \
                     earlier messages)"
                )
            );
            assert_eq!(both_fail(&mut d, &second), err.to_string());
            // The topic stays on its layout.
            d.record(&first).unwrap();
            assert_eq!(d.release(), Some(detected));
        }
    }
}

/// A strict policy (live link configured for one release) fixes the layout from the start.
#[test]
fn strict_policy_rejects_the_other_layout() {
    let strict = ReleasePolicy {
        preferred: RmfRelease::Jazzy,
        strict: true,
    };
    let kilted = typed::encode(&fleet(1, Some("x"), 50.0), RmfRelease::Kilted);
    let mut d = decoder("/fleet_states", FLEET_TYPE, None, strict);
    assert_eq!(d.release(), Some(RmfRelease::Jazzy));
    assert_eq!(
        both_fail(&mut d, &kilted),
        "topic /fleet_states (rmf_fleet_msgs/msg/FleetState): the message has the kilted layout, \
         but this topic uses the jazzy layout (configured, from its schema, or detected from its \
         earlier messages)"
    );
    let err = TopicDecoder::new(
        "/fleet_states",
        FLEET_TYPE,
        "cdr",
        Some(&schema(FLEET_TYPE, RmfRelease::Kilted)),
        strict,
    )
    .unwrap_err();
    assert!(
        matches!(err, DecodeError::ReleaseMismatch { .. }),
        "{err:?}"
    );
}

/// A payload that fits neither layout names both failures.
#[test]
fn schema_less_payload_fitting_no_layout() {
    let mut payload = typed::encode(&fleet(1, None, 50.0), RmfRelease::Jazzy);
    payload.truncate(payload.len() - 8);
    let mut d = decoder("/fleet_states", FLEET_TYPE, None, ReleasePolicy::default());
    let msg = both_fail(&mut d, &payload);
    assert_contains(
        &msg,
        &[
            "topic /fleet_states (rmf_fleet_msgs/msg/FleetState): the message fits no RMF layout (jazzy: ",
            "; kilted: ",
            "offset ",
        ],
    );
    assert_eq!(d.release(), None);
}

// ---------------------------------------------------------------------------------------------
// The binary on bad messages
// ---------------------------------------------------------------------------------------------

#[test]
fn dump_truncated_payload() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("truncated.mcap");
    write_mcap(
        &path,
        None,
        &[chan(
            "/door_states",
            DOOR_TYPE,
            schema(DOOR_TYPE, RmfRelease::Jazzy),
        )],
        &[(0, T0, truncated_door())],
    );
    let (code, stdout, stderr) = dump(&path, &[]);
    assert_eq!(code, 1, "stderr:\n{stderr}");
    assert_eq!(stdout, "");
    assert_contains(
        &stderr,
        &[
            TRUNCATED_DOOR_ERROR,
            &T0.to_string(),
            "1 messages could not be decoded",
        ],
    );
}

#[test]
fn dump_wrong_encapsulation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("encapsulation.mcap");
    let mut payload = typed::encode(&door("d", 1), RmfRelease::Jazzy);
    payload[1] = 0x03;
    write_mcap(
        &path,
        Some(mcap::Compression::Zstd),
        &[chan(
            "/door_states",
            DOOR_TYPE,
            schema(DOOR_TYPE, RmfRelease::Jazzy),
        )],
        &[(0, T0, payload)],
    );
    let (code, stdout, stderr) = dump(&path, &[]);
    assert_eq!(code, 1, "stderr:\n{stderr}");
    assert_eq!(stdout, "");
    assert_contains(
        &stderr,
        &[
            "topic /door_states (rmf_door_msgs/msg/DoorState): unsupported encapsulation representation 0x00 0x03",
        ],
    );
}

/// A topic whose schema does not parse: each of its messages is reported, other topics decode.
#[test]
fn dump_unparsable_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("schema.mcap");
    let broken =
        "builtin_interfaces/Time door_time\nuint32[ broken\nDoorMode current_mode\n".to_string();
    write_mcap(
        &path,
        None,
        &[
            chan("/door_states", DOOR_TYPE, broken),
            chan(
                "/other_doors",
                DOOR_TYPE,
                schema(DOOR_TYPE, RmfRelease::Jazzy),
            ),
        ],
        &[
            (0, T0, typed::encode(&door("a", 1), RmfRelease::Jazzy)),
            (1, T0 + 1, typed::encode(&door("b", 2), RmfRelease::Jazzy)),
            (0, T0 + 2, typed::encode(&door("c", 0), RmfRelease::Jazzy)),
        ],
    );
    let (code, stdout, stderr) = dump(&path, &[]);
    assert_eq!(code, 1, "stderr:\n{stderr}");
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    assert_eq!(lines[0]["topic"], "/other_doors");
    assert_eq!(lines[0]["message"]["door_name"], "b");
    assert_contains(
        &stderr,
        &[
            "topic /door_states (rmf_door_msgs/msg/DoorState): bad schema: ",
            "line 2:",
            "2 messages could not be decoded",
        ],
    );
}

#[test]
fn dump_fleet_payload_of_the_other_layout_than_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    for schema_release in RmfRelease::ALL {
        let payload_release = schema_release.other();
        let path = dir.path().join(format!("{schema_release}_schema.mcap"));
        let good = fleet(
            2,
            (schema_release == RmfRelease::Kilted).then_some("x"),
            50.0,
        );
        let bad = fleet(
            2,
            (payload_release == RmfRelease::Kilted).then_some(""),
            50.0,
        );
        write_mcap(
            &path,
            None,
            &[chan(
                "/fleet_states",
                "rmf_fleet_msgs/msg/FleetState",
                schema(FLEET_TYPE, schema_release),
            )],
            &[
                (0, T0, typed::encode(&good, schema_release)),
                (0, T0 + 1, typed::encode(&bad, payload_release)),
            ],
        );
        for release in ["jazzy", "kilted"] {
            let (code, stdout, stderr) = dump(&path, &["--rmf-release", release]);
            assert_eq!(code, 1, "stderr:\n{stderr}");
            assert_eq!(stdout.lines().count(), 1, "{stdout}");
            let line: Value = serde_json::from_str(stdout.trim()).unwrap();
            assert_eq!(
                line["message"],
                serde_json::from_str::<Value>(&serde_json::to_string(&good).unwrap()).unwrap()
            );
            assert_contains(
                &stderr,
                &[
                    "topic /fleet_states (rmf_fleet_msgs/msg/FleetState): ",
                    &format!(
                        "the message has the {payload_release} layout, but this topic uses the {schema_release} layout"
                    ),
                    &(T0 + 1).to_string(),
                ],
            );
        }
    }
}

/// A Humble-style db3 (no definitions): /fleet_states detected as kilted, then a jazzy payload.
#[test]
fn dump_db3_detected_kilted_then_jazzy_payload() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("humble.db3");
    let kilted = fleet(2, Some("cleaning"), 50.0);
    let jazzy = fleet(2, None, 50.0);
    write_db3(
        &path,
        &[("/fleet_states", FLEET_TYPE), ("/door_states", DOOR_TYPE)],
        &[
            (
                0,
                T0,
                typed::encode(&FleetState::default(), RmfRelease::Jazzy),
            ),
            (1, T0 + 1, typed::encode(&door("d", 2), RmfRelease::Jazzy)),
            (0, T0 + 2, typed::encode(&kilted, RmfRelease::Kilted)),
            (0, T0 + 3, typed::encode(&jazzy, RmfRelease::Jazzy)),
            (0, T0 + 4, typed::encode(&kilted, RmfRelease::Kilted)),
        ],
    );
    for extra in [
        &[][..],
        &["--rmf-release", "jazzy"],
        &["--rmf-release", "kilted"],
    ] {
        let (code, stdout, stderr) = dump(&path, extra);
        assert_eq!(code, 1, "{extra:?} stderr:\n{stderr}");
        let times: Vec<u64> = stdout
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["log_time"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert_eq!(times, [T0, T0 + 1, T0 + 2, T0 + 4], "{extra:?}");
        assert_contains(
            &stderr,
            &[
                "topic /fleet_states (rmf_fleet_msgs/msg/FleetState): the message has the jazzy layout",
                "kilted",
                &(T0 + 3).to_string(),
                "1 messages could not be decoded",
            ],
        );
    }
    let info = run(&["trace", "info", path.to_str().unwrap(), "--json"]);
    assert!(
        info.status.success(),
        "{}",
        String::from_utf8_lossy(&info.stderr)
    );
    let info: Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(info["layout"], "kilted");
    assert_eq!(info["storage"], "sqlite3");
}

/// One bad message among many: the good ones are printed (in order, intact), the bad one is
/// reported with topic, type, offset and log time, and the exit code is 1.
#[test]
fn dump_one_bad_message_among_many() {
    let dir = tempfile::tempdir().unwrap();
    for compression in [
        None,
        Some(mcap::Compression::Zstd),
        Some(mcap::Compression::Lz4),
    ] {
        let path = dir.path().join(format!("many_{compression:?}.mcap"));
        let bad = 7;
        let mut messages = Vec::new();
        let mut want = Vec::new();
        for i in 0..20u64 {
            let d = door(&format!("door_{i}"), (i % 5) as u32);
            let payload = if i == bad {
                truncated_door()
            } else {
                want.push((T0 + i * 1000, d.clone()));
                typed::encode(&d, RmfRelease::Jazzy)
            };
            messages.push((0, T0 + i * 1000, payload));
        }
        write_mcap(
            &path,
            compression,
            &[chan(
                "/door_states",
                DOOR_TYPE,
                schema(DOOR_TYPE, RmfRelease::Jazzy),
            )],
            &messages,
        );
        let (code, stdout, stderr) = dump(&path, &[]);
        assert_eq!(code, 1, "stderr:\n{stderr}");
        let got: Vec<Value> = stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(got.len(), want.len(), "{stdout}");
        for (g, (t, d)) in got.iter().zip(&want) {
            assert_eq!(g["log_time"], *t);
            assert_eq!(g["topic"], "/door_states");
            assert_eq!(g["type"], DOOR_TYPE);
            assert_eq!(g["message"], serde_json::to_value(d).unwrap());
        }
        let bad_time = (T0 + bad * 1000).to_string();
        assert_contains(
            &stderr,
            &[
                TRUNCATED_DOOR_ERROR,
                &bad_time,
                "1 messages could not be decoded",
                "; 19 written",
            ],
        );
        assert_eq!(stderr.matches("dropped").count(), 1, "{stderr}");
    }
}

// ---------------------------------------------------------------------------------------------
// Broken files
// ---------------------------------------------------------------------------------------------

/// The byte range of the (compressed) records of the file's first chunk.
fn chunk_data(bytes: &[u8]) -> std::ops::Range<usize> {
    let summary = mcap::Summary::read(bytes).unwrap().expect("a summary");
    assert_eq!(summary.chunk_indexes.len(), 1);
    let c = &summary.chunk_indexes[0];
    let start = c.compressed_data_offset().unwrap() as usize;
    start..start + c.compressed_size as usize
}

/// Flips bytes inside the chunk data of zstd-compressed and uncompressed files: `trace dump` and
/// `trace info` fail with an error naming the file and the chunk / CRC / MCAP, exit code 2.
#[test]
fn corrupt_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let messages: Vec<(usize, u64, Vec<u8>)> = (0..50u64)
        .map(|i| {
            (
                0,
                T0 + i,
                typed::encode(&door(&format!("door number {i}"), 1), RmfRelease::Jazzy),
            )
        })
        .collect();
    for compression in [
        None,
        Some(mcap::Compression::Zstd),
        Some(mcap::Compression::Lz4),
    ] {
        let clean = dir.path().join(format!("clean_{compression:?}.mcap"));
        write_mcap(
            &clean,
            compression,
            &[chan(
                "/door_states",
                DOOR_TYPE,
                schema(DOOR_TYPE, RmfRelease::Jazzy),
            )],
            &messages,
        );
        let bytes = std::fs::read(&clean).unwrap();
        let (code, stdout, stderr) = dump(&clean, &[]);
        assert_eq!((code, stdout.lines().count()), (0, 50), "{stderr}");
        let stdout = stdout.as_str();
        let range = chunk_data(&bytes);
        let len = range.len();
        let positions = [0, 1, 8, len / 3, len / 2, len - 20, len - 1];
        for (k, pos) in positions.into_iter().enumerate() {
            for mask in [0x01u8, 0xff] {
                let mut corrupt = bytes.clone();
                corrupt[range.start + pos] ^= mask;
                let path = dir
                    .path()
                    .join(format!("corrupt_{compression:?}_{k}_{mask}.mcap"));
                std::fs::write(&path, &corrupt).unwrap();
                let shown = path.display().to_string();
                let what = format!("{compression:?} chunk byte {pos}/{len} ^ {mask:#x}");
                let (code, out, stderr) = dump(&path, &[]);
                if code == 0
                    && matches!(compression, Some(mcap::Compression::Lz4))
                    && pos + 4 >= len
                {
                    // The last bytes of an LZ4 frame are its end mark, which the reader does not
                    // need once it has the chunk's uncompressed size (whose CRC it checks): the
                    // messages are intact.
                    assert_eq!(out, stdout, "{what}: exit 0 with different output");
                    continue;
                }
                assert_eq!(code, 2, "{what}: stderr:\n{stderr}");
                let error = stderr
                    .lines()
                    .find(|l| l.starts_with("error: "))
                    .unwrap_or_else(|| panic!("{what}: no error line in:\n{stderr}"));
                assert!(error.contains(&shown), "{what}: {error}");
                assert!(
                    error.contains("MCAP") && (error.contains("chunk") || error.contains("CRC")),
                    "{what}: {error}"
                );
                let info = run(&["trace", "info", &shown, "--json"]);
                let info_err = strip_ansi(&String::from_utf8_lossy(&info.stderr));
                assert_eq!(
                    info.status.code(),
                    Some(2),
                    "{what}: trace info:\n{info_err}"
                );
                assert_contains(&info_err, &[shown.as_str(), "MCAP"]);
                // The library reports it as an error item, never garbage or a panic.
                let rec = Recording::open(&path).unwrap();
                assert!(
                    rec.into_iter().any(|m| m.is_err()),
                    "{what}: Recording yields no error"
                );
            }
        }
    }
}

#[test]
fn missing_file() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["missing.mcap", "missing.db3", "missing_folder"] {
        let path = dir.path().join(name);
        let (code, stdout, stderr) = dump(&path, &[]);
        assert_eq!(code, 2, "stderr:\n{stderr}");
        assert_eq!(stdout, "");
        assert_eq!(
            stderr.trim_end(),
            format!("error: {}: no such file or directory", path.display())
        );
    }
}

/// Files that are neither MCAP nor sqlite3: an error naming the file, exit code 2, no output.
#[test]
fn not_a_recording() {
    let dir = tempfile::tempdir().unwrap();
    let mut mcap_garbage = mcap::MAGIC.to_vec();
    mcap_garbage.extend((0..200u32).map(|i| (i * 37 % 251) as u8));
    let mut mcap_both_magics = mcap::MAGIC.to_vec();
    mcap_both_magics.extend_from_slice(&[0u8; 40]);
    mcap_both_magics.extend_from_slice(mcap::MAGIC);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "text.mcap",
            b"hello, this is not a recording\n".to_vec(),
            "MCAP",
        ),
        (
            "text.bin",
            b"hello, this is not a recording either\n".to_vec(),
            "MCAP",
        ),
        ("empty.mcap", Vec::new(), "MCAP"),
        ("short", b"MCAP".to_vec(), "MCAP"),
        ("json.mcap", br#"{"log_time": 1}"#.to_vec(), "MCAP"),
        (
            "text.db3",
            b"hello, this is not a database\n".to_vec(),
            "sqlite3",
        ),
        ("garbage_after_magic.mcap", mcap_garbage, "MCAP"),
        ("zeros_between_magics.mcap", mcap_both_magics, "MCAP"),
    ];
    for (name, bytes, kind) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        let (code, stdout, stderr) = dump(&path, &[]);
        assert_eq!(code, 2, "{name}: stderr:\n{stderr}");
        assert_eq!(stdout, "", "{name}");
        let shown = path.display().to_string();
        assert!(
            stderr.starts_with(&format!("error: {shown}: {kind}")),
            "{name}: expected `error: {shown}: {kind}...`, got:\n{stderr}"
        );
    }
    // An sqlite3 database that is not a rosbag2 file.
    let path = dir.path().join("other.db3");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE t(x INTEGER); INSERT INTO t VALUES (1);")
        .unwrap();
    let (code, _, stderr) = dump(&path, &[]);
    assert_eq!(code, 2, "stderr:\n{stderr}");
    assert_contains(
        &stderr,
        &[&path.display().to_string(), "not a rosbag2 sqlite3 file"],
    );
}

/// A folder without recordings, and a rosbag2 folder whose metadata names a missing file.
#[test]
fn bad_folders() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let (code, _, stderr) = dump(&empty, &[]);
    assert_eq!(code, 2, "stderr:\n{stderr}");
    assert_contains(
        &stderr,
        &[&empty.display().to_string(), "no .mcap or .db3 file"],
    );

    let bag: PathBuf = dir.path().join("bag");
    std::fs::create_dir(&bag).unwrap();
    std::fs::write(
        bag.join("metadata.yaml"),
        "rosbag2_bagfile_information:\n  relative_file_paths:\n  - bag_0.mcap\n",
    )
    .unwrap();
    let (code, _, stderr) = dump(&bag, &[]);
    assert_eq!(code, 2, "stderr:\n{stderr}");
    assert_contains(
        &stderr,
        &[
            &bag.join("bag_0.mcap").display().to_string(),
            "no such file or directory",
        ],
    );
}
