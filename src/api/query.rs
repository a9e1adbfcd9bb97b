//! Query parameters of the REST reads, read as rmf-web's api-server (FastAPI) reads them: time
//! windows (`between`), pagination (`limit`, `offset`, `order_by`), comma separated lists and
//! booleans. An invalid parameter is answered 422 in FastAPI's validation shape,
//! `{"detail": [{"type", "loc": ["query", <name>], "msg", "input"}]}`, so that clients generated
//! from rmf-web's OpenAPI document see the errors they expect.

use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use percent_encoding::percent_decode_str;
use serde_json::json;
use thiserror::Error;

use crate::query::{DEFAULT_LIMIT, MAX_LIMIT, OrderBy, Pagination, Window};

/// An invalid query parameter (422).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("query parameter {param}: {msg}")]
pub struct QueryError {
    pub param: String,
    /// FastAPI's (pydantic's) error type, e.g. `int_parsing`, `less_than_equal`.
    pub kind: &'static str,
    pub msg: String,
    pub input: String,
}

impl QueryError {
    pub fn new(param: &str, kind: &'static str, msg: impl Into<String>, input: &str) -> Self {
        QueryError {
            param: param.to_string(),
            kind,
            msg: msg.into(),
            input: input.to_string(),
        }
    }
}

impl IntoResponse for QueryError {
    fn into_response(self) -> Response {
        let detail = json!([{
            "type": self.kind,
            "loc": ["query", self.param],
            "msg": self.msg,
            "input": self.input,
        }]);
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            axum::Json(json!({ "detail": detail })),
        )
            .into_response()
    }
}

/// The decoded query string of a request (`+` is a space, `%XX` decoded). A parameter given
/// several times takes its last value, as in FastAPI.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Params::parse(parts.uri.query().unwrap_or_default()))
    }
}

fn decode(s: &str) -> String {
    let spaced = s.replace('+', " ");
    percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
}

impl Params {
    pub fn parse(query: &str) -> Params {
        Params(
            query
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| match p.split_once('=') {
                    Some((k, v)) => (decode(k), decode(v)),
                    None => (decode(p), String::new()),
                })
                .collect(),
        )
    }

    /// The value of `name`, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A comma separated list; `None` when absent or empty (rmf-web's `x.split(",") if x`).
    pub fn list(&self, name: &str) -> Option<Vec<String>> {
        self.get(name)
            .filter(|v| !v.is_empty())
            .map(|v| v.split(',').map(str::to_string).collect())
    }

    /// A boolean (`true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`, `t`/`f`, `y`/`n`).
    pub fn bool(&self, name: &str, default: bool) -> Result<bool, QueryError> {
        let Some(v) = self.get(name) else {
            return Ok(default);
        };
        match v.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" | "t" | "y" => Ok(true),
            "false" | "0" | "no" | "off" | "f" | "n" => Ok(false),
            _ => Err(QueryError::new(
                name,
                "bool_parsing",
                "Input should be a valid boolean, unable to interpret input",
                v,
            )),
        }
    }

    /// A time window: `"<from ms>,<to ms>"`, or `"-<ms>"` for the last `ms` before `now`.
    /// `default` applies when the parameter is absent; `None` when neither is given.
    pub fn between(
        &self,
        name: &str,
        default: Option<&str>,
        now: u64,
    ) -> Result<Option<Window>, QueryError> {
        let Some(v) = self.get(name).or(default) else {
            return Ok(None);
        };
        let bad = || {
            QueryError::new(
                name,
                "value_error",
                "expected \"<from ms>,<to ms>\" or \"-<ms>\" (the last <ms> milliseconds)",
                v,
            )
        };
        let ms = |s: &str| s.trim().parse::<u64>().map_err(|_| bad());
        if let Some(period) = v.strip_prefix('-') {
            let period = ms(period)?;
            return Ok(Some(Window {
                from: now.saturating_sub(period),
                to: now,
            }));
        }
        match v.split(',').collect::<Vec<_>>()[..] {
            [from, to] => Ok(Some(Window {
                from: ms(from)?,
                to: ms(to)?,
            })),
            _ => Err(bad()),
        }
    }

    fn integer(&self, name: &str) -> Result<Option<i64>, QueryError> {
        match self.get(name) {
            None | Some("") => Ok(None),
            Some(v) => v.trim().parse::<i64>().map(Some).map_err(|_| {
                QueryError::new(
                    name,
                    "int_parsing",
                    "Input should be a valid integer, unable to parse string as an integer",
                    v,
                )
            }),
        }
    }

    /// `limit` (1 to [`MAX_LIMIT`], default [`DEFAULT_LIMIT`]), `offset` (0 or more, default 0)
    /// and `order_by` (comma separated fields, `-` prefix for descending): each field must be
    /// one of `fields`, or `label=<key>` when `labels` is set.
    pub fn pagination(&self, fields: &[&str], labels: bool) -> Result<Pagination, QueryError> {
        let input = |name| self.get(name).unwrap_or_default();
        let limit = match self.integer("limit")? {
            None => DEFAULT_LIMIT,
            Some(l) if l <= 0 => {
                return Err(QueryError::new(
                    "limit",
                    "greater_than",
                    "Input should be greater than 0",
                    input("limit"),
                ));
            }
            Some(l) if l > MAX_LIMIT as i64 => {
                return Err(QueryError::new(
                    "limit",
                    "less_than_equal",
                    format!("Input should be less than or equal to {MAX_LIMIT}"),
                    input("limit"),
                ));
            }
            Some(l) => l as usize,
        };
        let offset = match self.integer("offset")? {
            None => 0,
            Some(o) if o < 0 => {
                return Err(QueryError::new(
                    "offset",
                    "greater_than_equal",
                    "Input should be greater than or equal to 0",
                    input("offset"),
                ));
            }
            Some(o) => o as usize,
        };
        let mut order_by = Vec::new();
        for item in self.list("order_by").unwrap_or_default() {
            let (descending, field) = match item.strip_prefix('-') {
                Some(f) => (true, f),
                None => (false, item.as_str()),
            };
            let known = fields.contains(&field)
                || (labels && field.strip_prefix("label=").is_some_and(|k| !k.is_empty()));
            if !known {
                let mut sortable = fields.join(", ");
                if labels {
                    sortable.push_str(", label=<key>");
                }
                return Err(QueryError::new(
                    "order_by",
                    "value_error",
                    format!("unknown field \"{field}\": sortable fields are {sortable}"),
                    input("order_by"),
                ));
            }
            order_by.push(OrderBy {
                field: field.to_string(),
                descending,
            });
        }
        Ok(Pagination {
            limit,
            offset,
            order_by,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_takes_the_last_value() {
        let p = Params::parse("a=1&b=x%2Cy+z&a=2&flag");
        assert_eq!(p.get("a"), Some("2"));
        assert_eq!(p.get("b"), Some("x,y z"));
        assert_eq!(p.get("flag"), Some(""));
        assert_eq!(p.get("c"), None);
        assert_eq!(p.list("b"), Some(vec!["x".to_string(), "y z".to_string()]));
        assert_eq!(p.list("flag"), None);
    }

    #[test]
    fn windows_are_absolute_or_relative_to_now() {
        let p = Params::parse("w=1000,2000&r=-60000&bad=1,2,3&neg=-x");
        assert_eq!(
            p.between("w", None, 5),
            Ok(Some(Window {
                from: 1000,
                to: 2000
            }))
        );
        assert_eq!(
            p.between("r", None, 100_000),
            Ok(Some(Window {
                from: 40_000,
                to: 100_000
            }))
        );
        assert_eq!(p.between("none", None, 5), Ok(None));
        assert_eq!(
            p.between("none", Some("-10"), 5),
            Ok(Some(Window { from: 0, to: 5 }))
        );
        assert_eq!(
            p.between("bad", None, 5).map_err(|e| e.kind),
            Err("value_error")
        );
        assert_eq!(
            p.between("neg", None, 5).map_err(|e| e.param),
            Err("neg".into())
        );
        assert!(Window { from: 1, to: 2 }.contains(2));
        assert!(!Window { from: 1, to: 2 }.contains(3));
    }

    #[test]
    fn pagination_defaults_limits_and_fields() {
        let fields = ["id", "status"];
        assert_eq!(
            Params::parse("").pagination(&fields, false),
            Ok(Pagination::default())
        );
        let p = Params::parse("limit=1000&offset=3&order_by=-status,id,label=site")
            .pagination(&fields, true)
            .unwrap_or_default();
        assert_eq!((p.limit, p.offset), (1000, 3));
        assert_eq!(
            p.order_by,
            vec![
                OrderBy {
                    field: "status".into(),
                    descending: true
                },
                OrderBy {
                    field: "id".into(),
                    descending: false
                },
                OrderBy {
                    field: "label=site".into(),
                    descending: false
                },
            ]
        );
        let kind = |q: &str| {
            Params::parse(q)
                .pagination(&fields, false)
                .map_err(|e| (e.param, e.kind))
        };
        assert_eq!(kind("limit=1001"), Err(("limit".into(), "less_than_equal")));
        assert_eq!(kind("limit=0"), Err(("limit".into(), "greater_than")));
        assert_eq!(kind("limit=x"), Err(("limit".into(), "int_parsing")));
        assert_eq!(
            kind("offset=-1"),
            Err(("offset".into(), "greater_than_equal"))
        );
        assert_eq!(
            kind("order_by=label=site"),
            Err(("order_by".into(), "value_error"))
        );
        assert_eq!(
            kind("order_by=id,,status"),
            Err(("order_by".into(), "value_error"))
        );
    }

    #[test]
    fn booleans() {
        let p = Params::parse("a=false&b=1&c=maybe");
        assert_eq!(p.bool("a", true), Ok(false));
        assert_eq!(p.bool("b", false), Ok(true));
        assert_eq!(p.bool("d", true), Ok(true));
        assert!(p.bool("c", true).is_err());
    }
}
