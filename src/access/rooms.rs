//! Which rooms, and REST reads of the same paths, a role restricts (`--room-permission
//! PREFIX=ACTION`), and the decision for one reader. Every door that reads rooms asks
//! [`RoomAccess::may_read`]: socket.io subscriptions, REST reads (main process and proxies), the
//! replication link `/_replicate`, and the live view's list of entities. Where a reader's grants
//! come from is a [`GrantSource`]: the users' store on the main process, the main process's
//! `/user` and `/permissions` (asked with the client's own token) on a proxy. Without a rule (the
//! default), any authenticated user reads every room, as with rmf-web.
//!
//! A room restricted by a rule needs the rule's action in the site-wide group `""` (admins may
//! read everything). The rule with the longest matching prefix decides. A connection's grants
//! are read once, at its first subscription to a restricted room, and kept for the connection's
//! life: a change of roles applies when the client reconnects. A REST read reads the grants for
//! that request.

use std::collections::BTreeSet;
use std::str::FromStr;
use std::sync::Arc;

use tokio::sync::OnceCell;

use futures_util::future::BoxFuture;

use super::groups::{SITE_GROUP, check_name};

/// Most rules accepted.
pub const MAX_RULES: usize = 256;

/// One rule: rooms whose name starts with `prefix` need `action`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomRule {
    pub prefix: String,
    pub action: String,
}

impl FromStr for RoomRule {
    type Err = String;

    /// `PREFIX=ACTION`, like `/alerts=alert_read`; the prefix starts with `/`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (prefix, action) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?}: expected PREFIX=ACTION, like /alerts=alert_read"))?;
        if !prefix.starts_with('/') {
            return Err(format!("{s:?}: the room prefix must start with /"));
        }
        check_name("action", action, false).map_err(|e| format!("{s:?}: {e}"))?;
        check_name("room prefix", prefix, false).map_err(|e| format!("{s:?}: {e}"))?;
        Ok(RoomRule {
            prefix: prefix.to_string(),
            action: action.to_string(),
        })
    }
}

/// What one user may read: everything (admin), or the rooms of the site-wide actions it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grants {
    pub admin: bool,
    pub actions: BTreeSet<String>,
}

impl Grants {
    /// The grants of a user from its permissions, as `(authz_grp, action)`.
    pub fn from_permissions(
        admin: bool,
        permissions: impl IntoIterator<Item = (String, String)>,
    ) -> Self {
        Grants {
            admin,
            actions: permissions
                .into_iter()
                .filter(|(group, _)| group == SITE_GROUP)
                .map(|(_, action)| action)
                .collect(),
        }
    }

    pub fn allows(&self, action: &str) -> bool {
        self.admin || self.actions.contains(action)
    }
}

/// Where a reader's grants come from.
pub trait GrantSource: Send + Sync {
    /// The grants of `username`; `token` is the client's JWT (a proxy asks upstream with it).
    fn grants<'a>(
        &'a self,
        username: &'a str,
        token: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Grants, String>>;

    /// Whether [`GrantSource::grants`] needs the client's token.
    fn needs_token(&self) -> bool {
        false
    }
}

/// The rules and where grants come from.
pub struct RoomAccess {
    rules: Vec<RoomRule>,
    source: Arc<dyn GrantSource>,
}

impl RoomAccess {
    /// `None` without rules: nothing is restricted.
    pub fn new(rules: Vec<RoomRule>, source: Arc<dyn GrantSource>) -> Option<Arc<Self>> {
        (!rules.is_empty()).then(|| Arc::new(RoomAccess { rules, source }))
    }

    /// Whether grants need the client's token (a proxy asks upstream with it).
    pub fn needs_token(&self) -> bool {
        self.source.needs_token()
    }

    /// The action reading `room` needs: the longest matching rule's.
    pub fn action_for(&self, room: &str) -> Option<&str> {
        self.rules
            .iter()
            .filter(|r| room.starts_with(&r.prefix))
            .max_by_key(|r| r.prefix.len())
            .map(|r| r.action.as_str())
    }

    /// The grants of `username` (`token`: the client's JWT, for a proxy).
    async fn grants(&self, username: &str, token: Option<&str>) -> Result<Grants, String> {
        self.source.grants(username, token).await
    }

    /// Whether `username` may read `name` (a room, or a REST path named like one). `grants`
    /// holds the user's grants once read (per connection on socket.io, per request on REST);
    /// `token` is the client's JWT, for a proxy.
    pub async fn may_read(
        &self,
        grants: &OnceCell<Grants>,
        username: &str,
        token: Option<&str>,
        name: &str,
    ) -> Result<(), Refusal> {
        let Some(action) = self.action_for(name) else {
            return Ok(());
        };
        let grants = grants
            .get_or_try_init(|| self.grants(username, token))
            .await
            .map_err(|e| {
                Refusal::Unavailable(format!(
                    "the permissions of {username} are unavailable: {e}"
                ))
            })?;
        if grants.allows(action) {
            Ok(())
        } else {
            tracing::info!(%username, name, action, "room rules: read refused (no permission)");
            Err(Refusal::Forbidden(forbidden(username, name, action)))
        }
    }
}

/// Why a read was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The user lacks the permission (the text names it).
    Forbidden(String),
    /// The user's grants could not be read.
    Unavailable(String),
}

/// The refusal of a restricted room.
pub fn forbidden(username: &str, room: &str, action: &str) -> String {
    format!(
        "user {username} may not read {room}: it needs the permission \
         {{authz_grp: \"\", action: \"{action}\"}} through one of its roles"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoGrants;

    impl GrantSource for NoGrants {
        fn grants<'a>(
            &'a self,
            _: &'a str,
            _: Option<&'a str>,
        ) -> BoxFuture<'a, Result<Grants, String>> {
            Box::pin(async { Err("none".into()) })
        }
    }

    fn access(rules: &[&str]) -> RoomAccess {
        RoomAccess {
            rules: rules.iter().map(|r| r.parse().expect("rule")).collect(),
            source: Arc::new(NoGrants),
        }
    }

    #[test]
    fn the_longest_matching_prefix_decides() {
        let a = access(&[
            "/alerts=alert_read",
            "/alerts/requests=alert_admin",
            "/=all",
        ]);
        assert_eq!(a.action_for("/alerts/responses"), Some("alert_read"));
        assert_eq!(a.action_for("/alerts/requests"), Some("alert_admin"));
        assert_eq!(a.action_for("/doors/d1/state"), Some("all"));
        let a = access(&["/tasks=task_read"]);
        assert_eq!(a.action_for("/doors/d1/state"), None);
    }

    #[test]
    fn rules_are_checked() {
        assert!("alerts=alert_read".parse::<RoomRule>().is_err());
        assert!("/alerts".parse::<RoomRule>().is_err());
        assert!("/alerts=".parse::<RoomRule>().is_err());
        assert_eq!(
            "/a=b=c".parse::<RoomRule>(),
            Ok(RoomRule {
                prefix: "/a".into(),
                action: "b=c".into()
            })
        );
    }

    #[test]
    fn grants_hold_site_wide_actions_only() {
        let p = |g: &str, a: &str| (g.to_string(), a.to_string());
        let g = Grants::from_permissions(false, vec![p("", "alert_read"), p("west", "task_read")]);
        assert!(g.allows("alert_read"));
        assert!(!g.allows("task_read"));
        assert!(Grants::from_permissions(true, []).allows("anything"));
    }
}
