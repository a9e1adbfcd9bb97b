//! `lift_occupant`: the robot holding a lift's session, with what is known of it.
//!
//! Inputs: the lift state upserts (`session_id` names the requester holding the lift, `fleet/robot`
//! for a fleet adapter; empty when none) and the robot samples (keyed `fleet/robot`, both
//! sources). A record is present while the lift's latest state has a non-empty session id. The
//! robot fields come from the robot whose key equals the session id: `robot_status` is the status
//! of its latest fleet-adapter (Api) sample (null without one, or when the status is not a known
//! one), `level` the level of its latest sample of either source (the Api one when both arrive at
//! the same time; null when empty). Both are null while no robot of that name is known (a left
//! outer join: `join` plus `antijoin`).
//!
//! Both sides are projected first so that 10 Hz robot samples do not churn the join: the lift to
//! its session id with `latest_by`, the robot to `(status, level)` by a small keyed logic (status
//! and level come from different samples, which a per-sample projection cannot combine). Each
//! changes only when its projection does.
//!
//! Room `/lifts/{name}/occupant` (state), value `{"lift_name", "session_id", "fleet", "robot",
//! "robot_status": string | null, "level": string | null}`; `fleet` and `robot` split the session
//! id at its first `/` (without one: `fleet` is the session id, `robot` is empty). No
//! configuration.

use serde::Deserialize;
use serde_json::json;

use super::*;
use crate::ops::keyed::{Ctx, KeyedLogic};
use crate::ops::latest::LatestBy;

#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {}

impl Section for Config {
    fn lookback_ms(&self) -> Time {
        0
    }
}

/// `[derived.lift_occupant]`.
const CONFIG: Typed<Config> = Typed::new("lift_occupant");

pub const DESCRIPTOR: Descriptor = Descriptor {
    name: "lift_occupant",
    room: "/lifts/{name}/occupant",
    kind: RoomKind::State,
    persistence: Persistence::History,
    inputs: &["lifts", "robots"],
    config: CONFIG.spec(),
    robot: None,
    build,
};

/// What the room shows of a robot: its Api status and its level.
pub(crate) type RobotView = (Option<RobotStatus>, Option<Name>);

/// The `LiftOccupant` record of `lift` held by `session`, with its robot if known.
fn lift_occupant_output(lift: &str, session: &str, robot: Option<&RobotView>) -> Output {
    let (fleet, name) = split_robot(session);
    let (status, level) = robot.map_or((None, None), |(s, l)| (*s, l.as_ref()));
    Output::json(
        room(DESCRIPTOR.room, &[lift]),
        &json!({
            "lift_name": lift,
            "session_id": session,
            "fleet": fleet,
            "robot": name,
            "robot_status": status.map(RobotStatus::as_str),
            "level": level,
        }),
    )
}

/// A robot's latest Api status, and its latest level with the time and source it came from.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub(super) struct Robot {
    status: Option<RobotStatus>,
    level: Name,
    level_from: Option<(Time, RobotSource)>,
}

pub(super) struct RobotLogic;

impl KeyedLogic for RobotLogic {
    type Key = Name;
    type In = RobotSample;
    type Out = (Name, RobotView);
    type State = Robot;

    fn input(&self, r: &mut Robot, _key: &Name, s: &RobotSample, ctx: &mut Ctx<Self::Out>) {
        if s.source == RobotSource::Api {
            r.status = s.status;
        }
        // Times arrive in order; at equal times the Api sample wins whatever the arrival order.
        let from = (ctx.t, s.source);
        if r.level_from.is_none_or(|previous| from >= previous) {
            r.level = s.level.clone();
            r.level_from = Some(from);
        }
    }

    fn output(&self, r: &Robot, key: &Name, out: &mut Vec<Self::Out>) {
        if r.level_from.is_some() {
            let level = (!r.level.is_empty()).then(|| r.level.clone());
            out.push((key.clone(), (r.status, level)));
        }
    }
}

/// Sessions joined with the robots' `(status, level)` views (outer join: unknown robots give
/// nulls).
fn lift_occupant_of<'s>(
    lifts: Coll<'s, (Name, LiftSample)>,
    robots: Coll<'s, (Name, RobotView)>,
) -> Coll<'s, Output> {
    let sessions = lifts
        .latest_by("LiftSession", |_, l: &LiftSample| {
            (!l.session_id.is_empty()).then(|| l.session_id.clone())
        })
        .map(|(lift, session)| (session, lift));
    let known = sessions
        .clone()
        .join_map(robots.clone(), |session, lift, robot| {
            lift_occupant_output(lift, session, Some(robot))
        });
    let unknown = sessions
        .antijoin(robots.map(|(robot, _)| robot))
        .map(|(session, lift)| lift_occupant_output(&lift, &session, None));
    known.concat(unknown)
}

/// The robot views come from the shared robot operator (`derived::robot_stream`).
fn build<'s>(inputs: &Inputs<'s>, config: &super::Config) -> Coll<'s, Output> {
    lift_occupant_of(
        inputs.lifts.clone(),
        robot_stream(inputs, config).occupants.clone(),
    )
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::derived::reference;
    use crate::harness::run_upsert;

    type History = Vec<(InputKey, InputValue, Time)>;

    const API: RobotSource = RobotSource::Api;
    const ROS: RobotSource = RobotSource::Ros;
    const IDLE: Option<RobotStatus> = Some(RobotStatus::Idle);
    const WORKING: Option<RobotStatus> = Some(RobotStatus::Working);
    const OFFLINE: Option<RobotStatus> = Some(RobotStatus::Offline);

    fn lift(name: &str, session: &str, t: Time) -> (InputKey, InputValue, Time) {
        let sample = LiftSample {
            mode: 2,
            door_state: 0,
            // The floor changes with every sample: only the session matters.
            current_floor: Name::from(format!("F{t}")),
            session_id: session.into(),
            payload: Payload::of(&json!({"session_id": session})),
        };
        ((Kind::Lift, name.into()), InputValue::Lift(sample), t)
    }

    fn robot(
        name: &str,
        source: RobotSource,
        status: Option<RobotStatus>,
        level: &str,
        t: Time,
    ) -> (InputKey, InputValue, Time) {
        let sample = RobotSample {
            source,
            status,
            mode: (source == ROS).then_some(2),
            // Every sample is a new message.
            stamp: t,
            battery: Some(F64(0.5)),
            // Positions change with every sample: they are not shown.
            x: F64(t as f64),
            y: F64(0.0),
            level: level.into(),
            task_id: "".into(),
            issues: Vec::new(),
        };
        (
            (Kind::Robot(source), name.into()),
            InputValue::Robot(sample),
            t,
        )
    }

    fn occ(lift: &str, session: &str, robot: Option<(Option<RobotStatus>, &str)>) -> Output {
        let view = robot.map(|(s, l)| (s, (!l.is_empty()).then(|| Name::from(l))));
        lift_occupant_output(lift, session, view.as_ref())
    }

    fn run(workers: usize, h: History, until: Time) -> Vec<(Output, Time, Diff)> {
        run_upsert(workers, h, until, |c| {
            build(&Inputs::split(c), &super::super::Config::default())
        })
    }

    #[test]
    fn unknown_robot_then_known_then_session_released() {
        let out = run(
            1,
            vec![
                lift("L", "", 10),
                lift("L", "f/r", 20),
                // The lift moves with the same session: nothing changes.
                lift("L", "f/r", 30),
                robot("f/r", ROS, None, "B1", 40),
                robot("f/r", ROS, None, "B1", 50),
                robot("f/r", API, WORKING, "B1", 60),
                robot("f/r", ROS, None, "L2", 70),
                lift("L", "", 80),
                robot("f/r", ROS, None, "L3", 90),
            ],
            100,
        );
        assert_eq!(
            out,
            vec![
                (occ("L", "f/r", None), 20, 1),
                (occ("L", "f/r", Some((None, "B1"))), 40, 1),
                (occ("L", "f/r", None), 40, -1),
                (occ("L", "f/r", Some((WORKING, "B1"))), 60, 1),
                (occ("L", "f/r", Some((None, "B1"))), 60, -1),
                (occ("L", "f/r", Some((WORKING, "B1"))), 70, -1),
                (occ("L", "f/r", Some((WORKING, "L2"))), 70, 1),
                (occ("L", "f/r", Some((WORKING, "L2"))), 80, -1),
            ]
        );
    }

    #[test]
    fn frequent_samples_do_not_churn_and_levels_flap_with_the_latest_sample() {
        // 10 Hz ROS samples on B1 and 1 Hz Api samples on B1: one record. Then the sources
        // disagree (the Api one a level behind): the latest sample decides; at the same time
        // the Api sample wins.
        let mut h = vec![lift("L", "f/r", 0)];
        for i in 1..=30 {
            h.push(robot("f/r", ROS, None, "B1", 100 * i));
            if i % 10 == 0 {
                h.push(robot("f/r", API, IDLE, "B1", 100 * i));
            }
        }
        h.push(robot("f/r", ROS, None, "L2", 3100));
        h.push(robot("f/r", API, IDLE, "B1", 3200));
        h.push(robot("f/r", API, IDLE, "B1", 3300));
        h.push(robot("f/r", ROS, None, "L2", 3300));
        h.push(robot("f/r", ROS, None, "L2", 3400));
        let out = run(1, h, 4000);
        let b1 = occ("L", "f/r", Some((IDLE, "B1")));
        let l2 = occ("L", "f/r", Some((IDLE, "L2")));
        assert_eq!(
            out,
            vec![
                (occ("L", "f/r", None), 0, 1),
                (occ("L", "f/r", Some((None, "B1"))), 100, 1),
                (occ("L", "f/r", None), 100, -1),
                (b1.clone(), 1000, 1),
                (occ("L", "f/r", Some((None, "B1"))), 1000, -1),
                (b1.clone(), 3100, -1),
                (l2.clone(), 3100, 1),
                (b1.clone(), 3200, 1),
                (l2.clone(), 3200, -1),
                (b1, 3400, -1),
                (l2, 3400, 1),
            ]
        );
    }

    #[test]
    fn a_session_without_a_slash_and_an_empty_level() {
        let out = run(
            1,
            vec![
                lift("L", "loader", 10),
                // Robots are looked up by the session id itself: "loader/" is another key.
                robot("loader/", API, OFFLINE, "", 20),
                lift("M", "f/", 30),
                robot("f/", API, OFFLINE, "", 40),
            ],
            100,
        );
        assert_eq!(
            out,
            vec![
                (occ("L", "loader", None), 10, 1),
                (occ("M", "f/", None), 30, 1),
                (occ("M", "f/", Some((OFFLINE, ""))), 40, 1),
                (occ("M", "f/", None), 40, -1),
            ]
        );
        let value = serde_json::json!({
            "lift_name": "L", "session_id": "loader", "fleet": "loader", "robot": "",
            "robot_status": null, "level": null,
        });
        assert_eq!(
            occ("L", "loader", None),
            Output::json("/lifts/L/occupant".into(), &value)
        );
    }

    #[test]
    fn several_lifts_one_robot_a_late_lift_and_workers_agree() {
        let h = vec![
            robot("f/a", API, WORKING, "L1", 0),
            lift("A", "f/a", 10),
            lift("B", "f/b", 10),
            robot("f/b", ROS, None, "L3", 20),
            lift("C", "f/a", 500),
            lift("A", "", 600),
        ];
        let one = run(1, h.clone(), 1000);
        assert_eq!(
            one,
            vec![
                (occ("A", "f/a", Some((WORKING, "L1"))), 10, 1),
                (occ("B", "f/b", None), 10, 1),
                (occ("B", "f/b", Some((None, "L3"))), 20, 1),
                (occ("B", "f/b", None), 20, -1),
                (occ("C", "f/a", Some((WORKING, "L1"))), 500, 1),
                (occ("A", "f/a", Some((WORKING, "L1"))), 600, -1),
            ]
        );
        assert_eq!(one, run(3, h, 1000));
    }

    /// Brute force: from the latest value of every input key, each lift with a session and the
    /// robot of that name: the Api sample's status, the level of whichever of the two latest
    /// samples is later (the Api one at equal times).
    fn reference(past: &[(InputKey, InputValue, Time)], _t: Time) -> Vec<Output> {
        let latest = reference::latest(past);
        let robot_sample = |source: RobotSource, name: &str| {
            latest.iter().find_map(|((k, n), v, t)| match v {
                InputValue::Robot(s) if *k == Kind::Robot(source) && n == name => Some((s, *t)),
                _ => None,
            })
        };
        let mut out = Vec::new();
        for (key, value, _) in &latest {
            let (Kind::Lift, InputValue::Lift(l)) = (key.0, value) else {
                continue;
            };
            let session = l.session_id.as_str();
            if session.is_empty() {
                continue;
            }
            let api = robot_sample(API, session);
            let ros = robot_sample(ROS, session);
            let status = api.and_then(|(s, _)| s.status);
            let newest = match (api, ros) {
                (Some((a, at)), Some((r, rt))) => Some(if rt > at { r } else { a }),
                (Some((a, _)), None) => Some(a),
                (None, Some((r, _))) => Some(r),
                (None, None) => None,
            };
            let view = newest.map(|s| {
                let level = (!s.level.is_empty()).then(|| s.level.clone());
                (status, level)
            });
            out.push(lift_occupant_output(&key.1, session, view.as_ref()));
        }
        out
    }

    #[derive(Debug, Clone)]
    enum Step {
        Lift(&'static str, &'static str),
        Robot(&'static str, RobotSource, Option<RobotStatus>, &'static str),
    }

    fn histories() -> impl Strategy<Value = History> {
        let names = &["f/r1", "f/r2", "g/r1"][..];
        let lift_step = (
            prop::sample::select(&["A", "B"][..]),
            prop_oneof![1 => Just(""), 3 => prop::sample::select(names)],
        )
            .prop_map(|(l, s)| Step::Lift(l, s));
        let robot_step = (
            prop::sample::select(names),
            prop::sample::select(&[API, ROS][..]),
            prop::sample::select(&[None, IDLE, WORKING][..]),
            prop::sample::select(&["", "L1", "L2"][..]),
        )
            .prop_map(|(r, src, status, level)| {
                Step::Robot(r, src, (src == API).then_some(status).flatten(), level)
            });
        let step = (
            prop_oneof![1 => lift_step, 2 => robot_step],
            prop::sample::select(&[0u64, 10, 20, 50][..]),
        );
        prop::collection::vec(step, 1..24).prop_map(|steps| {
            let mut t = 0;
            let mut h: History = Vec::new();
            for (step, dt) in steps {
                t += dt;
                let (key, value, at) = match step {
                    Step::Lift(l, s) => lift(l, s, t),
                    Step::Robot(r, src, status, level) => robot(r, src, status, level, t),
                };
                // One value per key and time (an upsert keeps the last one).
                h.retain(|(k, _, kt)| !(*k == key && *kt == at));
                h.push((key, value, at));
            }
            h
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn matches_the_brute_force_reference(h in histories()) {
            let until = h.last().map_or(0, |(_, _, t)| *t) + 20;
            let expected = reference::states(&h, until, 10, reference);
            prop_assert_eq!(&run(1, h.clone(), until), &expected);
            prop_assert_eq!(&run(2, h, until), &expected);
        }
    }
}
