//! A topic codec other than `producer`: client batches in another codec are rewritten into it,
//! keeping offsets, timestamps and producer fields, and read back by an independent decoder.

mod common;

use cairn_log::batch::{self, BatchView, Codec};
use cairn_log::{LogConfig, LogError, PartitionLog, TimestampType};
use common::*;
use kafka_protocol::records::Compression as Wire;

const ALL: [(Wire, batch::Compression, i32); 5] = [
    (Wire::None, batch::Compression::None, 0),
    (Wire::Gzip, batch::Compression::Gzip, -1),
    (Wire::Snappy, batch::Compression::Snappy, 0),
    (Wire::Lz4, batch::Compression::Lz4, 9),
    (Wire::Zstd, batch::Compression::Zstd, 3),
];

fn codecs_of(data: &[u8]) -> Vec<batch::Compression> {
    batch::batches(data)
        .map(|v| {
            let v = v.unwrap();
            assert!(v.verify_crc(), "stored batch has a stale CRC");
            v.compression().unwrap()
        })
        .collect()
}

#[test]
fn every_codec_pair_is_rewritten_into_the_topic_codec() {
    let ts: Vec<i64> = (0..40).map(|i| 1_700_000_000_000 + i * 3).collect();
    for (_, target, level) in ALL {
        for (source, _, _) in ALL {
            let dir = tempfile::tempdir().unwrap();
            let config = LogConfig {
                compression: Some(Codec {
                    compression: target,
                    level,
                }),
                ..LogConfig::default()
            };
            let log = PartitionLog::open(dir.path(), config).unwrap();
            log.append(&batch_n(3, 5), 10).unwrap();
            let info = log.append(&batch_with(&ts, source), 10).unwrap();
            assert_eq!((info.base_offset, info.last_offset), (3, 42));
            let r = log.read(3, usize::MAX).unwrap();
            assert_eq!(codecs_of(&r.data), vec![target], "{source:?} -> {target:?}");
            let expect: Vec<(i64, i64)> = ts
                .iter()
                .enumerate()
                .map(|(i, &t)| (3 + i as i64, t))
                .collect();
            assert_eq!(decode_offsets(&r.data), expect, "{source:?} -> {target:?}");
        }
    }
}

#[test]
fn without_a_topic_codec_batches_keep_the_producers() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    log.append(&batch_with(&[1, 2, 3], Wire::Lz4), 10).unwrap();
    let r = log.read(0, usize::MAX).unwrap();
    assert_eq!(codecs_of(&r.data), vec![batch::Compression::Lz4]);
}

#[test]
fn log_append_time_is_stamped_on_the_rewritten_batch() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        timestamp_type: TimestampType::LogAppendTime,
        compression: Some(Codec {
            compression: batch::Compression::Zstd,
            level: 3,
        }),
        ..LogConfig::default()
    };
    let log = PartitionLog::open(dir.path(), config).unwrap();
    let info = log.append(&batch(&[1, 2, 3]), 777).unwrap();
    assert_eq!(info.log_append_time, 777);
    let r = log.read(0, usize::MAX).unwrap();
    let view = BatchView::new(&r.data[..]).unwrap();
    assert!(view.is_log_append_time());
    assert_eq!(view.max_timestamp(), 777);
    assert_eq!(view.compression().unwrap(), batch::Compression::Zstd);
}

#[test]
fn a_rewrite_past_max_message_bytes_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        max_message_bytes: 2000,
        compression: Some(Codec {
            compression: batch::Compression::None,
            level: 0,
        }),
        ..LogConfig::default()
    };
    let log = PartitionLog::open(dir.path(), config).unwrap();
    // 200 records of a few bytes each: small in gzip, past 2000 bytes uncompressed.
    let big = batch_with(&vec![1; 200], Wire::Gzip);
    assert!(big.len() <= 2000, "compressed batch is {} bytes", big.len());
    match log.append(&big, 10) {
        Err(LogError::MessageTooLarge { max: 2000, .. }) => {}
        other => panic!("expected MessageTooLarge, got {other:?}"),
    }
    assert_eq!(log.log_end_offset(), 0);
    log.append(&batch(&[1, 2]), 10).unwrap();
    assert_eq!(log.log_end_offset(), 2);
}

#[test]
fn broker_appends_are_not_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        compression: Some(Codec {
            compression: batch::Compression::Gzip,
            level: -1,
        }),
        ..LogConfig::default()
    };
    let log = PartitionLog::open(dir.path(), config).unwrap();
    log.append_internal(&batch(&[1, 2]), 10).unwrap();
    let r = log.read(0, usize::MAX).unwrap();
    assert_eq!(codecs_of(&r.data), vec![batch::Compression::None]);
}
