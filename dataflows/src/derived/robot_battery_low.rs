//! `robot_battery_low`: a robot whose battery stayed below a threshold for a hold time, until it
//! is clearly charged again.
//!
//! Inputs: the robot samples of both sources, keyed `fleet/robot`; each new sample with a battery
//! level (0.0 to 1.0) counts, whichever source it comes from (samples without one, or with NaN,
//! are ignored; a sample re-sent verbatim is a duplicate; the two sources' samples of one tick
//! are taken ROS first, the keyed-process value order). A *run* starts at the first sample with `battery < threshold` (default 0.20)
//! while the robot is not low; any sample with `battery >= threshold` before the run is confirmed
//! cancels it. The run is confirmed at `run start + hold_ms` (default 30 000), even with no sample
//! in between (a sample exactly at that time is handled first, and may still cancel it); the
//! record is present from then. While present, only a sample with
//! `battery > threshold + clear_margin` (default 0.05) clears it, at that sample; samples in
//! `[threshold, threshold + clear_margin]` keep it. See `ops::hysteresis`.
//!
//! Room `/robots/{fleet}/{robot}/battery_low`, value `{fleet, robot, battery, threshold, since}`:
//! `battery` is the latest level seen when the run was confirmed and `since` the run's start
//! (logical ms). The record does not change while present.

use serde::Deserialize;
use serde_json::json;

use super::*;
use crate::ops::debounce::Change;
use crate::ops::hysteresis::Hysteresis;
#[cfg(test)]
use crate::ops::keyed::KeyedProcess;
use crate::ops::keyed::{Ctx, KeyedLogic};
use crate::ops::parts::Part;

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Low below this battery level (0.0 to 1.0).
    pub threshold: f64,
    /// How long the level must stay below the threshold.
    pub hold_ms: Time,
    /// Cleared only above `threshold + clear_margin`.
    pub clear_margin: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            threshold: 0.20,
            hold_ms: 30_000,
            clear_margin: 0.05,
        }
    }
}

impl Section for Config {
    fn lookback_ms(&self) -> Time {
        self.hold_ms
    }
}

/// `[derived.robot_battery_low]`.
const CONFIG: Typed<Config> = Typed::new("robot_battery_low");

pub const DESCRIPTOR: Descriptor = Descriptor {
    name: "robot_battery_low",
    room: "/robots/{fleet}/{robot}/battery_low",
    kind: RoomKind::State,
    persistence: Persistence::History,
    inputs: &["robots"],
    config: CONFIG.spec(),
    robot: Some(part),
    build,
};

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct State {
    /// `None` until the first sample with a battery level.
    low: Option<Hysteresis>,
    /// The latest battery level seen.
    battery: f64,
    /// The confirmed record's battery and run start.
    confirmed: Option<(F64, Time)>,
}

impl State {
    fn apply(&mut self, change: Option<Change>) {
        match change {
            Some(Change::Started) => {
                self.confirmed = self
                    .low
                    .as_ref()
                    .and_then(Hysteresis::since)
                    .map(|since| (F64(self.battery), since));
            }
            Some(Change::Ended) => self.confirmed = None,
            None => {}
        }
    }

    fn set_timer(&self, ctx: &mut Ctx<Output>) {
        match self.low.as_ref().and_then(Hysteresis::deadline) {
            Some(at) => ctx.set_timer(at),
            None => ctx.clear_timer(),
        }
    }
}

pub(super) struct Logic {
    config: Config,
}

impl KeyedLogic for Logic {
    type Key = Name;
    type In = RobotSample;
    type Out = Output;
    type State = State;

    fn input(&self, s: &mut State, _key: &Name, sample: &RobotSample, ctx: &mut Ctx<Output>) {
        let Some(F64(battery)) = sample.battery.filter(|b| !b.0.is_nan()) else {
            return;
        };
        let c = &self.config;
        let low = s.low.get_or_insert_with(|| {
            Hysteresis::new(c.threshold, c.threshold + c.clear_margin, c.hold_ms)
        });
        let change = low.update(ctx.t, battery);
        s.battery = battery;
        s.apply(change);
        s.set_timer(ctx);
    }

    fn timer(&self, s: &mut State, _key: &Name, ctx: &mut Ctx<Output>) {
        let change = s.low.as_mut().and_then(|low| low.timer(ctx.t));
        s.apply(change);
        s.set_timer(ctx);
    }

    fn output(&self, s: &State, key: &Name, out: &mut Vec<Output>) {
        let Some((battery, since)) = s.confirmed else {
            return;
        };
        let (fleet, robot) = split_robot(key);
        out.push(Output::json(
            room(DESCRIPTOR.room, &[&fleet, &robot]),
            &json!({
                "fleet": fleet,
                "robot": robot,
                "battery": battery.0,
                "threshold": self.config.threshold,
                "since": since,
            }),
        ));
    }

    /// A robot that is neither low nor in a run below the threshold has nothing to remember.
    fn keep(&self, s: &State) -> bool {
        s.low.as_ref().and_then(Hysteresis::since).is_some()
    }
}

pub(super) fn logic(config: &Config) -> Logic {
    Logic {
        config: config.clone(),
    }
}

#[cfg(test)]
fn dataflow<'s>(robots: Coll<'s, (Name, RobotSample)>, config: &Config) -> Coll<'s, Output> {
    robots.keyed_process("RobotBatteryLow", logic(config))
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

    fn sample(source: RobotSource, battery: Option<f64>) -> RobotSample {
        RobotSample {
            source,
            status: (source == RobotSource::Api).then_some(RobotStatus::Working),
            mode: (source == RobotSource::Ros).then_some(2),
            stamp: 0,
            battery: battery.map(F64),
            x: F64(0.0),
            y: F64(0.0),
            level: "L1".into(),
            task_id: Name::default(),
            issues: Vec::new(),
        }
    }

    fn ros(battery: f64) -> RobotSample {
        sample(RobotSource::Ros, Some(battery))
    }

    fn api(battery: Option<f64>) -> RobotSample {
        sample(RobotSource::Api, battery)
    }

    fn low(key: &str, battery: f64, threshold: f64, since: Time) -> Output {
        let (fleet, robot) = split_robot(key);
        Output::json(
            format!("/robots/{fleet}/{robot}/battery_low"),
            &json!({"fleet": fleet, "robot": robot, "battery": battery, "threshold": threshold, "since": since}),
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
    fn confirmed_by_the_timer_with_no_sample_in_between() {
        let out = run_default(
            vec![
                ("f/r", ros(0.5), 0),
                ("f/r", ros(0.19), 1000),
                ("f/r", ros(0.18), 2000),
            ],
            60000,
        );
        // Confirmed at 1000 + 30000 with the latest level seen (0.18), since the run's start.
        assert_eq!(out, vec![(low("f/r", 0.18, 0.2, 1000), 31000, 1)]);
    }

    #[test]
    fn flapping_around_the_threshold_restarts_the_run_every_time() {
        let out = run_default(
            vec![
                ("f/r", ros(0.19), 0),
                ("f/r", ros(0.2), 29990),
                ("f/r", ros(0.19), 30000),
                ("f/r", ros(0.21), 40000),
                ("f/r", ros(0.199), 50000),
                ("f/r", ros(0.201), 60000),
                ("f/r", ros(0.19), 70000),
            ],
            110000,
        );
        assert_eq!(out, vec![(low("f/r", 0.19, 0.2, 70000), 100000, 1)]);
    }

    #[test]
    fn a_sample_exactly_at_the_confirmation_time_is_handled_first() {
        // Below at the edge: confirmed at that sample, with its level.
        let out = run_default(vec![("f/r", ros(0.1), 0), ("f/r", ros(0.15), 30000)], 40000);
        assert_eq!(out, vec![(low("f/r", 0.15, 0.2, 0), 30000, 1)]);
        // At the threshold at the edge: cancelled, never confirmed.
        let out = run_default(vec![("f/r", ros(0.1), 0), ("f/r", ros(0.2), 30000)], 70000);
        assert_eq!(out, vec![]);
    }

    #[test]
    fn the_record_does_not_change_while_present_and_clears_above_the_margin() {
        let out = run_default(
            vec![
                ("f/r", ros(0.1), 0),
                ("f/r", ros(0.12), 10000),
                ("f/r", ros(0.05), 40000),
                // Flapping inside [threshold, threshold + margin] and below: no churn.
                ("f/r", ros(0.2), 41000),
                ("f/r", ros(0.25), 42000),
                ("f/r", ros(0.19), 43000),
                ("f/r", ros(0.24), 44000),
                ("f/r", ros(0.2501), 45000),
                // A new run starts below again.
                ("f/r", ros(0.15), 46000),
            ],
            80000,
        );
        let record = low("f/r", 0.12, 0.2, 0);
        assert_eq!(
            out,
            vec![
                (record.clone(), 30000, 1),
                (record, 45000, -1),
                (low("f/r", 0.15, 0.2, 46000), 76000, 1),
            ]
        );
    }

    #[test]
    fn either_source_counts_and_samples_without_a_level_are_ignored() {
        let out = run_default(
            vec![
                ("f/r", ros(0.19), 0),
                ("f/r", api(None), 1000),
                ("f/r", api(Some(f64::NAN)), 2000),
                // The adapter's own level, at the threshold, cancels the ROS run.
                ("f/r", api(Some(0.2)), 3000),
                ("f/r", ros(0.19), 4000),
                ("f/r", api(Some(0.18)), 5000),
            ],
            40000,
        );
        assert_eq!(out, vec![(low("f/r", 0.18, 0.2, 4000), 34000, 1)]);
    }

    #[test]
    fn only_logical_time_orders_samples_not_message_stamps() {
        // Stamps are data: a delayed ROS message stamped before the adapter's last one is still
        // the latest sample at its (receive) logical time. The adapter reports 0.15 at 1000
        // (stamped 1000); a ROS message stamped 400 arrives at 1010 with 0.3: it cancels the run.
        let history = vec![
            (
                Name::from("f/r"),
                RobotSample {
                    stamp: 1000,
                    ..api(Some(0.15))
                },
                1000,
            ),
            (
                Name::from("f/r"),
                RobotSample {
                    stamp: 400,
                    ..ros(0.3)
                },
                1010,
            ),
        ];
        assert_eq!(run_history(1, &history, Config::default(), 40000), vec![]);
    }

    #[test]
    fn both_sources_in_one_tick_are_taken_ros_first_whatever_the_arrival_order() {
        // ROS below then Api at the threshold: the Api sample, taken last, cancels the run.
        for inputs in [
            vec![("f/r", ros(0.1), 0), ("f/r", api(Some(0.3)), 0)],
            vec![("f/r", api(Some(0.3)), 0), ("f/r", ros(0.1), 0)],
        ] {
            assert_eq!(run_default(inputs, 40000), vec![]);
        }
        // Api below, taken after the ROS sample at a normal level: the run starts.
        for inputs in [
            vec![("f/r", ros(0.3), 0), ("f/r", api(Some(0.1)), 0)],
            vec![("f/r", api(Some(0.1)), 0), ("f/r", ros(0.3), 0)],
        ] {
            assert_eq!(
                run_default(inputs, 40000),
                vec![(low("f/r", 0.1, 0.2, 0), 30000, 1)]
            );
        }
    }

    #[test]
    fn a_re_sent_sample_is_a_duplicate() {
        // The ROS sample of 0 (0.19) re-sent verbatim at 20 after the adapter's 0.2 cancelled
        // the run: no new sample, no new run. A new ROS sample at 30 starts one.
        let config = Config {
            threshold: 0.2,
            hold_ms: 50,
            clear_margin: 0.05,
        };
        let first = ros(0.19);
        let history = vec![
            (Name::from("f/r"), first.clone(), 0),
            (Name::from("f/r"), api(Some(0.2)), 10),
            (Name::from("f/r"), first, 20),
            (
                Name::from("f/r"),
                RobotSample {
                    stamp: 30,
                    ..ros(0.19)
                },
                30,
            ),
        ];
        assert_eq!(
            run_history(1, &history, config, 200),
            vec![(low("f/r", 0.19, 0.2, 30), 80, 1)]
        );
    }

    #[test]
    fn robots_appearing_late_several_at_once_and_workers_agree() {
        let config = Config {
            threshold: 0.3,
            hold_ms: 1000,
            clear_margin: 0.1,
        };
        let inputs = vec![
            ("a/r1", ros(0.29), 0),
            ("a/r2", ros(0.5), 0),
            ("a/r1", ros(0.35), 2000),
            ("a/r2", ros(0.1), 5000),
            ("b/r1", api(Some(0.2)), 5000),
            ("a/r1", ros(0.41), 6000),
        ];
        let one = run(1, inputs.clone(), config.clone(), 10000);
        assert_eq!(one, run(3, inputs, config, 10000));
        assert_eq!(
            one,
            vec![
                (low("a/r1", 0.29, 0.3, 0), 1000, 1),
                (low("a/r1", 0.29, 0.3, 0), 6000, -1),
                (low("a/r2", 0.1, 0.3, 5000), 6000, 1),
                (low("b/r1", 0.2, 0.3, 5000), 6000, 1),
            ]
        );
    }

    #[test]
    fn the_config_has_defaults_and_refuses_unknown_fields() {
        let c: Config = serde_json::from_str("{}").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (c.threshold, c.hold_ms, c.clear_margin),
            (0.2, 30_000, 0.05)
        );
        assert!(serde_json::from_str::<Config>("{\"margin\": 0.1}").is_err());
    }

    /// The brute-force snapshot: replays each robot's levels up to `t` by the definition.
    fn snapshot(c: &Config, past: &[(Name, RobotSample, Time)], t: Time) -> Vec<Output> {
        let mut keys: Vec<&Name> = past.iter().map(|(k, _, _)| k).collect();
        keys.sort();
        keys.dedup();
        let mut out = Vec::new();
        for key in keys {
            // (battery, since) once confirmed; the start of a pending run and its latest level.
            let mut confirmed: Option<(f64, Time)> = None;
            let mut run: Option<Time> = None;
            let mut latest = 0.0;
            let levels = past
                .iter()
                .filter(|(k, _, _)| k == key)
                .filter_map(|(_, s, st)| s.battery.filter(|b| !b.0.is_nan()).map(|b| (b.0, *st)));
            for (b, st) in levels {
                // A run whose hold ended before this sample was confirmed by the timer.
                if let Some(r) = run
                    && confirmed.is_none()
                    && r + c.hold_ms < st
                {
                    confirmed = Some((latest, r));
                }
                if confirmed.is_some() {
                    if b > c.threshold + c.clear_margin {
                        confirmed = None;
                        run = None;
                    }
                } else if b < c.threshold {
                    let r = *run.get_or_insert(st);
                    latest = b;
                    if r + c.hold_ms <= st {
                        confirmed = Some((b, r));
                    }
                } else {
                    run = None;
                }
            }
            if let Some(r) = run
                && confirmed.is_none()
                && r + c.hold_ms <= t
            {
                confirmed = Some((latest, r));
            }
            if let Some((b, since)) = confirmed {
                out.push(low(key, b, c.threshold, since));
            }
        }
        out
    }

    /// Levels biased to the threshold (0.2) and the clearing level (0.25); times to the hold
    /// (50 ms) and its edges. A new sample is stamped with its time; sometimes a robot's source
    /// re-sends its previous sample verbatim (a duplicate).
    fn histories() -> impl Strategy<Value = History> {
        let step = prop::sample::select(vec![0, 10, 20, 40, 50, 60, 100]);
        let key = prop::sample::select(vec!["f/a", "f/b", "g/a"]);
        let level = prop::sample::select(vec![
            None,
            Some(0.1),
            Some(0.19),
            Some(0.2),
            Some(0.22),
            Some(0.25),
            Some(0.26),
            Some(0.6),
        ]);
        let source = prop::sample::select(vec![RobotSource::Ros, RobotSource::Api]);
        let resend = prop::bool::weighted(0.2);
        prop::collection::vec((step, key, source, level, resend), 0..40).prop_map(|v| {
            let mut t = 0;
            let mut h: History = Vec::new();
            for (step, k, source, level, resend) in v {
                t += step;
                let previous = h
                    .iter()
                    .rev()
                    .find(|(pk, s, _)| pk == k && s.source == source);
                let s = match previous {
                    Some((_, p, _)) if resend => p.clone(),
                    _ => RobotSample {
                        stamp: t,
                        ..sample(source, level)
                    },
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
            let config = Config { threshold: 0.2, hold_ms: 50, clear_margin: 0.05 };
            let until = h.last().map_or(0, |(_, _, t)| *t) + 100;
            // The new samples of each source, per tick in value order (ROS before Api).
            let new = reference::merged_upserts(&h, |_, s| s.source);
            let want = reference::states(&new, until, 10, |past, t| snapshot(&config, past, t));
            prop_assert_eq!(&run_history(1, &h, config.clone(), until), &want);
            prop_assert_eq!(&run_history(2, &h, config, until), &want);
        }
    }
}
