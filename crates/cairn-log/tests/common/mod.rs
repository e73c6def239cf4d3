#![allow(dead_code)]

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
    TimestampType as WireTimestampType,
};

/// One producer batch whose records carry the given timestamps and values "v<i>".
pub fn batch_with(timestamps: &[i64], compression: Compression) -> Vec<u8> {
    let records: Vec<Record> = timestamps
        .iter()
        .enumerate()
        .map(|(i, &ts)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: WireTimestampType::Creation,
            offset: i as i64,
            // Keeps offset - sequence constant so the encoder emits a single batch.
            sequence: i as i32 - 1,
            timestamp: ts,
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(format!("v{i}-{}", "x".repeat(i % 7)))),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .expect("encode");
    buf.to_vec()
}

pub fn batch(timestamps: &[i64]) -> Vec<u8> {
    batch_with(timestamps, Compression::None)
}

/// A batch of `n` records all stamped `ts`.
pub fn batch_n(n: usize, ts: i64) -> Vec<u8> {
    batch(&vec![ts; n])
}

/// Decodes fetched data into (offset, timestamp) pairs using the wire library.
pub fn decode_offsets(data: &[u8]) -> Vec<(i64, i64)> {
    let mut buf = Bytes::copy_from_slice(data);
    let sets = RecordBatchDecoder::decode_all(&mut buf).expect("decode");
    sets.iter()
        .flat_map(|s| s.records.iter().map(|r| (r.offset, r.timestamp)))
        .collect()
}
