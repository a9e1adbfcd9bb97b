//! `door_held_open`: a door whose state has said OPEN continuously for at least `open_ms`.
//!
//! Input: the door state upserts (`DeviceSample::mode` is the `DoorMode` value). A run starts at
//! the first OPEN sample after any other mode (or the first sample of the door); any non-OPEN
//! sample (CLOSED, MOVING, OFFLINE, UNKNOWN) ends it. The door is held open from
//! `run start + open_ms` — a timer, so it is confirmed even when no sample arrives meanwhile —
//! until the first non-OPEN sample. A non-OPEN sample at exactly `run start + open_ms` ends the
//! run before it is confirmed (the inputs of a time come before its timers); with `open_ms = 0`
//! the first OPEN sample confirms at once. (The run is an `ops::debounce::Debounce` per door; it
//! is fed the modes only, so a new sample with an unchanged mode is no input at all, which is
//! the same: a repeated mode neither starts nor ends a run, and a due run is confirmed by its
//! timer.)
//!
//! Room `/doors/{name}/held_open` (state), value `{"door_name", "since"}`: `since` is the run
//! start (logical ms). Config `[derived.door_held_open]`: `open_ms` (default 60000).
//!
//! The lookback is `open_ms`, but `since` can be older (a door open for hours): a
//! restore that replays only the lookback sees the run start at the first replayed OPEN sample.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::*;
use crate::model::ros::DoorMode;
use crate::ops::debounce::Debounce;
use crate::ops::keyed::{Ctx, KeyedLogic, KeyedProcess};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// How long a door must stay OPEN to be held open.
    pub open_ms: Time,
}

impl Default for Config {
    fn default() -> Self {
        Config { open_ms: 60_000 }
    }
}

impl Section for Config {
    fn lookback_ms(&self) -> Time {
        self.open_ms
    }
}

/// `[derived.door_held_open]`.
pub(super) const CONFIG: Typed<Config> = Typed::new("door_held_open");

pub const DESCRIPTOR: Descriptor = Descriptor {
    name: "door_held_open",
    room: "/doors/{name}/held_open",
    kind: RoomKind::State,
    persistence: Persistence::History,
    inputs: &["doors"],
    config: CONFIG.spec(),
    robot: None,
    build,
};

/// The `DoorHeldOpen` record of a door.
fn held_open(door: &str, since: Time) -> Output {
    Output::json(
        room(DESCRIPTOR.room, &[door]),
        &json!({"door_name": door, "since": since}),
    )
}

fn is_open(mode: i64) -> bool {
    mode == i64::from(DoorMode::MODE_OPEN)
}

struct Logic {
    open_ms: Time,
}

impl KeyedLogic for Logic {
    type Key = Name;
    type In = i64;
    type Out = Output;
    /// The door's OPEN run; created at its first sample.
    type State = Option<Debounce>;

    fn input(&self, run: &mut Option<Debounce>, _door: &Name, mode: &i64, ctx: &mut Ctx<Output>) {
        let mode = *mode;
        let run = run.get_or_insert_with(|| Debounce::new(self.open_ms));
        run.update(ctx.t, is_open(mode));
        match run.deadline() {
            Some(at) => ctx.set_timer(at),
            None => ctx.clear_timer(),
        }
    }

    fn timer(&self, run: &mut Option<Debounce>, _door: &Name, ctx: &mut Ctx<Output>) {
        if let Some(run) = run {
            run.timer(ctx.t);
        }
    }

    fn output(&self, run: &Option<Debounce>, door: &Name, out: &mut Vec<Output>) {
        if let Some(run) = run
            && run.is_active()
            && let Some(since) = run.since()
        {
            out.push(held_open(door, since));
        }
    }

    /// A door that is not OPEN is forgotten.
    fn keep(&self, run: &Option<Debounce>) -> bool {
        run.as_ref().is_some_and(|r| r.since().is_some())
    }
}

fn door_held_open<'s>(doors: Coll<'s, (Name, DeviceSample)>, config: &Config) -> Coll<'s, Output> {
    doors.map(|(name, s)| (name, s.mode)).keyed_process(
        "DoorHeldOpen",
        Logic {
            open_ms: config.open_ms,
        },
    )
}

fn build<'s>(inputs: &Inputs<'s>, config: &super::Config) -> Coll<'s, Output> {
    door_held_open(inputs.doors.clone(), &config.get(&CONFIG))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::derived::reference;
    use crate::harness::run_upsert;

    const CLOSED: i64 = DoorMode::MODE_CLOSED as i64;
    const MOVING: i64 = DoorMode::MODE_MOVING as i64;
    const OPEN: i64 = DoorMode::MODE_OPEN as i64;
    const OFFLINE: i64 = DoorMode::MODE_OFFLINE as i64;

    type History = Vec<(Name, DeviceSample, Time)>;

    /// A door state: its mode and its own stamp (`door_time`), which makes every message differ.
    fn sample(mode: i64, stamp: Time) -> DeviceSample {
        DeviceSample {
            mode,
            payload: Payload::of(&json!({"current_mode": {"value": mode}, "door_time": stamp})),
        }
    }

    fn history(steps: &[(&str, i64, Time)]) -> History {
        steps
            .iter()
            .map(|&(n, m, t)| (Name::from(n), sample(m, t), t))
            .collect()
    }

    fn run(workers: usize, h: History, open_ms: Time, until: Time) -> Vec<(Output, Time, Diff)> {
        run_upsert(workers, h, until, move |c| {
            door_held_open(c, &Config { open_ms })
        })
    }

    #[test]
    fn config_defaults_and_refuses_unknown_fields() -> Result<(), serde_json::Error> {
        let c: Config = serde_json::from_value(json!({}))?;
        assert_eq!(c.open_ms, 60_000);
        let c: Config = serde_json::from_value(json!({"open_ms": 5}))?;
        assert_eq!(c.open_ms, 5);
        assert!(serde_json::from_value::<Config>(json!({"open": 5})).is_err());
        Ok(())
    }

    #[test]
    fn held_open_at_the_deadline_without_samples_until_it_closes() {
        // OPEN at 1000 and never heard again until CLOSED at 90000: held from 61000 exactly.
        let out = run(
            1,
            history(&[("d", OPEN, 1000), ("d", CLOSED, 90000)]),
            60_000,
            100_000,
        );
        assert_eq!(
            out,
            vec![
                (held_open("d", 1000), 61000, 1),
                (held_open("d", 1000), 90000, -1)
            ]
        );
    }

    #[test]
    fn closing_exactly_at_the_deadline_is_not_held_open() {
        // A gap exactly the window long: closed at 61000 ends the run before its timer; an
        // OPEN sample at the deadline of the next run keeps it (the run started at 62000).
        let out = run(
            1,
            history(&[
                ("d", OPEN, 1000),
                ("d", CLOSED, 61000),
                ("d", OPEN, 62000),
                ("d", OPEN, 122_000),
            ]),
            60_000,
            200_000,
        );
        assert_eq!(out, vec![(held_open("d", 62000), 122_000, 1)]);
    }

    #[test]
    fn flapping_modes_restart_the_run() {
        // Every non-OPEN mode (MOVING, OFFLINE, CLOSED) restarts the 100 ms wait.
        let out = run(
            1,
            history(&[
                ("d", OPEN, 0),
                ("d", MOVING, 90),
                ("d", OPEN, 100),
                ("d", OFFLINE, 190),
                ("d", OPEN, 200),
                ("d", OPEN, 250),
                ("d", CLOSED, 350),
                ("d", OPEN, 360),
            ]),
            100,
            1000,
        );
        assert_eq!(
            out,
            vec![
                (held_open("d", 200), 300, 1),
                (held_open("d", 200), 350, -1),
                (held_open("d", 360), 460, 1),
            ]
        );
    }

    #[test]
    fn zero_window_holds_at_the_first_open_sample() {
        let out = run(
            1,
            history(&[
                ("d", CLOSED, 10),
                ("d", OPEN, 20),
                ("d", OPEN, 30),
                ("d", MOVING, 40),
            ]),
            0,
            100,
        );
        assert_eq!(
            out,
            vec![(held_open("d", 20), 20, 1), (held_open("d", 20), 40, -1)]
        );
    }

    #[test]
    fn several_doors_a_late_one_and_workers_agree() {
        let h = history(&[
            ("a", OPEN, 0),
            ("b", CLOSED, 0),
            ("a", OPEN, 50),
            ("b", OPEN, 60),
            ("c", OPEN, 500),
            ("a", CLOSED, 600),
        ]);
        let one = run(1, h.clone(), 100, 1000);
        assert_eq!(
            one,
            vec![
                (held_open("a", 0), 100, 1),
                (held_open("b", 60), 160, 1),
                (held_open("a", 0), 600, -1),
                (held_open("c", 500), 600, 1),
            ]
        );
        assert_eq!(one, run(3, h, 100, 1000));
    }

    /// Brute force: a door is held open at `t` when its samples from some OPEN sample at `s`
    /// up to `t` are all OPEN, the sample before `s` (if any) is not, and `t >= s + open_ms`.
    fn reference(open_ms: Time, past: &[(Name, DeviceSample, Time)], t: Time) -> Vec<Output> {
        let mut doors: Vec<&Name> = past.iter().map(|(n, _, _)| n).collect();
        doors.sort();
        doors.dedup();
        let mut out = Vec::new();
        for door in doors {
            let samples: Vec<(i64, Time)> = past
                .iter()
                .filter(|(n, _, _)| n == door)
                .map(|(_, s, st)| (s.mode, *st))
                .collect();
            let open_tail = samples
                .iter()
                .rev()
                .take_while(|(mode, _)| *mode == OPEN)
                .last();
            if let Some(&(_, since)) = open_tail
                && t >= since + open_ms
            {
                out.push(held_open(door, since));
            }
        }
        out
    }

    fn histories() -> impl Strategy<Value = History> {
        let mode = prop_oneof![
            4 => Just(OPEN),
            1 => Just(CLOSED),
            1 => Just(MOVING),
            1 => Just(OFFLINE),
        ];
        let step = (
            prop::sample::select(&["a", "b", "c"][..]),
            mode,
            prop::sample::select(&[0u64, 10, 20, 30, 50][..]),
        );
        prop::collection::vec(step, 1..24).prop_map(|steps| {
            let mut t = 0;
            let mut h: History = Vec::new();
            for (door, mode, dt) in steps {
                t += dt;
                // One sample per door and time (an upsert keeps the last one).
                h.retain(|(n, _, st)| !(n == door && *st == t));
                h.push((Name::from(door), sample(mode, t), t));
            }
            h
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn matches_the_brute_force_reference(
            h in histories(),
            open_ms in prop::sample::select(&[0u64, 30, 50, 100][..]),
        ) {
            let until = h.last().map_or(0, |(_, _, t)| *t) + 150;
            let expected = reference::states(&h, until, 10, |past, t| reference(open_ms, past, t));
            prop_assert_eq!(&run(1, h.clone(), open_ms, until), &expected);
            prop_assert_eq!(&run(2, h, open_ms, until), &expected);
        }
    }
}
