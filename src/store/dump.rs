//! `rmf-dash store dump`: everything stored, as canonical JSON lines (one table after the other,
//! the lines of each table sorted, no write timestamps), so that two stores compare with `diff`.
//! Inputs are printed decoded, one line per input (as `input_log`, whatever block holds them);
//! payloads that are not valid JSON are printed as strings. It reads
//! one snapshot, so it may run beside a live `serve` (as a client of its private cluster).

use std::io::Write;

use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::StoreError;
use super::input_log::{self, Format};

fn payload(text: Option<String>) -> Value {
    match text {
        None => Value::Null,
        Some(t) => match RawValue::from_string(t.clone()) {
            Ok(raw) => serde_json::from_str(raw.get()).unwrap_or(Value::String(t)),
            Err(_) => Value::String(t),
        },
    }
}

/// Writes the dump of every table to `out`; returns the number of lines. Every table is read in
/// one snapshot (a read-only repeatable-read transaction), so a dump taken while a writer runs is
/// an exact prefix of the run: nothing after its checkpoint, nothing before it missing.
pub async fn dump(
    client: &tokio_postgres::Client,
    out: &mut impl Write,
) -> Result<u64, StoreError> {
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await?;
    let result = dump_tables(client, out).await;
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    let ended = client.batch_execute(end).await;
    let n = result?;
    ended?;
    Ok(n)
}

async fn dump_tables(
    client: &tokio_postgres::Client,
    out: &mut impl Write,
) -> Result<u64, StoreError> {
    let mut n = 0u64;
    let mut emit = |mut lines: Vec<String>, out: &mut dyn Write| -> Result<(), StoreError> {
        lines.sort();
        for l in lines {
            writeln!(out, "{l}")?;
            n += 1;
        }
        Ok(())
    };
    let q = |sql: &'static str| client.query(sql, &[]);
    let rows = q("SELECT time_ms FROM checkpoint").await?;
    emit(
        rows.iter()
            .map(|r| json!({"table": "checkpoint", "time_ms": r.get::<_, i64>(0)}).to_string())
            .collect(),
        out,
    )?;
    let rows = client
        .query(input_log::BLOCKS, &[&i64::MIN, &i64::MAX])
        .await?;
    let mut lines = Vec::new();
    for r in &rows {
        match input_log::decode(Format::of(r.get(3)), r.get(4)) {
            Ok(commands) => lines.extend(commands.iter().flat_map(|c| {
                c.inputs.iter().map(|((kind, key), value)| {
                    json!({"table": "input_log", "time_ms": c.time,
                        "kind": format!("{kind:?}"), "key": key.as_str(),
                        "value": serde_json::to_value(value).unwrap_or(Value::Null)})
                    .to_string()
                })
            })),
            Err(_) => lines.push(
                json!({"table": "input_log", "time_ms": r.get::<_, i64>(0),
                    "value": "<undecodable block>"})
                .to_string(),
            ),
        }
    }
    emit(lines, out)?;
    let rows = q("SELECT time_ms, room, diff, value FROM output_history").await?;
    emit(
        rows.iter()
            .map(|r| {
                json!({"table": "output_history", "time_ms": r.get::<_, i64>(0),
                    "room": r.get::<_, &str>(1), "diff": r.get::<_, i32>(2),
                    "value": payload(r.get(3))})
                .to_string()
            })
            .collect(),
        out,
    )?;
    let rows = q(super::restore::ROOMS).await?;
    emit(
        rows.iter()
            .map(|r| {
                json!({"table": "room_state", "room": r.get::<_, &str>(0),
                    "seq": r.get::<_, i64>(1), "time_ms": r.get::<_, i64>(2),
                    "value": payload(r.get(3))})
                .to_string()
            })
            .collect(),
        out,
    )?;
    let rows = q(
        "SELECT task_id, category, status, requester, assigned_fleet, assigned_robot, \
         request_time_ms, start_time_ms, finish_time_ms, labels, time_ms, state FROM task_state",
    )
    .await?;
    emit(
        rows.iter()
            .map(|r| {
                json!({"table": "task_state", "task_id": r.get::<_, &str>(0),
                    "category": r.get::<_, Option<&str>>(1), "status": r.get::<_, Option<&str>>(2),
                    "requester": r.get::<_, Option<&str>>(3),
                    "assigned_fleet": r.get::<_, Option<&str>>(4),
                    "assigned_robot": r.get::<_, Option<&str>>(5),
                    "request_time_ms": r.get::<_, Option<i64>>(6),
                    "start_time_ms": r.get::<_, Option<i64>>(7),
                    "finish_time_ms": r.get::<_, Option<i64>>(8),
                    "labels": r.get::<_, Vec<String>>(9), "time_ms": r.get::<_, i64>(10),
                    "state": payload(r.get(11))})
                .to_string()
            })
            .collect(),
        out,
    )?;
    for (table, sql) in [
        (
            "task_log",
            "SELECT task_id, stream, seq, tier, unix_millis_time, text, time_ms FROM task_log",
        ),
        (
            "fleet_log",
            "SELECT fleet, robot, seq, tier, unix_millis_time, text, time_ms FROM fleet_log",
        ),
    ] {
        let rows = client.query(sql, &[]).await?;
        emit(
            rows.iter()
                .map(|r| {
                    json!({"table": table, "key": r.get::<_, &str>(0),
                        "stream": r.get::<_, &str>(1), "seq": r.get::<_, i64>(2),
                        "tier": r.get::<_, Option<&str>>(3),
                        "unix_millis_time": r.get::<_, Option<i64>>(4),
                        "text": r.get::<_, Option<&str>>(5), "time_ms": r.get::<_, i64>(6)})
                    .to_string()
                })
                .collect(),
            out,
        )?;
    }
    let rows =
        q("SELECT id, task_id, time_ms, request, response, response_time_ms FROM alerts").await?;
    emit(
        rows.iter()
            .map(|r| {
                json!({"table": "alerts", "id": r.get::<_, &str>(0),
                    "task_id": r.get::<_, Option<&str>>(1), "time_ms": r.get::<_, i64>(2),
                    "request": payload(r.get(3)), "response": payload(r.get(4)),
                    "response_time_ms": r.get::<_, Option<i64>>(5)})
                .to_string()
            })
            .collect(),
        out,
    )?;
    let rows = q("SELECT from_ms, to_ms, rows FROM store_gaps").await?;
    emit(
        rows.iter()
            .map(|r| {
                json!({"table": "store_gaps", "from_ms": r.get::<_, i64>(0),
                    "to_ms": r.get::<_, i64>(1), "rows": r.get::<_, i64>(2)})
                .to_string()
            })
            .collect(),
        out,
    )?;
    Ok(n)
}
