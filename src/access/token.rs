//! Authentication of every client-facing entry point (COMPAT.md): REST, socket.io,
//! `/_replicate`, the proxies and `/_internal` (when it accepts client tokens) all call
//! [`Auth::verify`], so a token is accepted or refused with the same words everywhere.
//!
//! A token is a JWT signed with an HMAC secret or an RSA public key. It must carry `exp` (not
//! past) and `aud` (the configured audience, default `rmf_api_server`); a `nbf` in the future is
//! refused; with `--jwt-iss` it must carry that `iss`. Clocks may differ by [`LEEWAY_S`]. The
//! user is claim `preferred_username`. `--no-auth` disables it for local demos (a warning is
//! logged at start) and every request is user `stub`, as rmf-web does.
//!
//! Refusals name the reason ([`Refusal`]), never the token: callers log and answer the
//! [`AuthError`] only.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
use serde::Deserialize;
use thiserror::Error;

/// Seconds of clock difference tolerated on `exp` and `nbf` (between the identity provider,
/// this server and the proxies).
pub const LEEWAY_S: u64 = 30;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum AuthError {
    #[error("no token")]
    Missing,
    #[error("invalid token: {0}")]
    Invalid(Refusal),
    #[error("the token has no preferred_username")]
    NoUser,
}

/// Why a token was refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Refusal {
    #[error("expired (exp)")]
    Expired,
    #[error("not valid yet (nbf)")]
    NotYetValid,
    #[error("no `{0}` claim")]
    MissingClaim(String),
    #[error("malformed `{0}` claim")]
    BadClaim(String),
    #[error("wrong audience (aud)")]
    WrongAudience,
    #[error("wrong issuer (iss)")]
    WrongIssuer,
    #[error("bad signature")]
    BadSignature,
    #[error("algorithm not accepted")]
    Algorithm,
    /// Not a JWT, or claims that are not JSON (their text is not repeated).
    #[error("malformed")]
    Malformed,
}

impl From<jsonwebtoken::errors::Error> for Refusal {
    fn from(e: jsonwebtoken::errors::Error) -> Self {
        match e.into_kind() {
            ErrorKind::ExpiredSignature => Refusal::Expired,
            ErrorKind::ImmatureSignature => Refusal::NotYetValid,
            ErrorKind::MissingRequiredClaim(c) => Refusal::MissingClaim(c),
            ErrorKind::InvalidClaimFormat(c) => Refusal::BadClaim(c),
            ErrorKind::InvalidAudience => Refusal::WrongAudience,
            ErrorKind::InvalidIssuer => Refusal::WrongIssuer,
            ErrorKind::InvalidSignature => Refusal::BadSignature,
            ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => Refusal::Algorithm,
            _ => Refusal::Malformed,
        }
    }
}

#[derive(Debug, Error)]
pub enum AuthConfigError {
    #[error("reading the JWT public key {path}")]
    Key {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the JWT public key {path} is not an RSA public key in PEM: {message}")]
    Pem { path: String, message: String },
    #[error("give --jwt-secret or --jwt-public-key, or --no-auth for a local demo")]
    NoKey,
}

/// Who a request or socket acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub username: String,
}

impl User {
    pub fn stub() -> Self {
        User {
            username: "stub".into(),
        }
    }
}

/// How tokens are checked.
#[derive(Clone)]
pub enum Auth {
    Disabled,
    Jwt {
        key: DecodingKey,
        validation: Box<Validation>,
    },
}

#[derive(Deserialize)]
struct Claims {
    preferred_username: Option<String>,
}

impl Auth {
    /// From the command line: an HMAC secret or an RSA public key file, the audience and the
    /// optional issuer.
    pub fn new(
        secret: Option<&str>,
        public_key: Option<&str>,
        aud: &str,
        iss: Option<&str>,
        disabled: bool,
    ) -> Result<Auth, AuthConfigError> {
        if disabled {
            return Ok(Auth::Disabled);
        }
        let (key, algorithms) = match (secret, public_key) {
            (_, Some(path)) => {
                let pem = std::fs::read(path).map_err(|source| AuthConfigError::Key {
                    path: path.to_string(),
                    source,
                })?;
                let key = DecodingKey::from_rsa_pem(&pem).map_err(|e| AuthConfigError::Pem {
                    path: path.to_string(),
                    message: e.to_string(),
                })?;
                (
                    key,
                    vec![Algorithm::RS256, Algorithm::RS384, Algorithm::RS512],
                )
            }
            (Some(secret), None) => (
                DecodingKey::from_secret(secret.as_bytes()),
                vec![Algorithm::HS256, Algorithm::HS384, Algorithm::HS512],
            ),
            (None, None) => return Err(AuthConfigError::NoKey),
        };
        let mut validation = Validation::new(algorithms[0]);
        validation.algorithms = algorithms;
        validation.leeway = LEEWAY_S;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.set_audience(&[aud]);
        // Present claims are checked whether required or not; these must also be present.
        let mut required = vec!["exp", "aud"];
        if let Some(iss) = iss {
            validation.set_issuer(&[iss]);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);
        Ok(Auth::Jwt {
            key,
            validation: Box::new(validation),
        })
    }

    pub fn enabled(&self) -> bool {
        matches!(self, Auth::Jwt { .. })
    }

    /// Checks a token (absent: `None`).
    pub fn verify(&self, token: Option<&str>) -> Result<User, AuthError> {
        match self {
            Auth::Disabled => Ok(User::stub()),
            Auth::Jwt { key, validation } => {
                let token = token.filter(|t| !t.is_empty()).ok_or(AuthError::Missing)?;
                let data = decode::<Claims>(token, key, validation)
                    .map_err(|e| AuthError::Invalid(e.into()))?;
                let username = data
                    .claims
                    .preferred_username
                    .filter(|u| !u.is_empty())
                    .ok_or(AuthError::NoUser)?;
                Ok(User { username })
            }
        }
    }

    /// The token of an `Authorization: Bearer <token>` header value.
    pub fn bearer(header: Option<&str>) -> Option<&str> {
        header.and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::{Value, json};

    fn token(secret: &str, claims: Value) -> String {
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    fn now() -> i64 {
        jsonwebtoken::get_current_timestamp() as i64
    }

    /// Good claims for an auth with issuer `https://idp`, changed by `edit`.
    fn claims(edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
        let mut c = json!({
            "aud": "rmf_api_server", "iss": "https://idp", "exp": now() + 3600,
            "preferred_username": "alice",
        });
        if let Value::Object(m) = &mut c {
            edit(m);
        }
        c
    }

    fn auth(iss: Option<&str>) -> Auth {
        Auth::new(Some("s3cret"), None, "rmf_api_server", iss, false).unwrap()
    }

    fn refusal(auth: &Auth, claims: Value) -> Result<User, AuthError> {
        auth.verify(Some(&token("s3cret", claims)))
    }

    fn invalid(r: Refusal) -> Result<User, AuthError> {
        Err(AuthError::Invalid(r))
    }

    #[test]
    fn a_good_token_names_its_user() {
        let alice = Ok(User {
            username: "alice".into(),
        });
        let with_iss = auth(Some("https://idp"));
        assert_eq!(refusal(&with_iss, claims(|_| {})), alice);
        // An audience list holding ours, a past nbf, exp and nbf within the leeway.
        let list = claims(|c| {
            c.insert("aud".into(), json!(["account", "rmf_api_server"]));
        });
        assert_eq!(refusal(&with_iss, list), alice);
        let past_nbf = claims(|c| {
            c.insert("nbf".into(), json!(now() - 10));
        });
        assert_eq!(refusal(&with_iss, past_nbf), alice);
        let skewed = claims(|c| {
            c.insert("exp".into(), json!(now() - 5));
            c.insert("nbf".into(), json!(now() + 5));
        });
        assert_eq!(refusal(&with_iss, skewed), alice);
        // Without --jwt-iss any issuer, or none, is accepted.
        let no_iss = claims(|c| {
            c.remove("iss");
        });
        assert_eq!(refusal(&auth(None), no_iss), alice);
    }

    #[test]
    fn every_loose_token_is_refused_with_its_reason() {
        let auth = auth(Some("https://idp"));
        let cases: [(Value, Result<User, AuthError>); 10] = [
            (
                claims(|c| {
                    c.insert("nbf".into(), json!(now() + 3600));
                }),
                invalid(Refusal::NotYetValid),
            ),
            (
                claims(|c| {
                    c.remove("aud");
                }),
                invalid(Refusal::MissingClaim("aud".into())),
            ),
            (
                claims(|c| {
                    c.insert("aud".into(), json!("x"));
                }),
                invalid(Refusal::WrongAudience),
            ),
            (
                claims(|c| {
                    c.remove("iss");
                }),
                invalid(Refusal::MissingClaim("iss".into())),
            ),
            (
                claims(|c| {
                    c.insert("iss".into(), json!("https://other"));
                }),
                invalid(Refusal::WrongIssuer),
            ),
            (
                claims(|c| {
                    c.insert("exp".into(), json!(now() - 120));
                }),
                invalid(Refusal::Expired),
            ),
            (
                claims(|c| {
                    c.remove("exp");
                }),
                invalid(Refusal::MissingClaim("exp".into())),
            ),
            (
                claims(|c| {
                    c.insert("exp".into(), json!("tomorrow"));
                }),
                // A required claim that is not a number counts as absent.
                invalid(Refusal::MissingClaim("exp".into())),
            ),
            (
                claims(|c| {
                    c.insert("nbf".into(), json!("now"));
                }),
                invalid(Refusal::BadClaim("nbf".into())),
            ),
            (
                claims(|c| {
                    c.remove("preferred_username");
                }),
                Err(AuthError::NoUser),
            ),
        ];
        for (claims, expected) in cases {
            assert_eq!(refusal(&auth, claims.clone()), expected, "{claims}");
        }
        let signed_elsewhere = token("other", claims(|_| {}));
        assert_eq!(
            auth.verify(Some(&signed_elsewhere)),
            invalid(Refusal::BadSignature)
        );
        assert_eq!(auth.verify(None), Err(AuthError::Missing));
        assert_eq!(auth.verify(Some("")), Err(AuthError::Missing));
        assert_eq!(auth.verify(Some("garbage")), invalid(Refusal::Malformed));
        let unsigned = format!(
            "eyJhbGciOiJub25lIn0.{}.",
            signed_elsewhere.split('.').nth(1).unwrap()
        );
        assert!(matches!(
            auth.verify(Some(&unsigned)),
            Err(AuthError::Invalid(_))
        ));
    }

    #[test]
    fn a_refusal_never_repeats_the_token() {
        let auth = auth(None);
        let expired = token(
            "s3cret",
            json!({"aud": "rmf_api_server", "exp": 1000, "preferred_username": "secret-user"}),
        );
        let e = auth.verify(Some(&expired)).unwrap_err().to_string();
        assert_eq!(e, "invalid token: expired (exp)");
        let e = auth.verify(Some("garbage.x.y")).unwrap_err().to_string();
        assert_eq!(e, "invalid token: malformed");
    }

    #[test]
    fn disabled_is_the_stub_user_and_a_key_is_required_otherwise() {
        assert_eq!(
            Auth::new(None, None, "a", None, true).unwrap().verify(None),
            Ok(User::stub())
        );
        assert!(matches!(
            Auth::new(None, None, "a", None, false),
            Err(AuthConfigError::NoKey)
        ));
        assert_eq!(Auth::bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(Auth::bearer(Some("Basic abc")), None);
    }
}
