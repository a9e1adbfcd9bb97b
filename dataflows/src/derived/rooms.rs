//! Which registered event a room belongs to: every room template of the registry, matched by
//! path segment (a template's `{...}` segment matches one non-empty segment). The hub asks for a
//! room's kind, the store for its persistence.

use super::{Descriptor, RoomKind, registry};

/// The registry's room templates, split into segments once.
pub struct Rooms {
    templates: Vec<(Vec<&'static str>, Descriptor)>,
}

impl Default for Rooms {
    fn default() -> Self {
        Self::new()
    }
}

/// The longest room name matched (longer ones belong to no event).
pub const MAX_ROOM_LEN: usize = 512;

impl Rooms {
    pub fn new() -> Self {
        let templates = registry()
            .into_iter()
            .map(|d| (d.room.split('/').collect(), d))
            .collect();
        Rooms { templates }
    }

    /// The event whose template `room` matches; `None` when none does.
    pub fn event(&self, room: &str) -> Option<&Descriptor> {
        if room.len() > MAX_ROOM_LEN || !room.starts_with('/') {
            return None;
        }
        let count = room.split('/').count();
        self.templates
            .iter()
            .find(|(t, _)| t.len() == count && segments_match(t, room))
            .map(|(_, d)| d)
    }

    /// How `room` is delivered; `None` when it belongs to no event.
    pub fn kind(&self, room: &str) -> Option<RoomKind> {
        self.event(room).map(|d| d.kind)
    }
}

/// Whether `room` is an instance of the room template `template`.
pub fn matches(template: &str, room: &str) -> bool {
    let t: Vec<&str> = template.split('/').collect();
    room.len() <= MAX_ROOM_LEN && t.len() == room.split('/').count() && segments_match(&t, room)
}

fn segments_match(template: &[&str], room: &str) -> bool {
    template.iter().zip(room.split('/')).all(|(t, s)| {
        if t.starts_with('{') {
            !s.is_empty()
        } else {
            *t == s
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_templates_by_segment() {
        let r = Rooms::new();
        let name = |room| r.event(room).map(|d| d.name);
        assert_eq!(name("/doors/main_door/state"), Some("door_state"));
        assert_eq!(name("/robots/tinyRobot/r1/health"), Some("robot_health"));
        assert_eq!(name("/alerts/requests"), Some("alert_requests"));
        assert_eq!(name("/tasks/t1/log"), Some("task_log"));
        assert_eq!(name("/building_map"), Some("building_map"));
        for none in [
            "/doors//state",
            "/doors/a/b/state",
            "/nope",
            "doors/a/state",
            "",
        ] {
            assert_eq!(name(none), None, "{none}");
        }
        assert_eq!(name(&format!("/doors/{}/state", "d".repeat(600))), None);
        assert!(matches("/doors/{name}/state", "/doors/a/state"));
        assert!(!matches("/doors/{name}/state", "/doors/a/b/state"));
    }
}
