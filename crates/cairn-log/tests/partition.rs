mod common;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use cairn_log::batch::{self, BatchView};
use cairn_log::{LogConfig, LogError, PartitionLog, TimestampType};
use common::*;
use kafka_protocol::records::Compression;

fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 2048,
        index_interval_bytes: 256,
        retention_ms: -1,
        ..LogConfig::default()
    }
}

fn seg_file(dir: &Path, base: i64, ext: &str) -> std::path::PathBuf {
    dir.join(format!("{base:020}.{ext}"))
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

/// Reads everything from `from` to the end, following offsets.
fn read_all(log: &PartitionLog, from: i64) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut next = from;
    while next < log.log_end_offset() {
        let r = log.read(next, 700).unwrap();
        assert!(!r.data.is_empty(), "no data at {next}");
        let recs = decode_offsets(&r.data);
        next = recs.last().unwrap().0 + 1;
        out.extend(recs);
    }
    out
}

#[test]
fn dense_offsets_across_appends_and_rolls() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    let mut expected = 0i64;
    for i in 0..120 {
        let n = 1 + i % 5;
        let info = log.append(&batch_n(n, 1000 + i as i64), 0).unwrap();
        assert_eq!(info.base_offset, expected);
        assert_eq!(info.last_offset, expected + n as i64 - 1);
        assert_eq!(info.record_count, n as u32);
        assert_eq!(info.log_append_time, -1);
        expected += n as i64;
    }
    assert_eq!(log.log_end_offset(), expected);
    assert!(log.segment_count() > 3, "expected size-based rolls");
    let recs = read_all(&log, 0);
    let offsets: Vec<i64> = recs.iter().map(|r| r.0).collect();
    assert_eq!(offsets, (0..expected).collect::<Vec<_>>());

    // Segment files are named by their base offsets, which are batch boundaries.
    let bases = segment_bases(dir.path());
    assert_eq!(bases.len(), log.segment_count());
    assert_eq!(bases[0], 0);
    for b in &bases[1..] {
        let r = log.read(*b, 1).unwrap();
        assert_eq!(BatchView::new(&r.data[..]).unwrap().base_offset(), *b);
    }
}

#[test]
fn multiple_batches_in_one_append() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    let mut input = batch_n(3, 10);
    input.extend(batch_n(2, 20));
    input.extend(batch_with(&[30, 31], Compression::Gzip));
    let info = log.append(&input, 0).unwrap();
    assert_eq!(
        (info.base_offset, info.last_offset, info.record_count),
        (0, 6, 7)
    );
    let r = log.read(0, usize::MAX).unwrap();
    let bases: Vec<i64> = batch::batches(&r.data)
        .map(|b| b.unwrap().base_offset())
        .collect();
    assert_eq!(bases, vec![0, 3, 5]);
    assert_eq!(decode_offsets(&r.data).len(), 7);
}

#[test]
fn read_inside_batch_returns_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    log.append(&batch_n(5, 1), 0).unwrap();
    log.append(&batch_n(5, 2), 0).unwrap();
    let r = log.read(3, 1).unwrap();
    let v = BatchView::new_complete(&r.data[..]).unwrap();
    assert_eq!((v.base_offset(), v.last_offset()), (0, 4));
    let r = log.read(7, 1).unwrap();
    let v = BatchView::new_complete(&r.data[..]).unwrap();
    assert_eq!((v.base_offset(), v.last_offset()), (5, 9));
    assert_eq!(r.high_watermark, 10);
    assert_eq!(r.log_start_offset, 0);
}

#[test]
fn max_bytes_is_a_soft_limit() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    let b1 = batch_n(20, 1);
    let b2 = batch_n(3, 2);
    log.append(&b1, 0).unwrap();
    log.append(&b2, 0).unwrap();
    log.append(&batch_n(3, 3), 0).unwrap();
    // Smaller than the first batch: still exactly the first batch.
    assert_eq!(log.read(0, 1).unwrap().data.len(), b1.len());
    assert_eq!(log.read(0, 0).unwrap().data.len(), b1.len());
    // Room for one and a half batches: only whole batches.
    assert_eq!(
        log.read(0, b1.len() + b2.len() - 1).unwrap().data.len(),
        b1.len()
    );
    assert_eq!(
        log.read(0, b1.len() + b2.len()).unwrap().data.len(),
        b1.len() + b2.len()
    );
    assert_eq!(
        decode_offsets(&log.read(0, 1 << 20).unwrap().data).len(),
        26
    );
}

#[test]
fn out_of_range_and_end_of_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    let empty = log.read(0, 100).unwrap();
    assert!(empty.data.is_empty());
    assert_eq!(empty.high_watermark, 0);
    log.append(&batch_n(4, 1), 0).unwrap();
    assert!(log.read(4, 100).unwrap().data.is_empty());
    match log.read(5, 100) {
        Err(LogError::OffsetOutOfRange {
            requested,
            start,
            end,
        }) => assert_eq!((requested, start, end), (5, 0, 4)),
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(
        log.read(-1, 100),
        Err(LogError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn offset_for_timestamp_finds_exact_record() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    assert_eq!(log.offset_for_timestamp(0).unwrap(), None);
    log.append(&batch(&[100, 200, 300]), 0).unwrap(); // 0..=2
    log.append(&batch(&[250, 260]), 0).unwrap(); // 3..=4, below the running max
    log.append(&batch_with(&[400, 500, 600], Compression::Lz4), 0)
        .unwrap(); // 5..=7
    log.append(&batch_with(&[700, 650, 800], Compression::Zstd), 0)
        .unwrap(); // 8..=10
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((0, 100)));
    assert_eq!(log.offset_for_timestamp(100).unwrap(), Some((0, 100)));
    assert_eq!(log.offset_for_timestamp(150).unwrap(), Some((1, 200)));
    // 300 at offset 2 comes before 250/260 at 3/4.
    assert_eq!(log.offset_for_timestamp(255).unwrap(), Some((2, 300)));
    assert_eq!(log.offset_for_timestamp(301).unwrap(), Some((5, 400)));
    assert_eq!(log.offset_for_timestamp(450).unwrap(), Some((6, 500)));
    assert_eq!(log.offset_for_timestamp(600).unwrap(), Some((7, 600)));
    assert_eq!(log.offset_for_timestamp(660).unwrap(), Some((8, 700)));
    assert_eq!(log.offset_for_timestamp(750).unwrap(), Some((10, 800)));
    assert_eq!(log.offset_for_timestamp(801).unwrap(), None);
}

#[test]
fn offset_for_timestamp_across_segments_and_codecs() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    let codecs = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];
    for i in 0..100i64 {
        let ts: Vec<i64> = (0..4).map(|j| i * 10 + j).collect();
        log.append(&batch_with(&ts, codecs[i as usize % 5]), 0)
            .unwrap();
    }
    assert!(log.segment_count() > 2);
    for i in 0..100i64 {
        for j in 0..4 {
            assert_eq!(
                log.offset_for_timestamp(i * 10 + j).unwrap(),
                Some((i * 4 + j, i * 10 + j))
            );
        }
        // Gaps between batches map to the next batch's first record.
        if i < 99 {
            assert_eq!(
                log.offset_for_timestamp(i * 10 + 5).unwrap(),
                Some(((i + 1) * 4, (i + 1) * 10))
            );
        }
    }
    assert_eq!(log.offset_for_timestamp(994).unwrap(), None);
}

#[test]
fn max_timestamp_points_at_record() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    assert_eq!(log.max_timestamp().unwrap(), None);
    log.append(&batch(&[10, 90, 20]), 0).unwrap();
    log.append(&batch_with(&[50, 60], Compression::Snappy), 0)
        .unwrap();
    assert_eq!(log.max_timestamp().unwrap(), Some((1, 90)));
    log.append(&batch_with(&[95, 99, 97], Compression::Gzip), 0)
        .unwrap();
    assert_eq!(log.max_timestamp().unwrap(), Some((6, 99)));
}

#[test]
fn header_max_timestamp_is_corrected() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    let mut b = batch(&[10, 40, 20]);
    let mut view = BatchView::new(&mut b[..]).unwrap();
    view.set_max_timestamp(5); // a lying producer
    log.append(&b, 0).unwrap();
    let r = log.read(0, 1000).unwrap();
    let v = BatchView::new_complete(&r.data[..]).unwrap();
    assert_eq!(v.max_timestamp(), 40);
    assert!(v.verify_crc());
    assert_eq!(log.offset_for_timestamp(30).unwrap(), Some((1, 40)));
}

#[test]
fn log_append_time_rewrites_batches() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        timestamp_type: TimestampType::LogAppendTime,
        ..LogConfig::default()
    };
    let log = PartitionLog::open(dir.path(), config).unwrap();
    let info = log.append(&batch(&[1, 2, 3]), 12_345).unwrap();
    assert_eq!(info.log_append_time, 12_345);
    let info = log
        .append(&batch_with(&[4, 5], Compression::Gzip), 20_000)
        .unwrap();
    assert_eq!(info.log_append_time, 20_000);

    let r = log.read(0, 1 << 20).unwrap();
    for (i, v) in batch::batches(&r.data).enumerate() {
        let v = v.unwrap();
        assert!(v.is_log_append_time());
        assert!(v.verify_crc());
        assert_eq!(v.max_timestamp(), [12_345, 20_000][i]);
    }
    // The wire decoder validates the CRC too.
    assert_eq!(decode_offsets(&r.data).len(), 5);
    assert_eq!(log.offset_for_timestamp(3).unwrap(), Some((0, 12_345)));
    assert_eq!(log.offset_for_timestamp(12_346).unwrap(), Some((3, 20_000)));
    assert_eq!(log.max_timestamp().unwrap(), Some((3, 20_000)));
}

#[test]
fn roll_by_time() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_ms: 1000,
        retention_ms: -1,
        ..LogConfig::default()
    };
    let log = PartitionLog::open(dir.path(), config).unwrap();
    log.append(&batch_n(1, 0), 0).unwrap();
    log.append(&batch_n(1, 500), 500).unwrap();
    assert_eq!(log.segment_count(), 1);
    log.append(&batch_n(1, 1500), 1500).unwrap();
    assert_eq!(log.segment_count(), 2);
    assert_eq!(segment_bases(dir.path()), vec![0, 2]);
    // The new segment's clock starts at its first batch.
    log.append(&batch_n(1, 2000), 2000).unwrap();
    assert_eq!(log.segment_count(), 2);
    log.append(&batch_n(1, 2600), 2600).unwrap();
    assert_eq!(log.segment_count(), 3);
}

#[test]
fn roll_age_uses_record_time_when_available() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_ms: 1000,
        retention_ms: -1,
        ..LogConfig::default()
    };
    let log = PartitionLog::open(dir.path(), config).unwrap();
    // Old record timestamps appended much later do not roll on every append.
    for i in 0..5 {
        log.append(&batch_n(1, 100 + i), 1_000_000 + i).unwrap();
    }
    assert_eq!(log.segment_count(), 1);
    log.append(&batch_n(1, 1200), 1_000_010).unwrap();
    assert_eq!(log.segment_count(), 2);
    // Without timestamps the broker clock decides.
    log.append(&batch_n(1, -1), 2_000_000).unwrap();
    assert_eq!(log.segment_count(), 3);
    log.append(&batch_n(1, -1), 2_000_500).unwrap();
    assert_eq!(log.segment_count(), 3);
    log.append(&batch_n(1, -1), 2_001_001).unwrap();
    assert_eq!(log.segment_count(), 4);
}

#[test]
fn retention_by_time_advances_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 1,
        retention_ms: 1000,
        ..LogConfig::default()
    };
    let log = PartitionLog::open(dir.path(), config).unwrap();
    // segment_bytes = 1 puts every batch in its own segment.
    for ts in [100, 200, 300, 5000, 6000] {
        log.append(&batch_n(2, ts), ts).unwrap();
    }
    assert_eq!(log.segment_count(), 5);
    assert_eq!(log.enforce_retention(1150).unwrap(), 1);
    assert_eq!(log.log_start_offset(), 2);
    assert_eq!(log.enforce_retention(1150).unwrap(), 0);
    assert_eq!(log.enforce_retention(5500).unwrap(), 2);
    assert_eq!(log.log_start_offset(), 6);
    assert!(matches!(
        log.read(5, 10),
        Err(LogError::OffsetOutOfRange { start: 6, .. })
    ));
    assert_eq!(log.read(6, 10).unwrap().log_start_offset, 6);
    // Far in the future everything but the active segment goes.
    assert_eq!(log.enforce_retention(1_000_000).unwrap(), 1);
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.log_start_offset(), 8);
    assert_eq!(segment_bases(dir.path()), vec![8]);
    let info = log.append(&batch_n(1, 7000), 7000).unwrap();
    assert_eq!(info.base_offset, 10);
    assert_eq!(info.log_start_offset, 8);

    // The advanced start survives a reopen.
    drop(log);
    let log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (8, 11));
}

#[test]
fn retention_by_size() {
    let dir = tempfile::tempdir().unwrap();
    let one = batch_n(3, 1).len() as i64;
    let config = LogConfig {
        segment_bytes: 1,
        retention_ms: -1,
        retention_bytes: one * 3,
        ..LogConfig::default()
    };
    let log = PartitionLog::open(dir.path(), config.clone()).unwrap();
    for _ in 0..6 {
        log.append(&batch_n(3, 1), 1).unwrap();
    }
    assert_eq!(log.size_bytes() as i64, one * 6);
    assert_eq!(log.enforce_retention(0).unwrap(), 3);
    assert_eq!(log.size_bytes() as i64, one * 3);
    assert_eq!(log.log_start_offset(), 9);
    // Not below the limit, and never the active segment.
    log.set_config(LogConfig {
        retention_bytes: 0,
        ..config
    });
    assert_eq!(log.enforce_retention(0).unwrap(), 2);
    assert_eq!(log.log_start_offset(), 15);
    assert_eq!(log.segment_count(), 1);
}

#[test]
fn torn_tail_is_truncated_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut sizes = Vec::new();
    {
        let log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
        for i in 0..10 {
            let b = batch_n(3, i);
            sizes.push(b.len() as u64);
            log.append(&b, 0).unwrap();
        }
        log.sync().unwrap();
        // Dropped without close(): looks like a crash.
    }
    let log_path = seg_file(dir.path(), 0, "log");
    let mut f = OpenOptions::new().append(true).open(&log_path).unwrap();
    f.write_all(&[0xAB; 100]).unwrap();
    drop(f);
    {
        let log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
        assert_eq!(log.log_end_offset(), 30);
        assert_eq!(
            fs::metadata(&log_path).unwrap().len(),
            sizes.iter().sum::<u64>()
        );
        let offsets: Vec<i64> = read_all(&log, 0).iter().map(|r| r.0).collect();
        assert_eq!(offsets, (0..30).collect::<Vec<_>>());
    }
    // Now chop the last batch in half.
    let full: u64 = sizes.iter().sum();
    let f = OpenOptions::new().write(true).open(&log_path).unwrap();
    f.set_len(full - sizes[9] / 2).unwrap();
    drop(f);
    let log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(log.log_end_offset(), 27);
    let info = log.append(&batch_n(2, 99), 0).unwrap();
    assert_eq!(info.base_offset, 27);
    let offsets: Vec<i64> = read_all(&log, 0).iter().map(|r| r.0).collect();
    assert_eq!(offsets, (0..29).collect::<Vec<_>>());
}

#[test]
fn corrupted_batch_in_the_active_segment_becomes_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let first_len = batch_n(3, 1).len();
    {
        let log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
        log.append(&batch_n(3, 1), 0).unwrap();
        log.append(&batch_n(3, 2), 0).unwrap();
        log.append(&batch_n(3, 3), 0).unwrap();
    }
    // Flip a byte inside the second batch's records; its CRC no longer matches.
    let path = seg_file(dir.path(), 0, "log");
    let mut bytes = fs::read(&path).unwrap();
    bytes[first_len + 70] ^= 0xFF;
    fs::write(&path, &bytes).unwrap();
    let log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    // The intact third batch keeps its offsets; the damaged one is a gap reads step over.
    assert_eq!(log.log_end_offset(), 9);
    let d = log.damage();
    assert_eq!(d.len(), 1);
    assert_eq!((d[0].first_offset, d[0].end_offset), (3, Some(6)));
    assert_eq!(d[0].start_pos, first_len as u64);
    let r = log.read(3, 1).unwrap();
    assert_eq!(BatchView::new(&r.data[..]).unwrap().base_offset(), 6);
    // A read from the start stops before the damage instead of serving it.
    let r = log.read(0, 1 << 20).unwrap();
    assert_eq!(r.data.len(), first_len);
    assert_eq!(log.append(&batch_n(1, 4), 0).unwrap().base_offset, 9);
}

#[test]
fn damaged_tail_of_the_active_segment_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let first_len = batch_n(3, 1).len();
    {
        let log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
        log.append(&batch_n(3, 1), 0).unwrap();
        log.append(&batch_n(3, 2), 0).unwrap();
    }
    let path = seg_file(dir.path(), 0, "log");
    let mut bytes = fs::read(&path).unwrap();
    bytes[first_len + 70] ^= 0xFF;
    fs::write(&path, &bytes).unwrap();
    let log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(log.log_end_offset(), 3);
    assert_eq!(fs::metadata(&path).unwrap().len(), first_len as u64);
    assert!(log.damage()[0].truncated);
    assert_eq!(log.append(&batch_n(1, 4), 0).unwrap().base_offset, 3);
}

#[test]
fn torn_older_segment_leaves_a_readable_gap() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = PartitionLog::open(dir.path(), small_config()).unwrap();
        for i in 0..60 {
            log.append(&batch_n(2, i), 0).unwrap();
        }
    }
    let bases = segment_bases(dir.path());
    assert!(bases.len() >= 3);
    // Chop the end of the first segment, which normal operation never leaves torn.
    let path = seg_file(dir.path(), bases[0], "log");
    let len = fs::metadata(&path).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 5)
        .unwrap();
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    assert_eq!(log.log_end_offset(), 120);
    // The last batch of the first segment is gone; reading it skips ahead.
    let missing = bases[1] - 2;
    let r = log.read(missing, 1).unwrap();
    assert_eq!(BatchView::new(&r.data[..]).unwrap().base_offset(), bases[1]);
    let offsets: Vec<i64> = read_all(&log, 0).iter().map(|r| r.0).collect();
    let expected: Vec<i64> = (0..120)
        .filter(|o| *o < missing || *o >= bases[1])
        .collect();
    assert_eq!(offsets, expected);
}

#[test]
fn clean_shutdown_marker_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("clean_shutdown");
    {
        let log = PartitionLog::open(dir.path(), small_config()).unwrap();
        for i in 0..50 {
            log.append(&batch_n(2, i), 0).unwrap();
        }
        log.close().unwrap();
        assert!(marker.exists());
    }
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    assert!(!marker.exists(), "marker must be consumed by open");
    assert_eq!(log.log_end_offset(), 100);
    assert_eq!(log.offset_for_timestamp(49).unwrap(), Some((98, 49)));
    // Appending after close removes the marker again.
    log.close().unwrap();
    assert!(marker.exists());
    log.append(&batch_n(1, 50), 0).unwrap();
    assert!(!marker.exists());
}

#[test]
fn missing_and_corrupt_indexes_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 100,
        retention_ms: -1,
        ..LogConfig::default()
    };
    {
        let log = PartitionLog::open(dir.path(), config.clone()).unwrap();
        for i in 0..200 {
            log.append(&batch_n(1 + i % 3, i as i64), 0).unwrap();
        }
        log.close().unwrap();
    }
    let bases = segment_bases(dir.path());
    assert!(bases.len() >= 3);
    let snapshot = |ext: &str| -> Vec<Vec<u8>> {
        bases
            .iter()
            .map(|b| fs::read(seg_file(dir.path(), *b, ext)).unwrap())
            .collect()
    };
    let index_before = snapshot("index");
    let time_before = snapshot("timeindex");
    assert!(index_before.iter().all(|i| !i.is_empty()));

    fs::remove_file(seg_file(dir.path(), bases[0], "index")).unwrap();
    fs::write(seg_file(dir.path(), bases[1], "timeindex"), b"garbage").unwrap();
    // Plausible-looking but wrong: an entry pointing into the middle of a batch.
    let mut bad = index_before[2].clone();
    let n = bad.len();
    bad[n - 1] ^= 0x01;
    fs::write(seg_file(dir.path(), bases[2], "index"), &bad).unwrap();
    // An index file without a log is swept.
    fs::write(seg_file(dir.path(), 999_999, "index"), b"").unwrap();

    let log = PartitionLog::open(dir.path(), config).unwrap();
    assert_eq!(snapshot("index"), index_before);
    assert_eq!(snapshot("timeindex"), time_before);
    assert!(!seg_file(dir.path(), 999_999, "index").exists());
    let end = log.log_end_offset();
    for off in 0..end {
        let r = log.read(off, 1).unwrap();
        let v = BatchView::new_complete(&r.data[..]).unwrap();
        assert!(v.base_offset() <= off && off <= v.last_offset());
    }
    assert_eq!(log.offset_for_timestamp(150).unwrap().unwrap().1, 150);
}

#[test]
fn invalid_batches_are_rejected_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    log.append(&batch_n(2, 1), 0).unwrap();
    let before = log.size_bytes();

    // CRC mismatch in the second of two batches.
    let mut input = batch_n(2, 1);
    let mut second = batch_n(3, 1);
    let last = second.len() - 1;
    second[last] ^= 0x55;
    input.extend(&second);
    assert!(matches!(
        log.append(&input, 0),
        Err(LogError::CorruptBatch(_))
    ));

    // Torn input.
    let b = batch_n(2, 1);
    assert!(matches!(
        log.append(&b[..b.len() - 3], 0),
        Err(LogError::CorruptBatch(_))
    ));
    assert!(matches!(
        log.append(&b[..5], 0),
        Err(LogError::CorruptBatch(_))
    ));

    // Empty input.
    assert!(matches!(
        log.append(&[], 0),
        Err(LogError::InvalidRecord(_))
    ));

    // Old magic.
    let mut old = batch_n(2, 1);
    old[16] = 1;
    assert!(matches!(
        log.append(&old, 0),
        Err(LogError::UnsupportedMagic(1))
    ));

    // Too large.
    let small = LogConfig {
        max_message_bytes: 100,
        ..LogConfig::default()
    };
    log.set_config(small);
    let big = batch_n(10, 1);
    assert!(matches!(
        log.append(&big, 0),
        Err(LogError::MessageTooLarge { max: 100, .. })
    ));
    log.set_config(LogConfig::default());

    // Record count that disagrees with lastOffsetDelta.
    let mut bad = batch_n(3, 1);
    bad[57..61].copy_from_slice(&4i32.to_be_bytes());
    BatchView::new(&mut bad[..]).unwrap().update_crc();
    assert!(matches!(
        log.append(&bad, 0),
        Err(LogError::InvalidRecord(_))
    ));

    // Consistent header counts, but only three records are actually present.
    let mut bad = batch_n(3, 1);
    bad[57..61].copy_from_slice(&4i32.to_be_bytes());
    bad[23..27].copy_from_slice(&3i32.to_be_bytes());
    BatchView::new(&mut bad[..]).unwrap().update_crc();
    assert!(matches!(
        log.append(&bad, 0),
        Err(LogError::InvalidRecord(_))
    ));

    // A record length that overruns the batch.
    let mut bad = batch_n(1, 1);
    bad[61] = 0x7e; // zigzag 63
    BatchView::new(&mut bad[..]).unwrap().update_crc();
    assert!(matches!(
        log.append(&bad, 0),
        Err(LogError::InvalidRecord(_))
    ));

    // Zero records.
    let mut bad = batch_n(1, 1);
    bad[57..61].copy_from_slice(&0i32.to_be_bytes());
    bad[23..27].copy_from_slice(&(-1i32).to_be_bytes());
    BatchView::new(&mut bad[..]).unwrap().update_crc();
    assert!(matches!(
        log.append(&bad, 0),
        Err(LogError::InvalidRecord(_))
    ));

    assert_eq!(log.size_bytes(), before);
    assert_eq!(log.log_end_offset(), 2);
    assert_eq!(log.append(&batch_n(1, 1), 0).unwrap().base_offset, 2);
}

#[test]
fn concurrent_append_read_and_sync() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(PartitionLog::open(dir.path(), small_config()).unwrap());
    const BATCHES: i64 = 400;
    std::thread::scope(|s| {
        let writer = log.clone();
        s.spawn(move || {
            for i in 0..BATCHES {
                let info = writer.append(&batch_n(2, i), i).unwrap();
                assert_eq!(info.base_offset, i * 2);
            }
        });
        let syncer = log.clone();
        s.spawn(move || {
            let mut last = 0;
            while last < BATCHES * 2 {
                let durable = syncer.sync().unwrap();
                assert!(durable >= last);
                last = durable;
            }
        });
        for _ in 0..2 {
            let reader = log.clone();
            s.spawn(move || {
                let mut next = 0;
                while next < BATCHES * 2 {
                    let r = reader.read(next, 300).unwrap();
                    if r.data.is_empty() {
                        assert_eq!(next, r.high_watermark);
                        std::thread::yield_now();
                        continue;
                    }
                    for (off, _) in decode_offsets(&r.data) {
                        if off >= next {
                            assert_eq!(off, next);
                            next += 1;
                        }
                    }
                }
            });
        }
    });
    assert_eq!(log.log_end_offset(), BATCHES * 2);
}

#[test]
fn partition_log_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<PartitionLog>();
    assert_send_sync::<cairn_log::Store>();
}

#[test]
fn timestamp_at_reads_the_record_at_an_offset() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    log.append(&batch(&[100, 110, 120]), 0).unwrap();
    log.append(&batch_with(&[200, 210], Compression::Gzip), 0)
        .unwrap();
    assert_eq!(log.timestamp_at(0).unwrap(), Some(100));
    assert_eq!(log.timestamp_at(2).unwrap(), Some(120));
    assert_eq!(log.timestamp_at(4).unwrap(), Some(210));
    // At or past the end there is no unconsumed record.
    assert_eq!(log.timestamp_at(5).unwrap(), None);
    assert_eq!(log.timestamp_at(99).unwrap(), None);
    // Below the start: the first record still there.
    assert_eq!(log.timestamp_at(-3).unwrap(), Some(100));
}

#[test]
fn timestamp_at_uses_log_append_time_and_follows_retention() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        timestamp_type: TimestampType::LogAppendTime,
        segment_bytes: 200,
        retention_ms: 1_000,
        ..LogConfig::default()
    };
    let log = PartitionLog::open(dir.path(), config).unwrap();
    for i in 0..10 {
        log.append(&batch(&[1, 2, 3]), 10_000 + i * 1_000).unwrap();
    }
    assert_eq!(log.timestamp_at(1).unwrap(), Some(10_000));
    assert_eq!(log.timestamp_at(29).unwrap(), Some(19_000));
    log.enforce_retention(30_000).unwrap();
    let start = log.log_start_offset();
    assert!(start > 0);
    let first = log.timestamp_at(start).unwrap();
    assert!(first.is_some());
    assert_eq!(log.timestamp_at(0).unwrap(), first);
}

/// One zstd batch holding a single record of `value_len` zero bytes: tiny on the wire.
fn zero_bomb(value_len: usize) -> Vec<u8> {
    use kafka_protocol::records::{Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
    let record = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: 0,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: 0,
        timestamp: 1,
        key: None,
        value: Some(bytes::Bytes::from(vec![0u8; value_len])),
        headers: Default::default(),
    };
    let mut buf = bytes::BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::Zstd,
    };
    RecordBatchEncoder::encode(&mut buf, [&record], &options).unwrap();
    buf.to_vec()
}

#[test]
fn inflation_is_bounded_per_append() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    let limit = LogConfig::default().max_uncompressed_bytes();
    let bomb = zero_bomb(limit + 1);
    assert!(bomb.len() < 64 << 10, "{} bytes", bomb.len());
    assert!(matches!(
        log.append(&bomb, 0),
        Err(LogError::InflatesTooLarge { limit: l }) if l == limit
    ));
    // Two batches that each fit, but not together: the append shares one budget.
    let half = zero_bomb(limit / 2 + 1);
    assert_eq!(log.append(&half, 0).unwrap().record_count, 1);
    let mut two = half.clone();
    two.extend_from_slice(&half);
    assert!(matches!(
        log.append(&two, 0),
        Err(LogError::InflatesTooLarge { .. })
    ));
    assert_eq!(log.log_end_offset(), 1, "a refused append writes nothing");
    // Reads of what was accepted still work under the same bound.
    assert_eq!(log.timestamp_at(0).unwrap(), Some(1));
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((0, 1)));
}

#[test]
fn a_shared_budget_bounds_inflation_across_appends() {
    let dir = tempfile::tempdir().unwrap();
    let a = PartitionLog::open(&dir.path().join("a"), LogConfig::default()).unwrap();
    let b = PartitionLog::open(&dir.path().join("b"), LogConfig::default()).unwrap();
    let limit = LogConfig::default().max_uncompressed_bytes();
    let half = zero_bomb(limit / 2 + 1);
    let mut budget = limit;
    a.append_within(&half, 0, &mut budget).unwrap();
    assert!(
        budget < limit / 2,
        "what the batch inflated is taken: {budget} left"
    );
    // Another partition of the same request gets only what is left.
    assert!(matches!(
        b.append_within(&half, 0, &mut budget),
        Err(LogError::InflatesTooLarge { .. })
    ));
    assert_eq!(
        budget, 0,
        "a refused compressed batch uses up its allowance"
    );
    // Uncompressed batches never draw on the budget.
    b.append_within(&batch_n(3, 1), 0, &mut budget).unwrap();
    assert_eq!(b.log_end_offset(), 3);
}
