//! Scenario switches: the situations the derived events must catch, injected into a generated
//! trace at chosen times, and the manifest of what was injected (stored in the MCAP file as
//! metadata `rmf_dash.scenario.<n>` so tests know what to expect and when).

use std::collections::BTreeMap;
use std::str::FromStr;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScenarioKind {
    /// A door stays OPEN for 90 s (held by an obstruction).
    DoorHeldOpen,
    /// A robot with status working stops moving for 120 s.
    RobotStuck,
    /// A robot's battery drains below 20 % and stays there 90 s before it charges.
    BatteryLow,
    /// A door stops publishing its state for 30 s.
    DoorSilent,
    /// A lift stops publishing its state for 30 s.
    LiftSilent,
    /// A lift is in fire mode for 60 s.
    LiftFire,
    /// A robot reports an adapter error (status error, mode ADAPTER_ERROR, an issue) for 30 s.
    AdapterError,
}

impl ScenarioKind {
    pub const ALL: [ScenarioKind; 7] = [
        ScenarioKind::DoorHeldOpen,
        ScenarioKind::RobotStuck,
        ScenarioKind::BatteryLow,
        ScenarioKind::DoorSilent,
        ScenarioKind::LiftSilent,
        ScenarioKind::LiftFire,
        ScenarioKind::AdapterError,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ScenarioKind::DoorHeldOpen => "door-held-open",
            ScenarioKind::RobotStuck => "robot-stuck",
            ScenarioKind::BatteryLow => "battery-low",
            ScenarioKind::DoorSilent => "door-silent",
            ScenarioKind::LiftSilent => "lift-silent",
            ScenarioKind::LiftFire => "lift-fire",
            ScenarioKind::AdapterError => "adapter-error",
        }
    }

    /// How long the situation lasts, in ms.
    pub fn duration_ms(self) -> u64 {
        match self {
            ScenarioKind::DoorHeldOpen => 90_000,
            ScenarioKind::RobotStuck => 120_000,
            // Drain to below 20 % over ~60 s, hold 90 s.
            ScenarioKind::BatteryLow => 150_000,
            ScenarioKind::DoorSilent | ScenarioKind::LiftSilent => 30_000,
            ScenarioKind::LiftFire => 60_000,
            ScenarioKind::AdapterError => 30_000,
        }
    }

    /// Time the trace needs after the start for the situation and its aftermath to be observed.
    pub fn needs_ms(self) -> u64 {
        match self {
            // Charging back above the hysteresis threshold takes a while.
            ScenarioKind::BatteryLow => self.duration_ms() + 60_000,
            _ => self.duration_ms() + 15_000,
        }
    }

    pub fn needs_lift(self) -> bool {
        matches!(self, ScenarioKind::LiftSilent | ScenarioKind::LiftFire)
    }

    pub fn needs_door(self) -> bool {
        matches!(self, ScenarioKind::DoorHeldOpen | ScenarioKind::DoorSilent)
    }
}

/// A requested injection: `NAME` or `NAME@TIME` (TIME like `90s`, `2m`); `all` for every kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioSpec {
    pub kind: ScenarioKind,
    /// Start, in ms from the beginning of the trace; chosen by the generator when absent.
    pub at_ms: Option<u64>,
}

/// Parses one `--scenario` value into specs (`all` expands to every kind).
pub fn parse_specs(s: &str) -> Result<Vec<ScenarioSpec>, String> {
    let (name, at) = match s.split_once('@') {
        Some((n, t)) => (n, Some(t)),
        None => (s, None),
    };
    let at_ms = at
        .map(|t| {
            humantime::parse_duration(t)
                .map(|d| d.as_millis() as u64)
                .map_err(|e| format!("invalid time {t:?} in --scenario {s}: {e}"))
        })
        .transpose()?;
    if name == "all" {
        if at_ms.is_some() {
            return Err(
                "--scenario all takes no time; give each scenario its own NAME@TIME".into(),
            );
        }
        return Ok(ScenarioKind::ALL
            .iter()
            .map(|&kind| ScenarioSpec { kind, at_ms: None })
            .collect());
    }
    let kind = ScenarioKind::from_str(name)?;
    Ok(vec![ScenarioSpec { kind, at_ms }])
}

impl FromStr for ScenarioKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ScenarioKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = ScenarioKind::ALL.iter().map(|k| k.name()).collect();
                format!("unknown scenario {s:?}; known: all, {}", names.join(", "))
            })
    }
}

/// What was injected, as it happened in the simulation.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Injection {
    pub kind: ScenarioKind,
    /// `door_name`, `lift_name` or `fleet/robot`.
    pub entity: String,
    /// Log time (ns) at which the situation started and ended.
    pub start_ns: u64,
    pub end_ns: Option<u64>,
    /// Kind-specific details (e.g. when the battery first went below 20 %).
    pub details: BTreeMap<String, String>,
}

impl Injection {
    /// The MCAP metadata record of this injection.
    pub fn metadata(&self) -> BTreeMap<String, String> {
        let mut m = self.details.clone();
        m.insert("kind".into(), self.kind.name().into());
        m.insert("entity".into(), self.entity.clone());
        m.insert("start_ns".into(), self.start_ns.to_string());
        if let Some(e) = self.end_ns {
            m.insert("end_ns".into(), e.to_string());
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_specs() {
        assert_eq!(
            parse_specs("robot-stuck@90s").unwrap(),
            vec![ScenarioSpec {
                kind: ScenarioKind::RobotStuck,
                at_ms: Some(90_000)
            }]
        );
        assert_eq!(parse_specs("all").unwrap().len(), 7);
        assert!(
            parse_specs("nope")
                .unwrap_err()
                .contains("unknown scenario")
        );
        assert!(parse_specs("lift-fire@soon").is_err());
    }
}
