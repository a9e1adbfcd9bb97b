//! The schema-driven generic decoder: compiles a [`MsgSchema`] into a [`Plan`] once per topic and
//! decodes any message of that type into a JSON value with the `.msg` field names, nested
//! messages as objects, sequences as arrays and integers exact (uint64 included).
//!
//! Floats are rendered by their shortest decimal form at their own precision (a `float32` 0.1 is
//! `0.1`, not `0.10000000149011612`), as serde prints the typed records, so the two paths give
//! equal JSON values (the text of very large or small numbers may differ in exponent notation).
//! Non-finite floats become `null` (JSON has no NaN).

use std::sync::Arc;

use serde_json::{Map, Number, Value};

use super::{CdrError, CdrReader, RmfRelease};
use crate::ingest::ros2msg::{ArrayKind, BaseType, MsgSchema, Primitive};

/// How `uint8`/`byte`/`char` arrays are rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bytes {
    /// An array of numbers, always.
    Array,
    /// Arrays longer than [`SUMMARY_OVER`] become `{"len": N, "crc32": "<8 hex digits>"}` (floor
    /// plan images are megabytes).
    Summary,
}

/// Byte arrays up to this many elements are always shown in full.
pub const SUMMARY_OVER: usize = 64;

/// A compiled decoding plan for one message type.
#[derive(Debug, Clone)]
pub struct Plan {
    root: Arc<StructPlan>,
}

#[derive(Debug)]
struct StructPlan {
    fields: Vec<(String, Node)>,
}

#[derive(Debug, Clone)]
enum Node {
    Primitive(Primitive),
    String,
    WString,
    Struct(Arc<StructPlan>),
    Sequence(Box<Node>),
    Array(Box<Node>, usize),
}

impl Node {
    /// The fewest bytes one element takes (bounds sequence counts).
    fn min_size(&self) -> usize {
        match self {
            Node::Primitive(p) => p.size(),
            Node::String | Node::WString | Node::Sequence(_) => 4,
            Node::Struct(_) | Node::Array(..) => 1,
        }
    }
}

impl Plan {
    /// Compiles a schema. Shared dependency types are compiled once.
    pub fn compile(schema: &MsgSchema) -> Plan {
        let mut cache = std::collections::HashMap::new();
        Plan {
            root: compile_struct(schema, &schema.root, &mut cache),
        }
    }

    /// Decodes a whole serialized message into JSON (header, body and trailing padding checked).
    pub fn decode(&self, payload: &[u8]) -> Result<Value, CdrError> {
        self.decode_with(payload, Bytes::Array)
    }

    /// Like [`Plan::decode`], choosing how byte arrays are rendered.
    pub fn decode_with(&self, payload: &[u8], bytes: Bytes) -> Result<Value, CdrError> {
        // The release does not matter here: the schema says what is on the wire.
        let mut r = CdrReader::new(payload, RmfRelease::Jazzy)?;
        let v = read_struct(&self.root, &mut r, bytes)?;
        r.finish()?;
        Ok(v)
    }
}

fn compile_struct(
    schema: &MsgSchema,
    name: &str,
    cache: &mut std::collections::HashMap<String, Arc<StructPlan>>,
) -> Arc<StructPlan> {
    if let Some(p) = cache.get(name) {
        return p.clone();
    }
    // `MsgSchema::parse` checked that every referenced type exists and that there is no cycle.
    let def = schema.types.get(name).cloned().unwrap_or_default();
    let fields = def
        .fields
        .iter()
        .map(|f| {
            let elem = match &f.ty.base {
                BaseType::Primitive(p) => Node::Primitive(*p),
                BaseType::String(_) => Node::String,
                BaseType::WString(_) => Node::WString,
                BaseType::Message(m) => Node::Struct(compile_struct(schema, m, cache)),
            };
            let node = match f.ty.array {
                ArrayKind::Single => elem,
                ArrayKind::Unbounded | ArrayKind::Bounded(_) => Node::Sequence(Box::new(elem)),
                ArrayKind::Fixed(n) => Node::Array(Box::new(elem), n),
            };
            (f.name.clone(), node)
        })
        .collect();
    let plan = Arc::new(StructPlan { fields });
    cache.insert(name.to_string(), plan.clone());
    plan
}

/// A float32 as the JSON number of its shortest decimal form.
pub fn f32_value(v: f32) -> Value {
    if !v.is_finite() {
        return Value::Null;
    }
    let mut buf = ryu::Buffer::new();
    let shortest: f64 = buf.format_finite(v).parse().unwrap_or(f64::from(v));
    Number::from_f64(shortest).map_or(Value::Null, Value::Number)
}

fn f64_value(v: f64) -> Value {
    Number::from_f64(v).map_or(Value::Null, Value::Number)
}

fn read_struct(plan: &StructPlan, r: &mut CdrReader<'_>, bytes: Bytes) -> Result<Value, CdrError> {
    if plan.fields.is_empty() {
        // An empty message is serialized as one uint8.
        r.u8()?;
        return Ok(Value::Object(Map::new()));
    }
    let mut map = Map::with_capacity(plan.fields.len());
    for (name, node) in &plan.fields {
        let v = read_node(node, r, bytes).map_err(|e| e.at(name))?;
        map.insert(name.clone(), v);
    }
    Ok(Value::Object(map))
}

fn read_primitive(p: Primitive, r: &mut CdrReader<'_>) -> Result<Value, CdrError> {
    use Primitive::*;
    Ok(match p {
        Bool => Value::Bool(r.bool()?),
        Byte | Char | UInt8 => Value::from(r.u8()?),
        Int8 => Value::from(r.i8()?),
        Int16 => Value::from(r.i16()?),
        UInt16 => Value::from(r.u16()?),
        Int32 => Value::from(r.i32()?),
        UInt32 => Value::from(r.u32()?),
        Int64 => Value::from(r.i64()?),
        UInt64 => Value::from(r.u64()?),
        Float32 => f32_value(r.f32()?),
        Float64 => f64_value(r.f64()?),
    })
}

fn read_node(node: &Node, r: &mut CdrReader<'_>, bytes: Bytes) -> Result<Value, CdrError> {
    match node {
        Node::Primitive(p) => read_primitive(*p, r),
        Node::String => Ok(Value::String(
            String::from_utf8_lossy(r.string_bytes()?).into_owned(),
        )),
        Node::WString => Err(CdrError::Unsupported {
            offset: r.offset(),
            what: "wstring",
        }),
        Node::Struct(s) => read_struct(s, r, bytes),
        Node::Sequence(elem) => {
            let n = r.count(elem.min_size())?;
            read_elements(elem, n, r, bytes)
        }
        Node::Array(elem, n) => read_elements(elem, *n, r, bytes),
    }
}

fn read_elements(
    elem: &Node,
    n: usize,
    r: &mut CdrReader<'_>,
    bytes: Bytes,
) -> Result<Value, CdrError> {
    if n == 0 {
        return Ok(Value::Array(Vec::new()));
    }
    if let (Bytes::Summary, Node::Primitive(Primitive::UInt8 | Primitive::Byte | Primitive::Char)) =
        (bytes, elem)
        && n > SUMMARY_OVER
    {
        let data = r.bytes(n, "byte array")?;
        let mut m = Map::new();
        m.insert("len".into(), Value::from(n));
        m.insert(
            "crc32".into(),
            Value::from(format!("{:08x}", crc32fast::hash(data))),
        );
        return Ok(Value::Object(m));
    }
    if let Node::Primitive(p) = elem {
        // Primitive elements align once, only when there are any.
        r.align(p.size())?;
    }
    // A fixed array's length comes from the schema: bound it by the bytes left too.
    let mut out = Vec::with_capacity(n.min(r.remaining() / elem.min_size() + 1));
    for i in 0..n {
        out.push(read_node(elem, r, bytes).map_err(|e| e.at(&format!("[{i}]")))?);
    }
    Ok(Value::Array(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::cdr::typed::encode;
    use rmf_dash_dataflows::model::ros::*;

    fn plan(root: &str, text: &str) -> Plan {
        Plan::compile(&MsgSchema::parse(root, text).unwrap())
    }

    #[test]
    fn decodes_nested_sequences_and_exact_integers() {
        let p = plan(
            "p/T",
            "uint64 big\nint8 neg\nfloat32 f\nfloat64[] empty\nuint8 after\nstring[2] names\nfloat32[3] xyz\n",
        );
        let mut w = crate::ingest::cdr::CdrWriter::new(RmfRelease::Jazzy);
        w.u64(u64::MAX);
        w.i8(-5);
        w.f32(0.1);
        w.u32(0); // empty float64[]: no alignment to 8
        w.u8(9);
        w.string("é");
        w.string("");
        w.f32(1.5);
        w.f32(-2.0);
        w.f32(f32::NAN);
        let v = p.decode(&w.finish()).unwrap();
        assert_eq!(
            v.to_string(),
            r#"{"big":18446744073709551615,"neg":-5,"f":0.1,"empty":[],"after":9,"names":["é",""],"xyz":[1.5,-2.0,null]}"#
        );
    }

    #[test]
    fn empty_message_is_one_byte() {
        let p = plan("std_msgs/Empty", "");
        assert_eq!(
            p.decode(&[0, 1, 0, 0, 0, 0, 0, 0]).unwrap().to_string(),
            "{}"
        );
    }

    #[test]
    fn errors_carry_the_field_path() {
        let p = plan(
            "p/T",
            "Inner[] items\n================================================================================\nMSG: p/Inner\nstring name\nuint32 v\n",
        );
        let mut w = crate::ingest::cdr::CdrWriter::new(RmfRelease::Jazzy);
        w.u32(2);
        w.string("a");
        w.u32(1);
        w.string("b");
        let bytes = w.finish();
        let err = p.decode(&bytes[..bytes.len() - 2]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "at items[1].v: offset 26: uint32 needs 6 bytes, only 0 left"
        );
    }

    #[test]
    fn agrees_with_typed_serde_json() {
        let d = DoorState {
            door_time: Time {
                sec: -1,
                nanosec: 5,
            },
            door_name: "door ✓".into(),
            current_mode: DoorMode { value: 4 },
        };
        let p = plan(
            "rmf_door_msgs/DoorState",
            "builtin_interfaces/Time door_time\nstring door_name\nDoorMode current_mode\n================================================================================\nMSG: rmf_door_msgs/DoorMode\nuint32 value\n",
        );
        let generic = p.decode(&encode(&d, RmfRelease::Jazzy)).unwrap();
        assert_eq!(generic.to_string(), serde_json::to_string(&d).unwrap());
    }
}
