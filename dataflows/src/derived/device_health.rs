//! `door_health`, `lift_health`, `dispenser_health`, `ingestor_health`: whether a device is
//! `Healthy`, `Unhealthy` (its mode says so) or `Dead` (nothing heard for the liveliness window),
//! the worst winning, with a message saying why.
//!
//! Inputs: the device state upserts. Every new state message keeps a device alive (an identical
//! re-send is a duplicate, not a new message: device states carry their own stamp, so real ones
//! always differ, even when the mode does not). Unhealthy modes: door OFFLINE or UNKNOWN; lift FIRE,
//! EMERGENCY or OFFLINE; dispenser or ingestor OFFLINE. Rooms `/doors/{name}/health`,
//! `/lifts/{name}/health`, `/dispensers/{guid}/health`, `/ingestors/{guid}/health`, value
//! `{id_, health_status, health_message}` (the shape older rmf-web dashboards used).

use serde::Deserialize;
use serde_json::json;

use super::*;
use crate::model::ros::{DoorMode, LiftState, WorkcellState};
use crate::ops::keyed::{Ctx, KeyedLogic, KeyedProcess};

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// A device is Dead when nothing was heard from it for this long.
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

/// `[derived.device_health]`, read by the four device health events.
const CONFIG: Typed<Config> = Typed::new("device_health");

/// The three health states, worst last.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Health {
    Healthy,
    Unhealthy,
    Dead,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "Healthy",
            Health::Unhealthy => "Unhealthy",
            Health::Dead => "Dead",
        }
    }
}

/// The health record of an entity.
pub fn health_output(room: String, id: &str, health: Health, message: Option<&str>) -> Output {
    Output::json(
        room,
        &json!({"id_": id, "health_status": health.as_str(), "health_message": message}),
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Device {
    Door,
    Lift,
    Dispenser,
    Ingestor,
}

impl Device {
    const fn room(self) -> &'static str {
        match self {
            Device::Door => "/doors/{name}/health",
            Device::Lift => "/lifts/{name}/health",
            Device::Dispenser => "/dispensers/{guid}/health",
            Device::Ingestor => "/ingestors/{guid}/health",
        }
    }

    const fn inputs(self) -> &'static [&'static str] {
        match self {
            Device::Door => &["doors"],
            Device::Lift => &["lifts"],
            Device::Dispenser => &["dispensers"],
            Device::Ingestor => &["ingestors"],
        }
    }

    /// Why a mode is unhealthy.
    fn unhealthy(self, mode: i64) -> Option<&'static str> {
        match self {
            Device::Door => match mode as u32 {
                DoorMode::MODE_OFFLINE => Some("door is OFFLINE"),
                DoorMode::MODE_UNKNOWN => Some("door mode is UNKNOWN"),
                _ => None,
            },
            Device::Lift => match mode as u8 {
                LiftState::MODE_FIRE => Some("lift is in FIRE mode"),
                LiftState::MODE_EMERGENCY => Some("lift is in EMERGENCY mode"),
                LiftState::MODE_OFFLINE => Some("lift is OFFLINE"),
                _ => None,
            },
            Device::Dispenser | Device::Ingestor => {
                (mode == i64::from(WorkcellState::OFFLINE)).then_some("workcell is OFFLINE")
            }
        }
    }
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct State {
    #[serde(with = "crate::ops::snapshot::static_str::option")]
    unhealthy: Option<crate::ops::snapshot::StaticStr>,
    dead: bool,
    seen: bool,
}

struct Logic {
    device: Device,
    window: Time,
    message: String,
}

impl KeyedLogic for Logic {
    type Key = Name;
    /// The whole sample, not just its mode: two states with the same mode would cancel out as
    /// the same value, and the later one would not keep the device alive.
    type In = DeviceSample;
    type Out = Output;
    type State = State;

    fn input(&self, s: &mut State, _key: &Name, sample: &DeviceSample, ctx: &mut Ctx<Output>) {
        let sample = sample.clone();
        s.seen = true;
        s.dead = false;
        s.unhealthy = self.device.unhealthy(sample.mode);
        ctx.set_timer(ctx.t + self.window);
    }

    fn timer(&self, s: &mut State, _key: &Name, _ctx: &mut Ctx<Output>) {
        s.dead = true;
    }

    fn output(&self, s: &State, key: &Name, out: &mut Vec<Output>) {
        if !s.seen {
            return;
        }
        let room = room(self.device.room(), &[key]);
        out.push(if s.dead {
            health_output(room, key, Health::Dead, Some(&self.message))
        } else if let Some(why) = s.unhealthy {
            health_output(room, key, Health::Unhealthy, Some(why))
        } else {
            health_output(room, key, Health::Healthy, None)
        });
    }
}

fn build<'s>(
    c: Coll<'s, (Name, DeviceSample)>,
    device: Device,
    config: &Config,
) -> Coll<'s, Output> {
    let window = config.liveliness_ms;
    c.keyed_process(
        "DeviceHealth",
        Logic {
            device,
            window,
            message: format!("no state received for {} s", window as f64 / 1000.0),
        },
    )
}

fn doors<'s>(i: &Inputs<'s>, c: &super::Config) -> Coll<'s, Output> {
    build(i.doors.clone(), Device::Door, &c.get(&CONFIG))
}

fn lifts<'s>(i: &Inputs<'s>, c: &super::Config) -> Coll<'s, Output> {
    let samples = i.lifts.clone().map(|(n, l)| {
        let sample = DeviceSample {
            mode: i64::from(l.mode),
            payload: l.payload,
        };
        (n, sample)
    });
    build(samples, Device::Lift, &c.get(&CONFIG))
}

fn dispensers<'s>(i: &Inputs<'s>, c: &super::Config) -> Coll<'s, Output> {
    build(i.dispensers.clone(), Device::Dispenser, &c.get(&CONFIG))
}

fn ingestors<'s>(i: &Inputs<'s>, c: &super::Config) -> Coll<'s, Output> {
    build(i.ingestors.clone(), Device::Ingestor, &c.get(&CONFIG))
}

const fn descriptor(
    name: &'static str,
    device: Device,
    build: for<'s> fn(&Inputs<'s>, &super::Config) -> Coll<'s, Output>,
) -> Descriptor {
    Descriptor {
        name,
        room: device.room(),
        kind: RoomKind::State,
        persistence: Persistence::History,
        inputs: device.inputs(),
        config: CONFIG.spec(),
        robot: None,
        build,
    }
}

pub const DOOR: Descriptor = descriptor("door_health", Device::Door, doors);
pub const LIFT: Descriptor = descriptor("lift_health", Device::Lift, lifts);
pub const DISPENSER: Descriptor = descriptor("dispenser_health", Device::Dispenser, dispensers);
pub const INGESTOR: Descriptor = descriptor("ingestor_health", Device::Ingestor, ingestors);

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::derived::reference;
    use crate::harness::run_upsert;

    fn h(name: &str, health: Health, msg: Option<&str>) -> Output {
        health_output(format!("/doors/{name}/health"), name, health, msg)
    }

    /// A door state: its mode and its own stamp (`door_time`), which makes every message differ.
    fn sample(mode: i64, stamp: Time) -> DeviceSample {
        DeviceSample {
            mode,
            payload: Payload::of(&json!({"current_mode": {"value": mode}, "door_time": stamp})),
        }
    }

    fn run_samples(
        workers: usize,
        inputs: Vec<(&str, DeviceSample, Time)>,
        until: Time,
    ) -> Vec<(Output, Time, Diff)> {
        let inputs = inputs
            .into_iter()
            .map(|(n, s, t)| (Name::from(n), s, t))
            .collect();
        run_upsert(workers, inputs, until, |c| {
            build(c, Device::Door, &Config::default())
        })
    }

    /// Runs on door states stamped with their logical time (each one a new message).
    fn run(
        workers: usize,
        inputs: Vec<(&str, i64, Time)>,
        until: Time,
    ) -> Vec<(Output, Time, Diff)> {
        let inputs = inputs
            .into_iter()
            .map(|(n, m, t)| (n, sample(m, t), t))
            .collect();
        run_samples(workers, inputs, until)
    }

    const DEAD: &str = "no state received for 10 s";

    #[test]
    fn healthy_then_dead_after_the_window_then_back() {
        // Heard at 1000 and 2000; nothing until 15000: Dead at exactly 12000.
        let out = run(
            1,
            vec![("d", 0, 1000), ("d", 2, 2000), ("d", 0, 15000)],
            20000,
        );
        assert_eq!(
            out,
            vec![
                (h("d", Health::Healthy, None), 1000, 1),
                (h("d", Health::Dead, Some(DEAD)), 12000, 1),
                (h("d", Health::Healthy, None), 12000, -1),
                (h("d", Health::Dead, Some(DEAD)), 15000, -1),
                (h("d", Health::Healthy, None), 15000, 1),
            ]
        );
    }

    #[test]
    fn a_message_exactly_at_the_deadline_keeps_it_alive() {
        // The same mode in a new message: heard, although the mode did not change.
        let out = run(1, vec![("d", 0, 1000), ("d", 0, 11000)], 15000);
        assert_eq!(out, vec![(h("d", Health::Healthy, None), 1000, 1)]);
    }

    #[test]
    fn an_identical_re_send_is_a_duplicate_not_a_heartbeat() {
        // The message of 1000 re-sent verbatim at 5000: not heard again, Dead at 11000.
        let out = run_samples(
            1,
            vec![("d", sample(0, 1000), 1000), ("d", sample(0, 1000), 5000)],
            15000,
        );
        assert_eq!(
            out,
            vec![
                (h("d", Health::Healthy, None), 1000, 1),
                (h("d", Health::Dead, Some(DEAD)), 11000, 1),
                (h("d", Health::Healthy, None), 11000, -1),
            ]
        );
    }

    #[test]
    fn unhealthy_modes_and_worst_wins() {
        let out = run(
            1,
            vec![("d", 3, 1000), ("d", 4, 2000), ("d", 0, 3000)],
            20000,
        );
        assert_eq!(
            out,
            vec![
                (h("d", Health::Unhealthy, Some("door is OFFLINE")), 1000, 1),
                (h("d", Health::Unhealthy, Some("door is OFFLINE")), 2000, -1),
                (
                    h("d", Health::Unhealthy, Some("door mode is UNKNOWN")),
                    2000,
                    1
                ),
                (h("d", Health::Healthy, None), 3000, 1),
                (
                    h("d", Health::Unhealthy, Some("door mode is UNKNOWN")),
                    3000,
                    -1
                ),
                (h("d", Health::Dead, Some(DEAD)), 13000, 1),
                (h("d", Health::Healthy, None), 13000, -1),
            ]
        );
    }

    #[test]
    fn entity_appearing_late_and_several_workers_agree() {
        let inputs = vec![
            ("a", 0, 1000),
            ("b", 0, 30000),
            ("a", 0, 30000),
            ("c", 3, 30010),
        ];
        let one = run(1, inputs.clone(), 50000);
        assert_eq!(one, run(3, inputs, 50000));
        assert!(one.contains(&(h("b", Health::Healthy, None), 30000, 1)));
        assert!(one.contains(&(h("a", Health::Dead, Some(DEAD)), 11000, 1)));
    }

    #[test]
    fn lift_states_with_an_unchanged_mode_keep_the_lift_alive() {
        // The real wiring: lift states (each with its own payload) through `Inputs::split`.
        let lift = |mode: u8, t: Time| {
            let sample = LiftSample {
                mode,
                door_state: 0,
                current_floor: "L1".into(),
                session_id: Name::default(),
                payload: Payload::of(&json!({"current_mode": mode, "lift_time": t})),
            };
            ((Kind::Lift, Name::from("l")), InputValue::Lift(sample), t)
        };
        let fire = LiftState::MODE_FIRE;
        let agv = LiftState::MODE_AGV;
        let inputs = vec![
            lift(agv, 0),
            lift(agv, 10000),
            lift(fire, 15000),
            lift(fire, 25000),
        ];
        let out = run_upsert(1, inputs, 40000, |c| {
            lifts(&Inputs::split(c), &super::super::Config::default())
        });
        let l = |health, msg| health_output("/lifts/l/health".into(), "l", health, msg);
        assert_eq!(
            out,
            vec![
                (l(Health::Healthy, None), 0, 1),
                (l(Health::Healthy, None), 15000, -1),
                (l(Health::Unhealthy, Some("lift is in FIRE mode")), 15000, 1),
                (
                    l(Health::Dead, Some("no state received for 10 s")),
                    35000,
                    1
                ),
                (
                    l(Health::Unhealthy, Some("lift is in FIRE mode")),
                    35000,
                    -1
                ),
            ]
        );
    }

    /// Brute force: each door heard at or before `t` is Dead if its last new message is at least
    /// a window old, else Unhealthy or Healthy by that message's mode.
    fn snapshot(window: Time, past: &[(Name, DeviceSample, Time)], t: Time) -> Vec<Output> {
        let dead = format!("no state received for {} s", window as f64 / 1000.0);
        let mut out = Vec::new();
        for (door, s, heard) in reference::latest(past) {
            out.push(if t >= heard + window {
                h(&door, Health::Dead, Some(&dead))
            } else if s.mode == 3 {
                h(&door, Health::Unhealthy, Some("door is OFFLINE"))
            } else if s.mode == 4 {
                h(&door, Health::Unhealthy, Some("door mode is UNKNOWN"))
            } else {
                h(&door, Health::Healthy, None)
            });
        }
        out
    }

    /// Times advance by steps biased to the window (100 ms) and its edges; a door sometimes
    /// re-sends its previous message verbatim (a duplicate).
    fn histories() -> impl Strategy<Value = Vec<(Name, DeviceSample, Time)>> {
        let step = prop::sample::select(vec![0, 10, 20, 50, 90, 100, 110, 300]);
        let door = prop::sample::select(vec!["a", "b", "c"]);
        let mode = prop::sample::select(vec![0i64, 2, 3, 4]);
        let resend = prop::bool::weighted(0.25);
        prop::collection::vec((step, door, mode, resend), 0..30).prop_map(|v| {
            let mut t = 0;
            let mut h: Vec<(Name, DeviceSample, Time)> = Vec::new();
            for (step, door, mode, resend) in v {
                t += step;
                let previous = h.iter().rev().find(|(d, _, _)| d == door);
                let s = match previous {
                    Some((_, s, _)) if resend => s.clone(),
                    _ => sample(mode, t),
                };
                h.push((Name::from(door), s, t));
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
            let new = reference::upserts(&h);
            let want = reference::states(&new, until, 10, |past, t| snapshot(window, past, t));
            let config = Config { liveliness_ms: window };
            let run = |workers| {
                let c = config.clone();
                run_upsert(workers, h.clone(), until, move |doors| build(doors, Device::Door, &c))
            };
            prop_assert_eq!(&run(1), &want);
            prop_assert_eq!(&run(2), &want);
        }
    }
}
