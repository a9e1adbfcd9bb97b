//! The site's configuration of the derived events: each event declares its section (`[derived.
//! <section>]`) and its type in its [`super::Descriptor`] ([`Spec::of`]); [`Config`] holds every
//! section parsed once, at start, with errors that name the section and the key.
//!
//! A section absent from the site's file takes the type's defaults; an unknown section or key is
//! refused. Several descriptors may share a section (the four device health events read
//! `[derived.device_health]`): they then declare the same type (a registry test checks it).

use std::any::{Any, TypeId};
use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::prelude::Time;

/// An event's configuration type: defaults for absent keys, unknown keys refused
/// (`#[serde(default, deny_unknown_fields)]`).
pub trait Section: DeserializeOwned + Serialize + Default + Clone + Send + Sync + 'static {
    /// How far back in logical time an output can depend on its inputs under this
    /// configuration (what a restore must replay to rebuild the state).
    fn lookback_ms(&self) -> Time;
}

/// The configuration of an event that has none: an empty section.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoConfig {}

impl Section for NoConfig {
    fn lookback_ms(&self) -> Time {
        0
    }
}

/// A descriptor's section with its type, for reading it ([`Config::get`]): an event declares
/// `const CONFIG: Typed<Config> = Typed::new("<section>")`, puts `CONFIG.spec()` in its
/// descriptor and reads `config.get(&CONFIG)` in its build, so both name one type.
pub struct Typed<T>(Spec, PhantomData<fn() -> T>);

impl<T: Section> Typed<T> {
    pub const fn new(section: &'static str) -> Self {
        Typed(Spec::of::<T>(section), PhantomData)
    }

    /// What the descriptor declares.
    pub const fn spec(&self) -> Spec {
        self.0
    }
}

/// A section parsed: its typed value, as JSON (for `rmf-dash events`), and its lookback.
#[derive(Clone)]
pub struct Parsed {
    value: Arc<dyn Any + Send + Sync>,
    pub shown: Value,
    pub lookback_ms: Time,
}

/// What a descriptor declares of its configuration.
#[derive(Clone, Copy)]
pub struct Spec {
    /// `[derived.<section>]`.
    pub section: &'static str,
    type_id: fn() -> TypeId,
    parse: fn(Option<&Value>) -> Result<Parsed, (String, String)>,
}

impl Spec {
    /// The section `section`, of type `T`.
    pub const fn of<T: Section>(section: &'static str) -> Spec {
        Spec {
            section,
            type_id: TypeId::of::<T>,
            parse: parse::<T>,
        }
    }

    /// The type the section is read as.
    pub fn type_id(&self) -> TypeId {
        (self.type_id)()
    }
}

/// Parses one section (`None`: absent, the defaults); on error, the key path and the message.
fn parse<T: Section>(section: Option<&Value>) -> Result<Parsed, (String, String)> {
    let value: T = match section {
        None => T::default(),
        Some(v) => serde_path_to_error::deserialize(v).map_err(|e| {
            let key = e.path().to_string();
            (key, e.into_inner().to_string())
        })?,
    };
    let shown = serde_json::to_value(&value).unwrap_or(Value::Null);
    Ok(Parsed {
        lookback_ms: value.lookback_ms(),
        shown,
        value: Arc::new(value),
    })
}

/// A section or key the registry refuses.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("[derived.{section}]: no registered event reads this section (known: {known})")]
    UnknownSection { section: String, known: String },
    #[error("[derived] must be a table of sections, one per event")]
    NotATable,
    #[error("[derived.{section}]{}: {message}", key_suffix(key))]
    Invalid {
        section: String,
        key: String,
        message: String,
    },
}

fn key_suffix(key: &str) -> String {
    if key.is_empty() || key == "." {
        String::new()
    } else {
        format!(" key `{key}`")
    }
}

/// Every section of the registry, parsed.
#[derive(Clone)]
pub struct Config {
    sections: BTreeMap<&'static str, Parsed>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.sections.iter().map(|(k, p)| (k, &p.shown)))
            .finish()
    }
}

impl Default for Config {
    /// Every section at its defaults.
    fn default() -> Self {
        Config::from_sections(&Value::Object(Default::default()))
            .unwrap_or_else(|e| unreachable!("the defaults of every section parse: {e}"))
    }
}

impl Config {
    /// Parses the `[derived]` table: `{section: {key: value}}`.
    pub fn from_sections(derived: &Value) -> Result<Config, ConfigError> {
        let given = derived.as_object().ok_or(ConfigError::NotATable)?;
        let specs = specs();
        if let Some(unknown) = given.keys().find(|k| !specs.contains_key(k.as_str())) {
            return Err(ConfigError::UnknownSection {
                section: unknown.clone(),
                known: specs.keys().copied().collect::<Vec<_>>().join(", "),
            });
        }
        let mut sections = BTreeMap::new();
        for (name, spec) in specs {
            let parsed =
                (spec.parse)(given.get(name)).map_err(|(key, message)| ConfigError::Invalid {
                    section: name.to_string(),
                    key,
                    message,
                })?;
            sections.insert(name, parsed);
        }
        Ok(Config { sections })
    }

    /// The section as its type `T`. (The defaults, and a failed debug assertion, if two
    /// descriptors declared the section with different types, which the registry's tests refuse.)
    pub fn get<T: Section>(&self, typed: &Typed<T>) -> T {
        let spec = typed.spec();
        let found = self
            .sections
            .get(spec.section)
            .and_then(|p| p.value.downcast_ref::<T>())
            .cloned();
        debug_assert!(
            found.is_some(),
            "[derived.{}] is not declared as {}",
            spec.section,
            std::any::type_name::<T>()
        );
        found.unwrap_or_default()
    }

    /// The section as parsed (its values and lookback).
    pub fn parsed(&self, spec: &Spec) -> Option<&Parsed> {
        self.sections.get(spec.section)
    }
}

/// Every section the registry declares, by name.
fn specs() -> BTreeMap<&'static str, Spec> {
    super::registry()
        .into_iter()
        .map(|d| (d.config.section, d.config))
        .collect()
}
