//! Users, roles, permissions and favorite tasks, kept in the store's tables (`users`, `roles`,
//! `user_roles`, `role_permissions`, `favorite_tasks` of `migrations/0001_init.sql`), as rmf-web
//! keeps them: a user is created on first sight of a valid token, admins may do everything, other
//! users may do what the permissions `(authz_grp, action)` of their roles allow. The HTTP routes
//! are in [`routes`], the enforcement on command routes in [`enforce`].

pub mod enforce;
pub mod rooms;
pub mod routes;

use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum UsersError {
    #[error("PostgreSQL: {0}")]
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

/// Longest user, role, group or action name accepted.
pub const MAX_NAME: usize = 255;
/// Largest favorite task body stored (bytes of JSON).
pub const MAX_FAVORITE: usize = 64 * 1024;
/// Most favorite tasks one user may keep.
pub const MAX_FAVORITES_PER_USER: i64 = 1000;

/// Checks a user, role, group or action name: non-empty (but groups), bounded, printable.
pub fn check_name(what: &str, name: &str, allow_empty: bool) -> Result<(), UsersError> {
    if name.is_empty() && !allow_empty {
        return Err(UsersError::Invalid(format!("{what} must not be empty")));
    }
    if name.len() > MAX_NAME {
        return Err(UsersError::Invalid(format!(
            "{what} is longer than {MAX_NAME} bytes"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(UsersError::Invalid(format!(
            "{what} contains control characters"
        )));
    }
    Ok(())
}

/// The users' tables of the store.
pub struct Users {
    db: crate::store::SharedClient,
}

impl Users {
    /// The store's shared request client (reconnected when its connection is gone).
    pub fn db(&self) -> &crate::store::SharedClient {
        &self.db
    }

    /// Connects to the store (its schema is already migrated) and makes `admin` an admin.
    pub async fn open(url: &str, admin: &str) -> Result<Users, UsersError> {
        check_name("admin user", admin, false)?;
        let db = crate::store::SharedClient::connect(url).await?;
        db.get()
            .await?
            .execute(
                "INSERT INTO users (username, is_admin) VALUES ($1, true) \
                 ON CONFLICT (username) DO UPDATE SET is_admin = true",
                &[&admin],
            )
            .await?;
        tracing::info!(admin, "users: admin user configured");
        Ok(Users { db })
    }

    /// The user of a verified token, created (not admin, no roles) on first sight.
    pub async fn load_or_create(&self, username: &str) -> Result<UserInfo, UsersError> {
        check_name("username", username, false)?;
        let created = self
            .db
            .get()
            .await?
            .execute(
                "INSERT INTO users (username, is_admin) VALUES ($1, false) \
                 ON CONFLICT (username) DO NOTHING",
                &[&username],
            )
            .await?;
        if created == 1 {
            tracing::info!(username, "users: user created on first sight");
        }
        self.get(username)
            .await?
            .ok_or_else(|| UsersError::NoUser(username.into()))
    }

    pub async fn get(&self, username: &str) -> Result<Option<UserInfo>, UsersError> {
        let Some(row) = self
            .db
            .get()
            .await?
            .query_opt(
                "SELECT is_admin FROM users WHERE username = $1",
                &[&username],
            )
            .await?
        else {
            return Ok(None);
        };
        let roles = self
            .db
            .get()
            .await?
            .query(
                "SELECT role FROM user_roles WHERE username = $1 ORDER BY role",
                &[&username],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        Ok(Some(UserInfo {
            username: username.into(),
            is_admin: row.get(0),
            roles,
        }))
    }

    /// Usernames, sorted, optionally starting with `prefix` and with the given admin flag.
    pub async fn list(
        &self,
        prefix: Option<&str>,
        is_admin: Option<bool>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<String>, UsersError> {
        let pattern = format!(
            "{}%",
            prefix
                .unwrap_or_default()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        Ok(self
            .db
            .get()
            .await?
            .query(
                "SELECT username FROM users WHERE username LIKE $1 \
                 AND ($2::boolean IS NULL OR is_admin = $2) \
                 ORDER BY username LIMIT $3 OFFSET $4",
                &[&pattern, &is_admin, &limit, &offset],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }

    pub async fn create(&self, username: &str, is_admin: bool) -> Result<(), UsersError> {
        check_name("username", username, false)?;
        let n = self
            .db
            .get()
            .await?
            .execute(
                "INSERT INTO users (username, is_admin) VALUES ($1, $2) \
                 ON CONFLICT (username) DO NOTHING",
                &[&username, &is_admin],
            )
            .await?;
        if n == 0 {
            return Err(UsersError::Exists(format!("user {username}")));
        }
        Ok(())
    }

    /// Deletes a user (and their role memberships); they are re-created on their next request.
    pub async fn delete(&self, username: &str) -> Result<(), UsersError> {
        let n = self
            .db
            .get()
            .await?
            .execute("DELETE FROM users WHERE username = $1", &[&username])
            .await?;
        if n == 0 {
            return Err(UsersError::NoUser(username.into()));
        }
        Ok(())
    }

    pub async fn set_admin(&self, username: &str, admin: bool) -> Result<(), UsersError> {
        let n = self
            .db
            .get()
            .await?
            .execute(
                "UPDATE users SET is_admin = $2 WHERE username = $1",
                &[&username, &admin],
            )
            .await?;
        if n == 0 {
            return Err(UsersError::NoUser(username.into()));
        }
        Ok(())
    }

    async fn must_exist(&self, username: &str) -> Result<(), UsersError> {
        match self
            .db
            .get()
            .await?
            .query_opt("SELECT 1 FROM users WHERE username = $1", &[&username])
            .await?
        {
            Some(_) => Ok(()),
            None => Err(UsersError::NoUser(username.into())),
        }
    }

    async fn role_must_exist(&self, role: &str) -> Result<(), UsersError> {
        match self
            .db
            .get()
            .await?
            .query_opt("SELECT 1 FROM roles WHERE name = $1", &[&role])
            .await?
        {
            Some(_) => Ok(()),
            None => Err(UsersError::NoRole(role.into())),
        }
    }

    pub async fn add_role(&self, username: &str, role: &str) -> Result<(), UsersError> {
        self.must_exist(username).await?;
        self.role_must_exist(role).await?;
        self.db
            .get()
            .await?
            .execute(
                "INSERT INTO user_roles (username, role) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&username, &role],
            )
            .await?;
        Ok(())
    }

    /// Replaces the roles of a user (one statement; every role must exist).
    pub async fn set_roles(&self, username: &str, roles: &[String]) -> Result<(), UsersError> {
        self.must_exist(username).await?;
        let mut wanted = roles.to_vec();
        wanted.sort();
        wanted.dedup();
        let known: i64 = self
            .db
            .get()
            .await?
            .query_one(
                "SELECT count(*) FROM roles WHERE name = ANY($1)",
                &[&wanted],
            )
            .await?
            .get(0);
        if known != wanted.len() as i64 {
            return Err(UsersError::Invalid(
                "one or more roles does not exist".into(),
            ));
        }
        self.db
            .get()
            .await?
            .execute(
                "WITH gone AS (DELETE FROM user_roles WHERE username = $1 \
                 AND NOT (role = ANY($2))) \
                 INSERT INTO user_roles (username, role) SELECT $1, unnest($2::text[]) \
                 ON CONFLICT DO NOTHING",
                &[&username, &wanted],
            )
            .await?;
        Ok(())
    }

    pub async fn remove_role(&self, username: &str, role: &str) -> Result<(), UsersError> {
        self.must_exist(username).await?;
        self.role_must_exist(role).await?;
        self.db
            .get()
            .await?
            .execute(
                "DELETE FROM user_roles WHERE username = $1 AND role = $2",
                &[&username, &role],
            )
            .await?;
        Ok(())
    }

    pub async fn roles(&self) -> Result<Vec<String>, UsersError> {
        Ok(self
            .db
            .get()
            .await?
            .query("SELECT name FROM roles ORDER BY name", &[])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }

    pub async fn create_role(&self, role: &str) -> Result<(), UsersError> {
        check_name("role", role, false)?;
        let n = self
            .db
            .get()
            .await?
            .execute(
                "INSERT INTO roles (name) VALUES ($1) ON CONFLICT DO NOTHING",
                &[&role],
            )
            .await?;
        if n == 0 {
            return Err(UsersError::Exists(format!("role {role}")));
        }
        Ok(())
    }

    pub async fn delete_role(&self, role: &str) -> Result<(), UsersError> {
        let n = self
            .db
            .get()
            .await?
            .execute("DELETE FROM roles WHERE name = $1", &[&role])
            .await?;
        if n == 0 {
            return Err(UsersError::NoRole(role.into()));
        }
        Ok(())
    }

    pub async fn role_permissions(&self, role: &str) -> Result<Vec<Permission>, UsersError> {
        self.role_must_exist(role).await?;
        Ok(self
            .db
            .get()
            .await?
            .query(
                "SELECT authz_grp, action FROM role_permissions WHERE role = $1 \
                 ORDER BY authz_grp, action",
                &[&role],
            )
            .await?
            .iter()
            .map(|r| Permission {
                authz_grp: r.get(0),
                action: r.get(1),
            })
            .collect())
    }

    pub async fn add_permission(&self, role: &str, p: &Permission) -> Result<(), UsersError> {
        check_name("authz_grp", &p.authz_grp, true)?;
        check_name("action", &p.action, false)?;
        self.role_must_exist(role).await?;
        self.db
            .get()
            .await?
            .execute(
                "INSERT INTO role_permissions (role, authz_grp, action) VALUES ($1, $2, $3) \
                 ON CONFLICT DO NOTHING",
                &[&role, &p.authz_grp, &p.action],
            )
            .await?;
        Ok(())
    }

    pub async fn remove_permission(&self, role: &str, p: &Permission) -> Result<(), UsersError> {
        self.role_must_exist(role).await?;
        self.db
            .get()
            .await?
            .execute(
                "DELETE FROM role_permissions WHERE role = $1 AND authz_grp = $2 AND action = $3",
                &[&role, &p.authz_grp, &p.action],
            )
            .await?;
        Ok(())
    }

    /// The permissions of a user through their roles (distinct, sorted).
    pub async fn effective_permissions(
        &self,
        username: &str,
    ) -> Result<Vec<Permission>, UsersError> {
        Ok(self
            .db
            .get()
            .await?
            .query(
                "SELECT DISTINCT p.authz_grp, p.action FROM role_permissions p \
                 JOIN user_roles u ON u.role = p.role WHERE u.username = $1 \
                 ORDER BY p.authz_grp, p.action",
                &[&username],
            )
            .await?
            .iter()
            .map(|r| Permission {
                authz_grp: r.get(0),
                action: r.get(1),
            })
            .collect())
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
        Ok(self
            .db
            .get()
            .await?
            .query_opt(
                "SELECT 1 FROM role_permissions p JOIN user_roles u ON u.role = p.role \
                 WHERE u.username = $1 AND (p.authz_grp = $2 OR p.authz_grp = '') \
                 AND p.action = $3 LIMIT 1",
                &[&user.username, &authz_grp, &action],
            )
            .await?
            .is_some())
    }

    /// The favorite tasks of a user, oldest first.
    pub async fn favorites(&self, username: &str) -> Result<Vec<serde_json::Value>, UsersError> {
        let rows = self
            .db
            .get()
            .await?
            .query(
                "SELECT body FROM favorite_tasks WHERE username = $1 ORDER BY created_at, id",
                &[&username],
            )
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| serde_json::from_str(r.get::<_, &str>(0)).ok())
            .collect())
    }

    /// Creates or replaces (same id, same user) a favorite task; returns its id.
    pub async fn put_favorite(
        &self,
        username: &str,
        id: &str,
        name: &str,
        body: &str,
    ) -> Result<(), UsersError> {
        let count: i64 = self
            .db
            .get()
            .await?
            .query_one(
                "SELECT count(*) FROM favorite_tasks WHERE username = $1",
                &[&username],
            )
            .await?
            .get(0);
        if count >= MAX_FAVORITES_PER_USER {
            return Err(UsersError::Invalid(format!(
                "at most {MAX_FAVORITES_PER_USER} favorite tasks per user"
            )));
        }
        let n = self
            .db
            .get()
            .await?
            .execute(
                "INSERT INTO favorite_tasks (id, username, name, body) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (id) DO UPDATE SET name = $3, body = $4 \
                 WHERE favorite_tasks.username = $2",
                &[&id, &username, &name, &body],
            )
            .await?;
        if n == 0 {
            return Err(UsersError::Exists(format!("favorite task {id}")));
        }
        Ok(())
    }

    /// Deletes a favorite task of this user; false when they have none with this id.
    pub async fn delete_favorite(&self, username: &str, id: &str) -> Result<bool, UsersError> {
        Ok(self
            .db
            .get()
            .await?
            .execute(
                "DELETE FROM favorite_tasks WHERE id = $1 AND username = $2",
                &[&id, &username],
            )
            .await?
            == 1)
    }
}
