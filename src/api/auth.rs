//! Authentication of every client-facing entry point (COMPAT.md): a JWT signed with an HMAC
//! secret or an RSA public key, its audience (default `rmf_api_server`) and, when configured,
//! its issuer; the user is claim `preferred_username`. `--no-auth` disables it for local demos
//! (a warning is logged at start) and every request is user `stub`, as rmf-web does.

use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
use serde::Deserialize;
use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum AuthError {
    #[error("no token")]
    Missing,
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("the token has no preferred_username")]
    NoUser,
}

#[derive(Debug, Error)]
pub enum AuthConfigError {
    #[error("reading the JWT public key {path}: {source}")]
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
        validation.set_audience(&[aud]);
        if let Some(iss) = iss {
            validation.set_issuer(&[iss]);
        }
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
                    .map_err(|e| AuthError::Invalid(e.to_string()))?;
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

    fn token(secret: &str, claims: serde_json::Value) -> String {
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    fn exp() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 3600
    }

    #[test]
    fn checks_signature_audience_issuer_and_user() {
        let auth = Auth::new(
            Some("s3cret"),
            None,
            "rmf_api_server",
            Some("https://idp"),
            false,
        )
        .unwrap();
        let good = token(
            "s3cret",
            serde_json::json!({"aud": "rmf_api_server", "iss": "https://idp", "exp": exp(), "preferred_username": "alice"}),
        );
        assert_eq!(
            auth.verify(Some(&good)),
            Ok(User {
                username: "alice".into()
            })
        );
        let wrong_key = token(
            "other",
            serde_json::json!({"aud": "rmf_api_server", "iss": "https://idp", "exp": exp(), "preferred_username": "alice"}),
        );
        assert!(
            matches!(auth.verify(Some(&wrong_key)), Err(AuthError::Invalid(m)) if m.contains("InvalidSignature"))
        );
        let wrong_aud = token(
            "s3cret",
            serde_json::json!({"aud": "x", "iss": "https://idp", "exp": exp(), "preferred_username": "alice"}),
        );
        assert!(
            matches!(auth.verify(Some(&wrong_aud)), Err(AuthError::Invalid(m)) if m.contains("InvalidAudience"))
        );
        let wrong_iss = token(
            "s3cret",
            serde_json::json!({"aud": "rmf_api_server", "iss": "y", "exp": exp(), "preferred_username": "alice"}),
        );
        assert!(
            matches!(auth.verify(Some(&wrong_iss)), Err(AuthError::Invalid(m)) if m.contains("InvalidIssuer"))
        );
        let expired = token(
            "s3cret",
            serde_json::json!({"aud": "rmf_api_server", "iss": "https://idp", "exp": 1000, "preferred_username": "alice"}),
        );
        assert!(
            matches!(auth.verify(Some(&expired)), Err(AuthError::Invalid(m)) if m.contains("ExpiredSignature"))
        );
        let no_user = token(
            "s3cret",
            serde_json::json!({"aud": "rmf_api_server", "iss": "https://idp", "exp": exp()}),
        );
        assert_eq!(auth.verify(Some(&no_user)), Err(AuthError::NoUser));
        assert_eq!(auth.verify(None), Err(AuthError::Missing));
        assert!(matches!(
            auth.verify(Some("garbage")),
            Err(AuthError::Invalid(_))
        ));
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
