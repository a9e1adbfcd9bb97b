//! Hub semantics on fake subscribers: sticky values, sequence numbers, idempotent subscription,
//! rooms that do not exist yet, coalescing for slow subscribers, stream tails.

use std::sync::atomic::AtomicBool;

use rmf_dash_dataflows::model::input::Payload;

use super::*;

/// Records deliveries; `full` makes every send fail as a full buffer.
struct Fake {
    id: u64,
    got: Mutex<Vec<(String, String, u64)>>,
    full: AtomicBool,
}

impl Fake {
    fn new(id: u64) -> Arc<Fake> {
        Arc::new(Fake {
            id,
            got: Mutex::new(Vec::new()),
            full: AtomicBool::new(false),
        })
    }

    fn got(&self) -> Vec<(String, String, u64)> {
        self.got.lock().clone()
    }
}

impl Subscriber for Fake {
    fn id(&self) -> u64 {
        self.id
    }

    fn send(&self, room: &str, value: Option<&RawValue>, meta: Meta) -> Sent {
        if self.full.load(Ordering::Relaxed) {
            return Sent::Full;
        }
        let v = value.map_or("null".to_string(), |v| v.get().to_string());
        self.got.lock().push((room.to_string(), v, meta.seq));
        Sent::Ok
    }
}

fn change(room: &str, value: &str, diff: isize) -> (Output, isize) {
    (Output::new(room.into(), Payload(value.into())), diff)
}

fn batch(time: Time, changes: Vec<(Output, isize)>) -> Batch {
    Batch { time, changes }
}

const DOOR: &str = "/doors/d1/state";

#[test]
fn sticky_value_first_then_every_change_in_sequence() {
    let hub = Hub::new();
    hub.apply(&batch(10, vec![change(DOOR, "1", 1)]));
    hub.apply(&batch(
        20,
        vec![change(DOOR, "1", -1), change(DOOR, "2", 1)],
    ));
    let a = Fake::new(1);
    assert!(hub.subscribe(a.clone(), DOOR));
    hub.apply(&batch(
        30,
        vec![change(DOOR, "2", -1), change(DOOR, "3", 1)],
    ));
    assert_eq!(
        a.got(),
        vec![(DOOR.into(), "2".into(), 2), (DOOR.into(), "3".into(), 3)]
    );
}

#[test]
fn double_subscribe_delivers_once() {
    let hub = Hub::new();
    hub.apply(&batch(10, vec![change(DOOR, "1", 1)]));
    let a = Fake::new(1);
    assert!(hub.subscribe(a.clone(), DOOR));
    assert!(hub.subscribe(a.clone(), DOOR));
    hub.apply(&batch(
        20,
        vec![change(DOOR, "1", -1), change(DOOR, "2", 1)],
    ));
    assert_eq!(
        a.got(),
        vec![(DOOR.into(), "1".into(), 1), (DOOR.into(), "2".into(), 2)]
    );
}

#[test]
fn a_room_without_entity_yet_gets_the_first_value() {
    let hub = Hub::new();
    let a = Fake::new(1);
    assert!(hub.subscribe(a.clone(), "/doors/later/state"));
    assert!(a.got().is_empty());
    hub.apply(&batch(
        10,
        vec![change("/doors/later/state", "{\"x\":1}", 1)],
    ));
    assert_eq!(
        a.got(),
        vec![("/doors/later/state".into(), "{\"x\":1}".into(), 1)]
    );
}

#[test]
fn unknown_rooms_are_refused_and_change_nothing() {
    let hub = Hub::new();
    let a = Fake::new(1);
    assert!(!hub.subscribe(a.clone(), "/doors/d1"));
    assert!(!hub.subscribe(a, "/secret"));
    assert_eq!(hub.sizes(), (0, 0, 0));
}

#[test]
fn a_retracted_condition_is_delivered_as_null() {
    let hub = Hub::new();
    let room = "/robots/f/r/battery_low";
    let a = Fake::new(1);
    hub.subscribe(a.clone(), room);
    hub.apply(&batch(10, vec![change(room, "{\"low\":1}", 1)]));
    hub.apply(&batch(20, vec![change(room, "{\"low\":1}", -1)]));
    assert_eq!(
        a.got(),
        vec![
            (room.into(), "{\"low\":1}".into(), 1),
            (room.into(), "null".into(), 2)
        ]
    );
    assert_eq!(
        hub.get(room).map(|(seq, v)| (seq, v.is_none())),
        Some((2, true))
    );
}

#[test]
fn a_slow_subscriber_gets_the_latest_value_and_never_stalls_others() {
    let hub = Hub::new();
    let slow = Fake::new(1);
    let fast = Fake::new(2);
    hub.subscribe(slow.clone(), DOOR);
    hub.subscribe(fast.clone(), DOOR);
    slow.full.store(true, Ordering::Relaxed);
    for (t, v) in [(10, "1"), (20, "2"), (30, "3")] {
        let mut changes = Vec::new();
        if t > 10 {
            changes.push(change(DOOR, &((t / 10 - 1).to_string()), -1));
        }
        changes.push(change(DOOR, v, 1));
        hub.apply(&batch(t, changes));
    }
    assert_eq!(fast.got().len(), 3);
    assert!(slow.got().is_empty());
    assert_eq!(hub.sizes().2, 1);
    slow.full.store(false, Ordering::Relaxed);
    hub.flush();
    // Coalesced: only the latest value, with its sequence number.
    assert_eq!(slow.got(), vec![(DOOR.into(), "3".into(), 3)]);
    assert_eq!(hub.sizes().2, 0);
    assert_eq!(hub.metrics.coalesced.load(Ordering::Relaxed), 1);
}

#[test]
fn a_slow_stream_subscriber_gets_the_events_still_in_the_tail() {
    let hub = Hub::new();
    let room = "/alerts/requests";
    let slow = Fake::new(1);
    hub.subscribe(slow.clone(), room);
    hub.apply(&batch(10, vec![change(room, "0", 1)]));
    slow.full.store(true, Ordering::Relaxed);
    for i in 1..=(STREAM_TAIL as u64 + 10) {
        hub.apply(&batch(10 + i, vec![change(room, &i.to_string(), 1)]));
    }
    slow.full.store(false, Ordering::Relaxed);
    hub.flush();
    let got = slow.got();
    // Event 0 arrived; 1..=10 left the tail (lost, counted); the rest arrive in order.
    assert_eq!(got.len(), 1 + STREAM_TAIL);
    assert_eq!(got[1].2, 12);
    assert_eq!(got.last().map(|g| g.2), Some(STREAM_TAIL as u64 + 11));
    assert_eq!(hub.metrics.lost.load(Ordering::Relaxed), 10);
}

#[test]
fn unsubscribe_and_remove_stop_deliveries() {
    let hub = Hub::new();
    let a = Fake::new(1);
    hub.subscribe(a.clone(), DOOR);
    hub.unsubscribe(1, DOOR);
    hub.apply(&batch(10, vec![change(DOOR, "1", 1)]));
    hub.subscribe(a.clone(), "/doors/d2/state");
    hub.remove(1);
    hub.apply(&batch(20, vec![change("/doors/d2/state", "2", 1)]));
    assert!(a.got().is_empty());
    assert_eq!(hub.sizes().1, 0);
}

#[test]
fn seeded_rooms_are_served_and_numbered_after_their_stored_seq() {
    let hub = Hub::new();
    let seeded = hub.seed([
        (DOOR.to_string(), 5, 100, Some(raw("{\"m\":1}"))),
        ("/alerts/requests".to_string(), 3, 90, Some(raw("{}"))),
        ("/not/a/room".to_string(), 1, 1, None),
    ]);
    assert_eq!(seeded, 2);
    let sub = Fake::new(1);
    hub.subscribe(sub.clone(), DOOR);
    assert_eq!(sub.got(), vec![(DOOR.into(), "{\"m\":1}".into(), 5)]);
    // The stored record is retracted like one the engine sent.
    let seqs = hub.apply_with_seqs(&batch(
        110,
        vec![
            change(DOOR, "{\"m\":1}", -1),
            change(DOOR, "{\"m\":2}", 1),
            change("/alerts/requests", "{\"id\":\"a\"}", 1),
            change("/alerts/requests", "{\"id\":\"b\"}", 1),
        ],
    ));
    let seqs: Vec<(String, u64)> = seqs.into_iter().map(|(r, s)| (r.to_string(), s)).collect();
    assert_eq!(seqs, vec![("/alerts/requests".into(), 5), (DOOR.into(), 6)]);
    assert_eq!(
        hub.get(DOOR)
            .map(|(s, v)| (s, v.map(|v| v.get().to_string()))),
        Some((6, Some("{\"m\":2}".into())))
    );
}
