//! Error text: an error and its causes, each said once.
//!
//! An error enum of this crate says only its own context (`listening on 127.0.0.1:8000`) and
//! returns its cause as `source()`; a variant that adds nothing is `transparent`. Its `Display`
//! alone is then not the whole story: whoever turns an error into text for a person (a client's
//! body, a log line, the binary's last line) prints the chain with [`chain`].

use std::error::Error;

/// `e`'s message, then its causes', joined with ": ".
///
/// A cause whose message the text already ends with is left out: some library errors
/// (tungstenite's) print their source in their own message as well.
pub fn chain(e: &dyn Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let message = c.to_string();
        if !text.ends_with(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum Outer {
        #[error("listening on {addr}")]
        Listen {
            addr: std::net::SocketAddr,
            #[source]
            source: std::io::Error,
        },
        #[error(transparent)]
        Io(#[from] std::io::Error),
    }

    /// A real bind on a taken loopback port: (the address, the error).
    fn in_use() -> (std::net::SocketAddr, std::io::Error) {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let e = std::net::TcpListener::bind(addr).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse);
        (addr, e)
    }

    #[test]
    fn a_context_error_says_its_cause_once() {
        let (addr, source) = in_use();
        let cause = source.to_string();
        let e = Outer::Listen { addr, source };
        assert_eq!(e.to_string(), format!("listening on {addr}"));
        let text = chain(&e);
        assert_eq!(text, format!("listening on {addr}: {cause}"));
        assert_eq!(text.matches(cause.as_str()).count(), 1, "{text}");
        // Through anyhow as `main` gets it, with a context of its own on top.
        let e = anyhow::Error::from(e).context("serving");
        assert_eq!(chain(&*e), format!("serving: listening on {addr}: {cause}"));
    }

    #[test]
    fn a_transparent_error_says_its_cause_once() {
        let (_, source) = in_use();
        let cause = source.to_string();
        assert_eq!(chain(&Outer::Io(source)), cause);
    }

    #[test]
    fn a_library_error_that_repeats_its_source_is_said_once() {
        let e = tungstenite::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        let cause = std::io::Error::from(std::io::ErrorKind::ConnectionRefused).to_string();
        let text = chain(&e);
        assert_eq!(text.matches(cause.as_str()).count(), 1, "{text}");
    }
}
