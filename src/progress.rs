//! Progress of long operations (trace generation, scans, replays, benchmarks) on stderr: a live
//! bar on a terminal, otherwise one plain line every few seconds so CI logs show it too.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

pub struct Progress {
    what: String,
    total: Option<u64>,
    pos: u64,
    bar: Option<indicatif::ProgressBar>,
    started: Instant,
    last_line: Instant,
    every: Duration,
}

impl Progress {
    /// `total`: the amount of work, when known; `what`: a few words ("generating office").
    pub fn new(what: impl Into<String>, total: Option<u64>) -> Self {
        let what = what.into();
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = match total {
                Some(n) => indicatif::ProgressBar::new(n),
                None => indicatif::ProgressBar::no_length(),
            };
            let template = if total.is_some() {
                "{msg} [{elapsed_precise}] {wide_bar} {percent}% ({eta} left)"
            } else {
                "{msg} [{elapsed_precise}] {pos} ({per_sec})"
            };
            if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
                bar.set_style(style);
            }
            bar.set_message(what.clone());
            bar
        });
        let now = Instant::now();
        Progress {
            what,
            total,
            pos: 0,
            bar,
            started: now,
            last_line: now,
            every: Duration::from_secs(5),
        }
    }

    pub fn inc(&mut self, n: u64) {
        self.set(self.pos + n);
    }

    pub fn set(&mut self, pos: u64) {
        self.pos = pos;
        if let Some(bar) = &self.bar {
            bar.set_position(pos);
        } else if self.last_line.elapsed() >= self.every {
            self.last_line = Instant::now();
            eprintln!("{}", self.line());
        }
    }

    fn line(&self) -> String {
        let secs = self.started.elapsed().as_secs_f64();
        match self.total {
            Some(t) if t > 0 => format!(
                "{}: {:.0}% ({}/{}) after {:.1} s",
                self.what,
                self.pos as f64 * 100.0 / t as f64,
                self.pos,
                t,
                secs
            ),
            _ => format!("{}: {} after {:.1} s", self.what, self.pos, secs),
        }
    }

    /// Ends the display with a final line.
    pub fn finish(self, summary: &str) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        eprintln!(
            "{}: {summary} in {:.1} s",
            self.what,
            self.started.elapsed().as_secs_f64()
        );
    }

    /// Ends the display silently.
    pub fn clear(self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
