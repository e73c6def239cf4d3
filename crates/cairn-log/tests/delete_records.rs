//! DeleteRecords: the log start moves inside the log, durably; whole segments below it go.

mod common;

use std::fs;

use cairn_log::{LogConfig, LogError, PartitionLog};
use common::*;

fn one_batch_per_segment() -> LogConfig {
    LogConfig {
        segment_bytes: 1,
        retention_ms: -1,
        ..LogConfig::default()
    }
}

#[test]
fn the_start_moves_hides_records_and_drops_whole_segments() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), one_batch_per_segment()).unwrap();
    // Offsets 0-1, 2-3, 4-5, 6-7, 8-9: one segment each.
    for ts in [1, 2, 3, 4, 5] {
        log.append(&batch_n(2, ts), ts).unwrap();
    }
    assert_eq!(log.segment_count(), 5);
    // Inside the third segment: the first two go, the third stays with offset 4 hidden.
    assert_eq!(log.delete_records(5).unwrap(), 5);
    assert_eq!(log.log_start_offset(), 5);
    assert_eq!(log.segment_count(), 3);
    assert!(matches!(
        log.read(4, 1000),
        Err(LogError::OffsetOutOfRange { start: 5, .. })
    ));
    let r = log.read(5, 1000).unwrap();
    assert_eq!(r.log_start_offset, 5);
    assert!(decode_offsets(&r.data).iter().any(|(o, _)| *o == 5));
    // At or below the start: nothing changes, the answer is the start.
    assert_eq!(log.delete_records(3).unwrap(), 5);
    assert_eq!(log.delete_records(5).unwrap(), 5);
    // Past the end, or negative other than -1: out of range.
    assert!(matches!(
        log.delete_records(11),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert!(matches!(
        log.delete_records(-2),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    // -1 is the end: everything is hidden, the active segment stays.
    assert_eq!(log.delete_records(-1).unwrap(), 10);
    assert_eq!(log.log_start_offset(), 10);
    assert_eq!(log.segment_count(), 1);
    let info = log.append(&batch_n(1, 6), 6).unwrap();
    assert_eq!((info.base_offset, info.log_start_offset), (10, 10));
}

#[test]
fn the_start_survives_a_reopen_and_a_damaged_record_of_it_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    for ts in [1, 2, 3] {
        log.append(&batch_n(3, ts), ts).unwrap();
    }
    assert_eq!(log.delete_records(4).unwrap(), 4);
    drop(log);
    let log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (4, 9));
    assert!(log.read(3, 100).is_err());
    drop(log);
    // A damaged file: the partition opens, at its first segment's start.
    let path = dir.path().join("log-start-offset");
    for junk in [
        &b"4 00000000\n"[..],
        b"",
        b"\xff\xfe",
        b"-5 1234\n",
        b"99999999999999999999999 0\n",
    ] {
        fs::write(&path, junk).unwrap();
        let log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
        assert_eq!(log.log_start_offset(), 0, "{junk:?}");
    }
    // A start recorded past the end (a tail lost in a crash) is held at the end.
    let log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(log.delete_records(9).unwrap(), 9);
    drop(log);
    let valid = fs::read(&path).unwrap();
    assert!(String::from_utf8(valid).unwrap().starts_with("9 "));
}

#[test]
fn a_compacted_topic_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        cleanup_delete: false,
        cleanup_compact: true,
        ..LogConfig::default()
    };
    let log = PartitionLog::open(dir.path(), config).unwrap();
    log.append(&batch_n(2, 1), 1).unwrap();
    assert!(matches!(
        log.delete_records(1),
        Err(LogError::PolicyViolation(_))
    ));
    assert_eq!(log.log_start_offset(), 0);
}
