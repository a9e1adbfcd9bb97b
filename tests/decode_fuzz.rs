//! Property tests of the decoders:
//!
//! - arbitrary bytes (with and without a valid encapsulation header) never panic any decoding
//!   path of any built-in type, with or without a schema, in either release;
//! - mutations (byte flips, truncations, insertions, removals, overwritten counts) of valid
//!   FleetState, LiftState and BuildingMap payloads never panic, and the typed and generic paths
//!   accept exactly the same payloads and agree on their JSON;
//! - random DoorState, LiftState and FleetState values (both releases) round-trip through
//!   `typed::encode`/`typed::decode`, the generic decoder's JSON equals the typed value's JSON,
//!   and a `TopicDecoder` (with and without schema) yields the same record.
//!
//! Typed JSON is compared through `serde_json::to_string`, not `serde_json::to_value`: serde_json
//! turns an `f32` into a `Value` by widening it (0.1f32 becomes 0.10000000149011612), whereas its
//! text form, like the generic decoder, uses the shortest float32 decimal (`0.1`).

use std::collections::HashMap;
use std::sync::OnceLock;

use compact_str::CompactString;
use proptest::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;

use rmf_dash::ingest::builtin;
use rmf_dash::ingest::cdr::RmfRelease;
use rmf_dash::ingest::cdr::generic::{Bytes, Plan};
use rmf_dash::ingest::cdr::typed::{self, Cdr};
use rmf_dash::ingest::decode::{ReleasePolicy, TopicDecoder};
use rmf_dash_dataflows::model::Record;
use rmf_dash_dataflows::model::ros::*;

// ---------------------------------------------------------------------------------------------
// Decoder set-up
// ---------------------------------------------------------------------------------------------

/// A type with a schema of its own that exercises the generic decoder beyond the RMF messages:
/// fixed and bounded arrays, bytes, chars, int16, nested fixed arrays, bool sequences, wstring.
const ODD_TYPE: &str = "custom_msgs/msg/Odd";
const ODD_SCHEMA: &str = "int64[3] a
string<=5 b
float64[<=2] c
byte[] d
char e
int16 f
Inner[2] inner
bool[] flags
float64 g
================================================================================
MSG: custom_msgs/Inner
uint16 x
string[] names
int8 y
";
const WSTRING_TYPE: &str = "custom_msgs/msg/Wide";
const WSTRING_SCHEMA: &str = "uint8 a\nwstring w\n";
const EMPTY_TYPE: &str = "std_msgs/msg/Empty";
const EMPTY_SCHEMA: &str = "# no fields\n";

/// `pkg/Type` to `pkg/msg/Type`, as recordings name types.
fn msg_name(normalized: &str) -> String {
    let (pkg, ty) = normalized.split_once('/').expect("pkg/Type");
    format!("{pkg}/msg/{ty}")
}

/// The topics a type is seen on (the topic selects the record kind for some types).
fn topics_of(normalized: &str) -> &'static [&'static str] {
    match normalized {
        "rmf_door_msgs/DoorState" => &["/door_states"],
        "rmf_door_msgs/DoorRequest" => &["/adapter_door_requests"],
        "rmf_lift_msgs/LiftState" => &["/lift_states"],
        "rmf_lift_msgs/LiftRequest" => &["/adapter_lift_requests"],
        "rmf_fleet_msgs/FleetState" => &["/fleet_states"],
        "rmf_fleet_msgs/DeliveryAlert" => &["/delivery_alert_request", "/delivery_alert_response"],
        "rmf_building_map_msgs/BuildingMap" => &["/map"],
        "std_msgs/Bool" => &["/fire_alarm_trigger", "/other_bool"],
        "std_msgs/String" => &[
            "/fleet_state_update",
            "/fleet_log_update",
            "/task_state_update",
            "/task_log_update",
            "/chatter",
        ],
        _ => &["/misc"],
    }
}

/// (topic, type as recorded, schema text or none) for every decoder the fuzzers build.
fn decoder_specs() -> &'static [(String, String, Option<String>)] {
    static SPECS: OnceLock<Vec<(String, String, Option<String>)>> = OnceLock::new();
    SPECS.get_or_init(|| {
        let mut v = Vec::new();
        for n in builtin::type_names() {
            for topic in topics_of(n) {
                v.push((topic.to_string(), msg_name(n), None));
                for r in RmfRelease::ALL {
                    v.push((topic.to_string(), msg_name(n), builtin::schema_text(n, r)));
                }
            }
        }
        for (ty, schema) in [
            (ODD_TYPE, ODD_SCHEMA),
            (WSTRING_TYPE, WSTRING_SCHEMA),
            (EMPTY_TYPE, EMPTY_SCHEMA),
        ] {
            v.push((
                "/misc".to_string(),
                ty.to_string(),
                Some(schema.to_string()),
            ));
        }
        // No schema and no built-in definition: the decoder cannot be built (an error, no panic).
        v.push(("/misc".to_string(), ODD_TYPE.to_string(), None));
        v
    })
}

fn policy(preferred: RmfRelease, strict: bool) -> ReleasePolicy {
    ReleasePolicy { preferred, strict }
}

/// Feeds payloads to every decoder through both entry points; only panics matter here.
fn feed_every_decoder(payloads: &[Vec<u8>], p: ReleasePolicy) {
    for (topic, ty, schema) in decoder_specs() {
        let Ok(mut d) = TopicDecoder::new(topic, ty, "cdr", schema.as_deref(), p) else {
            continue;
        };
        for payload in payloads {
            let _ = d.record(payload);
            let _ = d.value(payload, Bytes::Array);
            let _ = d.value(payload, Bytes::Summary);
            let _ = d.release();
        }
    }
}

/// The generic plan of a built-in type in a release (compiled once).
fn plan(normalized: &str, release: RmfRelease) -> &'static Plan {
    static PLANS: OnceLock<HashMap<(String, RmfRelease), Plan>> = OnceLock::new();
    let plans = PLANS.get_or_init(|| {
        let mut m = HashMap::new();
        for n in builtin::type_names() {
            for r in RmfRelease::ALL {
                let s = builtin::schema(n, r).expect("built-in schema");
                m.insert((n.to_string(), r), Plan::compile(s));
            }
        }
        m
    });
    &plans[&(normalized.to_string(), release)]
}

/// The JSON text of a typed value (see the module comment for why not `to_value`).
fn typed_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("typed values serialize")
}

/// JSON text parsed back, so that two texts of the same numbers compare equal: serde_json prints
/// an `f32` with float32 rules (`-2015137700000000.0`, `0.0000012714098`) and the generic decoder's
/// `f64` with float64 rules (`-2.0151377e+15`, `1.2714098e-6`); the digits are the same.
fn parsed(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The typed record's JSON, for the record kinds these tests decode.
fn record_json(r: &Record) -> Option<String> {
    Some(match r {
        Record::DoorState(v) => typed_json(v),
        Record::LiftState(v) => typed_json(v),
        Record::FleetState(v) => typed_json(v),
        Record::BuildingMap(v) => typed_json(v),
        _ => return None,
    })
}

/// On arbitrary bytes, the typed codec and the generic plan of the same release accept the same
/// payloads, agree on the JSON when they accept, and fail with the same root error when not.
fn typed_and_generic_agree<T: Cdr + Serialize>(
    normalized: &str,
    payload: &[u8],
) -> Result<(), TestCaseError> {
    for r in RmfRelease::ALL {
        let typed = typed::decode::<T>(payload, r);
        let generic = plan(normalized, r).decode(payload);
        match (&typed, &generic) {
            (Ok(t), Ok(g)) => prop_assert_eq!(
                parsed(&typed_json(t)),
                parsed(&g.to_string()),
                "{} {}",
                normalized,
                r
            ),
            (Err(t), Err(g)) => prop_assert_eq!(t, g.root_cause(), "{} {}: {}", normalized, r, g),
            _ => prop_assert!(
                false,
                "{} {}: typed {:?} but generic {:?}",
                normalized,
                r,
                typed.as_ref().map(|_| "ok"),
                generic.as_ref().map(|_| "ok")
            ),
        }
    }
    Ok(())
}

/// `record()` and `value()` of one topic decoder succeed or fail together and agree on the JSON.
fn decoder_paths_agree(topic: &str, normalized: &str, payload: &[u8]) -> Result<(), TestCaseError> {
    let ty = msg_name(normalized);
    let schemas = [
        None,
        builtin::schema_text(normalized, RmfRelease::Jazzy),
        builtin::schema_text(normalized, RmfRelease::Kilted),
    ];
    for schema in &schemas {
        for preferred in RmfRelease::ALL {
            let mut d = TopicDecoder::new(
                topic,
                &ty,
                "cdr",
                schema.as_deref(),
                policy(preferred, false),
            )
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let value = d.value(payload, Bytes::Array);
            let record = d.record(payload);
            match (&record, &value) {
                (Ok(rec), Ok(v)) => {
                    let json = record_json(rec).expect("a typed record kind");
                    prop_assert_eq!(
                        parsed(&json),
                        parsed(&v.to_string()),
                        "{} schema: {}",
                        topic,
                        schema.is_some()
                    );
                }
                (Err(a), Err(b)) => prop_assert_eq!(a.to_string(), b.to_string()),
                _ => prop_assert!(
                    false,
                    "{} schema {} preferred {}: record {:?} but value {:?}",
                    topic,
                    schema.is_some(),
                    preferred,
                    record.as_ref().map(|_| "ok").map_err(|e| e.to_string()),
                    value.as_ref().map(|_| "ok").map_err(|e| e.to_string())
                ),
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

/// Any finite float32, subnormals and both zeros included.
fn finite_f32() -> impl Strategy<Value = f32> {
    use prop::num::f32::*;
    POSITIVE | NEGATIVE | NORMAL | SUBNORMAL | ZERO
}

/// Short strings: plain names, or any Unicode scalar values (NUL included).
fn text() -> BoxedStrategy<String> {
    prop_oneof![
        "[a-zA-Z0-9_#]{0,10}",
        "(?s).{0,8}",
        Just("Tür-Ω ✓".to_string()),
    ]
    .boxed()
}

fn cs() -> impl Strategy<Value = CompactString> {
    text().prop_map(CompactString::from)
}

fn time() -> impl Strategy<Value = Time> {
    (any::<i32>(), any::<u32>()).prop_map(|(sec, nanosec)| Time { sec, nanosec })
}

fn door_state() -> impl Strategy<Value = DoorState> {
    (time(), cs(), any::<u32>()).prop_map(|(door_time, door_name, value)| DoorState {
        door_time,
        door_name,
        current_mode: DoorMode { value },
    })
}

fn lift_state() -> impl Strategy<Value = LiftState> {
    (
        time(),
        cs(),
        prop::collection::vec(cs(), 0..4),
        cs(),
        cs(),
        any::<u8>(),
        any::<u8>(),
        prop::collection::vec(any::<u8>(), 0..6),
        any::<u8>(),
        cs(),
    )
        .prop_map(
            |(
                lift_time,
                lift_name,
                available_floors,
                current_floor,
                destination_floor,
                door_state,
                motion_state,
                available_modes,
                current_mode,
                session_id,
            )| LiftState {
                lift_time,
                lift_name,
                available_floors,
                current_floor,
                destination_floor,
                door_state,
                motion_state,
                available_modes,
                current_mode,
                session_id,
            },
        )
}

fn location() -> impl Strategy<Value = Location> {
    (
        time(),
        finite_f32(),
        finite_f32(),
        finite_f32(),
        any::<bool>(),
        finite_f32(),
        cs(),
        any::<u64>(),
    )
        .prop_map(
            |(t, x, y, yaw, obey_approach_speed_limit, approach_speed_limit, level_name, index)| {
                Location {
                    t,
                    x,
                    y,
                    yaw,
                    obey_approach_speed_limit,
                    approach_speed_limit,
                    level_name,
                    index,
                }
            },
        )
}

/// A RobotMode as the release's layout carries it: `performing_action` only on kilted.
fn robot_mode(release: RmfRelease) -> impl Strategy<Value = RobotMode> {
    (any::<u32>(), any::<u64>(), cs()).prop_map(move |(mode, mode_request_id, action)| RobotMode {
        mode,
        mode_request_id,
        performing_action: (release == RmfRelease::Kilted).then_some(action),
    })
}

fn robot_state(release: RmfRelease) -> impl Strategy<Value = RobotState> {
    (
        cs(),
        cs(),
        cs(),
        any::<u64>(),
        robot_mode(release),
        finite_f32(),
        location(),
        prop::collection::vec(location(), 0..3),
    )
        .prop_map(
            |(name, model, task_id, seq, mode, battery_percent, location, path)| RobotState {
                name,
                model,
                task_id,
                seq,
                mode,
                battery_percent,
                location,
                path,
            },
        )
}

fn fleet_state(release: RmfRelease) -> impl Strategy<Value = FleetState> {
    (cs(), prop::collection::vec(robot_state(release), 0..=5))
        .prop_map(|(name, robots)| FleetState { name, robots })
}

fn release() -> impl Strategy<Value = RmfRelease> {
    prop_oneof![Just(RmfRelease::Jazzy), Just(RmfRelease::Kilted)]
}

fn param() -> impl Strategy<Value = Param> {
    (
        cs(),
        0u32..5,
        any::<i32>(),
        finite_f32(),
        text(),
        any::<bool>(),
    )
        .prop_map(
            |(name, type_, value_int, value_float, value_string, value_bool)| Param {
                name,
                type_,
                value_int,
                value_float,
                value_string,
                value_bool,
            },
        )
}

fn graph() -> impl Strategy<Value = Graph> {
    let node = (
        finite_f32(),
        finite_f32(),
        cs(),
        prop::collection::vec(param(), 0..2),
    )
        .prop_map(|(x, y, name, params)| GraphNode { x, y, name, params });
    let edge = (
        any::<u32>(),
        any::<u32>(),
        prop::collection::vec(param(), 0..2),
        any::<u8>(),
    )
        .prop_map(|(v1_idx, v2_idx, params, edge_type)| GraphEdge {
            v1_idx,
            v2_idx,
            params,
            edge_type,
        });
    (
        cs(),
        prop::collection::vec(node, 0..3),
        prop::collection::vec(edge, 0..2),
        prop::collection::vec(param(), 0..2),
    )
        .prop_map(|(name, vertices, edges, params)| Graph {
            name,
            vertices,
            edges,
            params,
        })
}

fn door() -> impl Strategy<Value = Door> {
    (
        cs(),
        finite_f32(),
        finite_f32(),
        any::<u8>(),
        finite_f32(),
        any::<i32>(),
    )
        .prop_map(
            |(name, v1_x, v2_y, door_type, motion_range, motion_direction)| Door {
                name,
                v1_x,
                v1_y: -v1_x,
                v2_x: 0.5,
                v2_y,
                door_type,
                motion_range,
                motion_direction,
            },
        )
}

fn building_map() -> impl Strategy<Value = BuildingMap> {
    let image = (
        cs(),
        finite_f32(),
        finite_f32(),
        cs(),
        prop::collection::vec(any::<u8>(), 0..80),
    )
        .prop_map(|(name, x_offset, scale, encoding, data)| AffineImage {
            name,
            x_offset,
            y_offset: -x_offset,
            yaw: 0.1,
            scale,
            encoding,
            data,
        });
    let place = (cs(), finite_f32(), finite_f32()).prop_map(|(name, x, y)| Place {
        name,
        x,
        y,
        yaw: 1.5,
        position_tolerance: 0.5,
        yaw_tolerance: 1e-45,
    });
    let level = (
        cs(),
        finite_f32(),
        prop::collection::vec(image, 0..2),
        prop::collection::vec(place, 0..2),
        prop::collection::vec(door(), 0..2),
        prop::collection::vec(graph(), 0..2),
        graph(),
    )
        .prop_map(
            |(name, elevation, images, places, doors, nav_graphs, wall_graph)| Level {
                name,
                elevation,
                images,
                places,
                doors,
                nav_graphs,
                wall_graph,
            },
        );
    let lift = (
        cs(),
        prop::collection::vec(cs(), 0..3),
        prop::collection::vec(door(), 0..2),
        graph(),
        finite_f32(),
        finite_f32(),
    )
        .prop_map(|(name, levels, doors, wall_graph, ref_x, depth)| Lift {
            name,
            levels,
            doors,
            wall_graph,
            ref_x,
            ref_y: -ref_x,
            ref_yaw: 0.1,
            width: 2.0,
            depth,
        });
    (
        cs(),
        prop::collection::vec(level, 0..3),
        prop::collection::vec(lift, 0..2),
    )
        .prop_map(|(name, levels, lifts)| BuildingMap {
            name,
            levels,
            lifts,
        })
}

/// A change to a serialized message; positions are taken modulo the length.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Truncate(usize),
    Insert(usize, u8),
    Remove(usize),
    /// Overwrites 4 bytes (a count or string length, often) with a little-endian u32.
    SetU32(usize, u32),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let pos = any::<usize>();
    prop_oneof![
        4 => (pos, 1u8..=255).prop_map(|(p, m)| Mutation::Flip(p, m)),
        1 => pos.prop_map(Mutation::Truncate),
        2 => (pos, any::<u8>()).prop_map(|(p, b)| Mutation::Insert(p, b)),
        2 => pos.prop_map(Mutation::Remove),
        2 => (pos, prop_oneof![Just(0u32), Just(1), Just(2), Just(u32::MAX), Just(0x8000_0000), any::<u32>()])
            .prop_map(|(p, v)| Mutation::SetU32(p, v)),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = bytes.len();
        match *m {
            Mutation::Flip(p, mask) if len > 0 => bytes[p % len] ^= mask,
            Mutation::Truncate(p) => bytes.truncate(p % (len + 1)),
            Mutation::Insert(p, b) => bytes.insert(p % (len + 1), b),
            Mutation::Remove(p) if len > 0 => {
                bytes.remove(p % len);
            }
            Mutation::SetU32(p, v) if len >= 4 => {
                let at = p % (len - 3);
                bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
            }
            _ => {}
        }
    }
    bytes
}

/// Mutated payloads of `T`: no panic anywhere, typed and generic agree, and so do the two entry
/// points of a topic decoder.
fn check_mutated<T: Cdr + Serialize>(
    topic: &str,
    normalized: &str,
    payload: &[u8],
) -> Result<(), TestCaseError> {
    typed_and_generic_agree::<T>(normalized, payload)?;
    decoder_paths_agree(topic, normalized, payload)?;
    // Strict policies too.
    for r in RmfRelease::ALL {
        let mut d = TopicDecoder::new(topic, &msg_name(normalized), "cdr", None, policy(r, true))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let _ = d.record(payload);
        let _ = d.value(payload, Bytes::Summary);
    }
    Ok(())
}

/// Round trip of a typed value through encode/decode, the generic decoder and a topic decoder.
fn check_round_trip<T>(
    topic: &str,
    normalized: &str,
    value: &T,
    release: RmfRelease,
    record: Record,
) -> Result<(), TestCaseError>
where
    T: Cdr + Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let bytes = typed::encode(value, release);
    prop_assert_eq!(bytes.len() % 4, 0, "payloads are padded to 4 bytes");
    let back =
        typed::decode::<T>(&bytes, release).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&back, value);

    let generic = plan(normalized, release)
        .decode(&bytes)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let want = parsed(&typed_json(value));
    prop_assert_eq!(parsed(&generic.to_string()), want.clone(), "generic JSON");
    // The generic JSON converts back to the same typed value (the path of RMF types whose schema
    // is not a built-in layout).
    let from_generic: T =
        serde_json::from_value(generic).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&from_generic, value, "serde of the generic JSON");

    // A topic decoder, from the recording's schema and without one, in either preferred release.
    let ty = msg_name(normalized);
    for schema in [builtin::schema_text(normalized, release), None] {
        for preferred in RmfRelease::ALL {
            let mut d = TopicDecoder::new(
                topic,
                &ty,
                "cdr",
                schema.as_deref(),
                policy(preferred, false),
            )
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let got = d
                .record(&bytes)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(
                &got,
                &record,
                "record, schema {} preferred {}",
                schema.is_some(),
                preferred
            );
            let v = d
                .value(&bytes, Bytes::Array)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(
                parsed(&v.to_string()),
                want.clone(),
                "value, schema {} preferred {}",
                schema.is_some(),
                preferred
            );
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

/// Cases per property, chosen so that the whole file runs in a few seconds in debug mode;
/// `PROPTEST_CASES=N` runs N instead (deeper searches).
const FUZZ_CASES: u32 = 256;
const ROUND_TRIP_CASES: u32 = 256;

fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        // Failures are reported with their shrunk input; nothing is written next to the sources.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(FUZZ_CASES))]

    /// (a) Arbitrary bytes never panic any decoder, raw or behind a valid header.
    #[test]
    fn random_bytes_never_panic(
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..600), 1..3),
        header in prop_oneof![Just(None), Just(Some([0u8, 1, 0, 0])), Just(Some([0u8, 0, 0, 0]))],
        preferred in release(),
        strict in any::<bool>(),
    ) {
        let payloads: Vec<Vec<u8>> = payloads
            .into_iter()
            .map(|p| match header {
                Some(h) => h.iter().copied().chain(p).collect(),
                None => p,
            })
            .collect();
        feed_every_decoder(&payloads, policy(preferred, strict));
        for p in &payloads {
            for r in RmfRelease::ALL {
                let _ = typed::decode::<FleetState>(p, r);
                let _ = typed::decode::<BuildingMap>(p, r);
                let _ = typed::decode::<LiftState>(p, r);
                let _ = typed::decode::<DoorState>(p, r);
            }
        }
    }

    /// (b) Mutated FleetState payloads (0-5 robots, Unicode strings).
    #[test]
    fn mutated_fleet_state(
        (r, value) in release().prop_flat_map(|r| (Just(r), fleet_state(r))),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let payload = mutate(typed::encode(&value, r), &mutations);
        check_mutated::<FleetState>("/fleet_states", "rmf_fleet_msgs/FleetState", &payload)?;
    }

    /// (b) Mutated LiftState payloads.
    #[test]
    fn mutated_lift_state(value in lift_state(), mutations in prop::collection::vec(mutation(), 1..4)) {
        let payload = mutate(typed::encode(&value, RmfRelease::Jazzy), &mutations);
        check_mutated::<LiftState>("/lift_states", "rmf_lift_msgs/LiftState", &payload)?;
    }

    /// (b) Mutated BuildingMap payloads.
    #[test]
    fn mutated_building_map(value in building_map(), mutations in prop::collection::vec(mutation(), 1..4)) {
        let payload = mutate(typed::encode(&value, RmfRelease::Jazzy), &mutations);
        check_mutated::<BuildingMap>("/map", "rmf_building_map_msgs/BuildingMap", &payload)?;
    }
}

proptest! {
    #![proptest_config(config(ROUND_TRIP_CASES))]

    /// (c) DoorState round trip; typed and generic agree.
    #[test]
    fn door_state_round_trip(value in door_state(), r in release()) {
        check_round_trip("/door_states", "rmf_door_msgs/DoorState", &value, r, Record::DoorState(value.clone()))?;
    }

    /// (c) LiftState round trip; typed and generic agree.
    #[test]
    fn lift_state_round_trip(value in lift_state(), r in release()) {
        check_round_trip("/lift_states", "rmf_lift_msgs/LiftState", &value, r, Record::LiftState(value.clone()))?;
    }

    /// (c) FleetState round trip in both layouts; typed and generic agree, and a schema-less topic
    /// decoder detects the layout (or both fit and decode alike).
    #[test]
    fn fleet_state_round_trip((r, value) in release().prop_flat_map(|r| (Just(r), fleet_state(r)))) {
        check_round_trip("/fleet_states", "rmf_fleet_msgs/FleetState", &value, r, Record::FleetState(value.clone()))?;
    }
}
