//! The `ros2msg` schema language: parses the `.msg` text that rosbag2 embeds in MCAP files (a root
//! definition, then for each dependency a line of `=` and `MSG: pkg/Type`) into a [`MsgSchema`]
//! that the CDR decoder compiles into a plan.
//!
//! What is parsed (the rosidl `.msg` grammar): primitive types, `string`/`wstring` with an optional
//! `<=N` bound, nested message types (qualified `pkg/Type` or `pkg/msg/Type`, or unqualified and
//! then resolved within the package of the definition that names them), arrays `T[]`, `T[N]`,
//! `T[<=N]`, constants `TYPE NAME=VALUE` and default values `TYPE name VALUE` (neither is
//! serialized: constants are kept for display, defaults are skipped), and `#` comments.

use std::collections::BTreeMap;
use std::fmt;

use thiserror::Error;

/// A parse or resolution error; `line` is 1-based within the whole schema text.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SchemaError {
    #[error("schema of {root}: line {line}: {message}")]
    Syntax {
        root: String,
        line: usize,
        message: String,
    },
    #[error("schema of {root}: type {missing} (used by {user}) is not defined")]
    Unresolved {
        root: String,
        missing: String,
        user: String,
    },
    #[error("schema of {root}: type {name} contains itself")]
    Recursive { root: String, name: String },
    #[error("type name {0:?} is not of the form pkg/Type or pkg/msg/Type")]
    BadTypeName(String),
}

/// A primitive CDR type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Primitive {
    Bool,
    Byte,
    Char,
    Int8,
    UInt8,
    Int16,
    UInt16,
    Int32,
    UInt32,
    Int64,
    UInt64,
    Float32,
    Float64,
}

impl Primitive {
    /// Size on the wire, which is also its alignment.
    pub fn size(self) -> usize {
        use Primitive::*;
        match self {
            Bool | Byte | Char | Int8 | UInt8 => 1,
            Int16 | UInt16 => 2,
            Int32 | UInt32 | Float32 => 4,
            Int64 | UInt64 | Float64 => 8,
        }
    }

    fn parse(word: &str) -> Option<Self> {
        use Primitive::*;
        Some(match word {
            "bool" => Bool,
            "byte" => Byte,
            "char" => Char,
            "int8" => Int8,
            "uint8" => UInt8,
            "int16" => Int16,
            "uint16" => UInt16,
            "int32" => Int32,
            "uint32" => UInt32,
            "int64" => Int64,
            "uint64" => UInt64,
            "float32" => Float32,
            "float64" => Float64,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        use Primitive::*;
        match self {
            Bool => "bool",
            Byte => "byte",
            Char => "char",
            Int8 => "int8",
            UInt8 => "uint8",
            Int16 => "int16",
            UInt16 => "uint16",
            Int32 => "int32",
            UInt32 => "uint32",
            Int64 => "int64",
            UInt64 => "uint64",
            Float32 => "float32",
            Float64 => "float64",
        }
    }
}

/// The element type of a field.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BaseType {
    Primitive(Primitive),
    /// `string` or `string<=N` (the bound is not checked on decode: it is a publisher's promise).
    String(Option<usize>),
    WString(Option<usize>),
    /// A nested message, by its normalized name `pkg/Type`.
    Message(String),
}

/// Whether and how a field is an array.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArrayKind {
    Single,
    /// `T[]`: a uint32 count, then the elements.
    Unbounded,
    /// `T[<=N]`: serialized like `T[]`.
    Bounded(usize),
    /// `T[N]`: exactly N elements, no count.
    Fixed(usize),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldType {
    pub base: BaseType,
    pub array: ArrayKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub ty: FieldType,
}

/// A constant: part of the type's documentation, never serialized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constant {
    pub name: String,
    pub ty: FieldType,
    pub value: String,
}

/// One message definition.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MsgDef {
    pub fields: Vec<Field>,
    pub constants: Vec<Constant>,
}

/// A root message type and every type it depends on, resolved and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsgSchema {
    /// Normalized root name, `pkg/Type`.
    pub root: String,
    pub types: BTreeMap<String, MsgDef>,
}

/// Normalizes `pkg/msg/Type` and `pkg/Type` to `pkg/Type`.
pub fn normalize_type_name(name: &str) -> Result<String, SchemaError> {
    let parts: Vec<&str> = name.trim().split('/').collect();
    let ok = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    match parts.as_slice() {
        [pkg, ty] | [pkg, "msg", ty] if ok(pkg) && ok(ty) => Ok(format!("{pkg}/{ty}")),
        _ => Err(SchemaError::BadTypeName(name.to_string())),
    }
}

/// Definitions that a recording may reference without embedding (old ROS 1 style names, and the
/// builtin_interfaces every ROS 2 schema assumes).
const IMPLICIT: &[(&str, &str)] = &[
    ("builtin_interfaces/Time", "int32 sec\nuint32 nanosec\n"),
    ("builtin_interfaces/Duration", "int32 sec\nuint32 nanosec\n"),
];

impl MsgSchema {
    /// Parses rosbag2's `ros2msg` schema text for the root type `root` (`pkg/msg/Type`).
    pub fn parse(root: &str, text: &str) -> Result<Self, SchemaError> {
        let root = normalize_type_name(root)?;
        let mut types = BTreeMap::new();
        let mut current = root.clone();
        let mut body: Vec<(usize, &str)> = Vec::new();
        let syntax = |line: usize, message: String| SchemaError::Syntax {
            root: root.clone(),
            line,
            message,
        };
        let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l)).peekable();
        while let Some((n, line)) = lines.next() {
            let t = line.trim();
            if t.len() >= 3 && t.bytes().all(|b| b == b'=') {
                Self::finish(&root, &current, &body, &mut types)?;
                body.clear();
                // The next non-empty line names the dependency.
                let (m, header) = loop {
                    match lines.next() {
                        Some((_, l)) if l.trim().is_empty() => continue,
                        Some((m, l)) => break (m, l.trim()),
                        None => return Err(syntax(n, "separator without a MSG: line".into())),
                    }
                };
                current = match header.strip_prefix("MSG:") {
                    Some(name) => {
                        normalize_type_name(name).map_err(|e| syntax(m, e.to_string()))?
                    }
                    None if header.starts_with("IDL:") => {
                        return Err(syntax(m, "IDL definitions are not supported".into()));
                    }
                    None => {
                        return Err(syntax(
                            m,
                            format!("expected `MSG: pkg/Type`, got {header:?}"),
                        ));
                    }
                };
                if types.contains_key(&current) || current == root {
                    return Err(syntax(m, format!("{current} is defined twice")));
                }
            } else {
                body.push((n, line));
            }
        }
        Self::finish(&root, &current, &body, &mut types)?;
        for (name, def) in IMPLICIT {
            if !types.contains_key(*name) {
                let parsed = parse_def(name, def.lines().enumerate().map(|(i, l)| (i + 1, l)))
                    .map_err(|(line, message)| syntax(line, message))?;
                types.insert(name.to_string(), parsed);
            }
        }
        let schema = MsgSchema { root, types };
        schema.check()?;
        Ok(schema)
    }

    fn finish(
        root: &str,
        name: &str,
        body: &[(usize, &str)],
        types: &mut BTreeMap<String, MsgDef>,
    ) -> Result<(), SchemaError> {
        let def = parse_def(name, body.iter().copied()).map_err(|(line, message)| {
            SchemaError::Syntax {
                root: root.to_string(),
                line,
                message,
            }
        })?;
        types.insert(name.to_string(), def);
        Ok(())
    }

    /// Every referenced type is defined and no type contains itself.
    fn check(&self) -> Result<(), SchemaError> {
        for (name, def) in &self.types {
            for f in &def.fields {
                if let BaseType::Message(m) = &f.ty.base
                    && !self.types.contains_key(m)
                {
                    return Err(SchemaError::Unresolved {
                        root: self.root.clone(),
                        missing: m.clone(),
                        user: name.clone(),
                    });
                }
            }
        }
        // Depth-first search for cycles from the root.
        fn visit<'a>(
            s: &'a MsgSchema,
            name: &'a str,
            stack: &mut Vec<&'a str>,
        ) -> Result<(), SchemaError> {
            if stack.contains(&name) {
                return Err(SchemaError::Recursive {
                    root: s.root.clone(),
                    name: name.to_string(),
                });
            }
            stack.push(name);
            if let Some(def) = s.types.get(name) {
                for f in &def.fields {
                    if let BaseType::Message(m) = &f.ty.base {
                        visit(s, m, stack)?;
                    }
                }
            }
            stack.pop();
            Ok(())
        }
        visit(self, &self.root, &mut Vec::new())
    }

    /// The root definition.
    pub fn root_def(&self) -> &MsgDef {
        // `parse` always inserts the root.
        &self.types[&self.root]
    }

    /// Structural identity with another schema: the same wire layout and the same field names,
    /// ignoring constants, comments and the order of dependency definitions.
    pub fn same_layout(&self, other: &MsgSchema) -> bool {
        fn eq(a: &MsgSchema, an: &str, b: &MsgSchema, bn: &str) -> bool {
            let (Some(da), Some(db)) = (a.types.get(an), b.types.get(bn)) else {
                return false;
            };
            da.fields.len() == db.fields.len()
                && da.fields.iter().zip(&db.fields).all(|(fa, fb)| {
                    fa.name == fb.name
                        && fa.ty.array == fb.ty.array
                        && match (&fa.ty.base, &fb.ty.base) {
                            (BaseType::Message(ma), BaseType::Message(mb)) => eq(a, ma, b, mb),
                            (x, y) => x == y,
                        }
                })
        }
        eq(self, &self.root, other, &other.root)
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.base {
            BaseType::Primitive(p) => f.write_str(p.name())?,
            BaseType::String(None) => f.write_str("string")?,
            BaseType::String(Some(n)) => write!(f, "string<={n}")?,
            BaseType::WString(None) => f.write_str("wstring")?,
            BaseType::WString(Some(n)) => write!(f, "wstring<={n}")?,
            BaseType::Message(m) => f.write_str(m)?,
        }
        match self.array {
            ArrayKind::Single => Ok(()),
            ArrayKind::Unbounded => f.write_str("[]"),
            ArrayKind::Bounded(n) => write!(f, "[<={n}]"),
            ArrayKind::Fixed(n) => write!(f, "[{n}]"),
        }
    }
}

/// Parses one definition (no dependency sections) of the type `name` (`pkg/Type`), without
/// resolving the types it references.
pub fn parse_definition(name: &str, text: &str) -> Result<MsgDef, SchemaError> {
    let name = normalize_type_name(name)?;
    parse_def(&name, text.lines().enumerate().map(|(i, l)| (i + 1, l))).map_err(
        |(line, message)| SchemaError::Syntax {
            root: name.clone(),
            line,
            message,
        },
    )
}

/// Parses one definition's lines; errors carry the line number.
fn parse_def<'a>(
    name: &str,
    lines: impl Iterator<Item = (usize, &'a str)>,
) -> Result<MsgDef, (usize, String)> {
    let package = name.split('/').next().unwrap_or_default();
    let mut def = MsgDef::default();
    for (n, raw) in lines {
        let line = strip_comment(raw).trim();
        if line.is_empty() {
            continue;
        }
        let (ty_word, rest) = split_word(line);
        let ty = parse_type(ty_word, package).map_err(|m| (n, m))?;
        let rest = rest.trim_start();
        // `NAME=VALUE` (constant) or `name [default]`.
        let name_end = rest
            .find(|c: char| c.is_whitespace() || c == '=')
            .unwrap_or(rest.len());
        let field_name = &rest[..name_end];
        if !valid_identifier(field_name) {
            return Err((n, format!("invalid field name {field_name:?} in {raw:?}")));
        }
        let after = rest[name_end..].trim_start();
        if let Some(value) = after.strip_prefix('=') {
            if ty.array != ArrayKind::Single || matches!(ty.base, BaseType::Message(_)) {
                return Err((
                    n,
                    format!("constant {field_name} must be of a primitive or string type"),
                ));
            }
            let value = value.trim();
            let value = match ty.base {
                // String constants take the raw line: a `#` inside quotes is not a comment.
                BaseType::String(_) | BaseType::WString(_) => unquote(constant_text(raw)),
                _ if value.is_empty() => {
                    return Err((n, format!("constant {field_name} has no value")));
                }
                _ => value.to_string(),
            };
            def.constants.push(Constant {
                name: field_name.to_string(),
                ty,
                value,
            });
        } else {
            if def.fields.iter().any(|f| f.name == field_name) {
                return Err((n, format!("field {field_name} is defined twice")));
            }
            // A default value may follow; it is not part of the wire format.
            def.fields.push(Field {
                name: field_name.to_string(),
                ty,
            });
        }
    }
    Ok(def)
}

/// Removes a `#` comment that is not inside a quoted string.
fn strip_comment(line: &str) -> &str {
    let mut quote: Option<char> = None;
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '#') => return &line[..i],
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            _ => {}
        }
    }
    line
}

/// The value text of a string constant: everything after the first `=`.
fn constant_text(raw: &str) -> &str {
    let value = raw.split_once('=').map(|(_, v)| v).unwrap_or_default();
    strip_comment(value).trim()
}

fn unquote(s: &str) -> String {
    let b = s.as_bytes();
    if b.len() >= 2 && (b[0] == b'"' || b[0] == b'\'') && b[b.len() - 1] == b[0] {
        s[1..s.len() - 1].to_string()
    } else {
        s.to_string()
    }
}

fn split_word(s: &str) -> (&str, &str) {
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, ""),
    }
}

fn valid_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn parse_usize(s: &str, what: &str) -> Result<usize, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("invalid {what} {s:?}"))
}

/// Parses a type word such as `uint8[<=3]`, `string<=10[]` or `geometry_msgs/Point[2]`.
fn parse_type(word: &str, package: &str) -> Result<FieldType, String> {
    let (base, array) = match word.find('[') {
        Some(i) => {
            let Some(inner) = word[i + 1..].strip_suffix(']') else {
                return Err(format!("unterminated array in type {word:?}"));
            };
            let array = if inner.is_empty() {
                ArrayKind::Unbounded
            } else if let Some(n) = inner.strip_prefix("<=") {
                ArrayKind::Bounded(parse_usize(n, "array bound")?)
            } else {
                ArrayKind::Fixed(parse_usize(inner, "array size")?)
            };
            (&word[..i], array)
        }
        None => (word, ArrayKind::Single),
    };
    let base = if let Some(p) = Primitive::parse(base) {
        BaseType::Primitive(p)
    } else if base == "string" {
        BaseType::String(None)
    } else if let Some(n) = base.strip_prefix("string<=") {
        BaseType::String(Some(parse_usize(n, "string bound")?))
    } else if base == "wstring" {
        BaseType::WString(None)
    } else if let Some(n) = base.strip_prefix("wstring<=") {
        BaseType::WString(Some(parse_usize(n, "wstring bound")?))
    } else if base == "time" || base == "duration" {
        // ROS 1 spellings that some converters still emit.
        let ty = if base == "time" { "Time" } else { "Duration" };
        BaseType::Message(format!("builtin_interfaces/{ty}"))
    } else if base == "Header" {
        BaseType::Message("std_msgs/Header".to_string())
    } else if base.contains('/') {
        BaseType::Message(normalize_type_name(base).map_err(|e| e.to_string())?)
    } else if valid_identifier(base) {
        BaseType::Message(format!("{package}/{base}"))
    } else {
        return Err(format!("invalid type {word:?}"));
    };
    Ok(FieldType { base, array })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEP: &str =
        "================================================================================";

    #[test]
    fn parses_door_state_with_dependencies() {
        let text = format!(
            "builtin_interfaces/Time door_time\nstring door_name\nDoorMode current_mode\n\n{SEP}\nMSG: rmf_door_msgs/DoorMode\nuint32 value\nuint32 MODE_CLOSED=0 # closed\nuint32 MODE_OPEN = 2\n{SEP}\nMSG: builtin_interfaces/Time\n# comment\nint32 sec\nuint32 nanosec\n"
        );
        let s = MsgSchema::parse("rmf_door_msgs/msg/DoorState", &text).unwrap();
        assert_eq!(s.root, "rmf_door_msgs/DoorState");
        let root = s.root_def();
        assert_eq!(
            root.fields
                .iter()
                .map(|f| f.name.as_str())
                .collect::<Vec<_>>(),
            ["door_time", "door_name", "current_mode"]
        );
        assert_eq!(
            root.fields[2].ty.base,
            BaseType::Message("rmf_door_msgs/DoorMode".into())
        );
        let mode = &s.types["rmf_door_msgs/DoorMode"];
        assert_eq!(mode.fields.len(), 1);
        assert_eq!(mode.constants.len(), 2);
        assert_eq!(mode.constants[1].value, "2");
    }

    #[test]
    fn parses_arrays_bounds_defaults_and_string_constants() {
        let text = "uint8[] a\nint32[4] b\nfloat64[<=3] c\nstring<=10 d \"x # y\"\nstring<=5[<=2] e\nbool f true\nstring G=\"a # b\" # trailing\nint8 H=-3\n";
        let s = MsgSchema::parse("p/msg/T", text).unwrap();
        let d = s.root_def();
        let tys: Vec<String> = d.fields.iter().map(|f| f.ty.to_string()).collect();
        assert_eq!(
            tys,
            [
                "uint8[]",
                "int32[4]",
                "float64[<=3]",
                "string<=10",
                "string<=5[<=2]",
                "bool"
            ]
        );
        assert_eq!(d.constants[0].value, "a # b");
        assert_eq!(d.constants[1].value, "-3");
    }

    #[test]
    fn builtin_time_is_implicit_and_ros1_spellings_map() {
        let s = MsgSchema::parse("p/T", "time t\nbuiltin_interfaces/Duration d\n").unwrap();
        assert!(s.types.contains_key("builtin_interfaces/Time"));
        assert!(s.types.contains_key("builtin_interfaces/Duration"));
    }

    #[test]
    fn errors_name_the_line() {
        let err = MsgSchema::parse("p/T", "uint32 ok\nuint32[ broken\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "schema of p/T: line 2: unterminated array in type \"uint32[\""
        );
        let err = MsgSchema::parse("p/T", "uint32 9bad\n").unwrap_err();
        assert!(
            err.to_string()
                .contains("line 1: invalid field name \"9bad\""),
            "{err}"
        );
        let err = MsgSchema::parse("p/T", "Missing m\n").unwrap_err();
        assert_eq!(
            err,
            SchemaError::Unresolved {
                root: "p/T".into(),
                missing: "p/Missing".into(),
                user: "p/T".into()
            }
        );
        let err = MsgSchema::parse("p/T", &format!("uint8 a\n{SEP}\nNOT A HEADER\n")).unwrap_err();
        assert!(
            err.to_string().contains("line 3: expected `MSG: pkg/Type`"),
            "{err}"
        );
        assert!(matches!(
            MsgSchema::parse("nonsense", "uint8 a"),
            Err(SchemaError::BadTypeName(_))
        ));
    }

    #[test]
    fn detects_recursion() {
        let text = format!("B b\n{SEP}\nMSG: p/B\nT t\n");
        assert_eq!(
            MsgSchema::parse("p/T", &text).unwrap_err(),
            SchemaError::Recursive {
                root: "p/T".into(),
                name: "p/T".into()
            }
        );
    }

    #[test]
    fn same_layout_ignores_constants_and_comments() {
        let a = MsgSchema::parse("p/T", "uint32 a # x\nuint32 C=1\n").unwrap();
        let b = MsgSchema::parse("p/msg/T", "uint32 a\n").unwrap();
        let c = MsgSchema::parse("p/T", "uint64 a\n").unwrap();
        assert!(a.same_layout(&b));
        assert!(!a.same_layout(&c));
    }
}
