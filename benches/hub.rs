//! The hub's hot paths: fan-out of one change of a fleet state room to 1,000 subscribers (the
//! hub's own work: sequence, sticky value, one `send` per subscriber, here a counter), and the
//! socket.io encoding of one delivery (`[payload, {seq, t, sent_ms}]` as socketioxide serializes
//! the event arguments), with a plain copy of the payload bytes as the baseline.
//!
//! `cargo bench --bench hub`; criterion prints deliveries (elements)/s and bytes/s.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::value::RawValue;

use rmf_dash::engine::Batch;
use rmf_dash::hub::{Hub, Meta, Sent, Subscriber};
use rmf_dash_dataflows::derived::Output;
use rmf_dash_dataflows::model::input::Payload;

/// A subscriber that only counts what it is sent.
struct Counter {
    id: u64,
    sent: AtomicU64,
}

impl Subscriber for Counter {
    fn id(&self) -> u64 {
        self.id
    }

    fn send(&self, _room: &str, value: Option<&RawValue>, meta: Meta) -> Sent {
        black_box((value, meta));
        self.sent.fetch_add(1, Ordering::Relaxed);
        Sent::Ok
    }
}

/// A fleet adapter's fleet state with 20 robots (about 6 KB of JSON).
fn fleet_state() -> String {
    let robots: serde_json::Map<String, serde_json::Value> = (0..20)
        .map(|i| {
            (
                format!("r{i}"),
                serde_json::json!({"name": format!("r{i}"), "status": "working",
                    "task_id": format!("delivery.dispatch-{i:010x}"), "battery": 0.75,
                    "location": {"map": "L1", "x": 12.5 + f64::from(i), "y": -40.25, "yaw": 1.57},
                    "issues": [], "commission": {"dispatch_tasks": true,
                    "direct_tasks": true, "idle_behavior": true}, "unix_millis_time": 1_767_600_000_000u64}),
            )
        })
        .collect();
    serde_json::json!({"name": "deliveryRobot_007", "robots": robots}).to_string()
}

fn fanout(c: &mut Criterion) {
    const SUBSCRIBERS: u64 = 1_000;
    let room = "/fleets/deliveryRobot_007/state";
    let hub = Hub::new();
    for id in 0..SUBSCRIBERS {
        let sub = Arc::new(Counter {
            id,
            sent: AtomicU64::new(0),
        });
        hub.subscribe(sub, room).expect("a room the hub serves");
    }
    let value = fleet_state();
    let mut time = 0;
    let mut g = c.benchmark_group("hub");
    g.throughput(Throughput::Elements(SUBSCRIBERS));
    g.bench_function(
        "fan-out of one fleet state change to 1000 subscribers",
        |b| {
            b.iter(|| {
                time += 1;
                // A new value each time (the hub drops a value equal to the present one).
                let v = format!("{{\"n\":{time},{}", &value[1..]);
                hub.apply(&Batch {
                    time,
                    changes: vec![(Output::new(room.into(), Payload(v.into())), 1)],
                });
            })
        },
    );
    g.finish();
}

fn encode(c: &mut Criterion) {
    let value = fleet_state();
    let raw = RawValue::from_string(value.clone()).expect("valid JSON");
    let meta = Meta {
        seq: 123_456,
        t: 1_767_600_000_123,
        sent_ms: 1_767_600_000_130,
    };
    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Bytes(value.len() as u64));
    g.bench_function("socket.io event arguments [payload, meta]", |b| {
        b.iter(|| serde_json::to_string(black_box(&(Some(&*raw), meta))))
    });
    g.bench_function("baseline: copy of the payload bytes", |b| {
        b.iter(|| black_box(value.as_bytes()).to_vec())
    });
    g.finish();
}

criterion_group!(benches, fanout, encode);
criterion_main!(benches);
