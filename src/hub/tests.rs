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
    assert!(hub.subscribe(a.clone(), DOOR).is_ok());
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
    assert!(hub.subscribe(a.clone(), DOOR).is_ok());
    assert!(hub.subscribe(a.clone(), DOOR).is_ok());
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
    assert!(hub.subscribe(a.clone(), "/doors/later/state").is_ok());
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
    assert_eq!(
        hub.subscribe(a.clone(), "/doors/d1"),
        Err(SubscribeError::UnknownRoom)
    );
    assert_eq!(
        hub.subscribe(a, "/secret"),
        Err(SubscribeError::UnknownRoom)
    );
    assert_eq!(hub.sizes(), (0, 0, 0));
}

#[test]
fn a_retracted_condition_is_delivered_as_null() {
    let hub = Hub::new();
    let room = "/robots/f/r/battery_low";
    let a = Fake::new(1);
    hub.subscribe(a.clone(), room).expect("subscribed");
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
    hub.subscribe(slow.clone(), DOOR).expect("subscribed");
    hub.subscribe(fast.clone(), DOOR).expect("subscribed");
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
    hub.subscribe(slow.clone(), room).expect("subscribed");
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
    hub.subscribe(a.clone(), DOOR).expect("subscribed");
    hub.unsubscribe(1, DOOR);
    hub.apply(&batch(10, vec![change(DOOR, "1", 1)]));
    hub.subscribe(a.clone(), "/doors/d2/state")
        .expect("subscribed");
    hub.remove(1);
    hub.apply(&batch(20, vec![change("/doors/d2/state", "2", 1)]));
    assert!(a.got().is_empty());
    assert_eq!(hub.sizes().1, 0);
}

fn meta(seq: u64) -> Meta {
    Meta {
        seq,
        t: seq * 10,
        sent_ms: 7,
    }
}

#[test]
fn remote_values_keep_upstream_seqs_and_drop_duplicates_and_older_ones() {
    let hub = Hub::new();
    let a = Fake::new(1);
    hub.subscribe(a.clone(), DOOR).expect("subscribed");
    assert!(hub.apply_remote(DOOR, Some(raw("5")), meta(5)));
    assert!(
        !hub.apply_remote(DOOR, Some(raw("5")), meta(5)),
        "duplicate"
    );
    assert!(!hub.apply_remote(DOOR, Some(raw("4")), meta(4)), "older");
    assert!(hub.apply_remote(DOOR, None, meta(7)));
    assert!(!hub.apply_remote("/nope", Some(raw("1")), meta(9)));
    assert_eq!(
        a.got(),
        vec![
            (DOOR.into(), "5".into(), 5),
            (DOOR.into(), "null".into(), 7)
        ]
    );
    assert_eq!(
        hub.get(DOOR).map(|(s, v)| (s, v.is_none())),
        Some((7, true))
    );
    // A later subscriber gets the present state with the upstream seq.
    let b = Fake::new(2);
    hub.subscribe(b.clone(), DOOR).expect("subscribed");
    assert_eq!(b.got(), vec![(DOOR.into(), "null".into(), 7)]);
}

#[test]
fn remote_stream_events_are_delivered_and_markers_only_move_the_seq() {
    let hub = Hub::new();
    let room = "/alerts/requests";
    let a = Fake::new(1);
    hub.subscribe(a.clone(), room).expect("subscribed");
    assert!(hub.apply_remote(room, None, meta(10)));
    assert!(!hub.apply_remote(room, Some(raw("\"old\"")), meta(10)));
    assert!(hub.apply_remote(room, Some(raw("\"e11\"")), meta(11)));
    assert_eq!(a.got(), vec![(room.into(), "\"e11\"".into(), 11)]);
    assert_eq!(hub.tail(room).len(), 1);
}

#[test]
fn replicate_always_sends_the_present_state_first() {
    let hub = Hub::new();
    let link = Fake::new(1 << 63);
    // A room never seen: seq 0 without value.
    assert!(hub.replicate(link.clone(), "/doors/later/state", None));
    hub.apply(&batch(10, vec![change(DOOR, "1", 1)]));
    assert!(hub.replicate(link.clone(), DOOR, None));
    assert!(!hub.replicate(link.clone(), "/nope", None));
    hub.apply(&batch(
        20,
        vec![change(DOOR, "1", -1), change(DOOR, "2", 1)],
    ));
    assert_eq!(
        link.got(),
        vec![
            ("/doors/later/state".into(), "null".into(), 0),
            (DOOR.into(), "1".into(), 1),
            (DOOR.into(), "2".into(), 2)
        ]
    );
}

#[test]
fn replicate_resumes_a_stream_after_the_given_seq() {
    let hub = Hub::new();
    let room = "/alerts/requests";
    for i in 1..=5u64 {
        hub.apply(&batch(i, vec![change(room, &i.to_string(), 1)]));
    }
    // Fresh: only the marker (like a socket subscriber, no history).
    let fresh = Fake::new(1);
    hub.replicate(fresh.clone(), room, None);
    assert_eq!(fresh.got(), vec![(room.into(), "null".into(), 5)]);
    // Resuming after 3: the marker at 3, then events 4 and 5.
    let resume = Fake::new(2);
    hub.replicate(resume.clone(), room, Some(3));
    assert_eq!(
        resume.got(),
        vec![
            (room.into(), "null".into(), 3),
            (room.into(), "4".into(), 4),
            (room.into(), "5".into(), 5)
        ]
    );
    // Asking beyond the present: the marker at the present seq.
    let ahead = Fake::new(3);
    hub.replicate(ahead.clone(), room, Some(99));
    assert_eq!(ahead.got(), vec![(room.into(), "null".into(), 5)]);
}

/// Records interest changes.
#[derive(Default)]
struct Watch(Mutex<Vec<String>>);

impl Interest for Watch {
    fn changed(&self, room: &str) {
        self.0.lock().push(room.to_string());
    }
}

#[test]
fn interest_hears_first_and_last_subscribers_and_evict_forgets_unfollowed_rooms() {
    let hub = Hub::new();
    let watch = Arc::new(Watch::default());
    hub.set_interest(watch.clone());
    let (a, b) = (Fake::new(1), Fake::new(2));
    hub.subscribe(a.clone(), DOOR).expect("subscribed"); // first: heard
    hub.subscribe(b.clone(), DOOR).expect("subscribed"); // second: not heard
    hub.subscribe(a.clone(), "/doors/d2/state")
        .expect("subscribed"); // first: heard
    assert!(hub.has_subscribers(DOOR));
    hub.apply_remote(DOOR, Some(raw("1")), meta(1));
    assert!(!hub.evict(DOOR), "a followed room is kept");
    hub.unsubscribe(1, DOOR); // b remains
    hub.remove(2); // last of DOOR: heard
    hub.remove(1); // last of d2: heard
    assert!(!hub.has_subscribers(DOOR));
    assert_eq!(
        *watch.0.lock(),
        vec![DOOR, "/doors/d2/state", DOOR, "/doors/d2/state"]
    );
    assert!(hub.evict(DOOR));
    assert!(hub.get(DOOR).is_none());
    // d2 never had a value: freed with its last subscriber.
    assert_eq!(hub.sizes(), (0, 0, 0));
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
    hub.subscribe(sub.clone(), DOOR).expect("subscribed");
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

/// Writes every send to one log shared by several subscribers (the order across them).
struct Logged {
    id: u64,
    log: Arc<Mutex<Vec<(u64, String, u64)>>>,
}

impl Subscriber for Logged {
    fn id(&self) -> u64 {
        self.id
    }

    fn send(&self, room: &str, _: Option<&RawValue>, meta: Meta) -> Sent {
        self.log.lock().push((self.id, room.to_string(), meta.seq));
        Sent::Ok
    }
}

/// A batch's deliveries leave grouped by subscriber (so that a socket's share goes in one
/// write), each subscriber's in the batch's order, from the engine and from upstream alike.
#[test]
fn a_batch_is_sent_grouped_by_subscriber_in_order() {
    const D2: &str = "/doors/d2/state";
    const ALERTS: &str = "/alerts/requests";
    let hub = Hub::new();
    let log = Arc::new(Mutex::new(Vec::new()));
    for id in [2, 1] {
        for room in [DOOR, ALERTS, D2] {
            let sub = Arc::new(Logged {
                id,
                log: log.clone(),
            });
            assert!(hub.subscribe(sub, room).is_ok());
        }
    }
    hub.apply(&batch(
        10,
        vec![
            change(DOOR, "1", 1),
            change(ALERTS, "\"a\"", 1),
            change(D2, "1", 1),
            change(ALERTS, "\"b\"", 1),
        ],
    ));
    let sent = |id: u64, room: &str, seq: u64| (id, room.to_string(), seq);
    // Stream events as they come, then the state rooms' values after the batch.
    let want = |id| {
        [
            sent(id, ALERTS, 1),
            sent(id, ALERTS, 2),
            sent(id, DOOR, 1),
            sent(id, D2, 1),
        ]
    };
    let grouped: Vec<_> = want(1).into_iter().chain(want(2)).collect();
    assert_eq!(std::mem::take(&mut *log.lock()), grouped);
    let remote = [(D2, 5), (DOOR, 7), (D2, 6), (DOOR, 6)];
    let applied = hub.apply_remote_many(
        remote
            .iter()
            .map(|&(room, seq)| (room, Some(raw("2")), meta(seq))),
    );
    assert_eq!(applied, 3, "DOOR at 6 after 7 is older and dropped");
    let want = |id| [sent(id, D2, 5), sent(id, DOOR, 7), sent(id, D2, 6)];
    let grouped: Vec<_> = want(1).into_iter().chain(want(2)).collect();
    assert_eq!(*log.lock(), grouped);
}

/// Closed after its first delivery.
struct Closing(u64);

impl Subscriber for Closing {
    fn id(&self) -> u64 {
        self.0
    }

    fn send(&self, _: &str, _: Option<&RawValue>, _: Meta) -> Sent {
        Sent::Closed
    }
}

#[test]
fn a_room_that_never_had_a_value_is_freed_with_its_last_subscriber() {
    let hub = Hub::new();
    let (a, b) = (Fake::new(1), Fake::new(2));
    for i in 0..100 {
        hub.subscribe(a.clone(), &format!("/doors/ghost{i}/state"))
            .expect("subscribed");
    }
    hub.subscribe(b.clone(), "/doors/ghost0/state")
        .expect("subscribed");
    assert_eq!(hub.sizes(), (100, 101, 0));
    hub.unsubscribe(1, "/doors/ghost1/state");
    assert_eq!(hub.sizes(), (99, 100, 0));
    hub.remove(1);
    assert_eq!(hub.sizes(), (1, 1, 0), "ghost0 is still followed by b");
    hub.remove(2);
    assert_eq!(hub.sizes(), (0, 0, 0));
    // A room whose value went away is kept: a subscriber learns it ended (null).
    hub.apply(&batch(10, vec![change(DOOR, "1", 1)]));
    hub.apply(&batch(20, vec![change(DOOR, "1", -1)]));
    hub.subscribe(a.clone(), DOOR).expect("subscribed");
    hub.remove(1);
    assert_eq!(hub.sizes(), (1, 0, 0));
    // A subscriber whose transport closed leaves its never-seen room too.
    let room = "/doors/late/state";
    hub.subscribe(Arc::new(Closing(3)), room)
        .expect("subscribed");
    hub.apply(&batch(30, vec![change(room, "1", 1)]));
    assert_eq!(
        hub.get(room).map(|(seq, _)| seq),
        Some(1),
        "kept: it has a value now"
    );
    let ghost = "/doors/ghost/state";
    hub.subscribe(Arc::new(Closing(4)), ghost)
        .expect("subscribed");
    hub.subscribe(Arc::new(Closing(5)), ghost)
        .expect("subscribed");
    hub.apply(&batch(40, vec![change(room, "2", 1)]));
    assert!(
        hub.get(ghost).is_some(),
        "its subscribers had nothing to fail on"
    );
    hub.remove(4);
    hub.remove(5);
    assert!(hub.get(ghost).is_none());
}

#[test]
fn sticky_subscriptions_survive_being_freed() {
    let hub = Hub::new();
    let a = Fake::new(1);
    let room = "/doors/later/state";
    hub.subscribe(a.clone(), room).expect("subscribed");
    hub.unsubscribe(1, room);
    hub.subscribe(a.clone(), room).expect("subscribed");
    hub.apply(&batch(10, vec![change(room, "1", 1)]));
    assert_eq!(a.got(), vec![(room.into(), "1".into(), 1)]);
}

fn bounded(max_rooms: usize, max_rooms_per_client: usize) -> Hub {
    Hub::with_bounds(HubBounds {
        max_rooms,
        max_rooms_per_client,
        ..HubBounds::default()
    })
}

#[test]
fn a_client_follows_at_most_its_bound_of_rooms() {
    let hub = bounded(0, 3);
    let (a, b) = (Fake::new(1), Fake::new(2));
    for d in ["d1", "d2", "d3"] {
        hub.subscribe(a.clone(), &format!("/doors/{d}/state"))
            .expect("subscribed");
    }
    assert_eq!(
        hub.subscribe(a.clone(), "/doors/d4/state"),
        Err(SubscribeError::ClientRooms(3))
    );
    assert!(
        hub.subscribe(a.clone(), "/doors/d1/state").is_ok(),
        "already followed"
    );
    assert!(
        hub.subscribe(b.clone(), "/doors/d4/state").is_ok(),
        "per client"
    );
    hub.unsubscribe(1, "/doors/d3/state");
    assert!(hub.subscribe(a.clone(), "/doors/d4/state").is_ok());
    assert_eq!(hub.metrics.refused_client.load(Ordering::Relaxed), 1);
    assert_eq!(
        SubscribeError::ClientRooms(3).to_string(),
        "too many rooms for one client (at most 3: --max-rooms-per-client)"
    );
}

#[test]
fn a_full_hub_evicts_rooms_nobody_follows_in_tier_then_age_order() {
    // 100 rooms at most, evicted one at a time (1%).
    let hub = bounded(100, 0);
    let a = Fake::new(1);
    let door = |i: usize| format!("/doors/d{i}/state");
    // 10 followed rooms with values, 20 gone ones (value retracted), 20 stream rooms, 50 live.
    let mut changes = Vec::new();
    for i in 0..10 {
        changes.push(change(&door(i), "1", 1));
    }
    hub.apply(&batch(1, changes));
    for i in 0..10 {
        hub.subscribe(a.clone(), &door(i)).expect("subscribed");
    }
    let gone: Vec<_> = (10..30).map(door).collect();
    hub.apply(&batch(2, gone.iter().map(|r| change(r, "1", 1)).collect()));
    hub.apply(&batch(3, gone.iter().map(|r| change(r, "1", -1)).collect()));
    let log = |i: usize| format!("/tasks/t{i}/log");
    for i in 0..20 {
        hub.apply(&batch(10 + i as u64, vec![change(&log(i), "{}", 1)]));
    }
    for i in 30..80 {
        hub.apply(&batch(100 + i as u64, vec![change(&door(i), "1", 1)]));
    }
    assert_eq!(hub.sizes().0, 100);
    // New rooms from changes: the gone rooms go first, the oldest stream rooms next.
    for i in 80..110 {
        hub.apply(&batch(200, vec![change(&door(i), "1", 1)]));
    }
    assert_eq!(hub.sizes().0, 100);
    let evicted = |t: Tier| hub.metrics.evicted[t as usize].load(Ordering::Relaxed);
    assert_eq!(
        (
            evicted(Tier::Gone),
            evicted(Tier::Stream),
            evicted(Tier::Live)
        ),
        (20, 10, 0)
    );
    assert!(hub.get(&log(9)).is_none() && hub.get(&log(10)).is_some());
    // A subscription to a new room may not take a value's place.
    assert_eq!(
        hub.subscribe(a.clone(), "/doors/ghost/state"),
        Err(SubscribeError::ServerRooms(100))
    );
    assert_eq!(hub.metrics.refused_server.load(Ordering::Relaxed), 1);
    // More changes: the other stream rooms, then the oldest live values (never followed ones).
    for i in 110..125 {
        hub.apply(&batch(300, vec![change(&door(i), "1", 1)]));
    }
    assert_eq!((evicted(Tier::Stream), evicted(Tier::Live)), (20, 5));
    assert!(hub.get(&door(34)).is_none() && hub.get(&door(35)).is_some());
    assert!(
        (0..10).all(|i| hub.get(&door(i)).is_some()),
        "followed rooms stay"
    );
}

#[test]
fn a_room_made_again_after_an_eviction_never_goes_back_in_sequence() {
    let hub = bounded(2, 0);
    let log = "/tasks/t/log";
    for t in 1..=5 {
        hub.apply(&batch(t, vec![change(log, "{}", 1)]));
    }
    hub.apply(&batch(6, vec![change(DOOR, "1", 1)]));
    hub.apply(&batch(7, vec![change("/doors/d2/state", "1", 1)]));
    assert!(hub.get(log).is_none(), "the stream room went first");
    hub.apply(&batch(8, vec![change(log, "{}", 1)]));
    assert_eq!(hub.held(log), Some((6, 8)), "numbered after the 5 it had");
    assert!(hub.get(DOOR).is_none(), "the oldest value made space");
}

const TASK: &str = "/tasks/t1/state";
const TASK_LOG: &str = "/tasks/t1/log";

#[test]
fn an_evicted_task_retires_its_rooms_and_keeps_its_final_state_in_the_archive() {
    let hub = Hub::new();
    hub.apply(&batch(
        10,
        vec![change(TASK, "\"done\"", 1), change(TASK_LOG, "[1]", 1)],
    ));
    // The engine evicts the ended task: its state retracted alone.
    hub.apply(&batch(20, vec![change(TASK, "\"done\"", -1)]));
    assert_eq!(hub.sizes().0, 0, "both rooms left the hub");
    assert_eq!(hub.archived(), 1);
    assert_eq!(hub.metrics.retired.load(Ordering::Relaxed), 1);
    // A read and a subscriber still find the final state.
    assert_eq!(
        hub.get(TASK)
            .and_then(|(_, v)| v)
            .map(|v| v.get().to_string()),
        Some("\"done\"".to_string())
    );
    let a = Fake::new(1);
    hub.subscribe(a.clone(), TASK).expect("subscribed");
    assert_eq!(a.got(), vec![(TASK.into(), "\"done\"".into(), 1)]);
    // It leaves again with its subscriber, and comes back as new with a later number.
    hub.remove(1);
    assert_eq!(hub.sizes().0, 0);
    hub.apply(&batch(30, vec![change(TASK, "\"again\"", 1)]));
    let b = Fake::new(2);
    hub.subscribe(b.clone(), TASK).expect("subscribed");
    assert_eq!(b.got(), vec![(TASK.into(), "\"again\"".into(), 2)]);
}

#[test]
fn a_followed_task_keeps_its_final_state_when_evicted_and_a_replaced_one_is_not_retired() {
    let hub = Hub::new();
    let a = Fake::new(1);
    hub.subscribe(a.clone(), TASK).expect("subscribed");
    hub.apply(&batch(10, vec![change(TASK, "1", 1)]));
    hub.apply(&batch(
        20,
        vec![change(TASK, "1", -1), change(TASK, "2", 1)],
    ));
    assert_eq!(hub.metrics.retired.load(Ordering::Relaxed), 0);
    hub.apply(&batch(30, vec![change(TASK, "2", -1)]));
    // Nothing delivered for the eviction: the subscriber keeps "2".
    assert_eq!(
        a.got(),
        vec![(TASK.into(), "1".into(), 1), (TASK.into(), "2".into(), 2)]
    );
    assert_eq!(hub.sizes().0, 1, "held while followed");
    hub.unsubscribe(1, TASK);
    assert_eq!((hub.sizes().0, hub.archived()), (0, 1));
}

#[test]
fn a_revived_room_numbers_after_every_number_given() {
    let hub = Hub::new();
    // A retired room numbered 1 went before: the revived one numbers after it.
    hub.apply(&batch(10, vec![change("/tasks/t0/state", "1", 1)]));
    hub.apply(&batch(20, vec![change("/tasks/t0/state", "1", -1)]));
    let a = Fake::new(1);
    hub.subscribe(a.clone(), TASK).expect("subscribed");
    hub.revive(TASK, 5, raw("\"stored\""));
    assert_eq!(a.got(), vec![(TASK.into(), "\"stored\"".into(), 2)]);
    // A room that is not a retiring one is never revived.
    hub.revive("/doors/d2/state", 5, raw("1"));
    assert!(hub.get("/doors/d2/state").is_none());
}
