//! Transaction state of a partition: open transactions, markers, the last stable offset, the
//! aborted transactions a read_committed fetch reports, and how open, truncation, retention
//! and compaction keep them.

use std::fs::OpenOptions;
use std::path::Path;

use bytes::{Bytes, BytesMut};
use cairn_log::batch::{self, encode_tagged, BatchView, PlainRecord};
use cairn_log::{
    encode_marker, AbortedTxn, LogConfig, LogError, MarkerKind, OpenTxn, PartitionLog,
};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// One producer batch of `keys` (values `<key>@<seq>`), sequences from `seq`, stamped `ts`.
fn pbatch(pid: i64, epoch: i16, seq: i32, keys: &[&str], ts: i64, transactional: bool) -> Vec<u8> {
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
            sequence: seq + i as i32,
            timestamp: ts,
            key: Some(Bytes::from(k.to_string())),
            value: Some(Bytes::from(format!("{k}@{}", seq + i as i32))),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options).unwrap();
    buf.to_vec()
}

/// A transactional batch of `n` records.
fn txn(pid: i64, epoch: i16, seq: i32, n: usize, ts: i64) -> Vec<u8> {
    let keys: Vec<String> = (0..n).map(|i| format!("t{pid}-{i}")).collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    pbatch(pid, epoch, seq, &keys, ts, true)
}

/// A batch without producer id.
fn plain(keys: &[&str], ts: i64) -> Vec<u8> {
    pbatch(-1, -1, -1, keys, ts, false)
}

fn aborted(producer_id: i64, first_offset: i64, last_offset: i64) -> AbortedTxn {
    AbortedTxn {
        producer_id,
        first_offset,
        last_offset,
    }
}

/// Everything a reader can see of the transaction state.
#[derive(Debug, PartialEq, Eq)]
struct TxnView {
    lso: i64,
    open: Vec<OpenTxn>,
    aborted: Vec<AbortedTxn>,
}

fn view(log: &PartitionLog) -> TxnView {
    TxnView {
        lso: log.last_stable_offset(),
        open: log.open_transactions(),
        aborted: log.aborted_transactions(0, i64::MAX),
    }
}

/// Base offsets of the batches in `data`.
fn bases(data: &[u8]) -> Vec<i64> {
    batch::batches(data)
        .map(|b| b.unwrap().base_offset())
        .collect()
}

fn open(dir: &Path, config: LogConfig) -> PartitionLog {
    PartitionLog::open(dir, config).unwrap()
}

#[test]
fn lso_follows_the_oldest_open_transaction_of_two_producers() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default());
    assert_eq!(
        log.append(&plain(&["a", "b"], 100), 100)
            .unwrap()
            .base_offset,
        0
    );
    assert_eq!(log.last_stable_offset(), 2);

    assert_eq!(
        log.append(&txn(1, 0, 0, 2, 110), 110).unwrap().base_offset,
        2
    );
    assert_eq!(log.append(&plain(&["c"], 115), 115).unwrap().base_offset, 4);
    assert_eq!(
        log.append(&txn(2, 3, 0, 1, 120), 120).unwrap().base_offset,
        5
    );
    // A later batch of the same transaction keeps its first offset and moves its timestamp.
    assert_eq!(
        log.append(&txn(1, 0, 2, 1, 130), 130).unwrap().base_offset,
        6
    );
    assert_eq!(log.last_stable_offset(), 2);
    assert_eq!(
        log.open_transactions(),
        vec![
            OpenTxn {
                producer_id: 1,
                producer_epoch: 0,
                first_offset: 2,
                last_timestamp_ms: 130
            },
            OpenTxn {
                producer_id: 2,
                producer_epoch: 3,
                first_offset: 5,
                last_timestamp_ms: 120
            },
        ]
    );

    assert_eq!(
        log.append_marker(1, 0, MarkerKind::Commit, 0, 140).unwrap(),
        7
    );
    assert_eq!(log.last_stable_offset(), 5);
    assert_eq!(log.open_transactions().len(), 1);
    assert_eq!(
        log.append_marker(2, 3, MarkerKind::Abort, 0, 150).unwrap(),
        8
    );
    assert_eq!(log.last_stable_offset(), 9);
    assert_eq!(log.log_end_offset(), 9);
    assert!(log.open_transactions().is_empty());
    assert_eq!(log.aborted_transactions(0, 9), vec![aborted(2, 5, 8)]);

    // A new transaction of producer 1 continues its sequence and opens at its own batch.
    assert_eq!(
        log.append(&txn(1, 0, 3, 1, 160), 160).unwrap().base_offset,
        9
    );
    assert_eq!(log.last_stable_offset(), 9);
}

#[test]
fn markers_are_kafka_control_batches() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default());
    log.append(&txn(7, 2, 0, 1, 100), 100).unwrap();
    let at = log.append_marker(7, 2, MarkerKind::Abort, 11, 200).unwrap();
    assert_eq!(at, 1);
    let data = log.read(at, 1 << 20).unwrap().data;
    let view = BatchView::new_complete(&data[..]).unwrap();
    assert!(view.verify_crc());
    assert!(view.is_control() && view.is_transactional());
    assert_eq!(view.base_offset(), 1);
    assert_eq!((view.producer_id(), view.producer_epoch()), (7, 2));
    assert_eq!(view.base_sequence(), -1);
    assert_eq!(view.record_count(), 1);
    assert_eq!(view.max_timestamp(), 200);

    // The wire library reads it as Kafka's clients do: one control record, key and value in
    // the marker's layout.
    let mut bytes = Bytes::copy_from_slice(&data);
    let sets = RecordBatchDecoder::decode_all(&mut bytes).unwrap();
    let rec = &sets[0].records[0];
    assert!(rec.control && rec.transactional);
    let (key, value) = encode_marker(MarkerKind::Abort, 11);
    assert_eq!(rec.key.as_deref(), Some(&key[..]));
    assert_eq!(rec.value.as_deref(), Some(&value[..]));
    assert_eq!(MarkerKind::decode(&key), Some(MarkerKind::Abort));
    assert_eq!(key, vec![0, 0, 0, 0]);
    assert_eq!(value, vec![0, 0, 0, 0, 0, 11]);
}

#[test]
fn commit_ends_a_transaction_without_an_aborted_entry() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default());
    log.append(&txn(1, 0, 0, 3, 100), 100).unwrap();
    log.append_marker(1, 0, MarkerKind::Commit, 0, 110).unwrap();
    log.append(&txn(1, 0, 3, 2, 120), 120).unwrap();
    log.append_marker(1, 0, MarkerKind::Abort, 0, 130).unwrap();
    assert_eq!(
        log.aborted_transactions(0, i64::MAX),
        vec![aborted(1, 4, 6)]
    );
    assert_eq!(log.last_stable_offset(), 7);
}

#[test]
fn aborted_transactions_by_range_sorted_by_first_offset() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default());
    // Producer 1 opens at 0, producer 2 at 1; producer 2 is aborted first (marker 2), then
    // producer 3 opens at 3, producer 1 is aborted (marker 4), producer 4 commits, and
    // producer 3 is aborted (marker 7).
    log.append(&txn(1, 0, 0, 1, 100), 100).unwrap();
    log.append(&txn(2, 0, 0, 1, 100), 100).unwrap();
    assert_eq!(
        log.append_marker(2, 0, MarkerKind::Abort, 0, 100).unwrap(),
        2
    );
    log.append(&txn(3, 0, 0, 1, 100), 100).unwrap();
    assert_eq!(
        log.append_marker(1, 0, MarkerKind::Abort, 0, 100).unwrap(),
        4
    );
    log.append(&txn(4, 0, 0, 1, 100), 100).unwrap();
    log.append_marker(4, 0, MarkerKind::Commit, 0, 100).unwrap();
    assert_eq!(
        log.append_marker(3, 0, MarkerKind::Abort, 0, 100).unwrap(),
        7
    );

    let (p1, p2, p3) = (aborted(1, 0, 4), aborted(2, 1, 2), aborted(3, 3, 7));
    assert_eq!(log.aborted_transactions(0, 8), vec![p1, p2, p3]);
    assert_eq!(log.aborted_transactions(0, i64::MAX), vec![p1, p2, p3]);
    // Ends before `from`: producer 2's marker is at 2.
    assert_eq!(log.aborted_transactions(3, 8), vec![p1, p3]);
    // Starts at `to` or later: producer 2 starts at 1.
    assert_eq!(log.aborted_transactions(0, 1), vec![p1]);
    assert_eq!(log.aborted_transactions(0, 2), vec![p1, p2]);
    // Producer 1's marker at 4 is inside [4, 5); producer 3 spans it.
    assert_eq!(log.aborted_transactions(4, 5), vec![p1, p3]);
    assert_eq!(log.aborted_transactions(5, 6), vec![p3]);
    assert_eq!(log.aborted_transactions(8, 9), vec![]);
    assert_eq!(log.aborted_transactions(0, 0), vec![]);
}

#[test]
fn aborted_transactions_found_past_an_earlier_markers_segment() {
    // Every append its own segment: the search continues into later segments while a
    // transaction was still open when an earlier one was aborted.
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 1,
        ..LogConfig::default()
    };
    let log = open(dir.path(), config);
    log.append(&txn(1, 0, 0, 1, 100), 100).unwrap(); // 0
    log.append(&txn(2, 0, 0, 1, 100), 100).unwrap(); // 1
    log.append_marker(1, 0, MarkerKind::Abort, 0, 100).unwrap(); // 2
    log.append(&plain(&["x"], 100), 100).unwrap(); // 3
    log.append_marker(2, 0, MarkerKind::Abort, 0, 100).unwrap(); // 4
    assert!(log.segment_count() >= 5);
    assert_eq!(
        log.aborted_transactions(0, 2),
        vec![aborted(1, 0, 2), aborted(2, 1, 4)]
    );
    assert_eq!(log.aborted_transactions(3, 4), vec![aborted(2, 1, 4)]);
}

#[test]
fn read_bounded_stops_at_the_last_stable_offset() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default());
    log.append(&plain(&["a", "b"], 100), 100).unwrap(); // 0..2
    log.append(&plain(&["c"], 100), 100).unwrap(); // 2
    log.append(&txn(1, 0, 0, 2, 100), 100).unwrap(); // 3..5
    log.append(&plain(&["d"], 100), 100).unwrap(); // 5
    let lso = log.last_stable_offset();
    assert_eq!(lso, 3);

    let r = log.read_bounded(0, 1 << 20, true, lso).unwrap();
    assert_eq!(bases(&r.data), vec![0, 2]);
    assert_eq!(r.high_watermark, 6);
    // Inside the first batch: that batch and the next.
    assert_eq!(
        bases(&log.read_bounded(1, 1 << 20, true, lso).unwrap().data),
        vec![0, 2]
    );
    // At or past the bound: nothing, even with first_batch_always.
    assert!(log
        .read_bounded(3, 1 << 20, true, lso)
        .unwrap()
        .data
        .is_empty());
    assert!(log
        .read_bounded(5, 1 << 20, true, lso)
        .unwrap()
        .data
        .is_empty());
    // read_uncommitted sees it all.
    assert_eq!(
        bases(&log.read_limited(0, 1 << 20, true).unwrap().data),
        vec![0, 2, 3, 5]
    );

    // The byte limit still applies below the bound.
    let first = log.read(0, 1).unwrap().data.len();
    assert_eq!(
        bases(&log.read_bounded(0, first, false, lso).unwrap().data),
        vec![0]
    );
    assert!(log
        .read_bounded(0, first - 1, false, lso)
        .unwrap()
        .data
        .is_empty());

    log.append_marker(1, 0, MarkerKind::Commit, 0, 110).unwrap(); // 6
    let lso = log.last_stable_offset();
    assert_eq!(lso, 7);
    let r = log.read_bounded(3, 1 << 20, true, lso).unwrap();
    assert_eq!(bases(&r.data), vec![3, 5, 6]);
}

/// Builds open transactions and aborted ones spread over several segments.
fn busy_log(log: &PartitionLog) {
    log.append(&txn(1, 0, 0, 2, 100), 100).unwrap();
    log.append(&plain(&["a"], 100), 100).unwrap();
    log.append(&txn(2, 5, 0, 1, 110), 110).unwrap();
    log.append_marker(1, 0, MarkerKind::Abort, 3, 120).unwrap();
    log.append(&txn(3, 0, 0, 3, 130), 130).unwrap();
    log.append(&txn(1, 0, 2, 1, 140), 140).unwrap();
    log.append_marker(3, 0, MarkerKind::Commit, 3, 150).unwrap();
    log.append(&txn(4, 1, 0, 1, 160), 160).unwrap();
    log.append_marker(4, 1, MarkerKind::Abort, 3, 170).unwrap();
    log.append(&plain(&["b", "c"], 180), 180).unwrap();
}

#[test]
fn reopen_rebuilds_identical_state() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 300,
        index_interval_bytes: 64,
        ..LogConfig::default()
    };
    let before = {
        let log = open(dir.path(), config.clone());
        busy_log(&log);
        assert!(log.segment_count() > 2, "the state must span segments");
        let v = view(&log);
        assert_eq!(v.open.len(), 2);
        assert_eq!(v.aborted.len(), 2);
        log.close().unwrap();
        v
    };
    // After a clean shutdown, and after a crash (no close).
    let log = open(dir.path(), config.clone());
    assert_eq!(view(&log), before);
    drop(log);
    let log = open(dir.path(), config.clone());
    assert_eq!(view(&log), before);
    for from in 0..log.log_end_offset() {
        for to in from..=log.log_end_offset() {
            let want: Vec<AbortedTxn> = before
                .aborted
                .iter()
                .filter(|a| a.last_offset >= from && a.first_offset < to)
                .copied()
                .collect();
            assert_eq!(log.aborted_transactions(from, to), want, "[{from}, {to})");
        }
    }
    // The rebuilt state goes on as the original would: producer 2 still needs its marker.
    let marker = log.append_marker(2, 5, MarkerKind::Abort, 3, 200).unwrap();
    assert!(log
        .aborted_transactions(0, i64::MAX)
        .contains(&aborted(2, 3, marker)));
}

/// Cuts the active segment's file to `len` bytes, as a crash mid-write leaves it.
fn cut_active(dir: &Path, len_before: u64) {
    let mut logs: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    let active = logs.last().unwrap();
    let size = std::fs::metadata(active).unwrap().len();
    assert!(size > len_before);
    // Half of what the last append wrote stays, a torn batch.
    let f = OpenOptions::new().write(true).open(active).unwrap();
    f.set_len(len_before + (size - len_before) / 2).unwrap();
}

fn active_len(dir: &Path) -> u64 {
    let mut logs: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    std::fs::metadata(logs.last().unwrap()).unwrap().len()
}

#[test]
fn reopen_after_a_torn_tail_forgets_the_torn_batches_effect() {
    let config = LogConfig::default();
    // A torn ABORT marker: producer 2's transaction is open again, nothing is aborted by it.
    let dir = tempfile::tempdir().unwrap();
    let before = {
        let log = open(dir.path(), config.clone());
        busy_log(&log);
        let v = view(&log);
        let len = active_len(dir.path());
        log.append_marker(2, 5, MarkerKind::Abort, 3, 200).unwrap();
        assert_ne!(view(&log), v);
        cut_active(dir.path(), len);
        v
    };
    let log = open(dir.path(), config.clone());
    assert_eq!(view(&log), before);
    drop(log);

    // A torn first batch of a transaction: it is not open after the restart.
    let dir = tempfile::tempdir().unwrap();
    let before = {
        let log = open(dir.path(), config.clone());
        busy_log(&log);
        let v = view(&log);
        let len = active_len(dir.path());
        log.append(&txn(9, 0, 0, 4, 200), 200).unwrap();
        assert_eq!(log.open_transactions().len(), 3);
        cut_active(dir.path(), len);
        v
    };
    let log = open(dir.path(), config);
    assert_eq!(view(&log), before);
    assert!(log.open_transactions().iter().all(|t| t.producer_id != 9));
}

#[test]
fn truncation_rebuilds_the_transaction_state() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default());
    busy_log(&log);
    let before = view(&log);
    let end = log.log_end_offset();
    log.append(&txn(9, 0, 0, 2, 200), 200).unwrap();
    log.append_marker(2, 5, MarkerKind::Abort, 3, 210).unwrap();
    assert_ne!(view(&log), before);
    log.truncate_to(end).unwrap();
    assert_eq!(view(&log), before);
}

#[test]
fn retention_drops_aborted_entries_with_their_segment() {
    let dir = tempfile::tempdir().unwrap();
    // Every append rolls, so each batch has a segment of its own.
    let config = LogConfig {
        segment_bytes: 1,
        retention_ms: 1_000,
        ..LogConfig::default()
    };
    let log = open(dir.path(), config.clone());
    log.append(&txn(1, 0, 0, 1, 1_000), 1_000).unwrap(); // 0
    log.append_marker(1, 0, MarkerKind::Abort, 0, 1_000)
        .unwrap(); // 1
    log.append(&txn(2, 0, 0, 1, 1_000), 1_000).unwrap(); // 2: stays open
    log.append(&txn(3, 0, 0, 1, 5_000), 5_000).unwrap(); // 3
    log.append_marker(3, 0, MarkerKind::Abort, 0, 5_000)
        .unwrap(); // 4
    log.append(&plain(&["x"], 5_000), 5_000).unwrap(); // 5
    assert_eq!(
        log.aborted_transactions(0, i64::MAX),
        vec![aborted(1, 0, 1), aborted(3, 3, 4)]
    );
    assert_eq!(log.last_stable_offset(), 2);

    // Segments 0..=2 are older than the retention; the others are not.
    assert_eq!(log.enforce_retention(3_000).unwrap(), 3);
    assert_eq!(log.log_start_offset(), 3);
    assert_eq!(
        log.aborted_transactions(0, i64::MAX),
        vec![aborted(3, 3, 4)]
    );
    // Producer 2's transaction is still open, but its data is gone: it no longer holds the
    // LSO below the log start.
    assert_eq!(log.open_transactions()[0].first_offset, 2);
    assert_eq!(log.last_stable_offset(), 3);
    drop(log);

    let log = open(dir.path(), config);
    assert_eq!(
        log.aborted_transactions(0, i64::MAX),
        vec![aborted(3, 3, 4)]
    );
    // Its batches are gone, so a restart does not know it as open (its marker will end nothing).
    assert!(log.open_transactions().is_empty());
    assert_eq!(log.last_stable_offset(), log.log_end_offset());
}

#[test]
fn clients_may_not_write_markers() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default());
    log.append(&txn(1, 0, 0, 1, 100), 100).unwrap();
    let (key, value) = encode_marker(MarkerKind::Commit, 0);
    let record = PlainRecord {
        key: Some(&key),
        value: Some(&value),
        timestamp: 100,
    };
    let marker = encode_tagged(&[record], Some((1, 0)), true);
    let err = log.append(&marker, 100).unwrap_err();
    assert!(matches!(err, LogError::InvalidRecord(_)), "{err:?}");
    assert_eq!(log.log_end_offset(), 1);
    assert_eq!(log.open_transactions().len(), 1);
    // The validation a fuzzer runs refuses it too.
    assert!(PartitionLog::validate_batches(&marker, &LogConfig::default()).is_err());
}

#[test]
fn non_transactional_batch_inside_a_transaction_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default());
    log.append(&txn(1, 0, 0, 2, 100), 100).unwrap();
    let idempotent = pbatch(1, 0, 2, &["k"], 100, false);
    let err = log.append(&idempotent, 100).unwrap_err();
    assert!(matches!(err, LogError::InvalidTxnState(_)), "{err:?}");
    assert_eq!(log.log_end_offset(), 2);
    // Other producers are not concerned.
    log.append(&pbatch(2, 0, 0, &["k"], 100, false), 100)
        .unwrap();
    log.append(&plain(&["k"], 100), 100).unwrap();
    // Within one append, a transactional batch followed by a plain one of the same producer.
    let mut both = txn(5, 0, 0, 1, 100);
    both.extend(pbatch(5, 0, 1, &["k"], 100, false));
    let err = log.append(&both, 100).unwrap_err();
    assert!(matches!(err, LogError::InvalidTxnState(_)), "{err:?}");
    assert!(log.open_transactions().iter().all(|t| t.producer_id != 5));
    // After its marker, the producer may write outside transactions again.
    log.append_marker(1, 0, MarkerKind::Commit, 0, 110).unwrap();
    log.append(&idempotent, 120).unwrap();
}

#[test]
fn marker_epochs_are_checked_and_fence() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default());
    log.append(&txn(1, 3, 0, 1, 100), 100).unwrap();
    let err = log
        .append_marker(1, 2, MarkerKind::Commit, 0, 110)
        .unwrap_err();
    assert!(
        matches!(
            err,
            LogError::InvalidProducerEpoch {
                producer_id: 1,
                epoch: 2,
                current: 3
            }
        ),
        "{err:?}"
    );
    assert_eq!(log.log_end_offset(), 1);
    assert_eq!(log.open_transactions().len(), 1);

    // The coordinator fencing the producer aborts with a newer epoch; the old one is refused
    // from then on.
    assert_eq!(
        log.append_marker(1, 4, MarkerKind::Abort, 0, 120).unwrap(),
        1
    );
    assert_eq!(log.aborted_transactions(0, 2), vec![aborted(1, 0, 1)]);
    let err = log.append(&txn(1, 3, 1, 1, 130), 130).unwrap_err();
    assert!(
        matches!(err, LogError::InvalidProducerEpoch { .. }),
        "{err:?}"
    );
    log.append(&txn(1, 4, 0, 1, 130), 130).unwrap();

    // A marker for a producer never seen here is written and ends nothing.
    let at = log.append_marker(99, 0, MarkerKind::Abort, 0, 140).unwrap();
    assert_eq!(at, 3);
    assert_eq!(
        log.aborted_transactions(0, i64::MAX),
        vec![aborted(1, 0, 1)]
    );
    assert_eq!(log.open_transactions().len(), 1);

    // The fencing survives a restart.
    drop(log);
    let log = open(dir.path(), LogConfig::default());
    assert!(matches!(
        log.append_marker(1, 3, MarkerKind::Commit, 0, 150),
        Err(LogError::InvalidProducerEpoch { .. })
    ));
    assert!(matches!(
        log.append(&txn(1, 3, 9, 1, 150), 150),
        Err(LogError::InvalidProducerEpoch { .. })
    ));
}

#[test]
fn retried_transactional_batch_is_a_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default());
    let b = txn(1, 0, 0, 2, 100);
    log.append(&b, 100).unwrap();
    let again = log.append(&b, 100).unwrap();
    assert!(again.duplicate);
    assert_eq!(again.base_offset, 0);
    assert_eq!(log.log_end_offset(), 2);
    assert_eq!(log.open_transactions()[0].first_offset, 0);
}

#[test]
fn internal_appends_follow_transactions_too() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default());
    let rec = PlainRecord {
        key: Some(b"group"),
        value: Some(b"offset"),
        timestamp: 100,
    };
    log.append_internal(&encode_tagged(&[rec], None, false), 100)
        .unwrap();
    log.append_internal(&encode_tagged(&[rec, rec], Some((8, 1)), false), 100)
        .unwrap();
    assert_eq!(log.last_stable_offset(), 1);
    let (key, value) = encode_marker(MarkerKind::Abort, 0);
    let marker = PlainRecord {
        key: Some(&key),
        value: Some(&value),
        timestamp: 110,
    };
    let info = log
        .append_internal(&encode_tagged(&[marker], Some((8, 1)), true), 110)
        .unwrap();
    assert_eq!(info.base_offset, 3);
    assert_eq!(log.last_stable_offset(), 4);
    assert_eq!(log.aborted_transactions(0, 4), vec![aborted(8, 1, 3)]);

    // A control batch whose record is no marker is refused.
    let junk = PlainRecord {
        key: Some(b"xy"),
        value: None,
        timestamp: 120,
    };
    assert!(matches!(
        log.append_internal(&encode_tagged(&[junk], Some((8, 1)), true), 120),
        Err(LogError::InvalidRecord(_))
    ));
    drop(log);
    let log = open(dir.path(), LogConfig::default());
    assert_eq!(log.aborted_transactions(0, 4), vec![aborted(8, 1, 3)]);
    assert_eq!(log.last_stable_offset(), 4);
}

fn compact_config() -> LogConfig {
    LogConfig {
        segment_bytes: 400,
        index_interval_bytes: 64,
        retention_ms: -1,
        cleanup_compact: true,
        ..LogConfig::default()
    }
}

/// (offset, key, value) of every record from the log start.
fn records(log: &PartitionLog) -> Vec<(i64, String, Option<String>, bool)> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let data = log.read(offset, 1 << 20).unwrap().data;
        if data.is_empty() {
            break;
        }
        let mut buf = Bytes::copy_from_slice(&data);
        for set in RecordBatchDecoder::decode_all(&mut buf).unwrap() {
            for r in set.records {
                if r.offset >= offset {
                    let key = String::from_utf8_lossy(r.key.as_deref().unwrap_or(b"")).into_owned();
                    let value = r.value.map(|v| String::from_utf8_lossy(&v).into_owned());
                    out.push((r.offset, key, value, r.control));
                }
            }
        }
        offset = batch::batches(&data).last().unwrap().unwrap().next_offset();
    }
    out
}

#[test]
fn compaction_never_lets_an_aborted_transaction_remove_a_committed_value() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), compact_config());
    log.append(&plain(&["k", "other"], 100), 100).unwrap(); // 0, 1: committed k
    log.append(&pbatch(1, 0, 0, &["k"], 110, true), 110)
        .unwrap(); // 2: k in a transaction
    let marker = log.append_marker(1, 0, MarkerKind::Abort, 0, 120).unwrap(); // 3
    log.append(&pbatch(2, 0, 0, &["j"], 130, true), 130)
        .unwrap(); // 4: committed j
    log.append_marker(2, 0, MarkerKind::Commit, 0, 140).unwrap(); // 5
    log.append(&plain(&["j"], 150), 150).unwrap(); // 6: newer plain j
                                                   // Fill until the records above sit in non-active segments.
    let mut n = 0;
    while log.segment_count() < 4 {
        log.append(&plain(&[&format!("fill{}", n % 3)], 200), 200)
            .unwrap();
        n += 1;
    }
    let aborted_before = log.aborted_transactions(0, i64::MAX);
    assert_eq!(aborted_before, vec![aborted(1, 2, marker)]);

    let stats = log.compact(1_000).unwrap();
    assert!(stats.records_removed > 0, "{stats:?}");
    let after = records(&log);
    let has = |o: i64| after.iter().any(|r| r.0 == o);
    // The committed k survives the aborted transaction's later k.
    assert!(has(0), "committed value was removed: {after:?}");
    assert_eq!(after.iter().find(|r| r.0 == 0).unwrap().1, "k");
    // Transactional records and both markers stay.
    assert!(has(2) && has(3) && has(4) && has(5));
    assert!(after.iter().find(|r| r.0 == 3).unwrap().3);
    assert_eq!(log.aborted_transactions(0, i64::MAX), aborted_before);
    drop(log);
    let log = open(dir.path(), compact_config());
    assert_eq!(log.aborted_transactions(0, i64::MAX), aborted_before);
}

#[test]
fn markers_and_aborted_records_are_hidden_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default());
    log.append(&plain(&["a"], 1), 1).unwrap(); // 0
    log.append(&txn(10, 0, 0, 2, 1), 1).unwrap(); // 1-2
    log.append_marker(10, 0, MarkerKind::Commit, 0, 2).unwrap(); // 3
    log.append(&txn(11, 0, 0, 3, 1), 1).unwrap(); // 4-6
    log.append_marker(11, 0, MarkerKind::Abort, 0, 2).unwrap(); // 7
    assert_eq!(log.log_end_offset(), 8);
    // A reader that consumed "c" committed 3: nothing left to consume.
    assert_eq!(log.hidden_offsets(3, 8), 5);
    assert_eq!(log.hidden_offsets(0, 8), 5);
    assert_eq!(log.hidden_offsets(0, 3), 0);
    // Partly inside: only the marker counts.
    assert_eq!(log.hidden_offsets(5, 8), 1);
}
