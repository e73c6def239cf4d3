use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use cairn_log::batch::{self, BatchView};
use cairn_log::{LogConfig, PartitionLog};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
    TimestampType as WireTimestampType,
};

const DAY: i64 = 86_400_000;

fn compact_config(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        index_interval_bytes: 128,
        retention_ms: -1,
        cleanup_compact: true,
        ..LogConfig::default()
    }
}

/// (key, value) of one record; None value = tombstone, None key = keyless.
type Kv<'a> = (Option<&'a str>, Option<&'a str>);

fn encode(records: &[Kv], ts: i64, compression: Compression) -> Vec<u8> {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (k, v))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: WireTimestampType::Creation,
            offset: i as i64,
            // The encoder splits batches whenever offset - sequence changes.
            sequence: i as i32,
            timestamp: ts + i as i64,
            key: k.map(|k| Bytes::from(k.to_string())),
            value: v.map(|v| Bytes::from(v.to_string())),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options).unwrap();
    buf.to_vec()
}

/// A record as read back: (offset, timestamp, key, value).
type Rec = (i64, i64, Option<String>, Option<String>);

fn text(b: &Option<Bytes>) -> Option<String> {
    b.as_ref().map(|b| String::from_utf8(b.to_vec()).unwrap())
}

/// Records of fetched data at or after `from`, and the offset to fetch next.
fn decode_from(data: &[u8], from: i64) -> (Vec<Rec>, i64) {
    let mut next = from;
    for view in batch::batches(data) {
        let view = view.unwrap();
        assert!(view.verify_crc());
        next = view.next_offset();
    }
    let mut buf = Bytes::copy_from_slice(data);
    let sets = RecordBatchDecoder::decode_all(&mut buf).unwrap();
    let recs = sets
        .iter()
        .flat_map(|s| s.records.iter())
        .filter(|r| r.offset >= from)
        .map(|r| (r.offset, r.timestamp, text(&r.key), text(&r.value)))
        .collect();
    (recs, next)
}

/// Everything from the log start, following batch ends like a consumer does.
fn read_all(log: &PartitionLog) -> Vec<Rec> {
    let mut out = Vec::new();
    let mut next = log.log_start_offset();
    while next < log.log_end_offset() {
        let r = log.read(next, 300).unwrap();
        assert!(!r.data.is_empty(), "no data at {next}");
        let (recs, after) = decode_from(&r.data, next);
        assert!(after > next);
        out.extend(recs);
        next = after;
    }
    let offsets: Vec<i64> = out.iter().map(|r| r.0).collect();
    assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
    out
}

/// Reads like the broker's offsets-topic replay: resumes after the last record
/// seen and gives up when a fetch brings nothing new. That works only because a
/// compacted batch never ends past its last record and empty segments are skipped.
fn read_by_records(log: &PartitionLog) -> Vec<Rec> {
    let mut out = Vec::new();
    let mut next = log.log_start_offset();
    while next < log.log_end_offset() {
        let r = log.read(next, 300).unwrap();
        let (recs, _) = decode_from(&r.data, next);
        let Some(last) = recs.last() else { break };
        next = last.0 + 1;
        out.extend(recs);
    }
    out
}

fn segment_bases(dir: &Path) -> Vec<i64> {
    let mut bases: Vec<i64> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".log").map(|s| s.parse().unwrap())
        })
        .collect();
    bases.sort();
    bases
}

/// Appends one batch whose values name their own offset ("<key>@<offset>").
fn put(log: &PartitionLog, keys: &[&str], ts: i64) -> i64 {
    let base = log.log_end_offset();
    let values: Vec<String> = (0..keys.len())
        .map(|i| format!("{}@{}", keys[i], base + i as i64))
        .collect();
    let kvs: Vec<Kv> = keys
        .iter()
        .zip(&values)
        .map(|(k, v)| (Some(*k), Some(v.as_str())))
        .collect();
    log.append(&encode(&kvs, ts, Compression::None), ts)
        .unwrap();
    base
}

fn tombstone(log: &PartitionLog, key: &str, ts: i64) -> i64 {
    let base = log.log_end_offset();
    log.append(&encode(&[(Some(key), None)], ts, Compression::None), ts)
        .unwrap();
    base
}

/// What a correct compaction leaves: the newest record per key below `active_base`,
/// everything from `active_base` on.
fn expected_after(before: &[Rec], active_base: i64) -> Vec<Rec> {
    let mut newest: BTreeMap<&str, i64> = BTreeMap::new();
    for r in before {
        if let Some(k) = &r.2 {
            newest.insert(k, r.0);
        }
    }
    before
        .iter()
        .filter(|r| r.0 >= active_base || r.2.as_deref().and_then(|k| newest.get(k)) == Some(&r.0))
        .cloned()
        .collect()
}

/// Many keys rewritten many times, spread over many small segments.
fn churn(log: &PartitionLog, rounds: usize) {
    let keys = ["a", "b", "c", "d", "e", "f", "g"];
    for round in 0..rounds {
        let n = 1 + round % 3;
        let chosen: Vec<&str> = (0..n)
            .map(|i| keys[(round * 5 + i * 3) % keys.len()])
            .collect();
        put(log, &chosen, 1_000 + round as i64 * 10);
    }
}

#[test]
fn keeps_newest_value_per_key_at_original_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), compact_config(600)).unwrap();
    churn(&log, 120);
    let before = read_all(&log);
    let (start, end) = (log.log_start_offset(), log.log_end_offset());
    let segments = log.segment_count();
    assert!(segments > 5);
    let active_base = *segment_bases(dir.path()).last().unwrap();

    let stats = log.compact(2_000).unwrap();
    let after = read_all(&log);
    assert_eq!(after, expected_after(&before, active_base));
    assert_eq!(read_by_records(&log), after);
    assert_eq!(stats.records_removed as usize, before.len() - after.len());
    assert_eq!(stats.segments_before, segments - 1);
    assert!(stats.segments_after < stats.segments_before, "{stats:?}");
    assert!(stats.bytes_after < stats.bytes_before);
    assert_eq!(log.segment_count(), stats.segments_after + 1);
    assert_eq!(segment_bases(dir.path()).len(), log.segment_count());
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (start, end));

    // Nothing appended and no tombstones waiting: the next pass is skipped outright.
    let files_before = segment_bases(dir.path());
    assert_eq!(log.compact(2_000).unwrap(), Default::default());
    assert_eq!(segment_bases(dir.path()), files_before);
    // A fresh instance has no such memory; its pass finds nothing and rewrites nothing.
    drop(log);
    let log = PartitionLog::open(dir.path(), compact_config(600)).unwrap();
    let again = log.compact(2_000).unwrap();
    assert_eq!(again.records_removed, 0);
    assert_eq!(again.segments_after, again.segments_before);
    assert!(again.segments_before > 0);
    assert_eq!(segment_bases(dir.path()), files_before);
    assert_eq!(read_all(&log), after);

    // Appends continue at the same end.
    let next = put(&log, &["a"], 5_000);
    assert_eq!(next, end);
}

#[test]
fn key_rewritten_in_active_segment_removes_older_copies() {
    let dir = tempfile::tempdir().unwrap();
    // Every append rolls, so each batch is a segment of its own.
    let log = PartitionLog::open(dir.path(), compact_config(1)).unwrap();
    put(&log, &["x", "y"], 10);
    put(&log, &["z"], 20);
    let newest_x = put(&log, &["x"], 30);
    assert_eq!(log.segment_count(), 3);
    let stats = log.compact(100).unwrap();
    assert_eq!(stats.records_removed, 1);
    let after = read_all(&log);
    let keys: Vec<(i64, &str)> = after
        .iter()
        .map(|r| (r.0, r.2.as_deref().unwrap()))
        .collect();
    assert_eq!(keys, vec![(1, "y"), (2, "z"), (newest_x, "x")]);
    // The first segment lost its first record, but still starts the log.
    assert_eq!(log.log_start_offset(), 0);
    assert_eq!(segment_bases(dir.path())[0], 0);
}

#[test]
fn only_active_segment_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), compact_config(1 << 20)).unwrap();
    for _ in 0..5 {
        put(&log, &["k", "k", "k"], 10);
    }
    let before = read_all(&log);
    let stats = log.compact(i64::MAX / 2).unwrap();
    assert_eq!(stats, Default::default());
    assert_eq!(read_all(&log), before);
    assert_eq!(log.segment_count(), 1);

    // Not compacted at all unless the config says so.
    let plain = LogConfig {
        cleanup_compact: false,
        ..compact_config(1)
    };
    let dir2 = tempfile::tempdir().unwrap();
    let log2 = PartitionLog::open(dir2.path(), plain).unwrap();
    put(&log2, &["k"], 1);
    put(&log2, &["k"], 2);
    put(&log2, &["k"], 3);
    assert_eq!(log2.compact(100).unwrap(), Default::default());
    assert_eq!(read_all(&log2).len(), 3);
}

#[test]
fn tombstones_expire_after_delete_retention() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), compact_config(1)).unwrap();
    let t0 = 1_000_000;
    put(&log, &["gone", "kept"], t0);
    let grave = tombstone(&log, "gone", t0 + 10);
    put(&log, &["other"], t0 + 20); // active

    // Young tombstone: the value it deletes goes, the tombstone stays.
    let stats = log.compact(t0 + 10 + DAY).unwrap();
    assert_eq!((stats.records_removed, stats.tombstones_expired), (1, 0));
    let after: Vec<(i64, Option<String>)> =
        read_all(&log).into_iter().map(|r| (r.0, r.3)).collect();
    assert_eq!(
        after,
        vec![
            (1, Some("kept@1".into())),
            (grave, None),
            (grave + 1, Some("other@3".into()))
        ]
    );

    assert_eq!(stats.tombstones_kept, 1);
    assert_eq!(read_by_records(&log).len(), 3);

    // Old enough: the tombstone itself goes (a kept tombstone means the pass is not skipped).
    let stats = log.compact(t0 + 11 + DAY).unwrap();
    assert_eq!((stats.records_removed, stats.tombstones_expired), (1, 1));
    let offsets: Vec<i64> = read_all(&log).iter().map(|r| r.0).collect();
    assert_eq!(offsets, vec![1, grave + 1]);
    assert_eq!(log.log_start_offset(), 0);
    assert_eq!(log.log_end_offset(), grave + 2);
}

#[test]
fn keyless_records_are_dropped_and_compressed_batches_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), compact_config(1)).unwrap();
    let recs: Vec<Kv> = vec![
        (Some("a"), Some("a0")),
        (None, Some("nokey")),
        (Some("b"), Some("b0")),
        (Some("a"), Some("a1")),
    ];
    log.append(&encode(&recs, 100, Compression::Gzip), 0)
        .unwrap();
    // Untouched compressed batches keep their bytes.
    let keep: Vec<Kv> = vec![(Some("c"), Some("c0")), (Some("d"), Some("d0"))];
    let kept_batch = encode(&keep, 200, Compression::Snappy);
    log.append(&kept_batch, 0).unwrap();
    put(&log, &["e"], 300);
    let stats = log.compact(1_000).unwrap();
    assert_eq!(stats.records_removed, 2);
    let got: Vec<(i64, i64, String)> = read_all(&log)
        .into_iter()
        .map(|r| (r.0, r.1, r.3.unwrap()))
        .collect();
    assert_eq!(
        got,
        vec![
            (2, 102, "b0".into()),
            (3, 103, "a1".into()),
            (4, 200, "c0".into()),
            (5, 201, "d0".into()),
            (6, 300, "e@6".into()),
        ]
    );
    let r = log.read(0, 1).unwrap();
    let v = BatchView::new_complete(&r.data[..]).unwrap();
    assert_eq!(
        (v.base_offset(), v.last_offset(), v.record_count()),
        (0, 3, 2)
    );
    assert_eq!(v.max_timestamp(), 103);
    let r = log.read(4, 1).unwrap();
    assert_eq!(
        &r.data[12..],
        &kept_batch[12..],
        "only the base offset differs"
    );
}

#[test]
fn reads_and_time_lookups_across_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), compact_config(1)).unwrap();
    // Offsets 0-3 in one batch at ts 100-103, then 4-5 at 200-201, then active.
    put(&log, &["a", "b", "c", "d"], 100);
    put(&log, &["a", "b"], 200);
    put(&log, &["c"], 300);
    log.compact(1_000).unwrap();
    // Left: d@3 (ts 103), a@4 (200), b@5 (201), c@6 (300).
    let offsets: Vec<i64> = read_all(&log).iter().map(|r| r.0).collect();
    assert_eq!(offsets, vec![3, 4, 5, 6]);

    for (from, first) in [(0, 3), (1, 3), (3, 3), (4, 4), (5, 5), (6, 6)] {
        let r = log.read(from, 1).unwrap();
        let (recs, _) = decode_from(&r.data, from);
        assert_eq!(recs[0].0, first, "fetch from {from}");
    }
    assert!(log.read(7, 1).unwrap().data.is_empty());

    // Timestamps of removed records resolve to the next surviving one.
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((3, 103)));
    assert_eq!(log.offset_for_timestamp(101).unwrap(), Some((3, 103)));
    assert_eq!(log.offset_for_timestamp(104).unwrap(), Some((4, 200)));
    assert_eq!(log.offset_for_timestamp(201).unwrap(), Some((5, 201)));
    assert_eq!(log.offset_for_timestamp(250).unwrap(), Some((6, 300)));
    assert_eq!(log.offset_for_timestamp(301).unwrap(), None);
    assert_eq!(log.max_timestamp().unwrap(), Some((6, 300)));
}

#[test]
fn whole_segments_compacted_away_keep_log_start_and_reads() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), compact_config(1)).unwrap();
    for i in 0..6 {
        put(&log, &["same"], i * 10);
    }
    log.compact(1_000).unwrap();
    // Only the active segment's record is left; the first segment stays, empty.
    let all = read_all(&log);
    assert_eq!(all.iter().map(|r| r.0).collect::<Vec<_>>(), vec![5]);
    assert_eq!(log.log_start_offset(), 0);
    assert_eq!(log.log_end_offset(), 6);
    assert_eq!(segment_bases(dir.path()), vec![0, 5]);
    let r = log.read(0, 1).unwrap();
    assert_eq!(decode_from(&r.data, 0).0[0].0, 5);
    assert_eq!(read_by_records(&log), all);
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((5, 50)));
    drop(log);
    let log = PartitionLog::open(dir.path(), compact_config(1)).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 6));
    assert_eq!(read_all(&log), all);
}

#[test]
fn reopen_after_compaction_clean_and_unclean() {
    for clean in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let config = compact_config(500);
        let log = PartitionLog::open(dir.path(), config.clone()).unwrap();
        churn(&log, 80);
        log.compact(5_000).unwrap();
        // A little more after compaction, so the active segment has something to recover.
        churn(&log, 7);
        let contents = read_all(&log);
        let end = log.log_end_offset();
        let count = log.segment_count();
        if clean {
            log.close().unwrap();
        }
        drop(log);
        let log = PartitionLog::open(dir.path(), config.clone()).unwrap();
        assert_eq!(log.log_end_offset(), end, "clean={clean}");
        assert_eq!(log.segment_count(), count);
        assert_eq!(read_all(&log), contents);
        // Index files are rebuilt identically when lost.
        for base in segment_bases(dir.path()) {
            let _ = fs::remove_file(dir.path().join(format!("{base:020}.index")));
            let _ = fs::remove_file(dir.path().join(format!("{base:020}.timeindex")));
        }
        drop(log);
        let log = PartitionLog::open(dir.path(), config).unwrap();
        assert_eq!(read_all(&log), contents);
        assert_eq!(
            log.offset_for_timestamp(0).unwrap().unwrap().0,
            contents[0].0
        );
    }
}

#[test]
fn crash_mid_compaction_recovers_old_or_new() {
    let dir = tempfile::tempdir().unwrap();
    let config = compact_config(700);
    let log = PartitionLog::open(dir.path(), config.clone()).unwrap();
    // A key per batch that is never rewritten keeps every segment non-empty, so
    // all segments vanish by being merged (none is emptied and deleted).
    for i in 0..100 {
        let unique = format!("u{i}");
        put(
            &log,
            &[&unique, "a", "b", "c", "d", "e", "f", "g", "h", "i"],
            1_000 + i as i64,
        );
    }
    let old_bases = segment_bases(dir.path());
    let saved: Vec<(i64, Vec<u8>)> = old_bases
        .iter()
        .map(|b| {
            (
                *b,
                fs::read(dir.path().join(format!("{b:020}.log"))).unwrap(),
            )
        })
        .collect();
    let before = read_all(&log);
    let active_base = *old_bases.last().unwrap();
    log.compact(5_000).unwrap();
    let after = read_all(&log);
    assert_eq!(after, expected_after(&before, active_base));
    let new_bases = segment_bases(dir.path());
    let merged_away: Vec<&(i64, Vec<u8>)> = saved
        .iter()
        .filter(|(b, _)| !new_bases.contains(b))
        .collect();
    assert!(!merged_away.is_empty(), "expected some segments merged");
    drop(log);

    // Crash after renaming a merged segment into place, before deleting the rest of
    // its group: those leftovers overlap the merged segment and are removed.
    for (b, bytes) in &merged_away {
        fs::write(dir.path().join(format!("{b:020}.log")), bytes).unwrap();
    }
    // Crash while writing a cleaned file: the temp file is swept.
    fs::write(dir.path().join(format!("{:020}.cleaned.tmp", 0)), b"junk").unwrap();
    let log = PartitionLog::open(dir.path(), config.clone()).unwrap();
    assert_eq!(segment_bases(dir.path()), new_bases);
    assert!(!dir.path().join(format!("{:020}.cleaned.tmp", 0)).exists());
    assert_eq!(read_all(&log), after);
    drop(log);

    // Crash before any rename: all old segments, which still read as before.
    for b in segment_bases(dir.path()) {
        fs::remove_file(dir.path().join(format!("{b:020}.log"))).unwrap();
    }
    for (b, bytes) in &saved {
        fs::write(dir.path().join(format!("{b:020}.log")), bytes).unwrap();
    }
    let log = PartitionLog::open(dir.path(), config).unwrap();
    assert_eq!(read_all(&log), before);
    log.compact(5_000).unwrap();
    assert_eq!(read_all(&log), after);
}

#[test]
fn concurrent_reads_and_appends_during_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(PartitionLog::open(dir.path(), compact_config(400)).unwrap());
    churn(&log, 150);
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let log = log.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut passes = 0;
                while !stop.load(Ordering::Relaxed) || passes < 3 {
                    for r in read_all(&log) {
                        let key = r.2.unwrap();
                        assert_eq!(r.3.unwrap(), format!("{key}@{}", r.0));
                    }
                    passes += 1;
                }
            })
        })
        .collect();
    let writer = {
        let log = log.clone();
        std::thread::spawn(move || churn(&log, 150))
    };
    for i in 0..20 {
        log.compact(10_000 + i).unwrap();
    }
    writer.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    // Nothing newest was lost.
    let before_final = read_all(&log);
    log.compact(20_000).unwrap();
    let active_base = *segment_bases(dir.path()).last().unwrap();
    assert_eq!(read_all(&log), expected_after(&before_final, active_base));
}

/// Newest value per key, which is what a replaying reader ends up with.
fn final_state(recs: &[Rec]) -> BTreeMap<String, Option<String>> {
    let mut state = BTreeMap::new();
    for r in recs {
        if let Some(k) = &r.2 {
            state.insert(k.clone(), r.3.clone());
        }
    }
    state.retain(|_, v| v.is_some());
    state
}

#[test]
fn crash_before_removing_emptied_segments_is_harmless() {
    let dir = tempfile::tempdir().unwrap();
    let config = compact_config(1);
    let log = PartitionLog::open(dir.path(), config.clone()).unwrap();
    put(&log, &["a", "gone"], 0);
    tombstone(&log, "gone", 10);
    put(&log, &["a"], 20);
    put(&log, &["a"], 30);
    let saved: Vec<(i64, Vec<u8>)> = segment_bases(dir.path())
        .iter()
        .map(|b| {
            (
                *b,
                fs::read(dir.path().join(format!("{b:020}.log"))).unwrap(),
            )
        })
        .collect();
    let before = read_all(&log);
    let stats = log.compact(10 + 2 * DAY).unwrap();
    assert_eq!(stats.tombstones_expired, 1);
    let after = read_all(&log);
    assert_eq!(after.iter().map(|r| r.0).collect::<Vec<_>>(), vec![4]);
    // The first segment stays (empty) to hold the log start; the others are gone.
    assert_eq!(segment_bases(dir.path()), vec![0, 4]);
    drop(log);

    // Emptied segments are deleted only after everything before them was replaced,
    // so a crash can leave some of them behind, but nothing they held comes back to life.
    for (b, bytes) in &saved[1..3] {
        fs::write(dir.path().join(format!("{b:020}.log")), bytes).unwrap();
    }
    let log = PartitionLog::open(dir.path(), config).unwrap();
    let recovered = read_all(&log);
    assert_eq!(recovered.len(), 3, "{recovered:?}");
    assert_eq!(final_state(&recovered), final_state(&after));
    assert_eq!(final_state(&before), final_state(&after));
    log.compact(10 + 2 * DAY).unwrap();
    assert_eq!(read_all(&log), after);
    assert_eq!(segment_bases(dir.path()), vec![0, 4]);
}

#[test]
fn timestamp_at_a_compacted_offset_is_the_next_records() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), compact_config(600)).unwrap();
    churn(&log, 120);
    log.compact(2_000).unwrap();
    let kept = read_all(&log);
    // Every offset between two kept records reports the later record's timestamp.
    let end = log.log_end_offset();
    for offset in log.log_start_offset()..end {
        let next = kept.iter().find(|r| r.0 >= offset).map(|r| r.1);
        assert_eq!(log.timestamp_at(offset).unwrap(), next, "offset {offset}");
    }
    assert_eq!(log.timestamp_at(end).unwrap(), None);
}
