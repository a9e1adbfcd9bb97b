//! REST requests a proxy does not answer itself, forwarded to its upstream over HTTP/1.1 with
//! the client's headers (its `Authorization` included) and answered with what upstream answered
//! (status, headers, body). The ★ command routes thus reach RMF only through the main process,
//! and the read routes answer the upstream's state. Commands (any method but GET and HEAD) need
//! a valid token here too, so junk never reaches the main process.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use thiserror::Error;

use super::ProxyState;
use crate::access::token::Auth;

/// Largest request body forwarded.
pub const MAX_BODY: usize = 1 << 20;
/// Wait for upstream's answer (the task routes wait for RMF up to a few seconds).
const TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Error)]
pub enum ForwardError {
    #[error("upstream URL must be http://host:port[/prefix]: {0}")]
    Url(String),
}

/// Where forwarded requests go.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// `host:port`.
    pub authority: String,
    /// The upstream's route prefix ("" or like "/api").
    pub prefix: String,
}

impl Upstream {
    pub fn parse(url: &str) -> Result<Self, ForwardError> {
        let uri: Uri = url.parse().map_err(|e| ForwardError::Url(format!("{e}")))?;
        if uri.scheme_str() != Some("http") {
            return Err(ForwardError::Url(format!(
                "{url} (only http: terminate TLS in front of the proxies)"
            )));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| ForwardError::Url(url.to_string()))?;
        let authority = if authority.port().is_some() {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        if uri.query().is_some() {
            return Err(ForwardError::Url(format!("{url} (no query)")));
        }
        Ok(Upstream {
            authority,
            prefix: uri.path().trim_end_matches('/').to_string(),
        })
    }

    /// The websocket URL of the upstream's replication stream.
    pub fn replicate_url(&self) -> String {
        format!("ws://{}{}/_replicate", self.authority, self.prefix)
    }
}

fn error(status: StatusCode, detail: String) -> Response {
    (status, axum::Json(serde_json::json!({ "detail": detail }))).into_response()
}

/// Hop-by-hop headers (RFC 9110 7.6.1) are not forwarded.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
            | "content-length"
    )
}

fn copy_headers(from: &HeaderMap, to: &mut HeaderMap) {
    for (name, value) in from {
        if !hop_by_hop(name) {
            to.append(name.clone(), value.clone());
        }
    }
}

/// The fallback of the proxy's router: forwards the request upstream.
pub async fn forward(State(proxy): State<ProxyState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let authorization = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok());
    if let Some(cached) = super::cache::answer(
        &proxy,
        &parts.method,
        parts.uri.path(),
        parts.uri.query(),
        authorization,
    ) {
        return cached;
    }
    if parts.method != Method::GET && parts.method != Method::HEAD {
        if let Err(e) = proxy.auth.verify(Auth::bearer(authorization)) {
            return error(StatusCode::UNAUTHORIZED, e.to_string());
        }
    }
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body over {MAX_BODY} bytes"),
            );
        }
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let upstream = proxy.upstream();
    let mut builder = axum::http::Request::builder()
        .method(parts.method.clone())
        .uri(format!("{}{}", upstream.prefix, path));
    if let Some(h) = builder.headers_mut() {
        copy_headers(&parts.headers, h);
        if let Ok(host) = HeaderValue::from_str(&upstream.authority) {
            h.insert(header::HOST, host);
        }
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    let Ok(out) = builder.body(Body::from(body)) else {
        return error(StatusCode::BAD_REQUEST, "request not forwardable".into());
    };
    match tokio::time::timeout(TIMEOUT, send(&upstream.authority, out)).await {
        Ok(Ok(answer)) => {
            let (parts, incoming) = answer.into_parts();
            let mut response = Response::new(Body::new(incoming));
            *response.status_mut() = parts.status;
            copy_headers(&parts.headers, response.headers_mut());
            response
        }
        Ok(Err(e)) => error(
            StatusCode::BAD_GATEWAY,
            format!("upstream unavailable: {e}"),
        ),
        Err(_) => error(
            StatusCode::GATEWAY_TIMEOUT,
            "upstream did not answer in time".into(),
        ),
    }
}

/// One request on a fresh connection (commands are rare; reads are served by the hub's
/// sockets, not REST polling).
pub(crate) async fn send(
    authority: &str,
    request: axum::http::Request<Body>,
) -> Result<axum::http::Response<hyper::body::Incoming>, Box<dyn std::error::Error + Send + Sync>> {
    let stream = tokio::net::TcpStream::connect(authority).await?;
    stream.set_nodelay(true)?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!("upstream connection: {e}");
        }
    });
    Ok(sender.send_request(request).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_urls_give_authority_and_prefix() {
        let u = Upstream::parse("http://127.0.0.1:8000/api/").expect("url");
        assert_eq!(u.authority, "127.0.0.1:8000");
        assert_eq!(u.prefix, "/api");
        assert_eq!(u.replicate_url(), "ws://127.0.0.1:8000/api/_replicate");
        let u = Upstream::parse("http://main").expect("url");
        assert_eq!((u.authority.as_str(), u.prefix.as_str()), ("main:80", ""));
        assert!(Upstream::parse("https://main").is_err());
        assert!(Upstream::parse("main:8000").is_err());
        assert!(Upstream::parse("http://main/?x=1").is_err());
    }
}
