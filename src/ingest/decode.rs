//! Per-topic decoding: turns one topic's serialized messages into [`Record`]s (for the engine) or
//! generic JSON (for `trace dump`), choosing the decoding path once per topic.
//!
//! - A topic whose recording embeds its schema is decoded by that schema. When the schema has
//!   exactly the built-in layout of an RMF release, the typed fast path of that release is used
//!   (tests keep both paths in agreement); an RMF type with any other layout goes through the
//!   generic decoder and serde; an unknown type stays generic JSON.
//! - A topic without a schema (sqlite3 recordings, live links) uses the built-in definitions. For
//!   the types whose layout depends on the release (FleetState), the layout is detected from the
//!   payloads: the variant that consumes a message exactly wins and is then fixed for the topic;
//!   while both fit (a fleet with no robots), the configured release decides. A message that fits
//!   no layout is an error naming the topic, type and offset; it is never misdecoded.

use serde::de::DeserializeOwned;
use serde_json::Value;
use thiserror::Error;

use rmf_dash_dataflows::model::ros::*;
use rmf_dash_dataflows::model::{JsonKind, Record};

use super::builtin;
use super::cdr::generic::{Bytes, Plan};
use super::cdr::typed::{self, Cdr};
use super::cdr::{CdrError, RmfRelease};
use super::ros2msg::{MsgSchema, SchemaError, normalize_type_name};

/// A decoding error, naming the topic and type it happened on.
///
/// Each says its whole cause in its message and has no `source()`: a dropped message is
/// reported as one line (`topic /door_states (...): at door_name: offset 16: ...`), and the
/// library's callers read that line with `to_string()`.
#[derive(Debug, Error)]
pub enum DecodeError {
    #[error("topic {topic} ({type_name}): {error}")]
    Cdr {
        topic: String,
        type_name: String,
        error: CdrError,
    },
    #[error("topic {topic} ({type_name}): bad schema: {error}")]
    Schema {
        topic: String,
        type_name: String,
        error: SchemaError,
    },
    #[error(
        "topic {topic} ({type_name}): the recording has no schema and rmf-dash has no built-in definition of this type"
    )]
    NoDefinition { topic: String, type_name: String },
    #[error(
        "topic {topic} ({type_name}): message encoding {encoding:?} is not supported (only cdr)"
    )]
    Encoding {
        topic: String,
        type_name: String,
        encoding: String,
    },
    #[error(
        "topic {topic} ({type_name}): the message fits no RMF layout (jazzy: {jazzy}; kilted: {kilted})"
    )]
    NoLayout {
        topic: String,
        type_name: String,
        jazzy: Box<CdrError>,
        kilted: Box<CdrError>,
    },
    #[error(
        "topic {topic} ({type_name}): the message has the {found} layout, but this topic uses the {configured} layout (configured, from its schema, or detected from its earlier messages)"
    )]
    ReleaseMismatch {
        topic: String,
        type_name: String,
        found: RmfRelease,
        configured: RmfRelease,
    },
    #[error("topic {topic} ({type_name}): the schema lacks fields rmf-dash needs: {message}")]
    Fields {
        topic: String,
        type_name: String,
        message: String,
    },
    #[error("topic {topic} ({type_name}): {kind} payload is not a JSON object: {message}")]
    Json {
        topic: String,
        type_name: String,
        kind: &'static str,
        message: String,
    },
}

/// How to choose between the release layouts when the source does not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReleasePolicy {
    /// Used while payloads fit both layouts.
    pub preferred: RmfRelease,
    /// When set, a payload or schema of the other release is an error (live links configured
    /// for one release).
    pub strict: bool,
}

impl Default for ReleasePolicy {
    fn default() -> Self {
        ReleasePolicy {
            preferred: RmfRelease::Jazzy,
            strict: false,
        }
    }
}

/// What a topic's messages mean to rmf-dash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    DoorState,
    DoorRequest,
    LiftState,
    LiftRequest,
    DispenserState,
    IngestorState,
    DispenserRequest,
    DispenserResult,
    FleetState,
    BeaconState,
    DeliveryAlertRequest,
    DeliveryAlertResponse,
    MutexGroupManualRelease,
    ApiRequest,
    ApiResponse,
    Alert,
    AlertResponse,
    BuildingMap,
    FireAlarmTrigger,
    Json(JsonKind),
    Other,
}

impl Kind {
    /// Classifies by type, and by topic where one type means different things.
    pub fn classify(topic: &str, type_name: &str) -> Kind {
        let base = topic.rsplit('/').next().unwrap_or(topic);
        match type_name {
            "rmf_door_msgs/DoorState" => Kind::DoorState,
            "rmf_door_msgs/DoorRequest" => Kind::DoorRequest,
            "rmf_lift_msgs/LiftState" => Kind::LiftState,
            "rmf_lift_msgs/LiftRequest" => Kind::LiftRequest,
            "rmf_dispenser_msgs/DispenserState" => Kind::DispenserState,
            "rmf_ingestor_msgs/IngestorState" => Kind::IngestorState,
            "rmf_dispenser_msgs/DispenserRequest" => Kind::DispenserRequest,
            "rmf_dispenser_msgs/DispenserResult" => Kind::DispenserResult,
            "rmf_fleet_msgs/FleetState" => Kind::FleetState,
            "rmf_fleet_msgs/BeaconState" => Kind::BeaconState,
            "rmf_fleet_msgs/DeliveryAlert" if base == "delivery_alert_response" => {
                Kind::DeliveryAlertResponse
            }
            "rmf_fleet_msgs/DeliveryAlert" => Kind::DeliveryAlertRequest,
            "rmf_fleet_msgs/MutexGroupManualRelease" => Kind::MutexGroupManualRelease,
            "rmf_task_msgs/ApiRequest" => Kind::ApiRequest,
            "rmf_task_msgs/ApiResponse" => Kind::ApiResponse,
            "rmf_task_msgs/Alert" => Kind::Alert,
            "rmf_task_msgs/AlertResponse" => Kind::AlertResponse,
            "rmf_building_map_msgs/BuildingMap" => Kind::BuildingMap,
            "std_msgs/Bool" if base == "fire_alarm_trigger" => Kind::FireAlarmTrigger,
            "std_msgs/String" => JsonKind::parse(base).map_or(Kind::Other, Kind::Json),
            _ => Kind::Other,
        }
    }
}

/// Which decoding path a topic uses.
#[derive(Debug)]
enum Path {
    /// The schema is a built-in layout: typed fast path of that release.
    Typed(RmfRelease),
    /// No schema, release-dependent type: detect the layout from the payloads.
    Detect { decided: Option<RmfRelease> },
    /// A schema rmf-dash has no typed codec for: generic JSON (then serde for RMF types).
    Generic,
}

/// Decodes the messages of one topic.
#[derive(Debug)]
pub struct TopicDecoder {
    topic: String,
    /// As given by the source (`pkg/msg/Type`).
    type_name: String,
    /// Normalized (`pkg/Type`).
    normalized: String,
    kind: Kind,
    path: Path,
    /// Generic plans: one, or one per release while detecting.
    plans: Vec<(RmfRelease, Plan)>,
    policy: ReleasePolicy,
}

impl TopicDecoder {
    /// `schema`: the `ros2msg` text a recording carries, if any. `encoding`: the channel's message
    /// encoding (`cdr`).
    pub fn new(
        topic: &str,
        type_name: &str,
        encoding: &str,
        schema: Option<&str>,
        policy: ReleasePolicy,
    ) -> Result<Self, DecodeError> {
        let normalized = normalize_type_name(type_name).map_err(|error| DecodeError::Schema {
            topic: topic.to_string(),
            type_name: type_name.to_string(),
            error,
        })?;
        if encoding != "cdr" {
            return Err(DecodeError::Encoding {
                topic: topic.to_string(),
                type_name: type_name.to_string(),
                encoding: encoding.to_string(),
            });
        }
        let kind = Kind::classify(topic, &normalized);
        let mut d = TopicDecoder {
            topic: topic.to_string(),
            type_name: type_name.to_string(),
            normalized,
            kind,
            path: Path::Generic,
            plans: Vec::new(),
            policy,
        };
        match schema.filter(|s| !s.trim().is_empty()) {
            Some(text) => {
                let parsed =
                    MsgSchema::parse(&d.normalized, text).map_err(|error| DecodeError::Schema {
                        topic: d.topic.clone(),
                        type_name: d.type_name.clone(),
                        error,
                    })?;
                let matches: Vec<RmfRelease> = RmfRelease::ALL
                    .into_iter()
                    .filter(|r| {
                        builtin::schema(&d.normalized, *r).is_some_and(|b| b.same_layout(&parsed))
                    })
                    .collect();
                if let Some(&release) = matches
                    .iter()
                    .find(|r| **r == policy.preferred)
                    .or(matches.first())
                {
                    if d.kind != Kind::Other {
                        d.path = Path::Typed(release);
                    }
                    if policy.strict
                        && release != policy.preferred
                        && builtin::depends_on_release(&d.normalized)
                    {
                        return Err(d.mismatch(release));
                    }
                }
                d.plans.push((policy.preferred, Plan::compile(&parsed)));
            }
            None => {
                for release in RmfRelease::ALL {
                    let Some(s) = builtin::schema(&d.normalized, release) else {
                        return Err(DecodeError::NoDefinition {
                            topic: d.topic.clone(),
                            type_name: d.type_name.clone(),
                        });
                    };
                    d.plans.push((release, Plan::compile(s)));
                }
                d.path = if builtin::depends_on_release(&d.normalized) {
                    Path::Detect {
                        decided: policy.strict.then_some(policy.preferred),
                    }
                } else {
                    d.plans.truncate(1);
                    Path::Typed(policy.preferred)
                };
            }
        }
        Ok(d)
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    pub fn type_name(&self) -> &str {
        &self.type_name
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The RMF layout this topic is known to use: from its schema, or detected from payloads.
    pub fn release(&self) -> Option<RmfRelease> {
        match self.path {
            Path::Typed(r) if builtin::depends_on_release(&self.normalized) => Some(r),
            Path::Detect { decided } => decided,
            _ => None,
        }
    }

    fn cdr_error(&self, error: CdrError) -> DecodeError {
        DecodeError::Cdr {
            topic: self.topic.clone(),
            type_name: self.type_name.clone(),
            error,
        }
    }

    fn mismatch(&self, found: RmfRelease) -> DecodeError {
        self.mismatch_with(found, self.policy.preferred)
    }

    /// The release to decode this payload with, detecting it when needed.
    fn choose_release(&mut self, payload: &[u8]) -> Result<RmfRelease, DecodeError> {
        match self.path {
            Path::Typed(r) => Ok(r),
            Path::Generic => Ok(self.policy.preferred),
            // Fixed for the topic; `explain` reports a payload of the other layout.
            Path::Detect { decided: Some(r) } => Ok(r),
            Path::Detect { decided: None } => {
                let jazzy = self.fits(RmfRelease::Jazzy, payload);
                let kilted = self.fits(RmfRelease::Kilted, payload);
                match (jazzy, kilted) {
                    (Ok(()), Ok(())) => Ok(self.policy.preferred),
                    (Ok(()), Err(_)) => self.decide(RmfRelease::Jazzy),
                    (Err(_), Ok(())) => self.decide(RmfRelease::Kilted),
                    (Err(jazzy), Err(kilted)) => Err(DecodeError::NoLayout {
                        topic: self.topic.clone(),
                        type_name: self.type_name.clone(),
                        jazzy: Box::new(jazzy),
                        kilted: Box::new(kilted),
                    }),
                }
            }
        }
    }

    fn mismatch_with(&self, found: RmfRelease, configured: RmfRelease) -> DecodeError {
        DecodeError::ReleaseMismatch {
            topic: self.topic.clone(),
            type_name: self.type_name.clone(),
            found,
            configured,
        }
    }

    fn decide(&mut self, r: RmfRelease) -> Result<RmfRelease, DecodeError> {
        self.path = Path::Detect { decided: Some(r) };
        Ok(r)
    }

    /// Whether a payload decodes exactly with a release's built-in layout.
    fn fits(&self, release: RmfRelease, payload: &[u8]) -> Result<(), CdrError> {
        match self.kind {
            Kind::FleetState => typed::decode::<FleetState>(payload, release).map(drop),
            _ => self.plan(release).decode(payload).map(drop),
        }
    }

    fn plan(&self, release: RmfRelease) -> &Plan {
        // `new` always pushes at least one plan.
        let i = self
            .plans
            .iter()
            .position(|(r, _)| *r == release)
            .unwrap_or(0);
        &self.plans[i].1
    }

    /// Decodes a payload to generic JSON with the `.msg` field names.
    pub fn value(&mut self, payload: &[u8], bytes: Bytes) -> Result<Value, DecodeError> {
        let release = self.choose_release(payload)?;
        self.plan(release)
            .decode_with(payload, bytes)
            .map_err(|e| self.explain(payload, release, Fail::Cdr(e)))
    }

    /// Decodes a payload into a record.
    pub fn record(&mut self, payload: &[u8]) -> Result<Record, DecodeError> {
        let release = self.choose_release(payload)?;
        let result = match self.path {
            Path::Generic => self.generic_record(payload, release),
            _ => self.typed_record(payload, release),
        };
        result.map_err(|e| self.explain(payload, release, e))
    }

    /// Turns a failure into the clearest error: a payload of the other layout on a topic whose
    /// layout was detected is a mismatch; a CDR error gets the field path from the generic plan.
    fn explain(&self, payload: &[u8], release: RmfRelease, fail: Fail) -> DecodeError {
        let fixed = match self.path {
            Path::Detect { decided: Some(r) } => Some(r),
            Path::Typed(r) if builtin::depends_on_release(&self.normalized) => Some(r),
            _ => None,
        };
        if let Some(r) = fixed
            && self.fits(r.other(), payload).is_ok()
        {
            return self.mismatch_with(r.other(), r);
        }
        match fail {
            Fail::Cdr(c) => {
                let detailed = self.plan(release).decode(payload).err().unwrap_or(c);
                self.cdr_error(detailed)
            }
            Fail::Decode(d) => d,
        }
    }

    fn typed_record(&self, payload: &[u8], release: RmfRelease) -> Result<Record, Fail> {
        fn t<T: Cdr>(payload: &[u8], release: RmfRelease) -> Result<T, Fail> {
            typed::decode::<T>(payload, release).map_err(Fail::Cdr)
        }
        Ok(match self.kind {
            Kind::DoorState => Record::DoorState(t(payload, release)?),
            Kind::DoorRequest => Record::DoorRequest(t(payload, release)?),
            Kind::LiftState => Record::LiftState(t(payload, release)?),
            Kind::LiftRequest => Record::LiftRequest(t(payload, release)?),
            Kind::DispenserState => Record::DispenserState(t(payload, release)?),
            Kind::IngestorState => Record::IngestorState(t(payload, release)?),
            Kind::DispenserRequest => Record::DispenserRequest(t(payload, release)?),
            Kind::DispenserResult => Record::DispenserResult(t(payload, release)?),
            Kind::FleetState => Record::FleetState(t(payload, release)?),
            Kind::BeaconState => Record::BeaconState(t(payload, release)?),
            Kind::DeliveryAlertRequest => Record::DeliveryAlertRequest(t(payload, release)?),
            Kind::DeliveryAlertResponse => Record::DeliveryAlertResponse(t(payload, release)?),
            Kind::MutexGroupManualRelease => Record::MutexGroupManualRelease(t(payload, release)?),
            Kind::ApiRequest => Record::ApiRequest(t(payload, release)?),
            Kind::ApiResponse => Record::ApiResponse(t(payload, release)?),
            Kind::Alert => Record::Alert(t(payload, release)?),
            Kind::AlertResponse => Record::AlertResponse(t(payload, release)?),
            Kind::BuildingMap => Record::BuildingMap(Box::new(t(payload, release)?)),
            Kind::FireAlarmTrigger => Record::FireAlarmTrigger(t::<Bool>(payload, release)?.data),
            Kind::Json(kind) => {
                let s: StdString = t(payload, release)?;
                self.json_record(kind, &s.data)?
            }
            Kind::Other => self.generic_record(payload, release)?,
        })
    }

    fn generic_record(&self, payload: &[u8], release: RmfRelease) -> Result<Record, Fail> {
        let value = self.plan(release).decode(payload).map_err(Fail::Cdr)?;
        let from = |v: Value| -> Result<Record, Fail> {
            Ok(match self.kind {
                Kind::DoorState => Record::DoorState(self.deserialize(v)?),
                Kind::DoorRequest => Record::DoorRequest(self.deserialize(v)?),
                Kind::LiftState => Record::LiftState(self.deserialize(v)?),
                Kind::LiftRequest => Record::LiftRequest(self.deserialize(v)?),
                Kind::DispenserState => Record::DispenserState(self.deserialize(v)?),
                Kind::IngestorState => Record::IngestorState(self.deserialize(v)?),
                Kind::DispenserRequest => Record::DispenserRequest(self.deserialize(v)?),
                Kind::DispenserResult => Record::DispenserResult(self.deserialize(v)?),
                Kind::FleetState => Record::FleetState(self.deserialize(v)?),
                Kind::BeaconState => Record::BeaconState(self.deserialize(v)?),
                Kind::DeliveryAlertRequest => Record::DeliveryAlertRequest(self.deserialize(v)?),
                Kind::DeliveryAlertResponse => Record::DeliveryAlertResponse(self.deserialize(v)?),
                Kind::MutexGroupManualRelease => {
                    Record::MutexGroupManualRelease(self.deserialize(v)?)
                }
                Kind::ApiRequest => Record::ApiRequest(self.deserialize(v)?),
                Kind::ApiResponse => Record::ApiResponse(self.deserialize(v)?),
                Kind::Alert => Record::Alert(self.deserialize(v)?),
                Kind::AlertResponse => Record::AlertResponse(self.deserialize(v)?),
                Kind::BuildingMap => Record::BuildingMap(Box::new(self.deserialize(v)?)),
                Kind::FireAlarmTrigger => {
                    Record::FireAlarmTrigger(self.deserialize::<Bool>(v)?.data)
                }
                Kind::Json(kind) => {
                    let s: StdString = self.deserialize(v)?;
                    self.json_record(kind, &s.data)?
                }
                Kind::Other => Record::Other {
                    type_name: self.normalized.clone(),
                    value: v,
                },
            })
        };
        from(value)
    }

    fn deserialize<T: DeserializeOwned>(&self, v: Value) -> Result<T, Fail> {
        serde_json::from_value(v).map_err(|e| {
            Fail::Decode(DecodeError::Fields {
                topic: self.topic.clone(),
                type_name: self.type_name.clone(),
                message: e.to_string(),
            })
        })
    }

    /// The JSON of a fleet-adapter update carried in a std_msgs/String: either the websocket
    /// frame `{"type": ..., "data": {...}}` or the bare `data` object.
    fn json_record(&self, kind: JsonKind, text: &str) -> Result<Record, Fail> {
        let fail = |message: String| {
            Fail::Decode(DecodeError::Json {
                topic: self.topic.clone(),
                type_name: self.type_name.clone(),
                kind: kind.as_str(),
                message,
            })
        };
        let data = json_data(kind, text).map_err(fail)?;
        Ok(Record::Json { kind, data })
    }
}

/// The `data` object of a fleet-adapter update: from the frame `{"type": kind, "data": {...}}`,
/// or the text itself when it is the bare object. The text is kept as received.
pub fn json_data(kind: JsonKind, text: &str) -> Result<std::sync::Arc<str>, String> {
    let trimmed = text.trim();
    if !trimmed.starts_with('{') {
        return Err("not a JSON object".into());
    }
    if let Ok(frame) = serde_json::from_str::<rmf_dash_dataflows::model::api::Frame>(trimmed)
        && frame.type_ == kind.as_str()
        && frame.data.get().trim_start().starts_with('{')
    {
        return Ok(std::sync::Arc::from(frame.data.get()));
    }
    // Not a frame of this kind: the object itself, if it is valid JSON.
    serde_json::from_str::<&serde_json::value::RawValue>(trimmed).map_err(|e| e.to_string())?;
    Ok(std::sync::Arc::from(trimmed))
}

/// An internal failure: a CDR error (to be named with topic and field) or a finished error.
enum Fail {
    Cdr(CdrError),
    Decode(DecodeError),
}
