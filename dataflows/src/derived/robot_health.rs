//! `robot_health`: whether a robot is `Healthy`, `Unhealthy` (its fleet adapter or its RMF mode
//! says so) or `Dead` (nothing heard from it for the liveliness window), the worst winning, with a
//! message saying why.
//!
//! Inputs: the robot samples of both sources, keyed `fleet/robot`. A new sample of either source
//! keeps the robot alive for `liveliness_ms` (default 10 000): it is Dead from `last sample +
//! liveliness_ms` on, until the next sample (a sample exactly at that time keeps it alive). A
//! sample re-sent verbatim (same stamp) is a duplicate, not a new sample: it is not heard. It is
//! Unhealthy when its latest fleet-adapter sample has status `error`, `offline` or `shutdown`, or
//! has issues, or its latest ROS sample has mode `EMERGENCY` or `ADAPTER_ERROR` (the latest of
//! each source counts, however old, once the robot is alive again). Room
//! `/robots/{fleet}/{robot}/health`, value `{id_: "fleet/robot", health_status, health_message}`
//! (the device-health shape): `health_message` is `null` when Healthy; when Unhealthy it lists
//! every reason, joined by `"; "`, in this order: `status <status>`, `issue <category: detail>`
//! for each issue, `mode EMERGENCY` / `mode ADAPTER_ERROR`; when Dead it is
//! `no state received for 10 s`. A robot has a record from its first sample on.

use serde::Deserialize;

use super::device_health::{Health, health_output};
use super::*;
use crate::model::ros::RobotMode;
use crate::ops::heartbeat::Liveness;
#[cfg(test)]
use crate::ops::keyed::KeyedProcess;
use crate::ops::keyed::{Ctx, KeyedLogic};
use crate::ops::parts::Part;

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// A robot is Dead when nothing was heard from it (either source) for this long.
    pub liveliness_ms: Time,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            liveliness_ms: 10_000,
        }
    }
}

impl Section for Config {
    fn lookback_ms(&self) -> Time {
        self.liveliness_ms
    }
}

/// `[derived.robot_health]`.
const CONFIG: Typed<Config> = Typed::new("robot_health");

pub const ROBOT_HEALTH: Descriptor = Descriptor {
    name: "robot_health",
    room: "/robots/{fleet}/{robot}/health",
    kind: RoomKind::State,
    persistence: Persistence::History,
    inputs: &["robots"],
    config: CONFIG.spec(),
    robot: Some(part),
    build,
};

/// Why a fleet-adapter status is unhealthy.
fn status_reason(status: RobotStatus) -> Option<String> {
    matches!(
        status,
        RobotStatus::Error | RobotStatus::Offline | RobotStatus::Shutdown
    )
    .then(|| format!("status {}", status.as_str()))
}

/// Why a ROS robot mode is unhealthy.
fn mode_reason(mode: u32) -> Option<&'static str> {
    match mode {
        RobotMode::MODE_EMERGENCY => Some("mode EMERGENCY"),
        RobotMode::MODE_ADAPTER_ERROR => Some("mode ADAPTER_ERROR"),
        _ => None,
    }
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct State {
    /// `None` until the first sample.
    liveness: Option<Liveness>,
    /// Reasons from the latest fleet-adapter sample: its status, then its issues.
    api: Vec<String>,
    /// Reason from the latest ROS sample's mode.
    #[serde(with = "crate::ops::snapshot::static_str::option")]
    ros: Option<crate::ops::snapshot::StaticStr>,
    /// The present record, rebuilt only when the health or the message changes (a robot is
    /// touched by every 10 Hz sample).
    verdict: Option<Verdict>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Verdict {
    health: Health,
    message: Option<String>,
    output: Output,
}

pub(super) struct Logic {
    window: Time,
    dead_message: String,
}

impl Logic {
    fn refresh(&self, s: &mut State, key: &Name) {
        let Some(liveness) = &s.liveness else { return };
        let (health, message) = if liveness.is_dead() {
            (Health::Dead, Some(self.dead_message.clone()))
        } else if s.api.is_empty() && s.ros.is_none() {
            (Health::Healthy, None)
        } else {
            let reasons: Vec<&str> = s.api.iter().map(String::as_str).chain(s.ros).collect();
            (Health::Unhealthy, Some(reasons.join("; ")))
        };
        if s.verdict
            .as_ref()
            .is_some_and(|v| v.health == health && v.message == message)
        {
            return;
        }
        let (fleet, robot) = split_robot(key);
        let room = room(ROBOT_HEALTH.room, &[&fleet, &robot]);
        let output = health_output(room, key, health, message.as_deref());
        s.verdict = Some(Verdict {
            health,
            message,
            output,
        });
    }
}

impl KeyedLogic for Logic {
    type Key = Name;
    type In = RobotSample;
    type Out = Output;
    type State = State;

    fn input(&self, s: &mut State, key: &Name, sample: &RobotSample, ctx: &mut Ctx<Output>) {
        match sample.source {
            RobotSource::Api => {
                s.api.clear();
                s.api.extend(sample.status.and_then(status_reason));
                s.api
                    .extend(sample.issues.iter().map(|issue| format!("issue {issue}")));
            }
            RobotSource::Ros => s.ros = sample.mode.and_then(mode_reason),
        }
        let liveness = s.liveness.get_or_insert_with(|| Liveness::new(self.window));
        ctx.set_timer(liveness.heard(ctx.t));
        self.refresh(s, key);
    }

    fn timer(&self, s: &mut State, key: &Name, ctx: &mut Ctx<Output>) {
        if let Some(liveness) = s.liveness.as_mut()
            && liveness.timer(ctx.t)
        {
            self.refresh(s, key);
        }
    }

    fn output(&self, s: &State, _key: &Name, out: &mut Vec<Output>) {
        out.extend(s.verdict.as_ref().map(|v| v.output.clone()));
    }
}

pub(super) fn logic(config: &Config) -> Logic {
    // Liveness takes a window of 0 as 1 ms; the message says the window it uses.
    let window = config.liveliness_ms.max(1);
    Logic {
        window,
        dead_message: format!("no state received for {} s", window as f64 / 1000.0),
    }
}

#[cfg(test)]
fn dataflow<'s>(robots: Coll<'s, (Name, RobotSample)>, config: &Config) -> Coll<'s, Output> {
    robots.keyed_process("RobotHealth", logic(config))
}

/// Its logic, in the shared robot operator.
fn part(config: &super::Config) -> Box<dyn Part<Name, RobotSample, Output>> {
    crate::ops::parts::part(logic(&config.get(&CONFIG)))
}

fn build<'s>(inputs: &Inputs<'s>, config: &super::Config) -> Coll<'s, Output> {
    robot_part(inputs, config, ROBOT_HEALTH.name)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::derived::reference;
    use crate::harness::run_upsert;

    const DEAD: &str = "no state received for 10 s";

    fn ros(mode: u32) -> RobotSample {
        RobotSample {
            source: RobotSource::Ros,
            status: None,
            mode: Some(mode),
            stamp: 0,
            battery: Some(F64(0.5)),
            x: F64(1.0),
            y: F64(2.0),
            level: "L1".into(),
            task_id: Name::default(),
            issues: Vec::new(),
        }
    }

    fn api(status: Option<RobotStatus>, issues: &[&str]) -> RobotSample {
        RobotSample {
            source: RobotSource::Api,
            status,
            mode: None,
            stamp: 0,
            battery: Some(F64(0.5)),
            x: F64(1.0),
            y: F64(2.0),
            level: "L1".into(),
            task_id: Name::default(),
            issues: issues.iter().map(|i| i.to_string()).collect(),
        }
    }

    fn h(key: &str, health: Health, message: Option<&str>) -> Output {
        let (fleet, robot) = split_robot(key);
        health_output(
            format!("/robots/{fleet}/{robot}/health"),
            key,
            health,
            message,
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

    const IDLE: u32 = RobotMode::MODE_IDLE;
    const EMERGENCY: u32 = RobotMode::MODE_EMERGENCY;
    const ADAPTER_ERROR: u32 = RobotMode::MODE_ADAPTER_ERROR;

    #[test]
    fn dead_exactly_at_the_window_edge_after_the_last_sample_of_either_source() {
        // ROS at 1000, API at 2000; nothing until 15000: Dead at exactly 12000.
        let out = run(
            1,
            vec![
                ("f/r", ros(IDLE), 1000),
                ("f/r", api(Some(RobotStatus::Idle), &[]), 2000),
                ("f/r", ros(IDLE), 15000),
            ],
            Config::default(),
            20000,
        );
        assert_eq!(
            out,
            vec![
                (h("f/r", Health::Healthy, None), 1000, 1),
                (h("f/r", Health::Dead, Some(DEAD)), 12000, 1),
                (h("f/r", Health::Healthy, None), 12000, -1),
                (h("f/r", Health::Dead, Some(DEAD)), 15000, -1),
                (h("f/r", Health::Healthy, None), 15000, 1),
            ]
        );
    }

    #[test]
    fn a_sample_exactly_at_the_deadline_keeps_it_alive() {
        // Samples that differ only by their stamp: each one is a new message, heard.
        let out = run(
            1,
            vec![
                ("f/r", ros(IDLE), 1000),
                ("f/r", ros(IDLE), 11000),
                ("f/r", ros(IDLE), 20990),
            ],
            Config::default(),
            30990,
        );
        assert_eq!(
            out,
            vec![
                (h("f/r", Health::Healthy, None), 1000, 1),
                (h("f/r", Health::Dead, Some(DEAD)), 30990, 1),
                (h("f/r", Health::Healthy, None), 30990, -1),
            ]
        );
    }

    #[test]
    fn an_identical_re_send_is_a_duplicate_not_a_heartbeat() {
        // The ROS message of 1000 re-sent verbatim at 6000 (same seq): not heard again, Dead at
        // 11000; the adapter's samples are another input, a new one of them is heard.
        let first = RobotSample {
            stamp: 7,
            ..ros(IDLE)
        };
        let history = vec![
            (Name::from("f/r"), first.clone(), 1000),
            (Name::from("f/r"), first, 6000),
            (
                Name::from("f/r"),
                RobotSample {
                    stamp: 20000,
                    ..api(Some(RobotStatus::Idle), &[])
                },
                20000,
            ),
        ];
        let out = run_history(1, &history, Config::default(), 25000);
        assert_eq!(
            out,
            vec![
                (h("f/r", Health::Healthy, None), 1000, 1),
                (h("f/r", Health::Dead, Some(DEAD)), 11000, 1),
                (h("f/r", Health::Healthy, None), 11000, -1),
                (h("f/r", Health::Dead, Some(DEAD)), 20000, -1),
                (h("f/r", Health::Healthy, None), 20000, 1),
            ]
        );
    }

    #[test]
    fn every_reason_is_listed_in_order_and_each_source_keeps_its_latest() {
        let out = run(
            1,
            vec![
                ("f/r", ros(EMERGENCY), 1000),
                (
                    "f/r",
                    api(
                        Some(RobotStatus::Error),
                        &["battery: low", "lidar: {\"x\":1}"],
                    ),
                    1000,
                ),
                // A healthy ROS sample does not clear the adapter's reasons.
                ("f/r", ros(IDLE), 1100),
                ("f/r", api(Some(RobotStatus::Offline), &[]), 2000),
                ("f/r", ros(ADAPTER_ERROR), 2100),
                ("f/r", api(Some(RobotStatus::Working), &[]), 3000),
                ("f/r", ros(IDLE), 3100),
            ],
            Config::default(),
            5000,
        );
        let unhealthy = |m: &str| h("f/r", Health::Unhealthy, Some(m));
        let all = "status error; issue battery: low; issue lidar: {\"x\":1}";
        assert_eq!(
            out,
            vec![
                (unhealthy(&format!("{all}; mode EMERGENCY")), 1000, 1),
                (unhealthy(all), 1100, 1),
                (unhealthy(&format!("{all}; mode EMERGENCY")), 1100, -1),
                (unhealthy(all), 2000, -1),
                (unhealthy("status offline"), 2000, 1),
                (unhealthy("status offline"), 2100, -1),
                (unhealthy("status offline; mode ADAPTER_ERROR"), 2100, 1),
                (unhealthy("mode ADAPTER_ERROR"), 3000, 1),
                (unhealthy("status offline; mode ADAPTER_ERROR"), 3000, -1),
                (h("f/r", Health::Healthy, None), 3100, 1),
                (unhealthy("mode ADAPTER_ERROR"), 3100, -1),
            ]
        );
    }

    #[test]
    fn dead_wins_over_unhealthy_and_the_reasons_come_back_with_the_robot() {
        let out = run(
            1,
            vec![
                ("f/r", api(Some(RobotStatus::Shutdown), &[]), 0),
                // Back with a healthy ROS sample: the latest adapter status still counts.
                ("f/r", ros(IDLE), 30000),
            ],
            Config {
                liveliness_ms: 2500,
            },
            31000,
        );
        let dead = "no state received for 2.5 s";
        let shutdown = h("f/r", Health::Unhealthy, Some("status shutdown"));
        assert_eq!(
            out,
            vec![
                (shutdown.clone(), 0, 1),
                (h("f/r", Health::Dead, Some(dead)), 2500, 1),
                (shutdown.clone(), 2500, -1),
                (h("f/r", Health::Dead, Some(dead)), 30000, -1),
                (shutdown, 30000, 1),
            ]
        );
    }

    #[test]
    fn flapping_mode_changes_the_record_at_every_sample() {
        let out = run(
            1,
            vec![
                ("f/r", ros(IDLE), 10),
                ("f/r", ros(EMERGENCY), 20),
                ("f/r", ros(IDLE), 30),
                ("f/r", ros(EMERGENCY), 40),
                ("f/r", ros(EMERGENCY), 50),
            ],
            Config::default(),
            100,
        );
        let healthy = h("f/r", Health::Healthy, None);
        let emergency = h("f/r", Health::Unhealthy, Some("mode EMERGENCY"));
        assert_eq!(
            out,
            vec![
                (healthy.clone(), 10, 1),
                (healthy.clone(), 20, -1),
                (emergency.clone(), 20, 1),
                (healthy.clone(), 30, 1),
                (emergency.clone(), 30, -1),
                (healthy, 40, -1),
                (emergency, 40, 1),
            ]
        );
    }

    #[test]
    fn robots_appearing_late_several_at_once_and_workers_agree() {
        let inputs = vec![
            ("a/r1", ros(IDLE), 1000),
            ("a/r2", api(None, &["nav: blocked"]), 30000),
            ("a/r1", ros(IDLE), 30000),
            ("b/r1", ros(ADAPTER_ERROR), 30010),
        ];
        let one = run(1, inputs.clone(), Config::default(), 50000);
        assert_eq!(one, run(3, inputs, Config::default(), 50000));
        assert_eq!(
            one,
            vec![
                (h("a/r1", Health::Healthy, None), 1000, 1),
                (h("a/r1", Health::Dead, Some(DEAD)), 11000, 1),
                (h("a/r1", Health::Healthy, None), 11000, -1),
                (h("a/r1", Health::Dead, Some(DEAD)), 30000, -1),
                (h("a/r1", Health::Healthy, None), 30000, 1),
                (
                    h("a/r2", Health::Unhealthy, Some("issue nav: blocked")),
                    30000,
                    1
                ),
                (
                    h("b/r1", Health::Unhealthy, Some("mode ADAPTER_ERROR")),
                    30010,
                    1
                ),
                (h("a/r1", Health::Dead, Some(DEAD)), 40000, 1),
                (h("a/r1", Health::Healthy, None), 40000, -1),
                (h("a/r2", Health::Dead, Some(DEAD)), 40000, 1),
                (
                    h("a/r2", Health::Unhealthy, Some("issue nav: blocked")),
                    40000,
                    -1
                ),
                (h("b/r1", Health::Dead, Some(DEAD)), 40010, 1),
                (
                    h("b/r1", Health::Unhealthy, Some("mode ADAPTER_ERROR")),
                    40010,
                    -1
                ),
            ]
        );
    }

    #[test]
    fn the_config_has_defaults_and_refuses_unknown_fields() {
        let c: Config = serde_json::from_str("{}").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.liveliness_ms, 10_000);
        assert!(serde_json::from_str::<Config>("{\"liveliness\": 1}").is_err());
    }

    /// The brute-force snapshot: for each robot with a sample at or before `t`, Dead if the last
    /// sample is at least a window old, else the reasons of the last sample of each source.
    fn snapshot(window: Time, past: &[(Name, RobotSample, Time)], t: Time) -> Vec<Output> {
        let mut keys: Vec<&Name> = past.iter().map(|(k, _, _)| k).collect();
        keys.sort();
        keys.dedup();
        let mut out = Vec::new();
        for key in keys {
            let mine: Vec<&(Name, RobotSample, Time)> =
                past.iter().filter(|(k, _, _)| k == key).collect();
            let Some(last) = mine.last().map(|(_, _, lt)| *lt) else {
                continue;
            };
            let latest_of = |source| mine.iter().rev().find(|(_, s, _)| s.source == source);
            let mut reasons = Vec::new();
            if let Some((_, s, _)) = latest_of(RobotSource::Api) {
                match s.status {
                    Some(RobotStatus::Error) => reasons.push("status error".to_string()),
                    Some(RobotStatus::Offline) => reasons.push("status offline".to_string()),
                    Some(RobotStatus::Shutdown) => reasons.push("status shutdown".to_string()),
                    _ => {}
                }
                for issue in &s.issues {
                    reasons.push(format!("issue {issue}"));
                }
            }
            if let Some((_, s, _)) = latest_of(RobotSource::Ros) {
                match s.mode {
                    Some(5) => reasons.push("mode EMERGENCY".to_string()),
                    Some(8) => reasons.push("mode ADAPTER_ERROR".to_string()),
                    _ => {}
                }
            }
            let dead = format!("no state received for {} s", window as f64 / 1000.0);
            out.push(if t >= last + window {
                h(key, Health::Dead, Some(&dead))
            } else if reasons.is_empty() {
                h(key, Health::Healthy, None)
            } else {
                h(key, Health::Unhealthy, Some(&reasons.join("; ")))
            });
        }
        out
    }

    fn sample() -> impl Strategy<Value = RobotSample> {
        let status = prop::sample::select(vec![
            None,
            Some(RobotStatus::Idle),
            Some(RobotStatus::Working),
            Some(RobotStatus::Error),
            Some(RobotStatus::Offline),
            Some(RobotStatus::Shutdown),
            Some(RobotStatus::Charging),
        ]);
        let issues = prop::sample::select(vec![vec![], vec!["a: b"], vec!["a: b", "c: d"]]);
        prop_oneof![
            prop::sample::select(vec![0u32, 2, 5, 8]).prop_map(ros),
            (status, issues).prop_map(|(s, i)| api(s, &i)),
        ]
    }

    /// Times advance by steps biased to the window (100 ms) and its edges. A new sample is
    /// stamped with its time; sometimes a robot's source re-sends its previous sample verbatim
    /// (a duplicate), and both sources often report in the same tick.
    fn histories() -> impl Strategy<Value = History> {
        let step = prop::sample::select(vec![0, 10, 20, 50, 90, 100, 110, 300]);
        let key = prop::sample::select(vec!["f/a", "f/b", "g/a"]);
        let resend = prop::bool::weighted(0.2);
        prop::collection::vec((step, key, sample(), resend), 0..30).prop_map(|v| {
            let mut t = 0;
            let mut h: History = Vec::new();
            for (step, k, s, resend) in v {
                t += step;
                let previous = h
                    .iter()
                    .rev()
                    .find(|(pk, ps, _)| pk == k && ps.source == s.source);
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
            let window = 100;
            let until = h.last().map_or(0, |(_, _, t)| *t) + 200;
            // The new samples of each source, per tick in value order (ROS before Api).
            let new = reference::merged_upserts(&h, |_, s| s.source);
            let want = reference::states(&new, until, 10, |past, t| snapshot(window, past, t));
            let config = Config { liveliness_ms: window };
            prop_assert_eq!(&run_history(1, &h, config.clone(), until), &want);
            prop_assert_eq!(&run_history(2, &h, config, until), &want);
        }
    }
}
