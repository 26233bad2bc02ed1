//! Raw records, compressed in blocks.
//!
//! The raw record behind an event (the JSON an auditor reads as evidence) is most of an
//! imported event's bytes, and neighbouring records of one log share most of their
//! text. So raw records are not stored per event: up to [`BLOCK_RECORDS`] of them
//! (at most [`BLOCK_BYTES`] of text) are packed into one LZ4 block in `raw_blocks`, and
//! each event names its block and its place in it (`raw_block`, `raw_at`). Rows written
//! before blocks existed keep their text in `events.raw`; both are read the same way.
//!
//! A block's `data`: one codec byte ([`CODEC_LZ4`]), then the LZ4 block (uncompressed
//! size prepended) of: the number of records `n` (u32 LE), `n` end offsets (u32 LE,
//! relative to the start of the text) and the records' text.

use super::{Result, StoreError};
use crate::model::Event;
use rusqlite::{Connection, OptionalExtension};
use std::borrow::Cow;
use std::rc::Rc;

/// Most records in one block.
pub const BLOCK_RECORDS: usize = 64;
/// Most bytes of record text in one block (a single larger record gets a block alone).
pub const BLOCK_BYTES: usize = 64 * 1024;
/// The only codec so far: LZ4 block format, uncompressed size prepended.
pub const CODEC_LZ4: u8 = 1;

/// Raw records of a batch of events, compressed into blocks before the batch is written
/// (an importer packs on its parser thread, so the store thread only inserts).
#[derive(Debug, Default)]
pub struct RawPack {
    /// Encoded blocks (`raw_blocks.data`).
    pub(super) blocks: Vec<Vec<u8>>,
    /// Per event of the batch: (block in `blocks`, place in the block), or `None` when
    /// the event has no raw record.
    pub(super) refs: Vec<Option<(u32, u32)>>,
}

impl RawPack {
    /// Packs the raw records of `events`, in order.
    pub fn new(events: &[Event]) -> RawPack {
        let mut pack = RawPack {
            blocks: Vec::new(),
            refs: Vec::with_capacity(events.len()),
        };
        let mut enc = Encoder::default();
        for e in events {
            let Some(raw) = &e.raw else {
                pack.refs.push(None);
                continue;
            };
            if !enc.ends.is_empty()
                && (enc.ends.len() == BLOCK_RECORDS || enc.text.len() + raw.len() > BLOCK_BYTES)
            {
                pack.blocks.push(enc.finish());
            }
            pack.refs
                .push(Some((pack.blocks.len() as u32, enc.ends.len() as u32)));
            enc.text.extend_from_slice(raw.as_bytes());
            enc.ends.push(enc.text.len() as u32);
        }
        if !enc.ends.is_empty() {
            pack.blocks.push(enc.finish());
        }
        pack
    }
}

/// Builds blocks, reusing its buffers from one block to the next (a block's worth of
/// text is large enough that fresh buffers per block cost more than the compression).
#[derive(Default)]
struct Encoder {
    ends: Vec<u32>,
    text: Vec<u8>,
    plain: Vec<u8>,
    compressed: Vec<u8>,
}

impl Encoder {
    /// The encoded block of the records so far; the encoder is empty again.
    fn finish(&mut self) -> Vec<u8> {
        self.plain.clear();
        self.plain
            .extend_from_slice(&(self.ends.len() as u32).to_le_bytes());
        for e in &self.ends {
            self.plain.extend_from_slice(&e.to_le_bytes());
        }
        self.plain.extend_from_slice(&self.text);
        let size = lz4_flex::block::get_maximum_output_size(self.plain.len());
        self.compressed.resize(size, 0);
        let n = lz4_flex::block::compress_into(&self.plain, &mut self.compressed)
            .expect("the output buffer has the maximum compressed size");
        let mut out = Vec::with_capacity(5 + n);
        out.push(CODEC_LZ4);
        out.extend_from_slice(&(self.plain.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.compressed[..n]);
        self.ends.clear();
        self.text.clear();
        out
    }
}

/// A decoded block: the records' end offsets and their text.
#[derive(Debug)]
pub struct Block {
    ends: Vec<u32>,
    /// The decompressed block; the records' text starts at `start`.
    plain: Vec<u8>,
    start: usize,
}

impl Block {
    /// Decodes a block as stored in `raw_blocks.data`.
    pub fn decode(data: &[u8]) -> std::result::Result<Block, String> {
        let (&codec, body) = data.split_first().ok_or("empty block")?;
        if codec != CODEC_LZ4 {
            return Err(format!("unknown codec {codec}"));
        }
        // LZ4 expands at most 255-fold: a larger stated size is damage, and is refused
        // before it is allocated.
        let stated = body
            .get(..4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .ok_or("truncated size")?;
        if stated > 255 * body.len() + 16 {
            return Err(format!("states {stated} bytes from {}", body.len()));
        }
        let plain = lz4_flex::block::decompress_size_prepended(body).map_err(|e| e.to_string())?;
        let word = |i: usize| -> Option<u32> {
            Some(u32::from_le_bytes(
                plain.get(4 * i..4 * i + 4)?.try_into().ok()?,
            ))
        };
        let n = word(0).ok_or("truncated header")? as usize;
        let ends = (1..=n)
            .map(word)
            .collect::<Option<Vec<u32>>>()
            .ok_or("truncated offsets")?;
        let start = 4 + 4 * n;
        let text_len = plain.len().checked_sub(start).ok_or("truncated text")?;
        let mut from = 0;
        for &end in &ends {
            if end < from || end as usize > text_len {
                return Err("offsets out of order".into());
            }
            from = end;
        }
        Ok(Block { ends, plain, start })
    }

    /// The text of the record at place `at` (invalid UTF-8, which a stored record never
    /// is, replaced).
    pub fn text(&self, at: u32) -> Option<Cow<'_, str>> {
        let at = at as usize;
        let end = *self.ends.get(at)? as usize;
        let from = if at == 0 {
            0
        } else {
            self.ends[at - 1] as usize
        };
        Some(String::from_utf8_lossy(
            &self.plain[self.start + from..self.start + end],
        ))
    }

    fn record(&self, at: u32) -> Option<String> {
        self.text(at).map(Cow::into_owned)
    }
}

/// Blocks a [`RawReader`] keeps decoded.
const KEPT_BLOCKS: usize = 8;

/// Reads raw records from their blocks, keeping the last few blocks decoded: events read
/// in time order mostly share blocks, and a few logs interleaved in time take turns.
#[derive(Default)]
pub(super) struct RawReader {
    /// Most recently used first.
    kept: Vec<(i64, Rc<Block>)>,
}

impl RawReader {
    /// The raw record at place `at` of block `id`.
    pub(super) fn record(&mut self, conn: &Connection, id: i64, at: u32) -> Result<String> {
        let block = match self.kept.iter().position(|(k, _)| *k == id) {
            Some(i) => {
                let hit = self.kept.remove(i);
                let block = hit.1.clone();
                self.kept.insert(0, hit);
                block
            }
            None => {
                let data: Option<Vec<u8>> = conn
                    .prepare_cached("SELECT data FROM raw_blocks WHERE id = ?1")?
                    .query_row([id], |r| r.get(0))
                    .optional()?;
                let block = data
                    .ok_or_else(|| format!("block {id} is missing"))
                    .and_then(|d| Block::decode(&d))
                    .map(Rc::new)
                    .map_err(|why| StoreError::Corrupt {
                        what: "a raw record block",
                        why,
                    })?;
                self.kept.truncate(KEPT_BLOCKS - 1);
                self.kept.insert(0, (id, block.clone()));
                block
            }
        };
        block.record(at).ok_or_else(|| StoreError::Corrupt {
            what: "a raw record block",
            why: format!("block {id} has no record {at}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{from_millis, Outcome};

    fn ev(raw: Option<String>) -> Event {
        Event {
            provider: "p".into(),
            id: "e".into(),
            time: from_millis(0),
            key_id: "k".into(),
            principal: None,
            action: "a".into(),
            scope: None,
            source_ip: None,
            user_agent: None,
            outcome: Outcome::Success,
            status_code: None,
            request_id: None,
            records: None,
            raw,
        }
    }

    #[test]
    fn records_come_back_from_their_blocks_byte_for_byte() {
        let mut events: Vec<Event> = (0..150)
            .map(|i| {
                ev((i % 7 != 3).then(|| format!(r#"{{"n":{i},"text":"é ✓ {}"}}"#, "x".repeat(i))))
            })
            .collect();
        // One record larger than a block gets a block of its own.
        events.push(ev(Some("y".repeat(BLOCK_BYTES + 10))));
        events.push(ev(Some(String::new())));
        let pack = RawPack::new(&events);
        assert!(pack.blocks.len() >= 3, "{}", pack.blocks.len());
        for (e, r) in events.iter().zip(&pack.refs) {
            match (r, &e.raw) {
                (None, None) => {}
                (Some((b, at)), Some(raw)) => {
                    let block = Block::decode(&pack.blocks[*b as usize]).unwrap();
                    assert_eq!(block.record(*at).as_deref(), Some(raw.as_str()));
                    assert!(block.ends.len() <= BLOCK_RECORDS);
                }
                other => panic!("mismatch {other:?}"),
            }
        }
    }

    #[test]
    fn similar_records_compress_several_times() {
        let events: Vec<Event> = (0..640)
            .map(|i| {
                ev(Some(format!(
                    r#"{{"eventVersion":"1.08","userIdentity":{{"type":"IAMUser","accessKeyId":"AKIA{:016}"}},"eventTime":"2024-03-01T10:{:02}:00Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","sourceIPAddress":"198.51.100.{}","eventID":"{:08x}-0000-4000-8000-{:012x}"}}"#,
                    i % 9, i % 60, i % 250, i * 7919, i
                )))
            })
            .collect();
        let plain: usize = events.iter().map(|e| e.raw.as_ref().unwrap().len()).sum();
        let compressed: usize = RawPack::new(&events).blocks.iter().map(Vec::len).sum();
        assert!(compressed * 3 < plain, "{compressed} of {plain}");
    }

    #[test]
    fn a_reader_serves_interleaved_blocks_and_names_a_missing_one() {
        let store = crate::store::Store::open_in_memory().unwrap();
        let conn = store.conn();
        let mut ids = Vec::new();
        for b in 0..(KEPT_BLOCKS + 3) {
            let events: Vec<Event> = (0..3).map(|i| ev(Some(format!("b{b}r{i}")))).collect();
            let data = RawPack::new(&events).blocks.remove(0);
            conn.execute("INSERT INTO raw_blocks (data) VALUES (?1)", [&data])
                .unwrap();
            ids.push(conn.last_insert_rowid());
        }
        let mut reader = RawReader::default();
        // Two logs taking turns, then every block once more.
        for round in 0..3 {
            for (b, id) in ids.iter().enumerate() {
                let at = (round + b) % 3;
                let got = reader.record(conn, *id, at as u32).unwrap();
                assert_eq!(got, format!("b{b}r{at}"));
            }
            assert!(reader.kept.len() <= KEPT_BLOCKS);
        }
        assert_eq!(reader.record(conn, ids[1], 0).unwrap(), "b1r0");
        assert!(matches!(
            reader.record(conn, ids[1], 3),
            Err(StoreError::Corrupt { .. })
        ));
        let err = reader.record(conn, 999_999, 0).unwrap_err().to_string();
        assert!(err.contains("block 999999 is missing"), "{err}");
    }

    #[test]
    fn damaged_blocks_are_errors_not_panics() {
        let good = RawPack::new(&[ev(Some("abc".into()))]).blocks.remove(0);
        assert!(Block::decode(&good).is_ok());
        for bad in [
            vec![],
            vec![9, 0, 0],
            good[..good.len() - 1].to_vec(),
            vec![CODEC_LZ4, 200, 0, 0, 0, 0xff, 0xff, 0xff, 0xff],
            // Offsets that point past the text.
            {
                let mut plain = 1u32.to_le_bytes().to_vec();
                plain.extend_from_slice(&99u32.to_le_bytes());
                plain.extend_from_slice(b"abc");
                let mut b = vec![CODEC_LZ4];
                b.extend(lz4_flex::block::compress_prepend_size(&plain));
                b
            },
        ] {
            assert!(Block::decode(&bad).is_err(), "{bad:?}");
        }
        // A stated size no LZ4 block of this length can have is refused unallocated.
        let huge = Block::decode(&[CODEC_LZ4, 0xff, 0xff, 0xff, 0x7f, 0x10, b'a']);
        assert!(huge.unwrap_err().starts_with("states 2147483647 bytes"));
    }
}
