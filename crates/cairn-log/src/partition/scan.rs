//! The full check every segment gets when a log is opened (and `cairn check` runs): every batch's
//! framing, CRC and offsets, with resynchronisation past damage so one bad byte costs only the
//! batches it hits.
//!
//! What counts as intact:
//! - the batch parses (magic 2, plausible length), fits in the file and its CRC matches;
//! - its offsets come after the previous intact batch and before the next segment's base;
//! - its base offset, which the CRC does not cover, agrees with its neighbours: it starts where
//!   the previous intact batch ended (or at the segment's base), or else the next batch confirms
//!   it: by starting exactly where it ends where offsets are dense (the active segment always,
//!   every segment of a log that is not compacted), by not starting inside it in a compacted log.
//!
//! Anything else is a damaged range: its bytes are kept on disk, reads skip them, and the offsets
//! between the last intact batch and the next one are reported as lost. Offsets are never changed.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use serde::Serialize;

use super::{Indexes, MAX_RELATIVE};
use crate::batch::{BatchView, HEADER_SIZE};

/// A damaged byte range of one segment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Damage {
    /// Base offset (file name) of the segment.
    pub segment: i64,
    /// Byte range of the damaged bytes in the segment file.
    pub start_pos: u64,
    pub end_pos: u64,
    /// First offset lost: where the last intact batch before the damage ended.
    pub first_offset: i64,
    /// First offset after the loss (the next intact batch, or the next segment's base); `None`
    /// for the damaged tail of the active segment, where nothing tells how many offsets it held.
    pub end_offset: Option<i64>,
    /// Why the bytes at `start_pos` are not an intact batch.
    pub reason: String,
    /// The range was the damaged tail of the active segment and was cut off, as after a crash.
    pub truncated: bool,
}

/// A batch that passed the structural checks, before its offsets are judged.
#[derive(Clone, Copy, Debug)]
struct Cand {
    size: u64,
    base: i64,
    next: i64,
    max_ts: i64,
}

/// Large positioned reads over one file, so scanning costs few syscalls and resynchronising can
/// look at any byte.
struct Window<'a> {
    file: &'a File,
    size: u64,
    buf: Vec<u8>,
    start: u64,
}

const CHUNK: u64 = 4 << 20;
/// Where a batch's CRC is stored, and where the bytes it covers begin (see `batch`).
const CRC_AT: u64 = 17;
const CRC_COVERED_FROM: u64 = 21;

impl<'a> Window<'a> {
    fn new(file: &'a File, size: u64) -> Self {
        Window {
            file,
            size,
            buf: Vec::new(),
            start: 0,
        }
    }

    /// `len` bytes at `at`; the caller keeps `at + len <= size`.
    fn get(&mut self, at: u64, len: u64) -> io::Result<&[u8]> {
        let end = self.start + self.buf.len() as u64;
        if at < self.start || at + len > end {
            let n = len.max(CHUNK).min(self.size - at);
            self.buf.resize(n as usize, 0);
            self.file.read_exact_at(&mut self.buf, at)?;
            self.start = at;
        }
        let from = (at - self.start) as usize;
        Ok(&self.buf[from..from + len as usize])
    }
}

/// Result of scanning one segment.
pub(super) struct SegmentScan {
    pub idx: Indexes,
    pub batches: u64,
    /// Where the intact data ends: the file size, or the start of a damaged tail to cut.
    pub valid_end: u64,
    /// Offset after the last intact batch (the segment's base when it has none).
    pub next_offset: i64,
    pub first_ts: Option<i64>,
    /// Damaged ranges, in file order. A damaged tail of the active segment comes last.
    pub damage: Vec<Damage>,
}

impl SegmentScan {
    /// Byte ranges reads must skip (everything but a tail that is cut off).
    pub fn holes(&self) -> Vec<(u64, u64)> {
        self.damage
            .iter()
            .filter(|d| !d.truncated)
            .map(|d| (d.start_pos, d.end_pos))
            .collect()
    }
}

/// How a segment sits in its log, for judging offsets.
#[derive(Clone, Copy, Debug)]
pub(super) struct Bounds {
    /// The segment's base offset (from its file name).
    pub base: i64,
    /// Offsets of this segment must stay below this (the next segment's base); `None` for the
    /// active segment.
    pub upper: Option<i64>,
    /// The next segment's base, for reporting what a damaged tail lost.
    pub next_base: Option<i64>,
    /// Offsets are dense (no compaction): a gap after an intact batch needs confirmation.
    pub dense: bool,
}

impl Bounds {
    /// Bounds of segment `i` of a log whose segments start at `bases` (sorted).
    pub fn of(bases: &[i64], i: usize, dense: bool) -> Bounds {
        let next_base = bases.get(i + 1).copied();
        // An interrupted compaction can leave segments starting inside a merged one (open
        // removes them), so in compacted logs only the active segment's base bounds older ones.
        let upper = match (next_base, dense) {
            (None, _) => None,
            (Some(_), true) => next_base,
            (Some(_), false) => bases.last().copied(),
        };
        Bounds {
            base: bases[i],
            upper,
            next_base,
            dense,
        }
    }

    fn active(&self) -> bool {
        self.upper.is_none()
    }

    fn limit(&self) -> i64 {
        self.upper.unwrap_or(i64::MAX)
    }
}

struct Scanner<'a> {
    win: Window<'a>,
    size: u64,
    b: Bounds,
    /// The last structural probe, reused by the next step (lookahead then acceptance).
    memo: Option<(u64, Result<Cand, String>)>,
}

impl Scanner<'_> {
    /// Header, length and CRC checks of the bytes at `pos`, offsets aside.
    fn probe(&mut self, pos: u64) -> io::Result<Result<Cand, String>> {
        if let Some((p, r)) = &self.memo {
            if *p == pos {
                return Ok(r.clone());
            }
        }
        let r = self.probe_uncached(pos)?;
        self.memo = Some((pos, r.clone()));
        Ok(r)
    }

    fn header(&mut self, pos: u64) -> io::Result<Result<Cand, String>> {
        if self.size - pos < HEADER_SIZE as u64 {
            return Ok(Err(format!(
                "{} bytes left, too few for a batch header",
                self.size - pos
            )));
        }
        let h = self.win.get(pos, HEADER_SIZE as u64)?;
        let view = match BatchView::new(h) {
            Ok(v) => v,
            Err(e) => return Ok(Err(format!("unreadable batch header: {e}"))),
        };
        let size = view.size() as u64;
        if size > self.size - pos {
            return Ok(Err(format!(
                "batch length {} runs past the end of the file",
                view.batch_length()
            )));
        }
        if view.last_offset_delta() < 0 {
            return Ok(Err(format!(
                "negative last offset delta {}",
                view.last_offset_delta()
            )));
        }
        let Some(next) = view
            .base_offset()
            .checked_add(view.last_offset_delta() as i64 + 1)
        else {
            return Ok(Err(format!("base offset {} overflows", view.base_offset())));
        };
        Ok(Ok(Cand {
            size,
            base: view.base_offset(),
            next,
            max_ts: view.max_timestamp(),
        }))
    }

    fn probe_uncached(&mut self, pos: u64) -> io::Result<Result<Cand, String>> {
        let c = match self.header(pos)? {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        if c.size <= CHUNK {
            let full = self.win.get(pos, c.size)?;
            let view = BatchView::new_complete(full).expect("header checked");
            if let Err(e) = view.check_crc() {
                return Ok(Err(format!("batch at offset {}: {e}", c.base)));
            }
            return Ok(Ok(c));
        }
        // A huge length (damage, or a batch larger than any limit in force now) is checked in
        // chunks, so scanning never holds more than a chunk of it in memory.
        let stored =
            u32::from_be_bytes(self.win.get(pos + CRC_AT, 4)?.try_into().expect("4 bytes"));
        let mut crc = 0u32;
        let mut at = pos + CRC_COVERED_FROM;
        let end = pos + c.size;
        while at < end {
            let n = (end - at).min(CHUNK);
            crc = crc32c::crc32c_append(crc, self.win.get(at, n)?);
            at += n;
        }
        if crc != stored {
            return Ok(Err(format!(
                "batch at offset {}: crc mismatch: stored {stored:#010x}, computed {crc:#010x}",
                c.base
            )));
        }
        Ok(Ok(c))
    }

    /// Whether the batch at `pos` is intact given that the previous intact data ended at
    /// `expected`. `after_damage`: damage precedes it, so a gap is expected (the lost offsets).
    fn judge(
        &mut self,
        pos: u64,
        expected: i64,
        after_damage: bool,
    ) -> io::Result<Result<Cand, String>> {
        let c = match self.probe(pos)? {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        if c.base < expected {
            return Ok(Err(format!(
                "base offset {} is below {expected}, where the previous batch ended",
                c.base
            )));
        }
        if c.next > self.b.limit() {
            return Ok(Err(format!(
                "offsets {}..{} reach past the next segment's base {}",
                c.base,
                c.next,
                self.b.limit()
            )));
        }
        // Positions in a segment are relative to its base and stored as 32 bits.
        if c.base.saturating_sub(self.b.base) > MAX_RELATIVE {
            return Ok(Err(format!(
                "base offset {} is too far past the segment's base {}",
                c.base, self.b.base
            )));
        }
        // A batch starting exactly where the previous intact one ended (or at the segment's
        // base) has its base offset confirmed by that neighbour: if the next batch disagrees,
        // the next one is the damaged one, and is judged so in its turn.
        if c.base == expected && !after_damage {
            return Ok(Ok(c));
        }
        // Otherwise the base offset needs the other neighbour. Where offsets are dense (the
        // active segment always, a log that is not compacted everywhere) the next batch must
        // start exactly where this one ends; in a compacted log it must at least not start
        // inside it.
        let dense = self.b.dense || self.b.active();
        let after = pos + c.size;
        if after < self.size {
            match self.probe(after)? {
                Ok(n) if n.base < c.next => {
                    return Ok(Err(format!(
                        "base offset {} overlaps the next batch, which starts at {}",
                        c.base, n.base
                    )))
                }
                Ok(n) if dense && n.base != c.next => {
                    return Ok(Err(format!(
                        "base offset {} is not confirmed by the next batch, which starts at {}",
                        c.base, n.base
                    )))
                }
                Ok(_) => {}
                // Damage on both sides: a gap cannot be confirmed, but after damage a gap is
                // what the lost offsets look like.
                Err(_) if dense && !after_damage => {
                    return Ok(Err(format!(
                        "unconfirmed offset gap {expected}..{} before base offset {} (next batch damaged)",
                        c.base, c.base
                    )))
                }
                Err(_) => {}
            }
        } else if dense {
            match self.b.next_base {
                Some(next_base) if next_base != c.next => {
                    return Ok(Err(format!(
                        "base offset {} of the segment's last batch is not confirmed by the next segment's base {next_base}",
                        c.base
                    )))
                }
                None if !after_damage => {
                    return Ok(Err(format!(
                        "unconfirmed offset gap {expected}..{} before the last batch, base offset {}",
                        c.base, c.base
                    )))
                }
                _ => {}
            }
        }
        Ok(Ok(c))
    }

    /// The next position after `from` holding an intact batch, with cheap header filters
    /// before any CRC so garbage is skipped quickly.
    fn resync(&mut self, from: u64, expected: i64) -> io::Result<Option<(u64, Cand)>> {
        let mut p = from;
        while p + HEADER_SIZE as u64 <= self.size {
            if let Ok(h) = self.header(p)? {
                if h.base >= expected && h.next <= self.b.limit() {
                    if let Ok(c) = self.judge(p, expected, true)? {
                        return Ok(Some((p, c)));
                    }
                }
            }
            p += 1;
        }
        Ok(None)
    }
}

/// Checks every batch of a segment file of `size` bytes, building its indexes on the way.
pub(super) fn scan_segment(
    file: &File,
    size: u64,
    b: Bounds,
    interval: u32,
) -> io::Result<SegmentScan> {
    let mut s = Scanner {
        win: Window::new(file, size),
        size,
        b,
        memo: None,
    };
    let mut out = SegmentScan {
        idx: Indexes::default(),
        batches: 0,
        valid_end: size,
        next_offset: b.base,
        first_ts: None,
        damage: Vec::new(),
    };
    let mut pos = 0u64;
    let mut after_damage = false;
    while pos < size {
        let c = match s.judge(pos, out.next_offset, after_damage)? {
            Ok(c) => c,
            Err(reason) => {
                let found = s.resync(pos + 1, out.next_offset)?;
                let (end_pos, end_offset) = match found {
                    Some((p, c)) => (p, Some(c.base)),
                    None => (size, b.next_base),
                };
                let truncated = found.is_none() && b.active();
                out.damage.push(Damage {
                    segment: b.base,
                    start_pos: pos,
                    end_pos,
                    first_offset: out.next_offset,
                    end_offset,
                    reason,
                    truncated,
                });
                if truncated {
                    out.valid_end = pos;
                }
                pos = end_pos;
                after_damage = true;
                continue;
            }
        };
        if out.batches == 0 {
            out.first_ts = Some(c.max_ts);
        }
        out.idx
            .track_raw(b.base, pos, c.base, c.size, c.max_ts, interval);
        out.batches += 1;
        out.next_offset = c.next;
        pos += c.size;
        after_damage = false;
    }
    Ok(out)
}

/// `pos` moved past any hole starting there.
pub(super) fn skip_holes(holes: &[(u64, u64)], pos: u64) -> u64 {
    match holes.iter().find(|h| h.0 == pos) {
        Some(h) => h.1,
        None => pos,
    }
}

/// Where readable bytes from `pos` end: the next hole's start, or `limit`.
pub(super) fn readable_until(holes: &[(u64, u64)], pos: u64, limit: u64) -> u64 {
    holes
        .iter()
        .filter(|h| h.0 >= pos)
        .map(|h| h.0)
        .min()
        .unwrap_or(limit)
        .min(limit)
}
