//! Damaged segment files: every batch is checked on open, damage becomes a gap that reads step
//! over, intact batches keep their offsets, and nothing damaged is ever served.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use cairn_log::batch::{self, BatchView};
use cairn_log::{LogConfig, PartitionLog};
use common::*;

fn config(compact: bool) -> LogConfig {
    LogConfig {
        segment_bytes: 2048,
        index_interval_bytes: 256,
        retention_ms: -1,
        cleanup_compact: compact,
        ..LogConfig::default()
    }
}

fn seg_file(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{base:020}.log"))
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

/// 60 batches of 2 records each (offsets 0..120), closed cleanly; returns the segment bases.
fn fill(dir: &Path, compact: bool) -> Vec<i64> {
    let log = PartitionLog::open(dir, config(compact)).unwrap();
    for i in 0..60 {
        log.append(&batch_n(2, i), 0).unwrap();
    }
    log.close().unwrap();
    let bases = segment_bases(dir);
    assert!(bases.len() >= 3, "want older segments, got {bases:?}");
    bases
}

/// (position, base offset) of every batch in a segment file.
fn batch_positions(path: &Path) -> Vec<(usize, i64)> {
    let bytes = fs::read(path).unwrap();
    let mut out = Vec::new();
    let mut it = batch::batches(&bytes);
    loop {
        let pos = it.position();
        let Some(v) = it.next() else { break };
        out.push((pos, v.unwrap().base_offset()));
    }
    out
}

fn patch(path: &Path, at: usize, bytes: &[u8]) {
    let mut data = fs::read(path).unwrap();
    data[at..at + bytes.len()].copy_from_slice(bytes);
    fs::write(path, data).unwrap();
}

/// Every offset a consumer gets reading from 0 to the end, following the data.
fn consume(log: &PartitionLog) -> Vec<i64> {
    let mut out = Vec::new();
    let mut next = 0;
    let mut rounds = 0;
    while next < log.log_end_offset() {
        rounds += 1;
        assert!(rounds < 1000, "consumer stuck at {next}");
        let r = log.read(next, 300).unwrap();
        assert!(!r.data.is_empty(), "no data at {next}");
        for v in batch::batches(&r.data) {
            assert!(v.unwrap().verify_crc(), "damaged batch served");
        }
        let offs: Vec<i64> = decode_offsets(&r.data).into_iter().map(|r| r.0).collect();
        let from = next;
        next = offs.last().unwrap() + 1;
        out.extend(offs.into_iter().filter(|o| *o >= from));
    }
    out
}

fn expected_without(lost: std::ops::Range<i64>) -> Vec<i64> {
    (0..120).filter(|o| !lost.contains(o)).collect()
}

#[test]
fn corrupt_length_in_an_older_segment_loses_one_batch() {
    let dir = tempfile::tempdir().unwrap();
    let bases = fill(dir.path(), false);
    let path = seg_file(dir.path(), bases[0]);
    let (pos, base) = batch_positions(&path)[2];
    patch(&path, pos + 8, &0x7fff_0000i32.to_be_bytes());
    let log = PartitionLog::open(dir.path(), config(false)).unwrap();
    let d = log.damage();
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!((d[0].first_offset, d[0].end_offset), (base, Some(base + 2)));
    assert_eq!(d[0].segment, bases[0]);
    assert_eq!(d[0].start_pos, pos as u64);
    assert_eq!(consume(&log), expected_without(base..base + 2));
    // Offsets inside the hole answer with the next intact batch.
    let r = log.read(base, 1).unwrap();
    assert_eq!(BatchView::new(&r.data[..]).unwrap().base_offset(), base + 2);
    assert_eq!(log.log_end_offset(), 120);
    // Nothing on disk was changed by the open, so the check sees the same.
    let check = PartitionLog::check(dir.path(), false, 256).unwrap();
    assert_eq!(check.damage.len(), 1);
    assert_eq!(check.damage[0].end_offset, Some(base + 2));
}

#[test]
fn corrupt_base_offset_upward_never_serves_wrong_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let bases = fill(dir.path(), false);
    let path = seg_file(dir.path(), bases[1]);
    let (pos, base) = batch_positions(&path)[1];
    patch(&path, pos, &(base + 50).to_be_bytes());
    let log = PartitionLog::open(dir.path(), config(false)).unwrap();
    let d = log.damage();
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!((d[0].first_offset, d[0].end_offset), (base, Some(base + 2)));
    assert_eq!(consume(&log), expected_without(base..base + 2));
}

#[test]
fn corrupt_base_offset_downward_and_in_the_first_batch() {
    let dir = tempfile::tempdir().unwrap();
    let bases = fill(dir.path(), false);
    let p1 = seg_file(dir.path(), bases[1]);
    let (pos, base) = batch_positions(&p1)[0];
    patch(&p1, pos, &(base - 1).to_be_bytes());
    let p0 = seg_file(dir.path(), bases[0]);
    patch(&p0, 0, &7i64.to_be_bytes());
    let log = PartitionLog::open(dir.path(), config(false)).unwrap();
    let d = log.damage();
    assert_eq!(d.len(), 2, "{d:?}");
    let mut want: Vec<i64> = expected_without(base..base + 2);
    want.retain(|o| *o >= 2);
    let got = consume(&log);
    assert_eq!(got, want);
}

#[test]
fn garbage_in_the_middle_of_a_segment_and_its_tail() {
    let dir = tempfile::tempdir().unwrap();
    let bases = fill(dir.path(), false);
    let path = seg_file(dir.path(), bases[0]);
    let batches = batch_positions(&path);
    // Two batches overwritten with garbage bytes (lengths included), and the last batch's CRC.
    let (start, first_lost) = batches[3];
    let (end, _) = batches[5];
    patch(&path, start, &vec![0x5a; end - start]);
    let (last_pos, last_base) = *batches.last().unwrap();
    patch(&path, last_pos + 17, &[0, 0, 0, 0]);
    let log = PartitionLog::open(dir.path(), config(false)).unwrap();
    let d = log.damage();
    assert_eq!(d.len(), 2, "{d:?}");
    assert_eq!(
        (d[0].first_offset, d[0].end_offset),
        (first_lost, Some(first_lost + 4))
    );
    assert_eq!(
        (d[1].first_offset, d[1].end_offset),
        (last_base, Some(bases[1]))
    );
    let got = consume(&log);
    let want: Vec<i64> = expected_without(first_lost..first_lost + 4)
        .into_iter()
        .filter(|o| !(last_base..bases[1]).contains(o))
        .collect();
    assert_eq!(got, want);
    assert_eq!(log.log_end_offset(), 120);
}

#[test]
fn garbage_index_files_are_ignored_and_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let bases = fill(dir.path(), false);
    for b in &bases {
        fs::write(
            dir.path().join(format!("{b:020}.index")),
            b"\x00\x00\x00\x09gar",
        )
        .unwrap();
        let t = dir.path().join(format!("{b:020}.timeindex"));
        let len = fs::metadata(&t).unwrap().len();
        fs::OpenOptions::new()
            .write(true)
            .open(&t)
            .unwrap()
            .set_len(len / 2 + 1)
            .unwrap();
    }
    let check = PartitionLog::check(dir.path(), false, 256).unwrap();
    assert!(check.damage.is_empty());
    assert!(check.segments.iter().any(|s| s.index_rebuild));
    let log = PartitionLog::open(dir.path(), config(false)).unwrap();
    assert!(log.damage().is_empty());
    assert_eq!(consume(&log), expected_without(0..0));
    assert_eq!(log.offset_for_timestamp(30).unwrap(), Some((60, 30)));
    drop(log);
    let check = PartitionLog::check(dir.path(), false, 256).unwrap();
    assert!(check.segments.iter().all(|s| !s.index_rebuild));
}

#[test]
fn compaction_keeps_intact_batches_around_damage() {
    let dir = tempfile::tempdir().unwrap();
    let bases = fill(dir.path(), true);
    let path = seg_file(dir.path(), bases[0]);
    let (pos, base) = batch_positions(&path)[1];
    patch(&path, pos + 40, &[0xff; 4]);
    let log = PartitionLog::open(dir.path(), config(true)).unwrap();
    assert_eq!(log.damage().len(), 1);
    // Every batch has keys k0, k1, so compaction keeps only the newest pair; it must get past
    // the damaged range instead of failing on it.
    log.compact(0).unwrap();
    let got = consume(&log);
    assert!(!got.contains(&base));
    assert_eq!(*got.last().unwrap(), 119);
}

#[test]
fn clean_log_checks_clean() {
    let dir = tempfile::tempdir().unwrap();
    let bases = fill(dir.path(), false);
    let check = PartitionLog::check(dir.path(), false, 256).unwrap();
    assert!(check.damage.is_empty() && check.torn_tail.is_none());
    assert!(check.clean_shutdown);
    assert_eq!(check.segments.len(), bases.len());
    assert_eq!(check.log_end, 120);
    assert_eq!(check.segments.iter().map(|s| s.batches).sum::<u64>(), 60);
}

#[test]
fn a_segment_moved_out_by_an_operator_leaves_a_gap_and_keeps_later_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let bases = fill(dir.path(), false);
    for ext in ["log", "index", "timeindex"] {
        fs::remove_file(dir.path().join(format!("{:020}.{ext}", bases[1]))).unwrap();
    }
    let check = PartitionLog::check(dir.path(), false, 256).unwrap();
    assert!(check.damage.is_empty(), "{:?}", check.damage);
    let log = PartitionLog::open(dir.path(), config(false)).unwrap();
    assert!(log.damage().is_empty());
    assert_eq!(log.log_end_offset(), 120);
    assert_eq!(consume(&log), expected_without(bases[1]..bases[2]));
    assert_eq!(log.append(&batch_n(1, 0), 0).unwrap().base_offset, 120);
}

#[test]
fn damaged_end_after_a_clean_shutdown_never_reuses_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let bases = fill(dir.path(), false);
    let active = *bases.last().unwrap();
    let path = seg_file(dir.path(), active);
    let (pos, base) = *batch_positions(&path).last().unwrap();
    patch(&path, pos + 70, &[0xee]);
    let check = PartitionLog::check(dir.path(), false, 256).unwrap();
    assert_eq!(check.damage.len(), 1);
    assert_eq!(check.damage[0].end_offset, Some(120));
    assert_eq!(check.log_end, 120);
    {
        let log = PartitionLog::open(dir.path(), config(false)).unwrap();
        let d = log.damage();
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!((d[0].first_offset, d[0].end_offset), (base, Some(120)));
        assert!(d[0].truncated);
        // The end recorded at the clean shutdown holds; the next record is not given 118 again.
        assert_eq!(log.log_end_offset(), 120);
        assert_eq!(log.append(&batch_n(1, 0), 0).unwrap().base_offset, 120);
        let got = consume(&log);
        assert_eq!(got.last(), Some(&120));
        assert!(!got.contains(&base));
    }
    // A log cut short with no damaged bytes at all (a truncated file) is caught the same way.
    let dir = tempfile::tempdir().unwrap();
    let bases = fill(dir.path(), false);
    let path = seg_file(dir.path(), *bases.last().unwrap());
    let (pos, base) = *batch_positions(&path).last().unwrap();
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(pos as u64)
        .unwrap();
    let log = PartitionLog::open(dir.path(), config(false)).unwrap();
    assert_eq!(log.damage()[0].first_offset, base);
    assert_eq!(log.log_end_offset(), 120);
}

/// One batch of `n` records with `size`-byte values.
fn big_batch(n: usize, size: usize) -> Vec<u8> {
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32 - 1,
            timestamp: 1,
            key: None,
            value: Some(bytes::Bytes::from(vec![b'a' + i as u8; size])),
            headers: Default::default(),
        })
        .collect();
    let mut buf = bytes::BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options).unwrap();
    buf.to_vec()
}

#[test]
fn batches_larger_than_the_scan_chunk_are_checked_in_pieces() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        max_message_bytes: 16 << 20,
        ..LogConfig::default()
    };
    {
        let log = PartitionLog::open(dir.path(), cfg.clone()).unwrap();
        log.append(&big_batch(6, 1 << 20), 0).unwrap();
        log.append(&big_batch(2, 10), 0).unwrap();
        log.close().unwrap();
    }
    let log = PartitionLog::open(dir.path(), cfg.clone()).unwrap();
    assert!(log.damage().is_empty());
    assert_eq!(log.log_end_offset(), 8);
    drop(log);
    // One flipped byte in the last megabyte of the big batch.
    let path = seg_file(dir.path(), 0);
    patch(&path, (5 << 20) + 100, &[0x00]);
    let log = PartitionLog::open(dir.path(), cfg).unwrap();
    let d = log.damage();
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!((d[0].first_offset, d[0].end_offset), (0, Some(6)));
    assert!(d[0].reason.contains("crc mismatch"), "{}", d[0].reason);
    assert_eq!(consume(&log), vec![6, 7]);
}

#[test]
fn a_base_offset_damaged_downward_costs_only_its_own_batch() {
    let dir = tempfile::tempdir().unwrap();
    let bases = fill(dir.path(), false);
    let path = seg_file(dir.path(), bases[1]);
    let (pos, base) = batch_positions(&path)[3];
    // One below its true base: it now overlaps the intact batch before it.
    patch(&path, pos, &(base - 1).to_be_bytes());
    let log = PartitionLog::open(dir.path(), config(false)).unwrap();
    let d = log.damage();
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!((d[0].first_offset, d[0].end_offset), (base, Some(base + 2)));
    assert_eq!(consume(&log), expected_without(base..base + 2));
}
