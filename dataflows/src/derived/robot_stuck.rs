//! `robot_stuck`: a working robot that stayed within 0.2 m of where it stopped for 60 s.
//!
//! Inputs: the robot samples of both sources, keyed `fleet/robot`. Exactly:
//! - *working*: the robot's latest fleet-adapter sample has status `working`; `working_since` is
//!   the logical time of the adapter sample where it became working (reset when a later adapter
//!   sample has another status, or none). ROS samples do not change it.
//! - *anchor* `(x, y, level, time)`: on each sample of either source, if there is no anchor yet,
//!   or the sample's level differs from the anchor's, or its position is more than `distance_m`
//!   (default 0.2) from the anchor's (Euclidean, on the same level), the anchor becomes
//!   `(this position, t)`; otherwise it stays. Samples with a non-finite coordinate do not move
//!   it. Small moves therefore never reset the anchor unless they add up to more than
//!   `distance_m` from it (no creeping away in steps).
//! - *stuck* at `t` iff working and `t >= since + window_ms` (default 60 000), where
//!   `since = max(anchor time, working_since)`: it stayed within 0.2 m of where it stopped for
//!   60 s while working. It is decided at exactly that time (a timer), after the inputs of that
//!   time; it ends at the first sample that moves the anchor or ends working. A robot that stops
//!   reporting while working stays stuck: no data is no movement.
//!
//! Only logical (receive) time orders samples; the messages' own stamps are not used (a sample
//! re-sent verbatim is a duplicate, not a new sample; the two sources' samples of one tick are
//! taken ROS first, the keyed-process value order). An adapter sample without a location (NaN)
//! updates *working* but not the anchor. Room
//! `/robots/{fleet}/{robot}/stuck`, value `{fleet, robot, since, x, y, level}` (the anchor's
//! position), present while stuck; it does not change while present.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::*;
#[cfg(test)]
use crate::ops::keyed::KeyedProcess;
use crate::ops::keyed::{Ctx, KeyedLogic};
use crate::ops::parts::Part;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// How long a working robot must stay near its anchor to be stuck.
    pub window_ms: Time,
    /// How far (m) from its anchor a robot must move to count as moving.
    pub distance_m: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            window_ms: 60_000,
            distance_m: 0.2,
        }
    }
}

impl Section for Config {
    fn lookback_ms(&self) -> Time {
        self.window_ms
    }
}

/// `[derived.robot_stuck]`.
const CONFIG: Typed<Config> = Typed::new("robot_stuck");

pub const DESCRIPTOR: Descriptor = Descriptor {
    name: "robot_stuck",
    room: "/robots/{fleet}/{robot}/stuck",
    kind: RoomKind::State,
    persistence: Persistence::History,
    inputs: &["robots"],
    config: CONFIG.spec(),
    robot: Some(part),
    build,
};

/// Where the robot stopped, and since when.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Anchor {
    x: f64,
    y: f64,
    level: Name,
    t: Time,
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct State {
    working_since: Option<Time>,
    anchor: Option<Anchor>,
    stuck: bool,
}

impl State {
    /// Since when it has been working without moving.
    fn since(&self) -> Option<Time> {
        Some(self.anchor.as_ref()?.t.max(self.working_since?))
    }
}

pub(super) struct Logic {
    config: Config,
}

impl Logic {
    /// Decides `stuck` at `ctx.t` and sets the timer at which it would become stuck.
    fn refresh(&self, s: &mut State, ctx: &mut Ctx<Output>) {
        let at = s
            .since()
            .map(|since| since.saturating_add(self.config.window_ms));
        s.stuck = at.is_some_and(|at| ctx.t >= at);
        match at {
            Some(at) if !s.stuck => ctx.set_timer(at),
            _ => ctx.clear_timer(),
        }
    }
}

impl KeyedLogic for Logic {
    type Key = Name;
    type In = RobotSample;
    type Out = Output;
    type State = State;

    fn input(&self, s: &mut State, _key: &Name, sample: &RobotSample, ctx: &mut Ctx<Output>) {
        let t = ctx.t;
        if sample.source == RobotSource::Api {
            if sample.status == Some(RobotStatus::Working) {
                s.working_since.get_or_insert(t);
            } else {
                s.working_since = None;
            }
        }
        let (x, y) = (sample.x.0, sample.y.0);
        let moved = |a: &Anchor| {
            a.level != sample.level || (x - a.x).hypot(y - a.y) > self.config.distance_m
        };
        if x.is_finite() && y.is_finite() && s.anchor.as_ref().is_none_or(moved) {
            s.anchor = Some(Anchor {
                x,
                y,
                level: sample.level.clone(),
                t,
            });
        }
        self.refresh(s, ctx);
    }

    fn timer(&self, s: &mut State, _key: &Name, ctx: &mut Ctx<Output>) {
        self.refresh(s, ctx);
    }

    fn output(&self, s: &State, key: &Name, out: &mut Vec<Output>) {
        if !s.stuck {
            return;
        }
        let (Some(since), Some(anchor)) = (s.since(), &s.anchor) else {
            return;
        };
        let (fleet, robot) = split_robot(key);
        out.push(Output::json(
            room(DESCRIPTOR.room, &[&fleet, &robot]),
            &json!({
                "fleet": fleet,
                "robot": robot,
                "since": since,
                "x": anchor.x,
                "y": anchor.y,
                "level": anchor.level,
            }),
        ));
    }
}

pub(super) fn logic(config: &Config) -> Logic {
    Logic {
        config: config.clone(),
    }
}

#[cfg(test)]
fn dataflow<'s>(robots: Coll<'s, (Name, RobotSample)>, config: &Config) -> Coll<'s, Output> {
    robots.keyed_process("RobotStuck", logic(config))
}

/// Its logic, in the shared robot operator.
fn part(config: &super::Config) -> Box<dyn Part<Name, RobotSample, Output>> {
    crate::ops::parts::part(logic(&config.get(&CONFIG)))
}

fn build<'s>(inputs: &Inputs<'s>, config: &super::Config) -> Coll<'s, Output> {
    robot_part(inputs, config, DESCRIPTOR.name)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::derived::reference;
    use crate::harness::run_upsert;

    fn ros(x: f64, y: f64, level: &str) -> RobotSample {
        RobotSample {
            source: RobotSource::Ros,
            status: None,
            mode: Some(2),
            stamp: 0,
            battery: Some(F64(0.5)),
            x: F64(x),
            y: F64(y),
            level: level.into(),
            task_id: Name::default(),
            issues: Vec::new(),
        }
    }

    fn api(status: Option<RobotStatus>, x: f64, y: f64, level: &str) -> RobotSample {
        RobotSample {
            source: RobotSource::Api,
            status,
            mode: None,
            ..ros(x, y, level)
        }
    }

    fn working(x: f64, y: f64) -> RobotSample {
        api(Some(RobotStatus::Working), x, y, "L1")
    }

    fn idle(x: f64, y: f64) -> RobotSample {
        api(Some(RobotStatus::Idle), x, y, "L1")
    }

    fn at(x: f64, y: f64) -> RobotSample {
        ros(x, y, "L1")
    }

    fn stuck(key: &str, since: Time, x: f64, y: f64, level: &str) -> Output {
        let (fleet, robot) = split_robot(key);
        Output::json(
            format!("/robots/{fleet}/{robot}/stuck"),
            &json!({"fleet": fleet, "robot": robot, "since": since, "x": x, "y": y, "level": level}),
        )
    }

    type History = Vec<(Name, RobotSample, Time)>;

    /// Runs on samples as given, each source of a robot its own upsert (as in the engine, where
    /// the input key is the kind `Robot(source)` and the robot).
    fn run_history(
        workers: usize,
        history: &History,
        config: Config,
        until: Time,
    ) -> Vec<(Output, Time, Diff)> {
        let inputs = history
            .iter()
            .map(|(k, s, t)| ((k.clone(), s.source), s.clone(), *t))
            .collect();
        run_upsert(workers, inputs, until, move |c| {
            dataflow(c.map(|((k, _), s)| (k, s)), &config)
        })
    }

    /// Runs on new messages: each sample is stamped with its logical time.
    fn run(
        workers: usize,
        inputs: Vec<(&str, RobotSample, Time)>,
        config: Config,
        until: Time,
    ) -> Vec<(Output, Time, Diff)> {
        let history: History = inputs
            .into_iter()
            .map(|(k, s, t)| (Name::from(k), RobotSample { stamp: t, ..s }, t))
            .collect();
        run_history(workers, &history, config, until)
    }

    fn run_default(
        inputs: Vec<(&str, RobotSample, Time)>,
        until: Time,
    ) -> Vec<(Output, Time, Diff)> {
        run(1, inputs, Config::default(), until)
    }

    #[test]
    fn stuck_after_the_window_near_its_anchor_and_clears_when_it_moves() {
        let out = run_default(
            vec![
                ("f/r", working(1.0, 1.0), 0),
                // Jitter within 0.2 m of the anchor keeps it.
                ("f/r", at(1.1, 1.1), 10000),
                ("f/r", at(0.9, 1.0), 20000),
                ("f/r", working(1.0, 1.2), 50000),
                ("f/r", at(1.05, 0.95), 70000),
                // More than 0.2 m from the anchor: it moves.
                ("f/r", at(1.3, 1.0), 80000),
            ],
            200000,
        );
        assert_eq!(
            out,
            vec![
                (stuck("f/r", 0, 1.0, 1.0, "L1"), 60000, 1),
                (stuck("f/r", 0, 1.0, 1.0, "L1"), 80000, -1),
                // Not moving again from (1.3, 1.0) at 80000, still working, no more samples.
                (stuck("f/r", 80000, 1.3, 1.0, "L1"), 140000, 1),
            ]
        );
    }

    #[test]
    fn small_steps_move_the_anchor_only_once_they_add_up_beyond_the_distance() {
        let out = run_default(
            vec![
                ("f/r", working(0.0, 0.0), 0),
                ("f/r", at(0.1, 0.0), 20000),
                // Exactly 0.2 m away: not more than the distance, the anchor stays.
                ("f/r", at(0.2, 0.0), 40000),
                ("f/r", at(0.25, 0.0), 61000),
            ],
            200000,
        );
        assert_eq!(
            out,
            vec![
                (stuck("f/r", 0, 0.0, 0.0, "L1"), 60000, 1),
                (stuck("f/r", 0, 0.0, 0.0, "L1"), 61000, -1),
                (stuck("f/r", 61000, 0.25, 0.0, "L1"), 121000, 1),
            ]
        );
    }

    #[test]
    fn the_window_starts_when_it_becomes_working_if_it_stopped_before() {
        let out = run_default(
            vec![
                ("f/r", idle(3.0, 4.0), 0),
                ("f/r", at(3.0, 4.0), 5000),
                ("f/r", working(3.0, 4.0), 10000),
                // Staying working does not move working_since.
                ("f/r", working(3.0, 4.0), 20000),
            ],
            100000,
        );
        assert_eq!(out, vec![(stuck("f/r", 10000, 3.0, 4.0, "L1"), 70000, 1)]);
    }

    #[test]
    fn ending_work_clears_it_and_a_level_change_moves_the_anchor() {
        let out = run_default(
            vec![
                ("f/r", working(1.0, 1.0), 0),
                // ROS samples say nothing about working.
                ("f/r", at(1.0, 1.0), 65000),
                ("f/r", idle(1.0, 1.0), 70000),
                ("f/r", working(1.0, 1.0), 80000),
                // Same coordinates on another level (a lift ride): it moved.
                ("f/r", ros(1.0, 1.0, "L2"), 100000),
            ],
            200000,
        );
        assert_eq!(
            out,
            vec![
                (stuck("f/r", 0, 1.0, 1.0, "L1"), 60000, 1),
                (stuck("f/r", 0, 1.0, 1.0, "L1"), 70000, -1),
                (stuck("f/r", 100000, 1.0, 1.0, "L2"), 160000, 1),
            ]
        );
    }

    #[test]
    fn a_robot_that_stops_reporting_while_working_stays_stuck() {
        // No data is no movement: the last sample is at 1000, it stays stuck to the end.
        let out = run_default(
            vec![("f/r", working(2.0, 2.0), 0), ("f/r", at(2.0, 2.0), 1000)],
            1_000_000,
        );
        assert_eq!(out, vec![(stuck("f/r", 0, 2.0, 2.0, "L1"), 60000, 1)]);
    }

    #[test]
    fn a_sample_exactly_at_the_window_edge_is_handled_before_the_timer() {
        // Moving at exactly 60000: never stuck at 60000, the window restarts.
        let out = run_default(
            vec![("f/r", working(0.0, 0.0), 0), ("f/r", at(1.0, 0.0), 60000)],
            100000,
        );
        assert_eq!(out, vec![]);
        // Ending work at exactly 60000: never stuck.
        let out = run_default(
            vec![
                ("f/r", working(0.0, 0.0), 0),
                ("f/r", idle(0.0, 0.0), 60000),
            ],
            200000,
        );
        assert_eq!(out, vec![]);
        // Not moving at exactly 60000: stuck then.
        let out = run_default(
            vec![("f/r", working(0.0, 0.0), 0), ("f/r", at(0.1, 0.0), 60000)],
            100000,
        );
        assert_eq!(out, vec![(stuck("f/r", 0, 0.0, 0.0, "L1"), 60000, 1)]);
    }

    #[test]
    fn only_logical_time_orders_samples_not_message_stamps() {
        // Stamps are data: each sample is taken at its logical (receive) time. A fleet-adapter
        // message stamped 900, before the ROS sample of 1000, but received at 1010 is the
        // latest: its position (back at the origin) moves the anchor at 1010.
        let stamped = |s: RobotSample, stamp| RobotSample { stamp, ..s };
        let history = vec![
            (Name::from("f/r"), stamped(working(0.0, 0.0), 0), 0),
            (Name::from("f/r"), stamped(at(5.0, 0.0), 1000), 1000),
            (Name::from("f/r"), stamped(working(0.0, 0.0), 900), 1010),
        ];
        let out = run_history(1, &history, Config::default(), 100000);
        assert_eq!(out, vec![(stuck("f/r", 1010, 0.0, 0.0, "L1"), 61010, 1)]);
    }

    #[test]
    fn both_sources_in_one_tick_are_taken_ros_first_whatever_the_arrival_order() {
        // ROS at (5, 0) and Api at the origin in the same tick: the Api sample, taken last,
        // sets the anchor.
        let ros_first = vec![("f/r", at(5.0, 0.0), 0), ("f/r", working(0.0, 0.0), 0)];
        let api_first = vec![("f/r", working(0.0, 0.0), 0), ("f/r", at(5.0, 0.0), 0)];
        for inputs in [ros_first, api_first] {
            assert_eq!(
                run_default(inputs, 100000),
                vec![(stuck("f/r", 0, 0.0, 0.0, "L1"), 60000, 1)]
            );
        }
    }

    #[test]
    fn an_adapter_sample_without_a_location_updates_working_only() {
        // The adapter's sample has no location (NaN, no level): it starts working, the anchor
        // stays where ROS put it.
        let out = run_default(
            vec![
                ("f/r", at(1.0, 1.0), 0),
                (
                    "f/r",
                    api(Some(RobotStatus::Working), f64::NAN, f64::NAN, ""),
                    1000,
                ),
            ],
            100000,
        );
        assert_eq!(out, vec![(stuck("f/r", 1000, 1.0, 1.0, "L1"), 61000, 1)]);
    }

    #[test]
    fn a_re_sent_sample_is_a_duplicate() {
        // The adapter's sample at the origin re-sent verbatim at 2000, after ROS moved the
        // anchor to (1, 0): no new sample, the anchor stays (a new sample at the origin would
        // have moved it back, and the robot would be stuck from 62000 instead).
        let first = working(0.0, 0.0);
        let history = vec![
            (Name::from("f/r"), first.clone(), 0),
            (
                Name::from("f/r"),
                RobotSample {
                    stamp: 1000,
                    ..at(1.0, 0.0)
                },
                1000,
            ),
            (Name::from("f/r"), first, 2000),
        ];
        assert_eq!(
            run_history(1, &history, Config::default(), 100000),
            vec![(stuck("f/r", 1000, 1.0, 0.0, "L1"), 61000, 1)]
        );
    }

    #[test]
    fn non_finite_positions_do_not_move_the_anchor() {
        let out = run_default(
            vec![
                ("f/r", working(0.0, 0.0), 0),
                ("f/r", at(f64::NAN, 0.0), 10000),
                ("f/r", at(0.0, f64::INFINITY), 20000),
            ],
            70000,
        );
        assert_eq!(out, vec![(stuck("f/r", 0, 0.0, 0.0, "L1"), 60000, 1)]);
    }

    #[test]
    fn robots_appearing_late_several_at_once_and_workers_agree() {
        let config = Config {
            window_ms: 1000,
            distance_m: 0.5,
        };
        let inputs = vec![
            ("a/r1", working(0.0, 0.0), 0),
            ("a/r2", idle(0.0, 0.0), 0),
            ("a/r1", at(0.4, 0.0), 500),
            ("a/r2", working(0.0, 0.0), 5000),
            ("b/r1", working(7.0, 7.0), 5000),
            ("a/r1", at(1.0, 0.0), 5500),
            ("b/r1", at(7.0, 7.6), 5500),
        ];
        let one = run(1, inputs.clone(), config.clone(), 10000);
        assert_eq!(one, run(3, inputs, config, 10000));
        assert_eq!(
            one,
            vec![
                (stuck("a/r1", 0, 0.0, 0.0, "L1"), 1000, 1),
                (stuck("a/r1", 0, 0.0, 0.0, "L1"), 5500, -1),
                (stuck("a/r2", 5000, 0.0, 0.0, "L1"), 6000, 1),
                (stuck("a/r1", 5500, 1.0, 0.0, "L1"), 6500, 1),
                (stuck("b/r1", 5500, 7.0, 7.6, "L1"), 6500, 1),
            ]
        );
    }

    #[test]
    fn the_config_has_defaults_and_refuses_unknown_fields() {
        let c: Config = serde_json::from_str("{}").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((c.window_ms, c.distance_m), (60_000, 0.2));
        assert!(serde_json::from_str::<Config>("{\"window\": 1}").is_err());
    }

    /// The brute-force snapshot: replays each robot's samples up to `t` by the definition.
    fn snapshot(c: &Config, past: &[(Name, RobotSample, Time)], t: Time) -> Vec<Output> {
        let mut keys: Vec<&Name> = past.iter().map(|(k, _, _)| k).collect();
        keys.sort();
        keys.dedup();
        let mut out = Vec::new();
        for key in keys {
            let mut working_since: Option<Time> = None;
            let mut anchor: Option<(f64, f64, &str, Time)> = None;
            for (_, s, st) in past.iter().filter(|(k, _, _)| k == key) {
                if s.source == RobotSource::Api {
                    working_since = match (s.status, working_since) {
                        (Some(RobotStatus::Working), Some(w)) => Some(w),
                        (Some(RobotStatus::Working), None) => Some(*st),
                        _ => None,
                    };
                }
                let (x, y) = (s.x.0, s.y.0);
                if !x.is_finite() || !y.is_finite() {
                    continue;
                }
                let moved = match anchor {
                    None => true,
                    Some((ax, ay, level, _)) => {
                        level != s.level.as_str() || (x - ax).hypot(y - ay) > c.distance_m
                    }
                };
                if moved {
                    anchor = Some((x, y, s.level.as_str(), *st));
                }
            }
            if let (Some(w), Some((x, y, level, at))) = (working_since, anchor) {
                let since = w.max(at);
                if t >= since + c.window_ms {
                    out.push(stuck(key, since, x, y, level));
                }
            }
        }
        out
    }

    /// Positions on a grid whose steps are below, at and above the distance (0.2 m), two levels;
    /// times biased to the window (100 ms) and its edges. A new sample is stamped with its time;
    /// sometimes a robot's source re-sends its previous sample verbatim (a duplicate).
    fn histories() -> impl Strategy<Value = History> {
        let step = prop::sample::select(vec![0, 10, 20, 50, 90, 100, 110]);
        let key = prop::sample::select(vec!["f/a", "f/b", "g/a"]);
        let coord = prop::sample::select(vec![0.0, 0.1, 0.2, 0.3]);
        let level = prop::sample::select(vec!["L1", "L1", "L1", "L2"]);
        let status = prop::sample::select(vec![
            None,
            Some(RobotStatus::Working),
            Some(RobotStatus::Working),
            Some(RobotStatus::Idle),
        ]);
        let sample = prop_oneof![
            (coord.clone(), coord.clone(), level.clone()).prop_map(|(x, y, l)| ros(x, y, l)),
            (status, coord.clone(), coord, level).prop_map(|(s, x, y, l)| api(s, x, y, l)),
        ];
        let resend = prop::bool::weighted(0.2);
        prop::collection::vec((step, key, sample, resend), 0..40).prop_map(|v| {
            let mut t = 0;
            let mut h: History = Vec::new();
            for (step, k, s, resend) in v {
                t += step;
                let previous = h
                    .iter()
                    .rev()
                    .find(|(pk, p, _)| pk == k && p.source == s.source);
                let s = match previous {
                    Some((_, p, _)) if resend => p.clone(),
                    _ => RobotSample { stamp: t, ..s },
                };
                h.push((Name::from(k), s, t));
            }
            h
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn matches_the_brute_force_reference(h in histories()) {
            let config = Config { window_ms: 100, distance_m: 0.2 };
            let until = h.last().map_or(0, |(_, _, t)| *t) + 200;
            // The new samples of each source, per tick in value order (ROS before Api).
            let new = reference::merged_upserts(&h, |_, s| s.source);
            let want = reference::states(&new, until, 10, |past, t| snapshot(&config, past, t));
            prop_assert_eq!(&run_history(1, &h, config.clone(), until), &want);
            prop_assert_eq!(&run_history(2, &h, config, until), &want);
        }
    }
}
