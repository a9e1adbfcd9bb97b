//! The edge of every HTTP listener (main process and proxy): what browsers on other origins and
//! links inside payloads need, as rmf-web's api-server gives it (COMPAT.md, "Origins").
//!
//! - CORS on every route and the socket.io handshake, preflight included ([`Edge::cors`]): every
//!   origin by default, as rmf-web allows; `--cors-origin ORIGIN` (repeatable) restricts it.
//! - The public URL ([`Edge::public_url`]): the address clients reach the server at, from which
//!   the URLs inside payloads are made absolute ([`MapUrls`] for the building map's images).
//!   `--public-url`, by default `http://<listen><prefix>`.

use std::net::SocketAddr;
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method};
use tower_http::cors::{AllowHeaders, AllowOrigin, Any, CorsLayer};

/// Why an edge setting is refused.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    #[error(
        "--cors-origin {0:?}: expected scheme://host[:port] (like https://dashboard.example.com) or *"
    )]
    Origin(String),
    #[error("--public-url {0:?}: expected http(s)://host[:port][/path]")]
    PublicUrl(String),
}

/// The edge settings of one listener.
#[derive(Debug, Clone, Default)]
pub struct EdgeConfig {
    /// Origins allowed to call from a browser; empty: every origin.
    pub cors_origins: Vec<String>,
    /// Base of the URLs inside payloads (`--public-url`); `None`: derived from the listener.
    pub public_url: Option<String>,
}

/// The checked edge of a listener.
#[derive(Debug, Clone)]
pub struct Edge {
    origins: Option<Vec<HeaderValue>>,
    public_url: String,
}

/// How long a browser may keep a preflight's answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

impl Edge {
    /// Checks `config` for a listener on `listen` serving under `prefix`.
    pub fn new(config: &EdgeConfig, listen: SocketAddr, prefix: &str) -> Result<Edge, EdgeError> {
        let origins =
            if config.cors_origins.is_empty() || config.cors_origins.iter().any(|o| o == "*") {
                None
            } else {
                Some(
                    config
                        .cors_origins
                        .iter()
                        .map(|o| origin(o))
                        .collect::<Result<Vec<_>, _>>()?,
                )
            };
        let public_url = match &config.public_url {
            Some(url) => checked_url(url)?,
            None => default_public_url(listen, prefix),
        };
        Ok(Edge {
            origins,
            public_url,
        })
    }

    /// The URL clients reach this server at (no trailing `/`).
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// Whether every origin is allowed.
    pub fn any_origin(&self) -> bool {
        self.origins.is_none()
    }

    /// The CORS layer of every route: the allowed origins; the methods of the routes; every
    /// request header the preflight asks for, mirrored (the dashboard sends `Authorization`,
    /// which browsers never cover by the wildcard `*`, and `Content-Type: application/json`);
    /// no credentials (tokens travel in headers, not cookies).
    pub fn cors(&self) -> CorsLayer {
        let layer = CorsLayer::new()
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::DELETE,
                Method::PATCH,
                Method::OPTIONS,
            ])
            .allow_headers(AllowHeaders::mirror_request())
            .expose_headers([HeaderName::from_static("content-type")])
            .max_age(PREFLIGHT_MAX_AGE);
        match &self.origins {
            None => layer.allow_origin(Any),
            Some(list) => layer.allow_origin(AllowOrigin::list(list.clone())),
        }
    }

    /// The rewrite that makes the building map's image URLs absolute under the public URL.
    pub fn map_urls(&self) -> MapUrls {
        MapUrls {
            base: self.public_url.clone(),
        }
    }
}

/// `http://<listen><prefix>`; an unspecified address (0.0.0.0, ::) becomes `localhost`, as
/// rmf-web's default public URL (set `--public-url` when clients reach the server elsewhere).
fn default_public_url(listen: SocketAddr, prefix: &str) -> String {
    let port = listen.port();
    let host = match listen.ip() {
        ip if ip.is_unspecified() => "localhost".to_string(),
        std::net::IpAddr::V4(ip) => ip.to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
    };
    format!("http://{host}:{port}{prefix}")
}

/// An origin as browsers send it: `scheme://host[:port]`, nothing after.
fn origin(o: &str) -> Result<HeaderValue, EdgeError> {
    let bad = || EdgeError::Origin(o.to_string());
    let rest = o
        .strip_prefix("http://")
        .or_else(|| o.strip_prefix("https://"))
        .ok_or_else(bad)?;
    if rest.is_empty() || rest.contains(['/', '?', '#', ' ']) {
        return Err(bad());
    }
    HeaderValue::from_str(o).map_err(|_| bad())
}

fn checked_url(url: &str) -> Result<String, EdgeError> {
    let bad = || EdgeError::PublicUrl(url.to_string());
    let trimmed = url.trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("http://")
        .or_else(|| trimmed.strip_prefix("https://"))
        .ok_or_else(bad)?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() || trimmed.contains(['?', '#', ' ', '"', '\\']) {
        return Err(bad());
    }
    Ok(trimmed.to_string())
}

/// Makes the building map's image URLs absolute: each image's `data` that names
/// `.../building_map/images/<level>/<image>` (the engine's root-relative path, or an upstream's
/// absolute URL on a proxy) becomes `<public url>/building_map/images/<level>/<image>`. The
/// dashboard uses the field as the image's URL as it is.
#[derive(Debug, Clone)]
pub struct MapUrls {
    base: String,
}

const IMAGES: &str = "/building_map/images/";

impl crate::hub::Rewrite for MapUrls {
    fn rewrite(&self, room: &str, value: &str) -> Option<String> {
        if room != "/building_map" || !value.contains(IMAGES) {
            return None;
        }
        let mut map: serde_json::Value = serde_json::from_str(value).ok()?;
        let levels = map.get_mut("levels")?.as_array_mut()?;
        for level in levels {
            let Some(images) = level.get_mut("images").and_then(|i| i.as_array_mut()) else {
                continue;
            };
            for image in images {
                let Some(data) = image.get_mut("data") else {
                    continue;
                };
                let Some(at) = data.as_str().and_then(|d| d.find(IMAGES)) else {
                    continue;
                };
                let path = data
                    .as_str()
                    .map(|d| d[at..].to_string())
                    .unwrap_or_default();
                *data = serde_json::Value::from(format!("{}{path}", self.base));
            }
        }
        serde_json::to_string(&map).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::Rewrite;

    fn listen(s: &str) -> SocketAddr {
        s.parse().unwrap_or_else(|_| unreachable!("test address"))
    }

    #[test]
    fn public_url_defaults_to_the_listener_and_prefix() {
        let e = Edge::new(&EdgeConfig::default(), listen("127.0.0.1:8000"), "/api");
        assert_eq!(
            e.map(|e| e.public_url).ok().as_deref(),
            Some("http://127.0.0.1:8000/api")
        );
        let e = Edge::new(&EdgeConfig::default(), listen("0.0.0.0:80"), "");
        assert_eq!(
            e.map(|e| e.public_url).ok().as_deref(),
            Some("http://localhost:80")
        );
        let c = EdgeConfig {
            public_url: Some("https://rmf.example.com/api/".into()),
            ..EdgeConfig::default()
        };
        let e = Edge::new(&c, listen("0.0.0.0:80"), "/api");
        assert_eq!(
            e.map(|e| e.public_url).ok().as_deref(),
            Some("https://rmf.example.com/api")
        );
    }

    #[test]
    fn bad_settings_are_refused() {
        for o in ["example.com", "http://a/b", "ftp://a", "http://"] {
            let c = EdgeConfig {
                cors_origins: vec![o.into()],
                ..EdgeConfig::default()
            };
            assert!(Edge::new(&c, listen("127.0.0.1:1"), "").is_err(), "{o}");
        }
        let c = EdgeConfig {
            public_url: Some("localhost:8000".into()),
            ..EdgeConfig::default()
        };
        assert!(Edge::new(&c, listen("127.0.0.1:1"), "").is_err());
    }

    #[test]
    fn map_image_urls_become_absolute() {
        let m = MapUrls {
            base: "http://h:1/api".into(),
        };
        let map = r#"{"name":"b","levels":[{"name":"L1","images":[{"name":"L1","data":"/building_map/images/L1/L1"}]},{"name":"L2","images":[{"name":"x","data":"http://up:2/p/building_map/images/L2/x"}]}]}"#;
        let out = m.rewrite("/building_map", map).unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
        assert_eq!(
            v["levels"][0]["images"][0]["data"],
            "http://h:1/api/building_map/images/L1/L1"
        );
        assert_eq!(
            v["levels"][1]["images"][0]["data"],
            "http://h:1/api/building_map/images/L2/x"
        );
        assert_eq!(m.rewrite("/doors/d/state", map), None);
    }
}
