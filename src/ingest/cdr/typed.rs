//! Typed CDR codecs of the RMF messages: the fast decoding path, and the encoder the trace
//! generator writes with. Each struct's codec lists its fields in `.msg` order; the decoder module
//! only uses a typed codec when the topic's schema has exactly the built-in layout, and tests check
//! that typed and generic decoding agree on the same bytes.

use compact_str::CompactString;
use rmf_dash_dataflows::model::ros::*;

use super::{CdrError, CdrReader, CdrWriter, RmfRelease};

/// A value with a CDR wire form.
pub trait Cdr: Sized {
    /// `Some(size)` for primitives: a sequence of them aligns to `size` only when non-empty.
    const PRIMITIVE: Option<usize> = None;
    /// The fewest bytes one value takes on the wire (bounds sequence counts before allocating).
    const MIN_SIZE: usize = 1;

    fn read(r: &mut CdrReader<'_>) -> Result<Self, CdrError>;
    fn write(&self, w: &mut CdrWriter);

    /// Reads `n` consecutive values (alignment already done).
    fn read_n(r: &mut CdrReader<'_>, n: usize) -> Result<Vec<Self>, CdrError> {
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(Self::read(r)?);
        }
        Ok(v)
    }
}

/// Decodes a whole serialized message (header, body, trailing padding).
pub fn decode<T: Cdr>(payload: &[u8], release: RmfRelease) -> Result<T, CdrError> {
    let mut r = CdrReader::new(payload, release)?;
    let v = T::read(&mut r)?;
    r.finish()?;
    Ok(v)
}

/// Encodes a whole serialized message into `buf` (reused).
pub fn encode_into<T: Cdr>(value: &T, release: RmfRelease, buf: Vec<u8>) -> Vec<u8> {
    let mut w = CdrWriter::with_buffer(buf, release);
    value.write(&mut w);
    w.finish()
}

pub fn encode<T: Cdr>(value: &T, release: RmfRelease) -> Vec<u8> {
    encode_into(value, release, Vec::new())
}

macro_rules! prim {
    ($t:ty, $read:ident, $write:ident) => {
        impl Cdr for $t {
            const PRIMITIVE: Option<usize> = Some(std::mem::size_of::<$t>());
            const MIN_SIZE: usize = std::mem::size_of::<$t>();
            #[inline(always)]
            fn read(r: &mut CdrReader<'_>) -> Result<Self, CdrError> {
                r.$read()
            }
            #[inline(always)]
            fn write(&self, w: &mut CdrWriter) {
                w.$write(*self)
            }
        }
    };
}

prim!(bool, bool, bool);
prim!(i8, i8, i8);
prim!(i16, i16, i16);
prim!(u16, u16, u16);
prim!(i32, i32, i32);
prim!(u32, u32, u32);
prim!(i64, i64, i64);
prim!(u64, u64, u64);
prim!(f32, f32, f32);
prim!(f64, f64, f64);

impl Cdr for u8 {
    const PRIMITIVE: Option<usize> = Some(1);
    const MIN_SIZE: usize = 1;
    #[inline(always)]
    fn read(r: &mut CdrReader<'_>) -> Result<Self, CdrError> {
        r.u8()
    }
    #[inline(always)]
    fn write(&self, w: &mut CdrWriter) {
        w.u8(*self)
    }
    fn read_n(r: &mut CdrReader<'_>, n: usize) -> Result<Vec<Self>, CdrError> {
        r.bytes(n, "uint8[]").map(<[u8]>::to_vec)
    }
}

#[inline(always)]
fn lossy(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

impl Cdr for CompactString {
    const MIN_SIZE: usize = 4;
    #[inline(always)]
    fn read(r: &mut CdrReader<'_>) -> Result<Self, CdrError> {
        let b = r.string_bytes()?;
        Ok(match std::str::from_utf8(b) {
            Ok(s) => CompactString::new(s),
            Err(_) => CompactString::from(lossy(b)),
        })
    }
    #[inline(always)]
    fn write(&self, w: &mut CdrWriter) {
        w.string(self)
    }
}

impl Cdr for String {
    const MIN_SIZE: usize = 4;
    #[inline(always)]
    fn read(r: &mut CdrReader<'_>) -> Result<Self, CdrError> {
        Ok(lossy(r.string_bytes()?).into_owned())
    }
    #[inline(always)]
    fn write(&self, w: &mut CdrWriter) {
        w.string(self)
    }
}

impl<T: Cdr> Cdr for Vec<T> {
    const MIN_SIZE: usize = 4;
    #[inline(always)]
    fn read(r: &mut CdrReader<'_>) -> Result<Self, CdrError> {
        let n = r.count(T::MIN_SIZE)?;
        if n == 0 {
            return Ok(Vec::new());
        }
        if let Some(a) = T::PRIMITIVE {
            r.align(a)?;
        }
        T::read_n(r, n)
    }
    fn write(&self, w: &mut CdrWriter) {
        w.u32(self.len() as u32);
        if let (Some(a), false) = (T::PRIMITIVE, self.is_empty()) {
            w.align(a);
        }
        for v in self {
            v.write(w);
        }
    }
}

/// Implements [`Cdr`] for a struct from its fields in wire order.
macro_rules! cdr_struct {
    ($t:ty { $($f:ident),* $(,)? }) => {
        impl Cdr for $t {
            #[inline]
            fn read(r: &mut CdrReader<'_>) -> Result<Self, CdrError> {
                Ok(Self { $($f: Cdr::read(r)?),* })
            }
            #[inline]
            fn write(&self, w: &mut CdrWriter) {
                $(self.$f.write(w);)*
            }
        }
    };
}

cdr_struct!(Time { sec, nanosec });
cdr_struct!(DoorMode { value });
cdr_struct!(DoorState {
    door_time,
    door_name,
    current_mode
});
cdr_struct!(DoorRequest {
    request_time,
    requester_id,
    door_name,
    requested_mode
});
cdr_struct!(LiftState {
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
});
cdr_struct!(LiftRequest {
    lift_name,
    request_time,
    session_id,
    request_type,
    destination_floor,
    door_state
});
cdr_struct!(WorkcellState {
    time,
    guid,
    mode,
    request_guid_queue,
    seconds_remaining
});
cdr_struct!(DispenserRequestItem {
    type_guid,
    quantity,
    compartment_name
});
cdr_struct!(DispenserRequest {
    time,
    request_guid,
    target_guid,
    transporter_type,
    items
});
cdr_struct!(DispenserResult {
    time,
    request_guid,
    source_guid,
    status
});
cdr_struct!(Location {
    t,
    x,
    y,
    yaw,
    obey_approach_speed_limit,
    approach_speed_limit,
    level_name,
    index,
});
cdr_struct!(RobotState {
    name,
    model,
    task_id,
    seq,
    mode,
    battery_percent,
    location,
    path
});
cdr_struct!(FleetState { name, robots });
cdr_struct!(BeaconState {
    id,
    online,
    category,
    activated,
    level
});
cdr_struct!(EnumValue { value });
cdr_struct!(DeliveryAlert {
    id,
    category,
    tier,
    task_id,
    action,
    message
});
cdr_struct!(MutexGroupManualRelease {
    release_mutex_groups,
    fleet,
    robot
});
cdr_struct!(ApiRequest {
    json_msg,
    request_id
});
cdr_struct!(ApiResponse {
    type_,
    json_msg,
    request_id
});
cdr_struct!(AlertParameter { name, value });
cdr_struct!(Alert {
    id,
    title,
    subtitle,
    message,
    display,
    tier,
    responses_available,
    alert_parameters,
    task_id,
});
cdr_struct!(AlertResponse { id, response });
cdr_struct!(Param {
    name,
    type_,
    value_int,
    value_float,
    value_string,
    value_bool
});
cdr_struct!(GraphNode { x, y, name, params });
cdr_struct!(GraphEdge {
    v1_idx,
    v2_idx,
    params,
    edge_type
});
cdr_struct!(Graph {
    name,
    vertices,
    edges,
    params
});
cdr_struct!(AffineImage {
    name,
    x_offset,
    y_offset,
    yaw,
    scale,
    encoding,
    data
});
cdr_struct!(Place {
    name,
    x,
    y,
    yaw,
    position_tolerance,
    yaw_tolerance
});
cdr_struct!(Door {
    name,
    v1_x,
    v1_y,
    v2_x,
    v2_y,
    door_type,
    motion_range,
    motion_direction
});
cdr_struct!(Level {
    name,
    elevation,
    images,
    places,
    doors,
    nav_graphs,
    wall_graph
});
cdr_struct!(Lift {
    name,
    levels,
    doors,
    wall_graph,
    ref_x,
    ref_y,
    ref_yaw,
    width,
    depth
});
cdr_struct!(BuildingMap {
    name,
    levels,
    lifts
});
cdr_struct!(Bool { data });
cdr_struct!(StdString { data });

/// RobotMode's layout is the one thing that differs between RMF releases.
impl Cdr for RobotMode {
    #[inline]
    fn read(r: &mut CdrReader<'_>) -> Result<Self, CdrError> {
        let mode = r.u32()?;
        let mode_request_id = r.u64()?;
        let performing_action = match r.release {
            RmfRelease::Jazzy => None,
            RmfRelease::Kilted => Some(CompactString::read(r)?),
        };
        Ok(RobotMode {
            mode,
            mode_request_id,
            performing_action,
        })
    }
    #[inline]
    fn write(&self, w: &mut CdrWriter) {
        w.u32(self.mode);
        w.u64(self.mode_request_id);
        if w.release == RmfRelease::Kilted {
            w.string(self.performing_action.as_deref().unwrap_or(""));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn door_state_bytes() {
        let d = DoorState {
            door_time: Time { sec: 1, nanosec: 2 },
            door_name: "d1".into(),
            current_mode: DoorMode { value: 2 },
        };
        let bytes = encode(&d, RmfRelease::Jazzy);
        assert_eq!(
            bytes,
            [
                0, 1, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, b'd', b'1', 0, 0, 2, 0, 0, 0
            ]
        );
        assert_eq!(decode::<DoorState>(&bytes, RmfRelease::Jazzy).unwrap(), d);
    }

    #[test]
    fn empty_primitive_sequence_does_not_align() {
        // uint8 + empty uint8[] + current_floor..: LiftState with an empty available_modes keeps
        // current_mode right after the count.
        let l = LiftState {
            lift_name: "L".into(),
            available_modes: vec![],
            current_mode: 2,
            ..Default::default()
        };
        let bytes = encode(&l, RmfRelease::Jazzy);
        assert_eq!(decode::<LiftState>(&bytes, RmfRelease::Jazzy).unwrap(), l);
    }

    #[test]
    fn robot_mode_layouts_differ() {
        let mut fleet = FleetState {
            name: "f".into(),
            robots: vec![RobotState {
                name: "r".into(),
                mode: RobotMode {
                    mode: 2,
                    mode_request_id: 7,
                    performing_action: Some("".into()),
                },
                ..Default::default()
            }],
        };
        let kilted = encode(&fleet, RmfRelease::Kilted);
        assert_eq!(
            decode::<FleetState>(&kilted, RmfRelease::Kilted).unwrap(),
            fleet
        );
        assert!(decode::<FleetState>(&kilted, RmfRelease::Jazzy).is_err());
        fleet.robots[0].mode.performing_action = None;
        let jazzy = encode(&fleet, RmfRelease::Jazzy);
        assert_eq!(
            decode::<FleetState>(&jazzy, RmfRelease::Jazzy).unwrap(),
            fleet
        );
        assert!(decode::<FleetState>(&jazzy, RmfRelease::Kilted).is_err());
    }
}
