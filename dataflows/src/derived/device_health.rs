//! `door_health`, `lift_health`, `dispenser_health`, `ingestor_health`: whether a device is
//! `Healthy`, `Unhealthy` (its mode says so) or `Dead` (nothing heard for the liveliness window),
//! the worst winning, with a message saying why.
//!
//! Inputs: the device state upserts. Unhealthy modes: door OFFLINE or UNKNOWN; lift FIRE,
//! EMERGENCY or OFFLINE; dispenser or ingestor OFFLINE. Rooms `/doors/{name}/health`,
//! `/lifts/{name}/health`, `/dispensers/{guid}/health`, `/ingestors/{guid}/health`, value
//! `{id_, health_status, health_message}` (the shape older rmf-web dashboards used).

use serde::Deserialize;
use serde_json::json;

use super::*;
use crate::model::ros::{DoorMode, LiftState, WorkcellState};
use crate::ops::keyed::{Ctx, KeyedLogic, KeyedProcess};

#[derive(Debug, Clone, Deserialize)]
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

/// The three health states, worst last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
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

#[derive(Debug, Default)]
pub struct State {
    unhealthy: Option<&'static str>,
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
    type In = i64;
    type Out = Output;
    type State = State;

    fn input(&self, s: &mut State, _key: &Name, mode: i64, ctx: &mut Ctx<Output>) {
        s.seen = true;
        s.dead = false;
        s.unhealthy = self.device.unhealthy(mode);
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

fn build<'s>(c: Coll<'s, (Name, i64)>, device: Device, config: &Config) -> Coll<'s, Output> {
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

fn modes<'s>(c: Coll<'s, (Name, DeviceSample)>) -> Coll<'s, (Name, i64)> {
    c.map(|(n, s)| (n, s.mode))
}

fn doors<'s>(i: &Inputs<'s>, c: &super::Config) -> Coll<'s, Output> {
    build(modes(i.doors.clone()), Device::Door, &c.device_health)
}

fn lifts<'s>(i: &Inputs<'s>, c: &super::Config) -> Coll<'s, Output> {
    let modes = i.lifts.clone().map(|(n, l)| (n, i64::from(l.mode)));
    build(modes, Device::Lift, &c.device_health)
}

fn dispensers<'s>(i: &Inputs<'s>, c: &super::Config) -> Coll<'s, Output> {
    build(
        modes(i.dispensers.clone()),
        Device::Dispenser,
        &c.device_health,
    )
}

fn ingestors<'s>(i: &Inputs<'s>, c: &super::Config) -> Coll<'s, Output> {
    build(
        modes(i.ingestors.clone()),
        Device::Ingestor,
        &c.device_health,
    )
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
        max_lookback_ms: 10_000,
        build,
    }
}

pub const DOOR: Descriptor = descriptor("door_health", Device::Door, doors);
pub const LIFT: Descriptor = descriptor("lift_health", Device::Lift, lifts);
pub const DISPENSER: Descriptor = descriptor("dispenser_health", Device::Dispenser, dispensers);
pub const INGESTOR: Descriptor = descriptor("ingestor_health", Device::Ingestor, ingestors);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::run_upsert;

    fn h(name: &str, health: Health, msg: Option<&str>) -> Output {
        health_output(format!("/doors/{name}/health"), name, health, msg)
    }

    fn run(
        workers: usize,
        inputs: Vec<(&str, i64, Time)>,
        until: Time,
    ) -> Vec<(Output, Time, Diff)> {
        let inputs = inputs
            .into_iter()
            .map(|(n, m, t)| (Name::from(n), m, t))
            .collect();
        run_upsert(workers, inputs, until, |c| {
            build(c, Device::Door, &Config::default())
        })
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
        let out = run(1, vec![("d", 0, 1000), ("d", 0, 11000)], 15000);
        assert_eq!(out, vec![(h("d", Health::Healthy, None), 1000, 1)]);
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
}
