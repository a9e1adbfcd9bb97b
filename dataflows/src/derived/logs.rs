//! `task_log` and `fleet_log`: the new entries of each task log and fleet (robot) log, as live
//! streams, each entry delivered once however often the fleet adapter re-sends it.
//!
//! Fleet adapters re-send every accumulated task log after each websocket reconnect (RMF.md
//! section 5), so a log input is not "new entries": it is de-duplicated here, per key (task id or
//! fleet name) and stream (`""`: the task's own log, `<phase>`: a phase's log, `<phase>/<event>`:
//! an event's log, or the robot name of a fleet log), by seq. The highest seq admitted per stream
//! is kept; an entry is new iff its seq comes after it in serial-number arithmetic (seq is a
//! `u32` that wraps: new iff `(seq - max) as i32 > 0`); the first entry of a stream is always
//! new. Entries are taken in the order of the batch (adapters send them in seq order); several
//! batches of one key in the same tick are taken in value order (the keyed-process rule, so the
//! arrival order does not matter), identical ones as one.
//!
//! Inputs: `task_logs` and `fleet_logs` (appended, +1 only). Each input batch with new entries
//! emits one record with only those entries (nothing for a batch of re-sent entries):
//!
//! - room `/tasks/{id}/log`, value `{task_id, log: [entry], phases: {<phase>: {log: [entry],
//!   events: {<event>: [entry]}}}}` (phases without new entries omitted, phases and events in
//!   name order);
//! - room `/fleets/{name}/log`, value `{name, log: [], robots: {<robot>: [entry]}}`;
//!
//! with `entry = {seq, tier, unix_millis_time, text}` (the task_log / fleet_log delta of
//! COMPAT.md).
//!
//! Memory is bounded by `retention_ms` (default 3_600_000, one hour): a key's dedupe state is
//! forgotten when no input arrived for it for that long (any input, re-sends included, restarts
//! the wait; an input exactly `retention_ms` after the previous one still finds the state). A
//! re-send arriving after a longer silence is therefore emitted again, entries and all.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
use serde_json::{Value, json};

use super::*;
use crate::ops::keyed::{Ctx, KeyedLogic, KeyedProcess};

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// A key's dedupe state is forgotten after this long without input for it.
    pub retention_ms: Time,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            retention_ms: 3_600_000,
        }
    }
}

impl Section for Config {
    fn lookback_ms(&self) -> Time {
        self.retention_ms
    }
}

/// `[derived.logs]`, read by both log events.
const CONFIG: Typed<Config> = Typed::new("logs");

/// Whether `seq` comes after `max` in serial-number arithmetic (seq wraps at `u32::MAX`).
pub fn seq_after(seq: u32, max: u32) -> bool {
    (seq.wrapping_sub(max) as i32) > 0
}

/// The JSON of a log entry.
fn entry_json(e: &LogEntry) -> Value {
    json!({
        "seq": e.seq,
        "tier": e.tier,
        "unix_millis_time": e.unix_millis_time,
        "text": e.text,
    })
}

/// The `/tasks/{id}/log` value of a task's entries (in batch order within each stream).
fn task_log_value(task_id: &str, entries: &[(Name, LogEntry)]) -> Value {
    type Phase<'a> = (Vec<Value>, BTreeMap<&'a str, Vec<Value>>);
    let mut log = Vec::new();
    let mut phases: BTreeMap<&str, Phase> = BTreeMap::new();
    for (stream, e) in entries {
        match stream.split_once('/') {
            None if stream.is_empty() => log.push(entry_json(e)),
            None => phases.entry(stream).or_default().0.push(entry_json(e)),
            Some((phase, event)) => phases
                .entry(phase)
                .or_default()
                .1
                .entry(event)
                .or_default()
                .push(entry_json(e)),
        }
    }
    let phases: serde_json::Map<String, Value> = phases
        .into_iter()
        .map(|(id, (log, events))| (id.to_string(), json!({"log": log, "events": events})))
        .collect();
    json!({"task_id": task_id, "log": log, "phases": phases})
}

/// The `/fleets/{name}/log` value of a fleet's entries (stream = robot name).
fn fleet_log_value(fleet: &str, entries: &[(Name, LogEntry)]) -> Value {
    let mut robots: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for (robot, e) in entries {
        robots.entry(robot).or_default().push(entry_json(e));
    }
    json!({"name": fleet, "log": [], "robots": robots})
}

/// Which log a keyed process de-duplicates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Log {
    Task,
    Fleet,
}

impl Log {
    const fn room(self) -> &'static str {
        match self {
            Log::Task => "/tasks/{id}/log",
            Log::Fleet => "/fleets/{name}/log",
        }
    }

    fn output(self, key: &str, entries: &[(Name, LogEntry)]) -> Output {
        let value = match self {
            Log::Task => task_log_value(key, entries),
            Log::Fleet => fleet_log_value(key, entries),
        };
        Output::json(room(self.room(), &[key]), &value)
    }
}

/// The highest seq admitted per stream of a key.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Seen {
    max: HashMap<Name, u32>,
}

impl Seen {
    /// Whether an entry is new; if so it becomes the stream's highest.
    fn admit(&mut self, stream: &Name, seq: u32) -> bool {
        match self.max.get_mut(stream) {
            Some(max) if !seq_after(seq, *max) => false,
            Some(max) => {
                *max = seq;
                true
            }
            None => {
                self.max.insert(stream.clone(), seq);
                true
            }
        }
    }
}

struct Dedupe {
    log: Log,
    retention: Time,
}

impl KeyedLogic for Dedupe {
    type Key = Name;
    type In = LogBatch;
    type Out = Output;
    type State = Seen;

    fn input(&self, seen: &mut Seen, key: &Name, batch: &LogBatch, ctx: &mut Ctx<Output>) {
        let batch = batch.clone();
        ctx.set_timer(ctx.t + self.retention);
        let fresh: Vec<(Name, LogEntry)> = batch
            .entries
            .into_iter()
            .filter(|(stream, e)| seen.admit(stream, e.seq))
            .collect();
        if !fresh.is_empty() {
            ctx.emit(self.log.output(key, &fresh));
        }
    }

    /// Retention is over: the key is forgotten (its state is not kept once its timer is gone).
    fn timer(&self, seen: &mut Seen, _key: &Name, _ctx: &mut Ctx<Output>) {
        seen.max.clear();
    }

    fn keep(&self, _seen: &Seen) -> bool {
        false
    }
}

fn build<'s>(logs: Coll<'s, (Name, LogBatch)>, log: Log, config: &Config) -> Coll<'s, Output> {
    let name = match log {
        Log::Task => "TaskLog",
        Log::Fleet => "FleetLog",
    };
    logs.keyed_process(
        name,
        Dedupe {
            log,
            retention: config.retention_ms,
        },
    )
}

fn task_log<'s>(i: &Inputs<'s>, c: &super::Config) -> Coll<'s, Output> {
    build(i.task_logs.clone(), Log::Task, &c.get(&CONFIG))
}

fn fleet_log<'s>(i: &Inputs<'s>, c: &super::Config) -> Coll<'s, Output> {
    build(i.fleet_logs.clone(), Log::Fleet, &c.get(&CONFIG))
}

pub const TASK_LOG: Descriptor = Descriptor {
    name: "task_log",
    room: Log::Task.room(),
    kind: RoomKind::Stream,
    // Its records are kept entry by entry in the store's `task_log` table (not twice).
    persistence: Persistence::Latest,
    inputs: &["task_logs"],
    config: CONFIG.spec(),
    robot: None,
    build: task_log,
};

pub const FLEET_LOG: Descriptor = Descriptor {
    name: "fleet_log",
    room: Log::Fleet.room(),
    kind: RoomKind::Stream,
    // Its records are kept entry by entry in the store's `fleet_log` table (not twice).
    persistence: Persistence::Latest,
    inputs: &["fleet_logs"],
    config: CONFIG.spec(),
    robot: None,
    build: fleet_log,
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::run_upsert;
    use proptest::prelude::*;

    fn entry(seq: u32) -> LogEntry {
        LogEntry {
            seq,
            tier: if seq % 7 == 3 { "error" } else { "info" }.into(),
            unix_millis_time: u64::from(seq) * 1000,
            text: format!("e{seq}"),
        }
    }

    fn batch(entries: &[(&str, u32)]) -> LogBatch {
        LogBatch {
            entries: entries
                .iter()
                .map(|(s, seq)| (Name::from(*s), entry(*seq)))
                .collect(),
        }
    }

    /// The JSON of `entry(seq)`, written out.
    fn e(seq: u32) -> Value {
        json!({
            "seq": seq,
            "tier": if seq % 7 == 3 { "error" } else { "info" },
            "unix_millis_time": u64::from(seq) * 1000,
            "text": format!("e{seq}"),
        })
    }

    fn task(id: &str, value: Value) -> Output {
        Output::json(format!("/tasks/{id}/log"), &value)
    }

    fn own(id: &str, seqs: &[u32]) -> Output {
        let log: Vec<Value> = seqs.iter().map(|s| e(*s)).collect();
        task(id, json!({"task_id": id, "log": log, "phases": {}}))
    }

    fn fleet(name: &str, robots: Value) -> Output {
        Output::json(
            format!("/fleets/{name}/log"),
            &json!({"name": name, "log": [], "robots": robots}),
        )
    }

    type History = Vec<(Name, LogBatch, Time)>;

    fn history(inputs: &[(&str, &[(&str, u32)], Time)]) -> History {
        inputs
            .iter()
            .map(|(k, entries, t)| (Name::from(*k), batch(entries), *t))
            .collect()
    }

    /// Runs on log batches appended as the engine does (+1 only, never retracted): each batch
    /// is its own upsert key, so a re-sent batch is a new input.
    fn run(
        workers: usize,
        log: Log,
        inputs: History,
        retention_ms: Time,
        until: Time,
    ) -> Vec<(Output, Time, Diff)> {
        let appended = inputs
            .into_iter()
            .enumerate()
            .map(|(i, (k, b, t))| ((k, i), b, t))
            .collect();
        run_upsert(workers, appended, until, move |c| {
            build(c.map(|((k, _), b)| (k, b)), log, &Config { retention_ms })
        })
    }

    #[test]
    fn serial_number_order_wraps() {
        assert!(seq_after(1, 0));
        assert!(!seq_after(0, 0));
        assert!(!seq_after(0, 1));
        assert!(seq_after(0, u32::MAX));
        assert!(seq_after(5, u32::MAX - 5));
        assert!(!seq_after(u32::MAX, 0));
        assert!(seq_after(1 << 30, 0));
        // Exactly half the space apart is not "after" either way.
        assert!(!seq_after(1 << 31, 0));
        assert!(!seq_after(0, 1 << 31));
    }

    #[test]
    fn re_sent_entries_are_emitted_once() {
        // The adapter re-sends its accumulated log after reconnecting at 30 and 40.
        let inputs = history(&[
            ("t", &[("", 0), ("", 1)], 10),
            ("t", &[("", 2)], 20),
            ("t", &[("", 0), ("", 1), ("", 2), ("", 3)], 30),
            ("t", &[("", 0), ("", 1), ("", 2), ("", 3)], 40),
        ]);
        let out = run(1, Log::Task, inputs, 1000, 100);
        assert_eq!(
            out,
            vec![
                (own("t", &[0, 1]), 10, 1),
                (own("t", &[2]), 20, 1),
                (own("t", &[3]), 30, 1),
            ]
        );
    }

    #[test]
    fn phases_and_events_are_separate_streams() {
        // Every stream starts at seq 0; the second batch re-sends all and adds to two of them.
        let first: &[(&str, u32)] = &[("", 0), ("1", 0), ("1/0", 0), ("1/1", 0), ("2/3", 0)];
        let second: &[(&str, u32)] = &[
            ("", 0),
            ("1", 0),
            ("1/0", 0),
            ("1/0", 1),
            ("1/1", 0),
            ("2/3", 0),
            ("2", 0),
        ];
        let inputs = history(&[("t", first, 10), ("t", second, 20)]);
        let out = run(1, Log::Task, inputs, 1000, 100);
        let all = task(
            "t",
            json!({
                "task_id": "t",
                "log": [e(0)],
                "phases": {
                    "1": {"log": [e(0)], "events": {"0": [e(0)], "1": [e(0)]}},
                    "2": {"log": [], "events": {"3": [e(0)]}},
                },
            }),
        );
        let new = task(
            "t",
            json!({
                "task_id": "t",
                "log": [],
                "phases": {
                    "1": {"log": [], "events": {"0": [e(1)]}},
                    "2": {"log": [e(0)], "events": {}},
                },
            }),
        );
        assert_eq!(out, vec![(all, 10, 1), (new, 20, 1)]);
    }

    #[test]
    fn a_stream_joining_late_and_seq_wrapping() {
        // The task's log is heard first at seq MAX-1 (earlier entries never seen): new. It wraps
        // to 0 and 1; a re-send of MAX after the wrap is old.
        let max = u32::MAX;
        let inputs = history(&[
            ("t", &[("", max - 1), ("", max)], 10),
            ("t", &[("", max), ("", 0), ("", 1)], 20),
            ("t", &[("", max)], 30),
            ("t", &[("", 2)], 40),
        ]);
        let out = run(1, Log::Task, inputs, 1000, 100);
        assert_eq!(
            out,
            vec![
                (own("t", &[max - 1, max]), 10, 1),
                (own("t", &[0, 1]), 20, 1),
                (own("t", &[2]), 40, 1),
            ]
        );
    }

    #[test]
    fn seqs_flapping_around_the_highest() {
        // 5 is admitted; 4 (below) is dropped, 6 admitted, 5 and 4 dropped, 7 admitted.
        let inputs = history(&[
            ("t", &[("", 5)], 10),
            ("t", &[("", 4)], 20),
            ("t", &[("", 6), ("", 5)], 30),
            ("t", &[("", 4), ("", 7), ("", 6)], 40),
        ]);
        let out = run(1, Log::Task, inputs, 1000, 100);
        assert_eq!(
            out,
            vec![
                (own("t", &[5]), 10, 1),
                (own("t", &[6]), 30, 1),
                (own("t", &[7]), 40, 1),
            ]
        );
    }

    #[test]
    fn batches_of_one_tick_are_taken_in_value_order() {
        // Seq 1 arrives before seq 0 in the same tick: taken 0 first, both are new (in arrival
        // order 0 would have come after 1, and been dropped). The same batch twice is one.
        let inputs = history(&[
            ("t", &[("", 1)], 10),
            ("t", &[("", 0)], 10),
            ("t", &[("", 1)], 10),
            ("t", &[("", 0), ("", 1)], 20),
        ]);
        let out = run(1, Log::Task, inputs.clone(), 1000, 100);
        assert_eq!(out, vec![(own("t", &[0]), 10, 1), (own("t", &[1]), 10, 1)]);
        assert_eq!(out, run(3, Log::Task, inputs, 1000, 100));
    }

    #[test]
    fn state_is_forgotten_after_retention_without_input() {
        // Retention 100: the re-send at 110 (exactly 100 after 10) still finds the state and
        // restarts the wait; the one at 220 (110 after 110) does not, and is emitted again.
        let inputs = history(&[
            ("t", &[("", 0), ("", 1)], 10),
            ("t", &[("", 0), ("", 1)], 110),
            ("t", &[("", 0), ("", 1)], 220),
            ("t", &[("", 0), ("", 1), ("", 2)], 230),
        ]);
        let out = run(1, Log::Task, inputs, 100, 400);
        assert_eq!(
            out,
            vec![
                (own("t", &[0, 1]), 10, 1),
                (own("t", &[0, 1]), 220, 1),
                (own("t", &[2]), 230, 1),
            ]
        );
    }

    #[test]
    fn several_fleets_late_robots_and_workers_agree() {
        let inputs = history(&[
            ("f1", &[("r1", 0), ("r2", 10)], 10),
            ("f2", &[("r1", 3)], 10),
            ("f1", &[("r1", 0), ("r1", 1), ("r2", 10)], 20),
            // A robot of f2 appears late; an empty batch emits nothing.
            ("f2", &[("r3", 100), ("r1", 3)], 50),
            ("f1", &[], 60),
        ]);
        let one = run(1, Log::Fleet, inputs.clone(), 1000, 100);
        assert_eq!(
            one,
            vec![
                (fleet("f1", json!({"r1": [e(0)], "r2": [e(10)]})), 10, 1),
                (fleet("f2", json!({"r1": [e(3)]})), 10, 1),
                (fleet("f1", json!({"r1": [e(1)]})), 20, 1),
                (fleet("f2", json!({"r3": [e(100)]})), 50, 1),
            ]
        );
        assert_eq!(one, run(3, Log::Fleet, inputs, 1000, 100));
    }

    /// Brute force: replays the whole history up to `t` entry by entry and returns the records
    /// of the batches at exactly `t`. A key's memory (the last admitted seq per stream) starts
    /// over when its previous batch is more than `retention` before.
    fn reference(
        log: Log,
        retention: Time,
        history: &[(Name, LogBatch, Time)],
        t: Time,
    ) -> Vec<Output> {
        let mut memory: Vec<(Name, Time, Vec<(Name, u32)>)> = Vec::new();
        let mut out = Vec::new();
        for (key, batch, bt) in history {
            let idx = match memory.iter().position(|(k, _, _)| k == key) {
                Some(i) => i,
                None => {
                    memory.push((key.clone(), *bt, Vec::new()));
                    memory.len() - 1
                }
            };
            let (_, last, streams) = &mut memory[idx];
            if *bt > *last + retention {
                streams.clear();
            }
            *last = *bt;
            let mut fresh = Vec::new();
            for (stream, entry) in &batch.entries {
                let previous = streams.iter_mut().find(|(s, _)| s == stream);
                let is_new = match previous {
                    None => {
                        streams.push((stream.clone(), entry.seq));
                        true
                    }
                    Some((_, max)) => {
                        // After in the circle of u32: the forward distance is under half of it.
                        let forward = entry.seq.wrapping_sub(*max);
                        let new = forward != 0 && forward < (1 << 31);
                        if new {
                            *max = entry.seq;
                        }
                        new
                    }
                };
                if is_new {
                    fresh.push((stream.clone(), entry.clone()));
                }
            }
            if *bt == t && !fresh.is_empty() {
                out.push(log.output(key, &fresh));
            }
        }
        out
    }

    fn seq() -> impl Strategy<Value = u32> {
        prop_oneof![
            0u32..4,
            Just(u32::MAX),
            Just(u32::MAX - 1),
            Just(1u32 << 31),
            Just((1u32 << 31) + 1),
        ]
    }

    fn histories(streams: &'static [&'static str]) -> impl Strategy<Value = History> {
        let batch = prop::collection::vec((prop::sample::select(streams), seq()), 0..5);
        let step = (
            prop::sample::select(&["a", "b", "c"][..]),
            batch,
            prop::sample::select(&[0u64, 10, 20, 50, 60][..]),
        );
        prop::collection::vec(step, 1..16).prop_map(|steps| {
            let mut t = 0;
            steps
                .into_iter()
                .map(|(k, entries, dt)| {
                    t += dt;
                    let entries = entries
                        .into_iter()
                        .map(|(s, seq)| (Name::from(s), entry(seq)))
                        .collect();
                    (Name::from(k), LogBatch { entries }, t)
                })
                .collect()
        })
    }

    fn check(log: Log, h: History) -> Result<(), TestCaseError> {
        let retention = 50;
        let until = h.last().map_or(0, |(_, _, t)| *t) + 100;
        // Appended batches: the distinct ones of each key and tick, in value order.
        let handled = reference::keyed_inputs(h.clone());
        let expected = reference::streams(&handled, until, 10, |past, t| {
            reference(log, retention, past, t)
        });
        prop_assert_eq!(&run(1, log, h.clone(), retention, until), &expected);
        prop_assert_eq!(&run(2, log, h, retention, until), &expected);
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn task_logs_match_the_brute_force_reference(h in histories(&["", "1", "1/2", "2"])) {
            check(Log::Task, h)?;
        }

        #[test]
        fn fleet_logs_match_the_brute_force_reference(h in histories(&["r1", "r2"])) {
            check(Log::Fleet, h)?;
        }
    }
}
