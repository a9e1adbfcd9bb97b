//! `door_flapping`: a door that went through more than `cycles` open/close cycles within
//! `window_ms` of logical time.
//!
//! Input: the door state upserts, their modes only (a new sample with the same mode is no input).
//! A *cycle* is counted at the time a door reaches CLOSED after having been OPEN since it was last
//! CLOSED: one pass (CLOSED, MOVING, OPEN, MOVING, CLOSED) is one cycle, however many MOVING or
//! OFFLINE samples come between; raw mode changes are not counted. A door's first CLOSED sample
//! counts nothing.
//!
//! The door is *flapping* at `t` iff more than `cycles` (default 5) cycles were counted in
//! `(t - window_ms, t]` (default 300 000 ms): from the time of the cycle that makes `cycles + 1`
//! until the oldest of the last `cycles + 1` cycles leaves the window (a timer, decided after the
//! inputs of that time); a new cycle meanwhile extends it. `cycles = 0` flaps at every cycle for
//! `window_ms`.
//!
//! Room `/doors/{name}/flapping` (state), value `{"door_name", "since", "cycles", "window_ms"}`:
//! `since` is the time it started flapping; the value does not change while present.
//! Config `[derived.door_flapping]`: `cycles`, `window_ms`. The lookback is `window_ms`.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::*;
use crate::model::ros::DoorMode;
use crate::ops::keyed::{Ctx, KeyedLogic, KeyedProcess};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Flapping above this many cycles in the window.
    pub cycles: u32,
    /// The window of logical time the cycles are counted in.
    pub window_ms: Time,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            cycles: 5,
            window_ms: 300_000,
        }
    }
}

impl Section for Config {
    fn lookback_ms(&self) -> Time {
        self.window_ms
    }
}

/// `[derived.door_flapping]`.
pub(super) const CONFIG: Typed<Config> = Typed::new("door_flapping");

pub const DESCRIPTOR: Descriptor = Descriptor {
    name: "door_flapping",
    room: "/doors/{name}/flapping",
    kind: RoomKind::State,
    persistence: Persistence::History,
    inputs: &["doors"],
    config: CONFIG.spec(),
    robot: None,
    build,
};

/// A door's recent cycles and whether it has been OPEN since it was last CLOSED.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct State {
    opened: bool,
    /// The times of the last `cycles + 1` cycles at most, oldest first.
    cycles: VecDeque<Time>,
    /// Since when it is flapping.
    since: Option<Time>,
}

struct Logic {
    config: Config,
}

impl Logic {
    /// The time the oldest of the last `cycles + 1` cycles leaves the window, when there are
    /// that many.
    fn until(&self, s: &State) -> Option<Time> {
        let needed = self.config.cycles as usize + 1;
        (s.cycles.len() == needed)
            .then(|| {
                s.cycles
                    .front()
                    .map(|c| c.saturating_add(self.config.window_ms))
            })
            .flatten()
    }

    /// Decides whether it flaps at `ctx.t`, and sets the timer at which that ends.
    fn refresh(&self, s: &mut State, ctx: &mut Ctx<Output>) {
        match self.until(s).filter(|&until| ctx.t < until) {
            Some(until) => {
                s.since.get_or_insert(ctx.t);
                ctx.set_timer(until);
            }
            None => {
                s.since = None;
                ctx.clear_timer();
            }
        }
    }
}

impl KeyedLogic for Logic {
    type Key = Name;
    type In = i64;
    type Out = Output;
    type State = State;

    fn input(&self, s: &mut State, _door: &Name, mode: &i64, ctx: &mut Ctx<Output>) {
        if *mode == i64::from(DoorMode::MODE_OPEN) {
            s.opened = true;
        } else if *mode == i64::from(DoorMode::MODE_CLOSED) && s.opened {
            s.opened = false;
            s.cycles.push_back(ctx.t);
            if s.cycles.len() > self.config.cycles as usize + 1 {
                s.cycles.pop_front();
            }
        }
        self.refresh(s, ctx);
    }

    fn timer(&self, s: &mut State, _door: &Name, ctx: &mut Ctx<Output>) {
        self.refresh(s, ctx);
    }

    fn output(&self, s: &State, door: &Name, out: &mut Vec<Output>) {
        if let Some(since) = s.since {
            out.push(Output::json(
                room(DESCRIPTOR.room, &[door]),
                &json!({
                    "door_name": door,
                    "since": since,
                    "cycles": self.config.cycles,
                    "window_ms": self.config.window_ms,
                }),
            ));
        }
    }

    /// A door with no cycle in memory that is not open is forgotten.
    fn keep(&self, s: &State) -> bool {
        s.opened || !s.cycles.is_empty()
    }
}

fn door_flapping<'s>(doors: Coll<'s, (Name, DeviceSample)>, config: &Config) -> Coll<'s, Output> {
    doors.map(|(name, s)| (name, s.mode)).keyed_process(
        "DoorFlapping",
        Logic {
            config: config.clone(),
        },
    )
}

fn build<'s>(inputs: &Inputs<'s>, config: &super::Config) -> Coll<'s, Output> {
    door_flapping(inputs.doors.clone(), &config.get(&CONFIG))
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

    fn sample(mode: i64, stamp: Time) -> DeviceSample {
        DeviceSample {
            mode,
            payload: Payload::of(&json!({"current_mode": {"value": mode}, "door_time": stamp})),
        }
    }

    fn flapping(door: &str, since: Time, config: &Config) -> Output {
        Output::json(
            format!("/doors/{door}/flapping"),
            &json!({"door_name": door, "since": since, "cycles": config.cycles,
                "window_ms": config.window_ms}),
        )
    }

    fn run(workers: usize, h: History, config: &Config, until: Time) -> Vec<(Output, Time, Diff)> {
        let c = config.clone();
        run_upsert(workers, h, until, move |d| door_flapping(d, &c))
    }

    /// `passes` full passes (CLOSED, MOVING, OPEN, MOVING) of door `d`, one every `every` ms
    /// from `from`, then CLOSED.
    fn passes(from: Time, passes: u64, every: Time) -> History {
        let mut h = Vec::new();
        for i in 0..passes {
            let t = from + i * every;
            for (dt, mode) in [(0, CLOSED), (1, MOVING), (2, OPEN), (3, MOVING)] {
                h.push(("d".into(), sample(mode, t + dt), t + dt));
            }
        }
        let end = from + passes * every;
        h.push(("d".into(), sample(CLOSED, end), end));
        h
    }

    #[test]
    fn one_pass_is_one_cycle_and_six_in_the_window_flap() {
        let config = Config {
            cycles: 5,
            window_ms: 1000,
        };
        // Six passes, one every 100 ms: the sixth cycle is counted at 600 (the first at 100).
        let out = run(1, passes(0, 6, 100), &config, 5000);
        assert_eq!(
            out,
            vec![
                (flapping("d", 600, &config), 600, 1),
                // The cycle of 100 leaves (t - 1000, t] at 1100.
                (flapping("d", 600, &config), 1100, -1),
            ]
        );
        // Five passes are not more than five cycles.
        assert_eq!(run(1, passes(0, 5, 100), &config, 5000), vec![]);
        // Six passes spread over more than the window never flap.
        assert_eq!(run(1, passes(0, 6, 250), &config, 5000), vec![]);
    }

    #[test]
    fn raw_mode_changes_are_not_cycles() {
        let config = Config {
            cycles: 1,
            window_ms: 1000,
        };
        // OPEN, MOVING, OFFLINE and OPEN again without CLOSED: no cycle at all.
        let mut h: History = Vec::new();
        for (i, mode) in [OPEN, MOVING, OFFLINE, OPEN, MOVING, OPEN]
            .into_iter()
            .enumerate()
        {
            let t = 10 * i as Time;
            h.push(("d".into(), sample(mode, t), t));
        }
        assert_eq!(run(1, h, &config, 2000), vec![]);
    }

    #[test]
    fn a_configured_threshold_changes_when_it_fires_and_workers_agree() {
        let config = Config {
            cycles: 2,
            window_ms: 500,
        };
        let h = passes(0, 4, 100);
        let one = run(1, h.clone(), &config, 2000);
        assert_eq!(
            one,
            vec![
                (flapping("d", 300, &config), 300, 1),
                // Cycles at 100..400: the last three from 200 keep it until 200 + 500.
                (flapping("d", 300, &config), 700, -1),
            ]
        );
        assert_eq!(one, run(3, h, &config, 2000));
    }

    #[test]
    fn a_site_section_sets_the_threshold() {
        use crate::derived::builders::door;
        let steps: Vec<_> = (0..3)
            .flat_map(|i| {
                [
                    door("d", OPEN, 100 * i + 10),
                    door("d", CLOSED, 100 * i + 50),
                ]
            })
            .collect();
        let run = |sections: serde_json::Value| {
            let config = super::super::Config::from_sections(&sections).unwrap_or_default();
            run_upsert(1, steps.clone(), 1000, move |c| {
                build(&Inputs::split(c), &config)
            })
        };
        // Defaults: 3 cycles are not more than 5.
        assert_eq!(run(json!({})), vec![]);
        let site = Config {
            cycles: 2,
            window_ms: 500,
        };
        assert_eq!(
            run(json!({"door_flapping": {"cycles": 2, "window_ms": 500}})),
            vec![
                (flapping("d", 250, &site), 250, 1),
                (flapping("d", 250, &site), 550, -1),
            ]
        );
    }

    /// Brute force: the cycle times of a door from its samples, then the condition at `t`.
    fn reference(config: &Config, past: &[(Name, DeviceSample, Time)], t: Time) -> Vec<Output> {
        let mut doors: Vec<&Name> = past.iter().map(|(n, _, _)| n).collect();
        doors.sort();
        doors.dedup();
        let mut out = Vec::new();
        for door in doors {
            let mut opened = false;
            let mut cycles = Vec::new();
            let mut last = None;
            for (_, s, st) in past.iter().filter(|(n, _, _)| n == door) {
                if last == Some(s.mode) {
                    continue;
                }
                last = Some(s.mode);
                if s.mode == OPEN {
                    opened = true;
                } else if s.mode == CLOSED && opened {
                    opened = false;
                    cycles.push(*st);
                }
            }
            let in_window = |at: Time| {
                cycles
                    .iter()
                    .filter(|&&c| c <= at && c + config.window_ms > at)
                    .count()
            };
            let flaps = |at: Time| in_window(at) > config.cycles as usize;
            if flaps(t) {
                // Since: the earliest time of the present run of flapping (checked per ms).
                let since = (0..=t).rev().take_while(|&a| flaps(a)).last().unwrap_or(t);
                out.push(flapping(door, since, config));
            }
        }
        out
    }

    fn histories() -> impl Strategy<Value = History> {
        let mode = prop_oneof![
            3 => Just(OPEN),
            3 => Just(CLOSED),
            2 => Just(MOVING),
            1 => Just(OFFLINE),
        ];
        let step = (
            prop::sample::select(&["a", "b"][..]),
            mode,
            prop::sample::select(&[0u64, 10, 20, 30][..]),
        );
        prop::collection::vec(step, 1..30).prop_map(|steps| {
            let mut t = 0;
            let mut h: History = Vec::new();
            for (door, mode, dt) in steps {
                t += dt;
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
            cycles in 0u32..3,
            window_ms in prop::sample::select(&[10u64, 50, 100][..]),
        ) {
            let config = Config { cycles, window_ms };
            let until = h.last().map_or(0, |(_, _, t)| *t) + 150;
            let expected = reference::states(&h, until, 10, |past, t| reference(&config, past, t));
            prop_assert_eq!(&run(1, h.clone(), &config, until), &expected);
            prop_assert_eq!(&run(2, h, &config, until), &expected);
        }
    }
}
