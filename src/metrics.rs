//! `/metrics` in Prometheus's text format (version 0.0.4), for the main process, its standby and
//! the proxy alike. Every family is written through [`Metrics`]: its help, its type, then its
//! samples, so that no part formats the text itself. Each part writes the families it owns (the
//! hub, the sockets, the listener, the JSON bounds, the engine, the names), and a process's
//! `/metrics` route lists the parts it has: the families the main process and the proxy share
//! are written by the same code.

use std::fmt::{Display, Write};

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// A family's Prometheus type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// A `/metrics` answer being written.
#[derive(Debug, Default)]
pub struct Metrics {
    text: String,
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics::default()
    }

    /// A family whose samples carry their label sets as written (`{door="rest",reason="depth"}`,
    /// or empty for none).
    pub fn family<L: AsRef<str>>(
        &mut self,
        name: &str,
        help: &str,
        kind: Kind,
        samples: impl IntoIterator<Item = (L, u64)>,
    ) {
        let kind = kind.as_str();
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(self.text, "{name}{} {value}", labels.as_ref());
        }
    }

    /// A family with one label (`label="value"` per sample).
    pub fn by<V: Display>(
        &mut self,
        name: &str,
        help: &str,
        kind: Kind,
        label: &str,
        samples: impl IntoIterator<Item = (V, u64)>,
    ) {
        let samples = samples
            .into_iter()
            .map(|(v, n)| (format!("{{{label}=\"{v}\"}}"), n));
        self.family(name, help, kind, samples);
    }

    /// A counter of one sample.
    pub fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, help, Kind::Counter, [("", value)]);
    }

    /// A gauge of one sample.
    pub fn gauge(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, help, Kind::Gauge, [("", value)]);
    }

    /// The text written so far.
    pub fn text(&self) -> &str {
        &self.text
    }
}

impl IntoResponse for Metrics {
    fn into_response(self) -> Response {
        let content_type = [(header::CONTENT_TYPE, "text/plain; version=0.0.4")];
        (content_type, self.text).into_response()
    }
}

/// `rmf_dash_json_refused_total`: the JSON documents refused at every door
/// ([`crate::json_limits`], which cannot write it itself: the fuzz crate compiles it alone).
pub fn write_json_refused(m: &mut Metrics) {
    use crate::json_limits::{METRIC_HELP, METRIC_NAME, metrics};
    m.family(METRIC_NAME, METRIC_HELP, Kind::Counter, metrics());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_written_help_type_then_samples() {
        let mut m = Metrics::new();
        m.counter("a_total", "As seen.", 3);
        m.by(
            "b",
            "Bs by kind.",
            Kind::Gauge,
            "kind",
            [("x", 1), ("y", 2)],
        );
        m.family("c_total", "Cs.", Kind::Counter, [("{d=\"1\",e=\"2\"}", 4)]);
        assert_eq!(
            m.text(),
            "# HELP a_total As seen.\n# TYPE a_total counter\na_total 3\n\
             # HELP b Bs by kind.\n# TYPE b gauge\nb{kind=\"x\"} 1\nb{kind=\"y\"} 2\n\
             # HELP c_total Cs.\n# TYPE c_total counter\nc_total{d=\"1\",e=\"2\"} 4\n"
        );
    }
}
