//! The in-memory backend of [`super::Users`] (`--no-db`): users, roles, permissions and favorite
//! tasks for the life of the process, with the PostgreSQL backend's semantics (same errors, same
//! orderings: names sorted by bytes as the store's `C` collation, favorites oldest first; a
//! deleted user's or role's memberships and a deleted role's permissions go with it, a deleted
//! user's favorites stay).
//!
//! What anyone with a token can grow is bounded: users (one per username seen, [`MAX_USERS`]) and
//! favorites ([`super::MAX_FAVORITES_PER_USER`] each, as the store, and [`MAX_FAVORITE_BYTES`] in
//! all). So is what admins grow: [`MAX_ROLES`], [`MAX_MEMBERSHIPS`], [`MAX_PERMISSIONS`]. Past a
//! bound the request fails with [`UsersError::Full`] (507).
//!
//! One `std` mutex guards the state; it is never held across an `.await`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard};

use super::{MAX_FAVORITES_PER_USER, Permission, UserInfo, UsersError};

/// Most users kept.
pub const MAX_USERS: usize = 10_000;
/// Most roles kept.
pub const MAX_ROLES: usize = 10_000;
/// Most role memberships kept, over all users.
pub const MAX_MEMBERSHIPS: usize = 100_000;
/// Most permissions kept, over all roles.
pub const MAX_PERMISSIONS: usize = 100_000;
/// Most bytes of favorite task bodies kept, over all users.
pub const MAX_FAVORITE_BYTES: usize = 256 << 20;

struct User {
    is_admin: bool,
    roles: BTreeSet<String>,
}

struct Favorite {
    id: String,
    body: String,
}

#[derive(Default)]
struct State {
    users: BTreeMap<String, User>,
    /// Role name -> its permissions `(authz_grp, action)`.
    roles: BTreeMap<String, BTreeSet<(String, String)>>,
    /// Username -> favorites, oldest first.
    favorites: HashMap<String, Vec<Favorite>>,
    /// Favorite id -> its user (ids are unique over all users).
    favorite_owner: HashMap<String, String>,
    favorite_bytes: usize,
}

fn full(what: &str, max: usize) -> UsersError {
    UsersError::Full(format!(
        "at most {max} {what} are kept in memory (this server runs with --no-db)"
    ))
}

impl State {
    fn user(&self, username: &str) -> Result<&User, UsersError> {
        self.users
            .get(username)
            .ok_or_else(|| UsersError::NoUser(username.into()))
    }

    fn user_mut(&mut self, username: &str) -> Result<&mut User, UsersError> {
        self.users
            .get_mut(username)
            .ok_or_else(|| UsersError::NoUser(username.into()))
    }

    fn role(&self, role: &str) -> Result<&BTreeSet<(String, String)>, UsersError> {
        self.roles
            .get(role)
            .ok_or_else(|| UsersError::NoRole(role.into()))
    }

    fn memberships(&self) -> usize {
        self.users.values().map(|u| u.roles.len()).sum()
    }

    fn insert_user(&mut self, username: &str, is_admin: bool) -> Result<(), UsersError> {
        if self.users.len() >= MAX_USERS {
            return Err(full("users", MAX_USERS));
        }
        self.users.insert(
            username.into(),
            User {
                is_admin,
                roles: BTreeSet::new(),
            },
        );
        Ok(())
    }
}

pub struct MemoryUsers {
    state: Mutex<State>,
}

impl MemoryUsers {
    /// Empty but for `admin`, an admin.
    pub(super) fn new(admin: &str) -> MemoryUsers {
        let mut state = State::default();
        state.users.insert(
            admin.into(),
            User {
                is_admin: true,
                roles: BTreeSet::new(),
            },
        );
        MemoryUsers {
            state: Mutex::new(state),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every change is complete before it can panic: a poisoned state is still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn create_if_absent(&self, username: &str) -> Result<bool, UsersError> {
        let mut s = self.lock();
        if s.users.contains_key(username) {
            return Ok(false);
        }
        s.insert_user(username, false)?;
        Ok(true)
    }

    pub(super) fn get(&self, username: &str) -> Result<Option<UserInfo>, UsersError> {
        Ok(self.lock().users.get(username).map(|u| UserInfo {
            username: username.into(),
            is_admin: u.is_admin,
            roles: u.roles.iter().cloned().collect(),
        }))
    }

    pub(super) fn list(
        &self,
        prefix: Option<&str>,
        is_admin: Option<bool>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<String>, UsersError> {
        let limit = usize::try_from(limit)
            .map_err(|_| UsersError::Invalid("limit must not be negative".into()))?;
        let offset = usize::try_from(offset)
            .map_err(|_| UsersError::Invalid("offset must not be negative".into()))?;
        let prefix = prefix.unwrap_or_default();
        Ok(self
            .lock()
            .users
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|(name, _)| name.starts_with(prefix))
            .filter(|(_, u)| is_admin.is_none_or(|a| u.is_admin == a))
            .skip(offset)
            .take(limit)
            .map(|(name, _)| name.clone())
            .collect())
    }

    pub(super) fn create(&self, username: &str, is_admin: bool) -> Result<(), UsersError> {
        let mut s = self.lock();
        if s.users.contains_key(username) {
            return Err(UsersError::Exists(format!("user {username}")));
        }
        s.insert_user(username, is_admin)
    }

    pub(super) fn delete(&self, username: &str) -> Result<(), UsersError> {
        match self.lock().users.remove(username) {
            Some(_) => Ok(()),
            None => Err(UsersError::NoUser(username.into())),
        }
    }

    pub(super) fn set_admin(&self, username: &str, admin: bool) -> Result<(), UsersError> {
        self.lock().user_mut(username)?.is_admin = admin;
        Ok(())
    }

    pub(super) fn add_role(&self, username: &str, role: &str) -> Result<(), UsersError> {
        let mut s = self.lock();
        let has = s.user(username)?.roles.contains(role);
        s.role(role)?;
        if !has && s.memberships() >= MAX_MEMBERSHIPS {
            return Err(full("role memberships", MAX_MEMBERSHIPS));
        }
        s.user_mut(username)?.roles.insert(role.into());
        Ok(())
    }

    /// `wanted`: sorted, without duplicates.
    pub(super) fn set_roles(&self, username: &str, wanted: &[String]) -> Result<(), UsersError> {
        let mut s = self.lock();
        let had = s.user(username)?.roles.len();
        if !wanted.iter().all(|r| s.roles.contains_key(r)) {
            return Err(super::unknown_roles());
        }
        if s.memberships() - had + wanted.len() > MAX_MEMBERSHIPS {
            return Err(full("role memberships", MAX_MEMBERSHIPS));
        }
        s.user_mut(username)?.roles = wanted.iter().cloned().collect();
        Ok(())
    }

    pub(super) fn remove_role(&self, username: &str, role: &str) -> Result<(), UsersError> {
        let mut s = self.lock();
        s.user(username)?;
        s.role(role)?;
        s.user_mut(username)?.roles.remove(role);
        Ok(())
    }

    pub(super) fn roles(&self) -> Result<Vec<String>, UsersError> {
        Ok(self.lock().roles.keys().cloned().collect())
    }

    pub(super) fn create_role(&self, role: &str) -> Result<(), UsersError> {
        let mut s = self.lock();
        if s.roles.contains_key(role) {
            return Err(UsersError::Exists(format!("role {role}")));
        }
        if s.roles.len() >= MAX_ROLES {
            return Err(full("roles", MAX_ROLES));
        }
        s.roles.insert(role.into(), BTreeSet::new());
        Ok(())
    }

    pub(super) fn delete_role(&self, role: &str) -> Result<(), UsersError> {
        let mut s = self.lock();
        if s.roles.remove(role).is_none() {
            return Err(UsersError::NoRole(role.into()));
        }
        for user in s.users.values_mut() {
            user.roles.remove(role);
        }
        Ok(())
    }

    pub(super) fn role_permissions(&self, role: &str) -> Result<Vec<Permission>, UsersError> {
        Ok(self.lock().role(role)?.iter().map(permission).collect())
    }

    pub(super) fn add_permission(&self, role: &str, p: &Permission) -> Result<(), UsersError> {
        let mut s = self.lock();
        let key = (p.authz_grp.clone(), p.action.clone());
        let has = s.role(role)?.contains(&key);
        let total: usize = s.roles.values().map(BTreeSet::len).sum();
        if !has && total >= MAX_PERMISSIONS {
            return Err(full("permissions", MAX_PERMISSIONS));
        }
        if let Some(permissions) = s.roles.get_mut(role) {
            permissions.insert(key);
        }
        Ok(())
    }

    pub(super) fn remove_permission(&self, role: &str, p: &Permission) -> Result<(), UsersError> {
        let mut s = self.lock();
        s.role(role)?;
        if let Some(permissions) = s.roles.get_mut(role) {
            permissions.remove(&(p.authz_grp.clone(), p.action.clone()));
        }
        Ok(())
    }

    pub(super) fn effective_permissions(
        &self,
        username: &str,
    ) -> Result<Vec<Permission>, UsersError> {
        let s = self.lock();
        let Some(user) = s.users.get(username) else {
            return Ok(Vec::new());
        };
        let all: BTreeSet<&(String, String)> = user
            .roles
            .iter()
            .filter_map(|r| s.roles.get(r))
            .flatten()
            .collect();
        Ok(all.into_iter().map(permission).collect())
    }

    pub(super) fn has_permission(
        &self,
        username: &str,
        authz_grp: &str,
        action: &str,
    ) -> Result<bool, UsersError> {
        let s = self.lock();
        let Some(user) = s.users.get(username) else {
            return Ok(false);
        };
        Ok(user
            .roles
            .iter()
            .filter_map(|r| s.roles.get(r))
            .flatten()
            .any(|(g, a)| a == action && (g == authz_grp || g.is_empty())))
    }

    pub(super) fn favorites(&self, username: &str) -> Result<Vec<serde_json::Value>, UsersError> {
        Ok(self
            .lock()
            .favorites
            .get(username)
            .into_iter()
            .flatten()
            .filter_map(|f| serde_json::from_str(&f.body).ok())
            .collect())
    }

    /// `_name` is in `body` (the store keeps it in a column that nothing reads).
    pub(super) fn put_favorite(
        &self,
        username: &str,
        id: &str,
        _name: &str,
        body: &str,
    ) -> Result<(), UsersError> {
        let mut s = self.lock();
        let s = &mut *s;
        let mine: &[Favorite] = s.favorites.get(username).map_or(&[], Vec::as_slice);
        // As the store: counted before looking for the id (a full list refuses a replacement).
        if mine.len() as i64 >= MAX_FAVORITES_PER_USER {
            return Err(super::too_many_favorites());
        }
        if s.favorite_owner.get(id).is_some_and(|o| o != username) {
            return Err(UsersError::Exists(format!("favorite task {id}")));
        }
        let old = mine.iter().position(|f| f.id == id);
        let freed = old.and_then(|i| mine.get(i)).map_or(0, |f| f.body.len());
        let bytes = s.favorite_bytes - freed + body.len();
        if bytes > MAX_FAVORITE_BYTES {
            return Err(full("bytes of favorite tasks", MAX_FAVORITE_BYTES));
        }
        s.favorite_bytes = bytes;
        let mine = s.favorites.entry(username.to_string()).or_default();
        match old.and_then(|i| mine.get_mut(i)) {
            Some(f) => f.body = body.into(),
            None => {
                mine.push(Favorite {
                    id: id.into(),
                    body: body.into(),
                });
                s.favorite_owner.insert(id.into(), username.into());
            }
        }
        Ok(())
    }

    pub(super) fn delete_favorite(&self, username: &str, id: &str) -> Result<bool, UsersError> {
        let mut s = self.lock();
        let s = &mut *s;
        let Some(mine) = s.favorites.get_mut(username) else {
            return Ok(false);
        };
        let Some(i) = mine.iter().position(|f| f.id == id) else {
            return Ok(false);
        };
        let gone = mine.remove(i);
        if mine.is_empty() {
            s.favorites.remove(username);
        }
        s.favorite_owner.remove(id);
        s.favorite_bytes -= gone.body.len();
        Ok(true)
    }
}

fn permission((authz_grp, action): &(String, String)) -> Permission {
    Permission {
        authz_grp: authz_grp.clone(),
        action: action.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::Users;
    use super::*;

    fn perm(g: &str, a: &str) -> Permission {
        Permission {
            authz_grp: g.into(),
            action: a.into(),
        }
    }

    #[tokio::test]
    async fn users_as_the_store_keeps_them() {
        let u = Users::memory("root").unwrap();
        assert!(u.in_memory());
        assert!(u.get("root").await.unwrap().unwrap().is_admin);
        let alice = u.load_or_create("alice").await.unwrap();
        assert_eq!((alice.is_admin, alice.roles.len()), (false, 0));
        u.create("Bob", false).await.unwrap();
        u.create("carol", true).await.unwrap();
        assert!(matches!(
            u.create("carol", false).await,
            Err(UsersError::Exists(m)) if m == "user carol"
        ));
        assert!(matches!(
            u.create("", false).await,
            Err(UsersError::Invalid(_))
        ));
        // Sorted by bytes (the store's C collation): upper case first.
        assert_eq!(
            u.list(None, None, 100, 0).await.unwrap(),
            ["Bob", "alice", "carol", "root"]
        );
        assert_eq!(
            u.list(None, Some(true), 100, 0).await.unwrap(),
            ["carol", "root"]
        );
        assert_eq!(u.list(Some("c"), None, 100, 0).await.unwrap(), ["carol"]);
        assert_eq!(u.list(None, None, 2, 1).await.unwrap(), ["alice", "carol"]);
        // A deleted user is created again on sight, not admin.
        u.delete("carol").await.unwrap();
        assert!(matches!(
            u.delete("carol").await,
            Err(UsersError::NoUser(_))
        ));
        assert!(matches!(
            u.set_admin("carol", true).await,
            Err(UsersError::NoUser(_))
        ));
        assert!(!u.load_or_create("carol").await.unwrap().is_admin);
    }

    #[tokio::test]
    async fn roles_and_permissions_as_the_store_keeps_them() {
        let u = Users::memory("root").unwrap();
        u.load_or_create("alice").await.unwrap();
        for role in ["viewer", "operator"] {
            u.create_role(role).await.unwrap();
        }
        assert_eq!(u.roles().await.unwrap(), ["operator", "viewer"]);
        u.add_permission("operator", &perm("", "task_submit"))
            .await
            .unwrap();
        u.add_permission("operator", &perm("", "task_cancel"))
            .await
            .unwrap();
        u.add_permission("viewer", &perm("west", "task_read"))
            .await
            .unwrap();
        assert_eq!(
            u.role_permissions("operator").await.unwrap(),
            [perm("", "task_cancel"), perm("", "task_submit")]
        );
        assert!(matches!(
            u.add_role("alice", "ghost").await,
            Err(UsersError::NoRole(_))
        ));
        assert!(matches!(
            u.add_role("nobody", "viewer").await,
            Err(UsersError::NoUser(_))
        ));
        u.set_roles(
            "alice",
            &["viewer".into(), "operator".into(), "viewer".into()],
        )
        .await
        .unwrap();
        assert!(matches!(
            u.set_roles("alice", &["ghost".into()]).await,
            Err(UsersError::Invalid(m)) if m == "one or more roles does not exist"
        ));
        let alice = u.get("alice").await.unwrap().unwrap();
        assert_eq!(alice.roles, ["operator", "viewer"]);
        assert_eq!(
            u.effective_permissions("alice").await.unwrap(),
            [
                perm("", "task_cancel"),
                perm("", "task_submit"),
                perm("west", "task_read")
            ]
        );
        assert!(
            u.is_authorized(&alice, "east", "task_submit")
                .await
                .unwrap()
        );
        assert!(u.is_authorized(&alice, "west", "task_read").await.unwrap());
        assert!(!u.is_authorized(&alice, "east", "task_read").await.unwrap());
        // A deleted role leaves its members; a deleted user is created again on sight.
        u.delete_role("operator").await.unwrap();
        assert!(matches!(
            u.delete_role("operator").await,
            Err(UsersError::NoRole(_))
        ));
        assert_eq!(u.get("alice").await.unwrap().unwrap().roles, ["viewer"]);
        // A deleted user's memberships go with it.
        u.delete("alice").await.unwrap();
        assert_eq!(u.load_or_create("alice").await.unwrap().roles.len(), 0);
    }

    #[tokio::test]
    async fn favorites_are_per_user_oldest_first_and_bounded() {
        let u = Users::memory("root").unwrap();
        let body = |id: &str, name: &str| format!(r#"{{"id":"{id}","name":"{name}"}}"#);
        u.put_favorite("erin", "a", "x", &body("a", "x"))
            .await
            .unwrap();
        u.put_favorite("erin", "b", "y", &body("b", "y"))
            .await
            .unwrap();
        u.put_favorite("erin", "a", "z", &body("a", "z"))
            .await
            .unwrap();
        let names = |v: Vec<serde_json::Value>| -> Vec<String> {
            v.iter()
                .map(|f| f["name"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(names(u.favorites("erin").await.unwrap()), ["z", "y"]);
        assert!(matches!(
            u.put_favorite("frank", "a", "x", &body("a", "x")).await,
            Err(UsersError::Exists(_))
        ));
        assert!(!u.delete_favorite("frank", "a").await.unwrap());
        assert!(u.delete_favorite("erin", "a").await.unwrap());
        assert_eq!(names(u.favorites("erin").await.unwrap()), ["y"]);
        // The id is free again, for anyone.
        u.put_favorite("frank", "a", "x", &body("a", "x"))
            .await
            .unwrap();
        for i in 1..MAX_FAVORITES_PER_USER {
            u.put_favorite("frank", &format!("f{i}"), "n", "{}")
                .await
                .unwrap();
        }
        assert!(matches!(
            u.put_favorite("frank", "one-more", "n", "{}").await,
            Err(UsersError::Invalid(m)) if m == "at most 1000 favorite tasks per user"
        ));
    }

    #[test]
    fn the_bounds_are_errors() {
        let m = MemoryUsers::new("root");
        for i in 1..MAX_USERS {
            assert!(m.create_if_absent(&format!("u{i}")).unwrap());
        }
        assert!(!m.create_if_absent("u1").unwrap());
        assert!(matches!(
            m.create_if_absent("one-more"),
            Err(UsersError::Full(e)) if e == "at most 10000 users are kept in memory (this server runs with --no-db)"
        ));
        assert!(matches!(m.create("x", false), Err(UsersError::Full(_))));
        // Bytes of favorites, over all users (as if 256 MiB were kept already but 10 bytes).
        m.lock().favorite_bytes = MAX_FAVORITE_BYTES - 10;
        assert!(matches!(
            m.put_favorite("u1", "a", "n", "01234567890"),
            Err(UsersError::Full(_))
        ));
        m.put_favorite("u1", "a", "n", "0123456789").unwrap();
        // Replacing it with a smaller body frees room.
        m.put_favorite("u1", "a", "n", "{}").unwrap();
        m.put_favorite("u2", "b", "n", "01234567").unwrap();
        assert!(m.delete_favorite("u2", "b").unwrap());
        assert_eq!(m.lock().favorite_bytes, MAX_FAVORITE_BYTES - 8);
    }

    #[test]
    fn roles_and_memberships_are_bounded() {
        let m = MemoryUsers::new("root");
        let roles: Vec<String> = (0..MAX_ROLES).map(|i| format!("r{i:05}")).collect();
        for r in &roles {
            m.create_role(r).unwrap();
        }
        assert!(matches!(
            m.create_role("one-more"),
            Err(UsersError::Full(_))
        ));
        assert!(matches!(
            m.create_role("r00000"),
            Err(UsersError::Exists(_))
        ));
        let per_user = &roles[..1000];
        for u in 0..MAX_MEMBERSHIPS / per_user.len() {
            let name = format!("u{u}");
            m.create(&name, false).unwrap();
            m.set_roles(&name, per_user).unwrap();
        }
        m.create("last", false).unwrap();
        assert!(matches!(
            m.add_role("last", "r00000"),
            Err(UsersError::Full(_))
        ));
        // Replacing a user's roles by as many is no growth; adding one it has is none either.
        m.set_roles("u0", &roles[1000..2000]).unwrap();
        m.add_role("u0", "r01000").unwrap();
        m.remove_role("u0", "r01000").unwrap();
        m.add_role("last", "r00000").unwrap();
    }
}
