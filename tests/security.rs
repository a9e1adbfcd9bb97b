//! Attacks on the doors of `rmf-dash serve` and `rmf-dash proxy` (issue 17), against the real
//! binaries with real clients (HTTP/1.1, node socket.io-client, websockets):
//!
//! - every loosely made token (a future `nbf`, no `aud`, no `iss` or another one while
//!   `--jwt-iss` is set, expired, no `exp`, another signature) is refused with the same reason on
//!   REST (401), socket.io (`connect_error`), `/_replicate` (401) and `/_internal` (401), on the
//!   main process and through a proxy, and a good token is accepted on each; no token is logged;
//! - `/_internal` needs a credential whenever clients authenticate: a client JWT or the internal
//!   token; `--internal-open` opens it (warned at start), as does `--no-auth`; refusals are
//!   counted on `/metrics`;
//! - `/_loopback/published` (every user's commands) is for admins only.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use serde_json::{Map, Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

mod common;
use common::{Proc, bearer, bin, node_dir};

const SECRET: &str = "security-test-secret";
const ISS: &str = "https://idp.example/realms/rmf";

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// A token signed with `secret` carrying `claims`.
fn signed(secret: &str, claims: &Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("token")
}

/// The claims of a good token of `user` (issuer [`ISS`]), changed by `edit`.
fn claims(user: &str, edit: impl FnOnce(&mut Map<String, Value>)) -> Value {
    let mut c = Map::new();
    c.insert("aud".into(), json!("rmf_api_server"));
    c.insert("iss".into(), json!(ISS));
    c.insert("exp".into(), json!(now() + 3600));
    c.insert("nbf".into(), json!(now() - 60));
    c.insert("preferred_username".into(), json!(user));
    edit(&mut c);
    Value::Object(c)
}

/// A good token of `user` for servers started with `--jwt-iss` [`ISS`].
fn good(user: &str) -> String {
    signed(SECRET, &claims(user, |_| {}))
}

/// Every loosely made token and the reason it is refused with, everywhere.
fn bad_tokens() -> Vec<(&'static str, String, &'static str)> {
    let edited = |edit: fn(&mut Map<String, Value>)| signed(SECRET, &claims("mallory", edit));
    vec![
        (
            "nbf in an hour",
            edited(|c| {
                c.insert("nbf".into(), json!(now() + 3600));
            }),
            "invalid token: not valid yet (nbf)",
        ),
        (
            "no aud",
            edited(|c| {
                c.remove("aud");
            }),
            "invalid token: no `aud` claim",
        ),
        (
            "another aud",
            edited(|c| {
                c.insert("aud".into(), json!("account"));
            }),
            "invalid token: wrong audience (aud)",
        ),
        (
            "no iss",
            edited(|c| {
                c.remove("iss");
            }),
            "invalid token: no `iss` claim",
        ),
        (
            "another iss",
            edited(|c| {
                c.insert("iss".into(), json!("https://evil.example"));
            }),
            "invalid token: wrong issuer (iss)",
        ),
        (
            "expired",
            edited(|c| {
                c.insert("exp".into(), json!(now() - 3600));
            }),
            "invalid token: expired (exp)",
        ),
        (
            "no exp",
            edited(|c| {
                c.remove("exp");
            }),
            "invalid token: no `exp` claim",
        ),
        (
            "another signature",
            signed("another-secret", &claims("mallory", |_| {})),
            "invalid token: bad signature",
        ),
    ]
}

/// A running `rmf-dash` (killed on drop) on the port it chose, its log in a file.
struct Server {
    _proc: Proc,
    port: u16,
    log: PathBuf,
}

impl Server {
    /// `rmf-dash ARGS --listen 127.0.0.1:0`; returns once it says where it listens and answers
    /// `/health` 200.
    fn start(dir: &Path, name: &str, args: &[&str]) -> Server {
        let log = dir.join(format!("{name}.log"));
        let child = bin()
            .args(args)
            .args(["--listen", "127.0.0.1:0"])
            .env("RMF_DASH_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start rmf-dash");
        let proc = Proc(child);
        let start = Instant::now();
        let port = loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let port = text
                .lines()
                .filter(|l| l.contains("listening"))
                .find_map(|l| l.split("addr=127.0.0.1:").nth(1))
                .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|p| p.parse::<u16>().ok());
            if let Some(port) = port {
                break port;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{name} did not listen: {text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let server = Server {
            _proc: proc,
            port,
            log,
        };
        while !matches!(common::try_http(port, "GET", "/health", None, None), Ok(r) if r.status == 200)
        {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{name} is not healthy"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// `rmf-dash serve --no-db EXTRA`.
    fn serve(dir: &Path, name: &str, extra: &[&str]) -> Server {
        let mut args = vec!["serve", "--no-db"];
        args.extend_from_slice(extra);
        Server::start(dir, name, &args)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).expect("server log")
    }

    /// `GET path` with `token` as bearer: (status, JSON body).
    fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        self.call("GET", path, token, None)
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let auth = token.map(bearer);
        let body = body.map(|b| b.to_string());
        let r = common::http(self.port, method, path, auth.as_deref(), body.as_deref());
        (r.status, r.value())
    }

    /// Every sample of `/metrics`, as `name{labels}` -> value.
    fn metrics(&self) -> BTreeMap<String, f64> {
        let (status, body) = self.get("/metrics", None);
        assert_eq!(status, 200);
        body.as_str()
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.rsplit_once(' '))
            .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
            .collect()
    }

    /// `rmf_dash_internal_refused_total` by reason: (no_token, bad_token).
    fn internal_refused(&self) -> (f64, f64) {
        let m = self.metrics();
        let n = |r: &str| m[&format!("rmf_dash_internal_refused_total{{reason=\"{r}\"}}")];
        (n("no_token"), n("bad_token"))
    }

    /// Frames fed from `/_internal`.
    fn internal_ok(&self) -> f64 {
        self.metrics()["rmf_dash_internal_frames_total{result=\"ok\"}"]
    }
}

/// How a websocket client gives its credential.
#[derive(Clone, Copy)]
enum Credential<'a> {
    None,
    Bearer(&'a str),
    Query(&'a str),
}

/// Opens the websocket `path` (`/_internal`, `/_replicate`) with `credential`: `Ok` once
/// upgraded, after sending `frame` if given and closing; the refusal's status and `detail`
/// otherwise.
fn websocket(
    port: u16,
    path: &str,
    credential: Credential,
    frame: Option<&str>,
) -> Result<(), (u16, String)> {
    let url = match credential {
        Credential::Query(t) => format!(
            "ws://127.0.0.1:{port}{path}?token={}",
            percent_encoding::utf8_percent_encode(t, percent_encoding::NON_ALPHANUMERIC)
        ),
        _ => format!("ws://127.0.0.1:{port}{path}"),
    };
    let mut req = url.into_client_request().expect("request");
    if let Credential::Bearer(t) = credential {
        req.headers_mut()
            .insert("authorization", bearer(t).parse().expect("header"));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        match tokio_tungstenite::connect_async(req).await {
            Ok((mut ws, _)) => {
                if let Some(f) = frame {
                    ws.send(Message::text(f)).await.expect("send");
                }
                let _ = ws.close(None).await;
                Ok(())
            }
            Err(WsError::Http(resp)) => {
                let body: Value =
                    serde_json::from_slice(resp.body().as_deref().unwrap_or_default())
                        .unwrap_or(Value::Null);
                Err((
                    resp.status().as_u16(),
                    body["detail"].as_str().unwrap_or_default().to_string(),
                ))
            }
            Err(e) => panic!("{path}: {e}"),
        }
    })
}

/// One socket.io client per token ("-": none) connecting to `port`: `{connected, error}` each.
fn socketio(port: u16, tokens: &[&str]) -> Vec<Value> {
    let out = Command::new("node")
        .arg("connect.mjs")
        .arg(format!("http://127.0.0.1:{port}"))
        .args(tokens)
        .current_dir(node_dir())
        .output()
        .expect("node");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = BufReader::new(&out.stdout[..])
        .lines()
        .map(|l| serde_json::from_str(&l.expect("line")).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), tokens.len(), "{lines:?}");
    lines
}

/// A fleet adapter's state update of fleet `name`.
fn fleet_frame(name: &str) -> String {
    json!({"type": "fleet_state_update", "data": {"name": name, "robots": {}}}).to_string()
}

/// Checks every door of `server` with every bad token, then with a good one; `internal`:
/// whether it serves `/_internal` (main processes) or not (proxies).
fn every_door(server: &Server, name: &str, internal: bool) {
    let bad = bad_tokens();

    // socket.io: connect_error with the reason.
    let tokens: Vec<&str> = bad.iter().map(|(_, t, _)| t.as_str()).collect();
    for ((what, _, reason), got) in bad.iter().zip(socketio(server.port, &tokens)) {
        assert_eq!(
            got,
            json!({"connected": false, "error": reason}),
            "{name}: socket.io, {what}"
        );
    }
    for (what, token, reason) in &bad {
        let token = token.as_str();
        // REST: 401 {"detail": reason}, reads and commands.
        assert_eq!(
            server.get("/user", Some(token)),
            (401, json!({"detail": reason})),
            "{name}: GET /user, {what}"
        );
        assert_eq!(
            server.call(
                "POST",
                "/doors/d/request",
                Some(token),
                Some(json!({"mode": 2}))
            ),
            (401, json!({"detail": reason})),
            "{name}: POST a door request, {what}"
        );
        // /_replicate: 401 before the upgrade.
        assert_eq!(
            websocket(server.port, "/_replicate", Credential::Bearer(token), None),
            Err((401, format!("/_replicate: {reason}"))),
            "{name}: /_replicate, {what}"
        );
        if internal {
            for credential in [Credential::Bearer(token), Credential::Query(token)] {
                assert_eq!(
                    websocket(server.port, "/_internal", credential, None),
                    Err((401, format!("/_internal: {reason}"))),
                    "{name}: /_internal, {what}"
                );
            }
        }
    }

    // A good token passes every door.
    let alice = good("alice");
    let (status, user) = server.get("/user", Some(&alice));
    assert_eq!(
        (status, &user["username"]),
        (200, &json!("alice")),
        "{name}: {user}"
    );
    assert_eq!(
        socketio(server.port, &[&alice]),
        [json!({"connected": true})],
        "{name}: socket.io"
    );
    assert_eq!(
        websocket(server.port, "/_replicate", Credential::Bearer(&alice), None),
        Ok(()),
        "{name}: /_replicate"
    );
    // Nothing logged a token (nor the signature of one).
    let log = server.log_text();
    for (what, token, _) in bad.iter().chain([&("good", alice.clone(), "")]) {
        let signature = token.rsplit('.').next().unwrap_or_default();
        assert!(
            !log.contains(signature),
            "{name}: the log holds the {what} token"
        );
    }
}

#[test]
fn every_loose_token_is_refused_the_same_way_at_every_door() {
    let dir = tempfile::tempdir().expect("tempdir");
    let main = Server::serve(
        dir.path(),
        "main",
        &["--jwt-secret", SECRET, "--jwt-iss", ISS],
    );
    every_door(&main, "main", true);
    // /_internal takes the good token as an adapter's credential, by header or query.
    for credential in [
        Credential::Bearer(&good("adapter")),
        Credential::Query(&good("adapter")),
    ] {
        assert_eq!(
            websocket(main.port, "/_internal", credential, Some(&fleet_frame("f"))),
            Ok(())
        );
    }
    let n = bad_tokens().len() as f64;
    assert_eq!(main.internal_refused(), (0.0, 2.0 * n));

    // Through a proxy (it replicates with a good token): the same answers.
    let upstream = format!("http://127.0.0.1:{}", main.port);
    let proxy = Server::start(
        dir.path(),
        "proxy",
        &[
            "proxy",
            "--jwt-secret",
            SECRET,
            "--jwt-iss",
            ISS,
            "--upstream",
            &upstream,
            "--upstream-token",
            &good("proxy"),
        ],
    );
    every_door(&proxy, "proxy", false);
    // The proxy's own upstream token is not logged either.
    let proxy_token = good("proxy");
    let signature = proxy_token.rsplit('.').next().unwrap_or_default();
    assert!(!proxy.log_text().contains(signature));
}

#[test]
fn internal_requires_a_credential_whenever_clients_authenticate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let jwt = ["--jwt-secret", SECRET];
    let by_jwt = Server::serve(dir.path(), "jwt", &jwt);
    let with_token = Server::serve(
        dir.path(),
        "token",
        &["--jwt-secret", SECRET, "--internal-token", "adapter-t0ken"],
    );
    let lab = Server::serve(
        dir.path(),
        "lab",
        &["--jwt-secret", SECRET, "--internal-open"],
    );
    let demo = Server::serve(dir.path(), "demo", &["--no-auth"]);
    let frame = fleet_frame("f1");
    let no_token = "/_internal: no token (give ?token= or Authorization: Bearer)";

    // Client auth on, no internal token: a client JWT only.
    assert_eq!(
        websocket(by_jwt.port, "/_internal", Credential::None, Some(&frame)),
        Err((401, no_token.into()))
    );
    assert_eq!(by_jwt.get("/_internal", None).0, 401, "plain GET");
    assert_eq!(
        websocket(
            by_jwt.port,
            "/_internal",
            Credential::Query("adapter-t0ken"),
            None
        ),
        Err((401, "/_internal: invalid token: malformed".into()))
    );
    let adapter = signed(
        SECRET,
        &json!({"aud": "rmf_api_server", "exp": now() + 600, "preferred_username": "fleet-adapter"}),
    );
    assert_eq!(
        websocket(
            by_jwt.port,
            "/_internal",
            Credential::Bearer(&adapter),
            Some(&frame)
        ),
        Ok(())
    );
    assert_eq!(
        websocket(
            by_jwt.port,
            "/_internal",
            Credential::Query(&adapter),
            Some(&frame)
        ),
        Ok(())
    );
    assert_eq!(by_jwt.internal_refused(), (2.0, 1.0));
    let log = by_jwt.log_text();
    assert!(
        log.contains("/_internal requires a valid client JWT"),
        "{log}"
    );
    assert!(log.contains("/_internal connection refused"), "{log}");

    // With --internal-token: it, or a client JWT.
    assert_eq!(
        websocket(with_token.port, "/_internal", Credential::None, None),
        Err((401, no_token.into()))
    );
    assert_eq!(
        websocket(
            with_token.port,
            "/_internal",
            Credential::Bearer("adapter-t0ke"),
            None
        ),
        Err((
            401,
            "/_internal: wrong token: not the internal token, nor a valid client JWT \
             (invalid token: malformed)"
                .into()
        ))
    );
    assert_eq!(
        websocket(
            with_token.port,
            "/_internal",
            Credential::Bearer("adapter-t0ken"),
            Some(&frame)
        ),
        Ok(())
    );
    assert_eq!(
        websocket(
            with_token.port,
            "/_internal",
            Credential::Query(&adapter),
            Some(&frame)
        ),
        Ok(())
    );
    assert_eq!(with_token.internal_refused(), (1.0, 1.0));
    assert!(
        with_token
            .log_text()
            .contains("/_internal requires the internal token or a valid client JWT")
    );
    assert!(
        !with_token.log_text().contains("adapter-t0ke"),
        "no token logged"
    );

    // --internal-open: open, and warned at start.
    assert_eq!(
        websocket(lab.port, "/_internal", Credential::None, Some(&frame)),
        Ok(())
    );
    let log = lab.log_text();
    let warning = log
        .lines()
        .find(|l| l.contains("/_internal is open to any adapter (--internal-open)"))
        .unwrap_or_else(|| panic!("no warning: {log}"));
    assert!(warning.contains("WARN"), "{warning}");
    // But REST and socket.io still need a token.
    assert_eq!(lab.get("/user", None).0, 401);

    // --no-auth: open, as every door.
    assert_eq!(
        websocket(demo.port, "/_internal", Credential::None, Some(&frame)),
        Ok(())
    );
    assert!(
        demo.log_text()
            .contains("/_internal is open to any adapter: authentication is disabled")
    );

    // Every accepted adapter's frame was fed.
    let start = Instant::now();
    for (server, frames) in [
        (&by_jwt, 2.0),
        (&with_token, 2.0),
        (&lab, 1.0),
        (&demo, 1.0),
    ] {
        while server.internal_ok() < frames {
            assert!(start.elapsed() < Duration::from_secs(10), "frames not fed");
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(server.internal_ok(), frames);
    }

    // --internal-open with a token is refused at start.
    let out = bin()
        .args([
            "serve",
            "--no-db",
            "--internal-open",
            "--internal-token",
            "t",
        ])
        .output()
        .expect("rmf-dash");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot be used with"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn loopback_published_is_for_admins_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::serve(
        dir.path(),
        "loopback",
        &["--jwt-secret", SECRET, "--admin-user", "boss"],
    );
    let (alice, boss) = (good("alice"), good("boss"));
    assert_eq!(
        server
            .call(
                "POST",
                "/doors/d1/request",
                Some(&alice),
                Some(json!({"mode": 2}))
            )
            .0,
        200
    );
    let forbidden = json!({"detail": "admin only: user alice is not an admin"});
    assert_eq!(
        server.get("/_loopback/published", Some(&alice)),
        (403, forbidden.clone())
    );
    assert_eq!(
        server.call("DELETE", "/_loopback/published", Some(&alice), None),
        (403, forbidden)
    );
    assert_eq!(server.get("/_loopback/published", None).0, 401);
    let (status, published) = server.get("/_loopback/published", Some(&boss));
    assert_eq!(status, 200, "{published}");
    assert_eq!(published.as_array().map(Vec::len), Some(1), "{published}");
    assert_eq!(published[0]["message"]["door_name"], "d1");
    assert_eq!(
        server
            .call("DELETE", "/_loopback/published", Some(&boss), None)
            .0,
        204
    );
    assert_eq!(
        server.get("/_loopback/published", Some(&boss)),
        (200, json!([]))
    );

    // --no-auth: the stub user is the admin.
    let demo = Server::serve(dir.path(), "loopback-demo", &["--no-auth"]);
    assert_eq!(demo.get("/_loopback/published", None), (200, json!([])));
}
