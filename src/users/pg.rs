//! The PostgreSQL backend of [`super::Users`]: the store's tables `users`, `roles`,
//! `user_roles`, `role_permissions` and `favorite_tasks` (`migrations/0001_init.sql`), through
//! the store's shared request client. Names are checked by [`super::Users`] before they get
//! here; the foreign keys cascade a deleted user's or role's memberships and a deleted role's
//! permissions.

use super::{MAX_FAVORITES_PER_USER, Permission, UserInfo, UsersError};
use crate::store::SharedClient;

pub(super) struct PgUsers {
    db: SharedClient,
}

impl PgUsers {
    /// One statement on the shared client; the rows it changed.
    async fn execute(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64, UsersError> {
        Ok(self.db.get().await?.execute(sql, params).await?)
    }

    /// Connects to the store (its schema is already migrated) and makes `admin` an admin.
    pub(super) async fn open(url: &str, admin: &str) -> Result<PgUsers, UsersError> {
        let db = SharedClient::connect(url).await?;
        db.get()
            .await?
            .execute(
                "INSERT INTO users (username, is_admin) VALUES ($1, true) \
                 ON CONFLICT (username) DO UPDATE SET is_admin = true",
                &[&admin],
            )
            .await?;
        Ok(PgUsers { db })
    }

    /// Creates the user (not admin) unless it exists; whether it was created.
    pub(super) async fn create_if_absent(&self, username: &str) -> Result<bool, UsersError> {
        let created = self
            .execute(
                "INSERT INTO users (username, is_admin) VALUES ($1, false) \
                 ON CONFLICT (username) DO NOTHING",
                &[&username],
            )
            .await?;
        Ok(created == 1)
    }

    pub(super) async fn get(&self, username: &str) -> Result<Option<UserInfo>, UsersError> {
        let db = self.db.get().await?;
        let Some(row) = db
            .query_opt(
                "SELECT is_admin FROM users WHERE username = $1",
                &[&username],
            )
            .await?
        else {
            return Ok(None);
        };
        let roles = db
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

    pub(super) async fn list(
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

    pub(super) async fn create(&self, username: &str, is_admin: bool) -> Result<(), UsersError> {
        let n = self
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

    pub(super) async fn delete(&self, username: &str) -> Result<(), UsersError> {
        let n = self
            .execute("DELETE FROM users WHERE username = $1", &[&username])
            .await?;
        if n == 0 {
            return Err(UsersError::NoUser(username.into()));
        }
        Ok(())
    }

    pub(super) async fn set_admin(&self, username: &str, admin: bool) -> Result<(), UsersError> {
        let n = self
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

    pub(super) async fn add_role(&self, username: &str, role: &str) -> Result<(), UsersError> {
        self.must_exist(username).await?;
        self.role_must_exist(role).await?;
        self.execute(
            "INSERT INTO user_roles (username, role) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&username, &role],
        )
        .await?;
        Ok(())
    }

    /// `wanted`: sorted, without duplicates.
    pub(super) async fn set_roles(
        &self,
        username: &str,
        wanted: &[String],
    ) -> Result<(), UsersError> {
        self.must_exist(username).await?;
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
            return Err(super::unknown_roles());
        }
        self.execute(
            "WITH gone AS (DELETE FROM user_roles WHERE username = $1 \
                 AND NOT (role = ANY($2))) \
                 INSERT INTO user_roles (username, role) SELECT $1, unnest($2::text[]) \
                 ON CONFLICT DO NOTHING",
            &[&username, &wanted],
        )
        .await?;
        Ok(())
    }

    pub(super) async fn remove_role(&self, username: &str, role: &str) -> Result<(), UsersError> {
        self.must_exist(username).await?;
        self.role_must_exist(role).await?;
        self.execute(
            "DELETE FROM user_roles WHERE username = $1 AND role = $2",
            &[&username, &role],
        )
        .await?;
        Ok(())
    }

    pub(super) async fn roles(&self) -> Result<Vec<String>, UsersError> {
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

    pub(super) async fn create_role(&self, role: &str) -> Result<(), UsersError> {
        let n = self
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

    pub(super) async fn delete_role(&self, role: &str) -> Result<(), UsersError> {
        let n = self
            .execute("DELETE FROM roles WHERE name = $1", &[&role])
            .await?;
        if n == 0 {
            return Err(UsersError::NoRole(role.into()));
        }
        Ok(())
    }

    pub(super) async fn role_permissions(&self, role: &str) -> Result<Vec<Permission>, UsersError> {
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

    pub(super) async fn add_permission(
        &self,
        role: &str,
        p: &Permission,
    ) -> Result<(), UsersError> {
        self.role_must_exist(role).await?;
        self.execute(
            "INSERT INTO role_permissions (role, authz_grp, action) VALUES ($1, $2, $3) \
                 ON CONFLICT DO NOTHING",
            &[&role, &p.authz_grp, &p.action],
        )
        .await?;
        Ok(())
    }

    pub(super) async fn remove_permission(
        &self,
        role: &str,
        p: &Permission,
    ) -> Result<(), UsersError> {
        self.role_must_exist(role).await?;
        self.execute(
            "DELETE FROM role_permissions WHERE role = $1 AND authz_grp = $2 AND action = $3",
            &[&role, &p.authz_grp, &p.action],
        )
        .await?;
        Ok(())
    }

    pub(super) async fn effective_permissions(
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

    /// Whether one of the user's roles has `action` in `authz_grp` or in the site-wide group.
    pub(super) async fn has_permission(
        &self,
        username: &str,
        authz_grp: &str,
        action: &str,
    ) -> Result<bool, UsersError> {
        Ok(self
            .db
            .get()
            .await?
            .query_opt(
                "SELECT 1 FROM role_permissions p JOIN user_roles u ON u.role = p.role \
                 WHERE u.username = $1 AND (p.authz_grp = $2 OR p.authz_grp = '') \
                 AND p.action = $3 LIMIT 1",
                &[&username, &authz_grp, &action],
            )
            .await?
            .is_some())
    }

    pub(super) async fn favorites(
        &self,
        username: &str,
    ) -> Result<Vec<serde_json::Value>, UsersError> {
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

    pub(super) async fn put_favorite(
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
            return Err(super::too_many_favorites());
        }
        let n = self
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

    pub(super) async fn delete_favorite(
        &self,
        username: &str,
        id: &str,
    ) -> Result<bool, UsersError> {
        Ok(self
            .execute(
                "DELETE FROM favorite_tasks WHERE id = $1 AND username = $2",
                &[&id, &username],
            )
            .await?
            == 1)
    }
}
