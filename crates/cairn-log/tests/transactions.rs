//! A partition's transactions: open ones and the last stable offset, COMMIT and ABORT markers,
//! aborted ranges for read_committed readers, reads bounded by the last stable offset, the
//! checks on client batches, recovery on open, retention and compaction.

use std::path::Path;

use bytes::{Bytes, BytesMut};
use cairn_log::{AbortedTxn, LogConfig, LogError, MarkerKind, PartitionLog};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// A batch of `keys.len()` records from producer `pid`/`epoch` with sequences from `seq`.
fn batch(pid: i64, epoch: i16, seq: i32, keys: &[&str], transactional: bool, ts: i64) -> Vec<u8> {
    let records: Vec<Record> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| Record {
            transactional,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: pid,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: if pid < 0 { -1 } else { seq + i as i32 },
            timestamp: ts,
            key: Some(Bytes::from(k.to_string())),
            value: Some(Bytes::from(format!("{k}@{pid}"))),
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

fn txn(pid: i64, seq: i32, keys: &[&str]) -> Vec<u8> {
    batch(pid, 0, seq, keys, true, 1_000)
}

fn plain(keys: &[&str]) -> Vec<u8> {
    batch(-1, -1, -1, keys, false, 1_000)
}

fn open(dir: &Path, config: LogConfig) -> PartitionLog {
    PartitionLog::open(dir, config).unwrap()
}

/// The state that matters, to compare before and after a reopen.
fn state(log: &PartitionLog) -> (i64, Vec<AbortedTxn>, Vec<(i64, i64)>) {
    (
        log.last_stable_offset(),
        log.aborted_transactions(0, i64::MAX),
        log.open_transactions()
            .iter()
            .map(|o| (o.producer_id, o.first_offset))
            .collect(),
    )
}

#[test]
fn interleaved_transactions_hold_the_last_stable_offset_until_their_markers() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default());
    assert_eq!(log.append(&plain(&["a"]), 1).unwrap().base_offset, 0);
    assert_eq!(log.last_stable_offset(), 1);
    assert_eq!(
        log.append(&txn(10, 0, &["b", "c"]), 1).unwrap().base_offset,
        1
    );
    assert_eq!(log.append(&txn(11, 0, &["d"]), 1).unwrap().base_offset, 3);
    assert_eq!(log.append(&txn(10, 2, &["e"]), 1).unwrap().base_offset, 4);
    assert_eq!(log.last_stable_offset(), 1);
    // Producer 11 commits first: producer 10's transaction still holds the LSO.
    assert_eq!(
        log.append_marker(11, 0, MarkerKind::Commit, 0, 2).unwrap(),
        5
    );
    assert_eq!(log.last_stable_offset(), 1);
    assert_eq!(
        log.append_marker(10, 0, MarkerKind::Abort, 0, 2).unwrap(),
        6
    );
    assert_eq!(log.last_stable_offset(), 7);
    assert_eq!(
        log.aborted_transactions(0, 7),
        vec![AbortedTxn {
            producer_id: 10,
            first_offset: 1,
            last_offset: 6
        }]
    );
    // Ranges that end before the transaction began, or start after its marker, see none.
    assert!(log.aborted_transactions(0, 1).is_empty());
    assert!(log.aborted_transactions(7, 100).is_empty());
    assert_eq!(log.aborted_transactions(6, 7).len(), 1);
    // A marker with nothing open writes a control batch and changes nothing.
    assert_eq!(
        log.append_marker(10, 0, MarkerKind::Commit, 0, 3).unwrap(),
        7
    );
    assert_eq!(log.last_stable_offset(), 8);
    assert_eq!(log.aborted_transactions(0, 100).len(), 1);
}

#[test]
fn reads_bounded_by_the_last_stable_offset() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default());
    log.append(&plain(&["a", "b"]), 1).unwrap();
    log.append(&txn(10, 0, &["c"]), 1).unwrap();
    log.append(&plain(&["d"]), 1).unwrap();
    let lso = log.last_stable_offset();
    assert_eq!(lso, 2);
    let all = log.read(0, 1 << 20).unwrap();
    let committed = log.read_bounded(0, 1 << 20, true, lso).unwrap();
    assert_eq!(committed.data.len(), plain(&["a", "b"]).len());
    assert!(all.data.len() > committed.data.len());
    assert!(log
        .read_bounded(2, 1 << 20, true, lso)
        .unwrap()
        .data
        .is_empty());
    log.append_marker(10, 0, MarkerKind::Commit, 0, 2).unwrap();
    let lso = log.last_stable_offset();
    assert_eq!(lso, 5);
    assert_eq!(
        log.read_bounded(0, 1 << 20, true, lso).unwrap().data.len(),
        log.read(0, 1 << 20).unwrap().data.len()
    );
}

#[test]
fn client_batches_are_checked_against_the_transaction_state() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default());
    log.append(&txn(10, 0, &["a"]), 1).unwrap();
    // The same producer may not write outside its open transaction.
    let outside = batch(10, 0, 1, &["b"], false, 1_000);
    assert!(matches!(
        log.append(&outside, 1),
        Err(LogError::InvalidTxnState(_))
    ));
    // A marker fences older epochs of the producer.
    log.append_marker(10, 1, MarkerKind::Abort, 0, 2).unwrap();
    let stale = batch(10, 0, 1, &["c"], true, 1_000);
    assert!(matches!(
        log.append(&stale, 1),
        Err(LogError::InvalidProducerEpoch { .. })
    ));
    assert!(matches!(
        log.append_marker(10, 0, MarkerKind::Commit, 0, 3),
        Err(LogError::InvalidProducerEpoch { .. })
    ));
    // Clients cannot write markers.
    let (key, value) = cairn_log::encode_marker(MarkerKind::Commit, 0);
    let record = cairn_log::batch::PlainRecord {
        key: Some(&key),
        value: Some(&value),
        timestamp: 5,
    };
    let control = cairn_log::batch::encode_tagged(&[record], Some((12, 0)), true);
    assert!(matches!(
        log.append(&control, 1),
        Err(LogError::InvalidRecord(_))
    ));
}

#[test]
fn reopening_rebuilds_the_same_state_and_a_torn_tail_ends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 300,
        ..LogConfig::default()
    };
    {
        let log = open(dir.path(), config.clone());
        log.append(&txn(10, 0, &["a"]), 1).unwrap();
        log.append(&txn(11, 0, &["b"]), 1).unwrap();
        log.append_marker(10, 0, MarkerKind::Abort, 0, 2).unwrap();
        for i in 0..5 {
            log.append(&plain(&[&format!("p{i}")]), 1).unwrap();
        }
        log.append(&txn(12, 0, &["c"]), 1).unwrap();
        log.append_marker(12, 0, MarkerKind::Abort, 0, 2).unwrap();
        log.append(&txn(13, 0, &["d"]), 1).unwrap();
        let before = state(&log);
        assert!(log.segment_count() > 1);
        log.close().unwrap();
        let again = open(dir.path(), config.clone());
        assert_eq!(state(&again), before);
        assert_eq!(before.0, 1);
        assert_eq!(before.1.len(), 2);
        // The last marker is written, then torn off by a crash: 13 is open again.
        again
            .append_marker(13, 0, MarkerKind::Commit, 0, 3)
            .unwrap();
        assert_eq!(again.open_transactions().len(), 1);
    }
    let last = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .max()
        .unwrap();
    let len = std::fs::metadata(&last).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&last).unwrap();
    f.set_len(len - 3).unwrap();
    drop(f);
    let reopened = open(dir.path(), config);
    let open_txns: Vec<i64> = reopened
        .open_transactions()
        .iter()
        .map(|o| o.producer_id)
        .collect();
    assert_eq!(open_txns, vec![11, 13]);
}

#[test]
fn retention_forgets_aborted_ranges_with_their_segments() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 200,
        retention_bytes: 1,
        retention_ms: -1,
        ..LogConfig::default()
    };
    let log = open(dir.path(), config);
    log.append(&txn(10, 0, &["a"]), 1).unwrap();
    log.append_marker(10, 0, MarkerKind::Abort, 0, 2).unwrap();
    for i in 0..6 {
        log.append(&plain(&[&format!("p{i}")]), 1).unwrap();
    }
    assert_eq!(log.aborted_transactions(0, 100).len(), 1);
    assert!(log.enforce_retention(10).unwrap() > 0);
    assert!(log.log_start_offset() > 1);
    assert!(log.aborted_transactions(0, 100).is_empty());
}

#[test]
fn compaction_never_lets_an_aborted_record_replace_a_committed_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 200,
        cleanup_compact: true,
        retention_ms: -1,
        ..LogConfig::default()
    };
    let log = open(dir.path(), config);
    log.append(&plain(&["k"]), 1).unwrap();
    log.append(&txn(10, 0, &["k"]), 1).unwrap();
    log.append_marker(10, 0, MarkerKind::Abort, 0, 2).unwrap();
    for i in 0..6 {
        log.append(&plain(&[&format!("other{i}")]), 1).unwrap();
    }
    log.compact(1_000).unwrap();
    // The committed "k" at offset 0 survives, as do the aborted record and its marker.
    let data = log.read(0, 1 << 20).unwrap().data;
    let first = cairn_log::batch::batches(&data).next().unwrap().unwrap();
    assert_eq!(first.base_offset(), 0);
    assert_eq!(log.aborted_transactions(0, 100).len(), 1);
}

#[test]
fn markers_and_aborted_records_are_hidden_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default());
    log.append(&plain(&["a"]), 1).unwrap(); // 0
    log.append(&txn(10, 0, &["b", "c"]), 1).unwrap(); // 1-2
    log.append_marker(10, 0, MarkerKind::Commit, 0, 2).unwrap(); // 3
    log.append(&txn(11, 0, &["d", "e", "f"]), 1).unwrap(); // 4-6
    log.append_marker(11, 0, MarkerKind::Abort, 0, 2).unwrap(); // 7
    assert_eq!(log.log_end_offset(), 8);
    // A reader that consumed "c" committed 3: nothing left to consume.
    assert_eq!(log.hidden_offsets(3, 8), 5);
    assert_eq!(log.hidden_offsets(0, 8), 5);
    assert_eq!(log.hidden_offsets(0, 3), 0);
    // Partly inside: only the marker counts.
    assert_eq!(log.hidden_offsets(5, 8), 1);
}
