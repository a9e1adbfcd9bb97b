//! Engine steps: the busiest 10 ms ticks of a 1,000-robot site (about 240 input records each:
//! fleet states of 20 robots, doors, lifts) handed to the engine one after the other, time
//! advanced past each, through every registered derived event on one worker; the time of a run
//! of steps ends when every output of its last tick is delivered (per step: amortized over the
//! run). The baseline is copying the same batch, which a step includes.
//!
//! `cargo bench --bench engine`; criterion prints input records (elements)/s.

use std::hint::black_box;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use rmf_dash::bench::engine::{Prepared, drain_outputs, prepare};
use rmf_dash::engine::{Engine, EngineConfig};
use rmf_dash::trace::generate::{Preset, SiteConfig, generate};

/// Ten seconds of the 1,000-robot site, as the engine's input batches (10 ms ticks).
fn site() -> Prepared {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("site.mcap");
    let config = SiteConfig {
        duration_ms: 10_000,
        ..SiteConfig::preset(Preset::Site)
    };
    generate(&config, &path, None).expect("trace");
    prepare(&path.display().to_string(), 10).expect("batches")
}

fn step(c: &mut Criterion) {
    let p = site();
    // The busiest ticks: those with fleet states.
    let mut batches: Vec<_> = p.batches.iter().map(|(_, b)| b.clone()).collect();
    batches.sort_by_key(|b| std::cmp::Reverse(b.len()));
    batches.truncate(50);
    let records = batches.iter().map(Vec::len).sum::<usize>() / batches.len();
    let mut g = c.benchmark_group("engine_step");
    g.throughput(Throughput::Elements(records as u64));
    g.bench_function("baseline: copy of the batch", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % batches.len();
            black_box(batches[i].clone())
        })
    });
    let mut engine = Engine::start(EngineConfig::default()).expect("engine");
    let drain = drain_outputs(&mut engine);
    let mut t = p.batches.last().map_or(0, |b| b.0) + 1;
    g.bench_function("input and advance, outputs delivered", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for i in 0..iters {
                let batch = batches[i as usize % batches.len()].clone();
                engine.input(t, batch).expect("input");
                engine.advance(t + 1).expect("advance");
                t += 10;
            }
            while engine.delivered.load(Ordering::Acquire) <= t - 10 {
                std::hint::spin_loop();
            }
            start.elapsed()
        })
    });
    g.finish();
    engine.finish(t).expect("finish");
    let _ = drain.join();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5));
    targets = step
}
criterion_main!(benches);
