//! The user routes of COMPAT.md: `/user`, `/permissions`, `/admin/*` (admins only) and
//! `/favorite_tasks` (each user's own), answered from [`Users`]: the store's, or memory's with
//! `--no-db` (the same answers, kept for the life of the process). With `--no-auth` the single
//! user `stub` is treated as an admin.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Permission, UserInfo, Users, UsersError};
use crate::api::body::Body;
use crate::api::routes::{In, Param, Route};
use crate::api::{ApiError, AppState, AuthUser};

type Answer<T> = Result<Json<T>, ApiError>;

impl From<UsersError> for ApiError {
    fn from(e: UsersError) -> Self {
        match e {
            UsersError::NoUser(_) | UsersError::NoRole(_) => {
                ApiError(StatusCode::NOT_FOUND, e.to_string())
            }
            UsersError::Invalid(_) | UsersError::Exists(_) => {
                ApiError(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
            }
            UsersError::Full(_) => {
                tracing::warn!(error = %e, "users: in-memory bound reached");
                ApiError(StatusCode::INSUFFICIENT_STORAGE, e.to_string())
            }
            UsersError::Pg(_) | UsersError::Store(_) => {
                tracing::warn!(error = %crate::error::chain(&e), "users: store request failed");
                ApiError(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the user store is unavailable".into(),
                )
            }
        }
    }
}

macro_rules! doc {
    ($method:literal, $path:literal, $name:literal, $tag:literal, $summary:literal) => {
        doc!($method, $path, $name, $tag, $summary, &[])
    };
    ($method:literal, $path:literal, $name:literal, $tag:literal, $summary:literal, $params:expr) => {
        Route {
            method: $method,
            path: $path,
            name: $name,
            tag: $tag,
            summary: $summary,
            params: $params,
            auth: true,
            content: "application/json",
            handler: None,
            action: None,
        }
    };
}

const fn query(name: &'static str, schema: &'static str, description: &'static str) -> Param {
    Param {
        name,
        location: In::Query,
        schema,
        description,
        default: None,
    }
}

/// The routes of [`router`], for `GET /openapi.json` (rmf-web's handler names).
pub const DOCS: &[Route] = &[
    doc!(
        "get",
        "/admin/users",
        "get_users",
        "Admin",
        "Usernames (admins only).",
        &[
            query("username", "string", "Usernames starting with it."),
            query("is_admin", "boolean", "Only admins, or only non-admins."),
            query("limit", "integer", "Page size, 1 to 1000 (default 100)."),
            query("offset", "integer", "Items to skip (default 0)."),
        ]
    ),
    doc!(
        "post",
        "/admin/users",
        "create_user",
        "Admin",
        "Body `{username, is_admin?}`: creates a user (admins only)."
    ),
    doc!(
        "get",
        "/admin/users/{username}",
        "get_user",
        "Admin",
        "A user: `{username, is_admin, roles}` (admins only)."
    ),
    doc!(
        "delete",
        "/admin/users/{username}",
        "delete_user",
        "Admin",
        "Deletes a user and their role memberships (admins only)."
    ),
    doc!(
        "post",
        "/admin/users/{username}/make_admin",
        "make_admin",
        "Admin",
        "Body `{admin}`: sets the admin flag (admins only)."
    ),
    doc!(
        "post",
        "/admin/users/{username}/roles",
        "add_user_role",
        "Admin",
        "Body `{name}`: adds a role to a user (admins only)."
    ),
    doc!(
        "put",
        "/admin/users/{username}/roles",
        "set_user_roles",
        "Admin",
        "Body `[{name}]`: sets the roles of a user (admins only)."
    ),
    doc!(
        "delete",
        "/admin/users/{username}/roles/{role}",
        "delete_user_role",
        "Admin",
        "Removes a role from a user (admins only)."
    ),
    doc!(
        "get",
        "/admin/roles",
        "get_roles",
        "Admin",
        "Role names (admins only)."
    ),
    doc!(
        "post",
        "/admin/roles",
        "create_role",
        "Admin",
        "Body `{name}`: creates a role (admins only)."
    ),
    doc!(
        "delete",
        "/admin/roles/{role}",
        "delete_role",
        "Admin",
        "Deletes a role (admins only)."
    ),
    doc!(
        "get",
        "/admin/roles/{role}/permissions",
        "get_role_permissions",
        "Admin",
        "The permissions of a role: `[{authz_grp, action}]` (admins only)."
    ),
    doc!(
        "post",
        "/admin/roles/{role}/permissions",
        "add_role_permission",
        "Admin",
        "Body `{authz_grp, action}`: adds a permission to a role (admins only)."
    ),
    doc!(
        "post",
        "/admin/roles/{role}/permissions/remove",
        "remove_role_permission",
        "Admin",
        "Body `{authz_grp, action}`: removes a permission from a role (admins only)."
    ),
    doc!(
        "get",
        "/favorite_tasks",
        "get_favorites_tasks",
        "Tasks",
        "The user's own favorite tasks."
    ),
    doc!(
        "post",
        "/favorite_tasks",
        "post_favorite_task",
        "Tasks",
        "Body: a `TaskFavorite`; an empty `id` creates one, the user's own `id` replaces it."
    ),
    doc!(
        "delete",
        "/favorite_tasks/{id}",
        "delete_favorite_task",
        "Tasks",
        "Deletes one of the user's favorite tasks."
    ),
];

/// The routes (merged into the API router).
pub fn router() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/user", get(user))
        .route("/permissions", get(permissions))
        .route("/admin/users", get(list_users).post(create_user))
        .route("/admin/users/{username}", get(get_user).delete(delete_user))
        .route(
            "/admin/users/{username}/roles",
            post(add_user_role).put(set_user_roles),
        )
        .route(
            "/admin/users/{username}/roles/{role}",
            delete(delete_user_role),
        )
        .route("/admin/users/{username}/make_admin", post(make_admin))
        .route("/admin/roles", get(list_roles).post(create_role))
        .route("/admin/roles/{role}", delete(delete_role))
        .route(
            "/admin/roles/{role}/permissions",
            get(role_permissions).post(add_permission),
        )
        .route(
            "/admin/roles/{role}/permissions/remove",
            post(remove_permission),
        )
        .route("/favorite_tasks", get(favorites).post(post_favorite))
        .route("/favorite_tasks/{id}", delete(delete_favorite))
}

/// The user of a request as stored (created on first sight).
pub async fn current(app: &AppState, username: &str) -> Result<UserInfo, ApiError> {
    let mut info = app.users.load_or_create(username).await?;
    // --no-auth: the single local user may do everything.
    info.is_admin |= !app.auth.enabled();
    Ok(info)
}

/// The users, when the request's user is an admin (403 otherwise).
async fn admin<'a>(app: &'a AppState, username: &str) -> Result<&'a Users, ApiError> {
    let users = &*app.users;
    let info = current(app, username).await?;
    if !info.is_admin {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            format!("admin only: user {username} is not an admin"),
        ));
    }
    Ok(users)
}

/// `GET /user`: rmf-web's `User` (`{username, is_admin, roles}`).
pub async fn user(State(app): State<AppState>, AuthUser(user): AuthUser) -> Answer<UserInfo> {
    Ok(Json(current(&app, &user.username).await?))
}

/// `GET /permissions`: the user's `[{authz_grp, action}]` through their roles.
pub async fn permissions(
    State(app): State<AppState>,
    AuthUser(user): AuthUser,
) -> Answer<Vec<Permission>> {
    current(&app, &user.username).await?;
    Ok(Json(app.users.effective_permissions(&user.username).await?))
}

#[derive(Deserialize)]
pub struct UsersQuery {
    /// Usernames starting with it.
    username: Option<String>,
    is_admin: Option<bool>,
    limit: Option<i64>,
    offset: Option<i64>,
}

async fn list_users(
    State(app): State<AppState>,
    AuthUser(user): AuthUser,
    Query(q): Query<UsersQuery>,
) -> Answer<Vec<String>> {
    let users = admin(&app, &user.username).await?;
    let limit = q.limit.unwrap_or(100);
    let offset = q.offset.unwrap_or(0);
    if !(1..=1000).contains(&limit) || offset < 0 {
        return Err(ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            "limit must be 1..=1000 and offset >= 0".into(),
        ));
    }
    Ok(Json(
        users
            .list(q.username.as_deref(), q.is_admin, limit, offset)
            .await?,
    ))
}

#[derive(Deserialize)]
struct PostUser {
    username: String,
    #[serde(default)]
    is_admin: bool,
}

async fn create_user(
    State(app): State<AppState>,
    AuthUser(user): AuthUser,
    Body(body): Body<PostUser>,
) -> Answer<Value> {
    let users = admin(&app, &user.username).await?;
    users.create(&body.username, body.is_admin).await?;
    tracing::info!(by = %user.username, username = %body.username, is_admin = body.is_admin, "users: user created");
    Ok(Json(Value::Null))
}

async fn get_user(
    State(app): State<AppState>,
    AuthUser(user): AuthUser,
    Path(username): Path<String>,
) -> Answer<UserInfo> {
    let users = admin(&app, &user.username).await?;
    Ok(Json(
        users
            .get(&username)
            .await?
            .ok_or(UsersError::NoUser(username))?,
    ))
}

async fn delete_user(
    State(app): State<AppState>,
    AuthUser(user): AuthUser,
    Path(username): Path<String>,
) -> Answer<Value> {
    let users = admin(&app, &user.username).await?;
    users.delete(&username).await?;
    tracing::info!(by = %user.username, %username, "users: user deleted");
    Ok(Json(Value::Null))
}

#[derive(Deserialize)]
struct PostMakeAdmin {
    admin: bool,
}

async fn make_admin(
    State(app): State<AppState>,
    AuthUser(user): AuthUser,
    Path(username): Path<String>,
    Body(body): Body<PostMakeAdmin>,
) -> Answer<Value> {
    let users = admin(&app, &user.username).await?;
    users.set_admin(&username, body.admin).await?;
    tracing::info!(by = %user.username, %username, admin = body.admin, "users: admin flag set");
    Ok(Json(Value::Null))
}

#[derive(Deserialize)]
struct PostRole {
    name: String,
}

async fn add_user_role(
    State(app): State<AppState>,
    AuthUser(user): AuthUser,
    Path(username): Path<String>,
    Body(body): Body<PostRole>,
) -> Answer<Value> {
    let users = admin(&app, &user.username).await?;
    users.add_role(&username, &body.name).await?;
    Ok(Json(Value::Null))
}

async fn set_user_roles(
    State(app): State<AppState>,
    AuthUser(user): AuthUser,
    Path(username): Path<String>,
    Body(body): Body<Vec<PostRole>>,
) -> Answer<Value> {
    let users = admin(&app, &user.username).await?;
    let roles: Vec<String> = body.into_iter().map(|r| r.name).collect();
    users.set_roles(&username, &roles).await?;
    Ok(Json(Value::Null))
}

async fn delete_user_role(
    State(app): State<AppState>,
    AuthUser(user): AuthUser,
    Path((username, role)): Path<(String, String)>,
) -> Answer<Value> {
    let users = admin(&app, &user.username).await?;
    users.remove_role(&username, &role).await?;
    Ok(Json(Value::Null))
}

async fn list_roles(State(app): State<AppState>, AuthUser(user): AuthUser) -> Answer<Vec<String>> {
    let users = admin(&app, &user.username).await?;
    Ok(Json(users.roles().await?))
}

async fn create_role(
    State(app): State<AppState>,
    AuthUser(user): AuthUser,
    Body(body): Body<PostRole>,
) -> Answer<Value> {
    let users = admin(&app, &user.username).await?;
    users.create_role(&body.name).await?;
    tracing::info!(by = %user.username, role = %body.name, "users: role created");
    Ok(Json(Value::Null))
}

async fn delete_role(
    State(app): State<AppState>,
    AuthUser(user): AuthUser,
    Path(role): Path<String>,
) -> Answer<Value> {
    let users = admin(&app, &user.username).await?;
    users.delete_role(&role).await?;
    tracing::info!(by = %user.username, %role, "users: role deleted");
    Ok(Json(Value::Null))
}

async fn role_permissions(
    State(app): State<AppState>,
    AuthUser(user): AuthUser,
    Path(role): Path<String>,
) -> Answer<Vec<Permission>> {
    let users = admin(&app, &user.username).await?;
    Ok(Json(users.role_permissions(&role).await?))
}

async fn add_permission(
    State(app): State<AppState>,
    AuthUser(user): AuthUser,
    Path(role): Path<String>,
    Body(body): Body<Permission>,
) -> Answer<Value> {
    let users = admin(&app, &user.username).await?;
    users.add_permission(&role, &body).await?;
    tracing::info!(by = %user.username, %role, authz_grp = %body.authz_grp, action = %body.action, "users: permission added");
    Ok(Json(Value::Null))
}

async fn remove_permission(
    State(app): State<AppState>,
    AuthUser(user): AuthUser,
    Path(role): Path<String>,
    Body(body): Body<Permission>,
) -> Answer<Value> {
    let users = admin(&app, &user.username).await?;
    users.remove_permission(&role, &body).await?;
    tracing::info!(by = %user.username, %role, authz_grp = %body.authz_grp, action = %body.action, "users: permission removed");
    Ok(Json(Value::Null))
}

/// The users, with the user of a favorites request stored (created on first sight).
async fn own<'a>(app: &'a AppState, username: &str) -> Result<&'a Users, ApiError> {
    current(app, username).await?;
    Ok(&app.users)
}

/// `GET /favorite_tasks`: the user's own favorites (rmf-web's `TaskFavorite`s).
async fn favorites(State(app): State<AppState>, AuthUser(user): AuthUser) -> Answer<Vec<Value>> {
    let users = own(&app, &user.username).await?;
    Ok(Json(users.favorites(&user.username).await?))
}

/// `POST /favorite_tasks`: creates (empty or new `id`) or replaces (own `id`) a favorite; answers
/// it as stored (with its `id` and `user`).
async fn post_favorite(
    State(app): State<AppState>,
    AuthUser(user): AuthUser,
    Body(body): Body<Value>,
) -> Answer<Value> {
    let users = own(&app, &user.username).await?;
    let Value::Object(mut fav) = body else {
        return Err(ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            "a favorite task is a JSON object".into(),
        ));
    };
    let name = match fav.get("name") {
        Some(Value::String(n)) if !n.is_empty() => n.clone(),
        _ => {
            return Err(ApiError(
                StatusCode::UNPROCESSABLE_ENTITY,
                "field `name` (a non-empty string) is required".into(),
            ));
        }
    };
    super::check_name("name", &name, false)?;
    let id = match fav.get("id") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(id)) => id.clone(),
        Some(_) => {
            return Err(ApiError(
                StatusCode::UNPROCESSABLE_ENTITY,
                "field `id` must be a string".into(),
            ));
        }
    };
    let id = if id.is_empty() {
        uuid::Uuid::new_v4().to_string()
    } else {
        super::check_name("id", &id, false)?;
        id
    };
    fav.insert("id".into(), json!(id));
    fav.insert("user".into(), json!(user.username));
    let fav = Value::Object(fav);
    let text = fav.to_string();
    if text.len() > super::MAX_FAVORITE {
        return Err(ApiError(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a favorite task is at most {} bytes", super::MAX_FAVORITE),
        ));
    }
    users
        .put_favorite(&user.username, &id, &name, &text)
        .await?;
    Ok(Json(fav))
}

/// `DELETE /favorite_tasks/{id}`: only the user's own (404 otherwise).
async fn delete_favorite(
    State(app): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<String>,
) -> Answer<Value> {
    let users = own(&app, &user.username).await?;
    if !users.delete_favorite(&user.username, &id).await? {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("Favorite task with id {id} does not exists"),
        ));
    }
    Ok(Json(Value::Null))
}
