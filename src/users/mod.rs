//! Users, roles, permissions and favorite tasks, as rmf-web keeps them: a user is created on
//! first sight of a valid token, admins may do everything, other users may do what the
//! permissions `(authz_grp, action)` of their roles allow.
//!
//! - This file: the model, the checks of names, and [`Users`], one interface over two backends
//!   with the same validation, errors and orderings: the store's tables ([`pg`], with a store)
//!   or memory ([`memory`], with `--no-db`: kept for the life of the process, bounded). [`Users`]
//!   is where the access layer ([`crate::access`]) reads a user's grants on the main process.
//! - [`routes`]: the HTTP routes. The decisions on commands and reads are the access layer's;
//!   its HTTP doors are [`crate::api::access`].

pub mod memory;
mod pg;
pub mod routes;

use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum UsersError {
    #[error("PostgreSQL")]
    Pg(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("user {0} does not exist")]
    NoUser(String),
    #[error("role {0} does not exist")]
    NoRole(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0} already exists")]
    Exists(String),
    /// A bound of the in-memory backend (`--no-db`) is reached.
    #[error("{0}")]
    Full(String),
}

/// A user as rmf-web answers it (`GET /user`, `GET /admin/users/{username}`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct UserInfo {
    pub username: String,
    pub is_admin: bool,
    pub roles: Vec<String>,
}

/// One permission of a role.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Permission {
    pub authz_grp: String,
    pub action: String,
}

/// Largest favorite task body stored (bytes of JSON).
pub const MAX_FAVORITE: usize = 64 * 1024;
/// Most favorite tasks one user may keep.
pub const MAX_FAVORITES_PER_USER: i64 = 1000;

/// Checks a user, role, group or action name (see [`crate::access::groups::check_name`]).
pub fn check_name(what: &str, name: &str, allow_empty: bool) -> Result<(), UsersError> {
    crate::access::groups::check_name(what, name, allow_empty).map_err(UsersError::Invalid)
}

/// Users, roles, permissions and favorites: in the store, or in memory (`--no-db`).
pub struct Users {
    backend: Backend,
}

enum Backend {
    Pg(pg::PgUsers),
    Memory(memory::MemoryUsers),
}

/// Calls the backend's method of the same name (awaited on PostgreSQL).
macro_rules! backend {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {
        match &$self.backend {
            Backend::Pg(b) => b.$method($($arg),*).await,
            Backend::Memory(b) => b.$method($($arg),*),
        }
    };
}

/// The error of a `set_roles` naming a role that does not exist.
fn unknown_roles() -> UsersError {
    UsersError::Invalid("one or more roles does not exist".into())
}

/// The error of a `put_favorite` beyond [`MAX_FAVORITES_PER_USER`].
fn too_many_favorites() -> UsersError {
    UsersError::Invalid(format!(
        "at most {MAX_FAVORITES_PER_USER} favorite tasks per user"
    ))
}

impl Users {
    /// Connects to the store (its schema is already migrated) and makes `admin` an admin.
    pub async fn open(url: &str, admin: &str) -> Result<Users, UsersError> {
        check_name("admin user", admin, false)?;
        let backend = Backend::Pg(pg::PgUsers::open(url, admin).await?);
        tracing::info!(admin, "users: admin user configured");
        Ok(Users { backend })
    }

    /// Users in memory, for the life of the process (`--no-db`), with `admin` an admin.
    pub fn memory(admin: &str) -> Result<Users, UsersError> {
        check_name("admin user", admin, false)?;
        let backend = Backend::Memory(memory::MemoryUsers::new(admin));
        tracing::info!(
            admin,
            "users: admin user configured; users, roles and favorites live in memory (--no-db)"
        );
        Ok(Users { backend })
    }

    /// Whether users live in memory (lost when the process ends).
    pub fn in_memory(&self) -> bool {
        matches!(self.backend, Backend::Memory(_))
    }

    /// The user of a verified token, created (not admin, no roles) on first sight.
    pub async fn load_or_create(&self, username: &str) -> Result<UserInfo, UsersError> {
        check_name("username", username, false)?;
        if backend!(self.create_if_absent(username))? {
            tracing::info!(username, "users: user created on first sight");
        }
        self.get(username)
            .await?
            .ok_or_else(|| UsersError::NoUser(username.into()))
    }

    pub async fn get(&self, username: &str) -> Result<Option<UserInfo>, UsersError> {
        backend!(self.get(username))
    }

    /// Usernames, sorted (by bytes), optionally starting with `prefix` and with the given admin
    /// flag.
    pub async fn list(
        &self,
        prefix: Option<&str>,
        is_admin: Option<bool>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<String>, UsersError> {
        backend!(self.list(prefix, is_admin, limit, offset))
    }

    pub async fn create(&self, username: &str, is_admin: bool) -> Result<(), UsersError> {
        check_name("username", username, false)?;
        backend!(self.create(username, is_admin))
    }

    /// Deletes a user (and their role memberships; not their favorites); they are re-created on
    /// their next request.
    pub async fn delete(&self, username: &str) -> Result<(), UsersError> {
        backend!(self.delete(username))
    }

    pub async fn set_admin(&self, username: &str, admin: bool) -> Result<(), UsersError> {
        backend!(self.set_admin(username, admin))
    }

    pub async fn add_role(&self, username: &str, role: &str) -> Result<(), UsersError> {
        backend!(self.add_role(username, role))
    }

    /// Replaces the roles of a user (every role must exist).
    pub async fn set_roles(&self, username: &str, roles: &[String]) -> Result<(), UsersError> {
        let mut wanted = roles.to_vec();
        wanted.sort();
        wanted.dedup();
        backend!(self.set_roles(username, &wanted))
    }

    pub async fn remove_role(&self, username: &str, role: &str) -> Result<(), UsersError> {
        backend!(self.remove_role(username, role))
    }

    /// Role names, sorted.
    pub async fn roles(&self) -> Result<Vec<String>, UsersError> {
        backend!(self.roles())
    }

    pub async fn create_role(&self, role: &str) -> Result<(), UsersError> {
        check_name("role", role, false)?;
        backend!(self.create_role(role))
    }

    /// Deletes a role, its permissions and its memberships.
    pub async fn delete_role(&self, role: &str) -> Result<(), UsersError> {
        backend!(self.delete_role(role))
    }

    /// The permissions of a role, sorted by group then action.
    pub async fn role_permissions(&self, role: &str) -> Result<Vec<Permission>, UsersError> {
        backend!(self.role_permissions(role))
    }

    pub async fn add_permission(&self, role: &str, p: &Permission) -> Result<(), UsersError> {
        check_name("authz_grp", &p.authz_grp, true)?;
        check_name("action", &p.action, false)?;
        backend!(self.add_permission(role, p))
    }

    pub async fn remove_permission(&self, role: &str, p: &Permission) -> Result<(), UsersError> {
        backend!(self.remove_permission(role, p))
    }

    /// The permissions of a user through their roles (distinct, sorted).
    pub async fn effective_permissions(
        &self,
        username: &str,
    ) -> Result<Vec<Permission>, UsersError> {
        backend!(self.effective_permissions(username))
    }

    /// Whether a user may do `action` in group `authz_grp` (admins may do everything): a
    /// permission in that group or in the site-wide group `""` (which covers every group).
    pub async fn is_authorized(
        &self,
        user: &UserInfo,
        authz_grp: &str,
        action: &str,
    ) -> Result<bool, UsersError> {
        if user.is_admin {
            return Ok(true);
        }
        backend!(self.has_permission(&user.username, authz_grp, action))
    }

    /// The favorite tasks of a user, oldest first.
    pub async fn favorites(&self, username: &str) -> Result<Vec<serde_json::Value>, UsersError> {
        backend!(self.favorites(username))
    }

    /// Creates or replaces (same id, same user) a favorite task; [`UsersError::Exists`] when
    /// another user has one with this id.
    pub async fn put_favorite(
        &self,
        username: &str,
        id: &str,
        name: &str,
        body: &str,
    ) -> Result<(), UsersError> {
        backend!(self.put_favorite(username, id, name, body))
    }

    /// Deletes a favorite task of this user; false when they have none with this id.
    pub async fn delete_favorite(&self, username: &str, id: &str) -> Result<bool, UsersError> {
        backend!(self.delete_favorite(username, id))
    }
}

/// The main process's grants: the users' store.
impl crate::access::rooms::GrantSource for Users {
    fn grants<'a>(
        &'a self,
        username: &'a str,
        _token: Option<&'a str>,
    ) -> futures_util::future::BoxFuture<'a, Result<crate::access::rooms::Grants, String>> {
        Box::pin(async move {
            let info = self
                .load_or_create(username)
                .await
                .map_err(|e| crate::error::chain(&e))?;
            let permissions = if info.is_admin {
                Vec::new()
            } else {
                self.effective_permissions(username)
                    .await
                    .map_err(|e| crate::error::chain(&e))?
            };
            Ok(crate::access::rooms::Grants::from_permissions(
                info.is_admin,
                permissions.into_iter().map(|p| (p.authz_grp, p.action)),
            ))
        })
    }
}
