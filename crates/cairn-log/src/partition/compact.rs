//! Key-based compaction (Kafka's log cleaner, simplified).
//!
//! One pass maps every key to its newest offset over the whole log, then
//! rewrites the non-active segments keeping only those newest records, merging
//! neighbours while the result fits in one segment. Offsets never change, so a
//! compacted log has gaps between and inside batches.
//!
//! Crash safety: a merged group is written to a temp file, fsynced and renamed
//! over its first segment, and only then are the group's other segments
//! deleted. A crash leaves either the old first segment (temp files are swept on
//! open) or the new one plus leftovers that overlap it, which open removes.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use tracing::{debug, info};

use super::scan::skip_holes;
use super::{
    segment_path, Indexes, LogError, PartitionLog, Segment, INDEX_SUFFIX, LOG_SUFFIX, MAX_RELATIVE,
    TIME_INDEX_SUFFIX,
};
use crate::batch::{self, BatchView, HEADER_SIZE};

const CLEANED_SUFFIX: &str = "cleaned.tmp";

/// What one compaction pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactStats {
    /// Non-active segments examined.
    pub segments_before: usize,
    /// Segments they amount to afterwards.
    pub segments_after: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// Records dropped for any reason: superseded, keyless or expired tombstones.
    pub records_removed: u64,
    /// Of those, tombstones dropped because they outlived `delete.retention.ms`.
    pub tombstones_expired: u64,
    /// Tombstones still too young to drop.
    pub tombstones_kept: u64,
}

/// What the last compaction pass left, to skip passes that cannot change anything.
#[derive(Default)]
pub(super) struct CleanerState {
    /// (log end, delete retention) of a pass that left no tombstones behind: until
    /// more is appended, another pass would find nothing to drop.
    clean: Option<(i64, i64)>,
}

/// A segment as it was when the pass started.
struct Snapshot {
    base: i64,
    file: Arc<File>,
    size: u64,
    next_offset: i64,
    holes: Vec<(u64, u64)>,
}

/// Calls `f` with every batch of `file` below `size`, CRC-checked, reading in
/// large chunks with positioned reads so concurrent readers are unaffected.
fn for_each_batch(
    file: &File,
    size: u64,
    holes: &[(u64, u64)],
    mut f: impl FnMut(&BatchView<&[u8]>) -> Result<(), LogError>,
) -> Result<(), LogError> {
    const CHUNK: u64 = 1 << 20;
    let mut buf = Vec::new();
    let mut buf_start = 0u64;
    let mut pos = 0u64;
    let fill = |buf: &mut Vec<u8>, buf_start: &mut u64, at: u64, len: u64| -> io::Result<()> {
        if at >= *buf_start && at + len <= *buf_start + buf.len() as u64 {
            return Ok(());
        }
        buf.resize(len.max(CHUNK).min(size - at) as usize, 0);
        file.read_exact_at(buf, at)?;
        *buf_start = at;
        Ok(())
    };
    let corrupt = |pos: u64, what: &str| LogError::CorruptBatch(format!("{what} at {pos}"));
    loop {
        // Damaged ranges found on open are skipped: the rewritten segment keeps the intact
        // batches with their offsets, and the damage (logged at open) becomes a plain gap.
        pos = skip_holes(holes, pos);
        if pos >= size {
            break;
        }
        if size - pos < HEADER_SIZE as u64 {
            return Err(corrupt(pos, "torn header"));
        }
        fill(&mut buf, &mut buf_start, pos, HEADER_SIZE as u64)?;
        let at = (pos - buf_start) as usize;
        let batch_size = BatchView::new(&buf[at..at + HEADER_SIZE])?.size() as u64;
        if size - pos < batch_size {
            return Err(corrupt(pos, "torn batch"));
        }
        fill(&mut buf, &mut buf_start, pos, batch_size)?;
        let at = (pos - buf_start) as usize;
        let view = BatchView::new_complete(&buf[at..at + batch_size as usize])?;
        // Never carry corruption into a rewritten segment.
        view.check_crc()?;
        f(&view)?;
        pos += batch_size;
    }
    Ok(())
}

fn record_count(view: &BatchView<&[u8]>) -> Result<usize, LogError> {
    usize::try_from(view.record_count())
        .map_err(|_| LogError::CorruptBatch(format!("record count {}", view.record_count())))
}

/// Newest offset of every key in the given segments (control batches aside). Records of
/// transactional batches never count as a key's newest value: their transaction may have
/// aborted, and an aborted record must not make compaction drop the committed one before it.
/// `limit` bounds each batch's inflated records (`LogConfig::max_uncompressed_bytes`).
fn latest_offsets(segments: &[Snapshot], limit: usize) -> Result<HashMap<Vec<u8>, i64>, LogError> {
    let mut latest: HashMap<Vec<u8>, i64> = HashMap::new();
    for seg in segments {
        for_each_batch(&seg.file, seg.size, &seg.holes, |view| {
            if view.is_control() || view.is_transactional() {
                return Ok(());
            }
            let data = view.decompressed_records(limit)?;
            for span in batch::record_spans(&data, record_count(view)?)? {
                let Some(key) = span.key else { continue };
                let offset = view.base_offset() + span.info.offset_delta as i64;
                match latest.get_mut(&data[key.clone()]) {
                    Some(o) => *o = offset,
                    None => {
                        latest.insert(data[key].to_vec(), offset);
                    }
                }
            }
            Ok(())
        })?;
    }
    Ok(latest)
}

/// Rules for which records survive.
struct Filter<'a> {
    latest: &'a HashMap<Vec<u8>, i64>,
    now_ms: i64,
    delete_retention_ms: i64,
    /// Bound on each batch's inflated records.
    inflate_limit: usize,
}

impl Filter<'_> {
    /// Appends what survives of `view` to `out`; returns whether anything was dropped.
    fn batch(
        &self,
        view: &BatchView<&[u8]>,
        out: &mut Vec<u8>,
        stats: &mut CompactStats,
    ) -> Result<bool, LogError> {
        // Transaction markers carry no keyed data, and transactional records are kept whole
        // (whether they count depends on their marker, which compaction does not read):
        // both stay as they are.
        if view.is_control() || view.is_transactional() {
            out.extend_from_slice(view.as_bytes());
            return Ok(false);
        }
        let tombstones_expired = self.delete_retention_ms >= 0
            && self.now_ms.saturating_sub(view.max_timestamp()) > self.delete_retention_ms;
        let data = view.decompressed_records(self.inflate_limit)?;
        let spans = batch::record_spans(&data, record_count(view)?)?;
        let mut kept = Vec::with_capacity(spans.len());
        for span in &spans {
            let offset = view.base_offset() + span.info.offset_delta as i64;
            // Keyless records have no place in a compacted topic (Kafka rejects them).
            let newest = span
                .key
                .as_ref()
                .is_some_and(|k| self.latest.get(&data[k.clone()]) == Some(&offset));
            if newest && span.is_tombstone() && tombstones_expired {
                stats.tombstones_expired += 1;
            } else if newest {
                stats.tombstones_kept += span.is_tombstone() as u64;
                kept.push((&span.info, &data[span.range.clone()]));
                continue;
            }
            stats.records_removed += 1;
        }
        if kept.len() == spans.len() {
            // Untouched batches stay byte for byte, compression included.
            out.extend_from_slice(view.as_bytes());
            return Ok(false);
        }
        if !kept.is_empty() {
            out.extend_from_slice(&batch::rebuild_batch(view, &kept));
        }
        Ok(true)
    }
}

/// Consecutive segments being merged into one new file named after the first.
struct Group {
    base: i64,
    members: Vec<i64>,
    tmp_path: PathBuf,
    file: File,
    size: u64,
    next_offset: i64,
    idx: Indexes,
    changed: bool,
}

impl PartitionLog {
    /// Compacts the non-active segments of a `cleanup.policy=compact` log: keeps
    /// the newest record of each key (looking at the whole log, the active
    /// segment included), drops keyless records and tombstones older than
    /// `delete_retention_ms`, and merges small neighbours. Offsets, the log start
    /// and the log end never change. A no-op for logs that are not compacted.
    pub fn compact(&self, now_ms: i64) -> Result<CompactStats, LogError> {
        let mut cleaner = self.cleaner.lock();
        let result = self.compact_pass(now_ms, &mut cleaner);
        if result.is_err() {
            // A pass that failed (a full disk, typically) must not keep holding the space of
            // its half-written file until the next open sweeps it.
            self.remove_cleaner_files();
        }
        result
    }

    fn remove_cleaner_files(&self) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            if entry
                .file_name()
                .to_string_lossy()
                .ends_with(CLEANED_SUFFIX)
            {
                let _ = fs::remove_file(entry.path());
            }
        }
    }

    fn compact_pass(
        &self,
        now_ms: i64,
        cleaner: &mut CleanerState,
    ) -> Result<CompactStats, LogError> {
        let config = self.config();
        let mut stats = CompactStats::default();
        if !config.cleanup_compact {
            return Ok(stats);
        }
        if cleaner.clean == Some((self.log_end_offset(), config.delete_retention_ms)) {
            return Ok(stats);
        }
        let snapshot: Vec<Snapshot> = {
            let inner = self.inner.lock();
            inner
                .segments
                .iter()
                .map(|s| Snapshot {
                    base: s.base,
                    file: s.log.clone(),
                    size: s.size,
                    next_offset: s.next_offset,
                    holes: s.holes.clone(),
                })
                .collect()
        };
        // The active segment is never rewritten, but its keys still supersede older copies.
        let dirty = &snapshot[..snapshot.len() - 1];
        let end = snapshot.last().expect("non-empty").next_offset;
        if dirty.is_empty() {
            return Ok(stats);
        }
        stats.segments_before = dirty.len();
        stats.bytes_before = dirty.iter().map(|s| s.size).sum();

        let inflate_limit = config.max_uncompressed_bytes();
        let latest = latest_offsets(&snapshot, inflate_limit)?;
        let filter = Filter {
            latest: &latest,
            now_ms,
            delete_retention_ms: config.delete_retention_ms,
            inflate_limit,
        };
        let interval = config.index_interval_bytes;
        let mut group: Option<Group> = None;
        // Segments left with nothing, not yet placed in a group. A group may start with
        // such segments but never end with them: every segment merged into a group
        // other than its first must begin before the group's end, which is how open()
        // recognizes those left behind by a crash mid-swap.
        let mut empties: Vec<(i64, bool)> = Vec::new();
        let mut out = Vec::new();
        for seg in dirty {
            out.clear();
            let mut changed = false;
            for_each_batch(&seg.file, seg.size, &seg.holes, |view| {
                changed |= filter.batch(view, &mut out, &mut stats)?;
                Ok(())
            })?;
            if out.is_empty() {
                empties.push((seg.base, seg.size > 0));
                continue;
            }
            let last_offset = seg.next_offset - 1;
            let new_size = group.as_ref().map_or(0, |g| g.size) + out.len() as u64;
            let fits = group.as_ref().is_some_and(|g| {
                new_size <= config.segment_bytes
                    && new_size <= MAX_RELATIVE as u64
                    && last_offset - g.base <= MAX_RELATIVE
            });
            if !fits {
                if let Some(g) = group.take() {
                    self.finish_group(g, &mut stats)?;
                }
                if empties
                    .first()
                    .is_some_and(|e| last_offset - e.0 > MAX_RELATIVE)
                {
                    self.finish_empties(&mut empties, &mut stats)?;
                }
                let base = empties.first().map_or(seg.base, |e| e.0);
                group = Some(self.start_group(base)?);
            }
            let g = group.as_mut().expect("just ensured");
            for (base, had_data) in empties.drain(..) {
                g.add(&[], base, interval, had_data)?;
            }
            g.add(&out, seg.base, interval, changed)?;
        }
        if let Some(g) = group.take() {
            self.finish_group(g, &mut stats)?;
        }
        self.finish_empties(&mut empties, &mut stats)?;
        cleaner.clean = (stats.tombstones_kept == 0).then_some((end, config.delete_retention_ms));
        if stats.records_removed > 0 || stats.segments_after != stats.segments_before {
            info!(
                dir = %self.dir.display(),
                segments_before = stats.segments_before,
                segments_after = stats.segments_after,
                bytes_before = stats.bytes_before,
                bytes_after = stats.bytes_after,
                records_removed = stats.records_removed,
                tombstones_expired = stats.tombstones_expired,
                "compacted log"
            );
        }
        Ok(stats)
    }

    /// Removes segments left with nothing. Every segment before them has been
    /// replaced already, so nothing they dropped (tombstones included) can come
    /// back by a crash. The log's first segment stays, as an empty file, because
    /// compaction must not move the log start.
    fn finish_empties(
        &self,
        empties: &mut Vec<(i64, bool)>,
        stats: &mut CompactStats,
    ) -> Result<(), LogError> {
        for (base, had_data) in empties.drain(..) {
            let mut inner = self.inner.lock();
            if inner.segments[0].base == base {
                drop(inner);
                let mut g = self.start_group(base)?;
                g.add(&[], base, 0, had_data)?;
                self.finish_group(g, stats)?;
                continue;
            }
            let Some(i) = inner.segments.iter().position(|s| s.base == base) else {
                return Err(
                    io::Error::other(format!("segment {base} vanished during compaction")).into(),
                );
            };
            assert!(
                i + 1 < inner.segments.len(),
                "the active segment is never compacted"
            );
            let seg = inner.segments.remove(i);
            seg.delete_files(&self.dir);
            cairn_durable::sync_dir(&self.dir)?;
            drop(inner);
            debug!(dir = %self.dir.display(), base, "removed segment emptied by compaction");
        }
        Ok(())
    }

    fn start_group(&self, base: i64) -> Result<Group, LogError> {
        let tmp_path = segment_path(&self.dir, base, CLEANED_SUFFIX);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp_path)?;
        Ok(Group {
            base,
            members: Vec::new(),
            tmp_path,
            file,
            size: 0,
            next_offset: base,
            idx: Indexes::default(),
            changed: false,
        })
    }

    /// Replaces the group's segments with its new file, or keeps the old one if
    /// nothing changed.
    fn finish_group(&self, g: Group, stats: &mut CompactStats) -> Result<(), LogError> {
        stats.segments_after += 1;
        stats.bytes_after += g.size;
        if !g.changed && g.members.len() == 1 {
            drop(g.file);
            fs::remove_file(&g.tmp_path)?;
            return Ok(());
        }
        g.file.sync_all()?;
        let open_index = |suffix: &str| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(segment_path(&self.dir, g.base, suffix))
        };

        let mut inner = self.inner.lock();
        let first = inner.segments.iter().position(|s| s.base == g.base);
        let range = first.map(|i| i..i + g.members.len());
        let in_place = range.as_ref().is_some_and(|r| {
            r.end < inner.segments.len()
                && inner.segments[r.clone()]
                    .iter()
                    .map(|s| s.base)
                    .eq(g.members.iter().copied())
        });
        let (true, Some(range)) = (in_place, range) else {
            // Only the cleaner lock holder replaces non-active segments, so this is a bug.
            let _ = fs::remove_file(&g.tmp_path);
            return Err(io::Error::other(format!(
                "segments {:?} changed during compaction",
                g.members
            ))
            .into());
        };
        // Emptying the old index files first means a crash right after the rename
        // finds no stale entries for the new layout, only a rebuild to do.
        let index_file = open_index(INDEX_SUFFIX)?;
        let time_file = open_index(TIME_INDEX_SUFFIX)?;
        fs::rename(&g.tmp_path, segment_path(&self.dir, g.base, LOG_SUFFIX))?;
        let mut seg = Segment {
            base: g.base,
            log: Arc::new(g.file),
            index_file,
            time_file,
            size: g.size,
            next_offset: g.next_offset,
            idx: g.idx,
            offsets_written: 0,
            times_written: 0,
            first_batch_ts: None,
            created_ms: None,
            holes: Vec::new(),
        };
        seg.write_new_index_entries()?;
        seg.index_file.sync_data()?;
        seg.time_file.sync_data()?;
        let replaced: Vec<Segment> = inner.segments.splice(range, [seg]).collect();
        // The first one's paths now belong to the new segment.
        for old in &replaced[1..] {
            old.delete_files(&self.dir);
        }
        cairn_durable::sync_dir(&self.dir)?;
        drop(inner);
        debug!(
            dir = %self.dir.display(),
            base = g.base,
            merged = g.members.len(),
            size = g.size,
            "replaced compacted segments"
        );
        Ok(())
    }
}

impl Group {
    /// Appends one source segment's surviving batches.
    fn add(
        &mut self,
        data: &[u8],
        member: i64,
        interval: u32,
        changed: bool,
    ) -> Result<(), LogError> {
        self.file.write_all_at(data, self.size)?;
        for view in batch::batches(data) {
            let view = view?;
            let pos = self.size;
            self.idx.track(self.base, pos, &view, interval);
            self.size += view.size() as u64;
            self.next_offset = view.next_offset();
        }
        self.members.push(member);
        self.changed |= changed || self.members.len() > 1;
        Ok(())
    }
}
