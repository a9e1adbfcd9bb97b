//! Groups (`authz_grp`), as rmf-web's authorization model, and the names permissions are made
//! of. A task belongs to one group: the value of its booking label `authz_grp=<group>` (no such
//! label: the site-wide group `""`). A task action (`task_*`) needs the permission in the task's
//! group; a permission in the site-wide group covers every group; every other action needs its
//! permission in the site-wide group.
//!
//! The group of an action on an existing task is read from the task as stored (its present
//! state's `booking.labels`, [`group_of_state`]), never from what the client sends (DESIGN.md
//! invariant 11).

use serde_json::Value;

/// The site-wide group: the group of the non-task commands, and of tasks without a group
/// label; a permission in it covers every group.
pub const SITE_GROUP: &str = "";

/// The booking label key that names a task's group.
pub const GROUP_LABEL: &str = "authz_grp";

/// Longest user, role, group or action name accepted.
pub const MAX_NAME: usize = 255;

/// Checks a user, role, group or action name: non-empty (but groups), bounded, printable.
pub fn check_name(what: &str, name: &str, allow_empty: bool) -> Result<(), String> {
    if name.is_empty() && !allow_empty {
        return Err(format!("{what} must not be empty"));
    }
    if name.len() > MAX_NAME {
        return Err(format!("{what} is longer than {MAX_NAME} bytes"));
    }
    if name.chars().any(char::is_control) {
        return Err(format!("{what} contains control characters"));
    }
    Ok(())
}

/// The group of a task from its labels (`authz_grp=<group>`, else [`SITE_GROUP`]).
pub fn task_group(labels: Option<&[String]>) -> String {
    labels
        .into_iter()
        .flatten()
        .find_map(|l| {
            l.split_once('=')
                .filter(|(k, _)| *k == GROUP_LABEL)
                .map(|(_, v)| v.to_string())
        })
        .unwrap_or_else(|| SITE_GROUP.to_string())
}

/// The strings of a JSON array of labels.
pub fn labels_of(v: Option<&Value>) -> Option<Vec<String>> {
    v?.as_array().map(|a| {
        a.iter()
            .filter_map(|l| l.as_str().map(str::to_string))
            .collect()
    })
}

/// The group of a task from its stored state (a TaskState document; `None`: the task has no
/// state here, so the site-wide group).
pub fn group_of_state(state: Option<&Value>) -> String {
    task_group(labels_of(state.and_then(|s| s.pointer("/booking/labels"))).as_deref())
}

/// The 403 detail of a refused action.
pub fn forbidden(username: &str, group: &str, action: &str) -> String {
    format!(
        "user {username} may not do this: it needs the permission \
         {{authz_grp: \"{group}\", action: \"{action}\"}} through one of its roles"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_s_group_is_its_authz_grp_label() {
        let labels = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(task_group(None), "");
        assert_eq!(
            task_group(Some(&labels(&["zone=a", "authz_grp=west"]))),
            "west"
        );
        assert_eq!(task_group(Some(&labels(&["authz_grp"]))), "");
        assert_eq!(task_group(Some(&labels(&["authz_grp="]))), "");
    }

    #[test]
    fn a_stored_task_s_group_is_read_from_its_booking() {
        let state = serde_json::json!({"booking": {"labels": ["authz_grp=east"]}});
        assert_eq!(group_of_state(Some(&state)), "east");
        assert_eq!(group_of_state(None), "");
        assert_eq!(
            group_of_state(Some(&serde_json::json!({"booking": {}}))),
            ""
        );
    }

    #[test]
    fn names_are_bounded_and_printable() {
        assert!(check_name("role", "", false).is_err());
        assert!(check_name("group", "", true).is_ok());
        assert!(check_name("role", &"r".repeat(MAX_NAME + 1), false).is_err());
        assert!(check_name("role", "a\nb", false).is_err());
    }
}
