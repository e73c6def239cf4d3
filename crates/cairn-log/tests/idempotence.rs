//! Idempotent-producer sequence checks in `PartitionLog::append` and producer id allocation.

use std::path::Path;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use cairn_log::{LogConfig, LogError, PartitionLog, Store};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// One batch of `n` records from producer `pid`/`epoch`, sequences `seq..seq+n`, keys `key<i>`.
fn pbatch(pid: i64, epoch: i16, seq: i32, n: usize) -> Vec<u8> {
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: pid,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: seq.wrapping_add(i as i32),
            timestamp: 1_000 + i as i64,
            key: Some(Bytes::from(format!("key{}", i % 3))),
            value: Some(Bytes::from(format!("value-{seq}-{i}"))),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf.to_vec()
}

fn open(dir: &Path) -> PartitionLog {
    PartitionLog::open(dir, LogConfig::default()).unwrap()
}

#[test]
fn retry_of_recent_batch_returns_original_offsets_and_appends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let first = pbatch(7, 0, 0, 3);
    let a = log.append(&first, 10).unwrap();
    assert_eq!((a.base_offset, a.last_offset, a.duplicate), (0, 2, false));
    let b = log.append(&pbatch(7, 0, 3, 2), 10).unwrap();
    assert_eq!((b.base_offset, b.last_offset), (3, 4));
    let size = log.size_bytes();

    let again = log.append(&first, 11).unwrap();
    assert!(again.duplicate);
    assert_eq!((again.base_offset, again.last_offset), (0, 2));
    let again = log.append(&pbatch(7, 0, 3, 2), 11).unwrap();
    assert!(again.duplicate);
    assert_eq!(again.base_offset, 3);
    assert_eq!(log.log_end_offset(), 5);
    assert_eq!(log.size_bytes(), size);

    // The sequence continues after the last batch, not after the retried one.
    assert_eq!(log.append(&pbatch(7, 0, 5, 1), 12).unwrap().base_offset, 5);
}

#[test]
fn only_the_last_five_batches_are_remembered() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    for i in 0..6 {
        log.append(&pbatch(1, 0, i, 1), 10).unwrap();
    }
    // Batches 1..=5 are recognised; batch 0 is too old and out of sequence now.
    assert_eq!(log.append(&pbatch(1, 0, 1, 1), 10).unwrap().base_offset, 1);
    assert!(matches!(
        log.append(&pbatch(1, 0, 0, 1), 10),
        Err(LogError::OutOfOrderSequence { .. })
    ));
    assert_eq!(log.log_end_offset(), 6);
}

#[test]
fn sequence_gap_is_out_of_order_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    log.append(&pbatch(3, 0, 0, 2), 10).unwrap();
    match log.append(&pbatch(3, 0, 5, 1), 10) {
        Err(LogError::OutOfOrderSequence { expected, got, .. }) => {
            assert_eq!((expected, got), (2, 5))
        }
        other => panic!("expected out of order, got {other:?}"),
    }
    // A batch overlapping the last one without matching it is no duplicate either.
    assert!(matches!(
        log.append(&pbatch(3, 0, 1, 1), 10),
        Err(LogError::OutOfOrderSequence { .. })
    ));
    assert_eq!(log.log_end_offset(), 2);
    assert_eq!(log.append(&pbatch(3, 0, 2, 1), 10).unwrap().base_offset, 2);
}

#[test]
fn older_epoch_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    log.append(&pbatch(4, 1, 0, 1), 10).unwrap();
    assert!(matches!(
        log.append(&pbatch(4, 0, 1, 1), 10),
        Err(LogError::InvalidProducerEpoch {
            epoch: 0,
            current: 1,
            ..
        })
    ));
    assert_eq!(log.log_end_offset(), 1);
}

#[test]
fn newer_epoch_must_restart_at_sequence_zero() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    log.append(&pbatch(5, 0, 0, 3), 10).unwrap();
    assert!(matches!(
        log.append(&pbatch(5, 1, 3, 1), 10),
        Err(LogError::OutOfOrderSequence {
            expected: 0,
            got: 3,
            ..
        })
    ));
    assert_eq!(log.append(&pbatch(5, 1, 0, 2), 10).unwrap().base_offset, 3);
    // The old epoch's batches are forgotten: their retries are fenced, not deduplicated.
    assert!(matches!(
        log.append(&pbatch(5, 0, 0, 3), 10),
        Err(LogError::InvalidProducerEpoch { .. })
    ));
    assert_eq!(log.append(&pbatch(5, 1, 2, 1), 10).unwrap().base_offset, 5);
}

#[test]
fn sequence_wraps_from_max_to_zero() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    log.append(&pbatch(6, 0, i32::MAX - 1, 2), 10).unwrap();
    assert_eq!(log.append(&pbatch(6, 0, 0, 2), 10).unwrap().base_offset, 2);
    assert!(log.append(&pbatch(6, 0, 0, 2), 10).unwrap().duplicate);
    assert!(matches!(
        log.append(&pbatch(6, 0, 3, 1), 10),
        Err(LogError::OutOfOrderSequence { expected: 2, .. })
    ));
}

#[test]
fn batch_wrapping_inside_itself_is_tracked_by_its_last_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let mut b = BytesMut::new();
    // Sequences MAX-1, MAX, 0 in one batch: the encoder would split it, so encode with the base
    // sequence only and let the header's last offset delta carry the wrap.
    let records: Vec<Record> = (0..3)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: 8,
            producer_epoch: 0,
            timestamp_type: TimestampType::Creation,
            offset: i,
            sequence: (i32::MAX - 1).wrapping_add(i as i32),
            timestamp: 5,
            key: None,
            value: Some(Bytes::from_static(b"v")),
            headers: Default::default(),
        })
        .collect();
    RecordBatchEncoder::encode(
        &mut b,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    // Whether or not the encoder split it, every batch must be accepted in order.
    log.append(&b, 10).unwrap();
    assert_eq!(log.append(&pbatch(8, 0, 1, 1), 10).unwrap().base_offset, 3);
}

#[test]
fn unknown_producer_is_accepted_at_any_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    assert_eq!(log.append(&pbatch(9, 3, 42, 2), 10).unwrap().base_offset, 0);
    assert_eq!(log.append(&pbatch(9, 3, 44, 1), 10).unwrap().base_offset, 2);
    assert!(log.append(&pbatch(9, 3, 42, 2), 10).unwrap().duplicate);
}

#[test]
fn batches_without_producer_id_are_not_checked() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let b = pbatch(-1, -1, -1, 2);
    assert_eq!(log.append(&b, 10).unwrap().base_offset, 0);
    let again = log.append(&b, 10).unwrap();
    assert!(!again.duplicate);
    assert_eq!(again.base_offset, 2);
}

#[test]
fn producer_batch_without_sequence_is_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    assert!(matches!(
        log.append(&pbatch(2, 0, -1, 1), 10),
        Err(LogError::InvalidRecord(_))
    ));
}

#[test]
fn several_batches_in_one_append_are_checked_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let mut two = pbatch(11, 0, 0, 2);
    two.extend(pbatch(11, 0, 2, 2));
    let a = log.append(&two, 10).unwrap();
    assert_eq!((a.base_offset, a.last_offset), (0, 3));
    assert!(log.append(&pbatch(11, 0, 2, 2), 10).unwrap().duplicate);
    // A gap in the second batch refuses the whole append.
    let mut bad = pbatch(11, 0, 4, 1);
    bad.extend(pbatch(11, 0, 9, 1));
    assert!(matches!(
        log.append(&bad, 10),
        Err(LogError::OutOfOrderSequence { .. })
    ));
    assert_eq!(log.log_end_offset(), 4);
    assert_eq!(log.append(&pbatch(11, 0, 4, 1), 10).unwrap().base_offset, 4);
}

#[test]
fn state_is_rebuilt_on_reopen_so_retries_after_restart_are_deduplicated() {
    for clean in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = open(dir.path());
            log.append(&pbatch(20, 0, 0, 3), 10).unwrap();
            log.append(&pbatch(21, 2, 100, 1), 10).unwrap();
            log.append(&pbatch(20, 0, 3, 2), 10).unwrap();
            if clean {
                log.close().unwrap();
            }
        }
        let log = open(dir.path());
        let again = log.append(&pbatch(20, 0, 3, 2), 20).unwrap();
        assert!(again.duplicate, "clean={clean}");
        assert_eq!(again.base_offset, 4);
        assert!(log.append(&pbatch(21, 2, 100, 1), 20).unwrap().duplicate);
        assert_eq!(log.log_end_offset(), 6);
        assert!(matches!(
            log.append(&pbatch(20, 0, 9, 1), 20),
            Err(LogError::OutOfOrderSequence { expected: 5, .. })
        ));
        assert!(matches!(
            log.append(&pbatch(21, 1, 0, 1), 20),
            Err(LogError::InvalidProducerEpoch { .. })
        ));
        assert_eq!(log.append(&pbatch(20, 0, 5, 1), 20).unwrap().base_offset, 6);
    }
}

#[test]
fn state_spans_a_segment_roll() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 300,
        ..LogConfig::default()
    };
    {
        let log = PartitionLog::open(dir.path(), config.clone()).unwrap();
        for i in 0..10 {
            log.append(&pbatch(30, 0, i * 2, 2), 10).unwrap();
        }
        assert!(log.segment_count() > 2);
        log.close().unwrap();
    }
    let log = PartitionLog::open(dir.path(), config).unwrap();
    let again = log.append(&pbatch(30, 0, 16, 2), 10).unwrap();
    assert!(again.duplicate);
    assert_eq!(again.base_offset, 16);
    assert_eq!(
        log.append(&pbatch(30, 0, 20, 1), 10).unwrap().base_offset,
        20
    );
}

#[test]
fn compaction_keeps_working_with_idempotent_batches() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 400,
        cleanup_compact: true,
        cleanup_delete: false,
        ..LogConfig::default()
    };
    let log = PartitionLog::open(dir.path(), config.clone()).unwrap();
    for i in 0..12 {
        log.append(&pbatch(40, 0, i * 3, 3), 1_000).unwrap();
    }
    let stats = log.compact(2_000).unwrap();
    assert!(stats.records_removed > 0, "{stats:?}");
    // State in memory is untouched by compaction.
    assert!(log.append(&pbatch(40, 0, 33, 3), 2_000).unwrap().duplicate);
    assert_eq!(
        log.append(&pbatch(40, 0, 36, 3), 2_000)
            .unwrap()
            .base_offset,
        36
    );
    log.close().unwrap();
    drop(log);
    let log = PartitionLog::open(dir.path(), config).unwrap();
    assert_eq!(
        log.append(&pbatch(40, 0, 39, 1), 3_000)
            .unwrap()
            .base_offset,
        39
    );
}

#[test]
fn producer_ids_never_repeat_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let config: cairn_log::LogConfigFn = Arc::new(|_| LogConfig::default());
    let (a, b, block) = {
        let store = Store::open(dir.path(), config.clone()).unwrap();
        let a = store.next_producer_id().unwrap();
        let b = store.next_producer_id().unwrap();
        let block = store.allocate_producer_ids(10).unwrap();
        store.close().unwrap();
        (a, b, block)
    };
    assert_ne!(a, b);
    assert_eq!(block.end - block.start, 10);
    assert!(!block.contains(&a) && !block.contains(&b));
    let store = Store::open(dir.path(), config).unwrap();
    let c = store.next_producer_id().unwrap();
    assert!(c >= block.end && c > b, "{c} after {a}, {b}, {block:?}");
    // Topic changes keep the high-water mark.
    store
        .create_topic("t", 1, Default::default(), false)
        .unwrap();
    drop(store);
    let config: cairn_log::LogConfigFn = Arc::new(|_| LogConfig::default());
    let store = Store::open(dir.path(), config).unwrap();
    assert!(store.next_producer_id().unwrap() > c);
}
