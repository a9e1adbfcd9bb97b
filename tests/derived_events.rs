//! Every situation injected into a generated recording produces its derived event at the right
//! logical time (within one tick), and nothing else fires.
//!
//! The expected times are computed here from the recording itself (`trace dump`), by the
//! definitions of the events, independently of the dataflows: the generator's manifest says what
//! was injected on which entity, the published messages say when each condition became true.

use std::collections::BTreeMap;

use serde_json::Value;

mod common;
use common::bin;

const TICK: u64 = 10;

fn run(args: &[&str]) -> String {
    let out = bin().args(args).output().expect("run rmf-dash");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Logical time of a receive time (ns): ms rounded up to the tick.
fn tick(ns: u64) -> u64 {
    ns.div_ceil(1_000_000).div_ceil(TICK) * TICK
}

/// One robot observation from either source.
#[derive(Debug, Clone)]
struct Sample {
    t: u64,
    mode: Option<u64>,
    status: Option<String>,
    battery: Option<f64>,
    pos: Option<(f64, f64, String)>,
}

struct Recording {
    /// Door or lift name -> (log time ns, mode).
    devices: BTreeMap<String, Vec<(u64, u64)>>,
    /// "fleet/robot" -> samples in time order.
    robots: BTreeMap<String, Vec<Sample>>,
}

fn load(path: &str) -> Recording {
    let dump = run(&["trace", "dump", path]);
    let mut rec = Recording {
        devices: BTreeMap::new(),
        robots: BTreeMap::new(),
    };
    for line in dump.lines() {
        let v: Value = serde_json::from_str(line).expect("dump line");
        let t = v["log_time"].as_u64().expect("log_time");
        let m = &v["message"];
        match v["topic"].as_str().unwrap_or_default() {
            "/door_states" => rec
                .devices
                .entry(m["door_name"].as_str().unwrap_or_default().into())
                .or_default()
                .push((t, m["current_mode"]["value"].as_u64().unwrap_or(0))),
            "/lift_states" => rec
                .devices
                .entry(m["lift_name"].as_str().unwrap_or_default().into())
                .or_default()
                .push((t, m["current_mode"].as_u64().unwrap_or(0))),
            "/fleet_states" => {
                let fleet = m["name"].as_str().unwrap_or_default();
                for r in m["robots"].as_array().into_iter().flatten() {
                    let name = format!("{fleet}/{}", r["name"].as_str().unwrap_or_default());
                    rec.robots.entry(name).or_default().push(Sample {
                        t: tick(t),
                        mode: r["mode"]["mode"].as_u64(),
                        status: None,
                        battery: r["battery_percent"].as_f64().map(|b| b / 100.0),
                        pos: Some((
                            r["location"]["x"].as_f64().unwrap_or(0.0),
                            r["location"]["y"].as_f64().unwrap_or(0.0),
                            r["location"]["level_name"]
                                .as_str()
                                .unwrap_or_default()
                                .into(),
                        )),
                    });
                }
            }
            "/fleet_state_update" => {
                let frame: Value =
                    serde_json::from_str(m["data"].as_str().unwrap_or("{}")).expect("frame");
                let data = &frame["data"];
                let fleet = data["name"].as_str().unwrap_or_default();
                for (robot, r) in data["robots"].as_object().into_iter().flatten() {
                    rec.robots
                        .entry(format!("{fleet}/{robot}"))
                        .or_default()
                        .push(Sample {
                            t: tick(t),
                            mode: None,
                            status: r["status"].as_str().map(str::to_string),
                            battery: r["battery"].as_f64(),
                            pos: Some((
                                r["location"]["x"].as_f64().unwrap_or(0.0),
                                r["location"]["y"].as_f64().unwrap_or(0.0),
                                r["location"]["map"].as_str().unwrap_or_default().into(),
                            )),
                        });
                }
            }
            _ => {}
        }
    }
    rec
}

/// The output changes of the replay: (time, room, diff, value).
fn outputs(path: &str) -> Vec<(u64, String, i64, Value)> {
    parse(&run(&["replay", path, "--no-db", "--emit", "jsonl"]))
}

fn parse(jsonl: &str) -> Vec<(u64, String, i64, Value)> {
    jsonl
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("jsonl");
            (
                v["time"].as_u64().expect("time"),
                v["room"].as_str().expect("room").to_string(),
                v["diff"].as_i64().expect("diff"),
                v["value"].clone(),
            )
        })
        .collect()
}

/// Times at which `room` gained (+1) or lost (-1) a record whose value satisfies `f`.
fn changes(
    out: &[(u64, String, i64, Value)],
    room: &str,
    f: impl Fn(&Value) -> bool,
) -> Vec<(u64, i64)> {
    out.iter()
        .filter(|(_, r, _, v)| r == room && f(v))
        .map(|(t, _, d, _)| (*t, *d))
        .collect()
}

fn status(v: &Value) -> &str {
    v["health_status"].as_str().unwrap_or_default()
}

fn assert_near(what: &str, actual: Option<u64>, expected: u64) {
    let a = actual.unwrap_or_else(|| panic!("{what}: no event, expected at {expected}"));
    assert!(
        a.abs_diff(expected) <= TICK,
        "{what}: at {a}, expected {expected} (within one tick)"
    );
}

#[test]
fn injected_situations_fire_at_the_right_time_and_nothing_else_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("hotel.mcap");
    let path = path.to_str().expect("path");
    run(&[
        "trace",
        "gen",
        "--preset",
        "hotel",
        "--duration",
        "300s",
        "--seed",
        "11",
        "--scenario",
        "all",
        "--no-ws",
        "-o",
        path,
    ]);
    let info: Value = serde_json::from_str(&run(&["trace", "info", "--json", path])).expect("info");
    let rec = load(path);
    let out = outputs(path);
    let mut injected_rooms: Vec<String> = Vec::new();
    let mut held_open = Vec::new();
    let scenarios: Vec<&Value> = info["metadata"]
        .as_object()
        .expect("metadata")
        .iter()
        .filter(|(k, _)| k.starts_with("rmf_dash.scenario."))
        .map(|(_, v)| v)
        .collect();
    assert_eq!(scenarios.len(), 7, "every scenario was injected");
    let ns = |v: &Value, k: &str| {
        v[k].as_str()
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{k} in {v}"))
    };
    for s in &scenarios {
        let kind = s["kind"].as_str().expect("kind");
        let entity = s["entity"].as_str().expect("entity");
        match kind {
            "door-held-open" => {
                let room = format!("/doors/{entity}/held_open");
                let c = changes(&out, &room, |_| true);
                assert_near(
                    "held open starts",
                    c.first().filter(|c| c.1 == 1).map(|c| c.0),
                    tick(ns(s, "since_ns")) + 60_000,
                );
                assert_near(
                    "held open ends",
                    c.get(1).filter(|c| c.1 == -1).map(|c| c.0),
                    tick(ns(s, "until_ns")),
                );
                assert_eq!(c.len(), 2, "{room}: {c:?}");
                held_open.push((room.clone(), tick(ns(s, "since_ns"))));
                injected_rooms.push(room);
            }
            "door-silent" | "lift-silent" => {
                let kind = if kind == "door-silent" {
                    "doors"
                } else {
                    "lifts"
                };
                let room = format!("/{kind}/{entity}/health");
                let dead = changes(&out, &room, |v| status(v) == "Dead");
                assert_near(
                    "dead",
                    dead.first().map(|c| c.0),
                    tick(ns(s, "last_heard_ns")) + 10_000,
                );
                assert_near(
                    "alive again",
                    dead.get(1).filter(|c| c.1 == -1).map(|c| c.0),
                    tick(ns(s, "until_ns")),
                );
                injected_rooms.push(room);
            }
            "lift-fire" => {
                let room = format!("/lifts/{entity}/health");
                let fire = changes(&out, &room, |v| status(v) == "Unhealthy");
                assert_near("fire", fire.first().map(|c| c.0), tick(ns(s, "since_ns")));
                assert_near(
                    "fire ends",
                    fire.get(1).filter(|c| c.1 == -1).map(|c| c.0),
                    tick(ns(s, "until_ns")),
                );
                injected_rooms.push(room);
            }
            "adapter-error" => {
                let samples = &rec.robots[entity];
                let start = tick(ns(s, "start_ns"));
                let bad = |x: &Sample| x.mode == Some(8) || x.status.as_deref() == Some("error");
                let first_bad = samples
                    .iter()
                    .find(|x| x.t >= start && bad(x))
                    .map(|x| x.t)
                    .expect("error samples");
                let room = format!("/robots/{entity}/health");
                let unhealthy = changes(&out, &room, |v| status(v) == "Unhealthy");
                assert_near("adapter error", unhealthy.first().map(|c| c.0), first_bad);
                injected_rooms.push(room);
            }
            "battery-low" => {
                let samples = &rec.robots[entity];
                // The below-20 % run that the hold confirms: its first sample.
                let mut run_start = None;
                let mut confirmed = None;
                for x in samples.iter().filter(|x| x.battery.is_some()) {
                    let b = x.battery.unwrap_or(1.0);
                    match (run_start, b < 0.2) {
                        (None, true) => run_start = Some(x.t),
                        (Some(_), false) if confirmed.is_none() => run_start = None,
                        _ => {}
                    }
                    if let Some(r) = run_start
                        && confirmed.is_none()
                        && x.t >= r + 30_000
                    {
                        confirmed = Some(r + 30_000);
                    }
                }
                let clear = samples
                    .iter()
                    .find(|x| {
                        confirmed.is_some_and(|c| x.t > c) && x.battery.is_some_and(|b| b > 0.25)
                    })
                    .map(|x| x.t)
                    .expect("battery recovers");
                let room = format!("/robots/{entity}/battery_low");
                let c = changes(&out, &room, |_| true);
                assert_near(
                    "battery low",
                    c.first().filter(|c| c.1 == 1).map(|c| c.0),
                    confirmed.expect("confirmed"),
                );
                assert_near(
                    "battery recovered",
                    c.get(1).filter(|c| c.1 == -1).map(|c| c.0),
                    clear,
                );
                injected_rooms.push(room);
            }
            "robot-stuck" => {
                let samples = &rec.robots[entity];
                // Anchor rule: within 0.2 m of where it stopped, while working; inputs of a
                // time before the timer of that time.
                let mut anchor: Option<(f64, f64, String, u64)> = None;
                let mut working_since: Option<u64> = None;
                let mut stuck_at = None;
                let due = |a: &Option<(f64, f64, String, u64)>, w: Option<u64>| {
                    Some(w?.max(a.as_ref()?.3) + 60_000)
                };
                for x in samples {
                    if let Some(d) = due(&anchor, working_since)
                        && d < x.t
                    {
                        stuck_at = Some(d);
                        break;
                    }
                    if let Some(st) = &x.status {
                        working_since = if st == "working" {
                            working_since.or(Some(x.t))
                        } else {
                            None
                        };
                    }
                    if let Some((px, py, level)) = &x.pos {
                        let moved = anchor.as_ref().is_none_or(|(ax, ay, al, _)| {
                            al != level || ((px - ax).powi(2) + (py - ay).powi(2)).sqrt() > 0.2
                        });
                        if moved {
                            anchor = Some((*px, *py, level.clone(), x.t));
                        }
                    }
                    if let Some(d) = due(&anchor, working_since)
                        && d <= x.t
                    {
                        stuck_at = Some(d);
                        break;
                    }
                }
                let room = format!("/robots/{entity}/stuck");
                let c = changes(&out, &room, |_| true);
                assert_near(
                    "stuck",
                    c.first().filter(|c| c.1 == 1).map(|c| c.0),
                    stuck_at.expect("stuck by the definition"),
                );
                injected_rooms.push(room);
            }
            other => panic!("unexpected scenario {other}"),
        }
    }
    // Nothing else fires: no other condition record, no other unhealthy or dead entity.
    for (t, room, diff, v) in &out {
        let condition = room.ends_with("/held_open")
            || room.ends_with("/flapping")
            || room.ends_with("/stuck")
            || room.ends_with("/battery_low");
        let unwell = room.ends_with("/health") && status(v) != "Healthy";
        if (condition || unwell) && *diff == 1 {
            assert!(
                injected_rooms.contains(room),
                "unexpected {room} at {t}: {v}"
            );
        }
    }

    // A site file sets the threshold (and the replay's flags): the door is held open 20 s after
    // it opened, not 60.
    assert!(!held_open.is_empty());
    let site = dir.path().join("site.toml");
    std::fs::write(
        &site,
        "[replay]\nno-db = true\nemit = \"jsonl\"\n\n[derived.door_held_open]\nopen_ms = 20000\n",
    )
    .expect("site file");
    let configured = parse(&run(&[
        "replay",
        path,
        "--config",
        site.to_str().expect("path"),
    ]));
    for (room, since) in &held_open {
        let c = changes(&configured, room, |_| true);
        assert_near(
            "held open with open_ms = 20000",
            c.first().filter(|c| c.1 == 1).map(|c| c.0),
            since + 20_000,
        );
    }
}
