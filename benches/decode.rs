//! CDR decoding throughput: FleetState (20 robots, paths) and DoorState, typed fast path vs
//! schema-driven generic decoder, with a plain copy of the same bytes as the baseline (memory
//! bandwidth is the limit the typed path should approach).
//!
//! `cargo bench --bench decode`; criterion prints bytes/s and elements (messages)/s.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rmf_dash::ingest::builtin;
use rmf_dash::ingest::cdr::RmfRelease;
use rmf_dash::ingest::cdr::generic::Plan;
use rmf_dash::ingest::cdr::typed::{decode, encode};
use rmf_dash::ingest::decode::{ReleasePolicy, TopicDecoder};
use rmf_dash_dataflows::model::ros::*;

fn fleet(release: RmfRelease) -> FleetState {
    let loc = |i: u64, level: &str| Location {
        t: Time {
            sec: 1_767_600_000,
            nanosec: 123_456_789,
        },
        x: 12.5 + i as f32,
        y: -40.25,
        yaw: 1.57,
        obey_approach_speed_limit: false,
        approach_speed_limit: 0.0,
        level_name: level.into(),
        index: 1234 + i,
    };
    FleetState {
        name: "deliveryRobot_007".into(),
        robots: (0..20)
            .map(|i| RobotState {
                name: format!("deliveryRobot_007_r{i:02}").into(),
                model: "deliveryRobot".into(),
                task_id: if i % 3 == 0 {
                    "".into()
                } else {
                    format!("delivery.dispatch-{i:010x}").into()
                },
                seq: 1_000_000 + i,
                mode: RobotMode {
                    mode: 2,
                    mode_request_id: 0,
                    performing_action: (release == RmfRelease::Kilted).then(|| "".into()),
                },
                battery_percent: 73.5,
                location: loc(i, "L2"),
                path: (0..(i % 4)).map(|k| loc(i + k, "L2")).collect(),
            })
            .collect(),
    }
}

fn door() -> DoorState {
    DoorState {
        door_time: Time {
            sec: 1_767_600_000,
            nanosec: 5,
        },
        door_name: "L1_door_07".into(),
        current_mode: DoorMode { value: 2 },
    }
}

fn bench(c: &mut Criterion) {
    let release = RmfRelease::Jazzy;
    let fleet_bytes = encode(&fleet(release), release);
    let door_bytes = encode(&door(), release);
    let fleet_plan =
        Plan::compile(builtin::schema("rmf_fleet_msgs/FleetState", release).expect("builtin"));
    let door_plan =
        Plan::compile(builtin::schema("rmf_door_msgs/DoorState", release).expect("builtin"));

    for (name, bytes) in [
        ("fleet_state_20", &fleet_bytes),
        ("door_state", &door_bytes),
    ] {
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function("memcpy_baseline", |b| {
            let mut dst = vec![0u8; bytes.len()];
            b.iter(|| {
                dst.copy_from_slice(black_box(bytes));
                black_box(&dst);
            })
        });
        if name == "fleet_state_20" {
            g.bench_function("typed", |b| {
                b.iter(|| black_box(decode::<FleetState>(black_box(bytes), release)))
            });
            g.bench_function("generic", |b| {
                b.iter(|| black_box(fleet_plan.decode(black_box(bytes))))
            });
            let mut d = TopicDecoder::new(
                "/fleet_states",
                "rmf_fleet_msgs/msg/FleetState",
                "cdr",
                None,
                ReleasePolicy::default(),
            )
            .expect("decoder");
            g.bench_function("record_detected_layout", |b| {
                b.iter(|| black_box(d.record(black_box(bytes))))
            });
        } else {
            g.bench_function("typed", |b| {
                b.iter(|| black_box(decode::<DoorState>(black_box(bytes), release)))
            });
            g.bench_function("generic", |b| {
                b.iter(|| black_box(door_plan.decode(black_box(bytes))))
            });
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
