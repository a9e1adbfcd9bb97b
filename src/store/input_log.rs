//! The input log's encoding (tables `input_block` and `input_recent`): the inputs of consecutive engine commands,
//! in the order they were fed, as one row, a block. Two formats:
//!
//! - **plain** ([`Format::Plain`], table `input_recent`): the commands, bincode then zstd. The
//!   writer writes one per flush, so that everything up to the checkpoint is in the log at once.
//! - **packed** ([`Format::Packed`], table `input_block`): the same commands with each input's value stored after the
//!   previous value of its key, as their XOR (a robot's next state differs from its last in a
//!   few bytes), grouped by key, then zstd. The writer packs the plain blocks of each completed
//!   minute of logical time ([`PACK_MS`]) into one, in the transaction that completes it
//!   ([`pack`]), and removes them from `input_recent`, a small table whose space is reused.
//!
//! A row per block rather than per input, and the packing, make the 1k site's input log about
//! 40x smaller (BENCHMARKS.md, "What the store keeps"). Exact: decoding a block gives back the
//! very inputs and command boundaries that were fed, so a restore from the log rebuilds the
//! same state. A block that cannot be decoded (edited, truncated) is skipped whole by the
//! restore, with a warning; its decoded size is bounded ([`MAX_DECODED`]), so a corrupt length
//! cannot exhaust memory.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio_postgres::Transaction;

use rmf_dash_dataflows::model::input::{Input, InputKey, InputValue};
use rmf_dash_dataflows::prelude::Time;

use super::{StoreError, partitions};

/// zstd's level: 3 (its default). Level 9 makes the packed 1k-site log 15 % smaller for about
/// 3x the time, which the 10k site cannot spare on one core.
const LEVEL: i32 = 3;

/// A plain block holds at most this many bytes of encoded commands (a set bigger than this is
/// written as several blocks).
pub const MAX_BLOCK: usize = 8 << 20;

/// A block never decodes to more than this.
pub const MAX_DECODED: usize = 512 << 20;

/// The logical time whose plain blocks are packed together (a window: their first times are in
/// it).
pub const PACK_MS: i64 = 60_000;

/// A packed block holds the commands of at most about this many inputs (a window with more is
/// several packed blocks): about 100 MB decoded, so that packing and decoding hold a bounded
/// amount of memory. A 1,000-robot site packs a minute as one block, a 10,000-robot site as
/// about seven. (Blocks of 250,000 inputs made the 10k site's log 3x larger: each robot's first
/// value in a block is stored whole.)
pub const MAX_PACKED: usize = 1_000_000;

#[derive(Debug, Error)]
pub enum BlockError {
    #[error("the block does not decompress (zstd)")]
    Decompress(#[source] std::io::Error),
    #[error("the block's commands do not decode (bincode)")]
    Decode(#[source] bincode::Error),
    #[error("the packed block is inconsistent: {0}")]
    Packed(&'static str),
}

/// How a block's data is encoded: the table it is in says (`input_recent`: plain,
/// `input_block`: packed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Plain,
    Packed,
}

impl Format {
    /// The format of a row of [`BLOCKS`] (its `packed` column).
    pub fn of(packed: bool) -> Format {
        if packed {
            Format::Packed
        } else {
            Format::Plain
        }
    }
}

/// Every block of the input log whose first time is in `[$1, $2]`, in feeding order, with
/// both tables' rows: `first_ms, first_cmd, inputs, packed, data` (decode `data` with
/// [`Format::of`]`(packed)`).
pub const BLOCKS: &str = "SELECT * FROM (\
    SELECT first_ms, first_cmd, inputs, true AS packed, data FROM input_block \
    WHERE first_ms >= $1 AND first_ms <= $2 \
    UNION ALL SELECT first_ms, first_cmd, inputs, false, data FROM input_recent \
    WHERE first_ms >= $1 AND first_ms <= $2) b ORDER BY first_ms, first_cmd";

/// The inputs of one engine command, as fed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Command {
    pub time: Time,
    /// The command's number within its time (0, 1, ...).
    pub cmd: u32,
    pub inputs: Vec<Input>,
}

/// One row of `input_block`.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    /// Time and command number of its first command (the row's key).
    pub first_ms: i64,
    pub first_cmd: i32,
    /// Time of its last command.
    pub last_ms: i64,
    /// Inputs it holds.
    pub inputs: i32,
    /// The commands, encoded as the block's table says ([`Format`]).
    pub data: Vec<u8>,
}

impl Block {
    fn of(commands: &[Command], data: Vec<u8>) -> Block {
        let (first, last) = (&commands[0], &commands[commands.len() - 1]);
        Block {
            first_ms: first.time as i64,
            first_cmd: first.cmd as i32,
            last_ms: last.time as i64,
            inputs: commands.iter().map(|c| c.inputs.len() as i32).sum(),
            data,
        }
    }
}

fn zstd(raw: &[u8]) -> Vec<u8> {
    // Compressing into a Vec cannot fail.
    zstd::bulk::compress(raw, LEVEL).unwrap_or_default()
}

/// `commands` (in feeding order, not empty ones) as plain blocks of at most about
/// [`MAX_BLOCK`] encoded bytes each.
pub fn encode(commands: &[Command]) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut start = 0;
    let mut size = 0u64;
    for (i, c) in commands.iter().enumerate() {
        size += bincode::serialized_size(c).unwrap_or(0);
        if size as usize >= MAX_BLOCK || i + 1 == commands.len() {
            let part = &commands[start..=i];
            // Plain data: encoding into a Vec cannot fail.
            let raw = bincode::serialize(part).unwrap_or_default();
            blocks.push(Block::of(part, zstd(&raw)));
            start = i + 1;
            size = 0;
        }
    }
    blocks
}

/// A packed block before zstd: each command's time, number and input count; the keys in order
/// of first appearance; per input, its key's index; per key, its values in order, in runs of
/// equally long encodings ([`pack_run`]).
#[derive(Serialize, Deserialize)]
struct Packed {
    commands: Vec<(Time, u32, u32)>,
    keys: Vec<InputKey>,
    order: Vec<u32>,
    values: Vec<u8>,
}

/// Appends a run of `count` (at least one) equally long values (of `len` bytes each, one after
/// the other in `bytes`): the length and count (u32 each), the first value, then every later value as its
/// bytewise difference (mod 256) from the one before, transposed (the differences' first bytes,
/// then their second bytes, ...). A robot's next state differs from its last in a few bytes,
/// the same ones each time: the transposed differences are long runs of zeros with the
/// changing bytes together, which zstd compresses about 1.8x better than the values one after
/// the other.
fn pack_run(len: usize, count: usize, bytes: &[u8], out: &mut Vec<u8>) {
    out.extend((len as u32).to_le_bytes());
    out.extend((count as u32).to_le_bytes());
    out.extend(&bytes[..len]);
    for j in 0..len {
        out.extend((1..count).map(|i| bytes[i * len + j].wrapping_sub(bytes[(i - 1) * len + j])));
    }
}

/// Builds one packed block from commands added in feeding order, holding each input only as
/// its key's index and its value's encoding (not the decoded inputs): about the block's
/// decoded size in memory.
#[derive(Default)]
pub struct Packer {
    index: HashMap<InputKey, u32>,
    keys: Vec<InputKey>,
    /// Per key: its values' encodings one after the other, and their lengths.
    values: Vec<(Vec<u8>, Vec<u32>)>,
    order: Vec<u32>,
    commands: Vec<(Time, u32, u32)>,
    first_cmd: u32,
}

impl Packer {
    /// Adds the next command.
    pub fn add(&mut self, command: Command) {
        if self.commands.is_empty() {
            self.first_cmd = command.cmd;
        }
        let n = command.inputs.len() as u32;
        for (key, value) in command.inputs {
            let i = match self.index.get(&key) {
                Some(&i) => i,
                None => {
                    let i = self.keys.len() as u32;
                    self.keys.push(key.clone());
                    self.index.insert(key, i);
                    self.values.push(Default::default());
                    i
                }
            };
            let (bytes, lens) = &mut self.values[i as usize];
            let before = bytes.len();
            // Plain data: encoding into a Vec cannot fail.
            let _ = bincode::serialize_into(&mut *bytes, &value);
            lens.push((bytes.len() - before) as u32);
            self.order.push(i);
        }
        self.commands.push((command.time, command.cmd, n));
    }

    /// Inputs added.
    pub fn inputs(&self) -> usize {
        self.order.len()
    }

    /// The packed block (`None` without commands).
    pub fn finish(self) -> Option<Block> {
        let (&(first, _, _), &(last, _, _)) = (self.commands.first()?, self.commands.last()?);
        let mut values = Vec::new();
        for (bytes, lens) in &self.values {
            let mut at = 0;
            for run in lens.chunk_by(|a, b| a == b) {
                let end = at + run.len() * run[0] as usize;
                pack_run(run[0] as usize, run.len(), &bytes[at..end], &mut values);
                at = end;
            }
        }
        let block = Block {
            first_ms: first as i64,
            first_cmd: self.first_cmd as i32,
            last_ms: last as i64,
            inputs: self.order.len() as i32,
            data: Vec::new(),
        };
        let packed = Packed {
            commands: self.commands,
            keys: self.keys,
            order: self.order,
            values,
        };
        let raw = bincode::serialize(&packed).unwrap_or_default();
        Some(Block {
            data: zstd(&raw),
            ..block
        })
    }
}

/// `commands` (in feeding order, not empty) as one packed block.
pub fn encode_packed(commands: &[Command]) -> Option<Block> {
    let mut packer = Packer::default();
    commands.iter().for_each(|c| packer.add(c.clone()));
    packer.finish()
}

/// The commands of a block's `data` in `format`.
pub fn decode(format: Format, data: &[u8]) -> Result<Vec<Command>, BlockError> {
    let raw = zstd::bulk::decompress(data, MAX_DECODED).map_err(BlockError::Decompress)?;
    match format {
        Format::Plain => bincode::deserialize(&raw).map_err(BlockError::Decode),
        Format::Packed => unpack(bincode::deserialize(&raw).map_err(BlockError::Decode)?),
    }
}

/// Takes one run ([`pack_run`]) of at most `most` values off the front of `rest`.
fn unpack_run(rest: &mut &[u8], most: usize) -> Result<Vec<Vec<u8>>, BlockError> {
    let mut take = |n: usize| -> Result<&[u8], BlockError> {
        if rest.len() < n {
            return Err(BlockError::Packed("values end"));
        }
        let (head, tail) = rest.split_at(n);
        *rest = tail;
        Ok(head)
    };
    let word = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
    let len = word(take(4)?);
    let count = word(take(4)?);
    if count == 0 || count > most {
        return Err(BlockError::Packed("run count"));
    }
    let first = take(len)?.to_vec();
    let diffs = take(
        len.checked_mul(count - 1)
            .ok_or(BlockError::Packed("run size"))?,
    )?;
    let mut run = vec![first];
    for i in 1..count {
        let prev = &run[i - 1];
        let next = (0..len)
            .map(|j| prev[j].wrapping_add(diffs[j * (count - 1) + i - 1]))
            .collect();
        run.push(next);
    }
    Ok(run)
}

fn unpack(p: Packed) -> Result<Vec<Command>, BlockError> {
    // How many values each key has, then every key's values, decoded in order.
    let mut counts = vec![0usize; p.keys.len()];
    for &k in &p.order {
        *counts
            .get_mut(k as usize)
            .ok_or(BlockError::Packed("key index"))? += 1;
    }
    let mut per_key: Vec<std::collections::VecDeque<InputValue>> = Vec::new();
    let mut rest = p.values.as_slice();
    for n in counts {
        let mut values = std::collections::VecDeque::with_capacity(n.min(1 << 16));
        while values.len() < n {
            for v in unpack_run(&mut rest, n - values.len())? {
                values.push_back(bincode::deserialize(&v).map_err(BlockError::Decode)?);
            }
        }
        per_key.push(values);
    }
    let mut order = p.order.iter();
    let mut commands = Vec::with_capacity(p.commands.len());
    for (time, cmd, n) in p.commands {
        let mut inputs = Vec::with_capacity((n as usize).min(1 << 20));
        for _ in 0..n {
            let k = *order.next().ok_or(BlockError::Packed("order"))? as usize;
            let value = per_key[k].pop_front().ok_or(BlockError::Packed("order"))?;
            inputs.push((p.keys[k].clone(), value));
        }
        commands.push(Command { time, cmd, inputs });
    }
    Ok(commands)
}

/// Packs the plain blocks of `input_recent` whose first time is before `end` (a multiple of
/// [`PACK_MS`]: the windows before it are complete) into `input_block`, a window at a time, as
/// packed blocks of about [`MAX_PACKED`] inputs each, in `tx`; returns the plain blocks packed.
/// A plain block that cannot be decoded is dropped with a warning (a restore would skip it
/// too). Day partitions as in [`partitions::ensure`].
pub async fn pack(
    tx: &Transaction<'_>,
    end: i64,
    known: &HashSet<(&'static str, i64)>,
    created: &mut Vec<(&'static str, i64)>,
) -> Result<usize, StoreError> {
    let mut packed = 0;
    let mut parts = (known, created);
    loop {
        let first: Option<i64> = tx
            .query_one(
                "SELECT min(first_ms) FROM input_recent WHERE first_ms < $1",
                &[&end],
            )
            .await?
            .get(0);
        let Some(first) = first else {
            return Ok(packed);
        };
        let from = first.div_euclid(PACK_MS) * PACK_MS;
        let to = (from + PACK_MS).min(end);
        let rows = tx
            .query(
                "DELETE FROM input_recent WHERE first_ms >= $1 AND first_ms < $2 \
                 RETURNING first_ms, first_cmd, inputs, data",
                &[&from, &to],
            )
            .await?;
        let mut rows: Vec<(i64, i32, i32, &[u8])> = rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect();
        rows.sort_by_key(|r| (r.0, r.1));
        let mut packer = Packer::default();
        for (first_ms, _, inputs, data) in &rows {
            match decode(Format::Plain, data) {
                Ok(commands) => commands.into_iter().for_each(|c| packer.add(c)),
                Err(e) => {
                    tracing::warn!(first_ms, inputs, error = %crate::error::chain(&e), "input block cannot be decoded: dropped");
                }
            }
            if packer.inputs() >= MAX_PACKED {
                insert_packed(tx, std::mem::take(&mut packer), &mut parts).await?;
            }
        }
        packed += rows.len();
        insert_packed(tx, packer, &mut parts).await?;
    }
}

/// Inserts what `packer` holds (nothing: nothing) as one packed block into `input_block`,
/// creating its partition unless it is known.
async fn insert_packed(
    tx: &Transaction<'_>,
    packer: Packer,
    (known, created): &mut Partitions<'_, '_>,
) -> Result<(), StoreError> {
    let Some(b) = packer.finish() else {
        return Ok(());
    };
    let first = std::iter::once(b.first_ms);
    partitions::ensure(tx, known, "input_block", first, created).await?;
    insert(tx, "input_block", &b).await
}

/// The partitions known to exist and those created by the transaction (see
/// [`partitions::ensure`]).
type Partitions<'k, 'c> = (
    &'k HashSet<(&'static str, i64)>,
    &'c mut Vec<(&'static str, i64)>,
);

/// Inserts one block into `table` (its partition exists).
async fn insert(tx: &Transaction<'_>, table: &str, b: &Block) -> Result<(), StoreError> {
    tx.execute(
        &format!(
            "INSERT INTO {table} (first_ms, first_cmd, last_ms, inputs, data) \
             VALUES ($1, $2, $3, $4, $5)"
        ),
        &[&b.first_ms, &b.first_cmd, &b.last_ms, &b.inputs, &b.data],
    )
    .await?;
    Ok(())
}

fn window_of(time: Time) -> i64 {
    (time as i64).div_euclid(PACK_MS)
}

/// Rows of the version-7 log read at a time while converting it.
const CONVERT_CHUNK: i64 = 50_000;

/// Converts the version-7 input log (`input_log_v7`, a row per input) into blocks in `tx`, then
/// drops it; returns the inputs converted. Every window but the last is packed as it goes. A row that does not decode is skipped with a warning,
/// as a restore skipped it. Reads whole logical times, [`CONVERT_CHUNK`] rows or so at a time.
pub async fn convert_v7(tx: &Transaction<'_>) -> Result<u64, StoreError> {
    let total: i64 = tx
        .query_one("SELECT count(*) FROM input_log_v7", &[])
        .await?
        .get(0);
    let (mut after, mut converted) = (i64::MIN, 0u64);
    loop {
        let mut rows = tx
            .query(
                "SELECT time_ms, cmd, value FROM input_log_v7 WHERE time_ms > $1 \
                 ORDER BY time_ms, cmd, ord LIMIT $2",
                &[&after, &CONVERT_CHUNK],
            )
            .await?;
        let Some(last) = rows.last().map(|r| r.get::<_, i64>(0)) else {
            break;
        };
        if rows.len() as i64 == CONVERT_CHUNK {
            if rows.first().is_some_and(|r| r.get::<_, i64>(0) == last) {
                // One time alone fills the chunk: read that time whole.
                rows = tx
                    .query(
                        "SELECT time_ms, cmd, value FROM input_log_v7 WHERE time_ms = $1 \
                         ORDER BY cmd, ord",
                        &[&last],
                    )
                    .await?;
            } else {
                // The last time may go on in the next chunk: it is read whole there.
                rows.retain(|r| r.get::<_, i64>(0) != last);
            }
        }
        let mut commands: Vec<Command> = Vec::new();
        for row in &rows {
            let (time, cmd): (i64, i32) = (row.get(0), row.get(1));
            after = time;
            let input = match bincode::deserialize::<Input>(row.get::<_, &[u8]>(2)) {
                Ok(input) => input,
                Err(e) => {
                    tracing::warn!(time, cmd, error = %e, "stored input cannot be decoded: not converted");
                    continue;
                }
            };
            match commands.last_mut() {
                Some(c) if c.time as i64 == time && c.cmd as i32 == cmd => c.inputs.push(input),
                _ => commands.push(Command {
                    time: time.max(0) as Time,
                    cmd: cmd.max(0) as u32,
                    inputs: vec![input],
                }),
            }
        }
        converted += commands.iter().map(|c| c.inputs.len() as u64).sum::<u64>();
        // Plain blocks within one window each: a window packs only its own commands.
        for window in commands.chunk_by(|a, b| window_of(a.time) == window_of(b.time)) {
            for b in encode(window) {
                insert(tx, "input_recent", &b).await?;
            }
        }
        let end = after.div_euclid(PACK_MS) * PACK_MS;
        pack(tx, end, &HashSet::new(), &mut Vec::new()).await?;
        tracing::info!(
            converted,
            total,
            "store migration: input log converted into blocks"
        );
    }
    tx.batch_execute("DROP TABLE input_log_v7").await?;
    // The last window's blocks stay plain: the writer packs them when it completes.
    Ok(converted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmf_dash_dataflows::model::input::{InputValue, Kind, Payload};

    fn command(time: Time, cmd: u32, n: usize) -> Command {
        let inputs = (0..n)
            .map(|i| {
                let key = (Kind::Door, format!("door_{i}").as_str().into());
                (
                    key,
                    InputValue::Payload(Payload(format!("{{\"i\":{i}}}").into())),
                )
            })
            .collect();
        Command { time, cmd, inputs }
    }

    #[test]
    fn blocks_decode_to_the_commands_exactly() {
        let commands = vec![command(10, 0, 3), command(10, 1, 0), command(20, 0, 5)];
        let blocks = encode(&commands);
        assert_eq!(blocks.len(), 1);
        let b = &blocks[0];
        assert_eq!(
            (b.first_ms, b.first_cmd, b.last_ms, b.inputs),
            (10, 0, 20, 8)
        );
        assert_eq!(decode(Format::Plain, &b.data).expect("decodes"), commands);
        let p = encode_packed(&commands).expect("a block");
        assert_eq!(
            (p.first_ms, p.first_cmd, p.last_ms, p.inputs),
            (10, 0, 20, 8)
        );
        assert_eq!(decode(Format::Packed, &p.data).expect("decodes"), commands);
    }

    #[test]
    fn packing_keeps_every_value_of_every_key_in_order() {
        // Values of one key that change length (a whole value) and keep it (an XOR).
        let value = |s: &str| InputValue::Payload(Payload(s.into()));
        let a = (
            Kind::Door,
            rmf_dash_dataflows::model::input::Name::from("a"),
        );
        let b = (
            Kind::Lift,
            rmf_dash_dataflows::model::input::Name::from("a"),
        );
        let commands = vec![
            Command {
                time: 5,
                cmd: 0,
                inputs: vec![(a.clone(), value("1")), (b.clone(), value("x"))],
            },
            Command {
                time: 5,
                cmd: 1,
                inputs: vec![(a.clone(), value("2"))],
            },
            Command {
                time: 9,
                cmd: 0,
                inputs: vec![
                    (a.clone(), value("33")),
                    (a.clone(), value("44")),
                    (b, value("y")),
                ],
            },
        ];
        let p = encode_packed(&commands).expect("a block");
        assert_eq!(decode(Format::Packed, &p.data).expect("decodes"), commands);
    }

    #[test]
    fn a_big_set_is_several_blocks_in_order() {
        // About 30 bytes per input: three commands of 120k inputs are ~11 MB.
        let commands: Vec<_> = (0..3).map(|t| command(t * 10, 0, 120_000)).collect();
        let blocks = encode(&commands);
        assert!(blocks.len() >= 2, "{}", blocks.len());
        let decoded: Vec<Command> = blocks
            .iter()
            .flat_map(|b| decode(Format::Plain, &b.data).expect("decodes"))
            .collect();
        assert_eq!(decoded, commands);
    }

    #[test]
    fn a_damaged_block_is_an_error() {
        let mut b = encode(&[command(1, 0, 10)]).remove(0);
        b.data.truncate(b.data.len() / 2);
        assert!(decode(Format::Plain, &b.data).is_err());
        assert!(decode(Format::Plain, b"\x28\xb5\x2f\xfd garbage").is_err());
        // A packed block whose order names a key it lacks, whose values were cut short, or
        // whose run claims more values (empty ones: no bytes) than the block has inputs.
        let huge: Vec<u8> = [0u32, u32::MAX]
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect();
        for cut in [
            Packed {
                commands: vec![(1, 0, 1)],
                keys: vec![],
                order: vec![0],
                values: vec![],
            },
            Packed {
                commands: vec![(1, 0, 2)],
                keys: vec![(Kind::Door, "d".into())],
                order: vec![0],
                values: vec![0, 1, 0, 0, 0, 7],
            },
            Packed {
                commands: vec![(1, 0, 1)],
                keys: vec![(Kind::Door, "d".into())],
                order: vec![0],
                values: huge,
            },
        ] {
            let raw = zstd(&bincode::serialize(&cut).expect("encodes"));
            assert!(decode(Format::Packed, &raw).is_err());
        }
    }
}
