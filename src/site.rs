//! The site configuration file (`--config FILE`, TOML): the derived events' `[derived.<section>]`
//! sections and the flags a site keeps for a command (`[serve]`, `[replay]`: keys are the long
//! flag names, without `--`).
//!
//! A flag from the file is an argument the command did not get: a flag given on the command line
//! or through its environment variable wins over the file. Every error names the file, the
//! section and the key.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use rmf_dash_dataflows::derived::{self, ConfigError};

/// The commands whose flags a site file may keep, and the section of the derived events.
const SECTIONS: [&str; 3] = ["derived", "serve", "replay"];

#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    #[error("reading the site configuration {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Syntax { path: PathBuf, message: String },
    #[error("{}: [{section}]: not a section of a site file (known: {})", path.display(), SECTIONS.join(", "))]
    UnknownSection { path: PathBuf, section: String },
    #[error("{}", path.display())]
    Derived {
        path: PathBuf,
        #[source]
        source: ConfigError,
    },
    #[error("{}: [{section}] key `{key}`: `rmf-dash {section}` has no flag --{key}", path.display())]
    UnknownFlag {
        path: PathBuf,
        section: String,
        key: String,
    },
    #[error("{}: [{section}] key `{key}`: {what}", path.display())]
    FlagValue {
        path: PathBuf,
        section: String,
        key: String,
        what: &'static str,
    },
}

/// A site file, read and parsed.
#[derive(Debug, Clone)]
pub struct SiteFile {
    path: PathBuf,
    table: toml::Table,
}

impl SiteFile {
    /// Reads and parses `path`; its top-level sections must be known ones.
    pub fn load(path: &Path) -> Result<SiteFile, SiteError> {
        let text = std::fs::read_to_string(path).map_err(|source| SiteError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let table: toml::Table = toml::from_str(&text).map_err(|e| SiteError::Syntax {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        if let Some(unknown) = table.keys().find(|k| !SECTIONS.contains(&k.as_str())) {
            return Err(SiteError::UnknownSection {
                path: path.to_path_buf(),
                section: unknown.clone(),
            });
        }
        Ok(SiteFile {
            path: path.to_path_buf(),
            table,
        })
    }

    /// The derived events' configuration: the file's `[derived.*]` sections over the defaults.
    pub fn derived(&self) -> Result<derived::Config, SiteError> {
        let sections = self
            .table
            .get("derived")
            .map(serde_json::to_value)
            .transpose()
            .map_err(|_| self.derived_error(ConfigError::NotATable))?
            .unwrap_or_else(|| serde_json::Value::Object(Default::default()));
        derived::Config::from_sections(&sections).map_err(|e| self.derived_error(e))
    }

    fn derived_error(&self, source: ConfigError) -> SiteError {
        SiteError::Derived {
            path: self.path.clone(),
            source,
        }
    }

    /// The arguments `[<command>]` adds to `args` (the command's own, after its name): one
    /// `--key=value` per key (each element of an array; `--key` for a `true` switch) for every
    /// flag `command` has that `args` does not give and whose environment variable is unset.
    pub fn flags(
        &self,
        command: &clap::Command,
        args: &[OsString],
    ) -> Result<Vec<OsString>, SiteError> {
        let section = command.get_name();
        let Some(table) = self.table.get(section).and_then(toml::Value::as_table) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for (key, value) in table {
            let arg = command
                .get_arguments()
                .find(|a| a.get_long() == Some(key.as_str()) && key != "config")
                .ok_or_else(|| SiteError::UnknownFlag {
                    path: self.path.clone(),
                    section: section.to_string(),
                    key: key.clone(),
                })?;
            let given = args.iter().any(|a| {
                a.to_str().is_some_and(|a| {
                    a.strip_prefix("--")
                        .and_then(|a| a.strip_prefix(key.as_str()))
                        .is_some_and(|rest| rest.is_empty() || rest.starts_with('='))
                })
            });
            let from_env = arg.get_env().is_some_and(|v| std::env::var_os(v).is_some());
            if given || from_env {
                continue;
            }
            let switch = !arg.get_action().takes_values();
            self.flag_values(section, key, value, switch, &mut out)?;
        }
        Ok(out)
    }

    /// `--key=value` for each value (an array gives several).
    fn flag_values(
        &self,
        section: &str,
        key: &str,
        value: &toml::Value,
        switch: bool,
        out: &mut Vec<OsString>,
    ) -> Result<(), SiteError> {
        let bad = |what| SiteError::FlagValue {
            path: self.path.clone(),
            section: section.to_string(),
            key: key.to_string(),
            what,
        };
        let text = match value {
            toml::Value::Boolean(on) if switch => {
                if *on {
                    out.push(format!("--{key}").into());
                }
                return Ok(());
            }
            _ if switch => return Err(bad("a switch takes true or false")),
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Datetime(d) => d.to_string(),
            toml::Value::Array(items) => {
                for item in items {
                    if item.is_array() || item.is_table() {
                        return Err(bad("an array of flag values holds no arrays or tables"));
                    }
                    self.flag_values(section, key, item, false, out)?;
                }
                return Ok(());
            }
            toml::Value::Table(_) => return Err(bad("a flag's value is not a table")),
        };
        out.push(format!("--{key}={text}").into());
        Ok(())
    }
}

/// The `--config FILE` (or `--config=FILE`) of `args`, else `RMF_DASH_CONFIG`.
pub fn config_path(args: &[OsString]) -> Option<PathBuf> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let Some(a) = a.to_str() else { continue };
        if a == "--config" {
            return it.next().map(PathBuf::from);
        }
        if let Some(path) = a.strip_prefix("--config=") {
            return Some(PathBuf::from(path));
        }
    }
    std::env::var_os("RMF_DASH_CONFIG").map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A site file with `text`; the file lives as long as the returned path.
    fn file(text: &str) -> (tempfile::TempPath, Result<SiteFile, SiteError>) {
        let mut f = tempfile::NamedTempFile::new().expect("a temp file");
        std::io::Write::write_all(&mut f, text.as_bytes()).expect("written");
        let path = f.into_temp_path();
        let loaded = SiteFile::load(&path);
        (path, loaded)
    }

    fn command() -> clap::Command {
        clap::Command::new("serve")
            .arg(clap::Arg::new("workers").long("workers"))
            .arg(
                clap::Arg::new("rooms")
                    .long("rooms")
                    .action(clap::ArgAction::Append),
            )
            .arg(
                clap::Arg::new("no-auth")
                    .long("no-auth")
                    .action(clap::ArgAction::SetTrue),
            )
            .arg(
                clap::Arg::new("tick")
                    .long("tick")
                    .env("RMF_DASH_SITE_TEST_TICK_UNSET"),
            )
    }

    #[test]
    fn flags_the_command_line_does_not_give() {
        let (_g, f) = file(
            "[serve]\nworkers = 2\nrooms = [\"a\", \"b\"]\nno-auth = true\ntick = 10\n\
             [replay]\nspeed = 1\n",
        );
        let f = f.expect("a valid file");
        let flags = |args: &[&str]| {
            let args: Vec<OsString> = args.iter().map(OsString::from).collect();
            f.flags(&command(), &args).expect("valid flags")
        };
        let all: Vec<OsString> = [
            "--no-auth",
            "--rooms=a",
            "--rooms=b",
            "--tick=10",
            "--workers=2",
        ]
        .into_iter()
        .map(OsString::from)
        .collect();
        assert_eq!(flags(&[]), all);
        assert_eq!(
            flags(&["--workers=4", "--rooms", "c"]),
            vec![OsString::from("--no-auth"), OsString::from("--tick=10")]
        );
        assert_eq!(flags(&["--workers", "4"]).len(), 4);
    }

    #[test]
    fn errors_name_the_file_section_and_key() {
        let (g, f) = file("[serve]\nworkerz = 2\n");
        let e = f
            .expect("valid TOML")
            .flags(&command(), &[])
            .expect_err("unknown flag");
        assert_eq!(
            e.to_string(),
            format!(
                "{}: [serve] key `workerz`: `rmf-dash serve` has no flag --workerz",
                g.display()
            )
        );
        let (g, f) = file("[serve]\nno-auth = 1\n");
        let e = f
            .expect("valid TOML")
            .flags(&command(), &[])
            .expect_err("not a bool");
        assert!(
            e.to_string()
                .starts_with(&format!("{}: [serve] key `no-auth`", g.display()))
        );
        let (g, f) = file("[derived.robot_stuck]\nwindow_ms = -1\n");
        let e = f
            .expect("valid TOML")
            .derived()
            .expect_err("negative window");
        assert_eq!(
            crate::error::chain(&e),
            format!(
                "{}: [derived.robot_stuck] key `window_ms`: invalid value: integer `-1`, expected u64",
                g.display()
            )
        );
        let (g, f) = file("[sevre]\nworkers = 1\n");
        assert!(
            f.expect_err("unknown section")
                .to_string()
                .starts_with(&format!("{}: [sevre]: not a section", g.display()))
        );
        let (_g, f) = file("[serve\n");
        assert!(matches!(f, Err(SiteError::Syntax { .. })));
    }

    #[test]
    fn a_derived_section_sets_its_event() {
        let (_g, f) = file("[derived.door_held_open]\nopen_ms = 1500\n");
        let config = f.expect("valid").derived().expect("valid sections");
        let d = rmf_dash_dataflows::derived::door_held_open::DESCRIPTOR;
        assert_eq!(config.parsed(&d.config).map(|p| p.lookback_ms), Some(1500));
    }
}
