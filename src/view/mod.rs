//! The built-in live view of the site: one page at `/` (at `{prefix}` with a URL prefix: axum
//! routes a nested router's `/` there, not at `{prefix}/`) and its static files at
//! `{prefix}/view/{file}`, embedded in the binary (no build step, no CDN). The page holds no data
//! and needs no token to load; it reads everything through the public API (socket.io
//! subscriptions and REST), with the user's token when authentication is on, so it is also the
//! reference client for dashboard authors.
//!
//! `{prefix}/view/config.json` tells the page whether it needs a token (`{"auth": bool}`);
//! `{prefix}/view/entities` (with a token) names the doors and lifts whose state the server has
//! and the user may read (room rules), so that the page lists them before (or without) a
//! building map.
//! With `RMF_DASH_VIEW_DIR` set, the same files are read from that directory at each request
//! instead (to work on the page without rebuilding); only the names listed here are served.
//! `socket.io.min.js` is socket.io-client 4.8.1's browser bundle (MIT, license header kept and
//! `socket.io-client.LICENSE` served next to it).

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::api::AppState;

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

/// The page (`{prefix}/`, listed as `index.html`) and the files under `{prefix}/view/`.
const ASSETS: &[Asset] = &[
    Asset {
        name: "index.html",
        content_type: "text/html; charset=utf-8",
        body: include_str!("assets/index.html"),
    },
    Asset {
        name: "view.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("assets/view.js"),
    },
    Asset {
        name: "view.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("assets/view.css"),
    },
    Asset {
        name: "socket.io.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("assets/socket.io.min.js"),
    },
    Asset {
        name: "socket.io-client.LICENSE",
        content_type: "text/plain; charset=utf-8",
        body: include_str!("assets/socket.io-client.LICENSE"),
    },
];

/// Scripts, styles and connections only from this server; map images may be blobs.
const CSP: &str = "default-src 'self'; img-src 'self' data: blob:; connect-src 'self' ws: wss:; \
                   object-src 'none'; base-uri 'self'; frame-ancestors 'none'";

/// Environment variable naming a directory to serve the view's files from.
pub const VIEW_DIR_ENV: &str = "RMF_DASH_VIEW_DIR";

/// Where the files come from, and the page's `<base>` (its URLs are relative to it, so the page
/// works at `{prefix}` as well as `{prefix}/`).
struct Files {
    dir: Option<std::path::PathBuf>,
    base: String,
}

/// The view's routes under `prefix` ("" or like "/api"; public: the page and its files hold no
/// data).
pub fn routes(prefix: &str) -> axum::Router<AppState> {
    let dir = std::env::var_os(VIEW_DIR_ENV).map(std::path::PathBuf::from);
    if let Some(d) = &dir {
        tracing::info!(dir = %d.display(), "serving the view's files from a directory");
    }
    let files = std::sync::Arc::new(Files {
        dir,
        base: base_tag(prefix),
    });
    let index = files.clone();
    axum::Router::new()
        .route("/", get(move || serve("index.html".into(), index.clone())))
        .route("/view/config.json", get(config))
        .route("/view/entities", get(entities))
        .route(
            "/view/{file}",
            get(move |Path(file): Path<String>| serve(file, files.clone())),
        )
}

/// `<base href="{prefix}/">`, or nothing for a prefix that is not a plain path (the page then
/// only works at `{prefix}/`).
fn base_tag(prefix: &str) -> String {
    let plain = prefix
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/-_.~".contains(c));
    if plain {
        format!("<head>\n<base href=\"{prefix}/\">")
    } else {
        "<head>".into()
    }
}

/// The file `name` (embedded, or from the directory).
async fn serve(name: String, files: std::sync::Arc<Files>) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == name) else {
        return (StatusCode::NOT_FOUND, "no such file in the view").into_response();
    };
    let body: std::borrow::Cow<'static, str> = match &files.dir {
        None => asset.body.into(),
        Some(dir) => match tokio::fs::read_to_string(dir.join(asset.name)).await {
            Ok(body) => body.into(),
            Err(e) => {
                let path = dir.join(asset.name);
                return (StatusCode::NOT_FOUND, format!("{}: {e}", path.display())).into_response();
            }
        },
    };
    let body = if asset.name == "index.html" {
        Body::from(body.replacen("<head>", &files.base, 1))
    } else {
        match body {
            std::borrow::Cow::Borrowed(b) => Body::from(b),
            std::borrow::Cow::Owned(b) => Body::from(b),
        }
    };
    with_headers(asset.content_type, body)
}

fn with_headers(content_type: &'static str, body: Body) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    response
}

/// What the page needs to know before it connects.
async fn config(State(app): State<AppState>) -> Response {
    let mut response = Json(serde_json::json!({"auth": app.auth.enabled()})).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The doors and lifts whose state the server has, by name (`{doors: [...], lifts: [...]}`): only
/// those whose state room the user may read (room rules, `--room-permission`), so the page names
/// nothing the user could not subscribe to.
async fn entities(user: crate::api::AuthUser, State(app): State<AppState>) -> Response {
    let grants = tokio::sync::OnceCell::new();
    let names = |prefix: &'static str| {
        let states = crate::api::read::states(&app.hub, prefix, "/state");
        let (app, grants, username) = (&app, &grants, &user.0.username);
        async move {
            let mut readable = Vec::with_capacity(states.len());
            for (name, _) in states {
                let room = format!("{prefix}{name}/state");
                let allowed = match app.sockets.room_access() {
                    Some(access) => access.may_read(grants, username, None, &room).await.is_ok(),
                    None => true,
                };
                if allowed {
                    readable.push(name);
                }
            }
            readable
        }
    };
    let doors = names("/doors/").await;
    let lifts = names("/lifts/").await;
    Json(serde_json::json!({"doors": doors, "lifts": lifts})).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_embedded_and_named_once() {
        let mut names: Vec<&str> = ASSETS.iter().map(|a| a.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ASSETS.len());
        assert!(ASSETS.iter().all(|a| !a.body.is_empty()));
        let index = ASSETS[0].body;
        assert!(index.contains("\"view/view.js\""));
        assert!(index.contains("\"view/socket.io.min.js\""));
        assert!(index.contains("\"view/view.css\""));
    }

    #[test]
    fn the_page_is_based_at_the_prefix() {
        assert_eq!(base_tag(""), "<head>\n<base href=\"/\">");
        assert_eq!(base_tag("/api"), "<head>\n<base href=\"/api/\">");
        assert_eq!(base_tag("/a\"><script>"), "<head>");
    }

    #[test]
    fn vendored_socket_io_client_keeps_its_license_header() {
        let js = ASSETS
            .iter()
            .find(|a| a.name == "socket.io.min.js")
            .map(|a| a.body)
            .unwrap_or_default();
        assert!(js.starts_with("/*!\n * Socket.IO v4.8.1\n"));
        assert!(js.contains("Released under the MIT License."));
    }
}
