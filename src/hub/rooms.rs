//! The rooms rmf-dash serves: every room template of the derived-event registry (which includes
//! the COMPAT.md rooms), with its kind. A template's `{...}` segment matches one non-empty path
//! segment.

use rmf_dash_dataflows::derived::{RoomKind, registry};

pub struct Kinds {
    templates: Vec<(Vec<&'static str>, RoomKind)>,
}

impl Default for Kinds {
    fn default() -> Self {
        Self::new()
    }
}

impl Kinds {
    pub fn new() -> Self {
        let mut templates: Vec<(Vec<&'static str>, RoomKind)> = registry()
            .into_iter()
            .map(|d| (d.room.split('/').collect(), d.kind))
            .collect();
        templates.sort();
        templates.dedup();
        Kinds { templates }
    }

    /// The kind of `room`, `None` when no template matches.
    pub fn kind(&self, room: &str) -> Option<RoomKind> {
        if room.len() > 512 || !room.starts_with('/') {
            return None;
        }
        let segments: Vec<&str> = room.split('/').collect();
        self.templates
            .iter()
            .find(|(t, _)| {
                t.len() == segments.len()
                    && t.iter().zip(&segments).all(|(t, s)| {
                        if t.starts_with('{') {
                            !s.is_empty()
                        } else {
                            t == s
                        }
                    })
            })
            .map(|(_, k)| *k)
    }

    /// Every template (for docs and errors).
    pub fn templates(&self) -> Vec<String> {
        self.templates.iter().map(|(t, _)| t.join("/")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_templates_by_segment() {
        let k = Kinds::new();
        assert_eq!(k.kind("/doors/main_door/state"), Some(RoomKind::State));
        assert_eq!(
            k.kind("/robots/tinyRobot/tinyRobot1/health"),
            Some(RoomKind::State)
        );
        assert_eq!(k.kind("/alerts/requests"), Some(RoomKind::Stream));
        assert_eq!(k.kind("/tasks/t1/log"), Some(RoomKind::Stream));
        assert_eq!(k.kind("/building_map"), Some(RoomKind::State));
        assert_eq!(k.kind("/doors//state"), None);
        assert_eq!(k.kind("/doors/a/b/state"), None);
        assert_eq!(k.kind("/nope"), None);
        assert_eq!(k.kind("doors/a/state"), None);
    }
}
